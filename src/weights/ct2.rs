//! Reader for CTranslate2 `model.bin` files and conversion of a Whisper one to safetensors with
//! OpenAI's checkpoint names.
//!
//! Format (little-endian), as written by CTranslate2's `ModelSpec.save`
//! (https://github.com/OpenNMT/CTranslate2/blob/v4.5.0/python/ctranslate2/specs/model_spec.py):
//! u32 version, str spec name, u32 revision, u32 variable count; per variable: str name, u8 rank,
//! rank x u32 dims, u8 dtype, u32 byte count, data; then u32 alias count and (alias, target)
//! string pairs. A str is a u16 length that counts a trailing NUL, then the bytes and the NUL.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::config::Dims;

/// Element types in the order CTranslate2 numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ct2Variable {
    pub dims: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub data: Vec<u8>,
}

impl Ct2Variable {
    /// The value of a rank-0 integer variable (head counts and flags are stored so).
    pub fn scalar_i64(&self) -> Option<i64> {
        if !self.dims.is_empty() {
            return None;
        }
        let d = &self.data;
        Some(match self.dtype {
            Ct2Dtype::I8 => d[0] as i8 as i64,
            Ct2Dtype::I16 => i16::from_le_bytes([d[0], d[1]]) as i64,
            Ct2Dtype::I32 => i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            _ => return None,
        })
    }

    fn to_tensor(&self) -> candle_core::Result<Tensor> {
        let dtype = match self.dtype {
            Ct2Dtype::F32 => DType::F32,
            Ct2Dtype::F16 => DType::F16,
            Ct2Dtype::Bf16 => DType::BF16,
            other => candle_core::bail!("not a float variable: {other:?}"),
        };
        Tensor::from_raw_buffer(&self.data, dtype, &self.dims, &Device::Cpu)
    }
}

#[derive(Debug, Clone)]
pub struct Ct2Model {
    pub spec: String,
    pub revision: u32,
    pub variables: HashMap<String, Ct2Variable>,
    pub aliases: HashMap<String, String>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn str(&mut self) -> std::result::Result<String, String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| format!("bad string before byte {}", self.pos))
    }
}

impl Ct2Model {
    pub fn read(path: &Path) -> Result<Self> {
        let mut bytes = Vec::new();
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::model(path, e))?;
        Self::parse(&bytes).map_err(|e| Error::model(path, format!("not a CTranslate2 model: {e}")))
    }

    pub fn parse(buf: &[u8]) -> std::result::Result<Self, String> {
        let mut c = Cursor { buf, pos: 0 };
        let version = c.u32()?;
        if !(5..=6).contains(&version) {
            return Err(format!("unsupported format version {version}"));
        }
        let spec = c.str()?;
        let revision = c.u32()?;
        let count = c.u32()? as usize;
        // The count is the file's word: room for what the bytes left could hold, no more.
        let mut variables = HashMap::with_capacity(count.min(buf.len() / 8));
        for _ in 0..count {
            let name = c.str()?;
            let rank = c.u8()? as usize;
            let dims = (0..rank).map(|_| c.u32().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            let code = c.u8()?;
            let dtype = Ct2Dtype::from_code(code).ok_or_else(|| format!("{name}: unknown dtype {code}"))?;
            let nbytes = c.u32()? as usize;
            let expect = dims.iter().try_fold(dtype.size(), |n, &d| n.checked_mul(d));
            if expect != Some(nbytes) {
                return Err(format!("{name}: {nbytes} bytes for dims {dims:?}"));
            }
            let data = c.take(nbytes)?.to_vec();
            variables.insert(name, Ct2Variable { dims, dtype, data });
        }
        let mut aliases = HashMap::new();
        if c.pos < buf.len() {
            let n = c.u32()?;
            for _ in 0..n {
                let alias = c.str()?;
                let target = c.str()?;
                aliases.insert(alias, target);
            }
        }
        Ok(Self { spec, revision, variables, aliases })
    }

    fn get(&self, name: &str) -> std::result::Result<&Ct2Variable, String> {
        let name = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.variables.get(name).ok_or_else(|| format!("missing variable {name}"))
    }

    fn count_layers(&self, prefix: &str) -> usize {
        (0..).take_while(|i| self.variables.keys().any(|k| k.starts_with(&format!("{prefix}/layer_{i}/")))).count()
    }

    /// Model dimensions read off the variables' shapes.
    pub fn whisper_dims(&self) -> std::result::Result<Dims, String> {
        if self.spec != "WhisperSpec" {
            return Err(format!("spec is {}, not WhisperSpec", self.spec));
        }
        let conv1 = self.get("encoder/conv1/weight")?;
        let enc_pos = self.get("encoder/position_encodings/encodings")?;
        let emb = self.get("decoder/embeddings/weight")?;
        let dec_pos = self.get("decoder/position_encodings/encodings")?;
        let heads = |p: &str| {
            self.get(p).ok().and_then(Ct2Variable::scalar_i64).map(|h| h as usize).ok_or(format!("missing {p}"))
        };
        Ok(Dims {
            n_mels: conv1.dims[1],
            n_audio_ctx: enc_pos.dims[0],
            n_audio_state: enc_pos.dims[1],
            n_audio_head: heads("encoder/num_heads")?,
            n_audio_layer: self.count_layers("encoder"),
            n_vocab: emb.dims[0],
            n_text_ctx: dec_pos.dims[0],
            n_text_state: dec_pos.dims[1],
            n_text_head: heads("decoder/num_heads")?,
            n_text_layer: self.count_layers("decoder"),
        })
    }

    /// The weights under OpenAI Whisper's names. Fused projections are split; the key projection
    /// has no bias in Whisper, so its (zero) bias slice is dropped.
    pub fn whisper_tensors(&self) -> std::result::Result<HashMap<String, Tensor>, String> {
        let dims = self.whisper_dims()?;
        let mut out = HashMap::new();
        let t = |name: &str| -> std::result::Result<Tensor, String> {
            self.get(name)?.to_tensor().map_err(|e| format!("{name}: {e}"))
        };
        let chunk = |x: &Tensor, n: usize| -> std::result::Result<Vec<Tensor>, String> {
            x.chunk(n, 0).map_err(|e| e.to_string())
        };
        let put_ln = |out: &mut HashMap<String, Tensor>, src: &str, dst: &str| -> std::result::Result<(), String> {
            out.insert(format!("{dst}.weight"), t(&format!("{src}/gamma"))?);
            out.insert(format!("{dst}.bias"), t(&format!("{src}/beta"))?);
            Ok(())
        };
        let put_linear = |out: &mut HashMap<String, Tensor>, src: &str, dst: &str| -> std::result::Result<(), String> {
            out.insert(format!("{dst}.weight"), t(&format!("{src}/weight"))?);
            out.insert(format!("{dst}.bias"), t(&format!("{src}/bias"))?);
            Ok(())
        };
        let put_qkv = |out: &mut HashMap<String, Tensor>, src: &str, dst: &str| -> std::result::Result<(), String> {
            let w = chunk(&t(&format!("{src}/weight"))?, 3)?;
            let b = chunk(&t(&format!("{src}/bias"))?, 3)?;
            out.insert(format!("{dst}.query.weight"), w[0].clone());
            out.insert(format!("{dst}.query.bias"), b[0].clone());
            out.insert(format!("{dst}.key.weight"), w[1].clone());
            out.insert(format!("{dst}.value.weight"), w[2].clone());
            out.insert(format!("{dst}.value.bias"), b[2].clone());
            Ok(())
        };

        for conv in ["conv1", "conv2"] {
            put_linear(&mut out, &format!("encoder/{conv}"), &format!("encoder.{conv}"))?;
        }
        out.insert("encoder.positional_embedding".into(), t("encoder/position_encodings/encodings")?);
        for i in 0..dims.n_audio_layer {
            let (s, d) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
            put_qkv(&mut out, &format!("{s}/self_attention/linear_0"), &format!("{d}.attn"))?;
            put_linear(&mut out, &format!("{s}/self_attention/linear_1"), &format!("{d}.attn.out"))?;
            put_ln(&mut out, &format!("{s}/self_attention/layer_norm"), &format!("{d}.attn_ln"))?;
            put_linear(&mut out, &format!("{s}/ffn/linear_0"), &format!("{d}.mlp.0"))?;
            put_linear(&mut out, &format!("{s}/ffn/linear_1"), &format!("{d}.mlp.2"))?;
            put_ln(&mut out, &format!("{s}/ffn/layer_norm"), &format!("{d}.mlp_ln"))?;
        }
        put_ln(&mut out, "encoder/layer_norm", "encoder.ln_post")?;

        out.insert("decoder.token_embedding.weight".into(), t("decoder/embeddings/weight")?);
        out.insert("decoder.positional_embedding".into(), t("decoder/position_encodings/encodings")?);
        for i in 0..dims.n_text_layer {
            let (s, d) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
            put_qkv(&mut out, &format!("{s}/self_attention/linear_0"), &format!("{d}.attn"))?;
            put_linear(&mut out, &format!("{s}/self_attention/linear_1"), &format!("{d}.attn.out"))?;
            put_ln(&mut out, &format!("{s}/self_attention/layer_norm"), &format!("{d}.attn_ln"))?;
            put_linear(&mut out, &format!("{s}/attention/linear_0"), &format!("{d}.cross_attn.query"))?;
            let kv_w = chunk(&t(&format!("{s}/attention/linear_1/weight"))?, 2)?;
            let kv_b = chunk(&t(&format!("{s}/attention/linear_1/bias"))?, 2)?;
            out.insert(format!("{d}.cross_attn.key.weight"), kv_w[0].clone());
            out.insert(format!("{d}.cross_attn.value.weight"), kv_w[1].clone());
            out.insert(format!("{d}.cross_attn.value.bias"), kv_b[1].clone());
            put_linear(&mut out, &format!("{s}/attention/linear_2"), &format!("{d}.cross_attn.out"))?;
            put_ln(&mut out, &format!("{s}/attention/layer_norm"), &format!("{d}.cross_attn_ln"))?;
            put_linear(&mut out, &format!("{s}/ffn/linear_0"), &format!("{d}.mlp.0"))?;
            put_linear(&mut out, &format!("{s}/ffn/linear_1"), &format!("{d}.mlp.2"))?;
            put_ln(&mut out, &format!("{s}/ffn/layer_norm"), &format!("{d}.mlp_ln"))?;
        }
        put_ln(&mut out, "decoder/layer_norm", "decoder.ln")?;
        // Each split slice is a view; make them own their memory before saving.
        for v in out.values_mut() {
            *v = v.contiguous().map_err(|e| e.to_string())?.copy().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }
}

/// Convert a CTranslate2 Whisper directory (`model.bin`, `config.json`, `tokenizer.json`) into
/// `model.safetensors`, `config.json` (CTranslate2's fields plus the dimensions) and
/// `tokenizer.json` in `dst`. Each file is written whole or not at all (`atomic`).
pub fn convert_whisper_dir(src: &Path, dst: &Path) -> Result<()> {
    let bin = src.join("model.bin");
    let model = Ct2Model::read(&bin)?;
    let dims = model.whisper_dims().map_err(|e| Error::model(&bin, e))?;
    let tensors = model.whisper_tensors().map_err(|e| Error::model(&bin, e))?;
    drop(model);

    let cfg_path = src.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::model(&cfg_path, e))?;
    let mut cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::model(&cfg_path, e))?;
    let obj = cfg.as_object_mut().ok_or_else(|| Error::model(&cfg_path, "not a JSON object"))?;
    obj.insert("dims".into(), serde_json::to_value(&dims).expect("dims serialise"));

    std::fs::create_dir_all(dst).map_err(|e| Error::output(dst, e))?;
    crate::atomic::write_safetensors(&dst.join("model.safetensors"), &tensors)?;
    let json = serde_json::to_string_pretty(&cfg).expect("config serialises");
    crate::atomic::write_atomic(&dst.join("config.json"), json.as_bytes())?;
    let tok = src.join("tokenizer.json");
    let tok_bytes = std::fs::read(&tok).map_err(|e| Error::model(&tok, e))?;
    crate::atomic::write_atomic(&dst.join("tokenizer.json"), &tok_bytes)?;
    super::write_checksums(dst, &["model.safetensors", "config.json", "tokenizer.json"])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header whose variable count or dimensions are absurd is refused, without reserving
    /// room for four billion variables or overflowing the byte count.
    #[test]
    fn absurd_counts_and_dimensions_are_refused() {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        put_str(&mut b, "WhisperSpec");
        b.extend_from_slice(&1u32.to_le_bytes());
        let head = b.clone();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Ct2Model::parse(&b).unwrap_err().contains("truncated"));
        let mut b = head;
        b.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut b, "w");
        b.push(4);
        for _ in 0..4 {
            b.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        b.push(0);
        b.extend_from_slice(&16u32.to_le_bytes());
        assert!(Ct2Model::parse(&b).unwrap_err().contains("bytes for dims"));
    }

    fn put_str(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }

    fn put_var(b: &mut Vec<u8>, name: &str, dims: &[u32], dtype: u8, data: &[u8]) {
        put_str(b, name);
        b.push(dims.len() as u8);
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.push(dtype);
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
    }

    fn synthetic() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        put_str(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        put_var(&mut b, "a/weight", &[3, 2], 0, &w);
        put_var(&mut b, "a/num_heads", &[], 2, &6i16.to_le_bytes());
        let h: Vec<u8> = [0.5f32, -1.0].iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
        put_var(&mut b, "b", &[2], 4, &h);
        b.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut b, "c");
        put_str(&mut b, "b");
        b
    }

    #[test]
    fn reads_synthetic_file() {
        let m = Ct2Model::parse(&synthetic()).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.variables.len(), 3);
        assert_eq!(m.get("a/num_heads").unwrap().scalar_i64(), Some(6));
        let a = m.get("a/weight").unwrap().to_tensor().unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]]);
        let c = m.get("c").unwrap().to_tensor().unwrap().to_dtype(DType::F32).unwrap();
        assert_eq!(c.to_vec1::<f32>().unwrap(), vec![0.5, -1.0]);
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let full = synthetic();
        for cut in [3, 10, 40, full.len() - 5] {
            assert!(Ct2Model::parse(&full[..cut]).is_err(), "cut at {cut}");
        }
    }
}
