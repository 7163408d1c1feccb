//! Our Whisper against candle-transformers' (`candle_transformers::models::whisper`) on the same
//! tiny.en weights and the same real clip (JFK): the encoder's output, and a greedy decode.
//!
//! candle-transformers is the reference, not what runs: its GELU is the tanh approximation
//! (Whisper's is erf), it keeps no self-attention cache (each step runs every token again), and
//! it runs candle's f32 operations only. The encoder outputs differ by the GELU and, with our CPU
//! kernels, by int8 rounding; the words must not.

mod common;

use std::time::Instant;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper as reference;
use subtitle::eval::normalize;
use subtitle::infer::decode::{DecodeOptions, WindowDecoder};
use subtitle::model::{Encoded, Kernels, LoadedModel};
use subtitle::preprocess::mel::{normalize_window, LogMel};
use subtitle::weights::{self, LoadOptions};

/// candle-transformers' (Hugging Face's) tensor names as OpenAI's, which our checkpoint keeps.
fn openai_name(hf: &str) -> String {
    let mut n = hf.strip_prefix("model.").unwrap_or(hf).to_string();
    for (from, to) in [
        ("encoder.layers.", "encoder.blocks."),
        ("decoder.layers.", "decoder.blocks."),
        (".self_attn_layer_norm", ".attn_ln"),
        (".encoder_attn_layer_norm", ".cross_attn_ln"),
        (".final_layer_norm", ".mlp_ln"),
        (".self_attn.", ".attn."),
        (".encoder_attn.", ".cross_attn."),
        (".q_proj", ".query"),
        (".k_proj", ".key"),
        (".v_proj", ".value"),
        (".out_proj", ".out"),
        (".fc1", ".mlp.0"),
        (".fc2", ".mlp.2"),
        ("encoder.layer_norm", "encoder.ln_post"),
        ("decoder.layer_norm", "decoder.ln"),
        ("decoder.embed_tokens.weight", "decoder.token_embedding.weight"),
        ("decoder.embed_positions.weight", "decoder.positional_embedding"),
    ] {
        n = n.replace(from, to);
    }
    n
}

fn ours(kernels: Kernels) -> LoadedModel {
    let dir = common::models().join("tiny.en");
    weights::load_whisper(&dir, &Device::Cpu, LoadOptions { kernels, training: false }).unwrap()
}

/// JFK's first (only) window, normalised log-mel, (1, 80, 3000).
fn jfk_mel() -> Tensor {
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(common::shared_real().join("mp4/jfk.mp4"))
        .args(["-ar", "16000", "-ac", "1", "-f", "f32le", "-"])
        .output()
        .unwrap();
    let pcm: Vec<f32> = o.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (mut mel, mut frames) = (LogMel::new(80), Vec::new());
    mel.push(&pcm, &mut frames);
    mel.flush(&mut frames);
    Tensor::from_vec(normalize_window(&frames, 80), (1, 80, 3000), &Device::Cpu).unwrap()
}

/// ||a - b|| / ||b||
fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    norm(&(a - b).unwrap()) / norm(b)
}

#[test]
fn our_whisper_matches_candle_transformers_on_the_same_weights() {
    let dev = Device::Cpu;
    let own = ours(Kernels::Own);
    let candle = ours(Kernels::Candle);
    let d = &own.config.dims;
    let cfg = reference::Config {
        num_mel_bins: d.n_mels,
        max_source_positions: d.n_audio_ctx,
        d_model: d.n_audio_state,
        encoder_attention_heads: d.n_audio_head,
        encoder_layers: d.n_audio_layer,
        vocab_size: d.n_vocab,
        max_target_positions: d.n_text_ctx,
        decoder_attention_heads: d.n_text_head,
        decoder_layers: d.n_text_layer,
        suppress_tokens: Vec::new(),
    };
    let st = common::models().join("tiny.en/model.safetensors");
    // SAFETY: the checkpoint is only read.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[st], DType::F32, &dev) }.unwrap().rename_f(openai_name);
    let mut theirs = reference::model::Whisper::load(&vb, cfg).unwrap();

    let mel = jfk_mel();
    let t0 = Instant::now();
    let want = theirs.encoder.forward(&mel, true).unwrap();
    let their_encode = t0.elapsed();
    let t0 = Instant::now();
    let got = own.whisper.encoder.forward(&mel).unwrap();
    let our_encode = t0.elapsed();
    let exact = candle.whisper.encoder.forward(&mel).unwrap();
    let (own_err, candle_err) = (relative_error(&got, &want), relative_error(&exact, &want));
    eprintln!(
        "encoder: relative error own kernels {own_err:.4}, candle's {candle_err:.4}; {:.0} ms against {:.0} ms",
        our_encode.as_secs_f64() * 1e3,
        their_encode.as_secs_f64() * 1e3
    );
    // Only the GELU differs with candle's operations; int8 products add their rounding.
    assert!(candle_err < 0.01, "candle's operations: {candle_err}");
    assert!(own_err < 0.06, "own kernels: {own_err}");

    // Greedy, text only, from <|startoftranscript|> <|notimestamps|>.
    let tok = weights::load_tokenizer(&common::models().join("tiny.en/tokenizer.json")).unwrap();
    let mut tokens = vec![tok.sot, tok.no_timestamps];
    let t0 = Instant::now();
    for i in 0..100 {
        let x = Tensor::new(tokens.as_slice(), &dev).unwrap().unsqueeze(0).unwrap();
        let h = theirs.decoder.forward(&x, &want, i == 0).unwrap();
        let logits = theirs.decoder.final_linear(&h.i((.., tokens.len() - 1.., ..)).unwrap()).unwrap();
        let next = logits.flatten_all().unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap();
        if next == tok.eot {
            break;
        }
        tokens.push(next);
    }
    let their_decode = t0.elapsed();
    let their_text = tok.decode(&tokens[2..]);
    let opts = DecodeOptions { beam_size: 1, without_timestamps: true, temperatures: vec![0.0], ..Default::default() };
    for (name, m, audio) in [("own kernels", &own, &got), ("candle's operations", &candle, &exact)] {
        let t0 = Instant::now();
        let r = WindowDecoder::new(&m.whisper, &tok, &m.config)
            .decode_with_fallback(&Encoded::new(audio.clone()), &[], &opts, 0)
            .unwrap();
        eprintln!(
            "{name}: decode {:.0} ms against {:.0} ms: {}",
            t0.elapsed().as_secs_f64() * 1e3,
            their_decode.as_secs_f64() * 1e3,
            tok.decode(&r.tokens)
        );
        // The same words; punctuation is the first thing rounding moves.
        assert_eq!(normalize(&tok.decode(&r.tokens)), normalize(&their_text), "{name}");
    }
    assert!(their_text.contains("ask not what your country can do for you"), "{their_text}");
}
