//! Live inputs for `subtitle live`: stdin (`-`), a URL FFmpeg opens (udp://, srt://, rtmp://,
//! rtsp://, http(s)://...m3u8), a capture device (`--input-format alsa hw:0`), or a file read at
//! its own pace (`--realtime`: as `ffmpeg -re`, for demos and tests).
//!
//! Time goes on whatever the input does: a network input that drops or stalls (no packet for
//! `stall` seconds) is opened again, and the time it was away becomes a gap of that length, so
//! later words keep their place on the stream's clock. A listener (udp://, rtp://, `listen=1`,
//! `mode=listener`, `rtsp_flags=listen`) takes its port again at once and holds it until a
//! sender comes back, so that none of a returning sender's first packets fall on a closed port;
//! an input that calls out is tried again with growing waits. Stopping (Ctrl-C) ends the input as
//! an end of stream would: what was heard is flushed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::source::ffmpeg::{FfmpegSource, Opening};
use crate::source::{Gap, GapReason, Media, MediaSource, VideoSampling, VideoStats, SAMPLE_RATE_HZ};
use crate::time::Ts;

/// What `subtitle live` was asked to read.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    /// `-`, a URL, a device, or a file path.
    pub input: String,
    /// The demuxer, when FFmpeg cannot guess it (capture devices).
    pub format: Option<String>,
    /// Demuxer and protocol options (`listen=1`, `timeout=...`).
    pub options: Vec<(String, String)>,
    /// A file is read at its own pace.
    pub realtime: bool,
    /// No packet for this long is a dropped network input.
    pub stall: Duration,
}

impl LiveSpec {
    /// Whether the input waits for a sender on a local port rather than calling out: its port
    /// is held from one sender to the next.
    fn listens(&self) -> bool {
        let input = self.input.to_ascii_lowercase();
        let Some((scheme, rest)) = input.split_once("://") else { return false };
        let query = rest.split_once('?').map_or("", |(_, q)| q);
        let options = self.options.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()));
        let in_url = query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string()));
        matches!(scheme, "udp" | "rtp")
            || options.chain(in_url).any(|(k, v)| {
                (k == "listen" && v != "0")
                    || (k == "mode" && v == "listener")
                    || (k == "rtsp_flags" && v.contains("listen"))
            })
    }
}

/// The longest wait between two attempts to open a dropped input again.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Stdin,
    /// A URL or device: opened again when it drops.
    Network,
    File,
}

pub struct LiveSource {
    spec: LiveSpec,
    name: PathBuf,
    kind: Kind,
    sampling: VideoSampling,
    inner: Option<FfmpegSource>,
    stop: Arc<AtomicBool>,
    /// When the current read started (ms since `epoch`), for the stall check.
    reading_since: Arc<AtomicU64>,
    epoch: Instant,
    /// Media time the current connection's time zero sits at, and the media time reached.
    offset: Ts,
    reached: Ts,
    /// Since when the input has been away, and the wait before the next attempt.
    lost: Option<(Instant, Duration, Instant)>,
    /// When the input last gave media (what it is away since when it drops).
    last_media: Instant,
    reconnects: u64,
    started: Option<Instant>,
    origin_s: Option<f64>,
    skipped: u64,
}

impl LiveSource {
    /// Opens `spec` now (so that a bad input fails before the model loads). `stop` ends the input.
    pub fn open(spec: LiveSpec, sampling: &VideoSampling, stop: Arc<AtomicBool>) -> Result<Self> {
        let kind = match spec.input.as_str() {
            "-" => Kind::Stdin,
            s if spec.format.is_none() && !s.contains("://") => Kind::File,
            _ => Kind::Network,
        };
        let name = PathBuf::from(&spec.input);
        if kind == Kind::File && !name.exists() {
            return Err(Error::input(
                &name,
                "no such file (a stream is a URL: udp://, srt://, rtmp://, ...; stdin is -)",
            ));
        }
        let mut s = Self {
            spec,
            name,
            kind,
            sampling: sampling.clone(),
            inner: None,
            stop,
            reading_since: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
            offset: Ts::ZERO,
            reached: Ts::ZERO,
            lost: None,
            last_media: Instant::now(),
            reconnects: 0,
            started: None,
            origin_s: None,
            skipped: 0,
        };
        let inner = s.connect(true)?;
        s.origin_s = inner.origin_s();
        s.inner = Some(inner);
        Ok(s)
    }

    /// The input's first timestamp (seconds): HLS maps media time zero to it.
    pub fn origin_s(&self) -> Option<f64> {
        self.origin_s
    }

    /// Times the input was opened again after it dropped.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Opens the input. A `patient` opening waits for its sender as long as it takes (the first
    /// one, as FFmpeg does, and a listener's); others give up after `stall` and are tried again.
    fn connect(&self, patient: bool) -> Result<FfmpegSource> {
        self.reading_since.store(self.now_ms(), Ordering::SeqCst);
        if self.kind == Kind::File {
            return FfmpegSource::open(&self.name, &self.sampling);
        }
        let (stop, since, epoch) = (Arc::clone(&self.stop), Arc::clone(&self.reading_since), self.epoch);
        let stall = match self.kind {
            Kind::Network => self.spec.stall.as_millis() as u64,
            _ => u64::MAX,
        };
        // While a patient opening waits for its sender, no stall.
        let waiting = Arc::new(AtomicBool::new(patient));
        let patient = Arc::clone(&waiting);
        let interrupt = move || {
            let waited = (epoch.elapsed().as_millis() as u64).saturating_sub(since.load(Ordering::SeqCst));
            stop.load(Ordering::SeqCst) || (waited > stall && !patient.load(Ordering::SeqCst))
        };
        let url = if self.kind == Kind::Stdin { "pipe:0".to_string() } else { self.spec.input.clone() };
        let opening = Opening {
            url,
            format: self.spec.format.clone(),
            options: self.spec.options.clone(),
            interrupt: Some(Box::new(interrupt)),
        };
        let source = FfmpegSource::open_with(&self.name, opening, &self.sampling);
        waiting.store(false, Ordering::SeqCst);
        source
    }

    /// The connection dropped (`why`): from now on, attempts to open it again.
    fn drop_connection(&mut self, why: &str) {
        tracing::warn!(input = %self.name.display(), at = %self.reached, "the input stopped ({why}); waiting for it to come back");
        self.inner = None;
        let now = Instant::now();
        self.lost = Some((self.last_media, Duration::from_millis(250), now));
    }

    /// One attempt to open a dropped input again, once its wait is over.
    fn reconnect(&mut self, out: &mut Vec<Media>) {
        let Some((since, wait, next)) = self.lost else { return };
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            return;
        }
        match self.connect(self.spec.listens()) {
            Ok(inner) => {
                // The time away is a gap; the new connection's time zero comes after it.
                let away = Ts::from_secs_f64(since.elapsed().as_secs_f64());
                let samples = (away.secs_f64() * SAMPLE_RATE_HZ as f64).round() as u64;
                out.push(Media::Gap(Gap { at: self.reached, samples, reason: GapReason::Hole }));
                self.reached = self.reached + away;
                self.offset = self.reached;
                self.inner = Some(inner);
                self.lost = None;
                self.reconnects += 1;
                tracing::warn!(input = %self.name.display(), away = %away, "the input is back");
            }
            Err(e) => {
                tracing::debug!("opening {} again failed: {e}", self.name.display());
                let wait = (wait * 2).min(MAX_BACKOFF);
                self.lost = Some((since, wait, Instant::now() + wait));
            }
        }
    }

    /// Moves items of the current connection onto the stream's clock.
    fn place(&mut self, items: &mut [Media]) {
        for m in items {
            match m {
                Media::Audio(a) => {
                    a.start = a.start + self.offset;
                    self.reached = self.reached.max(a.start + Ts::from_samples(a.samples.len() as u64, SAMPLE_RATE_HZ));
                }
                Media::Gap(g) => {
                    g.at = g.at + self.offset;
                    self.reached = self.reached.max(g.at + g.duration());
                }
                Media::Video(f) => f.at = f.at + self.offset,
                Media::Still(s) => {
                    s.at = s.at + self.offset;
                    if let Some(f) = &mut s.frame {
                        f.at = f.at + self.offset;
                    }
                }
            }
        }
    }

    /// With `--realtime`, waits until the media time reached is due on the wall clock.
    fn pace(&mut self) {
        if !self.spec.realtime {
            return;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        loop {
            let due = Duration::from_millis(self.reached.ms().max(0) as u64);
            let elapsed = started.elapsed();
            if elapsed + Duration::from_millis(20) >= due || self.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep((due - elapsed).min(Duration::from_millis(50)));
        }
    }
}

impl MediaSource for LiveSource {
    fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool> {
        if self.stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(inner) = self.inner.as_mut() else {
            self.reconnect(out);
            return Ok(true);
        };
        self.reading_since.store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        let from = out.len();
        let result = inner.pull(out);
        self.skipped = self.skipped.max(inner.skipped_packets());
        if out.len() > from {
            self.last_media = Instant::now();
        }
        self.place(&mut out[from..]);
        let stopped = self.stop.load(Ordering::SeqCst);
        match result {
            Ok(true) => {
                self.pace();
                Ok(true)
            }
            Ok(false) | Err(_) if stopped => Ok(false),
            Ok(false) if self.kind == Kind::Network => {
                self.drop_connection("the sender ended the stream");
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) if self.kind == Kind::Network => {
                // FFmpeg's reason is a file's ("damaged or truncated"): on a network input it
                // means the sender stopped or the link failed, which is what the user is told.
                tracing::debug!("reading {} failed: {e}", self.name.display());
                self.drop_connection("the sender stopped or the connection failed");
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    fn duration(&self) -> Option<Ts> {
        None
    }

    fn skipped_packets(&self) -> u64 {
        self.skipped
    }

    fn video_stats(&self) -> Option<VideoStats> {
        self.inner.as_ref().and_then(|i| i.video_stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(input: &str, options: &[(&str, &str)]) -> LiveSpec {
        LiveSpec {
            input: input.into(),
            format: None,
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            realtime: false,
            stall: Duration::from_secs(1),
        }
    }

    #[test]
    fn listeners_are_told_from_inputs_that_call_out() {
        for (input, options) in [
            ("udp://127.0.0.1:5000", &[][..]),
            ("rtp://0.0.0.0:5004", &[]),
            ("srt://0.0.0.0:9000?mode=listener", &[]),
            ("SRT://0.0.0.0:9000?latency=200&MODE=Listener", &[]),
            ("srt://0.0.0.0:9000", &[("mode", "listener")]),
            ("rtmp://0.0.0.0:1935/live/key", &[("listen", "1")]),
            ("tcp://0.0.0.0:9000?listen=1", &[]),
            ("rtsp://0.0.0.0:8554/live", &[("rtsp_flags", "listen")]),
        ] {
            assert!(spec(input, options).listens(), "{input} {options:?}");
        }
        for (input, options) in [
            ("srt://example.org:9000", &[][..]),
            ("srt://example.org:9000?mode=caller", &[]),
            ("rtmp://example.org/live/key", &[]),
            ("rtmp://example.org/live/key", &[("listen", "0")]),
            ("https://example.org/live.m3u8", &[]),
            ("rtsp://camera/stream", &[]),
            ("-", &[]),
            ("hw:0", &[]),
        ] {
            assert!(!spec(input, options).listens(), "{input} {options:?}");
        }
    }
}
