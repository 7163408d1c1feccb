//! Plain audio files (wav, flac, mp3, ogg/vorbis) through Symphonia, downmixed and resampled to
//! 16 kHz mono.

use std::path::{Path, PathBuf};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::{Error, Result};
use crate::source::resample::Resampler;
use crate::source::{check_rate, AudioChunk, AudioClock, Media, MediaSource, Truncation, SAMPLE_RATE_HZ};
use crate::time::Ts;

pub struct SymphoniaSource {
    path: PathBuf,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track: u32,
    /// The track's time base, in seconds, when it has one.
    time_base: Option<f64>,
    resampler: Option<Resampler>,
    duration: Option<Ts>,
    clock: AudioClock,
    skipped: u64,
    done: bool,
}

/// A packet of the track, decoded.
struct Decoded {
    ts: u64,
    rate: u32,
    channels: usize,
    frames: usize,
    buf: SampleBuffer<f32>,
}

impl SymphoniaSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::input(path, e))?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        // Symphonia panics on some headers (a zero sample rate): a refusal of the file.
        let probed = crate::error::contain_panic(|| {
            symphonia::default::get_probe().format(&hint, mss, &FormatOptions::default(), &MetadataOptions::default())
        })
        .map_err(|p| Error::input(path, format!("unreadable audio header ({p})")))?
        .map_err(|e| Error::input(path, e))?;
        let reader = probed.format;
        let track = reader.default_track().ok_or_else(|| Error::input(path, "no audio stream"))?;
        if let Some(rate) = track.codec_params.sample_rate {
            check_rate(rate).map_err(|e| Error::input(path, e))?;
        }
        let decoder = crate::error::contain_panic(|| {
            symphonia::default::get_codecs().make(&track.codec_params, &DecoderOptions::default())
        })
        .map_err(|p| Error::input(path, format!("unreadable audio header ({p})")))?
        .map_err(|e| Error::input(path, e))?;
        let duration = match (track.codec_params.n_frames, track.codec_params.sample_rate) {
            (Some(n), Some(r)) => Some(Ts::from_samples(n, r)),
            _ => None,
        };
        let time_base = track.codec_params.time_base.map(|tb| tb.numer as f64 / tb.denom.max(1) as f64);
        Ok(Self {
            path: path.to_path_buf(),
            track: track.id,
            time_base,
            reader,
            decoder,
            resampler: None,
            duration,
            clock: AudioClock::default(),
            skipped: 0,
            done: false,
        })
    }

    fn at(&self) -> Ts {
        self.clock.now()
    }

    fn decode_error(&self, reason: impl ToString) -> Error {
        Error::Decode { path: self.path.clone(), at: self.at(), reason: reason.to_string() }
    }

    fn emit(&mut self, samples: Vec<f32>, out: &mut Vec<Media>) {
        if samples.is_empty() {
            return;
        }
        out.push(Media::Audio(AudioChunk { start: self.clock.emit(&samples), samples }));
    }

    /// What the resampler still holds, emitted.
    fn flush(&mut self, out: &mut Vec<Media>) {
        let mut rest = Vec::new();
        if let Some(mut r) = self.resampler.take() {
            r.flush(&mut rest);
        }
        self.emit(rest, out);
    }
}

impl MediaSource for SymphoniaSource {
    fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let (reader, decoder, track) = (&mut self.reader, &mut self.decoder, self.track);
        // Symphonia's readers and decoders panic on some damaged input: a decode error here.
        let read = crate::error::contain_panic(|| -> std::result::Result<Option<Decoded>, SymError> {
            let packet = reader.next_packet()?;
            if packet.track_id() != track {
                return Ok(None);
            }
            let decoded = decoder.decode(&packet)?;
            let spec = *decoded.spec();
            let frames = decoded.frames();
            let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
            buf.copy_interleaved_ref(decoded);
            Ok(Some(Decoded { ts: packet.ts(), rate: spec.rate, channels: spec.channels.count(), frames, buf }))
        });
        let Decoded { ts, rate, channels, frames, buf } = match read {
            Err(p) => return Err(self.decode_error(format!("the audio decoder failed ({p})"))),
            Ok(Ok(Some(d))) => d,
            Ok(Ok(None)) => return Ok(true),
            Ok(Err(SymError::IoError(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.flush(out);
                self.done = true;
                return Ok(false);
            }
            Ok(Err(SymError::DecodeError(_))) => {
                self.skipped += 1;
                return Ok(true);
            }
            Ok(Err(e)) => return Err(self.decode_error(e)),
        };
        check_rate(rate).map_err(|e| self.decode_error(e))?;
        let channels = channels.max(1);
        // Where the packet's timestamp puts it: audio before a hole is flushed, then the hole is
        // filled.
        let pts = self.time_base.map(|tb| ts as f64 * tb);
        if let Some(gap) = self.clock.frame(pts, frames as f64 / rate as f64) {
            self.flush(out);
            out.push(Media::Gap(self.clock.fill(gap)));
        }
        let mono: Vec<f32> = buf.samples().chunks(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect();
        let r = self.resampler.get_or_insert_with(|| Resampler::new(rate, SAMPLE_RATE_HZ));
        let mut resampled = Vec::with_capacity(mono.len());
        r.push(&mono, &mut resampled);
        self.emit(resampled, out);
        Ok(true)
    }

    fn duration(&self) -> Option<Ts> {
        self.duration
    }

    fn truncation(&self) -> Option<Truncation> {
        self.done.then(|| self.clock.short_of(self.duration)).flatten()
    }

    fn length_after_jumps(&self) -> Option<Ts> {
        self.done.then(|| self.clock.length_after_jumps()).flatten()
    }

    fn skipped_packets(&self) -> u64 {
        self.skipped
    }
}
