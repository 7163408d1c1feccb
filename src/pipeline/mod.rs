//! The only code that owns threads and channels. Each stage is a plain state machine
//! ([`Stage`]) run on its own thread between two bounded crossbeam channels, each made here
//! ([`channel`]) with the policy the pipeline file gives it; end of stream is a disconnected
//! channel followed by the stage's `finish`.
//!
//! Shutdown: the first stage to fail, or Ctrl-C, raises the shared [`Shutdown`] flag. Every
//! stage checks it between items and stops; a stage blocked on a channel wakes when its
//! neighbour exits and drops its end. Sinks commit only after every stage finished cleanly.

pub mod file;
mod leash;
pub mod live;
pub mod serve;
pub mod shared;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::{Channel, WhenFull};
use crate::error::{Error, Result};
use crate::flow::{Routed, Sink, Stage};
use crate::source::{Media, MediaSource};
use crate::time::Ts;

pub use leash::{Leash, Pace};

/// Raised once, by Ctrl-C or by the first failure; seen by every stage.
#[derive(Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    /// The run's flag, for one input of several: raised, it stops this input too, but this
    /// input's failure does not stop the others.
    parent: Option<Arc<AtomicBool>>,
}

impl Shutdown {
    pub fn raise(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
    pub fn is_raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || self.parent.as_ref().is_some_and(|p| p.load(Ordering::SeqCst))
    }
    /// A flag for one input of a run: raised by this one or by the run's.
    pub fn child(&self) -> Shutdown {
        Shutdown { flag: Arc::new(AtomicBool::new(false)), parent: Some(Arc::clone(&self.flag)) }
    }
}

/// One channel's sending end and its policy.
pub struct Link<T> {
    tx: Sender<T>,
    /// The receiving end too, with `DropOldest`: to take the oldest item out of a full channel.
    oldest: Option<Receiver<T>>,
    policy: WhenFull,
    dropped: Arc<AtomicU64>,
}

impl<T> Clone for Link<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            oldest: self.oldest.clone(),
            policy: self.policy,
            dropped: Arc::clone(&self.dropped),
        }
    }
}

/// Creates a bounded channel as `config` says. Every channel of the pipeline is made here.
pub fn channel<T>(config: Channel) -> (Link<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(config.capacity.max(1));
    let oldest = (config.when_full == WhenFull::DropOldest).then(|| rx.clone());
    (Link { tx, oldest, policy: config.when_full, dropped: Arc::new(AtomicU64::new(0)) }, rx)
}

impl<T> Link<T> {
    /// Sends by the channel's policy. `Err` when the receiver is gone (downstream stopped).
    pub(crate) fn send(&self, item: T) -> Result<()> {
        let mut item = match self.policy {
            WhenFull::Block => return self.tx.send(item).map_err(|_| Error::Interrupted),
            _ => item,
        };
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(Error::Interrupted),
                Err(TrySendError::Full(back)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    match &self.oldest {
                        // Room for the new item: the oldest one goes (the reader may have taken
                        // one meanwhile; then nothing is dropped but the count).
                        Some(rx) => {
                            if rx.try_recv().is_err() {
                                self.dropped.fetch_sub(1, Ordering::Relaxed);
                            }
                            item = back;
                        }
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    /// Items dropped because the channel was full.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }
}

fn fail<T>(shutdown: &Shutdown, e: Error) -> Result<T> {
    shutdown.raise();
    Err(e)
}

/// Runs a source on a thread of `scope` into `link` until it is exhausted or the pipeline shuts
/// down; hands the source back at the end (for its statistics).
pub fn spawn_source<'s, 'e: 's>(
    scope: &'s Scope<'s, 'e>,
    mut source: Box<dyn MediaSource + 'e>,
    link: Link<Media>,
    pace: Pace,
    shutdown: Shutdown,
) -> ScopedJoinHandle<'s, Result<Box<dyn MediaSource + 'e>>> {
    std::thread::Builder::new()
        .name("decode".into())
        .spawn_scoped(scope, move || {
            let mut buf = Vec::new();
            let mut at = Ts::ZERO;
            loop {
                if shutdown.is_raised() {
                    return Err(Error::Interrupted);
                }
                if let Pace::Follows(leash) = &pace {
                    if !leash.wait_for(at, &shutdown) {
                        return Err(Error::Interrupted);
                    }
                }
                let more = match source.pull(&mut buf) {
                    Ok(more) => more,
                    Err(e) => {
                        if let Pace::Leads(leash) = &pace {
                            leash.reach(Ts::MAX);
                        }
                        return fail(&shutdown, e);
                    }
                };
                for item in buf.drain(..) {
                    at = at.max(item.end());
                    if let Err(e) = link.send(item) {
                        return fail(&shutdown, e);
                    }
                }
                if let Pace::Leads(leash) = &pace {
                    leash.reach(if more { at } else { Ts::MAX });
                }
                if !more {
                    if source.skipped_packets() > 0 {
                        tracing::warn!(skipped = source.skipped_packets(), "packets failed to decode and were skipped");
                    }
                    return Ok(source);
                }
            }
        })
        .expect("spawning a thread")
}

/// Runs `stage` on a thread of `scope` between `input` and `link`; hands the stage back at the end.
pub fn spawn_stage<'s, 'e: 's, S: Stage + 'e>(
    scope: &'s Scope<'s, 'e>,
    stage: S,
    input: Receiver<S::In>,
    link: Link<S::Out>,
    shutdown: Shutdown,
) -> ScopedJoinHandle<'s, Result<S>> {
    spawn_with(scope, stage, move || input.recv().ok().map(Next::Item), move |o| link.send(o), shutdown)
}

/// [`spawn_stage`] for a stage that works on the newest input (live): whenever its input runs
/// dry, the stage is told ([`Stage::idle`]) before the runner waits for more, so it works on
/// everything that has arrived, and nothing waits for it in the channel while it works.
pub fn spawn_live_stage<'s, 'e: 's, A: Send + 'e, S: Stage + 'e>(
    scope: &'s Scope<'s, 'e>,
    stage: S,
    input: Receiver<A>,
    link: Link<S::Out>,
    shutdown: Shutdown,
) -> ScopedJoinHandle<'s, Result<S>>
where
    S::In: From<A>,
{
    let mut idled = false;
    let recv = move || match input.try_recv() {
        Ok(a) => {
            idled = false;
            Some(Next::Item(S::In::from(a)))
        }
        Err(crossbeam_channel::TryRecvError::Empty) if !idled => {
            idled = true;
            Some(Next::Idle)
        }
        Err(crossbeam_channel::TryRecvError::Empty) => {
            idled = false;
            input.recv().ok().map(|a| Next::Item(S::In::from(a)))
        }
        Err(crossbeam_channel::TryRecvError::Disconnected) => None,
    };
    spawn_with(scope, stage, recv, move |o| link.send(o), shutdown)
}

/// What a stage's loop does next: take an item, or work while nothing is waiting.
pub(crate) enum Next<T> {
    Item(T),
    Idle,
}

/// [`spawn_stage`] for a stage with a side output: `Main` items go to `main`, `Side` to `side`.
/// Without a side channel (no stage would read it) side items are let go, counted in
/// `unread`: no channel is ever left without a reader.
pub fn spawn_split_stage<'s, 'e: 's, A: Send + 'e, B: Send + 'e, S: Stage<Out = Routed<A, B>> + 'e>(
    scope: &'s Scope<'s, 'e>,
    stage: S,
    input: Receiver<S::In>,
    main: Link<A>,
    side: Option<Link<B>>,
    unread: Arc<AtomicU64>,
    shutdown: Shutdown,
) -> ScopedJoinHandle<'s, Result<S>> {
    let emit = move |o| match (o, &side) {
        (Routed::Main(a), _) => main.send(a),
        (Routed::Side(b), Some(side)) => side.send(b),
        (Routed::Side(_), None) => {
            unread.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    };
    spawn_with(scope, stage, move || input.recv().ok().map(Next::Item), emit, shutdown)
}

/// [`spawn_stage`] with two inputs of their own types, taken in whatever order they arrive; when
/// the side input ends, the stage is given the `side_end` that comes with it. The stage finishes once both have ended.
///
/// `early`: a second input of the main input's type whose items must reach the stage before any
/// side item sent after them (the side's sender having seen them go): whenever a side item (or
/// the side's end) is taken, what `early` holds by then is handed on first. The shot changes of
/// a video read on its own thread come so before the on-screen text of the stills after them.
pub fn spawn_merge_stage<'s, 'e: 's, A, B, S>(
    scope: &'s Scope<'s, 'e>,
    stage: S,
    main: Receiver<A>,
    early: Option<Receiver<A>>,
    (side, side_end): (Receiver<B>, S::In),
    link: Link<S::Out>,
    shutdown: Shutdown,
) -> ScopedJoinHandle<'s, Result<S>>
where
    A: Send + 'e,
    B: Send + 'e,
    S: Stage + 'e,
    S::In: From<A> + From<B> + 'e,
{
    let (mut main, mut early, mut side, mut side_end) = (Some(main), early, Some(side), Some(side_end));
    // A side item (or its end) taken, waiting for what `early` holds to go first.
    let mut held: Option<S::In> = None;
    let recv = move || loop {
        if let Some(item) = held.take() {
            match early.as_ref().map(|e| e.try_recv()) {
                Some(Ok(a)) => {
                    held = Some(item);
                    return Some(Next::Item(S::In::from(a)));
                }
                Some(Err(crossbeam_channel::TryRecvError::Disconnected)) => early = None,
                Some(Err(crossbeam_channel::TryRecvError::Empty)) | None => {}
            }
            return Some(Next::Item(item));
        }
        let mut sel = crossbeam_channel::Select::new();
        let m = main.as_ref().map(|r| sel.recv(r));
        let e = early.as_ref().map(|r| sel.recv(r));
        let s = side.as_ref().map(|r| sel.recv(r));
        if m.is_none() && e.is_none() && s.is_none() {
            return None;
        }
        let op = sel.select();
        let index = Some(op.index());
        if index == m {
            match op.recv(main.as_ref().expect("selected")) {
                Ok(a) => return Some(Next::Item(S::In::from(a))),
                Err(_) => main = None,
            }
        } else if index == e {
            match op.recv(early.as_ref().expect("selected")) {
                Ok(a) => return Some(Next::Item(S::In::from(a))),
                Err(_) => early = None,
            }
        } else {
            match op.recv(side.as_ref().expect("selected")) {
                Ok(b) => held = Some(S::In::from(b)),
                Err(_) => {
                    side = None;
                    held = side_end.take();
                }
            }
        }
    };
    spawn_with(scope, stage, recv, move |o| link.send(o), shutdown)
}

/// The stage loop: items from `recv` until it returns `None` (every input ended), outputs to `emit`.
pub(crate) fn spawn_with<'s, 'e: 's, S: Stage + 'e>(
    scope: &'s Scope<'s, 'e>,
    mut stage: S,
    mut recv: impl FnMut() -> Option<Next<S::In>> + Send + 'e,
    mut emit: impl FnMut(S::Out) -> Result<()> + Send + 'e,
    shutdown: Shutdown,
) -> ScopedJoinHandle<'s, Result<S>> {
    std::thread::Builder::new()
        .name(S::NAME.into())
        .spawn_scoped(scope, move || {
            let mut buf = Vec::new();
            let mut flush = |buf: &mut Vec<S::Out>| -> Result<()> { buf.drain(..).try_for_each(&mut emit) };
            while let Some(next) = recv() {
                if shutdown.is_raised() {
                    return Err(Error::Interrupted);
                }
                let done = match next {
                    Next::Item(item) => stage.process(item, &mut buf),
                    Next::Idle => stage.idle(&mut buf),
                };
                if let Err(e) = done.and_then(|()| flush(&mut buf)) {
                    return fail(&shutdown, e);
                }
            }
            // Every input is disconnected: upstream ended, cleanly or not.
            if shutdown.is_raised() {
                return Err(Error::Interrupted);
            }
            match stage.finish(&mut buf).and_then(|()| flush(&mut buf)) {
                Ok(()) => Ok(stage),
                Err(e) => fail(&shutdown, e),
            }
        })
        .expect("spawning a thread")
}

/// Runs `sink` on a thread of `scope`; `on_item` sees each item first (progress).
pub fn spawn_sink<'s, 'e: 's, K: Sink + 'e>(
    scope: &'s Scope<'s, 'e>,
    mut sink: K,
    input: Receiver<K::In>,
    shutdown: Shutdown,
    mut on_item: impl FnMut(&K::In) + Send + 'e,
) -> ScopedJoinHandle<'s, Result<K>> {
    std::thread::Builder::new()
        .name("sink".into())
        .spawn_scoped(scope, move || {
            for item in input.iter() {
                if shutdown.is_raised() {
                    return Err(Error::Interrupted);
                }
                on_item(&item);
                if let Err(e) = sink.write(item) {
                    return fail(&shutdown, e);
                }
            }
            if shutdown.is_raised() {
                return Err(Error::Interrupted);
            }
            Ok(sink)
        })
        .expect("spawning a thread")
}

/// A stage's result; a panic becomes an error naming the input rather than a second panic.
pub(crate) fn joined<T>(r: std::thread::Result<Result<T>>, input: &std::path::Path) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::input(input, "internal error: a pipeline stage panicked")))
}

/// The error to report from the results of all threads: the first real failure, else
/// `Interrupted`.
pub fn first_error(errors: impl IntoIterator<Item = Error>) -> Option<Error> {
    let mut interrupted = None;
    for e in errors {
        match e {
            Error::Interrupted => interrupted = Some(e),
            real => return Some(real),
        }
    }
    interrupted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::AudioChunk;
    use crate::time::Ts;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    /// Endless numbered audio chunks; counts how many it has produced.
    struct Counting(Arc<AtomicUsize>);
    impl MediaSource for Counting {
        fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            out.push(Media::Audio(AudioChunk { start: Ts(n as i64), samples: vec![] }));
            Ok(true)
        }
        fn duration(&self) -> Option<Ts> {
            None
        }
        fn skipped_packets(&self) -> u64 {
            0
        }
    }

    struct PassThrough;
    impl Stage for PassThrough {
        type In = Media;
        type Out = Media;
        const NAME: &'static str = "pass";
        fn process(&mut self, item: Media, out: &mut Vec<Media>) -> Result<()> {
            out.push(item);
            Ok(())
        }
    }

    /// Takes one item, then waits until released.
    struct Stuck(Receiver<()>);
    impl Sink for Stuck {
        type In = Media;
        fn write(&mut self, _: Media) -> Result<()> {
            let _ = self.0.recv();
            Err(Error::Interrupted)
        }
    }

    fn settle(counter: &AtomicUsize) -> usize {
        let mut last = counter.load(Ordering::SeqCst);
        let mut stable_since = Instant::now();
        let start = Instant::now();
        while stable_since.elapsed() < Duration::from_millis(300) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
            let now = counter.load(Ordering::SeqCst);
            if now != last {
                last = now;
                stable_since = Instant::now();
            }
        }
        last
    }

    /// One input of several failing stops that input only; Ctrl-C (the run's flag) stops all.
    #[test]
    fn an_input_failing_raises_its_own_flag_and_the_run_raises_every_input() {
        let run = Shutdown::default();
        let (a, b) = (run.child(), run.child());
        a.raise();
        assert!(a.is_raised() && !b.is_raised() && !run.is_raised());
        run.raise();
        assert!(b.is_raised() && run.child().is_raised());
    }

    #[test]
    fn slow_sink_bounds_items_in_flight_to_channel_capacities() {
        for (c1, c2, c3) in [(1, 1, 1), (4, 2, 7), (16, 3, 5)] {
            let produced = Arc::new(AtomicUsize::new(0));
            let shutdown = Shutdown::default();
            let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
            std::thread::scope(|s| {
                let (l1, r1) = channel(ch(c1, WhenFull::Block));
                let (l2, r2) = channel(ch(c2, WhenFull::Block));
                let (l3, r3) = channel(ch(c3, WhenFull::Block));
                let src = spawn_source(s, Box::new(Counting(Arc::clone(&produced))), l1, Pace::Free, shutdown.clone());
                let a = spawn_stage(s, PassThrough, r1, l2, shutdown.clone());
                let b = spawn_stage(s, PassThrough, r2, l3, shutdown.clone());
                let k = spawn_sink(s, Stuck(release_rx), r3, shutdown.clone(), |_| {});
                // Full channels, one item held by each of the two stages and the sink, and one
                // produced by the source and waiting to be sent.
                assert_eq!(settle(&produced), c1 + c2 + c3 + 2 + 1 + 1, "capacities {c1} {c2} {c3}");
                shutdown.raise();
                drop(release_tx);
                assert!(k.join().unwrap().is_err());
                assert!(a.join().unwrap().is_err());
                assert!(b.join().unwrap().is_err());
                assert!(src.join().unwrap().is_err());
            });
        }
    }

    /// Collects what it is given; `finish` records how many items it had seen by then.
    #[derive(Default)]
    struct Collect(Vec<u32>, Option<usize>);
    impl Stage for Collect {
        type In = u32;
        type Out = u32;
        const NAME: &'static str = "collect";
        fn process(&mut self, item: u32, out: &mut Vec<u32>) -> Result<()> {
            self.0.push(item);
            out.push(item);
            Ok(())
        }
        fn finish(&mut self, _: &mut Vec<u32>) -> Result<()> {
            self.1 = Some(self.0.len());
            Ok(())
        }
    }

    struct Split;
    impl Stage for Split {
        type In = u32;
        type Out = Routed<u32, u32>;
        const NAME: &'static str = "split";
        fn process(&mut self, item: u32, out: &mut Vec<Self::Out>) -> Result<()> {
            out.push(if item.is_multiple_of(2) { Routed::Main(item) } else { Routed::Side(item) });
            Ok(())
        }
    }

    /// Audio that reaches `n` milliseconds at each pull, `limit` pulls.
    struct Ticking(Arc<AtomicUsize>, usize);
    impl MediaSource for Ticking {
        fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            out.push(Media::Audio(AudioChunk { start: Ts(n as i64 * 100), samples: vec![0.0; 1600] }));
            Ok(n + 1 < self.1)
        }
        fn duration(&self) -> Option<Ts> {
            None
        }
        fn skipped_packets(&self) -> u64 {
            0
        }
    }

    /// The audio of an input whose video is read apart waits for the video to come within the
    /// lead, and goes on to its end once the video has ended.
    #[test]
    fn a_source_that_follows_waits_within_the_lead_of_the_one_it_follows() {
        let shutdown = Shutdown::default();
        let pulled = Arc::new(AtomicUsize::new(0));
        let leash = Leash::new(Ts(1000));
        std::thread::scope(|s| {
            let (link, rx) = channel(ch(10_000, WhenFull::Block));
            let source = Box::new(Ticking(Arc::clone(&pulled), 500));
            let src = spawn_source(s, source, link, Pace::Follows(Arc::clone(&leash)), shutdown.clone());
            std::thread::sleep(std::time::Duration::from_millis(200));
            // 100 ms a pull: it stops once it has reached past the video's 0 s and the 1 s lead.
            assert_eq!(pulled.load(Ordering::SeqCst), 11);
            leash.reach(Ts(5000));
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert_eq!(pulled.load(Ordering::SeqCst), 61);
            leash.reach(Ts::MAX);
            src.join().unwrap().unwrap();
            assert_eq!(rx.try_iter().count(), 500);
        });
    }

    /// Items of the early input reach the stage before every side item sent after them, however
    /// much the main input holds.
    #[test]
    fn early_items_go_before_the_side_items_sent_after_them() {
        let shutdown = Shutdown::default();
        std::thread::scope(|s| {
            let (main_l, main_r) = channel(ch(4096, WhenFull::Block));
            let (early_l, early_r) = channel(ch(4, WhenFull::Block));
            let (side_l, side_r) = channel(ch(4, WhenFull::Block));
            let (out_l, out_r) = channel(ch(8192, WhenFull::Block));
            for i in 0..3000 {
                main_l.send(100_000u32 + i).unwrap();
            }
            drop(main_l);
            let merge = spawn_merge_stage(
                s,
                Collect::default(),
                main_r,
                Some(early_r),
                (side_r, 99_999),
                out_l,
                shutdown.clone(),
            );
            for i in 0..300 {
                early_l.send(2u32 * i).unwrap();
                side_l.send(2 * i + 1).unwrap();
            }
            drop((early_l, side_l));
            let merged = merge.join().unwrap().unwrap().0;
            assert_eq!(merged.len(), 3000 + 600 + 1);
            let at = |x: u32| merged.iter().position(|&i| i == x).unwrap();
            for i in 0..300 {
                assert!(at(2 * i) < at(2 * i + 1), "early {} after the side item sent after it", 2 * i);
            }
            assert!(at(598) < at(99_999) && at(599) < at(99_999), "the side's end comes after both inputs' items");
            drop(out_r);
        });
    }

    #[test]
    fn split_then_merge_delivers_everything_and_finishes_after_both_inputs() {
        let shutdown = Shutdown::default();
        let (in_tx, in_rx) = crossbeam_channel::bounded::<u32>(4);
        std::thread::scope(|s| {
            let (main_l, main_r) = channel(ch(2, WhenFull::Block));
            let (side_l, side_r) = channel(ch(2, WhenFull::Block));
            let (out_l, out_r) = channel(ch(64, WhenFull::Block));
            let split = spawn_split_stage(s, Split, in_rx, main_l, Some(side_l), Default::default(), shutdown.clone());
            let merge = spawn_merge_stage(s, Collect::default(), main_r, None, (side_r, 1000), out_l, shutdown.clone());
            for i in 0..50 {
                in_tx.send(i).unwrap();
            }
            drop(in_tx);
            split.join().unwrap().unwrap();
            let merged = merge.join().unwrap().unwrap();
            assert_eq!(merged.1, Some(51), "finish ran after every item of both inputs and the side's end");
            let end = merged.0.iter().position(|&i| i == 1000).expect("the side's end is delivered");
            let last_odd = merged.0.iter().rposition(|&i| i % 2 == 1).unwrap();
            assert!(end > last_odd, "the side's end comes after the side's last item");
            let mut got: Vec<u32> = out_r.try_iter().collect();
            got.sort();
            assert_eq!(got, (0..50).chain([1000]).collect::<Vec<_>>());
            // Each input keeps its own order.
            let evens: Vec<u32> = merged.0.iter().copied().filter(|i| i % 2 == 0 && *i != 1000).collect();
            assert!(evens.windows(2).all(|w| w[0] < w[1]));
        });
    }

    fn ch(capacity: usize, when_full: WhenFull) -> Channel {
        Channel { capacity, when_full }
    }

    #[test]
    fn drop_oldest_never_blocks_keeps_the_latest_and_counts() {
        let (link, rx) = channel::<u32>(ch(3, WhenFull::DropOldest));
        for i in 0..10 {
            link.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(link.dropped().load(Ordering::SeqCst), 7);
    }

    #[test]
    fn drop_newest_never_blocks_and_counts() {
        let (link, rx) = channel::<u32>(ch(2, WhenFull::DropNewest));
        for i in 0..5 {
            link.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(link.dropped().load(Ordering::SeqCst), 3);
    }
}
