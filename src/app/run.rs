//! `subtitle INPUT... [-o OUTPUT | --output-dir DIR]`: files to subtitle files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::bail;

use subtitle::config::PipelineConfig;
use subtitle::error::Error;
use subtitle::pipeline::file::{run_file, run_files, FileSummary};
use subtitle::pipeline::Shutdown;
use subtitle::sink::Format;
use subtitle::source::MediaSource;
use subtitle::time::Ts;

use crate::app::cli::RunArgs;
use crate::app::error_line;
use crate::app::setup::{Prepared, Setup};

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(first) = args.inputs.first().cloned() else { bail!("no input file given (see subtitle --help)") };
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
            .map(|i| dir.join(Path::new(i.file_name().unwrap_or(i.as_os_str())).with_extension(format.extension())))
            .collect(),
        (None, None) => args.inputs.iter().map(|i| i.with_extension(format.extension())).collect(),
    };
    let mut seen = std::collections::HashMap::new();
    for (input, output) in args.inputs.iter().zip(&outputs) {
        if let Some(other) = seen.insert(output, input) {
            bail!("{} and {} would both write {}", other.display(), input.display(), output.display());
        }
    }
    let prepared = Prepared::new(&args.model, PipelineConfig::default_file, &first)?;
    // The model loads on a thread of its own while a single input is opened (a bad one fails
    // at once) and read.
    let setup = Setup::new(prepared, &args.model)?;
    let source = match args.inputs.len() {
        1 => Some(subtitle::source::open(&first, &setup.prepared.pipeline.video)?),
        _ => None,
    };
    let shutdown = Shutdown::default();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || s.raise());
    }
    let quiet = args.common.quiet;
    match source {
        Some(source) => {
            let output = outputs.into_iter().next().expect("one output");
            one(&setup, &first, source, output, format, shutdown, quiet, args.files.strict)
        }
        None => {
            many(&setup, &args.inputs, &outputs, format, args.files.jobs as usize, shutdown, quiet, args.files.strict)
        }
    }
}

fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar
}

#[allow(clippy::too_many_arguments)]
fn one(
    setup: &Setup,
    input: &Path,
    source: Box<dyn MediaSource>,
    output: PathBuf,
    format: Format,
    shutdown: Shutdown,
    quiet: bool,
    strict: bool,
) -> anyhow::Result<()> {
    let bar = (!quiet && std::io::stderr().is_terminal())
        .then(|| progress_bar(0, "{spinner} [{elapsed_precise}] {wide_bar} {msg} (eta {eta})"));
    let bar_ref = bar.clone();
    let progress = move |duration: Option<Ts>, at: Ts| {
        if let Some(bar) = &bar_ref {
            if let Some(d) = duration {
                bar.set_length(d.ms().max(1) as u64);
            }
            bar.set_position(at.ms().max(0) as u64);
            bar.set_message(format!("{at}"));
        }
    };
    let mut job = setup.job(input, source, output.clone(), format, shutdown)?;
    job.strict = strict;
    let summary = run_file(job, None, progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    if let Some(warning) = setup.truncation_warning(input, &summary) {
        eprintln!("{warning}");
    }
    if let Some(note) = setup.language_note(input, &summary).filter(|_| !quiet) {
        eprintln!("{note}");
    }
    if let Some(note) = setup.over_speed_note(input, &summary).filter(|_| !quiet) {
        eprintln!("{note}");
    }
    tracing::info!(cues = summary.cues, language = ?summary.language, "wrote {}", output.display());
    Ok(())
}

/// Several inputs: each failure is printed as it happens, and the run fails at the end if any did.
#[allow(clippy::too_many_arguments)]
fn many(
    setup: &Setup,
    inputs: &[PathBuf],
    outputs: &[PathBuf],
    format: Format,
    jobs: usize,
    shutdown: Shutdown,
    quiet: bool,
    strict: bool,
) -> anyhow::Result<()> {
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        progress_bar(inputs.len() as u64, "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})")
    });
    let failed = AtomicUsize::new(0);
    let jobs = jobs.clamp(1, inputs.len().max(1));
    let batch = setup.file_batch(setup.model()?, jobs, shutdown.clone());
    let next_input = AtomicUsize::new(0);
    let next = || Some(next_input.fetch_add(1, Ordering::SeqCst)).filter(|&i| i < inputs.len());
    let make = |&i: &usize, shutdown: Shutdown| {
        let source = subtitle::source::open(&inputs[i], &setup.prepared.pipeline.video)?;
        let mut job = setup.job(&inputs[i], source, outputs[i].clone(), format, shutdown)?;
        job.strict = strict;
        Ok(job)
    };
    let done = |i: usize, result: subtitle::error::Result<FileSummary>| {
        let input = &inputs[i];
        let line = match result {
            Ok(summary) => {
                tracing::info!(cues = summary.cues, language = ?summary.language, "{} done", input.display());
                let note = setup.language_note(input, &summary).or_else(|| setup.over_speed_note(input, &summary));
                setup.truncation_warning(input, &summary).or(note.filter(|_| !quiet))
            }
            Err(Error::Interrupted) => None,
            Err(e @ Error::Internal(_)) => {
                failed.fetch_add(1, Ordering::SeqCst);
                Some(error_line(&anyhow::Error::new(e).context(input.display().to_string())))
            }
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
    run_files(batch, next, make, done);
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
