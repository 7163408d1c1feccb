//! Model dimensions and the decoding facts that come with a checkpoint (`config.json`).

use serde::{Deserialize, Serialize};

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
    /// From the text of a `config.json` (`weights::read_config` reads the file).
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}
