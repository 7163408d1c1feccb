//! `subtitle`: speech in video to accurate, well-timed, readable subtitles.
//!
//! The dataflow, one module a stage, each importing only the stages upstream of it: [`source`]
//! (demux + decode, media time from the stream) -> [`preprocess`] (log-mel, shot changes,
//! stills) -> [`visual`] (on-screen text, picture tokens) and [`infer`] (the model stages,
//! driving [`model`]: Whisper in candle) -> [`cue`] (segments to cues) -> [`sink`] (SRT, WebVTT,
//! JSON). [`context`] tells the decoder what names and terms to expect. At the bottom: [`flow`]
//! (the stage and sink traits), [`time`], [`error`], [`segment`]; [`weights`] reads model files
//! and converts what the registries ship; [`config`] is the pipeline file. [`train`] drives the
//! same stages offline, [`check`] lints subtitle files; [`batch`] keeps the books of archive runs. [`pipeline`], at the top, alone owns
//! threads and channels.

pub mod atomic;
pub mod batch;
pub mod check;
pub mod config;
pub mod context;
pub mod cue;
pub mod error;
pub mod eval;
pub mod flow;
pub mod infer;
pub mod model;
pub mod pipeline;
pub mod preprocess;
pub mod runs;
pub mod segment;
pub mod sink;
pub mod source;
pub mod time;
pub mod train;
pub mod visual;
pub mod weights;

pub use error::{Error, Result};

/// Allocator settings for inference; call before any other thread exists (the binary does, and
/// so do the benches, to measure what it runs). Tensors of a few MB are allocated and freed at
/// every layer: glibc returns each to the OS and faults it in again next time (about 15% of the
/// time here, 20% of an encoder window); this keeps them in the heap.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        // One heap per thread kept each stage's freed buffers apart: 50 MB more peak RSS on
        // 5 minutes of video than two shared heaps, at the same speed. Since the model's work
        // runs on the compute pool's threads, two heaps came to 260-270 MB as often as 220 on
        // tiny.en greedy over 5 minutes; one heap 221-225 MB, as fast within the noise.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the heap's free pages back to the OS. With [`tune_allocator`]'s settings the heap only
/// grows, so a long run's resident memory is the most it ever held at once plus whatever its
/// holes came to; a run that goes on for hours (a live stream) calls this now and then, so its
/// memory follows what it holds.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the heap to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// [`release_free_memory`] once more than `limit` bytes of the heap are free (its holes, not
/// what a run holds; a trim leaves them counted as free, only not resident): the pages handed
/// back are faulted in again when next used (some 14,000 page faults, 30 ms of CPU, in a run on
/// 1080p video), so it is done only where holes have added up.
pub fn release_free_memory_over(limit: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads the allocator's counters.
    if unsafe { libc::mallinfo2() }.fordblks > limit {
        release_free_memory();
    }
}
