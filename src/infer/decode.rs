//! The decoding loop for one 30 s window: logit filters (suppression and OpenAI's timestamp
//! rules), greedy, sampling and beam search, and temperature fallback.
//!
//! Follows https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/decoding.py
//! (`SuppressBlank`, `SuppressTokens`, `ApplyTimestampRules`, `BeamSearchDecoder`,
//! `MaximumLikelihoodRanker`) and `transcribe.py`'s `decode_with_fallback`.

use std::io::Write;

use candle_core::{IndexOp, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::infer::filters::{log_sum_exp, softmax_at, LogitFilter};
use crate::model::{Encoded, ModelConfig, Whisper, WhisperTokenizer};

type Result<T> = candle_core::Result<T>;

/// Seconds per timestamp token.
pub const TIMESTAMP_STEP_S: f64 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Transcribe,
    Translate,
}

/// How one window is decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    pub task: Task,
    /// Language token to use; `None` on English-only models.
    pub language: Option<u32>,
    /// 1 is greedy.
    pub beam_size: usize,
    /// Candidates sampled at a temperature above zero.
    pub best_of: usize,
    pub temperatures: Vec<f32>,
    pub compression_ratio_threshold: f32,
    pub logprob_threshold: f32,
    pub no_speech_threshold: f32,
    pub max_initial_timestamp_s: f64,
    /// Text only (`<|notimestamps|>`): one segment a window, its words timed by alignment.
    pub without_timestamps: bool,
    /// Seed for sampling at temperatures above zero; each window's own generator is seeded
    /// from it and the window's start ([`window_seed`]).
    pub seed: u64,
    /// At most this many tokens after the prompt (faster-whisper's `max_new_tokens`); `None`:
    /// half the text context (224), as OpenAI's `sample_len`.
    pub max_new_tokens: Option<usize>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            task: Task::Transcribe,
            language: None,
            beam_size: 5,
            best_of: 5,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            max_initial_timestamp_s: 1.0,
            without_timestamps: false,
            seed: 0,
            max_new_tokens: None,
        }
    }
}

/// What decoding one window produced.
#[derive(Debug, Clone)]
pub struct DecodeResult {
    /// Sampled tokens: text and timestamps, without the final `<|endoftext|>`.
    pub tokens: Vec<u32>,
    /// Log-probability of each token in `tokens`.
    pub token_logprobs: Vec<f32>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
    pub compression_ratio: f32,
    /// The text says one phrase over and over ([`has_loop`]).
    pub looping: bool,
}

/// The sampling seed of the window that starts at mel frame `start_frame` of an input decoded
/// with `seed`: a window samples the same whatever else is decoded beside it (other windows of a
/// batch, other inputs' chunks in the shared model stage) and whenever it is decoded.
pub fn window_seed(seed: u64, start_frame: usize) -> u64 {
    // SplitMix64's finaliser, so that neighbouring windows get unrelated streams.
    let mut z = seed ^ (start_frame as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How one window of a batch starts: the text before it (its prompt), the seed it samples from
/// ([`window_seed`]), and at most how many tokens it may write (`None`: the options' bound).
/// Windows decoded together may have prompts of their own, as long as they are equally long
/// once cut to what the decoder takes ([`max_prompt_tokens`]): their rows start together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowStart {
    pub prompt: Vec<u32>,
    pub seed: u64,
    pub max_new_tokens: Option<usize>,
}

impl WindowStart {
    pub fn new(prompt: Vec<u32>, seed: u64) -> Self {
        Self { prompt, seed, max_new_tokens: None }
    }

    /// How many of the prompt's tokens a decoder of context `n_ctx` takes.
    pub fn prompt_tokens(&self, n_ctx: usize) -> usize {
        self.prompt.len().min(max_prompt_tokens(n_ctx))
    }
}

/// Decodes windows of one model.
pub struct WindowDecoder<'a> {
    model: &'a Whisper,
    tok: &'a WhisperTokenizer,
    filter: LogitFilter,
    /// The window's fusion memory (pictures, context text) when the model has an adapter.
    memory: Option<Tensor>,
}

/// The tokens that start decoding: the language token and task on multilingual models.
pub fn sot_sequence(model: &Whisper, tok: &WhisperTokenizer, opts: &DecodeOptions) -> Vec<u32> {
    sot_sequence_for(model.dims.is_multilingual(), tok, opts)
}

/// [`sot_sequence`] for a model that is `multilingual` or not.
pub fn sot_sequence_for(multilingual: bool, tok: &WhisperTokenizer, opts: &DecodeOptions) -> Vec<u32> {
    let mut seq = vec![tok.sot];
    if multilingual {
        seq.push(opts.language.unwrap_or_else(|| tok.language_token("en").unwrap_or(tok.sot + 1)));
        seq.push(match opts.task {
            Task::Transcribe => tok.transcribe,
            Task::Translate => tok.translate,
        });
    }
    if opts.without_timestamps {
        seq.push(tok.no_timestamps);
    }
    seq
}

impl<'a> WindowDecoder<'a> {
    pub fn new(model: &'a Whisper, tok: &'a WhisperTokenizer, config: &ModelConfig) -> Self {
        let n_vocab = model.dims.n_vocab as u32;
        // The checkpoint's non-speech list plus every special token but <|endoftext|> and the
        // timestamps: the task, language, prompt and no-speech markers are never sampled.
        let mut suppress: Vec<u32> = config.suppress_ids.iter().copied().filter(|&t| t < n_vocab).collect();
        suppress.extend(tok.eot + 1..tok.timestamp_begin);
        suppress.sort_unstable();
        suppress.dedup();
        let mut suppress_begin = config.suppress_ids_begin.clone();
        if suppress_begin.is_empty() {
            suppress_begin = tok.encode(" ");
            suppress_begin.push(tok.eot);
        }
        let filter = LogitFilter {
            suppress,
            suppress_begin,
            eot: tok.eot,
            no_timestamps: tok.no_timestamps,
            timestamp_begin: tok.timestamp_begin,
            max_initial_timestamp: 50,
            without_timestamps: false,
        };
        Self { model, tok, filter, memory: None }
    }

    /// Decodes with the fusion memory `memory` (see `Fusion::memory`).
    pub fn with_memory(mut self, memory: Option<Tensor>) -> Self {
        self.memory = memory;
        self
    }

    /// The tokens a window's decoding starts from: `<|startofprev|>` and the prompt's last
    /// tokens (when there is a prompt), then the start-of-transcript sequence; and the index of
    /// `<|startoftranscript|>`. Training feeds the same prefix.
    pub fn initial_tokens(&self, prompt: &[u32], opts: &DecodeOptions) -> (Vec<u32>, usize) {
        let mut initial = Vec::new();
        if !prompt.is_empty() {
            initial.push(self.tok.sot_prev);
            let keep = prompt.len().min(max_prompt_tokens(self.model.decoder.n_ctx()));
            initial.extend_from_slice(&prompt[prompt.len() - keep..]);
        }
        let sot_index = initial.len();
        initial.extend(sot_sequence(self.model, self.tok, opts));
        (initial, sot_index)
    }

    /// Language probabilities over the language tokens, for the window `audio` (one window).
    /// Returns the most likely language token and its probability.
    pub fn detect_language(&self, audio: &Encoded) -> Result<(u32, f32)> {
        let dec = &self.model.decoder;
        let mut state = dec.start_fused(audio, self.memory.as_ref())?;
        let x = Tensor::new(&[[self.tok.sot]], audio.audio().device())?;
        let h = dec.forward(&x, &mut state)?;
        let logits: Vec<f32> = dec.logits(&h.i((.., 0, ..))?)?.i(0)?.to_vec1()?;
        let langs: Vec<u32> =
            self.tok.languages.iter().map(|(id, _)| *id).filter(|&id| (id as usize) < logits.len()).collect();
        let max = langs.iter().map(|&id| logits[id as usize]).fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = langs.iter().map(|&id| (logits[id as usize] - max).exp()).sum();
        let best = langs.iter().copied().max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]));
        let best = best.unwrap_or(self.tok.sot + 1);
        Ok((best, (logits[best as usize] - max).exp() / z))
    }

    /// `decode_with_fallback`: decode at rising temperatures until the result is neither
    /// repetitive (compression ratio) nor unlikely (mean log-probability), unless it is silence.
    /// When every temperature fails, the likeliest result that is not repetitive wins (as
    /// faster-whisper chooses; OpenAI keeps the last, hottest one), reported at the last
    /// temperature so the prompt is reset after it.
    pub fn decode_with_fallback(
        &mut self,
        audio: &Encoded,
        prompt: &[u32],
        opts: &DecodeOptions,
        seed: u64,
    ) -> Result<DecodeResult> {
        Ok(self.decode_batch_with_fallback(audio, &[WindowStart::new(prompt.to_vec(), seed)], opts)?.remove(0))
    }

    /// [`Self::decode_with_fallback`] for every window of `audio` at once, window `i` starting
    /// as `starts[i]` says: each temperature decodes, as one batch, the windows no cooler one
    /// satisfied.
    pub fn decode_batch_with_fallback(
        &mut self,
        audio: &Encoded,
        starts: &[WindowStart],
        opts: &DecodeOptions,
    ) -> Result<Vec<DecodeResult>> {
        let n = audio.windows();
        if starts.len() != n {
            candle_core::bail!("{} window starts for {n} windows", starts.len());
        }
        let mut rngs: Vec<ChaCha8Rng> = starts.iter().map(|s| ChaCha8Rng::seed_from_u64(s.seed)).collect();
        let mut done: Vec<Option<DecodeResult>> = vec![None; n];
        let mut tried: Vec<Vec<DecodeResult>> = vec![Vec::new(); n];
        let mut pending: Vec<usize> = (0..n).collect();
        let repetitive = |r: &DecodeResult| r.compression_ratio > opts.compression_ratio_threshold || r.looping;
        for &t in &opts.temperatures {
            if pending.is_empty() {
                break;
            }
            let part = audio.select(&pending)?;
            let part_starts: Vec<WindowStart> = pending.iter().map(|&i| starts[i].clone()).collect();
            let mut part_rngs: Vec<ChaCha8Rng> = pending.iter().map(|&i| rngs[i].clone()).collect();
            let results = self.decode_batch(&part, &part_starts, t, opts, &mut part_rngs)?;
            for (&i, r) in pending.iter().zip(part_rngs) {
                rngs[i] = r;
            }
            let mut still = Vec::new();
            for (i, r) in pending.into_iter().zip(results) {
                let silence = r.no_speech_prob > opts.no_speech_threshold && r.avg_logprob < opts.logprob_threshold;
                if silence || !(repetitive(&r) || r.avg_logprob < opts.logprob_threshold) {
                    done[i] = Some(r);
                } else {
                    tried[i].push(r);
                    still.push(i);
                }
            }
            pending = still;
        }
        for i in pending {
            let tried = std::mem::take(&mut tried[i]);
            let last_t = tried.last().map_or(0.0, |r| r.temperature);
            let not_repetitive = tried.iter().any(|r| !repetitive(r));
            let best = tried
                .into_iter()
                .filter(|r| !not_repetitive || !repetitive(r))
                .max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob))
                .expect("at least one temperature");
            done[i] = Some(DecodeResult { temperature: last_t, ..best });
        }
        Ok(done.into_iter().map(|r| r.expect("every window decoded")).collect())
    }

    /// One decoding of each window of `audio` at temperature `t`, window `i` after the prompt of
    /// `starts[i]` and sampling from `rngs[i]`: the candidates of every window (beams, samples)
    /// are the rows of one decoder state, so each step is one pass over the weights for all of
    /// them.
    pub fn decode_batch(
        &mut self,
        audio: &Encoded,
        starts: &[WindowStart],
        t: f32,
        opts: &DecodeOptions,
        rngs: &mut [ChaCha8Rng],
    ) -> Result<Vec<DecodeResult>> {
        let dec = &self.model.decoder;
        let windows = audio.windows();
        let device = audio.audio().device();
        let n_ctx = dec.n_ctx();
        // Each window's initial tokens, a row each; they must be as long to start together.
        let rows: Vec<(Vec<u32>, usize)> = starts.iter().map(|s| self.initial_tokens(&s.prompt, opts)).collect();
        let Some((first, sot_index)) = rows.first().map(|(r, i)| (r.len(), *i)) else {
            candle_core::bail!("no window to decode")
        };
        if rows.len() != windows || rows.iter().any(|(r, _)| r.len() != first) {
            candle_core::bail!(
                "{windows} windows cannot start together from prompts of {:?} tokens",
                starts.iter().map(|s| s.prompt.len()).collect::<Vec<_>>()
            );
        }
        let sample_begin = first;
        self.filter.max_initial_timestamp = (opts.max_initial_timestamp_s / TIMESTAMP_STEP_S).round() as usize;
        self.filter.without_timestamps = opts.without_timestamps;

        let mut state = dec.start_fused(audio, self.memory.as_ref())?;
        let initial: Vec<u32> = rows.into_iter().flat_map(|(r, _)| r).collect();
        let x = Tensor::from_vec(initial, (windows, sample_begin), device)?;
        let h = dec.forward(&x, &mut state)?;
        // (windows, ctx, state) -> logits at the <|startoftranscript|> and the last positions.
        let sot_logits: Vec<Vec<f32>> = dec.logits(&h.i((.., sot_index, ..))?)?.to_vec2()?;
        let first_logits: Vec<Vec<f32>> = dec.logits(&h.i((.., sample_begin - 1, ..))?)?.to_vec2()?;

        let beam = t == 0.0 && opts.beam_size > 1;
        let n = if beam {
            opts.beam_size
        } else if t > 0.0 {
            opts.best_of.max(1)
        } else {
            1
        };
        // Each window's bound on its new tokens.
        let max_len =
            |s: &WindowStart| s.max_new_tokens.or(opts.max_new_tokens).unwrap_or(n_ctx / 2).min(n_ctx - sample_begin);
        let longest = starts.iter().map(max_len).max().unwrap_or(0);

        // Rows of the state: each searching window's live candidates, window after window.
        let mut searches: Vec<Search> = first_logits
            .into_iter()
            .zip(starts)
            .map(|(logits, start)| Search {
                live: vec![Candidate::default()],
                logits: vec![logits],
                max_len: max_len(start),
                ..Default::default()
            })
            .collect();
        if !beam && n > 1 {
            for s in &mut searches {
                s.live = vec![Candidate::default(); n];
                s.logits = vec![s.logits[0].clone(); n];
            }
            let rows: Vec<u32> = (0..windows as u32).flat_map(|w| std::iter::repeat_n(w, n)).collect();
            state.select(&rows)?;
        }
        for step in 0..longest {
            let mut source: Vec<u32> = Vec::new();
            let mut row = 0u32;
            for (s, rng) in searches.iter_mut().zip(rngs.iter_mut()).filter(|(s, _)| !s.ended) {
                let held = s.live.len() as u32;
                let (next, from) = self.search_step(s, t, opts, beam, rng);
                let done = if beam { s.finished.len() >= opts.beam_size } else { next.is_empty() };
                s.live = next;
                s.ended = done || s.live.is_empty() || step + 1 >= s.max_len;
                if !s.ended {
                    source.extend(from.iter().map(|&i| row + i));
                }
                row += held;
            }
            if source.is_empty() {
                break;
            }
            if source.len() != row as usize || source.iter().enumerate().any(|(i, &s)| s as usize != i) {
                state.select(&source)?;
            }
            let live = searches.iter().filter(|s| !s.ended);
            let last: Vec<u32> = live
                .flat_map(|s| s.live.iter().map(|c| *c.tokens.last().expect("live candidates have a token")))
                .collect();
            let x = Tensor::new(last.as_slice(), device)?.unsqueeze(1)?;
            let h = dec.forward(&x, &mut state)?;
            let mut logits = dec.logits(&h.i((.., 0, ..))?)?.to_vec2()?.into_iter();
            for s in searches.iter_mut().filter(|s| !s.ended) {
                s.logits = logits.by_ref().take(s.live.len()).collect();
            }
        }
        Ok(searches
            .into_iter()
            .zip(sot_logits)
            .map(|(s, sot)| self.best(s, beam, opts, t, softmax_at(&sot, self.tok.no_speech as usize)))
            .collect())
    }

    /// One step of one window's search over its rows' logits: the next live candidates and the
    /// row (of this window's) each continues; ended candidates go to `s.finished`.
    fn search_step(
        &mut self,
        s: &mut Search,
        t: f32,
        opts: &DecodeOptions,
        beam: bool,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<Candidate>, Vec<u32>) {
        let mut filtered = std::mem::take(&mut s.logits);
        // A beam's rows on both cores: five passes over 51k logits a row were 1 ms of base's
        // 15 ms steps.
        let filter = &self.filter;
        let rows: Vec<Vec<f32>> =
            s.live.par_iter().zip(filtered.par_iter_mut()).map(|(c, logits)| filter.apply(logits, &c.tokens)).collect();
        let len = rows.len();
        if beam {
            let (next, source, done) = beam_step(&s.live, &rows, opts.beam_size, self.tok.eot);
            // At most beam_size finished candidates, best first (OpenAI's max_candidates).
            let room = opts.beam_size.saturating_sub(s.finished.len());
            s.finished.extend(done.into_iter().take(room));
            (next, source)
        } else {
            let (mut next, mut source) = (Vec::with_capacity(len), Vec::with_capacity(len));
            for (i, c) in s.live.iter().enumerate() {
                let token = if t > 0.0 { sample(rng, &filtered[i], t) } else { argmax(&rows[i]) };
                let lp = rows[i][token as usize];
                let mut c = c.clone();
                c.sum_logprob += lp;
                if token == self.tok.eot {
                    s.finished.push(c);
                } else {
                    c.tokens.push(token);
                    c.logprobs.push(lp);
                    next.push(c);
                    source.push(i as u32);
                }
            }
            (next, source)
        }
    }

    /// The window's result: its best finished candidate (live ones fill in when too few ended).
    fn best(&self, s: Search, beam: bool, opts: &DecodeOptions, t: f32, no_speech_prob: f32) -> DecodeResult {
        let Search { mut live, mut finished, .. } = s;
        if finished.is_empty() || (beam && finished.len() < opts.beam_size) {
            // Not enough ended: the best live candidates fill the rest.
            live.sort_by(|a, b| b.sum_logprob.total_cmp(&a.sum_logprob));
            let room = if beam { opts.beam_size - finished.len().min(opts.beam_size) } else { live.len() };
            finished.extend(live.into_iter().take(room.max(1)));
        }
        // MaximumLikelihoodRanker without a length penalty: mean log-probability per token.
        let score = |c: &Candidate| c.sum_logprob / c.tokens.len().max(1) as f32;
        let best = finished.into_iter().max_by(|a, b| score(a).total_cmp(&score(b))).unwrap_or_default();
        let text = self.tok.decode(&best.tokens);
        DecodeResult {
            avg_logprob: best.sum_logprob / (best.tokens.len() + 1) as f32,
            compression_ratio: compression_ratio(&text),
            looping: has_loop(&text),
            tokens: best.tokens,
            token_logprobs: best.logprobs,
            no_speech_prob,
            temperature: t,
        }
    }
}

/// One window's search in a batch: its live candidates (one state row each) and their logits,
/// the candidates that ended, and whether the window is done.
#[derive(Debug, Default)]
struct Search {
    live: Vec<Candidate>,
    logits: Vec<Vec<f32>>,
    finished: Vec<Candidate>,
    ended: bool,
    /// The window's bound on its new tokens.
    max_len: usize,
}

#[derive(Debug, Clone, Default)]
struct Candidate {
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    sum_logprob: f32,
}

/// One step of beam search over `live` beams with log-probability rows `rows`. Returns the next
/// beams, the live index each continues, and the beams that ended. As OpenAI's
/// `BeamSearchDecoder.update`: candidates are taken best first until `beam_size` continue; the
/// ones that ended before that point are kept, those ranked below it are not.
fn beam_step(
    live: &[Candidate],
    rows: &[Vec<f32>],
    beam_size: usize,
    eot: u32,
) -> (Vec<Candidate>, Vec<u32>, Vec<Candidate>) {
    let mut scored: Vec<(f32, usize, u32)> = Vec::new();
    let tops: Vec<Vec<u32>> = rows.par_iter().map(|lp| top_k(lp, beam_size + 1)).collect();
    for (i, ((c, lp), top)) in live.iter().zip(rows).zip(tops).enumerate() {
        for tok in top {
            scored.push((c.sum_logprob + lp[tok as usize], i, tok));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut next, mut source, mut done) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen: Vec<(usize, u32)> = Vec::new();
    for (score, i, tok) in scored {
        // Identical beams (the first step) would give the same sequence twice.
        let dup = seen.iter().any(|&(j, t)| t == tok && live[j].tokens == live[i].tokens);
        if dup {
            continue;
        }
        seen.push((i, tok));
        let mut c = live[i].clone();
        c.sum_logprob = score;
        if tok == eot {
            done.push(c);
        } else {
            c.logprobs.push(rows[i][tok as usize]);
            c.tokens.push(tok);
            next.push(c);
            source.push(i as u32);
            if next.len() == beam_size {
                break;
            }
        }
    }
    (next, source, done)
}

fn top_k(v: &[f32], k: usize) -> Vec<u32> {
    let mut best: Vec<u32> = Vec::with_capacity(k + 1);
    for (i, &x) in v.iter().enumerate() {
        if x == f32::NEG_INFINITY {
            continue;
        }
        if best.len() < k || x > v[*best.last().expect("non-empty") as usize] {
            let pos = best.partition_point(|&b| v[b as usize] >= x);
            best.insert(pos, i as u32);
            best.truncate(k);
        }
    }
    best
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Most prompt tokens (after `<|startofprev|>`) a decoder of context `n_ctx` is given: the
/// earliest are dropped beyond this (OpenAI keeps the last `n_ctx / 2 - 1`).
pub fn max_prompt_tokens(n_ctx: usize) -> usize {
    n_ctx / 2 - 1
}

/// Whether `text` holds a phrase said four or more times in a row (words compared without case
/// or punctuation), over at least 6 words: the decoder stuck on a phrase. Compression ratio misses
/// a short loop after a long sentence; this does not.
pub fn has_loop(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect())
        .filter(|w: &String| !w.is_empty())
        .collect();
    (1..=12).any(|period| {
        let need = (3 * period).max(6);
        let mut run = 0;
        for i in period..words.len() {
            run = if words[i] == words[i - period] { run + 1 } else { 0 };
            if run >= need {
                return true;
            }
        }
        false
    })
}

/// Bytes of text over bytes of its zlib compression: high for repetition loops.
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(text.as_bytes()).expect("writing to a Vec");
    let compressed = z.finish().expect("writing to a Vec");
    text.len() as f32 / compressed.len() as f32
}

/// A token drawn from softmax(logits / t).
fn sample(rng: &mut ChaCha8Rng, logits: &[f32], t: f32) -> u32 {
    let scaled: Vec<f32> = logits.iter().map(|&x| x / t).collect();
    let lse = log_sum_exp(&scaled);
    let mut u: f32 = rng.random();
    for (i, &x) in scaled.iter().enumerate() {
        let p = (x - lse).exp();
        if u < p {
            return i as u32;
        }
        u -= p;
    }
    argmax(logits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_well() {
        let loop_text = "I am here. ".repeat(30);
        assert!(compression_ratio(&loop_text) > 2.4);
        let said = |times: usize| format!("Our next speaker is {}", vec!["Ailbhe Ni Riordain."; times].join(" "));
        assert!(has_loop(&said(4).replacen('.', ",", 2)), "a name four times in a row");
        assert!(!has_loop(&said(3)), "three times can be speech");
        assert!(!has_loop("no no no no no"), "too short to call a loop");
        assert!(compression_ratio("And so my fellow Americans, ask not what your country can do for you.") < 2.4);
    }

    #[test]
    fn top_k_orders_and_skips_masked() {
        let v = [0.1, f32::NEG_INFINITY, 0.9, 0.5, 0.7];
        assert_eq!(top_k(&v, 3), vec![2, 4, 3]);
    }

    #[test]
    fn beam_step_dedups_identical_beams_and_collects_ends() {
        let live = vec![Candidate::default(), Candidate::default()];
        let row = crate::infer::filters::log_softmax_vec(&[1.0, 3.0, 2.0, 0.0]);
        let (next, source, done) = beam_step(&live, &[row.clone(), row], 2, 3);
        assert_eq!(next.iter().map(|c| c.tokens.clone()).collect::<Vec<_>>(), vec![vec![1], vec![2]]);
        assert_eq!(source, vec![0, 0]);
        assert!(done.is_empty() || done[0].tokens.is_empty());
    }
}
