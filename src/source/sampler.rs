//! A schedule of frames sampled from decoded video, at a size, as frames for shot detection or
//! stills.

use ffmpeg_next as ff;

use crate::source::picture::small_from_yuv420;
use crate::source::{Follows, Media, VideoFrame};
use crate::time::Ts;

/// One schedule of sampled frames: which frames, at what size, as what.
pub(crate) struct Sampler {
    pub(crate) every_s: f64,
    pub(crate) next_at_s: f64,
    width: u32,
    /// Never scale up: stills keep the video's own width when it is narrower.
    pub(crate) shrink_only: bool,
    scaler: Option<(ff::software::scaling::Context, (ff::format::Pixel, u32, u32))>,
    pub(crate) wrap: fn(VideoFrame) -> Media,
}

impl Sampler {
    pub(crate) fn new(fps: f64, width: u32, shrink_only: bool, wrap: fn(VideoFrame) -> Media) -> Option<Self> {
        (fps > 0.0).then(|| Self {
            every_s: 1.0 / fps,
            next_at_s: 0.0,
            width: width.max(2) & !1,
            shrink_only,
            scaler: None,
            wrap,
        })
    }

    /// `frame` scaled to the sampler's width as RGB24; `None` when this one frame fails to scale.
    pub(crate) fn sample(
        &mut self,
        frame: &ff::frame::Video,
        t: f64,
        follows: Follows,
    ) -> Result<Option<VideoFrame>, String> {
        if !self.shrink_only {
            if let Some(f) = small_from_yuv420(frame, self.width, t, follows) {
                return Ok(Some(f));
            }
        }
        let key = (frame.format(), frame.width(), frame.height());
        let width = if self.shrink_only { self.width.min(key.1.max(2) & !1) } else { self.width };
        let h = ((width as u64 * key.2 as u64 / key.1.max(1) as u64) as u32).max(2) & !1;
        if self.scaler.as_ref().map(|s| s.1) != Some(key) {
            let flags = if self.shrink_only {
                ff::software::scaling::Flags::AREA
            } else {
                ff::software::scaling::Flags::FAST_BILINEAR
            };
            let ctx =
                ff::software::scaling::Context::get(key.0, key.1, key.2, ff::format::Pixel::RGB24, width, h, flags)
                    .map_err(|e| format!("cannot scale video: {e}"))?;
            self.scaler = Some((ctx, key));
        }
        let mut rgb = ff::frame::Video::empty();
        let (ctx, _) = self.scaler.as_mut().expect("set above");
        if ctx.run(frame, &mut rgb).is_err() {
            return Ok(None);
        }
        let (w, stride) = (rgb.width() as usize, rgb.stride(0));
        let data = rgb.data(0);
        let mut px = Vec::with_capacity(w * 3 * h as usize);
        for row in 0..h as usize {
            px.extend_from_slice(&data[row * stride..row * stride + w * 3]);
        }
        Ok(Some(VideoFrame { at: Ts::from_secs_f64(t), width, height: h, rgb: px, follows }))
    }
}
