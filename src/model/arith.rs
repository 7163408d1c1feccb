//! Where a decoder layer's arithmetic runs: the seam between the layer, written once in
//! `model::decoder`, and the two ways of computing it.
//!
//! - [`Tensors`]: candle's operations on (rows, tokens, state) tensors, a causal mask and a
//!   key/value cache of tensors. Prompts, word alignment (it keeps the cross-attention scores),
//!   training (gradients flow), and everything on a GPU.
//! - [`Steps`]: one token per row on plain slices with the CPU kernels (`model::step`): the
//!   packed products, an f16 key/value cache appended in place, the audio's keys and values in
//!   f16. In candle one step was some 150 small operations, each with its own allocation,
//!   dispatch and thread wake-up: 9 ms for tiny.en on 2 cores against 1.5 ms here.
//!
//! Both run the same operations in the same order on the same weights; they differ only in the
//! kernels (and so in rounding).

use candle_core::Tensor;

use crate::model::decoder::DecoderState;
use crate::model::fusion::GatedBlock;
use crate::model::layers::{MultiHeadAttention, Norm};
use crate::model::linear::Linear;
use crate::model::simd;
use crate::model::step::{self, HalfKeysValues, StepCache};

type Result<T> = candle_core::Result<T>;

/// The operations a decoder layer is made of, on hidden states `X` of (rows, tokens, state).
pub(crate) trait Arith {
    type X;
    /// The adapter's gated block before layer `layer`, over the state's memory.
    fn fuse(&mut self, layer: usize, block: &GatedBlock, x: Self::X) -> Result<Self::X>;
    fn norm(&mut self, n: &Norm, x: &Self::X) -> Result<Self::X>;
    fn linear(&mut self, l: &Linear, x: &Self::X) -> Result<Self::X>;
    fn scale(&mut self, x: Self::X, s: f64) -> Result<Self::X>;
    /// Self-attention of layer `layer`: `k`, `v` join the cache, `q` (scaled) attends over it
    /// causally. Returns the heads' outputs side by side, before the output projection.
    fn self_attention(
        &mut self,
        layer: usize,
        attn: &MultiHeadAttention,
        q: Self::X,
        k: Self::X,
        v: Self::X,
    ) -> Result<Self::X>;
    /// Cross-attention of layer `layer` over the audio, `q` scaled.
    fn cross_attention(&mut self, layer: usize, attn: &MultiHeadAttention, q: Self::X) -> Result<Self::X>;
    fn gelu(&mut self, x: Self::X) -> Result<Self::X>;
    fn add(&mut self, x: Self::X, y: Self::X) -> Result<Self::X>;
}

/// candle's operations.
pub(crate) struct Tensors<'s> {
    pub(crate) state: &'s mut DecoderState,
    /// The causal mask of this call's tokens (none for one token).
    pub(crate) mask: Option<Tensor>,
    /// Each layer's cross-attention scores (before the softmax), when asked for.
    pub(crate) scores: Option<Vec<Option<Tensor>>>,
    pub(crate) own_kernels: bool,
}

impl Arith for Tensors<'_> {
    type X = Tensor;

    fn fuse(&mut self, layer: usize, block: &GatedBlock, x: Tensor) -> Result<Tensor> {
        match self.state.memory_kv.get(layer) {
            Some((k, v)) => block.forward(&x, k, v),
            None => Ok(x),
        }
    }

    fn norm(&mut self, n: &Norm, x: &Tensor) -> Result<Tensor> {
        n.forward(x)
    }

    fn linear(&mut self, l: &Linear, x: &Tensor) -> Result<Tensor> {
        l.forward(x)
    }

    fn scale(&mut self, x: Tensor, s: f64) -> Result<Tensor> {
        x * s
    }

    fn self_attention(
        &mut self,
        layer: usize,
        attn: &MultiHeadAttention,
        q: Tensor,
        k: Tensor,
        v: Tensor,
    ) -> Result<Tensor> {
        let (k, v) = (attn.split_heads(&k)?, attn.split_heads(&v)?);
        let (k, v) = match self.state.self_kv[layer].take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        let (o, _) = attn.scores_and_values(&q, &k, &v, self.mask.as_ref(), false)?;
        self.state.self_kv[layer] = Some((k, v));
        Ok(o)
    }

    fn cross_attention(&mut self, layer: usize, attn: &MultiHeadAttention, q: Tensor) -> Result<Tensor> {
        let (k, v) = &self.state.cross_kv[layer];
        if let Some(scores) = self.scores.as_mut() {
            let (o, s) = attn.scores_and_values(&q, k, v, None, true)?;
            scores[layer] = s;
            return Ok(o);
        }
        if k.dim(0)? == q.dim(0)? && q.dim(1)? > 1 {
            // A prompt over the audio (225 tokens of previous text by 1500 frames): a block of
            // queries at a time, as the encoder's, not candle's (head, ctx, 1500) scores.
            return attn.attend_long(&q, k, v);
        }
        Ok(attn.scores_and_values(&q, k, v, None, false)?.0)
    }

    fn gelu(&mut self, x: Tensor) -> Result<Tensor> {
        simd::gelu_erf(&x, self.own_kernels)
    }

    fn add(&mut self, x: Tensor, y: Tensor) -> Result<Tensor> {
        x + y
    }
}

/// The CPU kernels, one token per row: hidden states are (rows, state) row-major.
pub(crate) struct Steps<'s> {
    pub(crate) rows: usize,
    pub(crate) head_dim: usize,
    /// Tokens already in the cache before this step.
    pub(crate) offset: usize,
    pub(crate) cache: &'s mut StepCache,
    pub(crate) cross: &'s [HalfKeysValues],
    pub(crate) memory_kv: &'s [(Tensor, Tensor)],
    pub(crate) device: &'s candle_core::Device,
}

impl Arith for Steps<'_> {
    type X = Vec<f32>;

    fn fuse(&mut self, layer: usize, block: &GatedBlock, x: Vec<f32>) -> Result<Vec<f32>> {
        let Some((k, v)) = self.memory_kv.get(layer) else { return Ok(x) };
        // The adapter's block, in candle: a few operations a layer.
        let d = x.len() / self.rows;
        let t = Tensor::from_vec(x, (self.rows, 1, d), self.device)?;
        block.forward(&t, k, v)?.flatten_all()?.to_vec1::<f32>()
    }

    fn norm(&mut self, n: &Norm, x: &Vec<f32>) -> Result<Vec<f32>> {
        n.rows(x)
    }

    fn linear(&mut self, l: &Linear, x: &Vec<f32>) -> Result<Vec<f32>> {
        l.rows(x, self.rows)
    }

    fn scale(&mut self, mut x: Vec<f32>, s: f64) -> Result<Vec<f32>> {
        let s = s as f32;
        x.iter_mut().for_each(|v| *v *= s);
        Ok(x)
    }

    fn self_attention(
        &mut self,
        layer: usize,
        _: &MultiHeadAttention,
        q: Vec<f32>,
        k: Vec<f32>,
        v: Vec<f32>,
    ) -> Result<Vec<f32>> {
        self.cache.push(layer, &k, &v);
        Ok(step::self_attention(&q, self.cache, layer, self.head_dim, self.offset + 1))
    }

    fn cross_attention(&mut self, layer: usize, _: &MultiHeadAttention, q: Vec<f32>) -> Result<Vec<f32>> {
        Ok(step::cross_attention(&q, self.rows, &self.cross[layer]))
    }

    fn gelu(&mut self, mut x: Vec<f32>) -> Result<Vec<f32>> {
        simd::gelu_erf_in_place(&mut x);
        Ok(x)
    }

    fn add(&mut self, mut x: Vec<f32>, y: Vec<f32>) -> Result<Vec<f32>> {
        step::add(&mut x, &y);
        Ok(x)
    }
}
