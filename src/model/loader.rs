//! Finding a model directory by name and loading its weights.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::model::{ModelConfig, Whisper};

/// Where `--model` names are looked up: `$SUBTITLE_MODELS`, then `./models`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SUBTITLE_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("models"));
    dirs
}

/// A directory as given, or a name found in `search_dirs()`.
pub fn resolve(model: &str) -> Result<PathBuf> {
    let as_dir = Path::new(model);
    if as_dir.join("model.safetensors").is_file() || (model.contains('/') && as_dir.is_dir()) {
        return Ok(as_dir.to_path_buf());
    }
    for dir in search_dirs() {
        let d = dir.join(model);
        if d.join("model.safetensors").is_file() {
            return Ok(d);
        }
    }
    let looked: Vec<String> = search_dirs().iter().map(|d| d.display().to_string()).collect();
    Err(Error::model(
        model,
        format!("no such model (looked in {}; fetch one with `models/fetch.sh {model}`)", looked.join(", ")),
    ))
}

/// Weights and config of one model directory, on one device.
pub struct LoadedModel {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub whisper: Whisper,
}

impl LoadedModel {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = ModelConfig::load(&dir.join("config.json"))?;
        let st = dir.join("model.safetensors");
        if !st.is_file() {
            return Err(Error::model(&st, "missing model.safetensors"));
        }
        // Parse the header first, so a truncated or corrupt file is named as such.
        let file = SafetensorsFile::open(&st)
            .map_err(|e| Error::model(&st, format!("corrupt or truncated weights: {}", first_line(&e))))?;
        let vb = VarBuilder::from_backend(Box::new(file), DType::F32, device.clone());
        let whisper = Whisper::load(vb, &config.dims)
            .map_err(|e| Error::model(&st, format!("weights do not fit the config: {}", first_line(&e))))?;
        Ok(Self { dir: dir.to_path_buf(), config, whisper })
    }
}

/// A safetensors file read one tensor at a time, not mapped: a mapping keeps every page of the
/// checkpoint it touched resident until it is dropped, so loading peaked at the whole file (75 MB
/// for tiny.en) on top of the weights built from it.
struct SafetensorsFile {
    file: File,
    /// name -> (dtype, shape, first byte, end byte), absolute in the file
    tensors: HashMap<String, (DType, Vec<usize>, u64, u64)>,
}

impl SafetensorsFile {
    /// Reads and checks the header: every tensor's bytes lie inside the file and match its shape.
    fn open(path: &Path) -> std::result::Result<Self, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut n = [0u8; 8];
        file.read_exact_at(&mut n, 0).map_err(|_| "no header".to_string())?;
        let n = u64::from_le_bytes(n);
        if n > len.saturating_sub(8) || n > 100 << 20 {
            return Err(format!("header of {n} bytes in a file of {len}"));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact_at(&mut header, 8).map_err(|e| e.to_string())?;
        let header: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| format!("header: {e}"))?;
        let data_start = 8 + n;
        let mut tensors = HashMap::new();
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let dtype = match v["dtype"].as_str() {
                Some("F16") => DType::F16,
                Some("BF16") => DType::BF16,
                Some("F32") => DType::F32,
                Some("F64") => DType::F64,
                Some("U8") => DType::U8,
                Some("U32") => DType::U32,
                Some("I64") => DType::I64,
                other => return Err(format!("{name}: unsupported dtype {other:?}")),
            };
            let shape: Option<Vec<usize>> =
                v["shape"].as_array().map(|a| a.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect());
            let offsets: Option<Vec<u64>> =
                v["data_offsets"].as_array().map(|a| a.iter().filter_map(|d| d.as_u64()).collect());
            let (Some(shape), Some(&[a, b])) = (shape, offsets.as_deref()) else {
                return Err(format!("{name}: no shape or offsets"));
            };
            let bytes = shape.iter().product::<usize>() as u64 * dtype.size_in_bytes() as u64;
            if b < a || b - a != bytes || data_start + b > len {
                return Err(format!("{name}: bytes {a}..{b} do not hold its shape inside a file of {len}"));
            }
            tensors.insert(name, (dtype, shape, data_start + a, data_start + b));
        }
        Ok(Self { file, tensors })
    }
}

impl SimpleBackend for SafetensorsFile {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            candle_core::bail!("shape mismatch for {name}: expected {s:?}, got {:?}", t.shape());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some((stored, shape, a, b)) = self.tensors.get(name) else {
            candle_core::bail!("no tensor {name}");
        };
        let mut buf = vec![0u8; (b - a) as usize];
        self.file.read_exact_at(&mut buf, *a)?;
        if *stored == DType::F16 && dtype == DType::F32 && dev.is_cpu() {
            // Checkpoints keep f16: widened eight at a time (a third of loading went to
            // candle's conversion, a value at a time).
            let half: Vec<half::f16> = buf.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]])).collect();
            let mut f32s = vec![0f32; half.len()];
            crate::model::simd::f16_to_f32(&half, &mut f32s);
            return Tensor::from_vec(f32s, shape.clone(), dev);
        }
        Tensor::from_raw_buffer(&buf, *stored, shape, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
