//! A schedule of frames sampled from decoded video, at a size, as frames for shot detection or
//! stills.

use ffmpeg_next as ff;

use crate::source::picture::{luma_thumbnail, small_from_yuv420, thumbnail, turned};
use crate::source::stills::{Still, StillFilter};
use crate::source::{Follows, Media, VideoFrame, VideoSampling};
use crate::time::Ts;

/// One schedule of sampled frames: which frames, at what size, as what.
pub(crate) struct Sampler {
    pub(crate) every_s: f64,
    pub(crate) next_at_s: f64,
    width: u32,
    /// Never scale up: stills keep the video's own width when it is narrower.
    shrink_only: bool,
    scaler: Option<(ff::software::scaling::Context, (ff::format::Pixel, u32, u32))>,
    /// Stills: which go on with their pixels (`None`: frames for shot detection).
    stills: Option<StillFilter>,
    /// Quarter turns clockwise that show a still upright (its width is the width it is shown
    /// at); frames for shot detection are compared as stored.
    turns: u8,
}

/// Quarter turns clockwise that show `stream`'s pictures upright, from its display matrix: phones
/// store portrait video on its side and say so there (as FFmpeg's own tools turn it; a mirrored
/// picture is left mirrored).
fn quarter_turns(stream: &ff::format::stream::Stream) -> u8 {
    use ff::codec::packet::side_data::Type;
    let Some(matrix) = stream.side_data().find(|d| d.kind() == Type::DisplayMatrix) else { return 0 };
    // Nine 16.16 fixed-point numbers (the last column 2.30); the first two rows turn the picture.
    let m: Vec<f64> =
        matrix.data().chunks_exact(4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f64 / 65536.0).collect();
    let Some(&[a, b, _, c, d]) = m.get(..5) else { return 0 };
    let (sx, sy) = (a.hypot(c), b.hypot(d));
    if sx == 0.0 || sy == 0.0 {
        return 0;
    }
    // The negated angle of FFmpeg's `av_display_rotation_get`.
    let clockwise = (b / sy).atan2(a / sx).to_degrees();
    (clockwise / 90.0).round().rem_euclid(4.0) as u8
}

impl Sampler {
    /// Frames for shot detection (`shrink_only`: the keyframe probe, never scaled up).
    pub(crate) fn frames(fps: f64, width: u32, shrink_only: bool) -> Option<Self> {
        (fps > 0.0).then(|| Self {
            every_s: 1.0 / fps,
            next_at_s: 0.0,
            width: width.max(2) & !1,
            shrink_only,
            scaler: None,
            stills: None,
            turns: 0,
        })
    }

    /// Stills of `stream` as `sampling` asks, never scaled up, those that settled and are new
    /// with their pixels, upright.
    pub(crate) fn stills(stream: &ff::format::stream::Stream, sampling: &VideoSampling) -> Option<Self> {
        let filter = StillFilter::new(sampling.still_filter.clone());
        let turns = quarter_turns(stream);
        Self::frames(sampling.stills_fps, sampling.stills_width, true).map(|s| Self {
            stills: Some(filter),
            turns,
            ..s
        })
    }

    pub(crate) fn is_stills(&self) -> bool {
        self.stills.is_some()
    }

    /// `frame` as this schedule's media: a frame for shot detection, or a still, scaled only
    /// when it goes on with its pixels. `None` when this one frame fails to scale.
    pub(crate) fn media(
        &mut self,
        frame: &ff::frame::Video,
        t: f64,
        follows: Follows,
    ) -> Result<Option<Media>, String> {
        if self.stills.is_none() {
            return Ok(self.sample(frame, t, follows)?.map(Media::Video));
        }
        let at = Ts::from_secs_f64(t);
        // Video whose luma cannot be read directly is scaled first and judged on that.
        let (thumb, scaled) = match luma_thumbnail(frame) {
            Some(thumb) => (thumb, None),
            None => match self.sample(frame, t, follows)? {
                Some(f) => (thumbnail(&f), Some(f)),
                None => return Ok(None),
            },
        };
        let filter = self.stills.as_mut().expect("a stills schedule");
        if !filter.push(at, thumb) {
            return Ok(Some(Media::Still(Still { at, frame: None })));
        }
        let frame = match scaled {
            Some(f) => Some(f),
            None => self.sample(frame, t, follows)?,
        };
        Ok(frame.map(|f| Media::Still(Still { at, frame: Some(turned(f, self.turns)) })))
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
        // The width is the width shown: a picture stored on its side is scaled to its height.
        let (across, along) = if self.turns % 2 == 1 { (key.2, key.1) } else { (key.1, key.2) };
        let shown = if self.shrink_only { self.width.min(across.max(2) & !1) } else { self.width };
        let other = ((shown as u64 * along as u64 / across.max(1) as u64) as u32).max(2) & !1;
        let (width, h) = if self.turns % 2 == 1 { (other, shown) } else { (shown, other) };
        if self.scaler.as_ref().map(|s| s.1) != Some(key) {
            // Each pixel the mean of those it covers: a thumbnail sampled from a 1080p picture (fast
            // bilinear) lost a picture's colours and flickered on fine detail (10-bit HEVC: a cut
            // missed, another invented; `tests/video.rs`).
            let flags = ff::software::scaling::Flags::AREA;
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
