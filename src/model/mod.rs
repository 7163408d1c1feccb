//! Models: candle only. No channels, threads or files beyond reading weights.

mod attention;
pub mod config;
pub mod ct2;
pub mod dinov2;
pub mod fusion;
pub mod int8;
pub mod loader;
pub mod onnx;
pub mod projection;
pub mod simd;
mod step;
pub mod whisper;

pub use config::{Dims, ModelConfig};
pub use loader::LoadedModel;
pub use whisper::Whisper;
