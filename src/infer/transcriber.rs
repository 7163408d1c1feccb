//! The seam between the model stages and a model: what a stage asks of it (encode mel windows,
//! decode them, time their words) and nothing of how. [`ModelTranscriber`] answers with a loaded
//! model on the compute pool; the shared model stage (`pipeline::shared`) answers encode and
//! decode together with other inputs' requests; the stages' own logic (seek, voice activity,
//! batching, prompts) is unit-tested against a scripted one.

use std::sync::Arc;

use candle_core::Tensor;

use crate::context::Context;
use crate::error::panic_message;
use crate::infer::align::{Aligner, WordTiming};
use crate::infer::decode::{DecodeOptions, DecodeResult, WindowDecoder, WindowStart};
use crate::model::{Dims, Encoded, Kernels, LoadedModel, ModelConfig, Whisper, WhisperTokenizer};
use crate::time::Span;

type Result<T> = candle_core::Result<T>;

/// Windows to decode with the same options: each window's prompt, seed and bound in `starts`.
#[derive(Debug, Clone)]
pub struct DecodeRequest {
    pub audio: Encoded,
    pub starts: Vec<WindowStart>,
    pub opts: DecodeOptions,
    /// The fusion memory of the windows (with an adapter); such a request decodes alone.
    pub memory: Option<Tensor>,
}

/// One window's text to time, word by word.
pub struct AlignRequest<'a> {
    /// The window (one).
    pub audio: &'a Encoded,
    /// The start-of-transcript tokens it was decoded after.
    pub sot_sequence: &'a [u32],
    /// Its text tokens and the probability the decoder gave each.
    pub tokens: &'a [u32],
    pub probabilities: &'a [f32],
    /// Mel frames of the window that hold audio.
    pub frames: usize,
    /// False for languages written without spaces.
    pub split_on_spaces: bool,
    pub memory: Option<&'a Tensor>,
}

/// What the model stages ask of a model. Errors are the model's (candle's); the stage names the
/// input and the time.
pub trait Transcriber: Send + Sync {
    fn tokenizer(&self) -> &WhisperTokenizer;
    fn dims(&self) -> &Dims;
    /// Whether the model has alignment heads (words can be timed).
    fn can_align(&self) -> bool;
    /// Whether a chunk of speech is best encoded as soon as it is cut rather than with its
    /// batch: on the CPU it is as fast, without a batch's activations, and overlaps decoding.
    fn encodes_alone(&self) -> bool;
    /// The encoder's output for `windows` mel windows, `mel` (windows, n_mels, frames)
    /// row-major, normalised.
    fn encode(&self, mel: Vec<f32>, windows: usize) -> Result<Encoded>;
    /// The fusion memory of `window` from `context` (pictures and terms near it); `None`
    /// without an adapter.
    fn memory(&self, context: &Context, window: Span) -> Result<Option<Tensor>>;
    /// The likeliest language token of the window `audio` and its probability.
    fn detect_language(&self, audio: &Encoded, memory: Option<&Tensor>) -> Result<(u32, f32)>;
    /// Each window's decoding, with temperature fallback.
    fn decode(&self, request: DecodeRequest) -> Result<Vec<DecodeResult>>;
    fn align(&self, request: AlignRequest) -> Result<Vec<WordTiming>>;
    /// Whether the model is there to run, or why it is not (a model still loading is waited
    /// for): a run whose input needed no window of it checks this before it writes anything.
    fn ready(&self) -> crate::error::Result<()> {
        Ok(())
    }
    /// The stage will ask nothing more (a shared model stops waiting for it).
    fn leave(&self) {}
    /// The stage waits for input that comes at its own pace (a live stream between passes): a
    /// shared model does not wait for it until it encodes again.
    fn idle(&self) {}
}

/// A loaded model, its work run on the compute pool.
#[derive(Clone)]
pub struct ModelTranscriber {
    pub model: Arc<LoadedModel>,
    pub tokenizer: Arc<WhisperTokenizer>,
}

impl ModelTranscriber {
    pub fn new(model: Arc<LoadedModel>, tokenizer: Arc<WhisperTokenizer>) -> Self {
        Self { model, tokenizer }
    }

    fn decoder(&self, memory: Option<Tensor>) -> WindowDecoder<'_> {
        WindowDecoder::new(&self.model.whisper, &self.tokenizer, &self.model.config).with_memory(memory)
    }
}

impl Transcriber for ModelTranscriber {
    fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    fn dims(&self) -> &Dims {
        &self.model.config.dims
    }

    fn can_align(&self) -> bool {
        !self.model.config.alignment_heads.is_empty()
    }

    fn encodes_alone(&self) -> bool {
        self.model.whisper.kernels() == Kernels::Own
    }

    fn encode(&self, mel: Vec<f32>, windows: usize) -> Result<Encoded> {
        let whisper = &self.model.whisper;
        let n_mels = whisper.dims.n_mels;
        let frames = mel.len() / (windows * n_mels).max(1);
        let mel = Tensor::from_vec(mel, (windows, n_mels, frames), whisper.device())?;
        on_pool(|| whisper.encode(&mel))
    }

    fn memory(&self, context: &Context, window: Span) -> Result<Option<Tensor>> {
        fusion_memory(&self.model.whisper, context, window, &self.tokenizer)
    }

    fn detect_language(&self, audio: &Encoded, memory: Option<&Tensor>) -> Result<(u32, f32)> {
        on_pool(|| self.decoder(memory.cloned()).detect_language(audio))
    }

    fn decode(&self, r: DecodeRequest) -> Result<Vec<DecodeResult>> {
        on_pool(|| self.decoder(r.memory).decode_batch_with_fallback(&r.audio, &r.starts, &r.opts))
    }

    fn align(&self, r: AlignRequest) -> Result<Vec<WordTiming>> {
        let aligner = Aligner {
            model: &self.model.whisper,
            tok: &self.tokenizer,
            heads: &self.model.config.alignment_heads,
            memory: r.memory,
        };
        on_pool(|| aligner.words(r.audio, r.sot_sequence, r.tokens, r.probabilities, r.frames, r.split_on_spaces))
    }
}

/// A [`ModelTranscriber`] whose weights load on a thread of their own while the run reads its
/// input: loading is 0.15-0.2 s of mostly one core at tiny.en's size, at the start of every run,
/// and the video's decoding and the audio's features use the other core meanwhile. What needs
/// the weights waits for them; the tokenizer and the dimensions are there from the start.
pub struct LoadingTranscriber {
    config: ModelConfig,
    tokenizer: Arc<WhisperTokenizer>,
    encodes_alone: bool,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<crate::error::Result<LoadedModel>>>>,
    loaded: std::sync::OnceLock<crate::error::Result<ModelTranscriber>>,
}

impl LoadingTranscriber {
    /// The transcriber of `config`'s model and `tokenizer` once `loading` (a thread) has
    /// loaded its weights. `encodes_alone`: as the loaded model will answer it.
    pub fn new(
        config: ModelConfig,
        tokenizer: Arc<WhisperTokenizer>,
        encodes_alone: bool,
        loading: std::thread::JoinHandle<crate::error::Result<LoadedModel>>,
    ) -> Self {
        Self {
            config,
            tokenizer,
            encodes_alone,
            thread: std::sync::Mutex::new(Some(loading)),
            loaded: std::sync::OnceLock::new(),
        }
    }

    /// The model, once loaded; or the load's error (every caller gets it).
    pub fn wait(&self) -> crate::error::Result<&ModelTranscriber> {
        let loaded = self.loaded.get_or_init(|| {
            let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take().expect("joined once, in here");
            match thread.join() {
                Ok(loaded) => loaded.map(|model| ModelTranscriber::new(Arc::new(model), Arc::clone(&self.tokenizer))),
                Err(panic) => Err(crate::Error::Internal(format!("loading the model: {}", panic_message(&*panic)))),
            }
        });
        loaded.as_ref().map_err(|e| match e {
            crate::Error::Model { path, reason } => crate::Error::model(path, reason),
            e => crate::Error::Internal(e.to_string()),
        })
    }

    fn model(&self) -> Result<&ModelTranscriber> {
        self.wait().map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

impl Transcriber for LoadingTranscriber {
    fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    fn dims(&self) -> &Dims {
        &self.config.dims
    }

    fn can_align(&self) -> bool {
        !self.config.alignment_heads.is_empty()
    }

    fn encodes_alone(&self) -> bool {
        self.encodes_alone
    }

    fn encode(&self, mel: Vec<f32>, windows: usize) -> Result<Encoded> {
        self.model()?.encode(mel, windows)
    }

    fn memory(&self, context: &Context, window: Span) -> Result<Option<Tensor>> {
        self.model()?.memory(context, window)
    }

    fn detect_language(&self, audio: &Encoded, memory: Option<&Tensor>) -> Result<(u32, f32)> {
        self.model()?.detect_language(audio, memory)
    }

    fn decode(&self, request: DecodeRequest) -> Result<Vec<DecodeResult>> {
        self.model()?.decode(request)
    }

    fn align(&self, request: AlignRequest) -> Result<Vec<WordTiming>> {
        self.model()?.align(request)
    }

    fn ready(&self) -> crate::error::Result<()> {
        self.wait().map(|_| ())
    }
}

/// The fusion memory of `window` for `model`'s adapter: the pictures shown near the window and
/// its context terms (the prompt's, as Whisper token embeddings). `None` without an adapter or
/// without either. Inference and training make a window's memory here.
pub fn fusion_memory(
    model: &Whisper,
    context: &Context,
    window: Span,
    tok: &WhisperTokenizer,
) -> Result<Option<Tensor>> {
    let dec = &model.decoder;
    let Some(fusion) = dec.fusion() else { return Ok(None) };
    let terms = context.prompt(window, tok);
    let text = if terms.is_empty() { None } else { Some(dec.embed(&terms, model.device())?) };
    fusion.memory(context.pictures(window)?.as_ref(), text.as_ref())
}

/// Runs `f` (a window or a batch) on a thread of the compute pool, the caller waiting for it.
/// Each of the model's parallel products then starts on a pool thread, which hands half to the
/// other one through its own queue; from the stage's thread each went in through the pool's
/// shared queue and the stage's thread slept until woken by the pool, some 40 times a decoder
/// step. On a 2-core Xeon (Sapphire Rapids), `examples/step` forward + logits ms a step:
/// tiny.en 1 row 1.56-1.65 + 0.62-0.64 -> 0.78-0.87 + 0.57-0.66, 5 rows 3.29-3.44 + 1.73 ->
/// 2.48-2.53 + 1.72-1.80; base 1 row 3.70-3.74 + 1.01-1.03 -> 1.91-2.08 + 0.83-0.85, 5 rows
/// 6.6-6.9 + 2.3-2.4 -> 5.61-5.67 + 2.14-2.26. tiny.en greedy on long-5 5.5-5.9 -> 5.0-5.2 s,
/// the same subtitles. Already on the pool, `f` runs in place.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
}
