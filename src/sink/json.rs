//! JSON: the run's facts, the segments (text, tokens, token probabilities, times) and the cues.

use serde::Serialize;

use crate::cue::Cue;
use crate::segment::Segment;

/// Facts about the run that the JSON output carries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JsonMeta {
    pub input: String,
    pub model: String,
    pub language: Option<String>,
    pub language_probability: Option<f32>,
    pub duration_s: Option<f64>,
    /// Where the picture cuts (shot changes), seconds: what the cues are timed to.
    pub shot_changes: Vec<f64>,
    pub stats: RunStats,
}

/// What a run of one input did, counted: in its JSON output and its summary, for scripts and
/// tests to read (log lines are for people and may change).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct RunStats {
    /// Windows (window after window) or chunks (batched) the model decoded.
    pub windows: usize,
    /// Stills whose on-screen text was read, and pictures the image encoder encoded.
    pub stills_read: usize,
    /// Of the stills read, those without a row of letter-like marks: not given to Tesseract.
    #[serde(default)]
    pub stills_without_text: usize,
    pub pictures: usize,
    /// Stills skipped because the visual stage was behind (live input only).
    pub stills_skipped: u64,
    /// Packets that failed to decode and were skipped.
    pub skipped_packets: u64,
    /// Gaps in the audio filled with silence so that time kept moving (a skipped packet, a
    /// jump in the stream's timestamps, audio that starts late), and their length in seconds.
    pub gaps: usize,
    pub gap_s: f64,
    /// What decoding the video cost (keyframes, groups of pictures and frames decoded, seconds),
    /// when the input has video and a visual stage wanted it.
    pub video: Option<crate::source::VideoStats>,
    /// Batched mode: the chunks of each batch decoded, in order.
    pub batches: Vec<usize>,
    /// Several inputs decoded together (batched mode): the most inputs one decode batch held
    /// while this one ran, and one encode batch (on a GPU, or candle's kernels).
    pub shared_batch_inputs: Option<usize>,
    pub shared_encode_inputs: Option<usize>,
    /// Where the audio ended, when that was well before the length the input states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated_at_s: Option<f64>,
}

#[derive(Serialize)]
struct SegmentOut<'a> {
    start: f64,
    end: f64,
    #[serde(flatten)]
    segment: &'a Segment,
}

#[derive(Serialize)]
struct CueOut<'a> {
    start: f64,
    end: f64,
    text: String,
    lines: &'a [String],
    over_speed: bool,
}

#[derive(Serialize)]
struct Doc<'a> {
    #[serde(flatten)]
    meta: &'a JsonMeta,
    segments: Vec<SegmentOut<'a>>,
    cues: Vec<CueOut<'a>>,
}

pub fn render(segments: &[Segment], cues: &[Cue], meta: &JsonMeta) -> String {
    let doc = Doc {
        meta,
        segments: segments
            .iter()
            .map(|s| SegmentOut { start: s.span.start.secs_f64(), end: s.span.end.secs_f64(), segment: s })
            .collect(),
        cues: cues
            .iter()
            .map(|c| CueOut {
                start: c.span.start.secs_f64(),
                end: c.span.end.secs_f64(),
                text: c.text(),
                lines: &c.lines,
                over_speed: c.over_speed,
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("serialisable");
    s.push('\n');
    s
}
