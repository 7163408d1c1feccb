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

/// Whether work on `device` goes through the project's own CPU kernels (packed f16 and int8
/// products, the blocked attention, the decoder's step path): on the CPU, unless
/// `SUBTITLE_CANDLE_ONLY=1` asks for candle's operations throughout. That is the path a GPU
/// takes, so the switch lets it be tested where there is none.
pub fn own_kernels(device: &candle_core::Device) -> bool {
    static CANDLE_ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    device.is_cpu() && !*CANDLE_ONLY.get_or_init(|| std::env::var_os("SUBTITLE_CANDLE_ONLY").is_some_and(|v| v == "1"))
}
