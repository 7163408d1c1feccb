//! Subtitle rules as profiles: the built-in `netflix-en` (Netflix's English timed-text style
//! guide), `netflix-en-us` (the same at 20 characters a second, as Netflix allows for adult US
//! programmes) and `bbc` (BBC subtitle guidelines), plus custom ones from the pipeline TOML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a cue may be.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Characters per line.
    pub max_line_chars: usize,
    /// Lines per cue.
    pub max_lines: usize,
    /// Reading speed: characters a second (spaces and punctuation count, line breaks do not).
    #[serde(default)]
    pub max_chars_per_s: Option<f64>,
    /// Reading speed: words a minute (used when `max_chars_per_s` is not set).
    #[serde(default)]
    pub max_words_per_min: Option<f64>,
    /// Shortest cue, in milliseconds.
    pub min_duration_ms: i64,
    /// Longest cue, in milliseconds.
    pub max_duration_ms: i64,
    /// Least gap between cues, in frames.
    pub min_gap_frames: u32,
    /// Gaps up to this many frames are closed to `min_gap_frames` (chaining).
    pub chain_gap_frames: u32,
    /// How far past the last word a cue may stay up for reading speed, in milliseconds.
    pub max_extend_ms: i64,
    /// In- and out-times within this many frames of a shot change snap to it.
    pub shot_snap_frames: u32,
}

impl Profile {
    pub fn netflix_en() -> Self {
        Self {
            max_line_chars: 42,
            max_lines: 2,
            max_chars_per_s: Some(17.0),
            max_words_per_min: None,
            min_duration_ms: 833,
            max_duration_ms: 7000,
            min_gap_frames: 2,
            chain_gap_frames: 12,
            max_extend_ms: 500,
            shot_snap_frames: 12,
        }
    }

    pub fn builtin(name: &str) -> Option<Self> {
        match name {
            "netflix-en" => Some(Self::netflix_en()),
            "netflix-en-us" => Some(Self { max_chars_per_s: Some(20.0), ..Self::netflix_en() }),
            "bbc" => Some(Self {
                max_line_chars: 37,
                max_chars_per_s: None,
                max_words_per_min: Some(180.0),
                min_duration_ms: 1000,
                ..Self::netflix_en()
            }),
            _ => None,
        }
    }

    pub const BUILTIN: &'static [&'static str] = &["netflix-en", "netflix-en-us", "bbc"];

    /// Seconds `text` needs on screen at this profile's reading speed.
    pub fn reading_time_s(&self, text: &str) -> f64 {
        if let Some(cps) = self.max_chars_per_s {
            reading_chars(text) as f64 / cps
        } else if let Some(wpm) = self.max_words_per_min {
            text.split_whitespace().count() as f64 * 60.0 / wpm
        } else {
            0.0
        }
    }

    /// Reading speed of `text` shown for `duration_ms`, in the profile's unit, and its limit.
    pub fn speed(&self, text: &str, duration_ms: i64) -> Option<(f64, f64, &'static str)> {
        let secs = duration_ms.max(1) as f64 / 1000.0;
        if let Some(cps) = self.max_chars_per_s {
            Some((reading_chars(text) as f64 / secs, cps, "characters/s"))
        } else {
            self.max_words_per_min.map(|wpm| (text.split_whitespace().count() as f64 * 60.0 / secs, wpm, "words/min"))
        }
    }

    pub fn validate(&self, name: &str) -> std::result::Result<(), String> {
        let bad = |what: &str| Err(format!("cues.profiles.{name}: {what}"));
        if self.max_line_chars < 10 || self.max_lines == 0 {
            return bad("max_line_chars must be at least 10 and max_lines at least 1");
        }
        if self.min_duration_ms < 0 || self.max_duration_ms < 1000 || self.min_duration_ms > self.max_duration_ms {
            return bad("durations must satisfy 0 <= min_duration_ms <= max_duration_ms, max at least 1000");
        }
        if self.max_chars_per_s.is_some_and(|v| v <= 0.0) || self.max_words_per_min.is_some_and(|v| v <= 0.0) {
            return bad("reading speeds must be positive");
        }
        if self.max_extend_ms < 0 {
            return bad("max_extend_ms must not be negative");
        }
        Ok(())
    }
}

/// Characters a reader reads: everything but line breaks.
pub fn reading_chars(text: &str) -> usize {
    text.chars().filter(|&c| c != '\n').count()
}

/// `[cues]` in the pipeline TOML.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CueConfig {
    /// Profile used unless `--profile` says otherwise: a built-in name or one of `profiles`.
    pub profile: String,
    /// Frame rate for audio-only input (gaps and snapping count frames).
    #[serde(default = "default_fps")]
    pub audio_only_fps: f64,
    /// Custom profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

fn default_fps() -> f64 {
    24.0
}

impl Default for CueConfig {
    fn default() -> Self {
        Self { profile: "netflix-en".into(), audio_only_fps: default_fps(), profiles: BTreeMap::new() }
    }
}

impl CueConfig {
    /// The profile called `name`: a custom one first, then a built-in.
    pub fn resolve(&self, name: &str) -> std::result::Result<Profile, String> {
        if let Some(p) = self.profiles.get(name) {
            return Ok(p.clone());
        }
        Profile::builtin(name).ok_or_else(|| {
            let mut known: Vec<&str> = Profile::BUILTIN.to_vec();
            known.extend(self.profiles.keys().map(String::as_str));
            format!("unknown cue profile {name:?} (known: {})", known.join(", "))
        })
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, p) in &self.profiles {
            p.validate(name)?;
        }
        if !(1.0..=120.0).contains(&self.audio_only_fps) {
            return Err("cues.audio_only_fps must be between 1 and 120".into());
        }
        self.resolve(&self.profile).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_resolve_and_customs_win() {
        let mut cfg = CueConfig::default();
        assert_eq!(cfg.resolve("netflix-en").unwrap().max_chars_per_s, Some(17.0));
        assert_eq!(cfg.resolve("netflix-en-us").unwrap().max_chars_per_s, Some(20.0));
        assert_eq!(cfg.resolve("bbc").unwrap().max_line_chars, 37);
        assert!(cfg.resolve("nope").unwrap_err().contains("netflix-en"));
        cfg.profiles.insert("kids".into(), Profile { max_chars_per_s: Some(12.0), ..Profile::netflix_en() });
        assert_eq!(cfg.resolve("kids").unwrap().max_chars_per_s, Some(12.0));
    }

    #[test]
    fn reading_speed_counts_characters_or_words() {
        let p = Profile::netflix_en();
        assert!((p.reading_time_s("Hello there,\nfriend.") - 19.0 / 17.0).abs() < 1e-9);
        let bbc = Profile::builtin("bbc").unwrap();
        assert!((bbc.reading_time_s("one two three") - 1.0).abs() < 1e-9);
    }
}
