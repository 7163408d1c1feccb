//! A GOP's inside, decoded where its keyframes cannot tell what happened there: its reference
//! frames first, then the frames between two that differ.

use ffmpeg_next as ff;

use super::{camera_moved, Emit, Key, VideoDecoding, FEW_BURSTS, INTRA_STRIDE};
use crate::source::gop::{self, Burst};
use crate::source::picture::{changed_pairs, histogram, histogram_distance, Settling, CUT_SUSPECT};
use crate::source::{Follows, Media, VideoFrame};

/// The part of a GOP to decode: from the keyframe at `from` (its colours) to the one at `to`
/// (infinite: the GOP's end; its colours where known), and how the keyframe after the GOP follows
/// the last frame given.
struct Span {
    from: f64,
    colours: Vec<f32>,
    gop: Vec<ff::Packet>,
    to: f64,
    to_colours: Option<Vec<f32>>,
    follows: Follows,
}

impl VideoDecoding {
    /// Decodes the GOP kept since `key` (`inside`: its bursts, and whether it shows a still
    /// picture; and `next`, the next keyframe with its leading
    /// pictures, where it has any; `next_colours`, its colours), giving the samplers its frames
    /// after the keyframe and before `until`: its reference frames first (and, where it has a few
    /// bursts, the B-frames shown just before each), to the stills too where the picture is
    /// still; where two of the frames differ enough to hold a cut and frames between them were
    /// skipped, the GOP is decoded again up to the later one, for the frames between (unless
    /// `[video] exact_cuts` is off). (Decoded
    /// whole, a still picture's GOP cost 10-bit HEVC 4 ms a frame: 1191 frames of the 2-minute
    /// 1080p clip decoded against 750.) Where it holds keyframes of a short beat thinned, only
    /// the GOPs within it that changed are decoded ([`Self::narrow`]). How the next keyframe
    /// follows the last frame given.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decode_gop(
        &mut self,
        key: &Key,
        (bursts, still): (&[Burst], bool),
        until: f64,
        next_colours: Option<&[f32]>,
        next: &[ff::Packet],
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<Follows, String> {
        let Some(gop) = self.gop.take() else { return Ok(Follows::Closely) };
        let bursts_at: Vec<f64> = bursts.iter().filter_map(|b| seconds(b.pts, self.time_base)).collect();
        let mut refs = Vec::new();
        let span = self.narrow(key, (gop, still), next_colours, &bursts_at, seconds, skipped, &mut refs)?;
        let Span { from, colours: from_colours, mut gop, to, to_colours, follows } = span;
        self.stats.gops_decoded += usize::from(!gop.is_empty());
        let until = until.min(to);
        let next = if to.is_infinite() { next } else { &[] };
        tracing::debug!(from, until, packets = gop.len(), still, "decoding a group of pictures");
        // Where a GOP has a few bursts, the frames shown just before each (B-frames, skipped
        // otherwise) are decoded in the first pass: a cut at a burst is placed without decoding
        // the GOP again. (Where an encoder's own frame structure makes bursts of nearly every
        // reference frame, they tell little, and cost.)
        let mut with_b_frames: Vec<(f64, f64)> = match bursts.len() <= FEW_BURSTS {
            true => bursts
                .iter()
                .filter_map(|b| Some((seconds(b.since, self.time_base)?, seconds(b.pts, self.time_base)?)))
                .collect(),
            false => Vec::new(),
        };
        // `next`: the next keyframe and its leading pictures, shown at the GOP's end (decoded
        // after the keyframe), which the first pass decodes too.
        let shown: Vec<f64> = next.iter().filter_map(|p| seconds(p.pts(), self.time_base)).collect();
        if let Some((&next_key, leading)) = shown.split_first().filter(|(_, l)| !l.is_empty()) {
            with_b_frames.push((leading.iter().copied().fold(f64::INFINITY, f64::min) - 1e-3, next_key));
        }
        gop.extend_from_slice(next);
        let how = if still { Emit::Paced } else { Emit::PacedNoStills };
        // A moving picture's GOP is decoded until it settles on the next keyframe's shot after a
        // change (not where that keyframe's leading pictures are decoded with it).
        let given = refs.len();
        let mut settling = match (still, to_colours) {
            (false, Some(c)) if next.is_empty() => Some(Settling::new(from_colours.clone(), c, given)),
            _ => None,
        };
        let first = (&with_b_frames[..], from, until, how);
        let settled = self.decode_packets(&gop, first, settling.as_mut(), seconds, skipped, &mut refs)?;
        // Settled early, the keyframe after the span follows frames left out: only its colours
        // tell.
        let mut follows = follows;
        if settled {
            let after_gap = Follows::Keyframe { scene_cut: false };
            match refs.iter_mut().find(|m| (m.at().secs_f64() - to).abs() < 1e-4) {
                Some(Media::Video(f)) => f.follows = after_gap,
                _ => follows = after_gap,
            }
        }
        // Placed to the later reference frame only (`[video] exact_cuts = false`), no pair is
        // looked for, nor decoded again.
        if self.exact_cuts {
            let between = self.pairs_holding_a_cut(&gop, &refs[given..], from, &from_colours, seconds);
            if let Some(&(_, last)) = between.last() {
                tracing::debug!(
                    pairs = between.len(),
                    until = last,
                    "decoding a group of pictures again, the frames between"
                );
                let mut all = Vec::new();
                let again = (&between[..], from, last, Emit::Between);
                self.decode_packets(&gop, again, None, seconds, skipped, &mut all)?;
                refs.extend(all.into_iter().filter(|m| inside(m.at().secs_f64(), &between)));
            }
        }
        refs.sort_by_key(Media::at);
        out.extend(refs);
        Ok(follows)
    }

    /// The pairs of `decoded` frames of `gop` (reference frames, after the one at `from` with
    /// `from_colours`) that may hold a cut between them, with frames of `gop` between.
    fn pairs_holding_a_cut(
        &self,
        gop: &[ff::Packet],
        decoded: &[Media],
        from: f64,
        from_colours: &[f32],
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        let mut times: Vec<f64> = gop.iter().filter_map(|p| seconds(p.pts(), self.time_base)).collect();
        times.sort_by(f64::total_cmp);
        let frames_between = |a: f64, b: f64| times.iter().any(|&t| inside(t, &[(a, b)]));
        let frames: Vec<&VideoFrame> =
            decoded.iter().filter_map(|m| if let Media::Video(f) = m { Some(f) } else { None }).collect();
        let mut between: Vec<(f64, f64)> = Vec::new();
        // From the keyframe (given already, at another size: its colours tell) to the first.
        if let Some(first) = frames.first() {
            let (a, b) = (from, first.at.secs_f64());
            if histogram_distance(from_colours, &histogram(first)) > CUT_SUSPECT && frames_between(a, b) {
                between.push((a, b));
            }
        }
        between.extend(changed_pairs(&frames, frames_between));
        between
    }

    /// The span of `gop` (kept since `key`) to decode: all of it, or where it holds keyframes of
    /// a short beat thinned, those of them needed decoded alone, by halves (given to the frames
    /// for shot detection, into `given`), and the GOPs within it from the first to the last that
    /// changed (the colours of the keyframes around it, `next_colours` the next one's, or a burst
    /// inside, at `bursts_at`; none where none did). Spans whose colours drifted past a cut's
    /// (a camera panning faster than `moved_match` follows) cost one keyframe each, not one for
    /// each GOP within.
    #[allow(clippy::too_many_arguments)]
    fn narrow(
        &mut self,
        key: &Key,
        (gop, still): (Vec<ff::Packet>, bool),
        next_colours: Option<&[f32]>,
        bursts_at: &[f64],
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        given: &mut Vec<Media>,
    ) -> Result<Span, String> {
        let whole = |gop| Span {
            from: key.t,
            colours: key.histogram.clone(),
            gop,
            to: f64::INFINITY,
            to_colours: next_colours.map(<[f32]>::to_vec),
            follows: Follows::Closely,
        };
        let starts: Vec<usize> = gop::sub_gops(&gop).map(|(i, _)| i).skip(1).collect();
        if starts.is_empty() {
            return Ok(whole(gop));
        }
        // The keyframes around each GOP within: (packet index, time, colours, frame), decoded by
        // halves: a stretch whose ends differ little and holds no burst holds no cut (a picture
        // that drifts, as a camera pans, is one keyframe decoded for each time its colours moved
        // as much as a cut's may); one whose ends differ is split at its middle keyframe. Each
        // pair of keyframes decoded in a row then bounds a GOP within (or a few, undecoded).
        type Bound = (usize, f64, Option<Vec<f32>>, Option<ff::frame::Video>, Option<VideoFrame>);
        let first = (0, key.t, Some(key.histogram.clone()), None, Some(key.picture.clone()));
        let mut slots: Vec<Option<Bound>> = vec![Some(first)];
        slots.extend(starts.iter().map(|_| None));
        slots.push(Some((gop.len(), f64::INFINITY, next_colours.map(<[f32]>::to_vec), None, None)));
        let mut failed = vec![false; slots.len()];
        // Two keyframes that show one shot panned or zoomed, their colours not plainly another's,
        // on a beat that keys no scene cut: the camera moved (as `keyframe` judges the span).
        let keys_cuts = self.beat.scene_cuts;
        let camera = |a: &Bound, b: &Bound| {
            let ((Some(x), Some(y)), (Some(p), Some(q))) = ((&a.2, &b.2), (&a.4, &b.4)) else { return false };
            let size = |i: usize| gop.get(i).map_or(0, |p: &ff::Packet| p.size());
            let inner = starts.iter().filter(|&&i| i > a.0 && i < b.0).map(|&i| size(i));
            let alike = gop::keys_alike(&[size(a.0), size(b.0)], inner);
            camera_moved(keys_cuts, still, alike, histogram_distance(x, y), p, q)
        };
        // Changed: colours apart as a cut's may be, or a burst between; and not the camera.
        let apart = |a: &Bound, b: &Bound| {
            let colours = match (&a.2, &b.2) {
                (Some(x), Some(y)) => histogram_distance(x, y) > CUT_SUSPECT,
                _ => true,
            };
            colours || bursts_at.iter().any(|&t| t > a.1 && t < b.1)
        };
        // Each stretch judged once: split where it changed and holds keyframes, else a pair of
        // keyframes decoded in a row, whose (changed, moved) is kept at its first.
        let mut judged: Vec<Option<(bool, bool)>> = vec![None; slots.len()];
        let mut stack = vec![(0, slots.len() - 1)];
        while let Some((lo, hi)) = stack.pop() {
            let inner: Vec<usize> = (lo + 1..hi).filter(|&k| !failed[k]).collect();
            let (Some(a), Some(b)) = (&slots[lo], &slots[hi]) else { continue };
            let moved = camera(a, b);
            let changed = !moved && apart(a, b);
            if inner.is_empty() || !changed {
                judged[lo] = Some((changed, moved));
                continue;
            }
            let mid = inner[inner.len() / 2];
            match self.decode_alone(&gop[starts[mid - 1]], seconds, skipped)? {
                Some((frame, t, picture)) => {
                    slots[mid] = Some((starts[mid - 1], t, Some(histogram(&picture)), Some(frame), Some(picture)));
                    stack.extend([(mid, hi), (lo, mid)]);
                }
                None => {
                    failed[mid] = true;
                    stack.push((lo, hi));
                }
            }
        }
        let pairs: Vec<(bool, bool)> =
            (0..slots.len() - 1).filter(|&i| slots[i].is_some()).map(|i| judged[i].unwrap_or((true, false))).collect();
        let (changed, moved): (Vec<bool>, Vec<bool>) = pairs.into_iter().unzip();
        let bounds: Vec<Bound> = slots.into_iter().flatten().collect();
        // None changed: the picture drifted over the GOPs within (a slow zoom), each as little as
        // a GOP on the beat not thinned, and none is decoded.
        let (first, last) = match (changed.iter().position(|&c| c), changed.iter().rposition(|&c| c)) {
            (Some(first), Some(last)) => (first, last),
            _ => (changed.len(), 0),
        };
        // The keyframes within, each given where it follows: closely after a GOP decoded, else
        // after frames left out, where only its colours tell (those inside the span come with it).
        for (j, (_, t, _, frame, _)) in bounds.iter().enumerate().skip(1) {
            let Some(frame) = frame.as_ref().filter(|_| j <= first || j > last) else { continue };
            let decoded_before = (first..=last).contains(&(j - 1));
            let follows = match (decoded_before, moved[j - 1]) {
                (true, _) => Follows::Closely,
                (false, true) => Follows::Moved,
                (false, false) => Follows::Keyframe { scene_cut: false },
            };
            self.emit(frame, *t, Emit::Between, follows, skipped, given)?;
        }
        tracing::debug!(within = changed.len(), first, last, "GOPs within a thinned one, those that changed");
        let after_gap = Follows::Keyframe { scene_cut: false };
        if first > last {
            let (from, colours) = (key.t, key.histogram.clone());
            return Ok(Span { from, colours, gop: Vec::new(), to: key.t, to_colours: None, follows: after_gap });
        }
        let (a, b) = (&bounds[first], &bounds[last + 1]);
        Ok(Span {
            from: a.1,
            colours: a.2.clone().unwrap_or_else(|| key.histogram.clone()),
            gop: gop[a.0..b.0].to_vec(),
            to: b.1,
            to_colours: b.2.clone(),
            follows: if last + 1 == bounds.len() - 1 { Follows::Closely } else { after_gap },
        })
    }

    /// Decodes the reference frames of `packets` (a GOP, keyframe first) and its other frames
    /// (B-frames, AV1's frames that refresh no reference) shown strictly inside the spans of
    /// `between` (seconds) with the decoder kept for GOPs (flushed), giving the samplers as `how`
    /// says the frames strictly between `after` and `until`, until they have `settled` (then
    /// true). No frame is predicted from those others: they can be skipped.
    fn decode_packets(
        &mut self,
        packets: &[ff::Packet],
        (between, after, until, how): (&[(f64, f64)], f64, f64, Emit),
        settled: Option<&mut Settling>,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<bool, String> {
        let stills = how == Emit::Paced;
        let times: Vec<Option<f64>> = packets.iter().map(|p| seconds(p.pts(), self.time_base)).collect();
        let in_between = |t: &Option<f64>| t.is_some_and(|t| inside(t, between));
        // Packets come in decode order, each after those it is predicted from: past the last one
        // shown in the frames wanted (or with no time), the rest are not needed, and the decoder
        // is flushed rather than fed more (it would hold frames back for reordering until it
        // decoded more of them: two or three reference frames, 20-37 ms each at 4K).
        let wanted = times.iter().rposition(|t| t.is_none_or(|t| t > after && t < until));
        let Some(last) = wanted else { return Ok(false) };
        // Frames nothing refers to that the decoder cannot skip itself (AV1's) are not sent; nor,
        // where every frame decodes alone (intra-only video), those a first pass leaves between
        // every `INTRA_STRIDE`th and the last, nor in a second pass those outside `between`.
        let intra = self.thinning.is_some() && packets.iter().all(|p| p.is_key());
        let unsent: Vec<bool> = (packets[..=last].iter().zip(&times).enumerate())
            .map(|(i, (p, t))| {
                !in_between(t)
                    && match intra {
                        true => how == Emit::Between || (i % INTRA_STRIDE != 0 && i != last),
                        false => self.av1.as_mut().is_some_and(|h| h.unreferenced(p.data().unwrap_or(&[]))),
                    }
            })
            .collect();
        let mut d = self.reused(stills, true).map_err(|e| format!("cannot decode the video: {e}"))?;
        let sent: Vec<(&ff::Packet, bool)> = (packets[..=last].iter().zip(&times))
            .zip(unsent)
            .filter(|(_, unsent)| !unsent)
            .map(|((p, t), _)| (p, in_between(t)))
            .collect();
        let result = self.feed(&mut d, &sent, (after, until, how), settled, seconds, skipped, out);
        self.keep(stills, true, d);
        result
    }

    /// `packets` (each with whether its B-frames are wanted) through `d`, their frames strictly
    /// between `after` and `until` to the samplers as `how` says, until `settled` settles; whether
    /// it did.
    #[allow(clippy::too_many_arguments)]
    fn feed(
        &mut self,
        d: &mut ff::decoder::Video,
        packets: &[(&ff::Packet, bool)],
        (after, until, how): (f64, f64, Emit),
        mut settled: Option<&mut Settling>,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<bool, String> {
        for &(p, between) in packets {
            // B-frames (two thirds of an x264 stream's frames) only inside `between`.
            d.skip_frame(if between { ff::Discard::Default } else { ff::Discard::Bidirectional });
            if d.send_packet(p).is_err() {
                *skipped += 1;
            }
            if self.drain(d, after, until, how, seconds, skipped, out)? {
                return Ok(false); // frames come out in presentation order: the rest are later
            }
            if settled.as_mut().is_some_and(|s| s.settled(out)) {
                tracing::debug!(at = ?out.last().map(|m| m.at().secs_f64()), "settled on the next keyframe's shot");
                return Ok(true);
            }
        }
        let _ = d.send_eof();
        self.drain(d, after, until, how, seconds, skipped, out).map(|_| false)
    }

    /// The frames `d` has ready, those strictly between `after` and `until` to the samplers as
    /// `how` says.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn drain(
        &mut self,
        d: &mut ff::decoder::Video,
        after: f64,
        until: f64,
        how: Emit,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<bool, String> {
        let mut frame = ff::frame::Video::empty();
        let mut reached = false;
        while d.receive_frame(&mut frame).is_ok() {
            self.stats.frames_decoded += 1;
            let t = self.time(&frame, seconds);
            if t > after && t < until {
                self.emit(&frame, t, how, Follows::Closely, skipped, out)?;
            }
            reached |= t >= until;
        }
        Ok(reached)
    }
}

/// Whether `t` lies strictly inside one of `spans` (seconds; a tenth of a millisecond either way
/// is the same time: timestamps converted from different time bases).
fn inside(t: f64, spans: &[(f64, f64)]) -> bool {
    spans.iter().any(|&(a, b)| t > a + 1e-4 && t < b - 1e-4)
}
