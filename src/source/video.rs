//! The video stream of an FFmpeg input, decoded only as much as the visual stages need
//! (`[video] decode`).
//!
//! Decoding every frame of HD video cost more than the whole audio path (2 minutes of 1080p
//! H.264: 12 s of decoding on 2 cores against 3.2 s for everything else). `keyframes`, the
//! default, decodes the keyframes (an encoder puts one every few seconds and at most scene cuts)
//! and keeps the compressed packets of the group of pictures (GOP) since the last one; when the
//! next keyframe arrives, the GOP between them is decoded only if something happened inside it
//! that the keyframes cannot place:
//! - a burst: a packet much larger than the GOP's others, which is what an encoder writes for a
//!   cut or a slide change that got no keyframe of its own (fixed-GOP streaming encoders), past
//!   the shrinking packets that refill the picture's detail after a keyframe (`gop::bursts`);
//! - a jump of colours (a likely cut) at a keyframe that came on the stream's fixed beat (a GOP
//!   length seen twice), so not at the cut itself: the cut happened somewhere inside the GOP
//!   (unless the encoder keys its scene cuts, the GOP has no burst, and the keyframe shows the
//!   last one's picture panned or zoomed: the same shot, moving);
//! - a keyframe off the beat whose picture moved but whose colours did not jump, or whose picture
//!   is the last one's panned or zoomed: a cut between shots alike, or only motion (x264 keys a
//!   scene cut inside a fast zoom); the frames before it tell.
//!
//! Where the encoder keys its scene cuts, a GOP decoded for its bursts is decoded only a little
//! past the last one: a cut further on would have had a keyframe or a burst of its own.
//!
//! Where the keyframes can place a change, nothing else is decoded: a keyframe off the beat after
//! a GOP without a burst is the encoder's own scene-cut keyframe, a cut there placed at it, to the
//! frame; on the beat, one burst between keyframes that plainly differ is the cut, placed at the
//! burst's frame when no B-frame shown before it was predicted from it; and where the encoder
//! keys its scene cuts, keyframes on the beat whose colours plainly differ, the second not the
//! first's picture moved, after a GOP without a burst whose frames cost alike throughout (no
//! dissolve), are a cut at the second. A GOP of a still picture (no burst) held its keyframe's
//! picture: that picture is given to the stills again a second later, so a slide is read as soon
//! as it settles, as with every frame decoded. Decoded GOPs give frames at the sampling rates, as
//! `all` does everywhere. A moving picture's GOP is decoded until, after a change, its frames
//! show the next keyframe's colours (`Settling`).
//!
//! Intra-only video (ProRes, DNxHD, Motion JPEG: every frame a keyframe) has a keyframe a second
//! taken as one (`gop::Thinning`); the frames between are its GOP, judged as any other, and
//! decoded a frame in `INTRA_STRIDE` first, then only between two that differ.

use std::time::{Duration, Instant};

use ffmpeg_next as ff;

use crate::source::gop::{self, Burst};
use crate::source::picture::{
    grey_difference, histogram, histogram_distance, moved_match, CUT_SUSPECT, MOVED_MATCH, PICTURE_MOVED,
};
use crate::source::sampler::Sampler;
use crate::source::unreferenced::Av1Headers;
use crate::source::{Follows, Media, VideoClock, VideoDecode, VideoFrame, VideoSampling, VideoStats};
use crate::time::Ts;

mod groups;

/// Keyframes whose colours differ by more than this are different shots (the shot detector's
/// default threshold).
const COLOURS_CUT: f32 = 0.4;
/// Whether two keyframes show the camera moving between them, not a cut: on a beat whose
/// encoder keys no scene cut (`keys_cuts` false), the GOP between them not a still picture's,
/// the keyframes kept between them of a size like theirs (`sizes_alike`, `gop::keys_alike`),
/// their colours (`colours`, the histograms' distance) not plainly another shot's, and one
/// picture the other panned or zoomed (`moved_match`; last, as it costs most).
fn camera_moved(keys_cuts: bool, still: bool, sizes_alike: bool, colours: f32, a: &VideoFrame, b: &VideoFrame) -> bool {
    !keys_cuts && !still && sizes_alike && colours <= COLOURS_CUT && moved_match(a, b) > MOVED_MATCH
}

/// A decoded picture's pixels.
fn pixels(frame: &ff::frame::Video) -> usize {
    frame.width() as usize * frame.height() as usize
}

/// A steady picture is given to the stills again this long after its keyframe.
const HELD_AFTER_S: f64 = 1.0;
/// Where the encoder keys its scene cuts, a GOP decoded for its bursts is decoded this far past
/// the last one: no cut comes after it.
const BURST_TAIL_S: f64 = 0.25;
/// A GOP with this many bursts or fewer has the frames shown before each decoded in its first
/// pass.
const FEW_BURSTS: usize = 3;
/// A GOP of at most this many packets is decoded with the next keyframe's leading pictures where
/// a cut is put at that keyframe (a second or so: MPEG-2's GOPs are 12 to 15 frames).
const LEADING_GOP: usize = 30;
/// Intra-only video's GOPs are decoded a frame in this many first, then between those that
/// differ.
const INTRA_STRIDE: usize = 4;
/// Keyframes are compared at this width.
const PROBE_WIDTH: u32 = 320;
/// Decoders are kept between uses (`VideoDecoding::kept`) for pictures of at most this many
/// pixels (1080p). A kept decoder holds the frame buffers of its last use: the three of a
/// 2-minute phone-like clip some 10 MB at 1080p, but 155 MB at 4K (peak RSS 455 MB against
/// 298 MB closing them after each use, faster-whisper's 299 MB; 20 minutes of it, 489 MB
/// against 379 MB). Larger pictures' decoders, closed after each use, take their frames from
/// a pool outside the heap (`frame_pool`: an hour of phone-like 4K 358 MB, against 418 MB
/// with FFmpeg's own buffers; kept as well, 428 MB for 2 minutes).
const KEEP_DECODERS_PIXELS: u64 = 1920 * 1088;

/// The last keyframe: its picture and what the next keyframe is compared with.
struct Key {
    t: f64,
    frame: ff::frame::Video,
    /// The keyframe at the probe's width, and its colours.
    picture: VideoFrame,
    histogram: Vec<f32>,
    /// The keyframe's compressed size.
    bytes: usize,
}

/// How a frame goes to the samplers.
#[derive(Clone, Copy, PartialEq)]
enum Emit {
    /// At the samplers' rates (every frame of a decoded stretch).
    Paced,
    /// At the rates, but not to the stills (a moving picture's frames: stills of it never
    /// settle, and are not read).
    PacedNoStills,
    /// To every sampler, whatever the rate (a keyframe).
    Always,
    /// To the stills only, whatever the rate (a steady picture given again).
    Held,
    /// To the frames for shot detection (not the stills), whatever the rate: frames left out
    /// of a first decoding, between two already given.
    Between,
}

pub(crate) struct VideoDecoding {
    pub(crate) stream: usize,
    time_base: f64,
    params: ff::codec::Parameters,
    skip_loop_filter: bool,
    mode: VideoDecode,
    /// FFmpeg's threads for a run of frames (`[video] threads`).
    threads: usize,
    /// A cut inside a GOP placed to the frame (`[video] exact_cuts`).
    exact_cuts: bool,
    /// The stream has B-frames (frames shown before frames decoded before them).
    reorders: bool,
    /// An AV1 stream's frame headers, which tell the frames nothing refers to.
    av1: Option<Av1Headers>,
    /// `All`: the one decoder, fed every packet.
    all: Option<ff::decoder::Video>,
    /// `Keyframes`: the decoders made so far, by kind (`stills`, `run`), kept to be flushed and
    /// used again, not made anew for each keyframe and each GOP (1,440 keyframes and 331 GOPs
    /// in an hour of phone-like 1080p), each time allocating and freeing its tables and frame
    /// buffers among longer-lived allocations: holes in the heap (see `Input::count_windows`).
    /// Only for pictures of at most `KEEP_DECODERS_PIXELS` (`keeps`).
    kept: Vec<((bool, bool), ff::decoder::Video)>,
    keeps: bool,
    /// `Keyframes`: the packets since the last keyframe.
    gop: gop::Gop,
    last_key: Option<Key>,
    /// A keyframe waiting for its leading pictures (an open GOP's: shown before it, decoded
    /// after it), which belong to the GOP before it when that is counted in display order.
    pending: Option<(ff::Packet, Vec<ff::Packet>)>,
    beat: gop::Beat,
    /// Intra-only video: which keyframes are taken as keyframes.
    thinning: Option<gop::Thinning>,
    /// Keyframes in a row so far (until the stream is seen to be intra-only).
    keys_in_a_row: usize,
    /// The packets' place in media time.
    clock: VideoClock,
    /// The timestamps jumped since the last keyframe (recordings joined): the next one ends a GOP
    /// that the end of a recording cut short, and starts the beat afresh.
    joined: bool,
    samplers: Vec<Sampler>,
    /// Keyframes at a width where a changed line of text shows, to compare them.
    probe: Sampler,
    pub(crate) stats: VideoStats,
    busy: Duration,
}

impl VideoDecoding {
    /// The video decoding of `stream` (`tb`: its time base in seconds) as `sampling` asks;
    /// `None` when it asks for no frames.
    pub(crate) fn new(
        stream: &ff::format::stream::Stream,
        sampling: &VideoSampling,
    ) -> Result<Option<Self>, ff::Error> {
        let samplers: Vec<Sampler> =
            [Sampler::frames(sampling.fps, sampling.width, false), Sampler::stills(stream, sampling)]
                .into_iter()
                .flatten()
                .collect();
        if samplers.is_empty() {
            return Ok(None);
        }
        let tb = stream.time_base();
        // Without stills, frames are for shot detection and small thumbnails: the deblocking
        // filter costs a fifth of H.264 decoding and changes nothing they need. Nor does it for
        // stills scaled to half the picture's width or less (4K to 1280): the area filter
        // averages away the block edges it smooths (the 4K clip: 0.03-0.05 s less of the source
        // thread's 1.45 s, four alternate runs; the same cuts, stills and cues).
        let params = stream.parameters();
        // SAFETY: `params` holds the stream's codec parameters for as long as this reads them.
        let (width, height, delay) =
            unsafe { ((*params.as_ptr()).width, (*params.as_ptr()).height, (*params.as_ptr()).video_delay) };
        let av1 = Av1Headers::new(&params);
        let halved = width.max(0) as u32 >= 2 * sampling.stills_width;
        let reorders = delay > 0;
        let index = gop::indexed_intervals(stream);
        let beat = gop::Beat::of(index.as_deref(), reorders);
        let (rate, time_base) = (stream.avg_frame_rate(), tb.numerator() as f64 / tb.denominator().max(1) as f64);
        let frame_s = if rate.numerator() > 0 { rate.denominator() as f64 / rate.numerator() as f64 } else { 0.0 };
        let thinning = gop::Thinning::of(stream, index.as_deref(), time_base)
            .or_else(|| gop::Thinning::sparse(&beat, frame_s, time_base, sampling.keyframe_bytes_per_s));
        let mut v = Self {
            stream: stream.index(),
            time_base,
            params,
            skip_loop_filter: sampling.stills_fps <= 0.0 || halved,
            mode: sampling.decode,
            threads: sampling.threads,
            exact_cuts: sampling.exact_cuts,
            reorders,
            av1,
            all: None,
            kept: Vec::new(),
            keeps: width.max(0) as u64 * height.max(0) as u64 <= KEEP_DECODERS_PIXELS,
            gop: gop::Gop::default(),
            last_key: None,
            pending: None,
            beat,
            thinning,
            keys_in_a_row: 0,
            clock: VideoClock::default(),
            joined: false,
            samplers,
            probe: Sampler::frames(1.0, PROBE_WIDTH, true).expect("a schedule"),
            stats: VideoStats::default(),
            busy: Duration::ZERO,
        };
        tracing::debug!(beat = ?v.beat, thinning = ?v.thinning, "the stream's beat");
        if v.mode == VideoDecode::All {
            v.all = Some(v.decoder(true, true)?);
        }
        Ok(Some(v))
    }

    /// Puts `packet`, as it is read, in media time ([`VideoClock`]), before anything reads its
    /// times.
    pub(crate) fn retime(&mut self, packet: &mut ff::Packet) {
        self.joined |= self.clock.packet(packet, self.time_base);
    }

    /// The stream's time base, in seconds.
    pub(crate) fn time_base(&self) -> f64 {
        self.time_base
    }

    /// A decoder; `stills`: its frames may become stills (decoded with the deblocking filter).
    /// `run`: it decodes a run of frames (a GOP, or all of them), with FFmpeg's threads (a GOP's
    /// B-frames are skipped or not packet by packet: `decode_packets`).
    fn decoder(&self, stills: bool, run: bool) -> Result<ff::decoder::Video, ff::Error> {
        let mut c = ff::codec::context::Context::from_parameters(self.params.clone())?;
        if run && self.threads > 1 {
            // Frame threads decode the next frame while the last is finished; where B-frames are
            // skipped, the frames left form a chain each waiting for the one before, and only
            // threads over the rows or slices of one frame gain (10-bit HEVC, 40 s: 2.66 s on
            // one thread, 2.81 s with two frame threads, 1.62 s with two slice threads; VP9,
            // without B-frames, 13.3 -> 9.5 s with two frame threads).
            let kind = if self.reorders && self.mode == VideoDecode::Keyframes {
                ff::threading::Type::Slice
            } else {
                ff::threading::Type::Frame
            };
            c.set_threading(ff::threading::Config { kind, count: self.threads, ..Default::default() });
        }
        if !self.keeps {
            // Large pictures, whose decoders are closed after each use: frame buffers of their
            // own, not the heap's (`frame_pool`).
            // SAFETY: the context is a decoder's, not opened yet.
            unsafe { crate::source::frame_pool::use_for(c.as_mut_ptr()) };
        }
        let mut d = c.decoder();
        if self.skip_loop_filter || !stills {
            d.skip_loop_filter(ff::Discard::All);
        }
        d.video()
    }

    /// A decoder as [`Self::decoder`] makes it: the one of that kind used before, flushed
    /// (nothing of the frames it decoded then is left in it), or a new one. Given back with
    /// [`Self::keep`].
    fn reused(&mut self, stills: bool, run: bool) -> Result<ff::decoder::Video, ff::Error> {
        match self.kept.iter().position(|(kind, _)| *kind == (stills, run)) {
            Some(i) => {
                let (_, mut d) = self.kept.swap_remove(i);
                d.flush();
                Ok(d)
            }
            None => self.decoder(stills, run),
        }
    }

    /// Keeps `d` for its kind's next use, where the pictures are small enough (else it is
    /// closed, its frames going back to the pool).
    fn keep(&mut self, stills: bool, run: bool, d: ff::decoder::Video) {
        if self.keeps {
            self.kept.push(((stills, run), d));
        }
    }

    /// Media time of timestamp `ts` through `seconds` (the source's clock).
    fn time(&self, frame: &ff::frame::Video, seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>) -> f64 {
        seconds(frame.timestamp().or(frame.pts()), self.time_base).unwrap_or(0.0).max(0.0)
    }

    /// Takes one packet of the stream. `seconds` turns a timestamp into stream seconds; a frame
    /// that fails to scale is counted in `skipped`.
    pub(crate) fn packet(
        &mut self,
        packet: ff::Packet,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        let t0 = Instant::now();
        let result = match self.mode {
            VideoDecode::All => {
                let mut d = self.all.take().expect("one decoder in all mode");
                if d.send_packet(&packet).is_err() {
                    *skipped += 1;
                }
                let r =
                    self.drain(&mut d, f64::NEG_INFINITY, f64::INFINITY, Emit::Paced, seconds, skipped, out).map(drop);
                self.all = Some(d);
                r
            }
            VideoDecode::Keyframes => match &mut self.pending {
                // A keyframe's leading pictures wait with it, at most as many as B-frames may
                // come in a row (after a jump back in the timestamps, what follows is not).
                Some((key, leading))
                    if !packet.is_key()
                        && leading.len() < gop::MAX_LEADING
                        && packet.pts().zip(key.pts()).is_some_and(|(p, k)| p < k) =>
                {
                    leading.push(packet);
                    Ok(())
                }
                _ => {
                    if self.thinning.is_none() {
                        self.keys_in_a_row = if packet.is_key() { self.keys_in_a_row + 1 } else { 0 };
                        // Every frame a keyframe, as the container did not say: the beat of one
                        // frame learnt meanwhile is not the sampling's.
                        if self.keys_in_a_row == gop::INTRA_KEYS {
                            (self.thinning, self.beat) =
                                (Some(gop::Thinning::new(self.time_base)), gop::Beat::default());
                        }
                    }
                    let key = packet.is_key() && self.thinning.as_mut().is_none_or(|t| t.takes(&packet));
                    self.take_pending(seconds, skipped, out).map(|()| match key {
                        true => self.pending = Some((packet, Vec::new())),
                        false => self.gop.keep(packet),
                    })
                }
            },
        };
        self.busy += t0.elapsed();
        result
    }

    /// The pending keyframe (see `packet`), then its leading pictures into its GOP.
    fn take_pending(
        &mut self,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        match self.pending.take() {
            Some((key, leading)) => self.keyframe(key, leading, seconds, skipped, out),
            None => Ok(()),
        }
    }

    /// End of the stream: what is still held back.
    pub(crate) fn finish(
        &mut self,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        let t0 = Instant::now();
        let pending = self.take_pending(seconds, skipped, out);
        let result = pending.and_then(|()| match self.all.take() {
            Some(mut d) => {
                let _ = d.send_eof();
                self.drain(&mut d, f64::NEG_INFINITY, f64::INFINITY, Emit::Paced, seconds, skipped, out).map(drop)
            }
            // The last GOP has no keyframe after it to tell whether anything happened inside:
            // a steady still picture is held (steady: not a moving picture's costly frames, then
            // a still one's, with no burst between where the still one costs less); without a
            // burst, an encoder that keys its scene cuts saw none; anything else is decoded
            // (reference frames first).
            None => match self.last_key.take() {
                Some(key) => {
                    let (sizes, bursts) = (self.gop.sizes(), self.gop.bursts());
                    let still = gop::still(&sizes, key.bytes, pixels(&key.frame));
                    if still && gop::steady(&sizes) && bursts.is_empty() {
                        self.emit(&key.frame, key.t + HELD_AFTER_S, Emit::Held, Follows::Closely, skipped, out)
                    } else if self.beat.scene_cuts && bursts.is_empty() {
                        tracing::debug!(from = key.t, "the last group of pictures: no burst, no cut");
                        Ok(())
                    } else {
                        let inside = (&bursts[..], still);
                        self.decode_gop(&key, inside, f64::INFINITY, None, &[], seconds, skipped, out).map(drop)
                    }
                }
                None => Ok(()),
            },
        });
        self.busy += t0.elapsed();
        self.stats.seconds = self.busy.as_secs_f64();
        result
    }

    /// Keyframe `packet` decoded alone: the frame, its time, and its picture at the probe's
    /// width; none (counted in `skipped`) where it does not decode or scale.
    fn decode_alone(
        &mut self,
        packet: &ff::Packet,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
    ) -> Result<Option<(ff::frame::Video, f64, VideoFrame)>, String> {
        let mut d = self.reused(true, false).map_err(|e| format!("cannot decode the video: {e}"))?;
        let _ = d.send_packet(packet);
        let _ = d.send_eof();
        let mut frame = ff::frame::Video::empty();
        let decoded = d.receive_frame(&mut frame).is_ok();
        self.keep(true, false, d);
        if !decoded {
            *skipped += 1;
            return Ok(None);
        }
        self.stats.frames_decoded += 1;
        let t = self.time(&frame, seconds);
        let Some(picture) = self.probe.sample(&frame, t, Follows::Closely)? else {
            *skipped += 1;
            return Ok(None);
        };
        Ok(Some((frame, t, picture)))
    }

    /// A keyframe (`leading`: its leading pictures): decoded alone, compared with the last one;
    /// the GOP between them decoded when the two cannot tell what happened inside it.
    fn keyframe(
        &mut self,
        packet: ff::Packet,
        leading: Vec<ff::Packet>,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        // A keyframe that does not decode is left out, with its leading pictures (predicted from it).
        let Some((frame, t, picture)) = self.decode_alone(&packet, seconds, skipped)? else { return Ok(()) };
        self.stats.keyframes += 1;
        let key = Key { t, histogram: histogram(&picture), picture, frame, bytes: packet.size() };
        // After a jump of the timestamps, the GOP before this keyframe was cut short by the end
        // of its recording, and the next may beat otherwise: the beat is learnt afresh.
        let joined = std::mem::take(&mut self.joined);
        if joined {
            self.beat = gop::Beat::default();
        }
        let interval = self.gop.frames(leading.len());
        self.beat.saw_leading(leading.len());
        let first = self.last_key.is_none();
        let mut follows = Follows::Closely;
        if let Some(last) = self.last_key.take() {
            // A jump of colours at a keyframe on the beat happened somewhere inside the GOP; off
            // the beat, the keyframe is the encoder's own, at the change. A change of picture
            // without one (shots of the same colours, or just motion) is looked into only off
            // the beat, where the encoder saw a change at the keyframe: on the beat, a picture
            // that moved tells nothing. (Before a beat is known, a keyframe is taken for the
            // encoder's own: most encoders put one at a scene cut, but the first GOP is decoded
            // where anything changed.)
            let colours = histogram_distance(&last.histogram, &key.histogram);
            let moved = grey_difference(&last.picture, &key.picture) > PICTURE_MOVED;
            // Intra-only video's keyframes taken are our own samples, on a beat of ours (shorter
            // where its frames are large): none is an encoder's scene cut.
            let thinned = self.thinning.is_some();
            let on_beat = thinned || self.beat.on(interval);
            // On the beat, one burst between keyframes that plainly differ places the cut
            // without decoding (the shot detector cuts on the same differences); a GOP of a still
            // picture is decoded anyway (cheaply) for the stills to read the new slide as it
            // settles. (Off the beat, the keyframe is the change; a burst is something else.)
            let bursts = self.gop.bursts();
            let sizes = self.gop.sizes();
            let still = gop::still(&sizes, last.bytes, pixels(&last.frame));
            let changed = colours > COLOURS_CUT || moved;
            // Where the encoder keeps a fixed beat and keys no scene cut (phones, live encoders),
            // keyframes on the beat that show one shot panned or zoomed, their colours not
            // plainly another's and the keyframes kept between them of a size alike, are the
            // camera moving: nothing is decoded, for their colours
            // (which drift past a cut's as the camera pans) nor for bursts (under the bitrate
            // cap, bursts of motion; a cut costs no more than the motion does). A handheld
            // phone shot, 2 minutes of 1080p: 1.1 s of video instead of 2.6.
            let alike = self.gop.keys_alike(key.bytes);
            let camera =
                on_beat && camera_moved(self.beat.scene_cuts, still, alike, colours, &last.picture, &key.picture);
            let bursts = if camera { Vec::new() } else { bursts };
            let placed = match bursts.as_slice() {
                [Burst { pts: Some(at), exact: true, .. }] if on_beat && changed && !still => {
                    seconds(Some(*at), self.time_base)
                }
                _ => None,
            };
            // The first GOP has no beat to tell whether its end came on it: it is looked into
            // when anything changed (once a stream).
            let look = match (thinned || self.beat.known(), on_beat) {
                (false, _) => colours > CUT_SUSPECT || moved,
                (true, true) => colours > CUT_SUSPECT && !camera,
                (true, false) => colours <= COLOURS_CUT && moved,
            };
            // Without a burst inside the GOP, where the encoder keys its scene cuts, a cut can only
            // be at the keyframe itself. When the keyframe shows the last one's picture panned or
            // zoomed (a camera moving, a zooming fractal whose colours cycle), however much its
            // colours changed: on the beat, there is none, and nothing is decoded; off the beat,
            // where the encoder saw a change, the frames before it tell (a cut between two
            // framings alike, as from one speaker to the other, matches so too). Not for a
            // still picture's GOP: slides of one template match so too.
            let asks = if on_beat { self.beat.scene_cuts && look } else { changed && !look };
            let at_key_only = asks && bursts.is_empty() && !still;
            let moved_on = at_key_only && moved_match(&last.picture, &key.picture) > MOVED_MATCH;
            // On the beat, the same without a match: when the colours plainly changed and the GOP's
            // frames cost alike from its start to its end (no dissolve into another shot, whose
            // frames cost otherwise), its last frame shows the shot of its first, and the cut is at
            // this keyframe: placed there, nothing decoded.
            let at_key = on_beat && at_key_only && !moved_on && colours > COLOURS_CUT && gop::steady(&sizes);
            let look = look || (moved_on && !on_beat);
            // A cut put at this keyframe may lie among its leading pictures (shown before it):
            // MPEG-2 encoders make the next anchor frame a keyframe at a scene change, its
            // B-frames before it showing the new shot already. Where the GOP is short, it is
            // decoded with them.
            let among_leading = !leading.is_empty()
                && self.gop.packets() <= LEADING_GOP
                && (at_key || (!on_beat && changed && placed.is_none()));
            if (moved_on && on_beat) || camera {
                tracing::debug!(from = last.t, to = t, colours, "a keyframe on the beat of the same shot, moved");
                follows = Follows::Moved;
            } else if at_key && !among_leading {
                tracing::debug!(from = last.t, to = t, colours, "a cut at a keyframe on the beat, the GOP steady");
                follows = Follows::Keyframe { scene_cut: true };
            } else if placed.is_none() && (!bursts.is_empty() || look || among_leading) {
                tracing::debug!(
                    from = last.t,
                    to = t,
                    bursts = bursts.len(),
                    colours,
                    moved,
                    on_beat,
                    "a group of pictures to decode"
                );
                // Where the encoder keys its scene cuts, a cut inside the GOP is at a burst (or at
                // the keyframe, which the frame after the last burst, or after the last large
                // packet of the refill after the keyframe, is compared with): what comes after it
                // need not be decoded, unless a keyframe off the beat needs the frame just before
                // it, or the stills a slide as it settles.
                let last_burst = bursts.iter().filter_map(|b| b.pts).chain(self.gop.refilled()).max();
                let until = match last_burst.and_then(|pts| seconds(Some(pts), self.time_base)) {
                    Some(b) if self.beat.scene_cuts && (on_beat || !look) && !still => t.min(b + BURST_TAIL_S),
                    _ => t,
                };
                let next: Vec<ff::Packet> = match leading.is_empty() {
                    true => Vec::new(),
                    false => std::iter::once(&packet).chain(&leading).cloned().collect(),
                };
                let inside = (&bursts[..], still);
                follows = self.decode_gop(&last, inside, until, Some(&key.histogram), &next, seconds, skipped, out)?;
            } else if let Some(at) = placed {
                tracing::debug!(from = last.t, to = t, at, colours, moved, "a cut placed at a burst");
                follows = Follows::Burst(Ts::from_secs_f64(at.max(0.0)));
            } else {
                tracing::trace!(from = last.t, to = t, colours, moved, on_beat, "a keyframe alone");
                follows = Follows::Keyframe { scene_cut: !on_beat };
                let held = (last.t + HELD_AFTER_S).min(t - 0.001);
                if still && held > last.t {
                    // The last keyframe's still picture held until this one: the stills see it
                    // again a second later.
                    self.emit(&last.frame, held, Emit::Held, Follows::Closely, skipped, out)?;
                }
            }
        }
        if !first && !joined && self.thinning.is_none() {
            self.beat.observe(interval);
        }
        self.emit(&key.frame, t, Emit::Always, follows, skipped, out)?;
        self.last_key = Some(key);
        self.gop = gop::Gop::new(packet, leading);
        Ok(())
    }

    fn emit(
        &mut self,
        frame: &ff::frame::Video,
        t: f64,
        how: Emit,
        follows: Follows,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        for s in &mut self.samplers {
            let due = t + 1e-6 >= s.next_at_s;
            let wanted = match how {
                Emit::Paced => due,
                Emit::PacedNoStills => due && !s.is_stills(),
                Emit::Always => true,
                Emit::Held => s.is_stills(),
                Emit::Between => !s.is_stills(),
            };
            if !wanted {
                continue;
            }
            if how == Emit::Between {
                // Frames between two already given: the schedule has moved past them.
                match s.media(frame, t, follows)? {
                    Some(m) => out.push(m),
                    None => *skipped += 1,
                }
                continue;
            }
            s.next_at_s = s.next_at_s.max((t / s.every_s).floor() * s.every_s + s.every_s);
            match s.media(frame, t, follows)? {
                Some(m) => out.push(m),
                None => *skipped += 1,
            }
        }
        Ok(())
    }
}
