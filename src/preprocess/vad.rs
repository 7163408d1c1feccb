//! Voice activity from log-mel frames: an energy detector with an adaptive noise floor and a
//! spectral-change test, so silence, hum and held tones or notes are not taken for speech.
//! Regions are smoothed (short gaps closed, blips dropped) and padded. Whisper's no-speech
//! probability (in `infer`) then judges what this lets through.
//!
//! Speech changes its spectrum all the time (measured: median change over 150 ms at least 2 dB
//! on our clips, real and synthetic); a held note or hum barely changes (below 0.1 dB). The
//! detector is deliberately simple: no model to fetch, no cost worth measuring.

use serde::Deserialize;

use crate::preprocess::median_filter;
use crate::runs::runs_of;
use crate::time::{Span, Ts};

/// Milliseconds per mel frame.
const FRAME_MS: i64 = 10;
/// Frames over which spectral change is judged (its median).
const CHANGE_FRAMES: usize = 15;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VadConfig {
    /// Turn voice activity detection off: every window is decoded, as Whisper alone does.
    pub enabled: bool,
    /// A frame is loud enough for speech this many dB above the noise floor (the 10th percentile
    /// of frame energy over the window).
    pub floor_margin_db: f32,
    /// Frames quieter than this (dB, log-mel scale; about -70 dBFS) are never speech.
    pub min_energy_db: f32,
    /// Median spectral change over 150 ms (dB per frame) below which sound is a held tone.
    pub min_change_db: f32,
    /// Gaps shorter than this inside speech are closed.
    pub min_silence_ms: i64,
    /// Speech regions shorter than this are dropped.
    pub min_speech_ms: i64,
    /// Each region is widened by this much on both sides.
    pub pad_ms: i64,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            floor_margin_db: 10.0,
            min_energy_db: -50.0,
            min_change_db: 1.0,
            min_silence_ms: 300,
            min_speech_ms: 120,
            pad_ms: 150,
        }
    }
}

impl VadConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.min_change_db < 0.0 {
            return Err("vad.min_change_db must not be negative".into());
        }
        if self.min_silence_ms < 0 || self.min_speech_ms < 0 || self.pad_ms < 0 {
            return Err("vad durations must not be negative".into());
        }
        Ok(())
    }
}

/// Energy of one raw log10 mel frame, in dB, over the bands from about 100 Hz up (mains hum and
/// rumble say nothing about speech).
pub fn frame_energy_db(frame: &[f32]) -> f32 {
    let total: f32 = frame[frame.len().min(3)..].iter().map(|&m| 10f32.powf(m)).sum();
    10.0 * total.max(1e-10).log10()
}

/// Mean change in dB from `prev` to `cur` over the bands within 30 dB of `cur`'s strongest.
pub fn spectral_flux(prev: &[f32], cur: &[f32]) -> f32 {
    let max = cur.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (sum, n) = prev
        .iter()
        .zip(cur)
        .filter(|(_, &c)| c > max - 3.0)
        .fold((0f32, 0usize), |(s, n), (&p, &c)| (s + (c - p).abs(), n + 1));
    if n == 0 {
        0.0
    } else {
        10.0 * sum / n as f32
    }
}

/// What the detector found in a run of frames, one flag a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Speech: loud above the floor and changing, smoothed and padded.
    pub speech: Vec<bool>,
    /// Any changing sound above the absolute minimum, speech or not (speech under music is
    /// often no louder than the music): only where this is false is the audio certainly not
    /// speech, so only there may audio be skipped undecoded.
    pub sound: Vec<bool>,
}

/// Voice activity of `frames` (raw log10 mel, frame-major, `n_mels` a frame) per `cfg`.
pub fn activity(frames: &[f32], n_mels: usize, cfg: &VadConfig) -> Activity {
    let n = frames.len() / n_mels;
    if !cfg.enabled {
        return Activity { speech: vec![true; n], sound: vec![true; n] };
    }
    let energy: Vec<f32> = frames.chunks_exact(n_mels).map(frame_energy_db).collect();
    let change: Vec<f32> = (0..n)
        .map(|i| {
            if i == 0 {
                0.0
            } else {
                spectral_flux(&frames[(i - 1) * n_mels..i * n_mels], &frames[i * n_mels..(i + 1) * n_mels])
            }
        })
        .collect();
    let change = median_filter(&change, CHANGE_FRAMES);
    let mut sorted = energy.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted.get(n / 10).copied().unwrap_or(f32::NEG_INFINITY);
    let threshold = (floor + cfg.floor_margin_db).max(cfg.min_energy_db);
    let changing = |c: f32| c >= cfg.min_change_db;
    let speech: Vec<bool> = energy.iter().zip(&change).map(|(&e, &c)| e > threshold && changing(c)).collect();
    let sound: Vec<bool> = energy.iter().zip(&change).map(|(&e, &c)| e > cfg.min_energy_db && changing(c)).collect();
    Activity { speech: smooth(speech, cfg), sound: smooth(sound, cfg) }
}

/// Speech flags only (see [`activity`]).
pub fn speech_frames(frames: &[f32], n_mels: usize, cfg: &VadConfig) -> Vec<bool> {
    activity(frames, n_mels, cfg).speech
}

/// Majority vote over 50 ms, short gaps closed, blips dropped, regions padded.
fn smooth(mut flags: Vec<bool>, cfg: &VadConfig) -> Vec<bool> {
    let n = flags.len();
    smooth_majority(&mut flags, 5);
    let gap = (cfg.min_silence_ms / FRAME_MS) as usize;
    let min_len = (cfg.min_speech_ms / FRAME_MS) as usize;
    let pad = (cfg.pad_ms / FRAME_MS) as usize;
    fill_runs(&mut flags, false, gap, true);
    fill_runs(&mut flags, true, min_len, false);
    let mut padded = flags.clone();
    for (i, &s) in flags.iter().enumerate() {
        if s {
            let (a, b) = (i.saturating_sub(pad), (i + pad + 1).min(n));
            padded[a..b].iter_mut().for_each(|p| *p = true);
        }
    }
    padded
}

/// Majority vote over a centred window of `width` frames.
fn smooth_majority(flags: &mut [bool], width: usize) {
    let src = flags.to_vec();
    let half = width / 2;
    for (i, f) in flags.iter_mut().enumerate() {
        let (a, b) = (i.saturating_sub(half), (i + half + 1).min(src.len()));
        let on = src[a..b].iter().filter(|&&s| s).count();
        *f = on * 2 > b - a;
    }
}

/// Runs of `value` shorter than `max_len` become `!value`; with `interior_only`, only runs with
/// the other value on both sides (gaps inside speech, not lead or tail silence).
fn fill_runs(flags: &mut [bool], value: bool, max_len: usize, interior_only: bool) {
    let n = flags.len();
    let runs: Vec<_> = runs_of(flags, value).collect();
    for run in runs {
        let interior = run.start > 0 && run.end < n;
        if run.len() < max_len && (interior || !interior_only) {
            flags[run].iter_mut().for_each(|f| *f = !value);
        }
    }
}

/// Speech regions of per-frame `flags`, the first frame at `origin`.
pub fn regions(flags: &[bool], origin: Ts) -> Vec<Span> {
    let at = |frame: usize| origin + Ts(frame as i64 * FRAME_MS);
    runs_of(flags, true).map(|run| Span::new(at(run.start), at(run.end))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::mel::LogMel;

    fn mel(samples: &[f32]) -> Vec<f32> {
        let mut m = LogMel::new(80);
        let mut f = Vec::new();
        m.push(samples, &mut f);
        m.flush(&mut f);
        f
    }

    /// 16 kHz noise bursts shaped like syllables (4 a second), a crude stand-in for speech.
    fn babble(secs: f32) -> Vec<f32> {
        let mut x = 12345u32;
        (0..(secs * 16000.0) as usize)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let noise = (x as f32 / u32::MAX as f32) - 0.5;
                let env = (std::f32::consts::PI * 4.0 * i as f32 / 16000.0).sin().abs();
                0.5 * noise * env
            })
            .collect()
    }

    #[test]
    fn silence_then_babble_starts_speech_near_its_onset() {
        let mut audio = vec![0.0f32; 16000];
        audio.extend(babble(2.0));
        audio.extend(vec![0.0; 16000]);
        let flags = speech_frames(&mel(&audio), 80, &VadConfig::default());
        let r = regions(&flags, Ts::ZERO);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!((r[0].start.ms() - 1000).abs() <= 200, "{r:?}");
        assert!((r[0].end.ms() - 3000).abs() <= 250, "{r:?}");
    }

    #[test]
    fn a_held_tone_is_not_speech() {
        let audio: Vec<f32> =
            (0..48000).map(|i| 0.3 * (2.0 * std::f32::consts::PI * 523.0 * i as f32 / 16000.0).sin()).collect();
        let flags = speech_frames(&mel(&audio), 80, &VadConfig::default());
        assert!(flags.iter().all(|&f| !f), "{} of {} frames", flags.iter().filter(|&&f| f).count(), flags.len());
    }

    #[test]
    fn short_gaps_close_and_blips_go() {
        let mut f = vec![false, true, true, true, false, false, true, true, true, false, false, false, true, false];
        fill_runs(&mut f, false, 3, true);
        assert_eq!(&f[..9], &[false, true, true, true, true, true, true, true, true]);
        fill_runs(&mut f, true, 2, false);
        assert!(!f[12]);
    }
}
