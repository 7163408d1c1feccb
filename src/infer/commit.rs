//! The live commit rules: which of a pass's new words go out, and their settings (`[live]` in
//! the pipeline file). A word is committed once, never taken back:
//! - when two passes in a row agree on it and it ended `settle_ms` before the newest audio
//!   (LocalAgreement-2, as whisper_streaming; the last word heard may be cut off), or
//!   `unsure_settle_ms` where Whisper gave it under `unsure_probability`: a word tiny.en is
//!   unsure of, heard alike by two passes half a second apart, is often heard otherwise once a
//!   second more of speech follows it ("I haven't called" for "I have a cold");
//! - when it ended `hold_ms` before the newest audio and the passes still disagree after it
//!   (latency stays bounded when the decoder keeps changing its mind about a word);
//! - at a pause: once voice activity hears `endpoint_ms` without speech after the last word,
//!   the words heard are committed, so the last words before a pause are out before speech
//!   resumes, not after; those that the pass before did not hear alike and that Whisper is
//!   unsure of (probability under `pause_probability`) wait for the next pass to agree. At a
//!   pause Whisper often invents an ending ("Subscribe.", "you"), which no other pass repeats.

use serde::Deserialize;

use crate::infer::hypothesis::key;
use crate::segment::Word;
use crate::time::Ts;

/// The streaming stage's settings (`[live]` in the pipeline file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// New audio before another pass, when the stage is idle.
    pub min_step_ms: i64,
    /// New audio after which a pass runs even while more is queued.
    pub max_step_ms: i64,
    /// Non-speech after the last word that commits every word heard.
    pub endpoint_ms: i64,
    /// Words two passes agree on are committed once they ended this long before the newest
    /// audio (the last word heard may be cut off).
    pub settle_ms: i64,
    /// ...and this long, where Whisper gave it less than `unsure_probability` (the module's
    /// rules).
    pub unsure_settle_ms: i64,
    pub unsure_probability: f32,
    /// A word that ended this long before the newest audio is committed without agreement.
    pub hold_ms: i64,
    /// At a pause, a word the pass before did not hear alike is committed only when Whisper
    /// gave it at least this probability (otherwise the next pass must agree).
    pub pause_probability: f32,
    /// The buffer is cut after its last committed sentence once it is this long...
    pub trim_ms: i64,
    /// ...and after its last committed word once it is this long.
    pub max_buffer_ms: i64,
    /// A pass slower than this (wall time) cuts decoding down: greedy, no temperature fallback.
    pub degrade_pass_ms: i64,
    /// Stream time between two status notes.
    pub status_every_ms: i64,
    /// With several streams on one model on the CPU, a pass encodes its buffer and this much
    /// more (in 4 s steps) instead of Whisper's 30 s window (as whisper.cpp's `audio_ctx`); 0:
    /// the 30 s window always. Passes a third cheaper, so two streams on 2 cores meet the
    /// latency targets more often, for some WER (`benches/live.md`).
    pub shared_window_after_ms: i64,
    /// Set by `subtitle live` (not the pipeline file): several streams share the model on the
    /// CPU.
    #[serde(skip)]
    pub shared_cpu: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            min_step_ms: 300,
            max_step_ms: 2000,
            endpoint_ms: 500,
            settle_ms: 150,
            unsure_settle_ms: 1000,
            unsure_probability: 0.8,
            hold_ms: 2500,
            pause_probability: 0.6,
            trim_ms: 20_000,
            max_buffer_ms: 28_000,
            degrade_pass_ms: 1200,
            status_every_ms: 10_000,
            shared_window_after_ms: 8000,
            shared_cpu: false,
        }
    }
}

impl StreamConfig {
    /// What a pass's encoder window holds after its buffer, where it is shorter than 30 s.
    pub(super) fn window_after(&self) -> Option<Ts> {
        (self.shared_cpu && self.shared_window_after_ms > 0).then_some(Ts(self.shared_window_after_ms))
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("min_step_ms", self.min_step_ms),
            ("max_step_ms", self.max_step_ms),
            ("endpoint_ms", self.endpoint_ms),
            ("settle_ms", self.settle_ms),
            ("unsure_settle_ms", self.unsure_settle_ms),
            ("hold_ms", self.hold_ms),
            ("trim_ms", self.trim_ms),
            ("degrade_pass_ms", self.degrade_pass_ms),
            ("status_every_ms", self.status_every_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v <= 0) {
            return Err(format!("live.{name} must be positive"));
        }
        if self.shared_window_after_ms < 0 {
            return Err("live.shared_window_after_ms must not be negative".into());
        }
        if self.max_step_ms < self.min_step_ms {
            return Err("live.max_step_ms must be at least live.min_step_ms".into());
        }
        if let Some(name) =
            [("pause_probability", self.pause_probability), ("unsure_probability", self.unsure_probability)]
                .iter()
                .find_map(|&(name, p)| (!(0.0..=1.0).contains(&p)).then_some(name))
        {
            return Err(format!("live.{name} must be between 0 and 1"));
        }
        if !(self.trim_ms..=30_000).contains(&self.max_buffer_ms) {
            return Err("live.max_buffer_ms must be between live.trim_ms and 30000".into());
        }
        Ok(())
    }
}

/// How many of a pass's new words go out, and by which rule.
#[derive(Debug, PartialEq)]
pub(super) struct Committable {
    /// The words committed: the first `n` of the hypothesis.
    pub(super) n: usize,
    /// Of those, heard alike by the pass before and settled; then held long enough.
    pub(super) agreed: usize,
    pub(super) held: usize,
    /// `endpoint_ms` without speech after the last speech.
    pub(super) paused: bool,
    /// The words that start before the last speech ends (the rest is never committed).
    pub(super) spoken: usize,
}

/// The commit rules (the module's) for a pass's `hypothesis` (its words after the committed
/// ones) given the pass before's (`tentative`): the buffer ends at `end`, its last speech at
/// `speech_end`; `last`: the stream ended.
pub(super) fn committable(
    cfg: &StreamConfig,
    tentative: &[Word],
    hypothesis: &[Word],
    end: Ts,
    speech_end: Ts,
    last: bool,
) -> Committable {
    // Agreed with the pass before; then any settled long ago; all at a pause or the end.
    let ripe =
        |w: &Word| end - Ts(if w.probability < cfg.unsure_probability { cfg.unsure_settle_ms } else { cfg.settle_ms });
    // Heard alike by the pass before; of those, the ones settled.
    let alike = tentative.iter().zip(hypothesis).take_while(|(a, b)| key(&a.text) == key(&b.text)).count();
    let agreed = hypothesis[..alike].iter().take_while(|w| w.span.end <= ripe(w)).count();
    let settled = end - Ts(cfg.hold_ms);
    let held = hypothesis[agreed..].iter().take_while(|w| w.span.end <= settled).count();
    // Words wholly after the last speech are Whisper's inventions over silence ("you",
    // "Thank you."): never committed.
    let spoken = hypothesis.iter().take_while(|w| w.span.start < speech_end).count();
    let paused = end - speech_end >= Ts(cfg.endpoint_ms);
    let n = if last {
        spoken
    } else if paused {
        // Heard alike by the pass before (however recently), or sure.
        let sure = (alike..hypothesis.len())
            .find(|&i| hypothesis[i].probability < cfg.pause_probability)
            .unwrap_or(hypothesis.len());
        sure.max(agreed + held).min(spoken)
    } else {
        (agreed + held).min(spoken)
    };
    Committable { n, agreed, held, paused, spoken }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Span;

    fn word(text: &str, start: i64, end: i64, probability: f32) -> Word {
        Word { span: Span::new(Ts(start), Ts(end)), text: text.into(), probability }
    }

    #[test]
    fn words_go_out_agreed_held_at_a_pause_or_at_the_end() {
        let cfg = StreamConfig::default();
        let before = [word("the", 0, 300, 0.9), word("quick", 300, 700, 0.9), word("brown", 700, 1000, 0.9)];
        let now = [
            word("The", 0, 300, 0.9),
            word("quick", 300, 700, 0.9),
            word("brown", 700, 1000, 0.9),
            word("fox", 1000, 1500, 0.3),
        ];
        let speaking = Ts(5000);
        // Still speaking: the words the pass before heard alike that settled go out, the last
        // (ended under settle_ms ago) waits; the one the passes disagree on waits.
        let c = committable(&cfg, &before, &now, Ts(1100), speaking, false);
        assert_eq!((c.n, c.agreed, c.held, c.paused), (2, 2, 0, false));
        // Once it ended hold_ms ago, a word goes out though the passes disagree after it.
        let c = committable(&cfg, &before[..1], &now, Ts(1500 + cfg.hold_ms), speaking, false);
        assert_eq!((c.n, c.agreed, c.held), (4, 1, 3));
        let c = committable(&cfg, &before[..1], &now, Ts(1499 + cfg.hold_ms), speaking, false);
        assert_eq!((c.n, c.agreed, c.held), (3, 1, 2));
        // At a pause the words heard alike go out, and the sure ones after them; an unsure one
        // waits for the next pass, and words wholly after the speech never go out.
        let after = [&now[..], &[word("you", 2400, 2600, 0.95)]].concat();
        let paused = Ts(1500 + cfg.endpoint_ms);
        let c = committable(&cfg, &before, &after, paused, Ts(1500), false);
        assert_eq!((c.n, c.paused, c.spoken), (3, true, 4));
        let sure = [&now[..3], &[word("fox", 1000, 1500, 0.8)]].concat();
        assert_eq!(committable(&cfg, &before, &sure, paused, Ts(1500), false).n, 4);
        assert_eq!(committable(&cfg, &before, &sure, paused - Ts(1), Ts(1500), false).n, 3);
        // The stream's end: every spoken word.
        assert_eq!(committable(&cfg, &[], &after, Ts(1600), Ts(1500), true).n, 4);
    }

    #[test]
    fn a_word_whisper_is_unsure_of_waits_for_more_speech_after_it() {
        let cfg = StreamConfig::default();
        // Mix 4 of the live benchmark: "I have a cold" heard as "I haven't called" by two
        // passes half a second apart, committed with 0.6 s of speech after it.
        let before = [word("I", 0, 110, 0.93), word("haven't", 110, 410, 0.69), word("called", 410, 550, 0.77)];
        let now = [word("I", 0, 110, 0.95), word("haven't", 110, 670, 0.72), word("called", 670, 670, 0.98)];
        let speaking = Ts(5000);
        let c = committable(&cfg, &before, &now, Ts(1250), speaking, false);
        assert_eq!((c.n, c.agreed), (1, 1));
        // A second after it ended the word goes out, and the sure word after it too.
        let c = committable(&cfg, &before, &now, Ts(670 + cfg.unsure_settle_ms), speaking, false);
        assert_eq!((c.n, c.agreed), (3, 3));
        // Sure words need only settle_ms.
        let sure: Vec<Word> = now.iter().map(|w| Word { probability: 0.9, ..w.clone() }).collect();
        assert_eq!(committable(&cfg, &before, &sure, Ts(670 + cfg.settle_ms), speaking, false).n, 3);
    }

    #[test]
    fn the_shipped_settings_are_valid_and_bad_ones_named() {
        assert!(StreamConfig::default().validate().is_ok());
        let bad = StreamConfig { max_buffer_ms: 40_000, ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("live.max_buffer_ms"));
        let bad = StreamConfig { unsure_probability: 1.5, ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("live.unsure_probability"));
        let bad = StreamConfig { shared_window_after_ms: -1, ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("live.shared_window_after_ms"));
    }

    #[test]
    fn only_streams_sharing_the_cpu_take_shorter_encoder_windows() {
        let one = StreamConfig::default();
        assert_eq!(one.window_after(), None);
        let shared = StreamConfig { shared_cpu: true, ..Default::default() };
        assert_eq!(shared.window_after(), Some(Ts(8000)));
        assert_eq!(StreamConfig { shared_window_after_ms: 0, ..shared }.window_after(), None);
    }
}
