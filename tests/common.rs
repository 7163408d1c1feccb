//! Shared helpers for the integration tests: the built binary, the real models and the media that
//! `samples/make.sh` generates.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_subtitle"));
    c.current_dir(root());
    c
}

/// The directory holding tiny.en (and base when fetched). Tests need the real weights: run
/// `models/fetch.sh tiny.en` first (the README's setup command does).
pub fn models() -> PathBuf {
    let dir = std::env::var_os("SUBTITLE_MODELS").map(PathBuf::from).unwrap_or_else(|| root().join("models"));
    assert!(
        dir.join("tiny.en/model.safetensors").is_file(),
        "tiny.en is missing from {}: run models/fetch.sh tiny.en",
        dir.display()
    );
    dir
}

/// Generated media (`samples/make.sh`), made once per test run if missing.
pub fn sample(name: &str) -> PathBuf {
    static MAKE: Once = Once::new();
    let out = root().join("samples/out");
    MAKE.call_once(|| {
        if !out.join("music.mp4").is_file() {
            let ok =
                Command::new("bash").arg(root().join("samples/make.sh")).status().expect("running samples/make.sh");
            assert!(ok.success(), "samples/make.sh failed");
        }
    });
    out.join(name)
}

/// `../shared/data/real`, beside the checkout.
pub fn shared_real() -> PathBuf {
    let d = root().join("../shared/data/real");
    assert!(d.join("manifest.tsv").is_file(), "../shared/data/real is missing");
    d
}

pub fn run(args: &[&OsStr]) -> Output {
    bin().env("SUBTITLE_MODELS", models()).args(args).output().expect("running subtitle")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory, unique to this process and call (tests run in parallel).
pub fn tempdir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("subtitle-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Transcribes `input` to SRT with tiny.en and returns the cue text.
pub fn transcribe(input: &Path, extra: &[&str]) -> String {
    let dir = tempdir(&format!("tr-{}", input.file_name().unwrap().to_string_lossy()));
    let out = dir.join("out.srt");
    let mut args: Vec<&OsStr> = vec![input.as_os_str(), OsStr::new("-o"), out.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let o = run(&args);
    assert!(o.status.success(), "{} failed: {}", input.display(), stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    subtitle::eval::subtitle_text(&text)
}

/// tiny.en loaded for inference on the CPU, and its tokenizer.
pub fn tiny() -> (subtitle::model::LoadedModel, subtitle::model::WhisperTokenizer) {
    let dir = models().join("tiny.en");
    let dev = candle_core::Device::Cpu;
    let m = subtitle::weights::load_whisper(&dir, &dev, subtitle::weights::LoadOptions::inference(&dev))
        .expect("tiny.en (models/fetch.sh tiny.en)");
    let tok = subtitle::weights::load_tokenizer(&dir.join("tokenizer.json")).expect("tokenizer");
    (m, tok)
}

/// `clip` played `times` over into `out` (a long input made of real speech).
pub fn looped(clip: &Path, times: u32, out: &Path) {
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-stream_loop", &times.to_string(), "-i"])
        .arg(clip)
        .arg(out)
        .status()
        .unwrap();
    assert!(ok.success(), "ffmpeg looping {}", clip.display());
}
