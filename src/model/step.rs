//! The arithmetic of one decoder step on the CPU, on plain slices.
//!
//! A step runs one token per row (beam, sample) through every decoder layer. In candle that is
//! some 150 small operations, each with its own allocation, dispatch and thread wake-up: 9 ms a
//! step for tiny.en on 2 cores, against about 1.5 ms for the same arithmetic done here. The
//! decoder's layer is written once (`model::decoder`); its arithmetic runs here through
//! `model::arith::Steps`, or on candle's tensors for prompts, word alignment, training and a
//! GPU. This module holds the step's kernels and its cache.

use std::sync::Arc;

use candle_core::Tensor;
use half::f16;
use rayon::prelude::*;

use crate::model::simd;

type Result<T> = candle_core::Result<T>;

/// `a += b`, element-wise.
pub(crate) fn add(a: &mut [f32], b: &[f32]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

/// One layer's keys and values of one row, each (len, state).
pub(crate) type KeysValues = (Vec<f16>, Vec<f16>);

/// The self-attention cache of the step path: per row, per layer, the keys and values of the
/// tokens so far, each (len, state), so a step appends in place. In f16, as the audio's: a
/// step reads all of it (a beam of 5 over a 225-token prompt, 18 MB a step for base in f32);
/// base beam 5 on long-5 32.5-34.1 -> 31.7-32.8 s and 50 MB less peak RSS, the same subtitles
/// (and tiny.en's).
#[derive(Debug, Clone, Default)]
pub(crate) struct StepCache {
    /// rows x layers x (keys, values)
    pub(crate) rows: Vec<Vec<KeysValues>>,
    /// Tokens in the cache.
    pub(crate) len: usize,
}

impl StepCache {
    /// From candle's per-layer caches, each (rows, head, len, head_dim).
    pub(crate) fn from_tensors(layers: &[(Tensor, Tensor)]) -> Result<Self> {
        let mut rows: Vec<Vec<KeysValues>> = Vec::new();
        let mut len = 0;
        for (k, v) in layers {
            let (b, h, t, dh) = k.dims4()?;
            let flat = |x: &Tensor| -> Result<Vec<Vec<f16>>> {
                x.transpose(1, 2)?.contiguous()?.reshape((b, t * h * dh))?.to_dtype(candle_core::DType::F16)?.to_vec2()
            };
            let (ks, vs) = (flat(k)?, flat(v)?);
            if rows.is_empty() {
                rows = vec![Vec::with_capacity(layers.len()); b];
            }
            for (r, (k, v)) in ks.into_iter().zip(vs).enumerate() {
                rows[r].push((k, v));
            }
            len = t;
        }
        Ok(Self { rows, len })
    }

    /// Back to candle's layout, (rows, head, len, head_dim) per layer.
    pub(crate) fn to_tensors(&self, n_head: usize, device: &candle_core::Device) -> Result<Vec<(Tensor, Tensor)>> {
        let (b, len) = (self.rows.len(), self.len);
        let layers = self.rows.first().map_or(0, |r| r.len());
        let mut out = Vec::with_capacity(layers);
        for l in 0..layers {
            let d = self.rows[0][l].0.len() / len.max(1);
            let to = |pick: fn(&KeysValues) -> &Vec<f16>| -> Result<Tensor> {
                let x: Vec<f16> = self.rows.iter().flat_map(|r| pick(&r[l]).iter().copied()).collect();
                Tensor::from_vec(x, (b, len, n_head, d / n_head), device)?
                    .to_dtype(candle_core::DType::F32)?
                    .transpose(1, 2)?
                    .contiguous()
            };
            out.push((to(|kv| &kv.0)?, to(|kv| &kv.1)?));
        }
        Ok(out)
    }

    /// Appends one token's keys and values of `layer`, `k`, `v` (rows, state), to each row.
    pub(crate) fn push(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let d = k.len() / self.rows.len().max(1);
        for (r, kv) in self.rows.iter_mut().enumerate() {
            let (keys, values) = &mut kv[layer];
            for (dst, src) in [(keys, &k[r * d..(r + 1) * d]), (values, &v[r * d..(r + 1) * d])] {
                let at = dst.len();
                dst.resize(at + d, f16::ZERO);
                simd::f32_to_f16(src, &mut dst[at..]);
            }
        }
    }

    /// Keeps the rows named by `index`, in that order.
    /// A row kept once is moved, not copied (a copy of every row's cache at every step was
    /// 5% of base's beam search).
    pub(crate) fn select(&mut self, index: &[u32]) {
        let mut uses = vec![0usize; self.rows.len()];
        index.iter().for_each(|&i| uses[i as usize] += 1);
        let mut old: Vec<Option<Vec<KeysValues>>> = std::mem::take(&mut self.rows).into_iter().map(Some).collect();
        self.rows = index
            .iter()
            .map(|&i| {
                let i = i as usize;
                uses[i] -= 1;
                let row = if uses[i] == 0 { old[i].take() } else { old[i].clone() };
                row.expect("a row is taken at its last use only")
            })
            .collect();
    }
}

/// Attention of one head's query `q` (head_dim) over `len` keys and values read by `key(j)`,
/// `value(j)` (head_dim each), into `out`. (The cache holds at most 448 tokens: a plain loop.)
fn attend_head<'a>(
    q: &[f32],
    len: usize,
    key: impl Fn(usize) -> &'a [f16],
    value: impl Fn(usize) -> &'a [f16],
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if q.len() == 64 && simd::has_avx2_f16c() {
        // SAFETY: the features were checked just above; the query, each key and value is 64
        // long.
        unsafe { attend_head_64(q, len, key, value, scores, out) };
        return;
    }
    scores.clear();
    scores.extend((0..len).map(|j| q.iter().zip(key(j)).map(|(a, b)| a * b.to_f32()).sum::<f32>()));
    simd::softmax_in_place(scores);
    out.fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(value(j)) {
            *o += p * v.to_f32();
        }
    }
}

/// `attend_head` for heads of 64 (every Whisper's) with AVX2 and FMA: a key's dot product in
/// eight lanes, the weighted sum of the values in eight registers (the plain loops were
/// compiled for SSE and the sum went through memory: 8% of base's beam search).
///
/// SAFETY: the CPU has AVX2 and FMA; `q`, `key(j)`, `value(j)` and `out` hold 64 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_head_64<'a>(
    q: &[f32],
    len: usize,
    key: impl Fn(usize) -> &'a [f16],
    value: impl Fn(usize) -> &'a [f16],
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert!(q.len() >= 64 && out.len() >= 64);
    let qv: [__m256; 8] = std::array::from_fn(|c| _mm256_loadu_ps(q.as_ptr().add(c * 8)));
    let load = |p: *const f16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
    scores.clear();
    scores.extend((0..len).map(|j| {
        let k = key(j);
        assert!(k.len() >= 64);
        if j + PREFETCH_KEYS < len {
            prefetch_128(key(j + PREFETCH_KEYS).as_ptr() as *const i8);
        }
        let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for c in (0..8).step_by(2) {
            a = _mm256_fmadd_ps(load(k.as_ptr().add(c * 8)), qv[c], a);
            b = _mm256_fmadd_ps(load(k.as_ptr().add(c * 8 + 8)), qv[c + 1], b);
        }
        hsum(_mm256_add_ps(a, b))
    }));
    simd::softmax_in_place(scores);
    let mut acc = [_mm256_setzero_ps(); 8];
    for (j, &p) in scores.iter().enumerate() {
        let v = value(j);
        assert!(v.len() >= 64);
        if j + PREFETCH_KEYS < len {
            prefetch_128(value(j + PREFETCH_KEYS).as_ptr() as *const i8);
        }
        let p = _mm256_set1_ps(p);
        for (c, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(load(v.as_ptr().add(c * 8)), p, *a);
        }
    }
    for (c, a) in acc.iter().enumerate() {
        _mm256_storeu_ps(out.as_mut_ptr().add(c * 8), *a);
    }
}

/// Self-attention of `q` (rows, state; already scaled) over the first `len` tokens of each row's
/// cache (keys and values (len, state) for `layer`), heads of `head_dim`. Returns (rows, state).
/// With more than one row, rows and heads are spread over the cores (one row's heads are too
/// little work to hand over: measured, a batch of 8 windows spent a sixth of its steps here on
/// one core).
pub(crate) fn self_attention(q: &[f32], cache: &StepCache, layer: usize, head_dim: usize, len: usize) -> Vec<f32> {
    let rows = cache.rows.len().max(1);
    let d = q.len() / rows;
    let mut out = vec![0f32; q.len()];
    let head = |scores: &mut Vec<f32>, (i, o): (usize, &mut [f32])| {
        let (r, h) = (i * head_dim / d, (i * head_dim) % d);
        let (k, v) = &cache.rows[r][layer];
        attend_head(
            &q[r * d + h..r * d + h + head_dim],
            len,
            |j| &k[j * d + h..j * d + h + head_dim],
            |j| &v[j * d + h..j * d + h + head_dim],
            scores,
            o,
        );
    };
    if rows > 1 {
        out.par_chunks_mut(head_dim).enumerate().for_each_init(Vec::new, head);
    } else {
        let mut scores = Vec::new();
        out.chunks_mut(head_dim).enumerate().for_each(|x| head(&mut scores, x));
    }
    out
}

/// One layer's audio keys and values in f16 for the step path: a step reads all of them, 18 MB
/// a step for tiny in f32, and memory bandwidth is what a step waits for.
#[derive(Debug, Clone)]
pub(crate) struct HalfKeysValues {
    /// (windows, head, ctx, head_dim), shared by the states decoding the same audio.
    k: Arc<Vec<f16>>,
    v: Arc<Vec<f16>>,
    /// The window of each row of the state: beams and samples of one window share its keys
    /// and values, never a copy.
    window_of: Vec<usize>,
    windows: usize,
    heads: usize,
    ctx: usize,
    head_dim: usize,
}

impl HalfKeysValues {
    /// From `k`, `v` (windows, head, ctx, head_dim); row i of the state reads window i (or the
    /// only window).
    pub(crate) fn new(k: &Tensor, v: &Tensor) -> Result<Self> {
        let (windows, heads, ctx, head_dim) = k.dims4()?;
        let half = |x: &Tensor| -> Result<Vec<f16>> { x.to_dtype(candle_core::DType::F16)?.flatten_all()?.to_vec1() };
        let window_of = (0..windows).collect();
        Ok(Self { k: Arc::new(half(k)?), v: Arc::new(half(v)?), window_of, windows, heads, ctx, head_dim })
    }

    /// Back to f32 tensors, each (rows, head, ctx, head_dim).
    pub(crate) fn to_tensors(&self, device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
        let shape = (self.windows, self.heads, self.ctx, self.head_dim);
        let f32 = |x: &[f16]| Tensor::from_slice(x, shape, device)?.to_dtype(candle_core::DType::F32);
        let (k, v) = (f32(&self.k)?, f32(&self.v)?);
        if self.windows == 1 || self.window_of.iter().enumerate().all(|(r, &w)| r == w) {
            return Ok((k, v));
        }
        let idx: Vec<u32> = self.window_of.iter().map(|&w| w as u32).collect();
        let idx = Tensor::new(idx.as_slice(), device)?;
        Ok((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?))
    }

    /// Keeps the rows named by `index`, in that order.
    pub(crate) fn select(&mut self, index: &[u32]) {
        if self.windows > 1 {
            self.window_of = index.iter().map(|&i| self.window_of[i as usize]).collect();
        }
    }

    /// The window row `r` of the state reads.
    fn window(&self, r: usize) -> usize {
        if self.windows == 1 {
            0
        } else {
            self.window_of[r]
        }
    }
}

/// Rows of one window (its beams) attended together: each block of the window's keys and values
/// is read from memory once for all of them.
const GROUP_ROWS: usize = 8;
/// Keys (and values) per block of `attend_group`: 8 kB of each for heads of 64, inside L1.
const KEY_BLOCK: usize = 64;

/// Cross-attention of `q` (rows, state; already scaled) over the audio's keys and values.
/// Returns (rows, state). Runs of rows reading one window (a window's beams, up to `GROUP_ROWS`)
/// are attended together, a head of a run a task, spread over the cores.
pub(crate) fn cross_attention(q: &[f32], rows: usize, kv: &HalfKeysValues) -> Vec<f32> {
    let (heads, ctx, dh) = (kv.heads, kv.ctx, kv.head_dim);
    let d = heads * dh;
    let mut groups = Vec::new();
    let mut r = 0;
    while r < rows {
        let mut end = r + 1;
        while end < rows && end - r < GROUP_ROWS && kv.window(end) == kv.window(r) {
            end += 1;
        }
        groups.push(r..end);
        r = end;
    }
    let parts: Vec<Vec<f32>> = (0..groups.len() * heads)
        .into_par_iter()
        .map_init(Vec::new, |scores, t| {
            let (rows, h) = (groups[t / heads].clone(), t % heads);
            let base = (kv.window(rows.start) * heads + h) * ctx * dh;
            let span = base..base + ctx * dh;
            let qs: Vec<&[f32]> = rows.map(|r| &q[r * d + h * dh..r * d + (h + 1) * dh]).collect();
            let mut o = vec![0f32; qs.len() * dh];
            attend_group(&qs, &kv.k[span.clone()], &kv.v[span], scores, &mut o);
            o
        })
        .collect();
    let mut out = vec![0f32; rows * d];
    for (t, part) in parts.iter().enumerate() {
        let (rows, h) = (groups[t / heads].clone(), t % heads);
        for (r, o) in rows.zip(part.chunks_exact(dh)) {
            out[r * d + h * dh..r * d + (h + 1) * dh].copy_from_slice(o);
        }
    }
    out
}

/// One head for a group of queries `qs` (each head_dim) over the same keys and values (ctx,
/// head_dim) in f16, into `out` (queries, head_dim): the scores of every query against a block
/// of keys, then every query's weighted sum over a block of values, so that each block comes
/// from memory once for the group (base beam 5, 8 windows a batch: a sixth of the run's samples
/// were in this kernel when each beam read all of them).
fn attend_group(qs: &[&[f32]], k: &[f16], v: &[f16], scores: &mut Vec<f32>, out: &mut [f32]) {
    let dh = qs[0].len();
    let ctx = k.len() / dh;
    scores.clear();
    scores.resize(qs.len() * ctx, 0.0);
    let blocks = || (0..ctx).step_by(KEY_BLOCK).map(|j| j..(j + KEY_BLOCK).min(ctx));
    #[cfg(target_arch = "x86_64")]
    let fast = dh.is_multiple_of(8) && simd::has_avx2_f16c();
    // The plain path's key or value in f32 (the AVX2 kernels convert in registers).
    let mut row = Vec::new();
    for b in blocks() {
        let k = &k[b.start * dh..b.end * dh];
        for (q, s) in qs.iter().zip(scores.chunks_exact_mut(ctx)) {
            let s = &mut s[b.clone()];
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: the features were checked above, and dh % 8 == 0; `k` holds
                // `s.len()` keys.
                unsafe { dots_avx2(q, k, s) };
                continue;
            }
            row.resize(dh, 0.0);
            for (kj, s) in k.chunks_exact(dh).zip(s.iter_mut()) {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(kj, &mut row);
                *s = simd::dot(q, &row);
            }
        }
    }
    for s in scores.chunks_exact_mut(ctx) {
        simd::softmax_in_place(s);
    }
    out.fill(0.0);
    for b in blocks() {
        let v = &v[b.start * dh..b.end * dh];
        for (o, s) in out.chunks_exact_mut(dh).zip(scores.chunks_exact(ctx)) {
            let p = &s[b.clone()];
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: as above; `v` holds `p.len()` values.
                unsafe { weighted_sum_avx2(p, v, o) };
                continue;
            }
            row.resize(dh, 0.0);
            for (vj, &p) in v.chunks_exact(dh).zip(p) {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(vj, &mut row);
                for (o, &x) in o.iter_mut().zip(&row) {
                    *o += p * x;
                }
            }
        }
    }
}

/// `scores[j] = q . k[j]` for the keys `k` (scores.len(), head_dim) in f16, with AVX2, FMA and
/// F16C: four keys at a time, so that no sum waits on the one before it.
///
/// SAFETY: the CPU has them; `q.len() % 8 == 0`; `k` holds `scores.len()` keys.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dots_avx2(q: &[f32], k: &[f16], scores: &mut [f32]) {
    use std::arch::x86_64::*;
    let (dh, n) = (q.len(), scores.len());
    assert!(k.len() >= n * dh);
    let load = |p: *const f16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
    let (kp, qp, sp) = (k.as_ptr(), q.as_ptr(), scores.as_mut_ptr());
    let mut j = 0;
    while j + 4 <= n {
        let (mut a0, mut a1, mut a2, mut a3) =
            (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        for c in (0..dh).step_by(8) {
            let x = _mm256_loadu_ps(qp.add(c));
            a0 = _mm256_fmadd_ps(load(kp.add(j * dh + c)), x, a0);
            a1 = _mm256_fmadd_ps(load(kp.add((j + 1) * dh + c)), x, a1);
            a2 = _mm256_fmadd_ps(load(kp.add((j + 2) * dh + c)), x, a2);
            a3 = _mm256_fmadd_ps(load(kp.add((j + 3) * dh + c)), x, a3);
        }
        let s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
        _mm_storeu_ps(sp.add(j), _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
        j += 4;
    }
    for j in j..n {
        let mut acc = _mm256_setzero_ps();
        for c in (0..dh).step_by(8) {
            acc = _mm256_fmadd_ps(load(kp.add(j * dh + c)), _mm256_loadu_ps(qp.add(c)), acc);
        }
        *sp.add(j) = hsum(acc);
    }
}

/// `out += sum_j p[j] v[j]` for the values `v` (p.len(), head_dim) in f16, with AVX2, FMA and
/// F16C: for `head_dim` 64 (every Whisper) the whole head in eight registers.
///
/// SAFETY: the CPU has them; `out.len() % 8 == 0`; `v` holds `p.len()` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum_avx2(p: &[f32], v: &[f16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let dh = out.len();
    assert!(v.len() >= p.len() * dh);
    let load = |p: *const f16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
    let (vp, op) = (v.as_ptr(), out.as_mut_ptr());
    if dh == 64 {
        let mut acc: [__m256; 8] = std::array::from_fn(|c| _mm256_loadu_ps(op.add(c * 8)));
        for (j, &p) in p.iter().enumerate() {
            let p = _mm256_set1_ps(p);
            for (c, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(load(vp.add(j * dh + c * 8)), p, *a);
            }
        }
        for (c, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(op.add(c * 8), *a);
        }
        return;
    }
    for c in (0..dh).step_by(8) {
        let mut acc = _mm256_loadu_ps(op.add(c));
        for (j, &p) in p.iter().enumerate() {
            acc = _mm256_fmadd_ps(load(vp.add(j * dh + c)), _mm256_set1_ps(p), acc);
        }
        _mm256_storeu_ps(op.add(c), acc);
    }
}

/// Keys ahead of the one in hand whose cache lines are asked for: a row's keys lie a whole
/// state apart (every head's), too far apart for the hardware to see them coming: base beam 5,
/// 300 steps, 1080 and 961 perf samples in `attend_head_64` without, 910 and 838 with.
#[cfg(target_arch = "x86_64")]
const PREFETCH_KEYS: usize = 6;

/// Asks for the two cache lines of 64 f16 at `p`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn prefetch_128(p: *const i8) {
    use std::arch::x86_64::*;
    // SAFETY: a prefetch never faults; `p` is in bounds.
    unsafe {
        _mm_prefetch(p, _MM_HINT_T0);
        _mm_prefetch(p.wrapping_add(64), _MM_HINT_T0);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(x: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beams_of_a_window_attend_as_each_alone() {
        // Two windows of 150 keys (two whole blocks and a part), 2 heads of 64; rows reading
        // windows 1, 1, 0, 1, 1, 1 (runs of two, one and three) against each row alone.
        let (windows, heads, ctx, dh) = (2, 2, 150, 64);
        let x = |i: usize, seed: usize| ((i * 7919 + seed * 104729) % 1024) as f32 / 512.0 - 1.0;
        let n = windows * heads * ctx * dh;
        let k: Vec<f16> = (0..n).map(|i| f16::from_f32(x(i, 1))).collect();
        let v: Vec<f16> = (0..n).map(|i| f16::from_f32(x(i, 2))).collect();
        let mut kv =
            HalfKeysValues { k: Arc::new(k), v: Arc::new(v), window_of: vec![0, 1], windows, heads, ctx, head_dim: dh };
        kv.select(&[1, 1, 0, 1, 1, 1]);
        let rows = 6;
        let d = heads * dh;
        let q: Vec<f32> = (0..rows * d).map(|i| x(i, 3) * 0.3).collect();
        let got = cross_attention(&q, rows, &kv);
        for r in 0..rows {
            for h in 0..heads {
                let base = (kv.window(r) * heads + h) * ctx * dh;
                let (k, v) = (&kv.k[base..base + ctx * dh], &kv.v[base..base + ctx * dh]);
                let qh = &q[r * d + h * dh..r * d + (h + 1) * dh];
                let scores: Vec<f64> =
                    (0..ctx).map(|j| (0..dh).map(|c| qh[c] as f64 * k[j * dh + c].to_f32() as f64).sum()).collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for c in 0..dh {
                    let want: f64 = (0..ctx).map(|j| (scores[j] - max).exp() / z * v[j * dh + c].to_f32() as f64).sum();
                    let got = got[r * d + h * dh + c] as f64;
                    assert!((got - want).abs() < 1e-5, "row {r} head {h} dimension {c}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn a_head_attends_as_the_plain_formula() {
        // 37 keys and values of 64 (the AVX2 kernel where the CPU has one), laid out with a
        // stride of 192 as a cache of three heads is, and a cache row kept by two beams.
        let (len, stride, h) = (37, 192, 64);
        let x = |i: usize, seed: usize| ((i * 7919 + seed * 104729) % 1024) as f32 / 512.0 - 1.0;
        // Values f16 holds exactly (multiples of 1/512 within ±1), as the cache keeps them.
        let k: Vec<f32> = (0..len * stride).map(|i| x(i, 1)).collect();
        let v: Vec<f32> = (0..len * stride).map(|i| x(i, 2)).collect();
        let (k16, v16): (Vec<f16>, Vec<f16>) =
            (k.iter().map(|&x| f16::from_f32(x)).collect(), v.iter().map(|&x| f16::from_f32(x)).collect());
        assert!(k16.iter().zip(&k).all(|(h, x)| h.to_f32() == *x));
        let q: Vec<f32> = (0..64).map(|i| x(i, 3) * 2.0).collect();
        let scores: Vec<f64> = (0..len).map(|j| (0..64).map(|c| (q[c] * k[j * stride + h + c]) as f64).sum()).collect();
        let max = scores.iter().copied().fold(f64::MIN, f64::max);
        let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
        let mut out = vec![0f32; 64];
        let (key, value) =
            (|j| &k16[j * stride + h..j * stride + h + 64], |j| &v16[j * stride + h..j * stride + h + 64]);
        attend_head(&q, len, key, value, &mut Vec::new(), &mut out);
        for (c, got) in out.iter().enumerate() {
            let want: f64 = (0..len).map(|j| (scores[j] - max).exp() / z * v[j * stride + h + c] as f64).sum();
            assert!((*got as f64 - want).abs() < 1e-5, "dimension {c}: {got} vs {want}");
        }

        // Beams: row 1 kept twice (copied, then moved), row 0 dropped.
        let row = |t: f32| vec![(vec![f16::from_f32(t); 4], vec![f16::from_f32(-t); 4])];
        let mut cache = StepCache { rows: vec![row(0.0), row(1.0), row(2.0)], len: 1 };
        cache.select(&[1, 2, 1]);
        let firsts: Vec<f32> = cache.rows.iter().map(|r| r[0].0[0].to_f32()).collect();
        assert_eq!(firsts, [1.0, 2.0, 1.0]);
        // A step's keys and values land on each row's cache in f16.
        cache.push(0, &[1.0, 2.0, 3.0, 4.0, 0.5, 0.25], &[-1.0, -2.0, -3.0, -4.0, -0.5, -0.25]);
        let second: Vec<f32> = cache.rows.iter().map(|r| r[0].0[4].to_f32()).collect();
        assert_eq!(second, [1.0, 3.0, 0.5]);
        assert_eq!(cache.rows[2][0].1[5].to_f32(), -0.25);
    }
}
