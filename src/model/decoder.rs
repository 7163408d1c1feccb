//! Whisper's text decoder: token and position embeddings, residual blocks with self-attention
//! over the text so far and cross-attention over the audio, and the tied output projection.
//!
//! Implements `TextDecoder` of https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/model.py
//! with a key/value cache per layer (a step costs the same at any length) and the audio's keys
//! and values computed once per window ([`Encoded`]). Every tensor carries the batch as its
//! first dimension, so one call serves a batch of windows or a beam. The layer is written once
//! ([`TextDecoder::layer`]); `model::arith` says on what it runs.

use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;

use crate::model::arith::{Arith, Steps, Tensors};
use crate::model::config::Dims;
use crate::model::fusion::Fusion;
use crate::model::layers::{Norm, ResidualBlock};
use crate::model::linear::Form;
use crate::model::projection::{PackedMatrix, Precision};
use crate::model::simd;
use crate::model::step::{self, HalfKeysValues, StepCache};

type Result<T> = candle_core::Result<T>;

/// Steps of at most this many rows (windows of a batch times their beams) take the step path.
const STEP_MAX_ROWS: usize = 128;
/// A batch's start of at most this many tokens runs through the step path a token at a time.
const PROMPT_STEPS: usize = 8;

/// The audio of one or more windows as the decoder reads it: the encoder's output, and each
/// decoder layer's keys and values of it, made at the first decoding and kept with the window
/// for the next (another temperature, the word alignment). Dropping it lets them go.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// (windows, audio_ctx, state)
    audio: Tensor,
    keys_values: Arc<OnceLock<CrossKeysValues>>,
}

#[derive(Debug, Clone)]
enum CrossKeysValues {
    /// Per layer, (windows, head, audio_ctx, head_dim): one window, or candle's operations.
    F32(Vec<(Tensor, Tensor)>),
    /// A batch of windows on the CPU: straight to f16 a layer at a time, for the step path (in
    /// f32 they would be 18 MB a window for tiny, 37 MB for base).
    Half(Vec<HalfKeysValues>),
}

impl Encoded {
    pub fn new(audio: Tensor) -> Self {
        Self { audio, keys_values: Arc::new(OnceLock::new()) }
    }

    /// The encoder's output, (windows, audio_ctx, state).
    pub fn audio(&self) -> &Tensor {
        &self.audio
    }

    pub fn windows(&self) -> usize {
        self.audio.dim(0).unwrap_or(0)
    }

    /// The encoder positions of each window (1500 for a 30 s window).
    pub fn positions(&self) -> usize {
        self.audio.dim(1).unwrap_or(0)
    }

    /// Window `i` alone (its keys and values made anew when needed).
    pub fn window(&self, i: usize) -> Result<Encoded> {
        self.windows_from(i, 1)
    }

    /// Windows `first..first + n` (their keys and values made anew when needed).
    pub fn windows_from(&self, first: usize, n: usize) -> Result<Encoded> {
        Ok(Self::new(self.audio.narrow(0, first, n)?))
    }

    /// The windows `index` names, in that order.
    pub fn select(&self, index: &[usize]) -> Result<Encoded> {
        if index.len() == self.windows() && index.iter().enumerate().all(|(i, &w)| i == w) {
            return Ok(self.clone());
        }
        let idx: Vec<u32> = index.iter().map(|&i| i as u32).collect();
        Ok(Self::new(self.audio.index_select(&Tensor::new(idx.as_slice(), self.audio.device())?, 0)?))
    }

    /// The windows of `parts`, one after another.
    pub fn cat(parts: &[&Encoded]) -> Result<Encoded> {
        if let [one] = parts {
            return Ok((*one).clone());
        }
        let audio: Vec<&Tensor> = parts.iter().map(|p| &p.audio).collect();
        Ok(Self::new(Tensor::cat(&audio, 0)?))
    }
}

/// Per-sequence decoder state: the self-attention cache and the audio's cross-attention keys and
/// values, one entry per layer, each (batch, head, ctx, head_dim).
#[derive(Debug, Clone)]
pub struct DecoderState {
    pub(crate) self_kv: Vec<Option<(Tensor, Tensor)>>,
    pub(crate) cross_kv: Vec<(Tensor, Tensor)>,
    /// The fusion memory's keys and values per layer; empty without an adapter or memory.
    pub(crate) memory_kv: Vec<(Tensor, Tensor)>,
    /// The self-attention cache once steps run on the step path; `self_kv` is empty then.
    step: Option<StepCache>,
    /// The audio's keys and values in f16 for the step path (from the window's `Encoded`, or
    /// made from `cross_kv` at the first step).
    cross_half: Vec<HalfKeysValues>,
}

impl DecoderState {
    /// Tokens already in the cache.
    pub fn len(&self) -> usize {
        if let Some(c) = &self.step {
            return c.len;
        }
        self.self_kv.first().and_then(|kv| kv.as_ref()).map(|(k, _)| k.dim(2).unwrap_or(0)).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep the batch rows named by `index` (beam search reorders and prunes its beams so).
    /// Cross-attention keys and values computed for one window stay shared by all rows.
    pub fn select(&mut self, index: &[u32]) -> Result<()> {
        let device = self.cross_kv.first().map(|(k, _)| k.device().clone()).unwrap_or(Device::Cpu);
        let idx = Tensor::new(index, &device)?;
        if let Some(c) = &mut self.step {
            c.select(index);
        }
        for kv in &mut self.cross_half {
            kv.select(index);
        }
        for kv in self.self_kv.iter_mut().flatten() {
            *kv = (kv.0.index_select(&idx, 0)?, kv.1.index_select(&idx, 0)?);
        }
        for kv in self.cross_kv.iter_mut().chain(&mut self.memory_kv).filter(|kv| kv.0.dim(0).unwrap_or(1) != 1) {
            *kv = (kv.0.index_select(&idx, 0)?, kv.1.index_select(&idx, 0)?);
        }
        Ok(())
    }
}

/// The token embedding, which is also the output projection (tied weights).
#[derive(Debug, Clone)]
enum TokenEmbedding {
    /// Own kernels: packed, for embeddings and logits a few rows at a time.
    Packed(Arc<PackedMatrix>),
    /// candle's operations (a GPU): (vocab, state) in f32 on the model's device.
    Tensor(Tensor),
}

/// Whisper's text decoder.
#[derive(Debug, Clone)]
pub struct TextDecoder {
    token_embedding: TokenEmbedding,
    /// The same embedding in f32, made on first use by training's backward pass.
    token_embedding_f32: Arc<OnceLock<Tensor>>,
    positional_embedding: Tensor,
    /// `positional_embedding` as a slice, for the step path.
    positions_f32: Vec<f32>,
    blocks: Vec<ResidualBlock>,
    ln: Norm,
    /// Gated cross-attention over pictures and text, from an adapter (`--adapter`).
    fusion: Option<Fusion>,
    own_kernels: bool,
    n_ctx: usize,
    n_head: usize,
    span: tracing::Span,
}

impl TextDecoder {
    pub(crate) fn load(vb: VarBuilder, dims: &Dims, form: Form) -> Result<Self> {
        let (n, h) = (dims.n_text_state, dims.n_text_head);
        let token_embedding = if form.own_kernels {
            // Straight from f16 into its packed form: never the whole embedding in f32.
            let emb =
                vb.get_with_hints_dtype((dims.n_vocab, n), "token_embedding.weight", Default::default(), DType::F16)?;
            // Read in place and let go before the layers load: a copy of it (40 MB for tiny)
            // beside the layers' transient f32 weights set the peak of a whole run.
            let packed = simd::with_f16_slice(&emb.contiguous()?, |emb| {
                PackedMatrix::from_f16(emb, dims.n_vocab, n, Precision::default())
            })?;
            TokenEmbedding::Packed(Arc::new(packed))
        } else {
            TokenEmbedding::Tensor(vb.get((dims.n_vocab, n), "token_embedding.weight")?)
        };
        let positional_embedding = vb.get((dims.n_text_ctx, n), "positional_embedding")?;
        Ok(Self {
            token_embedding,
            token_embedding_f32: Arc::new(OnceLock::new()),
            positions_f32: positional_embedding.flatten_all()?.to_vec1::<f32>()?,
            positional_embedding,
            blocks: (0..dims.n_text_layer)
                .map(|i| ResidualBlock::load(n, h, true, vb.pp(format!("blocks.{i}")), form))
                .collect::<Result<_>>()?,
            ln: Norm::load(n, vb.pp("ln"), form)?,
            fusion: None,
            own_kernels: form.own_kernels,
            n_ctx: dims.n_text_ctx,
            n_head: h,
            span: tracing::span!(tracing::Level::TRACE, "text-decoder"),
        })
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn n_state(&self) -> usize {
        self.positions_f32.len() / self.n_ctx
    }

    /// Puts gated cross-attention blocks into the layers (or takes them out).
    pub fn set_fusion(&mut self, fusion: Option<Fusion>) -> Result<()> {
        if let Some(f) = &fusion {
            f.fits(self.blocks.len(), self.n_state())?;
        }
        self.fusion = fusion;
        Ok(())
    }

    pub fn fusion(&self) -> Option<&Fusion> {
        self.fusion.as_ref()
    }

    /// The token embeddings of `ids`, (ids, state): the text in the fusion memory.
    pub fn embed(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match &self.token_embedding {
            TokenEmbedding::Packed(p) => Tensor::from_vec(p.embed(ids), (ids.len(), self.n_state()), device),
            TokenEmbedding::Tensor(e) => e.index_select(&Tensor::new(ids, e.device())?, 0)?.to_device(device),
        }
    }

    /// A fresh state for `audio`.
    pub fn start(&self, audio: &Encoded) -> Result<DecoderState> {
        self.start_fused(audio, None)
    }

    /// A fresh state for `audio`, the fused layers attending over `memory` (batch or 1,
    /// memory_len, state) from `Fusion::memory`; without an adapter the memory is not used.
    pub fn start_fused(&self, audio: &Encoded, memory: Option<&Tensor>) -> Result<DecoderState> {
        let (cross_kv, cross_half) = match self.cross_keys_values(audio)? {
            CrossKeysValues::F32(kv) => (kv, Vec::new()),
            CrossKeysValues::Half(half) => (Vec::new(), half),
        };
        let memory_kv = match (&self.fusion, memory) {
            (Some(f), Some(m)) => f.keys_values(m)?,
            _ => Vec::new(),
        };
        Ok(DecoderState { self_kv: vec![None; self.blocks.len()], cross_kv, memory_kv, step: None, cross_half })
    }

    /// Each layer's keys and values of `audio`, made once per `Encoded` (anew when the audio
    /// carries a gradient).
    fn cross_keys_values(&self, audio: &Encoded) -> Result<CrossKeysValues> {
        let tracked = audio.audio.track_op();
        if let Some(kv) = audio.keys_values.get().filter(|_| !tracked) {
            return Ok(kv.clone());
        }
        let x = &audio.audio;
        let pairs = self.blocks.iter().map(|b| {
            let (attn, _) = b.cross_attn.as_ref().expect("decoder blocks have cross-attention");
            attn.keys_values(x)
        });
        let kv = if audio.windows() > 1 && self.own_kernels && !tracked {
            CrossKeysValues::Half(
                pairs.map(|kv| kv.and_then(|(k, v)| HalfKeysValues::new(&k, &v))).collect::<Result<_>>()?,
            )
        } else {
            CrossKeysValues::F32(pairs.collect::<Result<_>>()?)
        };
        if !tracked {
            let _ = audio.keys_values.set(kv.clone());
        }
        Ok(kv)
    }

    /// Runs `tokens` (batch, ctx) after what `state` holds; returns hidden states
    /// (batch, ctx, state). `logits` turns the ones needed into scores.
    pub fn forward(&self, tokens: &Tensor, state: &mut DecoderState) -> Result<Tensor> {
        let _enter = self.span.enter();
        let (rows, t) = tokens.dims2()?;
        let stepped = rows <= STEP_MAX_ROWS && self.own_kernels;
        if t == 1 && stepped {
            return self.step(&tokens.flatten_all()?.to_vec1::<u32>()?, state);
        }
        if t <= PROMPT_STEPS && stepped && state.cross_kv.is_empty() {
            // A batch's short start (<|startoftranscript|>, language, task): token by token,
            // the audio keys and values staying in f16.
            let h = (0..t).map(|j| self.step(&tokens.narrow(1, j, 1)?.flatten_all()?.to_vec1::<u32>()?, state));
            return Tensor::cat(&h.collect::<Result<Vec<_>>>()?, 1);
        }
        Ok(self.with_tensors(tokens, state, false)?.0)
    }

    /// Cross-attention scores of the heads in `heads` (`[layer, head]` pairs, the checkpoint's
    /// `alignment_heads`) for `tokens` (1, ctx) run on a fresh `state`: (heads, ctx, audio_ctx),
    /// before the softmax.
    pub fn alignment_scores(&self, tokens: &Tensor, state: &mut DecoderState, heads: &[[usize; 2]]) -> Result<Tensor> {
        let (_, per_layer) = self.with_tensors(tokens, state, true)?;
        let mut picked = Vec::with_capacity(heads.len());
        for &[layer, head] in heads {
            match per_layer.get(layer) {
                // (1, head, ctx, audio_ctx) -> (ctx, audio_ctx)
                Some(Some(s)) if head < self.n_head => picked.push(s.get(0)?.get(head)?),
                _ => candle_core::bail!("alignment head [{layer}, {head}] is not in the model"),
            }
        }
        Tensor::stack(&picked, 0)
    }

    /// One decoder layer, on whatever `a` computes with.
    fn layer<A: Arith>(&self, i: usize, mut x: A::X, a: &mut A) -> Result<A::X> {
        let b = &self.blocks[i];
        let scale = (b.attn.head_dim(self.n_state()) as f64).powf(-0.5);
        if let Some(f) = &self.fusion {
            x = a.fuse(i, &f.blocks[i], x)?;
        }
        let h = a.norm(&b.attn_ln, &x)?;
        let q = a.linear(&b.attn.query, &h)?;
        let q = a.scale(q, scale)?;
        let (k, v) = (a.linear(&b.attn.key, &h)?, a.linear(&b.attn.value, &h)?);
        let o = a.self_attention(i, &b.attn, q, k, v)?;
        let o = a.linear(&b.attn.out, &o)?;
        x = a.add(x, o)?;

        let (cross, cross_ln) = b.cross_attn.as_ref().expect("decoder blocks have cross-attention");
        let h = a.norm(cross_ln, &x)?;
        let q = a.linear(&cross.query, &h)?;
        let q = a.scale(q, scale)?;
        let o = a.cross_attention(i, cross, q)?;
        let o = a.linear(&cross.out, &o)?;
        x = a.add(x, o)?;

        let h = a.norm(&b.mlp_ln, &x)?;
        let u = a.linear(&b.mlp.fc1, &h)?;
        let u = a.gelu(u)?;
        let m = a.linear(&b.mlp.fc2, &u)?;
        a.add(x, m)
    }

    /// `tokens` through every layer with candle's operations; each layer's cross-attention
    /// scores too when `keep_scores`.
    fn with_tensors(
        &self,
        tokens: &Tensor,
        state: &mut DecoderState,
        keep_scores: bool,
    ) -> Result<(Tensor, Vec<Option<Tensor>>)> {
        let (rows, t) = tokens.dims2()?;
        if state.cross_kv.is_empty() {
            state.cross_kv = state.cross_half.iter().map(|h| h.to_tensors(tokens.device())).collect::<Result<_>>()?;
        }
        if let Some(c) = state.step.take() {
            // Back from the step path: its cache in candle's layout.
            state.self_kv = c.to_tensors(self.n_head, tokens.device())?.into_iter().map(Some).collect();
        }
        let offset = state.len();
        if offset + t > self.n_ctx {
            candle_core::bail!("decoder context full: {} + {t} > {}", offset, self.n_ctx);
        }
        let pos = self.positional_embedding.narrow(0, offset, t)?;
        let ids = tokens.flatten_all()?.to_vec1::<u32>()?;
        let emb = self.embed(&ids, tokens.device())?.reshape((rows, t, self.n_state()))?;
        let mut x = emb.broadcast_add(&pos)?;
        let mask = if t > 1 { Some(causal_mask(t, offset, x.device())?) } else { None };
        let scores = keep_scores.then(|| vec![None; self.blocks.len()]);
        let mut a = Tensors { state, mask, scores, own_kernels: self.own_kernels };
        for i in 0..self.blocks.len() {
            x = self.layer(i, x, &mut a)?;
        }
        Ok((self.ln.forward(&x)?, a.scores.unwrap_or_default()))
    }

    /// One token per row, `ids` (rows), after what `state` holds, on the CPU kernels. Returns
    /// hidden states (rows, 1, state).
    fn step(&self, ids: &[u32], state: &mut DecoderState) -> Result<Tensor> {
        let rows = ids.len();
        let d = self.n_state();
        let offset = state.len();
        if offset + 1 > self.n_ctx {
            candle_core::bail!("decoder context full: {offset} + 1 > {}", self.n_ctx);
        }
        if state.cross_half.is_empty() {
            state.cross_half = state.cross_kv.iter().map(|(k, v)| HalfKeysValues::new(k, v)).collect::<Result<_>>()?;
        }
        let DecoderState { self_kv, cross_half, memory_kv, step: cache, .. } = state;
        let cache = match cache {
            Some(c) => c,
            None => {
                let kv: Option<Vec<(Tensor, Tensor)>> = self_kv.iter_mut().map(|kv| kv.take()).collect();
                let c = match kv {
                    Some(kv) => StepCache::from_tensors(&kv)?,
                    None => StepCache { rows: vec![vec![Default::default(); self.blocks.len()]; rows], len: 0 },
                };
                cache.insert(c)
            }
        };
        if cache.rows.len() != rows {
            candle_core::bail!("{rows} tokens for a state of {} rows", cache.rows.len());
        }
        let TokenEmbedding::Packed(packed) = &self.token_embedding else {
            candle_core::bail!("the step path needs the packed token embedding (own kernels)");
        };
        let mut x = packed.embed(ids);
        for row in x.chunks_exact_mut(d) {
            step::add(row, &self.positions_f32[offset * d..(offset + 1) * d]);
        }
        let device = self.positional_embedding.device();
        let head_dim = d / self.n_head;
        let mut a = Steps { rows, head_dim, offset, cache, cross: cross_half, memory_kv, device };
        for i in 0..self.blocks.len() {
            x = self.layer(i, x, &mut a)?;
        }
        a.cache.len += 1;
        Tensor::from_vec(self.ln.rows(&x)?, (rows, 1, d), device)
    }

    /// (batch, state) hidden states -> (batch, vocab) logits, in f32.
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        let packed = match &self.token_embedding {
            TokenEmbedding::Packed(p) => p,
            // candle's product; a gradient reaches `h` alone (the embedding is no variable).
            TokenEmbedding::Tensor(e) => return h.to_dtype(DType::F32)?.matmul(&e.t()?),
        };
        if h.track_op() {
            // Training: an op of candle's graph, so the gradient reaches the adapter.
            let op = TiedLogits { emb: Arc::clone(packed), f32: Arc::clone(&self.token_embedding_f32) };
            return h.to_dtype(DType::F32)?.contiguous()?.apply_op1(op);
        }
        let batch = h.dim(0)?;
        let hidden = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let logits = packed.logits(&hidden, batch);
        Tensor::from_vec(logits, (batch, packed.vocab()), h.device())
    }

    /// The logits of position `at` of hidden states `h` (batch, ctx, state): (batch, vocab).
    pub fn logits_at(&self, h: &Tensor, at: usize) -> Result<Tensor> {
        self.logits(&h.i((.., at, ..))?)
    }
}

/// Logits from the tied embedding as a candle op, for training: the forward pass is the packed
/// product inference uses, and the backward pass gives the hidden states' gradient only (the
/// embedding is frozen; candle's matmul would also compute the 51k x state gradient of the
/// weight, and most of a training step with it).
struct TiedLogits {
    emb: Arc<PackedMatrix>,
    f32: Arc<OnceLock<Tensor>>,
}

impl candle_core::CustomOp1 for TiedLogits {
    fn name(&self) -> &'static str {
        "tied-logits"
    }

    /// (rows, state) -> (rows, vocab)
    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (rows, _) = layout.shape().dims2()?;
        let hidden = match (storage, layout.contiguous_offsets()) {
            (candle_core::CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("tied-logits takes contiguous f32 hidden states"),
        };
        let logits = self.emb.logits(hidden, rows);
        Ok((candle_core::CpuStorage::F32(logits), (rows, self.emb.vocab()).into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let w = match self.f32.get() {
            Some(w) => w.clone(),
            None => {
                let all: Vec<u32> = (0..self.emb.vocab() as u32).collect();
                let d = arg.dim(1)?;
                let w = Tensor::from_vec(self.emb.embed(&all), (self.emb.vocab(), d), arg.device())?;
                self.f32.get_or_init(|| w).clone()
            }
        };
        // (rows, vocab) x (vocab, state)
        Ok(Some(grad_res.matmul(&w)?))
    }
}

/// (ctx, offset + ctx): 0 where a query may look, -inf at later positions.
fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let cols = offset + t;
    let mask: Vec<f32> =
        (0..t).flat_map(|i| (0..cols).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(mask, (t, cols), device)
}
