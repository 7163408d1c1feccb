//! What the model stage hands on: timed text with the tokens behind it.

use serde::ser::SerializeStruct;
use serde::Serialize;

use crate::time::{Span, Ts};

/// What the model stage hands on: segments, and the shot changes it passes through from the
/// frames so the cue builder can time cues to the picture.
#[derive(Debug, Clone)]
pub enum Transcript {
    Segment(Segment),
    ShotChange(Ts),
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
