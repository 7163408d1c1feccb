//! Whether a still may hold a line of text, told in 5 to 40 ms so that Tesseract (about a quarter
//! of a second a 1280-wide still on one core) reads only pictures that may. It looks for what a
//! line of type has: three or more marks of about one height, standing side by side on one line,
//! each darker (or each lighter) than the picture around it, with clear ground above and below
//! the line. A test card, a blank or soft picture, or a texture whose marks run into each other
//! has no such row. A picture with one is read; so is any picture too busy to judge, as every
//! picture was before.

use std::ops::Range;

use crate::runs::runs_of;
use crate::source::VideoFrame;

/// Half the side of the square over which a pixel's surroundings are averaged, as a share of the
/// picture's height (about 15 pixels at 720 lines: wider than a stroke of body text).
const WINDOW_SHARE: f32 = 1.0 / 48.0;
/// How far (grey levels, 0 to 255) a pixel must stand out from its surroundings to be ink.
const CONTRAST: i32 = 24;
/// Marks lower than this (pixels) are noise, not letters; higher than this share of the picture
/// are shapes, not letters.
const MIN_HEIGHT: u32 = 6;
const MAX_HEIGHT_SHARE: f32 = 0.35;
/// A letter (or two run together) is at most this many times as wide as it is high, and its ink
/// fills this share of its box: not a rule or a band, not a lattice, not a filled block (the
/// cells of a grid over colour bars scaled down from 4K fill 86-94% of theirs and stood in a row;
/// the rows of letters of `tests/visual.rs` are still found with 75%).
const WIDEST: f32 = 2.5;
const MIN_FILL: f32 = 0.1;
const MAX_FILL: f32 = 0.85;
/// Letters in a row: at least this many marks, each within `GAP` of its height from the next,
/// their heights within `HEIGHTS` of each other, standing on one line or hanging from one (their
/// bottoms or their tops within `LINE` of the taller one's height).
pub const LETTERS: usize = 3;
const GAP: f32 = 1.0;
const HEIGHTS: f32 = 0.4;
const LINE: f32 = 0.12;
/// Letters side by side overlap little (a letter and the hole inside it are not a row).
const OVERLAP: f32 = 0.2;
/// A group where more than this share of the marks cross another's box is a texture.
const TANGLED: f32 = 0.25;
/// A row of letters has clear ground above and below it: in bands of `BAND` of its height, at
/// most `CLEAN` of the pixels are ink of its kind.
const BAND: f32 = 0.3;
const CLEAN: f32 = 0.15;
/// Beyond this many marks the picture is too busy to judge cheaply: it is read.
const MAX_MARKS: usize = 50_000;

/// One connected mark of ink: its bounding box and how many pixels it holds.
#[derive(Debug, Clone, Copy)]
struct Mark {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    pixels: u32,
}

impl Mark {
    fn height(&self) -> f32 {
        (self.y1 - self.y0 + 1) as f32
    }
    fn width(&self) -> f32 {
        (self.x1 - self.x0 + 1) as f32
    }
    /// Shaped like a letter (or two run together): not a line, not a filled block, not cut by
    /// the picture's edge.
    fn letter_like(&self, picture_width: u32, picture_height: u32) -> bool {
        let (w, h) = (self.width(), self.height());
        let inside = self.x0 > 0 && self.y0 > 0 && self.x1 + 1 < picture_width && self.y1 + 1 < picture_height;
        let fill = self.pixels as f32 / (w * h);
        inside
            && h >= MIN_HEIGHT as f32
            && h <= MAX_HEIGHT_SHARE * picture_height as f32
            && w <= WIDEST * h
            && (MIN_FILL..MAX_FILL).contains(&fill)
    }
}

/// The most letter-like marks found in one row on `frame`: at least `LETTERS` where it may hold
/// a line of text.
pub fn longest_row(frame: &VideoFrame) -> usize {
    let (w, h) = (frame.width as usize, frame.height as usize);
    if w == 0 || h == 0 || frame.rgb.len() < w * h * 3 {
        return 0;
    }
    let grey: Vec<u8> = frame
        .rgb
        .chunks_exact(3)
        .map(|p| ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8) as u8)
        .collect();
    let ink = ink(&grey, w, h);
    // Dark letters on a light ground or light on dark, each alone: the ground around a letter
    // stands out the other way, and its marks would cross the letters'.
    let mut best = 0;
    for wanted in [1, 2] {
        let mut marks: Vec<Mark> =
            connected(&ink, w, h, wanted).into_iter().filter(|m| m.letter_like(frame.width, frame.height)).collect();
        if marks.len() > MAX_MARKS {
            return usize::MAX;
        }
        best = best.max(longest_line(&mut marks, &Ink { ink: &ink, width: w, height: h, wanted }));
    }
    best
}

/// Each pixel: 1 where it is darker than its surroundings by `CONTRAST`, 2 where lighter, 0
/// otherwise (the surroundings' mean from a summed-area table).
fn ink(grey: &[u8], w: usize, h: usize) -> Vec<u8> {
    // Sums wrap at 2^32 (a 4K picture's total can pass it); a window's sum, taken as a
    // difference, is exact (under 2^32).
    let stride = w + 1;
    let mut sums = vec![0u32; stride * (h + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            row = row.wrapping_add(grey[y * w + x] as u32);
            sums[(y + 1) * stride + x + 1] = sums[y * stride + x + 1].wrapping_add(row);
        }
    }
    let r = ((h as f32 * WINDOW_SHARE).round() as usize).max(2);
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        let (top, bottom) = (&sums[y0 * stride..][..stride], &sums[y1 * stride..][..stride]);
        let (row, out) = (&grey[y * w..][..w], &mut out[y * w..][..w]);
        // The pixel and the mean around it, both times `area` (under 2^31: a window of a 4K
        // picture holds some 8,300 pixels).
        let judge = |x: usize, x0: usize, x1: usize| {
            let total = bottom[x1].wrapping_sub(bottom[x0]).wrapping_sub(top[x1]).wrapping_add(top[x0]) as i32;
            let area = ((y1 - y0) * (x1 - x0)) as i32;
            let v = row[x] as i32 * area;
            (v < total - CONTRAST * area) as u8 | ((v > total + CONTRAST * area) as u8) << 1
        };
        for (x, v) in out.iter_mut().enumerate() {
            *v = judge(x, x.saturating_sub(r), (x + r + 1).min(w));
        }
    }
    out
}

/// The 8-connected marks of pixels equal to `wanted`, by union-find over runs of a row.
fn connected(ink: &[u8], w: usize, h: usize, wanted: u8) -> Vec<Mark> {
    let mut parent: Vec<usize> = Vec::new();
    // Runs of ink: (row, first column, last column, label).
    let mut runs: Vec<(u32, u32, u32, usize)> = Vec::new();
    let mut previous = 0..0; // the previous row's runs in `runs`
    for y in 0..h {
        let row = &ink[y * w..(y + 1) * w];
        let start = runs.len();
        // The row above's runs, left to right: those ending before this run's diagonal
        // neighbour touch no run further right either (a texture's rows hold hundreds of runs,
        // and each run compared with all of the row above's took 50-90 ms a 1280-wide still).
        let mut above = previous.start;
        for Range { start: x0, end } in runs_of(row, wanted) {
            let label = parent.len();
            parent.push(label);
            while above < previous.end && (runs[above].2 as usize) + 1 < x0 {
                above += 1;
            }
            // Runs of the row above that touch this one, diagonals included.
            for &(_, a0, _, other) in &runs[above..previous.end] {
                if a0 as usize > end {
                    break;
                }
                let (p, q) = (find(&mut parent, label), find(&mut parent, other));
                parent[p.max(q)] = p.min(q);
            }
            runs.push((y as u32, x0 as u32, (end - 1) as u32, label));
        }
        previous = start..runs.len();
    }
    let mut index = vec![usize::MAX; parent.len()];
    let mut marks: Vec<Mark> = Vec::new();
    for &(y, x0, x1, label) in &runs {
        let root = find(&mut parent, label);
        if index[root] == usize::MAX {
            index[root] = marks.len();
            marks.push(Mark { x0, y0: y, x1, y1: y, pixels: 0 });
        }
        let m = &mut marks[index[root]];
        (m.x0, m.x1, m.y1) = (m.x0.min(x0), m.x1.max(x1), m.y1.max(y));
        m.pixels += x1 - x0 + 1;
    }
    marks
}

/// The most marks on one line with clear ground above and below it. Marks are first joined in
/// groups, each to a neighbour of about its height beside it on one line (its bottom or top).
fn longest_line(marks: &mut [Mark], ink: &Ink) -> usize {
    marks.sort_unstable_by_key(|m| m.x0);
    let mut parent: Vec<usize> = (0..marks.len()).collect();
    for i in 0..marks.len() {
        let a = marks[i];
        // The farthest a neighbour may start: `GAP` of the tallest height it may have.
        let reach = a.x1 as f32 + GAP * a.height() / (1.0 - HEIGHTS);
        for (j, &b) in marks.iter().enumerate().skip(i + 1) {
            if b.x0 as f32 > reach {
                break;
            }
            let (short, tall) = (a.height().min(b.height()), a.height().max(b.height()));
            let gap = b.x0 as f32 - a.x1 as f32;
            let within = (LINE * tall).max(2.0);
            let lined = a.y1.abs_diff(b.y1) as f32 <= within || a.y0.abs_diff(b.y0) as f32 <= within;
            if short >= (1.0 - HEIGHTS) * tall && lined && gap <= GAP * tall && gap >= -OVERLAP * short {
                let (p, q) = (find(&mut parent, i), find(&mut parent, j));
                parent[p.max(q)] = p.min(q);
            }
        }
    }
    // A row of letters stands on one line: count, in each group, the marks of about its typical
    // height whose bottoms lie on its typical bottom, side by side (a texture's marks, joined
    // every way, have no such line).
    let mut groups: Vec<(usize, usize)> = (0..marks.len()).map(|i| (find(&mut parent, i), i)).collect();
    groups.sort_unstable();
    groups
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|g| g.len() >= LETTERS && !tangled(g.iter().map(|&(_, i)| marks[i])))
        .map(|g| {
            let median = |mut v: Vec<f32>| {
                v.sort_by(f32::total_cmp);
                v[v.len() / 2]
            };
            let height = median(g.iter().map(|&(_, i)| marks[i].height()).collect());
            let bottom = median(g.iter().map(|&(_, i)| marks[i].y1 as f32).collect());
            let within = (LINE * height).max(2.0);
            let mut right = f32::NEG_INFINITY;
            let mut on_line = 0;
            let (mut left, mut top, mut low) = (u32::MAX, u32::MAX, 0);
            for &(_, i) in g {
                let m = marks[i];
                let sized = m.height() >= (1.0 - HEIGHTS) * height && m.height() <= height / (1.0 - HEIGHTS);
                if sized && (m.y1 as f32 - bottom).abs() <= within && m.x0 as f32 >= right - OVERLAP * m.height() {
                    on_line += 1;
                    right = m.x1 as f32;
                    (left, top, low) = (left.min(m.x0), top.min(m.y0), low.max(m.y1));
                }
            }
            let band = ((BAND * height) as u32).max(2);
            let above = ink.share(left, right as u32, top.saturating_sub(band), top);
            let below = ink.share(left, right as u32, low + 1, low + 1 + band);
            if above.max(below) <= CLEAN {
                on_line
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

/// The pixels of one kind of ink.
struct Ink<'a> {
    ink: &'a [u8],
    width: usize,
    height: usize,
    wanted: u8,
}

impl Ink<'_> {
    /// The share of the pixels of columns `x0..=x1` and rows `y0..y1` that are ink of this kind.
    fn share(&self, x0: u32, x1: u32, y0: u32, y1: u32) -> f32 {
        let (x1, y1) = ((x1 as usize).min(self.width - 1), (y1 as usize).min(self.height));
        let (x0, y0) = (x0 as usize, y0 as usize);
        if x0 > x1 || y0 >= y1 {
            return 0.0;
        }
        let inked: usize = (y0..y1)
            .map(|y| self.ink[y * self.width + x0..=y * self.width + x1].iter().filter(|&&v| v == self.wanted).count())
            .sum();
        inked as f32 / ((x1 - x0 + 1) * (y1 - y0)) as f32
    }
}

/// Whether more than `TANGLED` of `group`'s marks cross another's box: letters stand side by
/// side, or one inside another (a letter's hole), where a texture's marks reach into each other.
fn tangled(group: impl Iterator<Item = Mark>) -> bool {
    let mut group: Vec<Mark> = group.collect();
    group.sort_unstable_by_key(|m| m.x0);
    let inside = |a: &Mark, b: &Mark| a.x0 >= b.x0 && a.x1 <= b.x1 && a.y0 >= b.y0 && a.y1 <= b.y1;
    let mut crossing = vec![false; group.len()];
    for i in 0..group.len() {
        let a = group[i];
        // Sorted by left edge: only the marks starting before `a` ends can reach into it.
        for j in i + 1..group.len() {
            let b = group[j];
            if b.x0 > a.x1 {
                break;
            }
            let across = a.x1.min(b.x1) as f32 - b.x0 as f32;
            let down = a.y1.min(b.y1) as f32 - a.y0.max(b.y0) as f32;
            if across > OVERLAP * a.width().min(b.width()) && down > 0.0 && !inside(&a, &b) && !inside(&b, &a) {
                (crossing[i], crossing[j]) = (true, true);
            }
        }
    }
    crossing.iter().filter(|&&c| c).count() as f32 > TANGLED * group.len() as f32
}

/// The root of `i`'s set in a union-find forest (halving the path on the way).
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8-connected marks of `wanted` by flooding from each unvisited pixel: boxes and sizes,
    /// sorted.
    fn flooded(ink: &[u8], w: usize, h: usize, wanted: u8) -> Vec<(u32, u32, u32, u32, u32)> {
        let mut seen = vec![false; w * h];
        let mut marks = Vec::new();
        for start in 0..w * h {
            if seen[start] || ink[start] != wanted {
                continue;
            }
            seen[start] = true;
            let (mut stack, mut m) = (vec![start], (u32::MAX, u32::MAX, 0, 0, 0));
            while let Some(i) = stack.pop() {
                let (x, y) = (i % w, i / w);
                m = (m.0.min(x as u32), m.1.min(y as u32), m.2.max(x as u32), m.3.max(y as u32), m.4 + 1);
                for (dx, dy) in [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)] {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] && ink[j] == wanted {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
            marks.push(m);
        }
        marks.sort_unstable();
        marks
    }

    #[test]
    fn ink_is_what_stands_out_from_the_mean_around_it() {
        let (w, h) = (150, 97);
        let grey: Vec<u8> = (0..w * h).map(|i| ((i * 7919 + (i / w) * 31) % 251) as u8).collect();
        let r = ((h as f32 * WINDOW_SHARE).round() as usize).max(2);
        let found = ink(&grey, w, h);
        for y in 0..h {
            for x in 0..w {
                let (ys, xs) = (y.saturating_sub(r)..(y + r + 1).min(h), x.saturating_sub(r)..(x + r + 1).min(w));
                let n = (ys.len() * xs.len()) as f64;
                let mean = ys
                    .flat_map(|yy| xs.clone().map(move |xx| (yy, xx)))
                    .map(|(yy, xx)| grey[yy * w + xx] as f64)
                    .sum::<f64>()
                    / n;
                let v = grey[y * w + x] as f64;
                let want = if v < mean - CONTRAST as f64 {
                    1
                } else if v > mean + CONTRAST as f64 {
                    2
                } else {
                    0
                };
                assert_eq!(found[y * w + x], want, "at {x},{y}");
            }
        }
        assert!(found.contains(&1) && found.contains(&2) && found.contains(&0));
    }

    #[test]
    fn marks_are_the_connected_pixels_of_their_kind() {
        // Ink of both kinds scattered at three densities (sparse dots, a texture, mostly ink),
        // from a fixed pseudo-random sequence.
        let (w, h) = (97, 61);
        let mut state = 12345u64;
        for density in [10, 45, 80] {
            let ink: Vec<u8> = (0..w * h)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let r = (state >> 33) % 100;
                    if r < density {
                        1 + (r % 2) as u8
                    } else {
                        0
                    }
                })
                .collect();
            for wanted in [1, 2] {
                let mut found: Vec<_> =
                    connected(&ink, w, h, wanted).iter().map(|m| (m.x0, m.y0, m.x1, m.y1, m.pixels)).collect();
                found.sort_unstable();
                assert_eq!(found, flooded(&ink, w, h, wanted), "density {density}, kind {wanted}");
            }
        }
    }
}
