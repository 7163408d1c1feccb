//! Times the parts of a decoder step (forward, output projection) and the encoder, on the real
//! weights: `cargo run --release --example step -- models/tiny.en [BATCH]` (`STEPS=N`). With `WINDOWS=1`
//! the rows of the batch are different windows (the batched model stage), not beams of one.

use std::time::Instant;

use candle_core::{Device, IndexOp, Tensor};
use subtitle::model::Encoded;

fn main() -> anyhow::Result<()> {
    if std::env::var("RAYON_NUM_THREADS").is_err() {
        std::env::set_var("RAYON_NUM_THREADS", std::thread::available_parallelism()?.get().to_string());
    }
    // On a thread of the compute pool, as the model stage runs its windows.
    rayon::scope(|_| run())
}

fn run() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "models/tiny.en".into());
    let batch: usize = std::env::args().nth(2).map(|b| b.parse()).transpose()?.unwrap_or(1);
    subtitle::tune_allocator();
    let options = subtitle::weights::LoadOptions::inference(&Device::Cpu);
    let m = subtitle::weights::load_whisper(std::path::Path::new(&dir), &Device::Cpu, options)?;
    let w = &m.whisper;
    let mel = Tensor::randn(0f32, 1.0, (1, w.dims.n_mels, 3000), &Device::Cpu)?;
    // The encoder three times, the fastest shown (the first also pays for first touches).
    let mut best = f64::MAX;
    let mut audio = None;
    for _ in 0..3 {
        let t = Instant::now();
        audio = Some(w.encoder.forward(&mel)?);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let audio = audio.expect("three runs");
    println!("encoder: {:.0} ms", best * 1e3);
    let windows = std::env::var("WINDOWS").is_ok();
    let prompt = Tensor::new(&[50257u32, 50362], &Device::Cpu)?.unsqueeze(0)?;
    let mut state = if windows {
        // Windows of a batch, a row each, as the batched stage runs them.
        let audio = Encoded::new(Tensor::cat(&vec![&audio; batch], 0)?);
        let mut state = w.decoder.start_fused(&audio, None)?;
        w.decoder.forward(&prompt.repeat((batch, 1))?, &mut state)?;
        state
    } else {
        // One window, its rows sharing the audio, as beam search runs it.
        let mut state = w.decoder.start(&Encoded::new(audio))?;
        w.decoder.forward(&prompt, &mut state)?;
        state.select(&vec![0; batch])?;
        state
    };
    let (mut fwd, mut proj) = (0.0, 0.0);
    let steps: usize = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    for i in 0..steps {
        let x = Tensor::new(vec![(300 + i) as u32; batch].as_slice(), &Device::Cpu)?.unsqueeze(1)?;
        let t = Instant::now();
        let h = w.decoder.forward(&x, &mut state)?;
        fwd += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let l: Vec<Vec<f32>> = w.decoder.logits(&h.i((.., 0, ..))?)?.to_vec2()?;
        proj += t.elapsed().as_secs_f64();
        assert_eq!(l.len(), batch);
    }
    println!(
        "batch {batch}: forward {:.2} ms/step, logits {:.2} ms/step",
        fwd * 1e3 / steps as f64,
        proj * 1e3 / steps as f64
    );
    Ok(())
}
