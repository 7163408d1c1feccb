//! Finding a model directory by name and loading its weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
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
        // SAFETY: the file is only read; a concurrent writer would be a user error we cannot prevent.
        let mm = unsafe { candle_core::safetensors::MmapedSafetensors::new(&st) }
            .map_err(|e| Error::model(&st, format!("corrupt or truncated weights: {}", first_line(&e))))?;
        let vb = VarBuilder::from_backend(Box::new(mm), DType::F32, device.clone());
        let whisper = Whisper::load(vb, &config.dims)
            .map_err(|e| Error::model(&st, format!("weights do not fit the config: {}", first_line(&e))))?;
        Ok(Self { dir: dir.to_path_buf(), config, whisper })
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
