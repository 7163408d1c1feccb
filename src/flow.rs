//! The two shapes every step of the dataflow takes, at the bottom of the tree: a [`Stage`]
//! (items in, items out) and a [`Sink`] (items in, committed at the end). Neither owns a
//! thread, a lock or a channel: `pipeline` runs them between bounded channels, `train` drives
//! the same stages in a loop, and a test feeds one a `Vec` (vector's `FunctionTransform`).
//!
//! What the stages exchange lives with the stage that makes it (`source::Media`,
//! `preprocess::Features`, `visual::ScreenText`, `segment::Transcript`, `cue::Subtitle`): a stage
//! imports the stages upstream of it, never one downstream.

use crate::error::Result;

/// A stage: items in, items out, no threads, locks or channels.
///
/// Errors are not recoverable: the pipeline stops and nothing is committed. What a stage can
/// recover from (a bad packet, a still it could not read) it handles itself, counts, and says so
/// in its output or its summary.
pub trait Stage: Send {
    type In: Send;
    type Out: Send;
    const NAME: &'static str;
    fn process(&mut self, item: Self::In, out: &mut Vec<Self::Out>) -> Result<()>;
    /// Nothing more is waiting for now: a stage that works on the newest input (live) works
    /// now, with all that has arrived. Only runners that can tell call it (`spawn_live_stage`).
    fn idle(&mut self, _out: &mut Vec<Self::Out>) -> Result<()> {
        Ok(())
    }
    /// End of input: emit whatever is held back.
    fn finish(&mut self, _out: &mut Vec<Self::Out>) -> Result<()> {
        Ok(())
    }
}

/// The end of a pipeline: takes items; the caller commits it once everything succeeded.
pub trait Sink: Send {
    type In: Send;
    fn write(&mut self, item: Self::In) -> Result<()>;
}

/// What a stage with two outputs emits: items for its main output or its side output.
#[derive(Debug)]
pub enum Routed<A, B> {
    Main(A),
    Side(B),
}
