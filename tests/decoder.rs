//! The decoder's two paths on the real tiny.en weights: a step of one token per row runs on
//! plain slices (`model::step`), prompts and alignment on candle. Both must give the same hidden
//! states, with beams reordered between steps, and over the audio of a real clip.

mod common;

use candle_core::{Device, IndexOp, Tensor};
use subtitle::model::{Encoded, LoadedModel, WhisperTokenizer};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn a_step_matches_the_same_token_in_a_prompt_and_beams_keep_their_rows() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let (m, _) = common::tiny();
    let (enc, dec) = (&m.whisper.encoder, &m.whisper.decoder);
    // A second of a tone and noise: the audio only has to be the same for both paths.
    let mel: Vec<f32> = (0..80 * 3000).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * 0.5).collect();
    let audio = Encoded::new(enc.forward(&Tensor::from_vec(mel, (1, 80, 3000), &dev)?)?);
    // <|startoftranscript|> <|notimestamps|> "The" " history" " of"
    let prefix = [50257u32, 50362, 464, 2106];
    let next = [286u32, 262, 3240];
    let ids = |t: &[u32]| Tensor::new(t, &dev).and_then(|x| x.unsqueeze(0));

    // Whole prompts (fewer than 16 rows: candle with the same packed weights as a step).
    let whole: Vec<Tensor> = next
        .iter()
        .map(|&n| {
            let mut t = prefix.to_vec();
            t.push(n);
            let mut s = dec.start(&audio)?;
            dec.forward(&ids(&t)?, &mut s)?.i((.., prefix.len(), ..))
        })
        .collect::<candle_core::Result<_>>()?;

    // The prefix, then one step of one row.
    let mut state = dec.start(&audio)?;
    dec.forward(&ids(&prefix)?, &mut state)?;
    let mut single = state.clone();
    let h = dec.forward(&ids(&next[..1])?, &mut single)?.i((.., 0, ..))?;
    // Hidden states run to about 50 here; the step reads the audio's keys and values and its
    // own cache in f16, the prompt in f32: within 5e-4 of the largest value (measured: 2.3e-4;
    // 3e-5 to 6e-5 with the cache in f32).
    let scale = |w: &Tensor| w.abs()?.max(1)?.to_vec1::<f32>().map(|v| v[0]);
    let d = max_diff(&h, &whole[0]);
    assert!(d < 5e-4 * scale(&whole[0])?, "a step differs from the prompt by {d}");
    assert_eq!(single.len(), prefix.len() + 1);

    // Three beams from the prefix: each row as its own prompt.
    state.select(&[0, 0, 0])?;
    let rows = Tensor::new(&next, &dev)?.unsqueeze(1)?;
    let h = dec.forward(&rows, &mut state)?;
    for (r, w) in whole.iter().enumerate() {
        let d = max_diff(&h.i((r..r + 1, 0, ..))?, w);
        assert!(d < 5e-4 * scale(w)?, "beam {r} differs from its prompt by {d}");
    }
    // Reordered, then one more step: row 0 now continues beam 2, row 1 beam 0.
    state.select(&[2, 0])?;
    let h2 = dec.forward(&Tensor::new(&[13u32, 13], &dev)?.unsqueeze(1)?, &mut state)?;
    for (row, beam) in [(0usize, 2usize), (1, 0)] {
        // The same tokens stepped one row at a time: the same arithmetic (summed in another order).
        let mut s = dec.start(&audio)?;
        dec.forward(&ids(&prefix)?, &mut s)?;
        dec.forward(&ids(&[next[beam]])?, &mut s)?;
        let w = dec.forward(&ids(&[13])?, &mut s)?.i((.., 0, ..))?;
        let d = max_diff(&h2.i((row..row + 1, 0, ..))?, &w);
        assert!(d < 1e-3, "row {row} (beam {beam}) after reordering differs from its own steps by {d}");
        // And as one prompt: f16 audio keys and values in steps, f32 in candle.
        let mut t = prefix.to_vec();
        t.extend([next[beam], 13]);
        let mut s = dec.start(&audio)?;
        let w = dec.forward(&ids(&t)?, &mut s)?.i((.., t.len() - 1, ..))?;
        let scale = w.abs()?.max(1)?.to_vec1::<f32>()?[0];
        let d = max_diff(&h2.i((row..row + 1, 0, ..))?, &w);
        assert!(
            d < 1e-2 * scale.max(1.0),
            "row {row} (beam {beam}) after reordering differs from its prompt by {d} (values up to {scale})"
        );
    }
    // Back to candle after a step: two more tokens as a prompt on the stepped state, against
    // all of them as one prompt.
    let h3 = dec.forward(&ids(&[13, 11])?, &mut single)?.i((.., 1, ..))?;
    assert_eq!(single.len(), prefix.len() + 3);
    let mut t = prefix.to_vec();
    t.extend([next[0], 13, 11]);
    let mut s = dec.start(&audio)?;
    let w = dec.forward(&ids(&t)?, &mut s)?.i((.., t.len() - 1, ..))?;
    let d = max_diff(&h3, &w);
    assert!(d < 2e-2, "a prompt after a step differs by {d}");
    Ok(())
}

/// 16 kHz mono samples of `path`, through the ffmpeg CLI.
fn samples(path: &std::path::Path) -> Vec<f32> {
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-ar", "16000", "-ac", "1", "-f", "f32le", "-"])
        .output()
        .expect("running ffmpeg");
    assert!(o.status.success(), "ffmpeg failed on {}", path.display());
    o.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// tiny.en, its tokenizer, and the encoder's output for three real clips (jfk, LJ001-0001,
/// LJ001-0003), a window each, (1, 1500, state).
fn tiny_and_three_clips() -> (LoadedModel, WhisperTokenizer, Vec<Tensor>) {
    use subtitle::preprocess::mel::{normalize_window, LogMel};
    let dev = Device::Cpu;
    let (m, tok) = common::tiny();
    let real = common::shared_real();
    let audio = ["jfk", "lj_LJ001-0001", "lj_LJ001-0003"]
        .iter()
        .map(|id| {
            let mut mel = LogMel::new(80);
            let mut frames = Vec::new();
            mel.push(&samples(&real.join(format!("mp4/{id}.mp4"))), &mut frames);
            mel.flush(&mut frames);
            m.whisper.encoder.forward(&Tensor::from_vec(normalize_window(&frames, 80), (1, 80, 3000), &dev).unwrap())
        })
        .collect::<candle_core::Result<_>>()
        .unwrap();
    (m, tok, audio)
}

/// Windows decoded as one batch (each with its own audio keys and values, their beams rows of
/// one state) give each window the tokens it gets decoded alone, greedy and with beams.
#[test]
fn a_batch_of_windows_decodes_as_each_window_alone() -> candle_core::Result<()> {
    use subtitle::infer::decode::{WindowDecoder, WindowStart};
    use subtitle::infer::DecodeOptions;
    let (m, tok, alone) = tiny_and_three_clips();
    let batch = Encoded::new(Tensor::cat(&alone, 0)?);
    for beam_size in [1, 5] {
        let opts = DecodeOptions { beam_size, ..Default::default() };
        let mut decoder = WindowDecoder::new(&m.whisper, &tok, &m.config);
        let starts: Vec<WindowStart> = (1..=3).map(|seed| WindowStart::new(Vec::new(), seed)).collect();
        let together = decoder.decode_batch_with_fallback(&batch, &starts, &opts)?;
        assert_eq!(together.len(), alone.len());
        for (i, (audio, t)) in alone.iter().zip(&together).enumerate() {
            let one = decoder.decode_with_fallback(&Encoded::new(audio.clone()), &[], &opts, i as u64 + 1)?;
            assert!(!one.tokens.is_empty(), "window {i} decoded nothing");
            assert_eq!(
                t.tokens,
                one.tokens,
                "beam {beam_size}, window {i}: batched {:?} alone {:?}",
                tok.decode(&t.tokens),
                tok.decode(&one.tokens)
            );
            assert!((t.avg_logprob - one.avg_logprob).abs() < 1e-2, "{} vs {}", t.avg_logprob, one.avg_logprob);
            assert!((t.no_speech_prob - one.no_speech_prob).abs() < 1e-3);
        }
    }
    Ok(())
}

/// `max_new_tokens` bounds what a window decodes, greedy and with beams: a bounded window's
/// tokens are the first of the unbounded one's (greedy), and never more than the bound.
#[test]
fn decoding_stops_at_max_new_tokens() -> candle_core::Result<()> {
    use subtitle::infer::decode::WindowDecoder;
    use subtitle::infer::DecodeOptions;
    let (m, tok, audio) = tiny_and_three_clips();
    let audio = Encoded::new(audio[0].clone());
    for beam_size in [1, 5] {
        let opts = DecodeOptions { beam_size, temperatures: vec![0.0], ..Default::default() };
        let mut decoder = WindowDecoder::new(&m.whisper, &tok, &m.config);
        let free = decoder.decode_with_fallback(&audio, &[], &opts, 1)?;
        assert!(free.tokens.len() > 8, "{:?}", tok.decode(&free.tokens));
        let bounded = DecodeOptions { max_new_tokens: Some(6), ..opts };
        let cut = decoder.decode_with_fallback(&audio, &[], &bounded, 1)?;
        assert!(!cut.tokens.is_empty() && cut.tokens.len() <= 6, "beam {beam_size}: {} tokens", cut.tokens.len());
        if beam_size == 1 {
            assert_eq!(cut.tokens, free.tokens[..cut.tokens.len()]);
        }
    }
    Ok(())
}

/// Requests of several inputs decoded together (`infer::shared`): those with the same prompt,
/// or another prompt as long (two live streams' passes, each after its own text), become one
/// batch, a prompt of another length its own; each request gets its own rows, in its order, as
/// it gets them decoded alone, within its own bound on new tokens. At a temperature that
/// samples, each window samples from its own seed, whatever is decoded beside it.
#[test]
fn requests_decoded_together_get_their_own_rows() -> candle_core::Result<()> {
    use std::sync::Arc;
    use subtitle::infer::decode::{WindowDecoder, WindowStart};
    use subtitle::infer::shared::decode_together;
    use subtitle::infer::{DecodeOptions, DecodeRequest, ModelTranscriber};
    let (m, tok, audio) = tiny_and_three_clips();
    let model = ModelTranscriber::new(Arc::new(m), Arc::new(tok));
    let (m, tok) = (&model.model, &model.tokenizer);
    let (one, other) = (tok.encode(" Printing, Kennedy."), tok.encode(" The history of the Gutenberg Bible."));
    let n = one.len().min(other.len());
    let (prompt, other) = (one[one.len() - n..].to_vec(), other[other.len() - n..].to_vec());
    assert_ne!(prompt, other);
    for temperatures in [vec![0.0], vec![0.8]] {
        let opts = DecodeOptions { beam_size: 1, without_timestamps: true, temperatures, ..Default::default() };
        let start = |w: usize, prompt: &[u32], bound: Option<usize>| WindowStart {
            prompt: prompt.to_vec(),
            seed: 100 + w as u64,
            max_new_tokens: bound,
        };
        let request = |windows: &[usize], prompt: &[u32], bound| -> candle_core::Result<DecodeRequest> {
            let parts: Vec<&Tensor> = windows.iter().map(|&w| &audio[w]).collect();
            Ok(DecodeRequest {
                audio: Encoded::new(Tensor::cat(&parts, 0)?),
                starts: windows.iter().map(|&w| start(w, prompt, bound)).collect(),
                opts: opts.clone(),
                memory: None,
            })
        };
        let expect = [
            (vec![1, 0], Vec::new(), None),
            (vec![2], prompt.clone(), None),
            (vec![2], Vec::new(), None),
            (vec![0], other.clone(), Some(5)),
        ];
        let requests = expect.iter().map(|(w, p, b)| request(w, p, *b)).collect::<candle_core::Result<_>>()?;
        let together = decode_together(&model, requests);
        for (i, (r, (rows, prompt, bound))) in together.into_iter().zip(expect).enumerate() {
            let r = r?;
            assert_eq!(r.len(), rows.len(), "request {i}");
            for (got, &row) in r.iter().zip(&rows) {
                let alone = WindowDecoder::new(&m.whisper, tok, &m.config)
                    .decode_batch_with_fallback(
                        &Encoded::new(audio[row].clone()),
                        &[start(row, &prompt, bound)],
                        &opts,
                    )?
                    .remove(0);
                assert!(!alone.tokens.is_empty());
                assert!(bound.is_none_or(|b| got.tokens.len() <= b), "request {i}: {} tokens", got.tokens.len());
                assert_eq!(
                    tok.decode(&got.tokens),
                    tok.decode(&alone.tokens),
                    "request {i}, window {row}, {:?}",
                    opts.temperatures
                );
            }
        }
    }
    Ok(())
}

/// The shared model stage (several inputs, or live streams, on one model) does not wait for a
/// seat that said it is idle (a live stream between passes, waiting for audio): a decode sent
/// meanwhile goes at once, however long the wait may be. Once that seat encodes again, a decode
/// waits for its decode and goes with it, one batch of both, each with the words it gets alone.
#[test]
fn a_shared_decode_does_not_wait_for_an_idle_seat() -> candle_core::Result<()> {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use subtitle::infer::decode::WindowStart;
    use subtitle::infer::{DecodeOptions, DecodeRequest, ModelTranscriber};
    use subtitle::pipeline::shared::{spawn_shared_batcher, ShareConfig};
    use subtitle::preprocess::mel::{normalize_window, LogMel};
    let (m, tok) = common::tiny();
    let model = ModelTranscriber::new(Arc::new(m), Arc::new(tok));
    let mut frames = Vec::new();
    let mut log_mel = LogMel::new(80);
    log_mel.push(&samples(&common::shared_real().join("mp4/jfk.mp4")), &mut frames);
    log_mel.flush(&mut frames);
    let mel = normalize_window(&frames, 80);
    let wait = Duration::from_secs(30);
    let opts = DecodeOptions { beam_size: 1, temperatures: vec![0.0], ..Default::default() };
    let request = |audio: Encoded| DecodeRequest {
        audio,
        starts: vec![WindowStart::new(Vec::new(), 1)],
        opts: opts.clone(),
        memory: None,
    };
    std::thread::scope(|s| -> candle_core::Result<()> {
        let batcher = spawn_shared_batcher(s, model.clone(), ShareConfig { rows: 2, wait, inputs: 2 });
        let (a, b) = (batcher.seat(), batcher.seat());
        // The other seat idle: decoded at once, alone.
        b.idle();
        let audio = a.encode(mel.clone(), 1)?;
        let t = Instant::now();
        let alone = a.decode(request(audio.clone()))?.remove(0);
        assert!(t.elapsed() < wait / 3, "a decode waited {:?} for an idle seat", t.elapsed());
        assert_eq!(batcher.stats.max_inputs.load(Ordering::SeqCst), 1);
        assert!(model.tokenizer.decode(&alone.tokens).contains("country"));
        // Both at work again: whichever decode comes first waits for the other.
        let (audio_a, audio_b) = (a.encode(mel.clone(), 1)?, b.encode(mel.clone(), 1)?);
        let (seat, req) = (Arc::clone(&a), request(audio_a));
        let first = s.spawn(move || seat.decode(req));
        std::thread::sleep(Duration::from_millis(300));
        let second = b.decode(request(audio_b))?.remove(0);
        let first = first.join().expect("the first decode")?.remove(0);
        assert_eq!(batcher.stats.max_inputs.load(Ordering::SeqCst), 2, "the two decodes went apart");
        assert_eq!((first.tokens, second.tokens), (alone.tokens.clone(), alone.tokens));
        Ok(())
    })
}
