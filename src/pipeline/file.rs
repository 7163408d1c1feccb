//! The file pipeline: decode -> preprocess -> model -> cues -> sink, one thread a stage.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cue::{CueBatch, CueStage};
use crate::error::{Error, Result};
use crate::infer::{TranscribeOptions, TranscribeStage, WhisperTokenizer};
use crate::model::LoadedModel;
use crate::pipeline::{channel, first_error, spawn_sink, spawn_source, spawn_stage, PipelineConfig, Shutdown};
use crate::preprocess::PreprocessStage;
use crate::sink::{Format, JsonMeta, SubtitleSink, Target};
use crate::source::MediaSource;
use crate::time::Ts;

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
    pub shutdown: Shutdown,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct FileSummary {
    pub duration: Option<Ts>,
    pub cues: usize,
    pub language: Option<String>,
}

/// Runs `job`; `progress` is told the media time reached and, once, the input's duration.
pub fn run_file(job: FileJob, progress: impl Fn(Option<Ts>, Ts) + Send + Sync) -> Result<FileSummary> {
    let source = job.source;
    let duration = source.duration();
    let target = Target::prepare(&job.output)?;
    let sink = SubtitleSink::new(job.format, target);
    let ch = &job.pipeline.channels;
    let shutdown = job.shutdown.clone();
    let n_mels = job.model.config.dims.n_mels;
    let model_stage = TranscribeStage::new(
        Arc::clone(&job.model),
        Arc::clone(&job.tokenizer),
        job.options.clone(),
        job.input.clone(),
    );

    let results = std::thread::scope(|s| {
        let (l_dec, r_dec) = channel(ch.decode_to_preprocess, ch.when_full);
        let (l_pre, r_pre) = channel(ch.preprocess_to_model, ch.when_full);
        let (l_mod, r_mod) = channel(ch.model_to_cues, ch.when_full);
        let (l_cue, r_cue) = channel(ch.cues_to_sink, ch.when_full);
        let dec = spawn_source(s, source, l_dec, shutdown.clone());
        let pre = spawn_stage(s, PreprocessStage::new(n_mels), r_dec, l_pre, shutdown.clone());
        let model = spawn_stage(s, model_stage, r_pre, l_mod, shutdown.clone());
        let cue = spawn_stage(s, CueStage::new(job.pipeline.cues.clone()), r_mod, l_cue, shutdown.clone());
        let progress = &progress;
        let sink =
            spawn_sink(s, sink, r_cue, shutdown.clone(), move |b: &CueBatch| progress(duration, b.segment.span.end));
        let input = &job.input;
        (
            joined(dec.join(), input),
            joined(pre.join(), input).map(|_| ()),
            joined(model.join(), input),
            joined(cue.join(), input).map(|_| ()),
            joined(sink.join(), input),
        )
    });
    let (model, sink) = match results {
        (Ok(()), Ok(()), Ok(model), Ok(()), Ok(sink)) => (model, sink),
        (d, p, m, c, k) => {
            let errors = [d.err(), p.err(), m.err(), c.err(), k.err()];
            return Err(first_error(errors.into_iter().flatten()).unwrap_or(Error::Interrupted));
        }
    };
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
    Ok(FileSummary { duration, cues, language })
}

/// A stage's result; a panic becomes an error naming the input rather than a second panic.
fn joined<T>(r: std::thread::Result<Result<T>>, input: &std::path::Path) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::input(input, "internal error: a pipeline stage panicked")))
}
