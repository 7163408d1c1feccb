//! Measures of sampled pictures that both the source (deciding what video to decode) and the
//! preprocess stage (shot changes, stills) use: a colour histogram and its distance, a grey
//! thumbnail and the share of its cells that changed.

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

/// Thumbnail side lengths: coarse enough to ignore compression noise, fine enough that a line of
/// text replaced by another changes cells (averaging larger cells evens the two out).
pub const THUMB_W: usize = 160;
pub const THUMB_H: usize = 90;
/// A cell changed when its grey level moved by more than this (0 to 255).
const CELL_CHANGE: f32 = 16.0;

/// Grey box-filtered thumbnail, `THUMB_W x THUMB_H`.
pub fn thumbnail(f: &VideoFrame) -> Vec<f32> {
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

/// Share of cells that changed between two thumbnails.
pub fn cells_changed(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).filter(|(x, y)| (*x - *y).abs() > CELL_CHANGE).count() as f32 / a.len().max(1) as f32
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
}
