//! Word error rate with Whisper-style English normalisation, for tests and benchmarks.
//!
//! Normalisation: NFKC-like quote and dash folding, lower case; bracketed text and sound tags
//! dropped; currency, percent, clock times, ordinals and digits spelled out (years 1100-1999 and
//! 2010-2099 read in pairs); a few abbreviations and British spellings mapped; hyphens to spaces;
//! other punctuation and apostrophes removed; fillers dropped.

use std::sync::OnceLock;

use regex::Regex;

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
const FILLERS: &[&str] = &["uh", "um", "hmm", "mm", "mhm", "mmm", "er", "erm", "ah", "uhm", "umm", "hm"];
const SOUNDS: &[&str] = &[
    "music",
    "laughs",
    "laughter",
    "laughing",
    "applause",
    "inaudible",
    "silence",
    "noise",
    "sighs",
    "coughs",
    "coughing",
    "cheering",
    "clapping",
    "chuckles",
    "chuckling",
    "static",
    "beep",
    "singing",
    "indistinct",
    "crosstalk",
];
const MAP: &[(&str, &str)] = &[
    ("mr", "mister"),
    ("mrs", "missus"),
    ("ms", "miss"),
    ("dr", "doctor"),
    ("prof", "professor"),
    ("st", "saint"),
    ("jr", "junior"),
    ("sr", "senior"),
    ("vs", "versus"),
    ("etc", "et cetera"),
    ("ok", "okay"),
    ("alright", "all right"),
    ("gonna", "going to"),
    ("wanna", "want to"),
    ("gotta", "got to"),
    ("kinda", "kind of"),
    ("sorta", "sort of"),
    ("colour", "color"),
    ("favourite", "favorite"),
    ("centre", "center"),
    ("theatre", "theater"),
    ("grey", "gray"),
    ("realise", "realize"),
    ("organise", "organize"),
    ("behaviour", "behavior"),
    ("honour", "honor"),
    ("labour", "labor"),
    ("neighbour", "neighbor"),
    ("travelling", "traveling"),
    ("programme", "program"),
    ("harbour", "harbor"),
];

fn below_1000(n: u64, w: &mut Vec<String>) {
    let mut n = n;
    if n >= 100 {
        w.push(ONES[(n / 100) as usize].into());
        w.push("hundred".into());
        n %= 100;
    }
    if n >= 20 {
        w.push(TENS[(n / 10) as usize].into());
        if !n.is_multiple_of(10) {
            w.push(ONES[(n % 10) as usize].into());
        }
    } else if n != 0 || w.is_empty() {
        w.push(ONES[n as usize].into());
    }
}

fn cardinal(n: u64) -> Vec<String> {
    if n == 0 {
        return vec!["zero".into()];
    }
    let mut w = Vec::new();
    let mut n = n;
    for (val, name) in
        [(1_000_000_000_000, "trillion"), (1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand")]
    {
        if n >= val {
            below_1000(n / val, &mut w);
            w.push(name.into());
            n %= val;
        }
    }
    if n != 0 {
        below_1000(n, &mut w);
    }
    w
}

fn ordinal(n: u64) -> Vec<String> {
    let mut w = cardinal(n);
    let last = w.pop().unwrap_or_default();
    let irregular = [
        ("one", "first"),
        ("two", "second"),
        ("three", "third"),
        ("five", "fifth"),
        ("eight", "eighth"),
        ("nine", "ninth"),
        ("twelve", "twelfth"),
    ];
    let o = match irregular.iter().find(|(c, _)| *c == last) {
        Some((_, o)) => o.to_string(),
        None if last.ends_with('y') => format!("{}ieth", &last[..last.len() - 1]),
        None => format!("{last}th"),
    };
    w.push(o);
    w
}

fn number_words(tok: &str) -> Vec<String> {
    if let Some((a, b)) = tok.split_once('.') {
        let mut w = cardinal(a.parse().unwrap_or(0));
        w.push("point".into());
        w.extend(b.chars().filter_map(|c| c.to_digit(10)).map(|d| ONES[d as usize].to_string()));
        return w;
    }
    let Ok(n) = tok.parse::<u64>() else {
        return tok.chars().filter_map(|c| c.to_digit(10)).map(|d| ONES[d as usize].to_string()).collect();
    };
    if tok.len() == 4 && ((1100..=1999).contains(&n) || (2010..=2099).contains(&n)) {
        let (hi, lo) = (n / 100, n % 100);
        let mut w = Vec::new();
        below_1000(hi, &mut w);
        match lo {
            0 => w.push("hundred".into()),
            1..=9 => {
                w.push("oh".into());
                w.push(ONES[lo as usize].into());
            }
            _ => below_1000(lo, &mut w),
        }
        return w;
    }
    if tok.len() > 1 && tok.starts_with('0') {
        return tok.chars().filter_map(|c| c.to_digit(10)).map(|d| ONES[d as usize].to_string()).collect();
    }
    cardinal(n)
}

struct Patterns {
    brackets: Regex,
    parens: Regex,
    thousands: Regex,
    dollars: Regex,
    percent: Regex,
    clock: Regex,
    ordinal: Regex,
    number: Regex,
    punct: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        brackets: Regex::new(r"\[[^\]]*\]|<[^>]*>|\{[^}]*\}|[\u{266a}\u{266b}]").expect("valid"),
        parens: Regex::new(r"\(([^)]*)\)").expect("valid"),
        thousands: Regex::new(r"(\d),(\d{3})\b").expect("valid"),
        dollars: Regex::new(r"\$\s?(\d+(?:\.\d+)?)").expect("valid"),
        percent: Regex::new(r"(\d+(?:\.\d+)?)\s?%").expect("valid"),
        clock: Regex::new(r"\b(\d{1,2}):(\d{2})\b").expect("valid"),
        ordinal: Regex::new(r"\b(\d+)(st|nd|rd|th)\b").expect("valid"),
        number: Regex::new(r"\d+(?:\.\d+)?").expect("valid"),
        punct: Regex::new(r"[^a-z0-9' ]").expect("valid"),
    })
}

/// English text to normalised words.
pub fn normalize(text: &str) -> Vec<String> {
    let p = patterns();
    let mut t: String = text
        .chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' => '\'',
            '\u{201c}' | '\u{201d}' => '"',
            '\u{2014}' | '\u{2013}' | '\u{2026}' => ' ',
            c => c,
        })
        .collect::<String>()
        .to_lowercase();
    t = p.brackets.replace_all(&t, " ").into_owned();
    t = p
        .parens
        .replace_all(&t, |c: &regex::Captures| {
            let inner = &c[1];
            if inner.split(|ch: char| !ch.is_ascii_alphabetic()).any(|w| SOUNDS.contains(&w)) {
                " ".to_string()
            } else {
                format!(" {inner} ")
            }
        })
        .into_owned();
    loop {
        let next = p.thousands.replace_all(&t, "$1$2").into_owned();
        if next == t {
            break;
        }
        t = next;
    }
    t = p.dollars.replace_all(&t, "$1 dollars").into_owned();
    t = p.percent.replace_all(&t, "$1 percent").into_owned();
    t = p
        .clock
        .replace_all(
            &t,
            |c: &regex::Captures| {
                if &c[2] == "00" {
                    format!("{} o'clock", &c[1])
                } else {
                    format!("{} {}", &c[1], &c[2])
                }
            },
        )
        .into_owned();
    t = p.ordinal.replace_all(&t, |c: &regex::Captures| ordinal(c[1].parse().unwrap_or(0)).join(" ")).into_owned();
    t = p.number.replace_all(&t, |c: &regex::Captures| format!(" {} ", number_words(&c[0]).join(" "))).into_owned();
    t = t.replace('&', " and ").replace(['-', '/'], " ");
    t = p.punct.replace_all(&t, " ").into_owned();
    let mut out = Vec::new();
    for w in t.split_whitespace() {
        let w = w.trim_matches('\'').replace('\'', "");
        if w.is_empty() || FILLERS.contains(&w.as_str()) {
            continue;
        }
        let w = MAP.iter().find(|(k, _)| *k == w).map(|(_, v)| v.to_string()).unwrap_or(w);
        out.extend(w.split(' ').map(String::from));
    }
    out
}

/// Word-level edit counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    pub reference_words: usize,
}

impl Errors {
    pub fn total(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }
    pub fn wer(&self) -> f64 {
        self.total() as f64 / self.reference_words.max(1) as f64
    }
}

impl std::ops::AddAssign for Errors {
    fn add_assign(&mut self, o: Errors) {
        self.substitutions += o.substitutions;
        self.deletions += o.deletions;
        self.insertions += o.insertions;
        self.reference_words += o.reference_words;
    }
}

/// Levenshtein alignment of word lists.
pub fn align(reference: &[String], hypothesis: &[String]) -> Errors {
    // (cost, S, D, I) per cell of the previous row.
    let m = hypothesis.len();
    let mut prev: Vec<(usize, usize, usize, usize)> = (0..=m).map(|j| (j, 0, 0, j)).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![(i + 1, 0, i + 1, 0)];
        for j in 1..=m {
            let best = if *r == hypothesis[j - 1] {
                prev[j - 1]
            } else {
                let (s, d, ins) = (prev[j - 1], prev[j], cur[j - 1]);
                *[(s.0 + 1, s.1 + 1, s.2, s.3), (d.0 + 1, d.1, d.2 + 1, d.3), (ins.0 + 1, ins.1, ins.2, ins.3 + 1)]
                    .iter()
                    .min()
                    .expect("three options")
            };
            cur.push(best);
        }
        prev = cur;
    }
    let (_, s, d, i) = prev[m];
    Errors { substitutions: s, deletions: d, insertions: i, reference_words: reference.len() }
}

/// Errors of `hypothesis` against `reference`, both raw text.
pub fn errors(reference: &str, hypothesis: &str) -> Errors {
    align(&normalize(reference), &normalize(hypothesis))
}

/// The text of an SRT or WebVTT file (cue text only), or the file as is.
pub fn subtitle_text(content: &str) -> String {
    if !content.contains("-->") {
        return content.to_string();
    }
    let content = content.replace("\r\n", "\n");
    let mut words = Vec::new();
    for block in content.split("\n\n") {
        let lines: Vec<&str> = block.lines().collect();
        if let Some(i) = lines.iter().position(|l| l.contains("-->")) {
            words.extend(lines[i + 1..].iter().map(|l| l.trim().to_string()));
        }
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).join(" ")
    }

    #[test]
    fn normalises_like_whisper() {
        assert_eq!(n("And so, my fellow Americans: ask not!"), "and so my fellow americans ask not");
        assert_eq!(
            n("It cost $5 in 1863, 25% more."),
            "it cost five dollars in eighteen sixty three twenty five percent more"
        );
        assert_eq!(n("Mr. Smith's 2nd car at 9:30"), "mister smiths second car at nine thirty");
        assert_eq!(n("Uh, the well-known [MUSIC] (laughs) colour"), "the well known color");
        assert_eq!(n("1,000 people in 2005"), "one thousand people in two thousand five");
    }

    #[test]
    fn counts_edits() {
        let e = errors("the cat sat on the mat", "the cat sat on mat today");
        assert_eq!((e.substitutions, e.deletions, e.insertions), (0, 1, 1));
        assert_eq!(e.reference_words, 6);
        assert_eq!(errors("a b c", "a x c").substitutions, 1);
    }

    #[test]
    fn reads_cue_text() {
        let srt = "1\n00:00:00,000 --> 00:00:01,000\nHello\nthere\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n";
        assert_eq!(subtitle_text(srt), "Hello there world");
    }
}
