//! The model stage: mel frames in, segments out. Cuts 30 s windows, runs encoder and decoder, and
//! seeks to the end of the last complete segment so words at a window's edge are decoded again in
//! the next window rather than lost (OpenAI's `transcribe.py`).

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::infer::decode::{DecodeOptions, DecodeResult, WindowDecoder, TIMESTAMP_STEP_S};
use crate::infer::tokenizer::WhisperTokenizer;
use crate::model::LoadedModel;
use crate::pipeline::Stage;
use crate::preprocess::mel::{normalize_window, WINDOW_FRAMES};
use crate::preprocess::MelChunk;
use crate::segment::Segment;
use crate::time::{Span, Ts};

/// Milliseconds per mel frame.
const FRAME_MS: i64 = 10;
/// Mel frames per timestamp token (the encoder halves the frame rate).
const FRAMES_PER_TOKEN: usize = 2;

/// Transcription settings that are not per-window decoding options.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    pub decode: DecodeOptions,
    /// Detect the language on the first window when the model is multilingual and none is set.
    pub detect_language: bool,
    pub condition_on_previous_text: bool,
    /// A prompt is dropped after a window decoded at a temperature above this.
    pub prompt_reset_on_temperature: f32,
    /// A window whose loudest raw log10 mel value is below this is silence and is not decoded
    /// (-5.0 is about -70 dBFS). Whisper alone often "hears" a word in digital silence.
    pub silence_log_mel: f32,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            decode: DecodeOptions::default(),
            detect_language: true,
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            silence_log_mel: -5.0,
        }
    }
}

/// The language the stage settled on, for the JSON sink and `-v`.
#[derive(Debug, Clone)]
pub struct DetectedLanguage {
    pub code: String,
    pub probability: f32,
}

pub struct TranscribeStage {
    model: Arc<LoadedModel>,
    tok: Arc<WhisperTokenizer>,
    opts: TranscribeOptions,
    input: PathBuf,
    n_mels: usize,
    /// Raw log-mel frames from absolute frame `base` on, frame-major.
    frames: Vec<f32>,
    base: usize,
    /// Absolute frame the next window starts at.
    seek: usize,
    all_tokens: Vec<u32>,
    prompt_reset_since: usize,
    language: Option<DetectedLanguage>,
    windows: usize,
}

impl TranscribeStage {
    pub fn new(model: Arc<LoadedModel>, tok: Arc<WhisperTokenizer>, opts: TranscribeOptions, input: PathBuf) -> Self {
        let n_mels = model.config.dims.n_mels;
        Self {
            model,
            tok,
            opts,
            input,
            n_mels,
            frames: Vec::new(),
            base: 0,
            seek: 0,
            all_tokens: Vec::new(),
            prompt_reset_since: 0,
            language: None,
            windows: 0,
        }
    }

    pub fn language(&self) -> Option<&DetectedLanguage> {
        self.language.as_ref()
    }

    fn total_frames(&self) -> usize {
        self.base + self.frames.len() / self.n_mels
    }

    fn err(&self, e: candle_core::Error) -> Error {
        Error::Inference { path: self.input.clone(), at: Ts(self.seek as i64 * FRAME_MS), source: e }
    }

    /// Decodes the window at `seek`, holding `size` frames of content, and moves `seek` on.
    fn run_window(&mut self, size: usize, out: &mut Vec<Segment>) -> Result<()> {
        let from = (self.seek - self.base) * self.n_mels;
        let content = &self.frames[from..from + size * self.n_mels];
        if content.iter().all(|&x| x < self.opts.silence_log_mel) {
            tracing::debug!(at = %Ts(self.seek as i64 * FRAME_MS), "silent window skipped");
            self.seek += size;
            return Ok(());
        }
        let mel = normalize_window(content, self.n_mels);
        let device = self.model.whisper.device().clone();
        let mel = Tensor::from_vec(mel, (1, self.n_mels, WINDOW_FRAMES), &device).map_err(|e| self.err(e))?;
        let model = Arc::clone(&self.model);
        let t0 = std::time::Instant::now();
        let audio = model.whisper.encoder.forward(&mel).map_err(|e| self.err(e))?;
        let encode_ms = t0.elapsed().as_millis();
        let mut decoder =
            WindowDecoder::new(&model.whisper, &self.tok, &model.config, self.opts.decode.seed ^ self.windows as u64);
        self.windows += 1;

        if self.opts.decode.language.is_none() && model.whisper.dims.is_multilingual() {
            let (lang, p) = decoder.detect_language(&audio).map_err(|e| self.err(e))?;
            let code =
                self.tok.languages.iter().find(|(id, _)| *id == lang).map(|(_, c)| c.clone()).unwrap_or_default();
            tracing::info!(language = %code, probability = p, "detected language");
            self.language = Some(DetectedLanguage { code, probability: p });
            if self.opts.detect_language {
                self.opts.decode.language = Some(lang);
            }
        }

        let prompt: Vec<u32> = if self.opts.condition_on_previous_text {
            self.all_tokens[self.prompt_reset_since..].to_vec()
        } else {
            Vec::new()
        };
        let t0 = std::time::Instant::now();
        let r = decoder.decode_with_fallback(&audio, &prompt, &self.opts.decode).map_err(|e| self.err(e))?;
        tracing::debug!(
            at = %Ts(self.seek as i64 * FRAME_MS),
            encode_ms,
            decode_ms = t0.elapsed().as_millis() as u64,
            tokens = r.tokens.len(),
            temperature = r.temperature,
            "window"
        );
        let offset = Ts(self.seek as i64 * FRAME_MS);
        let is_silence = r.no_speech_prob > self.opts.decode.no_speech_threshold
            && r.avg_logprob < self.opts.decode.logprob_threshold;
        if is_silence {
            self.seek += size;
            return Ok(());
        }
        let (segments, advance) = split_segments(&r, self.tok.timestamp_begin, size, offset);
        let before = out.len();
        for seg in segments {
            let text = self.tok.decode(&seg.tokens);
            if text.trim().is_empty() || seg.span.end <= seg.span.start {
                continue;
            }
            out.push(Segment { text, ..seg });
        }
        for s in &out[before..] {
            self.all_tokens.extend_from_slice(&s.tokens);
        }
        if r.temperature > self.opts.prompt_reset_on_temperature {
            self.prompt_reset_since = self.all_tokens.len();
        }
        self.seek += advance.max(1);
        Ok(())
    }

    fn drop_consumed(&mut self) {
        let consumed = self.seek.saturating_sub(self.base).min(self.frames.len() / self.n_mels);
        self.frames.drain(..consumed * self.n_mels);
        self.base += consumed;
    }
}

/// OpenAI's segment split: consecutive timestamp pairs close segments. Returns the segments
/// (tokens and times, text left empty) and how many frames to seek.
fn split_segments(r: &DecodeResult, ts_begin: u32, size: usize, offset: Ts) -> (Vec<Segment>, usize) {
    let tokens = &r.tokens;
    let is_ts = |t: u32| t >= ts_begin;
    let secs = |t: u32| Ts::from_secs_f64((t - ts_begin) as f64 * TIMESTAMP_STEP_S);
    let seg = |toks: &[u32], lps: &[f32], span: Span| Segment {
        span,
        text: String::new(),
        tokens: toks.to_vec(),
        probabilities: lps.iter().map(|lp| lp.exp()).collect(),
        avg_logprob: r.avg_logprob,
        no_speech_prob: r.no_speech_prob,
        temperature: r.temperature,
        compression_ratio: r.compression_ratio,
    };
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
    let consecutive: Vec<usize> = (1..n).filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1])).collect();
    let mut out = Vec::new();
    if !consecutive.is_empty() {
        let mut slices = consecutive.clone();
        if single_timestamp_ending {
            slices.push(n);
        }
        let mut last = 0;
        for &cur in &slices {
            let part = &tokens[last..cur];
            let span = Span::new(offset + secs(part[0]), offset + secs(part[part.len() - 1]));
            out.push(seg(part, &r.token_logprobs[last..cur], span));
            last = cur;
        }
        let advance = if single_timestamp_ending {
            size
        } else {
            // Seek to the last closed timestamp: what follows is decoded again next window.
            (tokens[last - 1] - ts_begin) as usize * FRAMES_PER_TOKEN
        };
        (out, advance)
    } else {
        let mut duration = Ts(size as i64 * FRAME_MS);
        if let Some(&last_ts) = tokens.iter().rev().find(|&&t| is_ts(t)) {
            if last_ts != ts_begin {
                duration = secs(last_ts);
            }
        }
        if !tokens.is_empty() {
            out.push(seg(tokens, &r.token_logprobs, Span::new(offset, offset + duration)));
        }
        (out, size)
    }
}

impl Stage for TranscribeStage {
    type In = MelChunk;
    type Out = Segment;
    const NAME: &'static str = "model";

    fn process(&mut self, chunk: MelChunk, out: &mut Vec<Segment>) -> Result<()> {
        self.frames.extend_from_slice(&chunk.frames);
        while self.total_frames() >= self.seek + WINDOW_FRAMES {
            self.run_window(WINDOW_FRAMES, out)?;
            self.drop_consumed();
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Segment>) -> Result<()> {
        while self.seek < self.total_frames() {
            let size = (self.total_frames() - self.seek).min(WINDOW_FRAMES);
            self.run_window(size, out)?;
            self.drop_consumed();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tokens: Vec<u32>) -> DecodeResult {
        let n = tokens.len();
        DecodeResult {
            tokens,
            token_logprobs: vec![0.0; n],
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
        }
    }

    const TS: u32 = 1000;

    #[test]
    fn pairs_split_segments_and_seek_to_the_last_closed_timestamp() {
        // <0.00> a b <1.00><1.00> c <2.50><2.50> d  (the last segment is cut off by the window)
        let r = result(vec![TS, 1, 2, TS + 50, TS + 50, 3, TS + 125, TS + 125, 4]);
        let (segs, advance) = split_segments(&r, TS, 3000, Ts(30_000));
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].span, Span::new(Ts(30_000), Ts(31_000)));
        assert_eq!(segs[1].span, Span::new(Ts(31_000), Ts(32_500)));
        assert_eq!(advance, 250); // 2.50 s in frames: "d" is decoded again in the next window
    }

    #[test]
    fn single_timestamp_ending_consumes_the_window() {
        let r = result(vec![TS, 1, TS + 50, TS + 50, 2, TS + 100]);
        let (segs, advance) = split_segments(&r, TS, 1234, Ts::ZERO);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].span, Span::new(Ts(1000), Ts(2000)));
        assert_eq!(advance, 1234);
    }

    #[test]
    fn no_pair_gives_one_segment_to_the_last_timestamp() {
        let r = result(vec![TS, 1, 2, TS + 40]);
        let (segs, advance) = split_segments(&r, TS, 3000, Ts::ZERO);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].span, Span::new(Ts::ZERO, Ts(800)));
        assert_eq!(advance, 3000);
    }
}
