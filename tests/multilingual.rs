//! The multilingual `base` model: language detection, forced language, translation.

mod common;

use std::ffi::OsStr;

use common::*;
use subtitle::eval::normalize;

fn base_json(clip: &str, extra: &[&str]) -> serde_json::Value {
    assert!(models().join("base/model.safetensors").is_file(), "base is missing: run models/fetch.sh base");
    let dir = tempdir(&format!("ml-{clip}"));
    let out = dir.join("out.json");
    let input = shared_real().join(format!("mp4/{clip}.mp4"));
    let mut args: Vec<&OsStr> =
        vec![input.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--model"), OsStr::new("base")];
    args.extend(extra.iter().map(OsStr::new));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn text(doc: &serde_json::Value) -> String {
    doc["segments"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect::<Vec<_>>().join(" ")
}

#[test]
fn base_detects_spanish_german_and_english() {
    for (clip, lang, word) in
        [("pv_test_es", "es", "arenas"), ("pv_test_de", "de", "raum"), ("pv_test_en", "en", "quilter")]
    {
        let doc = base_json(clip, &["--beam", "1"]);
        assert_eq!(doc["language"], lang, "{clip}");
        assert!(doc["language_probability"].as_f64().unwrap() > 0.5);
        assert!(normalize(&text(&doc)).contains(&word.to_string()), "{clip}: {}", text(&doc));
    }
}

#[test]
fn base_translates_german_into_english() {
    let doc = base_json("pv_test_de", &["--task", "translate", "--language", "de"]);
    let words = normalize(&text(&doc));
    // "Der hinter diesem Portal liegende Raum wurde als Leichenhalle genutzt."
    assert!(words.contains(&"room".to_string()) && words.contains(&"used".to_string()), "{words:?}");
    assert!(!words.contains(&"wurde".to_string()), "{words:?}");
}
