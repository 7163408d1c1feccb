//! What groups of pictures (GOPs) tell before any of them is decoded: a GOP by its packets'
//! sizes alone (`sizes` are those of the packets after its keyframe, in decode order), and the
//! stream's beat by the container's index.

use ffmpeg_next as ff;

/// A packet this many times the GOP's median (and at least `BURST_MIN_BYTES`) is a burst.
const BURST_RATIO: usize = 3;
const BURST_MIN_BYTES: usize = 2_000;
/// A GOP whose median packet is smaller than this share of its keyframe's shows a still picture
/// (slides, title cards: measured 0.1% to 1.2%); a moving one's is far larger (6% to 53% on our
/// test media, 18% to 25% on a real clip).
const STILL_RATIO: f64 = 0.03;
/// A GOP whose first and last thirds' median packets are within this factor of each other is
/// steady (0.87 to 1.11 in the moving shots of our test talks; 0.46 and 0.65 in cellular
/// automata settling).
const STEADY_RATIO: f64 = 1.5;

fn median(sizes: &[usize]) -> usize {
    let mut v = sizes.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Whether the GOP shows a still picture: its packets are tiny beside its keyframe's
/// (`key_bytes`).
pub(super) fn still(sizes: &[usize], key_bytes: usize) -> bool {
    !sizes.is_empty() && (median(sizes) as f64) < STILL_RATIO * key_bytes as f64
}

/// Whether the GOP's frames cost alike from its start to its end: the medians of its first and
/// last thirds within `STEADY_RATIO` of each other. A dissolve into another shot, or a shot that
/// settles, changes what a frame costs (a moving test pattern dissolved into still bars: 20 kB a
/// frame to 80 bytes).
pub(super) fn steady(sizes: &[usize]) -> bool {
    if sizes.len() < 6 {
        return false;
    }
    let third = sizes.len() / 3;
    let (first, last) = (median(&sizes[..third]).max(1), median(&sizes[sizes.len() - third..]).max(1));
    let ratio = last as f64 / first as f64;
    (1.0 / STEADY_RATIO..=STEADY_RATIO).contains(&ratio)
}

/// The indices (into `sizes`) of the packets much larger than the GOP's others: what an encoder
/// writes for a cut or a slide change that got no keyframe of its own.
pub(super) fn bursts(sizes: &[usize]) -> Vec<usize> {
    if sizes.len() < 2 {
        return Vec::new();
    }
    let median = median(sizes).max(1);
    (0..sizes.len()).filter(|&i| sizes[i] >= BURST_MIN_BYTES && sizes[i] > BURST_RATIO * median).collect()
}

/// A packet of a GOP much larger than the others.
pub(super) struct Burst {
    pub(super) pts: Option<i64>,
    /// The last frame shown before it among those decoded before it: frames shown between the
    /// two are decoded after it, predicted from it.
    pub(super) since: Option<i64>,
    /// No frame shown before it is decoded after it: a change there is placed at it.
    pub(super) exact: bool,
}

/// The bursts of `gop` (its packets, keyframe first, in decode order), each exact where no frame
/// shown before it is decoded after it (B-frames shown before a burst may show the new picture
/// already, predicted from it; frames decoded before it cannot).
pub(super) fn packet_bursts(gop: &[ff::Packet]) -> Vec<Burst> {
    let sizes: Vec<usize> = gop.iter().skip(1).map(|p| p.size()).collect();
    bursts(&sizes)
        .into_iter()
        .map(|i| {
            let (pts, before, after) = (gop[i + 1].pts(), &gop[..=i], &gop[i + 2..]);
            let since = pts.and_then(|pts| before.iter().filter_map(|q| q.pts()).filter(|&t| t < pts).max());
            let exact = pts.is_some_and(|pts| after.iter().all(|q| q.pts().is_some_and(|t| t > pts)));
            Burst { pts, since, exact }
        })
        .collect()
}

/// The stream's beat (its encoder's largest GOP, in packets) from the container's index, when
/// that lists every packet (MP4 and MOV do; Matroska's lists keyframes only): the largest
/// interval between two keyframes met twice or more (within one), else the largest; and whether
/// keyframes come off it (but for the last GOP, which the stream's end cuts short): the encoder's
/// scene cuts. Known from the start, they let the first GOP be judged as the others are.
pub(super) fn indexed_beat(stream: &ff::format::stream::Stream) -> Option<(usize, bool)> {
    let frames = stream.frames();
    // SAFETY: `stream` belongs to an open input; its index entries are read here and not kept,
    // and nothing changes the index meanwhile (the function takes a mutable pointer but only
    // reads).
    let keys: Vec<i64> = unsafe {
        let st = stream.as_ptr() as *mut ff::ffi::AVStream;
        let n = ff::ffi::avformat_index_get_entries_count(st);
        if n < 3 || frames <= 0 || i64::from(n) < frames * 9 / 10 {
            return None;
        }
        (0..n)
            .filter(|&i| {
                let e = ff::ffi::avformat_index_get_entry(st, i);
                !e.is_null() && (*e).flags() & ff::ffi::AVINDEX_KEYFRAME != 0
            })
            .map(i64::from)
            .collect()
    };
    let mut intervals: Vec<usize> = keys.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
    intervals.sort_unstable_by(|a, b| b.cmp(a));
    let twice = intervals.windows(2).find(|w| w[0] <= w[1] + 1).map(|w| w[0]);
    let beat = twice.or(intervals.first().copied())?;
    let scene_cuts = keys.windows(2).any(|w| (w[1] - w[0]) as usize + 1 < beat);
    Some((beat, scene_cuts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dissolve_into_a_still_picture_is_not_steady() {
        let moving: Vec<usize> = (0..99).map(|i| 18_000 + (i * 7919) % 12_000).collect();
        assert!(steady(&moving));
        let dissolved: Vec<usize> = moving.iter().enumerate().map(|(i, &s)| if i < 50 { s } else { 80 }).collect();
        assert!(!steady(&dissolved));
        // A shot that costs more and more (a dissolve into a busier one).
        let busier: Vec<usize> = moving.iter().enumerate().map(|(i, &s)| s + i * 500).collect();
        assert!(!steady(&busier));
        assert!(!steady(&moving[..5]), "too short to tell");
    }

    #[test]
    fn stills_and_bursts() {
        let slide = vec![70; 99];
        assert!(still(&slide, 40_000));
        assert!(!still(&slide, 1_000));
        let mut cut = vec![20_000; 99];
        cut[40] = 90_000;
        assert_eq!(bursts(&cut), vec![40]);
        assert!(bursts(&[100, 5_000]).is_empty(), "too small to be a burst");
        assert!(!still(&cut, 60_000));
    }
}
