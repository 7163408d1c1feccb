//! `subtitle train`: adapts the fusion adapter (`model::fusion`) to (video, .srt) pairs with
//! Whisper frozen.
//!
//! Each file runs through the inference stages and is cut into the windows inference would
//! decode, with the prompt and memory inference would give them ([`data`]). Encoded windows are
//! kept in memory, so epochs only run the decoder.
//!
//! Loss per window, teacher-forced on the reference cues as Whisper timestamps and text:
//! L = L_generate (cross-entropy of the cue tokens given audio and memory)
//!   + lambda_text * L_text (the same with the audio replaced by silence: the text alone, through
//!     the memory)
//!   + lambda_multi * L_multi (InfoNCE between each window's pooled audio and its pooled
//!     pictures, the other windows of the batch as negatives).
//!
//! AdamW on the adapter only; a checkpoint (weights, optimiser moments, history) after each
//! epoch, from which `--resume` goes on.

pub mod adamw;
pub mod data;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::eval;
use crate::infer::decode::{window_seed, DecodeOptions, WindowDecoder};
use crate::infer::transcriber::fusion_memory;
use crate::model::dinov2::ImageEncoder;
use crate::model::fusion::Fusion;
use crate::model::{Encoded, LoadedModel, ModelConfig, Whisper, WhisperTokenizer};
use crate::preprocess::mel::{normalize_window, WINDOW_FRAMES};
use adamw::AdamW;
use data::{load_file, pairs, Example};

/// The built-in `pipelines/train.toml`.
pub const DEFAULT_TRAIN: &str = include_str!("../../pipelines/train.toml");

/// `[train]` in `pipelines/train.toml`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training windows.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Windows per optimiser step.
    pub batch: usize,
    /// Share of the files held out for validation (at least one file when there are two).
    pub val_split: f64,
    /// Seeds the adapter's initial weights and the order of the windows.
    pub seed: u64,
    /// Weight of the text-only loss.
    pub lambda_text: f64,
    /// Weight of the audio-picture alignment loss.
    pub lambda_multi: f64,
    /// Temperature of the alignment loss.
    pub temperature: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainFile {
    train: TrainConfig,
}

impl TrainConfig {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (text, name) = match path {
            Some(p) => (std::fs::read_to_string(p).map_err(|e| Error::config(p, e))?, p.display().to_string()),
            None => (DEFAULT_TRAIN.to_string(), "pipelines/train.toml".to_string()),
        };
        let f: TrainFile = toml::from_str(&text).map_err(|e| Error::config(&name, first_line(&e.to_string())))?;
        f.train.checked().map_err(|e| Error::config(&name, format!("[train] {e}")))
    }

    /// The config if its values make sense (checked again after flags override them).
    pub fn checked(self) -> std::result::Result<Self, &'static str> {
        if self.batch == 0 || self.lr <= 0.0 || !(0.0..1.0).contains(&self.val_split) || self.temperature <= 0.0 {
            return Err("needs batch >= 1, lr > 0, 0 <= val_split < 1, temperature > 0");
        }
        Ok(self)
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// What a training run needs besides its config.
pub struct TrainJob {
    pub data: PathBuf,
    pub out: PathBuf,
    pub resume: bool,
    pub model: LoadedModel,
    pub tokenizer: WhisperTokenizer,
    pub images: ImageEncoder,
    /// On-screen text: the same reader as inference (`None` for `--ocr off`).
    pub ocr: Option<crate::visual::OcrConfig>,
    pub pipeline: PipelineConfig,
    pub config: TrainConfig,
    pub quiet: bool,
}

/// Per-epoch figures, kept in the checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_generate: f64,
    pub train_text: f64,
    pub train_multi: f64,
    /// Validation loss and WER; `None` without validation files.
    pub val_loss: Option<f64>,
    pub val_wer: Option<f64>,
    pub gates: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    epoch: usize,
    step: usize,
    config: TrainConfig,
    model: String,
    /// Validation WER of the adapter before training.
    val_wer_before: Option<f64>,
    val_loss_before: Option<f64>,
    history: Vec<EpochReport>,
}

fn checkpoint_paths(out: &Path) -> (PathBuf, PathBuf) {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "adapter".into());
    (out.with_file_name(format!("{name}.ckpt.safetensors")), out.with_file_name(format!("{name}.ckpt.json")))
}

/// The generator of a seed: the initial weights, the split and the order of the windows.
fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Draws the adapter's random weights from `seed`, so a run is repeatable: linear weights
/// N(0, 1/in), the kind embeddings N(0, 0.02); norms, biases and gates keep their constants.
fn seeded_init(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = rng(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let std = if name.ends_with(".wt") {
            (dims[0] as f64).powf(-0.5)
        } else if name == "kind" {
            0.02
        } else {
            continue;
        };
        let values: Vec<f32> = (0..var.elem_count()).map(|_| (normal(&mut rng) * std) as f32).collect();
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

/// Losses of one window: (generate, text-only) cross-entropies, and its pooled audio and
/// pictures for the alignment loss.
struct WindowLoss {
    generate: Tensor,
    text: Tensor,
    pooled: Option<(Tensor, Tensor)>,
}

fn window_loss(
    whisper: &Whisper,
    config: &ModelConfig,
    tok: &WhisperTokenizer,
    ex: &Example,
    silence: &Encoded,
    opts: &DecodeOptions,
) -> candle_core::Result<WindowLoss> {
    let dec = &whisper.decoder;
    let fusion = dec.fusion().expect("training runs with an adapter");
    let memory = fusion_memory(whisper, &ex.context, ex.window, tok)?;
    let (mut tokens, _) = WindowDecoder::new(whisper, tok, config).initial_tokens(&ex.prompt, opts);
    let first = tokens.len() - 1;
    tokens.extend_from_slice(&ex.target);
    let tokens = &tokens[..tokens.len().min(dec.n_ctx())];
    let device = ex.audio.audio().device();
    let input = Tensor::new(&tokens[..tokens.len() - 1], device)?.unsqueeze(0)?;
    let targets = Tensor::new(&tokens[first + 1..], device)?;
    let loss = |audio: &Encoded| -> candle_core::Result<Tensor> {
        let mut state = dec.start_fused(audio, memory.as_ref())?;
        let h = dec.forward(&input, &mut state)?.squeeze(0)?;
        let h = h.narrow(0, first, h.dim(0)? - first)?;
        candle_nn::loss::cross_entropy(&dec.logits(&h)?, &targets)
    };
    let pictures = ex.context.pictures(ex.window)?;
    let pooled = match pictures {
        Some(p) => Some((fusion.pooled_audio(ex.audio.audio())?, fusion.pooled_pictures(&p)?)),
        None => None,
    };
    Ok(WindowLoss { generate: loss(&ex.audio)?, text: loss(silence)?, pooled })
}

/// InfoNCE over the batch's windows with pictures, both directions; zero with fewer than two.
fn alignment_loss(pooled: &[(Tensor, Tensor)], temperature: f64) -> candle_core::Result<Option<Tensor>> {
    if pooled.len() < 2 {
        return Ok(None);
    }
    let unit =
        |t: Tensor| -> candle_core::Result<Tensor> { t.broadcast_div(&t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?) };
    let a = unit(Tensor::cat(&pooled.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), 0)?)?;
    let v = unit(Tensor::cat(&pooled.iter().map(|p| p.1.clone()).collect::<Vec<_>>(), 0)?)?;
    let logits = (a.matmul(&v.t()?)? / temperature)?;
    let labels = Tensor::arange(0u32, pooled.len() as u32, a.device())?;
    let l1 = candle_nn::loss::cross_entropy(&logits, &labels)?;
    let l2 = candle_nn::loss::cross_entropy(&logits.t()?.contiguous()?, &labels)?;
    Ok(Some(((l1 + l2)? / 2.0)?))
}

/// A copy of the adapter outside the autograd graph, for decoding.
fn frozen(varmap: &VarMap, dims: &crate::model::Dims) -> candle_core::Result<Fusion> {
    let data = varmap.data().lock().expect("varmap lock");
    let tensors: HashMap<String, Tensor> = data
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?.detach())))
        .collect::<candle_core::Result<_>>()?;
    drop(data);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    Fusion::load(vb, dims.n_text_state, dims.n_text_head, dims.n_text_layer)
}

/// Mean loss and WER of the validation windows under the adapter in `varmap`.
fn validate(
    base: &Whisper,
    varmap: &VarMap,
    job: &TrainJob,
    examples: &[Example],
    silence: &Encoded,
    opts: &DecodeOptions,
) -> candle_core::Result<(Option<f64>, Option<f64>)> {
    if examples.is_empty() {
        return Ok((None, None));
    }
    let mut whisper = base.clone();
    whisper.decoder.set_fusion(Some(frozen(varmap, &base.dims)?))?;
    let tok = &job.tokenizer;
    let (mut loss, mut errors, mut words) = (0.0, 0, 0);
    for ex in examples {
        let l = window_loss(&whisper, &job.model.config, tok, ex, silence, opts)?;
        loss += l.generate.to_scalar::<f32>()? as f64;
        let memory = fusion_memory(&whisper, &ex.context, ex.window, tok)?;
        let mut decoder = WindowDecoder::new(&whisper, tok, &job.model.config).with_memory(memory);
        let seed = window_seed(opts.seed, (ex.window.start.ms() / 10) as usize);
        let r = decoder.decode_with_fallback(&ex.audio, &ex.prompt, opts, seed)?;
        let text: Vec<u32> = r.tokens.iter().copied().filter(|&t| t < tok.eot).collect();
        let e = eval::errors(&ex.reference, &tok.decode(&text));
        errors += e.total();
        words += e.reference_words;
    }
    Ok((Some(loss / examples.len() as f64), Some(errors as f64 / words.max(1) as f64)))
}

fn mean_gate(varmap: &VarMap) -> f64 {
    let data = varmap.data().lock().expect("varmap lock");
    let gates: Vec<f64> = data
        .iter()
        .filter(|(k, _)| k.contains(".gate_"))
        .filter_map(|(_, v)| v.as_tensor().tanh().ok()?.to_vec1::<f32>().ok().map(|g| g[0].abs() as f64))
        .collect();
    gates.iter().sum::<f64>() / gates.len().max(1) as f64
}

/// Saves the adapter's tensors (no optimiser state) to `path`, whole or not at all, and records
/// its SHA-256 in the directory's `SHA256SUMS` (an adapter is loaded only as recorded there).
fn save_adapter(varmap: &VarMap, path: &Path) -> Result<()> {
    crate::atomic::write_with(path, |tmp| varmap.save(tmp).map_err(|e| e.to_string()))?;
    crate::weights::record_checksum(path)
}

/// Runs the training; returns the history of the run (all epochs, resumed ones included).
pub fn train(job: TrainJob) -> Result<Vec<EpochReport>> {
    let cfg = job.config.clone();
    let dims = job.model.config.dims.clone();
    let device = Device::Cpu;
    let tok = &job.tokenizer;
    let opts = DecodeOptions { beam_size: 1, ..Default::default() };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let fusion = Fusion::load(vb, dims.n_text_state, dims.n_text_head, dims.n_text_layer)
        .map_err(|e| Error::model(&job.out, e.to_string()))?;
    seeded_init(&varmap, cfg.seed).map_err(|e| Error::model(&job.out, e.to_string()))?;
    let mut whisper = job.model.whisper.clone();
    whisper.decoder.set_fusion(Some(fusion)).map_err(|e| Error::model(&job.out, e.to_string()))?;
    let base = job.model.whisper.clone();

    // The data, split by file.
    let mut files = pairs(&job.data)?;
    files.shuffle(&mut rng(cfg.seed));
    let n_val = if files.len() < 2 || cfg.val_split == 0.0 {
        0
    } else {
        ((files.len() as f64 * cfg.val_split).round() as usize).max(1)
    };
    let (val_files, train_files) = files.split_at(n_val);
    let t0 = Instant::now();
    let bar = progress(train_files.len() + val_files.len(), "reading", job.quiet);
    let load = |set: &[(PathBuf, PathBuf)]| -> Result<Vec<Example>> {
        let mut all = Vec::new();
        for (video, srt) in set {
            match load_file(video, srt, &job, &whisper) {
                Ok(ex) => all.extend(ex),
                // One bad file does not stop the run.
                Err(e) => eprintln!("warning: skipped: {e}"),
            }
            bar.inc(1);
        }
        Ok(all)
    };
    let train_set = load(train_files)?;
    let val_set = load(val_files)?;
    bar.finish_and_clear();
    if train_set.is_empty() {
        return Err(Error::input(&job.data, "no training window has a reference cue"));
    }
    eprintln!(
        "read {} training windows ({} files) and {} validation windows ({} files) in {:.0} s",
        train_set.len(),
        train_files.len(),
        val_set.len(),
        val_files.len(),
        t0.elapsed().as_secs_f64()
    );
    let silence = {
        let mel = Tensor::from_vec(normalize_window(&[], dims.n_mels), (1, dims.n_mels, WINDOW_FRAMES), &device);
        mel.and_then(|m| base.encoder.forward(&m))
            .map(Encoded::new)
            .map_err(|e| Error::model(&job.out, e.to_string()))?
    };

    // Resume, or start.
    let vars: Vec<(String, Var)> = {
        let data = varmap.data().lock().expect("varmap lock");
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let mut adam = AdamW::new(vars, cfg.lr, cfg.weight_decay).map_err(|e| Error::model(&job.out, e.to_string()))?;
    let (ckpt_st, ckpt_json) = checkpoint_paths(&job.out);
    let model_name = job.model.dir.display().to_string();
    let train_err = |e: candle_core::Error| Error::model(&job.out, format!("training: {e}"));
    let mut state = if job.resume && ckpt_json.is_file() {
        let text = std::fs::read_to_string(&ckpt_json).map_err(|e| Error::input(&ckpt_json, e))?;
        let ck: Checkpoint =
            serde_json::from_str(&text).map_err(|e| Error::input(&ckpt_json, format!("corrupt checkpoint: {e}")))?;
        adam.load(&ckpt_st).map_err(|e| Error::input(&ckpt_st, format!("corrupt checkpoint: {e}")))?;
        eprintln!("resuming after epoch {} of {}", ck.epoch, cfg.epochs);
        ck
    } else {
        let (val_loss_before, val_wer_before) =
            validate(&base, &varmap, &job, &val_set, &silence, &opts).map_err(train_err)?;
        if let (Some(l), Some(w)) = (val_loss_before, val_wer_before) {
            eprintln!("before training: validation loss {l:.3}, WER {:.2}%", w * 100.0);
        }
        Checkpoint {
            epoch: 0,
            step: 0,
            config: cfg.clone(),
            model: model_name,
            val_wer_before,
            val_loss_before,
            history: Vec::new(),
        }
    };

    for epoch in state.epoch + 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        // The order depends on the seed and the epoch only, so a resumed run sees what an
        // uninterrupted one would.
        order.shuffle(&mut rng(cfg.seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407)));
        let bar = progress(order.len(), &format!("epoch {epoch}/{}", cfg.epochs), job.quiet);
        let (mut sum, mut sum_gen, mut sum_text, mut sum_multi, mut batches) = (0.0, 0.0, 0.0, 0.0, 0);
        for batch in order.chunks(cfg.batch) {
            let mut gen = Vec::new();
            let mut text = Vec::new();
            let mut pooled = Vec::new();
            for &i in batch {
                let tw = Instant::now();
                let l =
                    window_loss(&whisper, &job.model.config, tok, &train_set[i], &silence, &opts).map_err(train_err)?;
                tracing::debug!(ms = tw.elapsed().as_millis() as u64, "window forward");
                gen.push(l.generate);
                text.push(l.text);
                pooled.extend(l.pooled);
            }
            let mean = |v: &[Tensor]| -> candle_core::Result<Tensor> { Tensor::stack(v, 0)?.mean_all() };
            let (g, t) = (mean(&gen).map_err(train_err)?, mean(&text).map_err(train_err)?);
            let m = alignment_loss(&pooled, cfg.temperature).map_err(train_err)?;
            let mut loss = (&g + (&t * cfg.lambda_text).map_err(train_err)?).map_err(train_err)?;
            if let Some(m) = &m {
                loss = (loss + (m * cfg.lambda_multi).map_err(train_err)?).map_err(train_err)?;
            }
            let tb = Instant::now();
            adam.step(&loss).map_err(train_err)?;
            tracing::debug!(ms = tb.elapsed().as_millis() as u64, "backward and step");
            let scalar = |t: &Tensor| t.to_scalar::<f32>().map(f64::from).map_err(train_err);
            sum += scalar(&loss)?;
            sum_gen += scalar(&g)?;
            sum_text += scalar(&t)?;
            sum_multi += m.as_ref().map(scalar).transpose()?.unwrap_or(0.0);
            batches += 1;
            state.step += 1;
            bar.inc(batch.len() as u64);
            bar.set_message(format!("loss {:.3}", sum / batches as f64));
        }
        bar.finish_and_clear();
        let (val_loss, val_wer) = validate(&base, &varmap, &job, &val_set, &silence, &opts).map_err(train_err)?;
        let n = batches.max(1) as f64;
        let report = EpochReport {
            epoch,
            train_loss: sum / n,
            train_generate: sum_gen / n,
            train_text: sum_text / n,
            train_multi: sum_multi / n,
            val_loss,
            val_wer,
            gates: mean_gate(&varmap),
            seconds: t0.elapsed().as_secs_f64(),
        };
        eprintln!(
            "epoch {epoch}/{}: train loss {:.3} (generate {:.3}, text {:.3}, align {:.3}); {}; mean |gate| {:.4}; {:.0} s",
            cfg.epochs,
            report.train_loss,
            report.train_generate,
            report.train_text,
            report.train_multi,
            validation_text(report.val_loss, report.val_wer),
            report.gates,
            report.seconds
        );
        state.history.push(report);
        state.epoch = epoch;
        adam.save(&ckpt_st).map_err(|e| Error::output(&ckpt_st, e.to_string()))?;
        let json = serde_json::to_string_pretty(&state).expect("checkpoint serialises");
        crate::atomic::write_atomic(&ckpt_json, json.as_bytes())?;
    }
    save_adapter(&varmap, &job.out)?;
    Ok(state.history)
}

/// "validation loss L, WER W%", or that there is no validation set.
pub fn validation_text(loss: Option<f64>, wer: Option<f64>) -> String {
    match (loss, wer) {
        (Some(l), Some(w)) => format!("validation loss {l:.3}, WER {:.2}%", w * 100.0),
        _ => "no validation files".to_string(),
    }
}

fn progress(len: usize, what: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_prefix(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_loss_is_low_for_matching_pairs() {
        let d = Device::Cpu;
        let e = |v: [f32; 3]| Tensor::new(&[v], &d).unwrap();
        let matched = [(e([1., 0., 0.]), e([1., 0., 0.])), (e([0., 1., 0.]), e([0., 1., 0.]))];
        let crossed = [(e([1., 0., 0.]), e([0., 1., 0.])), (e([0., 1., 0.]), e([1., 0., 0.]))];
        let l = |p: &[(Tensor, Tensor)]| alignment_loss(p, 0.1).unwrap().unwrap().to_scalar::<f32>().unwrap();
        assert!(l(&matched) < 0.01 && l(&crossed) > 5.0, "{} {}", l(&matched), l(&crossed));
        assert!(alignment_loss(&matched[..1], 0.1).unwrap().is_none());
    }

    #[test]
    fn the_shuffle_and_the_initial_weights_follow_the_seed() {
        let (mut a, mut b) = ((0..20).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
        a.shuffle(&mut rng(7));
        b.shuffle(&mut rng(7));
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
        let init = |seed| {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            Fusion::load(vb, 8, 2, 1).unwrap();
            seeded_init(&vm, seed).unwrap();
            let data = vm.data().lock().unwrap();
            data["text.wt"].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(init(1), init(1));
        assert_ne!(init(1), init(2));
    }
}
