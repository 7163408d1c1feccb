//! `subtitle train`: trains a fusion adapter.

use subtitle::config::PipelineConfig;
use subtitle::train::{TrainConfig, TrainJob};
use subtitle::visual::ocr::OcrReader;
use subtitle::weights::{self, LoadOptions};

use crate::app::cli::{Switch, TrainArgs};
use crate::app::setup::{kernels, ocr_by_default};

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let mut config = TrainConfig::load(args.config.as_deref())?;
    config.epochs = args.epochs.unwrap_or(config.epochs);
    config.lr = args.lr.unwrap_or(config.lr);
    config.batch = args.batch.map_or(config.batch, |b| b as usize);
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
    let images = weights::load_image_encoder(&weights::resolve("dinov2")?, &device)?;
    let dir = weights::resolve(&args.model)?;
    let model = weights::load_whisper(&dir, &device, LoadOptions { kernels: kernels(&device), training: true })?;
    let tokenizer = weights::load_tokenizer(&dir.join("tokenizer.json"))?;
    let out = args.out.clone();
    let history = subtitle::train::train(TrainJob {
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
