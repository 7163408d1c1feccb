//! Sinks: SRT, WebVTT, JSON, and live input's append-only outputs (`live`). A file's sink keeps what it is given and writes it in one go on commit: to
//! a temporary file beside the target, renamed over it only when complete, so a failed run
//! leaves no partial file and never touches what the user already had.

mod json;
pub mod live;
mod srt;
mod vtt;

use std::io::Write;
use std::path::Path;

use crate::atomic::AtomicFile;
use crate::cue::{Cue, Subtitle};
use crate::error::{Error, Result};
use crate::flow::Sink;
use crate::segment::Segment;

pub use json::{JsonMeta, RunStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Srt,
    Vtt,
    Json,
}

impl Format {
    /// From an output file's extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "srt" => Some(Format::Srt),
            "vtt" => Some(Format::Vtt),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Json => "json",
        }
    }
}

/// Where output goes. A file target holds its temporary file from the start, so an unwritable
/// destination fails before any work; dropping an uncommitted target removes it.
pub enum Target {
    Stdout,
    File(AtomicFile),
    /// A path that is not a file (a pipe, `/dev/stdout`, a terminal): written into at the end,
    /// never replaced.
    Stream(std::fs::File, std::path::PathBuf),
}

impl Target {
    /// `-` is stdout.
    pub fn prepare(path: &Path) -> Result<Target> {
        if path == Path::new("-") {
            return Ok(Target::Stdout);
        }
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() && !m.is_dir() => {
                // Opened now, so an unwritable one fails before any work (a pipe's reader may
                // open it later: this waits for it, as a shell's redirection would).
                let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::output(path, e))?;
                Ok(Target::Stream(f, path.to_path_buf()))
            }
            _ => Ok(Target::File(AtomicFile::create(path)?)),
        }
    }

    /// Writes `bytes` whole and puts them in place.
    pub fn commit(self, bytes: &[u8]) -> Result<()> {
        match self {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush()).map_err(|e| Error::output("-", e))
            }
            Target::File(mut f) => {
                f.write_all(bytes)?;
                f.commit()
            }
            Target::Stream(mut f, path) => {
                f.write_all(bytes).and_then(|()| f.flush()).map_err(|e| Error::output(path, e))
            }
        }
    }
}

/// Collects segments and cues; renders and writes them on `commit`.
pub struct SubtitleSink {
    format: Format,
    target: Target,
    segments: Vec<Segment>,
    shot_changes: Vec<crate::time::Ts>,
    cues: Vec<Cue>,
}

impl SubtitleSink {
    pub fn new(format: Format, target: Target) -> Self {
        Self { format, target, segments: Vec::new(), shot_changes: Vec::new(), cues: Vec::new() }
    }

    pub fn cue_count(&self) -> usize {
        self.cues.len()
    }

    pub fn commit(self, meta: &JsonMeta) -> Result<()> {
        let meta = JsonMeta { shot_changes: self.shot_changes.iter().map(|t| t.secs_f64()).collect(), ..meta.clone() };
        let text = render(self.format, &self.segments, &self.cues, &meta);
        self.target.commit(text.as_bytes())
    }
}

impl Sink for SubtitleSink {
    type In = Subtitle;
    fn write(&mut self, item: Subtitle) -> Result<()> {
        match item {
            // Only JSON writes segments: SRT and WebVTT keep none (10 hours of speech would
            // hold some 90,000 words' tokens and probabilities until the end).
            Subtitle::Segment(s) if self.format == Format::Json => self.segments.push(s),
            Subtitle::Segment(_) => {}
            Subtitle::ShotChange(at) => self.shot_changes.push(at),
            Subtitle::Cue(c) => self.cues.push(c),
            Subtitle::Live(_) => {}
        }
        Ok(())
    }
}

pub fn render(format: Format, segments: &[Segment], cues: &[Cue], meta: &JsonMeta) -> String {
    match format {
        Format::Srt => srt::render(cues),
        Format::Vtt => vtt::render(cues),
        Format::Json => json::render(segments, cues, meta),
    }
}
