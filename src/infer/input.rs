//! What both model stages keep of one input, and what both do with a window's decoding: the mel
//! frames not yet consumed, the context (on-screen text, terms, pictures), the language, the text
//! so far; segments from a decoding, their words timed, kept where there is speech.

use std::sync::Arc;

use candle_core::Tensor;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::infer::align::limit_long_words;
use crate::infer::decode::{max_prompt_tokens, sot_sequence_for, DecodeResult};
use crate::infer::segments::{fit_segment_to_words, snap_to_speech, split_segments, LoopGuard, Resume};
use crate::infer::transcriber::{AlignRequest, Transcriber};
use crate::infer::{DetectedLanguage, ModelInput, TranscribeOptions};
use crate::model::Encoded;
use crate::preprocess::vad::{activity, regions as vad_regions};
use crate::preprocess::Features;
use crate::segment::{LiveNote, Segment, Transcript, Word};
use crate::time::{Span, Ts};

/// Milliseconds per mel frame.
pub(crate) const FRAME_MS: i64 = 10;

/// Media time of absolute mel frame `frame`.
pub(crate) fn offset_of(frame: usize) -> Ts {
    Ts(frame as i64 * FRAME_MS)
}

/// One input as a model stage sees it.
pub(crate) struct Input {
    pub(crate) model: Arc<dyn Transcriber>,
    pub(crate) opts: TranscribeOptions,
    pub(crate) path: std::path::PathBuf,
    pub(crate) n_mels: usize,
    /// Raw log-mel frames from absolute frame `base` on, frame-major.
    pub(crate) frames: Vec<f32>,
    pub(crate) base: usize,
    /// Terms to expect: `--context`, on-screen text, pictures.
    pub(crate) context: Context,
    /// On-screen text is known up to here; a window waits until it is known to the window's
    /// end, so output does not depend on thread timing. `Ts::MAX` without a screen stage.
    pub(crate) screen_until: Ts,
    pub(crate) language: Option<DetectedLanguage>,
    /// Text tokens of every segment so far, and where the prompt's previous text starts.
    pub(crate) all_tokens: Vec<u32>,
    pub(crate) prompt_reset_since: usize,
    /// End of the last segment with words (OpenAI's `last_speech_timestamp`).
    pub(crate) last_speech: Ts,
    loops: LoopGuard,
    /// Windows (or chunks) decoded.
    pub(crate) windows: usize,
}

/// Free heap above which its pages go back to the OS ([`Input::count_windows`]). The model's
/// own buffers, freed between windows and used again, come to some 30 MB free.
const FREE_HEAP_LIMIT: usize = 64 << 20;
/// Windows between two looks at the free heap (4: 2 minutes of media). The live stage keeps its
/// own beat (every status, 10 s of stream: [`crate::infer::streaming`]).
const TRIM_EVERY_WINDOWS: usize = 4;

/// A window's voice activity: where speech is, and other sound.
pub(crate) struct Activity {
    pub(crate) speech: Vec<Span>,
    pub(crate) sound: Vec<Span>,
}

impl Input {
    /// `screen`: an on-screen-text stage feeds this one.
    pub(crate) fn new(
        model: Arc<dyn Transcriber>,
        opts: TranscribeOptions,
        path: std::path::PathBuf,
        context: Context,
        screen: bool,
    ) -> Self {
        let n_mels = model.dims().n_mels;
        Self {
            model,
            opts,
            path,
            n_mels,
            frames: Vec::new(),
            base: 0,
            context,
            screen_until: if screen { Ts::ZERO } else { Ts::MAX },
            language: None,
            all_tokens: Vec::new(),
            prompt_reset_since: 0,
            last_speech: Ts::ZERO,
            loops: LoopGuard::default(),
            windows: 0,
        }
    }

    /// Takes one item in; shot changes go straight on to `out`.
    pub(crate) fn take(&mut self, item: ModelInput, out: &mut Vec<Transcript>) {
        match item {
            ModelInput::Features(Features::Mel(chunk)) => self.frames.extend_from_slice(&chunk.frames),
            ModelInput::Features(Features::ShotChange(at)) => out.push(Transcript::ShotChange(at)),
            ModelInput::Features(Features::Gap(span)) => out.push(Transcript::Live(LiveNote::Gap(span))),
            ModelInput::Screen(text) => {
                if let Some(lines) = text.lines {
                    self.context.push_screen(text.at, lines);
                }
                if let Some(picture) = text.picture {
                    self.context.push_picture(text.at, picture);
                }
                self.screen_until = self.screen_until.max(text.at);
            }
            ModelInput::ScreenEnd => self.screen_until = Ts::MAX,
        }
    }

    /// Absolute frames received so far.
    pub(crate) fn total_frames(&self) -> usize {
        self.base + self.frames.len() / self.n_mels
    }

    /// The raw log-mel frames `from..to` (absolute), frame-major.
    pub(crate) fn mel(&self, from: usize, to: usize) -> &[f32] {
        &self.frames[(from - self.base) * self.n_mels..(to - self.base) * self.n_mels]
    }

    /// Counts `n` windows (or chunks) about to be decoded; every `TRIM_EVERY_WINDOWS` (2 minutes
    /// of media), hands the heap's free pages back to the OS where more than `FREE_HEAP_LIMIT`
    /// of it is free (each time costs some 30 ms of CPU, the pages faulted in again): with
    /// [`crate::tune_allocator`]'s settings the heap only grows, and a video's frames and
    /// decoders, freed among longer-lived buffers, leave holes that add up over a long input.
    pub(crate) fn count_windows(&mut self, n: usize) {
        let before = self.windows / TRIM_EVERY_WINDOWS;
        self.windows += n;
        if self.windows / TRIM_EVERY_WINDOWS > before {
            crate::release_free_memory_over(FREE_HEAP_LIMIT);
        }
    }

    /// Forgets the frames before `frame` and the context too old for a window from there.
    pub(crate) fn forget_before(&mut self, frame: usize) {
        let consumed = frame.saturating_sub(self.base).min(self.frames.len() / self.n_mels);
        self.frames.drain(..consumed * self.n_mels);
        self.base += consumed;
        self.context.forget_before(offset_of(frame));
    }

    pub(crate) fn err(&self, at: Ts, e: candle_core::Error) -> Error {
        Error::Inference { path: self.path.clone(), at, source: e }
    }

    /// Voice activity of frames `from..from + size`.
    pub(crate) fn activity(&self, from: usize, size: usize) -> Activity {
        let act = activity(self.mel(from, from + size), self.n_mels, &self.opts.vad);
        Activity { speech: vad_regions(&act.speech, offset_of(from)), sound: vad_regions(&act.sound, offset_of(from)) }
    }

    /// The window of 30 s from `start_frame`.
    pub(crate) fn window(start_frame: usize) -> Span {
        Span::new(offset_of(start_frame), offset_of(start_frame + crate::preprocess::mel::WINDOW_FRAMES))
    }

    /// The fusion memory of `window`; `None` without an adapter.
    pub(crate) fn memory(&self, window: Span) -> Result<Option<Tensor>> {
        self.model.memory(&self.context, window).map_err(|e| self.err(window.start, e))
    }

    /// Detects the language on `audio` when the model is multilingual and none is set.
    pub(crate) fn detect_language(&mut self, audio: &Encoded, memory: Option<&Tensor>, at: Ts) -> Result<()> {
        if self.opts.decode.language.is_some() || !self.model.dims().is_multilingual() {
            return Ok(());
        }
        let (lang, p) = self.model.detect_language(audio, memory).map_err(|e| self.err(at, e))?;
        let tok = self.model.tokenizer();
        let code = tok.languages.iter().find(|(id, _)| *id == lang).map(|(_, c)| c.clone()).unwrap_or_default();
        tracing::info!(language = %code, probability = p, "detected language");
        self.language = Some(DetectedLanguage { code, probability: p });
        if self.opts.detect_language {
            self.opts.decode.language = Some(lang);
        }
        Ok(())
    }

    /// The prompt of `window`: its context terms, then (when conditioning on previous text) as
    /// much of the text so far as the rest of the prompt holds. Training builds its prompts here
    /// too, with the reference's text as the text so far.
    pub(crate) fn prompt(&self, window: Span, previous: bool) -> Vec<u32> {
        let previous = if previous && self.opts.condition_on_previous_text {
            &self.all_tokens[self.prompt_reset_since..]
        } else {
            &[]
        };
        build_prompt(&self.context, window, self.model.tokenizer(), previous, self.model.dims().n_text_ctx)
    }

    /// Keeps what `resume` keeps of a window's `segments` (the words after are decoded again): a
    /// segment cut short gets the text and tokens of its words kept. The end of the last speech
    /// goes back to theirs, or to `prev_speech` (the one before the window).
    pub(crate) fn keep_before(&mut self, segments: &mut Vec<Segment>, resume: Resume, prev_speech: Ts) {
        let cut = segments.get(resume.keep).filter(|_| resume.words > 0).map(|s| {
            let cut = Segment::of_words(s.words[..resume.words].to_vec());
            let tokens = self.model.tokenizer().encode(&cut.text);
            let probability = cut.words.iter().map(|w| w.probability).sum::<f32>() / cut.words.len() as f32;
            let span = Span::new(s.span.start, cut.span.end);
            Segment {
                span,
                probabilities: vec![probability; tokens.len()],
                tokens,
                text: cut.text,
                words: cut.words,
                ..s.clone()
            }
        });
        segments.truncate(resume.keep);
        segments.extend(cut);
        self.last_speech = segments.iter().rev().find(|s| !s.words.is_empty()).map_or(prev_speech, |s| s.span.end);
    }

    /// Keeps `segments`' text as the text so far; a decoding at a high temperature resets the
    /// prompt after it.
    pub(crate) fn remember(&mut self, segments: &[Segment], temperature: f32) {
        for s in segments {
            self.all_tokens.extend_from_slice(&s.tokens);
        }
        if temperature > self.opts.prompt_reset_on_temperature {
            self.prompt_reset_since = self.all_tokens.len();
        }
    }

    /// The segments of a window's decoding `r` (`size` frames of content from frame `start`),
    /// their words timed; `None` when the window is silence. Also returns how many frames the
    /// decoding accounts for: up to its last closed segment, or, with `keep_tail` (a window no
    /// later one overlaps), all of it.
    pub(crate) fn segments_of(
        &mut self,
        r: &DecodeResult,
        audio: &Encoded,
        memory: Option<&Tensor>,
        start: usize,
        size: usize,
        keep_tail: bool,
    ) -> Result<Option<(Vec<Segment>, usize)>> {
        let opts = &self.opts.decode;
        if r.no_speech_prob > opts.no_speech_threshold && r.avg_logprob < opts.logprob_threshold {
            return Ok(None);
        }
        let offset = offset_of(start);
        let tok = self.model.tokenizer();
        let (segments, advance) = split_segments(r, tok.timestamp_begin, size, offset, keep_tail);
        let mut segments: Vec<Segment> = segments
            .into_iter()
            .filter_map(|seg| {
                let text = tok.decode(&seg.tokens);
                (!text.trim().is_empty() && seg.span.end > seg.span.start).then_some(Segment { text, ..seg })
            })
            .collect();
        let t0 = std::time::Instant::now();
        self.add_words(&mut segments, audio, memory, size, offset)?;
        tracing::debug!(
            at = %offset,
            align_ms = t0.elapsed().as_millis() as u64,
            tokens = r.tokens.len(),
            temperature = r.temperature,
            "window"
        );
        Ok(Some((segments, advance)))
    }

    /// Times the words of a window's `segments` and trims the segments to them, as OpenAI's
    /// `add_word_timestamps` does.
    fn add_words(
        &mut self,
        segments: &mut [Segment],
        audio: &Encoded,
        memory: Option<&Tensor>,
        size: usize,
        offset: Ts,
    ) -> Result<()> {
        let tok = self.model.tokenizer();
        let eot = tok.eot;
        let (text_tokens, text_probs): (Vec<u32>, Vec<f32>) = segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied().zip(s.probabilities.iter().copied()))
            .filter(|&(t, _)| t < eot)
            .unzip();
        let language = self
            .opts
            .decode
            .language
            .and_then(|id| tok.languages.iter().find(|(l, _)| *l == id).map(|(_, code)| code.as_str()));
        let split_on_spaces = !matches!(language, Some("zh" | "ja" | "th" | "lo" | "my" | "yue"));
        let sot_sequence = sot_sequence_for(self.model.dims().is_multilingual(), tok, &self.opts.decode);
        let mut timings = if text_tokens.is_empty() || !self.model.can_align() {
            Vec::new()
        } else {
            let request = AlignRequest {
                audio,
                sot_sequence: &sot_sequence,
                tokens: &text_tokens,
                probabilities: &text_probs,
                frames: size,
                split_on_spaces,
                memory,
            };
            self.model.align(request).map_err(|e| self.err(offset, e))?
        };
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

    /// Drops segments over non-speech; moves word onsets that alignment put in a pause forward to
    /// where speech resumes. `seeked`: the window was moved to where speech
    /// starts; `prev_speech`: the end of the speech before the window.
    pub(crate) fn keep_spoken(
        &mut self,
        segments: Vec<Segment>,
        act: &Activity,
        window_start: Ts,
        seeked: bool,
        prev_speech: Ts,
    ) -> Vec<Segment> {
        let (speech, sound) = (&act.speech, &act.sound);
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
            kept.push(seg);
        }
        kept
    }

    /// Drops segments that repeat the two before them word for word (a decoder stuck in a loop
    /// across windows).
    pub(crate) fn drop_loops(&mut self, segments: Vec<Segment>) -> Vec<Segment> {
        let loops = &mut self.loops;
        segments
            .into_iter()
            .filter(|seg| {
                let looping = loops.is_loop(&seg.text);
                if looping {
                    tracing::debug!(at = %seg.span.start, text = %seg.text, "repetition loop dropped");
                }
                !looping
            })
            .collect()
    }
}

/// A window's prompt: the context terms of `window`, then the end of `previous` text that fits
/// within the decoder's prompt (`max_prompt_tokens` of a context of `n_ctx`).
pub(crate) fn build_prompt(
    context: &Context,
    window: Span,
    tok: &crate::model::WhisperTokenizer,
    previous: &[u32],
    n_ctx: usize,
) -> Vec<u32> {
    let mut prompt = context.prompt(window, tok);
    let room = max_prompt_tokens(n_ctx).saturating_sub(prompt.len());
    prompt.extend_from_slice(&previous[previous.len().saturating_sub(room)..]);
    if !prompt.is_empty() {
        tracing::trace!(prompt = %tok.decode(&prompt), "prompt");
    }
    prompt
}
