//! Vectorised exp, softmax and GELU for the CPU paths (AVX2 and FMA where the CPU has them,
//! plain loops elsewhere). libm's scalar expf and erff were a tenth of a transcription's time:
//! 54 million exponentials a window in the encoder's softmax, 9 million error functions in its
//! GELUs, 50 thousand exponentials a token in the decoding loop's log-softmax.

use candle_core::{CpuStorage, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

type Result<T> = candle_core::Result<T>;

/// The contiguous f32 values of a tensor on the CPU, read in place.
pub(crate) fn with_f32_slice<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(all)) = &*storage else {
        candle_core::bail!("expected f32 values on the CPU");
    };
    let Some((from, to)) = layout.contiguous_offsets() else {
        candle_core::bail!("expected a contiguous tensor");
    };
    Ok(f(&all[from..to]))
}

/// `with_f32_slice` for an f16 tensor.
pub(crate) fn with_f16_slice<R>(x: &Tensor, f: impl FnOnce(&[half::f16]) -> R) -> Result<R> {
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(CpuStorage::F16(all)) = &*storage else {
        candle_core::bail!("expected f16 values on the CPU");
    };
    let Some((from, to)) = layout.contiguous_offsets() else {
        candle_core::bail!("expected a contiguous tensor");
    };
    Ok(f(&all[from..to]))
}

/// `src` in f32, eight values at a time with F16C where the CPU has it (candle's conversion and
/// the `half` crate's slice conversion go a value at a time here).
pub(crate) fn f16_to_f32(src: &[half::f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("f16c") {
        // SAFETY: the features were checked just above; the slices have the same length.
        unsafe { f16_to_f32_f16c(src, dst) };
        return;
    }
    half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst);
}

/// SAFETY: the CPU has AVX and F16C; `src` and `dst` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn f16_to_f32_f16c(src: &[half::f16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
    }
    for (d, h) in dst[n..].iter_mut().zip(&src[n..]) {
        *d = h.to_f32();
    }
}

/// `src` in f16 (rounded to nearest), eight values at a time with F16C where the CPU has it.
pub(crate) fn f32_to_f16(src: &[f32], dst: &mut [half::f16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("f16c") {
        // SAFETY: the features were checked just above; the slices have the same length.
        unsafe { f32_to_f16_f16c(src, dst) };
        return;
    }
    half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src);
}

/// SAFETY: the CPU has AVX and F16C; `src` and `dst` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn f32_to_f16_f16c(src: &[f32], dst: &mut [half::f16]) {
    use std::arch::x86_64::*;
    let n = src.len() / 8 * 8;
    for i in (0..n).step_by(8) {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
        _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
    }
    for (d, x) in dst[n..].iter_mut().zip(&src[n..]) {
        *d = half::f16::from_f32(*x);
    }
}

/// Whether the CPU has AVX2 and FMA, which every vectorised kernel of `model` uses.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX2 and FMA and F16C, for the kernels reading weights, keys or values
/// kept in f16.
pub(crate) fn has_avx2_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma() && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The dot product of `a` and `b` in eight independent sums, so the compiler keeps them in
/// vector registers.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Softmax of `x` in place.
pub(crate) fn softmax_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were checked just above.
        let max = unsafe { max_avx2(x) };
        let p = x.as_mut_ptr();
        let sum = unsafe { exp_minus_avx2(p, p, x.len(), max) };
        let inv = 1.0 / sum;
        x.iter_mut().for_each(|v| *v *= inv);
        return;
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// The largest value of `x`, eight at a time (a fold over `f32::max` stays scalar, and every
/// softmax of the model starts with it). No NaN reaches here.
///
/// SAFETY: the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn max_avx2(x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n8 = x.len() / 8 * 8;
    let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
    for i in (0..n8).step_by(8) {
        m = _mm256_max_ps(m, _mm256_loadu_ps(x.as_ptr().add(i)));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    lanes.iter().chain(&x[n8..]).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// The sum of `exp(x[i] - shift)`.
pub fn sum_exp(x: &[f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were checked just above; a null `dst` writes nothing.
        return unsafe { exp_minus_avx2(x.as_ptr(), std::ptr::null_mut(), x.len(), shift) };
    }
    x.iter().map(|&v| (v - shift).exp()).sum()
}

/// `dst[i] = exp(src[i] - max)` for `i < n` (nothing written when `dst` is null), eight at
/// a time; returns the sum of them.
///
/// SAFETY: the CPU has AVX2 and FMA; `src` holds `n` values, and so does `dst` unless null
/// (it may be `src`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_minus_avx2(src: *const f32, dst: *mut f32, n: usize, max: f32) -> f32 {
    use std::arch::x86_64::*;
    let n8 = n / 8 * 8;
    let write = !dst.is_null();
    let m = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    for i in (0..n8).step_by(8) {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(src.add(i)), m));
        if write {
            _mm256_storeu_ps(dst.add(i), e);
        }
        acc = _mm256_add_ps(acc, e);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    let mut sum: f32 = lanes.iter().sum();
    for i in n8..n {
        let e = (*src.add(i) - max).exp();
        if write {
            *dst.add(i) = e;
        }
        sum += e;
    }
    sum
}

/// Cephes' expf: 2^n times a degree-6 polynomial on [-ln 2 / 2, ln 2 / 2], relative error
/// about 2e-7.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // Below -87.3 the result is 0 (as a denormal it would not matter to a softmax).
    let x = _mm256_max_ps(x, _mm256_set1_ps(-87.3));
    let x = _mm256_min_ps(x, _mm256_set1_ps(88.3));
    let n = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    // r = x - n ln 2, in two parts for precision.
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
    }
    let y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    let pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
}

/// GELU with the error function, in place: `0.5 x (1 + erf(x / sqrt 2))`.
pub fn gelu_erf_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were checked just above.
        return unsafe { gelu_avx2(x) };
    }
    for v in x {
        *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `gelu_erf_in_place` eight at a time, erf by Abramowitz and Stegun 7.1.26 (absolute error
/// below 1.5e-7): `1 - t (a1 + t (a2 + ...)) exp(-x^2)`, `t = 1 / (1 + p |x|)`.
///
/// SAFETY: the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &mut [f32]) {
    use std::arch::x86_64::*;
    let n8 = x.len() / 8 * 8;
    let p = x.as_mut_ptr();
    let sign_mask = _mm256_set1_ps(-0.0);
    let one = _mm256_set1_ps(1.0);
    for i in (0..n8).step_by(8) {
        let v = _mm256_loadu_ps(p.add(i));
        let z = _mm256_mul_ps(v, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let a = _mm256_andnot_ps(sign_mask, z);
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.327_591_1), a, one));
        let mut y = _mm256_set1_ps(1.061_405_4);
        for c in [-1.453_152_1, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
            y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(c));
        }
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
        let erf = _mm256_fnmadd_ps(_mm256_mul_ps(y, t), e, one);
        // erf is odd: the sign of z.
        let erf = _mm256_or_ps(erf, _mm256_and_ps(z, sign_mask));
        let g = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), v), _mm256_add_ps(one, erf));
        _mm256_storeu_ps(p.add(i), g);
    }
    for v in &mut x[n8..] {
        *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// GELU (erf) of a tensor: with `own_kernels` (on the CPU) in f32 without a gradient,
/// `gelu_erf_in_place` over the cores; otherwise candle's.
pub(crate) fn gelu_erf(x: &Tensor, own_kernels: bool) -> Result<Tensor> {
    if own_kernels && x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && !x.track_op() {
        x.apply_op1_no_bwd(&GeluErf)
    } else {
        x.gelu_erf()
    }
}

struct GeluErf;

impl candle_core::CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-simd"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(all), Some((from, to))) = (storage, layout.contiguous_offsets()) else {
            // Strided input: candle's own op on a contiguous copy is simpler than a second path.
            candle_core::bail!("gelu-erf-simd takes contiguous f32");
        };
        let mut out = all[from..to].to_vec();
        out.par_chunks_mut(1 << 14).for_each(gelu_erf_in_place);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_widening_matches_the_half_crate() {
        // 1003 values: whole groups of eight and a tail; subnormals, infinities, NaN.
        let src: Vec<half::f16> = (0..1003u16)
            .map(|i| half::f16::from_bits(i.wrapping_mul(65)))
            .chain([half::f16::INFINITY, half::f16::NEG_INFINITY, half::f16::NAN])
            .collect();
        let mut got = vec![0f32; src.len()];
        f16_to_f32(&src, &mut got);
        for (h, g) in src.iter().zip(&got) {
            assert!(h.to_f32().to_bits() == g.to_bits() || (h.is_nan() && g.is_nan()), "{h} -> {g}");
        }
    }

    #[test]
    fn softmax_matches_the_exact_one() {
        let mut x: Vec<f32> = (0..1003).map(|i| ((i * 37 % 101) as f32 - 50.0) / 3.0).collect();
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = x.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let want: Vec<f64> = x.iter().map(|&v| ((v - max) as f64).exp() / z).collect();
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // The largest value in the vectors, in the tail, and first.
            for (n, at) in [(1003, 500), (1003, 1001), (7, 0), (16, 15)] {
                let mut y = x[..n].to_vec();
                y[at] = 99.0;
                // SAFETY: checked just above.
                assert_eq!(unsafe { max_avx2(&y) }, 99.0, "{n} values, largest at {at}");
            }
        }
        softmax_in_place(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!((*g as f64 - w).abs() <= 1e-6 * w.max(1e-30) + 1e-12, "{g} vs {w}");
        }
    }

    #[test]
    fn gelu_matches_the_exact_one() {
        let mut x: Vec<f32> = (0..2003).map(|i| (i as f32 - 1000.0) / 150.0).collect();
        let want: Vec<f64> =
            x.iter().map(|&v| 0.5 * v as f64 * (1.0 + libm::erf(v as f64 / std::f64::consts::SQRT_2))).collect();
        gelu_erf_in_place(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 2e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn sum_exp_reads_without_writing() {
        let x: Vec<f32> = (0..37).map(|i| i as f32 / 10.0).collect();
        let want: f32 = x.iter().map(|v| (v - 3.0).exp()).sum();
        let before = x.clone();
        assert!((sum_exp(&x, 3.0) - want).abs() < 1e-5 * want);
        assert_eq!(x, before);
    }
}
