//! Preprocess: decoded media in, log-mel frames and shot changes out to the model stage; stills,
//! when the picture changed, out to the visual stages (a side output).

pub mod mel;
pub mod shots;
pub mod stills;
pub mod vad;

use crate::error::Result;
use crate::pipeline::{Routed, Stage};
use crate::source::Media;
use crate::time::Ts;
use crate::visual::ScreenText;

pub use stills::{Still, StillConfig};

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
    let mut buf = vec![0f32; width];
    padded
        .windows(width)
        .map(|w| {
            buf.copy_from_slice(w);
            *buf.select_nth_unstable_by(pad, f32::total_cmp).1
        })
        .collect()
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
    /// The text on screen, from the on-screen-text stage.
    Screen(ScreenText),
    /// The on-screen-text stage ended: no more `Screen` items.
    ScreenEnd,
}

pub struct PreprocessStage {
    mel: mel::LogMel,
    shots: shots::ShotDetector,
    stills: stills::StillFilter,
}

impl PreprocessStage {
    pub fn new(n_mels: usize, shots: shots::ShotConfig, stills: StillConfig) -> Self {
        Self {
            mel: mel::LogMel::new(n_mels),
            shots: shots::ShotDetector::new(shots),
            stills: stills::StillFilter::new(stills),
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
                self.mel.push(&a.samples, &mut frames);
                if !frames.is_empty() {
                    out.push(Routed::Main(Features::Mel(MelChunk { frames })));
                }
            }
            Media::Video(f) => {
                if let Some(at) = self.shots.push(&f) {
                    out.push(Routed::Main(Features::ShotChange(at)));
                }
            }
            Media::Still(f) => out.push(Routed::Side(self.stills.push(f))),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Self::Out>) -> Result<()> {
        let mut frames = Vec::new();
        self.mel.flush(&mut frames);
        if !frames.is_empty() {
            out.push(Routed::Main(Features::Mel(MelChunk { frames })));
        }
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
}
