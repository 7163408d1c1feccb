//! Keyframes decoded ahead: each is sent to one decoder as it comes, and its frame taken once the
//! next keyframe has been sent, so that FFmpeg's frame threads decode the two side by side, and
//! each beside the video thread's work on the GOP before it. (Decoded alone, one after the other,
//! a 4K keyframe held the video's thread 30-45 ms.) Keyframes decode alone: the decoder may start
//! afresh between any two.

use std::collections::VecDeque;

use ffmpeg_next as ff;

pub(super) struct KeyDecoder {
    d: ff::decoder::Video,
    /// Frames out of the decoder and not taken yet, in the order their keyframes were sent.
    ready: VecDeque<ff::frame::Video>,
}

impl KeyDecoder {
    pub(super) fn new(d: ff::decoder::Video) -> Self {
        Self { d, ready: VecDeque::new() }
    }

    /// Sends keyframe `packet` (one that does not decode has no frame to take).
    pub(super) fn send(&mut self, packet: &ff::Packet) {
        if self.d.send_packet(packet).is_err() {
            // A full decoder gives its frames first; a packet it refuses has none.
            self.receive();
            if self.d.send_packet(packet).is_err() {
                return;
            }
        }
        self.receive();
    }

    /// The frame of the keyframe sent with timestamp `pts`, passing over the frames of keyframes
    /// sent before it; `None` where it did not decode.
    pub(super) fn take(&mut self, pts: Option<i64>) -> Option<ff::frame::Video> {
        if let Some(frame) = self.find(pts) {
            return Some(frame);
        }
        // Not out yet (the last keyframe sent, or a decoder that holds frames back for longer):
        // all that was sent comes out, and the decoder starts afresh.
        let _ = self.d.send_eof();
        self.receive();
        self.d.flush();
        self.find(pts)
    }

    fn find(&mut self, pts: Option<i64>) -> Option<ff::frame::Video> {
        let i = self.ready.iter().position(|f| f.pts() == pts)?;
        self.ready.drain(..i);
        self.ready.pop_front()
    }

    /// The frames the decoder has ready (with frame threads, each call hands it what was sent,
    /// and waits for the oldest frame once every thread has one).
    fn receive(&mut self) {
        loop {
            let mut frame = ff::frame::Video::empty();
            match self.d.receive_frame(&mut frame) {
                Ok(()) => self.ready.push_back(frame),
                // Nothing more for now, the end, or a keyframe that did not decode: the frames
                // after it come with the next call.
                Err(_) => break,
            }
        }
    }
}
