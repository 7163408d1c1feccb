//! Preprocess: decoded media in, log-mel frames out. Video frames are counted and dropped until
//! a visual stage consumes them.

pub mod mel;

use crate::error::Result;
use crate::pipeline::Stage;
use crate::source::Media;

/// Raw log10 mel frames, frame-major (`n_mels` values a frame), in order.
#[derive(Debug, Clone)]
pub struct MelChunk {
    pub frames: Vec<f32>,
}

pub struct PreprocessStage {
    mel: mel::LogMel,
    pub video_frames_dropped: u64,
}

impl PreprocessStage {
    pub fn new(n_mels: usize) -> Self {
        Self { mel: mel::LogMel::new(n_mels), video_frames_dropped: 0 }
    }
}

impl Stage for PreprocessStage {
    type In = Media;
    type Out = MelChunk;
    const NAME: &'static str = "preprocess";

    fn process(&mut self, item: Media, out: &mut Vec<MelChunk>) -> Result<()> {
        match item {
            Media::Audio(a) => {
                let mut frames = Vec::new();
                self.mel.push(&a.samples, &mut frames);
                if !frames.is_empty() {
                    out.push(MelChunk { frames });
                }
            }
            Media::Video(_) => self.video_frames_dropped += 1,
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<MelChunk>) -> Result<()> {
        let mut frames = Vec::new();
        self.mel.flush(&mut frames);
        if !frames.is_empty() {
            out.push(MelChunk { frames });
        }
        Ok(())
    }
}
