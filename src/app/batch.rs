//! `subtitle batch SOURCE --out DIR`: an archive subtitled once, resumably. SOURCE is a
//! directory, a manifest, or a Redis queue; a static shard (`--shard I/N`, or Slurm's and
//! Kubernetes' array index) takes the items whose id hashes to it. Each item is recorded in the
//! shard's or worker's ledger ([`subtitle::batch::ledger`]) as it starts and ends; a rerun
//! passes over what is done with the same input and settings. `batch status DIR` sums the
//! ledgers up; `batch enqueue SOURCE QUEUE` fills a queue.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use subtitle::batch::ledger::{self, Ledger, Plan, Record, State};
use subtitle::batch::queue::{self, Lease, Taken, Worker};
use subtitle::batch::resp::QueueUrl;
use subtitle::batch::{self, Item, Shard};
use subtitle::config::PipelineConfig;
use subtitle::error::Error;
use subtitle::infer::ModelTranscriber;
use subtitle::pipeline::file::{run_files, FileSummary};
use subtitle::pipeline::Shutdown;
use subtitle::sink::Format;
use subtitle::source::VideoSampling;

use crate::app::cli::{BatchArgs, BatchCommand, BatchRunArgs, ModelArgs};
use crate::app::error_line;
use crate::app::setup::{Prepared, Setup};

pub fn run(args: BatchArgs) -> anyhow::Result<()> {
    match args.command {
        Some(BatchCommand::Status { dir, json }) => status(&dir, json),
        Some(BatchCommand::Enqueue { source, queue, pipeline }) => enqueue(&source, &queue, pipeline.as_deref()),
        None => work(args.run),
    }
}

/// What probing a file found.
enum Probe {
    /// Media with audio, of this many seconds when the container says.
    Media(Option<f64>),
    /// Media with nothing to transcribe (no audio stream): skipped, with the reason.
    Skip(String),
    /// Named as media but unreadable: fails, with the reason.
    Broken(String),
    /// Not media at all (a text file, an image): not an item.
    NotMedia,
}

/// Opens `path` as a run would, and closes it.
fn probe(path: &Path, video: &VideoSampling) -> Probe {
    match subtitle::source::open(path, video) {
        Ok(source) => Probe::Media(source.duration().map(|d| d.secs_f64())),
        Err(e) => {
            let reason = e.to_string();
            match (batch::has_media_extension(path), reason.ends_with("no audio stream")) {
                (true, true) => Probe::Skip(reason),
                (true, false) => Probe::Broken(reason),
                (false, _) => Probe::NotMedia,
            }
        }
    }
}

/// The items of a directory or manifest source, each probed; what is not media is left out
/// (a manifest's entries are all items: one that cannot be read fails).
fn probed(source: &Path, items: Vec<Item>, video: &VideoSampling) -> Vec<(Item, Probe)> {
    let from_dir = source.is_dir();
    let mut out = Vec::new();
    let mut not_media = 0;
    for item in items {
        match probe(&item.path, video) {
            Probe::NotMedia if from_dir => not_media += 1,
            Probe::NotMedia => {
                let reason = format!("{}: not media this build can read", item.path.display());
                out.push((item, Probe::Broken(reason)));
            }
            p => out.push((item, p)),
        }
    }
    if not_media > 0 {
        tracing::info!("{not_media} files under {} are not media: passed over", source.display());
    }
    out
}

fn enqueue(source: &Path, queue: &str, pipeline: Option<&Path>) -> anyhow::Result<()> {
    let url = QueueUrl::parse(queue).with_context(|| format!("{queue}: expected redis://HOST:PORT/NAME"))?;
    let video = crate::app::setup::load_pipeline(pipeline, PipelineConfig::default_file)?.video;
    let mut items = Vec::new();
    for (mut item, p) in probed(source, batch::list(source, None)?, &video) {
        if let Probe::Skip(reason) = p {
            eprintln!("skipped: {reason}");
            continue;
        }
        // Workers may run elsewhere: they get the path as the enqueuer saw it, made absolute.
        item.path = std::path::absolute(&item.path).unwrap_or(item.path);
        items.push(item);
    }
    let added = queue::enqueue(&url, &items)?;
    eprintln!("{url}: {added} items added, {} were queued before", items.len() - added);
    Ok(())
}

/// Everything an item needs to run and be recorded.
struct Ctx<'a> {
    setup: &'a Setup,
    model: &'a ModelTranscriber,
    out: PathBuf,
    format: Format,
    settings: String,
    worker: String,
    timeout: Option<Duration>,
    max_tries: u32,
    ledger: Mutex<Ledger>,
    quiet: bool,
    strict: bool,
}

/// One item on its way through a worker.
struct Job {
    item: Item,
    output: PathBuf,
    fingerprint: String,
    settings: String,
    attempt: u32,
    media_s: Option<f64>,
    started: Instant,
    /// A queue item's lease, and the heartbeat's stop.
    lease: Option<(Lease, crossbeam_channel::Sender<()>)>,
}

/// How an item ended.
enum Outcome {
    Done(Box<FileSummary>),
    /// Failed for good.
    Failed(String),
    /// Failed, to be tried again.
    Retry(String),
    /// Stopped by Ctrl-C: neither done nor failed.
    Stopped,
}

fn settings_of(setup: &Setup, args: &ModelArgs, format: Format) -> anyhow::Result<String> {
    let file = |p: &Option<PathBuf>| -> anyhow::Result<String> {
        Ok(match p {
            Some(p) => batch::fingerprint(p).with_context(|| p.display().to_string())?,
            None => String::new(),
        })
    };
    let model = PathBuf::from(&setup.model_name).join("model.safetensors");
    let model_fp = batch::fingerprint(&model).unwrap_or_default();
    let pipeline = match &args.pipeline {
        Some(p) => std::fs::read(p).with_context(|| p.display().to_string())?,
        None => Vec::new(),
    };
    let o = &setup.options;
    let what = format!(
        "model={model_fp} beam={} language={:?} task={:?} profile={} ocr={} batch={} format={}",
        o.decode.beam_size,
        o.decode.language,
        o.decode.task,
        setup.prepared.profile_name,
        setup.prepared.ocr_on,
        o.batch_size,
        format.extension()
    );
    let (context, adapter) = (file(&args.context)?, file(&args.adapter)?);
    Ok(batch::digest([what.as_bytes(), context.as_bytes(), adapter.as_bytes(), &pipeline]))
}

/// The settings of `item`: the run's, and the item's own language and context.
fn item_settings(run: &str, item: &Item) -> String {
    let context = item.context.as_ref().and_then(|c| batch::fingerprint(c).ok()).unwrap_or_default();
    match (&item.language, item.context.is_some()) {
        (None, false) => run.to_string(),
        _ => batch::digest([run.as_bytes(), item.language.as_deref().unwrap_or("").as_bytes(), context.as_bytes()]),
    }
}

fn work(args: BatchRunArgs) -> anyhow::Result<()> {
    let Some(source) = args.source.clone() else { bail!("no source given (see subtitle batch --help)") };
    let Some(out) = args.out.clone() else { bail!("--out DIR is required: the outputs and the ledgers go there") };
    let format = args.format.unwrap_or(Format::Srt);
    let queue = QueueUrl::parse(&source);
    if queue.is_none() && source.starts_with("redis://") {
        bail!("{source}: expected redis://HOST:PORT/NAME");
    }
    let source_path = PathBuf::from(&source);
    if queue.is_none() && !source_path.exists() {
        bail!("{source}: no such file or directory");
    }
    std::fs::create_dir_all(&out).with_context(|| format!("--out {}", out.display()))?;
    let first = match queue {
        Some(_) => out.clone(),
        None => source_path.clone(),
    };
    let prepared = Prepared::new(&args.model, PipelineConfig::default_file, &first)?;
    let setup = Setup::new(prepared, &args.model)?;
    let model = setup.model()?;
    let settings = settings_of(&setup, &args.model, format)?;
    let shutdown = Shutdown::default();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || s.raise());
    }
    let shard = shard_of(&args)?;
    let worker = ledger::worker_name();
    let ledger_name = match (&queue, shard) {
        (Some(_), _) => format!("worker-{}", worker.replace([':', '/'], "-")),
        (None, s) => s.name(),
    };
    let ctx = Ctx {
        setup: &setup,
        model,
        out: out.clone(),
        format,
        settings,
        worker,
        timeout: args.timeout.map(Duration::from_secs_f64),
        max_tries: args.retries + 1,
        ledger: Mutex::new(Ledger::open(&out, &ledger_name)?),
        quiet: args.common.quiet,
        strict: args.files.strict,
    };
    let jobs = args.files.jobs as usize;
    let tally = match queue {
        Some(url) => from_queue(&ctx, &url, Duration::from_secs_f64(args.lease), jobs, &shutdown)?,
        None => from_list(&ctx, &source_path, shard, args.retry_failed, jobs, &shutdown)?,
    };
    if shutdown.is_raised() {
        return Err(Error::Interrupted.into());
    }
    if !ctx.quiet {
        eprintln!("{}", tally.line());
    }
    match tally.failed {
        0 => Ok(()),
        n => bail!("{n} items failed (subtitle batch status {} lists them)", out.display()),
    }
}

/// `--shard`, else the array index of Slurm or Kubernetes with the count given or Slurm's.
fn shard_of(args: &BatchRunArgs) -> anyhow::Result<Shard> {
    if let Some(s) = args.shard {
        return Ok(s);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(index) = env("SLURM_ARRAY_TASK_ID").or_else(|| env("JOB_COMPLETION_INDEX")) else {
        if args.shards.is_some() {
            bail!("--shards needs an index: --shard I/N, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX");
        }
        return Ok(Shard::WHOLE);
    };
    let count = match args.shards {
        Some(n) => n.to_string(),
        None => env("SLURM_ARRAY_TASK_COUNT")
            .context("JOB_COMPLETION_INDEX is set: give the number of shards with --shards (the Job's completions)")?,
    };
    Shard::parse(&format!("{index}/{count}")).map_err(|e| anyhow::anyhow!("shard from the environment: {e}"))
}

/// What a worker did this run.
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    already: usize,
    failed: usize,
    failed_now: AtomicUsize,
    skipped: usize,
    media_s: Mutex<f64>,
    started: Option<Instant>,
}

impl Tally {
    fn line(&self) -> String {
        let secs = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let media = *self.media_s.lock().unwrap();
        format!(
            "batch: {} done now ({:.1} media min in {:.1} min), {} done before, {} failed, {} skipped",
            self.done.load(Ordering::SeqCst),
            media / 60.0,
            secs / 60.0,
            self.already,
            self.failed,
            self.skipped
        )
    }
}

fn from_list(
    ctx: &Ctx,
    source: &Path,
    shard: Shard,
    retry_failed: bool,
    jobs: usize,
    shutdown: &Shutdown,
) -> anyhow::Result<Tally> {
    let video = &ctx.setup.prepared.pipeline.video;
    let all = batch::list(source, Some(&ctx.out))?;
    let ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    // Outputs from every id, not only this shard's: which names collide is the same in each.
    let outputs = batch::outputs(&ctx.out, &ids, ctx.format.extension());
    let output_of: HashMap<String, Option<PathBuf>> = all.iter().map(|i| i.id.clone()).zip(outputs).collect();
    let mine = probed(source, all.iter().filter(|i| shard.holds(&i.id)).cloned().collect(), video);
    let media_s: f64 = mine.iter().filter_map(|(_, p)| if let Probe::Media(d) = p { *d } else { None }).sum();
    Plan {
        shard: shard.name(),
        items: mine.iter().map(|(i, _)| i.id.clone()).collect(),
        settings: ctx.settings.clone(),
        media_s,
    }
    .write(&ctx.out)?;
    // Each item's history is built from the records of its own settings (items of a manifest
    // may each have theirs): the records grouped once, each group read once.
    let mut by_settings: HashMap<String, Vec<ledger::Record>> = HashMap::new();
    for r in ledger::read_all(&ctx.out)? {
        by_settings.entry(r.settings.clone()).or_default().push(r);
    }
    let mut histories: HashMap<String, HashMap<String, (String, ledger::History)>> = HashMap::new();
    let mut tally = Tally { started: Some(Instant::now()), ..Tally::default() };
    let mut todo: Vec<(u32, Job)> = Vec::new();
    for (item, probe) in mine {
        let settings = item_settings(&ctx.settings, &item);
        let fingerprint = match batch::fingerprint(&item.path) {
            Ok(f) => f,
            Err(e) => {
                tally.failed += 1;
                let reason = format!("{}: {e}", item.path.display());
                record_end(ctx, &item, "", &settings, 1, State::Failed, Some(reason), None, None);
                continue;
            }
        };
        let Some(output) = output_of.get(&item.id).cloned().flatten() else {
            tally.failed += 1;
            let reason = format!("{}: its id {:?} names no output file", item.path.display(), item.id);
            record_end(ctx, &item, &fingerprint, &settings, 1, State::Failed, Some(reason), None, None);
            continue;
        };
        let h = histories
            .entry(settings.clone())
            .or_insert_with(|| ledger::histories(by_settings.get(&settings).map_or(&[], Vec::as_slice), &settings))
            .get(&item.id)
            .filter(|(fp, _)| *fp == fingerprint)
            .map(|(_, h)| h.clone())
            .unwrap_or_default();
        if h.done.is_some() && output.is_file() {
            tally.already += 1;
            continue;
        }
        if let Some(end) = h.ended.as_ref().filter(|_| h.unended == 0) {
            match end.state {
                State::Skipped => tally.skipped += 1,
                _ if !retry_failed => tally.failed += 1,
                _ => {}
            }
            if end.state == State::Skipped || !retry_failed {
                continue;
            }
        }
        match probe {
            Probe::Skip(reason) => {
                tally.skipped += 1;
                record_end(ctx, &item, &fingerprint, &settings, 1, State::Skipped, Some(reason), None, None);
                continue;
            }
            Probe::Broken(reason) => {
                tally.failed += 1;
                eprintln!("failed: {reason}");
                record_end(ctx, &item, &fingerprint, &settings, h.started + 1, State::Failed, Some(reason), None, None);
                continue;
            }
            Probe::NotMedia => continue,
            Probe::Media(_) if h.unended >= ctx.max_tries => {
                tally.failed += 1;
                let reason =
                    format!("{}: the worker died on it {} times (killed, or crashed)", item.path.display(), h.unended);
                eprintln!("failed: {reason}");
                record_end(ctx, &item, &fingerprint, &settings, h.started, State::Failed, Some(reason), None, None);
                continue;
            }
            Probe::Media(d) => {
                let job = Job {
                    item,
                    output,
                    fingerprint,
                    settings,
                    attempt: h.started + 1,
                    media_s: d,
                    started: Instant::now(),
                    lease: None,
                };
                todo.push((h.unended, job));
            }
        }
    }
    // Items a worker died on go last: a poison file does not hold up the rest.
    todo.sort_by_key(|(deaths, _)| *deaths);
    let todo_media: f64 = todo.iter().filter_map(|(_, j)| j.media_s).sum();
    let count = todo.len();
    let todo = Mutex::new(todo.into_iter().map(|(_, j)| j).collect::<VecDeque<_>>());
    let progress = Progress::new(ctx.quiet, count, todo_media, tally.already);
    let next = || todo.lock().unwrap().pop_front();
    let requeue = |job: Job| todo.lock().unwrap().push_back(job);
    run_items(ctx, jobs.clamp(1, count.max(1)), shutdown, &tally, &progress, next, requeue, |_, _| true);
    progress.finish();
    tally.failed += tally.failed_now.load(Ordering::SeqCst);
    Ok(tally)
}

fn from_queue(ctx: &Ctx, url: &QueueUrl, lease: Duration, jobs: usize, shutdown: &Shutdown) -> anyhow::Result<Tally> {
    let note = ctx.out.join(ledger::DIR).join("queue");
    subtitle::atomic::write_atomic(&note, url.to_string().as_bytes())?;
    let worker = Mutex::new(Worker::join(url, &ctx.worker, lease, ctx.max_tries)?);
    let tally = Tally { started: Some(Instant::now()), ..Tally::default() };
    let progress = Progress::new(ctx.quiet, 0, 0.0, 0);
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let next = || -> Option<Job> {
        loop {
            if shutdown.is_raised() || stopped.load(Ordering::SeqCst) {
                return None;
            }
            let mut w = worker.lock().unwrap();
            let taken = match w.take() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {url}: {e}");
                    stopped.store(true, Ordering::SeqCst);
                    return None;
                }
            };
            let (lease, exhausted) = match taken {
                Taken::Drained => return None,
                Taken::Item(l) => (l, None),
                Taken::Exhausted(l, reason) => (l, Some(reason)),
            };
            let item = lease.item.clone();
            let settings = item_settings(&ctx.settings, &item);
            let fingerprint = batch::fingerprint(&item.path).unwrap_or_default();
            let output = batch::outputs(&ctx.out, &[item.id.as_str()], ctx.format.extension()).remove(0);
            let fail = |w: &mut Worker, reason: String| {
                eprintln!("failed: {reason}");
                tally.failed_now.fetch_add(1, Ordering::SeqCst);
                let _ = w.failed(&lease, &reason, true);
                let attempt = lease.attempt;
                record_end(ctx, &item, &fingerprint, &settings, attempt, State::Failed, Some(reason), None, None);
            };
            if let Some(reason) = exhausted {
                fail(&mut w, format!("{}: {reason}", item.path.display()));
                continue;
            }
            let Some(output) = output else {
                fail(&mut w, format!("{}: its id {:?} names no output file", item.path.display(), item.id));
                continue;
            };
            let media_s = match probe(&item.path, &ctx.setup.prepared.pipeline.video) {
                Probe::Media(d) => d,
                Probe::Skip(reason) => {
                    let _ = w.done(&lease);
                    record_end(
                        ctx,
                        &item,
                        &fingerprint,
                        &settings,
                        lease.attempt,
                        State::Skipped,
                        Some(reason),
                        None,
                        None,
                    );
                    continue;
                }
                Probe::Broken(reason) => {
                    fail(&mut w, reason);
                    continue;
                }
                Probe::NotMedia => {
                    fail(&mut w, format!("{}: not media this build can read", item.path.display()));
                    continue;
                }
            };
            let (stop, stopped_rx) = crossbeam_channel::bounded(1);
            if let Err(e) = w.heartbeat(&lease.message, stopped_rx) {
                eprintln!("error: {url}: {e}");
                stopped.store(true, Ordering::SeqCst);
                return None;
            }
            return Some(Job {
                attempt: lease.attempt,
                item,
                output,
                fingerprint,
                settings,
                media_s,
                started: Instant::now(),
                lease: Some((lease, stop)),
            });
        }
    };
    // A try that failed goes back on the queue, from where any worker may take it.
    let requeue = |_job: Job| {};
    let finish = |job: &Job, outcome: &Outcome| -> bool {
        let Some((lease, _)) = &job.lease else { return true };
        let mut w = worker.lock().unwrap();
        let r = match outcome {
            Outcome::Done(_) => w.done(lease),
            Outcome::Failed(reason) => w.failed(lease, reason, true).map(|_| true),
            Outcome::Retry(reason) => w.failed(lease, reason, false).map(|_| true),
            // Left pending: after the lease another worker takes it.
            Outcome::Stopped => Ok(true),
        };
        match r {
            Ok(first) => first,
            Err(e) => {
                eprintln!("error: {url}: {e}");
                false
            }
        }
    };
    run_items(ctx, jobs.max(1), shutdown, &tally, &progress, next, requeue, finish);
    progress.finish();
    if stopped.load(Ordering::SeqCst) {
        bail!("{url}: the queue could not be read");
    }
    let mut tally = tally;
    tally.failed += tally.failed_now.load(Ordering::SeqCst);
    Ok(tally)
}

#[allow(clippy::too_many_arguments)]
fn record_end(
    ctx: &Ctx,
    item: &Item,
    fingerprint: &str,
    settings: &str,
    attempt: u32,
    state: State,
    error: Option<String>,
    media_s: Option<f64>,
    wall_s: Option<f64>,
) {
    let mut r = Record::new(&item.id, state, fingerprint, settings, attempt.max(1), &ctx.worker);
    r.input = Some(item.path.clone());
    r.error = error;
    r.media_s = media_s;
    r.wall_s = wall_s;
    if let Err(e) = ctx.ledger.lock().unwrap().append(&r) {
        eprintln!("{}", error_line(&e.into()));
    }
}

/// Runs the items `next` hands out through the file pipeline, `jobs` at a time with the model
/// shared: each is recorded as started, given the time limit, checked once written, and
/// recorded as it ended. `finish` tells the queue (false: another worker finished it first, and
/// it is not recorded as done here); `requeue` takes a try to run again.
#[allow(clippy::too_many_arguments)]
fn run_items(
    ctx: &Ctx,
    jobs: usize,
    shutdown: &Shutdown,
    tally: &Tally,
    progress: &Progress,
    next: impl Fn() -> Option<Job> + Sync,
    requeue: impl Fn(Job) + Sync,
    finish: impl Fn(&Job, &Outcome) -> bool + Sync,
) {
    let setup = ctx.setup;
    let batch = setup.file_batch(ctx.model, jobs, shutdown.clone());
    let timers: Mutex<HashMap<String, (Shutdown, crossbeam_channel::Sender<()>)>> = Default::default();
    let next = || {
        let mut job = next()?;
        job.started = Instant::now();
        remove_stale_temporaries(&job.output);
        let mut r =
            Record::new(&job.item.id, State::Started, &job.fingerprint, &job.settings, job.attempt, &ctx.worker);
        r.input = Some(job.item.path.clone());
        if let Err(e) = ctx.ledger.lock().unwrap().append(&r) {
            eprintln!("{}", error_line(&e.into()));
            return None;
        }
        Some(job)
    };
    let make = |job: &Job, item_shutdown: Shutdown| -> subtitle::error::Result<subtitle::pipeline::file::FileJob> {
        if let Some(parent) = job.output.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::output(parent, e))?;
        }
        if let Some(limit) = ctx.timeout {
            // The time limit: a timer that raises the item's own flag, stopped when it ends.
            let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
            let flag = item_shutdown.clone();
            std::thread::spawn(move || {
                if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                    flag.raise();
                }
            });
            timers.lock().unwrap().insert(job.item.id.clone(), (item_shutdown.clone(), stop));
        }
        let source = subtitle::source::open(&job.item.path, &setup.prepared.pipeline.video)?;
        let mut file = setup.job(&job.item.path, source, job.output.clone(), ctx.format, item_shutdown)?;
        file.strict = ctx.strict;
        if let Some(code) = &job.item.language {
            let token = file.model.tokenizer().language_token(code);
            let token = token
                .ok_or_else(|| Error::input(&job.item.path, format!("language {code}: not a language of the model")))?;
            file.options.decode.language = Some(token);
            file.options.detect_language = false;
        }
        if let Some(path) = &job.item.context {
            file.context.add_file(path, file.model.tokenizer())?;
        }
        Ok(file)
    };
    let done = |job: Job, result: subtitle::error::Result<FileSummary>| {
        let timer = timers.lock().unwrap().remove(&job.item.id);
        let timed_out = timer.as_ref().is_some_and(|(flag, _)| flag.is_raised()) && !shutdown.is_raised();
        drop(timer);
        let path = job.item.path.display().to_string();
        let outcome = match result.and_then(|s| check_output(&job.output, ctx.format).map(|_| s)) {
            Ok(summary) => Outcome::Done(Box::new(summary)),
            Err(Error::Interrupted) if timed_out => {
                let limit = ctx.timeout.map_or(0.0, |t| t.as_secs_f64());
                Outcome::Failed(format!("{path}: stopped at the time limit of {limit} s a file"))
            }
            Err(Error::Interrupted) => Outcome::Stopped,
            // An input that cannot be read fails the same way every time.
            Err(e @ Error::Input { .. }) => Outcome::Failed(e.to_string()),
            Err(e) => {
                let line = match e {
                    Error::Internal(_) => format!("{path}: {e}"),
                    e => e.to_string(),
                };
                if job.attempt < ctx.max_tries {
                    Outcome::Retry(line)
                } else {
                    Outcome::Failed(line)
                }
            }
        };
        let first = finish(&job, &outcome);
        let wall = job.started.elapsed().as_secs_f64();
        let (fp, st, attempt) = (&job.fingerprint, &job.settings, job.attempt);
        match &outcome {
            Outcome::Done(summary) if first => {
                let media = summary.duration.map(|d| d.secs_f64()).or(job.media_s);
                let mut r = Record::new(&job.item.id, State::Done, fp, st, attempt, &ctx.worker);
                (r.input, r.output, r.media_s, r.wall_s) =
                    (Some(job.item.path.clone()), Some(job.output.clone()), media, Some(wall));
                let unlike = setup.unlike_the_model(summary);
                let notes: Vec<String> = [
                    summary.truncated.map(|t| t.to_string()),
                    unlike
                        .then(|| "the speech does not sound like English to the model: another language?".to_string()),
                ]
                .into_iter()
                .flatten()
                .collect();
                r.warning = (!notes.is_empty()).then(|| notes.join("; "));
                if let Err(e) = ctx.ledger.lock().unwrap().append(&r) {
                    eprintln!("{}", error_line(&e.into()));
                }
                tally.done.fetch_add(1, Ordering::SeqCst);
                *tally.media_s.lock().unwrap() += media.unwrap_or(0.0);
                let line = setup.truncation_warning(&job.item.path, summary);
                progress.item(media.unwrap_or(0.0), line.or_else(|| setup.language_note(&job.item.path, summary)));
                // A note to read with -v: in an archive it would bury the failures.
                if let Some(note) = setup.over_speed_note(&job.item.path, summary) {
                    tracing::info!("{note}");
                }
            }
            Outcome::Done(_) => progress.item(0.0, Some(format!("note: {path}: another worker finished it first"))),
            Outcome::Failed(reason) | Outcome::Retry(reason) => {
                let state = match outcome {
                    Outcome::Retry(_) => State::Retry,
                    _ => State::Failed,
                };
                let (media, error) = (job.media_s, Some(reason.clone()));
                record_end(ctx, &job.item, fp, st, attempt, state, error, media, Some(wall));
                if state == State::Failed {
                    tally.failed_now.fetch_add(1, Ordering::SeqCst);
                    progress.item(media.unwrap_or(0.0), Some(format!("failed: {reason}")));
                    return;
                }
                progress.println(format!("failed (try {attempt} of {}): {reason}", ctx.max_tries));
                let mut again = job;
                again.attempt += 1;
                again.lease = None;
                requeue(again);
            }
            // Stopped by a signal (Ctrl-C, or SIGTERM from Slurm or Kubernetes): ended, not a
            // death, so a rerun takes it up without counting it towards a poison file.
            Outcome::Stopped => {
                let reason = format!("{path}: stopped (interrupted) before it was done");
                record_end(ctx, &job.item, fp, st, attempt, State::Retry, Some(reason), job.media_s, Some(wall));
            }
        }
    };
    run_files(batch, next, make, done);
}

/// Checks that `output` is whole: it parses as its format.
fn check_output(output: &Path, format: Format) -> subtitle::error::Result<()> {
    match format {
        Format::Json => {
            let bytes = std::fs::read(output).map_err(|e| Error::output(output, e))?;
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| Error::output(output, format!("written wrong: {e}")))?;
        }
        _ => {
            subtitle::check::read(output).map_err(|e| Error::output(output, format!("written wrong: {e}")))?;
        }
    }
    Ok(())
}

/// Removes what a killed run left of `output`: the temporary files it was being written to.
fn remove_stale_temporaries(output: &Path) {
    let (Some(dir), Some(name)) = (output.parent(), output.file_name()) else { return };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The progress bar over files and media hours (on a terminal), or a line every 30 s (in a log).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    files: (AtomicUsize, usize),
    media: Mutex<(f64, f64)>,
    last_line: Mutex<Instant>,
    quiet: bool,
}

impl Progress {
    fn new(quiet: bool, files: usize, media_s: f64, before: usize) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new((media_s * 1000.0) as u64);
            let style = "{spinner} [{elapsed_precise}] {wide_bar} {msg} (eta {eta})";
            bar.set_style(indicatif::ProgressStyle::with_template(style).expect("valid template"));
            bar
        });
        if !quiet && before > 0 {
            eprintln!("{before} items done before: passed over");
        }
        Progress {
            bar,
            files: (AtomicUsize::new(0), files),
            media: Mutex::new((0.0, media_s)),
            last_line: Mutex::new(Instant::now()),
            quiet,
        }
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// One item ended, with `media_s` of media and perhaps a line to say.
    fn item(&self, media_s: f64, line: Option<String>) {
        if let Some(line) = line {
            self.println(line);
        }
        let n = self.files.0.fetch_add(1, Ordering::SeqCst) + 1;
        let mut m = self.media.lock().unwrap();
        m.0 += media_s;
        let files = match self.files.1 {
            0 => format!("{n} files"),
            total => format!("{n}/{total} files"),
        };
        let msg = format!("{files}, {:.2}/{:.2} media h", m.0 / 3600.0, m.1 / 3600.0);
        match &self.bar {
            Some(bar) => {
                bar.set_position((m.0 * 1000.0) as u64);
                bar.set_message(msg);
            }
            None if !self.quiet => {
                let mut last = self.last_line.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(30) {
                    *last = Instant::now();
                    eprintln!("progress: {msg}");
                }
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn status(dir: &Path, json: bool) -> anyhow::Result<()> {
    if !dir.join(ledger::DIR).is_dir() {
        bail!("{}: no batch has run here (no {} directory)", dir.display(), ledger::DIR);
    }
    let records = ledger::read_all(dir)?;
    let plans = Plan::read_all(dir)?;
    let mut known: Vec<String> = plans.iter().flat_map(|p| p.items.iter().cloned()).collect();
    let mut shards: Vec<String> = plans.iter().map(|p| p.shard.clone()).collect();
    let mut queue_counts = None;
    if let Ok(url) = std::fs::read_to_string(dir.join(ledger::DIR).join("queue")) {
        if let Some(url) = QueueUrl::parse(url.trim()) {
            match queue::counts(&url) {
                Ok(c) => {
                    known.extend(c.ids.iter().cloned());
                    queue_counts = Some((url.to_string(), c));
                }
                Err(e) => eprintln!("note: {url}: {e}: counting from the ledgers alone"),
            }
            shards.push(url.to_string());
        }
    }
    known.sort();
    known.dedup();
    let s = ledger::summarize(&records, &known, shards);
    if json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!("{} items: {} done, {} failed, {} skipped, {} pending", s.items, s.done, s.failed, s.skipped, s.pending);
    println!(
        "{:.2} media h done in {:.2} h: {:.0} files/h, {:.2} media h/h",
        s.media_hours_done, s.elapsed_hours, s.files_per_hour, s.media_hours_per_hour
    );
    if let Some((url, c)) = queue_counts {
        println!("queue {url}: {} items, {} done, {} failed", c.ids.len(), c.done, c.failed);
    }
    if s.done_twice > 0 {
        println!("warning: {} items were done more than once", s.done_twice);
    }
    for f in &s.failures {
        println!("failed: {} ({} tries): {}", f.id, f.attempts, f.error);
    }
    for (id, w) in &s.warnings {
        println!("warning: {id}: {w}");
    }
    Ok(())
}
