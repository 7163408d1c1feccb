//! The batched model stage, as faster-whisper's `BatchedInferencePipeline` and WhisperX: speech
//! is cut at pauses into chunks of at most 30 s ([`cut_speech`]), and `batch_size` chunks go
//! through encoder and decoder together, text only (no timestamp tokens: a chunk is one segment,
//! its words timed by alignment). A chunk is decoded without the text before it.

use std::collections::VecDeque;

use crate::error::Result;
use crate::flow::Stage;
use crate::infer::decode::{window_seed, DecodeOptions, DecodeResult, WindowStart};
use crate::infer::input::{offset_of, Input, FRAME_MS};
use crate::infer::segments::resume_point;
use crate::infer::transcriber::DecodeRequest;
use crate::infer::ModelInput;
use crate::model::Encoded;
use crate::preprocess::mel::{normalize_chunk, WINDOW_FRAMES};
use crate::preprocess::vad::{activity, frame_energy_db};
use crate::segment::Transcript;

/// Frames of the pause after a chunk's speech that batched mode keeps with it.
const TRAIL_FRAMES: usize = 50;

/// A chunk of speech: absolute mel frames `start..end`, at most a window, and its encoding once
/// made.
#[derive(Debug, Clone)]
struct Chunk {
    start: usize,
    end: usize,
    audio: Option<Encoded>,
    /// Decoded with timestamps: the rest of a chunk whose decoding passed over speech.
    timed: bool,
}

pub struct BatchedStage {
    input: Input,
    /// Speech flags of the frames from `input.base` to `scanned`.
    speech: Vec<bool>,
    scanned: usize,
    /// The first frame not yet cut into chunks.
    seek: usize,
    /// Chunks cut and waiting for their batch.
    chunks: VecDeque<Chunk>,
    /// The chunks of each batch decoded so far.
    batch_sizes: Vec<usize>,
}

impl BatchedStage {
    pub(crate) fn new(input: Input) -> Self {
        Self { input, speech: Vec::new(), scanned: 0, seek: 0, chunks: VecDeque::new(), batch_sizes: Vec::new() }
    }

    pub(crate) fn input(&self) -> &Input {
        &self.input
    }

    /// The chunks of each batch decoded so far, in order.
    pub fn batch_sizes(&self) -> &[usize] {
        &self.batch_sizes
    }

    /// Voice activity for the frames received, a window at a time (each with its own noise
    /// floor, as a window of the sequential stage), up to the end when `finishing`.
    fn scan(&mut self, finishing: bool) {
        let input = &self.input;
        let total = input.total_frames();
        while total >= self.scanned + WINDOW_FRAMES || (finishing && self.scanned < total) {
            let n = (total - self.scanned).min(WINDOW_FRAMES);
            let act = activity(input.mel(self.scanned, self.scanned + n), input.n_mels, &input.opts.vad);
            self.speech.extend(act.speech);
            self.scanned += n;
        }
    }

    /// Cuts the scanned frames into chunks of speech ([`cut_speech`]).
    fn cut_chunks(&mut self, finishing: bool) {
        let (input, base) = (&self.input, self.input.base);
        let energy = |f: usize| frame_energy_db(input.mel(base + f, base + f + 1));
        let (cuts, next) = cut_speech(&self.speech, energy, self.seek - base, finishing);
        self.chunks.extend(cuts.into_iter().map(|(start, end)| Chunk {
            start: base + start,
            end: base + end,
            audio: None,
            timed: false,
        }));
        self.seek = base + next;
    }

    /// Forgets the frames no chunk still needs.
    fn forget_consumed(&mut self) {
        let keep_from = self.chunks.front().map_or(self.seek, |c| c.start.min(self.seek));
        let consumed = keep_from.saturating_sub(self.input.base).min(self.input.frames.len() / self.input.n_mels);
        self.speech.drain(..consumed.min(self.speech.len()));
        self.input.forget_before(keep_from);
    }

    /// Decodes the chunks waiting, a batch at a time, while a batch is full (or waited long
    /// enough, or the input ended) and the on-screen text for it is known.
    fn run_batches(&mut self, finishing: bool, out: &mut Vec<Transcript>) -> Result<()> {
        if self.input.model.encodes_alone() {
            // A chunk at a time as soon as it is cut: as fast on a CPU as a batch, without a
            // batch's activations, and while the input is still being decoded.
            for i in 0..self.chunks.len() {
                if self.chunks[i].audio.is_none() {
                    let c = &self.chunks[i];
                    let audio = self.encode(std::slice::from_ref(c))?;
                    self.chunks[i].audio = Some(audio);
                }
            }
        }
        let batch_size = self.input.opts.batch_size;
        while let Some(first) = self.chunks.front() {
            let n = batch_size.min(self.chunks.len());
            let waited = self
                .input
                .opts
                .batch_wait
                .is_some_and(|w| offset_of(self.input.total_frames()) - offset_of(first.end) >= w);
            if !(n == batch_size || waited || finishing) {
                return Ok(());
            }
            let last_start = self.chunks[n - 1].start;
            if self.input.screen_until < offset_of(last_start + WINDOW_FRAMES) && !finishing {
                // Its on-screen text is not all read yet.
                return Ok(());
            }
            let batch: Vec<Chunk> = self.chunks.drain(..n).collect();
            self.run_batch(&batch, out)?;
            self.forget_consumed();
        }
        Ok(())
    }

    /// The encoder's output for `chunks`, each padded to a window.
    fn encode(&self, chunks: &[Chunk]) -> Result<Encoded> {
        let input = &self.input;
        let mut mel = Vec::with_capacity(chunks.len() * input.n_mels * WINDOW_FRAMES);
        for c in chunks {
            mel.extend(normalize_chunk(input.mel(c.start, c.end), input.n_mels));
        }
        input.model.encode(mel, chunks.len()).map_err(|e| input.err(offset_of(chunks[0].start), e))
    }

    /// Encodes `batch` as one batch (unless its chunks were encoded as they were cut), decodes
    /// the chunks that share a prompt (the context terms of their windows) as one batch, and
    /// emits their segments in order.
    fn run_batch(&mut self, batch: &[Chunk], out: &mut Vec<Transcript>) -> Result<()> {
        self.batch_sizes.push(batch.len());
        let at = |c: &Chunk| offset_of(c.start);
        let t0 = std::time::Instant::now();
        let encoded = match batch.iter().map(|c| c.audio.as_ref()).collect::<Option<Vec<&Encoded>>>() {
            Some(each) => Encoded::cat(&each).map_err(|e| self.input.err(at(&batch[0]), e))?,
            None => self.encode(batch)?,
        };
        let encode_ms = t0.elapsed().as_millis() as u64;
        let input = &mut self.input;
        let first = encoded.window(0).map_err(|e| input.err(at(&batch[0]), e))?;
        let memory = input.memory(Input::window(batch[0].start))?;
        input.detect_language(&first, memory.as_ref(), at(&batch[0]))?;
        // Chunks with the same prompt decode together; one with a fusion memory decodes alone.
        let mut groups: Vec<(Vec<u32>, Option<candle_core::Tensor>, Vec<usize>)> = Vec::new();
        for (i, c) in batch.iter().enumerate() {
            let window = Input::window(c.start);
            let prompt = input.prompt(window, false);
            let memory = input.memory(window)?;
            match groups.iter_mut().find(|g| memory.is_none() && g.1.is_none() && g.0 == prompt) {
                Some(g) => g.2.push(i),
                None => groups.push((prompt, memory, vec![i])),
            }
        }
        // Text only, as faster-whisper's and WhisperX's batched pipelines: a chunk is one stretch
        // of speech, and alignment times its words.
        let timed = batch.iter().all(|c| c.timed);
        let opts = DecodeOptions { without_timestamps: !timed, ..input.opts.decode.clone() };
        let t0 = std::time::Instant::now();
        let mut results: Vec<Option<DecodeResult>> = vec![None; batch.len()];
        for (prompt, memory, members) in &groups {
            let c = &batch[members[0]];
            let request = DecodeRequest {
                audio: encoded.select(members).map_err(|e| input.err(at(c), e))?,
                starts: members
                    .iter()
                    .map(|&i| WindowStart::new(prompt.clone(), window_seed(opts.seed, batch[i].start)))
                    .collect(),
                opts: opts.clone(),
                memory: memory.clone(),
            };
            let rs = input.model.decode(request).map_err(|e| input.err(at(c), e))?;
            for (&i, r) in members.iter().zip(rs) {
                results[i] = Some(r);
            }
        }
        input.count_windows(batch.len());
        let decode_ms = t0.elapsed().as_millis() as u64;
        let spans: Vec<String> = batch.iter().map(|c| format!("{}-{}", offset_of(c.start), offset_of(c.end))).collect();
        tracing::debug!(chunks = %spans.join(" "), groups = groups.len(), encode_ms, decode_ms, "batch");
        // Each chunk is aligned on its own window; the batch's keys and values go first.
        let audio: Vec<Encoded> = (0..batch.len())
            .map(|i| batch[i].audio.clone().map_or_else(|| encoded.window(i), Ok))
            .collect::<candle_core::Result<_>>()
            .map_err(|e| input.err(at(&batch[0]), e))?;
        drop(encoded);
        for (i, ((c, r), audio)) in batch.iter().zip(results).zip(audio).enumerate() {
            let r = r.expect("every chunk decoded");
            let memory = groups.iter().find(|g| g.2.contains(&i)).and_then(|g| g.1.clone());
            if let Some(rest) = self.emit_chunk(c, &r, &audio, memory.as_ref(), out)? {
                // Decoded alone and at once, so segments stay in order.
                self.run_batch(&[rest], out)?;
            }
        }
        Ok(())
    }

    /// The segments of chunk `c` from its decoding `r`, kept where there is speech, into `out`.
    /// Returns the chunk's rest to decode again where its decoding left speech unheard
    /// ([`resume_point`]: its words after that speech are dropped).
    fn emit_chunk(
        &mut self,
        c: &Chunk,
        r: &DecodeResult,
        audio: &Encoded,
        memory: Option<&candle_core::Tensor>,
        out: &mut Vec<Transcript>,
    ) -> Result<Option<Chunk>> {
        let input = &mut self.input;
        let (size, offset) = (c.end - c.start, offset_of(c.start));
        let act = input.activity(c.start, size);
        let prev_speech = input.last_speech;
        let Some((mut segments, _)) = input.segments_of(r, audio, memory, c.start, size, true)? else {
            return Ok(None);
        };
        // Chunks decode without the text before them, text only: one that passes over speech is
        // decoded again from there with timestamps, once, as the sequential stage's windows are
        // (decoded again text only, such speech was passed over again as often as not: six mixes
        // of the real clips, 8.24% WER against 6.72%; benches/live.md).
        let resume = resume_point(&segments, &act.speech, offset, !c.timed)
            .map(|r| {
                let start = c.start + ((r.at - offset).ms() / FRAME_MS) as usize;
                (r, Chunk { start, end: c.end, audio: None, timed: r.drops(&segments) })
            })
            .filter(|(_, rest)| rest.start < rest.end);
        let rest = resume.map(|(r, rest)| {
            input.keep_before(&mut segments, r, prev_speech);
            rest
        });
        let segments = input.keep_spoken(segments, &act, offset, true, prev_speech);
        let segments = input.drop_loops(segments);
        out.extend(segments.into_iter().map(Transcript::Segment));
        Ok(rest)
    }
}

impl Stage for BatchedStage {
    type In = ModelInput;
    type Out = Transcript;
    const NAME: &'static str = "model";

    fn process(&mut self, item: ModelInput, out: &mut Vec<Transcript>) -> Result<()> {
        self.input.take(item, out);
        self.scan(false);
        self.cut_chunks(false);
        self.run_batches(false, out)
    }

    fn finish(&mut self, out: &mut Vec<Transcript>) -> Result<()> {
        self.scan(true);
        self.cut_chunks(true);
        let done = self.run_batches(true, out);
        // No more batches: a shared model need not wait for this input.
        self.input.model.leave();
        done
    }
}

/// Cuts speech into chunks for batched mode, as faster-whisper's batched pipeline does: a chunk
/// starts where speech does and takes in the speech that ends within a window of its start;
/// speech running on past that is cut at its quietest 200 ms in the window's last third. A chunk
/// keeps up to half a second of the pause after it. `speech`: voice activity of every frame
/// known; `energy(f)`: the loudness of frame `f` in dB. From frame `from` on; a chunk is cut only
/// once a window past its start is known, unless `finishing`. Returns the chunks (frames
/// `start..end`) and the frame the next cut starts from.
pub(crate) fn cut_speech(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
