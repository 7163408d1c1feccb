//! Word timestamps: the decoder's cross-attention over the checkpoint's alignment heads, aligned
//! to the audio frames by dynamic time warping.
//!
//! Follows https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/timing.py
//! (`find_alignment`, `merge_punctuations`, `add_word_timestamps`): re-run the decoder once over the
//! window's text with no timestamps, take the alignment heads' attention over the window's frames,
//! normalise it per frame across tokens, median-filter it along time, average the heads, and find
//! the cheapest monotonic path of tokens through frames. A word starts at the frame where the path
//! reaches its first token.

use candle_core::Tensor;

use crate::model::{Encoded, Whisper, WhisperTokenizer};
use crate::preprocess::median_filter;
use crate::time::{Span, Ts};

type Result<T> = candle_core::Result<T>;

/// Attention frames per second (the encoder halves the 100 Hz mel frame rate).
const FRAMES_PER_S: f64 = 50.0;
/// Width of the median filter over attention frames.
const MEDIAN_WIDTH: usize = 7;
/// Punctuation joined to the following word.
const PREPEND_PUNCTUATION: &str = "\"'“¿([{-";
/// Punctuation joined to the preceding word.
const APPEND_PUNCTUATION: &str = "\"'.。,，!！?？:：”)]}、";
const SENTENCE_END: &str = ".。!！?？";

/// One word and when it was spoken.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    /// The word as decoded, with its leading space.
    pub text: String,
    pub tokens: Vec<u32>,
    pub span: Span,
    /// Mean probability of its tokens.
    pub probability: f32,
}

/// A model's word aligner: its alignment heads over its decoder.
pub struct Aligner<'a> {
    pub model: &'a Whisper,
    pub tok: &'a WhisperTokenizer,
    /// `[layer, head]` pairs from the checkpoint's config.
    pub heads: &'a [[usize; 2]],
    /// The window's fusion memory, as it was decoded with.
    pub memory: Option<&'a Tensor>,
}

impl Aligner<'_> {
    /// Times the words of `text_tokens` (text only, no timestamps) decoded from the window
    /// `audio` (one window), whose first `num_frames` mel frames hold audio. Times are
    /// relative to the window's start. `text_probs` holds the probability the decoder gave each
    /// text token when it chose it (a word's probability is their mean, as whisper.cpp's; the
    /// alignment pass does not score them again: that product with the token embedding was a
    /// quarter of its time). `split_on_spaces` is false for languages written without spaces.
    pub fn words(
        &self,
        audio: &Encoded,
        sot_sequence: &[u32],
        text_tokens: &[u32],
        text_probs: &[f32],
        num_frames: usize,
        split_on_spaces: bool,
    ) -> Result<Vec<WordTiming>> {
        assert_eq!(text_tokens.len(), text_probs.len(), "a probability per text token");
        let (model, tok, heads) = (self.model, self.tok, self.heads);
        if text_tokens.is_empty() || heads.is_empty() {
            return Ok(Vec::new());
        }
        let dec = &model.decoder;
        let mut tokens = sot_sequence.to_vec();
        tokens.push(tok.no_timestamps);
        tokens.extend_from_slice(text_tokens);
        tokens.push(tok.eot);
        if tokens.len() > dec.n_ctx() {
            return Ok(Vec::new());
        }
        let mut state = dec.start_fused(audio, self.memory)?;
        let x = Tensor::new(tokens.as_slice(), audio.audio().device())?.unsqueeze(0)?;
        let scores = dec.alignment_scores(&x, &mut state, heads)?;
        let first = sot_sequence.len();

        // (heads, tokens, frames): softmax over the frames that hold audio.
        let frames = (num_frames / 2).clamp(1, scores.dim(2)?);
        let w = candle_nn::ops::softmax_last_dim(&scores.narrow(2, 0, frames)?.contiguous()?)?;
        let w: Vec<Vec<Vec<f32>>> = w.to_vec3()?;
        let matrix = attention_matrix(&w);
        // Rows that predict the text tokens and <|endoftext|>.
        let rows = &matrix[first..tokens.len() - 1];
        let path = dtw(rows, frames);

        let (words, word_tokens) = split_words(tok, text_tokens, split_on_spaces);
        // Frame where the path first reaches each token.
        let mut token_frame = vec![0usize; rows.len()];
        let mut last_row = usize::MAX;
        for &(r, f) in &path {
            if r != last_row {
                token_frame[r] = f;
                last_row = r;
            }
        }
        let mut out = Vec::with_capacity(words.len());
        let mut at = 0;
        for (text, toks) in words.into_iter().zip(word_tokens) {
            let n = toks.len();
            let start = token_frame[at];
            let end = token_frame[(at + n).min(rows.len() - 1)];
            let probability = text_probs[at..at + n].iter().sum::<f32>() / n as f32;
            out.push(WordTiming { text, tokens: toks, span: Span::new(frame_ts(start), frame_ts(end)), probability });
            at += n;
        }
        Ok(merge_punctuation(out))
    }
}

fn frame_ts(frame: usize) -> Ts {
    Ts::from_secs_f64(frame as f64 / FRAMES_PER_S)
}

/// Heads' weights (head, token, frame) normalised per frame across tokens, median-filtered along
/// frames, averaged over heads: (token, frame).
fn attention_matrix(w: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let (n_tok, n_frames) = (w[0].len(), w[0][0].len());
    let mut sum = vec![vec![0f32; n_frames]; n_tok];
    for head in w {
        // Per frame, across tokens, a row at a time.
        let (mut mean, mut var) = (vec![0f32; n_frames], vec![0f32; n_frames]);
        for r in head {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= n_tok as f32);
        for r in head {
            var.iter_mut().zip(r).zip(&mean).for_each(|((s, v), m)| *s += (v - m) * (v - m));
        }
        let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v / n_tok as f32).sqrt().max(1e-10)).collect();
        let mut norm = vec![0f32; n_frames];
        for (r, s) in head.iter().zip(sum.iter_mut()) {
            for f in 0..n_frames {
                norm[f] = (r[f] - mean[f]) * inv_std[f];
            }
            for (s, v) in s.iter_mut().zip(median_filter(&norm, MEDIAN_WIDTH)) {
                *s += v;
            }
        }
    }
    let heads = w.len() as f32;
    sum.iter_mut().for_each(|r| r.iter_mut().for_each(|v| *v /= heads));
    sum
}

/// The cheapest monotonic path through `-matrix` from (0, 0) to the last row and frame, as
/// (row, frame) pairs in order.
fn dtw(matrix: &[Vec<f32>], n_frames: usize) -> Vec<(usize, usize)> {
    let n = matrix.len();
    let m = n_frames;
    let idx = |i: usize, j: usize| i * (m + 1) + j;
    let mut cost = vec![f32::INFINITY; (n + 1) * (m + 1)];
    let mut trace = vec![0u8; (n + 1) * (m + 1)];
    cost[0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let (c0, c1, c2) = (cost[idx(i - 1, j - 1)], cost[idx(i - 1, j)], cost[idx(i, j - 1)]);
            // The least of the three, ties to the diagonal. (OpenAI's `dtw_cpu` falls through to
            // the horizontal step on a tie even when it costs more; real attention seldom ties.)
            let (c, t) = if c0 <= c1 && c0 <= c2 {
                (c0, 0)
            } else if c1 <= c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            cost[idx(i, j)] = -matrix[i - 1][j - 1] + c;
            trace[idx(i, j)] = t;
        }
    }
    let (mut i, mut j) = (n, m);
    let mut path = Vec::with_capacity(n + m);
    while i > 0 || j > 0 {
        path.push((i.saturating_sub(1), j.saturating_sub(1)));
        let t = if i == 0 {
            2
        } else if j == 0 {
            1
        } else {
            trace[idx(i, j)]
        };
        match t {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// Splits text tokens into words: pieces that decode to whole characters, joined into words at
/// spaces (or one word a piece for languages without spaces). Returns the
/// words' text and their tokens.
fn split_words(tok: &WhisperTokenizer, tokens: &[u32], split_on_spaces: bool) -> (Vec<String>, Vec<Vec<u32>>) {
    let mut pieces: Vec<(String, Vec<u32>)> = Vec::new();
    let mut current = Vec::new();
    for &t in tokens {
        current.push(t);
        let text = tok.decode(&current);
        if !text.contains('\u{fffd}') {
            pieces.push((text, std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        pieces.push((tok.decode(&current), current));
    }
    if !split_on_spaces {
        return pieces.into_iter().unzip();
    }
    let mut words: Vec<String> = Vec::new();
    let mut word_tokens: Vec<Vec<u32>> = Vec::new();
    for (text, toks) in pieces {
        // A piece opens a word after a space; punctuation glued to a word ("4,400", "end.")
        // stays in it, and closing punctuation is merged back later anyway.
        if text.starts_with(' ') || words.is_empty() {
            words.push(text);
            word_tokens.push(toks);
        } else {
            words.last_mut().expect("non-empty").push_str(&text);
            word_tokens.last_mut().expect("non-empty").extend(toks);
        }
    }
    (words, word_tokens)
}

/// Joins opening punctuation to the next word and closing punctuation to the previous one.
fn merge_punctuation(words: Vec<WordTiming>) -> Vec<WordTiming> {
    let is_only = |w: &WordTiming, set: &str| {
        let t = w.text.trim();
        !t.is_empty() && t.chars().all(|c| set.contains(c))
    };
    // Closing punctuation onto the previous word.
    let mut out: Vec<WordTiming> = Vec::with_capacity(words.len());
    for w in words {
        match out.last_mut() {
            Some(prev) if !w.text.starts_with(' ') && is_only(&w, APPEND_PUNCTUATION) => {
                prev.text.push_str(&w.text);
                prev.tokens.extend(w.tokens);
            }
            _ => out.push(w),
        }
    }
    // Opening punctuation onto the next word.
    let mut merged: Vec<WordTiming> = Vec::with_capacity(out.len());
    let mut carry: Option<WordTiming> = None;
    for mut w in out {
        if let Some(c) = carry.take() {
            w.text = format!("{}{}", c.text, w.text.trim_start());
            let mut toks = c.tokens;
            toks.extend(w.tokens);
            w.tokens = toks;
        }
        if is_only(&w, PREPEND_PUNCTUATION) && w.text.trim().len() < 3 {
            carry = Some(w);
        } else {
            merged.push(w);
        }
    }
    if let Some(c) = carry {
        merged.push(c);
    }
    merged
}

/// OpenAI's clean-up of DTW times: a word is no longer than twice the median word (itself at
/// most 0.7 s) at sentence ends.
pub fn limit_long_words(words: &mut [WordTiming]) -> (Ts, Ts) {
    let mut durations: Vec<i64> = words.iter().map(|w| w.span.duration().ms()).filter(|&d| d > 0).collect::<Vec<_>>();
    durations.sort_unstable();
    let median = durations.get(durations.len() / 2).copied().unwrap_or(0).min(700);
    let max = Ts(median * 2);
    if median > 0 {
        for i in 1..words.len() {
            if words[i].span.duration() > max {
                if words[i].text.trim().chars().last().is_some_and(|c| SENTENCE_END.contains(c)) {
                    words[i].span.end = words[i].span.start + max;
                } else if words[i - 1].text.trim().chars().last().is_some_and(|c| SENTENCE_END.contains(c)) {
                    words[i].span.start = words[i].span.end - max;
                }
            }
        }
    }
    (Ts(median), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_follows_the_diagonal_of_a_clear_alignment() {
        // Token 0 attends to frames 0-1, token 1 to frames 2-5 (and away from 0-1).
        let m = vec![vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0], vec![-0.5, -0.5, 1.0, 1.0, 1.0, 1.0]];
        let path = dtw(&m, 6);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(1, 5)));
        let first_of_1 = path.iter().find(|(r, _)| *r == 1).unwrap().1;
        assert_eq!(first_of_1, 2);
    }

    fn w(text: &str, start: i64, end: i64) -> WordTiming {
        WordTiming { text: text.into(), tokens: vec![0], span: Span::new(Ts(start), Ts(end)), probability: 1.0 }
    }

    #[test]
    fn punctuation_joins_its_word() {
        let merged =
            merge_punctuation(vec![w(" \"", 0, 0), w("Hello", 0, 100), w(",", 100, 100), w(" world", 100, 300)]);
        let texts: Vec<&str> = merged.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, vec![" \"Hello,", " world"]);
    }

    #[test]
    fn long_words_at_sentence_ends_are_cut() {
        let mut words = vec![w(" a", 0, 300), w(" b.", 300, 5000), w(" c", 5000, 5300), w(" d", 5300, 5600)];
        let (median, max) = limit_long_words(&mut words);
        assert_eq!(median, Ts(300));
        assert_eq!(words[1].span, Span::new(Ts(300), Ts(300) + max));
    }
}
