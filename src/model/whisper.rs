//! Whisper's encoder and decoder.
//!
//! Implements https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/model.py
//! with two changes for inference: the decoder keeps a self-attention key/value cache per layer,
//! so a step costs the same at any length, and cross-attention keys and values are computed once
//! per window. Every tensor carries the batch as its first dimension, so one call serves a batch
//! of windows or a beam.

use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, VarBuilder};

use crate::model::config::Dims;
use crate::model::fusion::Fusion;
use crate::model::int8::Int8Matrix;
use crate::model::projection::{PackedMatrix, Precision};
use crate::model::step::{self, HalfKeysValues, Norm, StepCache};
use crate::model::{own_kernels, simd};

/// Products with at most this many rows use the packed copy of a decoder weight.
const HALF_MAX_ROWS: usize = 16;
/// Steps of at most this many rows (windows of a batch times their beams) take the step path
/// (`model::step`).
const STEP_MAX_ROWS: usize = 128;
/// A batch's start of at most this many tokens runs through the step path a token at a time.
const PROMPT_STEPS: usize = 8;
/// A step's products split a layer's weight rows across cores in blocks of this many.
const STEP_BLOCK_ROWS: usize = 96;

type Result<T> = candle_core::Result<T>;

/// A linear layer whose weight is kept transposed, (in, out), so the product reads it in
/// place: with a handful of rows (a decoder step) repacking a transposed weight costs more than
/// the product itself.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// None once the layer keeps only its int8 weight (on the CPU, where no product needs f32).
    wt: Option<Tensor>,
    n_out: usize,
    device: Device,
    bias: Option<Tensor>,
    /// The weight in f16 for products of a few rows (decoder steps), where reading the weight
    /// costs more than the arithmetic.
    half: Option<PackedMatrix>,
    /// The weight in int8 for products of many rows (the encoder's 1500 a window, the audio's
    /// keys and values, the decoder's prompts), where the arithmetic is what costs
    /// (`model::int8`).
    int8: Option<Int8Matrix>,
    /// The bias as a slice, for the step path and the int8 product.
    bias_f32: Option<Vec<f32>>,
}

impl Linear {
    fn load(n_in: usize, n_out: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let w = vb.get((n_out, n_in), "weight")?;
        let bias = if bias { Some(vb.get(n_out, "bias")?) } else { None };
        Self::new(transposed(&w)?, bias)
    }

    fn new(wt: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (n_out, device) = (wt.dim(1)?, wt.device().clone());
        Ok(Self { wt: Some(wt), n_out, device, bias, half: None, int8: None, bias_f32: None })
    }

    /// The f32 weight, (in, out).
    fn wt(&self) -> Result<&Tensor> {
        match &self.wt {
            Some(wt) => Ok(wt),
            None => candle_core::bail!("this layer keeps only its int8 weight: no f32 product through it"),
        }
    }

    /// A layer stored as (in, out) under `wt` (the adapters' own layout), read in place: when
    /// `vb` holds trainable variables, the layer uses them, not a copy.
    pub(crate) fn load_t(n_in: usize, n_out: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: (n_in as f64).powf(-0.5) };
        let wt = vb.get_with_hints((n_in, n_out), "wt", init)?;
        let bias = if bias { Some(vb.get_with_hints(n_out, "bias", candle_nn::Init::Const(0.0))?) } else { None };
        Self::new(wt, bias)
    }

    /// On the CPU, adds the packed copy used for few-row products (decoder steps) and the int8
    /// one for many rows (a window's 225-token prompt, word alignment), keeping the f32 weight
    /// for training. base beam 5 on long-5: prompt and alignment faster (1.55 -> 1.11 s of
    /// alignment), 32.5-32.7 -> 29.1-29.9 s in alternate runs, 14 MB more RSS; WER moved by
    /// -0.57 to +0.57 points across tiny.en / base, greedy / beam 5 (base beam 5 12.36 -> 12.93,
    /// tiny.en beam 5 11.79 -> 11.22, base greedy 19.46 -> 19.18, tiny.en greedy 9.66 both).
    fn with_half(mut self) -> Result<Self> {
        if !own_kernels(&self.device) {
            // A GPU's products are candle's, a few rows or many.
            return Ok(self);
        }
        let (n_in, n_out) = self.wt()?.dims2()?;
        let w = transposed(self.wt()?)?.flatten_all()?.to_vec1::<f32>()?;
        self.half = Some(PackedMatrix::new(&w, n_out, n_in, Precision::default()));
        self.int8 = Some(Int8Matrix::new(&self.wt()?.flatten_all()?.to_vec1::<f32>()?, n_in, n_out));
        self.bias_f32 = self.bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        Ok(self)
    }

    /// On the CPU, the int8 weight in place of the f32 one: every product of this layer is then
    /// an int8 one (the encoder's layers and the audio's keys and values, never trained through).
    /// The f32 copy would be 28 MB of tiny's resident memory, 76 of base's.
    fn int8_only(mut self) -> Result<Self> {
        if own_kernels(&self.device) {
            let wt = self.wt()?;
            let (n_in, n_out) = wt.dims2()?;
            self.int8 = Some(Int8Matrix::new(&wt.flatten_all()?.to_vec1::<f32>()?, n_in, n_out));
            self.bias_f32 = self.bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
            self.wt = None;
        }
        Ok(self)
    }

    /// The step path's product: `x` (rows, in) -> (rows, out), with the f16 weight.
    fn rows(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let h = self.half.as_ref().expect("decoder layers keep an f16 weight");
        let mut y = h.product(x, rows, STEP_BLOCK_ROWS);
        if let Some(b) = &self.bias_f32 {
            for row in y.chunks_exact_mut(b.len()) {
                step::add(row, b);
            }
        }
        y
    }

    /// (..., in) -> (..., out)
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let n_out = self.n_out;
        // The f16 and int8 products are outside candle's graph: not while training.
        let y = match (&self.half, &self.int8) {
            // The step path's product (bias included).
            (Some(_), _) if rows <= HALF_MAX_ROWS && !x.track_op() => {
                let x = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                Tensor::from_vec(self.rows(&x, rows), (rows, n_out), &self.device)?
            }
            (_, Some(q)) if !x.track_op() => {
                let y = simd::with_f32_slice(&x.to_dtype(DType::F32)?.contiguous()?, |x| {
                    q.product(x, rows, self.bias_f32.as_deref())
                })?;
                Tensor::from_vec(y, (rows, n_out), &self.device)?
            }
            _ => {
                let y = x.reshape((rows, dims[dims.len() - 1]))?.matmul(self.wt()?)?;
                match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
        };
        let mut out = dims;
        *out.last_mut().expect("non-empty dims") = n_out;
        y.reshape(out)
    }
}

/// `w` (rows, cols) as a contiguous (cols, rows). On the CPU in tiles that stay in cache:
/// candle's strided copy took a quarter of loading a model.
fn transposed(w: &Tensor) -> Result<Tensor> {
    const TILE: usize = 32;
    if !w.device().is_cpu() || w.dtype() != DType::F32 {
        return w.t()?.contiguous();
    }
    let (rows, cols) = w.dims2()?;
    let mut out = vec![0f32; rows * cols];
    simd::with_f32_slice(&w.contiguous()?, |src| {
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for c0 in (0..cols).step_by(TILE) {
                for c in c0..(c0 + TILE).min(cols) {
                    let column = src[r0 * cols + c..].iter().step_by(cols);
                    out[c * rows + r0..c * rows + r1].iter_mut().zip(column).for_each(|(o, &v)| *o = v);
                }
            }
        }
    })?;
    Tensor::from_vec(out, (cols, rows), w.device())
}

fn linear(n_in: usize, n_out: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::load(n_in, n_out, true, vb)
}

fn layer_norm(n: usize, vb: VarBuilder) -> Result<LayerNorm> {
    candle_nn::layer_norm(n, 1e-5, vb)
}

/// `ln` applied to `x`. candle's fused layer norm has no backward pass: when `x` carries a
/// gradient (training an adapter), the same norm is computed from differentiable operations.
pub(crate) fn norm(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    if !x.track_op() && !ln.weight().track_op() {
        return ln.forward(x);
    }
    let mean = x.mean_keepdim(candle_core::D::Minus1)?;
    let x = x.broadcast_sub(&mean)?;
    let var = x.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    let x = x.broadcast_div(&(var + 1e-5)?.sqrt()?)?.broadcast_mul(ln.weight())?;
    match ln.bias() {
        Some(b) => x.broadcast_add(b),
        None => Ok(x),
    }
}

/// Softmax over the last dimension; differentiable when `x` carries a gradient.
fn softmax(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        candle_nn::ops::softmax(x, candle_core::D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// Multi-head attention. `key` has no bias, as in Whisper.
#[derive(Debug, Clone)]
pub(crate) struct MultiHeadAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    n_head: usize,
}

impl MultiHeadAttention {
    /// f16 copies of the projections applied at every decoder step (not the cross-attention
    /// keys and values, which run once per window over 1500 rows).
    fn with_half(mut self, self_attention: bool) -> Result<Self> {
        self.query = self.query.with_half()?;
        self.out = self.out.with_half()?;
        if self_attention {
            self.key = self.key.with_half()?;
            self.value = self.value.with_half()?;
        } else {
            self.key = self.key.int8_only()?;
            self.value = self.value.int8_only()?;
        }
        Ok(self)
    }

    /// int8 copies of every projection (the encoder's attention, over 1500 rows).
    fn int8_only(self) -> Result<Self> {
        Ok(Self {
            query: self.query.int8_only()?,
            key: self.key.int8_only()?,
            value: self.value.int8_only()?,
            out: self.out.int8_only()?,
            ..self
        })
    }

    /// The adapters' attention (`Linear::load_t` layout).
    pub(crate) fn load_t(n_state: usize, n_head: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: Linear::load_t(n_state, n_state, true, vb.pp("query"))?,
            key: Linear::load_t(n_state, n_state, false, vb.pp("key"))?,
            value: Linear::load_t(n_state, n_state, true, vb.pp("value"))?,
            out: Linear::load_t(n_state, n_state, true, vb.pp("out"))?,
            n_head,
        })
    }

    fn load(n_state: usize, n_head: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: linear(n_state, n_state, vb.pp("query"))?,
            key: Linear::load(n_state, n_state, false, vb.pp("key"))?,
            value: linear(n_state, n_state, vb.pp("value"))?,
            out: linear(n_state, n_state, vb.pp("out"))?,
            n_head,
        })
    }

    /// (batch, ctx, state) -> (batch, head, ctx, state / head)
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        x.reshape((b, t, self.n_head, d / self.n_head))?.transpose(1, 2)?.contiguous()
    }

    pub(crate) fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.split_heads(&self.key.forward(x)?)?, self.split_heads(&self.value.forward(x)?)?))
    }

    /// `attend` without a mask over a long sequence (the audio encoder's): on the CPU a block
    /// of queries at a time (`model::attention`), without candle's (head, ctx, ctx) scores.
    fn attend_long(&self, x: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        if !own_kernels(x.device()) || x.track_op() || x.dtype() != DType::F32 {
            return self.attend(x, k, v, None);
        }
        let dh = x.dim(2)? / self.n_head;
        let q = self.split_heads(&(self.query.forward(x)? * (dh as f64).powf(-0.5))?)?;
        self.out.forward(&crate::model::attention::attention(&q, k, v)?)
    }

    /// Attention of `x` over `k`, `v` (already split into heads). Returns (batch, ctx, state).
    pub(crate) fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.attend_scores(x, k, v, mask, false)?.0)
    }

    /// `attend`, also returning the scaled scores before the softmax, (batch, head, ctx_q, ctx_k),
    /// when `keep_scores` (word alignment reads them).
    fn attend_scores(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        keep_scores: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, t, d) = x.dims3()?;
        let (rows, heads) = (k.dim(0)?, k.dim(1)?);
        if rows == 1 && b > 1 && t == 1 && mask.is_none() && !keep_scores {
            // Rows (beams, samples) of one window over one copy of its keys and values: as
            // the queries of one row, (b, 1, d) -> (1, b, d) and back.
            let a = self.attend_scores(&x.reshape((1, b, d))?, k, v, None, false)?.0;
            return Ok((a.reshape((b, 1, d))?, None));
        }
        debug_assert_eq!(heads, self.n_head);
        let dh = d / self.n_head;
        // Scaling the queries is cheaper than scaling the (ctx_q, ctx_k) scores.
        let q = self.split_heads(&(self.query.forward(x)? * (dh as f64).powf(-0.5))?)?;
        // (batch, head, ctx_q, ctx_k)
        let mut w = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            w = w.broadcast_add(mask)?;
        }
        let scores = keep_scores.then(|| w.clone());
        let w = softmax(&w)?;
        let o = w.matmul(v)?.transpose(1, 2)?.reshape((b, t, self.n_head * dh))?;
        Ok((self.out.forward(&o)?, scores))
    }
}

/// The MLP of a block: fc1, GELU (erf), fc2.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn with_half(self) -> Result<Self> {
        Ok(Self { fc1: self.fc1.with_half()?, fc2: self.fc2.with_half()? })
    }

    fn int8_only(self) -> Result<Self> {
        Ok(Self { fc1: self.fc1.int8_only()?, fc2: self.fc2.int8_only()? })
    }

    fn load(n_state: usize, vb: VarBuilder) -> Result<Self> {
        let n_mlp = n_state * 4;
        Ok(Self { fc1: linear(n_state, n_mlp, vb.pp("0"))?, fc2: linear(n_mlp, n_state, vb.pp("2"))? })
    }
    /// The adapters' MLP (`Linear::load_t` layout), `n_hidden` wide.
    pub(crate) fn load_t(n_state: usize, n_hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: Linear::load_t(n_state, n_hidden, true, vb.pp("fc1"))?,
            fc2: Linear::load_t(n_hidden, n_state, true, vb.pp("fc2"))?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&simd::gelu_erf(&self.fc1.forward(x)?)?)
    }
}

/// A pre-norm residual block; decoder blocks also attend over the audio.
#[derive(Debug, Clone)]
struct ResidualBlock {
    attn: MultiHeadAttention,
    attn_ln: LayerNorm,
    cross_attn: Option<(MultiHeadAttention, LayerNorm)>,
    mlp: Mlp,
    mlp_ln: LayerNorm,
    /// The three layer norms as slices (attention, cross-attention, MLP), for the step path.
    step_norms: Option<[Norm; 3]>,
}

impl ResidualBlock {
    /// f16 copies of the weights a decoder step reads.
    fn with_half(self) -> Result<Self> {
        let cross_attn = match self.cross_attn {
            Some((a, ln)) => Some((a.with_half(false)?, ln)),
            None => None,
        };
        let step_norms = match &cross_attn {
            Some((_, cross_ln)) => Some([Norm::new(&self.attn_ln)?, Norm::new(cross_ln)?, Norm::new(&self.mlp_ln)?]),
            None => None,
        };
        Ok(Self { attn: self.attn.with_half(true)?, cross_attn, mlp: self.mlp.with_half()?, step_norms, ..self })
    }

    /// int8 copies of the weights the encoder's blocks read.
    fn int8_only(self) -> Result<Self> {
        Ok(Self { attn: self.attn.int8_only()?, mlp: self.mlp.int8_only()?, ..self })
    }

    fn load(n_state: usize, n_head: usize, cross: bool, vb: VarBuilder) -> Result<Self> {
        let cross_attn = if cross {
            Some((
                MultiHeadAttention::load(n_state, n_head, vb.pp("cross_attn"))?,
                layer_norm(n_state, vb.pp("cross_attn_ln"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            attn: MultiHeadAttention::load(n_state, n_head, vb.pp("attn"))?,
            attn_ln: layer_norm(n_state, vb.pp("attn_ln"))?,
            cross_attn,
            mlp: Mlp::load(n_state, vb.pp("mlp"))?,
            mlp_ln: layer_norm(n_state, vb.pp("mlp_ln"))?,
            step_norms: None,
        })
    }
}

/// A width-3 convolution over time (padding 1) as one int8 product: each output frame's three
/// input frames side by side, (frames_out, 3 x in) times (3 x in, out). Frames are rows, so the
/// three are three copies of contiguous rows. candle's convolution ran at a third of the speed.
#[derive(Debug, Clone)]
struct FrameConv {
    /// Row `j * in + c` holds input channel c at offset j - 1.
    weight: Int8Matrix,
    bias: Vec<f32>,
    stride: usize,
}

impl FrameConv {
    fn new(conv: &Conv1d, stride: usize) -> Result<Self> {
        let (n_out, n_in, width) = conv.weight().dims3()?;
        if width != 3 {
            candle_core::bail!("expected a convolution of width 3, got {width}");
        }
        let w = conv.weight().to_vec3::<f32>()?;
        let mut k = vec![0f32; 3 * n_in * n_out];
        for (o, w) in w.iter().enumerate() {
            for (c, w) in w.iter().enumerate() {
                for (j, &v) in w.iter().enumerate() {
                    k[(j * n_in + c) * n_out + o] = v;
                }
            }
        }
        let bias = match conv.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; n_out],
        };
        Ok(Self { weight: Int8Matrix::new(&k, 3 * n_in, n_out), bias, stride })
    }

    /// `x` (frames, in) row-major -> (frames_out, out), GELU applied.
    fn forward(&self, x: &[f32], frames: usize) -> Vec<f32> {
        let n_in = self.weight.k() / 3;
        let frames_out = (frames - 1) / self.stride + 1;
        let mut cols = vec![0f32; frames_out * 3 * n_in];
        for (t, row) in cols.chunks_exact_mut(3 * n_in).enumerate() {
            for (j, part) in row.chunks_exact_mut(n_in).enumerate() {
                // Input frame t * stride + j - 1; zeros past either end.
                if let Some(f) = (t * self.stride + j).checked_sub(1).filter(|&f| f < frames) {
                    part.copy_from_slice(&x[f * n_in..(f + 1) * n_in]);
                }
            }
        }
        let mut y = self.weight.product(&cols, frames_out, Some(&self.bias));
        simd::gelu_erf_in_place(&mut y);
        y
    }
}

/// Whisper's audio encoder: two convolutions, sinusoidal positions, transformer blocks.
#[derive(Debug, Clone)]
pub struct AudioEncoder {
    conv1: Conv1d,
    conv2: Conv1d,
    /// The two convolutions as int8 products, on the CPU.
    frame_convs: Option<(FrameConv, FrameConv)>,
    positional_embedding: Tensor,
    blocks: Vec<ResidualBlock>,
    ln_post: LayerNorm,
    span: tracing::Span,
}

impl AudioEncoder {
    pub fn load(vb: VarBuilder, dims: &Dims) -> Result<Self> {
        let (n, h) = (dims.n_audio_state, dims.n_audio_head);
        let c1 = Conv1dConfig { padding: 1, stride: 1, ..Default::default() };
        let c2 = Conv1dConfig { padding: 1, stride: 2, ..Default::default() };
        let conv1 = candle_nn::conv1d(dims.n_mels, n, 3, c1, vb.pp("conv1"))?;
        let conv2 = candle_nn::conv1d(n, n, 3, c2, vb.pp("conv2"))?;
        let frame_convs = if own_kernels(vb.device()) {
            Some((FrameConv::new(&conv1, 1)?, FrameConv::new(&conv2, 2)?))
        } else {
            None
        };
        Ok(Self {
            conv1,
            conv2,
            frame_convs,
            positional_embedding: vb.get((dims.n_audio_ctx, n), "positional_embedding")?,
            blocks: (0..dims.n_audio_layer)
                .map(|i| ResidualBlock::load(n, h, false, vb.pp(format!("blocks.{i}")))?.int8_only())
                .collect::<Result<_>>()?,
            ln_post: layer_norm(n, vb.pp("ln_post"))?,
            span: tracing::span!(tracing::Level::TRACE, "audio-encoder"),
        })
    }

    /// (batch, n_mels, 3000) -> (batch, 1500, n_audio_state)
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let _enter = self.span.enter();
        let x = match &self.frame_convs {
            Some((c1, c2)) if !mel.track_op() && mel.dtype() == DType::F32 => {
                let (batch, _, frames) = mel.dims3()?;
                let mel = mel.transpose(1, 2)?.contiguous()?; // (batch, frames, n_mels)
                let mut out = Vec::new();
                simd::with_f32_slice(&mel, |m| {
                    for m in m.chunks_exact(m.len() / batch.max(1)) {
                        out.extend(c2.forward(&c1.forward(m, frames), frames));
                    }
                })?;
                let frames_out = out.len() / batch.max(1) / c2.bias.len();
                Tensor::from_vec(out, (batch, frames_out, c2.bias.len()), mel.device())?
            }
            _ => {
                let x = simd::gelu_erf(&self.conv1.forward(mel)?)?;
                simd::gelu_erf(&self.conv2.forward(&x)?)?.transpose(1, 2)?
            }
        }; // (batch, 1500, state)
        let t = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positional_embedding.narrow(0, 0, t)?)?;
        for b in &self.blocks {
            let h = b.attn_ln.forward(&x)?;
            let (k, v) = b.attn.keys_values(&h)?;
            x = (&x + b.attn.attend_long(&h, &k, &v)?)?;
            x = (&x + b.mlp.forward(&b.mlp_ln.forward(&x)?)?)?;
        }
        self.ln_post.forward(&x)
    }
}

/// Per-sequence decoder state: the self-attention cache and the audio's cross-attention keys and
/// values, one entry per layer, each (batch, head, ctx, head_dim).
#[derive(Debug, Clone)]
pub struct DecoderState {
    self_kv: Vec<Option<(Tensor, Tensor)>>,
    cross_kv: Vec<(Tensor, Tensor)>,
    /// The fusion memory's keys and values per layer; empty without an adapter or memory.
    memory_kv: Vec<(Tensor, Tensor)>,
    /// The self-attention cache once steps run on the step path; `self_kv` is empty then.
    step: Option<StepCache>,
    /// `cross_kv` in f16 for the step path, made at its first step.
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

/// Each decoder layer's keys and values of one window's audio, by the audio tensor's id.
type AudioKeysValues = (candle_core::TensorId, Vec<(Tensor, Tensor)>);

/// The token embedding, which is also the output projection (tied weights).
#[derive(Debug, Clone)]
enum TokenEmbedding {
    /// Own kernels: packed f16, for embeddings and logits a few rows at a time.
    Packed(Arc<PackedMatrix>),
    /// candle's operations (a GPU): (vocab, state) in f32 on the model's device.
    Tensor(Tensor),
}

/// Whisper's text decoder.
#[derive(Debug, Clone)]
pub struct TextDecoder {
    /// The token embedding, which is also the output projection (tied weights).
    token_embedding: TokenEmbedding,
    /// The same embedding in f32, made on first use by training's backward pass.
    token_embedding_f32: Arc<OnceLock<Tensor>>,
    positional_embedding: Tensor,
    blocks: Vec<ResidualBlock>,
    ln: LayerNorm,
    /// `positional_embedding` and `ln` as slices, for the step path.
    positions_f32: Vec<f32>,
    ln_step: Norm,
    /// Gated cross-attention over pictures and text, from an adapter (`--adapter`).
    fusion: Option<Fusion>,
    /// The audio keys and values of the last window started, by the audio tensor's id: a window
    /// is decoded, perhaps again at another temperature, then aligned, all over the same audio.
    cross_memo: Arc<Mutex<Option<AudioKeysValues>>>,
    n_ctx: usize,
    n_head: usize,
    span: tracing::Span,
}

impl TextDecoder {
    pub fn load(vb: VarBuilder, dims: &Dims) -> Result<Self> {
        let (n, h) = (dims.n_text_state, dims.n_text_head);
        let token_embedding = if own_kernels(vb.device()) {
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
        let ln = layer_norm(n, vb.pp("ln"))?;
        Ok(Self {
            token_embedding,
            token_embedding_f32: Arc::new(OnceLock::new()),
            positions_f32: positional_embedding.flatten_all()?.to_vec1::<f32>()?,
            positional_embedding,
            blocks: (0..dims.n_text_layer)
                .map(|i| ResidualBlock::load(n, h, true, vb.pp(format!("blocks.{i}")))?.with_half())
                .collect::<Result<_>>()?,
            ln_step: Norm::new(&ln)?,
            ln,
            fusion: None,
            cross_memo: Arc::new(Mutex::new(None)),
            n_ctx: dims.n_text_ctx,
            n_head: h,
            span: tracing::span!(tracing::Level::TRACE, "text-decoder"),
        })
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Puts gated cross-attention blocks into the layers (or takes them out).
    pub fn set_fusion(&mut self, fusion: Option<Fusion>) -> Result<()> {
        if let Some(f) = &fusion {
            f.fits(self.blocks.len(), self.positional_embedding.dim(1)?)?;
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
            TokenEmbedding::Packed(p) => {
                Tensor::from_vec(p.embed(ids), (ids.len(), self.positional_embedding.dim(1)?), device)
            }
            TokenEmbedding::Tensor(e) => e.index_select(&Tensor::new(ids, e.device())?, 0)?.to_device(device),
        }
    }

    /// A fresh state for `audio` (batch, audio_ctx, state).
    pub fn start(&self, audio: &Tensor) -> Result<DecoderState> {
        self.start_fused(audio, None)
    }

    /// A fresh state for `audio`, the fused layers attending over `memory` (batch or 1,
    /// memory_len, state) from `Fusion::memory`; without an adapter the memory is not used.
    pub fn start_fused(&self, audio: &Tensor, memory: Option<&Tensor>) -> Result<DecoderState> {
        let (cross_kv, cross_half) = if audio.dim(0)? > 1 && own_kernels(audio.device()) && !audio.track_op() {
            // A batch of windows: their keys and values straight to f16 a layer at a time, for
            // the step path (in f32 they would be 18 MB a window for tiny, 37 MB for base).
            let half = |b: &ResidualBlock| -> Result<HalfKeysValues> {
                let (attn, _) = b.cross_attn.as_ref().expect("decoder blocks have cross-attention");
                let (k, v) = attn.keys_values(audio)?;
                HalfKeysValues::new(&k, &v)
            };
            (Vec::new(), self.blocks.iter().map(half).collect::<Result<_>>()?)
        } else {
            (self.cross_keys_values(audio)?, Vec::new())
        };
        let memory_kv = match (&self.fusion, memory) {
            (Some(f), Some(m)) => f.keys_values(m)?,
            _ => Vec::new(),
        };
        Ok(DecoderState { self_kv: vec![None; self.blocks.len()], cross_kv, memory_kv, step: None, cross_half })
    }

    /// Drops the keys and values kept for the last window (call when done with it: they are
    /// 18 MB for tiny.en, and the next window's encoder would run beside them).
    pub fn forget_audio(&self) {
        if let Ok(mut m) = self.cross_memo.lock() {
            *m = None;
        }
    }

    /// Each layer's keys and values of `audio`, computed once per audio tensor.
    fn cross_keys_values(&self, audio: &Tensor) -> Result<Vec<(Tensor, Tensor)>> {
        let tracked = audio.track_op();
        if !tracked {
            if let Some((id, kv)) = self.cross_memo.lock().ok().as_deref().and_then(|m| m.clone()) {
                if id == audio.id() {
                    return Ok(kv);
                }
            }
        }
        let mut kv = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let (attn, _) = b.cross_attn.as_ref().expect("decoder blocks have cross-attention");
            kv.push(attn.keys_values(audio)?);
        }
        if !tracked {
            if let Ok(mut m) = self.cross_memo.lock() {
                *m = Some((audio.id(), kv.clone()));
            }
        }
        Ok(kv)
    }

    /// Runs `tokens` (batch, ctx) after what `state` holds; returns hidden states
    /// (batch, ctx, state). `logits` turns the ones needed into scores.
    pub fn forward(&self, tokens: &Tensor, state: &mut DecoderState) -> Result<Tensor> {
        self.forward_scores(tokens, state, None)
    }

    /// Cross-attention scores of the heads in `heads` (`[layer, head]` pairs, the checkpoint's
    /// `alignment_heads`) for `tokens` (1, ctx) run on a fresh `state`: (heads, ctx, audio_ctx),
    /// before the softmax.
    pub fn alignment_scores(&self, tokens: &Tensor, state: &mut DecoderState, heads: &[[usize; 2]]) -> Result<Tensor> {
        let mut per_layer = vec![None; self.blocks.len()];
        self.forward_scores(tokens, state, Some(&mut per_layer))?;
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

    /// `forward`, keeping each layer's cross-attention scores in `scores` when given.
    fn forward_scores(
        &self,
        tokens: &Tensor,
        state: &mut DecoderState,
        mut scores: Option<&mut Vec<Option<Tensor>>>,
    ) -> Result<Tensor> {
        let _enter = self.span.enter();
        let (rows, t) = tokens.dims2()?;
        let stepped = rows <= STEP_MAX_ROWS && scores.is_none() && own_kernels(tokens.device());
        if t == 1 && stepped {
            return self.step(&tokens.flatten_all()?.to_vec1::<u32>()?, state);
        }
        if t <= PROMPT_STEPS && stepped && state.cross_kv.is_empty() {
            // A batch's short start (<|startoftranscript|>, language, task): token by token,
            // the audio keys and values staying in f16.
            let h = (0..t).map(|j| self.step(&tokens.narrow(1, j, 1)?.flatten_all()?.to_vec1::<u32>()?, state));
            return Tensor::cat(&h.collect::<Result<Vec<_>>>()?, 1);
        }
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
        let emb = self.embed(&ids, tokens.device())?.reshape((tokens.dim(0)?, t, self.positional_embedding.dim(1)?))?;
        let mut x = emb.broadcast_add(&pos)?;
        let mask = if t > 1 { Some(causal_mask(t, offset, x.device())?) } else { None };
        for (i, b) in self.blocks.iter().enumerate() {
            if let (Some(fusion), Some((mk, mv))) = (&self.fusion, state.memory_kv.get(i)) {
                x = fusion.blocks[i].forward(&x, mk, mv)?;
            }
            let h = norm(&b.attn_ln, &x)?;
            let (k, v) = b.attn.keys_values(&h)?;
            let (k, v) = match state.self_kv[i].take() {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                None => (k, v),
            };
            x = (&x + b.attn.attend(&h, &k, &v, mask.as_ref())?)?;
            state.self_kv[i] = Some((k, v));
            let (cross, cross_ln) = b.cross_attn.as_ref().expect("decoder blocks have cross-attention");
            let (ck, cv) = &state.cross_kv[i];
            let h = norm(cross_ln, &x)?;
            let a = match scores.as_deref_mut() {
                Some(scores) => {
                    let (a, s) = cross.attend_scores(&h, ck, cv, None, true)?;
                    scores[i] = s;
                    a
                }
                // A prompt over the audio (225 tokens of previous text by 1500 frames): a block
                // of queries at a time, as the encoder's, not candle's (head, ctx, 1500) scores.
                None if ck.dim(0)? == h.dim(0)? && h.dim(1)? > 1 => cross.attend_long(&h, ck, cv)?,
                None => cross.attend(&h, ck, cv, None)?,
            };
            x = (&x + a)?;
            x = (&x + b.mlp.forward(&norm(&b.mlp_ln, &x)?)?)?;
        }
        norm(&self.ln, &x)
    }

    /// One token per row, `ids` (rows), after what `state` holds: the layers of `forward_scores`
    /// in the same order on plain slices (`model::step`). Returns hidden states (rows, 1, state).
    fn step(&self, ids: &[u32], state: &mut DecoderState) -> Result<Tensor> {
        let rows = ids.len();
        let d = self.positional_embedding.dim(1)?;
        let dh = d / self.n_head;
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
        let scale = (dh as f64).powf(-0.5) as f32;
        let TokenEmbedding::Packed(packed) = &self.token_embedding else {
            candle_core::bail!("the step path needs the packed token embedding (own kernels)");
        };
        let mut x = packed.embed(ids);
        for row in x.chunks_exact_mut(d) {
            step::add(row, &self.positions_f32[offset * d..(offset + 1) * d]);
        }
        let device = self.positional_embedding.device();
        for (i, b) in self.blocks.iter().enumerate() {
            if let (Some(fusion), Some((mk, mv))) = (&self.fusion, memory_kv.get(i)) {
                // The adapter's block, in candle: a few operations a layer.
                let t = Tensor::from_vec(std::mem::take(&mut x), (rows, 1, d), device)?;
                x = fusion.blocks[i].forward(&t, mk, mv)?.flatten_all()?.to_vec1::<f32>()?;
            }
            let [attn_ln, cross_ln, mlp_ln] = b.step_norms.as_ref().expect("decoder blocks keep slice norms");
            let h = attn_ln.apply(&x);
            let mut q = b.attn.query.rows(&h, rows);
            q.iter_mut().for_each(|v| *v *= scale);
            let (k, v) = (b.attn.key.rows(&h, rows), b.attn.value.rows(&h, rows));
            cache.push(i, &k, &v);
            let a = step::self_attention(&q, cache, i, dh, offset + 1);
            step::add(&mut x, &b.attn.out.rows(&a, rows));

            let (cross, _) = b.cross_attn.as_ref().expect("decoder blocks have cross-attention");
            let h = cross_ln.apply(&x);
            let mut q = cross.query.rows(&h, rows);
            q.iter_mut().for_each(|v| *v *= scale);
            let a = step::cross_attention(&q, rows, &cross_half[i]);
            step::add(&mut x, &cross.out.rows(&a, rows));

            let h = mlp_ln.apply(&x);
            let mut u = b.mlp.fc1.rows(&h, rows);
            simd::gelu_erf_in_place(&mut u);
            step::add(&mut x, &b.mlp.fc2.rows(&u, rows));
        }
        cache.len += 1;
        Tensor::from_vec(self.ln_step.apply(&x), (rows, 1, d), device)
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
}

/// Logits from the tied embedding as a candle op, for training: the forward pass is the f16
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

/// The whole model.
#[derive(Debug, Clone)]
pub struct Whisper {
    pub encoder: AudioEncoder,
    pub decoder: TextDecoder,
    pub dims: Dims,
}

impl Whisper {
    pub fn load(vb: VarBuilder, dims: &Dims) -> Result<Self> {
        Ok(Self {
            encoder: AudioEncoder::load(vb.pp("encoder"), dims)?,
            decoder: TextDecoder::load(vb.pp("decoder"), dims)?,
            dims: dims.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        self.decoder.positional_embedding.device()
    }

    /// The encoder's output for the mel windows `mel` (windows, n_mels, frames) at inference.
    /// The decoder's keys and values of the last window are let go first: they are done with,
    /// and would sit beside this encoder run.
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        self.decoder.forget_audio();
        self.encoder.forward(mel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_conv_matches_candles_convolution() -> Result<()> {
        let dev = Device::Cpu;
        let (n_in, n_out, frames) = (24, 40, 31);
        let w = (Tensor::randn(0f32, 1.0, (n_out, n_in, 3), &dev)? * 0.2)?;
        let b = Tensor::randn(0f32, 1.0, n_out, &dev)?;
        let x = Tensor::randn(0f32, 1.0, (1, n_in, frames), &dev)?;
        for stride in [1, 2] {
            let cfg = Conv1dConfig { padding: 1, stride, ..Default::default() };
            let conv = Conv1d::new(w.clone(), Some(b.clone()), cfg);
            // (1, out, frames_out) -> (frames_out, out)
            let want = simd::gelu_erf(&conv.forward(&x)?)?.get(0)?.t()?.to_vec2::<f32>()?;
            let rows = x.get(0)?.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let got = FrameConv::new(&conv, stride)?.forward(&rows, frames);
            assert_eq!(got.len(), want.len() * n_out, "stride {stride}");
            let errs: Vec<f32> =
                got.chunks(n_out).zip(&want).flat_map(|(g, w)| g.iter().zip(w)).map(|(g, w)| (g - w).abs()).collect();
            // int8 on both sides, 72 products a value: a few hundredths off values of about one
            // (a frame or channel out of place is off by about one).
            let mean = errs.iter().sum::<f32>() / errs.len() as f32;
            let max = errs.iter().copied().fold(0f32, f32::max);
            assert!(mean < 0.02 && max < 0.15, "stride {stride}: mean error {mean}, max {max}");
        }
        Ok(())
    }

    #[test]
    fn transposed_matches_candles_transpose() -> Result<()> {
        // Not a multiple of the tile either way.
        let w = Tensor::arange(0f32, (37 * 45) as f32, &Device::Cpu)?.reshape((37, 45))?;
        let got = transposed(&w)?;
        assert_eq!(got.dims(), &[45, 37]);
        assert_eq!(got.to_vec2::<f32>()?, w.t()?.contiguous()?.to_vec2::<f32>()?);
        Ok(())
    }
}
