//! A live stream's committed words, notes (pauses, gaps, skipped stretches, partials) and shot
//! changes, in any order and with any times, through the live cue builder into the live outputs
//! (an appended SRT or WebVTT file, the events' JSON lines, an HLS playlist): after every append
//! the cue file parses with as many cues as were written, in order and not overlapping, and every
//! events line is JSON.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use std::sync::{Arc, Mutex};
use subtitle::cue::live::LiveCueStage;
use subtitle::flow::{Sink, Stage};
use subtitle::segment::{LiveNote, Segment, Transcript, Word};
use subtitle::sink::live::{cue_file, Appender, Hls, LiveOutputs, LiveSink};
use subtitle::sink::Format;
use subtitle::time::{Span, Ts};

#[derive(Debug, arbitrary::Arbitrary)]
enum Event {
    /// Committed words: (gap before it in ms, possibly negative; length in ms; text).
    Words(Vec<(i16, u16, String)>),
    Cut(i16),
    Pause(i16),
    Gap(i16, u16),
    Skipped(i16, u16),
    Partial(Vec<(u16, String)>),
}

fuzz_target!(|input: (bool, bool, bool, Vec<Event>)| {
    let (vtt, roll_up, hls, events) = input;
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let format = if vtt { Format::Vtt } else { Format::Srt };
    let cue_path = dir.path().join(if vtt { "live.vtt" } else { "live.srt" });
    let events_path = dir.path().join("events.jsonl");
    let outputs = LiveOutputs {
        cues: Some(cue_file(&cue_path, format).unwrap()),
        events: Some(Arc::new(Mutex::new(Appender::create(&events_path).unwrap()))),
        hls: hls.then(|| Hls::create(&dir.path().join("hls"), Ts(6000), 5, 0.0).unwrap()),
        feed: None,
    };
    let mut sink = LiveSink::new("fuzz".into(), outputs);
    let profile = subtitle::config::PipelineConfig::default_file().cues.resolve("netflix-en").unwrap();
    let mut stage = LiveCueStage::new(profile, 25.0, roll_up);
    let mut at = 0i64;
    let mut out = Vec::new();
    let n = events.len();
    for (i, e) in events.into_iter().enumerate() {
        let item = match e {
            Event::Words(words) => Transcript::Segment(Segment::of_words(
                words
                    .into_iter()
                    .map(|(gap, len, text)| {
                        let s = (at + gap as i64).max(0);
                        at = s + len as i64;
                        Word { span: Span::new(Ts(s), Ts(at)), text, probability: 0.9 }
                    })
                    .collect(),
            )),
            Event::Cut(d) => Transcript::ShotChange(Ts((at + d as i64).max(0))),
            Event::Pause(d) => Transcript::Live(LiveNote::Pause(Ts((at + d as i64).max(0)))),
            Event::Gap(d, len) => {
                let s = (at + d as i64).max(0);
                Transcript::Live(LiveNote::Gap(Span::new(Ts(s), Ts(s + len as i64))))
            }
            Event::Skipped(d, len) => {
                let s = (at + d as i64).max(0);
                Transcript::Live(LiveNote::Skipped(Span::new(Ts(s), Ts(s + len as i64))))
            }
            Event::Partial(words) => Transcript::Live(LiveNote::Partial(
                words
                    .into_iter()
                    .map(|(len, text)| Word { span: Span::new(Ts(at), Ts(at + len as i64)), text, probability: 0.5 })
                    .collect(),
            )),
        };
        stage.process(item, &mut out).unwrap();
        if i + 1 == n {
            stage.finish(&mut out).unwrap();
        }
        for s in out.drain(..) {
            sink.write(s).unwrap();
        }
        // Valid after every append: the cues so far, in order, none overlapping the one before.
        let text = std::fs::read_to_string(&cue_path).unwrap();
        let cues = subtitle::check::parse(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(cues.len(), sink.cue_count(), "{text:?}");
        for pair in cues.windows(2) {
            assert!(pair[1].span.start >= pair[0].span.end, "{:?} then {:?}", pair[0].span, pair[1].span);
        }
        assert!(cues.iter().all(|c| c.span.end > c.span.start), "{text:?}");
        for line in std::fs::read_to_string(&events_path).unwrap().lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        }
    }
    sink.close().unwrap();
});
