//! The file pipeline: decode -> preprocess -> model -> cues -> sink, one thread a stage, and
//! beside it preprocess -> visual -> model (stills to on-screen text) when there is a visual
//! stage.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::PipelineConfig;
use crate::context::Context;
use crate::cue::{CueStage, Heard, Profile, Subtitle};
use crate::error::{Error, Result};
use crate::infer::{ModelInput, ModelStage, ModelTranscriber, TranscribeOptions, Transcriber};
use crate::pipeline::shared::{spawn_shared_batcher, ShareConfig, ShareStats};
use crate::pipeline::{
    channel, first_error, joined, spawn_merge_stage, spawn_sink, spawn_source, spawn_split_stage, spawn_stage, Leash,
    Pace, Shutdown,
};
use crate::preprocess::PreprocessStage;
use crate::sink::{Format, JsonMeta, RunStats, SubtitleSink, Target};
use crate::source::{MediaSource, Truncation};
use crate::time::Ts;
use crate::visual::VisualStage;

/// One input to one output.
pub struct FileJob {
    pub input: PathBuf,
    /// `input`, already opened (with `pipeline.video`), so a bad file fails before the model is needed.
    pub source: Box<dyn MediaSource>,
    pub output: PathBuf,
    pub format: Format,
    /// The model, or a seat at the model shared with the inputs run alongside ([`run_files`]).
    pub model: Arc<dyn Transcriber>,
    /// What the JSON output names as the model.
    pub model_name: String,
    pub options: TranscribeOptions,
    pub pipeline: PipelineConfig,
    /// Subtitle rules for the cues.
    pub profile: Profile,
    /// Terms to expect (`--context`); on-screen text is added as it is read.
    pub context: Context,
    /// On-screen text and picture tokens, when asked for; only run when the input has video.
    pub visual: Option<VisualStage>,
    pub shutdown: Shutdown,
    /// An input that ends well before the length it states fails, and nothing is written
    /// (otherwise the summary tells it).
    pub strict: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct FileSummary {
    pub duration: Option<Ts>,
    pub cues: usize,
    /// Cues shown for less time than the profile's reading speed asks (dense speech).
    pub over_speed: usize,
    pub language: Option<String>,
    pub stats: RunStats,
    /// The audio ended well before the length the input states.
    pub truncated: Option<Truncation>,
    /// The words heard, and how sure the model was of them.
    pub heard: Heard,
}

/// Runs `job`; `progress` is told the media time reached and, once, the input's duration.
/// `shared`: the shared model's counters, when the job sits at one.
pub fn run_file(
    job: FileJob,
    shared: Option<&ShareStats>,
    progress: impl Fn(Option<Ts>, Ts) + Send + Sync,
) -> Result<FileSummary> {
    let mut source = job.source;
    let duration = source.duration();
    let fps = source.frame_rate().unwrap_or(job.pipeline.cues.audio_only_fps);
    let target = Target::prepare(&job.output)?;
    let sink = SubtitleSink::new(job.format, target);
    let ch = &job.pipeline.channels;
    let shutdown = job.shutdown.clone();
    // Without video there are no stills, and the model stage must not wait for their text.
    let visual = job.visual.filter(|_| source.frame_rate().is_some() && job.pipeline.video.stills_fps > 0.0);
    // With a visual stage, the video is read by a demuxer and a thread of its own, so that the
    // audio reaches the model while the picture is decoded (on HD video, decoding it takes
    // longer than the model's work): its shot changes go to the model on a channel of their
    // own, each before the on-screen text of the stills after it. (Without one, the model does
    // not wait for the video, and its shot changes keep their place among the audio's features.)
    let video_source = match &visual {
        Some(_) => source.take_video()?,
        None => None,
    };
    let model_stage =
        ModelStage::new(Arc::clone(&job.model), job.options.clone(), job.input.clone(), job.context, visual.is_some());
    let preprocess = |stills: bool| PreprocessStage::new(job.model.dims().n_mels, job.pipeline.shots.clone(), stills);
    let stills_unread = Arc::new(AtomicU64::new(0));

    let (results, video_results, stills_skipped) = std::thread::scope(|s| {
        let (l_dec, r_dec) = channel(ch.decode_to_preprocess);
        let (l_pre, r_pre) = channel(ch.preprocess_to_model);
        let (l_mod, r_mod) = channel(ch.model_to_cues);
        let (l_cue, r_cue) = channel(ch.cues_to_sink);
        // The audio waits for the video to come within a batch of windows and one more of it.
        let leash = video_source.is_some().then(|| {
            let windows = job.options.batch_size.max(1) as i64 + 1;
            Leash::new(Ts(crate::preprocess::mel::WINDOW.ms() * windows))
        });
        let pace = leash.clone().map_or(Pace::Free, Pace::Follows);
        let dec = spawn_source(s, source, l_dec, pace, shutdown.clone());
        // The stills channel and the text channel exist only with a visual stage to read and
        // write them.
        let unread = || Arc::clone(&stills_unread);
        let (pre, video, vis, model, skipped) = match visual {
            Some(v) => {
                let (l_still, r_still) = channel(ch.preprocess_to_visual);
                let (l_text, r_text) = channel(ch.visual_to_model);
                let skipped = l_still.dropped();
                let (pre, video, r_shots) = match video_source {
                    Some(video_source) => {
                        let (l_vdec, r_vdec) = channel(ch.decode_to_preprocess);
                        let (l_shots, r_shots) = channel(ch.preprocess_to_model);
                        let pace = Pace::Leads(leash.clone().expect("made with the video's source"));
                        let vdec = spawn_source(s, video_source, l_vdec, pace, shutdown.clone());
                        let vpre = spawn_split_stage(
                            s,
                            preprocess(true),
                            r_vdec,
                            l_shots,
                            Some(l_still),
                            unread(),
                            shutdown.clone(),
                        );
                        let pre =
                            spawn_split_stage(s, preprocess(false), r_dec, l_pre, None, unread(), shutdown.clone());
                        (pre, Some((vdec, vpre)), Some(r_shots))
                    }
                    None => {
                        let pre = spawn_split_stage(
                            s,
                            preprocess(true),
                            r_dec,
                            l_pre,
                            Some(l_still),
                            unread(),
                            shutdown.clone(),
                        );
                        (pre, None, None)
                    }
                };
                let vis = spawn_stage(s, v, r_still, l_text, shutdown.clone());
                let model = spawn_merge_stage(
                    s,
                    model_stage,
                    r_pre,
                    r_shots,
                    (r_text, ModelInput::ScreenEnd),
                    l_mod,
                    shutdown.clone(),
                );
                (pre, video, Some(vis), model, skipped)
            }
            None => {
                let pre = spawn_split_stage(s, preprocess(false), r_dec, l_pre, None, unread(), shutdown.clone());
                let model = spawn_stage_from(s, model_stage, r_pre, l_mod, shutdown.clone());
                (pre, None, None, model, Arc::new(AtomicU64::new(0)))
            }
        };
        let cue = spawn_stage(s, CueStage::new(job.profile.clone(), fps), r_mod, l_cue, shutdown.clone());
        let progress = &progress;
        let sink = spawn_sink(s, sink, r_cue, shutdown.clone(), move |item: &Subtitle| {
            if let Subtitle::Segment(seg) = item {
                progress(duration, seg.span.end)
            }
        });
        let input = &job.input;
        let video = video.map(|(vdec, vpre)| (joined(vdec.join(), input), joined(vpre.join(), input)));
        let results = (
            joined(dec.join(), input),
            joined(pre.join(), input),
            vis.map(|v| joined(v.join(), input)).transpose(),
            joined(model.join(), input),
            joined(cue.join(), input),
            joined(sink.join(), input),
        );
        (results, video, skipped.load(Ordering::Relaxed))
    });
    // A model that failed to load is the run's error, not what the stages made of its absence.
    job.model.ready()?;
    // The video's own source, when it had one: its errors are the run's, its statistics the
    // video's.
    let (video_source, video_errors) = match video_results {
        Some((Ok(v), Ok(_))) => (Some(v), Vec::new()),
        Some((v, p)) => (None, [v.err(), p.err()].into_iter().flatten().collect()),
        None => (None, Vec::new()),
    };
    let (source, pre, visual, model, cue, sink) = match results {
        (Ok(d), Ok(p), Ok(v), Ok(m), Ok(c), Ok(k)) if video_errors.is_empty() => (d, p, v, m, c, k),
        (d, p, v, m, c, k) => {
            let errors = [d.err(), p.err(), v.err(), m.err(), c.err(), k.err()].into_iter().flatten();
            return Err(first_error(errors.chain(video_errors)).unwrap_or(Error::Interrupted));
        }
    };
    let (stills_read, stills_without_text, busy) = visual.as_ref().map(|v| v.text_read()).unwrap_or_default();
    if stills_read > 0 {
        let seconds = busy.as_secs_f64();
        tracing::info!(stills = stills_read, without_letters = stills_without_text, seconds, "on-screen text read");
    }
    let pictures = visual.as_ref().map_or(0, |v| v.pictures);
    if let Some(v) = visual.as_ref().filter(|v| v.pictures > 0) {
        tracing::info!(pictures = v.pictures, seconds = v.picture_busy.as_secs_f64(), "pictures encoded");
    }
    if stills_skipped > 0 && stills_read > 0 {
        tracing::warn!(stills_skipped, "on-screen text fell behind: stills were skipped");
    }
    let truncated = source.truncation();
    let duration = source.length_after_jumps().or(duration);
    if let Some(t) = truncated.filter(|_| job.strict) {
        return Err(Error::Decode { path: job.input.clone(), at: t.reached, reason: format!("{t} (--strict)") });
    }
    let stats = RunStats {
        windows: model.windows(),
        stills_read,
        stills_without_text,
        pictures,
        stills_skipped,
        skipped_packets: source.skipped_packets() + video_source.as_ref().map_or(0, |v| v.skipped_packets()),
        video: video_source.as_ref().unwrap_or(&source).video_stats(),
        gaps: pre.gaps,
        gap_s: pre.gap_time.secs_f64(),
        batches: model.batch_sizes().to_vec(),
        shared_batch_inputs: shared.map(|s| s.max_inputs.load(Ordering::Relaxed)),
        shared_encode_inputs: shared.map(|s| s.max_encode_inputs.load(Ordering::Relaxed)),
        truncated_at_s: truncated.map(|t| t.reached.secs_f64()),
    };
    let language = model.language().map(|l| l.code.clone());
    let meta = JsonMeta {
        input: job.input.display().to_string(),
        model: job.model_name.clone(),
        language: language.clone(),
        language_probability: model.language().map(|l| l.probability),
        duration_s: duration.map(Ts::secs_f64),
        shot_changes: Vec::new(),
        stats: stats.clone(),
    };
    let cues = sink.cue_count();
    sink.commit(&meta)?;
    Ok(FileSummary { duration, cues, over_speed: cue.over_speed, language, stats, truncated, heard: cue.heard })
}

/// [`spawn_stage`] for a stage whose input is made from what the channel carries.
fn spawn_stage_from<'s, 'e: 's, A: Send + 'e, S: crate::flow::Stage + 'e>(
    scope: &'s std::thread::Scope<'s, 'e>,
    stage: S,
    input: crossbeam_channel::Receiver<A>,
    link: crate::pipeline::Link<S::Out>,
    shutdown: Shutdown,
) -> std::thread::ScopedJoinHandle<'s, Result<S>>
where
    S::In: From<A>,
{
    crate::pipeline::spawn_with(
        scope,
        stage,
        move || input.recv().ok().map(|a| crate::pipeline::Next::Item(S::In::from(a))),
        move |o| link.send(o),
        shutdown,
    )
}

/// Several inputs, each to its own output, run `jobs` at a time with one model.
pub struct FileBatch {
    /// Inputs run at once, at most.
    pub jobs: usize,
    pub model: ModelTranscriber,
    /// Batched mode: the inputs running at once decode their chunks together.
    pub share: Option<ShareConfig>,
    /// The run's flag (Ctrl-C); each input gets a child of it.
    pub shutdown: Shutdown,
}

/// Runs `batch` over the inputs `next` hands out, until it has none: `make` opens one and builds
/// its job (an error is that input's), `done` is told each input's result as it ends. One input
/// failing, even by a panic, does not stop the others; Ctrl-C stops them all, and no input starts
/// after it.
pub fn run_files<T: Send>(
    batch: FileBatch,
    next: impl Fn() -> Option<T> + Sync,
    make: impl Fn(&T, Shutdown) -> Result<FileJob> + Sync,
    done: impl Fn(T, Result<FileSummary>) + Sync,
) {
    let jobs = batch.jobs.max(1);
    std::thread::scope(|s| {
        let shared = batch.share.map(|cfg| {
            let cfg = ShareConfig { inputs: jobs, ..cfg };
            spawn_shared_batcher(s, batch.model.clone(), cfg)
        });
        // The workers' scope ends before the shared model is dropped: they borrow it.
        std::thread::scope(|w| {
            for n in 0..jobs {
                let (next, shared, make, done, batch) = (&next, &shared, &make, &done, &batch);
                // Seated before the worker starts and while its input opens: the shared model
                // waits (up to its wait) for every worker's first batch, not only the quickest.
                let mut seat = shared.as_ref().map(|s| s.seat());
                std::thread::Builder::new()
                    .name(format!("input-{n}"))
                    .spawn_scoped(w, move || loop {
                        if batch.shutdown.is_raised() {
                            return;
                        }
                        let Some(item) = next() else { return };
                        let seat = seat.take().or_else(|| shared.as_ref().map(|s| s.seat()));
                        let run = || {
                            make(&item, batch.shutdown.child()).and_then(|mut job| {
                                if let Some(seat) = seat {
                                    job.model = seat;
                                }
                                run_file(job, shared.as_ref().map(|s| &*s.stats), |_, _| {})
                            })
                        };
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|p| {
                            Err(Error::Internal(format!("panicked: {}", crate::error::panic_message(&*p))))
                        });
                        done(item, result);
                    })
                    .expect("spawning a thread");
            }
        });
        // Its thread ends once the batcher and every seat are gone.
        drop(shared);
    });
}
