//! Two sources of one input paced against each other: the audio kept within a lead of the video.

use std::sync::{Arc, Condvar, Mutex};

use crate::pipeline::Shutdown;
use crate::time::Ts;

/// Two sources of one input read side by side (its audio, its video): the audio is kept from
/// running more than `lead` of media time ahead of the video, so that what waits for the
/// video's text (the audio's features, the model's encoded windows) stays bounded however long
/// the input is.
pub struct Leash {
    /// The media time the video has reached, in milliseconds (`i64::MAX` once it has ended),
    /// and its change said to the audio waiting for it.
    reached_ms: Mutex<i64>,
    moved: Condvar,
    lead: Ts,
}

impl Leash {
    pub fn new(lead: Ts) -> Arc<Self> {
        Arc::new(Self { reached_ms: Mutex::new(0), moved: Condvar::new(), lead })
    }

    pub(super) fn reach(&self, at: Ts) {
        let mut reached = self.reached_ms.lock().unwrap_or_else(|e| e.into_inner());
        if at.ms() > *reached {
            *reached = at.ms();
            self.moved.notify_all();
        }
    }

    /// Waits while `at` is more than the lead ahead of the video; `false` if shut down meanwhile
    /// (a shutdown is not signalled: it is looked at every `SHUTDOWN_POLL`).
    pub(super) fn wait_for(&self, at: Ts, shutdown: &Shutdown) -> bool {
        const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(50);
        let mut reached = self.reached_ms.lock().unwrap_or_else(|e| e.into_inner());
        while at.ms().saturating_sub(*reached) > self.lead.ms() {
            if shutdown.is_raised() {
                return false;
            }
            reached = self.moved.wait_timeout(reached, SHUTDOWN_POLL).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

/// How a source is paced against another of the same input.
pub enum Pace {
    /// As fast as its channel takes it.
    Free,
    /// The video: says how far it has got.
    Leads(Arc<Leash>),
    /// The audio: waits for the video to come within the lead.
    Follows(Arc<Leash>),
}
