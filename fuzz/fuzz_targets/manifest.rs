//! Batch manifests: any text is items or an error; whatever the ids hold, every output lies
//! under the output directory, and no two items share one.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(items) = subtitle::batch::parse_manifest(text, Path::new("/archive")) else { return };
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let outputs = subtitle::batch::outputs(Path::new("/out"), &ids, "srt");
    let mut seen = std::collections::HashSet::new();
    for o in outputs.iter().flatten() {
        assert!(o.starts_with("/out"), "{o:?}");
        assert!(o.components().skip(1).all(|c| matches!(c, Component::Normal(_))), "{o:?}");
        assert!(seen.insert(o.clone()), "two items write {o:?}");
    }
    for id in ids {
        let _ = subtitle::batch::shard_of(id, 7);
    }
});
