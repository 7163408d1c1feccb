//! A linear layer whose precision is a property of its weights: each layer is loaded once into the
//! form its products need, and `forward` runs the kernel of that form.
//!
//! - `F32`: candle's product over the (in, out) weight. A GPU, candle's operations throughout
//!   (`Kernels::Candle`), and the adapters, which are trained.
//! - `Int8`: per output column, for products of many rows (`model::int8`): the encoder's layers
//!   (1500 rows a window) and the projections of the audio into keys and values.
//! - `Packed`: the decoder's layers on the CPU. A decoder step reads every weight for a handful
//!   of rows, so bytes are what cost: int8 with a scale per 32 values of a row
//!   (`model::projection`), converted in registers. A prompt (up to 225 tokens) and a word
//!   alignment run many rows, where arithmetic is what costs: the column-int8 form and its
//!   integer kernel. Both forms are made from the checkpoint's weight at load: two layouts of
//!   one int8 precision, because the two regimes need opposite layouts. (The many-row form on
//!   prompts and alignment, against f32, was measured when it came in: base beam 5 on 5 minutes
//!   32.5-32.7 -> 29.1-29.9 s, alignment 1.55 -> 1.11 s; one form for both would change every
//!   step's or every prompt's arithmetic, and so the subtitles.)
//!
//! Inference keeps no f32 copy of a CPU layer (tiny.en's decoder: 33 MB, base's: 88 MB). Loaded
//! for training, the decoder's layers keep one beside their packed forms: the backward pass to
//! the adapter goes through candle's product.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::model::int8::Int8Matrix;
use crate::model::projection::{PackedMatrix, Precision};
use crate::model::{simd, step};

type Result<T> = candle_core::Result<T>;

/// Products with at most this many rows use a `Packed` layer's row form.
const FEW_ROWS: usize = 16;
/// A step's products split a layer's weight rows across cores in blocks of this many.
const STEP_BLOCK_ROWS: usize = 96;

/// What a layer is for, which decides the form its weights take on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Many rows a product, never trained through: the encoder, the audio's keys and values.
    Many,
    /// The decoder's projections: a step's few rows and a prompt's many.
    Decoder,
}

#[derive(Debug, Clone)]
enum Weights {
    /// (in, out)
    F32(Tensor),
    Int8(Int8Matrix),
    Packed {
        few: PackedMatrix,
        many: Int8Matrix,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weights: Weights,
    /// The (in, out) weight in f32 beside a packed form, only when loaded for training.
    train: Option<Tensor>,
    bias: Option<Tensor>,
    /// The bias as a slice, for the CPU kernels.
    bias_f32: Option<Vec<f32>>,
    n_out: usize,
    device: Device,
}

/// How a model's layers are loaded: whose kernels, and whether training goes through them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Form {
    pub(crate) own_kernels: bool,
    pub(crate) training: bool,
}

impl Linear {
    /// A checkpoint layer, `weight` (out, in) and `bias`, in the form `form` gives it for `usage`.
    pub(crate) fn load(n_in: usize, n_out: usize, bias: bool, vb: VarBuilder, usage: Use, form: Form) -> Result<Self> {
        let w = vb.get((n_out, n_in), "weight")?;
        let bias = if bias { Some(vb.get(n_out, "bias")?) } else { None };
        let wt = transposed(&w)?;
        drop(w);
        let device = wt.device().clone();
        if !form.own_kernels {
            return Ok(Self { weights: Weights::F32(wt), train: None, bias, bias_f32: None, n_out, device });
        }
        let bias_f32 = bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        let flat = wt.flatten_all()?.to_vec1::<f32>()?;
        let many = Int8Matrix::new(&flat, n_in, n_out);
        let (weights, train) = match usage {
            Use::Many => (Weights::Int8(many), None),
            Use::Decoder => {
                // The row form reads the weight as (out, in).
                let w = transposed(&wt)?.flatten_all()?.to_vec1::<f32>()?;
                let few = PackedMatrix::new(&w, n_out, n_in, Precision::default());
                (Weights::Packed { few, many }, form.training.then_some(wt))
            }
        };
        Ok(Self { weights, train, bias, bias_f32, n_out, device })
    }

    /// A layer stored as (in, out) under `wt` (the adapters' own layout), read in place: when
    /// `vb` holds trainable variables, the layer uses them, not a copy.
    pub(crate) fn load_t(n_in: usize, n_out: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: (n_in as f64).powf(-0.5) };
        let wt = vb.get_with_hints((n_in, n_out), "wt", init)?;
        let bias = if bias { Some(vb.get_with_hints(n_out, "bias", candle_nn::Init::Const(0.0))?) } else { None };
        let device = wt.device().clone();
        Ok(Self { weights: Weights::F32(wt), train: None, bias, bias_f32: None, n_out, device })
    }

    /// The step path's product: `x` (rows, in) -> (rows, out), through the row form.
    pub(crate) fn rows(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let Weights::Packed { few, .. } = &self.weights else {
            candle_core::bail!("the step path needs the decoder's packed weights (own kernels)");
        };
        let mut y = few.product(x, rows, STEP_BLOCK_ROWS);
        if let Some(b) = &self.bias_f32 {
            for row in y.chunks_exact_mut(b.len()) {
                step::add(row, b);
            }
        }
        Ok(y)
    }

    /// (..., in) -> (..., out)
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let n_out = self.n_out;
        let f32_product = |wt: &Tensor| -> Result<Tensor> {
            let y = x.reshape((rows, dims[dims.len() - 1]))?.matmul(wt)?;
            match &self.bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            }
        };
        let int8_product = |q: &Int8Matrix| -> Result<Tensor> {
            let y = simd::with_f32_slice(&x.to_dtype(DType::F32)?.contiguous()?, |x| {
                q.product(x, rows, self.bias_f32.as_deref())
            })?;
            Tensor::from_vec(y, (rows, n_out), &self.device)
        };
        // The CPU kernels are outside candle's graph: a product a gradient goes through is
        // candle's.
        let y = match (&self.weights, &self.train) {
            (Weights::F32(wt), _) => f32_product(wt)?,
            (_, Some(wt)) if x.track_op() => f32_product(wt)?,
            _ if x.track_op() => candle_core::bail!("a layer loaded for inference cannot be trained through"),
            (Weights::Packed { .. }, _) if rows <= FEW_ROWS => {
                let x = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                Tensor::from_vec(self.rows(&x, rows)?, (rows, n_out), &self.device)?
            }
            (Weights::Packed { many, .. } | Weights::Int8(many), _) => int8_product(many)?,
        };
        let mut out = dims;
        *out.last_mut().expect("non-empty dims") = n_out;
        y.reshape(out)
    }
}

/// `w` (rows, cols) as a contiguous (cols, rows). On the CPU in tiles that stay in cache:
/// candle's strided copy took a quarter of loading a model.
pub(crate) fn transposed(w: &Tensor) -> Result<Tensor> {
    const TILE: usize = 32;
    if !w.device().is_cpu() || w.dtype() != DType::F32 {
        return w.t()?.contiguous();
    }
    let (rows, cols) = w.dims2()?;
    let mut out = vec![0f32; rows * cols];
    simd::with_f32_slice(&w.contiguous()?, |src| {
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for c0 in (0..cols).step_by(TILE) {
                for c in c0..(c0 + TILE).min(cols) {
                    let column = src[r0 * cols + c..].iter().step_by(cols);
                    out[c * rows + r0..c * rows + r1].iter_mut().zip(column).for_each(|(o, &v)| *o = v);
                }
            }
        }
    })?;
    Tensor::from_vec(out, (cols, rows), w.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_matches_candles_transpose() -> Result<()> {
        // Not a multiple of the tile either way.
        let w = Tensor::arange(0f32, (37 * 45) as f32, &Device::Cpu)?.reshape((37, 45))?;
        let got = transposed(&w)?;
        assert_eq!(got.dims(), &[45, 37]);
        assert_eq!(got.to_vec2::<f32>()?, w.t()?.contiguous()?.to_vec2::<f32>()?);
        Ok(())
    }

    /// Each form's product is the f32 product within its quantization error, and training goes
    /// through the f32 copy only where one was kept.
    #[test]
    fn every_form_computes_the_same_product() -> Result<()> {
        let dev = Device::Cpu;
        let (n_in, n_out) = (64, 48);
        let w = (Tensor::randn(0f32, 1.0, (n_out, n_in), &dev)? * 0.1)?;
        let b = Tensor::randn(0f32, 1.0, n_out, &dev)?;
        let vb = VarBuilder::from_tensors(
            std::collections::HashMap::from([("weight".to_string(), w.clone()), ("bias".to_string(), b.clone())]),
            DType::F32,
            &dev,
        );
        let x = Tensor::randn(0f32, 1.0, (3, 20, n_in), &dev)?;
        let want = x.matmul(&w.t()?.unsqueeze(0)?.repeat((3, 1, 1))?)?.broadcast_add(&b)?;
        let forms = [
            (Use::Many, Form { own_kernels: false, training: false }),
            (Use::Many, Form { own_kernels: true, training: false }),
            (Use::Decoder, Form { own_kernels: true, training: false }),
            (Use::Decoder, Form { own_kernels: true, training: true }),
        ];
        for (usage, form) in forms {
            let l = Linear::load(n_in, n_out, true, vb.clone(), usage, form)?;
            for x in [x.clone(), x.narrow(1, 0, 1)?.narrow(0, 0, 2)?] {
                let got = l.forward(&x)?;
                let want = want.narrow(1, 0, x.dim(1)?)?.narrow(0, 0, x.dim(0)?)?;
                let err = (got - want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                assert!(err < 0.05, "{usage:?} {form:?}: error {err}");
            }
            let tracked = candle_core::Var::from_tensor(&x)?.as_tensor().clone();
            assert_eq!(l.forward(&tracked).is_ok(), !form.own_kernels || form.training, "{usage:?} {form:?}");
        }
        Ok(())
    }
}
