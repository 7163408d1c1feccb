//! Where to break: words into cues and cues into lines, by the usual subtitling rules. Split at
//! sentence ends first, then at clause punctuation, then before conjunctions and prepositions;
//! never between article and noun, preposition and its object, pronoun and verb, auxiliary and
//! verb, or first and last name. Lines are balanced.
//!
//! English word lists stand in for a parser; for other languages only punctuation and balance
//! guide the breaks.

use crate::cue::profile::Profile;
use crate::segment::Word;
use crate::time::Ts;

/// Cost of breaking after a sentence end, a clause, before a conjunction or preposition, at an
/// ordinary word boundary, and where a rule says never.
const AT_SENTENCE: f64 = 0.0;
const AT_CLAUSE: f64 = 2.0;
const BEFORE_CONJUNCTION: f64 = 4.0;
const BEFORE_PREPOSITION: f64 = 5.0;
const PLAIN: f64 = 10.0;
const NEVER: f64 = 40.0;

const DETERMINERS: &[&str] = &[
    "a", "an", "the", "this", "these", "those", "my", "your", "his", "her", "its", "our", "their", "some", "any", "no",
    "every", "each", "another", "such", "what", "which", "whose",
];
const PREPOSITIONS: &[&str] = &[
    "of", "in", "on", "at", "to", "for", "with", "from", "by", "about", "into", "onto", "over", "under", "after",
    "before", "between", "through", "during", "without", "within", "against", "among", "around", "across", "behind",
    "beyond", "near", "upon", "toward", "towards", "along", "like", "than", "up", "down", "off",
];
const CONJUNCTIONS: &[&str] = &[
    "and", "but", "or", "nor", "so", "yet", "because", "although", "though", "while", "whereas", "if", "unless",
    "until", "when", "whenever", "where", "wherever", "which", "who", "whom", "that", "since", "as", "once", "then",
];
/// Subject pronouns (a verb follows). "you" and "it" are objects as often, and only weakly held.
const PRONOUNS: &[&str] = &["i", "he", "she", "we", "they", "there", "who"];
const WEAK_PRONOUNS: &[&str] = &["you", "it"];
const AUXILIARIES: &[&str] = &[
    "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "do", "does", "did", "will",
    "would", "shall", "should", "can", "could", "may", "might", "must", "not",
];
const CONTRACTED: &[&str] = &["n't", "'ll", "'re", "'ve", "'m", "'d", "'s"];

fn bare(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_lowercase().replace('’', "'")
}

fn ends_sentence(word: &str) -> bool {
    let w = word.trim_end_matches(['"', '\'', ')', ']', '”', '’']);
    w.ends_with(['.', '?', '!', '…']) && !matches!(bare(w).as_str(), "mr" | "mrs" | "ms" | "dr" | "st")
}

fn ends_clause(word: &str) -> bool {
    word.ends_with([',', ';', ':', '–', '—']) || word.ends_with("--")
}

fn capitalised(word: &str) -> bool {
    word.trim_start_matches(|c: char| !c.is_alphanumeric()).chars().next().is_some_and(char::is_uppercase)
}

/// Cost of a break between `prev` and `next` (`before_prev`, the word before `prev`, tells a
/// sentence-initial capital from a name).
pub fn break_cost(before_prev: Option<&str>, prev: &str, next: &str) -> f64 {
    if ends_sentence(prev) {
        return AT_SENTENCE;
    }
    if ends_clause(prev) {
        return AT_CLAUSE;
    }
    let (p, n) = (bare(prev), bare(next));
    let p = p.as_str();
    if DETERMINERS.contains(&p)
        || PREPOSITIONS.contains(&p)
        || PRONOUNS.contains(&p)
        || AUXILIARIES.contains(&p)
        || CONTRACTED.iter().any(|c| p.ends_with(c) && p.len() > c.len())
    {
        return NEVER;
    }
    // First and last name: two capitalised words, the first not opening a sentence.
    let sentence_start = before_prev.is_none_or(ends_sentence);
    if capitalised(prev) && capitalised(next) && !sentence_start && p != "i" {
        return NEVER;
    }
    // A number and its unit.
    if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() {
        return NEVER;
    }
    if WEAK_PRONOUNS.contains(&p) {
        return PLAIN + 5.0;
    }
    if CONJUNCTIONS.contains(&n.as_str()) {
        return BEFORE_CONJUNCTION;
    }
    if PREPOSITIONS.contains(&n.as_str()) {
        return BEFORE_PREPOSITION;
    }
    PLAIN
}

fn joined(words: &[&str]) -> String {
    words.join(" ")
}

/// The best lines for `words` within the profile, and their cost; `None` when they do not fit.
pub fn lines(words: &[&str], profile: &Profile) -> Option<(Vec<String>, f64)> {
    let len = |ws: &[&str]| ws.iter().map(|w| w.chars().count()).sum::<usize>() + ws.len().saturating_sub(1);
    let max = profile.max_line_chars;
    if len(words) <= max {
        return Some((vec![joined(words)], 0.0));
    }
    if profile.max_lines < 2 || words.len() < 2 {
        return None;
    }
    if profile.max_lines == 2 {
        let mut best: Option<(usize, f64)> = None;
        for k in 1..words.len() {
            let (a, b) = (len(&words[..k]), len(&words[k..]));
            if a > max || b > max {
                continue;
            }
            let before = if k >= 2 { Some(words[k - 2]) } else { None };
            // Balanced lines; a slightly longer bottom line reads better (pyramid).
            let imbalance = (a as f64 - b as f64).abs() / 10.0 + if a > b { 0.5 } else { 0.0 };
            let cost = break_cost(before, words[k - 1], words[k]) + imbalance;
            if best.is_none_or(|(_, c)| cost < c) {
                best = Some((k, cost));
            }
        }
        let (k, cost) = best?;
        return Some((vec![joined(&words[..k]), joined(&words[k..])], cost));
    }
    // More than two lines (custom profiles): fill greedily.
    let mut out: Vec<Vec<&str>> = vec![Vec::new()];
    for &w in words {
        let cur = out.last_mut().expect("non-empty");
        if !cur.is_empty() && len(cur) + 1 + w.chars().count() > max {
            out.push(vec![w]);
        } else {
            cur.push(w);
        }
    }
    (out.len() <= profile.max_lines && out.iter().all(|l| len(l) <= max))
        .then(|| (out.iter().map(|l| joined(l)).collect(), PLAIN))
}

/// What the partition needs to know besides the words.
pub struct Context<'a> {
    pub profile: &'a Profile,
    /// Shot changes near the words.
    pub cuts: &'a [Ts],
    /// Start of the word after the block, if known (room to extend the last cue).
    pub next_start: Option<Ts>,
}

/// Cost of a cue's duration being short of its reading time, per second short.
const OVER_SPEED_PER_S: f64 = 30.0;
/// Cost of a pause longer than a second inside one cue.
const LONG_PAUSE: f64 = 25.0;
/// Cost of a cue whose words and the pause after them are shorter than the minimum duration.
const TOO_SHORT: f64 = 40.0;
/// Cost of a sentence ending inside a cue rather than at its end.
const SENTENCE_INSIDE: f64 = 10.0;
/// Most a pause takes off the cost of breaking there.
const PAUSE_BONUS: f64 = 8.0;
/// Cost of a cue that runs across a shot change.
const CROSSES_CUT: f64 = 30.0;
/// Cost of every cue: fuller cues rather than many short ones.
const PER_CUE: f64 = 6.0;
/// Most words a cue can hold (two 42-character lines rarely hold more than 16).
const MAX_WORDS: usize = 40;

/// Splits `words` into cues: the ranges of words each cue holds, by least total cost.
pub fn partition(words: &[Word], ctx: &Context) -> Vec<std::ops::Range<usize>> {
    let n = words.len();
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let mut best = vec![f64::INFINITY; n + 1];
    let mut from = vec![0usize; n + 1];
    best[0] = 0.0;
    for j in 1..=n {
        for i in (j.saturating_sub(MAX_WORDS)..j).rev() {
            if best[i].is_infinite() {
                continue;
            }
            let Some(c) = cue_cost(words, &texts, i, j, ctx) else {
                if j - i > 1 {
                    break; // longer cues from further back do not fit either
                }
                continue;
            };
            if best[i] + c < best[j] {
                best[j] = best[i] + c;
                from[j] = i;
            }
        }
        if best[j].is_infinite() {
            // A single word that fits nowhere (longer than a line): its own cue.
            best[j] = best[j - 1] + NEVER;
            from[j] = j - 1;
        }
    }
    let mut ranges = Vec::new();
    let mut j = n;
    while j > 0 {
        ranges.push(from[j]..j);
        j = from[j];
    }
    ranges.reverse();
    ranges
}

/// Cost of one cue holding `words[i..j]`; `None` if it breaks a hard limit.
fn cue_cost(words: &[Word], texts: &[&str], i: usize, j: usize, ctx: &Context) -> Option<f64> {
    let p = ctx.profile;
    let (start, end) = (words[i].span.start, words[j - 1].span.end);
    if (end - start).ms() > p.max_duration_ms && j - i > 1 {
        return None;
    }
    let (lines, line_cost) = lines(&texts[i..j], p)?;
    let mut cost = PER_CUE + line_cost;
    if j < words.len() {
        let before = if j >= 2 { Some(texts[j - 2]) } else { None };
        // A pause is where a listener hears the break: up to 8 off for 0.8 s or more.
        let pause = (words[j].span.start - words[j - 1].span.end).ms().max(0) as f64;
        cost += (break_cost(before, texts[j - 1], texts[j]) - (pause / 100.0).min(PAUSE_BONUS)).max(0.0);
    }
    for k in i + 1..j {
        if (words[k].span.start - words[k - 1].span.end).ms() > 1000 {
            cost += LONG_PAUSE;
        }
        if ends_sentence(texts[k - 1]) {
            // Two short sentences ("Yes. No.") share a cue well; longer ones read better apart.
            let short = k - i < 3 || j - k < 3;
            cost += if short { SENTENCE_INSIDE / 3.0 } else { SENTENCE_INSIDE };
        }
    }
    // Time the cue can have: to the next word (less a gap), at most `max_extend_ms` past its
    // last word, at least the minimum duration.
    let next = if j < words.len() { Some(words[j].span.start) } else { ctx.next_start };
    let room = next.map_or(p.max_extend_ms, |n| (n - end).ms().clamp(0, p.max_extend_ms));
    if (end - start).ms() + room < p.min_duration_ms {
        // Up for the minimum duration only by starting before its speech.
        cost += TOO_SHORT;
    }
    let shown = ((end - start).ms() + room).max(p.min_duration_ms).min(p.max_duration_ms);
    let text = lines.join("\n");
    let short_s = p.reading_time_s(&text) - shown as f64 / 1000.0;
    if short_s > 0.0 {
        cost += OVER_SPEED_PER_S * short_s;
    }
    let margin = Ts(100);
    if ctx.cuts.iter().any(|&c| c > start + margin && c < end - margin) {
        cost += CROSSES_CUT;
    }
    Some(cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Span;

    fn words(text: &str, ms_per_word: i64) -> Vec<Word> {
        text.split(' ')
            .enumerate()
            .map(|(i, w)| Word {
                span: Span::new(Ts(i as i64 * ms_per_word), Ts((i as i64 + 1) * ms_per_word - 20)),
                text: w.into(),
                probability: 1.0,
            })
            .collect()
    }

    #[test]
    fn never_breaks_after_articles_pronouns_auxiliaries_or_inside_names() {
        assert_eq!(break_cost(None, "the", "house"), NEVER);
        assert_eq!(break_cost(None, "she", "said"), NEVER);
        assert_eq!(break_cost(None, "will", "go"), NEVER);
        assert_eq!(break_cost(None, "don't", "know"), NEVER);
        assert_eq!(break_cost(Some("met"), "John", "Smith"), NEVER);
        assert_eq!(break_cost(None, "end.", "Then"), AT_SENTENCE);
        assert_eq!(break_cost(None, "rain,", "we"), AT_CLAUSE);
        assert!(break_cost(None, "bags", "and") < break_cost(None, "bags", "quickly"));
    }

    #[test]
    fn two_lines_are_balanced_at_a_good_break() {
        let w: Vec<&str> =
            "Our train leaves the station at noon, so we should pack our bags early".split(' ').collect();
        let (lines, _) = lines(&w, &Profile::netflix_en()).unwrap();
        assert_eq!(lines, vec!["Our train leaves the station at noon,", "so we should pack our bags early"]);
    }

    #[test]
    fn cues_end_at_sentences_and_keep_limits() {
        let text = "The history of the town begins with a small market by the river. Farmers sold grain and wool there, and merchants from distant cities built warehouses along the water.";
        let ws = words(text, 300);
        let p = Profile::netflix_en();
        let ranges = partition(&ws, &Context { profile: &p, cuts: &[], next_start: None });
        let cues: Vec<String> =
            ranges.iter().map(|r| joined(&ws[r.clone()].iter().map(|w| w.text.as_str()).collect::<Vec<_>>())).collect();
        assert!(cues[0].ends_with("river."), "{cues:?}");
        for (r, c) in ranges.iter().zip(&cues) {
            let refs: Vec<&str> = ws[r.clone()].iter().map(|w| w.text.as_str()).collect();
            assert!(lines(&refs, &p).is_some(), "{c}");
            assert!(!["the", "a", "of", "and"].contains(&refs.last().unwrap().to_lowercase().as_str()), "{cues:?}");
        }
        assert_eq!(cues.join(" "), text);
    }

    #[test]
    fn cues_avoid_crossing_a_cut_when_they_can() {
        let ws = words("one two three four five six seven eight", 400);
        let p = Profile::netflix_en();
        let cut = [Ts(1600)]; // between "four" and "five"
        let ranges = partition(&ws, &Context { profile: &p, cuts: &cut, next_start: None });
        assert!(ranges.iter().any(|r| r.end == 4), "{ranges:?}");
    }
}
