//! The model stage: mel frames in, segments out. Cuts 30 s windows, runs encoder and decoder, and
//! seeks to the end of the last complete segment so words at a window's edge are decoded again in
//! the next window rather than lost (OpenAI's `transcribe.py`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Tensor;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::infer::align::{limit_long_words, Aligner};
use crate::infer::decode::{
    max_prompt_tokens, sot_sequence, DecodeOptions, DecodeResult, WindowDecoder, TIMESTAMP_STEP_S,
};
use crate::infer::shared::{DecodeRequest, SharedModel};
use crate::infer::tokenizer::WhisperTokenizer;
use crate::model::{LoadedModel, Whisper};
use crate::pipeline::Stage;
use crate::preprocess::mel::{normalize_chunk, normalize_window, WINDOW_FRAMES};
use crate::preprocess::vad::{activity, frame_energy_db, regions as vad_regions, VadConfig};
use crate::preprocess::Features;
use crate::segment::{Segment, Transcript, Word};
use crate::time::{Span, Ts};

/// Milliseconds per mel frame.
const FRAME_MS: i64 = 10;
/// Frames of the pause after a chunk's speech that batched mode keeps with it.
const TRAIL_FRAMES: usize = 50;
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
    /// Chunks of speech (at most 30 s, cut at pauses) decoded together, as one batch through
    /// encoder and decoder; 1 decodes window after window, each after the text before it.
    pub batch_size: usize,
    /// A partial batch is decoded once the input has gone this far past its first chunk (live
    /// input); `None` waits for a full batch or the end.
    pub batch_wait: Option<Ts>,
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
            batch_size: 1,
            batch_wait: None,
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
    /// Batched mode: speech flags of the frames from `base` to `scanned`, and the speech chunks
    /// cut from them that wait for their batch. `seek` is the first frame not yet cut.
    speech: Vec<bool>,
    scanned: usize,
    chunks: VecDeque<Chunk>,
    /// Batched mode: the decoder shared with the inputs transcribed alongside this one.
    shared: Option<Box<dyn SharedModel>>,
}

/// A chunk of speech for batched decoding: absolute mel frames `start..end`, at most a window,
/// and its encoding once made.
#[derive(Debug, Clone)]
struct Chunk {
    start: usize,
    end: usize,
    audio: Option<Tensor>,
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
            speech: Vec::new(),
            scanned: 0,
            chunks: VecDeque::new(),
            shared: None,
        }
    }

    /// Batched mode decodes its chunks through `shared`, together with other inputs' chunks
    /// (chunks with a fusion memory still decode alone).
    pub fn with_shared(mut self, shared: Box<dyn SharedModel>) -> Self {
        self.shared = Some(shared);
        self
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
        let t0 = std::time::Instant::now();
        let audio = model.whisper.encode(&mel).map_err(|e| self.err(e))?;
        let encode_ms = t0.elapsed().as_millis() as u64;
        let window = Span::new(offset_of(self.seek), offset_of(self.seek + WINDOW_FRAMES));
        let memory = self.memory(window).map_err(|e| self.err(e))?;
        let tok = Arc::clone(&self.tok);
        let mut decoder =
            WindowDecoder::new(&model.whisper, &tok, &model.config, self.opts.decode.seed ^ self.windows as u64)
                .with_memory(memory.clone());
        self.windows += 1;

        if self.opts.decode.language.is_none() && model.whisper.dims.is_multilingual() {
            let (lang, p) = decoder.detect_language(&audio).map_err(|e| self.err(e))?;
            self.settle_language(lang, p);
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
        let decode_ms = t0.elapsed().as_millis() as u64;
        let offset = offset_of(self.seek);
        let prev_speech = self.last_speech;
        let Some((segments, mut advance)) =
            self.segments_of(&r, &audio, memory.as_ref(), size, offset, false, (encode_ms, decode_ms))?
        else {
            self.seek += size;
            return Ok(());
        };
        // The decoder can stop early (a prompt of terms makes it likelier): when it claims the
        // whole window but speech goes on well after its last segment, start the next window
        // at that segment's end instead of losing the rest.
        if advance == size {
            if let Some(end) = stopped_early(&segments, &speech, offset) {
                advance = ((end - offset).ms() / FRAME_MS) as usize;
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

    /// Keeps the language detected on a window (token `lang`, probability `p`): for the JSON
    /// sink, and for every later window when asked to detect it.
    fn settle_language(&mut self, lang: u32, p: f32) {
        let code = self.tok.languages.iter().find(|(id, _)| *id == lang).map(|(_, c)| c.clone()).unwrap_or_default();
        tracing::info!(language = %code, probability = p, "detected language");
        self.language = Some(DetectedLanguage { code, probability: p });
        if self.opts.detect_language {
            self.opts.decode.language = Some(lang);
        }
    }

    /// The segments of a window's decoding `r` (`size` frames of content at `offset`), their
    /// words timed; `None` when the window is silence. Also returns how many frames the
    /// decoding accounts for: up to its last closed segment, or, with `keep_tail` (a window no
    /// later one overlaps), all of it. `ms`: encoder and decoder time, for the log.
    #[allow(clippy::too_many_arguments)]
    fn segments_of(
        &mut self,
        r: &DecodeResult,
        audio: &Tensor,
        memory: Option<&Tensor>,
        size: usize,
        offset: Ts,
        keep_tail: bool,
        ms: (u64, u64),
    ) -> Result<Option<(Vec<Segment>, usize)>> {
        let is_silence = r.no_speech_prob > self.opts.decode.no_speech_threshold
            && r.avg_logprob < self.opts.decode.logprob_threshold;
        if is_silence {
            return Ok(None);
        }
        let (segments, advance) = split_segments(r, self.tok.timestamp_begin, size, offset, keep_tail);
        let mut segments: Vec<Segment> = segments
            .into_iter()
            .filter_map(|seg| {
                let text = self.tok.decode(&seg.tokens);
                (!text.trim().is_empty() && seg.span.end > seg.span.start).then_some(Segment { text, ..seg })
            })
            .collect();
        let t0 = std::time::Instant::now();
        self.add_words(&mut segments, audio, memory, size, offset)?;
        tracing::debug!(
            at = %offset,
            encode_ms = ms.0,
            decode_ms = ms.1,
            align_ms = t0.elapsed().as_millis() as u64,
            tokens = r.tokens.len(),
            temperature = r.temperature,
            "window"
        );
        Ok(Some((segments, advance)))
    }

    /// Times the words of a window's `segments` (`infer::align`) and trims the segments to them,
    /// as OpenAI's `add_word_timestamps` does.
    fn add_words(
        &mut self,
        segments: &mut [Segment],
        audio: &Tensor,
        memory: Option<&Tensor>,
        size: usize,
        offset: Ts,
    ) -> Result<()> {
        let eot = self.tok.eot;
        let (text_tokens, text_probs): (Vec<u32>, Vec<f32>) = segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied().zip(s.probabilities.iter().copied()))
            .filter(|&(t, _)| t < eot)
            .unzip();
        let language = self
            .opts
            .decode
            .language
            .and_then(|id| self.tok.languages.iter().find(|(l, _)| *l == id).map(|(_, code)| code.as_str()));
        let split_on_spaces = !matches!(language, Some("zh" | "ja" | "th" | "lo" | "my" | "yue"));
        let model = Arc::clone(&self.model);
        let sot_sequence = sot_sequence(&model.whisper, &self.tok, &self.opts.decode);
        let aligner = Aligner { model: &model.whisper, tok: &self.tok, heads: &model.config.alignment_heads, memory };
        let mut timings = aligner
            .words(audio, &sot_sequence, &text_tokens, &text_probs, size, split_on_spaces)
            .map_err(|e| self.err(e))?;
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
        let keep_from = self.chunks.front().map_or(self.seek, |c| c.start.min(self.seek));
        let consumed = keep_from.saturating_sub(self.base).min(self.frames.len() / self.n_mels);
        self.frames.drain(..consumed * self.n_mels);
        self.speech.drain(..consumed.min(self.speech.len()));
        self.base += consumed;
        self.context.forget_before(offset_of(keep_from));
    }

    /// Batched mode: voice activity for the frames received, a window at a time (each with its
    /// own noise floor, as a window of the sequential mode), up to the end when `finishing`.
    fn scan(&mut self, finishing: bool) {
        while self.total_frames() >= self.scanned + WINDOW_FRAMES || (finishing && self.scanned < self.total_frames()) {
            let n = (self.total_frames() - self.scanned).min(WINDOW_FRAMES);
            let from = (self.scanned - self.base) * self.n_mels;
            let act = activity(&self.frames[from..from + n * self.n_mels], self.n_mels, &self.opts.vad);
            self.speech.extend(act.speech);
            self.scanned += n;
        }
    }

    /// Batched mode: cuts the scanned frames into chunks of speech ([`cut_speech`]).
    fn cut_chunks(&mut self, finishing: bool) {
        let (frames, n_mels) = (&self.frames, self.n_mels);
        let energy = |f: usize| frame_energy_db(&frames[f * n_mels..(f + 1) * n_mels]);
        let (cuts, next) = cut_speech(&self.speech, energy, self.seek - self.base, finishing);
        let base = self.base;
        self.chunks.extend(cuts.into_iter().map(|(start, end)| Chunk {
            start: base + start,
            end: base + end,
            audio: None,
        }));
        self.seek = base + next;
    }

    /// Batched mode: decodes the chunks waiting, a batch at a time, while a batch is full (or
    /// waited long enough, or the input ended) and the on-screen text for it is known.
    fn run_batches(&mut self, finishing: bool, out: &mut Vec<Transcript>) -> Result<()> {
        if crate::model::own_kernels(self.model.whisper.device()) {
            // A chunk at a time as soon as it is cut: as fast on a CPU as a batch, without a
            // batch's activations, and while the input is still being decoded.
            for i in 0..self.chunks.len() {
                if self.chunks[i].audio.is_none() {
                    let chunk = [self.chunks[i].clone()];
                    self.chunks[i].audio = Some(on_pool(|| self.encode(&chunk))?);
                }
            }
        }
        while let Some(first) = self.chunks.front().cloned() {
            let n = self.opts.batch_size.min(self.chunks.len());
            let waited =
                self.opts.batch_wait.is_some_and(|w| offset_of(self.total_frames()) - offset_of(first.end) >= w);
            if !(n == self.opts.batch_size || waited || finishing) {
                return Ok(());
            }
            let batch: Vec<Chunk> = self.chunks.drain(..n).collect();
            if self.screen_until < offset_of(batch[n - 1].start + WINDOW_FRAMES) && !finishing {
                // Its on-screen text is not all read yet.
                batch.into_iter().rev().for_each(|c| self.chunks.push_front(c));
                return Ok(());
            }
            self.run_batch(&batch, out)?;
            self.drop_consumed();
        }
        Ok(())
    }

    /// Batched mode: encodes `batch` as one batch, decodes the chunks that share a prompt (the
    /// context terms of their windows) as one batch, and emits their segments in order. Model
    /// work runs on the compute pool; a call to the shared model waits off it, so the pool is
    /// free for the batch it joins.
    fn run_batch(&mut self, batch: &[Chunk], out: &mut Vec<Transcript>) -> Result<()> {
        let model = Arc::clone(&self.model);
        let device = model.whisper.device().clone();
        let t0 = std::time::Instant::now();
        let audio = match batch.iter().map(|c| c.audio.clone()).collect::<Option<Vec<Tensor>>>() {
            Some(encoded) => Tensor::cat(&encoded, 0).map_err(|e| self.chunk_err(&batch[0], e))?,
            None => match &self.shared {
                Some(shared) => shared.encode(self.mel_of(batch)?).map_err(|e| self.chunk_err(&batch[0], e))?,
                None => on_pool(|| self.encode(batch))?,
            },
        };
        let encode_ms = t0.elapsed().as_millis() as u64;
        let window = |c: &Chunk| Span::new(offset_of(c.start), offset_of(c.start + WINDOW_FRAMES));
        if self.opts.decode.language.is_none() && model.whisper.dims.is_multilingual() {
            let first = audio.narrow(0, 0, 1).map_err(|e| self.chunk_err(&batch[0], e))?;
            let memory = self.memory(window(&batch[0])).map_err(|e| self.chunk_err(&batch[0], e))?;
            let decoder = WindowDecoder::new(&model.whisper, &self.tok, &model.config, 0).with_memory(memory);
            let (lang, p) = on_pool(|| decoder.detect_language(&first)).map_err(|e| self.chunk_err(&batch[0], e))?;
            self.settle_language(lang, p);
        }
        // Chunks with the same prompt decode together; one with a fusion memory decodes alone.
        let mut groups: Vec<(Vec<u32>, Option<Tensor>, Vec<usize>)> = Vec::new();
        for (i, c) in batch.iter().enumerate() {
            let prompt = self.context.prompt(window(c), &self.tok);
            let memory = self.memory(window(c)).map_err(|e| self.chunk_err(c, e))?;
            match groups.iter_mut().find(|g| memory.is_none() && g.1.is_none() && g.0 == prompt) {
                Some(g) => g.2.push(i),
                None => groups.push((prompt, memory, vec![i])),
            }
        }
        // Text only, as faster-whisper's and WhisperX's batched pipelines: a chunk is one stretch
        // of speech, and alignment times its words.
        let opts = DecodeOptions { without_timestamps: true, ..self.opts.decode.clone() };
        let t0 = std::time::Instant::now();
        let mut results: Vec<Option<DecodeResult>> = vec![None; batch.len()];
        for (prompt, memory, members) in &groups {
            let c = &batch[members[0]];
            let part = if members.len() == batch.len() {
                audio.clone()
            } else {
                let idx: Vec<u32> = members.iter().map(|&i| i as u32).collect();
                Tensor::new(idx.as_slice(), &device)
                    .and_then(|idx| audio.index_select(&idx, 0))
                    .map_err(|e| self.chunk_err(c, e))?
            };
            let seed = self.opts.decode.seed ^ self.windows as u64;
            let rs = match &self.shared {
                Some(shared) if memory.is_none() => {
                    shared.decode(DecodeRequest { audio: part, prompt: prompt.clone(), opts: opts.clone() })
                }
                _ => on_pool(|| {
                    WindowDecoder::new(&model.whisper, &self.tok, &model.config, seed)
                        .with_memory(memory.clone())
                        .decode_batch_with_fallback(&part, prompt, &opts)
                }),
            }
            .map_err(|e| self.chunk_err(c, e))?;
            for (&i, r) in members.iter().zip(rs) {
                results[i] = Some(r);
            }
        }
        self.windows += batch.len();
        let decode_ms = t0.elapsed().as_millis() as u64;
        let spans: Vec<String> = batch.iter().map(|c| format!("{}-{}", offset_of(c.start), offset_of(c.end))).collect();
        tracing::debug!(chunks = %spans.join(" "), groups = groups.len(), encode_ms, decode_ms, "batch");
        for (i, (c, r)) in batch.iter().zip(results).enumerate() {
            let r = r.expect("every chunk decoded");
            let audio = audio.narrow(0, i, 1).map_err(|e| self.chunk_err(c, e))?;
            let memory = groups.iter().find(|g| g.2.contains(&i)).and_then(|g| g.1.clone());
            let rest = on_pool(|| self.emit_chunk(c, &r, &audio, memory.as_ref(), out))?;
            if let Some(rest) = rest {
                // Decoded alone and at once, so segments stay in order.
                self.run_batch(&[rest], out)?;
            }
        }
        Ok(())
    }

    /// The encoder's output for `chunks`, (chunks, audio_ctx, state).
    fn encode(&self, chunks: &[Chunk]) -> Result<Tensor> {
        let mel = self.mel_of(chunks)?;
        self.model.whisper.encode(&mel).map_err(|e| self.chunk_err(&chunks[0], e))
    }

    /// The mel windows of `chunks`, each padded to a window, (chunks, n_mels, frames).
    fn mel_of(&self, chunks: &[Chunk]) -> Result<Tensor> {
        let mut mel = Vec::with_capacity(chunks.len() * self.n_mels * WINDOW_FRAMES);
        for c in chunks {
            let from = (c.start - self.base) * self.n_mels;
            mel.extend(normalize_chunk(&self.frames[from..(c.end - self.base) * self.n_mels], self.n_mels));
        }
        let device = self.model.whisper.device();
        Tensor::from_vec(mel, (chunks.len(), self.n_mels, WINDOW_FRAMES), device)
            .map_err(|e| self.chunk_err(&chunks[0], e))
    }

    fn chunk_err(&self, c: &Chunk, e: candle_core::Error) -> Error {
        Error::Inference { path: self.input.clone(), at: offset_of(c.start), source: e }
    }

    /// Batched mode: the segments of chunk `c` from its decoding `r`, kept where there is speech,
    /// into `out`. Returns the chunk's undecoded rest when the decoder stopped before the speech.
    fn emit_chunk(
        &mut self,
        c: &Chunk,
        r: &DecodeResult,
        audio: &Tensor,
        memory: Option<&Tensor>,
        out: &mut Vec<Transcript>,
    ) -> Result<Option<Chunk>> {
        let (size, offset) = (c.end - c.start, offset_of(c.start));
        let from = (c.start - self.base) * self.n_mels;
        let act = activity(&self.frames[from..from + size * self.n_mels], self.n_mels, &self.opts.vad);
        let speech = vad_regions(&act.speech, offset);
        let sound = vad_regions(&act.sound, offset);
        let prev_speech = self.last_speech;
        let Some((segments, _)) = self.segments_of(r, audio, memory, size, offset, true, (0, 0))? else {
            return Ok(None);
        };
        let rest = stopped_early(&segments, &speech, offset)
            .map(|end| Chunk { start: c.start + ((end - offset).ms() / FRAME_MS) as usize, end: c.end, audio: None })
            .filter(|rest| rest.start < rest.end);
        let segments = self.keep_spoken(segments, &speech, &sound, offset, true, prev_speech);
        out.extend(segments.into_iter().map(Transcript::Segment));
        Ok(rest)
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

/// Cuts speech into chunks for batched mode, as faster-whisper's batched pipeline does: a chunk
/// starts where speech does and takes in the speech that ends within a window of its start;
/// speech running on past that is cut at its quietest 200 ms in the window's last third. A chunk
/// keeps up to half a second of the pause after it. `speech`: voice activity of every frame
/// known; `energy(f)`: the loudness of frame `f` in dB. From frame `from` on; a chunk is cut only
/// once a window past its start is known, unless `finishing`. Returns the chunks (frames
/// `start..end`) and the frame the next cut starts from.
fn cut_speech(
    speech: &[bool],
    energy: impl Fn(usize) -> f32,
    mut from: usize,
    finishing: bool,
) -> (Vec<(usize, usize)>, usize) {
    let known = speech.len();
    let at = |f: usize| speech.get(f).copied().unwrap_or(false);
    let mut chunks = Vec::new();
    loop {
        let Some(start) = (from..known).find(|&f| at(f)) else { return (chunks, known) };
        if start + WINDOW_FRAMES > known && !finishing {
            return (chunks, start);
        }
        let limit = (start + WINDOW_FRAMES).min(known);
        // The end of the last speech run that ends by the limit.
        let ends = |e: usize| if e < known { !at(e) } else { finishing };
        let end = (start + 1..=limit).rev().find(|&e| at(e - 1) && ends(e));
        let end = end.unwrap_or_else(|| quietest(&energy, start + WINDOW_FRAMES * 2 / 3, limit).max(start + 1));
        // The decoder drops a chunk's last words more often when its audio stops right after.
        let room = (end + TRAIL_FRAMES).min(start + WINDOW_FRAMES).min(known);
        let end = end + (end..room).take_while(|&f| !at(f)).count();
        chunks.push((start, end));
        from = end;
    }
}

/// The middle of the quietest 200 ms of frames `from..to` by `energy`: the likeliest pause
/// between words in speech that runs on without one long enough for voice activity.
fn quietest(energy: impl Fn(usize) -> f32, from: usize, to: usize) -> usize {
    const SPAN: usize = 20;
    if to <= from + SPAN {
        return to;
    }
    let mut sum: f32 = (from..from + SPAN).map(&energy).sum();
    let mut best = (sum, from);
    for f in from + SPAN..to {
        sum += energy(f) - energy(f - SPAN);
        if sum < best.0 {
            best = (sum, f + 1 - SPAN);
        }
    }
    best.1 + SPAN / 2
}

/// Where the decoder stopped though speech went on for a second or more after it: the end of
/// the last word of `segments`, when the window's `speech` goes on well past it.
fn stopped_early(segments: &[Segment], speech: &[Span], offset: Ts) -> Option<Ts> {
    let end = segments.iter().filter_map(|s| s.words.last()).map(|w| w.span.end).max()?;
    let undecoded = |r: &Span| (r.end - r.start.max(end)).ms();
    let stopped = end > offset && speech.iter().any(|r| undecoded(r) >= 1000);
    if stopped {
        tracing::debug!(at = %end, "decoder stopped before the speech did: decoding on from there");
    }
    stopped.then_some(end)
}

/// OpenAI's segment split: consecutive timestamp pairs close segments. Returns the segments
/// (tokens and times, text left empty) and how many frames to seek. With `keep_tail`, text
/// after the last closed segment is a segment too, to the window's end (no later window decodes
/// it again), and the whole window is consumed.
fn split_segments(r: &DecodeResult, ts_begin: u32, size: usize, offset: Ts, keep_tail: bool) -> (Vec<Segment>, usize) {
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
        let tail = &tokens[last..];
        if keep_tail && !single_timestamp_ending && tail.iter().any(|&t| !is_ts(t)) {
            let start = secs(tail[0]);
            let end =
                tail.iter().rev().copied().find(|&t| is_ts(t) && t > tail[0]).map_or(Ts(size as i64 * FRAME_MS), secs);
            out.push(seg(tail, &r.token_logprobs[last..], Span::new(offset + start, offset + end.max(start))));
        }
        let advance = if single_timestamp_ending || keep_tail {
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
        if self.opts.batch_size > 1 {
            self.scan(false);
            self.cut_chunks(false);
            return self.run_batches(false, out);
        }
        while self.total_frames() >= self.seek + WINDOW_FRAMES
            && self.screen_until >= offset_of(self.seek + WINDOW_FRAMES)
        {
            on_pool(|| self.run_window(WINDOW_FRAMES, out))?;
            self.drop_consumed();
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Transcript>) -> Result<()> {
        if self.opts.batch_size > 1 {
            self.scan(true);
            self.cut_chunks(true);
            let done = self.run_batches(true, out);
            // No more batches: the shared model need not wait for this input.
            self.shared = None;
            return done;
        }
        while self.seek < self.total_frames() {
            let size = (self.total_frames() - self.seek).min(WINDOW_FRAMES);
            on_pool(|| self.run_window(size, out))?;
            self.drop_consumed();
        }
        Ok(())
    }
}

/// Runs `f` (a window or a batch) on a thread of the compute pool, the stage's thread waiting
/// for it. Each of the model's parallel products then starts on a pool thread, which hands half
/// to the other one through its own queue; from the stage's thread each went in through the
/// pool's shared queue and the stage's thread slept until woken by the pool, some 40 times a
/// decoder step. On a 2-core Xeon (Sapphire Rapids), `examples/step` forward + logits ms a step:
/// tiny.en 1 row 1.56-1.65 + 0.62-0.64 -> 0.78-0.87 + 0.57-0.66, 5 rows 3.29-3.44 + 1.73 ->
/// 2.48-2.53 + 1.72-1.80; base 1 row 3.70-3.74 + 1.01-1.03 -> 1.91-2.08 + 0.83-0.85, 5 rows
/// 6.6-6.9 + 2.3-2.4 -> 5.61-5.67 + 2.14-2.26. tiny.en greedy on long-5 5.5-5.9 -> 5.0-5.2 s,
/// the same subtitles.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
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
        let (segs, advance) = split_segments(&r, TS, 3000, Ts(30_000), false);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].span, Span::new(Ts(30_000), Ts(31_000)));
        assert_eq!(segs[1].span, Span::new(Ts(31_000), Ts(32_500)));
        assert_eq!(advance, 250); // 2.50 s in frames: "d" is decoded again in the next window
                                  // A chunk of a batch is decoded once: "d" is kept, to the chunk's end.
        let (segs, advance) = split_segments(&r, TS, 3000, Ts(30_000), true);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[2].span, Span::new(Ts(32_500), Ts(60_000)));
        assert_eq!(segs[2].tokens, vec![TS + 125, 4]);
        assert_eq!(advance, 3000);
    }

    /// Speech flags: `runs` of (start s, end s) in `total` seconds.
    fn flags(runs: &[(f32, f32)], total: f32) -> Vec<bool> {
        let frame = |s: f32| (s * 100.0) as usize;
        (0..frame(total)).map(|f| runs.iter().any(|&(a, b)| frame(a) <= f && f < frame(b))).collect()
    }

    #[test]
    fn speech_is_cut_at_pauses_into_chunks_of_at_most_a_window() {
        let loud = |_: usize| -20.0;
        // Two phrases with a pause: one chunk, with half a second of the pause after it.
        let f = flags(&[(1.0, 11.0), (13.0, 23.0)], 60.0);
        assert_eq!(cut_speech(&f, loud, 0, false), (vec![(100, 2350)], 6000));
        // The second phrase ends past 30 s from the first's start: two chunks.
        let f = flags(&[(1.0, 21.0), (22.0, 42.0)], 80.0);
        let (chunks, _) = cut_speech(&f, loud, 0, false);
        assert_eq!(chunks, vec![(100, 2150), (2200, 4250)]);
        // Not yet a window known past the start: nothing cut, the next cut starts there.
        let f = flags(&[(1.0, 11.0)], 25.0);
        assert_eq!(cut_speech(&f, loud, 0, false), (vec![], 100));
        // ...unless the input ended.
        assert_eq!(cut_speech(&f, loud, 0, true), (vec![(100, 1150)], 2500));
        // 45 s without a pause: cut at the quietest 200 ms of the last third (at 25 s here).
        let f = flags(&[(0.0, 45.0)], 60.0);
        let dip = |i: usize| if (2500..2520).contains(&i) { -60.0 } else { -20.0 };
        let (chunks, _) = cut_speech(&f, dip, 0, true);
        assert_eq!(chunks, vec![(0, 2510), (2510, 4550)]);
    }

    #[test]
    fn single_timestamp_ending_consumes_the_window() {
        let r = result(vec![TS, 1, TS + 50, TS + 50, 2, TS + 100]);
        let (segs, advance) = split_segments(&r, TS, 1234, Ts::ZERO, false);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].span, Span::new(Ts(1000), Ts(2000)));
        assert_eq!(advance, 1234);
    }

    #[test]
    fn no_pair_gives_one_segment_to_the_last_timestamp() {
        let r = result(vec![TS, 1, 2, TS + 40]);
        let (segs, advance) = split_segments(&r, TS, 3000, Ts::ZERO, false);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].span, Span::new(Ts::ZERO, Ts(800)));
        assert_eq!(advance, 3000);
    }
}
