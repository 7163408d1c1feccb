//! Stills for the visual stages: a still goes on with its pixels only when the picture has
//! settled (it matches the still before it) and differs from the last one that went on. So OCR
//! runs once a slide, title card or caption, not once a second, and not at all on pictures that
//! never hold still (camera motion): that is what keeps its cost bounded on two cores. The source
//! decides on a grey thumbnail before it scales the still: a still that does not go on is never
//! scaled (on 4K video, scaling one to 1280 pixels costs a third of decoding its keyframe).

use serde::Deserialize;

use crate::source::picture::cells_changed;
#[cfg(test)]
use crate::source::picture::thumbnail;
use crate::source::VideoFrame;
use crate::time::Ts;

/// A sampled still. `frame` is `None` when the picture is the same as before: the visual stages
/// then only learn that time has moved on.
#[derive(Debug, Clone)]
pub struct Still {
    pub at: Ts,
    pub frame: Option<VideoFrame>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StillConfig {
    /// Share of thumbnail cells changed since the last still sent on above which the picture is
    /// new.
    pub change_threshold: f32,
    /// Share of cells changed since the previous still at or below which the picture has settled.
    pub settled_threshold: f32,
}

impl Default for StillConfig {
    fn default() -> Self {
        Self { change_threshold: 0.005, settled_threshold: 0.002 }
    }
}

pub struct StillFilter {
    cfg: StillConfig,
    /// Thumbnails of the previous still and of the last one sent on.
    previous: Option<Vec<f32>>,
    sent: Option<Vec<f32>>,
}

impl StillFilter {
    pub fn new(cfg: StillConfig) -> Self {
        Self { cfg, previous: None, sent: None }
    }

    /// Whether the still at `at`, whose grey thumbnail (`picture::thumbnail`, `THUMB_W x
    /// THUMB_H`) is `thumb`, goes on with its pixels.
    pub fn push(&mut self, at: Ts, thumb: Vec<f32>) -> bool {
        let moved = self.previous.as_ref().map(|p| cells_changed(p, &thumb));
        let changed = self.sent.as_ref().map(|s| cells_changed(s, &thumb));
        tracing::trace!(%at, ?moved, ?changed, "still");
        let settled = moved.is_some_and(|d| d <= self.cfg.settled_threshold);
        let new = changed.is_none_or(|d| d > self.cfg.change_threshold);
        self.previous = Some(thumb);
        if settled && new {
            self.sent = self.previous.clone();
        }
        settled && new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at: i64, grey: u8, bar: Option<usize>) -> VideoFrame {
        let (w, h) = (320, 180);
        let mut rgb = vec![grey; w * h * 3];
        if let Some(row) = bar {
            // A dark line of "text" 4 pixels high.
            for y in row..row + 4 {
                for x in 20..300 {
                    rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(0);
                }
            }
        }
        VideoFrame { at: Ts(at), width: w as u32, height: h as u32, rgb, follows: Default::default() }
    }

    #[test]
    fn only_new_pictures_that_settled_carry_pixels() {
        let mut f = StillFilter::new(StillConfig::default());
        let sent = |f: &mut StillFilter, at, grey, bar| f.push(Ts(at), thumbnail(&frame(at, grey, bar)));
        assert!(!sent(&mut f, 0, 250, Some(20)), "nothing to compare the first still with");
        assert!(sent(&mut f, 1000, 250, Some(20)), "the slide settled");
        assert!(!sent(&mut f, 2000, 250, Some(20)), "same slide");
        assert!(!sent(&mut f, 3000, 252, Some(20)), "compression noise");
        assert!(!sent(&mut f, 4000, 250, Some(60)), "a new line of text, not settled yet");
        assert!(sent(&mut f, 5000, 250, Some(60)), "the new slide settled");
        // A picture that never holds still is never read.
        for (i, bar) in [10, 50, 90, 30, 70].into_iter().enumerate() {
            assert!(!sent(&mut f, 6000 + 1000 * i as i64, 250, Some(bar)), "moving picture");
        }
    }
}
