//! `subtitle`: speech in video to accurate, well-timed, readable subtitles.
//!
//! The dataflow, one module a stage: [`source`] (demux + decode) -> [`preprocess`] (log-mel) ->
//! [`model`] (Whisper in candle) driven by [`infer`] (decoding loop, the model stage) ->
//! [`cue`] (segments to cues) -> [`sink`] (SRT, WebVTT, JSON). Beside the audio path, stills go
//! to [`visual`] (on-screen text), which with [`context`] (glossary, previous text) tells the
//! decoder what names and terms to expect. [`pipeline`] alone owns threads and channels.

pub mod check;
pub mod context;
pub mod cue;
pub mod error;
pub mod eval;
pub mod infer;
pub mod model;
pub mod pipeline;
pub mod preprocess;
pub mod segment;
pub mod sink;
pub mod source;
pub mod time;
pub mod train;
pub mod visual;

pub use error::{Error, Result};
