//! SubRip through srtlib.

use srtlib::{Subtitle, Subtitles, Timestamp};

use crate::cue::Cue;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_milliseconds(ms.clamp(0, u32::MAX as i64) as u32)
}

/// Cue `number` (from 1): its number, timing and lines, each line ended.
pub fn block(number: usize, c: &Cue) -> String {
    let mut subs = Subtitles::new();
    subs.push(Subtitle::new(number, ts(c.span.start.ms()), ts(c.span.end.ms()), c.text()));
    format!("{subs}\n")
}

/// The cues' blocks, a blank line between two.
pub fn render(cues: &[Cue]) -> String {
    cues.iter().enumerate().map(|(i, c)| block(i + 1, c)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Span, Ts};

    #[test]
    fn renders_numbered_cues_with_line_breaks() {
        let a =
            Cue { span: Span::new(Ts(500), Ts(2_250)), lines: vec!["Hello".into(), "world".into()], over_speed: false };
        let b = Cue { span: Span::new(Ts(3_600_000), Ts(3_601_000)), lines: vec!["Later".into()], over_speed: false };
        assert_eq!(
            render(&[a.clone(), b.clone()]),
            "1\n00:00:00,500 --> 00:00:02,250\nHello\nworld\n\n2\n01:00:00,000 --> 01:00:01,000\nLater\n"
        );
        // It parses back.
        assert_eq!(srtlib::Subtitles::parse_from_str(render(&[a.clone(), b.clone()])).unwrap().len(), 2);
    }
}
