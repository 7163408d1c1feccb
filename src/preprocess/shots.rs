//! Shot changes from sampled frames: a cut is a frame whose colour histogram differs from the
//! previous frame's by more than a threshold (half the L1 distance of normalised 16-bin
//! histograms per RGB channel, 0 for identical and 1 for disjoint). Cheap, and blind to slow
//! fades and dissolves, which subtitle timing does not snap to anyway.

use serde::Deserialize;

use crate::source::VideoFrame;
use crate::time::Ts;

const BINS: usize = 16;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShotConfig {
    /// Detect shot changes (needs `[video] fps` above 0).
    pub enabled: bool,
    /// Histogram distance (0 to 1) above which two frames are different shots.
    pub threshold: f32,
    /// Cuts closer than this to the previous one are ignored (flashes, strobes).
    pub min_interval_ms: i64,
}

impl Default for ShotConfig {
    fn default() -> Self {
        Self { enabled: true, threshold: 0.4, min_interval_ms: 500 }
    }
}

#[derive(Debug, Default)]
pub struct ShotDetector {
    cfg: ShotConfig,
    prev: Option<Vec<f32>>,
    last_cut: Option<Ts>,
}

/// Counted in integers, four pixels at a time into four tables (so increments of one bin do
/// not wait on each other; a float histogram was 2.5% of a run's time).
fn histogram(frame: &VideoFrame) -> Vec<f32> {
    let mut counts = [[0u32; 3 * BINS]; 4];
    let bin = |c: usize, v: u8| c * BINS + v as usize * BINS / 256;
    let mut quads = frame.rgb.chunks_exact(12);
    for q in &mut quads {
        for (t, px) in counts.iter_mut().zip(q.chunks_exact(3)) {
            t[bin(0, px[0])] += 1;
            t[bin(1, px[1])] += 1;
            t[bin(2, px[2])] += 1;
        }
    }
    for px in quads.remainder().chunks_exact(3) {
        for (c, &v) in px.iter().enumerate() {
            counts[0][bin(c, v)] += 1;
        }
    }
    let n = (frame.rgb.len() / 3).max(1) as f32;
    (0..3 * BINS).map(|i| counts.iter().map(|t| t[i]).sum::<u32>() as f32 / n).collect()
}

impl ShotDetector {
    pub fn new(cfg: ShotConfig) -> Self {
        Self { cfg, prev: None, last_cut: None }
    }

    /// The cut at `frame`, if it starts a new shot.
    pub fn push(&mut self, frame: &VideoFrame) -> Option<Ts> {
        if !self.cfg.enabled || frame.rgb.is_empty() {
            return None;
        }
        let h = histogram(frame);
        let cut = self.prev.as_ref().is_some_and(|p| {
            let d: f32 = p.iter().zip(&h).map(|(a, b)| (a - b).abs()).sum::<f32>() / 2.0 / 3.0;
            d > self.cfg.threshold
        });
        self.prev = Some(h);
        let spaced = self.last_cut.is_none_or(|l| (frame.at - l).ms() >= self.cfg.min_interval_ms);
        if cut && spaced {
            self.last_cut = Some(frame.at);
            return Some(frame.at);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at: i64, rgb: [u8; 3]) -> VideoFrame {
        VideoFrame { at: Ts(at), width: 4, height: 4, rgb: rgb.repeat(16) }
    }

    #[test]
    fn histogram_counts_every_pixel_once() {
        // 7 pixels: one group of four and three left over.
        let rgb: Vec<u8> = (0..21u32).map(|i| (i * 97 % 256) as u8).collect();
        let h = histogram(&VideoFrame { at: Ts(0), width: 7, height: 1, rgb: rgb.clone() });
        let mut want = vec![0f32; 3 * BINS];
        for px in rgb.chunks_exact(3) {
            for (c, &v) in px.iter().enumerate() {
                want[c * BINS + v as usize * BINS / 256] += 1.0 / 7.0;
            }
        }
        for (g, w) in h.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{h:?} vs {want:?}");
        }
    }

    #[test]
    fn a_change_of_picture_is_a_cut_and_a_steady_one_is_not() {
        let mut d = ShotDetector::new(ShotConfig::default());
        assert_eq!(d.push(&frame(0, [200, 10, 10])), None);
        assert_eq!(d.push(&frame(125, [201, 12, 10])), None);
        assert_eq!(d.push(&frame(250, [10, 10, 200])), Some(Ts(250)));
        // A flash right after is not a second cut.
        assert_eq!(d.push(&frame(375, [200, 10, 10])), None);
    }
}
