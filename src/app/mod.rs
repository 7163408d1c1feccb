//! The `subtitle` command over the library: each subcommand's module turns arguments into the
//! library's jobs; what they share (the pipeline file, the model, the decoding options, the
//! error line) is here and in [`setup`].

pub mod batch;
pub mod check;
pub mod cli;
#[cfg(feature = "ffmpeg")]
pub mod live;
/// Live input is read through FFmpeg: without it, `subtitle live` says so.
#[cfg(not(feature = "ffmpeg"))]
pub mod live {
    pub fn run(_: super::cli::LiveArgs) -> anyhow::Result<()> {
        anyhow::bail!("this build reads no live streams (built without the `ffmpeg` feature)")
    }
}
pub mod models;
pub mod run;
pub mod setup;
pub mod train;

use clap::Parser;

use cli::{Cli, Command, CommonArgs};

/// Parses the command line, runs it, and exits: 0 on success, 2 on any error (printed once, on
/// one line), 1 from `check` when a file breaks a rule.
pub fn main() {
    subtitle::error::silence_contained_panics();
    let cli = Cli::parse();
    let common = match &cli.command {
        Some(Command::Train(t)) => CommonArgs { threads: None, quiet: t.quiet, verbose: 0 },
        Some(Command::Live(l)) => l.common.clone(),
        Some(Command::Batch(b)) => b.run.common.clone(),
        _ => cli.run.common.clone(),
    };
    tune_runtime(common.threads.map(|n| n as usize));
    init_logging(&common);
    let result = match cli.command {
        Some(Command::Models { command }) => models::run(command),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Live(args)) => live::run(args),
        Some(Command::Batch(args)) => batch::run(args),
        Some(Command::Check(args)) => match check::run(args) {
            Ok(clean) => std::process::exit(if clean { 0 } else { 1 }),
            Err(e) => Err(e),
        },
        None => run::run(cli.run),
    };
    if let Err(e) = result {
        eprintln!("{}", error_line(&e));
        std::process::exit(2);
    }
}

/// Process-wide settings for model compute, made before any thread starts.
fn tune_runtime(threads: Option<usize>) {
    // First: the allocator's settings bind the threads made after them (the pool's).
    subtitle::tune_allocator();
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    // candle sizes its CPU work from RAYON_NUM_THREADS, and asks the OS for the core count on
    // every op when it is unset (about 5% of decode time here). No other thread exists yet.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
}

fn init_logging(common: &CommonArgs) {
    let level = if common.quiet {
        "error"
    } else {
        match common.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    // Symphonia warns of each damaged packet it passes over (a CRC mismatch): noise beside the one
    // line a damaged input gets, unless asked for with -v.
    let default = match common.verbose {
        0 => format!("{level},symphonia=error"),
        _ => level.to_string(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SUBTITLE_LOG").unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// An error and its causes on one line.
pub fn error_line(e: &anyhow::Error) -> String {
    let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
    format!("error: {}", msg.replace('\n', " "))
}
