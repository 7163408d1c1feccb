//! The whole of Whisper: the audio encoder and the text decoder, on one device, run with one kind
//! of kernels.
//!
//! Implements https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/model.py
//! (`Whisper`); `tests/reference.rs` checks it against candle-transformers' implementation on
//! the same weights.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use crate::model::config::Dims;
use crate::model::decoder::{Encoded, TextDecoder};
use crate::model::encoder::AudioEncoder;
use crate::model::linear::Form;
use crate::model::Kernels;

type Result<T> = candle_core::Result<T>;

#[derive(Debug, Clone)]
pub struct Whisper {
    pub encoder: AudioEncoder,
    pub decoder: TextDecoder,
    pub dims: Dims,
    kernels: Kernels,
}

impl Whisper {
    /// Reads the weights from `vb` (OpenAI's checkpoint names) into the forms `kernels` runs;
    /// with `training`, the decoder keeps f32 weights for the backward pass as well.
    pub fn load(vb: VarBuilder, dims: &Dims, kernels: Kernels, training: bool) -> Result<Self> {
        let form = Form { own_kernels: kernels == Kernels::Own, training };
        // The two halves are read and packed side by side: loading is a run's single-threaded
        // start, and the input's decoding waits for it.
        let (encoder, decoder) = rayon::join(
            || AudioEncoder::load(vb.pp("encoder"), dims, form),
            || TextDecoder::load(vb.pp("decoder"), dims, form),
        );
        Ok(Self { encoder: encoder?, decoder: decoder?, dims: dims.clone(), kernels })
    }

    pub fn device(&self) -> &Device {
        self.encoder.device()
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The encoder's output for the mel windows `mel` (windows, n_mels, frames).
    pub fn encode(&self, mel: &Tensor) -> Result<Encoded> {
        Ok(Encoded::new(self.encoder.forward(mel)?))
    }
}
