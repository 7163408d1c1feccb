//! Bad input: one line naming the file and the reason, exit 2, no output file, nothing the user
//! had is overwritten, no panic.

mod common;

use std::ffi::OsStr;

use std::path::Path;

use common::*;

/// Runs on `input` into a fresh directory whose output file already holds the user's work.
fn fails_cleanly(input: &Path, extra: &[&str], expect_name: &str, expect_reason: &str) {
    let dir = tempdir(&format!("bad-{}", input.file_name().unwrap().to_string_lossy()));
    let existing = dir.join("existing.srt");
    std::fs::write(&existing, "1\n00:00:00,000 --> 00:00:01,000\nuser's work\n").unwrap();
    let fresh = dir.join("fresh.srt");
    for out in [&existing, &fresh] {
        let mut args: Vec<&OsStr> = vec![input.as_os_str(), OsStr::new("-o"), out.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", input.display());
        assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
        assert!(err.contains(expect_name), "{err} does not name {expect_name}");
        assert!(err.contains(expect_reason), "{err} does not say {expect_reason}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "1\n00:00:00,000 --> 00:00:01,000\nuser's work\n");
    assert!(!fresh.exists(), "a failed run left {}", fresh.display());
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

#[test]
fn missing_file() {
    fails_cleanly(&sample("does-not-exist.mp4"), &[], "does-not-exist.mp4", "no such file");
}

#[test]
fn zero_byte_file() {
    fails_cleanly(&sample("empty.mp4"), &[], "empty.mp4", "empty");
}

#[test]
fn truncated_mp4() {
    fails_cleanly(&sample("truncated.mp4"), &[], "truncated.mp4", "truncated");
}

/// The head of a real MP4 (its index says 11 s, its data stops after 1 s): subtitles of what is
/// there and a warning naming the file and how far it got; with `--strict`, an error and no
/// output.
#[test]
fn an_input_that_ends_before_its_stated_length_is_reported() {
    let dir = tempdir("ends-early");
    let head = dir.join("upload.mp4");
    let bytes = std::fs::read(shared_real().join("mp4/jfk.mp4")).unwrap();
    std::fs::write(&head, &bytes[..60_000]).unwrap();
    let out = dir.join("upload.srt");
    let o = run(&[head.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--beam"), OsStr::new("1")]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let warning = err.lines().find(|l| l.starts_with("warning:")).unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(warning.contains("upload.mp4") && warning.contains("ends at 1.0 s of the 11.0 s"), "{warning}");
    assert!(out.is_file());
    std::fs::remove_file(&out).unwrap();
    let o = run(&[head.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--strict")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = err.lines().last().unwrap();
    assert!(line.starts_with("error:") && line.contains("upload.mp4") && line.contains("truncated"), "{err}");
    assert!(!out.exists(), "--strict wrote {}", out.display());
    // The whole file: no warning.
    let o = run(&[
        shared_real().join("mp4/jfk.mp4").as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--beam"),
        OsStr::new("1"),
    ]);
    assert!(o.status.success() && !stderr(&o).contains("warning:"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Spanish and German speech through the English-only default model: subtitles of what it heard,
/// and a note that says the speech does not sound like English, with the model that would do
/// better; English speech gets no such note.
#[test]
fn speech_the_model_does_not_know_is_noted_with_what_would_do_better() {
    let dir = tempdir("unknown-language");
    let out = dir.join("out.srt");
    for (clip, noted) in [("pv_test_es", true), ("pv_test_de", true), ("pv_test_en", false), ("jfk", false)] {
        let input = shared_real().join(format!("mp4/{clip}.mp4"));
        let o = run(&[input.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--ocr"), OsStr::new("off")]);
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        let note = err.lines().find(|l| l.contains("does not sound like English"));
        assert_eq!(note.is_some(), noted, "{clip}: {err}");
        if let Some(note) = note {
            assert!(note.contains(&format!("{clip}.mp4")) && note.contains("--model base"), "{note}");
        }
        std::fs::remove_file(&out).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_file_named_mp4() {
    fails_cleanly(&sample("text.mp4"), &[], "text.mp4", "not a media file");
}

#[test]
fn video_without_audio() {
    fails_cleanly(&sample("no-audio.mp4"), &[], "no-audio.mp4", "no audio stream");
}

#[test]
fn unknown_model() {
    fails_cleanly(&sample("s1.wav"), &["--model", "no-such-model"], "no-such-model", "no such model");
}

#[test]
fn corrupt_and_truncated_model_weights() {
    let good = models().join("tiny.en");
    let bytes = std::fs::read(good.join("model.safetensors")).unwrap();
    for (name, data) in
        [("truncated", bytes[..bytes.len() / 3].to_vec()), ("garbage", b"\xff\x00not safetensors at all".repeat(100))]
    {
        let dir = tempdir(&format!("model-{name}"));
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(good.join(f), dir.join(f)).unwrap();
        }
        std::fs::write(dir.join("model.safetensors"), data).unwrap();
        fails_cleanly(
            &sample("s1.wav"),
            &["--model", dir.to_str().unwrap()],
            "model.safetensors",
            "corrupt or truncated",
        );
    }
}

#[test]
fn unwritable_output_path() {
    let o = run(&[sample("s1.wav").as_os_str(), OsStr::new("-o"), OsStr::new("/nonexistent-dir/out.srt")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent-dir/out.srt") && err.contains("cannot write"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
}

#[test]
fn bad_pipeline_config() {
    let dir = tempdir("badcfg");
    let cfg = dir.join("p.toml");
    std::fs::write(&cfg, "[channels]\ndecode_to_preprocess = { capacity = 0 }\n").unwrap();
    fails_cleanly(&sample("s1.wav"), &["--pipeline", cfg.to_str().unwrap()], "p.toml", "missing field");
}

#[test]
fn english_only_model_refuses_other_languages() {
    fails_cleanly(&sample("s1.wav"), &["--language", "de"], "tiny.en", "English-only");
}

#[test]
fn missing_or_binary_context_file() {
    fails_cleanly(&sample("s1.mp4"), &["--context", "no-such-glossary.txt"], "no-such-glossary.txt", "cannot read");
    fails_cleanly(&sample("s1.mp4"), &["--context", "samples/out/s1.wav"], "s1.wav", "not UTF-8");
}

/// Several inputs: a bad one fails alone, with its one line, and the others are transcribed;
/// the run exits 2 and says how many failed; the bad inputs' outputs the user had stay as they
/// were.
#[test]
fn a_bad_input_among_several_does_not_stop_the_others() {
    let real = shared_real();
    let dir = tempdir("several");
    let work = "1\n00:00:00,000 --> 00:00:01,000\nuser's work\n";
    std::fs::write(dir.join("truncated.srt"), work).unwrap();
    let inputs =
        [real.join("mp4/jfk.mp4"), sample("truncated.mp4"), sample("no-audio.mp4"), real.join("mp4/lj_LJ001-0001.mp4")];
    let mut args: Vec<&OsStr> = inputs.iter().map(|p| p.as_os_str()).collect();
    args.extend(["--output-dir", dir.to_str().unwrap(), "--beam", "1", "--jobs", "2"].map(OsStr::new));
    let o = run(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 3, "a line per bad input and the count: {err}");
    assert!(lines.iter().any(|l| l.contains("truncated.mp4") && l.contains("truncated")), "{err}");
    assert!(lines.iter().any(|l| l.contains("no-audio.mp4") && l.contains("no audio stream")), "{err}");
    assert!(lines[2].contains("2 of 4 inputs failed"), "{err}");
    for id in ["jfk", "lj_LJ001-0001"] {
        let srt = std::fs::read_to_string(dir.join(format!("{id}.srt"))).unwrap();
        assert!(subtitle::eval::subtitle_text(&srt).split_whitespace().count() > 10, "{id}: {srt}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("truncated.srt")).unwrap(), work);
    assert!(!dir.join("no-audio.srt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Several inputs cannot share one `-o`, nor two inputs one output name.
#[test]
fn several_inputs_need_their_own_outputs() {
    let (a, b) = (sample("s1.mp4"), sample("s1.mp3"));
    let o = run(&[a.as_os_str(), b.as_os_str(), OsStr::new("-o"), OsStr::new("x.srt")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--output-dir"), "{}", stderr(&o));
    let o = run(&[a.as_os_str(), b.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("would both write") && stderr(&o).contains("s1.srt"), "{}", stderr(&o));
}
