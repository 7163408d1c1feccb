//! The cue builder fed arbitrary words (times, lengths, text) and shot changes: cues come out in
//! order, each with a positive length, none overlapping the one before, and their SRT file parses
//! with every cue.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use subtitle::cue::{CueStage, Subtitle};
use subtitle::flow::Stage;
use subtitle::segment::{Segment, Transcript, Word};
use subtitle::time::{Span, Ts};

#[derive(Debug, arbitrary::Arbitrary)]
enum Event {
    /// Words: (gap before it in ms, length in ms, text).
    Segment(Vec<(u16, u16, String)>),
    /// A shot change this many ms after the last word.
    Cut(i16),
}

fuzz_target!(|input: (bool, Vec<Event>)| {
    let (slow_fps, events) = input;
    let profile = subtitle::config::PipelineConfig::default_file().cues.resolve("netflix-en").unwrap();
    let mut stage = CueStage::new(profile, if slow_fps { 23.976 } else { 50.0 });
    let mut out = Vec::new();
    let mut at = 0i64;
    for e in events {
        let item = match e {
            Event::Segment(words) => Transcript::Segment(Segment {
                avg_logprob: -0.2,
                ..Segment::of_words(
                    words
                        .into_iter()
                        .map(|(gap, len, text)| {
                            let s = at + gap as i64;
                            at = s + len as i64;
                            Word { span: Span::new(Ts(s), Ts(at)), text, probability: 0.9 }
                        })
                        .collect(),
                )
            }),
            Event::Cut(d) => Transcript::ShotChange(Ts((at + d as i64).max(0))),
        };
        stage.process(item, &mut out).unwrap();
    }
    stage.finish(&mut out).unwrap();
    let mut last_end = Ts(i64::MIN);
    for s in &out {
        if let Subtitle::Cue(c) = s {
            assert!(c.span.end > c.span.start, "{:?}", c.span);
            assert!(c.span.start >= last_end, "{:?} starts before {last_end:?}", c.span);
            last_end = c.span.end;
        }
    }
    // And the file a reader gets parses, with every cue.
    let cues: Vec<_> = out.into_iter().filter_map(|s| if let Subtitle::Cue(c) = s { Some(c) } else { None }).collect();
    let srt = subtitle::sink::render(subtitle::sink::Format::Srt, &[], &cues, &Default::default());
    let parsed = subtitle::check::parse(&srt).unwrap_or_else(|e| panic!("{e}: {srt:?}"));
    assert_eq!(parsed.len(), cues.len(), "{srt:?}");
});
