//! Containers through FFmpeg (ffmpeg-next over Debian 12's FFmpeg 5.1): audio resampled by
//! swresample to 16 kHz mono f32, video frames sampled and scaled by swscale. Audio and video are
//! placed by their timestamps, the container's start as zero (`AudioClock`).

use std::path::{Path, PathBuf};

use ff::format::sample::Type as SampleType;
use ff::format::Sample;
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;

use crate::error::{Error, Result};
use crate::source::video::VideoDecoding;
use crate::source::{
    AudioChunk, AudioClock, Media, MediaSource, Truncation, VideoSampling, VideoStats, SAMPLE_RATE_HZ,
};
use crate::time::Ts;

pub struct FfmpegSource {
    path: PathBuf,
    input: ff::format::context::Input,
    stream: usize,
    /// The audio stream's time base, in seconds.
    time_base: f64,
    /// The stream's start (the earliest of its streams'), in seconds: media time zero.
    origin_s: Option<f64>,
    decoder: ff::decoder::Audio,
    resampler: Option<(ff::software::resampling::Context, (Sample, ChannelLayout, u32))>,
    video: Option<VideoDecoding>,
    duration: Option<Ts>,
    /// The length the audio should reach, when the input states one (`truncation`).
    stated: Option<Ts>,
    frame_rate: Option<f64>,
    clock: AudioClock,
    skipped: u64,
    done: bool,
}

// SAFETY: FFmpeg's demuxer, decoder and scaler contexts have no thread affinity; the source owns
// them and is used by one thread at a time (moved into its pipeline thread).
unsafe impl Send for FfmpegSource {}

fn ff_reason(e: ff::Error) -> String {
    match e {
        ff::Error::InvalidData => "not a media file FFmpeg can read (invalid data, or truncated)".into(),
        ff::Error::Eof => "ends before its streams could be read: truncated or damaged".into(),
        // What FFmpeg says of damaged headers, read as such (the media harness met each).
        ff::Error::PatchWelcome | ff::Error::Bug | ff::Error::Bug2 => {
            "uses what FFmpeg cannot read here: damaged, or an unusual encoding".into()
        }
        ff::Error::Other { errno } if errno == libc::EIO => "cannot be read: damaged or truncated".into(),
        ff::Error::Other { errno } if errno == libc::EINVAL || errno == libc::EPERM => {
            "its header holds values no stream can have: damaged".into()
        }
        other => other.to_string(),
    }
}

/// How to open an input that is not a plain file: a URL (`pipe:0` for stdin), its demuxer when
/// FFmpeg cannot guess it (a capture device: `alsa`, `pulse`, `v4l2`), demuxer and protocol
/// options (`listen=1` for an RTMP listener), and a callback that aborts a blocked read.
pub struct Opening {
    pub url: String,
    pub format: Option<String>,
    pub options: Vec<(String, String)>,
    pub interrupt: Option<Box<dyn FnMut() -> bool + Send>>,
}

/// `avformat_open_input` with options and an interrupt callback together (ffmpeg-next offers
/// either, not both).
fn open_input(o: Opening) -> std::result::Result<ff::format::context::Input, ff::Error> {
    let url = std::ffi::CString::new(o.url).map_err(|_| ff::Error::InvalidData)?;
    let format = o.format.map(std::ffi::CString::new).transpose().map_err(|_| ff::Error::InvalidData)?;
    let mut dict = ff::Dictionary::new();
    for (k, v) in &o.options {
        dict.set(k, v);
    }
    // SAFETY: the FFmpeg calls below follow its API: the context is allocated here, handed to
    // avformat_open_input (which frees it on failure), closed if reading its streams fails, and
    // otherwise owned by the returned Input. The interrupt callback's box is leaked on purpose:
    // it lives as long as the context may call it.
    unsafe {
        let mut ps = ff::ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ff::Error::Other { errno: libc::ENOMEM });
        }
        if let Some(cb) = o.interrupt {
            (*ps).interrupt_callback = ff::util::interrupt::new(Box::new(cb)).interrupt;
        }
        let fmt = match &format {
            Some(f) => {
                let fmt = ff::ffi::av_find_input_format(f.as_ptr());
                if fmt.is_null() {
                    ff::ffi::avformat_free_context(ps);
                    return Err(ff::Error::DemuxerNotFound);
                }
                fmt
            }
            None => std::ptr::null(),
        };
        let mut opts = dict.disown();
        let res = ff::ffi::avformat_open_input(&mut ps, url.as_ptr(), fmt as _, &mut opts);
        ff::Dictionary::own(opts);
        if res < 0 {
            return Err(ff::Error::from(res));
        }
        let res = ff::ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
        if res < 0 {
            ff::ffi::avformat_close_input(&mut ps);
            return Err(ff::Error::from(res));
        }
        Ok(ff::format::context::Input::wrap(ps))
    }
}

fn init(path: &Path) -> Result<()> {
    ff::init().map_err(|e| Error::input(path, e))?;
    ff::util::log::set_level(ff::util::log::Level::Fatal);
    Ok(())
}

/// FFmpeg's capture devices (`--input-format alsa`, `v4l2`, `lavfi`...), which only live inputs
/// open. libavdevice is opened here rather than linked: it brings libavfilter's 200-odd shared
/// libraries with it, some 40 ms of dynamic linking at the start of every run (a file's too).
fn register_devices() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        // libavdevice's major version is libavformat's (59 for both in FFmpeg 5.1).
        let name = format!("libavdevice.so.{}", ff::ffi::LIBAVFORMAT_VERSION_MAJOR);
        // SAFETY: FFmpeg's own library, of the release whose libavformat this build links; its
        // `avdevice_register_all` takes nothing and returns nothing, and the library stays
        // loaded for the process, as the devices it registers are used.
        let registered = unsafe {
            libloading::Library::new(&name).and_then(|lib| {
                (*lib.get::<unsafe extern "C" fn()>(b"avdevice_register_all\0")?)();
                std::mem::forget(lib);
                Ok(())
            })
        };
        if let Err(e) = registered {
            tracing::warn!("{name}: {e}: no capture device can be opened");
        }
    });
}

impl FfmpegSource {
    pub fn open(path: &Path, sampling: &VideoSampling) -> Result<Self> {
        init(path)?;
        let input = ff::format::input(&path).map_err(|e| Error::input(path, ff_reason(e)))?;
        Self::from_input(path, input, sampling)
    }

    /// A stream, device or pipe as `opening` says; `name` is what errors call it.
    pub fn open_with(name: &Path, opening: Opening, sampling: &VideoSampling) -> Result<Self> {
        init(name)?;
        register_devices();
        let input = open_input(opening).map_err(|e| Error::input(name, ff_reason(e)))?;
        Self::from_input(name, input, sampling)
    }

    /// The input's first timestamp, in seconds: media time zero.
    pub fn origin_s(&self) -> Option<f64> {
        self.origin_s
    }

    fn from_input(path: &Path, input: ff::format::context::Input, sampling: &VideoSampling) -> Result<Self> {
        let audio =
            input.streams().best(ff::media::Type::Audio).ok_or_else(|| Error::input(path, "no audio stream"))?;
        let stream = audio.index();
        let atb = audio.time_base();
        let time_base = atb.numerator() as f64 / atb.denominator().max(1) as f64;
        // In AV_TIME_BASE units; AV_NOPTS_VALUE (i64::MIN) when the container does not know: the
        // first timestamp is the start then.
        // SAFETY: `input` is an open format context; `start_time` is a plain field of it.
        let start = unsafe { (*input.as_ptr()).start_time };
        let origin_s = (start != i64::MIN).then(|| start as f64 / 1e6);
        let ctx =
            ff::codec::context::Context::from_parameters(audio.parameters()).map_err(|e| Error::input(path, e))?;
        let decoder = ctx
            .decoder()
            .audio()
            .map_err(|e| Error::input(path, format!("no decoder for the audio stream: {}", ff_reason(e))))?;
        if decoder.rate() > 0 {
            super::check_rate(decoder.rate()).map_err(|e| Error::input(path, e))?;
        }
        let duration = (input.duration() > 0).then(|| Ts(input.duration() / 1000));
        // What the audio should reach: its stream's length, else the container's, unless that
        // was only estimated from the bitrate (MPEG-TS, raw streams): no promise to hold it to.
        // SAFETY: `input` is an open format context; a plain field of it.
        let estimated = unsafe { (*input.as_ptr()).duration_estimation_method }
            == ff::ffi::AVDurationEstimationMethod::AVFMT_DURATION_FROM_BITRATE;
        let stream_s = (audio.duration() > 0).then(|| audio.duration() as f64 * time_base);
        let stated = match (stream_s, estimated) {
            (Some(s), _) => Some(Ts::from_secs_f64(s)),
            (None, false) => duration,
            (None, true) => None,
        };

        let frame_rate = input.streams().best(ff::media::Type::Video).and_then(|v| {
            let r = v.avg_frame_rate();
            let fps = r.numerator() as f64 / r.denominator().max(1) as f64;
            (r.denominator() > 0 && (1.0..=240.0).contains(&fps)).then_some(fps)
        });
        let video = match input.streams().best(ff::media::Type::Video) {
            Some(v) => VideoDecoding::new(&v, sampling).map_err(|e| Error::input(path, e))?,
            None => None,
        };
        Ok(Self {
            path: path.to_path_buf(),
            input,
            stream,
            time_base,
            origin_s,
            decoder,
            resampler: None,
            video,
            duration,
            stated,
            frame_rate,
            clock: AudioClock::default(),
            skipped: 0,
            done: false,
        })
    }

    /// The video, to be read on its own by a second demuxer over the same file (so that decoding
    /// the picture never holds up the audio, and each can have a core): this source reads the
    /// audio alone from now on. `None` when there is no video to decode, or when the container
    /// gives no start time (media time zero is then the first timestamp of any stream, which
    /// only one demuxer reading both can know).
    fn split_video(&mut self) -> Result<Option<VideoSource>> {
        let (Some(origin_s), Some(video)) = (self.origin_s, self.video.as_ref()) else {
            return Ok(None);
        };
        let keep = video.stream;
        let mut input = ff::format::input(&self.path).map_err(|e| Error::input(&self.path, ff_reason(e)))?;
        if input.nb_streams() as usize <= keep {
            return Ok(None);
        }
        discard_all_but(&mut input, keep);
        discard_all_but(&mut self.input, self.stream);
        let video = self.video.take().expect("checked above");
        Ok(Some(VideoSource {
            path: self.path.clone(),
            input,
            origin_s,
            video,
            reached: Ts::ZERO,
            skipped: 0,
            done: false,
        }))
    }

    fn decode_error(&self, reason: impl ToString) -> Error {
        Error::Decode { path: self.path.clone(), at: self.clock.now(), reason: reason.to_string() }
    }

    fn stream_time(&mut self, ts: Option<i64>, tb: f64) -> Option<f64> {
        since_origin(&mut self.origin_s, ts, tb)
    }

    fn push_samples(&mut self, frame: &ff::frame::Audio, out: &mut Vec<Media>) {
        let n = frame.samples();
        if n == 0 {
            return;
        }
        let samples = frame.plane::<f32>(0)[..n].to_vec();
        out.push(Media::Audio(AudioChunk { start: self.clock.emit(&samples), samples }));
    }

    fn resample(&mut self, frame: &mut ff::frame::Audio, out: &mut Vec<Media>) -> Result<()> {
        if frame.channel_layout().is_empty() {
            frame.set_channel_layout(ChannelLayout::default(frame.channels() as i32));
        }
        let key = (frame.format(), frame.channel_layout(), frame.rate());
        // Where the frame's timestamp puts it: audio before a hole is flushed, then the hole is
        // filled.
        let pts = self.stream_time(frame.timestamp().or(frame.pts()), self.time_base);
        if let Some(gap) = self.clock.frame(pts, frame.samples() as f64 / key.2.max(1) as f64) {
            self.flush_resampler(out)?;
            out.push(Media::Gap(self.clock.fill(gap)));
        }
        if self.resampler.as_ref().map(|r| r.1) != Some(key) {
            super::check_rate(key.2).map_err(|e| self.decode_error(e))?;
            self.flush_resampler(out)?;
            let r = ff::software::resampling::Context::get(
                key.0,
                key.1,
                key.2,
                Sample::F32(SampleType::Packed),
                ChannelLayout::MONO,
                SAMPLE_RATE_HZ,
            )
            .map_err(|e| self.decode_error(format!("cannot resample audio: {e}")))?;
            self.resampler = Some((r, key));
        }
        let cap = frame.samples() * SAMPLE_RATE_HZ as usize / key.2.max(1) as usize + 512;
        let mut o = ff::frame::Audio::new(Sample::F32(SampleType::Packed), cap, ChannelLayout::MONO);
        let (r, _) = self.resampler.as_mut().expect("set above");
        if let Err(e) = r.run(frame, &mut o) {
            return Err(self.decode_error(e));
        }
        self.push_samples(&o, out);
        Ok(())
    }

    fn flush_resampler(&mut self, out: &mut Vec<Media>) -> Result<()> {
        let Some((mut r, _)) = self.resampler.take() else {
            return Ok(());
        };
        loop {
            let mut o = ff::frame::Audio::new(Sample::F32(SampleType::Packed), 4096, ChannelLayout::MONO);
            r.flush(&mut o).map_err(|e| self.decode_error(e))?;
            if o.samples() == 0 {
                return Ok(());
            }
            self.push_samples(&o, out);
        }
    }

    fn drain_audio(&mut self, out: &mut Vec<Media>) -> Result<()> {
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            self.resample(&mut frame, out)?;
        }
        Ok(())
    }

    /// Runs `f` on the video with the source's clock; an error names the time reached.
    fn with_video(
        &mut self,
        f: impl FnOnce(
            &mut VideoDecoding,
            &mut dyn FnMut(Option<i64>, f64) -> Option<f64>,
            &mut u64,
        ) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let Some(mut v) = self.video.take() else {
            return Ok(());
        };
        let origin = &mut self.origin_s;
        let mut seconds = |ts: Option<i64>, tb: f64| since_origin(origin, ts, tb);
        let result = f(&mut v, &mut seconds, &mut self.skipped);
        self.video = Some(v);
        result.map_err(|reason| self.decode_error(reason))
    }
}

/// Seconds from the stream's start (`origin`, in seconds) of a timestamp `ts` in time base
/// `tb`; the first timestamp seen is the start when the container gave none.
fn since_origin(origin: &mut Option<f64>, ts: Option<i64>, tb: f64) -> Option<f64> {
    let t = ts? as f64 * tb;
    Some(t - *origin.get_or_insert(t))
}

/// Marks every stream of `input` but `keep` discarded: the demuxer skips their packets.
fn discard_all_but(input: &mut ff::format::context::Input, keep: usize) {
    // SAFETY: `input` is an open format context whose `streams` array holds `nb_streams` valid
    // streams; `discard` is a plain field that the demuxer reads.
    unsafe {
        let ctx = input.as_mut_ptr();
        for i in 0..(*ctx).nb_streams as usize {
            if i != keep {
                (**(*ctx).streams.add(i)).discard = ff::ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }
}

/// An input's video read by a demuxer of its own ([`MediaSource::take_video`]): sampled frames
/// and stills on the same clock as the audio's source.
pub struct VideoSource {
    path: PathBuf,
    input: ff::format::context::Input,
    /// Media time zero, as the audio's source has it.
    origin_s: f64,
    video: VideoDecoding,
    /// The media time of the last packet read, for errors.
    reached: Ts,
    skipped: u64,
    done: bool,
}

// SAFETY: as `FfmpegSource`: owned by one thread at a time.
unsafe impl Send for VideoSource {}

impl MediaSource for VideoSource {
    fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let mut origin = Some(self.origin_s);
        let mut seconds = |ts: Option<i64>, tb: f64| since_origin(&mut origin, ts, tb);
        let mut packet = ff::Packet::empty();
        let result = match packet.read(&mut self.input) {
            Ok(()) if packet.stream() == self.video.stream => {
                self.video.retime(&mut packet);
                if let Some(t) = seconds(packet.pts(), self.video.time_base()) {
                    self.reached = Ts::from_secs_f64(t.max(0.0));
                }
                self.video.packet(packet, &mut seconds, &mut self.skipped, out)
            }
            Ok(()) => Ok(()),
            Err(ff::Error::Eof) => {
                self.done = true;
                let r = self.video.finish(&mut seconds, &mut self.skipped, out);
                self.video.stats.log();
                r
            }
            Err(e) => Err(format!("read failed: {}", ff_reason(e))),
        };
        result.map_err(|reason| Error::Decode { path: self.path.clone(), at: self.reached, reason })?;
        Ok(!self.done)
    }

    fn duration(&self) -> Option<Ts> {
        None
    }

    fn skipped_packets(&self) -> u64 {
        self.skipped
    }

    fn video_stats(&self) -> Option<VideoStats> {
        Some(self.video.stats.clone())
    }
}

impl MediaSource for FfmpegSource {
    fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let mut packet = ff::Packet::empty();
        match packet.read(&mut self.input) {
            Ok(()) => {
                let idx = packet.stream();
                if idx == self.stream {
                    if self.decoder.send_packet(&packet).is_err() {
                        self.skipped += 1; // a bad packet: skip it, keep going
                    }
                    self.drain_audio(out)?;
                } else if let Some(v) = self.video.as_mut().filter(|v| v.stream == idx) {
                    v.retime(&mut packet);
                    self.with_video(|v, seconds, skipped| v.packet(packet, seconds, skipped, out))?;
                }
                Ok(true)
            }
            Err(ff::Error::Eof) => {
                let _ = self.decoder.send_eof();
                self.drain_audio(out)?;
                self.flush_resampler(out)?;
                self.with_video(|v, seconds, skipped| v.finish(seconds, skipped, out))?;
                if let Some(v) = &self.video {
                    v.stats.log();
                }
                self.done = true;
                if self.clock.audio_samples() == 0 && self.skipped > 0 {
                    return Err(self.decode_error("no audio could be decoded"));
                }
                Ok(false)
            }
            Err(e) => Err(self.decode_error(format!("read failed: {}", ff_reason(e)))),
        }
    }

    fn duration(&self) -> Option<Ts> {
        self.duration
    }

    fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }

    fn take_video(&mut self) -> Result<Option<Box<dyn MediaSource>>> {
        Ok(self.split_video()?.map(|v| Box::new(v) as Box<dyn MediaSource>))
    }

    fn truncation(&self) -> Option<Truncation> {
        self.done.then(|| self.clock.short_of(self.stated)).flatten()
    }

    fn length_after_jumps(&self) -> Option<Ts> {
        self.done.then(|| self.clock.length_after_jumps()).flatten()
    }

    fn skipped_packets(&self) -> u64 {
        self.skipped
    }

    fn video_stats(&self) -> Option<VideoStats> {
        self.video.as_ref().map(|v| v.stats.clone())
    }
}
