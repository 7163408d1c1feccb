//! Whisper's tokenizer and its special tokens, looked up by name in `tokenizer.json` (their ids
//! differ between English-only and multilingual models). `weights::load_tokenizer` reads the
//! file.

pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub transcribe: u32,
    pub translate: u32,
    /// The first timestamp token (`<|0.00|>`), one past `<|notimestamps|>`.
    pub timestamp_begin: u32,
    /// Language tokens and their codes, in id order.
    pub languages: Vec<(u32, String)>,
}

impl WhisperTokenizer {
    /// From the bytes of a `tokenizer.json`; the error says what is wrong with them.
    pub fn from_bytes(json: &[u8]) -> Result<Self, String> {
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| format!("bad tokenizer: {e}"))?;
        let id = |s: &str| inner.token_to_id(s).ok_or_else(|| format!("tokenizer lacks {s}"));
        let no_timestamps = id("<|notimestamps|>")?;
        let eot = id("<|endoftext|>")?;
        let mut languages: Vec<(u32, String)> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter_map(|(&id, t)| {
                let code = t.content.strip_prefix("<|")?.strip_suffix("|>")?;
                let is_lang = (2..=3).contains(&code.len()) && code.chars().all(|c| c.is_ascii_lowercase())
                    || code == "haw"
                    || code == "yue";
                is_lang.then(|| (id, code.to_string()))
            })
            .collect();
        languages.sort();
        languages.dedup();
        let no_speech = inner.token_to_id("<|nocaptions|>").or_else(|| inner.token_to_id("<|nospeech|>"));
        Ok(Self {
            eot,
            sot: id("<|startoftranscript|>")?,
            sot_prev: id("<|startofprev|>")?,
            sot_lm: id("<|startoflm|>")?,
            no_speech: no_speech.ok_or_else(|| "tokenizer lacks <|nocaptions|>".to_string())?,
            transcribe: id("<|transcribe|>")?,
            translate: id("<|translate|>")?,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            languages,
            inner,
        })
    }

    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.languages.iter().find(|(_, c)| c == code).map(|(id, _)| *id)
    }

    /// Text tokens only (ids below `<|endoftext|>`).
    pub fn decode(&self, tokens: &[u32]) -> String {
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.eot).collect();
        self.inner.decode(&text, false).unwrap_or_default()
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.inner.encode(text, false).map(|e| e.get_ids().to_vec()).unwrap_or_default()
    }
}
