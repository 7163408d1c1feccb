//! Prints the voice-activity features of a file every 100 ms, for tuning `[vad]`.
//!
//!   vad FILE

use subtitle::preprocess::mel::LogMel;
use subtitle::preprocess::vad::{frame_energy_db, regions, spectral_flux, speech_frames, VadConfig};
use subtitle::source::{open, Media, VideoSampling};
use subtitle::time::Ts;

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).expect("usage: vad FILE");
    let mut src = open(path.as_ref(), &VideoSampling::default())?;
    let mut mel = LogMel::new(80);
    let mut frames = Vec::new();
    let mut media = Vec::new();
    while src.pull(&mut media)? {
        for m in media.drain(..) {
            if let Media::Audio(a) = m {
                mel.push(&a.samples, &mut frames);
            }
        }
    }
    mel.flush(&mut frames);
    let flags = speech_frames(&frames, 80, &VadConfig::default());
    for (i, chunk) in frames.chunks(800).enumerate() {
        let f: Vec<f32> = chunk.chunks_exact(80).map(frame_energy_db).collect();
        let base = i * 800;
        let flux: f32 = (0..chunk.len() / 80)
            .map(|k| {
                if base + k * 80 >= 80 {
                    spectral_flux(&frames[base + k * 80 - 80..base + k * 80], &chunk[k * 80..k * 80 + 80])
                } else {
                    0.0
                }
            })
            .sum::<f32>()
            / (chunk.len() / 80) as f32;
        let e = f.iter().sum::<f32>() / f.len() as f32;
        let s = flags[i * 10..(i * 10 + 10).min(flags.len())].iter().filter(|&&x| x).count();
        println!("{:>6.1}s energy {e:7.1} dB speech {s}/10 change {flux:.2} dB", i as f32 / 10.0);
    }
    for r in regions(&flags, Ts::ZERO) {
        println!("speech {} - {}", r.start, r.end);
    }
    Ok(())
}
