//! The visual stages, fed by the stills the preprocess stage passes on: on-screen text ([`ocr`]).
//! They run on their own threads behind a channel that drops stills rather than wait, so the
//! audio path never waits for them; what they find reaches the model stage as
//! [`Features::Screen`](crate::preprocess::Features::Screen).

pub mod ocr;

use serde::Deserialize;

use crate::time::Ts;

/// What the on-screen-text stage reports for one still.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenText {
    pub at: Ts,
    /// The lines of text on screen from `at` on; `None` when they are the same as before (the
    /// stage only says it has looked up to `at`).
    pub lines: Option<Vec<String>>,
}

/// `[ocr]` in the pipeline TOML.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OcrConfig {
    /// Read on-screen text in video input (`--ocr on|off` overrides it).
    pub enabled: bool,
    /// Tesseract language(s), e.g. "eng" or "eng+deu".
    pub language: String,
    /// Words Tesseract is less sure of than this (0 to 100) are dropped.
    pub min_word_confidence: f32,
    /// Lines with fewer letters than this are dropped (page numbers, bullets, logos).
    pub min_line_letters: usize,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self { enabled: true, language: "eng".into(), min_word_confidence: 60.0, min_line_letters: 3 }
    }
}
