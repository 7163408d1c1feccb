//! From a window's decoding to segments (OpenAI's timestamp pairs) and their clean-up: words
//! fitted to segment edges and to voice activity, the point where the decoder stopped before
//! the speech did, repetition loops across windows.
//!
//! Follows https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/transcribe.py
//! and `timing.py`'s `add_word_timestamps`.

use crate::infer::decode::{DecodeResult, TIMESTAMP_STEP_S};
use crate::infer::input::FRAME_MS;
use crate::segment::{Segment, Word};
use crate::time::{Span, Ts};

/// Mel frames per timestamp token (the encoder halves the frame rate).
const FRAMES_PER_TOKEN: usize = 2;

/// OpenAI's segment split: consecutive timestamp pairs close segments. Returns the segments
/// (tokens and times, text left empty) and how many frames to seek. With `keep_tail`, text
/// after the last closed segment is a segment too, to the window's end (no later window decodes
/// it again), and the whole window is consumed.
pub(crate) fn split_segments(
    r: &DecodeResult,
    ts_begin: u32,
    size: usize,
    offset: Ts,
    keep_tail: bool,
) -> (Vec<Segment>, usize) {
    let tokens = &r.tokens;
    let is_ts = |t: u32| t >= ts_begin;
    let secs = |t: u32| Ts::from_secs_f64((t - ts_begin) as f64 * TIMESTAMP_STEP_S);
    let seg = |toks: &[u32], lps: &[f32], span: Span| Segment {
        span,
        text: String::new(),
        tokens: toks.to_vec(),
        probabilities: lps.iter().map(|lp| lp.exp()).collect(),
        avg_logprob: r.avg_logprob,
        no_speech_prob: r.no_speech_prob,
        temperature: r.temperature,
        compression_ratio: r.compression_ratio,
        words: Vec::new(),
    };
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
    let consecutive: Vec<usize> = (1..n).filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1])).collect();
    let mut out = Vec::new();
    if !consecutive.is_empty() {
        let mut slices = consecutive.clone();
        if single_timestamp_ending {
            slices.push(n);
        }
        let mut last = 0;
        for &cur in &slices {
            let part = &tokens[last..cur];
            let span = Span::new(offset + secs(part[0]), offset + secs(part[part.len() - 1]));
            out.push(seg(part, &r.token_logprobs[last..cur], span));
            last = cur;
        }
        let tail = &tokens[last..];
        if keep_tail && !single_timestamp_ending && tail.iter().any(|&t| !is_ts(t)) {
            let start = secs(tail[0]);
            let end =
                tail.iter().rev().copied().find(|&t| is_ts(t) && t > tail[0]).map_or(Ts(size as i64 * FRAME_MS), secs);
            out.push(seg(tail, &r.token_logprobs[last..], Span::new(offset + start, offset + end.max(start))));
        }
        let advance = if single_timestamp_ending || keep_tail {
            size
        } else {
            // Seek to the last closed timestamp: what follows is decoded again next window.
            (tokens[last - 1] - ts_begin) as usize * FRAMES_PER_TOKEN
        };
        (out, advance)
    } else {
        let mut duration = Ts(size as i64 * FRAME_MS);
        if let Some(&last_ts) = tokens.iter().rev().find(|&&t| is_ts(t)) {
            if last_ts != ts_begin {
                duration = secs(last_ts);
            }
        }
        if !tokens.is_empty() {
            out.push(seg(tokens, &r.token_logprobs, Span::new(offset, offset + duration)));
        }
        (out, size)
    }
}

/// OpenAI's clean-up at segment edges: the first word after a pause is no longer than `max`,
/// and the segment's own timestamps win over a first or last word that runs far past them.
pub(crate) fn fit_segment_to_words(seg: &mut Segment, last_speech: Ts, median: Ts, max: Ts) {
    let half_s = Ts(500);
    let Some(first) = seg.words.first().map(|w| w.span) else { return };
    let words = &mut seg.words;
    if median > Ts::ZERO
        && first.end - last_speech > Ts(median.ms() * 4)
        && (first.duration() > max || (words.len() > 1 && words[1].span.end - first.start > Ts(max.ms() * 2)))
    {
        if words.len() > 1 && words[1].span.duration() > max {
            let boundary = (words[1].span.end - max).max(words[1].span.start);
            words[0].span.end = boundary;
            words[1].span.start = boundary;
        }
        words[0].span.start = (words[0].span.end - max).max(Ts::ZERO);
    }
    let first = words[0].span;
    if seg.span.start < first.end && seg.span.start - half_s > first.start {
        words[0].span.start = (first.end - median).min(seg.span.start).max(Ts::ZERO);
    } else {
        seg.span.start = first.start;
    }
    let last = words.len() - 1;
    let lw = words[last].span;
    if seg.span.end > lw.start && seg.span.end + half_s < lw.end {
        words[last].span.end = (lw.start + median).max(seg.span.end);
    } else {
        seg.span.end = lw.end;
    }
    seg.span.end = seg.span.end.max(seg.span.start + Ts(1));
}

/// A stretch of speech this long that no word covers is speech the decoder left unheard.
const UNHEARD_MS: i64 = 1000;

/// ...and a region of speech whose words cover less than one part in this many of it (a word or
/// two squeezed in at its edge: "And" of the next sentence, put at the end of a sentence Whisper
/// passed over) is speech no word touches.
const UNHEARD_SHARE: i64 = 10;

/// Where decoding goes on from, for speech the window's decoding left unheard, and what of its
/// segments is kept: the first `keep` whole, then the first `words` words of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    pub at: Ts,
    pub keep: usize,
    pub words: usize,
}

impl Resume {
    /// Whether it drops words (and the window's rest is decoded again), rather than keeping them
    /// all.
    pub(crate) fn drops(&self, segments: &[Segment]) -> bool {
        self.keep < segments.len()
    }
}

/// Where the window (from `offset`) must be decoded again, for speech (`speech`, its voice
/// activity) that no word of `segments` covers for a second or more:
/// - passed over: speech that no word touches (`UNHEARD_SHARE`), a second or more of it in one
///   region or in regions one after another with no word between them, with words after it.
///   Whisper jumps a sentence it does not hear well among others (a quiet read sentence between
///   two louder clips, 3 s of it, in the live benchmark's mixes) and goes on after it; a window
///   that starts at that sentence, without the text before it, hears it. Decoding goes on from
///   the region's start (or from the first word dropped, where that starts before it, but not
///   before the last word kept ends): the words after it are decoded again. Where that is the
///   window's own start (less than a second in), the window is decoded again only when
///   `again_here` (it was decoded after the text before it, or text only; the caller decodes it
///   again without the text, or with timestamps): each window moves on. A stretch without words
///   inside a region of speech is not enough: breaths and hesitations Whisper leaves out, in
///   spontaneous speech, last that long too;
/// - stopped early: the decoder ended its text though speech goes on a second or more after its
///   last word; every segment is kept and decoding goes on from that word's end.
pub(crate) fn resume_point(segments: &[Segment], speech: &[Span], offset: Ts, again_here: bool) -> Option<Resume> {
    let words: Vec<Span> = segments.iter().flat_map(|s| s.words.iter().map(|w| w.span)).collect();
    let end = words.iter().map(|w| w.end).max()?;
    let covered = |r: &Span| words.iter().map(|w| (w.end.min(r.end) - w.start.max(r.start)).ms().max(0)).sum::<i64>();
    // Regions without a word on them, one after another with no word between them, are heard
    // as one: spontaneous speech comes in pieces under a second each (eight of them, 5.6 s in
    // all, were passed over whole in a batched chunk of the live mixes). A region a word touches
    // at its edge stands alone, so that the words on it still come after the ones before.
    let (mut runs, mut open): (Vec<(Span, i64)>, bool) = (Vec::new(), false);
    for r in speech {
        let on = covered(r);
        if on * UNHEARD_SHARE >= r.duration().ms() {
            open = false;
            continue;
        }
        let bare = on == 0;
        let word_between = |run: &Span| words.iter().any(|w| w.start < r.start && w.end > run.end);
        match runs.last_mut() {
            Some((run, ms)) if open && bare && !word_between(run) => {
                *run = Span::new(run.start, r.end);
                *ms += r.duration().ms();
            }
            _ => runs.push((*r, r.duration().ms())),
        }
        open = bare;
    }
    let passed = runs.into_iter().filter(|&(_, ms)| ms >= UNHEARD_MS).map(|(run, _)| run);
    for r in passed.filter(|r| words.iter().any(|w| w.start >= r.end)) {
        // The words before it are kept: whole segments, and those of a segment running over it
        // (batched mode's chunks are one segment each).
        let before = |s: &Segment| s.words.iter().take_while(|w| w.span.end <= r.start).count();
        let keep = segments.iter().take_while(|s| before(s) == s.words.len()).count();
        let words = segments.get(keep).map_or(0, before);
        let kept = segments[..keep]
            .iter()
            .flat_map(|s| &s.words)
            .chain(segments.get(keep).map_or(&[][..], |s| &s.words[..words]));
        // From the region's start, unless a word dropped starts before it.
        let dropped = segments[keep..].iter().flat_map(|s| &s.words).skip(words).map(|w| w.span.start).min();
        let from = dropped.map_or(r.start, |d| d.min(r.start));
        let at = match kept.map(|w| w.span.end).max() {
            Some(e) => e.max(from),
            None if (r.start - offset).ms() >= UNHEARD_MS => r.start,
            None if again_here => offset,
            None => continue,
        };
        tracing::debug!(unheard = %r.start, to = %r.end, from = %at, "speech passed over: decoding again from there");
        return Some(Resume { at, keep, words });
    }
    let stopped = end > offset && speech.iter().any(|r| (r.end - r.start.max(end)).ms() >= UNHEARD_MS);
    if stopped {
        tracing::debug!(at = %end, "decoder stopped before the speech did: decoding on from there");
    }
    stopped.then_some(Resume { at: end, keep: segments.len(), words: 0 })
}

/// Catches Whisper's repetition loops across windows: a segment whose text the two before it
/// already said word for word. A person saying one thing twice stays; three times in a row, one
/// window after another, is the decoder stuck (the compression-ratio fallback catches loops
/// inside a window).
#[derive(Debug, Default)]
pub(crate) struct LoopGuard {
    recent: std::collections::VecDeque<String>,
}

impl LoopGuard {
    pub(crate) fn is_loop(&mut self, text: &str) -> bool {
        let text: String = text.trim().to_lowercase();
        let looping = self.recent.len() == 2 && self.recent.iter().all(|t| *t == text);
        self.recent.push_back(text);
        if self.recent.len() > 2 {
            self.recent.pop_front();
        }
        looping
    }
}

/// Word times from attention, corrected by voice activity. DTW hands a pause to a word next to
/// it: a word that starts in a pause starts where speech resumes (`onsets`, one a region of
/// `speech`); the first word after a pause starts at the pause's end if DTW put it up to half a
/// second late; a word that ends in a pause ends where speech stopped.
pub(crate) fn snap_to_speech(words: &mut [Word], speech: &[Span], onsets: &[Ts], pad: Ts, prev_end: &mut Ts) {
    for w in words.iter_mut() {
        let in_core = speech.iter().zip(onsets).any(|(r, &o)| o <= w.span.start && w.span.start < r.end - pad);
        if !in_core {
            if let Some(&o) = onsets.iter().find(|&&o| o > w.span.start && o < w.span.end) {
                w.span.start = o.min(w.span.end - Ts(20)).max(w.span.start);
            }
        }
        // The onset of a pause's end the word follows closely, with no earlier word after it.
        if let Some(&o) = onsets.iter().rev().find(|&&o| o <= w.span.start) {
            if w.span.start - o <= Ts(500) && *prev_end <= o {
                w.span.start = o;
            }
        }
        if !speech.iter().any(|r| r.start < w.span.end && w.span.end <= r.end) {
            if let Some(r) = speech.iter().rev().find(|r| r.end < w.span.end && r.end > w.span.start) {
                w.span.end = r.end.max(w.span.start + Ts(20));
            }
        }
        *prev_end = w.span.end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tokens: Vec<u32>) -> DecodeResult {
        let n = tokens.len();
        DecodeResult {
            tokens,
            token_logprobs: vec![0.0; n],
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
            looping: false,
        }
    }

    const TS: u32 = 1000;

    #[test]
    fn a_third_identical_segment_in_a_row_is_a_loop_and_a_repeat_is_not() {
        let mut g = LoopGuard::default();
        assert!(!g.is_loop(" Thank you."));
        assert!(!g.is_loop(" Thank you."));
        assert!(g.is_loop(" thank you."));
        assert!(g.is_loop(" Thank you."));
        assert!(!g.is_loop(" And then something else."));
        assert!(!g.is_loop(" Thank you."));
    }

    #[test]
    fn pairs_split_segments_and_seek_to_the_last_closed_timestamp() {
        // <0.00> a b <1.00><1.00> c <2.50><2.50> d  (the last segment is cut off by the window)
        let r = result(vec![TS, 1, 2, TS + 50, TS + 50, 3, TS + 125, TS + 125, 4]);
        let (segs, advance) = split_segments(&r, TS, 3000, Ts(30_000), false);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].span, Span::new(Ts(30_000), Ts(31_000)));
        assert_eq!(segs[1].span, Span::new(Ts(31_000), Ts(32_500)));
        // 2.50 s in frames: "d" is decoded again in the next window.
        assert_eq!(advance, 250);
        // A chunk of a batch is decoded once: "d" is kept, to the chunk's end.
        let (segs, advance) = split_segments(&r, TS, 3000, Ts(30_000), true);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[2].span, Span::new(Ts(32_500), Ts(60_000)));
        assert_eq!(segs[2].tokens, vec![TS + 125, 4]);
        assert_eq!(advance, 3000);
    }

    #[test]
    fn single_timestamp_ending_consumes_the_window() {
        let r = result(vec![TS, 1, TS + 50, TS + 50, 2, TS + 100]);
        let (segs, advance) = split_segments(&r, TS, 1234, Ts::ZERO, false);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].span, Span::new(Ts(1000), Ts(2000)));
        assert_eq!(advance, 1234);
    }

    #[test]
    fn no_pair_gives_one_segment_to_the_last_timestamp() {
        let r = result(vec![TS, 1, 2, TS + 40]);
        let (segs, advance) = split_segments(&r, TS, 3000, Ts::ZERO, false);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].span, Span::new(Ts::ZERO, Ts(800)));
        assert_eq!(advance, 3000);
    }

    /// A segment of words "w" over `spans` (ms).
    fn words(spans: &[(i64, i64)]) -> Segment {
        let ws = spans.iter().map(|&(a, b)| Word { span: Span::new(Ts(a), Ts(b)), text: "w".into(), probability: 0.9 });
        Segment::of_words(ws.collect())
    }

    fn regions(spans: &[(i64, i64)]) -> Vec<Span> {
        spans.iter().map(|&(a, b)| Span::new(Ts(a), Ts(b))).collect()
    }

    #[test]
    fn speech_no_word_touches_is_decoded_again_from_its_start() {
        // Words at 0-3.8 s and 8.9-12 s; speech at 4.8-7.9 s heard by none (the TIMIT sentence
        // of the live mix): decoding goes on at its start, the segment after it dropped.
        let segs = [words(&[(0, 1800), (1900, 3800)]), words(&[(8900, 9500), (9600, 12_000)])];
        let speech = regions(&[(0, 3900), (4800, 7900), (8800, 12_100)]);
        assert_eq!(resume_point(&segs, &speech, Ts(0), true), Some(Resume { at: Ts(4800), keep: 1, words: 0 }));
        // One segment over both (a batched chunk's): its words before the speech are kept.
        let one = [words(&[(0, 1800), (1900, 3800), (8900, 9500), (9600, 12_000)])];
        let r = resume_point(&one, &speech, Ts(0), false).unwrap();
        assert_eq!(r, Resume { at: Ts(4800), keep: 0, words: 2 });
        assert!(r.drops(&one));
        // A word squeezed in at the speech's edge ("And" of the next sentence) does not hear it.
        let edge = [words(&[(0, 1800), (1900, 3800)]), words(&[(7850, 7900), (8900, 9500)])];
        assert_eq!(resume_point(&edge, &speech, Ts(0), true).map(|r| (r.at, r.keep)), Some((Ts(4800), 1)));
    }

    #[test]
    fn pieces_of_speech_passed_over_together_are_decoded_again_from_the_first() {
        // Spontaneous speech in pieces under a second each, no word on any of them (a text-only
        // chunk whose few words the alignment put at its end): heard as one.
        let speech = regions(&[(0, 800), (900, 1700), (3500, 4400), (4500, 5200), (6000, 9000)]);
        let late = [words(&[(6100, 7000), (7100, 8900)])];
        assert_eq!(resume_point(&late, &speech, Ts(0), true), Some(Resume { at: Ts(0), keep: 0, words: 0 }));
        // A word between two pieces parts them: each is under a second, and nothing is redone.
        let between = [words(&[(2000, 2600), (6100, 7000), (7100, 8900)])];
        let speech = regions(&[(0, 800), (2000, 2600), (3500, 4400), (6000, 9000)]);
        assert_eq!(resume_point(&between, &speech, Ts(0), true), None);
        // A piece a word touches at its edge is not joined to the ones before: the passage
        // before it is still passed over, with that word after it.
        let edge = [words(&[(6950, 7000)])];
        let speech = regions(&[(3000, 3600), (3700, 4400), (6000, 7000), (8000, 9000)]);
        assert_eq!(resume_point(&edge, &speech, Ts(0), true).map(|r| r.at), Some(Ts(3000)));
    }

    #[test]
    fn a_pause_inside_speech_is_not_speech_passed_over() {
        // A breath or a hesitation Whisper leaves out: 1.4 s without words inside one region.
        let segs = [words(&[(0, 1800), (1900, 3800)]), words(&[(5200, 6000), (6100, 9000)])];
        let speech = regions(&[(0, 9100)]);
        assert_eq!(resume_point(&segs, &speech, Ts(0), true), None);
    }

    #[test]
    fn speech_passed_over_at_the_window_start_is_decoded_again_once() {
        let segs = [words(&[(4000, 5000), (5100, 7000)])];
        let speech = regions(&[(10_000, 12_500), (13_900, 17_100)]);
        let segs_after = [words(&[(14_000, 15_000), (15_100, 17_000)])];
        // Its own start (less than a second in): decoded again where it was decoded after the
        // text before it, else kept as heard.
        assert_eq!(
            resume_point(&segs_after, &speech, Ts(9_800), true),
            Some(Resume { at: Ts(9_800), keep: 0, words: 0 })
        );
        assert_eq!(resume_point(&segs_after, &speech, Ts(9_800), false), None);
        // A second or more in, it is decoded from there.
        assert_eq!(
            resume_point(&segs_after, &speech, Ts(8_000), false),
            Some(Resume { at: Ts(10_000), keep: 0, words: 0 })
        );
        // Nothing after it: the decoder stopped early, every word kept.
        assert_eq!(resume_point(&segs, &speech, Ts(3_000), true), Some(Resume { at: Ts(7_000), keep: 1, words: 0 }));
    }
}
