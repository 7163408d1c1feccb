//! The sequential model stage: 30 s windows one after another, each decoded after the text
//! before it, seeking to the end of the last complete segment so that words at a window's edge
//! are decoded again in the next window rather than lost (OpenAI's `transcribe.py`). Windows
//! start where speech starts ([`plan`]); training cuts its windows with the same plan.

use crate::error::Result;
use crate::flow::Stage;
use crate::infer::decode::{window_seed, WindowStart};
use crate::infer::input::{offset_of, Input, FRAME_MS};
use crate::infer::segments::resume_point;
use crate::infer::transcriber::DecodeRequest;
use crate::infer::ModelInput;
use crate::preprocess::mel::{normalize_window, WINDOW_FRAMES};
use crate::preprocess::vad::{activity, VadConfig};
use crate::segment::Transcript;

/// What to do with the window at a frame, from its mel frames alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Digital silence: move on this many frames.
    Silent(usize),
    /// Neither speech nor other sound (quiet, or held tones): move on this many frames.
    NoSpeech(usize),
    /// Speech (or other sound) starts this many frames in: start the window there (Whisper times
    /// and hears better so).
    StartLater(usize),
    /// Decode it.
    Decode,
}

/// The plan for a window whose content is `content` (raw log-mel, `n_mels` a frame).
pub fn plan(content: &[f32], n_mels: usize, silence_log_mel: f32, vad: &VadConfig) -> Plan {
    let size = content.len() / n_mels;
    if content.iter().all(|&x| x < silence_log_mel) {
        return Plan::Silent(size);
    }
    let act = activity(content, n_mels, vad);
    // Start at speech; without any, at other sound (speech under music may hide there). Only
    // quiet and held tones are skipped undecoded.
    match act.speech.iter().position(|&f| f).or_else(|| act.sound.iter().position(|&f| f)) {
        None => Plan::NoSpeech(size),
        Some(first) if first > 0 => Plan::StartLater(first),
        Some(_) => Plan::Decode,
    }
}

pub struct SequentialStage {
    input: Input,
    /// Absolute frame the next window starts at.
    seek: usize,
    /// The window at `seek` was moved forward to where speech starts.
    seeked_to_speech: bool,
    /// The window at `seek` starts at speech the last one passed over: it is decoded without the
    /// text before it (which led the decoder past that speech).
    unprompted: bool,
}

impl SequentialStage {
    pub(crate) fn new(input: Input) -> Self {
        Self { input, seek: 0, seeked_to_speech: false, unprompted: false }
    }

    pub(crate) fn input(&self) -> &Input {
        &self.input
    }

    /// Decodes the window at `seek`, holding `size` frames of content, and moves `seek` on.
    fn run_window(&mut self, size: usize, out: &mut Vec<Transcript>) -> Result<()> {
        let input = &mut self.input;
        let (seek, n_mels) = (self.seek, input.n_mels);
        let content = input.mel(seek, seek + size);
        match plan(content, n_mels, input.opts.silence_log_mel, &input.opts.vad) {
            Plan::Silent(n) => {
                tracing::debug!(at = %offset_of(seek), "silent window skipped");
                self.seek += n;
                return Ok(());
            }
            Plan::NoSpeech(n) => {
                tracing::debug!(at = %offset_of(seek), "window without speech skipped");
                self.seeked_to_speech = false;
                self.seek += n;
                return Ok(());
            }
            Plan::StartLater(first) => {
                self.seek += first;
                self.seeked_to_speech = true;
                return Ok(());
            }
            Plan::Decode => {}
        }
        let seeked = std::mem::take(&mut self.seeked_to_speech);
        let act = input.activity(seek, size);
        let mel = normalize_window(content, n_mels);
        let offset = offset_of(seek);
        let t0 = std::time::Instant::now();
        let audio = input.model.encode(mel, 1).map_err(|e| input.err(offset, e))?;
        let encode_ms = t0.elapsed().as_millis() as u64;
        let window = Input::window(seek);
        let memory = input.memory(window)?;
        input.count_windows(1);
        input.detect_language(&audio, memory.as_ref(), offset)?;
        let prompted = !std::mem::take(&mut self.unprompted);
        let prompt = input.prompt(window, prompted);
        let t0 = std::time::Instant::now();
        let request = DecodeRequest {
            audio: audio.clone(),
            starts: vec![WindowStart::new(prompt, window_seed(input.opts.decode.seed, seek))],
            opts: input.opts.decode.clone(),
            memory: memory.clone(),
        };
        let r = input.model.decode(request).map_err(|e| input.err(offset, e))?.remove(0);
        tracing::debug!(at = %offset, encode_ms, decode_ms = t0.elapsed().as_millis() as u64, "decoded");
        let prev_speech = input.last_speech;
        let Some((mut segments, mut advance)) = input.segments_of(&r, &audio, memory.as_ref(), seek, size, false)?
        else {
            self.seek += size;
            return Ok(());
        };
        // Speech the decoding left unheard is decoded again by the next window, which starts
        // there, without the text before it: speech passed over among the segments (those after
        // it are dropped, and decoded again; where it starts the window, the window itself is
        // decoded again once), or after the last one where the decoder stopped early (a prompt of
        // terms makes that likelier) though it claimed the whole window.
        if let Some(resume) = resume_point(&segments, &act.speech, offset, prompted) {
            let passed_over = resume.drops(&segments);
            if passed_over || advance == size {
                input.keep_before(&mut segments, resume, prev_speech);
                advance = advance.min(((resume.at - offset).ms() / FRAME_MS) as usize);
                self.unprompted = passed_over;
                if advance == 0 {
                    self.seeked_to_speech = seeked;
                    return Ok(());
                }
            }
        }
        let segments = input.keep_spoken(segments, &act, offset, seeked, prev_speech);
        let segments = input.drop_loops(segments);
        input.remember(&segments, r.temperature);
        out.extend(segments.into_iter().map(Transcript::Segment));
        self.seek += advance.max(1);
        Ok(())
    }
}

impl Stage for SequentialStage {
    type In = ModelInput;
    type Out = Transcript;
    const NAME: &'static str = "model";

    fn process(&mut self, item: ModelInput, out: &mut Vec<Transcript>) -> Result<()> {
        self.input.take(item, out);
        while self.input.total_frames() >= self.seek + WINDOW_FRAMES
            && self.input.screen_until >= offset_of(self.seek + WINDOW_FRAMES)
        {
            self.run_window(WINDOW_FRAMES, out)?;
            self.input.forget_before(self.seek);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Transcript>) -> Result<()> {
        while self.seek < self.input.total_frames() {
            let size = (self.input.total_frames() - self.seek).min(WINDOW_FRAMES);
            self.run_window(size, out)?;
            self.input.forget_before(self.seek);
        }
        self.input.model.leave();
        Ok(())
    }
}
