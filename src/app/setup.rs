//! What every transcribing command sets up from its arguments, in order: the pipeline file, the
//! subtitle rules and the readers of the picture (setup errors, before any input is opened),
//! then the model and the decoding options.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};

use subtitle::config::PipelineConfig;
use subtitle::context::Context;
use subtitle::cue::Profile;
use subtitle::error::Error;
use subtitle::infer::{DecodeOptions, LoadingTranscriber, ModelTranscriber, Task, TranscribeOptions, Transcriber};
use subtitle::model::dinov2::ImageEncoder;
use subtitle::model::{Kernels, ModelConfig};
use subtitle::pipeline::file::{FileBatch, FileJob, FileSummary};
use subtitle::pipeline::shared::ShareConfig;
use subtitle::pipeline::Shutdown;
use subtitle::sink::Format;
use subtitle::source::MediaSource;
use subtitle::visual::ocr::OcrReader;
use subtitle::visual::VisualStage;
use subtitle::weights::{self, LoadOptions};

use crate::app::cli::{ModelArgs, Switch, TaskArg};

/// The pipeline and the readers of the picture.
pub struct Prepared {
    pub pipeline: PipelineConfig,
    pub ocr_on: bool,
    pub images: Option<ImageEncoder>,
    pub profile_name: String,
    pub profile: Profile,
    /// The on-screen-text reader made to check the setup (Tesseract's language data; Tesseract
    /// itself loads at the first still with a row of letters), for the first input to use.
    checked_ocr: std::sync::Mutex<Option<OcrReader>>,
}

/// Everything a run's inputs share.
pub struct Setup {
    pub prepared: Prepared,
    /// Loading while the first input starts: [`Setup::model`] waits for it.
    pub model: Arc<LoadingTranscriber>,
    pub model_name: String,
    pub context: Context,
    pub options: TranscribeOptions,
}

/// The pipeline file given, or the built-in one.
pub fn load_pipeline(path: Option<&Path>, built_in: fn() -> PipelineConfig) -> anyhow::Result<PipelineConfig> {
    Ok(match path {
        Some(p) => PipelineConfig::load(p)?,
        None => built_in(),
    })
}

/// On-screen text unless asked otherwise: as the pipeline says, in a build that can read it (a
/// build without the `ocr` feature fails only when `--ocr on` asks for it).
pub fn ocr_by_default(pipeline: &PipelineConfig) -> bool {
    pipeline.ocr.enabled && cfg!(feature = "ocr")
}

/// The device the model runs on: in a `--features cuda` build the first CUDA GPU when there is
/// one, the CPU otherwise (also in a CUDA build on a machine without a usable GPU: candle's
/// `cuda_if_available` fails there instead).
pub fn model_device() -> candle_core::Device {
    if !candle_core::utils::cuda_is_available() {
        return candle_core::Device::Cpu;
    }
    match candle_core::Device::new_cuda(0) {
        Ok(device) => {
            tracing::info!("model on CUDA GPU 0");
            device
        }
        Err(e) => {
            let e = e.to_string();
            tracing::warn!("no usable CUDA GPU ({}): the model runs on the CPU", e.lines().next().unwrap_or(""));
            candle_core::Device::Cpu
        }
    }
}

/// The kernels for `device`; `SUBTITLE_CANDLE_ONLY=1` asks for candle's operations throughout
/// on the CPU too (the path a GPU takes, tested where there is none).
pub fn kernels(device: &candle_core::Device) -> Kernels {
    if std::env::var_os("SUBTITLE_CANDLE_ONLY").is_some_and(|v| v == "1") {
        Kernels::Candle
    } else {
        Kernels::for_device(device)
    }
}

impl Prepared {
    /// `first_input` names the input in a setup error of the on-screen-text reader.
    pub fn new(args: &ModelArgs, built_in: fn() -> PipelineConfig, first_input: &Path) -> anyhow::Result<Self> {
        let mut pipeline = load_pipeline(args.pipeline.as_deref(), built_in)?;
        let ocr_on = args.ocr.map_or(ocr_by_default(&pipeline), |s| s == Switch::On) && pipeline.video.stills_fps > 0.0;
        if !ocr_on && args.adapter.is_none() {
            pipeline.video.stills_fps = 0.0;
        }
        // Tesseract's language data is checked and the image encoder loads before any input is
        // read: they are setup errors.
        let checked_ocr = std::sync::Mutex::new(
            ocr_on.then(|| OcrReader::new(pipeline.ocr.clone(), first_input.to_path_buf())).transpose()?,
        );
        let images = match &args.adapter {
            Some(_) => Some(weights::load_image_encoder(&weights::resolve("dinov2")?, &candle_core::Device::Cpu)?),
            None => None,
        };
        let profile_name = args.profile.clone().unwrap_or_else(|| pipeline.cues.profile.clone());
        let profile = pipeline.cues.resolve(&profile_name).map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
        Ok(Self { pipeline, ocr_on, images, profile_name, profile, checked_ocr })
    }
}

impl Setup {
    /// Starts loading the model `args` names (on a thread of its own: [`LoadingTranscriber`])
    /// and settles the decoding options; its configuration (first) and tokenizer (meanwhile)
    /// are read here, so their errors are setup errors.
    pub fn new(prepared: Prepared, args: &ModelArgs) -> anyhow::Result<Self> {
        let pipeline = &prepared.pipeline;
        let dir = weights::resolve(&args.model)?;
        let device = model_device();
        let kernels = kernels(&device);
        let config = weights::read_config(&dir.join("config.json"))?;
        let load = {
            let (dir, config, adapter) = (dir.clone(), config.clone(), args.adapter.clone());
            move || {
                let mut model = weights::load_weights(&dir, config, &device, LoadOptions { kernels, training: false })?;
                if let Some(path) = &adapter {
                    let fusion = weights::load_adapter(path, &model, &device)?;
                    model
                        .whisper
                        .decoder
                        .set_fusion(Some(fusion))
                        .map_err(|e| Error::model(path, format!("not an adapter for {}: {e}", dir.display())))?;
                }
                Ok(model)
            }
        };
        let loading = std::thread::Builder::new().name("model-load".into()).spawn(load)?;
        let tokenizer = Arc::new(weights::load_tokenizer(&dir.join("tokenizer.json"))?);
        let mut context = Context::new(pipeline.context.clone());
        if let Some(path) = &args.context {
            context.add_file(path, &tokenizer)?;
        }
        let options = decode_options(args, &config, &tokenizer, pipeline, &dir)?;
        let model_name = dir.display().to_string();
        let model = Arc::new(LoadingTranscriber::new(config, tokenizer, kernels == Kernels::Own, loading));
        Ok(Self { prepared, model, model_name, context, options })
    }

    /// The model, once loaded (the load's error is the model file's).
    pub fn model(&self) -> anyhow::Result<&ModelTranscriber> {
        Ok(self.model.wait()?)
    }

    /// The job of `input`, opened; the input's own errors (unreadable, no audio) come from here.
    pub fn job(
        &self,
        input: &Path,
        source: Box<dyn MediaSource>,
        output: PathBuf,
        format: Format,
        shutdown: Shutdown,
    ) -> subtitle::error::Result<FileJob> {
        if subtitle::atomic::same_file(input, &output) {
            return Err(subtitle::Error::output(
                &output,
                "is the input: the subtitles would replace it (name another output)",
            ));
        }
        let p = &self.prepared;
        let checked = p.checked_ocr.lock().unwrap_or_else(|e| e.into_inner()).take();
        let ocr = match checked {
            Some(reader) => Some(reader.for_input(input.to_path_buf())),
            None => p.ocr_on.then(|| OcrReader::new(p.pipeline.ocr.clone(), input.to_path_buf())).transpose()?,
        };
        let images = p.images.clone();
        Ok(FileJob {
            input: input.to_path_buf(),
            source,
            output,
            format,
            model: self.model.clone(),
            model_name: self.model_name.clone(),
            options: self.options.clone(),
            pipeline: p.pipeline.clone(),
            profile: p.profile.clone(),
            context: self.context.clone(),
            visual: (ocr.is_some() || images.is_some()).then(|| VisualStage::new(ocr, images, input.to_path_buf())),
            shutdown,
            strict: false,
        })
    }

    /// `jobs` inputs at a time on the model: with `--batch-size` above 1 their chunks decoded
    /// together (with an adapter a chunk's pictures and terms go with it, and it decodes alone).
    pub fn file_batch(&self, model: &ModelTranscriber, jobs: usize, shutdown: Shutdown) -> FileBatch {
        let batched = self.options.batch_size > 1 && model.model.whisper.decoder.fusion().is_none();
        let share = batched.then(|| ShareConfig {
            rows: self.options.batch_size,
            wait: std::time::Duration::from_millis(self.prepared.pipeline.model.share_wait_ms),
            inputs: jobs,
        });
        FileBatch { jobs, model: model.clone(), share, shutdown }
    }

    /// The warning for a finished input whose audio ended well before the length it states.
    pub fn truncation_warning(&self, input: &Path, summary: &FileSummary) -> Option<String> {
        summary.truncated.map(|t| {
            format!("warning: {}: {t}; the subtitles cover what was there (--strict: fail instead)", input.display())
        })
    }

    /// Whether an English-only model did not know the speech of a finished input.
    pub fn unlike_the_model(&self, summary: &FileSummary) -> bool {
        !self.model.dims().is_multilingual() && summary.heard.unlike_the_model()
    }

    /// The note for a finished input whose speech an English-only model did not know (another
    /// language, most likely), with what would do better.
    pub fn language_note(&self, input: &Path, summary: &FileSummary) -> Option<String> {
        self.unlike_the_model(summary).then(|| {
            format!(
                "note: {}: the speech does not sound like English to {} ({} words, mean word probability {:.2}): \
                 if it is another language, --model base (multilingual) detects it and transcribes it",
                input.display(),
                Path::new(&self.model_name)
                    .file_name()
                    .map_or(self.model_name.clone(), |n| n.to_string_lossy().into_owned()),
                summary.heard.words,
                summary.heard.mean_probability()
            )
        })
    }

    /// The note for a finished input whose speech was too dense for the profile's reading speed.
    pub fn over_speed_note(&self, input: &Path, summary: &FileSummary) -> Option<String> {
        (summary.over_speed > 0).then(|| {
            format!(
                "note: {}: {} of {} cues are over the {} reading speed: the speech is too dense, and no word was dropped",
                input.display(),
                summary.over_speed,
                summary.cues,
                self.prepared.profile_name
            )
        })
    }
}

/// The decoding options `args` ask for, checked against the model.
fn decode_options(
    args: &ModelArgs,
    config: &ModelConfig,
    tokenizer: &subtitle::model::WhisperTokenizer,
    pipeline: &PipelineConfig,
    dir: &Path,
) -> anyhow::Result<TranscribeOptions> {
    let multilingual = config.dims.is_multilingual();
    let language = match args.language.as_str() {
        "auto" => None,
        code if !multilingual && code != "en" => bail!("--language {code}: model {} is English-only", dir.display()),
        _ if !multilingual => None,
        code => {
            Some(tokenizer.language_token(code).with_context(|| format!("--language {code}: unknown language code"))?)
        }
    };
    let task = match args.task {
        TaskArg::Transcribe => Task::Transcribe,
        TaskArg::Translate => Task::Translate,
    };
    if task == Task::Translate && !multilingual {
        bail!("--task translate: model {} is English-only", dir.display());
    }
    Ok(TranscribeOptions {
        decode: DecodeOptions { task, language, beam_size: args.beam.unwrap_or(5) as usize, ..Default::default() },
        detect_language: language.is_none(),
        vad: pipeline.vad.clone(),
        batch_size: args.batch_size.map_or(pipeline.model.batch_size, |n| n as usize),
        batch_wait: (pipeline.model.batch_wait_ms > 0).then_some(subtitle::time::Ts(pipeline.model.batch_wait_ms)),
        ..Default::default()
    })
}
