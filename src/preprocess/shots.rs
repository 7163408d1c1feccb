//! Shot changes from sampled frames: a cut is a frame whose colour histogram differs from the
//! previous frame's by more than a threshold (half the L1 distance of normalised 16-bin
//! histograms per RGB channel, 0 for identical and 1 for disjoint), or, where the two frames
//! follow closely (or the second is an encoder's scene-cut keyframe), whose grey picture differs
//! from the previous one by more than `spatial_threshold`: two shots of similar colours. Cheap,
//! and blind to slow fades and dissolves, which subtitle timing does not snap to anyway.

use serde::Deserialize;

use crate::source::picture::{grey_difference, histogram, histogram_distance, CHANGE_RATIO};
use crate::source::{Follows, VideoFrame};
use crate::time::Ts;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShotConfig {
    /// Detect shot changes (needs `[video] fps` above 0).
    pub enabled: bool,
    /// Histogram distance (0 to 1) above which two frames are different shots.
    pub threshold: f32,
    /// Mean grey-level difference (0 to 255) above which two frames that follow closely are
    /// different shots (frames of one shot differ by 5 at most on our test media, a cut by 59 or
    /// more).
    pub spatial_threshold: f32,
    /// Cuts closer than this to the previous one are ignored (flashes, strobes).
    pub min_interval_ms: i64,
}

impl Default for ShotConfig {
    fn default() -> Self {
        Self { enabled: true, threshold: 0.4, spatial_threshold: 30.0, min_interval_ms: 500 }
    }
}

#[derive(Debug, Default)]
pub struct ShotDetector {
    cfg: ShotConfig,
    /// The previous frame and its histogram.
    prev: Option<(VideoFrame, Vec<f32>)>,
    /// How much the picture has been changing between frames that follow closely: the grey-level
    /// differences and histogram distances of the last few.
    recent: std::collections::VecDeque<(f32, f32)>,
    last_cut: Option<Ts>,
    /// A cut between frames that follow closely, told before any change around it (the first
    /// frames decoded after a keyframe), and its change and colours: it waits for the next
    /// frame's change to tell how much the picture moves.
    held: Option<(Ts, f32, f32)>,
}

/// Frames whose changes say how much the picture is moving.
const RECENT: usize = 8;

impl ShotDetector {
    pub fn new(cfg: ShotConfig) -> Self {
        Self { cfg, prev: None, recent: std::collections::VecDeque::new(), last_cut: None, held: None }
    }

    /// The cuts that `frame` tells: at the frame before it, where that one's change waited for
    /// this one's (`held`), and at `frame` where it starts a new shot.
    pub fn push(&mut self, frame: &VideoFrame) -> Vec<Ts> {
        if !self.cfg.enabled || frame.rgb.is_empty() {
            return Vec::new();
        }
        let h = histogram(frame);
        let (spatial, threshold) = (self.cfg.spatial_threshold, self.cfg.threshold);
        let unusual = |v: f32, usual: f32, threshold: f32| v > threshold && v > CHANGE_RATIO * usual;
        let mut cut = false;
        let mut held = None;
        if let Some((p, ph)) = &self.prev {
            let (change, colours) = (grey_difference(p, frame), histogram_distance(ph, &h));
            // A cut held back is one unless the picture changes as much from one frame to the next
            // (a cellular automaton, 25 frames a second, from its keyframe on).
            held = self.held.take().filter(|&(_, c, k)| {
                frame.follows != Follows::Closely || unusual(c, change, spatial) || unusual(k, colours, threshold)
            });
            let n = self.recent.len().max(1) as f32;
            let usual =
                (self.recent.iter().map(|r| r.0).sum::<f32>() / n, self.recent.iter().map(|r| r.1).sum::<f32>() / n);
            cut = match frame.follows {
                Follows::Closely => unusual(change, usual.0, spatial) || unusual(colours, usual.1, threshold),
                Follows::Keyframe { scene_cut: true } | Follows::Burst(_) => change > spatial || colours > threshold,
                // Anything may have moved since: only colours tell.
                Follows::Keyframe { scene_cut: false } => colours > threshold,
                Follows::Moved => false,
            };
            if frame.follows == Follows::Closely {
                if cut && self.recent.is_empty() {
                    self.held = Some((frame.at, change, colours));
                    cut = false;
                }
                self.recent.push_back((change, colours));
                if self.recent.len() > RECENT {
                    self.recent.pop_front();
                }
            } else {
                self.recent.clear();
            }
        }
        self.prev = Some((frame.clone(), h));
        // After a burst, the picture changed where the bits were spent.
        let at = match frame.follows {
            Follows::Burst(at) => at.min(frame.at),
            _ => frame.at,
        };
        let held = held.and_then(|(at, ..)| self.cut(at));
        held.into_iter().chain(cut.then(|| self.cut(at)).flatten()).collect()
    }

    /// The end of the frames: a cut still held back is one.
    pub fn finish(&mut self) -> Option<Ts> {
        let (at, ..) = self.held.take()?;
        self.cut(at)
    }

    /// A cut at `at`, unless it comes too soon after the last one.
    fn cut(&mut self, at: Ts) -> Option<Ts> {
        let spaced = self.last_cut.is_none_or(|l| (at - l).ms() >= self.cfg.min_interval_ms);
        spaced.then(|| {
            self.last_cut = Some(at);
            at
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at: i64, rgb: [u8; 3]) -> VideoFrame {
        VideoFrame { at: Ts(at), width: 4, height: 4, rgb: rgb.repeat(16), follows: Follows::Closely }
    }

    /// A picture of grey columns: dark on the left half and light on the right, or the other
    /// way round (the same colours).
    fn halves(at: i64, dark_left: bool, follows: Follows) -> VideoFrame {
        let rgb = (0..16 * 8).flat_map(|i| if (i % 16 < 8) == dark_left { [20u8; 3] } else { [230u8; 3] }).collect();
        VideoFrame { at: Ts(at), width: 16, height: 8, rgb, follows }
    }

    #[test]
    fn shots_of_the_same_colours_cut_where_frames_follow_closely_or_at_a_scene_cut_keyframe() {
        let mut d = ShotDetector::new(ShotConfig::default());
        assert_eq!(d.push(&halves(0, true, Follows::Closely)), vec![]);
        assert_eq!(d.push(&halves(20, true, Follows::Closely)), vec![]);
        assert_eq!(d.push(&halves(40, false, Follows::Closely)), vec![Ts(40)], "the picture swapped sides");
        // Two seconds apart, between keyframes of a stream's fixed beat: it may just have moved.
        assert_eq!(d.push(&halves(2040, true, Follows::Keyframe { scene_cut: false })), vec![]);
        // The encoder's own scene-cut keyframe.
        assert_eq!(d.push(&halves(4040, false, Follows::Keyframe { scene_cut: true })), vec![Ts(4040)]);
        // A burst of bits inside the GOP: the cut is there.
        assert_eq!(d.push(&halves(8040, true, Follows::Burst(Ts(6520)))), vec![Ts(6520)]);
        assert_eq!(d.push(&halves(10040, true, Follows::Burst(Ts(9000)))), vec![], "nothing changed");
    }

    #[test]
    fn the_first_frame_decoded_after_a_keyframe_is_judged_by_the_change_after_it() {
        let keyframe = |at, dark_left| halves(at, dark_left, Follows::Keyframe { scene_cut: false });
        // A picture that changes as much at every frame (a cellular automaton): no cut.
        let mut d = ShotDetector::new(ShotConfig::default());
        assert_eq!(d.push(&keyframe(0, true)), vec![]);
        let cuts: Vec<Ts> = (1..10).flat_map(|i| d.push(&halves(i * 40, i % 2 == 0, Follows::Closely))).collect();
        assert_eq!(cuts, vec![]);
        // A cut at that frame, in a steady picture: told at the next frame, at its own time.
        assert_eq!(d.push(&keyframe(1200, true)), vec![]);
        assert_eq!(d.push(&halves(1240, false, Follows::Closely)), vec![], "held");
        assert_eq!(d.push(&halves(1280, false, Follows::Closely)), vec![Ts(1240)]);
        // Or at the end of the frames.
        assert_eq!(d.push(&keyframe(2400, true)), vec![]);
        assert_eq!(d.push(&halves(2440, false, Follows::Closely)), vec![]);
        assert_eq!(d.finish(), Some(Ts(2440)));
    }

    #[test]
    fn a_keyframe_that_shows_the_last_picture_moved_is_not_a_cut() {
        let mut d = ShotDetector::new(ShotConfig::default());
        assert_eq!(d.push(&frame(0, [10, 10, 200])), vec![]);
        // However much its colours changed (a zooming fractal's cycle).
        let mut moved = frame(10_000, [200, 10, 10]);
        moved.follows = Follows::Moved;
        assert_eq!(d.push(&moved), vec![]);
        let mut keyframe = frame(20_000, [10, 10, 200]);
        keyframe.follows = Follows::Keyframe { scene_cut: true };
        assert_eq!(d.push(&keyframe), vec![Ts(20_000)], "the same change at a scene-cut keyframe");
    }

    #[test]
    fn a_picture_that_changes_all_the_time_is_not_cut_at_every_frame() {
        let mut d = ShotDetector::new(ShotConfig::default());
        // Flicker: the halves swap every frame, a second apart.
        let cuts: Vec<Ts> = (0..20).flat_map(|i| d.push(&halves(i * 1000, i % 2 == 0, Follows::Closely))).collect();
        assert!(cuts.len() <= 1, "{cuts:?}");
    }

    #[test]
    fn a_change_of_picture_is_a_cut_and_a_steady_one_is_not() {
        let mut d = ShotDetector::new(ShotConfig::default());
        assert_eq!(d.push(&frame(0, [200, 10, 10])), vec![]);
        assert_eq!(d.push(&frame(125, [201, 12, 10])), vec![]);
        assert_eq!(d.push(&frame(250, [10, 10, 200])), vec![Ts(250)]);
        // A flash right after is not a second cut.
        assert_eq!(d.push(&frame(375, [200, 10, 10])), vec![]);
    }
}
