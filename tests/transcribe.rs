//! End to end with the real tiny.en weights: accuracy on real speech, every container, formats.

mod common;

use std::ffi::OsStr;

use common::*;
use subtitle::eval::{errors, normalize, Errors};

#[test]
fn jfk_is_word_perfect() {
    let real = shared_real();
    let hyp = transcribe(&real.join("mp4/jfk.mp4"), &["--beam", "1"]);
    let reference = std::fs::read_to_string(real.join("refs/jfk.txt")).unwrap();
    assert_eq!(normalize(&hyp), normalize(&reference), "hypothesis: {hyp}");
}

/// Corpus WER of tiny.en greedy over the English clips of ../shared/data/real must stay at or
/// below 8% (faster-whisper with the same weights: 6.0%). All clips go to one run (several
/// inputs, `--output-dir`), each to its own file.
#[test]
fn shared_english_clips_corpus_wer_at_most_8_percent() {
    let real = shared_real();
    let manifest = std::fs::read_to_string(real.join("manifest.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (id_c, lang_c, overall_c) = (col("id"), col("lang"), col("in_overall"));
    let ids: Vec<&str> = lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[lang_c] == "en" && f[overall_c] == "1")
        .map(|f| f[id_c])
        .collect();
    assert!(ids.len() >= 30, "only {} English clips found", ids.len());
    let dir = tempdir("corpus");
    let inputs: Vec<std::path::PathBuf> = ids.iter().map(|id| real.join(format!("mp4/{id}.mp4"))).collect();
    let mut args: Vec<&OsStr> = inputs.iter().map(|p| p.as_os_str()).collect();
    args.extend(["--output-dir", dir.to_str().unwrap(), "--beam", "1"].map(OsStr::new));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut total = Errors::default();
    for id in &ids {
        let srt = std::fs::read_to_string(dir.join(format!("{id}.srt"))).unwrap_or_else(|e| panic!("{id}.srt: {e}"));
        let hyp = subtitle::eval::subtitle_text(&srt);
        let reference = std::fs::read_to_string(real.join(format!("refs/{id}.txt"))).unwrap();
        let e = errors(&reference, &hyp);
        eprintln!("{id}: {:.1}% ({} / {})", 100.0 * e.wer(), e.total(), e.reference_words);
        total += e;
    }
    eprintln!("corpus WER {:.2}% over {} clips, {} words", 100.0 * total.wer(), ids.len(), total.reference_words);
    assert!(total.wer() <= 0.08, "corpus WER {:.2}% > 8%", 100.0 * total.wer());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inputs run at once in batched mode decode their chunks together: one batch holds chunks of
/// every input (the shared decoder waits for all of them here), and each input gets the
/// subtitles it gets alone.
#[test]
fn inputs_run_together_decode_their_chunks_as_one_batch() {
    let real = shared_real();
    let dir = tempdir("together");
    let pipeline = dir.join("wait.toml");
    let text = subtitle::config::DEFAULT_FILE_PIPELINE.replace("share_wait_ms = 200", "share_wait_ms = 60000");
    assert_ne!(text, subtitle::config::DEFAULT_FILE_PIPELINE);
    std::fs::write(&pipeline, text).unwrap();
    let ids = ["jfk", "lj_LJ001-0001", "mfa_michaelandsickmichael"];
    let inputs: Vec<std::path::PathBuf> = ids.iter().map(|id| real.join(format!("mp4/{id}.mp4"))).collect();
    let mut args: Vec<&OsStr> = inputs.iter().map(|p| p.as_os_str()).collect();
    args.extend(
        ["--output-dir", dir.to_str().unwrap(), "--jobs", "3", "--batch-size", "8", "--beam", "1", "--format", "json"]
            .map(OsStr::new),
    );
    args.extend([OsStr::new("--pipeline"), pipeline.as_os_str()]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let most =
        ids.iter().map(|id| stats(&dir.join(format!("{id}.json")))["shared_batch_inputs"].as_u64().unwrap()).max();
    assert_eq!(most, Some(3), "no batch holds chunks of all three inputs");
    for (id, input) in ids.iter().zip(&inputs) {
        let together =
            json_cues(&dir.join(format!("{id}.json"))).iter().map(|c| c.2.clone()).collect::<Vec<_>>().join(" ");
        let alone = transcribe(input, &["--batch-size", "8", "--beam", "1"]);
        assert!(!alone.trim().is_empty(), "{id}: nothing transcribed");
        assert_eq!(together.replace('\n', " "), alone, "{id}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every container and plain-audio format decodes to the known text (espeak-ng speech; tiny.en
/// mishears some synthetic words, so each file is held to 40% and the set to 25%).
#[test]
fn containers_and_audio_formats_transcribe() {
    let mut total = Errors::default();
    for (file, text) in
        [("s1.mp4", "s1"), ("s2.mkv", "s2"), ("s3.webm", "s3"), ("s4.flac", "s4"), ("s1.mp3", "s1"), ("s2.wav", "s2")]
    {
        let hyp = transcribe(&sample(file), &["--beam", "1"]);
        let reference = std::fs::read_to_string(sample(&format!("{text}.txt"))).unwrap();
        let e = errors(&reference, &hyp);
        eprintln!("{file}: {:.1}% {hyp}", 100.0 * e.wer());
        assert!(e.wer() <= 0.4, "{file}: WER {:.1}%: {hyp}", 100.0 * e.wer());
        total += e;
    }
    assert!(total.wer() <= 0.25, "set WER {:.1}%", 100.0 * total.wer());
}

#[test]
fn beam_search_transcribes_jfk() {
    let real = shared_real();
    let hyp = transcribe(&real.join("mp4/jfk.mp4"), &["--beam", "5"]);
    let reference = std::fs::read_to_string(real.join("refs/jfk.txt")).unwrap();
    assert_eq!(normalize(&hyp), normalize(&reference), "hypothesis: {hyp}");
}

#[test]
fn silence_gives_an_empty_valid_file() {
    let dir = tempdir("silence");
    for ext in ["srt", "vtt"] {
        let out = dir.join(format!("out.{ext}"));
        let o = run(&[sample("silence.mp4").as_os_str(), OsStr::new("-o"), out.as_os_str()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(&out).unwrap();
        match ext {
            "srt" => assert_eq!(text, ""),
            _ => assert_eq!(text, "WEBVTT\n"),
        }
    }
}

#[test]
fn formats_follow_the_extension_or_flag_and_stdout_works() {
    let dir = tempdir("formats");
    let input = shared_real().join("mp4/jfk.mp4");
    let vtt = dir.join("a.vtt");
    let o = run(&[input.as_os_str(), OsStr::new("-o"), vtt.as_os_str(), OsStr::new("--beam"), OsStr::new("1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = std::fs::read_to_string(&vtt).unwrap();
    assert!(v.starts_with("WEBVTT\n\n00:00:"), "{v}");

    let json = dir.join("a.out");
    let o = run(&[
        input.as_os_str(),
        OsStr::new("-o"),
        json.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("--beam"),
        OsStr::new("1"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let segs = doc["segments"].as_array().unwrap();
    assert!(!segs.is_empty());
    for s in segs {
        let tokens = s["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), s["probabilities"].as_array().unwrap().len());
        assert!(s["end"].as_f64().unwrap() > s["start"].as_f64().unwrap());
    }
    assert!(!doc["cues"].as_array().unwrap().is_empty());

    let o = run(&[input.as_os_str(), OsStr::new("-o"), OsStr::new("-"), OsStr::new("--beam"), OsStr::new("1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let srt = String::from_utf8(o.stdout).unwrap();
    assert!(srt.starts_with("1\n00:00:0"), "{srt}");
    assert!(normalize(&subtitle::eval::subtitle_text(&srt))
        .join(" ")
        .contains("ask not what your country can do for you"));
}

#[test]
fn cues_keep_the_length_limits() {
    let real = shared_real();
    let dir = tempdir("cues");
    let out = dir.join("long.srt");
    let o = run(&[
        real.join("mp4/mfa_michaelandsickmichael.mp4").as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--beam"),
        OsStr::new("1"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let subs = cues(&std::fs::read_to_string(&out).unwrap());
    assert!(subs.len() >= 5);
    let mut last_end = 0;
    for s in subs {
        let (a, b) = (s.0, s.1);
        assert!(b > a && b - a <= 7000, "{s:?}");
        assert!(a >= last_end, "overlap at {s:?}");
        last_end = b;
        let lines: Vec<&str> = s.2.lines().collect();
        assert!(lines.len() <= 2 && lines.iter().all(|l| l.chars().count() <= 42), "{s:?}");
    }
}

/// A JSON output's cues: start and end in ms, and text.
fn json_cues(json: &std::path::Path) -> Vec<(u64, u64, String)> {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let ms = |v: &serde_json::Value| (v.as_f64().unwrap() * 1000.0).round() as u64;
    doc["cues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (ms(&c["start"]), ms(&c["end"]), c["text"].as_str().unwrap().to_string()))
        .collect()
}

/// An SRT file's cues: start and end in ms, and text.
fn cues(srt: &str) -> Vec<(u64, u64, String)> {
    let ms = |t: (u8, u8, u8, u16)| ((t.0 as u64 * 60 + t.1 as u64) * 60 + t.2 as u64) * 1000 + t.3 as u64;
    let subs = srtlib::Subtitles::parse_from_str(srt.to_string()).unwrap().to_vec();
    subs.into_iter().map(|s| (ms(s.start_time.get()), ms(s.end_time.get()), s.text)).collect()
}

/// JFK and LJ Speech LJ001-0001..0016 as one 16 kHz WAV in `dir`, a second of silence after
/// each (2 min 15 s); returns its path, the references joined, and where each clip lies (ms).
fn real_clips(dir: &std::path::Path) -> (std::path::PathBuf, String, Vec<(u64, u64)>) {
    let ids: Vec<String> =
        std::iter::once("jfk".to_string()).chain((1..=16).map(|i| format!("lj_LJ001-{i:04}"))).collect();
    joined_clips(dir, &ids)
}

/// The clips `ids` of ../shared/data/real as one 16 kHz WAV in `dir`, a second of silence after
/// each; returns its path, the references joined, and where each clip lies (ms).
fn joined_clips(dir: &std::path::Path, ids: &[String]) -> (std::path::PathBuf, String, Vec<(u64, u64)>) {
    let real = shared_real();
    let mut pcm: Vec<i16> = Vec::new();
    let mut spans = Vec::new();
    let mut reference = String::new();
    for id in ids {
        let o = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(real.join(format!("mp4/{id}.mp4")))
            .args(["-ar", "16000", "-ac", "1", "-f", "s16le", "-"])
            .output()
            .expect("running ffmpeg");
        assert!(o.status.success());
        let start = pcm.len() as u64 * 1000 / 16000;
        pcm.extend(o.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
        spans.push((start, pcm.len() as u64 * 1000 / 16000));
        pcm.extend(std::iter::repeat_n(0i16, 16000));
        reference.push_str(&std::fs::read_to_string(real.join(format!("refs/{id}.txt"))).unwrap());
        reference.push(' ');
    }
    let wav = dir.join("clips.wav");
    let bytes = (pcm.len() * 2) as u32;
    let mut w: Vec<u8> = Vec::new();
    w.extend(b"RIFF");
    w.extend((36 + bytes).to_le_bytes());
    w.extend(b"WAVEfmt ");
    w.extend(16u32.to_le_bytes());
    w.extend(1u16.to_le_bytes()); // PCM
    w.extend(1u16.to_le_bytes()); // mono
    w.extend(16000u32.to_le_bytes());
    w.extend(32000u32.to_le_bytes());
    w.extend(2u16.to_le_bytes());
    w.extend(16u16.to_le_bytes());
    w.extend(b"data");
    w.extend(bytes.to_le_bytes());
    w.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
    std::fs::write(&wav, w).unwrap();
    (wav, reference, spans)
}

/// Whisper passes over a sentence it does not hear well among others and goes on after it: on
/// these five clips, TIMIT's quiet "She had your dark suit in greasy wash water all year" between
/// two louder ones, decoded after the text before it (as in the live benchmark's second mix,
/// where the window held it among 30 s of speech). Speech that no word touches, with words after
/// it, is decoded again from where it starts, without that text: every clip keeps its words.
#[test]
fn speech_the_decoder_passes_over_is_decoded_again() {
    let dir = tempdir("passed-over");
    let ids: Vec<String> =
        ["arctic_aew_a0001", "ldc93s1", "ps_cards_003", "lj_LJ001-0012", "ps_0920_sense"].map(String::from).to_vec();
    let (wav, reference, spans) = joined_clips(&dir, &ids);
    let json = dir.join("out.json");
    let o = run(&[wav.as_os_str(), OsStr::new("-o"), json.as_os_str(), OsStr::new("-q")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let words: Vec<(f64, String)> = doc["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap().iter())
        .map(|w| (w["start"].as_f64().unwrap(), w["word"].as_str().unwrap().to_string()))
        .collect();
    let real = shared_real();
    for (id, &(a, b)) in ids.iter().zip(&spans) {
        let heard: Vec<&str> = words
            .iter()
            .filter(|(t, _)| *t * 1000.0 >= a as f64 && *t * 1000.0 < b as f64)
            .map(|(_, w)| w.as_str())
            .collect();
        let said = normalize(&std::fs::read_to_string(real.join(format!("refs/{id}.txt"))).unwrap());
        assert!(heard.len() * 2 >= said.len(), "{id} ({a}-{b} ms): heard {heard:?} of {said:?}");
    }
    let text: String = words.iter().map(|(_, w)| format!("{w} ")).collect();
    let e: Errors = errors(&reference, &text);
    assert!(e.wer() < 0.10, "WER {:.3}: {text}", e.wer());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Spontaneous speech comes in pieces under a second each: in batched mode (chunks decoded text
/// only) the chunk after the acoustic half of this clip said only its last words, the cards',
/// and the alignment put them at its end, leaving eight pieces of speech (5.6 s) without a word.
/// Pieces one after another with no word between them are heard as one passage passed over, and
/// decoded again: the build before lost "I have a cold, so I probably sound quite different than
/// the acoustic corpus" (as in the live benchmark's fourth and sixth mixes).
#[test]
fn speech_passed_over_in_pieces_is_decoded_again_in_batched_mode() {
    let dir = tempdir("passed-over-pieces");
    let ids: Vec<String> = ["mfa_michaelandsickmichael", "ps_cards_005", "ps_cards_004"].map(String::from).to_vec();
    let (wav, reference, _) = joined_clips(&dir, &ids);
    let json = dir.join("out.json");
    let o = run(&[
        wav.as_os_str(),
        OsStr::new("--batch-size"),
        OsStr::new("8"),
        OsStr::new("-o"),
        json.as_os_str(),
        OsStr::new("-q"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let text: String =
        doc["segments"].as_array().unwrap().iter().map(|s| format!("{} ", s["text"].as_str().unwrap())).collect();
    let said = normalize(&text).join(" ");
    assert!(said.contains("have a cold") && said.matches("acoustic corpus").count() == 2, "{said}");
    let e: Errors = errors(&reference, &text);
    // tiny.en's own errors on the cold voice ("sick corpus", "sound") are 12% of it; the build
    // before was at 0.22.
    assert!(e.wer() < 0.16, "WER {:.3}: {said}", e.wer());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run statistics of a JSON output (`stats`).
fn stats(json: &std::path::Path) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    doc["stats"].clone()
}

/// The chunk counts of the batches a JSON output's run decoded, in order.
fn batches(json: &std::path::Path) -> Vec<usize> {
    stats(json)["batches"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap() as usize).collect()
}

/// Batched mode (`--batch-size`): two and a half minutes of real speech (LJ Speech and JFK
/// clips, a second of silence between them) cut into chunks at the pauses, decoded four chunks
/// to a batch. Every clip's words come back, in order, timed inside their clip.
#[test]
fn batched_chunks_transcribe_real_speech_in_order() {
    let dir = tempdir("batched");
    let (wav, reference, spans) = real_clips(&dir);
    let json = dir.join("clips.json");
    let o = run(&[
        wav.as_os_str(),
        OsStr::new("-o"),
        json.as_os_str(),
        OsStr::new("--beam"),
        OsStr::new("1"),
        OsStr::new("--batch-size"),
        OsStr::new("4"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A full batch of four chunks went through.
    assert!(batches(&json).contains(&4), "no batch of four chunks: {:?}", batches(&json));
    let cues = json_cues(&json);
    let text: Vec<&str> = cues.iter().map(|c| c.2.as_str()).collect();
    let e = errors(&reference, &text.join(" "));
    eprintln!("batched WER {:.2}% over {} words", 100.0 * e.wer(), e.reference_words);
    assert!(e.wer() <= 0.10, "batched WER {:.2}% > 10%", 100.0 * e.wer());
    // Cues in order, and none over the silence between clips.
    let mut last_end = 0;
    for s in &cues {
        let (a, b) = (s.0, s.1);
        assert!(b > a && a >= last_end, "out of order: {s:?}");
        last_end = b;
        let inside = spans.iter().any(|&(from, to)| a + 300 >= from && a < to);
        assert!(inside, "cue starts in the silence between clips: {s:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[model] batch_wait_ms` bounds the wait for a full batch: with a batch of 16 (more chunks
/// than the input has) and a 20 s wait, chunks go out in several small batches as the input
/// passes 20 s beyond their first; without the wait, all in one batch at the end.
#[test]
fn a_partial_batch_goes_out_after_the_wait() {
    let dir = tempdir("batch-wait");
    let (wav, _, _) = real_clips(&dir);
    let pipeline = |wait: i64| {
        let p = dir.join(format!("wait-{wait}.toml"));
        let text = subtitle::config::DEFAULT_FILE_PIPELINE
            .replace("batch_size = 1", "batch_size = 16")
            .replace("batch_wait_ms = 0", &format!("batch_wait_ms = {wait}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    let counts = |wait: i64| {
        let out = dir.join(format!("wait-{wait}.json"));
        let p = pipeline(wait);
        let o = run(&[
            wav.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new("--beam"),
            OsStr::new("1"),
            OsStr::new("--pipeline"),
            p.as_os_str(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        batches(&out)
    };
    let waited = counts(20_000);
    let whole = counts(0);
    eprintln!("batches without a wait {whole:?}, with a 20 s wait {waited:?}");
    // (A batch of one after a batch is a chunk's rest where the decoder stopped early.)
    assert!(whole[0] >= 5 && whole[1..].iter().all(|&n| n == 1), "without a wait, one batch at the end: {whole:?}");
    assert!(
        waited.len() >= whole.len() + 2 && waited.iter().all(|&n| n < whole[0]),
        "with a 20 s wait, smaller batches as the input goes on: {waited:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The path a GPU takes (candle's operations throughout: no packed or int8 products, no step
/// path, batches encoded as one call), run on the CPU with `SUBTITLE_CANDLE_ONLY=1`: sequential
/// with beams, and two inputs batched together (encoded and decoded as one batch), each
/// word-perfect or near it, as the CPU's own kernels are.
#[test]
fn the_gpu_path_transcribes_as_the_cpu_kernels() {
    let real = shared_real();
    let dir = tempdir("candle-only");
    let (jfk, lj) = (real.join("mp4/jfk.mp4"), real.join("mp4/lj_LJ001-0001.mp4"));
    let run_candle = |args: &[&OsStr]| {
        let o = bin().env("SUBTITLE_MODELS", models()).env("SUBTITLE_CANDLE_ONLY", "1").args(args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    let out = dir.join("jfk-beam.srt");
    run_candle(&[jfk.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--ocr"), OsStr::new("off")]);
    let reference = std::fs::read_to_string(real.join("refs/jfk.txt")).unwrap();
    let hyp = subtitle::eval::subtitle_text(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(normalize(&hyp), normalize(&reference), "beam 5: {hyp}");

    let pipeline = dir.join("wait.toml");
    let text = subtitle::config::DEFAULT_FILE_PIPELINE.replace("share_wait_ms = 200", "share_wait_ms = 60000");
    std::fs::write(&pipeline, text).unwrap();
    let mut args: Vec<&OsStr> = vec![jfk.as_os_str(), lj.as_os_str(), OsStr::new("--pipeline"), pipeline.as_os_str()];
    args.extend(
        ["--output-dir", dir.to_str().unwrap(), "--batch-size", "4", "--beam", "1", "--jobs", "2", "--format", "json"]
            .map(OsStr::new),
    );
    run_candle(&args);
    let most = |key: &str| {
        ["jfk", "lj_LJ001-0001"].iter().map(|id| stats(&dir.join(format!("{id}.json")))[key].as_u64().unwrap()).max()
    };
    assert_eq!(most("shared_encode_inputs"), Some(2), "the two inputs were not encoded as one batch");
    assert_eq!(most("shared_batch_inputs"), Some(2), "the two inputs were not decoded as one batch");
    for id in ["jfk", "lj_LJ001-0001"] {
        let cues = json_cues(&dir.join(format!("{id}.json")));
        let hyp = cues.iter().map(|c| c.2.replace('\n', " ")).collect::<Vec<_>>().join(" ");
        let reference = std::fs::read_to_string(real.join(format!("refs/{id}.txt"))).unwrap();
        let e = errors(&reference, &hyp);
        assert!(e.wer() <= 0.05, "{id} batched: WER {:.1}%: {hyp}", 100.0 * e.wer());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
