//! Model dimensions and the decoding facts that come with a checkpoint (`config.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Whisper's dimensions, as OpenAI's `ModelDimensions` names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_vocab: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
}

impl Dims {
    /// OpenAI's test: multilingual checkpoints have 51865 or more tokens.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// The converted model's `config.json`: CTranslate2's fields plus `dims`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub dims: Dims,
    #[serde(default)]
    pub alignment_heads: Vec<[usize; 2]>,
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    pub lang_ids: Vec<u32>,
}

impl ModelConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::model(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::model(path, format!("bad model config: {e}")))
    }
}
