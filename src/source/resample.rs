//! Streaming band-limited resampling (windowed sinc) for sources that do not resample
//! themselves. FFmpeg inputs use swresample instead.

/// Zero crossings of the sinc on each side of a sample.
const ZERO_CROSSINGS: f64 = 16.0;

pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// Low-pass cutoff relative to the input Nyquist.
    cutoff: f64,
    /// Half the kernel length, in input samples.
    half_width: f64,
    buf: Vec<f32>,
    /// Absolute input index of `buf[0]`.
    base: usize,
    total_in: usize,
    next_out: u64,
}

impl Resampler {
    pub fn new(in_rate: u32, out_rate: u32) -> Self {
        let cutoff = (out_rate as f64 / in_rate as f64).min(1.0) * 0.97;
        Self {
            in_rate,
            out_rate,
            cutoff,
            half_width: ZERO_CROSSINGS / cutoff,
            buf: Vec::new(),
            base: 0,
            total_in: 0,
            next_out: 0,
        }
    }

    fn position(&self, n: u64) -> f64 {
        (n as f64 * self.in_rate as f64) / self.out_rate as f64
    }

    fn input(&self, i: i64) -> f32 {
        if i < 0 || i as usize >= self.total_in {
            return 0.0;
        }
        self.buf.get(i as usize - self.base).copied().unwrap_or(0.0)
    }

    fn emit(&mut self, out: &mut Vec<f32>) {
        let x = self.position(self.next_out);
        if self.in_rate == self.out_rate {
            out.push(self.input(x as i64));
        } else {
            let lo = (x - self.half_width).ceil() as i64;
            let hi = (x + self.half_width).floor() as i64;
            let mut acc = 0.0f64;
            for k in lo..=hi {
                let d = x - k as f64;
                let arg = d * self.cutoff;
                let sinc = if arg.abs() < 1e-9 {
                    1.0
                } else {
                    (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
                };
                // Blackman window over [-half_width, half_width].
                let t = d / self.half_width;
                let win = 0.42 + 0.5 * (std::f64::consts::PI * t).cos() + 0.08 * (2.0 * std::f64::consts::PI * t).cos();
                acc += self.input(k) as f64 * self.cutoff * sinc * win;
            }
            out.push(acc as f32);
        }
        self.next_out += 1;
    }

    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.buf.extend_from_slice(input);
        self.total_in += input.len();
        while self.position(self.next_out) + self.half_width + 1.0 < self.total_in as f64 {
            self.emit(out);
        }
        let keep_from = (self.position(self.next_out) - self.half_width - 1.0).floor().max(0.0) as usize;
        if keep_from > self.base {
            let drop = (keep_from - self.base).min(self.buf.len());
            self.buf.drain(..drop);
            self.base += drop;
        }
    }

    /// End of input: the outputs whose time falls inside it.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        while self.position(self.next_out) < self.total_in as f64 {
            self.emit(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, n: usize) -> Vec<f32> {
        (0..n).map(|i| (2.0 * std::f64::consts::PI * hz * i as f64 / rate as f64).sin() as f32).collect()
    }

    #[test]
    fn length_and_tone_survive_44100_to_16000() {
        let input = tone(44_100, 440.0, 44_100);
        let mut r = Resampler::new(44_100, 16_000);
        let mut out = Vec::new();
        for c in input.chunks(1000) {
            r.push(c, &mut out);
        }
        r.flush(&mut out);
        assert_eq!(out.len(), 16_000);
        let want = tone(16_000, 440.0, 16_000);
        let err: f32 = out[200..15_800].iter().zip(&want[200..15_800]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        let input = tone(48_000, 12_000.0, 48_000);
        let mut r = Resampler::new(48_000, 16_000);
        let mut out = Vec::new();
        r.push(&input, &mut out);
        r.flush(&mut out);
        let rms = (out[500..15_500].iter().map(|x| x * x).sum::<f32>() / 15_000.0).sqrt();
        assert!(rms < 0.01, "aliased energy {rms}");
    }
}
