//! Media time comes from the stream: a run of corrupt audio packets, a 3 s jump of the
//! timestamps and audio that starts 2 s after the video each leave every later cue where the
//! picture puts it: within 40 ms of the clean file's cue, moved by the event's shift
//! (`samples/make.sh`: `samples/out/gaps/*.event`, "AT SHIFT CLEAN"). The run's statistics count
//! the gaps filled.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::*;

/// Cues (start s, end s, text) and the run statistics of `input`'s JSON output (tiny.en greedy).
fn cues(input: &Path) -> (Vec<(f64, f64, String)>, serde_json::Value) {
    let dir = tempdir(&format!("gaps-{}", input.file_name().unwrap().to_string_lossy()));
    let out = dir.join("out.json");
    let o = run(&[input.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--beam"), OsStr::new("1")]);
    assert!(o.status.success(), "{}: {}", input.display(), stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let cues = doc["cues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["start"].as_f64().unwrap(), c["end"].as_f64().unwrap(), c["text"].as_str().unwrap().to_string()))
        .collect();
    (cues, doc["stats"].clone())
}

/// The words of a cue, for matching cues whose text came back slightly different (the windows
/// of the damaged file hold other audio at their edges).
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect())
        .filter(|w: &String| !w.is_empty())
        .collect()
}

/// Distinct words `a` and `b` share.
fn common_words(a: &str, b: &str) -> usize {
    let (a, b) = (words(a), words(b));
    let a: std::collections::BTreeSet<&String> = a.iter().collect();
    a.into_iter().filter(|w| b.contains(w)).count()
}

fn check(name: &str) {
    let dir = sample("gaps");
    let event = std::fs::read_to_string(dir.join(format!("{name}.event"))).unwrap();
    let f: Vec<&str> = event.split_whitespace().collect();
    let (at, shift, clean): (f64, f64, &str) = (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2]);
    let (want, _) = cues(&dir.join(clean));
    let (got, stats) = cues(&dir.join(format!("{name}.{}", if name == "corrupt" { "mp4" } else { "mkv" })));
    assert!(want.len() >= 6, "{clean}: {want:?}");
    assert!(want.iter().filter(|c| c.0 >= at).count() >= 3, "{name}: too few cues after the event: {want:?}");
    for (i, c) in want.iter().enumerate().filter(|(_, c)| c.0 >= at) {
        // The same sentence (tiny.en hears the synthetic voice's words differently when the
        // windows around it hold other audio): words in common, nearest where it belongs.
        let found = got
            .iter()
            .filter(|g| common_words(&g.2, &c.2) >= 2)
            .min_by(|a, b| (a.0 - c.0 - shift).abs().total_cmp(&(b.0 - c.0 - shift).abs()));
        let g = found.unwrap_or_else(|| panic!("{name}: the cue {:?} is missing: {got:?}", c.2));
        let late = |g: f64, c: f64| ((g - c - shift) * 1000.0).abs();
        assert!(late(g.0, c.0) <= 40.0, "{name}: {:?} starts at {:.3}, want {:.3} (+{shift} s)", c.2, g.0, c.0);
        // Its out-time too, where its text and the next cue's are the same, punctuation included
        // (the out-time follows the text's length, its last token's alignment, and the next
        // cue's in-time).
        let k = got.iter().position(|x| std::ptr::eq(x, g)).unwrap();
        let next_same = match (want.get(i + 1), got.get(k + 1)) {
            (Some(a), Some(b)) => a.2 == b.2,
            (None, None) => true,
            _ => false,
        };
        if g.2 == c.2 && next_same {
            assert!(late(g.1, c.1) <= 40.0, "{name}: {:?} ends at {:.3}, want {:.3} (+{shift} s)", c.2, g.1, c.1);
        }
    }
    assert!(stats["gaps"].as_u64().unwrap() >= 1, "{name}: no gap counted: {stats}");
    if shift > 0.0 {
        let filled = stats["gap_s"].as_f64().unwrap();
        assert!((filled - shift).abs() <= 0.04, "{name}: {filled} s of gaps filled for a {shift} s shift");
    }
}

/// 2 s of the audio packets overwritten with garbage: the decoder drops them, and the hole they
/// leave is filled with silence, so the sentences after it keep their times.
#[test]
fn corrupt_audio_packets_keep_later_cues_in_place() {
    check("corrupt");
}

/// The timestamps of audio and video jump 3 s forward: later cues move with the picture.
#[test]
fn a_timestamp_jump_moves_later_cues_with_the_picture() {
    check("jump");
}

/// Audio that starts 2 s after the video is placed there.
#[test]
fn late_audio_starts_where_the_stream_puts_it() {
    check("late");
}
