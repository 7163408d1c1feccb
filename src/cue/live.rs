//! Cues of live input: committed words fill the open cue, which closes, final, at a sentence
//! end, a pause, or when the next word would not fit the profile's lines or its longest
//! duration. Timing is the file's ([`super::timed_cue`]) without a next cue to look at: the
//! next one starts after this one's out-time, whatever it is.
//!
//! `roll_up`: rows for a 608-style roll-up display instead: one line of `max_line_chars` a cue
//! (32 for CEA-608 with `--profile` of that width), closed when full, at a sentence end or a
//! pause.

use crate::cue::profile::Profile;
use crate::cue::{cue_lines, layout, timed_cue, timing, words_of, Subtitle};
use crate::error::Result;
use crate::flow::Stage;
use crate::segment::{LiveNote, Transcript, Word};
use crate::time::{Span, Ts};

/// Speech paused this long between two words closes the cue even without a pause note.
const PAUSE_CLOSES: Ts = Ts(1200);

pub struct LiveCueStage {
    profile: Profile,
    fps: f64,
    open: Vec<Word>,
    /// Shot changes of the last seconds.
    cuts: Vec<Ts>,
    last_out: Option<Ts>,
    pub cues: usize,
}

fn ends_sentence(text: &str) -> bool {
    text.trim_end_matches(['"', '\'', ')']).ends_with(['.', '?', '!'])
}

impl LiveCueStage {
    /// `roll_up`: one row of the profile's width a cue (608-style roll-up captions).
    pub fn new(profile: Profile, fps: f64, roll_up: bool) -> Self {
        let profile = if roll_up { Profile { max_lines: 1, ..profile } } else { profile };
        Self { profile, fps, open: Vec::new(), cuts: Vec::new(), last_out: None, cues: 0 }
    }

    fn fits(&self, word: &Word) -> bool {
        let Some(first) = self.open.first() else { return true };
        let mut texts: Vec<&str> = self.open.iter().map(|w| w.text.as_str()).collect();
        texts.push(&word.text);
        layout::lines(&texts, &self.profile).is_some()
            && word.span.end - first.span.start <= Ts(self.profile.max_duration_ms)
    }

    fn close(&mut self, out: &mut Vec<Subtitle>) {
        let words = std::mem::take(&mut self.open);
        let (Some(first), Some(last)) = (words.first(), words.last()) else { return };
        let spoken = Span::new(first.span.start, last.span.end.max(first.span.start + Ts(1)));
        let near = timing::Neighbours { prev_out: self.last_out, next_in: None, cuts: &self.cuts };
        let cue = timed_cue(&self.profile, self.fps, spoken, cue_lines(&words, &self.profile), &near);
        self.last_out = Some(cue.span.end);
        self.cues += 1;
        let keep_from = cue.span.end - Ts(10_000);
        self.cuts.retain(|&c| c >= keep_from);
        out.push(Subtitle::Cue(cue));
    }

    fn push_word(&mut self, word: Word, out: &mut Vec<Subtitle>) {
        let paused = self.open.last().is_some_and(|w| word.span.start - w.span.end >= PAUSE_CLOSES);
        if paused || !self.fits(&word) {
            self.close(out);
        }
        let sentence = ends_sentence(&word.text);
        self.open.push(word);
        if sentence {
            self.close(out);
        }
    }
}

impl Stage for LiveCueStage {
    type In = Transcript;
    type Out = Subtitle;
    const NAME: &'static str = "cues";

    fn process(&mut self, item: Transcript, out: &mut Vec<Subtitle>) -> Result<()> {
        match item {
            Transcript::Segment(segment) => {
                let words = words_of(&segment);
                out.push(Subtitle::Segment(segment));
                for w in words {
                    self.push_word(w, out);
                }
            }
            Transcript::ShotChange(at) => {
                self.cuts.push(at);
                out.push(Subtitle::ShotChange(at));
            }
            Transcript::Live(note) => {
                if matches!(note, LiveNote::Pause(_) | LiveNote::Skipped(_)) {
                    self.close(out);
                }
                out.push(Subtitle::Live(note));
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Subtitle>) -> Result<()> {
        self.close(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cue::Cue;
    use crate::segment::Segment;

    fn word(text: &str, start: i64, end: i64) -> Word {
        Word { span: Span::new(Ts(start), Ts(end)), text: text.into(), probability: 1.0 }
    }

    fn commit(words: Vec<Word>) -> Transcript {
        Transcript::Segment(Segment::of_words(words))
    }

    fn cues(out: &[Subtitle]) -> Vec<Cue> {
        out.iter().filter_map(|s| if let Subtitle::Cue(c) = s { Some(c.clone()) } else { None }).collect()
    }

    #[test]
    fn cues_close_at_sentence_ends_pauses_and_when_full_and_never_overlap() {
        let mut stage = LiveCueStage::new(Profile::netflix_en(), 25.0, false);
        let mut out = Vec::new();
        stage.process(commit(vec![word("Hello", 0, 400), word("there.", 450, 900)]), &mut out).unwrap();
        assert_eq!(cues(&out).len(), 1, "a sentence end closes the cue at once");
        stage.process(commit(vec![word("And", 1000, 1200), word("then", 1250, 1500)]), &mut out).unwrap();
        assert_eq!(cues(&out).len(), 1, "open until something closes it");
        stage.process(Transcript::Live(LiveNote::Pause(Ts(1600))), &mut out).unwrap();
        assert_eq!(cues(&out)[1].lines, vec!["And then"]);
        // A long run of words without punctuation: cues of at most two lines of 42.
        let many: Vec<Word> = (0..40).map(|i| word("word", 3000 + i * 300, 3250 + i * 300)).collect();
        stage.process(commit(many), &mut out).unwrap();
        stage.finish(&mut out).unwrap();
        let all = cues(&out);
        assert!(all.len() >= 4, "{all:?}");
        for c in &all {
            assert!(c.lines.len() <= 2 && c.lines.iter().all(|l| l.chars().count() <= 42), "{c:?}");
        }
        for pair in all.windows(2) {
            assert!(pair[1].span.start > pair[0].span.end, "{pair:?}");
        }
        let words: usize = all.iter().map(|c| c.text().split_whitespace().count()).sum();
        assert_eq!(words, 2 + 2 + 40, "every committed word is in a cue");
    }

    #[test]
    fn roll_up_rows_are_one_line_of_the_profile_width() {
        let profile = Profile { max_line_chars: 32, ..Profile::netflix_en() };
        let mut stage = LiveCueStage::new(profile, 30.0, true);
        let mut out = Vec::new();
        let many: Vec<Word> = (0..30).map(|i| word("caption", i * 300, i * 300 + 250)).collect();
        stage.process(commit(many), &mut out).unwrap();
        stage.finish(&mut out).unwrap();
        let all = cues(&out);
        assert!(all.iter().all(|c| c.lines.len() == 1 && c.lines[0].chars().count() <= 32), "{all:?}");
    }
}
