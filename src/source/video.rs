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
//!   cut or a slide change that got no keyframe of its own (fixed-GOP streaming encoders);
//! - a jump of colours (a likely cut) at a keyframe that came on the stream's fixed beat, so not
//!   at the cut itself: the cut happened somewhere inside the GOP.
//!
//! A keyframe off the beat, after a GOP without a burst, is the encoder's own scene-cut
//! keyframe: a cut there is placed at it, to the frame, without decoding anything else. A steady
//! GOP (no burst) held its keyframe's picture: that picture is given to the stills again a
//! second later, so a slide is read as soon as it settles, as with every frame decoded. Decoded
//! GOPs give frames at the sampling rates, as `all` does everywhere.

use std::time::{Duration, Instant};

use ffmpeg_next as ff;

use crate::source::picture::{histogram, histogram_distance};
use crate::source::{Follows, Media, VideoDecode, VideoFrame, VideoSampling, VideoStats};
use crate::time::Ts;

/// Keyframes whose colour histograms differ by more than this may have a cut between them (half
/// the shot detector's default threshold).
const CUT_SUSPECT: f32 = 0.2;
/// A packet this many times the GOP's median (and at least `BURST_MIN_BYTES`) is a burst.
const BURST_RATIO: usize = 4;
const BURST_MIN_BYTES: usize = 2_000;
/// A GOP whose median packet is smaller than this share of its keyframe's shows a still picture
/// (slides, title cards: measured 0.1% to 1.2%); a moving one's is far larger (6% to 53% on our
/// test media, 18% to 25% on a real clip).
const STILL_RATIO: f64 = 0.03;
/// A GOP longer than this (compressed) is not kept: its inside is left undecoded.
const MAX_GOP_BYTES: usize = 64 << 20;
/// A steady picture is given to the stills again this long after its keyframe.
const HELD_AFTER_S: f64 = 1.0;
/// Keyframes are compared at this width.
const PROBE_WIDTH: u32 = 320;

/// One schedule of sampled frames: which frames, at what size, as what.
struct Sampler {
    every_s: f64,
    next_at_s: f64,
    width: u32,
    /// Never scale up: stills keep the video's own width when it is narrower.
    shrink_only: bool,
    scaler: Option<(ff::software::scaling::Context, (ff::format::Pixel, u32, u32))>,
    wrap: fn(VideoFrame) -> Media,
}

impl Sampler {
    fn new(fps: f64, width: u32, shrink_only: bool, wrap: fn(VideoFrame) -> Media) -> Option<Self> {
        (fps > 0.0).then(|| Self {
            every_s: 1.0 / fps,
            next_at_s: 0.0,
            width: width.max(2) & !1,
            shrink_only,
            scaler: None,
            wrap,
        })
    }

    /// `frame` scaled to the sampler's width as RGB24; `None` when this one frame fails to scale.
    fn sample(&mut self, frame: &ff::frame::Video, t: f64, follows: Follows) -> Result<Option<VideoFrame>, String> {
        let key = (frame.format(), frame.width(), frame.height());
        let width = if self.shrink_only { self.width.min(key.1.max(2) & !1) } else { self.width };
        let h = ((width as u64 * key.2 as u64 / key.1.max(1) as u64) as u32).max(2) & !1;
        if self.scaler.as_ref().map(|s| s.1) != Some(key) {
            let flags = if self.shrink_only {
                ff::software::scaling::Flags::AREA
            } else {
                ff::software::scaling::Flags::FAST_BILINEAR
            };
            let ctx =
                ff::software::scaling::Context::get(key.0, key.1, key.2, ff::format::Pixel::RGB24, width, h, flags)
                    .map_err(|e| format!("cannot scale video: {e}"))?;
            self.scaler = Some((ctx, key));
        }
        let mut rgb = ff::frame::Video::empty();
        let (ctx, _) = self.scaler.as_mut().expect("set above");
        if ctx.run(frame, &mut rgb).is_err() {
            return Ok(None);
        }
        let (w, stride) = (rgb.width() as usize, rgb.stride(0));
        let data = rgb.data(0);
        let mut px = Vec::with_capacity(w * 3 * h as usize);
        for row in 0..h as usize {
            px.extend_from_slice(&data[row * stride..row * stride + w * 3]);
        }
        Ok(Some(VideoFrame { at: Ts::from_secs_f64(t), width, height: h, rgb: px, follows }))
    }
}

/// The last keyframe: its picture and what the next keyframe is compared with.
struct Key {
    t: f64,
    frame: ff::frame::Video,
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
}

pub(crate) struct VideoDecoding {
    pub(crate) stream: usize,
    time_base: f64,
    params: ff::codec::Parameters,
    skip_loop_filter: bool,
    mode: VideoDecode,
    /// `All`: the one decoder, fed every packet.
    all: Option<ff::decoder::Video>,
    /// `Keyframes`: the packets since the last keyframe (it first), in decode order.
    gop: Vec<ff::Packet>,
    gop_bytes: usize,
    /// The GOP grew too large to keep: its inside is not decoded.
    gop_dropped: bool,
    last_key: Option<Key>,
    /// The most packets between two keyframes yet: the stream's beat (its encoder's largest GOP),
    /// where it has one; keyframes that come sooner are the encoder's scene cuts.
    beat: usize,
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
        let samplers: Vec<Sampler> = [
            Sampler::new(sampling.fps, sampling.width, false, Media::Video),
            Sampler::new(sampling.stills_fps, sampling.stills_width, true, Media::Still),
        ]
        .into_iter()
        .flatten()
        .collect();
        if samplers.is_empty() {
            return Ok(None);
        }
        let tb = stream.time_base();
        // Without stills, frames are for shot detection and small thumbnails: the deblocking
        // filter costs a fifth of H.264 decoding and changes nothing they need.
        let mut v = Self {
            stream: stream.index(),
            time_base: tb.numerator() as f64 / tb.denominator().max(1) as f64,
            params: stream.parameters(),
            skip_loop_filter: sampling.stills_fps <= 0.0,
            mode: sampling.decode,
            all: None,
            gop: Vec::new(),
            gop_bytes: 0,
            gop_dropped: false,
            last_key: None,
            beat: 0,
            samplers,
            probe: Sampler::new(1.0, PROBE_WIDTH, true, Media::Still).expect("a schedule"),
            stats: VideoStats::default(),
            busy: Duration::ZERO,
        };
        if v.mode == VideoDecode::All {
            v.all = Some(v.decoder(true)?);
        }
        Ok(Some(v))
    }

    /// A decoder; `stills`: its frames may become stills (decoded with the deblocking filter).
    fn decoder(&self, stills: bool) -> Result<ff::decoder::Video, ff::Error> {
        let mut d = ff::codec::context::Context::from_parameters(self.params.clone())?.decoder();
        if self.skip_loop_filter || !stills {
            d.skip_loop_filter(ff::Discard::All);
        }
        d.video()
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
                let r = self.drain(&mut d, f64::NEG_INFINITY, f64::INFINITY, Emit::Paced, seconds, skipped, out);
                self.all = Some(d);
                r
            }
            VideoDecode::Keyframes if packet.is_key() => self.keyframe(packet, seconds, skipped, out),
            VideoDecode::Keyframes => {
                if !self.gop.is_empty() && !self.gop_dropped {
                    self.gop_bytes += packet.size();
                    if self.gop_bytes > MAX_GOP_BYTES {
                        self.gop_dropped = true;
                        self.gop.truncate(1);
                    } else {
                        self.gop.push(packet);
                    }
                }
                Ok(())
            }
        };
        self.busy += t0.elapsed();
        result
    }

    /// End of the stream: what is still held back.
    pub(crate) fn finish(
        &mut self,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        let t0 = Instant::now();
        let result = match self.all.take() {
            Some(mut d) => {
                let _ = d.send_eof();
                self.drain(&mut d, f64::NEG_INFINITY, f64::INFINITY, Emit::Paced, seconds, skipped, out)
            }
            // The last GOP: decoded when something happened in it, else a still picture held.
            None => match self.last_key.take() {
                Some(key) if self.gop_has_burst() => self.decode_gop(&key, f64::INFINITY, seconds, skipped, out),
                Some(key) if self.gop_is_still(&key) => {
                    self.emit(&key.frame, key.t + HELD_AFTER_S, Emit::Held, Follows::Closely, skipped, out)
                }
                _ => Ok(()),
            },
        };
        self.busy += t0.elapsed();
        self.stats.seconds = self.busy.as_secs_f64();
        result
    }

    /// A keyframe: decoded alone, compared with the last one; the GOP between them decoded
    /// when the two cannot tell what happened inside it.
    fn keyframe(
        &mut self,
        packet: ff::Packet,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        let mut d = self.decoder(true).map_err(|e| format!("cannot decode the video: {e}"))?;
        let _ = d.send_packet(&packet);
        let _ = d.send_eof();
        let mut frame = ff::frame::Video::empty();
        if d.receive_frame(&mut frame).is_err() {
            *skipped += 1;
            return Ok(());
        }
        self.stats.keyframes += 1;
        self.stats.frames_decoded += 1;
        let t = self.time(&frame, seconds);
        let Some(picture) = self.probe.sample(&frame, t, Follows::Closely)? else {
            *skipped += 1;
            return Ok(());
        };
        let key = Key { t, histogram: histogram(&picture), frame, bytes: packet.size() };
        let interval = self.gop.len();
        let mut follows = Follows::Closely;
        if let Some(last) = self.last_key.take() {
            // A jump of colours at a keyframe on the beat happened somewhere inside the GOP; off
            // the beat, the keyframe is the encoder's own, at the change. (Pictures that change
            // without a jump of colours, moving or panning ones, need no frame of their GOP.)
            let cut = histogram_distance(&last.histogram, &key.histogram) > CUT_SUSPECT;
            // (Before a beat is known, a keyframe is taken for the encoder's own: most encoders
            // put one at a scene cut.)
            let on_beat = self.beat > 0 && interval + 1 >= self.beat;
            if self.gop_has_burst() || (cut && on_beat) {
                self.decode_gop(&last, t, seconds, skipped, out)?;
            } else {
                follows = Follows::Keyframe { scene_cut: !on_beat };
                let held = (last.t + HELD_AFTER_S).min(t - 0.001);
                if self.gop_is_still(&last) && held > last.t {
                    // The last keyframe's still picture held until this one: the stills see it
                    // again a second later.
                    self.emit(&last.frame, held, Emit::Held, Follows::Closely, skipped, out)?;
                }
            }
        }
        self.beat = self.beat.max(interval);
        self.emit(&key.frame, t, Emit::Always, follows, skipped, out)?;
        self.last_key = Some(key);
        self.gop = vec![packet];
        self.gop_bytes = 0;
        self.gop_dropped = false;
        Ok(())
    }

    /// Whether the GOP kept since `key` shows a still picture (its packets after the keyframe
    /// are tiny beside it).
    fn gop_is_still(&self, key: &Key) -> bool {
        let mut sizes: Vec<usize> = self.gop.iter().skip(1).map(|p| p.size()).collect();
        if self.gop_dropped || sizes.is_empty() {
            return false;
        }
        sizes.sort_unstable();
        (sizes[sizes.len() / 2] as f64) < STILL_RATIO * key.bytes as f64
    }

    /// Whether a packet of the GOP (after its keyframe) is much larger than the others.
    fn gop_has_burst(&self) -> bool {
        if self.gop_dropped {
            return false;
        }
        let mut sizes: Vec<usize> = self.gop.iter().skip(1).map(|p| p.size()).collect();
        if sizes.len() < 2 {
            return false;
        }
        sizes.sort_unstable();
        let (median, max) = (sizes[sizes.len() / 2], sizes[sizes.len() - 1]);
        max >= BURST_MIN_BYTES && max > BURST_RATIO * median.max(1)
    }

    /// Decodes the GOP kept since `key`, giving the samplers its frames after the keyframe and
    /// before `until`.
    fn decode_gop(
        &mut self,
        key: &Key,
        until: f64,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        if self.gop_dropped || self.gop.len() < 2 {
            return Ok(());
        }
        self.stats.gops_decoded += 1;
        let still = self.gop_is_still(key);
        tracing::debug!(from = key.t, until, packets = self.gop.len(), still, "decoding a group of pictures");
        let how = if still { Emit::Paced } else { Emit::PacedNoStills };
        let mut d = self.decoder(still).map_err(|e| format!("cannot decode the video: {e}"))?;
        for p in std::mem::take(&mut self.gop) {
            if d.send_packet(&p).is_err() {
                *skipped += 1;
            }
            self.drain(&mut d, key.t, until, how, seconds, skipped, out)?;
        }
        let _ = d.send_eof();
        self.drain(&mut d, key.t, until, how, seconds, skipped, out)
    }

    /// The frames `d` has ready, those strictly between `after` and `until` to the samplers as
    /// `how` says.
    #[allow(clippy::too_many_arguments)]
    fn drain(
        &mut self,
        d: &mut ff::decoder::Video,
        after: f64,
        until: f64,
        how: Emit,
        seconds: &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
        skipped: &mut u64,
        out: &mut Vec<Media>,
    ) -> Result<(), String> {
        let mut frame = ff::frame::Video::empty();
        while d.receive_frame(&mut frame).is_ok() {
            self.stats.frames_decoded += 1;
            let t = self.time(&frame, seconds);
            if t > after && t < until {
                self.emit(&frame, t, how, Follows::Closely, skipped, out)?;
            }
        }
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
                Emit::PacedNoStills => due && !s.shrink_only,
                Emit::Always => true,
                Emit::Held => s.shrink_only,
            };
            if !wanted {
                continue;
            }
            s.next_at_s = s.next_at_s.max((t / s.every_s).floor() * s.every_s + s.every_s);
            match s.sample(frame, t, follows)? {
                Some(f) => out.push((s.wrap)(f)),
                None => *skipped += 1,
            }
        }
        Ok(())
    }
}
