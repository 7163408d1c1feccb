//! Stills for the visual stages: a still goes on with its pixels only when the picture changed
//! since the last one that did, so OCR and the visual encoder run once a slide, not once a second.

use serde::Deserialize;

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
    /// Mean absolute difference of grey thumbnails (0 to 255) above which the picture changed.
    pub change_threshold: f32,
}

impl Default for StillConfig {
    fn default() -> Self {
        Self { change_threshold: 3.0 }
    }
}

/// Thumbnail side lengths: coarse enough to ignore compression noise, fine enough to see a line
/// of text change.
const THUMB_W: usize = 96;
const THUMB_H: usize = 54;

pub struct StillFilter {
    cfg: StillConfig,
    last: Option<Vec<f32>>,
}

impl StillFilter {
    pub fn new(cfg: StillConfig) -> Self {
        Self { cfg, last: None }
    }

    pub fn push(&mut self, frame: VideoFrame) -> Still {
        let thumb = thumbnail(&frame);
        let changed = match &self.last {
            None => true,
            Some(last) => {
                let d: f32 = last.iter().zip(&thumb).map(|(a, b)| (a - b).abs()).sum::<f32>() / thumb.len() as f32;
                d > self.cfg.change_threshold
            }
        };
        if changed {
            self.last = Some(thumb);
            Still { at: frame.at, frame: Some(frame) }
        } else {
            Still { at: frame.at, frame: None }
        }
    }
}

/// Grey box-filtered thumbnail, `THUMB_W x THUMB_H`.
fn thumbnail(f: &VideoFrame) -> Vec<f32> {
    let (w, h) = (f.width as usize, f.height as usize);
    let mut sum = vec![0f32; THUMB_W * THUMB_H];
    let mut count = vec![0u32; THUMB_W * THUMB_H];
    for y in 0..h {
        let ty = y * THUMB_H / h.max(1);
        for x in 0..w {
            let tx = x * THUMB_W / w.max(1);
            let p = &f.rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
            sum[ty * THUMB_W + tx] += 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            count[ty * THUMB_W + tx] += 1;
        }
    }
    sum.iter().zip(&count).map(|(s, &c)| s / c.max(1) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at: i64, grey: u8, bar: Option<usize>) -> VideoFrame {
        let (w, h) = (192, 108);
        let mut rgb = vec![grey; w * h * 3];
        if let Some(row) = bar {
            // A dark line of "text" 4 pixels high.
            for y in row..row + 4 {
                for x in 20..170 {
                    rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(0);
                }
            }
        }
        VideoFrame { at: Ts(at), width: w as u32, height: h as u32, rgb }
    }

    #[test]
    fn only_changed_pictures_carry_pixels() {
        let mut f = StillFilter::new(StillConfig::default());
        assert!(f.push(frame(0, 250, Some(20))).frame.is_some(), "the first still always goes on");
        assert!(f.push(frame(1000, 250, Some(20))).frame.is_none(), "same slide");
        assert!(f.push(frame(2000, 251, Some(20))).frame.is_none(), "compression noise");
        let moved = f.push(frame(3000, 250, Some(60)));
        assert!(moved.frame.is_some(), "a new line of text");
        assert_eq!(moved.at, Ts(3000));
    }
}
