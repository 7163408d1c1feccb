//! Pipeline files (`--pipeline`): any text is a pipeline or an error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(p) = subtitle::config::PipelineConfig::parse(text, std::path::Path::new("fuzz.toml")) {
        let name = p.cues.profile.clone();
        let _ = p.cues.resolve(&name);
    }
});
