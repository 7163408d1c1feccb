//! How the requests of several inputs' model stages go through the model together: the chunks
//! of several files (or streams) that wait at once are encoded as one batch, and decoded as one
//! batch where they share options and their prompts are as long, so one pass over the weights a
//! step serves them all (faster-whisper's batched pipeline batches the chunks of one file only).
//! The pipeline runner owns the thread that collects the requests (`pipeline::shared`).

use candle_core::Result;

use crate::infer::decode::DecodeResult;
use crate::infer::transcriber::{DecodeRequest, ModelTranscriber, Transcriber};
use crate::model::Encoded;

/// Encodes the mel windows of `mels` (from different stages; each (windows, row-major mel)) as
/// one batch; the encoding of each, in order.
pub fn encode_together(model: &ModelTranscriber, mels: Vec<(Vec<f32>, usize)>) -> Vec<Result<Encoded>> {
    let counts: Vec<usize> = mels.iter().map(|m| m.1).collect();
    let total: usize = counts.iter().sum();
    let all: Vec<f32> = mels.into_iter().flat_map(|m| m.0).collect();
    let encoded = model.encode(all, total);
    let mut from = 0;
    counts
        .iter()
        .map(|&n| {
            from += n;
            match &encoded {
                Ok(all) => all.windows_from(from - n, n),
                Err(e) => Err(candle_core::Error::Msg(e.to_string())),
            }
        })
        .collect()
}

/// Decodes `requests` (from different stages) in batches: those with the same options (and no
/// fusion memory) whose prompts are as long, as the decoder takes them, and whose encoder windows
/// are as long (live passes on the CPU may have shorter ones) go together, their rows
/// in request order, each window after its own prompt and sampling from its own seed (two
/// streams' passes, each after its own committed text, once both have more than the decoder
/// takes); the result of each request, in order.
pub fn decode_together(model: &impl Transcriber, requests: Vec<DecodeRequest>) -> Vec<Result<Vec<DecodeResult>>> {
    let n_ctx = model.dims().n_text_ctx;
    // The prompt length of every window of `r`, when they are all alike.
    let prompt_tokens = |r: &DecodeRequest| {
        let first = r.starts.first().map_or(0, |s| s.prompt_tokens(n_ctx));
        r.starts.iter().all(|s| s.prompt_tokens(n_ctx) == first).then_some(first)
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let same = |g: &Vec<usize>| {
            let first = &requests[g[0]];
            r.memory.is_none()
                && first.memory.is_none()
                && first.opts == r.opts
                && first.audio.positions() == r.audio.positions()
                && prompt_tokens(r).is_some()
                && prompt_tokens(first) == prompt_tokens(r)
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut results: Vec<Option<Result<Vec<DecodeResult>>>> = requests.iter().map(|_| None).collect();
    for members in groups {
        let first = &requests[members[0]];
        let parts: Vec<&Encoded> = members.iter().map(|&i| &requests[i].audio).collect();
        let decoded = Encoded::cat(&parts).and_then(|audio| {
            model.decode(DecodeRequest {
                audio,
                starts: members.iter().flat_map(|&i| requests[i].starts.iter().cloned()).collect(),
                opts: first.opts.clone(),
                memory: first.memory.clone(),
            })
        });
        match decoded {
            Ok(mut rows) => {
                for &i in members.iter().rev() {
                    let n = requests[i].audio.windows();
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
