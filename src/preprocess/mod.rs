//! Preprocess: decoded media in, log-mel frames and shot changes out to the model stage; stills
//! (those that settled and are new with their pixels, as the source chose) out to the visual
//! stages (a side output). Gaps in the audio become
//! silence here, so that every mel frame is 10 ms of media time.

pub mod mel;
pub mod shots;
pub mod vad;

use crate::error::Result;
use crate::flow::{Routed, Stage};
use crate::source::{Media, Still, SAMPLE_RATE_HZ};
use crate::time::{Span, Ts};

/// Median over a sliding window of `width` (odd), reflecting at the edges.
pub fn median_filter(x: &[f32], width: usize) -> Vec<f32> {
    let pad = width / 2;
    if x.len() <= pad {
        return x.to_vec();
    }
    // Reflected at both ends, as scipy's and OpenAI's filters.
    let n = x.len();
    let mut padded = Vec::with_capacity(n + 2 * pad);
    padded.extend((1..=pad).rev().map(|i| x[i.min(n - 1)]));
    padded.extend_from_slice(x);
    padded.extend((1..=pad).map(|i| x[n - 1 - i.min(n - 1)]));
    if width == 7 {
        return median7(&padded, n);
    }
    let mut buf = vec![0f32; width];
    padded
        .windows(width)
        .map(|w| {
            buf.copy_from_slice(w);
            *buf.select_nth_unstable_by(pad, f32::total_cmp).1
        })
        .collect()
}

/// An optimal sorting network for seven values (16 exchanges, depth 6).
const SORT7: [(usize, usize); 16] = [
    (0, 6),
    (2, 3),
    (4, 5),
    (0, 2),
    (1, 4),
    (3, 6),
    (0, 1),
    (2, 5),
    (3, 4),
    (1, 2),
    (4, 6),
    (2, 3),
    (4, 5),
    (1, 2),
    (3, 4),
    (5, 6),
];

/// The width-7 median at each of `n` positions of `padded`, for every position at once: the
/// seven shifted copies of the row go through `SORT7` as whole lanes (a min and a max per value,
/// which the compiler vectorises), and the fourth lane is the median. Word alignment filters
/// every (head, token) row of a window this way: a selection per value was a sixth of its time.
fn median7(padded: &[f32], n: usize) -> Vec<f32> {
    let mut lanes: Vec<Vec<f32>> = (0..7).map(|k| padded[k..k + n].to_vec()).collect();
    for (i, j) in SORT7 {
        let (low, high) = lanes.split_at_mut(j);
        for (a, b) in low[i].iter_mut().zip(high[0].iter_mut()) {
            let (x, y) = (*a, *b);
            *a = x.min(y);
            *b = x.max(y);
        }
    }
    lanes.swap_remove(3)
}

/// Raw log10 mel frames, frame-major (`n_mels` values a frame), in order.
#[derive(Debug, Clone)]
pub struct MelChunk {
    pub frames: Vec<f32>,
}

/// What the preprocess stage hands the model stage.
#[derive(Debug, Clone)]
pub enum Features {
    Mel(MelChunk),
    ShotChange(Ts),
    /// The input had a hole here (a dropped connection, lost packets): filled with silence.
    Gap(Span),
}

pub struct PreprocessStage {
    mel: mel::LogMel,
    shots: shots::ShotDetector,
    /// A visual stage reads the stills: else they are let go here.
    stills: bool,
    /// Audio samples taken in so far, silence for gaps included: the media time of the audio.
    samples: u64,
    /// Gaps filled with silence, and their length.
    pub gaps: usize,
    pub gap_time: Ts,
}

/// Silence is pushed into the mel a second at a time.
const SILENCE_BLOCK: usize = SAMPLE_RATE_HZ as usize;

impl PreprocessStage {
    /// `stills`: a visual stage reads the stills passed on.
    pub fn new(n_mels: usize, shots: shots::ShotConfig, stills: bool) -> Self {
        Self {
            mel: mel::LogMel::new(n_mels),
            shots: shots::ShotDetector::new(shots),
            stills,
            samples: 0,
            gaps: 0,
            gap_time: Ts::ZERO,
        }
    }

    /// `n` samples of silence into the mel.
    fn silence(&mut self, n: u64, frames: &mut Vec<f32>) {
        let zeros = vec![0f32; SILENCE_BLOCK];
        let mut left = n;
        while left > 0 {
            let k = left.min(SILENCE_BLOCK as u64) as usize;
            self.mel.push(&zeros[..k], frames);
            left -= k as u64;
        }
        self.samples += n;
    }

    fn mel_out(frames: Vec<f32>, out: &mut Vec<Routed<Features, Still>>) {
        if !frames.is_empty() {
            out.push(Routed::Main(Features::Mel(MelChunk { frames })));
        }
    }
}

impl Stage for PreprocessStage {
    type In = Media;
    type Out = Routed<Features, Still>;
    const NAME: &'static str = "preprocess";

    fn process(&mut self, item: Media, out: &mut Vec<Self::Out>) -> Result<()> {
        match item {
            Media::Audio(a) => {
                let mut frames = Vec::new();
                // Audio placed after where the audio so far ends (a source that says nothing of
                // the gap) is placed by its time all the same; audio placed over audio already
                // heard loses what overlaps.
                let start = (a.start.ms().max(0) as u64) * SAMPLE_RATE_HZ as u64 / 1000;
                let mut samples = &a.samples[..];
                if start > self.samples + 16 {
                    let n = start - self.samples;
                    self.gaps += 1;
                    self.gap_time = self.gap_time + Ts::from_samples(n, SAMPLE_RATE_HZ);
                    let at = Ts::from_samples(self.samples, SAMPLE_RATE_HZ);
                    out.push(Routed::Main(Features::Gap(Span::new(at, at + Ts::from_samples(n, SAMPLE_RATE_HZ)))));
                    self.silence(n, &mut frames);
                } else if start + 16 < self.samples {
                    samples = &samples[((self.samples - start) as usize).min(samples.len())..];
                }
                self.mel.push(samples, &mut frames);
                self.samples += samples.len() as u64;
                Self::mel_out(frames, out);
            }
            Media::Gap(g) => {
                let mut frames = Vec::new();
                self.gaps += 1;
                self.gap_time = self.gap_time + g.duration();
                tracing::debug!(at = %g.at, duration = %g.duration(), reason = ?g.reason, "gap filled with silence");
                let at = Ts::from_samples(self.samples, SAMPLE_RATE_HZ);
                out.push(Routed::Main(Features::Gap(Span::new(at, at + g.duration()))));
                self.silence(g.samples, &mut frames);
                Self::mel_out(frames, out);
            }
            Media::Video(f) => {
                for at in self.shots.push(&f) {
                    out.push(Routed::Main(Features::ShotChange(at)));
                }
            }
            Media::Still(s) => {
                if self.stills {
                    out.push(Routed::Side(s));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Self::Out>) -> Result<()> {
        if let Some(at) = self.shots.finish() {
            out.push(Routed::Main(Features::ShotChange(at)));
        }
        let mut frames = Vec::new();
        self.mel.flush(&mut frames);
        Self::mel_out(frames, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_filter_reflects_at_edges() {
        assert_eq!(median_filter(&[1.0, 9.0, 2.0, 8.0, 3.0], 3), vec![9.0, 2.0, 8.0, 3.0, 8.0]);
    }

    #[test]
    fn seven_wide_network_sorts_and_filters_as_selection() {
        // A sorting network that sorts every 0/1 input sorts every input.
        for bits in 0u32..128 {
            let mut v: Vec<f32> = (0..7).map(|k| (bits >> k & 1) as f32).collect();
            for (i, j) in SORT7 {
                let (x, y) = (v[i], v[j]);
                v[i] = x.min(y);
                v[j] = x.max(y);
            }
            assert!(v.windows(2).all(|w| w[0] <= w[1]), "{bits:07b} -> {v:?}");
        }
        let x: Vec<f32> = (0..500).map(|i| ((i * 7919 % 263) as f32 - 131.0) / 17.0).collect();
        let pad = 3;
        let mut padded: Vec<f32> = (1..=pad).rev().map(|i| x[i]).collect();
        padded.extend_from_slice(&x);
        padded.extend((1..=pad).map(|i| x[x.len() - 1 - i]));
        let want: Vec<f32> = padded
            .windows(7)
            .map(|w| {
                let mut w = w.to_vec();
                *w.select_nth_unstable_by(pad, f32::total_cmp).1
            })
            .collect();
        assert_eq!(median_filter(&x, 7), want);
    }
}
