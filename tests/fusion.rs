//! The fusion adapter: gated cross-attention over pictures (DINOv2) and context text in
//! Whisper's decoder, `subtitle train` and `--adapter`. Real tiny.en and DINOv2 weights
//! (`models/fetch.sh tiny.en dinov2`), the shared clips and the generated slide videos.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;

/// Runs `subtitle` with `args`, asserting success.
fn ok(args: &[&OsStr]) {
    let o = run(args);
    assert!(o.status.success(), "subtitle {args:?} failed: {}", stderr(&o));
}

/// `subtitle train` on the three test slide videos into `out`, with `extra` flags.
fn train_on_slides(out: &Path, extra: &[&str]) {
    let data = sample("slides");
    let mut args: Vec<&OsStr> =
        vec![OsStr::new("train"), OsStr::new("--data"), data.as_os_str(), OsStr::new("--out"), out.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    args.push(OsStr::new("-q"));
    ok(&args)
}

/// An untrained adapter (zero gates, random projections and blocks), made once.
fn untrained() -> &'static Path {
    static A: OnceLock<PathBuf> = OnceLock::new();
    A.get_or_init(|| {
        let out = tempdir("untrained").join("a0.safetensors");
        train_on_slides(&out, &["--epochs", "0"]);
        out
    })
}

/// JSON output (segments, tokens, probabilities, cues) of `input` with `extra`, without its
/// run statistics, and the pictures the image encoder encoded (from those statistics).
fn json(input: &Path, extra: &[&OsStr]) -> (String, usize) {
    let dir = tempdir("json");
    let out = dir.join("out.json");
    let mut args: Vec<&OsStr> = vec![input.as_os_str(), OsStr::new("-o"), out.as_os_str()];
    args.extend_from_slice(extra);
    ok(&args);
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stats = doc.as_object_mut().unwrap().remove("stats").expect("run statistics in the JSON");
    let pictures = stats["pictures"].as_u64().expect("stats.pictures") as usize;
    (serde_json::to_string_pretty(&doc).unwrap(), pictures)
}

#[test]
fn untrained_gates_reproduce_the_audio_only_tokens() {
    let adapter = untrained();
    let real = shared_real();
    let glossary = tempdir("glossary").join("terms.txt");
    std::fs::write(&glossary, "Ask not\nfellow Americans\nPrinting\nCaxton\n").unwrap();
    let mut with_pictures = 0;
    let clips = ["mp4/jfk.mp4", "mp4/lj_LJ001-0001.mp4", "mp4/lj_LJ001-0003.mp4"];
    for clip in clips.iter().map(|c| real.join(c)).chain([sample("slides/slides-0.mp4")]) {
        // The memory holds the clip's pictures and the glossary's terms; with zero gates the
        // fused decoder must give the same tokens and probabilities, to the last digit.
        let ctx = [OsStr::new("--context"), glossary.as_os_str()];
        let (plain, _) = json(&clip, &ctx);
        let (fused, pictures) = json(&clip, &[ctx[0], ctx[1], OsStr::new("--adapter"), adapter.as_os_str()]);
        assert_eq!(plain, fused, "{}: an untrained adapter changed the output", clip.display());
        with_pictures += pictures;
        // And with nothing in the memory: audio only.
        let (plain, _) = json(&clip, &[OsStr::new("--ocr"), OsStr::new("off")]);
        let (fused, _) =
            json(&clip, &[OsStr::new("--ocr"), OsStr::new("off"), OsStr::new("--adapter"), adapter.as_os_str()]);
        assert_eq!(plain, fused, "{}: audio only", clip.display());
    }
    assert!(with_pictures >= 3, "the image encoder ran on {with_pictures} pictures: the fused path was not exercised");
}

#[test]
fn open_gates_change_the_output_and_a_broken_adapter_is_an_error() {
    use candle_core::{Device, Tensor};
    let adapter = untrained();
    let mut tensors = candle_core::safetensors::load(adapter, &Device::Cpu).unwrap();
    let gates: Vec<String> = tensors.keys().filter(|k| k.contains(".gate_")).cloned().collect();
    assert_eq!(gates.len(), 8, "two gates in each of tiny.en's four decoder layers");
    for g in &gates {
        tensors.insert(g.clone(), Tensor::new(&[1.5f32], &Device::Cpu).unwrap());
    }
    let dir = tempdir("open");
    let open = dir.join("open.safetensors");
    candle_core::safetensors::save(&tensors, &open).unwrap();
    let video = sample("slides/slides-0.mp4");
    let out = dir.join("out.srt");
    // One line naming the adapter, exit 2, no output file.
    let refused = |adapter: &Path, reason: &str| {
        let o =
            run(&[video.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--adapter"), adapter.as_os_str()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let name = adapter.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name) && err.contains(reason) && err.lines().count() == 1, "{err}");
        assert!(!out.exists());
    };
    // Made here, not by `subtitle train`: refused until its SHA-256 is recorded.
    refused(&open, "SHA256SUMS");
    subtitle::weights::record_checksum(&open).unwrap();
    let (plain, _) = json(&video, &[]);
    let (fused, _) = json(&video, &[OsStr::new("--adapter"), open.as_os_str()]);
    assert_ne!(plain, fused, "gates at tanh(1.5) should change the decoding");

    // A file that is not an adapter.
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"not an adapter").unwrap();
    subtitle::weights::record_checksum(&bad).unwrap();
    refused(&bad, "not an adapter");
    // An adapter changed since its SHA-256 was recorded.
    let mut bytes = std::fs::read(&open).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&open, bytes).unwrap();
    refused(&open, "does not match");
}

/// `subtitle train` on the three test slide videos: the loss goes down; a run stopped after one
/// epoch and resumed ends where an uninterrupted run does, to the byte.
#[test]
fn training_lowers_the_loss_and_resumes_exactly() {
    let dir = tempdir("train");
    let train = |out: &Path, epochs: &str, resume: bool| {
        let mut args = vec!["--epochs", epochs, "--batch", "1", "--lr", "0.001", "--val-split", "0"];
        if resume {
            args.push("--resume");
        }
        train_on_slides(out, &args)
    };
    // The history the checkpoint beside the adapter keeps: epoch and training loss of each.
    let history = |out: &Path| -> Vec<(u64, f64)> {
        let ckpt = out.with_file_name(format!("{}.ckpt.json", out.file_name().unwrap().to_string_lossy()));
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ckpt).unwrap()).unwrap();
        doc["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["epoch"].as_u64().unwrap(), e["train_loss"].as_f64().unwrap()))
            .collect()
    };
    let straight = dir.join("straight.safetensors");
    train(&straight, "3", false);
    let losses = history(&straight);
    assert_eq!(losses.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(losses[2].1 < losses[0].1 - 0.05, "training loss did not fall: {losses:?}");

    let resumed = dir.join("resumed.safetensors");
    train(&resumed, "1", false);
    assert_eq!(history(&resumed).len(), 1);
    train(&resumed, "3", true);
    assert_eq!(history(&resumed), losses, "a resumed run has the history of an uninterrupted one");
    assert_eq!(std::fs::read(&straight).unwrap(), std::fs::read(&resumed).unwrap());
}
