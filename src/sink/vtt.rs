//! WebVTT (https://www.w3.org/TR/webvtt1/): a `WEBVTT` header, then cues separated by blank
//! lines. Cue text cannot hold a blank line or the string `-->`, and `&`, `<` are escaped.

use crate::cue::Cue;

fn escape(line: &str) -> String {
    line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The file's first line.
pub const HEADER: &str = "WEBVTT\n";

/// One cue: a blank line, its timing and its lines, each line ended.
pub fn block(c: &Cue) -> String {
    let mut s = format!("\n{} --> {}\n", c.span.start.clock('.'), c.span.end.clock('.'));
    for line in c.lines.iter().filter(|l| !l.trim().is_empty()) {
        s.push_str(&escape(line));
        s.push('\n');
    }
    s
}

pub fn render(cues: &[Cue]) -> String {
    let mut s = String::from(HEADER);
    s.extend(cues.iter().map(block));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Span, Ts};

    #[test]
    fn header_timing_and_escaping() {
        let a = Cue {
            span: Span::new(Ts(61_001), Ts(62_000)),
            lines: vec!["Tom & Jerry".into(), "a --> b <i>".into()],
            over_speed: false,
        };
        assert_eq!(render(&[a]), "WEBVTT\n\n00:01:01.001 --> 00:01:02.000\nTom &amp; Jerry\na --&gt; b &lt;i&gt;\n");
        assert_eq!(render(&[]), "WEBVTT\n");
    }
}
