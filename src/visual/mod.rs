//! The visual stage, fed by the stills the preprocess stage passes on (pictures that settled and
//! are new): on-screen text ([`ocr`]) and the image encoder's tokens for the fusion memory
//! (`model::dinov2`, only with an adapter). It runs on its own thread behind a channel that drops
//! stills rather than wait, so the audio path never waits for it; what it finds reaches the
//! model stage as [`ScreenText`].

pub mod ocr;
pub mod text_like;

use std::path::PathBuf;
use std::time::Duration;

use candle_core::Tensor;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::flow::Stage;
use crate::model::dinov2::ImageEncoder;
use crate::source::Still;
use crate::time::Ts;
use ocr::OcrReader;

/// What the visual stage reports for one still.
#[derive(Debug, Clone)]
pub struct ScreenText {
    pub at: Ts,
    /// The lines of text on screen from `at` on; `None` when they are the same as before (the
    /// stage only says it has looked up to `at`).
    pub lines: Option<Vec<String>>,
    /// The image encoder's tokens for the picture from `at` on, (TOKENS_PER_IMAGE, DIM).
    pub picture: Option<Tensor>,
}

/// On-screen text and picture tokens for each still that comes with a frame.
pub struct VisualStage {
    ocr: Option<OcrReader>,
    images: Option<ImageEncoder>,
    input: PathBuf,
    /// Pictures encoded, and the time spent encoding them.
    pub pictures: usize,
    pub picture_busy: Duration,
}

impl VisualStage {
    pub fn new(ocr: Option<OcrReader>, images: Option<ImageEncoder>, input: PathBuf) -> Self {
        Self { ocr, images, input, pictures: 0, picture_busy: Duration::ZERO }
    }

    /// Stills read for text, those of them without a row of letters (not given to Tesseract),
    /// and the time spent reading them.
    pub fn text_read(&self) -> (usize, usize, Duration) {
        self.ocr.as_ref().map_or((0, 0, Duration::ZERO), |o| (o.read, o.passed_over, o.busy))
    }
}

impl Stage for VisualStage {
    type In = Still;
    type Out = ScreenText;
    const NAME: &'static str = "visual";

    fn process(&mut self, still: Still, out: &mut Vec<ScreenText>) -> Result<()> {
        let mut text = ScreenText { at: still.at, lines: None, picture: None };
        if let Some(frame) = &still.frame {
            if let Some(ocr) = &mut self.ocr {
                text.lines = ocr.read_changed(frame)?;
            }
            if let Some(images) = &self.images {
                let t0 = std::time::Instant::now();
                let tokens = images.embed(&frame.rgb, frame.width as usize, frame.height as usize).map_err(|e| {
                    Error::Decode { path: self.input.clone(), at: frame.at, reason: format!("image encoder: {e}") }
                })?;
                self.pictures += 1;
                self.picture_busy += t0.elapsed();
                text.picture = Some(tokens);
            }
        }
        out.push(text);
        Ok(())
    }
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
    /// A still Tesseract has not read in this long (a busy picture that looked like text) is
    /// left without text (2000 where a pipeline file leaves it out).
    #[serde(default = "still_deadline_ms")]
    pub still_deadline_ms: u32,
}

fn still_deadline_ms() -> u32 {
    OcrConfig::default().still_deadline_ms
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            language: "eng".into(),
            min_word_confidence: 60.0,
            min_line_letters: 3,
            still_deadline_ms: 2000,
        }
    }
}
