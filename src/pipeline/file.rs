//! The file pipeline: decode -> preprocess -> model -> cues -> sink, one thread a stage.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::context::Context;
use crate::cue::{CueStage, Profile, Subtitle};
use crate::error::{Error, Result};
use crate::infer::{SharedModel, TranscribeOptions, TranscribeStage, WhisperTokenizer};
use crate::model::LoadedModel;
use crate::pipeline::shared::{spawn_shared_batcher, ShareConfig};
use crate::pipeline::{
    channel, first_error, spawn_merge_stage, spawn_sink, spawn_source, spawn_split_stage, spawn_stage, PipelineConfig,
    Shutdown,
};
use crate::preprocess::PreprocessStage;
use crate::sink::{Format, JsonMeta, SubtitleSink, Target};
use crate::source::MediaSource;
use crate::time::Ts;
use crate::visual::VisualStage;

/// One input to one output.
pub struct FileJob {
    pub input: PathBuf,
    /// `input`, already opened (with `pipeline.video`), so a bad file fails before the model loads.
    pub source: Box<dyn MediaSource>,
    pub output: PathBuf,
    pub format: Format,
    pub model: Arc<LoadedModel>,
    pub tokenizer: Arc<WhisperTokenizer>,
    pub options: TranscribeOptions,
    pub pipeline: PipelineConfig,
    /// Subtitle rules for the cues.
    pub profile: Profile,
    /// Terms to expect (`--context`); on-screen text is added as it is read.
    pub context: Context,
    /// Reads on-screen text, when asked for and the input has video.
    /// On-screen text and picture tokens; `None` for the audio-only model.
    pub visual: Option<VisualStage>,
    pub shutdown: Shutdown,
    /// Batched mode: the decoder shared with the inputs run alongside ([`run_files`]).
    pub shared: Option<Box<dyn SharedModel>>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct FileSummary {
    pub duration: Option<Ts>,
    pub cues: usize,
    /// Cues shown for less time than the profile's reading speed asks (dense speech).
    pub over_speed: usize,
    pub language: Option<String>,
    /// Stills whose on-screen text was read, and stills skipped because that stage was behind.
    pub stills_read: usize,
    pub stills_skipped: u64,
}

/// Runs `job`; `progress` is told the media time reached and, once, the input's duration.
pub fn run_file(job: FileJob, progress: impl Fn(Option<Ts>, Ts) + Send + Sync) -> Result<FileSummary> {
    let source = job.source;
    let duration = source.duration();
    let fps = source.frame_rate().unwrap_or(job.pipeline.cues.audio_only_fps);
    let target = Target::prepare(&job.output)?;
    let sink = SubtitleSink::new(job.format, target);
    let ch = &job.pipeline.channels;
    let shutdown = job.shutdown.clone();
    let n_mels = job.model.config.dims.n_mels;
    // Without video there are no stills, and the model stage must not wait for their text.
    let visual = job.visual.filter(|_| source.frame_rate().is_some() && job.pipeline.video.stills_fps > 0.0);
    let mut model_stage = TranscribeStage::new(
        Arc::clone(&job.model),
        Arc::clone(&job.tokenizer),
        job.options.clone(),
        job.input.clone(),
        job.context,
        visual.is_some(),
    );
    if let Some(shared) = job.shared {
        model_stage = model_stage.with_shared(shared);
    }
    let preprocess = PreprocessStage::new(n_mels, job.pipeline.shots.clone(), job.pipeline.stills.clone());

    let (results, stills_skipped) = std::thread::scope(|s| {
        let (l_dec, r_dec) = channel(ch.decode_to_preprocess, ch.when_full);
        let (l_pre, r_pre) = channel(ch.preprocess_to_model, ch.when_full);
        let (l_still, r_still) = channel(ch.preprocess_to_visual, ch.when_full);
        let (l_text, r_text) = channel(ch.visual_to_model, ch.when_full);
        let (l_mod, r_mod) = channel(ch.model_to_cues, ch.when_full);
        let (l_cue, r_cue) = channel(ch.cues_to_sink, ch.when_full);
        let skipped = l_still.dropped();
        let dec = spawn_source(s, source, l_dec, shutdown.clone());
        let pre = spawn_split_stage(s, preprocess, r_dec, l_pre, l_still, shutdown.clone());
        // Without a reader the text channel closes at once, and any stills pile up unread in
        // their channel (kept open: the preprocess stage drops what does not fit).
        let (visual, _unread) = match visual {
            Some(v) => (Some(spawn_stage(s, v, r_still, l_text, shutdown.clone())), None),
            None => {
                drop(l_text);
                (None, Some(r_still))
            }
        };
        let model = spawn_merge_stage(s, model_stage, r_pre, r_text, l_mod, shutdown.clone());
        let cue = spawn_stage(s, CueStage::new(job.profile.clone(), fps), r_mod, l_cue, shutdown.clone());
        let progress = &progress;
        let sink = spawn_sink(s, sink, r_cue, shutdown.clone(), move |item: &Subtitle| {
            if let Subtitle::Segment(seg) = item {
                progress(duration, seg.span.end)
            }
        });
        let input = &job.input;
        let results = (
            joined(dec.join(), input),
            joined(pre.join(), input).map(|_| ()),
            visual.map(|v| joined(v.join(), input)).transpose(),
            joined(model.join(), input),
            joined(cue.join(), input),
            joined(sink.join(), input),
        );
        (results, skipped.load(std::sync::atomic::Ordering::Relaxed))
    });
    let (stills_read, model, cue, sink) = match results {
        (Ok(()), Ok(()), Ok(visual), Ok(model), Ok(cue), Ok(sink)) => {
            let (read, busy) = visual.as_ref().map(|v| v.text_read()).unwrap_or_default();
            if read > 0 {
                tracing::info!(stills = read, seconds = busy.as_secs_f64(), "on-screen text read");
            }
            if let Some(v) = visual.as_ref().filter(|v| v.pictures > 0) {
                tracing::info!(pictures = v.pictures, seconds = v.picture_busy.as_secs_f64(), "pictures encoded");
            }
            (read, model, cue, sink)
        }
        (d, p, o, m, c, k) => {
            let errors = [d.err(), p.err(), o.err(), m.err(), c.err(), k.err()];
            return Err(first_error(errors.into_iter().flatten()).unwrap_or(Error::Interrupted));
        }
    };
    if stills_skipped > 0 && stills_read > 0 {
        tracing::warn!(stills_skipped, "on-screen text fell behind: stills were skipped");
    }
    let language = model.language().map(|l| l.code.clone());
    let meta = JsonMeta {
        input: job.input.display().to_string(),
        model: job.model.dir.display().to_string(),
        language: language.clone(),
        language_probability: model.language().map(|l| l.probability),
        duration_s: duration.map(Ts::secs_f64),
    };
    let cues = sink.cue_count();
    sink.commit(&meta)?;
    Ok(FileSummary { duration, cues, over_speed: cue.over_speed, language, stills_read, stills_skipped })
}

/// Several inputs, each to its own output, run `jobs` at a time with one model.
pub struct FileBatch<'a> {
    pub inputs: &'a [PathBuf],
    pub jobs: usize,
    pub model: Arc<LoadedModel>,
    pub tokenizer: Arc<WhisperTokenizer>,
    /// Batched mode: the inputs running at once decode their chunks together.
    pub share: Option<ShareConfig>,
    /// The run's flag (Ctrl-C); each input gets a child of it.
    pub shutdown: Shutdown,
}

/// Runs `batch`: `make` opens input `i` of `batch.inputs` and builds its job (an error is that
/// input's), `done` is told each input's result as it ends. One input failing does not stop the others; Ctrl-C
/// stops them all, and no input starts after it.
pub fn run_files(
    batch: FileBatch,
    make: impl Fn(usize, Shutdown) -> Result<FileJob> + Sync,
    done: impl Fn(usize, Result<FileSummary>) + Sync,
) {
    let next = AtomicUsize::new(0);
    let jobs = batch.jobs.clamp(1, batch.inputs.len().max(1));
    std::thread::scope(|s| {
        let shared = batch.share.map(|cfg| {
            let cfg = ShareConfig { inputs: jobs, ..cfg };
            spawn_shared_batcher(s, Arc::clone(&batch.model), Arc::clone(&batch.tokenizer), cfg)
        });
        // The workers' scope ends before the shared model is dropped: they borrow it.
        std::thread::scope(|w| {
            for i in 0..jobs {
                let (next, shared, make, done, batch) = (&next, &shared, &make, &done, &batch);
                std::thread::Builder::new()
                    .name(format!("input-{i}"))
                    .spawn_scoped(w, move || loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= batch.inputs.len() || batch.shutdown.is_raised() {
                            return;
                        }
                        let result = make(i, batch.shutdown.child()).and_then(|mut job| {
                            job.shared = shared.as_ref().map(|d| d.seat());
                            run_file(job, |_, _| {})
                        });
                        done(i, result);
                    })
                    .expect("spawning a thread");
            }
        });
        // Its thread ends once the batcher and every seat are gone.
        drop(shared);
    });
}

/// A stage's result; a panic becomes an error naming the input rather than a second panic.
fn joined<T>(r: std::thread::Result<Result<T>>, input: &std::path::Path) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::input(input, "internal error: a pipeline stage panicked")))
}
