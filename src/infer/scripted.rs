//! The model stages against a scripted model: where windows start, how far they seek, how speech
//! is cut into chunks and batched, and when a stage waits for the text on screen, all without
//! weights.

use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};

use crate::context::{Context, ContextConfig};
use crate::flow::Stage;
use crate::infer::align::WordTiming;
use crate::infer::commit::StreamConfig;
use crate::infer::decode::{DecodeOptions, DecodeResult, WindowStart};
use crate::infer::input::Input;
use crate::infer::shared::decode_together;
use crate::infer::streaming::StreamingStage;
use crate::infer::transcriber::{AlignRequest, DecodeRequest, Transcriber};
use crate::infer::{BatchedStage, ModelInput, SequentialStage, TranscribeOptions};
use crate::model::{Dims, Encoded, WhisperTokenizer};
use crate::preprocess::{Features, MelChunk};
use crate::segment::Transcript;
use crate::time::{Span, Ts};

const N_MELS: usize = 4;
/// The scripted tokenizer's first timestamp token.
const TS: u32 = 13;

/// A tokenizer of four words ("alpha" 0 ... "delta" 3) and Whisper's special tokens.
fn tokenizer() -> WhisperTokenizer {
    let special = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|startofprev|>",
        "<|startoflm|>",
        "<|nocaptions|>",
        "<|transcribe|>",
        "<|translate|>",
        "<|notimestamps|>",
    ];
    let added: Vec<String> = special
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"{{"id":{},"content":"{s}","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}"#,
                5 + i
            )
        })
        .collect();
    let json = format!(
        r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{}],"normalizer":null,
        "pre_tokenizer":{{"type":"WhitespaceSplit"}},"post_processor":null,"decoder":null,
        "model":{{"type":"WordLevel","vocab":{{"alpha":0,"beta":1,"gamma":2,"delta":3,"[UNK]":4}},"unk_token":"[UNK]"}}}}"#,
        added.join(",")
    );
    let tok = WhisperTokenizer::from_bytes(json.as_bytes()).expect("a valid tokenizer");
    assert_eq!(tok.timestamp_begin, TS);
    tok
}

/// What the scripted model was asked.
#[derive(Debug, Default)]
struct Calls {
    /// Windows of each encode call.
    encodes: Vec<usize>,
    /// Windows and prompt length of each decode call.
    decodes: Vec<(usize, usize)>,
}

/// Decodes every window to `tokens`, its words (0 to 3) turned by one more each call and window,
/// so that no two windows in a row say the same; aligns each word to 0.4 s, half a second apart
/// or (`spread`) spread over the window's audio, with `probability`. With `loops_when_prompted`,
/// a window decoded after a prompt is a repetition loop.
struct Scripted {
    tok: WhisperTokenizer,
    dims: Dims,
    tokens: Vec<u32>,
    spread: bool,
    encodes_alone: bool,
    probability: f32,
    loops_when_prompted: bool,
    calls: Mutex<Calls>,
}

impl Scripted {
    fn new(tokens: Vec<u32>, spread: bool, encodes_alone: bool) -> Arc<Self> {
        let dims = Dims {
            n_mels: N_MELS,
            n_audio_ctx: 1,
            n_audio_state: 1,
            n_audio_head: 1,
            n_audio_layer: 1,
            n_vocab: 100,
            n_text_ctx: 448,
            n_text_state: 1,
            n_text_head: 1,
            n_text_layer: 1,
        };
        Arc::new(Self {
            tok: tokenizer(),
            dims,
            tokens,
            spread,
            encodes_alone,
            probability: 0.9,
            loops_when_prompted: false,
            calls: Mutex::default(),
        })
    }

    /// A live stream's model: four words half a second apart, said `probability` sure.
    fn live(probability: f32, loops_when_prompted: bool) -> Arc<Self> {
        let mut model = Arc::into_inner(Self::new(vec![TS, 0, 1, 2, 3, TS + 100], false, true)).expect("new");
        model.probability = probability;
        model.loops_when_prompted = loops_when_prompted;
        Arc::new(model)
    }
}

impl Transcriber for Scripted {
    fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tok
    }
    fn dims(&self) -> &Dims {
        &self.dims
    }
    fn can_align(&self) -> bool {
        true
    }
    fn encodes_alone(&self) -> bool {
        self.encodes_alone
    }
    fn encode(&self, mel: Vec<f32>, windows: usize) -> candle_core::Result<Encoded> {
        assert_eq!(mel.len(), windows * N_MELS * crate::preprocess::mel::WINDOW_FRAMES, "every window is padded");
        self.calls.lock().unwrap().encodes.push(windows);
        Ok(Encoded::new(Tensor::zeros((windows, 1, 1), candle_core::DType::F32, &Device::Cpu)?))
    }
    fn memory(&self, _: &Context, _: Span) -> candle_core::Result<Option<Tensor>> {
        Ok(None)
    }
    fn detect_language(&self, _: &Encoded, _: Option<&Tensor>) -> candle_core::Result<(u32, f32)> {
        unreachable!("an English-only model")
    }
    fn decode(&self, r: DecodeRequest) -> candle_core::Result<Vec<DecodeResult>> {
        let n = r.audio.windows();
        assert_eq!(r.starts.len(), n);
        let mut calls = self.calls.lock().unwrap();
        calls.decodes.push((n, r.starts[0].prompt.len()));
        let turn = calls.decodes.len() as u32;
        let window = |w: u32| {
            let tokens: Vec<u32> = self
                .tokens
                .iter()
                .filter(|&&t| t < TS || !r.opts.without_timestamps)
                .map(|&t| if t < TS { (t + turn + w) % 4 } else { t })
                .collect();
            DecodeResult {
                token_logprobs: vec![-0.1; tokens.len()],
                tokens,
                avg_logprob: -0.1,
                no_speech_prob: 0.0,
                temperature: 0.0,
                compression_ratio: 1.0,
                looping: self.loops_when_prompted && !r.starts[w as usize].prompt.is_empty(),
            }
        };
        Ok((0..n as u32).map(window).collect())
    }
    fn align(&self, r: AlignRequest) -> candle_core::Result<Vec<WordTiming>> {
        // Words of 0.4 s: half a second apart, or the first at the window's start and the last
        // at the end of its audio.
        let n = r.tokens.len() as i64;
        let each = if self.spread && n > 1 { (r.frames as i64 * 10 - 400) / (n - 1) } else { 500 };
        Ok(r.tokens
            .iter()
            .enumerate()
            .map(|(i, &t)| WordTiming {
                text: format!(" {}", self.tok.decode(&[t])),
                tokens: vec![t],
                span: Span::new(Ts(i as i64 * each), Ts(i as i64 * each + 400)),
                probability: self.probability,
            })
            .collect())
    }
}

/// `seconds` of mel frames, loud and changing (speech) where `speech(second)` says so, digital
/// silence elsewhere, as chunks of a tenth of a second.
fn mel(seconds: usize, speech: impl Fn(f64) -> bool) -> Vec<ModelInput> {
    let frames: Vec<f32> = (0..seconds * 100)
        .flat_map(|f| {
            let on = speech(f as f64 / 100.0);
            (0..N_MELS).map(move |m| if on { -1.0 + ((f * 7 + m * 3) % 11) as f32 * 0.3 } else { -10.0 })
        })
        .collect();
    frames.chunks(10 * N_MELS).map(|c| ModelInput::Features(Features::Mel(MelChunk { frames: c.to_vec() }))).collect()
}

fn segment_starts(out: &[Transcript]) -> Vec<f64> {
    out.iter()
        .filter_map(|t| match t {
            Transcript::Segment(s) => Some(s.span.start.secs_f64()),
            _ => None,
        })
        .collect()
}

fn run<S: Stage<In = ModelInput, Out = Transcript>>(stage: &mut S, input: Vec<ModelInput>) -> Vec<Transcript> {
    let mut out = Vec::new();
    for item in input {
        stage.process(item, &mut out).unwrap();
    }
    stage.finish(&mut out).unwrap();
    out
}

/// Windows start where speech starts, not at the start of the file; each decodes after the
/// text before it; a window whose decoding ends in an unclosed segment is followed by one that
/// starts at its last closed timestamp (2 s here), so nothing at a window's edge is lost.
#[test]
fn windows_start_at_speech_and_seek_to_the_last_closed_timestamp() {
    // <0.00> alpha beta <2.00><2.00> gamma (cut off by the window's end)
    let model = Scripted::new(vec![TS, 0, 1, TS + 100, TS + 100, 2], false, true);
    let opts = TranscribeOptions { batch_size: 1, ..Default::default() };
    let context = Context::new(ContextConfig::default());
    let mut stage = SequentialStage::new(Input::new(model.clone(), opts, "x".into(), context, false));
    let out = run(&mut stage, mel(70, |s| s >= 5.0));
    let starts = segment_starts(&out);
    // The first window starts where speech does (its first word snapped past the detector's
    // padding), the next 2 s after it, and so on.
    assert!((4.8..=5.1).contains(&starts[0]), "the first window starts at speech: {starts:?}");
    assert!(starts.len() >= 30, "{starts:?}");
    for w in starts[1..].windows(2) {
        assert!(((w[1] - w[0]) - 2.0).abs() < 0.011, "each window seeks 2 s: {starts:?}");
    }
    let calls = model.calls.lock().unwrap();
    assert_eq!(calls.decodes.len(), starts.len());
    assert!(calls.encodes.iter().all(|&n| n == 1));
    assert_eq!(calls.decodes[0].1, 0, "no text before the first window");
    assert!(calls.decodes[1..].iter().all(|d| d.1 > 0), "later windows decode after the text so far");
}

/// Speech cut at its pauses into chunks of at most 30 s, decoded `batch_size` at a time, text
/// only; nothing is decoded before the text on screen is known to the chunks' windows' end.
#[test]
fn speech_is_cut_at_pauses_and_batched_once_the_screen_is_read() {
    // Words spread over each chunk's speech, half a second apart (speech that no word covers is
    // passed over, and decoded again).
    let words = (0..56).map(|i| i % 4);
    let model = Scripted::new(std::iter::once(TS).chain(words).chain([TS + 100]).collect(), true, false);
    let opts = TranscribeOptions { batch_size: 3, ..Default::default() };
    let context = Context::new(ContextConfig::default());
    let mut stage = BatchedStage::new(Input::new(model.clone(), opts, "x".into(), context, true));
    // Eight seconds of speech, two of silence, over 200 s.
    let mut out = Vec::new();
    for item in mel(200, |s| s % 10.0 < 8.0) {
        stage.process(item, &mut out).unwrap();
    }
    assert!(model.calls.lock().unwrap().decodes.is_empty(), "decoded before the screen was read");
    stage.process(ModelInput::ScreenEnd, &mut out).unwrap();
    stage.finish(&mut out).unwrap();
    let calls = model.calls.lock().unwrap();
    let sizes: Vec<usize> = calls.decodes.iter().map(|d| d.0).collect();
    let chunks: usize = sizes.iter().sum();
    assert!(sizes[..sizes.len() - 1].iter().all(|&n| n == 3), "full batches of three, then the rest: {sizes:?}");
    assert!((6..=10).contains(&chunks), "200 s of speech with pauses in chunks of at most 30 s: {sizes:?}");
    assert_eq!(calls.encodes, sizes, "each batch encoded as one (no own kernels)");
    assert!(calls.decodes.iter().all(|d| d.1 == 0), "a chunk decodes without the text before it");
    assert_eq!(stage.batch_sizes(), &sizes[..]);
    let starts = segment_starts(&out);
    assert_eq!(starts.len(), chunks, "{out:?}");
    assert!(starts.windows(2).all(|w| w[1] > w[0] + 20.0), "chunks in order, each at a pause's end: {starts:?}");
    assert!(starts.iter().all(|s| s % 10.0 < 0.2 || s % 10.0 > 9.8), "chunks start where speech does: {starts:?}");
}

/// Feeds `input` to a live stage as it would arrive, the stage idle after each chunk, then ends
/// the stream; returns the stream time (s) at which each committed word came out.
fn live_run(stage: &mut StreamingStage, input: Vec<ModelInput>) -> Vec<f64> {
    let (mut out, mut at) = (Vec::new(), Vec::new());
    let n = input.len();
    let mut take = |out: &mut Vec<Transcript>, i: usize| {
        for t in out.drain(..) {
            if let Transcript::Segment(s) = t {
                at.extend(s.words.iter().map(|_| i as f64 / 10.0));
            }
        }
    };
    for (i, item) in input.into_iter().enumerate() {
        stage.process(item, &mut out).unwrap();
        stage.idle(&mut out).unwrap();
        take(&mut out, i + 1);
    }
    stage.finish(&mut out).unwrap();
    take(&mut out, n);
    at
}

fn live_stage(model: Arc<Scripted>, context: Context) -> StreamingStage {
    let opts = TranscribeOptions { batch_size: 1, ..Default::default() };
    // No hold: words are committed when passes agree (these never do), at a pause or at the end.
    let cfg = StreamConfig { hold_ms: 30_000, ..Default::default() };
    StreamingStage::new(Input::new(model, opts, "x".into(), context, false), cfg)
}

/// At a pause the words heard are committed at once when Whisper is sure of them; words it is
/// unsure of that the pass before heard otherwise (Whisper inventing an ending) wait for a pass
/// to agree; none is lost.
#[test]
fn at_a_pause_only_sure_or_agreed_words_are_committed_at_once() {
    // 2.5 s of speech (four words, the last ending at 1.9 s), then silence to 8 s; every pass
    // hears other words, so none is ever agreed on.
    let speech = |s: f64| s < 2.5;
    let context = || Context::new(ContextConfig::default());
    let sure = live_run(&mut live_stage(Scripted::live(0.9, false), context()), mel(8, speech));
    let unsure = live_run(&mut live_stage(Scripted::live(0.3, false), context()), mel(8, speech));
    assert!(sure.len() >= 4 && unsure.len() >= 4, "every word committed: {sure:?} {unsure:?}");
    // Sure: out at the pause (500 ms of silence after the speech, a pass or so later).
    assert!(sure[..4].iter().all(|&t| t <= 3.5), "sure words out at the pause: {sure:?}");
    // Unsure, never agreed on: out only when the stream ends.
    assert!(unsure.iter().all(|&t| t >= 8.0), "unsure words wait for agreement: {unsure:?}");
}

/// A pass that loops after its prompt (the committed text, the context's terms) is decoded again
/// at once without it, so the speech is heard.
#[test]
fn a_pass_that_loops_is_decoded_again_without_the_prompt() {
    let model = Scripted::live(0.9, true);
    let mut context = Context::new(ContextConfig::default());
    context.add_text("alpha", &model.tok);
    let words = live_run(&mut live_stage(model.clone(), context), mel(8, |s| s < 2.5));
    assert!(words.len() >= 4 && words[0] <= 3.5, "the speech is heard at the pause: {words:?}");
    let calls = model.calls.lock().unwrap();
    let prompts: Vec<usize> = calls.decodes.iter().map(|d| d.1).collect();
    assert!(prompts.contains(&0) && prompts[0] > 0, "{prompts:?}");
    assert!(
        prompts.windows(2).all(|w| w[0] == 0 || w[1] == 0),
        "each looping pass decoded again without its prompt: {prompts:?}"
    );
}

/// Requests decoded together (`infer::shared`): windows after prompts of their own go in one
/// batch when their prompts are as long as the decoder takes them (two live streams' passes,
/// each after its own committed text), whatever their bounds; a prompt of another length, or
/// none, decodes apart.
#[test]
fn windows_after_prompts_as_long_are_decoded_in_one_batch() {
    let model = Scripted::new(vec![TS, 0, 1, TS + 50], false, true);
    let request = |prompt: Vec<u32>, bound| DecodeRequest {
        audio: Encoded::new(Tensor::zeros((1, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap()),
        starts: vec![WindowStart { prompt, seed: 1, max_new_tokens: Some(bound) }],
        opts: DecodeOptions::default(),
        memory: None,
    };
    // Longer than the 223 tokens the decoder takes: as long as it takes them.
    let (long, longer) = (vec![1; 300], vec![2; 400]);
    let requests = vec![
        request(vec![5, 6, 7], 30),
        request(vec![8, 9, 10], 40),
        request(long, 30),
        request(longer, 50),
        request(vec![1], 30),
        request(vec![], 30),
    ];
    let results = decode_together(&*model, requests);
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|w| w.len() == 1)));
    // (windows, the first one's prompt tokens) of each call.
    assert_eq!(model.calls.lock().unwrap().decodes, vec![(2, 3), (2, 300), (1, 1), (1, 0)]);
}
