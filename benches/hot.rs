//! Criterion micro-benchmarks of the hot parts, on the real tiny.en weights
//! (`models/fetch.sh tiny.en`): log-mel of 30 s, one encoder window, a decoder step at batch
//! 1, 8 and 16 (forward and output projection), and cue building for 10 minutes of words.
//!
//!   cargo bench --bench hot              # all
//!   cargo bench --bench hot -- step      # the decoder steps only

use std::hint::black_box;
use std::path::Path;

use candle_core::{Device, IndexOp, Tensor};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use subtitle::cue::{CueStage, Profile};
use subtitle::flow::Stage;
use subtitle::model::LoadedModel;
use subtitle::preprocess::mel::LogMel;
use subtitle::segment::{Segment, Transcript, Word};
use subtitle::time::{Span, Ts};

fn tiny() -> LoadedModel {
    subtitle::tune_allocator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny.en");
    let options = subtitle::weights::LoadOptions::inference(&Device::Cpu);
    subtitle::weights::load_whisper(&dir, &Device::Cpu, options).expect("tiny.en: run models/fetch.sh tiny.en")
}

fn mel(c: &mut Criterion) {
    // 30 s of a chirp at 16 kHz.
    let audio: Vec<f32> = (0..480_000).map(|i| ((i as f32) * (0.01 + i as f32 * 1e-8)).sin() * 0.3).collect();
    c.bench_function("mel 30 s", |b| {
        b.iter(|| {
            let mut m = LogMel::new(80);
            let mut out = Vec::with_capacity(3000 * 80);
            m.push(black_box(&audio), &mut out);
            m.flush(&mut out);
            out
        })
    });
}

fn model(c: &mut Criterion) {
    let m = tiny();
    let w = &m.whisper;
    let mel = Tensor::randn(0f32, 1.0, (1, 80, 3000), &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("tiny.en");
    g.sample_size(10);
    g.bench_function("encoder window", |b| b.iter(|| w.encoder.forward(black_box(&mel)).unwrap()));
    let audio = w.encode(&mel).unwrap();
    for batch in [1usize, 8, 16] {
        // A window's rows (beams, samples) after a 2-token prompt and 50 steps.
        let mut state = w.decoder.start(&audio).unwrap();
        let prompt = Tensor::new(&[50257u32, 50362], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        w.decoder.forward(&prompt, &mut state).unwrap();
        state.select(&vec![0; batch]).unwrap();
        let tokens = Tensor::new(vec![300u32; batch].as_slice(), &Device::Cpu).unwrap().unsqueeze(1).unwrap();
        for _ in 0..50 {
            w.decoder.forward(&tokens, &mut state).unwrap();
        }
        g.bench_function(format!("decoder step batch {batch}"), |b| {
            b.iter_batched(
                || state.clone(),
                |mut s| {
                    let h = w.decoder.forward(&tokens, &mut s).unwrap();
                    w.decoder.logits(&h.i((.., 0, ..)).unwrap()).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn cues(c: &mut Criterion) {
    // 10 minutes of segments of 12 words, 2.5 words a second.
    let words = ["the", "history", "of", "the", "town", "begins", "with", "a", "small", "market,", "by", "river."];
    let segments: Vec<Transcript> = (0..125)
        .map(|s| {
            let at = |i: usize| Ts(((s * 12 + i) * 400) as i64);
            let words: Vec<Word> = words
                .iter()
                .enumerate()
                .map(|(i, t)| Word { span: Span::new(at(i), at(i) + Ts(350)), text: t.to_string(), probability: 0.9 })
                .collect();
            Transcript::Segment(Segment {
                span: Span::new(at(0), at(12)),
                text: words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "),
                tokens: Vec::new(),
                probabilities: Vec::new(),
                avg_logprob: -0.2,
                no_speech_prob: 0.01,
                temperature: 0.0,
                compression_ratio: 1.5,
                words,
            })
        })
        .collect();
    c.bench_function("cues 10 min", |b| {
        b.iter_batched(
            || segments.clone(),
            |segments| {
                let mut stage = CueStage::new(Profile::netflix_en(), 25.0);
                let mut out = Vec::new();
                for s in segments {
                    stage.process(s, &mut out).unwrap();
                }
                stage.finish(&mut out).unwrap();
                out
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, mel, model, cues);
criterion_main!(benches);
