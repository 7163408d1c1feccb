//! Training data: (video, .srt) pairs read through the inference stages, cut into the windows
//! inference would decode, each with the prompt and memory inference would give it.
//!
//! A file runs through the stages as state machines, driven here in order instead of on threads:
//! the source, `PreprocessStage` (log-mel, stills), `VisualStage` (on-screen text, picture
//! tokens). Windows are planned as the sequential model stage plans them
//! (`infer::sequential::plan`: skip silence, start where speech starts); where that stage seeks
//! to the end of the last complete segment it decoded, a training window ends after the last
//! reference cue that fits in it, and the next starts there. A window's prompt is its context
//! terms and the reference text before it (`build_prompt`, the same as inference with the text
//! it decoded); its memory is `fusion_memory`'s.

use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::flow::{Routed, Stage};
use crate::infer::input::{build_prompt, offset_of};
use crate::infer::sequential::{plan, Plan};
use crate::infer::TranscribeOptions;
use crate::model::{Encoded, Whisper};
use crate::preprocess::mel::{normalize_window, WINDOW_FRAMES};
use crate::preprocess::{Features, PreprocessStage};
use crate::time::{Span, Ts};
use crate::train::TrainJob;
use crate::visual::ocr::OcrReader;
use crate::visual::VisualStage;

/// A reference cue starting at most this long before a window is given to it (at the window's
/// start): voice activity can start a window a little after a subtitler's in-time.
const EARLY_CUE: Ts = Ts(500);

/// One window of one file, encoded.
pub(crate) struct Example {
    /// From the frozen encoder.
    pub(crate) audio: Encoded,
    /// The window's context: on-screen text and pictures near it.
    pub(crate) context: Context,
    pub(crate) window: Span,
    /// Context terms, then the reference text before the window.
    pub(crate) prompt: Vec<u32>,
    /// The cue tokens: timestamps and text, then `<|endoftext|>`.
    pub(crate) target: Vec<u32>,
    /// The reference text of the window.
    pub(crate) reference: String,
}

/// The (video, .srt) pairs of `dir`: every file with a same-named `.srt` beside it.
pub fn pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::input(dir, format!("cannot list training data: {e}")))?;
    let mut out: Vec<(PathBuf, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "srt" && e != "txt" && e != "terms"))
        .filter_map(|p| {
            let srt = p.with_extension("srt");
            srt.is_file().then_some((p, srt))
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(Error::input(dir, "no (video, .srt) pairs: each video needs a same-named .srt beside it"));
    }
    Ok(out)
}

/// A reference cue: its span and its text on one line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefCue {
    pub(crate) span: Span,
    pub(crate) text: String,
}

/// The cues of a SubRip file.
fn reference_cues(srt: &Path) -> Result<Vec<RefCue>> {
    let text = std::fs::read_to_string(srt).map_err(|e| Error::input(srt, e))?;
    let cues = srtlib::Subtitles::parse_from_str(text)
        .map_err(|e| Error::input(srt, format!("not a SubRip file: {e}")))?
        .to_vec();
    let ms = |t: &srtlib::Timestamp| {
        let (h, m, s, milli) = t.get();
        Ts(((h as i64 * 60 + m as i64) * 60 + s as i64) * 1000 + milli as i64)
    };
    Ok(cues
        .iter()
        .map(|c| RefCue {
            span: Span::new(ms(&c.start_time), ms(&c.end_time)),
            text: c.text.replace('\n', " ").trim().to_string(),
        })
        .collect())
}

/// The windows of a file with `n_frames` mel frames (`frames`, raw log-mel) and reference cues
/// `cues`: each window's first frame, its frames of content, and the cues it teaches (those
/// that start in it, or just before, and end in it). Planned as the sequential stage plans.
pub(crate) fn plan_windows(
    frames: &[f32],
    n_mels: usize,
    cues: &[RefCue],
    opts: &TranscribeOptions,
) -> Vec<(usize, usize, Vec<RefCue>)> {
    let n_frames = frames.len() / n_mels;
    let mut out = Vec::new();
    let mut seek = 0;
    while seek < n_frames {
        let size = (n_frames - seek).min(WINDOW_FRAMES);
        match plan(&frames[seek * n_mels..(seek + size) * n_mels], n_mels, opts.silence_log_mel, &opts.vad) {
            Plan::Silent(n) | Plan::NoSpeech(n) => {
                seek += n;
                continue;
            }
            Plan::StartLater(first) => {
                seek += first;
                continue;
            }
            Plan::Decode => {}
        }
        let (from, to) = (offset_of(seek), offset_of(seek + size));
        let inside: Vec<RefCue> = cues
            .iter()
            .filter(|c| c.span.start >= from - EARLY_CUE && c.span.end <= to && c.span.end > from)
            .map(|c| RefCue { span: Span::new(c.span.start.max(from), c.span.end), text: c.text.clone() })
            .collect();
        // A cue that starts in the window but ends after it is the next window's, which starts
        // where the last whole cue ended (as inference seeks to its last complete segment).
        let cut_off = cues.iter().any(|c| c.span.start >= from && c.span.start < to && c.span.end > to);
        let advance = match inside.last() {
            Some(last) if cut_off => (((last.span.end - from).ms() / 10) as usize).max(1),
            _ => size,
        };
        out.push((seek, size, inside));
        seek += advance;
    }
    out
}

/// Reads and encodes every window of `video` with its reference cues from `srt`.
pub(crate) fn load_file(video: &Path, srt: &Path, job: &TrainJob, whisper: &Whisper) -> Result<Vec<Example>> {
    let tok = &job.tokenizer;
    let n_mels = job.model.config.dims.n_mels;
    let mut source = crate::source::open(video, &job.pipeline.video)?;
    let mut pre = PreprocessStage::new(n_mels, job.pipeline.shots.clone(), true);
    let ocr = job.ocr.clone().map(|c| OcrReader::new(c, video.to_path_buf())).transpose()?;
    let mut visual = VisualStage::new(ocr, Some(job.images.clone()), video.to_path_buf());
    let mut context = Context::new(job.pipeline.context.clone());
    let mut frames: Vec<f32> = Vec::new();
    let (mut media, mut routed, mut seen) = (Vec::new(), Vec::new(), Vec::new());
    let mut more = true;
    while more {
        more = source.pull(&mut media)?;
        for m in media.drain(..) {
            pre.process(m, &mut routed)?;
        }
        if !more {
            pre.finish(&mut routed)?;
        }
        for r in routed.drain(..) {
            match r {
                Routed::Main(Features::Mel(chunk)) => frames.extend_from_slice(&chunk.frames),
                Routed::Main(_) => {}
                Routed::Side(still) => visual.process(still, &mut seen)?,
            }
        }
        for s in seen.drain(..) {
            if let Some(lines) = s.lines {
                context.push_screen(s.at, lines);
            }
            if let Some(p) = s.picture {
                context.push_picture(s.at, p);
            }
        }
    }
    let cues = reference_cues(srt)?;
    let opts = TranscribeOptions { vad: job.pipeline.vad.clone(), ..Default::default() };
    let fail = |e: candle_core::Error| Error::input(video, format!("training features: {e}"));
    let mut previous: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    for (first, size, inside) in plan_windows(&frames, n_mels, &cues, &opts) {
        if inside.is_empty() {
            continue;
        }
        let window = Span::new(offset_of(first), offset_of(first + WINDOW_FRAMES));
        let prompt = build_prompt(&context, window, tok, &previous, whisper.decoder.n_ctx());
        let mut target = Vec::new();
        for c in &inside {
            let ts = |t: Ts| tok.timestamp_begin + ((t - window.start).ms() as f64 / 20.0).round() as u32;
            target.push(ts(c.span.start));
            target.extend(tok.encode(&format!(" {}", c.text)));
            target.push(ts(c.span.end));
        }
        previous.extend_from_slice(&target);
        target.push(tok.eot);
        let mel = normalize_window(&frames[first * n_mels..(first + size) * n_mels], n_mels);
        let mel = candle_core::Tensor::from_vec(mel, (1, n_mels, WINDOW_FRAMES), whisper.device()).map_err(fail)?;
        let audio = Encoded::new(whisper.encoder.forward(&mel).map_err(fail)?);
        let reference = inside.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join(" ");
        out.push(Example { audio, context: context.clone(), window, prompt, target, reference });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(a: i64, b: i64) -> RefCue {
        RefCue { span: Span::new(Ts(a), Ts(b)), text: format!("{a}") }
    }

    /// Loud, varying "speech" where `speech(frame)` says so, digital silence elsewhere.
    fn frames(n: usize, speech: impl Fn(usize) -> bool) -> Vec<f32> {
        let n_mels = 4;
        (0..n)
            .flat_map(|f| {
                let on = speech(f);
                (0..n_mels).map(move |m| if on { -1.0 + ((f * 7 + m * 3) % 11) as f32 * 0.3 } else { -10.0 })
            })
            .collect()
    }

    #[test]
    fn windows_start_at_speech_and_end_after_the_last_whole_cue() {
        let opts = TranscribeOptions::default();
        // Silence, then speech from 5 s to 65 s.
        let f = frames(7000, |f| (500..6500).contains(&f));
        let cues =
            [cue(5000, 12_000), cue(12_500, 24_000), cue(24_500, 38_000), cue(38_500, 50_000), cue(51_000, 64_000)];
        let windows = plan_windows(&f, 4, &cues, &opts);
        let starts: Vec<usize> = windows.iter().map(|w| w.0).collect();
        // The first window starts where speech does (within the voice detector's padding);
        // the third cue runs past its end, so the next window starts after the second.
        assert!((480..=500).contains(&starts[0]), "{starts:?}");
        assert_eq!(windows[0].2, vec![cue(5000, 12_000), cue(12_500, 24_000)]);
        assert_eq!(starts[1], 2400);
        assert_eq!(windows[1].2.first(), Some(&cue(24_500, 38_000)));
        // Every cue is taught once.
        let taught: Vec<i64> = windows.iter().flat_map(|w| w.2.iter().map(|c| c.span.end.ms())).collect();
        assert_eq!(taught, vec![12_000, 24_000, 38_000, 50_000, 64_000]);
    }
}
