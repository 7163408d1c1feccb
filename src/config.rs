//! Declarative pipeline definitions (`pipelines/*.toml`): channels, video sampling, and every
//! stage's settings, validated before any thread starts.

use std::path::Path;

use serde::Deserialize;

use crate::context::ContextConfig;
use crate::cue::CueConfig;
use crate::error::{Error, Result};
use crate::infer::StreamConfig;
use crate::preprocess::shots::ShotConfig;
use crate::preprocess::vad::VadConfig;
use crate::sink::live::HlsConfig;
use crate::source::StillConfig;
use crate::source::VideoSampling;
use crate::visual::OcrConfig;

/// What a stage does when the channel after it is full (vector's `WhenFull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (files: nothing is lost).
    #[default]
    Block,
    /// Make room by dropping the oldest item waiting, and count it (live input: what is
    /// delivered stays recent).
    DropOldest,
    /// Drop the new item and count it.
    DropNewest,
}

/// One channel: how many items it holds and what happens when it is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub capacity: usize,
    #[serde(default)]
    pub when_full: WhenFull,
}

/// The channels between stages.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// decode -> preprocess (decoded packets' worth of audio, sampled frames, gaps).
    pub decode_to_preprocess: Channel,
    /// preprocess -> model (mel chunks, shot changes).
    pub preprocess_to_model: Channel,
    /// model -> cues (segments).
    pub model_to_cues: Channel,
    /// cues -> sink (segments with their cues).
    pub cues_to_sink: Channel,
    /// preprocess -> visual stage (stills). Only made when there is a visual stage to read it.
    pub preprocess_to_visual: Channel,
    /// visual stage -> model (on-screen text).
    pub visual_to_model: Channel,
}

impl ChannelConfig {
    fn all(&self) -> [(&'static str, &Channel); 6] {
        [
            ("decode_to_preprocess", &self.decode_to_preprocess),
            ("preprocess_to_model", &self.preprocess_to_model),
            ("model_to_cues", &self.model_to_cues),
            ("cues_to_sink", &self.cues_to_sink),
            ("preprocess_to_visual", &self.preprocess_to_visual),
            ("visual_to_model", &self.visual_to_model),
        ]
    }
}

/// A whole pipeline definition.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Channel capacities and policy.
    pub channels: ChannelConfig,
    /// Video frame sampling for visual stages (off by default).
    #[serde(default)]
    pub video: VideoSampling,
    /// Shot-change detection on the sampled frames.
    #[serde(default)]
    pub shots: ShotConfig,
    /// Voice activity detection before the model.
    #[serde(default)]
    pub vad: VadConfig,
    /// How segments are cut into cues: the subtitle profile and custom profiles.
    #[serde(default)]
    pub cues: CueConfig,
    /// Which stills go on to the visual stages (the source reads it as `video.still_filter`,
    /// set from here when the pipeline is parsed).
    #[serde(default)]
    pub stills: StillConfig,
    /// On-screen text.
    #[serde(default)]
    pub ocr: OcrConfig,
    /// What the decoder is told besides the audio: on-screen text, `--context`, previous text.
    #[serde(default)]
    pub context: ContextConfig,
    /// How the model stage takes its work: window after window, or chunks of speech in batches.
    #[serde(default)]
    pub model: ModelStageConfig,
    /// Live input: when words are committed, and how the stage keeps up.
    #[serde(default)]
    pub live: StreamConfig,
    /// Live input's HLS subtitle playlist.
    #[serde(default)]
    pub hls: HlsConfig,
}

/// The model stage's batching (`[model]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelStageConfig {
    /// Chunks of speech (at most 30 s, cut at pauses) that go through encoder and decoder as
    /// one batch; 1 decodes window after window, each after the text before it.
    pub batch_size: usize,
    /// A partial batch is decoded once the input has gone this far past its first chunk; 0
    /// waits for a full batch (or the end of the input).
    pub batch_wait_ms: i64,
    /// With several inputs at once (`--jobs`), the longest a batch waits for the other
    /// inputs' chunks to encode (on a GPU) and decode with them (wall-clock ms).
    pub share_wait_ms: u64,
}

impl Default for ModelStageConfig {
    fn default() -> Self {
        Self { batch_size: 1, batch_wait_ms: 0, share_wait_ms: 200 }
    }
}

/// The default file pipeline, as shipped in `pipelines/file.toml`.
pub const DEFAULT_FILE_PIPELINE: &str = include_str!("../pipelines/file.toml");
/// The default live pipeline, as shipped in `pipelines/live.toml`.
pub const DEFAULT_LIVE_PIPELINE: &str = include_str!("../pipelines/live.toml");

impl PipelineConfig {
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut cfg: PipelineConfig = toml::from_str(text)
            .map_err(|e| Error::config(path, e.message().lines().next().unwrap_or("invalid TOML").to_string()))?;
        cfg.validate(path)?;
        // The source decides which stills go on, before it scales them.
        cfg.video.still_filter = cfg.stills.clone();
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::config(path, e))?;
        Self::parse(&text, path)
    }

    pub fn default_file() -> Self {
        Self::parse(DEFAULT_FILE_PIPELINE, Path::new("pipelines/file.toml")).expect("the shipped pipeline is valid")
    }

    pub fn default_live() -> Self {
        Self::parse(DEFAULT_LIVE_PIPELINE, Path::new("pipelines/live.toml")).expect("the shipped pipeline is valid")
    }

    fn validate(&self, path: &Path) -> Result<()> {
        for (name, c) in self.channels.all() {
            if c.capacity == 0 {
                return Err(Error::config(path, format!("channels.{name}.capacity must be at least 1")));
            }
        }
        if !(0.0..=60.0).contains(&self.video.fps) {
            return Err(Error::config(path, "video.fps must be between 0 and 60"));
        }
        if !(0.0..=10.0).contains(&self.video.stills_fps) {
            return Err(Error::config(path, "video.stills_fps must be between 0 and 10"));
        }
        if !(1..=16).contains(&self.video.threads) {
            return Err(Error::config(path, "video.threads must be between 1 and 16"));
        }
        if !(1..=64).contains(&self.model.batch_size) {
            return Err(Error::config(path, "model.batch_size must be between 1 and 64"));
        }
        if self.model.batch_wait_ms < 0 {
            return Err(Error::config(path, "model.batch_wait_ms must not be negative"));
        }
        self.vad.validate().map_err(|e| Error::config(path, e))?;
        self.live.validate().map_err(|e| Error::config(path, e))?;
        self.hls.validate().map_err(|e| Error::config(path, e))?;
        self.cues.validate().map_err(|e| Error::config(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses_and_files_never_drop() {
        let c = PipelineConfig::default_file();
        assert!(c.channels.all().iter().all(|(_, c)| c.when_full == WhenFull::Block));
        let live = PipelineConfig::default_live();
        assert_eq!(live.video.fps, 0.0, "live input decodes no video");
    }

    #[test]
    fn unknown_fields_and_zero_capacities_are_rejected() {
        let bad = DEFAULT_FILE_PIPELINE.replace("[channels]", "[channels]\nbogus = 1");
        let e = PipelineConfig::parse(&bad, Path::new("x.toml")).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("bogus"), "{e}");
        let zero = DEFAULT_FILE_PIPELINE.replace("model_to_cues = { capacity = 16", "model_to_cues = { capacity = 0");
        assert_ne!(zero, DEFAULT_FILE_PIPELINE);
        let e = PipelineConfig::parse(&zero, Path::new("x.toml")).unwrap_err().to_string();
        assert!(e.contains("channels.model_to_cues.capacity"), "{e}");
        let batch = |b: &str| DEFAULT_FILE_PIPELINE.replace("batch_size = 1", b);
        let e = PipelineConfig::parse(&batch("batch_size = 0"), Path::new("x.toml")).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("model.batch_size"), "{e}");
        assert_eq!(PipelineConfig::parse(&batch("batch_size = 8"), Path::new("x.toml")).unwrap().model.batch_size, 8);
    }
}
