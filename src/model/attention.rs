//! Self-attention over a long sequence (the audio encoder's 1500 frames) on the CPU, one block
//! of queries at a time.
//!
//! candle's attention materialises the scores of every head at once, (heads, 1500, 1500) in
//! f32: 54 MB per layer for tiny, written by one product, read and written by the softmax, and
//! read again by the next product, at the memory bandwidth of the machine. Here a block of 96
//! queries of one head is scored (576 kB, inside the core's L2), normalised and applied to the
//! values before the next block, and the result lands in (batch, ctx, state) without a
//! transpose. The exponentials are `model::simd`'s, eight at a time.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::model::simd;

type Result<T> = candle_core::Result<T>;

/// Queries per block.
const BLOCK: usize = 96;

/// softmax(q k^T) v for `q` (batch, head, ctx, head_dim), `k`, `v` (batch, head, ctx_k,
/// head_dim), `q` already scaled. Returns (batch, ctx, head * head_dim).
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (batch, heads, ctx, dh) = q.dims4()?;
    let ctx_k = k.dim(2)?;
    let d = heads * dh;
    let out = simd::with_f32_slice(q, |q| {
        simd::with_f32_slice(k, |k| {
            simd::with_f32_slice(v, |v| {
                let mut out = vec![0f32; batch * ctx * d];
                out.par_chunks_mut(ctx * d).enumerate().for_each(|(b, out)| {
                    out.par_chunks_mut(BLOCK * d).enumerate().for_each_init(Vec::new, |scores, (i, out)| {
                        let (t0, rows) = (i * BLOCK, out.len() / d);
                        for h in 0..heads {
                            let head = (b * heads + h) * dh;
                            let q = &q[(head * ctx + t0 * dh)..(head * ctx + (t0 + rows) * dh)];
                            let (k, v) = (&k[head * ctx_k..(head + dh) * ctx_k], &v[head * ctx_k..(head + dh) * ctx_k]);
                            block(q, k, v, rows, ctx_k, dh, d, scores, &mut out[h * dh..]);
                        }
                    });
                });
                out
            })
        })
    })???;
    Tensor::from_vec(out, (batch, ctx, d), q.device())
}

/// One head, one block: `q` (rows, dh) over `k`, `v` (ctx_k, dh); the result goes to `out`
/// at rows of stride `d`.
#[allow(clippy::too_many_arguments)]
fn block(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    rows: usize,
    ctx_k: usize,
    dh: usize,
    d: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    scores.resize(rows * ctx_k, 0.0);
    // SAFETY: every pointer, with its strides and the sizes given, stays inside its slice:
    // q is (rows, dh), k and v (ctx_k, dh), scores (rows, ctx_k), out (rows, d) from column 0
    // of this head (out holds at least (rows - 1) * d + dh values).
    unsafe {
        // scores = q k^T: k read as (dh, ctx_k), column stride dh.
        product((rows, ctx_k, dh), (scores.as_mut_ptr(), ctx_k), (q.as_ptr(), dh, 1), (k.as_ptr(), 1, dh));
    }
    for row in scores.chunks_exact_mut(ctx_k) {
        simd::softmax_in_place(row);
    }
    debug_assert!(out.len() >= (rows - 1) * d + dh);
    // SAFETY: as above.
    unsafe {
        product((rows, dh, ctx_k), (out.as_mut_ptr(), d), (scores.as_ptr(), ctx_k, 1), (v.as_ptr(), dh, 1));
    }
}

/// `dst = lhs rhs` on this thread, for (m, n, k): `dst` (pointer, row stride; columns
/// contiguous), `lhs` and `rhs` (pointer, row stride, column stride).
///
/// SAFETY: each pointer with its strides covers its (m, k), (k, n) or (m, n) matrix.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candle_attention() -> Result<()> {
        // 2 x 3 heads, 200 queries (blocks of 96, 96 and 8) over 150 keys.
        let dev = Device::Cpu;
        let q = (Tensor::randn(0f32, 1.0, (2, 3, 200, 16), &dev)? * 0.25)?;
        let k = Tensor::randn(0f32, 1.0, (2, 3, 150, 16), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, 3, 150, 16), &dev)?;
        let want = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((2, 200, 48))?;
        let got = attention(&q, &k, &v)?;
        let err = (got - want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(err < 1e-5, "max error {err}");
        Ok(())
    }
}
