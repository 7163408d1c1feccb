//! Real-world video: 1080p clips with known cuts (`samples/make.sh`: `samples/out/video/`), one
//! encoded with keyframes at the cuts (as encoders' scene-cut detection puts them) and one with a
//! fixed GOP and none at the cuts (as streaming encoders write), two with x264's own keyframes
//! over a zooming fractal, one with a cut on a keyframe of the encoder's beat, one with a
//! dissolve, and one handheld shot as a phone records it. Every cut is found, to the frame, with
//! nothing found where there is none; and the video is decoded only as much as that needs.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::*;

/// Shot changes (seconds) and video statistics of `input`'s JSON output, with `extra` options.
fn shots(input: &Path, extra: &[&OsStr]) -> (Vec<f64>, serde_json::Value) {
    let (cuts, stats) = shots_and_stats(input, extra);
    (cuts, stats["video"].clone())
}

/// Shot changes (seconds) and all the statistics of `input`'s JSON output.
fn shots_and_stats(input: &Path, extra: &[&OsStr]) -> (Vec<f64>, serde_json::Value) {
    let doc = output(input, extra);
    (cut_times(&doc), doc["stats"].clone())
}

/// `input`'s JSON output (tiny.en greedy), with `extra` options.
fn output(input: &Path, extra: &[&OsStr]) -> serde_json::Value {
    let dir = tempdir(&format!("shots-{}", input.file_name().unwrap().to_string_lossy()));
    let out = dir.join("out.json");
    let mut args = vec![input.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--beam"), OsStr::new("1")];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}: {}", input.display(), stderr(&o));
    let doc = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    doc
}

/// The shot changes of a JSON output, in seconds.
fn cut_times(doc: &serde_json::Value) -> Vec<f64> {
    doc["shot_changes"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect()
}

/// The cut times listed beside `clip` (its `.cuts` file).
fn known_cuts(clip: &Path) -> Vec<f64> {
    std::fs::read_to_string(clip.with_extension("cuts")).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Precision and recall of `found` against `truth`, a cut matching within one frame (25 fps).
fn score(found: &[f64], truth: &[f64]) -> (f64, f64) {
    let frame = 0.040 + 1e-6;
    let hit = |t: &f64, set: &[f64]| set.iter().any(|s| (s - t).abs() <= frame);
    let precision = found.iter().filter(|t| hit(t, truth)).count() as f64 / found.len().max(1) as f64;
    let recall = truth.iter().filter(|t| hit(t, found)).count() as f64 / truth.len().max(1) as f64;
    (precision, recall)
}

/// Makes `clip`: `each` seconds of one lavfi source, then of another, with a tone, encoded with
/// `encode` (the video's codec options, then the audio's).
fn two_scenes(clip: &Path, first: &str, second: &str, each: u32, encode: &[&str]) {
    let trim = |i: usize, to: &str| format!("[{i}:v]trim=0:{each},setpts=PTS-STARTPTS,format=yuv420p[{to}]");
    let graph = format!("{};{};[a][b]concat=n=2:v=1[v]", trim(0, "a"), trim(1, "b"));
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", first, "-f", "lavfi", "-i", second, "-f", "lavfi", "-i"])
        .arg(format!("sine=f=440:d={}", 2 * each))
        .args(["-filter_complex", &graph, "-map", "[v]", "-map", "2:a"])
        .args(encode)
        .arg("-shortest")
        .arg(clip)
        .output()
        .expect("running ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

/// Checks `name`'s cuts against its known ones; its video statistics.
fn check(name: &str) -> serde_json::Value {
    let clip = sample(&format!("video/{name}.mp4"));
    let truth = known_cuts(&clip);
    let (found, video) = shots(&clip, &[]);
    let (precision, recall) = score(&found, &truth);
    eprintln!("{name}: found {found:?}, precision {precision:.2}, recall {recall:.2}, {video}");
    assert!(precision >= 0.95 && recall >= 0.95, "{name}: found {found:?}, cuts at {truth:?}");
    // Far fewer frames decoded than the clip has (25 fps).
    let frames = video["frames_decoded"].as_u64().unwrap() as f64;
    let duration = 43.2 * 25.0;
    assert!(frames < 0.6 * duration, "{name}: {frames} of {duration} frames decoded: {video}");
    assert!(video["keyframes"].as_u64().unwrap() >= truth.len() as u64 / 2, "{video}");
    video
}

/// Keyframes at the cuts: each cut is placed at its keyframe, and almost nothing else is
/// decoded.
#[test]
fn cuts_at_keyframes_are_found_to_the_frame() {
    check("cuts-keys");
}

/// An encoder that keys its scene cuts (keyframes off its beat, as the container's index shows):
/// a group of pictures is decoded only where the keyframes cannot tell whether a cut lies inside
/// (two shots of like colours at a keyframe), never the last one for want of a keyframe after it.
#[test]
fn an_encoder_that_keys_its_cuts_has_few_groups_of_pictures_decoded() {
    let clip = sample("video/cuts-keys.mp4");
    let (_, video) = shots(&clip, &[]);
    assert!(video["gops_decoded"].as_u64().unwrap() <= 2, "{video}");
}

/// One handheld shot as a phone records it (`handheld.mp4`: a keyframe every 30 frames, each
/// some 450 kB with the picture's detail and noise, bursts where the motion changes, colours that
/// drift as the camera pans): no cut found, keyframes taken for their bytes every 4.8 s, not 2.4,
/// and no group of pictures decoded for the camera's motion, only the last (no keyframe follows
/// it). Before: 18 keyframes, 3 GOPs and 60 frames decoded.
#[test]
fn a_handheld_shot_is_not_cut_and_costs_few_keyframes() {
    let clip = sample("video/handheld.mp4");
    let (found, video) = shots(&clip, &[]);
    assert!(found.is_empty(), "cuts found in one shot: {found:?}");
    let count = |k: &str| video[k].as_u64().unwrap();
    assert!(count("keyframes") <= 10, "{video}");
    assert!(count("gops_decoded") <= 1 && count("frames_decoded") <= 30, "{video}");
}

/// A fixed GOP, no keyframe at the cuts: the groups of pictures that hold one are decoded, and
/// the cut placed to the frame there.
#[test]
fn cuts_between_keyframes_are_found_to_the_frame() {
    check("cuts-fixed");
}

/// With `[video] exact_cuts = false`, a cut between keyframes is placed at the first reference
/// frame that shows it, and no GOP is decoded a second time: every cut of `cuts-fixed.mp4` found
/// at most 3 frames late, with fewer frames decoded than when placed to the frame.
#[test]
fn cuts_placed_at_reference_frames_cost_fewer_frames_and_come_at_most_three_frames_late() {
    let dir = tempdir("reference-cuts");
    let pipeline = dir.join("reference-cuts.toml");
    let text = subtitle::config::DEFAULT_FILE_PIPELINE.replace("exact_cuts = true", "exact_cuts = false");
    assert_ne!(text, subtitle::config::DEFAULT_FILE_PIPELINE);
    std::fs::write(&pipeline, text).unwrap();
    let clip = sample("video/cuts-fixed.mp4");
    let truth = known_cuts(&clip);
    let (exact, video) = shots(&clip, &[]);
    let (found, video_coarse) = shots(&clip, &[OsStr::new("--pipeline"), pipeline.as_os_str()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(score(&exact, &truth), (1.0, 1.0), "found {exact:?}, cuts at {truth:?}: {video}");
    assert_eq!(found.len(), truth.len(), "found {found:?}, cuts at {truth:?}: {video_coarse}");
    for (f, t) in found.iter().zip(&truth) {
        assert!((0.0..=3.0 * 0.04 + 1e-3).contains(&(f - t)), "found {found:?}, cuts at {truth:?}");
    }
    assert_ne!(found, exact, "some cut inside a GOP is placed later than its frame");
    let frames = |v: &serde_json::Value| v["frames_decoded"].as_u64().unwrap();
    assert!(frames(&video_coarse) < frames(&video), "{video_coarse} {video}");
}

/// x264's own keyframes over a fractal zoomed into for 12 s between two cuts: its colours cycle,
/// and x264 keys a scene cut inside it (at 10.72 s). The frames before that keyframe show the zoom
/// going on: the two cuts are found, and nothing at the keyframe.
#[test]
fn a_keyframe_inside_a_zoom_is_not_a_cut() {
    check("zoom-auto");
}

/// The same with a keyframe every 4 s, two of them on that beat inside the zoom: where the encoder
/// keys its scene cuts and a GOP has no burst, a cut could only be at its closing keyframe, and one
/// that shows the last keyframe's picture zoomed is none. The cuts are found, and the GOPs inside
/// the zoom are not decoded (only the one before x264's scene-cut keyframe at 6.32 s is).
#[test]
fn keyframes_on_the_beat_inside_a_zoom_are_not_decoded_between() {
    let video = check("zoom-beat");
    assert!(video["gops_decoded"].as_u64().unwrap() <= 1, "{video}");
}

/// A keyframe every 4 s and x264's own at scene cuts: a cut at 10.8 s falls on that beat, after a
/// moving test pattern whose frames cost alike throughout its GOP. A cut could only be at that
/// keyframe: it is placed there, to the frame, and nothing between keyframes is decoded.
#[test]
fn a_cut_on_the_beat_after_a_steady_group_of_pictures_is_placed_at_its_keyframe() {
    let video = check("beat-cut");
    assert_eq!(video["gops_decoded"].as_u64().unwrap(), 0, "{video}");
}

/// The same test pattern dissolved over a second into a cellular automaton before the keyframe on
/// the beat: a dissolve is no cut, and none is put at the keyframe after it.
#[test]
fn a_dissolve_is_not_a_cut() {
    check("dissolve");
}

/// With on-screen text read, the video is decoded on a thread of its own (a second demuxer), its
/// shot changes sent to the model apart from the audio; without, it is decoded with the audio.
/// Both find the same cuts from the same frames.
#[test]
fn video_read_on_its_own_thread_finds_the_same_cuts() {
    let clip = sample("video/cuts-fixed.mp4");
    let (apart, video_apart) = shots(&clip, &[]);
    let (together, video_together) = shots(&clip, &[OsStr::new("--ocr"), OsStr::new("off")]);
    assert!(!apart.is_empty());
    assert_eq!(apart, together);
    assert_eq!(video_apart["frames_decoded"], video_together["frames_decoded"], "{video_apart} {video_together}");
}

/// Every frame decoded (`[video] decode = "all"`) finds the same cuts.
#[test]
fn decoding_every_frame_finds_the_same_cuts() {
    let clip = sample("video/cuts-fixed.mp4");
    let dir = tempdir("all-frames");
    let pipeline = dir.join("all.toml");
    let text = subtitle::config::DEFAULT_FILE_PIPELINE.replace("decode = \"keyframes\"", "decode = \"all\"");
    assert_ne!(text, subtitle::config::DEFAULT_FILE_PIPELINE);
    std::fs::write(&pipeline, text).unwrap();
    let (all, video) = shots(&clip, &[OsStr::new("--pipeline"), pipeline.as_os_str()]);
    let (keyframes, _) = shots(&clip, &[]);
    assert_eq!(all, keyframes);
    assert_eq!(video["keyframes"].as_u64(), Some(0), "{video}");
    assert!(video["frames_decoded"].as_u64().unwrap() >= 1000, "{video}");
}

/// Video other than 8-bit 4:2:0 (here 10-bit HEVC, as phones record) is scaled by FFmpeg for
/// shot detection, each thumbnail pixel the mean of the pixels it covers: sampled instead, a
/// 64-pixel-wide thumbnail of a fine cellular automaton flickered into a false cut (0.04 s), and
/// colour bars after it lost their colours (a cut missed at the end of the 2-minute clip). The cut
/// (2 s, no keyframe there) is found, and nothing else.
#[test]
fn ten_bit_video_has_its_cut_found_and_none_invented() {
    let dir = tempdir("ten-bit");
    let clip = dir.join("automaton-bars.mp4");
    let automaton = "cellauto=rule=30:s=1920x1080:rate=25:random_fill_ratio=0.5:seed=1";
    let hevc = ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-x265-params"];
    let encode = [&hevc[..], &["log-level=error:keyint=250:scenecut=0", "-c:a", "aac"]].concat();
    two_scenes(&clip, automaton, "smptehdbars=s=1920x1080:rate=25", 2, &encode);
    let (found, video) = shots(&clip, &[]);
    assert_eq!(score(&found, &[2.0]), (1.0, 1.0), "found {found:?}: {video}");
    // FFmpeg's threads (here over the rows of a frame: x265 writes them so) change nothing found.
    let pipeline = dir.join("one-thread.toml");
    let text = subtitle::config::DEFAULT_FILE_PIPELINE.replace("threads = 2", "threads = 1");
    assert_ne!(text, subtitle::config::DEFAULT_FILE_PIPELINE);
    std::fs::write(&pipeline, text).unwrap();
    let (alone, video_alone) = shots(&clip, &[OsStr::new("--pipeline"), pipeline.as_os_str()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((&found, &video["frames_decoded"]), (&alone, &video_alone["frames_decoded"]), "{video} {video_alone}");
}

/// 4K video as phones write it (a fixed GOP, B-frames, no keyframe at the cut), read the way
/// 4K is: its decoders closed after each use instead of kept as at 1080p (kept, their 4K frame
/// buffers held 155 MB; what that saves is measured in `benches/hd.md`, not here), the deblocking
/// filter skipped. The cut (2 s, inside a GOP, which is decoded for it) is still placed to the
/// frame.
#[test]
fn a_cut_between_keyframes_of_4k_video_is_found_to_the_frame() {
    let dir = tempdir("4k-cut");
    let clip = dir.join("pattern-then-automaton.mp4");
    let automaton = "cellauto=rule=30:s=3840x2160:rate=25:random_fill_ratio=0.5:seed=1";
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0"];
    let encode = [&x264[..], &["-bf", "2", "-c:a", "aac"]].concat();
    two_scenes(&clip, "testsrc2=s=3840x2160:rate=25", automaton, 2, &encode);
    let (found, video) = shots(&clip, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(score(&found, &[2.0]), (1.0, 1.0), "found {found:?}: {video}");
    assert!(video["gops_decoded"].as_u64().unwrap() >= 1, "{video}");
}

/// An open GOP's leading pictures (shown before its keyframe, decoded after it: x265 writes
/// them by default) are counted with the GOP before it, where they are shown. Counted in decode
/// order, x265's fixed 50-frame GOPs (six B-frames in a row at most) came at 46 to 54 packets,
/// and keyframes on the beat were taken for the encoder's scene cuts: the eight cuts of
/// `cuts-fixed.mp4` encoded so were found at precision 0.70, recall 0.88 (cuts put at keyframes
/// inside shots, 11.96 and 27.0 at the keyframes after them); with the beat allowed the leading
/// pictures' spread, 0.88 and 0.88. Now each is found within a frame, and nothing else.
#[test]
fn open_gops_keep_their_beat() {
    let dir = tempdir("open-gop");
    let clip = dir.join("cuts-fixed-x265.mp4");
    let source = sample("video/cuts-fixed.mp4");
    let params = "log-level=error:keyint=50:min-keyint=50:scenecut=0:bframes=6";
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&source)
        .args(["-vf", "scale=640:360", "-c:v", "libx265", "-preset", "superfast", "-x265-params", params])
        .args(["-c:a", "copy"])
        .arg(&clip)
        .output()
        .expect("running ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let truth = known_cuts(&source);
    let (found, video) = shots(&clip, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(score(&found, &truth), (1.0, 1.0), "found {found:?}, cuts at {truth:?}: {video}");
}

/// Two recordings joined end to end (MPEG-TS files put together with `cat`, as archives join
/// them): the second's timestamps start over, and its picture goes on from the end of the first,
/// as its audio does. Its cuts come after the first's, each to the frame, with one at the join;
/// a cue that starts on a cut in the recording starts on it in the second too (before, the
/// second's cuts were put over the first's, and its cues snapped to none), and the output's
/// length is both recordings'. The same when the video is read with the audio (`--ocr off`).
#[test]
fn recordings_joined_end_to_end_keep_the_second_ones_cuts_after_the_first() {
    let recording = sample("video/recording.ts");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(&recording)
        .output()
        .expect("running ffprobe");
    // (MPEG-TS lists the stream once in its program, once alone.)
    let listed = String::from_utf8_lossy(&probe.stdout).into_owned();
    let length: f64 = listed.split_whitespace().next().and_then(|l| l.parse().ok()).expect("the video's length");
    let alone = output(&recording, &[]);
    let first = cut_times(&alone);
    let truth = known_cuts(&sample("video/cuts-fixed.mp4"));
    assert_eq!(score(&first, &truth), (1.0, 1.0), "the recording: found {first:?}, cuts at {truth:?}");
    let want: Vec<f64> = first.iter().copied().chain([length]).chain(first.iter().map(|c| c + length)).collect();
    let doc = output(&sample("video/joined.ts"), &[]);
    let cuts = cut_times(&doc);
    let on_cut = |t: f64, cuts: &[f64]| cuts.iter().any(|c| (c - t).abs() < 0.002);
    assert_eq!(score(&cuts, &want), (1.0, 1.0), "found {cuts:?}, want {want:?}");
    assert_eq!(cuts.len(), want.len(), "found {cuts:?}, want {want:?}");
    // The second recording's GOPs judged as the first's were, on a beat learnt afresh (the GOP
    // the join cut short taken for its encoder's scene cut, the cut at 11.96 s was put a frame
    // late, at a keyframe).
    for c in &first {
        assert!(on_cut(c + length, &cuts), "the cut at {c:.3} is not at {:.3} in the second: {cuts:?}", c + length);
    }
    let starts = |doc: &serde_json::Value| -> Vec<f64> {
        doc["cues"].as_array().unwrap().iter().map(|c| c["start"].as_f64().unwrap()).collect()
    };
    let (snapped, joined_starts) = (starts(&alone), starts(&doc));
    let snapped: Vec<f64> = snapped.into_iter().filter(|&s| on_cut(s, &first)).collect();
    assert!(snapped.len() >= 3, "cues on cuts in the recording: {snapped:?}");
    for s in snapped {
        let found = joined_starts.iter().any(|&j| (j - s - length).abs() <= 0.041 && on_cut(j, &cuts));
        assert!(found, "no cue on the cut at {:.3} (from {s:.3}): {joined_starts:?}", s + length);
    }
    // Its length is both recordings' (the container's says one: its timestamps start over).
    let duration = doc["duration_s"].as_f64().unwrap();
    assert!((duration - 2.0 * length).abs() < 0.1, "duration_s {duration} for two of {length} s");
    let (together, _) = shots(&sample("video/joined.ts"), &[OsStr::new("--ocr"), OsStr::new("off")]);
    assert_eq!(together, cuts);
}

/// Intra-only video (Motion JPEG here; ProRes, DNxHD and JPEG 2000 masters alike), every frame a
/// keyframe: a keyframe a second is taken as one, and the frames between are decoded only where
/// two differ, a frame in four first, so every cut is still found to the frame. (Each frame was
/// decoded as a keyframe: 43 s of 1080p ProRes took 12.1 s, against 0.8 s for the audio alone.)
/// The same for H.264 coded all keyframes in MPEG-TS, which neither its codec nor an index calls
/// intra-only: its keyframes in a row tell.
#[test]
fn intra_only_video_is_sampled_a_keyframe_a_second_and_its_cuts_found_to_the_frame() {
    let dir = tempdir("intra-only");
    let source = sample("video/cuts-fixed.mp4");
    let truth = known_cuts(&source);
    let mjpeg = ["-c:v", "mjpeg", "-q:v", "4", "-c:a", "pcm_s16le"];
    let all_keys = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "1", "-c:a", "aac"];
    for (name, encode) in [("mjpeg.avi", &mjpeg[..]), ("all-keyframes.ts", &all_keys[..])] {
        let clip = dir.join(name);
        let made = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&source)
            .args(["-vf", "scale=640:360"])
            .args(encode)
            .arg(&clip)
            .output()
            .expect("running ffmpeg");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let (found, video) = shots(&clip, &[]);
        assert_eq!(score(&found, &truth), (1.0, 1.0), "{name}: found {found:?}, cuts at {truth:?}: {video}");
        let frames = video["frames_decoded"].as_u64().unwrap();
        assert!(frames < 1080 / 5, "{name}: {frames} of 1080 frames decoded: {video}");
        assert!(video["keyframes"].as_u64().unwrap() <= 60, "{name}: {video}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A phone's recording: a keyframe every 30 frames and none at the cuts, the bitrate capped
/// (x264 at 12 Mb/s for 1080p). After each keyframe the encoder spends packets that shrink frame
/// by frame refilling the picture's detail (45, 32, 16, 11 kB against a median of 4 kB): no
/// bursts, so only the GOPs that hold a cut are decoded (11 of 36 before, three for nothing), each
/// until it settles on the next keyframe's shot; and in a cellular automaton, the first frame
/// decoded after a keyframe changes no more than those after it, so is no cut (one was found at
/// 42.04 s, once the refill was told). On such a short beat (1.2 s) every other keyframe is
/// taken; those between are decoded only inside a GOP that is, to tell which half changed.
#[test]
fn a_phone_recording_refilling_after_each_keyframe_has_its_cuts_found_and_little_else_decoded() {
    let dir = tempdir("phone");
    let source = sample("video/cuts-fixed.mp4");
    let truth = known_cuts(&source);
    let clip = dir.join("phone.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&source)
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0"])
        .args(["-b:v", "12M", "-maxrate", "16M", "-bufsize", "16M", "-c:a", "copy"])
        .arg(&clip)
        .output()
        .expect("running ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (found, video) = shots(&clip, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(score(&found, &truth), (1.0, 1.0), "found {found:?}, cuts at {truth:?}: {video}");
    // Before: 36 keyframes, 11 GOPs, 252 frames; now 18, the GOPs with a cut and the last (no
    // keyframe after it).
    assert!(video["keyframes"].as_u64().unwrap() <= 19, "{video}");
    assert!(video["gops_decoded"].as_u64().unwrap() <= truth.len() as u64 + 3, "{video}");
    assert!(video["frames_decoded"].as_u64().unwrap() < 240, "{video}");
}

/// MPEG-2 (as broadcast archives hold it, in MPEG-TS) makes the anchor frame after a scene change
/// a keyframe, so the cut falls on the B-frames shown before it (decoded after it): the GOP
/// before is decoded with them, and the cut placed on the first (it was put at the keyframe, two
/// frames late).
#[test]
fn a_cut_on_the_b_frames_before_a_keyframe_is_found_to_the_frame() {
    let dir = tempdir("leading-cut");
    let clip = dir.join("pattern-then-fractal.ts");
    let mpeg2 = ["-c:v", "mpeg2video", "-b:v", "4M", "-g", "12", "-bf", "2", "-c:a", "mp2"];
    two_scenes(&clip, "testsrc2=s=640x360:rate=25", "mandelbrot=s=640x360:rate=25", 4, &mpeg2);
    let (found, video) = shots(&clip, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(score(&found, &[4.0]), (1.0, 1.0), "found {found:?}: {video}");
}

/// A GOP of a still picture (slides, title cards) is decoded reference frames first, as a moving
/// one is, its stills taken from them: B-frames (two thirds of an x264 stream's frames) cost
/// HD video from other encoders more than the rest (10-bit HEVC: 4 ms a frame, even still). A
/// change of picture between two keyframes (none at the change) is still placed to the frame,
/// and both pictures go to the stills.
#[test]
fn a_still_group_of_pictures_skips_its_b_frames_and_places_its_change_to_the_frame() {
    let dir = tempdir("still-gop");
    let clip = dir.join("bars-then-test-card.mp4");
    let (bars, card) = ("smptehdbars=s=1920x1080:rate=25", "rgbtestsrc=s=1920x1080:rate=25");
    let x264 = ["-c:v", "libx264", "-preset", "veryfast", "-x264-params", "keyint=250:scenecut=0", "-c:a", "aac"];
    two_scenes(&clip, bars, card, 4, &x264);
    let (found, stats) = shots_and_stats(&clip, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    let video = &stats["video"];
    assert_eq!(score(&found, &[4.0]), (1.0, 1.0), "found {found:?}: {video}");
    let frames = video["frames_decoded"].as_u64().unwrap();
    assert!(frames < 100, "{frames} of 200 frames decoded: {video}");
    let stills = stats["stills_read"].as_u64().unwrap() + stats["stills_without_text"].as_u64().unwrap();
    assert!(stills >= 2, "both pictures go to the stills: {stats}");
}

/// AV1 (SVT-AV1, as video sites serve it) has no B-frames, but its top layer of frames is
/// referred to by none: those frames are left out of a GOP's first decoding (their headers say
/// so), as H.264's B-frames are. A cut 2 s into a GOP is still placed to the frame.
#[test]
fn an_av1_group_of_pictures_leaves_out_the_frames_nothing_refers_to() {
    let dir = tempdir("av1-gop");
    let clip = dir.join("pattern-then-fractal.webm");
    let (pattern, fractal) = ("testsrc2=s=1920x1080:rate=25", "mandelbrot=s=1920x1080:rate=25");
    let av1 = ["-c:v", "libsvtav1", "-preset", "12", "-crf", "40", "-g", "250", "-svtav1-params", "verbosity=0"];
    two_scenes(&clip, pattern, fractal, 2, &[&av1[..], &["-c:a", "libopus"]].concat());
    let (found, video) = shots(&clip, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(score(&found, &[2.0]), (1.0, 1.0), "found {found:?}: {video}");
    // 100 frames; every one came out of the decoder before (101 with the keyframe's own decoding).
    let frames = video["frames_decoded"].as_u64().unwrap();
    assert!(frames < 90, "{frames} frames decoded: {video}");
}
