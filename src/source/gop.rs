//! Groups of pictures (GOPs) before any of them is decoded: a GOP's packets, kept until the next
//! keyframe; what their sizes tell (`sizes` are those of the packets after its keyframe, in
//! decode order); and the stream's beat, from GOPs counted in display order and from the
//! container's index.

use ffmpeg_next as ff;

/// A packet this many times the GOP's median (and at least `BURST_MIN_BYTES`) is a burst.
const BURST_RATIO: usize = 3;
const BURST_MIN_BYTES: usize = 2_000;
/// Packets shrinking after a keyframe are an encoder refilling the picture's detail under its
/// bitrate cap (a fixed-GOP 1080p stream at 12 Mb/s: 45, 32, 16, 11 kB against a median of
/// 4 kB and a keyframe of 97 kB), not bursts: the refill lasts until a packet rises over
/// `BURST_RISE` times the largest of the `BURST_LOOKBACK` before it (the last reference frame
/// among them), and over the keyframe where that is one of them (a cut right after a 4K
/// keyframe: 320 kB after 172 kB).
const BURST_RISE: f64 = 1.5;
const BURST_LOOKBACK: usize = 4;
/// A GOP whose median packet is smaller than this share of its keyframe's shows a still picture
/// (slides, title cards: measured 0.1% to 1.2%); a moving one's is far larger (6% to 53% on our
/// test media, 18% to 25% on a real clip).
const STILL_RATIO: f64 = 0.03;
/// ...and whose median packet is under this many bytes a pixel (slides: 0.0002 at most; a 4K
/// handheld shot under a phone's bitrate cap, its keyframes 1.3-1.8 MB, spends 0.0024 to 0.007
/// on its moving frames, 1.5-2% of its keyframes).
const STILL_BYTES_PER_PIXEL: f64 = 0.001;
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
/// (`key_bytes`) and for its `pixels`.
pub(super) fn still(sizes: &[usize], key_bytes: usize, pixels: usize) -> bool {
    let tiny = |m: f64| m < STILL_RATIO * key_bytes as f64 && m < STILL_BYTES_PER_PIXEL * pixels as f64;
    !sizes.is_empty() && tiny(median(sizes) as f64)
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

/// The indices (into `sizes`) of the packets much larger than the GOP's others (`BURST_RATIO`
/// times its median, and at least `BURST_MIN_BYTES`).
fn large(sizes: &[usize]) -> Vec<usize> {
    if sizes.len() < 2 {
        return Vec::new();
    }
    let median = median(sizes).max(1);
    (0..sizes.len()).filter(|&i| sizes[i] >= BURST_MIN_BYTES && sizes[i] > BURST_RATIO * median).collect()
}

/// Where the refill after the keyframe (`key_bytes`: its size) ends: the first packet that rises
/// over those before it.
fn refill_end(sizes: &[usize], key_bytes: usize) -> usize {
    let rises = |i: usize| {
        let before = sizes[i.saturating_sub(BURST_LOOKBACK)..i].iter().max().map_or(0.0, |&b| BURST_RISE * b as f64);
        sizes[i] as f64 > before && (i >= BURST_LOOKBACK || sizes[i] > key_bytes)
    };
    (0..sizes.len()).find(|&i| rises(i)).unwrap_or(sizes.len())
}

/// The indices (into `sizes`) of the GOP's large packets, each with whether it lies in the refill
/// after the keyframe (`key_bytes`: its size). Those past the refill are its bursts: what an
/// encoder writes for a cut or a slide change that got no keyframe of its own. (A cut in the
/// refill is told by the keyframes' colours.)
fn judged(sizes: &[usize], key_bytes: usize) -> Vec<(usize, bool)> {
    let end = refill_end(sizes, key_bytes);
    large(sizes).into_iter().map(|i| (i, i < end)).collect()
}

/// The indices of the bursts among `sizes` (`judged`'s large packets past the refill).
#[cfg(test)]
fn bursts(sizes: &[usize], key_bytes: usize) -> Vec<usize> {
    judged(sizes, key_bytes).into_iter().filter_map(|(i, refill)| (!refill).then_some(i)).collect()
}

/// A GOP larger than this (compressed) is not kept: its inside is left undecoded.
const MAX_GOP_BYTES: usize = 64 << 20;

/// A GOP's packets, its keyframe first, in decode order, kept until the next keyframe tells
/// whether it is decoded.
#[derive(Default)]
pub(super) struct Gop {
    packets: Vec<ff::Packet>,
    count: usize,
    bytes: usize,
    /// It grew too large to keep: its inside is not decoded.
    dropped: bool,
    /// Its keyframe's leading pictures (an open GOP's: shown before it, decoded after it).
    leading: usize,
}

impl Gop {
    /// The GOP of `key`, with its leading pictures.
    pub(super) fn new(key: ff::Packet, leading: Vec<ff::Packet>) -> Self {
        let mut gop = Gop { packets: vec![key], count: 1, bytes: 0, dropped: false, leading: leading.len() };
        leading.into_iter().for_each(|p| gop.keep(p));
        gop
    }

    /// Keeps a packet after the keyframe (none before the stream's first).
    pub(super) fn keep(&mut self, packet: ff::Packet) {
        if self.packets.is_empty() {
            return;
        }
        self.count += 1;
        self.bytes += packet.size();
        if self.bytes > MAX_GOP_BYTES {
            self.dropped = true;
            self.packets.truncate(1);
        } else if !self.dropped {
            self.packets.push(packet);
        }
    }

    /// Its frames in display order, the next keyframe having `next_leading` leading pictures:
    /// its packets, less its keyframe's leading pictures, plus the next one's.
    pub(super) fn frames(&self, next_leading: usize) -> usize {
        (self.count + next_leading).saturating_sub(self.leading)
    }

    /// Its packets so far, the keyframe's included (also those not kept).
    pub(super) fn packets(&self) -> usize {
        self.count
    }

    /// The sizes of its packets after the keyframe; none when it was not kept.
    pub(super) fn sizes(&self) -> Vec<usize> {
        if self.dropped {
            return Vec::new();
        }
        self.packets.iter().skip(1).map(|p| p.size()).collect()
    }

    /// Whether the keyframes kept inside it (a thinned beat's) cost what one shot's between its
    /// keyframe and the next (`next_bytes`) would ([`keys_alike`]); so when it has none, or
    /// was not kept.
    pub(super) fn keys_alike(&self, next_bytes: usize) -> bool {
        let Some(key) = self.packets.first() else { return true };
        let inner = sub_gops(&self.packets).skip(1).map(|(_, sub)| sub[0].size());
        keys_alike(&[key.size(), next_bytes], inner)
    }

    /// Its bursts; none when it was not kept.
    pub(super) fn bursts(&self) -> Vec<Burst> {
        if self.dropped {
            return Vec::new();
        }
        packet_bursts(&self.packets)
    }

    /// The time (a timestamp) of the last large packet in the refill after its keyframe, shown
    /// last; none when it was not kept.
    pub(super) fn refilled(&self) -> Option<i64> {
        if self.dropped {
            return None;
        }
        let refill = large_packets(&self.packets).filter(|&(_, refill)| refill);
        refill.filter_map(|(i, _)| self.packets[i].pts()).max()
    }

    /// Its packets, when it was kept and has more than its keyframe.
    pub(super) fn take(&mut self) -> Option<Vec<ff::Packet>> {
        (!self.dropped && self.packets.len() >= 2).then(|| std::mem::take(&mut self.packets))
    }
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

/// The GOPs within `gop` (its packets, keyframe first): one, or one from each keyframe kept in
/// it (a short beat thinned, [`Thinning`]; not intra-only video's, every frame a keyframe), each
/// with the index of its keyframe.
pub(super) fn sub_gops(gop: &[ff::Packet]) -> impl Iterator<Item = (usize, &[ff::Packet])> {
    let intra = gop.iter().all(|p| p.is_key());
    let starts: Vec<usize> = (0..gop.len()).filter(|&i| i == 0 || (gop[i].is_key() && !intra)).collect();
    let ends: Vec<usize> = starts.iter().skip(1).copied().chain([gop.len()]).collect();
    starts.into_iter().zip(ends).map(move |(a, b)| (a, &gop[a..b]))
}

/// The large packets of `gop` (its packets, keyframe first, in decode order; each GOP within it
/// judged alone), by index, each with whether it lies in the refill after its keyframe.
fn large_packets(gop: &[ff::Packet]) -> impl Iterator<Item = (usize, bool)> + '_ {
    sub_gops(gop).flat_map(|(start, sub)| {
        let sizes: Vec<usize> = sub.iter().skip(1).map(|p| p.size()).collect();
        judged(&sizes, sub[0].size()).into_iter().map(move |(i, refill)| (start + 1 + i, refill))
    })
}

/// The bursts of `gop` (its packets, keyframe first, in decode order): its large packets past
/// each refill, each exact where no frame shown before it is decoded after it (B-frames shown
/// before a burst may show the new picture already, predicted from it; frames decoded before it
/// cannot).
fn packet_bursts(gop: &[ff::Packet]) -> Vec<Burst> {
    let at = large_packets(gop).filter_map(|(i, refill)| (!refill).then_some(i));
    at.map(|i| {
        let (pts, before, after) = (gop[i].pts(), &gop[..i], &gop[i + 1..]);
        let since = pts.and_then(|pts| before.iter().filter_map(|q| q.pts()).filter(|&t| t < pts).max());
        let exact = pts.is_some_and(|pts| after.iter().all(|q| q.pts().is_some_and(|t| t > pts)));
        Burst { pts, since, exact }
    })
    .collect()
}

/// A keyframe inside a span whose size lies more than this factor outside those of the span's
/// ends shows something else than they do: a shot cut in and out again, which two ends alike
/// hide (a 3 s insert into a handheld shot: 51 kB keyframes between 406 and 511 kB ones).
/// Within a shot, keyframes on a short beat change size slowly (a handheld 1080p shot's: 3-8%
/// from one to the next, 346 to 456 kB over 2 minutes; after the stream's first, 726 kB, the
/// encoder's rate control dips to 284-288, 1.5x under the next, 427: at 1.5 the clip's first
/// span was decoded in one encode of it and not in another); from shot to shot, mostly by more
/// (a phone-like clip's cuts: 44 -> 155, 213 -> 86, 50 -> 330, 46 -> 96 kB, but 124 -> 101
/// between two framings of one test pattern, whose colours tell).
const KEYS_ALIKE: f64 = 2.0;

/// Whether each keyframe size of `inner` lies within `KEYS_ALIKE` of the range of `ends` (a
/// span's first and last keyframes' sizes; 0 for one unknown).
pub(super) fn keys_alike(ends: &[usize], inner: impl Iterator<Item = usize>) -> bool {
    let known: Vec<f64> = ends.iter().filter(|&&b| b > 0).map(|&b| b as f64).collect();
    let (lo, hi) = known.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &b| (lo.min(b), hi.max(b)));
    let (lo, hi) = if known.is_empty() { (0.0, f64::INFINITY) } else { (lo / KEYS_ALIKE, hi * KEYS_ALIKE) };
    inner.map(|b| b as f64).all(|b| (lo..=hi).contains(&b))
}

/// The stream's beat: its encoder's largest GOP, in frames, once two GOPs had that many (within
/// one); keyframes that come sooner are the encoder's scene cuts.
#[derive(Debug, Default)]
pub(super) struct Beat {
    frames: usize,
    seen: usize,
    /// The encoder puts keyframes off its beat, at the scene cuts it sees (x264's default; a
    /// streaming encoder with a fixed GOP does not): a GOP without a burst holds no cut.
    pub(super) scene_cuts: bool,
    /// The beat was read from the container's index, which counts a GOP's packets in decode
    /// order: an open GOP's leading pictures (shown before its keyframe, decoded after it) fall
    /// in the GOP before, so x265's fixed 50-frame GOPs count 46 to 54 packets there (six
    /// B-frames in a row at most). Until the first GOP counted in display order near it replaces
    /// it, a GOP is on it within twice the most leading pictures a keyframe had yet.
    indexed: bool,
    leading: usize,
}

/// B-frames H.264 and HEVC allow in a row: the most leading pictures a keyframe may have.
pub(super) const MAX_LEADING: usize = 16;

impl Beat {
    /// The beat of a stream, from the container's index (`index`: [`indexed_intervals`]) when
    /// that lists every packet (MP4 and MOV do; Matroska's lists keyframes only), else unknown
    /// until GOPs are seen (`reorders`: the stream has B-frames). Known from the index, the first
    /// GOP is judged as the others are.
    pub(super) fn of(index: Option<&[usize]>, reorders: bool) -> Self {
        let mut beat = Self::default();
        if let Some(intervals) = index {
            beat.learn_index(intervals, reorders);
        }
        beat
    }

    /// From the index's packets between keyframes: the commonest interval met twice or more
    /// (the larger of two as common), else the largest; keyframes off it, sooner or later (but
    /// for the last GOP, which the stream's end cuts short and the index does not list), by more
    /// than leading pictures explain, are scene cuts.
    fn learn_index(&mut self, intervals: &[usize], reorders: bool) {
        // Every frame a keyframe (intra-only video): the beat is its sampling's ([`Thinning`]),
        // learnt as its GOPs come.
        let Some(&largest) = intervals.iter().max().filter(|&&n| n > 1) else { return };
        // Each interval with how often it comes (an hour of half-second GOPs lists 7,500).
        let mut counts = std::collections::BTreeMap::new();
        intervals.iter().for_each(|&i| *counts.entry(i).or_insert(0usize) += 1);
        let common = counts.into_iter().filter(|&(_, n)| n >= 2).max_by_key(|&(i, n)| (n, i));
        self.frames = common.map_or(largest, |(i, _)| i);
        let off = if reorders { 1 + 2 * MAX_LEADING } else { 1 };
        self.scene_cuts = intervals.iter().any(|&i| i.abs_diff(self.frames) > off);
        (self.seen, self.indexed) = (1, true);
    }

    pub(super) fn known(&self) -> bool {
        self.seen >= 1
    }

    /// A keyframe had `leading` leading pictures.
    pub(super) fn saw_leading(&mut self, leading: usize) {
        self.leading = self.leading.max(leading);
    }

    fn reach(&self) -> usize {
        if self.indexed {
            1 + 2 * self.leading
        } else {
            1
        }
    }

    /// Whether a GOP of `interval` frames came on the beat.
    pub(super) fn on(&self, interval: usize) -> bool {
        self.known() && interval.abs_diff(self.frames) <= self.reach()
    }

    /// Learns from a GOP of `interval` frames (in display order) that ended at a keyframe.
    pub(super) fn observe(&mut self, interval: usize) {
        if self.indexed {
            if self.on(interval) {
                (self.frames, self.indexed, self.seen) = (interval, false, 2);
            } else if interval + self.reach() < self.frames {
                self.scene_cuts = true;
            }
        } else if self.seen >= 2 && interval + 1 < self.frames {
            // Off a beat met twice: the encoder keys its scene cuts.
            self.scene_cuts = true;
        } else if interval > self.frames + 1 {
            (self.frames, self.seen) = (interval, 1);
        } else if interval + 1 >= self.frames {
            (self.frames, self.seen) = (self.frames.max(interval), self.seen + 1);
        }
    }
}

/// Intra-only video (ProRes, DNxHD, Motion JPEG, JPEG 2000: every frame a keyframe) is sampled
/// a keyframe this often; the frames between are its GOP's, decoded only where something
/// changed, as a GOP's are (each decodes alone).
const INTRA_SAMPLE_S: f64 = 1.0;
/// Keyframes in a row, and nothing else, that tell intra-only video where neither the codec nor
/// the index says so (H.264 coded all keyframes, in MPEG-TS).
pub(super) const INTRA_KEYS: usize = 12;

/// A fixed beat of at most this (phones key every 30 frames or so) is thinned to a keyframe taken
/// every `SPARSE_S`; the others stay in the GOP, each decoded alone only where the GOP is, to tell
/// which of the GOPs within it changed (2 minutes of such 1080p: 96 keyframes, 1.1 s of
/// decoding, against 2 s for the whole audio path).
const SHORT_BEAT_S: f64 = 1.5;
const SPARSE_S: f64 = 2.0;
/// On such a beat, keyframes are taken no more often than their bytes allow within `[video]
/// keyframe_bytes_per_s` a second (96 kB by default), up to one every `SPARSE_MAX_S`: their
/// decoding follows their bytes, some 11 kB a millisecond of one core on our 2-core machines, so
/// about 9 ms of a core a second of video, a third of what the audio path takes. A phone-like
/// 1080p clip at 12 Mb/s keys 100 kB pictures (one taken every 2.4 s, as without the budget), its
/// 4K twin 270 kB (every 3.6 s), a noisy handheld shot 450 kB (every 4.8 s: 41 ms each).
const SPARSE_MAX_S: f64 = 6.0;

/// Which keyframes are taken as keyframes: in intra-only video one a second (`INTRA_SAMPLE_S`),
/// the others kept as frames of its GOP (decoded, every frame of 43 s of 1080p ProRes took 11.5 s
/// against 0.8 s for the whole audio path); on a short fixed beat, one every `SPARSE_S`.
#[derive(Debug)]
pub(super) struct Thinning {
    /// The sampling interval and the last keyframe taken, in ticks of the stream's time base.
    every: i64,
    last: Option<i64>,
    /// Bytes of the keyframes kept since the last one taken: where they would outgrow half the
    /// most a GOP may hold (4K ProRes 4444 XQ is some 80 MB a second), the interval shrinks to
    /// what was kept, and stays (a beat of its own).
    bytes: usize,
    /// On a short beat: the keyframes' bytes so far and how many (the interval grows with their
    /// mean), a second's ticks, and the bytes a second allowed.
    budget: Option<Budget>,
}

#[derive(Debug)]
struct Budget {
    bytes: usize,
    keys: usize,
    second: f64,
    per_s: usize,
}

impl Thinning {
    /// For `stream` (`tb`: its time base, in seconds) if its codec codes every frame alone, or
    /// its index (`index`: [`indexed_intervals`]) lists every packet as a keyframe.
    pub(super) fn of(stream: &ff::format::stream::Stream, index: Option<&[usize]>, tb: f64) -> Option<Self> {
        let params = stream.parameters();
        // SAFETY: `params` holds the stream's codec parameters; a codec's descriptor is static
        // data FFmpeg keeps for the life of the program.
        let flagged = unsafe {
            let d = ff::ffi::avcodec_descriptor_get((*params.as_ptr()).codec_id);
            !d.is_null() && (*d).props & ff::ffi::AV_CODEC_PROP_INTRA_ONLY != 0
        };
        let indexed = index.is_some_and(|i| !i.is_empty() && i.iter().all(|&n| n <= 1));
        (flagged || indexed).then(|| Self::new(tb))
    }

    /// For a stream whose beat (read from its index) is fixed, with no scene cuts keyed, and at
    /// most `SHORT_BEAT_S` (`frame_s`: a frame's duration; `tb`: its time base, in seconds);
    /// keyframes taken within `per_s` of their bytes a second (0: no such bound).
    pub(super) fn sparse(beat: &Beat, frame_s: f64, tb: f64, per_s: usize) -> Option<Self> {
        let beat_s = beat.frames as f64 * frame_s;
        let short = beat.indexed && !beat.scene_cuts && beat.frames > 1 && beat_s > 0.0 && beat_s <= SHORT_BEAT_S;
        let budget = (per_s > 0).then(|| Budget { bytes: 0, keys: 0, second: 1.0 / tb.max(1e-9), per_s });
        short.then(|| Self { budget, ..Self::every(SPARSE_S, tb) })
    }

    /// Intra-only video's, for a stream whose time base is `tb` seconds.
    pub(super) fn new(tb: f64) -> Self {
        Self::every(INTRA_SAMPLE_S, tb)
    }

    /// A keyframe taken every `interval_s` seconds (`tb`: the time base, in seconds).
    fn every(interval_s: f64, tb: f64) -> Self {
        Self { every: (interval_s / tb.max(1e-9)).round().max(1.0) as i64, last: None, bytes: 0, budget: None }
    }

    /// The interval now, in ticks: on a short beat, as long as the keyframes' mean bytes ask.
    fn interval(&self) -> i64 {
        let Some(b) = self.budget.as_ref().filter(|b| b.keys > 0) else { return self.every };
        let s = (b.bytes as f64 / b.keys as f64 / b.per_s as f64).min(SPARSE_MAX_S);
        self.every.max((s * b.second).round() as i64)
    }

    /// Whether keyframe `packet` is taken as one (after a jump back in the timestamps too).
    pub(super) fn takes(&mut self, packet: &ff::Packet) -> bool {
        if let Some(b) = &mut self.budget {
            (b.bytes, b.keys) = (b.bytes + packet.size(), b.keys + 1);
        }
        let Some(pts) = packet.pts() else { return true };
        let since = self.last.filter(|&last| pts >= last).map(|last| pts.saturating_sub(last));
        if let Some(since) = since.filter(|&since| since < self.interval()) {
            if self.bytes + packet.size() <= MAX_GOP_BYTES / 2 {
                self.bytes += packet.size();
                return false;
            }
            self.every = since.max(1);
        }
        (self.last, self.bytes) = (Some(pts), 0);
        true
    }
}

/// The packets between keyframes, from the container's index when that lists every packet.
pub(super) fn indexed_intervals(stream: &ff::format::stream::Stream) -> Option<Vec<usize>> {
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
    Some(keys.windows(2).map(|w| (w[1] - w[0]) as usize).collect())
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
    fn an_open_gop_keeps_its_beat_and_scene_cuts_come_off_it() {
        // x265, fixed 50-frame open GOPs: the index counts 46 to 54 packets; then GOPs counted
        // in display order.
        let mut open = Beat::default();
        open.learn_index(&[50, 50, 50, 49, 51, 50, 46, 54, 46, 54, 50, 47, 53], true);
        assert!(!open.scene_cuts && open.on(49) && !open.on(48), "{open:?}");
        open.saw_leading(4);
        assert!((42..=58).all(|i| open.on(i)), "{open:?}");
        open.observe(50);
        assert!(open.on(51) && !open.on(53) && !open.scene_cuts, "{open:?}");
        // x264's own scene cuts off a 250-frame beat.
        let mut keyed = Beat::default();
        keyed.learn_index(&[249, 250, 51, 250, 126], true);
        assert!(keyed.scene_cuts && keyed.on(250) && !keyed.on(126), "{keyed:?}");
        // No index: learnt GOP by GOP.
        let mut seen = Beat::default();
        for interval in [30, 30, 29] {
            seen.observe(interval);
        }
        assert!(!seen.scene_cuts && seen.on(31) && !seen.on(27), "{seen:?}");
        seen.observe(12);
        assert!(seen.scene_cuts, "{seen:?}");
    }

    #[test]
    fn stills_and_bursts() {
        let slide = vec![70; 99];
        let hd = 1920 * 1080;
        assert!(still(&slide, 40_000, hd));
        assert!(!still(&slide, 1_000, hd));
        // A 4K phone's handheld shot under its bitrate cap: a 1.8 MB keyframe, then moving frames
        // of 20-40 kB, 1.5-2% of it.
        let handheld = [42_610, 24_333, 11_006, 11_816, 19_188, 25_573, 19_350, 15_330, 34_244, 25_262];
        assert!(!still(&handheld, 1_794_373, 3840 * 2160));
        let mut cut = vec![20_000; 99];
        cut[40] = 90_000;
        assert_eq!(bursts(&cut, 100_000), vec![40]);
        assert!(bursts(&[100, 5_000], 10_000).is_empty(), "too small to be a burst");
        // A fixed-GOP stream's packets after its keyframe (P-frames refilling the detail, tiny
        // B-frames between): no burst, nor a P-frame a little larger than the one before.
        let refill = [44_638, 905, 32_487, 697, 16_343, 11_492, 1_030, 11_153, 6_595, 1_058, 7_803, 4_661, 881];
        let refill: Vec<usize> = refill.into_iter().chain([3_454, 881, 4_352, 965].repeat(4)).collect();
        assert!(bursts(&refill, 96_751).is_empty(), "{:?}", bursts(&refill, 96_751));
        let mut cut_after_refill = refill.clone();
        cut_after_refill[20] = 60_000;
        assert_eq!(bursts(&cut_after_refill, 96_751), vec![20]);
        // A cut right after the keyframe, then the new shot's refill (4K): all bursts, as they
        // were before the refill was told.
        let cut_first = [320_190, 252_094, 219_320, 151_164, 208_130, 157_612, 136_591, 125_813, 186_013];
        let cut_first: Vec<usize> = cut_first.into_iter().chain([40_000; 30]).collect();
        assert_eq!(bursts(&cut_first, 172_341), (0..9).collect::<Vec<_>>());
        assert!(!still(&cut, 60_000, hd));
    }

    #[test]
    fn keyframes_of_another_size_inside_a_span_are_another_shot() {
        // A handheld shot's keyframes, the stream's first and the rate control's dip after it.
        assert!(keys_alike(&[726_000, 427_000], [288_000, 410_000, 422_000].into_iter()));
        assert!(keys_alike(&[406_000, 511_000], [420_000, 480_000].into_iter()));
        // A 3 s insert of another shot between two keyframes of the handheld one.
        assert!(!keys_alike(&[406_000, 511_000], [51_000, 48_000, 46_000].into_iter()));
        // The span's end unknown (the stream's last): its start alone tells; nothing, nothing.
        assert!(!keys_alike(&[406_000, 0], [900_000].into_iter()));
        assert!(keys_alike(&[0, 0], [900_000].into_iter()));
    }

    #[test]
    fn a_short_beat_is_thinned_as_its_keyframes_bytes_allow() {
        // A phone's 30-frame beat at 25 fps (1.2 s; a time base of 1/12800 s).
        let mut beat = Beat::default();
        beat.learn_index(&[30; 20], false);
        let tb = 1.0 / 12_800.0;
        // The keyframes taken out of 100, each `bytes` large, and the seconds between the first two.
        let taken = |bytes: usize| {
            let mut thinning = Thinning::sparse(&beat, 0.04, tb, 96_000).unwrap();
            let times: Vec<i64> = (0..100)
                .map(|i| {
                    let mut p = ff::Packet::new(bytes);
                    p.set_pts(Some(i * 15_360));
                    p
                })
                .filter(|p| thinning.takes(p))
                .filter_map(|p| p.pts())
                .collect();
            (times.len(), (times[1] - times[0]) as f64 * tb)
        };
        // 100 kB keyframes: every other one (2.4 s); 450 kB (a noisy handheld shot): every fourth.
        assert_eq!(taken(100_000), (50, 2.4));
        assert_eq!(taken(450_000), (25, 4.8));
        // Never further apart than `SPARSE_MAX_S`.
        assert_eq!(taken(4_000_000).1, 6.0);
        // No budget (`keyframe_bytes_per_s = 0`): every 2 s whatever their size.
        let mut unbounded = Thinning::sparse(&beat, 0.04, tb, 0).unwrap();
        let mut p = ff::Packet::new(4_000_000);
        let taken: usize = (0..100)
            .filter(|&i| {
                p.set_pts(Some(i * 15_360));
                unbounded.takes(&p)
            })
            .count();
        assert_eq!(taken, 50);
    }
}
