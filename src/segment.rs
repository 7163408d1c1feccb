//! What the model stage hands on: timed text with the tokens behind it.

use serde::Serialize;

use crate::time::Span;

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
}
