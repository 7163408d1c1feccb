//! Products of a few rows with a packed weight matrix: the decoder's output projection (hidden
//! state x token embedding) and its layers at each step.
//!
//! A decoder step is bound by memory traffic: it reads every decoder weight, and the token
//! embedding (51k x 384 for tiny) at every token, each step (with the audio's keys and values,
//! 80 MB a step for tiny in f32, about 10 GB/s here). Packing the weights as f16 halves the
//! bytes read, int8 (a scale per 32 values of a row) quarters them; the dot products
//! run in f32 with AVX2/FMA/F16C where the CPU has them, split across cores by row blocks, and
//! every row of a batch (beams, windows) is served by one pass over the weights, whose cache
//! lines are asked for a few rows ahead.

use half::f16;
use rayon::prelude::*;

/// Rows per parallel block.
const BLOCK_ROWS: usize = 512;
/// Values of a row under one int8 scale.
const GROUP: usize = 32;

/// How a packed matrix stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    F16,
    /// Symmetric int8 with an f32 scale per `GROUP` values of a row: one scale per row (as
    /// CTranslate2's int8) let the embedding's few large values flatten the rest, and cost
    /// tiny.en 1.3 points of WER on 20 minutes of speech.
    #[default]
    Int8,
}

#[derive(Debug, Clone)]
enum Packed {
    F16(Vec<f16>),
    Int8 { q: Vec<i8>, scale: Vec<f32> },
}

/// An (rows, state) weight, row-major, packed for products with a few rows.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    packed: Packed,
    vocab: usize,
    state: usize,
}

impl PackedMatrix {
    /// From an f16 weight (as checkpoints keep it), a row at a time: the whole matrix is never
    /// held in f32 (80 MB for tiny's embedding, at the peak of loading).
    pub fn from_f16(weight: &[f16], vocab: usize, state: usize, precision: Precision) -> Self {
        assert_eq!(weight.len(), vocab * state);
        if precision == Precision::F16 {
            return Self { packed: Packed::F16(weight.to_vec()), vocab, state };
        }
        let mut q = Vec::with_capacity(weight.len());
        let mut scale = Vec::with_capacity(vocab * state.div_ceil(GROUP));
        let mut row = vec![0f32; state];
        for w in weight.chunks_exact(state) {
            to_f32(w, &mut row);
            quantize_row(&row, &mut q, &mut scale);
        }
        Self { packed: Packed::Int8 { q, scale }, vocab, state }
    }

    pub fn new(weight_f32: &[f32], vocab: usize, state: usize, precision: Precision) -> Self {
        assert_eq!(weight_f32.len(), vocab * state);
        let packed = match precision {
            Precision::F16 => Packed::F16(weight_f32.iter().map(|&x| f16::from_f32(x)).collect()),
            Precision::Int8 => {
                let mut q = Vec::with_capacity(weight_f32.len());
                let mut scale = Vec::with_capacity(vocab * state.div_ceil(GROUP));
                for row in weight_f32.chunks_exact(state) {
                    quantize_row(row, &mut q, &mut scale);
                }
                Packed::Int8 { q, scale }
            }
        };
        Self { packed, vocab, state }
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Row `r` in f32 into `out` (state).
    fn row_f32(&self, r: usize, out: &mut [f32]) {
        let d = self.state;
        match &self.packed {
            Packed::F16(w) => to_f32(&w[r * d..(r + 1) * d], out),
            Packed::Int8 { q, scale } => {
                let scale = &scale[r * d.div_ceil(GROUP)..];
                for (k, (o, &v)) in out.iter_mut().zip(&q[r * d..(r + 1) * d]).enumerate() {
                    *o = v as f32 * scale[k / GROUP];
                }
            }
        }
    }

    /// The embedding rows of `tokens`, (tokens, state) row-major: the input embedding is the
    /// same matrix, so the model keeps one copy.
    pub fn embed(&self, tokens: &[u32]) -> Vec<f32> {
        let d = self.state;
        let mut out = vec![0f32; tokens.len() * d];
        for (t, o) in tokens.iter().zip(out.chunks_mut(d)) {
            self.row_f32((*t as usize).min(self.vocab - 1), o);
        }
        out
    }

    /// `hidden`: (batch, state) row-major. Returns (batch, vocab) row-major: `hidden x W^T`.
    pub fn logits(&self, hidden: &[f32], batch: usize) -> Vec<f32> {
        self.product(hidden, batch, BLOCK_ROWS)
    }

    /// `logits` with the weight's rows split across cores in blocks of `block_rows`; a matrix
    /// of one block is done on the calling thread (handing it over costs more than it saves).
    pub fn product(&self, hidden: &[f32], batch: usize, block_rows: usize) -> Vec<f32> {
        let d = self.state;
        assert_eq!(hidden.len(), batch * d);
        // (vocab, batch) while computing: each block writes one contiguous run.
        let mut by_token = vec![0f32; self.vocab * batch];
        let fast = crate::model::simd::has_avx2_f16c() && d.is_multiple_of(GROUP);
        let run = |(index, out): (usize, &mut [f32])| {
            let (first, n) = (index * block_rows, out.len() / batch);
            let rows = first..first + n;
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: the CPU features of the kernels were detected above, and d % GROUP == 0.
                unsafe {
                    match &self.packed {
                        Packed::F16(w) => {
                            block_avx2::<F16Rows>(&w[rows.start * d..rows.end * d], None, hidden, batch, d, out)
                        }
                        Packed::Int8 { q, scale } => block_avx2::<Int8Rows>(
                            &q[rows.start * d..rows.end * d],
                            Some(&scale[rows.start * d.div_ceil(GROUP)..rows.end * d.div_ceil(GROUP)]),
                            hidden,
                            batch,
                            d,
                            out,
                        ),
                    }
                }
                return;
            }
            let _ = fast;
            let mut row = vec![0f32; d];
            for (r, o) in rows.zip(out.chunks_mut(batch)) {
                self.row_f32(r, &mut row);
                for (b, o) in o.iter_mut().enumerate() {
                    *o = crate::model::simd::dot(&row, &hidden[b * d..(b + 1) * d]);
                }
            }
        };
        if self.vocab <= block_rows {
            run((0, &mut by_token));
        } else {
            by_token.par_chunks_mut(block_rows * batch).enumerate().for_each(run);
        }
        if batch == 1 {
            return by_token;
        }
        let mut out = vec![0f32; batch * self.vocab];
        for (t, vals) in by_token.chunks(batch).enumerate() {
            for (b, &v) in vals.iter().enumerate() {
                out[b * self.vocab + t] = v;
            }
        }
        out
    }
}

/// Symmetric int8 of one row, `GROUP` values at a time: the values onto `q`, the scales that
/// restore them onto `scale`.
fn quantize_row(row: &[f32], q: &mut Vec<i8>, scale: &mut Vec<f32>) {
    for g in row.chunks(GROUP) {
        let max = crate::model::int8::max_abs(g);
        let s = if max > 0.0 { max / 127.0 } else { 1.0 };
        q.extend(g.iter().map(|v| crate::model::int8::round_i8(v / s)));
        scale.push(s);
    }
}

/// Eight packed weights to eight f32 lanes.
#[cfg(target_arch = "x86_64")]
trait Load8 {
    type Elem;
    /// SAFETY: `p` points at eight readable elements; the CPU has AVX2 and F16C.
    unsafe fn load8(p: *const Self::Elem) -> std::arch::x86_64::__m256;
}

#[cfg(target_arch = "x86_64")]
struct F16Rows;
#[cfg(target_arch = "x86_64")]
impl Load8 for F16Rows {
    type Elem = f16;
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

#[cfg(target_arch = "x86_64")]
struct Int8Rows;
#[cfg(target_arch = "x86_64")]
impl Load8 for Int8Rows {
    type Elem = i8;
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(p: *const i8) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }
}

/// One block of rows, `out[row * batch + b] = rows[row] . hidden[b]` (int8 rows times their
/// group scales, `scale`: (rows, d / GROUP)), for AVX2, FMA and F16C (the `half` crate's slice
/// conversion fell back to scalar code here: 25 ms for one pass over tiny's embedding, against
/// about 3 with F16C). One row of the batch: four weight rows at a time, so each load of the
/// hidden state serves four sums and the four are reduced together. More rows: `tiles_avx2`.
///
/// SAFETY: the CPU has AVX2, FMA and F16C; `d % GROUP == 0`; `rows` holds whole rows of `d`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_avx2<L: Load8>(
    rows: &[L::Elem],
    scale: Option<&[f32]>,
    hidden: &[f32],
    batch: usize,
    d: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    if batch > 1 {
        // Batch rows in tiles of at most TILE_BATCH, as even as they come (5: one tile; 8: 4 + 4).
        let tiles = batch.div_ceil(TILE_BATCH);
        let mut b0 = 0;
        for t in 0..tiles {
            let size = (batch - b0) / (tiles - t);
            let tile: TileKernel<L::Elem> = match size {
                1 => tiles_avx2::<L, 1>,
                2 => tiles_avx2::<L, 2>,
                3 => tiles_avx2::<L, 3>,
                4 => tiles_avx2::<L, 4>,
                5 => tiles_avx2::<L, 5>,
                _ => tiles_avx2::<L, TILE_BATCH>,
            };
            tile(rows, scale, hidden, b0, batch, d, out);
            b0 += size;
        }
        return;
    }
    let n = rows.len() / d;
    let groups = d / GROUP;
    let (w, h) = (rows.as_ptr(), hidden.as_ptr());
    let mut r = 0;
    while r < n {
        let group = (n - r).min(4);
        // Rows past the end of a short last group repeat its first row; their sums are dropped.
        let index = |i: usize| r + if i < group { i } else { 0 };
        let ws = [0, 1, 2, 3].map(|i| w.add(index(i) * d));
        let scales = scale.map(|sc| [0, 1, 2, 3].map(|i| sc.as_ptr().add(index(i) * groups)));
        let mut a = [_mm256_setzero_ps(); 4];
        let ahead = (r + 2 * AHEAD).min(n.saturating_sub(4));
        for g in 0..groups {
            let k = g * GROUP;
            for i in 0..4 {
                _mm_prefetch(w.wrapping_add((ahead + i) * d + k) as *const i8, _MM_HINT_T0);
            }
            let x = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(h.add(k + o)));
            for i in 0..4 {
                // Four sums of a group, then its scale: one chain per row and group.
                let mut t = _mm256_mul_ps(L::load8(ws[i].add(k)), x[0]);
                t = _mm256_fmadd_ps(L::load8(ws[i].add(k + 8)), x[1], t);
                t = _mm256_fmadd_ps(L::load8(ws[i].add(k + 16)), x[2], t);
                t = _mm256_fmadd_ps(L::load8(ws[i].add(k + 24)), x[3], t);
                a[i] = match scales {
                    Some(sc) => _mm256_fmadd_ps(t, _mm256_set1_ps(*sc[i].add(g)), a[i]),
                    None => _mm256_add_ps(t, a[i]),
                };
            }
        }
        let s = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        let mut sums = [0f32; 4];
        _mm_storeu_ps(sums.as_mut_ptr(), s);
        out[r..r + group].copy_from_slice(&sums[..group]);
        r += group;
    }
}

/// `tiles_avx2` for one tile size.
#[cfg(target_arch = "x86_64")]
type TileKernel<E> = unsafe fn(&[E], Option<&[f32]>, &[f32], usize, usize, usize, &mut [f32]);

/// Batch rows per tile of `tiles_avx2`: two weight rows times six batch rows are twelve sums,
/// which with the two weights and a hidden value fill the sixteen registers.
#[cfg(target_arch = "x86_64")]
const TILE_BATCH: usize = 6;

/// Weight rows ahead of those in hand whose cache lines the kernels ask for (twice that with
/// one batch row, which goes through rows twice as fast). The products waited on the loads of
/// the weights (perf put the samples on the conversions right after them): with the prefetch
/// base's output projection at 5 rows (a beam) took 3.6-4.2 ms a step against 6.7-7.0, tiny.en's
/// at 1 row 1.2-1.6 against 1.7-1.95 (`examples/step`, both cores). The addresses are computed
/// wrapping: a block of fewer rows than that asks past its end, which a prefetch may (it never
/// faults) but `add` may not.
#[cfg(target_arch = "x86_64")]
const AHEAD: usize = 4;

/// `block_avx2` for batch rows `b0..b0 + B` of `batch`: two weight rows at a time, each unpacked
/// (and scaled) once in registers and multiplied with every batch row of the tile. Fewer
/// instructions than unpacking four rows into memory and reading them back for pairs of batch
/// rows (as before, which also rounded a beam of 5 up to 6), though alone it measured no
/// faster: the loads of the weights were what both waited for (`AHEAD`).
///
/// SAFETY: as `block_avx2`; `b0 + B <= batch`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tiles_avx2<L: Load8, const B: usize>(
    rows: &[L::Elem],
    scale: Option<&[f32]>,
    hidden: &[f32],
    b0: usize,
    batch: usize,
    d: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert!(b0 + B <= batch && hidden.len() >= batch * d);
    let n = rows.len() / d;
    let groups = d / GROUP;
    let (w, h) = (rows.as_ptr(), hidden.as_ptr().add(b0 * d));
    let mut r = 0;
    while r < n {
        // A last row alone is paired with itself; its twin's sums are dropped.
        let (w0, w1) = (w.add(r * d), w.add((r + 1).min(n - 1) * d));
        let mut a0 = [_mm256_setzero_ps(); B];
        let mut a1 = [_mm256_setzero_ps(); B];
        for g in 0..groups {
            let (s0, s1) = match scale {
                Some(sc) => (_mm256_set1_ps(sc[r * groups + g]), _mm256_set1_ps(sc[(r + 1).min(n - 1) * groups + g])),
                None => (_mm256_set1_ps(1.0), _mm256_set1_ps(1.0)),
            };
            // The rows a few pairs on, while these are multiplied: the loads of the weights
            // were what the products waited for.
            let ahead = (r + AHEAD).min(n.saturating_sub(2));
            _mm_prefetch(w.wrapping_add(ahead * d + g * GROUP) as *const i8, _MM_HINT_T0);
            _mm_prefetch(w.wrapping_add((ahead + 1) * d + g * GROUP) as *const i8, _MM_HINT_T0);
            for k in (g * GROUP..(g + 1) * GROUP).step_by(8) {
                let (mut v0, mut v1) = (L::load8(w0.add(k)), L::load8(w1.add(k)));
                if scale.is_some() {
                    v0 = _mm256_mul_ps(v0, s0);
                    v1 = _mm256_mul_ps(v1, s1);
                }
                for j in 0..B {
                    let x = _mm256_loadu_ps(h.add(j * d + k));
                    a0[j] = _mm256_fmadd_ps(v0, x, a0[j]);
                    a1[j] = _mm256_fmadd_ps(v1, x, a1[j]);
                }
            }
        }
        // Sums of batch rows j and j + 1 reduced together: [r j, r+1 j, r j+1, r+1 j+1].
        for j in (0..B).step_by(2) {
            let jj = (j + 1).min(B - 1);
            let s = _mm256_hadd_ps(_mm256_hadd_ps(a0[j], a1[j]), _mm256_hadd_ps(a0[jj], a1[jj]));
            let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            let mut sums = [0f32; 4];
            _mm_storeu_ps(sums.as_mut_ptr(), s);
            let b = b0 + j;
            out[r * batch + b] = sums[0];
            if r + 1 < n {
                out[(r + 1) * batch + b] = sums[1];
            }
            if j + 1 < B {
                out[r * batch + b + 1] = sums[2];
                if r + 1 < n {
                    out[(r + 1) * batch + b + 1] = sums[3];
                }
            }
        }
        r += 2;
    }
}

fn to_f32(src: &[f16], dst: &mut [f32]) {
    crate::model::simd::f16_to_f32(src, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_product() {
        // 24 wide: the plain path; 96: the AVX2 kernels where the CPU has them.
        // 3 x 96: a block shorter than the kernels' look-ahead.
        for (vocab, state, batch) in [(1037, 24, 3), (1037, 96, 3), (3, 96, 3)] {
            // Groups of 32 values differ in size by up to 16x, as an embedding's do.
            let w: Vec<f32> = (0..vocab * state)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 700.0 * (1 << ((i % state) / 32 % 5)) as f32)
                .collect();
            let h: Vec<f32> = (0..13 * state).map(|i| ((i * 31 % 17) as f32 - 8.0) / 5.0).collect();
            for precision in [Precision::F16, Precision::Int8] {
                let p = PackedMatrix::new(&w, vocab, state, precision);
                // Blocks of 100 rows: a short last block, groups of four and pairs cut short;
                // batches of 8 and 13: tiles of 4 + 4 and 4 + 4 + 5.
                for (batch, block) in [(batch, 512), (1, 100), (batch, 100), (8, 100), (13, 512)] {
                    let got = p.product(&h[..batch * state], batch, block);
                    for b in 0..batch {
                        for t in 0..vocab {
                            let want: f32 = (0..state).map(|k| w[t * state + k] * h[b * state + k]).sum();
                            let size: f32 = (0..state).map(|k| (w[t * state + k] * h[b * state + k]).abs()).sum();
                            let err = (got[b * vocab + t] - want).abs();
                            assert!(
                                err < 4e-3 * (1.0 + size),
                                "{precision:?} {state} wide, batch {batch} ({b}, {t}): {} vs {want}",
                                got[b * vocab + t]
                            );
                        }
                    }
                }
            }
        }
    }
}
