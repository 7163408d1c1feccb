//! What the decoder is told besides the audio: the names and terms it should expect. Sources:
//! `--context FILE` (a glossary, a list of names, or a script), the text on screen near the
//! window (`visual`), and the previous text. They become Whisper's prompt
//! (`<|startofprev|>` tokens): context terms first, nearest and rarest chosen first within
//! `[context] max_tokens`, then as much previous text as the rest of the prompt holds.

use std::collections::VecDeque;
use std::path::Path;

use candle_core::Tensor;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::WhisperTokenizer;
use crate::time::{Span, Ts};

/// `[context]` in the pipeline TOML.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Most prompt tokens spent on context terms; previous text gets the rest of Whisper's 223.
    pub max_tokens: usize,
    /// On-screen text counts for a window from this long before it starts.
    pub screen_lookback_s: f64,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self { max_tokens: 120, screen_lookback_s: 20.0 }
    }
}

/// A glossary line of at most this many words is one term; longer lines are prose, and only
/// their rare words become terms.
const MAX_TERM_WORDS: usize = 6;

/// On-screen lines of common words (titles like "Summary" or "Case study") tell the decoder
/// nothing: a line is kept when its words average at least this many tokens.
const SCREEN_MIN_RARITY: f32 = 1.5;

/// Most pictures in one window's fusion memory.
const MAX_PICTURES: usize = 4;

/// A word whose BPE encoding (with its leading space) has at least this many tokens is rare:
/// common English words are one or two tokens.
const RARE_TOKENS: usize = 3;

#[derive(Clone)]
pub struct Context {
    cfg: ContextConfig,
    /// Terms from `--context`, in file order, with their rarity (tokens per word).
    glossary: Vec<(String, f32)>,
    /// What was on screen from each time on, oldest first.
    screen: VecDeque<(Ts, Vec<String>)>,
    /// The image encoder's tokens of each picture from its time on, oldest first.
    pictures: VecDeque<(Ts, Tensor)>,
}

impl Context {
    pub fn new(cfg: ContextConfig) -> Self {
        Self { cfg, glossary: Vec::new(), screen: VecDeque::new(), pictures: VecDeque::new() }
    }

    /// Adds the terms of a context file: short lines are terms; long lines (a script) give their
    /// rare and capitalised words.
    pub fn add_file(&mut self, path: &Path, tok: &WhisperTokenizer) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::config(path, format!("cannot read context file: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| Error::config(path, "context file is not UTF-8 text"))?;
        self.add_text(&text, tok);
        Ok(())
    }

    /// Adds the terms of a context file's text (see [`add_file`](Self::add_file)).
    pub fn add_text(&mut self, text: &str, tok: &WhisperTokenizer) {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() <= MAX_TERM_WORDS {
                self.add_term(line.trim_end_matches([',', ';', '.']).to_string(), tok);
                continue;
            }
            for (i, w) in words.iter().enumerate() {
                let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '\'');
                let after_stop = i == 0 || words[i - 1].ends_with(['.', '?', '!']);
                let capitalised = !after_stop && w.chars().next().is_some_and(char::is_uppercase);
                if !w.is_empty() && (capitalised || token_count(tok, w) >= RARE_TOKENS) {
                    self.add_term(w.to_string(), tok);
                }
            }
        }
    }

    fn add_term(&mut self, term: String, tok: &WhisperTokenizer) {
        if !self.glossary.iter().any(|(t, _)| t.eq_ignore_ascii_case(&term)) {
            let r = rarity(tok, &term);
            self.glossary.push((term, r));
        }
    }

    /// The lines on screen from `at` on.
    pub fn push_screen(&mut self, at: Ts, lines: Vec<String>) {
        self.screen.push_back((at, lines));
    }

    pub fn push_picture(&mut self, at: Ts, tokens: Tensor) {
        self.pictures.push_back((at, tokens));
    }

    /// Forgets screen text and pictures too old to be near a window starting at `t` or later.
    pub fn forget_before(&mut self, t: Ts) {
        let t = t - Ts::from_secs_f64(self.cfg.screen_lookback_s);
        while self.screen.len() > 1 && self.screen[1].0 < t {
            self.screen.pop_front();
        }
        while self.pictures.len() > 1 && self.pictures[1].0 < t {
            self.pictures.pop_front();
        }
    }

    /// The tokens of the pictures shown during `window` or up to `screen_lookback_s` before it,
    /// the latest `MAX_PICTURES`, in time order: (pictures * tokens, dim). `None` without any.
    pub fn pictures(&self, window: Span) -> candle_core::Result<Option<Tensor>> {
        let lookback = Ts::from_secs_f64(self.cfg.screen_lookback_s);
        let shown: Vec<&Tensor> = self
            .pictures
            .iter()
            .enumerate()
            .filter(|(i, (from, _))| {
                let to = self.pictures.get(i + 1).map_or(Ts(i64::MAX), |n| n.0);
                near(*from, to, window, lookback)
            })
            .map(|(_, (_, t))| t)
            .collect();
        let latest = &shown[shown.len().saturating_sub(MAX_PICTURES)..];
        if latest.is_empty() {
            return Ok(None);
        }
        Tensor::cat(latest, 0).map(Some)
    }

    /// Whether there is anything to tell the decoder.
    pub fn is_empty(&self) -> bool {
        self.glossary.is_empty() && self.screen.iter().all(|(_, l)| l.is_empty())
    }

    /// Terms for `window`, most wanted first: on-screen text by distance from the window (text on
    /// screen during it first), then the glossary; rarer first among equals.
    pub fn terms(&self, window: Span, tok: &WhisperTokenizer) -> Vec<String> {
        let lookback = Ts::from_secs_f64(self.cfg.screen_lookback_s);
        let mut ranked: Vec<(i64, f32, String)> = Vec::new();
        for (i, (from, lines)) in self.screen.iter().enumerate() {
            let to = self.screen.get(i + 1).map_or(Ts(i64::MAX), |n| n.0);
            if !near(*from, to, window, lookback) {
                continue;
            }
            let distance = (window.start - to).0.max(0);
            ranked.extend(
                lines
                    .iter()
                    .map(|l| (distance, -rarity(tok, l), l.clone()))
                    .filter(|(_, r, _)| -r >= SCREEN_MIN_RARITY),
            );
        }
        ranked.extend(self.glossary.iter().map(|(t, r)| (i64::MAX, -r, t.clone())));
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut out: Vec<String> = Vec::new();
        for (_, _, t) in ranked {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&t)) {
                out.push(t);
            }
        }
        out
    }

    /// Prompt tokens for `window`: the chosen terms as one line of text ("A, B, C."), within
    /// `max_tokens`. Empty when there is no context.
    pub fn prompt(&self, window: Span, tok: &WhisperTokenizer) -> Vec<u32> {
        let mut chosen: Vec<String> = Vec::new();
        let mut len = 0;
        for term in self.terms(window, tok) {
            let n = token_count(tok, &term) + 1;
            if len + n > self.cfg.max_tokens {
                continue;
            }
            len += n;
            chosen.push(term);
        }
        if chosen.is_empty() {
            return Vec::new();
        }
        tok.encode(&format!(" {}.", chosen.join(", ")))
    }
}

/// Whether something shown from `from` to `to` is on screen during `window` or up to `lookback`
/// before it.
fn near(from: Ts, to: Ts, window: Span, lookback: Ts) -> bool {
    from <= window.end && to >= window.start - lookback
}

fn token_count(tok: &WhisperTokenizer, text: &str) -> usize {
    tok.encode(&format!(" {text}")).len()
}

/// Tokens per word: names and technical terms split into many pieces, common words do not.
fn rarity(tok: &WhisperTokenizer, term: &str) -> f32 {
    let words = term.split_whitespace().count().max(1);
    token_count(tok, term) as f32 / words as f32
}
