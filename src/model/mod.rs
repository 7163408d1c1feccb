//! Models: candle and the CPU kernels only. No channels, threads or files: `weights` reads the
//! files and hands the tensors in.

mod arith;
mod attention;
pub mod config;
pub mod decoder;
pub mod dinov2;
pub mod encoder;
pub mod fusion;
pub mod int8;
mod layers;
mod linear;
pub mod projection;
pub mod simd;
mod step;
pub mod tokenizer;
pub mod whisper;

use std::path::PathBuf;

pub use config::{Dims, ModelConfig};
pub use decoder::{DecoderState, Encoded};
pub use tokenizer::WhisperTokenizer;
pub use whisper::Whisper;

/// Whose arithmetic a model runs, chosen when it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// The project's CPU kernels: packed and int8 products, the blocked attention, the decoder's
    /// step path.
    Own,
    /// candle's operations throughout: what a GPU runs, so `Candle` on the CPU tests that path
    /// where there is no GPU.
    Candle,
}

impl Kernels {
    /// Own kernels on the CPU, candle's elsewhere.
    pub fn for_device(device: &candle_core::Device) -> Self {
        if device.is_cpu() {
            Kernels::Own
        } else {
            Kernels::Candle
        }
    }
}

/// A Whisper model as loaded from one directory (`weights::load_whisper`).
pub struct LoadedModel {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub whisper: Whisper,
}
