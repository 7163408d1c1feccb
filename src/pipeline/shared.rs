//! The decoder shared by the model stages of inputs run at the same time ([`SharedDecode`]):
//! one thread collects their batches and decodes those waiting at once together.
//!
//! Each stage has at most one batch in flight (its call blocks), so once every stage still
//! running has sent one there is nothing more to wait for. Otherwise the thread waits up to
//! `wait` for the others, or until `rows` chunks wait: on a CPU the stages it waits for are
//! encoding or aligning meanwhile, so the cores are not idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::infer::decode::DecodeResult;
use crate::infer::shared::{decode_together, DecodeRequest, SharedDecode};
use crate::infer::transcribe::on_pool;
use crate::infer::WhisperTokenizer;
use crate::model::LoadedModel;

/// How the shared decoder batches.
#[derive(Debug, Clone, Copy)]
pub struct ShareConfig {
    /// Stop waiting for other inputs once this many chunks wait (the batch size).
    pub rows: usize,
    /// The longest a batch waits for the other inputs' batches.
    pub wait: Duration,
    /// Stages seated at once, at most.
    pub inputs: usize,
}

enum Msg {
    Decode(DecodeRequest, Sender<candle_core::Result<Vec<DecodeResult>>>),
    /// A seat was given up: perhaps every stage left has now sent its batch.
    Left,
}

/// Hands out seats at the shared decoder; the decoder's thread ends once this and every seat are
/// dropped.
pub struct SharedDecoder {
    tx: Sender<Msg>,
    seats: Arc<AtomicUsize>,
}

impl SharedDecoder {
    /// A seat for one model stage.
    pub fn seat(&self) -> Box<dyn SharedDecode> {
        self.seats.fetch_add(1, Ordering::SeqCst);
        Box::new(Seat { tx: self.tx.clone(), seats: Arc::clone(&self.seats) })
    }
}

struct Seat {
    tx: Sender<Msg>,
    seats: Arc<AtomicUsize>,
}

impl SharedDecode for Seat {
    fn decode(&self, request: DecodeRequest) -> candle_core::Result<Vec<DecodeResult>> {
        // One reply, to a stage waiting for it.
        let (reply, answer) = crossbeam_channel::bounded(1);
        let gone = || candle_core::Error::Msg("the shared decoder stopped".into());
        self.tx.send(Msg::Decode(request, reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.seats.fetch_sub(1, Ordering::SeqCst);
        // Only a wake-up: when the queue is full, the decoder has messages to wake it anyway.
        let _ = self.tx.try_send(Msg::Left);
    }
}

/// Starts the shared decoder of `model` on a thread of `scope`.
pub fn spawn_shared_decoder<'s, 'e: 's>(
    scope: &'s Scope<'s, 'e>,
    model: Arc<LoadedModel>,
    tok: Arc<WhisperTokenizer>,
    cfg: ShareConfig,
) -> (SharedDecoder, ScopedJoinHandle<'s, ()>) {
    // Each stage sends one batch at a time and waits for it, then perhaps its `Left`.
    let (tx, rx) = crossbeam_channel::bounded(2 * cfg.inputs.max(1));
    let seats = Arc::new(AtomicUsize::new(0));
    let decoder = SharedDecoder { tx, seats: Arc::clone(&seats) };
    let handle = std::thread::Builder::new()
        .name("shared-decoder".into())
        .spawn_scoped(scope, move || serve(&rx, &seats, &model, &tok, cfg))
        .expect("spawning a thread");
    (decoder, handle)
}

fn serve(rx: &Receiver<Msg>, seats: &AtomicUsize, model: &LoadedModel, tok: &WhisperTokenizer, cfg: ShareConfig) {
    let mut pending: Vec<(DecodeRequest, Sender<candle_core::Result<Vec<DecodeResult>>>)> = Vec::new();
    let mut batches = 0u64;
    loop {
        match rx.recv() {
            Ok(Msg::Decode(r, reply)) => pending.push((r, reply)),
            Ok(Msg::Left) => continue,
            Err(_) => return,
        }
        let deadline = Instant::now() + cfg.wait;
        let rows = |p: &[(DecodeRequest, _)]| p.iter().map(|(r, _)| r.audio.dim(0).unwrap_or(1)).sum::<usize>();
        while pending.len() < seats.load(Ordering::SeqCst) && rows(&pending) < cfg.rows {
            match rx.recv_deadline(deadline) {
                Ok(Msg::Decode(r, reply)) => pending.push((r, reply)),
                Ok(Msg::Left) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let requests: Vec<&DecodeRequest> = pending.iter().map(|(r, _)| r).collect();
        let t0 = Instant::now();
        // A panic in the model fails this batch's inputs, not the run.
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on_pool(|| decode_together(model, tok, &requests, batches))
        }))
        .unwrap_or_else(|_| {
            let failed = || Err(candle_core::Error::Msg("internal error: decoding panicked".into()));
            requests.iter().map(|_| failed()).collect()
        });
        tracing::debug!(
            inputs = requests.len(),
            chunks = rows(&pending),
            decode_ms = t0.elapsed().as_millis() as u64,
            "shared batch"
        );
        for ((_, reply), r) in pending.drain(..).zip(results) {
            let _ = reply.send(r);
        }
        batches += 1;
    }
}
