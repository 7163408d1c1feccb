//! Inference: the model stages and the decoding loop they drive. Two stages over one input's
//! shared state ([`input`]): [`sequential`] (30 s windows, each after the text before it) and
//! [`batched`] (chunks of speech decoded together). Both reach the model only through
//! [`transcriber::Transcriber`].

pub mod align;
pub mod batched;
mod commit;
pub mod decode;
mod filters;
mod hypothesis;
pub(crate) mod input;
#[cfg(test)]
mod scripted;
mod segments;
pub mod sequential;
pub mod shared;
pub mod streaming;
pub mod transcriber;

pub use batched::BatchedStage;
pub use commit::StreamConfig;
pub use decode::{DecodeOptions, Task};
pub use sequential::SequentialStage;
pub use streaming::StreamingStage;
pub use transcriber::{DecodeRequest, LoadingTranscriber, ModelTranscriber, Transcriber};

use crate::preprocess::vad::VadConfig;
use crate::preprocess::Features;
use crate::time::Ts;
use crate::visual::ScreenText;

/// What a model stage takes in: the preprocess stage's features, and the visual stage's text on
/// screen (then its end).
#[derive(Debug, Clone)]
pub enum ModelInput {
    Features(Features),
    Screen(ScreenText),
    /// The visual stage ended: no more `Screen` items.
    ScreenEnd,
}

impl From<Features> for ModelInput {
    fn from(f: Features) -> Self {
        ModelInput::Features(f)
    }
}

impl From<ScreenText> for ModelInput {
    fn from(s: ScreenText) -> Self {
        ModelInput::Screen(s)
    }
}

/// Transcription settings that are not per-window decoding options.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    pub decode: DecodeOptions,
    /// Detect the language on the first window when the model is multilingual and none is set.
    pub detect_language: bool,
    pub condition_on_previous_text: bool,
    /// A prompt is dropped after a window decoded at a temperature above this.
    pub prompt_reset_on_temperature: f32,
    /// A window whose loudest raw log10 mel value is below this is silence and is not decoded
    /// (-5.0 is about -70 dBFS). Whisper alone often "hears" a word in digital silence.
    pub silence_log_mel: f32,
    /// Voice activity: windows start at speech, text over non-speech is dropped, word onsets
    /// snap to speech.
    pub vad: VadConfig,
    /// Chunks of speech (at most 30 s, cut at pauses) decoded together, as one batch through
    /// encoder and decoder (the batched stage); 1 decodes window after window, each after the
    /// text before it (the sequential stage).
    pub batch_size: usize,
    /// A partial batch is decoded once the input has gone this far past its first chunk (live
    /// input); `None` waits for a full batch or the end.
    pub batch_wait: Option<Ts>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            decode: DecodeOptions::default(),
            detect_language: true,
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            silence_log_mel: -5.0,
            vad: VadConfig::default(),
            batch_size: 1,
            batch_wait: None,
        }
    }
}

/// The language the stage settled on, for the JSON sink and `-v`.
#[derive(Debug, Clone)]
pub struct DetectedLanguage {
    pub code: String,
    pub probability: f32,
}

/// The model stage a run's options ask for: [`SequentialStage`] with a batch size of 1,
/// [`BatchedStage`] above; [`StreamingStage`] for live input.
pub enum ModelStage {
    Sequential(SequentialStage),
    Batched(BatchedStage),
    Streaming(Box<StreamingStage>),
}

impl ModelStage {
    /// `screen`: an on-screen-text stage feeds this one.
    pub fn new(
        model: std::sync::Arc<dyn Transcriber>,
        opts: TranscribeOptions,
        path: std::path::PathBuf,
        context: crate::context::Context,
        screen: bool,
    ) -> Self {
        let batched = opts.batch_size > 1;
        let input = input::Input::new(model, opts, path, context, screen);
        if batched {
            ModelStage::Batched(BatchedStage::new(input))
        } else {
            ModelStage::Sequential(SequentialStage::new(input))
        }
    }

    /// The streaming stage of live input.
    pub fn streaming(
        model: std::sync::Arc<dyn Transcriber>,
        opts: TranscribeOptions,
        name: std::path::PathBuf,
        context: crate::context::Context,
        screen: bool,
        cfg: StreamConfig,
    ) -> Self {
        ModelStage::Streaming(Box::new(StreamingStage::new(input::Input::new(model, opts, name, context, screen), cfg)))
    }

    fn input(&self) -> &input::Input {
        match self {
            ModelStage::Sequential(s) => s.input(),
            ModelStage::Batched(s) => s.input(),
            ModelStage::Streaming(s) => s.input(),
        }
    }

    pub fn language(&self) -> Option<&DetectedLanguage> {
        self.input().language.as_ref()
    }

    /// The chunks of each batch decoded (batched mode), in order.
    pub fn batch_sizes(&self) -> &[usize] {
        match self {
            ModelStage::Batched(s) => s.batch_sizes(),
            _ => &[],
        }
    }

    /// Windows (or chunks) decoded.
    pub fn windows(&self) -> usize {
        self.input().windows
    }
}

impl crate::flow::Stage for ModelStage {
    type In = ModelInput;
    type Out = crate::segment::Transcript;
    const NAME: &'static str = "model";

    fn process(&mut self, item: ModelInput, out: &mut Vec<Self::Out>) -> crate::error::Result<()> {
        match self {
            ModelStage::Sequential(s) => s.process(item, out),
            ModelStage::Batched(s) => s.process(item, out),
            ModelStage::Streaming(s) => s.process(item, out),
        }
    }

    fn idle(&mut self, out: &mut Vec<Self::Out>) -> crate::error::Result<()> {
        match self {
            ModelStage::Streaming(s) => s.idle(out),
            _ => Ok(()),
        }
    }

    fn finish(&mut self, out: &mut Vec<Self::Out>) -> crate::error::Result<()> {
        match self {
            ModelStage::Sequential(s) => s.finish(out),
            ModelStage::Batched(s) => s.finish(out),
            ModelStage::Streaming(s) => s.finish(out),
        }
    }
}
