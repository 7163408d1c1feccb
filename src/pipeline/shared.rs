//! The model shared by the model stages of inputs run at the same time ([`SharedModel`]): one
//! thread collects their batches and encodes, then decodes, those waiting at once together.
//!
//! Each stage has at most one batch in flight (its call blocks), so once every stage still
//! running has sent one there is nothing more to wait for. Otherwise the thread waits up to
//! `wait` for the others, or until `rows` chunks wait: on a CPU the stages it waits for are
//! encoding or aligning meanwhile, so the cores are not idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Scope;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::infer::decode::DecodeResult;
use crate::infer::shared::{decode_together, encode_together, DecodeRequest, SharedModel};
use crate::infer::transcribe::on_pool;
use crate::infer::WhisperTokenizer;
use crate::model::LoadedModel;

/// How the shared model batches.
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
    /// Mel windows (chunks, n_mels, frames) to encode.
    Encode(Tensor, Sender<candle_core::Result<Tensor>>),
    Decode(DecodeRequest, Sender<candle_core::Result<Vec<DecodeResult>>>),
    /// A seat was given up: perhaps every stage left has now sent its batch.
    Left,
}

/// Hands out seats at the shared model; its thread ends once this and every seat are
/// dropped.
pub struct SharedBatcher {
    tx: Sender<Msg>,
    seats: Arc<AtomicUsize>,
}

impl SharedBatcher {
    /// A seat for one model stage.
    pub fn seat(&self) -> Box<dyn SharedModel> {
        self.seats.fetch_add(1, Ordering::SeqCst);
        Box::new(Seat { tx: self.tx.clone(), seats: Arc::clone(&self.seats) })
    }
}

struct Seat {
    tx: Sender<Msg>,
    seats: Arc<AtomicUsize>,
}

impl Seat {
    /// Sends the message `msg` makes of a reply channel, and waits for the reply.
    fn call<R>(&self, msg: impl FnOnce(Sender<candle_core::Result<R>>) -> Msg) -> candle_core::Result<R> {
        // One reply, to a stage waiting for it.
        let (reply, answer) = crossbeam_channel::bounded(1);
        let gone = || candle_core::Error::Msg("the shared model stopped".into());
        self.tx.send(msg(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl SharedModel for Seat {
    fn encode(&self, mel: Tensor) -> candle_core::Result<Tensor> {
        self.call(|reply| Msg::Encode(mel, reply))
    }

    fn decode(&self, request: DecodeRequest) -> candle_core::Result<Vec<DecodeResult>> {
        self.call(|reply| Msg::Decode(request, reply))
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.seats.fetch_sub(1, Ordering::SeqCst);
        // Only a wake-up: when the queue is full, the thread has messages to wake it anyway.
        let _ = self.tx.try_send(Msg::Left);
    }
}

/// Starts the shared model stage of `model` on a thread of `scope`, which joins it.
pub fn spawn_shared_batcher<'s, 'e: 's>(
    scope: &'s Scope<'s, 'e>,
    model: Arc<LoadedModel>,
    tok: Arc<WhisperTokenizer>,
    cfg: ShareConfig,
) -> SharedBatcher {
    // Each stage sends one batch at a time and waits for it, then perhaps its `Left`.
    let (tx, rx) = crossbeam_channel::bounded(2 * cfg.inputs.max(1));
    let seats = Arc::new(AtomicUsize::new(0));
    let batcher = SharedBatcher { tx, seats: Arc::clone(&seats) };
    std::thread::Builder::new()
        .name("shared-model".into())
        .spawn_scoped(scope, move || serve(&rx, &seats, &model, &tok, cfg))
        .expect("spawning a thread");
    batcher
}

fn serve(rx: &Receiver<Msg>, seats: &AtomicUsize, model: &LoadedModel, tok: &WhisperTokenizer, cfg: ShareConfig) {
    let mut pending: Vec<Msg> = Vec::new();
    let mut batches = 0u64;
    let rows = |p: &[Msg]| -> usize {
        p.iter()
            .map(|m| match m {
                Msg::Encode(mel, _) => mel.dim(0).unwrap_or(1),
                Msg::Decode(r, _) => r.audio.dim(0).unwrap_or(1),
                Msg::Left => 0,
            })
            .sum()
    };
    loop {
        match rx.recv() {
            Ok(Msg::Left) => continue,
            Ok(m) => pending.push(m),
            Err(_) => return,
        }
        let deadline = Instant::now() + cfg.wait;
        while pending.len() < seats.load(Ordering::SeqCst) && rows(&pending) < cfg.rows {
            match rx.recv_deadline(deadline) {
                Ok(Msg::Left) => {}
                Ok(m) => pending.push(m),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let t0 = Instant::now();
        let (mut encodes, mut decodes) = (Vec::new(), Vec::new());
        for m in pending.drain(..) {
            match m {
                Msg::Encode(mel, reply) => encodes.push((mel, reply)),
                Msg::Decode(r, reply) => decodes.push((r, reply)),
                Msg::Left => {}
            }
        }
        if !encodes.is_empty() {
            let mels: Vec<&Tensor> = encodes.iter().map(|(m, _)| m).collect();
            let results = guarded(mels.len(), || encode_together(model, &mels));
            tracing::debug!(inputs = mels.len(), ms = t0.elapsed().as_millis() as u64, "shared encode");
            for ((_, reply), r) in encodes.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
        if !decodes.is_empty() {
            let t0 = Instant::now();
            let requests: Vec<&DecodeRequest> = decodes.iter().map(|(r, _)| r).collect();
            let results = guarded(requests.len(), || decode_together(model, tok, &requests, batches));
            let chunks: usize = requests.iter().map(|r| r.audio.dim(0).unwrap_or(1)).sum();
            let decode_ms = t0.elapsed().as_millis() as u64;
            tracing::debug!(inputs = requests.len(), chunks, decode_ms, "shared batch");
            for ((_, reply), r) in decodes.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
        batches += 1;
    }
}

/// `f`'s `n` results, run on the compute pool; a panic in the model fails them all with an
/// error, not the run.
fn guarded<T>(n: usize, f: impl FnOnce() -> Vec<candle_core::Result<T>> + Send) -> Vec<candle_core::Result<T>>
where
    T: Send,
{
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_pool(f))).unwrap_or_else(|_| {
        (0..n).map(|_| Err(candle_core::Error::Msg("internal error: the model panicked".into()))).collect()
    })
}
