//! On-screen text and `--context`: names and terms shown on slides (or listed in a file) are
//! spelled right. Real tiny.en weights, slide videos from `samples/slides.py` (10 dB pink noise).

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::*;
use subtitle::context::{Context, ContextConfig};
use subtitle::model::WhisperTokenizer;
use subtitle::time::{Span, Ts};

/// Slide video `k` of the set in `samples/out/{set}` (`slides` at 720p, `slides-1080` the same
/// videos at 1080p).
fn slides_in(set: &str, k: usize) -> PathBuf {
    let v = sample(&format!("{set}/slides-{k}.mp4"));
    assert!(v.is_file(), "{} is missing: run samples/make.sh", v.display());
    v
}

/// Names and terms of a slide video spelled right in `hyp` (every word, in order).
fn terms_right(video: &Path, hyp: &str) -> (usize, usize) {
    let norm = |s: &str| format!(" {} ", subtitle::eval::normalize(s).join(" "));
    let hyp = norm(hyp);
    let terms = std::fs::read_to_string(video.with_extension("terms")).unwrap();
    let right = terms.lines().filter(|t| hyp.contains(&norm(t))).count();
    (right, terms.lines().count())
}

/// Word errors and reference words over the test set, and slide terms right, with `extra` flags.
fn score(extra: &[&str], context: bool) -> (f64, usize, usize) {
    score_in("slides", extra, context)
}

fn score_in(set: &str, extra: &[&str], context: bool) -> (f64, usize, usize) {
    let (mut errors, mut words, mut right, mut total) = (0, 0, 0, 0);
    for k in 0..3 {
        let v = slides_in(set, k);
        let terms = v.with_extension("terms");
        let mut args: Vec<&str> = extra.to_vec();
        if context {
            args.extend(["--context", terms.to_str().unwrap()]);
        }
        let hyp = transcribe(&v, &args);
        let reference = std::fs::read_to_string(v.with_extension("txt")).unwrap();
        let e = subtitle::eval::errors(&reference, &hyp);
        errors += e.total();
        words += subtitle::eval::normalize(&reference).len();
        let (r, t) = terms_right(&v, &hyp);
        right += r;
        total += t;
        eprintln!("{extra:?} context={context} slides-{k}: WER {:.1}%, terms {r}/{t}: {hyp}", 100.0 * e.wer());
    }
    (errors as f64 / words as f64, right, total)
}

#[test]
fn on_screen_text_fixes_names_and_terms() {
    let (wer_off, right_off, total) = score(&["--ocr", "off"], false);
    let (wer_on, right_on, _) = score(&[], false);
    eprintln!(
        "audio only: WER {:.1}%, terms {right_off}/{total}; on-screen text: WER {:.1}%, terms {right_on}/{total}",
        100.0 * wer_off,
        100.0 * wer_on
    );
    assert!(wer_on < 0.7 * wer_off, "WER {:.1}% with on-screen text, {:.1}% without", 100.0 * wer_on, 100.0 * wer_off);
    assert!(right_on >= right_off + total / 3, "terms right: {right_on} with on-screen text, {right_off} without");
}

/// The same slides at 1080p (stills from keyframes and the groups of pictures where a slide
/// changes) are read as well as at 720p.
#[test]
fn on_screen_text_reads_1080p_slides_as_well() {
    let (wer_720, right_720, total) = score_in("slides", &[], false);
    let (wer_1080, right_1080, _) = score_in("slides-1080", &[], false);
    eprintln!(
        "720p: WER {:.1}%, terms {right_720}/{total}; 1080p: WER {:.1}%, terms {right_1080}/{total}",
        100.0 * wer_720,
        100.0 * wer_1080
    );
    assert!(right_1080 + 1 >= right_720, "terms right: {right_1080} at 1080p, {right_720} at 720p");
}

#[test]
fn context_file_fixes_names_and_terms() {
    let (wer_off, right_off, total) = score(&["--ocr", "off"], false);
    let (wer_ctx, right_ctx, _) = score(&["--ocr", "off"], true);
    assert!(wer_ctx < 0.7 * wer_off, "WER {:.1}% with --context, {:.1}% without", 100.0 * wer_ctx, 100.0 * wer_off);
    assert!(right_ctx >= right_off + total / 3, "terms right: {right_ctx} with --context, {right_off} without");
}

#[test]
fn no_words_on_screen_changes_nothing() {
    // The test pattern shows digits that change every second: no still has words.
    let v = sample("s1.mp4");
    assert_eq!(transcribe(&v, &["--beam", "1"]), transcribe(&v, &["--beam", "1", "--ocr", "off"]));
}

/// A still without a row of letters is not given to Tesseract; a slide's are.
#[test]
fn stills_without_letters_are_passed_over_and_slides_are_read() {
    let dir = tempdir("stills-read");
    let stats = |video: &Path| {
        let out = dir.join("out.json");
        let o =
            run(&[video.as_os_str(), "-o".as_ref(), out.as_os_str(), "--beam".as_ref(), "1".as_ref(), "-q".as_ref()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let count = |key: &str| doc["stats"][key].as_u64().unwrap_or_else(|| panic!("stats.{key} in {doc}"));
        (count("stills_read"), count("stills_without_text"))
    };
    let (read, without) = stats(&sample("s1.mp4"));
    assert!(read >= 1 && without == read, "test pattern: {without} of {read} stills passed over");
    let (read, without) = stats(&slides_in("slides", 0));
    assert!(read >= 2 && without == 0, "slides: {without} of {read} stills passed over");
}

/// A phone's portrait video is stored on its side, with the turn that shows it upright in its
/// display matrix (as FFmpeg's players and our source read it): its slides are read upright, as
/// well as the same video stored upright (on their side, Tesseract read no letters in them).
#[test]
fn slides_of_a_video_stored_on_its_side_are_read_upright() {
    let upright = slides_in("slides", 0);
    let dir = tempdir("stored-on-its-side");
    let ffmpeg = |args: &[&OsStr]| {
        let o = std::process::Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (right, total) = terms_right(&upright, &transcribe(&upright, &["--beam", "1"]));
    // Turned a quarter counterclockwise (the display matrix turns it back clockwise), and
    // clockwise.
    for (transpose, rotate) in [("2", "270"), ("1", "90")] {
        let stored = dir.join(format!("stored-{transpose}.mp4"));
        let shown = dir.join(format!("slides-{rotate}.mp4"));
        let vf = format!("transpose={transpose}");
        ffmpeg(&[
            OsStr::new("-i"),
            upright.as_os_str(),
            OsStr::new("-vf"),
            OsStr::new(&vf),
            OsStr::new("-c:a"),
            OsStr::new("copy"),
            stored.as_os_str(),
        ]);
        let tag = format!("rotate={rotate}");
        ffmpeg(&[
            OsStr::new("-i"),
            stored.as_os_str(),
            OsStr::new("-c"),
            OsStr::new("copy"),
            OsStr::new("-metadata:s:v:0"),
            OsStr::new(&tag),
            shown.as_os_str(),
        ]);
        let out = dir.join("out.json");
        let o =
            run(&[shown.as_os_str(), "-o".as_ref(), out.as_os_str(), "--beam".as_ref(), "1".as_ref(), "-q".as_ref()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let (read, without) =
            (doc["stats"]["stills_read"].as_u64().unwrap(), doc["stats"]["stills_without_text"].as_u64().unwrap());
        assert!(read >= 2 && without == 0, "{tag}: {without} of {read} stills passed over");
        let text: Vec<&str> = doc["segments"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect();
        let (r, _) = terms_right(&upright, &text.join(" "));
        eprintln!("{tag}: terms {r}/{total}, upright {right}/{total}");
        assert!(r >= right, "{tag}: {r} of {total} terms right, {right} upright");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tokenizer() -> WhisperTokenizer {
    subtitle::weights::load_tokenizer(&models().join("tiny.en/tokenizer.json")).unwrap()
}

fn s(t: f64) -> Ts {
    Ts::from_secs_f64(t)
}

#[test]
fn prompt_takes_nearest_screen_text_and_rare_words_first() {
    let tok = tokenizer();
    let mut c = Context::new(ContextConfig { max_tokens: 120, screen_lookback_s: 20.0 });
    c.push_screen(s(0.0), vec!["Results".into(), "Siobhan Fitzgibbon".into()]);
    c.push_screen(s(40.0), vec!["Summary".into(), "zooxanthellae".into()]);
    c.push_screen(s(100.0), vec!["Kyrgyzstan".into()]);
    // A window at 45-75 s: the slide from 40 s is on screen, the one before left 5 s before.
    let terms = c.terms(Span::new(s(45.0), s(75.0)), &tok);
    assert_eq!(terms, vec!["zooxanthellae".to_string(), "Siobhan Fitzgibbon".to_string()], "common words left out");
    // Long after: only what was on screen since (the lookback is 20 s).
    assert_eq!(c.terms(Span::new(s(130.0), s(160.0)), &tok), vec!["Kyrgyzstan".to_string()]);
    let prompt = tok.decode(&c.prompt(Span::new(s(45.0), s(75.0)), &tok));
    assert_eq!(prompt, " zooxanthellae, Siobhan Fitzgibbon.");
}

#[test]
fn prompt_keeps_to_its_token_budget_and_forgets_old_text() {
    let tok = tokenizer();
    let mut c = Context::new(ContextConfig { max_tokens: 12, screen_lookback_s: 20.0 });
    c.push_screen(
        s(0.0),
        vec!["Bartholomew Featherstonehaugh".into(), "phosphofructokinase".into(), "Djibouti".into()],
    );
    let prompt = c.prompt(Span::new(s(0.0), s(30.0)), &tok);
    assert!(!prompt.is_empty() && prompt.len() <= 12, "{} tokens: {}", prompt.len(), tok.decode(&prompt));
    c.push_screen(s(200.0), vec![]);
    c.forget_before(s(300.0));
    assert!(c.is_empty(), "text that left the screen long ago is forgotten");
}

#[test]
fn context_file_lines_are_terms_and_scripts_give_their_rare_words() {
    let tok = tokenizer();
    let dir = tempdir("context");
    let f = dir.join("glossary.txt");
    std::fs::write(
        &f,
        "# speakers\nHrafnhildur Jonsdottir\nthermohaline circulation,\n\n\
         Today the committee met in the old hall and Ngozi Chukwuemeka presented the findings on myxomatosis.\n",
    )
    .unwrap();
    let mut c = Context::new(ContextConfig::default());
    c.add_file(&f, &tok).unwrap();
    let terms = c.terms(Span::new(s(0.0), s(30.0)), &tok);
    for want in ["Hrafnhildur Jonsdottir", "thermohaline circulation", "Ngozi", "Chukwuemeka", "myxomatosis"] {
        assert!(terms.iter().any(|t| t == want), "{want} missing from {terms:?}");
    }
    for common in ["committee", "Today", "hall", "speakers"] {
        assert!(!terms.iter().any(|t| t.contains(common)), "{common} in {terms:?}");
    }
    let missing = Context::new(ContextConfig::default()).add_file(&dir.join("nope.txt"), &tok).unwrap_err();
    assert!(missing.to_string().contains("nope.txt"), "{missing}");
}
