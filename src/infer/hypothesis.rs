//! A live pass's words against the words already committed: which of them say the committed
//! words again ([`committed_prefix`]), and which are Whisper's inventions or repeats squeezed
//! into audio already committed ([`without_unplaced`]). Passes compare words by [`key`].

use crate::segment::Word;
use crate::time::Ts;

/// A word as passes compare it: lower case, letters and digits only.
pub(super) fn key(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The word ends a sentence.
pub(super) fn ends_sentence(text: &str) -> bool {
    text.trim_end_matches(['"', '\'', ')']).ends_with(['.', '?', '!'])
}

/// Words in a row that the alignment cannot place after the words before them (each ends
/// before the last one did: squeezed into no time) are not new speech but Whisper's inventions
/// ("Thank you for watching, I'll see you in the next one.") or committed words said again; one
/// or two such words are the alignment's slips.
const UNPLACED_RUN: usize = 3;
/// Early words that say the last committed words again are dropped from this many on (one may
/// be the speaker's: "some more words. words words words.").
const SAID_AGAIN_RUN: usize = 2;
/// A word that ends less than this after the words before it is placed early: no word is said
/// that fast.
const EARLY_MS: i64 = 100;

/// `words` less each run of [`UNPLACED_RUN`] or more words that end no later than the word
/// before them (the first: than `until`, where the committed words end), with the early words
/// after such a run (middle no later than that, or ending less than [`EARLY_MS`] after it); and
/// less the early words at the start (or starting before the words before them end),
/// [`SAID_AGAIN_RUN`] or more, that say the last `committed` words (their text, oldest first)
/// again in the time those took ("Whitmore. it more."); and less the half of a hyphenated word
/// said again by a first word that starts inside the last committed one ([`hyphen_rest`]).
pub(super) fn without_unplaced(mut words: Vec<Word>, until: Ts, committed: &[String]) -> Vec<Word> {
    // Per word: it ends no later than the words before it; it is early; it starts before they
    // end.
    let mut end = until;
    let mut overlaps = Vec::with_capacity(words.len());
    let (unplaced, early): (Vec<bool>, Vec<bool>) = words
        .iter()
        .map(|w| {
            let middle = w.span.start + Ts((w.span.end - w.span.start).ms() / 2);
            let placed = (w.span.end <= end, middle <= end || w.span.end <= end + Ts(EARLY_MS));
            overlaps.push(placed.1 || w.span.start < end);
            end = end.max(w.span.end);
            placed
        })
        .unzip();
    let runs = |of: &[bool], i: usize| of[i..].iter().take_while(|&&u| u).count();
    let said: String = committed.iter().map(|t| key(t)).collect();
    let mut keep = vec![true; words.len()];
    let mut i = 0;
    while i < words.len() {
        let squeezed = runs(&unplaced, i);
        if squeezed >= UNPLACED_RUN {
            // With the early words that end it ("this is all very high pitched" said again: the
            // last word ends a little after the first "pitched.").
            let run = squeezed + runs(&early, i + squeezed);
            keep[i..i + run].iter_mut().for_each(|k| *k = false);
            tracing::debug!(at = %words[i].span.start, run, "words the alignment cannot place dropped");
        }
        i += squeezed.max(1);
    }
    // Said again: the most words at the start (right after the committed words) that are early
    // or start before the words before them end, two or more, whose letters end the committed
    // words' ("it more." for "Whitmore.", the middle of "more." 20 ms after it in one real-time
    // run).
    let again = (SAID_AGAIN_RUN..=runs(&overlaps, 0))
        .rev()
        .find(|&n| {
            let letters: String = words[..n].iter().map(|w| key(&w.text)).collect();
            !letters.is_empty() && said.ends_with(&letters)
        })
        .unwrap_or(0);
    if again > 0 {
        keep[..again].iter_mut().for_each(|k| *k = false);
        tracing::debug!(at = %words[0].span.start, run = again, "committed words said again dropped");
    }
    if let (Some(last), Some(first)) = (committed.last(), words.first_mut()) {
        let rest = hyphen_rest(last, &first.text).filter(|_| keep[0] && first.span.start < until);
        match rest {
            Some(rest) if rest.is_empty() => keep[0] = false,
            Some(rest) => first.text = rest,
            None => {}
        }
    }
    words.into_iter().zip(keep).filter_map(|(w, k)| k.then_some(w)).collect()
}

/// What is left of `heard`, a word that starts inside the last committed word `last`, once the
/// half of a hyphenated word that says `last` again is taken out: nothing where it says the part
/// of `last` after a hyphen ("ill-disposed" committed, "disposed." heard), the part after its own
/// hyphen where the part before says `last` ("42" committed, "42-line" heard). `None` where it
/// says no such half: a whole word said again may be the speaker's.
fn hyphen_rest(last: &str, heard: &str) -> Option<String> {
    let halves = |t: &str| -> Vec<(String, String)> {
        t.match_indices('-').map(|(i, _)| (key(&t[..i]), t[i + 1..].to_string())).collect()
    };
    let said = key(heard);
    if !said.is_empty() && halves(last).iter().any(|(_, after)| key(after) == said) {
        return Some(String::new());
    }
    halves(heard)
        .into_iter()
        .find(|(before, after)| *before == key(last) && !key(after).is_empty())
        .map(|(_, after)| after)
}

/// How many words at the start of `hypothesis` say the `committed` words again: the prefix
/// of the hypothesis with the least edit distance (words inserted, dropped, changed) to them;
/// between prefixes as close, the one ending nearest `until` (by `ends`, the hypothesis words'
/// end times), where the committed words ended.
pub(super) fn committed_prefix(committed: &[&str], hypothesis: &[String], ends: &[Ts], until: Ts) -> usize {
    let (n, m) = (committed.len(), hypothesis.len());
    // Edit distances of committed[..i] to hypothesis[..j], a row at a time.
    let mut row: Vec<usize> = (0..=m).collect();
    for i in 1..=n {
        let mut next = vec![i; m + 1];
        for j in 1..=m {
            let same = usize::from(committed[i - 1] != hypothesis[j - 1]);
            next[j] = (row[j - 1] + same).min(row[j] + 1).min(next[j - 1] + 1);
        }
        row = next;
    }
    let off = |j: usize| if j == 0 { i64::MAX } else { (ends[j - 1] - until).ms().abs() };
    (0..=m).min_by_key(|&j| (row[j], off(j))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Span;

    #[test]
    fn the_committed_words_are_found_in_a_hypothesis_by_their_text() {
        let h = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let ends = |n: usize| (1..=n as i64).map(|k| Ts(k * 300)).collect::<Vec<_>>();
        // Said again exactly, said with a word changed, timed earlier than when committed.
        let hyp = h("the storm arrived late");
        assert_eq!(committed_prefix(&["the", "storm"], &hyp, &ends(4), Ts(600)), 2);
        assert_eq!(committed_prefix(&["the", "stormer"], &hyp, &ends(4), Ts(600)), 2);
        assert_eq!(committed_prefix(&["the", "storm"], &hyp, &ends(4), Ts(900)), 2);
        // A committed word the pass left out, and one it split in two.
        assert_eq!(committed_prefix(&["the", "big", "storm"], &hyp, &ends(4), Ts(600)), 2);
        // Nothing of it said again: nothing dropped.
        assert_eq!(committed_prefix(&[], &hyp, &ends(4), Ts(0)), 0);
    }

    fn w(text: &str, start: i64, end: i64) -> Word {
        Word { span: Span::new(Ts(start), Ts(end)), text: text.into(), probability: 0.9 }
    }

    /// Words written "text@start-end ..." (ms).
    fn words(heard: &str) -> Vec<Word> {
        heard
            .split(' ')
            .map(|spec| {
                let (text, span) = spec.split_once('@').expect("text@start-end");
                let (start, end) = span.split_once('-').expect("start-end");
                w(text, start.parse().unwrap(), end.parse().unwrap())
            })
            .collect()
    }

    fn texts(words: Vec<Word>) -> String {
        words.into_iter().map(|w| w.text).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn runs_of_words_squeezed_into_no_time_are_dropped() {
        // The committed words end at 5 s. Words as text@start-end (ms).
        let cases = [
            // An invented sentence at their end, then new speech.
            (
                "Thank@4800-4900 you@4900-5000 for@5000-5000 watching.@5000-5000 The@5200-5400 end.@5400-5900",
                "The end.",
            ),
            // A sentence said again, its last word ending a little after them.
            ("all@4000-4200 very@4200-4500 high@4500-4700 pitched.@5010-5060 The@5200-5400", "The"),
            // One or two words timed early are kept.
            ("Philip@4800-4950 Steels,@5000-5600 etc.@5600-6000", "Philip Steels, etc."),
            ("a@5000-5100 b@5100-5100 c@5050-5100 d@5200-5300", "a b c d"),
        ];
        for (heard, kept) in cases {
            assert_eq!(texts(without_unplaced(words(heard), Ts(5000), &[])), kept);
        }
    }

    #[test]
    fn committed_words_said_again_in_their_own_time_are_dropped() {
        let committed: Vec<String> = ["tom", "apologized", "whitmore"].map(String::from).to_vec();
        // "Whitmore." (committed, to 5 s) heard again as two words, the second a little late.
        let words = vec![w("it", 4500, 4800), w("more.", 4800, 5040), w("For", 5300, 5500)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed)), "For");
        // The second later still, but starting inside the committed word.
        let words = vec![w("it", 4500, 4740), w("more.", 4740, 5300), w("For", 5520, 5700)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed)), "For");
        // New words that happen to end the same way, in their own time, are kept...
        let words = vec![w("more.", 5100, 5500), w("For", 5600, 5800)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed)), "more. For");
        // ...and so are early words that do not say the committed ones again.
        let words = vec![w("Tom", 4700, 5050), w("said", 5100, 5300)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed)), "Tom said");
        // One word said again may be the speaker's.
        let committed: Vec<String> = ["more", "words"].map(String::from).to_vec();
        let words = vec![w("words", 4900, 5080), w("words", 5100, 5400)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed)), "words words");
    }

    #[test]
    fn the_half_of_a_hyphenated_word_said_again_is_taken_out() {
        let committed = |last: &str| vec!["the".to_string(), last.to_string()];
        // Mix 1 and mix 2 of the live benchmark: "ill-disposed disposed." and "42 42-line Bible".
        let words = vec![w("disposed.", 4600, 5100), w("Philip", 5300, 5600)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed("ill-disposed"))), "Philip");
        let words = vec![w("42-line", 4700, 5400), w("Bible,", 5400, 5900)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed("42"))), "line Bible,");
        let words = vec![w("ill-disposed.", 4800, 5400)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed("ill"))), "disposed.");
        // Not where the word starts after the committed one, nor where no hyphen splits it.
        let words = vec![w("disposed.", 5000, 5300)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed("ill-disposed"))), "disposed.");
        let words = vec![w("intensity.", 4900, 5400)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed("in"))), "intensity.");
        let words = vec![w("is", 4950, 5100)];
        assert_eq!(texts(without_unplaced(words, Ts(5000), &committed("this"))), "is");
    }

    #[test]
    fn words_compare_without_case_or_punctuation() {
        assert_eq!(key("Hello,"), key("hello"));
        assert_ne!(key("there"), key("their"));
        assert!(ends_sentence(" the end.") && ends_sentence("Really?\"") && !ends_sentence("and so,"));
    }
}
