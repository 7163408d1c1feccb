//! The live pipeline: decode -> preprocess -> model (streaming) -> cues (live) -> sinks, one
//! thread a stage, on the stream's clock; several streams side by side on one model.
//!
//! The model stage runs with [`spawn_live_stage`]: before each pass it takes in everything that
//! has arrived, so audio never waits in a channel while it decodes; what it cannot keep up with
//! it skips, and says so. Ending the input (end of stream, Ctrl-C: the source stops) lets every
//! stage finish: the last words are committed, the last cue closed, the HLS playlist ended.

use std::sync::Arc;

use crate::config::PipelineConfig;
use crate::context::Context;
use crate::cue::live::LiveCueStage;
use crate::cue::Profile;
use crate::error::{Error, Result};
use crate::infer::{ModelStage, ModelTranscriber, TranscribeOptions, Transcriber};
use crate::pipeline::shared::{spawn_shared_batcher, ShareConfig};
use crate::pipeline::{
    channel, first_error, joined, spawn_live_stage, spawn_sink, spawn_source, spawn_split_stage, spawn_stage, Pace,
    Shutdown,
};
use crate::preprocess::PreprocessStage;
use crate::segment::StreamStatus;
use crate::sink::live::LiveSink;
use crate::source::MediaSource;

/// One live stream to its outputs.
pub struct LiveJob {
    /// What the stream is called in errors and events.
    pub name: String,
    pub source: Box<dyn MediaSource>,
    pub model: Arc<dyn Transcriber>,
    pub options: TranscribeOptions,
    pub pipeline: PipelineConfig,
    pub profile: Profile,
    /// 608-style roll-up rows instead of pop-on cues.
    pub roll_up: bool,
    pub context: Context,
    pub sink: LiveSink,
    pub shutdown: Shutdown,
}

/// What a finished stream reports.
#[derive(Debug, Clone)]
pub struct LiveSummary {
    pub cues: usize,
    pub status: StreamStatus,
    /// Holes in the input filled with silence (dropped packets, a dropped connection), and their
    /// length in seconds.
    pub gaps: usize,
    pub gap_s: f64,
    pub skipped_packets: u64,
}

/// Runs one stream until its input ends.
pub fn run_live(job: LiveJob) -> Result<LiveSummary> {
    let ch = &job.pipeline.channels;
    let shutdown = job.shutdown.clone();
    let fps = job.pipeline.cues.audio_only_fps;
    let name = std::path::PathBuf::from(&job.name);
    let model_stage = ModelStage::streaming(
        Arc::clone(&job.model),
        job.options.clone(),
        name.clone(),
        job.context,
        false,
        job.pipeline.live.clone(),
    );
    let preprocess = PreprocessStage::new(job.model.dims().n_mels, job.pipeline.shots.clone(), false);
    let cues = LiveCueStage::new(job.profile.clone(), fps, job.roll_up);
    let results = std::thread::scope(|s| {
        let (l_dec, r_dec) = channel(ch.decode_to_preprocess);
        let (l_pre, r_pre) = channel(ch.preprocess_to_model);
        let (l_mod, r_mod) = channel(ch.model_to_cues);
        let (l_cue, r_cue) = channel(ch.cues_to_sink);
        let dec = spawn_source(s, job.source, l_dec, Pace::Free, shutdown.clone());
        let pre = spawn_split_stage(s, preprocess, r_dec, l_pre, None, Default::default(), shutdown.clone());
        let model = spawn_live_stage(s, model_stage, r_pre, l_mod, shutdown.clone());
        let cue = spawn_stage(s, cues, r_mod, l_cue, shutdown.clone());
        let sink = spawn_sink(s, job.sink, r_cue, shutdown.clone(), |_| {});
        let name = name.as_path();
        (
            joined(dec.join(), name),
            joined(pre.join(), name),
            joined(model.join(), name),
            joined(cue.join(), name),
            joined(sink.join(), name),
        )
    });
    let (source, pre, model, cue, sink) = match results {
        (Ok(d), Ok(p), Ok(m), Ok(c), Ok(k)) => (d, p, m, c, k),
        (d, p, m, c, k) => {
            let errors = [d.err(), p.err(), m.err(), c.err(), k.err()];
            return Err(first_error(errors.into_iter().flatten()).unwrap_or(Error::Interrupted));
        }
    };
    let status = match &model {
        ModelStage::Streaming(m) => m.status().clone(),
        _ => StreamStatus::default(),
    };
    let summary = LiveSummary {
        cues: cue.cues,
        status,
        gaps: pre.gaps,
        gap_s: pre.gap_time.secs_f64(),
        skipped_packets: source.skipped_packets(),
    };
    sink.close()?;
    Ok(summary)
}

/// Runs `jobs` side by side, one model for all; `done` is told each stream's result as it ends.
/// One stream failing does not stop the others. With `share`, each stream's model stage gets a
/// seat at one shared model stage: a pass's decoding waits (up to the share's wait) for the
/// other streams' and goes through the model with them, one pass over the weights a step for
/// all (each after its own committed text, `infer::shared`).
pub fn run_streams(
    jobs: Vec<LiveJob>,
    share: Option<(ModelTranscriber, ShareConfig)>,
    done: impl Fn(usize, Result<LiveSummary>) + Sync,
) {
    std::thread::scope(|s| {
        let shared = share.map(|(model, cfg)| spawn_shared_batcher(s, model, cfg));
        // The streams' scope ends before the shared model is dropped: their seats end its thread.
        std::thread::scope(|w| {
            for (i, mut job) in jobs.into_iter().enumerate() {
                if let Some(shared) = &shared {
                    job.model = shared.seat();
                }
                let done = &done;
                std::thread::Builder::new()
                    .name(format!("stream-{i}"))
                    .spawn_scoped(w, move || done(i, run_live(job)))
                    .expect("spawning a thread");
            }
        });
    });
}
