//! The model stage: mel frames in, segments out. Cuts 30 s windows, runs encoder and decoder, and
//! seeks to the end of the last complete segment so words at a window's edge are decoded again in
//! the next window rather than lost (OpenAI's `transcribe.py`).

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Tensor;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::infer::align::{limit_long_words, Aligner};
use crate::infer::decode::{max_prompt_tokens, DecodeOptions, DecodeResult, WindowDecoder, TIMESTAMP_STEP_S};
use crate::infer::tokenizer::WhisperTokenizer;
use crate::model::{LoadedModel, Whisper};
use crate::pipeline::Stage;
use crate::preprocess::mel::{normalize_window, WINDOW_FRAMES};
use crate::preprocess::vad::{activity, regions as vad_regions, VadConfig};
use crate::preprocess::Features;
use crate::segment::{Segment, Transcript, Word};
use crate::time::{Span, Ts};

/// Milliseconds per mel frame.
const FRAME_MS: i64 = 10;
/// Mel frames per timestamp token (the encoder halves the frame rate).
const FRAMES_PER_TOKEN: usize = 2;

/// Media time of absolute mel frame `frame`.
fn offset_of(frame: usize) -> Ts {
    Ts(frame as i64 * FRAME_MS)
}

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
    /// Voice activity: windows start at speech, text over non-speech is dropped, word onsets
    /// snap to speech.
    pub vad: VadConfig,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            decode: DecodeOptions::default(),
            detect_language: true,
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            silence_log_mel: -5.0,
            vad: VadConfig::default(),
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
    /// End of the last segment with words (OpenAI's `last_speech_timestamp`).
    last_speech: Ts,
    loops: LoopGuard,
    /// The window at `seek` was moved forward to where speech starts.
    seeked_to_speech: bool,
    /// Terms to expect: `--context`, on-screen text.
    context: Context,
    /// On-screen text is known up to here; a window waits until it is known to the window's
    /// end, so output does not depend on thread timing. `Ts::MAX` without a screen stage.
    screen_until: Ts,
}

impl TranscribeStage {
    /// `screen`: an on-screen-text stage feeds this one ([`Features::Screen`], then
    /// [`Features::ScreenEnd`]).
    pub fn new(
        model: Arc<LoadedModel>,
        tok: Arc<WhisperTokenizer>,
        opts: TranscribeOptions,
        input: PathBuf,
        context: Context,
        screen: bool,
    ) -> Self {
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
            last_speech: Ts::ZERO,
            loops: LoopGuard::default(),
            seeked_to_speech: false,
            context,
            screen_until: if screen { Ts::ZERO } else { Ts::MAX },
        }
    }

    pub fn language(&self) -> Option<&DetectedLanguage> {
        self.language.as_ref()
    }

    fn total_frames(&self) -> usize {
        self.base + self.frames.len() / self.n_mels
    }

    fn err(&self, e: candle_core::Error) -> Error {
        Error::Inference { path: self.input.clone(), at: offset_of(self.seek), source: e }
    }

    /// The fusion memory for `window` (`Fusion::memory`): the pictures shown near it and its
    /// context terms as token embeddings. `None` without an adapter.
    fn memory(&self, window: Span) -> candle_core::Result<Option<Tensor>> {
        window_memory(&self.model.whisper, &self.context, window, &self.tok)
    }

    /// Decodes the window at `seek`, holding `size` frames of content, and moves `seek` on.
    fn run_window(&mut self, size: usize, out: &mut Vec<Transcript>) -> Result<()> {
        let from = (self.seek - self.base) * self.n_mels;
        let content = &self.frames[from..from + size * self.n_mels];
        if content.iter().all(|&x| x < self.opts.silence_log_mel) {
            tracing::debug!(at = %offset_of(self.seek), "silent window skipped");
            self.seek += size;
            return Ok(());
        }
        let seeked = std::mem::take(&mut self.seeked_to_speech);
        let act = activity(content, self.n_mels, &self.opts.vad);
        // Start at speech; without any, at other sound (speech under music may hide there).
        // Only quiet and held tones are skipped undecoded.
        let first = act.speech.iter().position(|&f| f).or_else(|| act.sound.iter().position(|&f| f));
        match first {
            None => {
                tracing::debug!(at = %offset_of(self.seek), "window without speech skipped");
                self.seek += size;
                return Ok(());
            }
            // Start the window there: Whisper times and hears better so.
            Some(first) if first > 0 => {
                self.seek += first;
                self.seeked_to_speech = true;
                return Ok(());
            }
            Some(_) => {}
        }
        let speech = vad_regions(&act.speech, offset_of(self.seek));
        let sound = vad_regions(&act.sound, offset_of(self.seek));
        let mel = normalize_window(content, self.n_mels);
        let device = self.model.whisper.device().clone();
        let mel = Tensor::from_vec(mel, (1, self.n_mels, WINDOW_FRAMES), &device).map_err(|e| self.err(e))?;
        let model = Arc::clone(&self.model);
        // The last window's audio keys and values are done with: not beside this encoder run.
        model.whisper.decoder.forget_audio();
        let t0 = std::time::Instant::now();
        let audio = model.whisper.encoder.forward(&mel).map_err(|e| self.err(e))?;
        let encode_ms = t0.elapsed().as_millis();
        let window = Span::new(offset_of(self.seek), offset_of(self.seek + WINDOW_FRAMES));
        let memory = self.memory(window).map_err(|e| self.err(e))?;
        let mut decoder =
            WindowDecoder::new(&model.whisper, &self.tok, &model.config, self.opts.decode.seed ^ self.windows as u64)
                .with_memory(memory.clone());
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

        let mut prompt = self.context.prompt(window, &self.tok);
        if self.opts.condition_on_previous_text {
            let previous = &self.all_tokens[self.prompt_reset_since..];
            let room = max_prompt_tokens(model.whisper.decoder.n_ctx()).saturating_sub(prompt.len());
            prompt.extend_from_slice(&previous[previous.len().saturating_sub(room)..]);
        }
        if !prompt.is_empty() {
            tracing::trace!(prompt = %self.tok.decode(&prompt), "prompt");
        }
        let t0 = std::time::Instant::now();
        let r = decoder.decode_with_fallback(&audio, &prompt, &self.opts.decode).map_err(|e| self.err(e))?;
        let decode_ms = t0.elapsed().as_millis();
        let offset = offset_of(self.seek);
        let is_silence = r.no_speech_prob > self.opts.decode.no_speech_threshold
            && r.avg_logprob < self.opts.decode.logprob_threshold;
        if is_silence {
            self.seek += size;
            return Ok(());
        }
        let (segments, mut advance) = split_segments(&r, self.tok.timestamp_begin, size, offset);
        let mut segments: Vec<Segment> = segments
            .into_iter()
            .filter_map(|seg| {
                let text = self.tok.decode(&seg.tokens);
                (!text.trim().is_empty() && seg.span.end > seg.span.start).then_some(Segment { text, ..seg })
            })
            .collect();
        let sot_sequence = decoder.sot_sequence(&self.opts.decode);
        let prev_speech = self.last_speech;
        let t0 = std::time::Instant::now();
        self.add_words(&mut segments, &audio, memory.as_ref(), &sot_sequence, size, offset)?;
        tracing::debug!(
            at = %offset,
            encode_ms,
            decode_ms,
            align_ms = t0.elapsed().as_millis() as u64,
            tokens = r.tokens.len(),
            temperature = r.temperature,
            "window"
        );
        // The decoder can stop early (a prompt of terms makes it likelier): when it claims the
        // whole window but speech goes on well after its last segment, start the next window
        // at that segment's end instead of losing the rest.
        if advance == size {
            if let Some(end) = segments.iter().filter_map(|s| s.words.last()).map(|w| w.span.end).max() {
                let undecoded = |r: &Span| (r.end - r.start.max(end)).ms();
                if end > offset && speech.iter().any(|r| undecoded(r) >= 1000) {
                    tracing::debug!(at = %end, "decoder stopped before the speech did: decoding on from there");
                    advance = ((end - offset).ms() / FRAME_MS) as usize;
                }
            }
        }
        let segments = self.keep_spoken(segments, &speech, &sound, offset, seeked, prev_speech);
        for s in &segments {
            self.all_tokens.extend_from_slice(&s.tokens);
        }
        out.extend(segments.into_iter().map(Transcript::Segment));
        if r.temperature > self.opts.prompt_reset_on_temperature {
            self.prompt_reset_since = self.all_tokens.len();
        }
        self.seek += advance.max(1);
        Ok(())
    }

    /// Times the words of a window's `segments` (`infer::align`) and trims the segments to them,
    /// as OpenAI's `add_word_timestamps` does.
    fn add_words(
        &mut self,
        segments: &mut [Segment],
        audio: &Tensor,
        memory: Option<&Tensor>,
        sot_sequence: &[u32],
        size: usize,
        offset: Ts,
    ) -> Result<()> {
        let eot = self.tok.eot;
        let text_tokens: Vec<u32> =
            segments.iter().flat_map(|s| s.tokens.iter().copied().filter(|&t| t < eot)).collect();
        let language = self
            .opts
            .decode
            .language
            .and_then(|id| self.tok.languages.iter().find(|(l, _)| *l == id).map(|(_, code)| code.as_str()));
        let split_on_spaces = !matches!(language, Some("zh" | "ja" | "th" | "lo" | "my" | "yue"));
        let model = Arc::clone(&self.model);
        let aligner = Aligner { model: &model.whisper, tok: &self.tok, heads: &model.config.alignment_heads, memory };
        let mut timings =
            aligner.words(audio, sot_sequence, &text_tokens, size, split_on_spaces).map_err(|e| self.err(e))?;
        let (median, max) = limit_long_words(&mut timings);
        let mut timings = timings.into_iter();
        for seg in segments.iter_mut() {
            let n = seg.tokens.iter().filter(|&&t| t < eot).count();
            let mut saved = 0;
            while saved < n {
                let Some(w) = timings.next() else { break };
                saved += w.tokens.len();
                let text = w.text.trim();
                if !text.is_empty() {
                    let span = Span::new(offset + w.span.start, offset + w.span.end);
                    seg.words.push(Word { span, text: text.to_string(), probability: w.probability });
                }
            }
            fit_segment_to_words(seg, self.last_speech, median, max);
            if !seg.words.is_empty() {
                self.last_speech = seg.span.end;
            }
        }
        Ok(())
    }

    /// Drops segments over non-speech and repetition loops; moves word onsets that DTW put in a
    /// pause forward to where speech resumes.
    fn keep_spoken(
        &mut self,
        segments: Vec<Segment>,
        speech: &[Span],
        sound: &[Span],
        window_start: Ts,
        seeked: bool,
        prev_speech: Ts,
    ) -> Vec<Segment> {
        let pad = Ts(self.opts.vad.pad_ms);
        let mut kept = Vec::with_capacity(segments.len());
        let mut prev_end = prev_speech;
        for mut seg in segments {
            let overlap = |regions: &[Span]| -> i64 {
                regions.iter().map(|r| (r.end.min(seg.span.end) - r.start.max(seg.span.start)).ms().max(0)).sum()
            };
            let (in_speech, in_sound) = (overlap(speech), overlap(sound));
            if self.opts.vad.enabled && in_speech == 0 {
                // Over silence or held tones: not speech, whatever Whisper heard. Over other
                // sound (speech under music can be no louder than the music) Whisper decides.
                if in_sound == 0 {
                    tracing::debug!(at = %seg.span.start, text = %seg.text, "segment over non-speech dropped");
                    continue;
                }
            } else if self.opts.vad.enabled {
                // Where speech resumes: a region's start less its padding (a region at the
                // window's start keeps its start unless the window was moved there to meet it:
                // speech may have begun before).
                let onsets: Vec<Ts> = speech
                    .iter()
                    .map(|r| if r.start == window_start && !seeked { r.start } else { r.start + pad })
                    .collect();
                snap_to_speech(&mut seg.words, speech, &onsets, pad, &mut prev_end);
                if let (Some(first), Some(last)) = (seg.words.first(), seg.words.last()) {
                    seg.span = Span::new(first.span.start, last.span.end.max(first.span.start + Ts(1)));
                }
            }
            if self.loops.is_loop(&seg.text) {
                tracing::debug!(at = %seg.span.start, text = %seg.text, "repetition loop dropped");
                continue;
            }
            kept.push(seg);
        }
        kept
    }

    fn drop_consumed(&mut self) {
        let consumed = self.seek.saturating_sub(self.base).min(self.frames.len() / self.n_mels);
        self.frames.drain(..consumed * self.n_mels);
        self.base += consumed;
        self.context.forget_before(offset_of(self.seek));
    }
}

/// Catches Whisper's repetition loops across windows: a segment whose text the two before it
/// already said word for word. A person saying one thing twice stays; three times in a row, one
/// window after another, is the decoder stuck (the compression-ratio fallback catches loops
/// inside a window).
#[derive(Debug, Default)]
struct LoopGuard {
    recent: std::collections::VecDeque<String>,
}

impl LoopGuard {
    fn is_loop(&mut self, text: &str) -> bool {
        let text: String = text.trim().to_lowercase();
        let looping = self.recent.len() == 2 && self.recent.iter().all(|t| *t == text);
        self.recent.push_back(text);
        if self.recent.len() > 2 {
            self.recent.pop_front();
        }
        looping
    }
}

/// Word times from attention, corrected by voice activity. DTW hands a pause to a word next to
/// it: a word that starts in a pause starts where speech resumes (`onsets`, one a region of
/// `speech`); the first word after a pause starts at the pause's end if DTW put it up to half a
/// second late; a word that ends in a pause ends where speech stopped.
/// The fusion memory of `window` for `model`'s adapter: the pictures shown near the window and
/// its context terms (the prompt's, as Whisper token embeddings). `None` without an adapter or
/// without either. Inference and training collate a window's memory here.
pub fn window_memory(
    model: &Whisper,
    context: &Context,
    window: Span,
    tok: &WhisperTokenizer,
) -> candle_core::Result<Option<Tensor>> {
    let dec = &model.decoder;
    let Some(fusion) = dec.fusion() else { return Ok(None) };
    let terms = context.prompt(window, tok);
    let text = if terms.is_empty() { None } else { Some(dec.embed(&terms, model.device())?) };
    fusion.memory(context.pictures(window)?.as_ref(), text.as_ref())
}

fn snap_to_speech(words: &mut [Word], speech: &[Span], onsets: &[Ts], pad: Ts, prev_end: &mut Ts) {
    for w in words.iter_mut() {
        let in_core = speech.iter().zip(onsets).any(|(r, &o)| o <= w.span.start && w.span.start < r.end - pad);
        if !in_core {
            if let Some(&o) = onsets.iter().find(|&&o| o > w.span.start && o < w.span.end) {
                w.span.start = o.min(w.span.end - Ts(20)).max(w.span.start);
            }
        }
        // The onset of a pause's end the word follows closely, with no earlier word after it.
        if let Some(&o) = onsets.iter().rev().find(|&&o| o <= w.span.start) {
            if w.span.start - o <= Ts(500) && *prev_end <= o {
                w.span.start = o;
            }
        }
        if !speech.iter().any(|r| r.start < w.span.end && w.span.end <= r.end) {
            if let Some(r) = speech.iter().rev().find(|r| r.end < w.span.end && r.end > w.span.start) {
                w.span.end = r.end.max(w.span.start + Ts(20));
            }
        }
        *prev_end = w.span.end;
    }
}

/// OpenAI's clean-up at segment edges: the first word after a pause is no longer than `max`,
/// and the segment's own timestamps win over a first or last word that runs far past them.
fn fit_segment_to_words(seg: &mut Segment, last_speech: Ts, median: Ts, max: Ts) {
    let half_s = Ts(500);
    let Some(first) = seg.words.first().map(|w| w.span) else { return };
    let words = &mut seg.words;
    if median > Ts::ZERO
        && first.end - last_speech > Ts(median.ms() * 4)
        && (first.duration() > max || (words.len() > 1 && words[1].span.end - first.start > Ts(max.ms() * 2)))
    {
        if words.len() > 1 && words[1].span.duration() > max {
            let boundary = (words[1].span.end - max).max(words[1].span.start);
            words[0].span.end = boundary;
            words[1].span.start = boundary;
        }
        words[0].span.start = (words[0].span.end - max).max(Ts::ZERO);
    }
    let first = words[0].span;
    if seg.span.start < first.end && seg.span.start - half_s > first.start {
        words[0].span.start = (first.end - median).min(seg.span.start).max(Ts::ZERO);
    } else {
        seg.span.start = first.start;
    }
    let last = words.len() - 1;
    let lw = words[last].span;
    if seg.span.end > lw.start && seg.span.end + half_s < lw.end {
        words[last].span.end = (lw.start + median).max(seg.span.end);
    } else {
        seg.span.end = lw.end;
    }
    seg.span.end = seg.span.end.max(seg.span.start + Ts(1));
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
        words: Vec::new(),
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
    type In = Features;
    type Out = Transcript;
    const NAME: &'static str = "model";

    fn process(&mut self, item: Features, out: &mut Vec<Transcript>) -> Result<()> {
        match item {
            Features::Mel(chunk) => self.frames.extend_from_slice(&chunk.frames),
            Features::ShotChange(at) => {
                out.push(Transcript::ShotChange(at));
                return Ok(());
            }
            Features::Screen(text) => {
                if let Some(lines) = text.lines {
                    self.context.push_screen(text.at, lines);
                }
                if let Some(picture) = text.picture {
                    self.context.push_picture(text.at, picture);
                }
                self.screen_until = self.screen_until.max(text.at);
            }
            Features::ScreenEnd => self.screen_until = Ts::MAX,
        }
        while self.total_frames() >= self.seek + WINDOW_FRAMES
            && self.screen_until >= offset_of(self.seek + WINDOW_FRAMES)
        {
            self.run_window(WINDOW_FRAMES, out)?;
            self.drop_consumed();
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Transcript>) -> Result<()> {
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
            looping: false,
        }
    }

    const TS: u32 = 1000;

    #[test]
    fn a_third_identical_segment_in_a_row_is_a_loop_and_a_repeat_is_not() {
        let mut g = LoopGuard::default();
        assert!(!g.is_loop(" Thank you."));
        assert!(!g.is_loop(" Thank you."));
        assert!(g.is_loop(" thank you."));
        assert!(g.is_loop(" Thank you."));
        assert!(!g.is_loop(" And then something else."));
        assert!(!g.is_loop(" Thank you."));
    }

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
