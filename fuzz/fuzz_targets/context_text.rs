//! Context files (`--context`): any text gives terms and a prompt of bounded length.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use subtitle::context::Context;
use subtitle::time::{Span, Ts};

fn tokenizer() -> &'static subtitle::model::WhisperTokenizer {
    static TOK: OnceLock<subtitle::model::WhisperTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tiny.en/tokenizer.json");
        subtitle::weights::load_tokenizer(std::path::Path::new(path)).expect("models/fetch.sh tiny.en first")
    })
}

fuzz_target!(|text: &str| {
    let tok = tokenizer();
    let cfg = subtitle::config::PipelineConfig::default_file().context;
    let mut ctx = Context::new(cfg);
    ctx.add_text(text, tok);
    let window = Span::new(Ts(0), Ts(30_000));
    let _ = ctx.terms(window, tok);
    let prompt = ctx.prompt(window, tok);
    assert!(prompt.len() <= 224, "a prompt of {} tokens", prompt.len());
});
