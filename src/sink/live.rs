//! The outputs of live input, all append-only: nothing once written changes, and each is valid
//! after every append (and so after the process is killed at any moment).
//! - a cue file (SRT or WebVTT): each closed cue appended in one write, flushed and synced;
//! - events (JSON lines): committed words, closed cues, pauses, skipped audio, stats;
//! - HLS (`--hls DIR`): WebVTT segments of a few seconds and a sliding-window playlist, for a
//!   player to add beside the video's own HLS (segments and playlist written whole, renamed in);
//! - a feed of the events for the preview page (`--serve`; its server is the runner's).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::cue::{Cue, Subtitle};
use crate::error::{Error, Result};
use crate::flow::Sink;
use crate::segment::LiveNote;
use crate::sink::{srt, vtt, Format};
use crate::time::Ts;

/// A file (or stdout) that is only ever appended to.
pub struct Appender {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Appender {
    /// `-` is stdout. A file must not exist yet: a live output never overwrites what was there.
    pub fn create(path: &Path) -> Result<Self> {
        if path == Path::new("-") {
            return Ok(Self { path: path.into(), file: None });
        }
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Error::output(path, "already exists (live output is only appended to: remove it or name another)")
            }
            _ => Error::output(path, e),
        })?;
        Ok(Self { path: path.into(), file: Some(file) })
    }

    /// Appends `text` in one write, flushed (and synced, for a file).
    pub fn append(&mut self, text: &str) -> Result<()> {
        let err = |e| Error::output(&self.path, e);
        match &mut self.file {
            Some(f) => f.write_all(text.as_bytes()).and_then(|()| f.sync_data()).map_err(err),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(err)
            }
        }
    }
}

/// The events of one or more streams, for the preview page: the last ones kept for a page
/// that opens late, each new one handed to every page open now.
#[derive(Clone, Default)]
pub struct Feed {
    inner: Arc<Mutex<FeedState>>,
}

#[derive(Default)]
struct FeedState {
    history: VecDeque<String>,
    readers: Vec<crossbeam_channel::Sender<String>>,
}

/// Events a page that opens late is given first.
const FEED_HISTORY: usize = 500;

impl Feed {
    pub fn publish(&self, event: &str) {
        let mut s = self.inner.lock().expect("feed lock");
        s.history.push_back(event.to_string());
        if s.history.len() > FEED_HISTORY {
            s.history.pop_front();
        }
        // A page that stopped reading is let go; one that reads slowly loses events, never
        // holds up the stream.
        s.readers.retain(|r| {
            !matches!(r.try_send(event.to_string()), Err(crossbeam_channel::TrySendError::Disconnected(_)))
        });
    }

    /// What was said so far, and a receiver of what comes next.
    pub fn subscribe(&self) -> (Vec<String>, crossbeam_channel::Receiver<String>) {
        let mut s = self.inner.lock().expect("feed lock");
        let (tx, rx) = crossbeam_channel::bounded(1024);
        s.readers.push(tx);
        (s.history.iter().cloned().collect(), rx)
    }
}

/// HLS subtitles: `subs.m3u8` listing the last segments, each `subs-N.vtt` holding the cues
/// closed while it was the newest (a cue closes a little after it starts: players place cues by
/// their own times, whatever segment brings them).
pub struct Hls {
    dir: PathBuf,
    segment: Ts,
    window: usize,
    /// The stream's first timestamp on the MPEG-TS 90 kHz clock: what media time 0 is.
    mpegts: u64,
    seq: u64,
    seg_start: Ts,
    pending: Vec<Cue>,
    listed: VecDeque<(u64, f64)>,
}

pub const HLS_PLAYLIST: &str = "subs.m3u8";

/// `[hls]` in the pipeline file.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Seconds of stream a segment covers.
    pub segment_s: f64,
    /// Segments the playlist lists (a sliding window).
    pub window: usize,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self { segment_s: 4.0, window: 8 }
    }
}

impl HlsConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(1.0..=60.0).contains(&self.segment_s) {
            return Err("hls.segment_s must be between 1 and 60".into());
        }
        if !(1..=1000).contains(&self.window) {
            return Err("hls.window must be between 1 and 1000".into());
        }
        Ok(())
    }
}

impl Hls {
    /// `origin_s`: the input's first timestamp (seconds), so that the cues line up with the
    /// video's own segments.
    pub fn create(dir: &Path, segment: Ts, window: usize, origin_s: f64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::output(dir, e))?;
        if dir.join(HLS_PLAYLIST).exists() {
            return Err(Error::output(
                dir,
                format!("already holds {HLS_PLAYLIST} (remove it or name another directory)"),
            ));
        }
        let mpegts = ((origin_s.max(0.0) * 90_000.0).round() as u64) % (1 << 33);
        Ok(Self {
            dir: dir.into(),
            segment,
            window,
            mpegts,
            seq: 0,
            seg_start: Ts::ZERO,
            pending: vec![],
            listed: VecDeque::new(),
        })
    }

    fn name(seq: u64) -> String {
        format!("subs-{seq:06}.vtt")
    }

    /// Writes the segments that end at or before `now`.
    fn advance(&mut self, now: Ts) -> Result<()> {
        while now >= self.seg_start + self.segment {
            self.write_segment(self.seg_start + self.segment, false)?;
        }
        Ok(())
    }

    fn write_segment(&mut self, end: Ts, last: bool) -> Result<()> {
        let mut text = format!("{}X-TIMESTAMP-MAP=MPEGTS:{},LOCAL:00:00:00.000\n", vtt::HEADER, self.mpegts);
        text.extend(self.pending.drain(..).map(|c| vtt::block(&c)));
        crate::atomic::write_atomic(&self.dir.join(Self::name(self.seq)), text.as_bytes())?;
        self.listed.push_back((self.seq, (end - self.seg_start).secs_f64()));
        self.seq += 1;
        self.seg_start = end;
        while self.listed.len() > self.window {
            let (old, _) = self.listed.pop_front().expect("non-empty");
            // Players may still fetch a segment that just left the list: it goes a while later.
            if let Some(gone) = old.checked_sub(self.window as u64) {
                let _ = std::fs::remove_file(self.dir.join(Self::name(gone)));
            }
        }
        let target = self.listed.iter().map(|l| l.1.ceil() as u64).max().unwrap_or(1).max(1);
        let first = self.listed.front().map_or(0, |l| l.0);
        let mut m =
            format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
        for (seq, d) in &self.listed {
            m.push_str(&format!("#EXTINF:{d:.3},\n{}\n", Self::name(*seq)));
        }
        if last {
            m.push_str("#EXT-X-ENDLIST\n");
        }
        crate::atomic::write_atomic(&self.dir.join(HLS_PLAYLIST), m.as_bytes())
    }
}

/// Where a live stream's outputs go.
#[derive(Default)]
pub struct LiveOutputs {
    /// Cue file and its format (SRT or WebVTT).
    pub cues: Option<(Appender, Format)>,
    /// Events; several streams may share one file (each event names its stream).
    pub events: Option<Arc<Mutex<Appender>>>,
    pub hls: Option<Hls>,
    pub feed: Option<Feed>,
}

/// The sink of a live stream: every item goes out at once to every output.
pub struct LiveSink {
    /// The stream's name in events (several streams share a feed).
    stream: String,
    out: LiveOutputs,
    cues: usize,
    now: Ts,
}

impl LiveSink {
    pub fn new(stream: String, out: LiveOutputs) -> Self {
        Self { stream, out, cues: 0, now: Ts::ZERO }
    }

    pub fn cue_count(&self) -> usize {
        self.cues
    }

    fn event(&mut self, mut e: serde_json::Value) -> Result<()> {
        e["stream"] = json!(self.stream);
        let line = format!("{e}\n");
        if let Some(ev) = &self.out.events {
            ev.lock().expect("events lock").append(&line)?;
        }
        if let Some(feed) = &self.out.feed {
            feed.publish(line.trim_end());
        }
        Ok(())
    }

    /// The end of the stream: the last HLS segment, and the playlist closed.
    pub fn close(mut self) -> Result<()> {
        self.event(json!({"type": "end", "at": self.now.secs_f64(), "cues": self.cues}))?;
        if let Some(hls) = &mut self.out.hls {
            let end = self.now.max(hls.seg_start + Ts(1));
            hls.write_segment(end, true)?;
        }
        Ok(())
    }
}

impl Sink for LiveSink {
    type In = Subtitle;

    fn write(&mut self, item: Subtitle) -> Result<()> {
        let secs = |t: Ts| t.secs_f64();
        match item {
            Subtitle::Segment(seg) => {
                let words: Vec<_> = seg
                    .words
                    .iter()
                    .map(|w| json!({"text": w.text, "start": secs(w.span.start), "end": secs(w.span.end)}))
                    .collect();
                self.now = self.now.max(seg.span.end);
                self.event(json!({"type": "words", "words": words}))?;
            }
            Subtitle::Cue(cue) => {
                self.cues += 1;
                self.now = self.now.max(cue.span.start);
                let n = self.cues;
                if let Some((file, format)) = &mut self.out.cues {
                    let block = match format {
                        Format::Vtt => vtt::block(&cue),
                        _ => format!("{}\n", srt::block(n, &cue)),
                    };
                    file.append(&block)?;
                }
                self.event(json!({
                    "type": "cue", "index": n, "start": secs(cue.span.start), "end": secs(cue.span.end), "text": cue.text()
                }))?;
                if let Some(hls) = &mut self.out.hls {
                    hls.pending.push(cue);
                }
            }
            Subtitle::ShotChange(at) => self.event(json!({"type": "shot", "at": secs(at)}))?,
            Subtitle::Live(LiveNote::Pause(at)) => {
                self.now = self.now.max(at);
                self.event(json!({"type": "pause", "at": secs(at)}))?;
            }
            Subtitle::Live(LiveNote::Skipped(span)) => {
                self.now = self.now.max(span.end);
                self.event(
                    json!({"type": "gap", "start": secs(span.start), "end": secs(span.end), "reason": "overload"}),
                )?;
            }
            Subtitle::Live(LiveNote::Partial(words)) => {
                let text: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
                let start = words.first().map_or(self.now, |w| w.span.start);
                self.event(json!({"type": "partial", "start": secs(start), "text": text.join(" ")}))?;
            }
            Subtitle::Live(LiveNote::Gap(span)) => {
                self.event(
                    json!({"type": "gap", "start": secs(span.start), "end": secs(span.end), "reason": "input"}),
                )?;
            }
            Subtitle::Live(LiveNote::Status(s)) => {
                self.now = self.now.max(Ts::from_secs_f64(s.at));
                let mut e = serde_json::to_value(&s).expect("plain numbers");
                e["type"] = json!("stats");
                self.event(e)?;
            }
        }
        if let Some(hls) = &mut self.out.hls {
            hls.advance(self.now)?;
        }
        Ok(())
    }
}

/// Starts a cue file at `path` in `format` (its header written at once).
pub fn cue_file(path: &Path, format: Format) -> Result<(Appender, Format)> {
    if format == Format::Json {
        return Err(Error::output(path, "live cues are written as .srt or .vtt (use --events for JSON)"));
    }
    let mut a = Appender::create(path)?;
    if format == Format::Vtt {
        a.append(vtt::HEADER)?;
    }
    Ok((a, format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Span;

    fn cue(start: i64, end: i64, text: &str) -> Cue {
        Cue { span: Span::new(Ts(start), Ts(end)), lines: vec![text.into()], over_speed: false }
    }

    /// The `live_events` fuzz target's finding: a word of a newline and control characters
    /// ("\n\u{14}z\0") went into a live cue as it was, and its blank line ended the SRT block
    /// early: the appended file no longer parsed.
    #[test]
    fn fuzz_live_events_control_characters_in_words_keep_the_srt_readable() {
        use crate::cue::live::LiveCueStage;
        use crate::cue::Profile;
        use crate::flow::Stage;
        use crate::segment::{Segment, Transcript, Word};
        let word =
            |text: &str, start, end| Word { span: Span::new(Ts(start), Ts(end)), text: text.into(), probability: 1.0 };
        let words = vec![
            word("\n\u{14}z\0\0\0", 256, 1000),
            word("\n", 1000, 1200),
            word("#\r\nok", 1300, 1800),
            word("--->", 1900, 2000),
        ];
        let mut stage = LiveCueStage::new(Profile::netflix_en(), 25.0, false);
        let mut out = Vec::new();
        stage.process(Transcript::Segment(Segment::of_words(words)), &mut out).unwrap();
        stage.finish(&mut out).unwrap();
        let all: Vec<Cue> =
            out.into_iter().filter_map(|s| if let Subtitle::Cue(c) = s { Some(c) } else { None }).collect();
        let text: String = all.iter().enumerate().map(|(i, c)| format!("{}\n", srt::block(i + 1, c))).collect();
        let parsed = crate::check::parse(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(parsed.len(), all.len(), "{text:?}");
        assert_eq!(parsed.iter().flat_map(|c| c.lines.clone()).collect::<Vec<_>>().join(" "), "z # ok ->", "{text:?}");
    }

    #[test]
    fn the_cue_file_is_valid_after_every_append_and_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        for format in [Format::Srt, Format::Vtt] {
            let path = dir.path().join(format!("live.{}", format.extension()));
            let mut sink = LiveSink::new(
                "s".into(),
                LiveOutputs { cues: Some(cue_file(&path, format).unwrap()), ..Default::default() },
            );
            let mut before = std::fs::read_to_string(&path).unwrap();
            for i in 0..5 {
                sink.write(Subtitle::Cue(cue(i * 2000, i * 2000 + 1500, &format!("cue {i}")))).unwrap();
                let now = std::fs::read_to_string(&path).unwrap();
                assert!(now.starts_with(&before), "appended only");
                let n = match format {
                    Format::Srt => srtlib::Subtitles::parse_from_str(now.clone()).unwrap().len(),
                    _ => crate::check::parse_vtt(&now).unwrap().len(),
                };
                assert_eq!(n, i as usize + 1, "{now}");
                before = now;
            }
            let e = cue_file(&path, format).err().unwrap().to_string();
            assert!(e.contains("already exists"), "{e}");
        }
    }

    #[test]
    fn hls_segments_slide_and_the_playlist_ends_with_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let hls = Hls::create(dir.path(), Ts(6000), 3, 10.0).unwrap();
        let mut sink = LiveSink::new("s".into(), LiveOutputs { hls: Some(hls), ..Default::default() });
        for i in 0..12 {
            sink.write(Subtitle::Cue(cue(i * 3000, i * 3000 + 2000, &format!("cue {i}")))).unwrap();
        }
        let playlist = std::fs::read_to_string(dir.path().join(HLS_PLAYLIST)).unwrap();
        assert_eq!(playlist.matches("#EXTINF").count(), 3, "{playlist}");
        assert!(!playlist.contains("ENDLIST"));
        sink.close().unwrap();
        let playlist = std::fs::read_to_string(dir.path().join(HLS_PLAYLIST)).unwrap();
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
        let first = std::fs::read_to_string(dir.path().join("subs-000003.vtt")).unwrap();
        assert!(first.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n"), "{first}");
    }
}
