//! The model shared by the model stages of inputs transcribed at the same time: the chunks of
//! several files (or streams) that wait at once go through encoder and decoder as one batch, so one pass
//! over the weights a step serves them all (faster-whisper's batched pipeline batches the chunks
//! of one file only). The pipeline runner owns the thread that collects the requests
//! (`pipeline::shared`); this module says what a request is and how requests decode together.

use candle_core::{Result, Tensor};

use crate::infer::decode::{DecodeOptions, DecodeResult, WindowDecoder};
use crate::infer::tokenizer::WhisperTokenizer;
use crate::model::LoadedModel;

/// One model stage's batch of chunks: their encodings (chunks, audio_ctx, state), decoded after
/// `prompt` with `opts`.
#[derive(Debug, Clone)]
pub struct DecodeRequest {
    pub audio: Tensor,
    pub prompt: Vec<u32>,
    pub opts: DecodeOptions,
}

/// Where a model stage sends its batches when it shares the decoder with other inputs. A call
/// blocks until the batch it joined is decoded; an error is that batch's (the stage stops).
pub trait SharedModel: Send + Sync {
    /// The encoder's output for `mel` (chunks, n_mels, frames).
    fn encode(&self, mel: Tensor) -> Result<Tensor>;
    fn decode(&self, request: DecodeRequest) -> Result<Vec<DecodeResult>>;
}

/// Encodes the mel windows of `mels` (from different stages) with `model` as one batch; the
/// encoding of each, in order.
pub fn encode_together(model: &LoadedModel, mels: &[&Tensor]) -> Vec<Result<Tensor>> {
    let encoded = Tensor::cat(mels, 0).and_then(|mel| model.whisper.encode(&mel));
    let mut from = 0;
    mels.iter()
        .map(|m| {
            let n = m.dim(0)?;
            from += n;
            match &encoded {
                Ok(all) => all.narrow(0, from - n, n),
                Err(e) => Err(candle_core::Error::Msg(e.to_string())),
            }
        })
        .collect()
}

/// Decodes `requests` (from different stages) with `model`: those with the same prompt and
/// options as one batch, their rows in request order; the result of each request, in order.
/// `seed` seeds sampling at temperatures above zero.
pub fn decode_together(
    model: &LoadedModel,
    tok: &WhisperTokenizer,
    requests: &[&DecodeRequest],
    seed: u64,
) -> Vec<Result<Vec<DecodeResult>>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let same = |g: &Vec<usize>| requests[g[0]].prompt == r.prompt && requests[g[0]].opts == r.opts;
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut results: Vec<Option<Result<Vec<DecodeResult>>>> = requests.iter().map(|_| None).collect();
    for members in groups {
        let first = requests[members[0]];
        let decoded =
            Tensor::cat(&members.iter().map(|&i| &requests[i].audio).collect::<Vec<_>>(), 0).and_then(|audio| {
                WindowDecoder::new(&model.whisper, tok, &model.config, seed).decode_batch_with_fallback(
                    &audio,
                    &first.prompt,
                    &first.opts,
                )
            });
        match decoded {
            Ok(mut rows) => {
                for &i in members.iter().rev() {
                    let n = requests[i].audio.dim(0).unwrap_or(0);
                    results[i] = Some(Ok(rows.split_off(rows.len() - n)));
                }
            }
            Err(e) => {
                for &i in &members {
                    results[i] = Some(Err(candle_core::Error::Msg(e.to_string())));
                }
            }
        }
    }
    results.into_iter().map(|r| r.expect("every request is in a group")).collect()
}
