//! Inference: the decoding loop and the model stage that drives it. Uses `model`, never
//! `pipeline` internals beyond the `Stage` trait.

pub mod align;
pub mod decode;
pub mod shared;
pub mod tokenizer;
pub mod transcribe;

pub use decode::{DecodeOptions, Task};
pub use shared::{DecodeRequest, SharedModel};
pub use tokenizer::WhisperTokenizer;
pub use transcribe::{TranscribeOptions, TranscribeStage};
