//! Whisper's audio encoder: two convolutions over the log-mel frames, sinusoidal positions,
//! transformer blocks.
//!
//! Implements `AudioEncoder` of https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/model.py;
//! on the CPU the convolutions are int8 products over frames ([`FrameConv`]) and the blocks'
//! products int8 (`model::int8`).

use candle_core::{DType, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};

use crate::model::config::Dims;
use crate::model::int8::Int8Matrix;
use crate::model::layers::{Norm, ResidualBlock};
use crate::model::linear::Form;
use crate::model::simd;

type Result<T> = candle_core::Result<T>;

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
    ln_post: Norm,
    span: tracing::Span,
}

impl AudioEncoder {
    pub(crate) fn load(vb: VarBuilder, dims: &Dims, form: Form) -> Result<Self> {
        let (n, h) = (dims.n_audio_state, dims.n_audio_head);
        let c1 = Conv1dConfig { padding: 1, stride: 1, ..Default::default() };
        let c2 = Conv1dConfig { padding: 1, stride: 2, ..Default::default() };
        let conv1 = candle_nn::conv1d(dims.n_mels, n, 3, c1, vb.pp("conv1"))?;
        let conv2 = candle_nn::conv1d(n, n, 3, c2, vb.pp("conv2"))?;
        let frame_convs =
            if form.own_kernels { Some((FrameConv::new(&conv1, 1)?, FrameConv::new(&conv2, 2)?)) } else { None };
        Ok(Self {
            conv1,
            conv2,
            frame_convs,
            positional_embedding: vb.get((dims.n_audio_ctx, n), "positional_embedding")?,
            blocks: (0..dims.n_audio_layer)
                .map(|i| ResidualBlock::load(n, h, false, vb.pp(format!("blocks.{i}")), form))
                .collect::<Result<_>>()?,
            ln_post: Norm::load(n, vb.pp("ln_post"), form)?,
            span: tracing::span!(tracing::Level::TRACE, "audio-encoder"),
        })
    }

    pub fn device(&self) -> &candle_core::Device {
        self.positional_embedding.device()
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
                let own = self.frame_convs.is_some();
                let x = simd::gelu_erf(&self.conv1.forward(mel)?, own)?;
                simd::gelu_erf(&self.conv2.forward(&x)?, own)?.transpose(1, 2)?
            }
        }; // (batch, 1500, state)
        let t = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positional_embedding.narrow(0, 0, t)?)?;
        for b in &self.blocks {
            let h = b.attn_ln.forward(&x)?;
            let (k, v) = b.attn.keys_values(&h)?;
            x = (&x + b.attn.out.forward(&b.attn.attend_long(&b.attn.queries(&h)?, &k, &v)?)?)?;
            x = (&x + b.mlp.forward(&b.mlp_ln.forward(&x)?)?)?;
        }
        self.ln_post.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
            let want = simd::gelu_erf(&conv.forward(&x)?, true)?.get(0)?.t()?.to_vec2::<f32>()?;
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
}
