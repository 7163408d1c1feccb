//! SRT and WebVTT as `subtitle check` and `subtitle train` read them, then linted: any text
//! parses or is refused, and a parsed file lints, without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(cues) = subtitle::check::parse(text) {
        let profile = subtitle::config::PipelineConfig::default_file().cues.resolve("netflix-en").unwrap();
        let _ = subtitle::check::lint(&cues, &profile, 25.0);
    }
});
