//! Products of a few rows with a weight matrix kept in f16: the decoder's output projection
//! (hidden state x token embedding) and its layers at each step.
//!
//! A decoder step is bound by memory traffic: it reads every decoder weight, and the token
//! embedding (51k x 384 for tiny) at every token. Keeping them in f16 halves the bytes read;
//! the dot products run in f32 with AVX2/FMA/F16C where the CPU has them, split across cores by
//! row blocks, and every row of a batch (beams, windows) is served by one pass over the weights.

use half::f16;
use rayon::prelude::*;

/// Rows per parallel block.
const BLOCK_ROWS: usize = 512;

#[derive(Debug, Clone)]
pub struct HalfMatrix {
    /// (vocab, state) row-major.
    weight: Vec<f16>,
    vocab: usize,
    state: usize,
}

impl HalfMatrix {
    pub fn new(weight_f32: &[f32], vocab: usize, state: usize) -> Self {
        assert_eq!(weight_f32.len(), vocab * state);
        Self { weight: weight_f32.iter().map(|&x| f16::from_f32(x)).collect(), vocab, state }
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The embedding rows of `tokens`, (tokens, state) row-major: the input embedding is the
    /// same matrix, so the model keeps one copy.
    pub fn embed(&self, tokens: &[u32]) -> Vec<f32> {
        let d = self.state;
        let mut out = vec![0f32; tokens.len() * d];
        for (t, o) in tokens.iter().zip(out.chunks_mut(d)) {
            let t = (*t as usize).min(self.vocab - 1);
            to_f32(&self.weight[t * d..(t + 1) * d], o);
        }
        out
    }

    /// `hidden`: (batch, state) row-major. Returns (batch, vocab) row-major: `hidden x W^T`.
    pub fn logits(&self, hidden: &[f32], batch: usize) -> Vec<f32> {
        let d = self.state;
        assert_eq!(hidden.len(), batch * d);
        // (vocab, batch) while computing: each block writes one contiguous run.
        let mut by_token = vec![0f32; self.vocab * batch];
        let fast = has_avx2_f16c();
        by_token.par_chunks_mut(BLOCK_ROWS * batch).enumerate().for_each(|(index, out)| {
            let first = index * BLOCK_ROWS;
            let rows = &self.weight[first * d..(first + out.len() / batch) * d];
            if fast {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU features of `block_avx2` were detected above.
                unsafe {
                    block_avx2(rows, hidden, batch, d, out)
                };
            } else {
                block(rows, hidden, batch, d, out);
            }
        });
        let mut out = vec![0f32; batch * self.vocab];
        for (t, vals) in by_token.chunks(batch).enumerate() {
            for (b, &v) in vals.iter().enumerate() {
                out[b * self.vocab + t] = v;
            }
        }
        out
    }
}

fn has_avx2_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One block of rows: `out[row * batch + b] = rows[row] . hidden[b]`.
#[inline(always)]
fn block(rows: &[f16], hidden: &[f32], batch: usize, d: usize, out: &mut [f32]) {
    let mut row = vec![0f32; d];
    for (w, o) in rows.chunks_exact(d).zip(out.chunks_mut(batch)) {
        to_f32(w, &mut row);
        for (b, o) in o.iter_mut().enumerate() {
            *o = dot(&row, &hidden[b * d..(b + 1) * d]);
        }
    }
}

/// `block` compiled for AVX2, FMA and F16C (the `half` crate's slice conversion fell back to
/// scalar code here: 25 ms for one pass over tiny's embedding, against about 3 with F16C).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_avx2(rows: &[f16], hidden: &[f32], batch: usize, d: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut row = vec![0f32; d];
    for (w, o) in rows.chunks_exact(d).zip(out.chunks_mut(batch)) {
        let mut i = 0;
        while i + 8 <= d {
            // SAFETY: i + 8 <= d keeps both 8-element accesses inside `w` and `row`.
            unsafe {
                let h = _mm_loadu_si128(w.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(row.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
            i += 8;
        }
        for k in i..d {
            row[k] = w[k].to_f32();
        }
        for (b, o) in o.iter_mut().enumerate() {
            let h = &hidden[b * d..(b + 1) * d];
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut k = 0;
            while k + 16 <= d {
                // SAFETY: k + 16 <= d keeps the accesses inside `row` and `h`.
                unsafe {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row.as_ptr().add(k)), _mm256_loadu_ps(h.as_ptr().add(k)), a0);
                    a1 = _mm256_fmadd_ps(
                        _mm256_loadu_ps(row.as_ptr().add(k + 8)),
                        _mm256_loadu_ps(h.as_ptr().add(k + 8)),
                        a1,
                    );
                }
                k += 16;
            }
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(a0, a1)) };
            *o = lanes.iter().sum::<f32>() + (k..d).map(|j| row[j] * h[j]).sum::<f32>();
        }
    }
}

fn to_f32(src: &[f16], dst: &mut [f32]) {
    half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst);
}

/// Eight independent sums, so the compiler can keep them in vector registers.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] = x[k].mul_add(y[k], acc[k]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_product() {
        let (vocab, state, batch) = (1037, 24, 3);
        let w: Vec<f32> = (0..vocab * state).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 700.0).collect();
        let h: Vec<f32> = (0..batch * state).map(|i| ((i * 31 % 17) as f32 - 8.0) / 5.0).collect();
        let p = HalfMatrix::new(&w, vocab, state);
        let got = p.logits(&h, batch);
        for b in 0..batch {
            for t in 0..vocab {
                let want: f32 = (0..state).map(|k| w[t * state + k] * h[b * state + k]).sum();
                assert!((got[b * vocab + t] - want).abs() < 2e-2, "({b}, {t}): {} vs {want}", got[b * vocab + t]);
            }
        }
    }
}
