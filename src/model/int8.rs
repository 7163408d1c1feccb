//! Products of many rows with an int8 weight: the audio encoder's layers (1500 rows a window)
//! and the decoder's projections of the audio into keys and values.
//!
//! The weight is quantized once, symmetrically per output column; each row of the input is
//! quantized as it comes, symmetrically with its own scale (as CTranslate2's int8). Products run
//! in integers with AVX2: `vpmaddubsw` multiplies 32 pairs of bytes where an FMA does 8 pairs
//! of floats. It takes one unsigned operand, so the kernel multiplies |w| by x carrying w's sign
//! (`vpsignb`); with both sides within ±127 no pair sum saturates.
//!
//! Measured on the development machine (AMD EPYC Zen 3, 2 cores): a loop of these instructions
//! runs 100 G multiply-adds a second per core against 46 for f32 FMAs; the products of tiny's
//! encoder shapes (1500 x 384 x 1536 and back) 75-87 G a second on both cores against 45-53 for
//! candle's f32 product; an encoder window 416-465 ms against 527-593 (tiny.en), 951 against 1191
//! (base). WER on the same files was no worse (tiny.en greedy: 5-minute file 9.66% against
//! 11.79%, 2 min 15 s of real speech 2.33% both).
//!
//! Where the CPU has AVX-512 VNNI (Intel since Ice Lake, AMD since Zen 4) `vpdpbusd` does the
//! work of those eight instructions in one, on 64 bytes: on a 2-core Xeon (Sapphire Rapids)
//! with the encoder's attention in AVX-512 as well, an encoder window 229-237 -> 138-155 ms
//! (tiny.en), 497-520 -> 298-310 (base); tiny.en greedy on the 5-minute file 8.6 -> 6.5-6.7 s,
//! the same subtitles.

use rayon::prelude::*;

/// Columns of the weight per packed panel (two vectors of eight).
const NR: usize = 16;
/// Rows of the input per kernel call.
const MR: usize = 4;
/// Rows of the input per VNNI kernel call: two accumulators each, 16 of the 32 registers.
const VNNI_MR: usize = 8;
/// Rows of the input per parallel task: quantized together, then multiplied panel by panel
/// while they sit in the core's cache.
const MC: usize = 48;

/// A (k, n) weight in int8, packed for products with many rows.
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    /// Panels of `NR` columns; in a panel, for each 4 rows of k, 4 bytes per column.
    packed: Vec<i8>,
    /// What restores each column: its largest magnitude / 127.
    scale: Vec<f32>,
    /// Each column's quantized values summed, times 128: what the VNNI kernel's unsigned
    /// input (the row's bytes plus 128) adds to the column's sum.
    offset: Vec<i32>,
    k: usize,
    n: usize,
}

impl Int8Matrix {
    /// From a (k, n) weight, row-major (a linear layer's transposed weight).
    pub fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        // Column maxima a row at a time (the weight is read in order).
        let mut max = vec![0f32; n];
        for row in w.chunks_exact(n) {
            max.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
        }
        let scale: Vec<f32> = max.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
        let (kp, panels) = (k.div_ceil(4) * 4, n.div_ceil(NR));
        let mut packed = vec![0i8; panels * kp * NR];
        let mut offset = vec![0i32; n];
        let mut q = vec![0i8; n];
        for (i, row) in w.chunks_exact(n).enumerate() {
            // The row quantized in order (the compiler's vector loop), then laid into each panel.
            q.iter_mut().zip(row.iter().zip(&scale)).for_each(|(q, (&v, &s))| *q = round_i8(v / s));
            offset.iter_mut().zip(&q).for_each(|(o, &q)| *o += 128 * q as i32);
            let at = (i / 4) * 4 * NR + i % 4;
            for (p, qs) in q.chunks(NR).enumerate() {
                let panel = &mut packed[p * kp * NR + at..];
                qs.iter().enumerate().for_each(|(c, &q)| panel[c * 4] = q);
            }
        }
        Self { packed, scale, offset, k, n }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// `x` (m, k) row-major times the weight, plus `bias` (n) when given: (m, n) row-major.
    pub fn product(&self, x: &[f32], m: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len(), m * k);
        let mut out = vec![0f32; m * n];
        let kernel = Kernel::detect();
        out.par_chunks_mut(MC * n).zip(x.par_chunks(MC * k)).for_each(|(out, x)| {
            let rows = x.len() / k;
            let (q, sx) = quantize_rows(x, rows, k);
            self.rows(q, &sx, rows, bias, out, kernel);
        });
        out
    }

    /// One task's rows: `q` (rows, k rounded up to 4) quantized with scales `sx`, into `out`.
    fn rows(&self, mut q: Vec<i8>, sx: &[f32], rows: usize, bias: Option<&[f32]>, out: &mut [f32], kernel: Kernel) {
        #[cfg(target_arch = "x86_64")]
        match kernel {
            Kernel::Vnni => {
                // The unsigned operand: each byte plus 128 (its top bit flipped).
                q.iter_mut().for_each(|b| *b ^= i8::MIN);
                // SAFETY: AVX-512 F and VNNI were detected by `Kernel::detect`.
                unsafe { self.rows_vnni(&q, sx, rows, bias, out) };
                return;
            }
            Kernel::Avx2 => {
                // SAFETY: AVX2 and FMA were detected by `Kernel::detect`.
                unsafe { self.rows_avx2(&q, sx, rows, bias, out) };
                return;
            }
            Kernel::Plain => {}
        }
        let (q, _) = (&q, kernel);
        let (kp, n) = (self.k.div_ceil(4) * 4, self.n);
        for p in 0..n.div_ceil(NR) {
            let panel = &self.packed[p * kp * NR..(p + 1) * kp * NR];
            for (i, x) in q.chunks_exact(kp).enumerate().take(rows) {
                for c in 0..(n - p * NR).min(NR) {
                    let j = p * NR + c;
                    let sum: i32 = panel
                        .chunks_exact(4 * NR)
                        .enumerate()
                        .map(|(g, quad)| (0..4).map(|t| x[g * 4 + t] as i32 * quad[c * 4 + t] as i32).sum::<i32>())
                        .sum();
                    out[i * n + j] = sum as f32 * sx[i] * self.scale[j] + bias.map_or(0.0, |b| b[j]);
                }
            }
        }
    }

    /// `rows` with AVX2: `MR` rows against one panel at a time, for each 4 values of k the
    /// panel's two vectors (8 columns x 4 bytes) against each row's 4 bytes broadcast; the sums
    /// scaled to floats (and the bias added) in registers.
    ///
    /// SAFETY: the CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2(&self, q: &[i8], sx: &[f32], rows: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (kp, n) = (self.k.div_ceil(4) * 4, self.n);
        assert!(q.len() >= rows * kp && sx.len() >= rows && out.len() >= rows * n);
        let ones = _mm256_set1_epi16(1);
        let mut tail = [0f32; NR];
        for p in 0..n.div_ceil(NR) {
            let w = self.packed[p * kp * NR..(p + 1) * kp * NR].as_ptr();
            let cols = (n - p * NR).min(NR);
            // Column scales and bias of the panel, zero past n.
            let mut scale = [0f32; NR];
            let mut add = [0f32; NR];
            scale[..cols].copy_from_slice(&self.scale[p * NR..p * NR + cols]);
            if let Some(b) = bias {
                add[..cols].copy_from_slice(&b[p * NR..p * NR + cols]);
            }
            let scale = [_mm256_loadu_ps(scale.as_ptr()), _mm256_loadu_ps(scale.as_ptr().add(8))];
            let add = [_mm256_loadu_ps(add.as_ptr()), _mm256_loadu_ps(add.as_ptr().add(8))];
            for r0 in (0..rows).step_by(MR) {
                let m = (rows - r0).min(MR);
                // Rows past m repeat the first; their sums are not stored.
                let x = [0, 1, 2, 3].map(|i| q.as_ptr().add((r0 + if i < m { i } else { 0 }) * kp));
                let mut a = [[_mm256_setzero_si256(); 2]; MR];
                for g in 0..kp / 4 {
                    let w0 = _mm256_loadu_si256(w.add(g * 4 * NR) as *const __m256i);
                    let w1 = _mm256_loadu_si256(w.add(g * 4 * NR + 32) as *const __m256i);
                    let (u0, u1) = (_mm256_abs_epi8(w0), _mm256_abs_epi8(w1));
                    for (a, x) in a.iter_mut().zip(x) {
                        let x = _mm256_set1_epi32((x.add(g * 4) as *const i32).read_unaligned());
                        // |w| * (x with w's sign): byte pairs summed to 16 bits, then to 32.
                        let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, _mm256_sign_epi8(x, w0)), ones);
                        let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, _mm256_sign_epi8(x, w1)), ones);
                        a[0] = _mm256_add_epi32(a[0], p0);
                        a[1] = _mm256_add_epi32(a[1], p1);
                    }
                }
                for (i, a) in a.iter().enumerate().take(m) {
                    let s = _mm256_set1_ps(sx[r0 + i]);
                    let y =
                        [0, 1].map(|h| _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[h]), _mm256_mul_ps(s, scale[h]), add[h]));
                    let dst = out.as_mut_ptr().add((r0 + i) * n + p * NR);
                    if cols == NR {
                        _mm256_storeu_ps(dst, y[0]);
                        _mm256_storeu_ps(dst.add(8), y[1]);
                    } else {
                        _mm256_storeu_ps(tail.as_mut_ptr(), y[0]);
                        _mm256_storeu_ps(tail.as_mut_ptr().add(8), y[1]);
                        std::ptr::copy_nonoverlapping(tail.as_ptr(), dst, cols);
                    }
                }
            }
        }
    }
    /// `rows` with AVX-512 VNNI: `vpdpbusd` multiplies 64 byte pairs and adds each four into a
    /// 32-bit sum in one instruction (the AVX2 kernel takes eight for that many), a panel's
    /// four values of k for its 16 columns being one 64-byte vector. Its first operand is
    /// unsigned, so `q` comes with 128 added to each byte and the column's `offset` is taken
    /// back off the sums. `VNNI_MR` rows against two panels at a time, each weight vector
    /// loaded once for all of them.
    ///
    /// SAFETY: the CPU has AVX-512 F and VNNI; `q` holds the rows' bytes plus 128.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn rows_vnni(&self, q: &[i8], sx: &[f32], rows: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (kp, n) = (self.k.div_ceil(4) * 4, self.n);
        assert!(q.len() >= rows * kp && sx.len() >= rows && out.len() >= rows * n);
        let panels = n.div_ceil(NR);
        for p0 in (0..panels).step_by(2) {
            // The second panel of the pair, or the first again (its sums not stored).
            let pair = [p0, if p0 + 1 < panels { p0 + 1 } else { p0 }];
            let w = pair.map(|p| self.packed[p * kp * NR..(p + 1) * kp * NR].as_ptr());
            let cols = pair.map(|p| (n - p * NR).min(NR));
            let mask = cols.map(|c| if c == NR { !0 } else { (1u16 << c) - 1 });
            let (mut scale, mut add, mut offset) = ([[0f32; NR]; 2], [[0f32; NR]; 2], [[0i32; NR]; 2]);
            for h in 0..2 {
                let first = pair[h] * NR;
                scale[h][..cols[h]].copy_from_slice(&self.scale[first..first + cols[h]]);
                offset[h][..cols[h]].copy_from_slice(&self.offset[first..first + cols[h]]);
                if let Some(b) = bias {
                    add[h][..cols[h]].copy_from_slice(&b[first..first + cols[h]]);
                }
            }
            let scale = scale.map(|s| _mm512_loadu_ps(s.as_ptr()));
            let add = add.map(|a| _mm512_loadu_ps(a.as_ptr()));
            let offset = offset.map(|o| _mm512_loadu_si512(o.as_ptr() as *const __m512i));
            for r0 in (0..rows).step_by(VNNI_MR) {
                let m = (rows - r0).min(VNNI_MR);
                // Rows past m repeat the first; their sums are not stored.
                let x: [*const i8; VNNI_MR] =
                    std::array::from_fn(|i| q.as_ptr().add((r0 + if i < m { i } else { 0 }) * kp));
                let mut a = [[_mm512_setzero_si512(); 2]; VNNI_MR];
                for g in 0..kp / 4 {
                    let w0 = _mm512_loadu_si512(w[0].add(g * 4 * NR) as *const __m512i);
                    let w1 = _mm512_loadu_si512(w[1].add(g * 4 * NR) as *const __m512i);
                    for (a, x) in a.iter_mut().zip(x) {
                        let x = _mm512_set1_epi32((x.add(g * 4) as *const i32).read_unaligned());
                        a[0] = _mm512_dpbusd_epi32(a[0], x, w0);
                        a[1] = _mm512_dpbusd_epi32(a[1], x, w1);
                    }
                }
                for (i, a) in a.iter().enumerate().take(m) {
                    let s = _mm512_set1_ps(sx[r0 + i]);
                    let dst = out.as_mut_ptr().add((r0 + i) * n);
                    for h in 0..1 + usize::from(pair[1] != pair[0]) {
                        let sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[h], offset[h]));
                        let y = _mm512_fmadd_ps(sum, _mm512_mul_ps(s, scale[h]), add[h]);
                        _mm512_mask_storeu_ps(dst.add(pair[h] * NR), mask[h], y);
                    }
                }
            }
        }
    }
}

/// Which product kernel the CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Vnni,
    Avx2,
    Plain,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
                return Self::Vnni;
            }
            if crate::model::simd::has_avx2_fma() {
                return Self::Avx2;
            }
        }
        Self::Plain
    }
}

/// Each row of `x` (rows, k) to int8 with its own scale; rows padded with zeros to a multiple
/// of 4 values.
fn quantize_rows(x: &[f32], rows: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    let kp = k.div_ceil(4) * 4;
    let mut q = vec![0i8; rows * kp];
    let mut sx = Vec::with_capacity(rows);
    for (row, q) in x.chunks_exact(k).zip(q.chunks_exact_mut(kp)) {
        let max = max_abs(row);
        let s = if max > 0.0 { max / 127.0 } else { 1.0 };
        quantize(row, 1.0 / s, q);
        sx.push(s);
    }
    (q, sx)
}

/// `v` rounded to the nearest integer within ±127. Adding 1.5 * 2^23 leaves the rounded value
/// in the low bits (ties to even, as `vcvtps2dq`) in plain arithmetic the compiler vectorises:
/// `f32::round` is a libm call per value here (a tenth of loading a model went to it).
#[inline(always)]
pub(crate) fn round_i8(v: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    ((v.clamp(-127.0, 127.0) + MAGIC) - MAGIC) as i8
}

/// The largest magnitude in `x`.
pub(crate) fn max_abs(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::model::simd::has_avx2_fma() {
        // SAFETY: the features were checked just above.
        return unsafe { max_abs_avx2(x) };
    }
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// `max_abs` eight at a time.
///
/// SAFETY: the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn max_abs_avx2(x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n8 = x.len() / 8 * 8;
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for i in (0..n8).step_by(8) {
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x.as_ptr().add(i))));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    lanes.iter().chain(&x[n8..]).fold(0f32, |m, v| m.max(v.abs()))
}

/// `q[i] = round(x[i] * inv)` within ±127.
fn quantize(x: &[f32], inv: f32, q: &mut [i8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::model::simd::has_avx2_fma() {
        // SAFETY: the features were checked just above.
        unsafe { quantize_avx2(x, inv, q) };
        return;
    }
    for (q, v) in q.iter_mut().zip(x) {
        *q = round_i8(v * inv);
    }
}

/// `quantize` 32 at a time: `vcvtps2dq` rounds to nearest, ties to even, as `round_i8`, so
/// both give the same bytes.
///
/// SAFETY: the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_avx2(x: &[f32], inv: f32, q: &mut [i8]) {
    use std::arch::x86_64::*;
    let n = x.len().min(q.len());
    let n32 = n / 32 * 32;
    let (s, hi, lo) = (_mm256_set1_ps(inv), _mm256_set1_ps(127.0), _mm256_set1_ps(-127.0));
    // The two packs interleave 4-value groups across the 128-bit lanes; this puts them back.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for i in (0..n32).step_by(32) {
        let v = [0, 1, 2, 3].map(|j| {
            let y = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i + 8 * j)), s);
            _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(y, hi), lo))
        });
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256(q.as_mut_ptr().add(i) as *mut __m256i, _mm256_permutevar8x32_epi32(bytes, order));
    }
    for (q, v) in q[n32..n].iter_mut().zip(&x[n32..n]) {
        *q = round_i8(v * inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Int8Matrix::rows` over all of `x` with the given kernel.
    fn product_with(q: &Int8Matrix, x: &[f32], bias: &[f32], kernel: Kernel) -> Vec<f32> {
        let (k, n) = (q.k, q.n);
        let mut out = vec![0f32; x.len() / k * n];
        for (out, x) in out.chunks_mut(MC * n).zip(x.chunks(MC * k)) {
            let rows = x.len() / k;
            let (qx, sx) = quantize_rows(x, rows, k);
            q.rows(qx, &sx, rows, Some(bias), out, kernel);
        }
        out
    }

    #[test]
    fn avx2_quantization_matches_the_plain_one() {
        if !crate::model::simd::has_avx2_fma() {
            return;
        }
        // 75 values: two vectors of 32 and a tail; ties (0.5, 2.5) and values past ±127.
        let x: Vec<f32> = (0..75).map(|i| (i as f32 - 37.0) * 0.5 + if i % 7 == 0 { 200.0 } else { 0.0 }).collect();
        for inv in [1.0, 3.7, 0.01] {
            let want: Vec<i8> = x.iter().map(|v| round_i8(v * inv)).collect();
            let mut got = vec![0i8; x.len()];
            // SAFETY: checked above.
            unsafe { quantize_avx2(&x, inv, &mut got) };
            assert_eq!(got, want, "inv {inv}");
            assert_eq!(unsafe { max_abs_avx2(&x[..70]) }, x[..70].iter().fold(0f32, |m, v| m.max(v.abs())));
        }
    }

    #[test]
    fn matches_a_plain_product() {
        // k not a multiple of 4, n not of 16, rows not of MR or MC, an odd number of panels: every
        // padding path.
        for (m, k, n) in [(101, 38, 21), (7, 384, 64), (50, 3, 5), (9, 40, 48)] {
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 700.0).collect();
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 173) as f32 - 86.0) / 40.0).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.1).collect();
            let q = Int8Matrix::new(&w, k, n);
            let got = product_with(&q, &x, &bias, Kernel::Plain);
            // The CPU's kernels: the same integer sums, so the same floats up to the rounding of
            // the scaling.
            let mut kernels = vec![Kernel::detect()];
            if Kernel::detect() == Kernel::Vnni {
                kernels.push(Kernel::Avx2);
            }
            for kernel in kernels.into_iter().filter(|&k| k != Kernel::Plain) {
                for fast in [product_with(&q, &x, &bias, kernel), q.product(&x, m, Some(&bias))] {
                    let worst =
                        fast.iter().zip(&got).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0f32, f32::max);
                    assert!(worst < 1e-6, "({m}, {k}, {n}): {kernel:?} and plain sums differ by {worst}");
                }
            }
            for i in 0..m {
                // Each side is within half a step of 1/127 of its row's (column's) largest value.
                let size: f32 = (0..k).map(|t| x[i * k + t].abs()).sum();
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| x[i * k + t] * w[t * n + j]).sum::<f32>() + bias[j];
                    let err = (got[i * n + j] - want).abs();
                    assert!(err < 0.01 * size, "({m}, {k}, {n}) [{i}, {j}]: {} vs {want}", got[i * n + j]);
                }
            }
        }
    }
}
