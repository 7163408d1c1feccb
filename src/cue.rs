//! Segments to subtitle cues. For now: split at word boundaries so no cue runs past
//! `max_duration_ms` or `max_lines` lines of `max_line_chars`; words are timed in proportion to
//! their length inside their segment. (Word timestamps and the full subtitle rules come later.)

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pipeline::Stage;
use crate::segment::Segment;
use crate::time::{Span, Ts};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CueConfig {
    /// Longest cue, in milliseconds.
    pub max_duration_ms: i64,
    /// Characters per line.
    pub max_line_chars: usize,
    /// Lines per cue.
    pub max_lines: usize,
}

impl Default for CueConfig {
    fn default() -> Self {
        Self { max_duration_ms: 7000, max_line_chars: 42, max_lines: 2 }
    }
}

impl CueConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_duration_ms < 1000 {
            return Err("cues.max_duration_ms must be at least 1000".into());
        }
        if self.max_line_chars < 10 || self.max_lines == 0 {
            return Err("cues.max_line_chars must be at least 10 and cues.max_lines at least 1".into());
        }
        Ok(())
    }
}

/// One subtitle: a time span and its lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cue {
    #[serde(skip)]
    pub span: Span,
    pub lines: Vec<String>,
}

impl Cue {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A segment with the cues made from it; the sinks take these.
#[derive(Debug, Clone)]
pub struct CueBatch {
    pub segment: Segment,
    pub cues: Vec<Cue>,
}

pub struct CueStage {
    cfg: CueConfig,
    /// End of the last cue, so cues never overlap.
    last_end: Ts,
}

impl CueStage {
    pub fn new(cfg: CueConfig) -> Self {
        Self { cfg, last_end: Ts::ZERO }
    }
}

/// Greedy line filling: words in order, a new line when the next word would not fit.
fn fill_lines(words: &[&str], max_chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for w in words {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + w.chars().count() <= max_chars => {
                l.push(' ');
                l.push_str(w);
            }
            _ => lines.push((*w).to_string()),
        }
    }
    lines
}

/// Cuts `segment` into cues.
pub fn build_cues(segment: &Segment, cfg: &CueConfig) -> Vec<Cue> {
    let words: Vec<&str> = segment.text.split_whitespace().collect();
    if words.is_empty() {
        return Vec::new();
    }
    let (start, end) = (segment.span.start.ms(), segment.span.end.ms().max(segment.span.start.ms() + 1));
    // Each word's share of the segment, by its length plus a space.
    let weights: Vec<f64> = words.iter().map(|w| w.chars().count() as f64 + 1.0).collect();
    let total: f64 = weights.iter().sum();
    let mut bounds = Vec::with_capacity(words.len() + 1);
    let mut acc = 0.0;
    bounds.push(start);
    for w in &weights {
        acc += w;
        bounds.push(start + ((end - start) as f64 * acc / total).round() as i64);
    }

    let mut cues = Vec::new();
    let mut first = 0;
    while first < words.len() {
        let mut last = first + 1; // exclusive
        while last < words.len() {
            let fits_lines = fill_lines(&words[first..=last], cfg.max_line_chars).len() <= cfg.max_lines;
            let fits_time = bounds[last + 1] - bounds[first] <= cfg.max_duration_ms;
            if !(fits_lines && fits_time) {
                break;
            }
            last += 1;
        }
        cues.push(Cue {
            span: Span::new(Ts(bounds[first]), Ts(bounds[last])),
            lines: fill_lines(&words[first..last], cfg.max_line_chars),
        });
        first = last;
    }
    cues
}

impl Stage for CueStage {
    type In = Segment;
    type Out = CueBatch;
    const NAME: &'static str = "cues";

    fn process(&mut self, segment: Segment, out: &mut Vec<CueBatch>) -> Result<()> {
        let mut cues = build_cues(&segment, &self.cfg);
        for c in &mut cues {
            c.span.start = c.span.start.max(self.last_end);
            c.span.end = c.span.end.max(c.span.start + Ts(1));
            self.last_end = c.span.end;
        }
        out.push(CueBatch { segment, cues });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str, start: i64, end: i64) -> Segment {
        Segment {
            span: Span::new(Ts(start), Ts(end)),
            text: text.into(),
            tokens: vec![],
            probabilities: vec![],
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
        }
    }

    #[test]
    fn long_segments_are_cut_within_limits_and_keep_every_word() {
        let text = "And so my fellow Americans ask not what your country can do for you ask what you can do for your country and then some more words follow here";
        let s = seg(text, 1000, 20_000);
        let cfg = CueConfig::default();
        let cues = build_cues(&s, &cfg);
        assert!(cues.len() >= 3);
        for c in &cues {
            assert!(c.lines.len() <= 2, "{c:?}");
            assert!(c.lines.iter().all(|l| l.chars().count() <= 42), "{c:?}");
            assert!(c.span.duration().ms() <= 7000, "{c:?}");
        }
        let joined: Vec<String> =
            cues.iter().flat_map(|c| c.lines.iter().flat_map(|l| l.split(' ').map(String::from))).collect();
        assert_eq!(joined.join(" "), text);
        assert_eq!(cues[0].span.start, Ts(1000));
        assert_eq!(cues.last().unwrap().span.end, Ts(20_000));
    }

    #[test]
    fn short_segment_is_one_cue() {
        let cues = build_cues(&seg(" Hello world.", 0, 1500), &CueConfig::default());
        assert_eq!(cues, vec![Cue { span: Span::new(Ts(0), Ts(1500)), lines: vec!["Hello world.".into()] }]);
    }
}
