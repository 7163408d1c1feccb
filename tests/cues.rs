//! Subtitle-grade cues on generated media with known timing (samples/make.sh): no text over
//! silence or music, in-times at speech onsets, no cue across a shot change, dense speech kept
//! word for word and reported, profiles applied, and `subtitle check` on any file.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::*;
use subtitle::check::{lint, read, ParsedCue};
use subtitle::cue::Profile;

/// Runs tiny.en greedy on `input` into `dir/name`; returns the output path and stderr.
fn subtitle_to(input: &Path, dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let out = dir.join(name);
    let mut args: Vec<&OsStr> = vec![input.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--beam")];
    args.push(OsStr::new("1"));
    args.extend(extra.iter().map(OsStr::new));
    let o = run(&args);
    assert!(o.status.success(), "{}: {}", input.display(), stderr(&o));
    (out, stderr(&o))
}

fn secs(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Violations other than reading speed, as `subtitle check` would print them.
fn hard_violations(cues: &[ParsedCue], fps: f64) -> Vec<String> {
    lint(cues, &Profile::netflix_en(), fps)
        .into_iter()
        .filter(|v| !v.over_speed)
        .map(|v| format!("cue {} at {}: {}", v.cue, v.at, v.message))
        .collect()
}

#[test]
fn music_and_silence_give_no_cues() {
    let dir = tempdir("nothing");
    for f in ["music.mp4", "silence.mp4"] {
        let (out, _) = subtitle_to(&sample(f), &dir, &format!("{f}.srt"), &[]);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "", "{f} produced cues:\n{text}");
    }
}

#[test]
fn speech_under_music_is_kept() {
    let hyp = transcribe(&sample("overmusic.mp4"), &["--beam", "1"]);
    let reference = std::fs::read_to_string(sample("overmusic.txt")).unwrap();
    let e = subtitle::eval::errors(&reference, &hyp);
    assert!(e.wer() <= 0.6, "WER {:.1}%: {hyp}", 100.0 * e.wer());
}

#[test]
fn spoken_thanks_for_watching_stays() {
    let hyp = transcribe(&sample("thanks.mp4"), &["--beam", "1"]);
    let words = subtitle::eval::normalize(&hyp).join(" ");
    assert!(words.contains("thanks for watching"), "{hyp}");
}

#[test]
fn in_times_follow_speech_onsets_after_long_silence_and_keep_the_rules() {
    let dir = tempdir("timing");
    let (out, _) = subtitle_to(&sample("timing.mp4"), &dir, "timing.srt", &[]);
    let cues = read(&out).unwrap();
    let onsets = secs(&sample("timing.onsets"));
    assert!(cues.len() >= onsets.len(), "{} cues for {} sentences", cues.len(), onsets.len());
    // No cue in the 8 s of lead silence.
    assert!(cues[0].span.start.secs_f64() > onsets[0] - 0.25, "{:?}", cues[0]);
    let near = |t: f64| onsets.iter().any(|o| (o - t).abs() <= 0.25);
    let on_time = cues.iter().filter(|c| near(c.span.start.secs_f64())).count();
    assert!(on_time * 10 >= cues.len() * 9, "{on_time} of {} cues within 0.25 s of an onset: {cues:?}", cues.len());
    // Every sentence's onset starts a cue.
    for o in &onsets {
        assert!(cues.iter().any(|c| (c.span.start.secs_f64() - o).abs() <= 0.25), "no cue at {o}: {cues:?}");
    }
    assert_eq!(hard_violations(&cues, 25.0), Vec::<String>::new());
    let hyp = subtitle::eval::subtitle_text(&std::fs::read_to_string(&out).unwrap());
    let reference = std::fs::read_to_string(sample("timing.txt")).unwrap();
    let e = subtitle::eval::errors(&reference, &hyp);
    assert!(e.wer() <= 0.35, "WER {:.1}%: {hyp}", 100.0 * e.wer());
}

#[test]
fn cues_do_not_cross_a_shot_change() {
    let dir = tempdir("cut");
    let (out, _) = subtitle_to(&sample("cut.mp4"), &dir, "cut.srt", &[]);
    let cues = read(&out).unwrap();
    let cut = secs(&sample("cut.cut"))[0];
    // The first frame of the new shot is up to one frame (40 ms) after the cut's time.
    let frame = 0.04;
    for c in &cues {
        let (a, b) = (c.span.start.secs_f64(), c.span.end.secs_f64());
        assert!(!(a < cut - frame && b > cut + frame), "cue {c:?} spans the cut at {cut}");
    }
    assert!(cues.iter().any(|c| c.span.end.secs_f64() <= cut + frame), "{cues:?}");
    assert!(cues.iter().any(|c| c.span.start.secs_f64() >= cut - frame), "{cues:?}");
    // The cue after the cut starts on it (snapped), not at the speech 0.3 s later.
    let after = cues.iter().find(|c| c.span.start.secs_f64() >= cut - frame).unwrap();
    assert!(after.span.start.secs_f64() - cut <= 2.0 * frame, "{after:?} vs cut {cut}");
    assert_eq!(hard_violations(&cues, 25.0), Vec::<String>::new());
}

#[test]
fn dense_speech_keeps_every_word_and_reports_over_speed_cues() {
    let dir = tempdir("dense");
    let (json, err) = subtitle_to(&sample("dense.mp4"), &dir, "dense.json", &[]);
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let said: Vec<String> =
        doc["segments"].as_array().unwrap().iter().flat_map(|s| words(s["text"].as_str().unwrap())).collect();
    let shown: Vec<String> =
        doc["cues"].as_array().unwrap().iter().flat_map(|c| words(c["text"].as_str().unwrap())).collect();
    assert_eq!(shown, said, "cues must hold every decoded word, in order");
    let over = doc["cues"].as_array().unwrap().iter().filter(|c| c["over_speed"].as_bool().unwrap()).count();
    assert!(over > 0, "290 words a minute should not fit 17 characters a second");
    assert!(err.contains("over the netflix-en reading speed"), "{err}");

    let (srt, _) = subtitle_to(&sample("dense.mp4"), &dir, "dense.srt", &[]);
    let cues = read(&srt).unwrap();
    assert_eq!(hard_violations(&cues, 25.0), Vec::<String>::new());
    // `subtitle check` says the same: only reading speed, exit 1.
    let o = bin().args([OsStr::new("check"), srt.as_os_str(), OsStr::new("--fps"), OsStr::new("25")]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(report.contains("0 break a rule other than reading speed"), "{report}");
}

#[test]
fn words_carry_times_and_probabilities() {
    let dir = tempdir("words");
    let (json, _) = subtitle_to(&sample("timing.mp4"), &dir, "w.json", &[]);
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let onsets = secs(&sample("timing.onsets"));
    let mut last = 0.0;
    let mut starts = Vec::new();
    for s in doc["segments"].as_array().unwrap() {
        let words = s["words"].as_array().unwrap();
        assert!(!words.is_empty(), "{s}");
        for w in words {
            let (a, b, p) =
                (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap(), w["probability"].as_f64().unwrap());
            assert!(a >= last - 1e-9 && b >= a && (0.0..=1.0).contains(&p), "{w}");
            assert!(!w["word"].as_str().unwrap().is_empty());
            last = b;
            starts.push(a);
        }
    }
    assert!(starts.len() >= 40, "{} words", starts.len());
    for o in onsets {
        assert!(starts.iter().any(|a| (a - o).abs() <= 0.25), "no word starts near {o}: {starts:?}");
    }
}

#[test]
fn profiles_from_the_flag_and_the_pipeline_file_apply() {
    let dir = tempdir("profiles");
    let input = sample("s2.mkv");
    let (bbc, _) = subtitle_to(&input, &dir, "bbc.srt", &["--profile", "bbc"]);
    for c in read(&bbc).unwrap() {
        assert!(c.lines.iter().all(|l| l.chars().count() <= 37), "{c:?}");
    }
    let toml = subtitle::config::DEFAULT_FILE_PIPELINE.replace(
        "# [cues.profiles.kids]",
        "[cues.profiles.narrow]\nmax_line_chars = 20\nmax_lines = 2\nmax_chars_per_s = 12.0\nmin_duration_ms = 1000\nmax_duration_ms = 6000\nmin_gap_frames = 2\nchain_gap_frames = 12\nmax_extend_ms = 500\nshot_snap_frames = 12\n# x",
    );
    let pipeline = dir.join("narrow.toml");
    std::fs::write(&pipeline, toml).unwrap();
    let p = pipeline.to_str().unwrap();
    let (narrow, _) = subtitle_to(&input, &dir, "narrow.srt", &["--pipeline", p, "--profile", "narrow"]);
    let cues = read(&narrow).unwrap();
    assert!(cues.len() >= 3, "{cues:?}");
    for c in &cues {
        assert!(c.lines.len() <= 2 && c.lines.iter().all(|l| l.chars().count() <= 20), "{c:?}");
    }
    let o = bin()
        .args(["check", narrow.to_str().unwrap(), "--pipeline", p, "--profile", "narrow", "--fps", "25"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(report.contains("0 break a rule other than reading speed"), "{report}");

    let o = run(&[
        input.as_os_str(),
        OsStr::new("-o"),
        dir.join("x.srt").as_os_str(),
        OsStr::new("--profile"),
        OsStr::new("nope"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown cue profile \"nope\""), "{}", stderr(&o));
    assert!(!dir.join("x.srt").exists());
}

#[test]
fn check_lints_other_tools_subtitles() {
    let dir = tempdir("check");
    // The way raw Whisper segments come out: long lines, touching cues, a 9 s cue.
    let raw =
        "1\n00:00:00,000 --> 00:00:04,000\nAnd so my fellow Americans, ask not what your country can do for you,\n\n\
               2\n00:00:04,000 --> 00:00:13,000\nask what you can do for your country.\n";
    let bad = dir.join("raw.srt");
    std::fs::write(&bad, raw).unwrap();
    let o = bin().args([OsStr::new("check"), bad.as_os_str()]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(report.contains("cue 1 (00:00:00,000): line 1 has 69 characters (max 42)"), "{report}");
    assert!(report.contains("cue 1 (00:00:00,000): gap to the next cue is 0.0 frames (min 2)"), "{report}");
    assert!(report.contains("cue 2 (00:00:04,000): on screen 9.000 s (max 7.000 s)"), "{report}");

    let good = dir.join("good.vtt");
    std::fs::write(&good, "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nHello there,\nmy friend.\n").unwrap();
    let o = bin().args([OsStr::new("check"), good.as_os_str()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));

    let garbage = dir.join("garbage.srt");
    std::fs::write(&garbage, "this is not\na subtitle file\n").unwrap();
    let o = bin().args([OsStr::new("check"), garbage.as_os_str()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.lines().count() == 1 && err.contains("garbage.srt"), "{err}");
}

#[test]
fn webvtt_output_keeps_line_breaks_and_parses_as_webvtt() {
    let dir = tempdir("vtt");
    let (vtt, _) = subtitle_to(&sample("cut.mp4"), &dir, "t.vtt", &[]);
    let text = std::fs::read_to_string(&vtt).unwrap();
    assert!(text.starts_with("WEBVTT\n\n"), "{text}");
    // Blocks: a timing line, then 1-2 text lines, no blank line inside.
    for block in text.split("\n\n").skip(1).filter(|b| !b.trim().is_empty()) {
        let lines: Vec<&str> = block.lines().collect();
        assert!(lines[0].contains(" --> "), "{block}");
        assert!((2..=3).contains(&lines.len()), "{block}");
    }
    let cues = read(&vtt).unwrap();
    assert!(cues.iter().any(|c| c.lines.len() == 2), "{cues:?}");
    assert_eq!(hard_violations(&cues, 25.0), Vec::<String>::new());
}

#[test]
fn a_long_file_keeps_the_rules_throughout() {
    let f = sample("long-1.mp4");
    if !f.is_file() {
        let ok = std::process::Command::new("bash")
            .args([root().join("samples/make.sh").to_str().unwrap(), "long", "1"])
            .status()
            .unwrap();
        assert!(ok.success(), "samples/make.sh long 1 failed");
    }
    let dir = tempdir("long");
    let (out, _) = subtitle_to(&f, &dir, "long.srt", &[]);
    let cues = read(&out).unwrap();
    assert!(cues.len() >= 12, "{} cues for a minute of speech", cues.len());
    assert_eq!(hard_violations(&cues, 25.0), Vec::<String>::new());
    let hyp = subtitle::eval::subtitle_text(&std::fs::read_to_string(&out).unwrap());
    let e = subtitle::eval::errors(&std::fs::read_to_string(sample("long-1.mp4.txt")).unwrap(), &hyp);
    assert!(e.wer() <= 0.25, "WER {:.1}%", 100.0 * e.wer());
}
