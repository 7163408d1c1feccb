//! Demux and decode: any input becomes 16 kHz mono f32 audio, plus video frames sampled at a
//! configurable rate and size when asked for.
//!
//! Time is the stream's: audio and video are placed by their timestamps on one clock whose zero
//! is the stream's start. Where the audio has a hole (a packet that failed to decode, a jump in
//! the timestamps, audio that starts after the video) the source says so with a [`Gap`], which
//! the preprocess stage fills with silence, so every later word and cue stays where the picture
//! puts it ([`AudioClock`]).
//!
//! Recoverable: a packet that fails to decode is skipped and counted. Not recoverable: an input
//! that cannot be opened, has no audio stream, or fails to read part way (the error names the
//! file and the media time reached).

#[cfg(feature = "ffmpeg")]
mod ffmpeg;
#[cfg(feature = "ffmpeg")]
mod frame_pool;
#[cfg(feature = "ffmpeg")]
mod gop;
#[cfg(feature = "ffmpeg")]
pub mod live;
pub mod picture;
pub mod resample;
#[cfg(feature = "ffmpeg")]
mod sampler;
pub mod stills;
mod symphonia;
#[cfg(feature = "ffmpeg")]
mod unreferenced;
#[cfg(feature = "ffmpeg")]
mod video;

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::time::Ts;

#[cfg(feature = "ffmpeg")]
pub use self::ffmpeg::{FfmpegSource, VideoSource};
pub use self::stills::{Still, StillConfig};
pub use self::symphonia::SymphoniaSource;

/// Audio rate every source delivers.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

/// A run of decoded audio, 16 kHz mono, from `start` in media time.
#[derive(Debug, Clone)]
pub struct AudioChunk {
    pub start: Ts,
    pub samples: Vec<f32>,
}

/// A stretch of media time without audio, from `at` for `samples` samples at 16 kHz: the
/// preprocess stage fills it with silence so that time keeps moving (gst's `Gap` event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub at: Ts,
    pub samples: u64,
    pub reason: GapReason,
}

impl Gap {
    pub fn duration(&self) -> Ts {
        Ts::from_samples(self.samples, SAMPLE_RATE_HZ)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// The audio starts after the stream does (after the video).
    LateStart,
    /// The timestamps jump forward: packets lost, skipped as undecodable, or never sent.
    Hole,
    /// Audio dropped on purpose because the pipeline could not keep up (live input).
    Dropped,
}

/// One sampled video frame, RGB24, `width * height * 3` bytes.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub at: Ts,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// How it follows the frame sampled before it.
    pub follows: Follows,
}

/// How a sampled frame follows the one sampled before it: what a change between the two can
/// mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Follows {
    /// At the sampling rate: nothing much moves between the two but a cut.
    #[default]
    Closely,
    /// A keyframe after frames left undecoded: the picture may have moved any amount between
    /// the two. `scene_cut`: a change between the two is at this keyframe: the encoder put it off
    /// its regular beat after a stretch with no burst, which it does at a scene cut, or on the
    /// beat after a steady stretch with no burst, of an encoder that keys its scene cuts.
    Keyframe { scene_cut: bool },
    /// A keyframe after frames left undecoded, one of which (at this time) took a burst of bits,
    /// as an encoder spends on a cut it gave no keyframe: if the picture changed, it changed there.
    Burst(Ts),
    /// A keyframe after frames left undecoded without a burst, showing the picture of the one
    /// before it panned or zoomed: the same shot, however much its colours changed.
    Moved,
}

/// What a source emits.
#[derive(Debug, Clone)]
pub enum Media {
    Audio(AudioChunk),
    Gap(Gap),
    /// Small frames at a high rate: shot detection.
    Video(VideoFrame),
    /// Large frames at a low rate, those that settled and are new with their pixels: on-screen
    /// text and the visual encoder.
    Still(Still),
}

impl Media {
    /// Where it starts in media time.
    pub fn at(&self) -> Ts {
        match self {
            Media::Audio(a) => a.start,
            Media::Gap(g) => g.at,
            Media::Video(f) => f.at,
            Media::Still(s) => s.at,
        }
    }

    /// The media time it reaches: its end (a picture's is its own time).
    pub fn end(&self) -> Ts {
        match self {
            Media::Audio(a) => a.start + Ts::from_samples(a.samples.len() as u64, SAMPLE_RATE_HZ),
            Media::Gap(g) => g.at + g.duration(),
            Media::Video(_) | Media::Still(_) => self.at(),
        }
    }
}

/// How much of the video is decoded for the visual stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VideoDecode {
    /// Keyframes, and the pictures between two of them only where something happened that the
    /// keyframes cannot place (see `source::video`).
    #[default]
    Keyframes,
    /// Every frame.
    All,
}

/// What decoding the video cost, for the run's statistics and `-v`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VideoStats {
    /// Keyframes decoded, groups of pictures decoded past their keyframe, frames decoded in all.
    pub keyframes: usize,
    pub gops_decoded: usize,
    pub frames_decoded: usize,
    /// Time spent on video: decoding, scaling, choosing.
    pub seconds: f64,
}

impl VideoStats {
    /// Says what decoding the video cost (`-v`).
    #[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
    pub(crate) fn log(&self) {
        tracing::info!(
            keyframes = self.keyframes,
            gops_decoded = self.gops_decoded,
            frames = self.frames_decoded,
            seconds = self.seconds,
            "video decoded"
        );
    }
}

/// Video sampling for the visual stages: two schedules from one decoder, each off at 0 fps.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VideoSampling {
    /// How much of the video is decoded (`keyframes` or `all`).
    #[serde(default)]
    pub decode: VideoDecode,
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
    /// Threads FFmpeg may use to decode a group of pictures (1: none of its own).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// A cut inside a GOP is placed to the frame (the GOP's frames between the two reference
    /// frames that differ decoded again); `false`: at the later of those two (up to 3 frames
    /// late with x264's B-frames), each GOP decoded once.
    #[serde(default = "default_exact_cuts")]
    pub exact_cuts: bool,
    /// On a short fixed beat, keyframes are taken no more often than this many of their bytes a
    /// second of video allow (0: every 2 s whatever their size).
    #[serde(default = "default_keyframe_bytes_per_s")]
    pub keyframe_bytes_per_s: usize,
    /// Which stills go on with their pixels: the pipeline's `[stills]` table.
    #[serde(skip)]
    pub still_filter: StillConfig,
}

fn default_threads() -> usize {
    2
}

fn default_exact_cuts() -> bool {
    true
}

fn default_keyframe_bytes_per_s() -> usize {
    96_000
}

fn default_width() -> u32 {
    224
}

fn default_stills_width() -> u32 {
    1280
}

impl Default for VideoSampling {
    fn default() -> Self {
        Self {
            decode: VideoDecode::default(),
            fps: 0.0,
            width: default_width(),
            stills_fps: 0.0,
            stills_width: default_stills_width(),
            threads: default_threads(),
            exact_cuts: default_exact_cuts(),
            keyframe_bytes_per_s: default_keyframe_bytes_per_s(),
            still_filter: StillConfig::default(),
        }
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
    /// What decoding the video cost, when it was decoded.
    fn video_stats(&self) -> Option<VideoStats> {
        None
    }
    /// The video, split off to be read by a source of its own on another thread (this one then
    /// reads the audio alone); `None` when it cannot be.
    fn take_video(&mut self) -> Result<Option<Box<dyn MediaSource>>> {
        Ok(None)
    }
    /// Once the input is exhausted: where its audio ended, if well before what the input says it
    /// holds (a truncated upload, a damaged tail).
    fn truncation(&self) -> Option<Truncation> {
        None
    }
    /// Once the input is exhausted, where its timestamps jumped (recordings joined, an encoder
    /// restarted): the media time its audio reached, which the container's length does not
    /// tell.
    fn length_after_jumps(&self) -> Option<Ts> {
        None
    }
}

/// Audio that ended at `reached`, short of the `stated` length of the input's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truncation {
    pub reached: Ts,
    pub stated: Ts,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the input ends at {:.1} s of the {:.1} s it states: truncated or damaged",
            self.reached.secs_f64(),
            self.stated.secs_f64()
        )
    }
}

/// Forward jumps in the audio's timestamps up to this long are holes, filled with silence;
/// longer ones, and jumps back, are discontinuities of the timestamps alone (a splice, an
/// encoder restart, a wrap-around): time goes on from where it was (FFmpeg's own tools treat
/// MPEG-TS jumps over 10 s so).
const MAX_HOLE_S: f64 = 10.0;
/// Differences smaller than this between where a frame's timestamp puts it and where the
/// audio so far ends are rounding (containers that count milliseconds), not holes. A lost
/// packet of any common codec is longer (AAC 21 ms, Opus 20 ms, MP3 26 ms).
const HOLE_TOLERANCE_S: f64 = 0.015;
/// Audio that starts this long or less after the stream does is placed there (silence before
/// it); later than that, the timestamps are taken to be wrong.
const MAX_LATE_START_S: f64 = 600.0;

/// The audio's place in media time, for a source: where each decoded frame goes by its
/// timestamp, the gaps before frames that come late, and the media time of the samples
/// emitted (16 kHz, gaps included).
#[derive(Debug, Default)]
pub(crate) struct AudioClock {
    /// Samples at 16 kHz emitted so far, gaps included, and of audio alone.
    out_samples: u64,
    audio_samples: u64,
    /// Where the next decoded frame starts if the audio runs on without a hole: stream seconds
    /// from the stream's start.
    expected_s: Option<f64>,
    /// Added to the timestamps after a discontinuity, so that time goes on.
    shift_s: f64,
    /// Stream time the timestamps jumped forward over (none of it media time), and whether they
    /// jumped back: what a container's stated length counts too.
    jumped_s: f64,
    jumped_back: bool,
    pub(crate) gaps: usize,
    pub(crate) discontinuities: usize,
}

impl AudioClock {
    /// A decoded frame whose timestamp puts it at `pts_s` (seconds from the stream's start; none
    /// when the container gives none) and which lasts `duration_s`: the gap to fill before it,
    /// if it comes late. The source emits what it still holds of the audio before the gap, then
    /// [`Self::fill`]s the gap.
    pub(crate) fn frame(&mut self, pts_s: Option<f64>, duration_s: f64) -> Option<(u64, GapReason)> {
        let first = self.expected_s.is_none();
        let expected = self.expected_s.unwrap_or(0.0);
        let Some(pts) = pts_s.map(|p| p + self.shift_s) else {
            self.expected_s = Some(expected + duration_s);
            return None;
        };
        let late = pts - expected;
        let max = if first { MAX_LATE_START_S } else { MAX_HOLE_S };
        if late > HOLE_TOLERANCE_S && late <= max {
            let samples = (late * SAMPLE_RATE_HZ as f64).round() as u64;
            let reason = if first { GapReason::LateStart } else { GapReason::Hole };
            self.expected_s = Some(pts + duration_s);
            return Some((samples, reason));
        }
        if late.abs() > HOLE_TOLERANCE_S {
            // The timestamps jumped, not the audio (or the first frame is stamped a little
            // before zero, as encoders' priming leaves it): time goes on from where it was.
            self.shift_s += expected - pts;
            if late > 0.0 {
                self.jumped_s += late;
            } else if !first {
                self.jumped_back = true;
            }
            if !first || late > 0.0 {
                self.discontinuities += 1;
                tracing::warn!(at = %self.now(), jump_s = late, "the audio's timestamps jump: time goes on from here");
            }
        }
        self.expected_s = Some(expected + duration_s);
        None
    }

    /// A gap of `samples` from now: time moves on over it.
    pub(crate) fn fill(&mut self, (samples, reason): (u64, GapReason)) -> Gap {
        let gap = Gap { at: self.now(), samples, reason };
        self.out_samples += samples;
        self.gaps += 1;
        gap
    }

    /// The truncation, if the audio so far ends well before `stated`: by more than a second and
    /// 2% of it (containers round their lengths, and encoders pad or trim a frame or two), the
    /// stream time its timestamps jumped over aside. None after a jump back (recordings joined),
    /// where the stated length measures nothing.
    pub(crate) fn short_of(&self, stated: Option<Ts>) -> Option<Truncation> {
        let (stated, reached) = (stated.filter(|_| !self.jumped_back)?, self.now());
        let missing = stated.secs_f64() - self.jumped_s - reached.secs_f64();
        (missing > f64::max(1.0, 0.02 * stated.secs_f64())).then_some(Truncation { reached, stated })
    }

    /// The media time reached, where the timestamps jumped.
    pub(crate) fn length_after_jumps(&self) -> Option<Ts> {
        (self.discontinuities > 0).then(|| self.now())
    }

    /// The media time of the next sample.
    pub(crate) fn now(&self) -> Ts {
        Ts::from_samples(self.out_samples, SAMPLE_RATE_HZ)
    }

    /// `samples` 16 kHz samples emitted as a chunk: its start.
    pub(crate) fn emit(&mut self, samples: &[f32]) -> Ts {
        let at = self.now();
        self.out_samples += samples.len() as u64;
        self.audio_samples += samples.len() as u64;
        at
    }

    /// Samples of audio (not gaps) emitted so far.
    #[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
    pub(crate) fn audio_samples(&self) -> u64 {
        self.audio_samples
    }
}

/// A stream's presentation times go back by the frames reordered (B-frames shown before the
/// frame they are decoded after), never this far.
#[cfg(feature = "ffmpeg")]
const MAX_REORDER_S: f64 = 1.0;

/// The picture's place in media time, as [`AudioClock`] places the audio: where the video's
/// timestamps jump forward by up to [`MAX_HOLE_S`], time passes over the hole; further, or back
/// (recordings joined end to end, an encoder restarted), time goes on from where it was, so that
/// shot changes and stills after the jump stay beside the audio heard with them. It retimes each
/// packet as it is read, in decode order, before anything reads its times.
#[cfg(feature = "ffmpeg")]
#[derive(Debug, Default)]
pub(crate) struct VideoClock {
    /// Added to the timestamps after a discontinuity (ticks of the stream's time base).
    shift: i64,
    /// The last decode time and the latest presentation time seen (shifted).
    last_dts: Option<i64>,
    last_pts: Option<i64>,
    /// A frame's length in ticks, as the packets give it.
    step: i64,
}

#[cfg(feature = "ffmpeg")]
impl VideoClock {
    /// Retimes `packet` (its stream's time base `tb`, in seconds); `true` where the timestamps
    /// jumped before it.
    pub(crate) fn packet(&mut self, packet: &mut ffmpeg_next::Packet, tb: f64) -> bool {
        let shifted = |t: Option<i64>, shift: i64| t.map(|t| t.saturating_add(shift));
        let (dts, pts) = (shifted(packet.dts(), self.shift), shifted(packet.pts(), self.shift));
        let secs = |ticks: i64| ticks as f64 * tb;
        // Decode times only go up (rounding aside); where a container gives presentation times
        // alone, they go back by the frames reordered.
        let (t, last, back) = match (dts, self.last_dts) {
            (Some(t), Some(last)) => (Some(t), Some(last), HOLE_TOLERANCE_S),
            _ => (pts, self.last_pts, MAX_REORDER_S),
        };
        let jumped = t.zip(last).filter(|&(t, last)| {
            secs(t.saturating_sub(last)) < -back || secs(t.saturating_sub(last).saturating_sub(self.step)) > MAX_HOLE_S
        });
        if let Some((t, last)) = jumped {
            tracing::debug!(
                jump_s = secs(t.saturating_sub(last)),
                "the video's timestamps jump: time goes on from here"
            );
            self.shift = self.shift.saturating_add(last.saturating_add(self.step).saturating_sub(t));
        }
        packet.set_dts(shifted(packet.dts(), self.shift));
        packet.set_pts(shifted(packet.pts(), self.shift));
        if let (Some(t), Some(last)) = (packet.dts(), self.last_dts) {
            if t > last {
                self.step = t.saturating_sub(last);
            }
        }
        if packet.duration() > 0 {
            self.step = packet.duration();
        }
        self.last_dts = packet.dts().or(self.last_dts);
        self.last_pts = packet.pts().max(self.last_pts);
        jumped.is_some()
    }
}

/// Extensions Symphonia decodes; everything else goes to FFmpeg.
/// The lowest input sample rate read: no speech is heard below it (telephone audio is 8 kHz),
/// and resampling a header's 1 Hz up to 16 kHz would make hours of samples of a few seconds of
/// bytes.
pub const MIN_SAMPLE_RATE_HZ: u32 = 2_000;

/// Refuses a sample rate no speech can be heard in.
pub(crate) fn check_rate(rate: u32) -> std::result::Result<(), String> {
    match rate {
        r if r < MIN_SAMPLE_RATE_HZ => {
            Err(format!("audio at {r} Hz: too low a sample rate for speech (at least {MIN_SAMPLE_RATE_HZ} Hz)"))
        }
        _ => Ok(()),
    }
}

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
    if !meta.is_file() {
        // A pipe, a device, a socket: it may never end, and a file run keeps its cues to the end.
        return Err(Error::input(
            path,
            "is a pipe or device, not a file: a stream that may not end is read by `subtitle live` (`subtitle live - < it`)",
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    const AAC: f64 = 1024.0 / 48_000.0;

    /// Frames `from..to` of 21.3 ms each, timestamped by `pts(i)`: the gaps the clock fills.
    fn run(clock: &mut AudioClock, frames: std::ops::Range<usize>, pts: impl Fn(usize) -> f64) -> Vec<Gap> {
        frames
            .filter_map(|i| {
                let gap = clock.frame(Some(pts(i)), AAC).map(|g| clock.fill(g));
                clock.emit(&[0.0; 341]);
                gap
            })
            .collect()
    }

    #[test]
    fn continuous_audio_has_no_gap_despite_millisecond_timestamps() {
        let mut c = AudioClock::default();
        assert!(run(&mut c, 0..500, |i| (i as f64 * AAC * 1000.0).round() / 1000.0).is_empty());
        assert_eq!(c.discontinuities, 0);
    }

    #[test]
    fn lost_packets_late_audio_and_jumps_become_gaps_of_their_length() {
        let mut c = AudioClock::default();
        // Audio that starts 2 s into the stream.
        let gaps = run(&mut c, 0..10, |i| 2.0 + i as f64 * AAC);
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].at, gaps[0].samples, gaps[0].reason), (Ts(0), 32_000, GapReason::LateStart));
        // Frames 10-19 lost: a hole of 10 frames, where the 10th would have started.
        let before = c.now();
        let gaps = run(&mut c, 20..30, |i| 2.0 + i as f64 * AAC);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].at, before);
        assert_eq!(gaps[0].duration(), Ts::from_secs_f64(10.0 * AAC));
        // A 3 s jump of the timestamps.
        let gaps = run(&mut c, 30..40, |i| 5.0 + i as f64 * AAC);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].samples, 48_000);
    }

    #[test]
    fn jumps_back_or_far_forward_are_discontinuities_and_time_goes_on() {
        let mut c = AudioClock::default();
        run(&mut c, 0..10, |i| i as f64 * AAC);
        let at = c.now();
        assert!(run(&mut c, 10..20, |i| 100.0 + i as f64 * AAC).is_empty(), "an hour's jump is no hole");
        assert!(run(&mut c, 20..30, |i| i as f64 * AAC - 50.0).is_empty(), "nor a jump back");
        assert_eq!(c.discontinuities, 2);
        assert_eq!(c.now() - at, Ts::from_samples(20 * 341, SAMPLE_RATE_HZ));
        // After the jump, a real hole is still found.
        assert_eq!(run(&mut c, 31..32, |i| i as f64 * AAC - 50.0).len(), 1);
    }

    #[test]
    fn a_stated_length_counts_the_time_jumped_over() {
        let stated = |s: f64| Some(Ts::from_secs_f64(s));
        let mut c = AudioClock::default();
        run(&mut c, 0..100, |i| i as f64 * AAC);
        // 100 s skipped: the container's 102 s are the 2 s heard and the jump.
        run(&mut c, 100..200, |i| 100.0 + i as f64 * AAC);
        assert_eq!(c.short_of(stated(102.2)), None);
        assert!(c.short_of(stated(110.0)).is_some(), "8 s missing still tell a truncation");
        // Back to the start (two recordings joined): the stated length measures nothing.
        run(&mut c, 0..10, |i| i as f64 * AAC);
        assert_eq!(c.short_of(stated(110.0)), None);
    }

    #[cfg(feature = "ffmpeg")]
    #[test]
    fn video_timestamps_go_on_where_they_jump_and_pass_over_holes() {
        use ffmpeg_next::Packet;
        // 25 fps in a 90 kHz time base: a packet of 3600 ticks; `dts` none for a container
        // that gives presentation times alone.
        let tb = 1.0 / 90_000.0;
        let mut clock = VideoClock::default();
        let mut feed = |pts: i64, dts: Option<i64>| {
            let mut p = Packet::empty();
            p.set_pts(Some(pts));
            p.set_dts(dts);
            p.set_duration(3600);
            let jumped = clock.packet(&mut p, tb);
            (p.pts().unwrap(), jumped)
        };
        // Decode order I P B B: presentation times go back by the frames reordered.
        for (i, pts) in [0, 3, 1, 2, 6, 4, 5].into_iter().enumerate() {
            assert_eq!(feed(90_000 + pts * 3600, Some(90_000 + (i as i64 - 1) * 3600)), (90_000 + pts * 3600, false));
        }
        // Starting over (a second recording joined): on from where the first ended.
        assert_eq!(feed(90_000 + 3600, Some(90_000)), (90_000 + 7 * 3600, true));
        assert_eq!(feed(90_000 + 3 * 3600, Some(90_000 + 3600)), (90_000 + 9 * 3600, false));
        // A hole of 3 s is time that passed; a jump of a minute is not.
        assert_eq!(feed(360_000 + 3600, Some(360_000)), (360_000 + 3600 + 6 * 3600, false));
        assert!(feed(6_000_000, Some(6_000_000)).1);
        // Presentation times alone: reordering is no jump, starting over is.
        let mut clock = VideoClock::default();
        let mut feed = |pts: i64| {
            let mut p = Packet::empty();
            p.set_pts(Some(pts));
            clock.packet(&mut p, tb)
        };
        assert!([0, 3, 1, 2, 6, 4, 5].into_iter().all(|f| !feed(90_000 + f * 3600)));
        assert!(feed(0));
    }
}
