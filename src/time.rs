//! Media time. Inside the pipeline time is an integer count of milliseconds; seconds appear only
//! at the sinks.

use std::fmt;

/// A point in media time, in milliseconds from the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

impl Ts {
    pub const ZERO: Ts = Ts(0);
    /// Later than any media time.
    pub const MAX: Ts = Ts(i64::MAX);

    pub fn from_samples(samples: u64, rate_hz: u32) -> Ts {
        Ts((samples as i128 * 1000 / rate_hz as i128) as i64)
    }
    pub fn from_secs_f64(secs: f64) -> Ts {
        Ts((secs * 1000.0).round() as i64)
    }
    pub fn ms(self) -> i64 {
        self.0
    }
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl std::ops::Add for Ts {
    type Output = Ts;
    fn add(self, o: Ts) -> Ts {
        Ts(self.0 + o.0)
    }
}

impl std::ops::Sub for Ts {
    type Output = Ts;
    fn sub(self, o: Ts) -> Ts {
        Ts(self.0 - o.0)
    }
}

impl Ts {
    /// `hh:mm:ss` and the milliseconds after `sep`: `','` for SubRip, `'.'` for WebVTT and
    /// messages. Negative times show as zero. The one formatter of clock times.
    pub fn clock(self, sep: char) -> String {
        let ms = self.0.max(0);
        format!("{:02}:{:02}:{:02}{sep}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
    }
}

impl fmt::Display for Ts {
    /// `hh:mm:ss.mmm`, the form messages use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.clock('.'))
    }
}

/// A half-open interval of media time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Ts,
    pub end: Ts,
}

impl Span {
    pub fn new(start: Ts, end: Ts) -> Span {
        Span { start, end }
    }
    pub fn duration(&self) -> Ts {
        self.end - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_pad_and_clamp() {
        assert_eq!(Ts(3_723_004).clock(','), "01:02:03,004");
        assert_eq!(Ts(-5).clock('.'), "00:00:00.000");
        assert_eq!(Ts(61_001).to_string(), "00:01:01.001");
    }
}
