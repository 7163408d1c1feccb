//! The model shared by the model stages of inputs run at the same time: one thread collects their
//! batches and encodes, then decodes, those waiting at once together (`infer::shared`). Each
//! stage gets a [`Seat`], a `Transcriber` whose encode and decode go through that thread (word
//! alignment and language detection run on the stage's own call, as alone).
//!
//! Each stage has at most one batch in flight (its call blocks), so once every stage still
//! running has sent one there is nothing more to wait for. Otherwise the thread waits up to
//! `wait` for the others, or until `rows` chunks wait: on a CPU the stages it waits for are
//! encoding or aligning meanwhile, so the cores are not idle. A stage that said it is idle (a
//! live stream between passes, waiting for audio at the stream's pace) is not waited for until
//! it encodes again: nothing of it would come in time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Scope;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::context::Context;
use crate::infer::align::WordTiming;
use crate::infer::decode::DecodeResult;
use crate::infer::shared::{decode_together, encode_together};
use crate::infer::transcriber::{on_pool, AlignRequest, DecodeRequest, ModelTranscriber, Transcriber};
use crate::model::{Dims, Encoded, WhisperTokenizer};
use crate::time::Span;

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
    /// Mel windows (row-major, and how many) to encode.
    Encode(Vec<f32>, usize, Sender<candle_core::Result<Encoded>>),
    Decode(DecodeRequest, Sender<candle_core::Result<Vec<DecodeResult>>>),
    /// A seat was given up or went idle: perhaps every stage still waited for has now sent its
    /// batch (only a wake-up).
    Wake,
}

/// What the shared model has done, for the run's summary.
#[derive(Debug, Default)]
pub struct ShareStats {
    /// Decode batches run.
    pub batches: AtomicU64,
    /// The most inputs whose chunks one decode batch held, and one encode batch.
    pub max_inputs: AtomicUsize,
    pub max_encode_inputs: AtomicUsize,
}

/// Hands out seats at the shared model; its thread ends once this and every seat are dropped.
pub struct SharedBatcher {
    tx: Sender<Msg>,
    seats: Arc<AtomicUsize>,
    /// Seats idle until they encode again.
    idle_seats: Arc<AtomicUsize>,
    model: ModelTranscriber,
    pub stats: Arc<ShareStats>,
}

impl SharedBatcher {
    /// A seat for one model stage.
    pub fn seat(&self) -> Arc<dyn Transcriber> {
        self.seats.fetch_add(1, Ordering::SeqCst);
        Arc::new(Seat {
            tx: self.tx.clone(),
            seats: Arc::clone(&self.seats),
            idle_seats: Arc::clone(&self.idle_seats),
            idle: AtomicBool::new(false),
            left: AtomicBool::new(false),
            local: self.model.clone(),
        })
    }
}

/// One stage's place at the shared model.
pub struct Seat {
    tx: Sender<Msg>,
    seats: Arc<AtomicUsize>,
    idle_seats: Arc<AtomicUsize>,
    /// This stage said it waits for input, and has not encoded since.
    idle: AtomicBool,
    left: AtomicBool,
    local: ModelTranscriber,
}

impl Seat {
    /// Marks this stage idle, or at work again; whether that changed anything.
    fn set_idle(&self, idle: bool) -> bool {
        let changed = self.idle.swap(idle, Ordering::SeqCst) != idle;
        if changed {
            if idle {
                self.idle_seats.fetch_add(1, Ordering::SeqCst);
            } else {
                self.idle_seats.fetch_sub(1, Ordering::SeqCst);
            }
        }
        changed
    }

    /// Sends the message `msg` makes of a reply channel, and waits for the reply.
    fn call<R>(&self, msg: impl FnOnce(Sender<candle_core::Result<R>>) -> Msg) -> candle_core::Result<R> {
        // One reply, to a stage waiting for it.
        let (reply, answer) = crossbeam_channel::bounded(1);
        let gone = || candle_core::Error::Msg("the shared model stopped".into());
        self.tx.send(msg(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Transcriber for Seat {
    fn tokenizer(&self) -> &WhisperTokenizer {
        self.local.tokenizer()
    }

    fn dims(&self) -> &Dims {
        self.local.dims()
    }

    fn can_align(&self) -> bool {
        self.local.can_align()
    }

    fn encodes_alone(&self) -> bool {
        self.local.encodes_alone()
    }

    fn encode(&self, mel: Vec<f32>, windows: usize) -> candle_core::Result<Encoded> {
        self.set_idle(false);
        if self.local.encodes_alone() {
            // On a CPU a chunk is encoded as it is cut, on the stage's own call: as fast as in a
            // batch, and meanwhile the shared thread decodes the other inputs' batches.
            return self.local.encode(mel, windows);
        }
        self.call(|reply| Msg::Encode(mel, windows, reply))
    }

    fn memory(&self, context: &Context, window: Span) -> candle_core::Result<Option<Tensor>> {
        self.local.memory(context, window)
    }

    fn detect_language(&self, audio: &Encoded, memory: Option<&Tensor>) -> candle_core::Result<(u32, f32)> {
        self.local.detect_language(audio, memory)
    }

    fn decode(&self, request: DecodeRequest) -> candle_core::Result<Vec<DecodeResult>> {
        if request.memory.is_some() {
            // A chunk with pictures or terms in its memory decodes alone.
            return self.local.decode(request);
        }
        self.call(|reply| Msg::Decode(request, reply))
    }

    fn align(&self, request: AlignRequest) -> candle_core::Result<Vec<WordTiming>> {
        self.local.align(request)
    }

    fn idle(&self) {
        if self.set_idle(true) {
            // A decode waiting for this stage need not.
            let _ = self.tx.try_send(Msg::Wake);
        }
    }

    fn leave(&self) {
        if !self.left.swap(true, Ordering::SeqCst) {
            self.set_idle(false);
            self.seats.fetch_sub(1, Ordering::SeqCst);
            // Only a wake-up: when the queue is full, the thread has messages to wake it anyway.
            let _ = self.tx.try_send(Msg::Wake);
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Starts the shared model stage of `model` on a thread of `scope`, which joins it.
pub fn spawn_shared_batcher<'s, 'e: 's>(
    scope: &'s Scope<'s, 'e>,
    model: ModelTranscriber,
    cfg: ShareConfig,
) -> SharedBatcher {
    // Each stage sends one batch at a time and waits for it, then perhaps a `Wake` (sent only if there is room).
    let (tx, rx) = crossbeam_channel::bounded(2 * cfg.inputs.max(1));
    let seats = Arc::new(AtomicUsize::new(0));
    let idle_seats = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(ShareStats::default());
    let batcher = SharedBatcher {
        tx,
        seats: Arc::clone(&seats),
        idle_seats: Arc::clone(&idle_seats),
        model: model.clone(),
        stats: Arc::clone(&stats),
    };
    std::thread::Builder::new()
        .name("shared-model".into())
        .spawn_scoped(scope, move || serve(&rx, &seats, &idle_seats, &model, cfg, &stats))
        .expect("spawning a thread");
    batcher
}

fn serve(
    rx: &Receiver<Msg>,
    seats: &AtomicUsize,
    idle_seats: &AtomicUsize,
    model: &ModelTranscriber,
    cfg: ShareConfig,
    stats: &ShareStats,
) {
    let mut pending: Vec<Msg> = Vec::new();
    let rows = |p: &[Msg]| -> usize {
        p.iter()
            .map(|m| match m {
                Msg::Encode(_, n, _) => *n,
                Msg::Decode(r, _) => r.audio.windows(),
                Msg::Wake => 0,
            })
            .sum()
    };
    loop {
        match rx.recv() {
            Ok(Msg::Wake) => continue,
            Ok(m) => pending.push(m),
            Err(_) => return,
        }
        let deadline = Instant::now() + cfg.wait;
        // Idle stages are not waited for.
        let working = || seats.load(Ordering::SeqCst).saturating_sub(idle_seats.load(Ordering::SeqCst));
        while pending.len() < working() && rows(&pending) < cfg.rows {
            match rx.recv_deadline(deadline) {
                Ok(Msg::Wake) => {}
                Ok(m) => pending.push(m),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let (mut encodes, mut decodes) = (Vec::new(), Vec::new());
        for m in pending.drain(..) {
            match m {
                Msg::Encode(mel, n, reply) => encodes.push(((mel, n), reply)),
                Msg::Decode(r, reply) => decodes.push((r, reply)),
                Msg::Wake => {}
            }
        }
        if !encodes.is_empty() {
            let t0 = Instant::now();
            let (mels, replies): (Vec<_>, Vec<_>) = encodes.into_iter().unzip();
            let n = mels.len();
            let results = guarded(n, || encode_together(model, mels));
            stats.max_encode_inputs.fetch_max(n, Ordering::Relaxed);
            tracing::debug!(inputs = n, ms = t0.elapsed().as_millis() as u64, "shared encode");
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
        if !decodes.is_empty() {
            let t0 = Instant::now();
            let (requests, replies): (Vec<_>, Vec<_>) = decodes.into_iter().unzip();
            let (n, chunks) = (requests.len(), rows_of(&requests));
            let results = guarded(n, || decode_together(model, requests));
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.max_inputs.fetch_max(n, Ordering::Relaxed);
            tracing::debug!(inputs = n, chunks, decode_ms = t0.elapsed().as_millis() as u64, "shared batch");
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
    }
}

fn rows_of(requests: &[DecodeRequest]) -> usize {
    requests.iter().map(|r| r.audio.windows()).sum()
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
