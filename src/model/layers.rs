//! The blocks Whisper's encoder and decoder (and the fusion adapter) are made of: layer norm,
//! multi-head attention, the MLP, and the pre-norm residual block.
//!
//! Implements https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/model.py
//! (`MultiHeadAttention`, `ResidualAttentionBlock`).

use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use crate::model::linear::{Form, Linear, Use};
use crate::model::simd;

type Result<T> = candle_core::Result<T>;

/// A layer norm (eps 1e-5, as Whisper's), with its parameters also as slices on the CPU for the
/// decoder's step path.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    ln: LayerNorm,
    /// (weight, bias)
    slices: Option<(Vec<f32>, Vec<f32>)>,
}

impl Norm {
    pub(crate) fn load(n: usize, vb: VarBuilder, form: Form) -> Result<Self> {
        Self::new(candle_nn::layer_norm(n, 1e-5, vb)?, form.own_kernels)
    }

    pub(crate) fn new(ln: LayerNorm, slices: bool) -> Result<Self> {
        let slices = if slices {
            let weight = ln.weight().flatten_all()?.to_vec1::<f32>()?;
            let bias = match ln.bias() {
                Some(b) => b.flatten_all()?.to_vec1::<f32>()?,
                None => vec![0.0; weight.len()],
            };
            Some((weight, bias))
        } else {
            None
        };
        Ok(Self { ln, slices })
    }

    /// `x` normalised over its last dimension. candle's fused layer norm has no backward pass:
    /// when `x` carries a gradient (training an adapter), the same norm is computed from
    /// differentiable operations.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        norm(&self.ln, x)
    }

    /// Each row of `x` (rows, state), normalised.
    pub(crate) fn rows(&self, x: &[f32]) -> Result<Vec<f32>> {
        let Some((weight, bias)) = &self.slices else {
            candle_core::bail!("the step path needs the norms as slices (own kernels)");
        };
        let d = weight.len();
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + 1e-5).sqrt();
            for i in 0..d {
                o[i] = (row[i] - mean) * inv * weight[i] + bias[i];
            }
        }
        Ok(out)
    }
}

/// `ln` applied to `x`, differentiably when `x` or `ln` carries a gradient.
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
pub(crate) fn softmax(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        candle_nn::ops::softmax(x, candle_core::D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// Multi-head attention. `key` has no bias, as in Whisper.
#[derive(Debug, Clone)]
pub(crate) struct MultiHeadAttention {
    pub(crate) query: Linear,
    pub(crate) key: Linear,
    pub(crate) value: Linear,
    pub(crate) out: Linear,
    pub(crate) n_head: usize,
    own_kernels: bool,
}

impl MultiHeadAttention {
    /// A checkpoint's attention; `keys_values` says what its keys and values project (`Many`
    /// rows: the audio of a decoder's cross-attention, or the encoder's own frames).
    pub(crate) fn load(
        n_state: usize,
        n_head: usize,
        vb: VarBuilder,
        usage: Use,
        keys_values: Use,
        form: Form,
    ) -> Result<Self> {
        Ok(Self {
            query: Linear::load(n_state, n_state, true, vb.pp("query"), usage, form)?,
            key: Linear::load(n_state, n_state, false, vb.pp("key"), keys_values, form)?,
            value: Linear::load(n_state, n_state, true, vb.pp("value"), keys_values, form)?,
            out: Linear::load(n_state, n_state, true, vb.pp("out"), usage, form)?,
            n_head,
            own_kernels: form.own_kernels,
        })
    }

    /// The adapters' attention (`Linear::load_t` layout, candle's products).
    pub(crate) fn load_t(n_state: usize, n_head: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: Linear::load_t(n_state, n_state, true, vb.pp("query"))?,
            key: Linear::load_t(n_state, n_state, false, vb.pp("key"))?,
            value: Linear::load_t(n_state, n_state, true, vb.pp("value"))?,
            out: Linear::load_t(n_state, n_state, true, vb.pp("out"))?,
            n_head,
            own_kernels: false,
        })
    }

    pub(crate) fn head_dim(&self, n_state: usize) -> usize {
        n_state / self.n_head
    }

    /// (batch, ctx, state) -> (batch, head, ctx, state / head)
    pub(crate) fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        x.reshape((b, t, self.n_head, d / self.n_head))?.transpose(1, 2)?.contiguous()
    }

    /// The keys and values of `x`, split into heads.
    pub(crate) fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.split_heads(&self.key.forward(x)?)?, self.split_heads(&self.value.forward(x)?)?))
    }

    /// The queries of `x`, scaled by 1 / sqrt(head_dim) (cheaper than scaling the scores).
    pub(crate) fn queries(&self, x: &Tensor) -> Result<Tensor> {
        let dh = x.dim(2)? / self.n_head;
        self.query.forward(x)? * (dh as f64).powf(-0.5)
    }

    /// `attend` without a mask over a long sequence (the audio encoder's, or a prompt over the
    /// audio): with own kernels a block of queries at a time (`model::attention`), without
    /// candle's (head, ctx, ctx) scores. `q` from [`Self::queries`], not split.
    pub(crate) fn attend_long(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        if !self.own_kernels || q.track_op() || q.dtype() != DType::F32 {
            return Ok(self.scores_and_values(q, k, v, None, false)?.0);
        }
        crate::model::attention::attention(&self.split_heads(q)?, k, v)
    }

    /// softmax(q k^T + mask) v for `q` (batch, ctx, state; scaled, not split) over `k`, `v`
    /// (already split). Returns (batch, ctx, state) before the output projection and, when
    /// `keep_scores`, the scores before the softmax (batch, head, ctx_q, ctx_k).
    pub(crate) fn scores_and_values(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        keep_scores: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, t, d) = q.dims3()?;
        if k.dim(0)? == 1 && b > 1 && t == 1 && mask.is_none() && !keep_scores {
            // Rows (beams, samples) of one window over one copy of its keys and values: as
            // the queries of one row, (b, 1, d) -> (1, b, d) and back.
            let a = self.scores_and_values(&q.reshape((1, b, d))?, k, v, None, false)?.0;
            return Ok((a.reshape((b, 1, d))?, None));
        }
        let q = self.split_heads(q)?;
        // (batch, head, ctx_q, ctx_k)
        let mut w = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            w = w.broadcast_add(mask)?;
        }
        let scores = keep_scores.then(|| w.clone());
        let w = softmax(&w)?;
        let o = w.matmul(v)?.transpose(1, 2)?.reshape((b, t, d))?;
        Ok((o, scores))
    }

    /// Attention of `x` over `k`, `v` (already split), output projection included. Returns
    /// (batch, ctx, state).
    pub(crate) fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (o, _) = self.scores_and_values(&self.queries(x)?, k, v, mask, false)?;
        self.out.forward(&o)
    }
}

/// The MLP of a block: fc1, GELU (erf), fc2.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
    own_kernels: bool,
}

impl Mlp {
    pub(crate) fn load(n_state: usize, vb: VarBuilder, usage: Use, form: Form) -> Result<Self> {
        let n_mlp = n_state * 4;
        Ok(Self {
            fc1: Linear::load(n_state, n_mlp, true, vb.pp("0"), usage, form)?,
            fc2: Linear::load(n_mlp, n_state, true, vb.pp("2"), usage, form)?,
            own_kernels: form.own_kernels,
        })
    }

    /// The adapters' MLP (`Linear::load_t` layout), `n_hidden` wide.
    pub(crate) fn load_t(n_state: usize, n_hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: Linear::load_t(n_state, n_hidden, true, vb.pp("fc1"))?,
            fc2: Linear::load_t(n_hidden, n_state, true, vb.pp("fc2"))?,
            own_kernels: false,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&simd::gelu_erf(&self.fc1.forward(x)?, self.own_kernels)?)
    }
}

/// A pre-norm residual block; decoder blocks also attend over the audio.
#[derive(Debug, Clone)]
pub(crate) struct ResidualBlock {
    pub(crate) attn: MultiHeadAttention,
    pub(crate) attn_ln: Norm,
    pub(crate) cross_attn: Option<(MultiHeadAttention, Norm)>,
    pub(crate) mlp: Mlp,
    pub(crate) mlp_ln: Norm,
}

impl ResidualBlock {
    /// An encoder block (`cross` false: every product over a window's 1500 frames) or a
    /// decoder block.
    pub(crate) fn load(n_state: usize, n_head: usize, cross: bool, vb: VarBuilder, form: Form) -> Result<Self> {
        let usage = if cross { Use::Decoder } else { Use::Many };
        let cross_attn = if cross {
            let attn = MultiHeadAttention::load(n_state, n_head, vb.pp("cross_attn"), usage, Use::Many, form)?;
            Some((attn, Norm::load(n_state, vb.pp("cross_attn_ln"), form)?))
        } else {
            None
        };
        Ok(Self {
            attn: MultiHeadAttention::load(n_state, n_head, vb.pp("attn"), usage, usage, form)?,
            attn_ln: Norm::load(n_state, vb.pp("attn_ln"), form)?,
            cross_attn,
            mlp: Mlp::load(n_state, vb.pp("mlp"), usage, form)?,
            mlp_ln: Norm::load(n_state, vb.pp("mlp_ln"), form)?,
        })
    }
}
