//! `subtitle live INPUT... [-o FILE] [--events FILE] [--hls DIR] [--serve ADDR]`: live streams to
//! append-only outputs. Ctrl-C ends the inputs (what was heard is flushed, exit 0); a second
//! Ctrl-C stops at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;

use subtitle::config::PipelineConfig;
use subtitle::infer::transcriber::Transcriber;
use subtitle::pipeline::live::{run_streams, LiveJob};
use subtitle::pipeline::serve::Server;
use subtitle::pipeline::shared::ShareConfig;
use subtitle::pipeline::Shutdown;
use subtitle::sink::live::{cue_file, Appender, Feed, Hls, LiveOutputs, LiveSink};
use subtitle::sink::Format;
use subtitle::source::live::{LiveSource, LiveSpec};
use subtitle::time::Ts;

use crate::app::cli::LiveArgs;
use crate::app::error_line;
use crate::app::setup::{Prepared, Setup};

/// `template` for stream `n` of `count`: `{n}` is the stream's number; without it, one stream
/// only (or `shared`: one output for all).
fn name_for(template: &str, n: usize, count: usize, what: &str, shared: bool) -> anyhow::Result<String> {
    if count > 1 && !template.contains("{n}") && !shared {
        bail!("{what} {template}: with several inputs, put {{n}} in the name (the stream's number)");
    }
    Ok(template.replace("{n}", &n.to_string()))
}

pub fn run(args: LiveArgs) -> anyhow::Result<()> {
    let count = args.inputs.len();
    let any_output = args.output.is_some() || args.events.is_some() || args.hls.is_some() || args.serve.is_some();
    if !any_output && count > 1 {
        bail!("several inputs: name their outputs (-o 'out-{{n}}.srt', --events, --hls, --serve)");
    }
    if args.output.as_deref() == Some("-") && args.events.as_deref() == Some("-") {
        bail!("-o - and --events - would both write to stdout");
    }
    let output = args.output.clone().or_else(|| (!any_output).then(|| "-".to_string()));
    let format = match output.as_deref() {
        Some("-") | None => Format::Srt,
        Some(o) => match Format::from_path(Path::new(o)) {
            Some(f @ (Format::Srt | Format::Vtt)) => f,
            _ => bail!("-o {o}: live cues are written as .srt or .vtt (--events writes JSON lines)"),
        },
    };
    let mut model_args = args.model.clone();
    // One stream decodes with beams as files do; several share the cores, greedily.
    model_args.beam = model_args.beam.or((args.inputs.len() > 1).then_some(1));
    let prepared = Prepared::new(&model_args, PipelineConfig::default_live, Path::new(&args.inputs[0]))?;
    let mut pipeline = prepared.pipeline.clone();

    // Ctrl-C ends the inputs (the streams flush and finish); a second one stops everything.
    let stop = Arc::new(AtomicBool::new(false));
    let shutdown = Shutdown::default();
    {
        let (stop, shutdown, presses) = (Arc::clone(&stop), shutdown.clone(), AtomicUsize::new(0));
        let _ = ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::SeqCst) == 0 {
                stop.store(true, Ordering::SeqCst);
            } else {
                shutdown.raise();
            }
        });
    }
    // The inputs open before the model loads: a bad one fails fast.
    let mut sources = Vec::new();
    for input in &args.inputs {
        let spec = LiveSpec {
            input: input.clone(),
            format: args.input_format.clone(),
            options: args.input_options.clone(),
            realtime: args.realtime,
            stall: Duration::from_secs_f64(args.stall),
        };
        sources.push(LiveSource::open(spec, &pipeline.video, Arc::clone(&stop))?);
    }
    let setup = Setup::new(prepared, &model_args)?;
    let model = setup.model()?;
    // Several streams on the CPU: shorter encoder windows too (`shared_window_after_ms`).
    pipeline.live.shared_cpu = count > 1 && model.encodes_alone();

    let feed = args.serve.as_ref().map(|_| Feed::default());
    let server = match (&args.serve, &feed) {
        (Some(addr), Some(feed)) => {
            let server = Server::start(addr, feed.clone())?;
            if !args.common.quiet {
                eprintln!("captions: http://{}/", server.addr);
            }
            Some(server)
        }
        _ => None,
    };
    let shared_events = match &args.events {
        Some(e) if !e.contains("{n}") => Some(Arc::new(Mutex::new(Appender::create(Path::new(e))?))),
        _ => None,
    };
    let mut jobs = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        let n = i + 1;
        let cues = match &output {
            Some(o) => Some(cue_file(Path::new(&name_for(o, n, count, "-o", false)?), format)?),
            None => None,
        };
        let events = match (&args.events, &shared_events) {
            (_, Some(shared)) => Some(Arc::clone(shared)),
            (Some(e), None) => {
                Some(Arc::new(Mutex::new(Appender::create(Path::new(&name_for(e, n, count, "--events", true)?))?)))
            }
            _ => None,
        };
        let hls = match &args.hls {
            Some(d) => {
                let dir = PathBuf::from(name_for(d, n, count, "--hls", false)?);
                let cfg = &pipeline.hls;
                Some(Hls::create(&dir, Ts::from_secs_f64(cfg.segment_s), cfg.window, source.origin_s().unwrap_or(0.0))?)
            }
            None => None,
        };
        let name = if count > 1 { format!("{n}: {}", args.inputs[i]) } else { args.inputs[i].clone() };
        let sink = LiveSink::new(name.clone(), LiveOutputs { cues, events, hls, feed: feed.clone() });
        jobs.push(LiveJob {
            name,
            source: Box::new(source),
            model: Arc::new(model.clone()),
            options: setup.options.clone(),
            pipeline: pipeline.clone(),
            profile: setup.prepared.profile.clone(),
            roll_up: args.roll_up,
            context: setup.context.clone(),
            sink,
            shutdown: shutdown.child(),
        });
    }
    let failed = AtomicUsize::new(0);
    let quiet = args.common.quiet;
    // Several streams decode their passes together where they can.
    let share = (count > 1).then(|| {
        let cfg = ShareConfig { rows: count, wait: Duration::from_millis(pipeline.model.share_wait_ms), inputs: count };
        (model.clone(), cfg)
    });
    run_streams(jobs, share, |i, result| match result {
        Ok(s) => {
            if !quiet {
                eprintln!(
                    "{}: {} cues, {} words; decoding {:.2} s a pass; {:.1} s of audio skipped; {} gaps ({:.1} s)",
                    args.inputs[i], s.cues, s.status.words, s.status.pass_s, s.status.skipped_s, s.gaps, s.gap_s
                );
            }
        }
        Err(e) => {
            failed.fetch_add(1, Ordering::SeqCst);
            eprintln!("{}", error_line(&e.into()));
        }
    });
    drop(server);
    if failed.load(Ordering::SeqCst) > 0 {
        std::process::exit(2);
    }
    Ok(())
}
