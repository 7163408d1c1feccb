//! Measures of sampled pictures that both the source (deciding what video to decode) and the
//! preprocess stage (shot changes, stills) use: a colour histogram and its distance, a grey
//! thumbnail and the share of its cells that changed, and how well one picture shows another
//! panned or zoomed.

use crate::source::VideoFrame;

/// Histogram bins per channel.
pub const BINS: usize = 16;

/// Normalised 16-bin histograms of R, G and B, (3 x BINS). Counted in integers, four pixels at a
/// time into four tables (so increments of one bin do not wait on each other; a float histogram
/// was 2.5% of a run's time).
pub fn histogram(frame: &VideoFrame) -> Vec<f32> {
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

/// Half the L1 distance of two histograms per channel, averaged: 0 for identical colours, 1 for
/// disjoint ones.
pub fn histogram_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / 2.0 / 3.0
}

/// Mean absolute difference of the grey levels (0 to 255) of two pictures of the same size,
/// pixel by pixel: where the picture is, not only its colours. Between frames of one shot it
/// stays small (median 0.4 to 2.9, at most 5, on moving test patterns and real video 64 pixels
/// wide); across a cut it is large (59 to 111 on our cut test clips), even between shots whose
/// colours are alike.
pub fn grey_difference(a: &VideoFrame, b: &VideoFrame) -> f32 {
    if a.rgb.len() != b.rgb.len() || a.rgb.is_empty() {
        return 0.0;
    }
    let grey = |p: &[u8]| (77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8;
    let sum: u64 =
        a.rgb.chunks_exact(3).zip(b.rgb.chunks_exact(3)).map(|(x, y)| grey(x).abs_diff(grey(y)) as u64).sum();
    sum as f32 / (a.rgb.len() / 3) as f32
}

/// Between frames that follow closely, a change of picture or colours may be a cut only when it
/// is this many times the changes around it: a picture that changes a lot all the time (flicker,
/// a cellular automaton) is not cut at every frame.
pub const CHANGE_RATIO: f32 = 3.0;
/// Pictures whose colour histograms differ by more than this may have a cut between them (half
/// the shot detector's default threshold).
pub const CUT_SUSPECT: f32 = 0.2;
/// Pictures whose grey levels differ by more than this (mean level, 0 to 255) show a different
/// picture (the shot detector's spatial threshold).
pub const PICTURE_MOVED: f32 = 30.0;
/// Pairs of frames in a row from which the usual change between two is told.
#[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))] // used by the video decoding (FFmpeg's)
const USUAL_PAIRS: usize = 4;

/// The pairs of reference frames in a row (`frames`, a GOP's) that may hold a cut between them,
/// with frames between them left undecoded (`skipped_between`): their colours or picture changed,
/// and by more than the GOP's usual change between two (once `USUAL_PAIRS` tell it), as the shot
/// detector judges frames that follow closely. A picture that changes a lot all the time (a
/// cellular automaton settling, its frames 120-320 kB at 4K) is not decoded between every two.
#[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
pub(crate) fn changed_pairs(frames: &[&VideoFrame], skipped_between: impl Fn(f64, f64) -> bool) -> Vec<(f64, f64)> {
    let colours: Vec<Vec<f32>> = frames.iter().map(|f| histogram(f)).collect();
    let changes: Vec<(f32, f32)> = (1..frames.len())
        .map(|i| (histogram_distance(&colours[i - 1], &colours[i]), grey_difference(frames[i - 1], frames[i])))
        .collect();
    let median = |pick: fn(&(f32, f32)) -> f32| {
        let mut v: Vec<f32> = changes.iter().map(pick).collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let usual = (median(|c| c.0), median(|c| c.1));
    let suspect = |&(colours, picture): &(f32, f32)| {
        let unusual =
            changes.len() < USUAL_PAIRS || colours > CHANGE_RATIO * usual.0 || picture > CHANGE_RATIO * usual.1;
        (colours > CUT_SUSPECT || picture > PICTURE_MOVED) && unusual
    };
    frames
        .windows(2)
        .zip(&changes)
        .filter(|(_, c)| suspect(c))
        .map(|(w, _)| (w[0].at.secs_f64(), w[1].at.secs_f64()))
        .filter(|&(a, b)| skipped_between(a, b))
        .collect()
}

/// A GOP decoded for a cut inside it, its frames watched as they come (in display order): once
/// a frame's colours changed from the one before by more than `CUT_SUSPECT`, and a later frame's
/// are within that of the next keyframe's (no cut between them), the rest of the GOP is that keyframe's shot and need not be
/// decoded (on average half of a GOP that holds a cut).
#[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
pub(crate) struct Settling {
    /// The next keyframe's colours.
    next: Vec<f32>,
    /// The colours of the last frame seen.
    last: Vec<f32>,
    changed: bool,
    /// How many of the decoded media were seen.
    seen: usize,
}

#[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
impl Settling {
    /// From the GOP's keyframe's colours to the next keyframe's, the first `seen` media decoded
    /// before.
    pub(crate) fn new(from: Vec<f32>, next: Vec<f32>, seen: usize) -> Self {
        Self { next, last: from, changed: false, seen }
    }

    /// Whether the frames among `decoded` not seen yet settled on the next keyframe's shot after
    /// a change.
    pub(crate) fn settled(&mut self, decoded: &[crate::source::Media]) -> bool {
        for m in decoded.get(self.seen..).unwrap_or_default() {
            let crate::source::Media::Video(f) = m else { continue };
            let colours = histogram(f);
            // The frame that changes may itself show the next keyframe's shot (a cut).
            self.changed |= histogram_distance(&self.last, &colours) > CUT_SUSPECT;
            if self.changed && histogram_distance(&colours, &self.next) <= CUT_SUSPECT {
                self.seen = decoded.len();
                return true;
            }
            self.last = colours;
        }
        self.seen = decoded.len();
        false
    }
}

/// Thumbnail side lengths: coarse enough to ignore compression noise, fine enough that a line of
/// text replaced by another changes cells (averaging larger cells evens the two out).
pub const THUMB_W: usize = 160;
pub const THUMB_H: usize = 90;
/// A cell changed when its grey level moved by more than this (0 to 255).
const CELL_CHANGE: f32 = 16.0;

/// `f` turned clockwise by `quarter_turns` quarter turns.
pub fn turned(f: VideoFrame, quarter_turns: u8) -> VideoFrame {
    let (w, h, turns) = (f.width as usize, f.height as usize, quarter_turns % 4);
    if turns == 0 || f.rgb.len() < w * h * 3 {
        return f;
    }
    let (tw, th) = if turns % 2 == 1 { (h, w) } else { (w, h) };
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (tx, ty) = match turns {
                1 => (h - 1 - y, x),
                2 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            let (from, to) = ((y * w + x) * 3, (ty * tw + tx) * 3);
            rgb[to..to + 3].copy_from_slice(&f.rgb[from..from + 3]);
        }
    }
    VideoFrame { width: tw as u32, height: th as u32, rgb, ..f }
}

/// Grey box-filtered thumbnail, `THUMB_W x THUMB_H`.
pub fn thumbnail(f: &VideoFrame) -> Vec<f32> {
    grey_cells(f, THUMB_W, THUMB_H)
}

/// The grey levels of `f` averaged over `tw x th` cells, row by row.
fn grey_cells(f: &VideoFrame, tw: usize, th: usize) -> Vec<f32> {
    let (w, h) = (f.width as usize, f.height as usize);
    cell_means(w, h, tw, th, 1, |x, y| {
        let p = &f.rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
        0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
    })
}

/// The means of `value(x, y)` over `tw x th` cells of a `w x h` picture, row by row, from one
/// pixel in `step` across and down.
fn cell_means(w: usize, h: usize, tw: usize, th: usize, step: usize, value: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let columns: Vec<(usize, usize)> = (0..w).step_by(step).map(|x| (x, x * tw / w.max(1))).collect();
    let (mut sum, mut count) = (vec![0f32; tw * th], vec![0u32; tw * th]);
    for y in (0..h).step_by(step) {
        let row = y * th / h.max(1) * tw;
        for &(x, cell) in &columns {
            sum[row + cell] += value(x, y);
            count[row + cell] += 1;
        }
    }
    sum.iter().zip(&count).map(|(s, &c)| s / c.max(1) as f32).collect()
}

/// Width of the grey pictures `moved_match` compares (its height keeps the aspect).
const MATCH_W: usize = 80;
/// Pictures whose grey levels match this well once one is panned or zoomed show the same shot
/// (`moved_match`: 0.89 to 0.99 within shots of our test media, 0.66 at most across a cut).
pub const MOVED_MATCH: f32 = 0.8;
/// Zooms `moved_match` tries, each way (1: a pan alone).
const MATCH_ZOOMS: [f32; 8] = [1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0];
/// Centres of the zoomed part `moved_match` tries, across and down.
const MATCH_CENTRES: (usize, usize) = (13, 9);

/// How well `b` shows the picture of `a` moved: the best correlation (-1 to 1) of `b`'s grey
/// levels with a part of `a` zoomed in and shifted (or of `a`'s with a part of `b`, a zoom out),
/// the part covering at least half of the picture. A camera that pans or zooms between two
/// keyframes seconds apart keeps it high (0.89 to 0.99 on a fractal zoomed 3 to 4 times and on
/// moving test patterns), where a cut does not (0.66 at most between our test scenes, 0.05 to
/// 0.22 between unlike ones). Colours and the whole picture may both have changed; where things
/// are has not.
pub fn moved_match(a: &VideoFrame, b: &VideoFrame) -> f32 {
    if a.width == 0 || a.height == 0 || b.width == 0 || b.height == 0 {
        return 0.0;
    }
    let th = (MATCH_W * a.height as usize / a.width as usize).max(2);
    let (ga, gb) = (grey_cells(a, MATCH_W, th), grey_cells(b, MATCH_W, th));
    zoomed_match(&ga, &gb, th).max(zoomed_match(&gb, &ga, th))
}

/// The best correlation of `b` with a part of `a` (both `MATCH_W x h`) zoomed in by one of
/// `MATCH_ZOOMS` about one of the `MATCH_CENTRES` (the first above `MOVED_MATCH` will do).
fn zoomed_match(a: &[f32], b: &[f32], h: usize) -> f32 {
    let w = MATCH_W;
    let mut best = -1f32;
    // Pixel (x, y) of `b` shows pixel (cx + (x - w/2) / zoom, cy + (y - h/2) / zoom) of `a`:
    // for each column (row) of `b`, that of `a`, or none outside it.
    let place = |c: f32, i: usize, n: usize, zoom: f32| {
        let v = (c + (i as f32 - n as f32 / 2.0) / zoom).round();
        (v >= 0.0 && v <= (n - 1) as f32).then_some(v as usize)
    };
    // The pairs of rows (columns) of `b` and `a` for a centre, the `k`th of `n` across `len`.
    let pairs = |k: usize, n: usize, len: usize, zoom: f32| -> Vec<(usize, usize)> {
        let c = len as f32 * (0.1 + 0.8 * k as f32 / (n - 1) as f32);
        (0..len).filter_map(|i| place(c, i, len, zoom).map(|v| (i, v))).collect()
    };
    for &zoom in &MATCH_ZOOMS {
        let columns: Vec<Vec<(usize, usize)>> =
            (0..MATCH_CENTRES.0).map(|i| pairs(i, MATCH_CENTRES.0, w, zoom)).collect();
        for j in 0..MATCH_CENTRES.1 {
            let rows = pairs(j, MATCH_CENTRES.1, h, zoom);
            for cols in &columns {
                if rows.len() * cols.len() * 2 < w * h {
                    continue;
                }
                let mut sums = Sums::default();
                for &(y, ay) in &rows {
                    let (ra, rb) = (&a[ay * w..(ay + 1) * w], &b[y * w..(y + 1) * w]);
                    for &(x, ax) in cols {
                        sums.add(ra[ax], rb[x]);
                    }
                }
                best = best.max(sums.correlation());
                if best > MOVED_MATCH {
                    return best;
                }
            }
        }
    }
    best
}

/// Running sums for a Pearson correlation.
#[derive(Default)]
struct Sums {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    yy: f64,
    xy: f64,
}

impl Sums {
    fn add(&mut self, x: f32, y: f32) {
        let (x, y) = (x as f64, y as f64);
        self.n += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.yy += y * y;
        self.xy += x * y;
    }

    /// The correlation (-1 to 1) of the pairs added; 0 where either side is flat.
    fn correlation(&self) -> f32 {
        let n = self.n.max(1.0);
        let (vx, vy) = (self.xx - self.x * self.x / n, self.yy - self.y * self.y / n);
        if vx <= 1e-3 * n || vy <= 1e-3 * n {
            return 0.0;
        }
        ((self.xy - self.x * self.y / n) / (vx * vy).sqrt()) as f32
    }
}

/// Share of cells that changed between two thumbnails.
pub fn cells_changed(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).filter(|(x, y)| (*x - *y).abs() > CELL_CHANGE).count() as f32 / a.len().max(1) as f32
}

/// The grey thumbnail (`THUMB_W x THUMB_H`, as [`thumbnail`] of the frame in RGB) of a decoded
/// frame, from its luma plane before any scaling: the cell means of one pixel in `step` across
/// and down (some 36 a cell at 1080p and 4K). `None` for pixel formats without an 8-bit luma
/// plane.
#[cfg(feature = "ffmpeg")]
pub(crate) fn luma_thumbnail(frame: &ffmpeg_next::frame::Video) -> Option<Vec<f32>> {
    use ffmpeg_next::format::Pixel;
    let full = match frame.format() {
        Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P => true,
        Pixel::YUV420P | Pixel::YUV422P | Pixel::YUV444P | Pixel::NV12 | Pixel::NV21 => false,
        _ => return None,
    };
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if w == 0 || h == 0 {
        return None;
    }
    let (luma, stride) = (frame.data(0), frame.stride(0));
    let means = cell_means(w, h, THUMB_W, THUMB_H, (w / 960).max(1), |x, y| luma[y * stride + x] as f32);
    // Limited-range luma spans 16 to 235.
    let grey = |y: f32| if full { y } else { ((y - 16.0) * 255.0 / 219.0).clamp(0.0, 255.0) };
    Some(means.into_iter().map(grey).collect())
}

/// A small picture (`width` wide) of a YUV 4:2:0 frame, without swscale: each pixel the mean of a
/// sparse grid of the cell of the frame it stands for, converted to RGB (BT.601). swscale read
/// every pixel of an HD frame to make a 64-pixel one: on 1080p it took as long as decoding the
/// frame; this reads one pixel in sixteen of the cell. `None` for other pixel formats.
#[cfg(feature = "ffmpeg")]
pub(crate) fn small_from_yuv420(
    frame: &ffmpeg_next::frame::Video,
    width: u32,
    t: f64,
    follows: crate::source::Follows,
) -> Option<VideoFrame> {
    use ffmpeg_next::format::Pixel;
    if !matches!(frame.format(), Pixel::YUV420P | Pixel::YUVJ420P) {
        return None;
    }
    let (fw, fh) = (frame.width() as usize, frame.height() as usize);
    let w = (width as usize).clamp(2, fw.max(2)) & !1;
    let h = ((w * fh / fw.max(1)).max(2)) & !1;
    let full = frame.format() == Pixel::YUVJ420P;
    let (y, u, v) = (frame.data(0), frame.data(1), frame.data(2));
    let (ys, us, vs) = (frame.stride(0), frame.stride(1), frame.stride(2));
    let mut rgb = Vec::with_capacity(w * h * 3);
    for oy in 0..h {
        let (y0, y1) = (oy * fh / h, ((oy + 1) * fh / h).max(oy * fh / h + 1));
        for ox in 0..w {
            let (x0, x1) = (ox * fw / w, ((ox + 1) * fw / w).max(ox * fw / w + 1));
            let (mut sy, mut su, mut sv, mut n) = (0u32, 0u32, 0u32, 0u32);
            let step = |a: usize, b: usize| ((b - a) / 4).max(1);
            for py in (y0..y1).step_by(step(y0, y1)) {
                for px in (x0..x1).step_by(step(x0, x1)) {
                    sy += y[py * ys + px] as u32;
                    su += u[(py / 2) * us + px / 2] as u32;
                    sv += v[(py / 2) * vs + px / 2] as u32;
                    n += 1;
                }
            }
            let (yy, cb, cr) = (sy as f32 / n as f32, su as f32 / n as f32 - 128.0, sv as f32 / n as f32 - 128.0);
            let yy = if full { yy } else { (yy - 16.0) * 255.0 / 219.0 };
            let c = if full { 1.0 } else { 255.0 / 224.0 };
            let px = [yy + 1.402 * c * cr, yy - 0.344_136 * c * cb - 0.714_136 * c * cr, yy + 1.772 * c * cb];
            rgb.extend(px.map(|x| x.round().clamp(0.0, 255.0) as u8));
        }
    }
    Some(VideoFrame { at: crate::time::Ts::from_secs_f64(t), width: w as u32, height: h as u32, rgb, follows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Ts;

    #[test]
    fn histogram_counts_every_pixel_once() {
        // 7 pixels: one group of four and three left over.
        let rgb: Vec<u8> = (0..21u32).map(|i| (i * 97 % 256) as u8).collect();
        let h =
            histogram(&VideoFrame { at: Ts(0), width: 7, height: 1, rgb: rgb.clone(), follows: Default::default() });
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

    /// A picture of blobs: smooth, with structure at several scales, like a scene.
    fn scene(w: u32, h: u32, seed: u32, zoom: f32, centre: (f32, f32)) -> VideoFrame {
        let blob = |k: u32| {
            let r = |m: u32| {
                // splitmix64 of (seed, blob, field)
                let mut z = ((seed as u64) << 40 | (k as u64) << 8 | m as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                ((z ^ (z >> 31)) % 10_000) as f32 / 10_000.0
            };
            (r(1), r(2), 0.02 + 0.06 * r(3), r(4))
        };
        let blobs: Vec<_> = (0..120).map(blob).collect();
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                // The point of the scene this pixel shows (the scene is 16:9 and 1 unit wide).
                let u = centre.0 + (x as f32 / w as f32 - 0.5) / zoom;
                let v = centre.1 + (y as f32 / h as f32 - 0.5) * 0.5625 / zoom;
                let mut level = 40.0;
                for &(bx, by, r, l) in &blobs {
                    let d2 = (u - bx).powi(2) + (v - by * 0.5625).powi(2);
                    level += 180.0 * l * (-d2 / (r * r)).exp();
                }
                let g = level.clamp(0.0, 255.0) as u8;
                rgb.extend([g, g / 2, 255 - g]);
            }
        }
        VideoFrame { at: Ts(0), width: w, height: h, rgb, follows: Default::default() }
    }

    #[test]
    fn a_picture_panned_or_zoomed_matches_and_another_does_not() {
        // One scene seen wide, zoomed in 2.5 times, from 3 times closer (the wide view is then the
        // zoom out), and panned by a quarter of the picture; and two other scenes.
        let before = scene(320, 180, 1, 1.0, (0.5, 0.28));
        let zoomed_in = moved_match(&before, &scene(320, 180, 1, 2.5, (0.4, 0.3)));
        let zoomed_out = moved_match(&scene(320, 180, 1, 3.0, (0.6, 0.25)), &before);
        let panned = moved_match(&before, &scene(320, 180, 1, 1.0, (0.75, 0.3)));
        let other = moved_match(&before, &scene(320, 180, 2, 1.0, (0.5, 0.28)));
        let other_zoomed = moved_match(&before, &scene(320, 180, 3, 2.0, (0.5, 0.28)));
        for m in [zoomed_in, zoomed_out, panned] {
            assert!(m > MOVED_MATCH, "{zoomed_in} {zoomed_out} {panned}");
        }
        for m in [other, other_zoomed] {
            assert!(m < MOVED_MATCH - 0.1, "{other} {other_zoomed}");
        }
        // Flat pictures match nothing.
        let flat = VideoFrame { rgb: vec![90; 320 * 180 * 3], ..before.clone() };
        assert_eq!(moved_match(&flat, &before), 0.0);
    }

    #[cfg(feature = "ffmpeg")]
    #[test]
    fn the_luma_thumbnail_is_the_thumbnail_of_the_picture() {
        use ffmpeg_next::format::Pixel;
        // A grey picture (no colour) in limited-range YUV: a gradient with a dark block.
        let (w, h) = (640usize, 360usize);
        let luma = |x: usize, y: usize| {
            if (100..300).contains(&x) && (50..120).contains(&y) {
                20u8
            } else {
                (16 + (x + 2 * y) % 219) as u8
            }
        };
        let mut frame = ffmpeg_next::frame::Video::new(Pixel::YUV420P, w as u32, h as u32);
        let stride = frame.stride(0);
        for y in 0..h {
            for x in 0..w {
                frame.data_mut(0)[y * stride + x] = luma(x, y);
            }
        }
        for plane in 1..3 {
            frame.data_mut(plane).fill(128);
        }
        let rgb = (0..h)
            .flat_map(|y| (0..w).map(move |x| (luma(x, y) as f32 - 16.0) * 255.0 / 219.0))
            .flat_map(|g| [g.round().clamp(0.0, 255.0) as u8; 3])
            .collect();
        let picture = VideoFrame { at: Ts(0), width: w as u32, height: h as u32, rgb, follows: Default::default() };
        let (a, b) = (luma_thumbnail(&frame).expect("YUV 4:2:0"), thumbnail(&picture));
        assert_eq!(a.len(), THUMB_W * THUMB_H);
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 1.0, "cells differ by up to {worst}");
        assert_eq!(cells_changed(&a, &b), 0.0);
    }

    #[test]
    fn a_picture_turned_a_quarter_clockwise_puts_its_left_column_on_top() {
        // 3 x 2, each pixel's red its index: 0 1 2 / 3 4 5.
        let f = VideoFrame {
            at: Ts(0),
            width: 3,
            height: 2,
            rgb: (0..6u8).flat_map(|i| [i, 0, 0]).collect(),
            follows: Default::default(),
        };
        let red = |f: &VideoFrame| f.rgb.iter().step_by(3).copied().collect::<Vec<u8>>();
        let once = turned(f.clone(), 1);
        assert_eq!((once.width, once.height, red(&once)), (2, 3, vec![3, 0, 4, 1, 5, 2]));
        assert_eq!(red(&turned(f.clone(), 2)), vec![5, 4, 3, 2, 1, 0]);
        assert_eq!(red(&turned(f.clone(), 3)), vec![2, 5, 1, 4, 0, 3]);
        assert_eq!(turned(turned(once, 3), 0).rgb, f.rgb);
    }

    /// Grey stripes 4 pixels wide, `shift` pixels along, at `at_ms`; `None`: all black.
    fn stripes(at_ms: i64, shift: Option<usize>) -> VideoFrame {
        let level = |x: usize| shift.map_or(0, |s| if ((x + s) / 4).is_multiple_of(2) { 40 } else { 215 });
        let rgb = (0..64 * 36).flat_map(|i| [level(i % 64); 3]).collect();
        VideoFrame { at: Ts(at_ms), width: 64, height: 36, rgb, follows: Default::default() }
    }

    #[test]
    fn a_picture_that_changes_all_the_time_is_decoded_between_only_where_it_changed_more() {
        // Stripes a pixel along at each reference frame (a quarter of the picture changes), then
        // a cut to black.
        let mut refs: Vec<VideoFrame> = (0..8).map(|i| stripes(160 * i as i64, Some(i))).collect();
        refs.extend([stripes(1280, None), stripes(1440, None)]);
        let frames: Vec<&VideoFrame> = refs.iter().collect();
        assert_eq!(changed_pairs(&frames, |_, _| true), vec![(1.12, 1.28)]);
        // Too few pairs to tell what is usual: every change is looked into.
        assert_eq!(changed_pairs(&frames[..3], |_, _| true), vec![(0.0, 0.16), (0.16, 0.32)]);
        assert!(changed_pairs(&frames, |a, _| a < 1.0).is_empty(), "no frames between");
    }

    #[test]
    fn a_gop_settles_on_the_frame_that_cuts_to_the_next_keyframes_shot() {
        let (grey, black) = (histogram(&stripes(0, Some(0))), histogram(&stripes(0, None)));
        let media = |frames: Vec<VideoFrame>| frames.into_iter().map(crate::source::Media::Video).collect::<Vec<_>>();
        // From grey stripes to black at the next keyframe: the first black frame is the cut,
        // nothing after it need be decoded.
        let mut settling = Settling::new(grey.clone(), black.clone(), 0);
        assert!(!settling.settled(&media(vec![stripes(40, Some(0)), stripes(80, Some(0))])));
        assert!(settling.settled(&media(vec![stripes(40, Some(0)), stripes(80, Some(0)), stripes(120, None)])));
        // Already black at the GOP's keyframe: the frames show no change, and it goes on.
        let mut settling = Settling::new(black.clone(), black, 0);
        assert!(!settling.settled(&media(vec![stripes(40, None), stripes(80, None)])));
    }
}
