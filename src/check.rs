//! `subtitle check`: lints an SRT or WebVTT file, ours or any other tool's, against a profile.
//!
//! WebVTT is read as the W3C parser does (https://www.w3.org/TR/webvtt1/#file-parsing): a
//! `WEBVTT` signature, blocks separated by blank lines, a cue's timing line holding `-->`, an
//! optional identifier line before it, `NOTE`, `STYLE` and `REGION` blocks skipped. Tags and
//! entities do not count as characters.

use std::path::Path;

use crate::cue::profile::Profile;
use crate::cue::timing::frames_ms;
use crate::error::{Error, Result};
use crate::time::{Span, Ts};

/// A cue as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCue {
    /// 1-based position in the file.
    pub number: usize,
    pub span: Span,
    /// Lines as a reader sees them (no tags, entities decoded).
    pub lines: Vec<String>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub cue: usize,
    pub at: Ts,
    pub over_speed: bool,
    pub message: String,
}

/// Reads `path` as SRT or WebVTT (by its `WEBVTT` signature, else as SRT).
pub fn read(path: &Path) -> Result<Vec<ParsedCue>> {
    let bytes = std::fs::read(path).map_err(|e| Error::input(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::input(path, "not UTF-8 text"))?;
    parse(&text).map_err(|e| Error::input(path, e))
}

/// Parses `text` as SRT or WebVTT (by its `WEBVTT` signature, else as SRT).
pub fn parse(text: &str) -> std::result::Result<Vec<ParsedCue>, String> {
    let text = text.trim_start_matches('\u{feff}').replace("\r\n", "\n").replace('\r', "\n");
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    if text.starts_with("WEBVTT") {
        parse_vtt(&text)
    } else {
        parse_srt(&text)
    }
}

/// `hh:mm:ss,mmm` (SRT) or `[hh:]mm:ss.mmm` (WebVTT).
fn parse_ts(s: &str) -> Option<Ts> {
    let s = s.trim();
    let (hms, frac) = s.rsplit_once([',', '.'])?;
    if frac.len() != 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    let nums: Option<Vec<i64>> = parts.iter().map(|p| p.parse::<i64>().ok()).collect();
    let nums = nums?;
    let (h, m, sec) = match nums.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [m, s] => (0, *m, *s),
        _ => return None,
    };
    if m > 59 || sec > 59 {
        return None;
    }
    Some(Ts(((h * 60 + m) * 60 + sec) * 1000 + frac.parse::<i64>().ok()?))
}

fn timing_line(line: &str) -> Option<Span> {
    let (a, b) = line.split_once("-->")?;
    let end = b.split_whitespace().next()?; // WebVTT settings follow the end time
    Some(Span::new(parse_ts(a)?, parse_ts(end)?))
}

/// Text as a reader sees it: tags removed, the common entities decoded.
fn visible(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            // SRT's {\an8}-style positioning tags.
            _ if in_tag => {}
            _ => out.push(c),
        }
    }
    let out = strip_braces(&out);
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ").replace("&amp;", "&")
}

fn strip_braces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("{\\") {
        out.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// SubRip through srtlib; its errors name the cue.
pub(crate) fn parse_srt(text: &str) -> std::result::Result<Vec<ParsedCue>, String> {
    let subs = srtlib::Subtitles::parse_from_str(text.to_string()).map_err(|e| format!("not valid SubRip: {e}"))?;
    let ms = |t: &srtlib::Timestamp| {
        let (h, m, s, ms) = t.get();
        Ts(((h as i64 * 60 + m as i64) * 60 + s as i64) * 1000 + ms as i64)
    };
    Ok(subs
        .to_vec()
        .iter()
        .enumerate()
        .map(|(i, s)| ParsedCue {
            number: i + 1,
            span: Span::new(ms(&s.start_time), ms(&s.end_time)),
            lines: s.text.lines().map(visible).collect(),
        })
        .collect())
}

pub(crate) fn parse_vtt(text: &str) -> std::result::Result<Vec<ParsedCue>, String> {
    let mut blocks = text.split("\n\n").filter(|b| !b.trim().is_empty());
    let header = blocks.next().unwrap_or_default();
    let sig = header.lines().next().unwrap_or_default();
    if !(sig == "WEBVTT" || sig.starts_with("WEBVTT ") || sig.starts_with("WEBVTT\t")) {
        return Err("not WebVTT: the first line must be WEBVTT".into());
    }
    let mut cues = Vec::new();
    for block in blocks {
        let block = block.trim_matches('\n');
        let mut lines = block.lines().peekable();
        let first = *lines.peek().unwrap_or(&"");
        if first.starts_with("NOTE") || first == "STYLE" || first == "REGION" {
            continue;
        }
        if !first.contains("-->") {
            lines.next(); // cue identifier
        }
        let Some(timing) = lines.next() else { continue };
        let span = timing_line(timing).ok_or_else(|| {
            format!("cue {}: bad timing line {:?}", cues.len() + 1, timing.chars().take(60).collect::<String>())
        })?;
        cues.push(ParsedCue { number: cues.len() + 1, span, lines: lines.map(visible).collect() });
    }
    Ok(cues)
}

/// Every rule of `p` each cue breaks, at `fps` frames a second.
pub fn lint(cues: &[ParsedCue], p: &Profile, fps: f64) -> Vec<Violation> {
    let mut out = Vec::new();
    let gap = frames_ms(p.min_gap_frames, fps);
    let frame_ms = 1000.0 / fps;
    for (i, c) in cues.iter().enumerate() {
        let mut v = |over_speed: bool, message: String| {
            out.push(Violation { cue: c.number, at: c.span.start, over_speed, message })
        };
        let text = c.lines.join("\n");
        if text.trim().is_empty() {
            v(false, "no text".into());
        }
        if c.lines.len() > p.max_lines {
            v(false, format!("{} lines (max {})", c.lines.len(), p.max_lines));
        }
        for (k, l) in c.lines.iter().enumerate() {
            let n = l.chars().count();
            if n > p.max_line_chars {
                v(false, format!("line {} has {n} characters (max {})", k + 1, p.max_line_chars));
            }
        }
        let d = c.span.duration().ms();
        if d < p.min_duration_ms {
            v(false, format!("on screen {:.3} s (min {:.3} s)", d as f64 / 1000.0, p.min_duration_ms as f64 / 1000.0));
        }
        if d > p.max_duration_ms {
            v(false, format!("on screen {:.3} s (max {:.3} s)", d as f64 / 1000.0, p.max_duration_ms as f64 / 1000.0));
        }
        if let Some((speed, max, unit)) = p.speed(&text, d) {
            if speed > max + 1e-6 {
                v(true, format!("reading speed {speed:.1} {unit} (max {max:.0})"));
            }
        }
        if let Some(next) = cues.get(i + 1) {
            let g = next.span.start - c.span.end;
            // SRT holds milliseconds: a gap one millisecond short of whole frames is rounding.
            if g < Ts::ZERO {
                v(false, format!("overlaps the next cue by {:.3} s", -g.ms() as f64 / 1000.0));
            } else if g < gap - Ts(1) {
                v(
                    false,
                    format!("gap to the next cue is {:.1} frames (min {})", g.ms() as f64 / frame_ms, p.min_gap_frames),
                );
            } else if g > gap + Ts(1) && g.ms() as f64 <= p.chain_gap_frames as f64 * frame_ms {
                v(
                    false,
                    format!(
                        "gap to the next cue is {:.1} frames: gaps up to {} frames close to {}",
                        g.ms() as f64 / frame_ms,
                        p.chain_gap_frames,
                        p.min_gap_frames
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_srt_and_webvtt_alike() {
        let srt = "1\n00:00:01,000 --> 00:00:03,500\n<i>Hello</i>\nworld\n\n2\n00:00:04,000 --> 00:00:05,000\nBye\n";
        let vtt = "WEBVTT - title\n\nNOTE a comment\n\nid-1\n00:01.000 --> 00:03.500 align:start\n<i>Hello</i>\nworld\n\n00:00:04.000 --> 00:00:05.000\nBye\n";
        let a = parse_srt(srt).unwrap();
        let b = parse_vtt(vtt).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].lines, vec!["Hello", "world"]);
        assert_eq!(a[1].span, Span::new(Ts(4000), Ts(5000)));
        assert!(parse_vtt("WEBVTTX\n\n").is_err());
        assert!(parse_srt("1\n00:00:01 --> 00:00:02\nx\n").is_err());
    }

    #[test]
    fn each_rule_is_reported_with_its_cue() {
        let cue = |n: usize, a: i64, b: i64, lines: &[&str]| ParsedCue {
            number: n,
            span: Span::new(Ts(a), Ts(b)),
            lines: lines.iter().map(|s| s.to_string()).collect(),
        };
        let cues = vec![
            cue(1, 0, 2000, &["This line is far too long to be a subtitle line at all", "b", "c"]),
            cue(2, 2010, 2500, &["Short and fast and far too much text for half a second"]),
            cue(3, 2800, 11_000, &["Long"]),
        ];
        let v = lint(&cues, &Profile::netflix_en(), 24.0);
        let msgs: Vec<String> = v.iter().map(|v| format!("{} {}", v.cue, v.message)).collect();
        assert!(msgs.iter().any(|m| m.starts_with("1 3 lines")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("1 line 1 has 54 characters")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("1 gap to the next cue is 0.2 frames")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("2 on screen 0.490 s")), "{msgs:?}");
        assert!(v.iter().any(|v| v.cue == 2 && v.over_speed), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("2 gap to the next cue is 7.2 frames: gaps up to 12")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("3 on screen 8.200 s")), "{msgs:?}");
    }
}
