//! Self-attention over a long sequence (the audio encoder's 1500 frames) on the CPU, one block
//! of queries at a time.
//!
//! candle's attention materialises the scores of every head at once, (heads, 1500, 1500) in
//! f32: 54 MB per layer for tiny, written by one product, read and written by the softmax, and
//! read again by the next product, at the memory bandwidth of the machine. Here a block of 96
//! queries of one head is scored (576 kB, inside the core's L2), normalised and applied to the
//! values before the next block, and the result lands in (batch, ctx, state) without a
//! transpose. The exponentials are `model::simd`'s, eight at a time.
//!
//! With AVX2 and FMA both products are int8 (`model::int8`'s kernel, as the encoder's layers):
//! each head's keys, less their mean over the keys (every query's scores move by one constant,
//! which leaves its softmax as it was, and the range the per-key scales must cover shrinks, as
//! SageAttention does), quantized once per key; its values once per dimension; a block's
//! queries per row. A row's exponentials, whose largest is exactly 1, are quantized to 0..127
//! and their sum divided out in the product's scaling, so they multiply the values as unsigned
//! bytes. One layer of tiny.en's encoder (6 heads, 1500 frames): 29 ms against 43-53 ms for
//! this module's own f32 AVX2 kernels (6 x 16 tiles, before this) and more for the gemm crate's;
//! tiny.en's WER on the same files 10.23% against 9.66% (5 minutes generated), 2.33% both
//! (2 min 15 s real speech). Without AVX2 the products are f32 (the gemm crate's).

use candle_core::Tensor;
use rayon::prelude::*;

use crate::model::int8::{self, Int8Matrix};
use crate::model::simd;

type Result<T> = candle_core::Result<T>;

/// Queries per block.
const BLOCK: usize = 96;

/// softmax(q k^T) v for `q` (batch, head, ctx, head_dim), `k`, `v` (batch, head, ctx_k,
/// head_dim), `q` already scaled. Returns (batch, ctx, head * head_dim).
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    if simd::has_avx2_fma() {
        attention_int8(q, k, v, true)
    } else {
        attention_f32(q, k, v)
    }
}

/// `attention` with int8 products (see the module's note), with the AVX2 kernel when `fast`.
fn attention_int8(q: &Tensor, k: &Tensor, v: &Tensor, fast: bool) -> Result<Tensor> {
    let (batch, heads, ctx, dh) = q.dims4()?;
    let ctx_k = k.dim(2)?;
    let d = heads * dh;
    let out = simd::with_f32_slice(q, |q| {
        simd::with_f32_slice(k, |k| {
            simd::with_f32_slice(v, |v| {
                let packed: Vec<(Int8Matrix, Int8Matrix)> = k
                    .par_chunks(ctx_k * dh)
                    .zip(v.par_chunks(ctx_k * dh))
                    .map(|(k, v)| (centred_keys(k, ctx_k, dh), Int8Matrix::new(v, ctx_k, dh)))
                    .collect();
                let kp = ctx_k.div_ceil(4) * 4;
                let mut out = vec![0f32; batch * ctx * d];
                out.par_chunks_mut(ctx * d).enumerate().for_each(|(b, out)| {
                    out.par_chunks_mut(BLOCK * d).enumerate().for_each_init(
                        || (Vec::new(), Vec::new(), Vec::new()),
                        |(scores, p, head_out), (i, out)| {
                            let (t0, rows) = (i * BLOCK, out.len() / d);
                            scores.resize(rows * ctx_k, 0f32);
                            p.resize(rows * kp, 0i8);
                            head_out.resize(rows * dh, 0f32);
                            for h in 0..heads {
                                let head = (b * heads + h) * dh;
                                let (keys, values) = &packed[b * heads + h];
                                let q = &q[(head * ctx + t0 * dh)..(head * ctx + (t0 + rows) * dh)];
                                let (qi, sq) = int8::quantize_rows(q, rows, dh);
                                keys.rows(&qi, &sq, rows, None, scores, fast);
                                let mut sp = Vec::with_capacity(rows);
                                for (row, pq) in scores.chunks_exact_mut(ctx_k).zip(p.chunks_exact_mut(kp)) {
                                    let sum = simd::exp_in_place(row);
                                    int8::quantize(row, 127.0, pq);
                                    sp.push(1.0 / (127.0 * sum));
                                }
                                values.rows_nonnegative(p, &sp, rows, head_out, fast);
                                for (o, r) in out.chunks_mut(d).zip(head_out.chunks_exact(dh)) {
                                    o[h * dh..(h + 1) * dh].copy_from_slice(r);
                                }
                            }
                        },
                    );
                });
                out
            })
        })
    })???;
    Tensor::from_vec(out, (batch, ctx, d), q.device())
}

/// One head's keys (ctx_k, dh) less their mean, transposed and quantized: the weight of the
/// queries' product, (dh, ctx_k).
fn centred_keys(k: &[f32], ctx_k: usize, dh: usize) -> Int8Matrix {
    let mut mean = vec![0f32; dh];
    for key in k.chunks_exact(dh) {
        mean.iter_mut().zip(key).for_each(|(m, x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= ctx_k as f32);
    let mut kt = vec![0f32; dh * ctx_k];
    for (j, key) in k.chunks_exact(dh).enumerate() {
        for (c, (&x, m)) in key.iter().zip(&mean).enumerate() {
            kt[c * ctx_k + j] = x - m;
        }
    }
    Int8Matrix::new(&kt, dh, ctx_k)
}

/// `attention` in f32.
fn attention_f32(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
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
        // 2 x 3 heads, 202 queries (blocks of 96, 96 and 10) over 150 keys (not a multiple of
        // 4 or 16), 32 dimensions a head. The keys share a large offset, as the encoder's do:
        // it moves no softmax, and int8 keys not centred lose most of their precision to it.
        let dev = Device::Cpu;
        // Fixed values spread over [-1, 1] (a hash of the index), so the error bounds hold for
        // every run.
        let spread = |n: usize, seed: usize, shape: (usize, usize, usize, usize)| {
            let x: Vec<f32> =
                (0..n).map(|i| ((i * 2654435761 + seed * 40503) % 100003) as f32 / 50001.5 - 1.0).collect();
            Tensor::from_vec(x, shape, &dev)
        };
        let q = (spread(2 * 3 * 202 * 32, 1, (2, 3, 202, 32))? * 0.8)?;
        let offset = Tensor::arange(0u32, 32, &dev)?.to_dtype(candle_core::DType::F32)?.affine(0.5, -6.0)?;
        let k = (spread(2 * 3 * 150 * 32, 2, (2, 3, 150, 32))? * 1.7)?.broadcast_add(&offset)?;
        let v = (spread(2 * 3 * 150 * 32, 3, (2, 3, 150, 32))? * 1.7)?;
        let want = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((2, 202, 96))?;
        let worst = |got: Tensor| -> Result<f32> { (got - &want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>() };
        let err = worst(attention_f32(&q, &k, &v)?)?;
        assert!(err < 1e-5, "f32: max error {err}");
        // Outputs are averages of values within 1.7: measured 0.036 at most, 0.128 with the
        // keys not centred. (The AVX2 and plain kernels' integer
        // sums are the same, but their scalings round apart by an ulp, enough to move a
        // probability to the next step now and then.)
        for fast in [false, simd::has_avx2_fma()] {
            let err = worst(attention_int8(&q, &k, &v, fast)?)?;
            assert!(err < 0.06, "int8 (fast {fast}): max error {err}");
        }
        Ok(())
    }
}
