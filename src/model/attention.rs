//! Self-attention over a long sequence (the audio encoder's 1500 frames) on the CPU, one block
//! of queries at a time.
//!
//! candle's attention materialises the scores of every head at once, (heads, 1500, 1500) in
//! f32: 54 MB per layer for tiny, written by one product, read and written by the softmax, and
//! read again by the next product, at the memory bandwidth of the machine. Here a block of 96
//! queries of one head is scored (576 kB, inside the core's L2), normalised and applied to the
//! values before the next block, and the result lands in (batch, ctx, state) without a
//! transpose. The exponentials are `model::simd`'s, eight at a time. With AVX2 and FMA the two
//! products are this module's own kernels (6 query rows by 16 keys or value dimensions a tile,
//! each head's keys transposed once): an encoder window (tiny.en) 436 -> 408 ms against the gemm
//! crate's product, which repacked a head's keys and values for every block of queries; with
//! 4 rows a tile they were no faster than it. With AVX-512 the same kernel runs on vectors of
//! sixteen, twelve rows a tile (see `model::int8` for what the two together gave).

use candle_core::Tensor;
use rayon::prelude::*;

use crate::model::simd;

type Result<T> = candle_core::Result<T>;

/// Queries per block.
const BLOCK: usize = 96;

/// softmax(q k^T) v for `q` (batch, head, ctx, head_dim), `k`, `v` (batch, head, ctx_k,
/// head_dim), `q` already scaled. Returns (batch, ctx, head * head_dim).
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    attention_with(q, k, v, Kernel::detect(q.dim(3)?))
}

/// Which block kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Avx512,
    Avx2,
    /// The gemm crate's products.
    Plain,
}

impl Kernel {
    /// The widest the CPU has for heads of `dh` dimensions.
    fn detect(dh: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && dh.is_multiple_of(Self::Avx512.columns()) {
                return Self::Avx512;
            }
            if simd::has_avx2_fma() && dh.is_multiple_of(Self::Avx2.columns()) {
                return Self::Avx2;
            }
        }
        Self::Plain
    }

    /// Columns of a tile: the keys are padded to a multiple of them.
    fn columns(self) -> usize {
        match self {
            Self::Avx512 => 32,
            Self::Avx2 => 16,
            Self::Plain => 1,
        }
    }
}

/// `attention` with the given kernel.
fn attention_with(q: &Tensor, k: &Tensor, v: &Tensor, kernel: Kernel) -> Result<Tensor> {
    let (batch, heads, ctx, dh) = q.dims4()?;
    let ctx_k = k.dim(2)?;
    let d = heads * dh;
    let out = simd::with_f32_slice(q, |q| {
        simd::with_f32_slice(k, |k| {
            simd::with_f32_slice(v, |v| {
                // The keys of each (item, head) transposed once, (dh, ctx_k padded to a tile),
                // for the vector kernels.
                let ctx_kp = ctx_k.div_ceil(kernel.columns()) * kernel.columns();
                let kt = match kernel {
                    Kernel::Plain => Vec::new(),
                    _ => transposed_keys(k, batch * heads, ctx_k, dh, ctx_kp),
                };
                let mut out = vec![0f32; batch * ctx * d];
                out.par_chunks_mut(ctx * d).enumerate().for_each(|(b, out)| {
                    out.par_chunks_mut(BLOCK * d).enumerate().for_each_init(Vec::new, |scores, (i, out)| {
                        let (t0, rows) = (i * BLOCK, out.len() / d);
                        for h in 0..heads {
                            let head = (b * heads + h) * dh;
                            let q = &q[(head * ctx + t0 * dh)..(head * ctx + (t0 + rows) * dh)];
                            let (k, v) = (&k[head * ctx_k..(head + dh) * ctx_k], &v[head * ctx_k..(head + dh) * ctx_k]);
                            let out = &mut out[h * dh..];
                            #[cfg(target_arch = "x86_64")]
                            {
                                let kt = kt.get(head * ctx_kp..(head + dh) * ctx_kp).unwrap_or_default();
                                // SAFETY: `Kernel::detect` found the CPU features, with dh a
                                // multiple of the kernel's columns; the slices are the shapes
                                // named.
                                match kernel {
                                    Kernel::Avx512 => {
                                        unsafe { block_avx512(q, kt, v, rows, ctx_k, dh, d, scores, out) };
                                        continue;
                                    }
                                    Kernel::Avx2 => {
                                        unsafe { block_avx2(q, kt, v, rows, ctx_k, dh, d, scores, out) };
                                        continue;
                                    }
                                    Kernel::Plain => {}
                                }
                            }
                            block(q, k, v, rows, ctx_k, dh, d, scores, out);
                        }
                    });
                });
                out
            })
        })
    })???;
    Tensor::from_vec(out, (batch, ctx, d), q.device())
}

/// `k` as `heads` matrices (ctx_k, dh) -> each (dh, ctx_kp), zero past ctx_k.
fn transposed_keys(k: &[f32], heads: usize, ctx_k: usize, dh: usize, ctx_kp: usize) -> Vec<f32> {
    let mut kt = vec![0f32; heads * dh * ctx_kp];
    kt.par_chunks_mut(dh * ctx_kp).zip(k.par_chunks(ctx_k * dh)).for_each(|(kt, k)| {
        for (j, key) in k.chunks_exact(dh).enumerate() {
            for (c, &x) in key.iter().enumerate() {
                kt[c * ctx_kp + j] = x;
            }
        }
    });
    kt
}

/// Writes a `block` kernel for one vector width: `$name`, for the target features `$features`,
/// with vectors of `$lanes` f32 and tiles of `$mr` query rows by two vectors of columns (keys,
/// or value dimensions). No general matrix product's packing: `kt` is the head's keys
/// transposed (dh, ctx_k padded to two vectors), so a tile is `$mr` broadcasts and two loads
/// per head dimension, and the values (ctx_k, dh) are read in place. (The gemm crate repacked
/// each head's keys and values for every block of queries.)
macro_rules! block_kernel {
    ($name:ident, $features:literal, $lanes:literal, $mr:literal,
     $zero:ident, $load:ident, $set1:ident, $fmadd:ident, $store:ident) => {
        /// SAFETY: the CPU has the target features; dh is a multiple of two vectors; `q`
        /// (rows, dh), `kt` (dh, ctx_k padded to a multiple of two vectors), `v` (ctx_k, dh);
        /// `out` holds (rows - 1) * d + dh values.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(
            q: &[f32],
            kt: &[f32],
            v: &[f32],
            rows: usize,
            ctx_k: usize,
            dh: usize,
            d: usize,
            scores: &mut Vec<f32>,
            out: &mut [f32],
        ) {
            use std::arch::x86_64::*;
            const NR: usize = 2 * $lanes;
            const MR: usize = $mr;
            let ctx_kp = ctx_k.div_ceil(NR) * NR;
            assert!(q.len() >= rows * dh && kt.len() >= dh * ctx_kp && v.len() >= ctx_k * dh);
            assert!(out.len() >= (rows - 1) * d + dh);
            scores.resize(rows * ctx_kp, 0.0);
            let s = scores.as_mut_ptr();
            // Rows past the end of a short last tile repeat its first row; their results are
            // dropped.
            let tile = |r0: usize| -> [usize; MR] { std::array::from_fn(|i| r0 + if r0 + i < rows { i } else { 0 }) };
            // scores = q kt, a tile of keys at a time across every row tile (the tile stays in
            // cache).
            for j0 in (0..ctx_kp).step_by(NR) {
                for r0 in (0..rows).step_by(MR) {
                    let r = tile(r0);
                    let mut a = [[$zero(); 2]; MR];
                    for c in 0..dh {
                        let k0 = $load(kt.as_ptr().add(c * ctx_kp + j0));
                        let k1 = $load(kt.as_ptr().add(c * ctx_kp + j0 + $lanes));
                        for (a, &r) in a.iter_mut().zip(&r) {
                            let x = $set1(*q.as_ptr().add(r * dh + c));
                            a[0] = $fmadd(x, k0, a[0]);
                            a[1] = $fmadd(x, k1, a[1]);
                        }
                    }
                    for (i, a) in a.iter().enumerate().take(rows - r0) {
                        $store(s.add((r0 + i) * ctx_kp + j0), a[0]);
                        $store(s.add((r0 + i) * ctx_kp + j0 + $lanes), a[1]);
                    }
                }
            }
            for row in scores.chunks_exact_mut(ctx_kp) {
                simd::softmax_in_place(&mut row[..ctx_k]);
            }
            // out = scores v, over the ctx_k real keys.
            let s = scores.as_ptr();
            for r0 in (0..rows).step_by(MR) {
                let r = tile(r0);
                for c0 in (0..dh).step_by(NR) {
                    let mut a = [[$zero(); 2]; MR];
                    for j in 0..ctx_k {
                        let v0 = $load(v.as_ptr().add(j * dh + c0));
                        let v1 = $load(v.as_ptr().add(j * dh + c0 + $lanes));
                        for (a, &r) in a.iter_mut().zip(&r) {
                            let p = $set1(*s.add(r * ctx_kp + j));
                            a[0] = $fmadd(p, v0, a[0]);
                            a[1] = $fmadd(p, v1, a[1]);
                        }
                    }
                    for (i, a) in a.iter().enumerate().take(rows - r0) {
                        $store(out.as_mut_ptr().add((r0 + i) * d + c0), a[0]);
                        $store(out.as_mut_ptr().add((r0 + i) * d + c0 + $lanes), a[1]);
                    }
                }
            }
        }
    };
}

// Six rows with AVX2: twelve accumulators, two loaded vectors and a broadcast fill the sixteen
// registers (four rows were no faster than the gemm crate).
block_kernel!(
    block_avx2,
    "avx2,fma",
    8,
    6,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);
// Twelve rows with AVX-512: 24 of the 32 registers.
block_kernel!(
    block_avx512,
    "avx512f",
    16,
    12,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);

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
        // 2 x 3 heads, 202 queries (blocks of 96, 96 and 10: a short last tile) over 150 keys
        // (not a whole number of key tiles), 32 dimensions a head (two value tiles).
        let dev = Device::Cpu;
        let q = (Tensor::randn(0f32, 1.0, (2, 3, 202, 32), &dev)? * 0.2)?;
        let k = Tensor::randn(0f32, 1.0, (2, 3, 150, 32), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, 3, 150, 32), &dev)?;
        let want = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((2, 202, 96))?;
        let mut kernels = vec![Kernel::Plain, Kernel::detect(32)];
        if kernels[1] == Kernel::Avx512 {
            kernels.push(Kernel::Avx2);
        }
        for kernel in kernels {
            let got = attention_with(&q, &k, &v, kernel)?;
            let err = (got - &want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(err < 1e-5, "{kernel:?}: max error {err}");
        }
        Ok(())
    }
}
