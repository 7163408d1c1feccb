//! Demux and decode: any input becomes 16 kHz mono f32 audio, plus video frames sampled at a
//! configurable rate and size when asked for.
//!
//! Recoverable: a packet that fails to decode is skipped and counted. Not recoverable: an input
//! that cannot be opened, has no audio stream, or fails to read part way (the error names the
//! file and the media time reached).

#[cfg(feature = "ffmpeg")]
mod ffmpeg;
pub mod resample;
mod symphonia;

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::time::Ts;

#[cfg(feature = "ffmpeg")]
pub use self::ffmpeg::FfmpegSource;
pub use self::symphonia::SymphoniaSource;

/// Audio rate every source delivers.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

/// A run of decoded audio, 16 kHz mono.
#[derive(Debug, Clone)]
pub struct AudioChunk {
    pub start: Ts,
    pub samples: Vec<f32>,
}

/// One sampled video frame, RGB24, `width * height * 3` bytes.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub at: Ts,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// What a source emits.
#[derive(Debug, Clone)]
pub enum Media {
    Audio(AudioChunk),
    /// Small frames at a high rate: shot detection.
    Video(VideoFrame),
    /// Large frames at a low rate: on-screen text and the visual encoder.
    Still(VideoFrame),
}

/// Video sampling for the visual stages: two schedules from one decoder, each off at 0 fps.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VideoSampling {
    /// Frames per second kept as [`Media::Video`] (0: none).
    #[serde(default)]
    pub fps: f64,
    /// Width of those frames; height follows the aspect ratio (even).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Frames per second kept as [`Media::Still`] (0: none).
    #[serde(default)]
    pub stills_fps: f64,
    /// Width of stills; never wider than the video.
    #[serde(default = "default_stills_width")]
    pub stills_width: u32,
}

fn default_width() -> u32 {
    224
}

fn default_stills_width() -> u32 {
    1280
}

impl Default for VideoSampling {
    fn default() -> Self {
        Self { fps: 0.0, width: default_width(), stills_fps: 0.0, stills_width: default_stills_width() }
    }
}

/// A decoder as a pull state machine: each call appends what it decoded to `out`; `false` once
/// the input is exhausted and flushed.
pub trait MediaSource: Send {
    fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool>;
    /// Length of the input, when the container says.
    fn duration(&self) -> Option<Ts>;
    /// Frames per second of the input's video, if it has any.
    fn frame_rate(&self) -> Option<f64> {
        None
    }
    /// Packets that failed to decode and were skipped.
    fn skipped_packets(&self) -> u64;
}

/// Extensions Symphonia decodes; everything else goes to FFmpeg.
const PLAIN_AUDIO: &[&str] = &["wav", "flac", "mp3", "ogg", "oga"];

/// Opens `path` with the right decoder. Checks existence and size first for a clear message.
pub fn open(path: &Path, video: &VideoSampling) -> Result<Box<dyn MediaSource>> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::input(path, "no such file"),
        _ => Error::input(path, e),
    })?;
    if meta.is_dir() {
        return Err(Error::input(path, "is a directory"));
    }
    if meta.len() == 0 {
        return Err(Error::input(path, "file is empty"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    if PLAIN_AUDIO.contains(&ext.as_str()) {
        match SymphoniaSource::open(path) {
            Ok(s) => return Ok(Box::new(s)),
            Err(e) => tracing::debug!("symphonia could not open {}: {e}; trying FFmpeg", path.display()),
        }
    }
    open_container(path, video)
}

#[cfg(feature = "ffmpeg")]
fn open_container(path: &Path, video: &VideoSampling) -> Result<Box<dyn MediaSource>> {
    Ok(Box::new(FfmpegSource::open(path, video)?))
}

#[cfg(not(feature = "ffmpeg"))]
fn open_container(path: &Path, _: &VideoSampling) -> Result<Box<dyn MediaSource>> {
    let plain = PLAIN_AUDIO.join(", ");
    Err(Error::input(path, format!("this build reads plain audio only ({plain}): built without the `ffmpeg` feature")))
}
