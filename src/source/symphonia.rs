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
use crate::source::{AudioChunk, Media, MediaSource, SAMPLE_RATE_HZ};
use crate::time::Ts;

pub struct SymphoniaSource {
    path: PathBuf,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track: u32,
    resampler: Option<Resampler>,
    duration: Option<Ts>,
    samples_out: u64,
    skipped: u64,
    done: bool,
}

impl SymphoniaSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::input(path, e))?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let probed = symphonia::default::get_probe()
            .format(&hint, mss, &FormatOptions::default(), &MetadataOptions::default())
            .map_err(|e| Error::input(path, e))?;
        let reader = probed.format;
        let track = reader.default_track().ok_or_else(|| Error::input(path, "no audio stream"))?;
        let decoder = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| Error::input(path, e))?;
        let duration = match (track.codec_params.n_frames, track.codec_params.sample_rate) {
            (Some(n), Some(r)) => Some(Ts::from_samples(n, r)),
            _ => None,
        };
        Ok(Self {
            path: path.to_path_buf(),
            track: track.id,
            reader,
            decoder,
            resampler: None,
            duration,
            samples_out: 0,
            skipped: 0,
            done: false,
        })
    }

    fn at(&self) -> Ts {
        Ts::from_samples(self.samples_out, SAMPLE_RATE_HZ)
    }

    fn emit(&mut self, samples: Vec<f32>, out: &mut Vec<Media>) {
        if samples.is_empty() {
            return;
        }
        let (start, n) = (self.at(), samples.len() as u64);
        out.push(Media::Audio(AudioChunk { start, samples }));
        self.samples_out += n;
    }
}

impl MediaSource for SymphoniaSource {
    fn pull(&mut self, out: &mut Vec<Media>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let packet = match self.reader.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let mut rest = Vec::new();
                if let Some(r) = self.resampler.as_mut() {
                    r.flush(&mut rest);
                }
                self.emit(rest, out);
                self.done = true;
                return Ok(false);
            }
            Err(e) => return Err(Error::Decode { path: self.path.clone(), at: self.at(), reason: e.to_string() }),
        };
        if packet.track_id() != self.track {
            return Ok(true);
        }
        let decoded = match self.decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(_)) => {
                self.skipped += 1;
                return Ok(true);
            }
            Err(e) => return Err(Error::Decode { path: self.path.clone(), at: self.at(), reason: e.to_string() }),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        let mono: Vec<f32> = buf.samples().chunks(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect();
        let r = self.resampler.get_or_insert_with(|| Resampler::new(spec.rate, SAMPLE_RATE_HZ));
        let mut resampled = Vec::with_capacity(mono.len());
        r.push(&mono, &mut resampled);
        self.emit(resampled, out);
        Ok(true)
    }

    fn duration(&self) -> Option<Ts> {
        self.duration
    }

    fn skipped_packets(&self) -> u64 {
        self.skipped
    }
}
