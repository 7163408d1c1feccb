//! Cross-modal fusion: gated cross-attention blocks in Whisper's decoder over a memory of picture
//! and text tokens, the adapter that `subtitle train` trains and `--adapter` loads.
//!
//! Implements the gated cross-attention dense block of Flamingo (Alayrac et al. 2022, section 2.2,
//! https://arxiv.org/abs/2204.14198), placed before each decoder layer:
//! `x = x + tanh(a) * xattn(LN(x), memory)`, then `x = x + tanh(b) * ff(LN(x))`. With the gates
//! `a = b = 0`, as initialised, both additions are exactly zero and the decoder is Whisper's own.
//!
//! The memory, (1, tokens, state), is built per window from
//! - pictures: `TOKENS_PER_IMAGE` DINOv2 tokens of each still shown during the window or shortly
//!   before, through `visual` (384 -> state), plus a learned "picture" embedding;
//! - text: the Whisper token embeddings of the window's context (on-screen text, `--context`
//!   terms), through `text` (state -> state), plus a learned "text" embedding. Whisper's own
//!   embedding keeps the memory in the vocabulary the decoder writes, so a block can learn to copy
//!   a spelling from it; a sentence encoder (MiniLM) would add a model and a second vocabulary.
//!
//! `audio` (state -> state) only serves the training loss that aligns a window's pooled audio with
//! its pictures; inference never reads it.
//!
//! Adapter files hold every linear layer as (in, out) under `wt`, the layout the product reads.

use candle_core::Tensor;
use candle_nn::{Init, LayerNorm, VarBuilder};

use crate::model::dinov2;
use crate::model::layers::{norm, Mlp, MultiHeadAttention};
use crate::model::linear::Linear;

type Result<T> = candle_core::Result<T>;

/// Width of a block's feed-forward layer, in multiples of the decoder's state.
const FF_MULT: usize = 2;

/// Which kind of token a memory row is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Picture = 0,
    Text = 1,
}

fn layer_norm(n: usize, vb: VarBuilder) -> Result<LayerNorm> {
    let w = vb.get_with_hints(n, "weight", Init::Const(1.0))?;
    let b = vb.get_with_hints(n, "bias", Init::Const(0.0))?;
    Ok(LayerNorm::new(w, b, 1e-5))
}

/// One gated cross-attention dense block.
#[derive(Debug, Clone)]
pub struct GatedBlock {
    ln: LayerNorm,
    attn: MultiHeadAttention,
    gate_attn: Tensor,
    ff_ln: LayerNorm,
    ff: Mlp,
    gate_ff: Tensor,
}

impl GatedBlock {
    fn load(n_state: usize, n_head: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln: layer_norm(n_state, vb.pp("ln"))?,
            attn: MultiHeadAttention::load_t(n_state, n_head, vb.pp("attn"))?,
            gate_attn: vb.get_with_hints(1, "gate_attn", Init::Const(0.0))?,
            ff_ln: layer_norm(n_state, vb.pp("ff_ln"))?,
            ff: Mlp::load_t(n_state, FF_MULT * n_state, vb.pp("ff"))?,
            gate_ff: vb.get_with_hints(1, "gate_ff", Init::Const(0.0))?,
        })
    }

    /// `x` (batch, ctx, state) attending over the memory's keys and values of this layer.
    pub fn forward(&self, x: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let a = self.attn.attend(&norm(&self.ln, x)?, k, v, None)?;
        let x = (x + a.broadcast_mul(&self.gate_attn.tanh()?)?)?;
        let f = self.ff.forward(&norm(&self.ff_ln, &x)?)?;
        &x + f.broadcast_mul(&self.gate_ff.tanh()?)?
    }

    /// tanh of the two gates: how much the block adds.
    pub fn gates(&self) -> Result<(f32, f32)> {
        let g = |t: &Tensor| -> Result<f32> { t.tanh()?.to_vec1::<f32>().map(|v| v[0]) };
        Ok((g(&self.gate_attn)?, g(&self.gate_ff)?))
    }
}

/// The adapter: memory projections and one gated block per decoder layer.
#[derive(Debug, Clone)]
pub struct Fusion {
    visual: Linear,
    text: Linear,
    kind: Tensor,
    pub(crate) audio: Linear,
    pub blocks: Vec<GatedBlock>,
    n_state: usize,
}

impl Fusion {
    /// Reads an adapter from `vb`, or creates one (zero gates) when `vb` is backed by a
    /// `VarMap`. `n_state`, `n_head`, `n_layer`: the decoder's.
    pub fn load(vb: VarBuilder, n_state: usize, n_head: usize, n_layer: usize) -> Result<Self> {
        Ok(Self {
            visual: Linear::load_t(dinov2::DIM, n_state, true, vb.pp("visual"))?,
            text: Linear::load_t(n_state, n_state, true, vb.pp("text"))?,
            kind: vb.get_with_hints((2, n_state), "kind", Init::Randn { mean: 0.0, stdev: 0.02 })?,
            audio: Linear::load_t(n_state, n_state, true, vb.pp("audio"))?,
            blocks: (0..n_layer)
                .map(|i| GatedBlock::load(n_state, n_head, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<_>>()?,
            n_state,
        })
    }

    /// Checks that the adapter was made for a decoder of `n_layer` layers of `n_state`.
    pub fn fits(&self, n_layer: usize, n_state: usize) -> Result<()> {
        if self.blocks.len() != n_layer || self.n_state != n_state {
            candle_core::bail!(
                "the adapter has {} layers of {}, the model {n_layer} of {n_state}: it was trained for another model",
                self.blocks.len(),
                self.n_state
            );
        }
        Ok(())
    }

    /// The memory for one window, (1, tokens, state): `pictures` (n * TOKENS_PER_IMAGE,
    /// dinov2::DIM) and `text` token embeddings (n, state), either may be absent. `None` when
    /// both are: the gated blocks are then skipped, which equals their output at any gate.
    pub fn memory(&self, pictures: Option<&Tensor>, text: Option<&Tensor>) -> Result<Option<Tensor>> {
        let mut parts = Vec::new();
        if let Some(p) = pictures.filter(|p| p.dim(0).unwrap_or(0) > 0) {
            parts.push(self.visual.forward(p)?.broadcast_add(&self.kind.get(Kind::Picture as usize)?)?);
        }
        if let Some(t) = text.filter(|t| t.dim(0).unwrap_or(0) > 0) {
            parts.push(self.text.forward(t)?.broadcast_add(&self.kind.get(Kind::Text as usize)?)?);
        }
        if parts.is_empty() {
            return Ok(None);
        }
        Ok(Some(Tensor::cat(&parts, 0)?.unsqueeze(0)?))
    }

    /// A window's audio (1, audio_ctx, state), pooled over time and projected: (1, state). The
    /// training loss aligns it with `pooled_pictures` of the same window.
    pub fn pooled_audio(&self, audio: &Tensor) -> Result<Tensor> {
        self.audio.forward(&audio.mean(1)?)
    }

    /// A window's picture tokens (n, dinov2::DIM), projected and pooled: (1, state).
    pub fn pooled_pictures(&self, pictures: &Tensor) -> Result<Tensor> {
        self.visual.forward(pictures)?.mean_keepdim(0)
    }

    /// Per layer, the memory's keys and values.
    pub fn keys_values(&self, memory: &Tensor) -> Result<Vec<(Tensor, Tensor)>> {
        self.blocks.iter().map(|b| b.attn.keys_values(memory)).collect()
    }
}
