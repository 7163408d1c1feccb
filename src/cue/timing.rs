//! When a cue is on screen. In-time at the first word's onset (or a shot change just before
//! it); out-time at the last word's end, extended for reading speed by at most `max_extend_ms`
//! and for the minimum duration, kept `min_gap_frames` before the next cue, closed up to it when
//! the gap is `chain_gap_frames` or less, and snapped to a shot change close by.

use crate::cue::profile::Profile;
use crate::time::{Span, Ts};

/// Frames at `fps` as milliseconds, rounded up (a gap of two frames is at least two frames).
pub fn frames_ms(frames: u32, fps: f64) -> Ts {
    Ts((frames as f64 * 1000.0 / fps).ceil() as i64)
}

/// What timing a cue needs to know about its neighbours.
pub struct Neighbours<'a> {
    /// Out-time of the cue before, if any.
    pub prev_out: Option<Ts>,
    /// In-time of the cue after, if any (its first word's onset).
    pub next_in: Option<Ts>,
    /// Shot changes near the cue, sorted.
    pub cuts: &'a [Ts],
}

/// The cue's time on screen, from its words' `spoken` span and `reading_s` of reading time.
pub fn place(spoken: Span, reading_s: f64, p: &Profile, fps: f64, near: &Neighbours) -> Span {
    let gap = frames_ms(p.min_gap_frames, fps);
    let chain = frames_ms(p.chain_gap_frames, fps);
    let snap = frames_ms(p.shot_snap_frames, fps);
    let earliest = near.prev_out.map_or(Ts::ZERO, |o| o + gap);
    let latest_out = near.next_in.map(|n| n - gap);

    let mut start = spoken.start.max(earliest);
    // A shot change shortly before the onset takes the in-time; one just after it (within a
    // quarter second) too, so the text does not flash up on the old shot.
    if let Some(&c) = near.cuts.iter().find(|&&c| c >= earliest && c <= spoken.start && spoken.start - c <= snap) {
        start = c;
    } else if let Some(&c) = near.cuts.iter().find(|&&c| c > spoken.start && c - spoken.start <= Ts(250)) {
        start = c.min(spoken.end - Ts(1)).max(start);
    }

    let reading = Ts((reading_s * 1000.0).ceil() as i64);
    let mut end = spoken.end.max(start + Ts(p.min_duration_ms));
    end = end.max((start + reading).min(spoken.end + Ts(p.max_extend_ms)));
    end = end.min(start + Ts(p.max_duration_ms));
    if let Some(l) = latest_out {
        end = end.min(l);
        // Chaining: a short gap closes to the minimum.
        if l - end <= chain - gap {
            end = l;
        }
    }
    // Out-time snaps to two frames before a shot change close after or before it, as long as
    // no spoken word is cut short and the minimum duration holds.
    if let Some(&c) = near.cuts.iter().find(|&&c| (c - end).ms().abs() <= snap.ms() && c > start) {
        let at = c - gap;
        if at >= spoken.end && at >= start + Ts(p.min_duration_ms) && latest_out.is_none_or(|l| at <= l) {
            end = at;
        }
    }
    // Still shorter than the minimum (the next cue follows closely): start earlier, and if
    // that is not enough, stay up the minimum anyway; the next cue starts after (`place` is
    // called with this cue's out-time as its `prev_out`).
    if end - start < Ts(p.min_duration_ms) {
        start = (end - Ts(p.min_duration_ms)).max(earliest).min(start);
        end = end.max(start + Ts(p.min_duration_ms));
    }
    Span::new(start, end.max(start + Ts(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(prev_out: Option<i64>, next_in: Option<i64>, cuts: &[Ts]) -> Neighbours<'_> {
        Neighbours { prev_out: prev_out.map(Ts), next_in: next_in.map(Ts), cuts }
    }

    #[test]
    fn short_cue_reaches_the_minimum_and_extends_for_reading() {
        let p = Profile::netflix_en();
        let s = place(Span::new(Ts(1000), Ts(1300)), 0.2, &p, 24.0, &near(None, None, &[]));
        assert_eq!(s, Span::new(Ts(1000), Ts(1833)));
        // 3 s of reading for 2 s of speech: at most 0.5 s more.
        let s = place(Span::new(Ts(1000), Ts(3000)), 3.0, &p, 24.0, &near(None, None, &[]));
        assert_eq!(s.end, Ts(3500));
    }

    #[test]
    fn gaps_keep_two_frames_and_short_gaps_chain() {
        let p = Profile::netflix_en();
        // Next cue 300 ms after the words: within 12 frames (500 ms), so it closes to 2 frames.
        let s = place(Span::new(Ts(0), Ts(2000)), 0.5, &p, 24.0, &near(None, Some(2300), &[]));
        assert_eq!(s.end, Ts(2300 - 84));
        // Next cue 2 s later: the cue ends with its words.
        let s = place(Span::new(Ts(0), Ts(2000)), 0.5, &p, 24.0, &near(None, Some(4000), &[]));
        assert_eq!(s.end, Ts(2000));
    }

    #[test]
    fn the_minimum_duration_holds_even_against_a_close_next_cue() {
        let p = Profile::netflix_en();
        // 300 ms of words, the previous cue just before and the next 400 ms after.
        let s = place(Span::new(Ts(1000), Ts(1300)), 0.2, &p, 24.0, &near(Some(916), Some(1400), &[]));
        assert_eq!(s, Span::new(Ts(1000), Ts(1833)));
    }

    #[test]
    fn times_snap_to_nearby_shot_changes() {
        let p = Profile::netflix_en();
        let cuts = [Ts(800), Ts(2300)];
        let s = place(Span::new(Ts(1000), Ts(2100)), 0.5, &p, 24.0, &near(None, None, &cuts));
        assert_eq!(s, Span::new(Ts(800), Ts(2300 - 84)));
    }
}
