//! The streaming model stage (live input): a buffer of the newest audio is decoded again and
//! again as more arrives, and words are committed once, never taken back, by the rules of
//! [`crate::infer::commit`]: two passes agreeing, a word held long enough, a pause.
//!
//! Words wholly over silence (Whisper's "you" and "Thank you.") are never committed, nor are
//! three or more words in a row that the alignment cannot place after the words before them (an
//! invented or repeated sentence squeezed into audio already committed), nor two or more that
//! say the last committed words again in the time those took ("Whitmore. it more."), nor the
//! half of a hyphenated word said again ("ill-disposed disposed."): [`without_unplaced`].
//!
//! A pass that loops (Whisper saying a phrase again and again) is decoded again at once without
//! the prompt: the committed text ending mid-sentence can lock Whisper into a loop ("she died.
//! she died. ...") that every later pass with the same prompt repeats, losing the speech.
//!
//! Whisper now and then ends its text early, a sentence or more before the buffer's speech
//! ends; a pass whose words stop a second of speech short is decoded again from the last
//! committed word (a sentence dropped that way was never committed before).
//!
//! Each pass's hypothesis covers the whole buffer, the committed words in it too: they are found
//! in it by their text ([`committed_prefix`]), and what follows them is new. The buffer keeps
//! the speech before a pause (Whisper decodes a buffer that starts at new speech badly) and is
//! cut after its last committed sentence once `trim_ms` long (after its last committed word at
//! `max_buffer_ms`), so a pass costs about the same however long the stream runs. Committed
//! words that left the buffer are the prompt (prompted with words the audio still holds,
//! Whisper leaves them out).
//!
//! Falling behind (a pass takes longer than the audio it covers): decoding is cut down first
//! (greedy; there is never a temperature fallback: the next pass decodes again), then audio the
//! window cannot hold is skipped, said as a [`LiveNote::Skipped`] and counted; nothing queues up
//! without bound.
//!
//! A pass runs when the stage is idle (the runner found its input channel empty:
//! [`crate::flow::Stage::idle`]) and `min_step_ms` of new audio arrived, or in any case after
//! `max_step_ms` of new audio (input that arrives faster than real time).

use crate::error::Result;
use crate::flow::Stage;
use crate::infer::commit::{committable, Committable, StreamConfig};
use crate::infer::decode::{window_seed, WindowStart};
use crate::infer::hypothesis::{committed_prefix, ends_sentence, key, without_unplaced};
use crate::infer::input::{offset_of, Input, FRAME_MS};
use crate::infer::transcriber::DecodeRequest;
use crate::infer::ModelInput;
use crate::preprocess::mel::{normalize_chunk_to, WINDOW_FRAMES};
use crate::segment::{LiveNote, Segment, StreamStatus, Transcript, Word};
use crate::time::{Span, Ts};

/// A pass whose words stop short of this much of the speech it was given is decoded again
/// from the last committed word; the stream's last pass, which no pass follows, of a word's
/// worth (README, "The stream's last pass": "from the gate." lost, 0.8 s).
const UNHEARD_SPEECH_MS: i64 = 1000;
const UNHEARD_AT_END_MS: i64 = 300;
/// Passes that started again at a word and still leave this much speech unheard have stalled
/// there ([`restart_at`]).
const STALLED_MS: i64 = 2000;

/// How much of the `speech` comes after `heard_to`.
fn unheard_speech(speech: &[Span], heard_to: Ts) -> Ts {
    Ts(speech.iter().map(|r| (r.end - r.start.max(heard_to)).ms().max(0)).sum())
}

/// Tokens a pass may decode: this many, and `TOKENS_PER_S` more for each second of its buffer,
/// twice what fast speech takes (about 6 a second, timestamps too). On a short buffer Whisper
/// sometimes repeats itself up to the 224 tokens it may write: seconds of beam search (3 s for
/// a 3 s buffer once, its five beams' caches 15 MB of an hour's peak memory) that held every
/// word behind it. A pass that reaches its bound is taken for such a loop.
const TOKENS_MIN: usize = 24;
const TOKENS_PER_S: usize = 12;

fn max_new_tokens(buffer: Ts) -> usize {
    TOKENS_MIN + (TOKENS_PER_S as i64 * buffer.ms().max(0) / 1000) as usize
}

/// A buffer shorter than this is not decoded (Whisper invents words on a fraction of a word).
const MIN_BUFFER_MS: i64 = 1000;

fn frames(t: Ts) -> usize {
    (t.ms().max(0) / FRAME_MS) as usize
}

/// Encoder windows shorter than Whisper's 30 s grow in steps this long, so that streams decoded
/// together often have windows alike (their audio goes through the decoder as one batch).
const WINDOW_STEP_FRAMES: usize = 400;

/// The encoder window for a pass over `size` frames: Whisper's 30 s, or with `after`, the
/// buffer and that much more, in steps of `WINDOW_STEP_FRAMES`, up to 30 s.
fn encoder_window(size: usize, after: Option<usize>) -> usize {
    after.map_or(WINDOW_FRAMES, |after| {
        ((size + after).div_ceil(WINDOW_STEP_FRAMES) * WINDOW_STEP_FRAMES).min(WINDOW_FRAMES)
    })
}

/// Where a pass that stopped short is decoded again from (a frame after the buffer's `start`),
/// the last committed word in the buffer spanning `last`: its end where a pause follows; inside
/// `speech`, its start (heard again, aligned away), not its end. A buffer that starts at the
/// next word's first sound is decoded badly: "is a big roundfark" for "jumps over the lazy
/// dog", which the next pass from there said again, and so agreed on. Where the buffer starts
/// at the word already, nowhere: the next pass, with more audio, decodes from there; but once
/// passes `stalled` there (they left `STALLED_MS` of speech unheard), from the word's end. A
/// buffer at "hearts." before a pause was decoded as "hearts." alone for 8 s of speech after it
/// (two streams' shorter windows), every word of a fast sentence 4-9 s late.
fn restart_at(speech: &[Span], last: Option<Span>, committed_end: usize, start: usize, stalled: bool) -> Option<usize> {
    let inside = |w: Span| speech.iter().any(|r| r.start < w.end && w.end < r.end);
    let at = last.map_or(committed_end, |w| frames(if inside(w) { w.start } else { w.end }));
    let at = match last {
        Some(w) if at <= start && stalled => frames(w.end),
        _ => at,
    };
    (at > start).then_some(at)
}

pub struct StreamingStage {
    input: Input,
    cfg: StreamConfig,
    /// Absolute frame the buffer (the audio each pass decodes) starts at.
    start: usize,
    /// Frames received when the last pass ran.
    passed_at: usize,
    /// The last pass's words after the committed ones.
    tentative: Vec<Word>,
    /// The committed words still in the buffer, which each pass's hypothesis is aligned with
    /// (they become the prompt once the buffer moves past them: Whisper, prompted with words
    /// the audio still holds, leaves them out); the last few committed words (their text);
    /// where the last one ended.
    in_buffer: Vec<Word>,
    committed: Vec<String>,
    committed_until: Ts,
    /// Decoding cut down to keep up.
    degraded: bool,
    /// The end of speech of the last pause said.
    paused_at: Ts,
    /// The last committed word ends a sentence.
    last_ends_sentence: bool,
    /// The words of the last partial said.
    partial: Vec<String>,
    status: StreamStatus,
    /// Since the last status: wall time decoding, stream time heard, latencies.
    busy_s: f64,
    heard_from: Ts,
    latencies: Vec<f64>,
    pass_times: std::collections::VecDeque<f64>,
}

impl StreamingStage {
    pub(crate) fn new(input: Input, cfg: StreamConfig) -> Self {
        Self {
            input,
            cfg,
            start: 0,
            passed_at: 0,
            tentative: Vec::new(),
            in_buffer: Vec::new(),
            committed: Vec::new(),
            committed_until: Ts::ZERO,
            degraded: false,
            paused_at: Ts::ZERO,
            last_ends_sentence: false,
            partial: Vec::new(),
            status: StreamStatus::default(),
            busy_s: 0.0,
            heard_from: Ts::ZERO,
            latencies: Vec::new(),
            pass_times: Default::default(),
        }
    }

    pub(crate) fn input(&self) -> &Input {
        &self.input
    }

    pub fn status(&self) -> &StreamStatus {
        &self.status
    }

    fn new_audio(&self) -> Ts {
        offset_of(self.input.total_frames().saturating_sub(self.passed_at))
    }

    /// Commits `words` (in order, after every word committed before: times a pass placed
    /// earlier are moved up to the last committed word's end).
    fn commit(
        &mut self,
        mut words: Vec<Word>,
        r: Option<&crate::infer::decode::DecodeResult>,
        pass_s: f64,
        out: &mut Vec<Transcript>,
    ) {
        let mut until = self.committed_until;
        for w in &mut words {
            let start = w.span.start.max(until);
            w.span = Span::new(start, w.span.end.max(start + Ts(10)));
            until = w.span.end;
        }
        let (Some(first), Some(last)) = (words.first(), words.last()) else { return };
        let now = offset_of(self.input.total_frames());
        for w in &words {
            self.latencies.push((now - w.span.end).secs_f64().max(0.0) + pass_s);
        }
        let text: String = words.iter().map(|w| format!(" {}", w.text)).collect();
        let tokens = self.input.model.tokenizer().encode(&text);
        self.input.last_speech = last.span.end;
        self.last_ends_sentence = ends_sentence(&last.text);
        let span = Span::new(first.span.start, last.span.end.max(first.span.start + Ts(1)));
        self.committed_until = last.span.end;
        self.committed.extend(words.iter().map(|w| w.text.clone()));
        self.in_buffer.extend(words.iter().cloned());
        let keep = self.committed.len().saturating_sub(8);
        self.committed.drain(..keep);
        self.status.words += words.len() as u64;
        out.push(Transcript::Segment(Segment {
            span,
            text,
            probabilities: vec![],
            tokens,
            avg_logprob: r.map_or(0.0, |r| r.avg_logprob),
            no_speech_prob: r.map_or(0.0, |r| r.no_speech_prob),
            temperature: r.map_or(0.0, |r| r.temperature),
            compression_ratio: r.map_or(1.0, |r| r.compression_ratio),
            words,
        }));
    }

    /// Moves the buffer's start to `frame`, forgetting the audio before it.
    fn move_start(&mut self, frame: usize) {
        if frame > self.start {
            self.start = frame.min(self.input.total_frames());
            self.input.forget_before(self.start);
            let from = offset_of(self.start);
            self.tentative.retain(|w| w.span.end > from);
            // Committed words the buffer no longer holds: the prompt's text from now on.
            let kept = self.in_buffer.iter().position(|w| w.span.end > from).unwrap_or(self.in_buffer.len());
            let gone: String = self.in_buffer.drain(..kept).map(|w| format!(" {}", w.text)).collect();
            if !gone.is_empty() {
                let tokens = self.input.model.tokenizer().encode(&gone);
                self.input.all_tokens.extend_from_slice(&tokens);
            }
        }
    }

    /// Skips the audio before `frame` undecoded (the model fell behind), saying so.
    fn skip_to(&mut self, frame: usize, out: &mut Vec<Transcript>) {
        let from = offset_of(self.start).max(self.committed_until);
        self.tentative.clear();
        self.move_start(frame);
        let to = offset_of(self.start);
        if to > from {
            tracing::warn!(from = %from, to = %to, "the model fell behind: audio skipped");
            self.status.skipped_s += (to - from).secs_f64();
            out.push(Transcript::Live(LiveNote::Skipped(Span::new(from, to))));
        }
    }

    /// Words of the pass's hypothesis that come after the committed ones. The hypothesis covers
    /// the whole buffer: its beginning is the committed words still in the buffer, said again
    /// (perhaps a little differently, and timed a little differently); they are found by
    /// their text, not their times. A buffer that starts after every committed word may still
    /// repeat the last few (a word cut in two): those are dropped.
    fn new_words(&self, mut words: Vec<Word>) -> Vec<Word> {
        if !self.in_buffer.is_empty() {
            let keys: Vec<String> = words.iter().map(|w| key(&w.text)).collect();
            let ends: Vec<Ts> = words.iter().map(|w| w.span.end).collect();
            let committed: Vec<String> = self.in_buffer.iter().map(|w| key(&w.text)).collect();
            let committed: Vec<&str> = committed.iter().map(String::as_str).collect();
            let n = committed_prefix(&committed, &keys, &ends, self.committed_until);
            tracing::trace!(committed = committed.join(" "), hypothesis = keys.join(" "), n, "aligned");
            words.drain(..n);
            return words;
        }
        for n in (1..=words.len().min(self.committed.len()).min(5)).rev() {
            let tail = &self.committed[self.committed.len() - n..];
            if words[..n].iter().map(|w| key(&w.text)).eq(tail.iter().map(|t| key(t))) {
                words.drain(..n);
                break;
            }
        }
        words
    }

    /// One pass over the buffer: decode it, commit what is settled. `last`: the stream ended.
    fn pass(&mut self, last: bool, out: &mut Vec<Transcript>) -> Result<()> {
        let total = self.input.total_frames();
        self.passed_at = total;
        // What the window cannot hold is skipped.
        if total.saturating_sub(self.start) > WINDOW_FRAMES {
            self.skip_to(total - frames(Ts(self.cfg.max_buffer_ms)), out);
        }
        let size = total - self.start;
        if size < 10 || (size < frames(Ts(MIN_BUFFER_MS)) && !last) {
            return Ok(());
        }
        let offset = offset_of(self.start);
        let end = offset_of(total);
        let act = self.input.activity(self.start, size);
        let pad = Ts(self.input.opts.vad.pad_ms);
        let Some(speech_end) = act.speech.last().map(|r| r.end) else {
            // Nothing said: the silence is not decoded again.
            self.tentative.clear();
            self.move_start(total.saturating_sub(frames(pad)));
            return Ok(());
        };
        // Speech starts later: start there.
        let first = act.speech[0].start;
        if frames(first - pad) > self.start {
            self.move_start(frames(first - pad));
            return self.pass(last, out);
        }
        let t0 = std::time::Instant::now();
        let input = &mut self.input;
        let encoded = encoder_window(size, self.cfg.window_after().map(frames));
        let mel = normalize_chunk_to(input.mel(self.start, total), input.n_mels, encoded);
        let audio = input.model.encode(mel, 1).map_err(|e| input.err(offset, e))?;
        let encode_s = t0.elapsed().as_secs_f64();
        let window = Span::new(offset, end);
        let memory = input.memory(window)?;
        input.windows += 1;
        input.detect_language(&audio, memory.as_ref(), offset)?;
        // No temperature fallback: a pass that fails is decoded again by the next one, with more
        // audio, instead of holding everything up for seconds.
        let mut opts = input.opts.decode.clone();
        opts.temperatures.truncate(1);
        if self.degraded {
            opts.beam_size = 1;
        }
        // The bound is the window's own (not the options'): another stream's pass, with
        // another, can be decoded beside it in the shared model stage.
        let bound = max_new_tokens(end - offset);
        let seed = window_seed(input.opts.decode.seed, self.start);
        let request = |prompt| DecodeRequest {
            audio: audio.clone(),
            starts: vec![WindowStart { prompt, seed, max_new_tokens: Some(bound) }],
            opts: opts.clone(),
            memory: memory.clone(),
        };
        let prompt = input.prompt(window, true);
        let prompted = !prompt.is_empty();
        let mut r = input.model.decode(request(prompt)).map_err(|e| input.err(offset, e))?.remove(0);
        let loops = |r: &crate::infer::decode::DecodeResult| r.looping || r.tokens.len() >= bound;
        if loops(&r) && prompted {
            tracing::debug!(buffer = %offset, "a pass looped: decoded again without the prompt");
            r = input.model.decode(request(Vec::new())).map_err(|e| input.err(offset, e))?.remove(0);
        }
        let decode_s = t0.elapsed().as_secs_f64() - encode_s;
        let prev_speech = input.last_speech;
        let looping = loops(&r);
        let segments = match input.segments_of(&r, &audio, memory.as_ref(), self.start, size, true)? {
            Some((segments, _)) if !looping => input.keep_spoken(segments, &act, offset, true, prev_speech),
            _ => Vec::new(),
        };
        let words: Vec<Word> = segments.into_iter().flat_map(|s| s.words).collect();
        if tracing::enabled!(tracing::Level::TRACE) {
            let kept: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
            let text = input.model.tokenizer().decode(&r.tokens);
            tracing::trace!(
                no_speech = r.no_speech_prob,
                logprob = r.avg_logprob,
                looping,
                "decoded: {text} | kept: {}",
                kept.join(" ")
            );
        }
        // Whisper sometimes ends its text early, a sentence or more before the buffer's speech
        // ends (most often after the committed words the buffer starts with): decoded again
        // from the last committed word ([`restart_at`]), the rest is heard.
        let heard_to = words.last().map_or(self.committed_until, |w| w.span.end.max(self.committed_until));
        let committed_end = frames(self.committed_until);
        let unheard_limit = Ts(if last { UNHEARD_AT_END_MS } else { UNHEARD_SPEECH_MS });
        let unheard = unheard_speech(&act.speech, heard_to);
        let stalled = unheard >= Ts(STALLED_MS);
        let restart =
            restart_at(&act.speech, self.in_buffer.last().map(|w| w.span), committed_end, self.start, stalled);
        if let Some(to) = restart.filter(|_| unheard >= unheard_limit) {
            tracing::debug!(buffer = %offset, heard_to = %heard_to, stalled, restart = %offset_of(to), "a pass stopped short of the speech: decoded again from the last committed word");
            self.note_pass(t0.elapsed().as_secs_f64());
            self.move_start(to);
            // This pass's tensors are let go before the next is decoded (memory stays a pass's).
            drop((audio, memory, r, words));
            return self.pass(last, out);
        }
        let hypothesis = without_unplaced(self.new_words(words), self.committed_until, &self.committed);
        let pass_s = t0.elapsed().as_secs_f64();
        self.note_pass(pass_s);

        let Committable { n, agreed, held, paused, spoken } =
            committable(&self.cfg, &self.tentative, &hypothesis, end, speech_end, last);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let text: Vec<String> = hypothesis
                .iter()
                .map(|w| format!("{}|{:.2}|{:.2}", w.text, w.probability, w.span.end.secs_f64()))
                .collect();
            let window = offset_of(encoded);
            tracing::debug!(buffer = %offset, end = %end, %window, agreed, held, paused, commit = n, pass_s, encode_s, decode_s, "pass: {}", text.join(" "));
        }
        let mut hypothesis = hypothesis;
        let rest = hypothesis.split_off(n);
        self.commit(hypothesis, Some(&r), pass_s, out);
        self.tentative = if last { Vec::new() } else { rest };
        let heard: Vec<String> = self.tentative.iter().map(|w| w.text.clone()).collect();
        if heard != self.partial {
            out.push(Transcript::Live(LiveNote::Partial(self.tentative.clone())));
            self.partial = heard;
        }
        // The pause is said once every word before it is committed.
        if paused && !last && speech_end > self.paused_at && n == spoken {
            self.paused_at = speech_end;
            // The buffer keeps the speech before the pause: what follows is decoded after it,
            // as Whisper decodes best (a buffer that starts at new speech invents words).
            out.push(Transcript::Live(LiveNote::Pause(speech_end)));
            self.tentative.clear();
        }
        self.trim();
        Ok(())
    }

    /// A pass (see [`Self::pass`]); until the next, the stage waits for audio, whether this one
    /// decoded anything or not: the other streams' passes need not wait for it at the shared
    /// model.
    fn pass_then_wait(&mut self, out: &mut Vec<Transcript>) -> Result<()> {
        let r = self.pass(false, out);
        self.input.model.idle();
        r
    }

    /// Cuts the buffer after its last committed sentence once long, after its last committed
    /// word once too long.
    fn trim(&mut self) {
        let length = offset_of(self.input.total_frames() - self.start);
        if length < Ts(self.cfg.trim_ms) || self.committed_until <= offset_of(self.start) {
            return;
        }
        if self.last_ends_sentence || length >= Ts(self.cfg.max_buffer_ms) {
            self.move_start(frames(self.committed_until));
        }
    }

    /// Keeps the pass times; decoding is cut down while passes are slow, and restored when fast.
    fn note_pass(&mut self, pass_s: f64) {
        self.status.passes += 1;
        self.busy_s += pass_s;
        self.pass_times.push_back(pass_s);
        if self.pass_times.len() > 5 {
            self.pass_times.pop_front();
        }
        let mean = self.pass_times.iter().sum::<f64>() / self.pass_times.len() as f64;
        let limit = self.cfg.degrade_pass_ms as f64 / 1000.0;
        let degraded = if self.degraded { mean > limit / 2.0 } else { mean > limit };
        if degraded != self.degraded {
            tracing::info!(
                pass_s = mean,
                degraded,
                "live decoding {}",
                if degraded { "cut down to keep up" } else { "restored" }
            );
            self.degraded = degraded;
        }
        self.status.pass_s = mean;
        self.status.degraded = self.degraded as u8;
    }

    /// A status note once `status_every_ms` of stream time went by since the last.
    fn maybe_status(&mut self, out: &mut Vec<Transcript>) {
        let now = offset_of(self.input.total_frames());
        let heard = now - self.heard_from;
        if heard < Ts(self.cfg.status_every_ms) {
            return;
        }
        let s = &mut self.status;
        s.at = now.secs_f64();
        s.rtf = self.busy_s / heard.secs_f64();
        let n = self.latencies.len().max(1) as f64;
        s.latency_s = self.latencies.iter().sum::<f64>() / n;
        s.latency_max_s = self.latencies.iter().copied().fold(0.0, f64::max);
        out.push(Transcript::Live(LiveNote::Status(s.clone())));
        crate::release_free_memory();
        self.latencies.clear();
        self.busy_s = 0.0;
        self.heard_from = now;
    }
}

impl Stage for StreamingStage {
    type In = ModelInput;
    type Out = Transcript;
    const NAME: &'static str = "model";

    fn process(&mut self, item: ModelInput, out: &mut Vec<Transcript>) -> Result<()> {
        self.input.take(item, out);
        if self.new_audio() >= Ts(self.cfg.max_step_ms) {
            self.pass_then_wait(out)?;
        }
        self.maybe_status(out);
        Ok(())
    }

    fn idle(&mut self, out: &mut Vec<Transcript>) -> Result<()> {
        if self.new_audio() >= Ts(self.cfg.min_step_ms) {
            self.pass_then_wait(out)?;
            self.maybe_status(out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Transcript>) -> Result<()> {
        if self.input.total_frames() > self.start {
            self.pass(true, out)?;
        }
        let words = std::mem::take(&mut self.tentative);
        self.commit(words, None, 0.0, out);
        self.input.model.leave();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_encoder_window_holds_the_buffer_and_more_in_steps() {
        assert_eq!(encoder_window(1234, None), WINDOW_FRAMES);
        // 12.34 s of buffer and 8 s more: 20.34 s, in 4 s steps 24 s.
        assert_eq!(encoder_window(1234, Some(800)), 2400);
        assert_eq!(encoder_window(800, Some(800)), 1600);
        assert_eq!(encoder_window(2800, Some(800)), WINDOW_FRAMES);
    }

    #[test]
    fn speech_after_the_words_heard_is_measured() {
        let speech = [Span::new(Ts(0), Ts(2000)), Span::new(Ts(3000), Ts(4500))];
        // Words up to the end: nothing unheard. Words stopping inside the first region, and
        // before the second: the rest of both, the silence between not counted.
        assert_eq!(unheard_speech(&speech, Ts(4500)), Ts(0));
        assert_eq!(unheard_speech(&speech, Ts(1500)), Ts(500 + 1500));
        assert_eq!(unheard_speech(&speech, Ts(2500)), Ts(1500));
        assert_eq!(unheard_speech(&speech, Ts(0)), Ts(3500));
    }

    #[test]
    fn a_pass_may_decode_twice_what_fast_speech_takes_and_no_more() {
        // Fast speech: the mix's fastest passes held 24 characters a second, about 6 tokens
        // with timestamps.
        for s in [1, 3, 10, 20] {
            assert!(max_new_tokens(Ts(s * 1000)) >= 2 * 6 * s as usize + 2, "{s} s");
        }
        // A 3 s buffer's loop stops at a quarter of the 224 tokens it could run to.
        assert!(max_new_tokens(Ts(3000)) <= 224 / 3);
    }

    #[test]
    fn a_pass_that_stopped_short_starts_again_at_the_last_word_inside_speech_after_it_at_a_pause() {
        let speech = [Span::new(Ts(0), Ts(4000)), Span::new(Ts(5000), Ts(9000))];
        let word = Span::new(Ts(1000), Ts(1800));
        let at = |last: Span, start: i64| restart_at(&speech, Some(last), 0, frames(Ts(start)), false);
        // Mid-phrase: from the word's start; not from its end, mid-phrase (where the buffer
        // starts at the word already), until passes from there stalled.
        assert_eq!(at(word, 0), Some(frames(Ts(1000))));
        assert_eq!(at(word, 1000), None);
        let stalled = |last: Span, start: i64| restart_at(&speech, Some(last), 0, frames(Ts(start)), true);
        assert_eq!(stalled(word, 1000), Some(frames(Ts(1800))));
        assert_eq!(stalled(word, 0), Some(frames(Ts(1000))));
        assert_eq!(stalled(word, 1800), None);
        // The word ends before a pause: from its end. No word in the buffer: where they end.
        assert_eq!(at(Span::new(Ts(3500), Ts(4000)), 0), Some(frames(Ts(4000))));
        assert_eq!(at(Span::new(Ts(3500), Ts(4300)), 0), Some(frames(Ts(4300))));
        assert_eq!(restart_at(&speech, None, frames(Ts(2000)), 0, true), Some(frames(Ts(2000))));
    }
}
