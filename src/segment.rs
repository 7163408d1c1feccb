//! What the model stage hands on: timed text with the tokens behind it.

use serde::ser::SerializeStruct;
use serde::Serialize;

use crate::time::{Span, Ts};

/// What the model stage hands on: segments, the shot changes it passes through from the frames
/// so the cue builder can time cues to the picture, and on live input what the stream's
/// consumers need to know besides the words.
#[derive(Debug, Clone)]
pub enum Transcript {
    Segment(Segment),
    ShotChange(Ts),
    Live(LiveNote),
}

/// What the streaming model stage says besides its committed words.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveNote {
    /// Speech paused here: every word before it is out (a live cue closes).
    Pause(Ts),
    /// This stretch of the stream was not transcribed: the model fell behind and skipped it.
    Skipped(Span),
    /// The input had a hole here (a dropped connection, lost packets), heard as silence.
    Gap(Span),
    /// What the last pass heard after the committed words: tentative, replaced by the next
    /// partial, never part of a cue.
    Partial(Vec<Word>),
    /// How the model stage keeps up, now and then.
    Status(StreamStatus),
}

/// The streaming model stage's running figures (`--events` stats).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStatus {
    /// Stream time reached (s).
    pub at: f64,
    /// Decoding passes so far, and the mean wall time of the last ones (s).
    pub passes: u64,
    pub pass_s: f64,
    /// Wall time spent decoding over stream time heard, since the last status.
    pub rtf: f64,
    /// From a word's end to its commit, in stream time plus the pass's own time: mean and
    /// greatest since the last status (s).
    pub latency_s: f64,
    pub latency_max_s: f64,
    /// Audio skipped because the model fell behind, in all (s).
    pub skipped_s: f64,
    /// How far decoding is cut down to keep up (0: not at all).
    pub degraded: u8,
    pub words: u64,
}

/// One spoken word, timed from the decoder's attention (`infer::align`).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub span: Span,
    /// The word with its punctuation, without surrounding spaces.
    pub text: String,
    /// Mean probability of its tokens.
    pub probability: f32,
}

impl Serialize for Word {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Word", 4)?;
        st.serialize_field("word", &self.text)?;
        st.serialize_field("start", &self.span.start.secs_f64())?;
        st.serialize_field("end", &self.span.end.secs_f64())?;
        st.serialize_field("probability", &self.probability)?;
        st.end()
    }
}

/// One decoded segment (Whisper's timestamp pair and the text between).
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    #[serde(skip)]
    pub span: Span,
    pub text: String,
    /// Text and timestamp tokens.
    pub tokens: Vec<u32>,
    /// Probability of each token in `tokens`.
    pub probabilities: Vec<f32>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
    pub compression_ratio: f32,
    /// The words of `text` with their times; empty when the model has no alignment heads.
    pub words: Vec<Word>,
}

impl Segment {
    /// A segment of `words` alone (as a test or a fuzz target makes one): its span from the first
    /// word's start to the last one's end, its text the words with a space before each, sure of
    /// every token.
    pub fn of_words(words: Vec<Word>) -> Self {
        let span = match (words.first(), words.last()) {
            (Some(a), Some(b)) => Span::new(a.span.start, b.span.end.max(a.span.start)),
            _ => Span::new(Ts(0), Ts(0)),
        };
        Segment {
            span,
            text: words.iter().map(|w| format!(" {}", w.text)).collect(),
            tokens: Vec::new(),
            probabilities: Vec::new(),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
            words,
        }
    }
}
