//! The logit filters of a decoding step (OpenAI's `SuppressBlank`, `SuppressTokens` and
//! `ApplyTimestampRules`), and the log-probability arithmetic they share with the search.
//!
//! Follows https://github.com/openai/whisper/blob/ba3f3cd54b0e5b8ce1ab3de13e32122d0d5f98ab/whisper/decoding.py

/// Suppression and OpenAI's timestamp rules, applied to one candidate's logits at each step.
#[derive(Debug, Clone)]
pub struct LogitFilter {
    /// Suppressed at every step.
    pub suppress: Vec<u32>,
    /// Suppressed at the first sampled position.
    pub suppress_begin: Vec<u32>,
    pub eot: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    /// The latest first timestamp allowed, in timestamp steps after `timestamp_begin`.
    pub max_initial_timestamp: usize,
    /// No timestamp is ever sampled (text only).
    pub without_timestamps: bool,
}

impl LogitFilter {
    /// Applies the filters for a candidate whose sampled tokens so far are `tokens`; returns the
    /// log-probabilities of the filtered logits.
    pub fn apply(&self, logits: &mut [f32], tokens: &[u32]) -> Vec<f32> {
        let ninf = f32::NEG_INFINITY;
        let ts = self.timestamp_begin as usize;
        let eot = self.eot as usize;
        if tokens.is_empty() {
            for &s in &self.suppress_begin {
                if let Some(l) = logits.get_mut(s as usize) {
                    *l = ninf;
                }
            }
        }
        for &s in &self.suppress {
            logits[s as usize] = ninf;
        }
        logits[self.no_timestamps as usize] = ninf;
        if self.without_timestamps {
            let from = ts.min(logits.len());
            logits[from..].fill(ninf);
            return log_softmax_vec(logits);
        }

        let is_ts = |t: u32| t as usize >= ts;
        let last_was_ts = tokens.last().is_some_and(|&t| is_ts(t));
        let penultimate_was_ts = tokens.len() < 2 || is_ts(tokens[tokens.len() - 2]);
        if last_was_ts {
            if penultimate_was_ts {
                logits[ts..].fill(ninf); // a timestamp pair is closed: text or end next
            } else {
                logits[..eot].fill(ninf); // an open timestamp: its pair, or the end
            }
        }
        if let Some(&last_ts) = tokens.iter().rev().find(|&&t| is_ts(t)) {
            // Timestamps never go back; after a closed pair they must move forward.
            let floor = if last_was_ts && !penultimate_was_ts { last_ts as usize } else { last_ts as usize + 1 };
            let floor = floor.min(logits.len());
            logits[ts..floor].fill(ninf);
        }
        if tokens.is_empty() {
            logits[..ts].fill(ninf); // start with a timestamp
            let from = (ts + self.max_initial_timestamp + 1).min(logits.len());
            logits[from..].fill(ninf);
        }
        // If the timestamps together are likelier than any one text token, sample a timestamp.
        let lp = log_softmax_vec(logits);
        let ts_lp = log_sum_exp(&lp[ts..]);
        let max_text = lp[..ts].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_lp > max_text {
            logits[..ts].fill(ninf);
            return log_softmax_vec(logits);
        }
        lp
    }
}

pub(crate) fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + crate::model::simd::sum_exp(v, max).ln()
}

pub(crate) fn log_softmax_vec(v: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(v);
    v.iter().map(|&x| x - lse).collect()
}

pub(crate) fn softmax_at(v: &[f32], i: usize) -> f32 {
    (v[i] - log_sum_exp(v)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vocabulary of 20: text 0..5, <|endoftext|> 5, specials 6, <|notimestamps|> 7, timestamps 8..20.
    fn filter() -> LogitFilter {
        LogitFilter {
            suppress: vec![6],
            suppress_begin: vec![0, 5],
            eot: 5,
            no_timestamps: 7,
            timestamp_begin: 8,
            max_initial_timestamp: 3,
            without_timestamps: false,
        }
    }

    fn allowed(tokens: &[u32], logits: &[f32]) -> Vec<u32> {
        let mut l = logits.to_vec();
        let lp = filter().apply(&mut l, tokens);
        assert!(l.iter().zip(&lp).all(|(x, p)| (*x == f32::NEG_INFINITY) == (*p == f32::NEG_INFINITY)));
        (0..l.len() as u32).filter(|&i| l[i as usize] > f32::NEG_INFINITY).collect()
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        // Text is likelier, but the first token must be a timestamp <= max_initial (8..=11).
        let mut logits = vec![0.0; 20];
        logits[1] = 10.0;
        assert_eq!(allowed(&[], &logits), vec![8, 9, 10, 11]);
    }

    #[test]
    fn timestamps_come_in_pairs_and_never_go_back() {
        // Text favoured, so the "timestamps likelier than text" rule stays out of the way.
        let mut flat = vec![0.0; 20];
        flat[..5].fill(5.0);
        // After <ts 10> text: text, the end, or a later timestamp (strictly after 10).
        let a = allowed(&[10, 1], &flat);
        assert!(a.contains(&1) && a.contains(&5) && a.contains(&11) && !a.contains(&10), "{a:?}");
        // After an open timestamp <ts 12> (preceded by text): only its pair or the end.
        let b = allowed(&[10, 1, 12], &flat);
        assert!(b.iter().all(|&t| t == 5 || t >= 12), "{b:?}");
        // After a closed pair: text or the end, no third timestamp.
        let c = allowed(&[10, 1, 12, 12], &flat);
        assert!(c.iter().all(|&t| t < 8), "{c:?}");
        // Never the suppressed special or <|notimestamps|>.
        assert!(!a.contains(&6) && !a.contains(&7));
    }

    #[test]
    fn text_only_never_samples_a_timestamp() {
        // Timestamps likelier than anything, first token or later: text or the end all the same.
        let mut logits = vec![0.0; 20];
        logits[8..20].fill(9.0);
        logits[1] = 1.0;
        let text_only = LogitFilter { without_timestamps: true, ..filter() };
        for tokens in [&[][..], &[1, 2][..]] {
            let mut l = logits.clone();
            let lp = text_only.apply(&mut l, tokens);
            let open: Vec<usize> = (0..20).filter(|&i| lp[i] > f32::NEG_INFINITY).collect();
            assert!(open.contains(&1) && open.iter().all(|&t| t < 8 && t != 6 && t != 7), "{tokens:?}: {open:?}");
            let total: f32 = lp.iter().map(|p| p.exp()).sum();
            assert!((total - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn likely_timestamps_win_over_text() {
        // Timestamp mass beats the best text token: only timestamps may follow.
        let mut logits = vec![0.0; 20];
        logits[1] = 2.0;
        logits[12..20].fill(1.5);
        let a = allowed(&[10, 1], &logits);
        assert!(a.iter().all(|&t| t >= 10), "{a:?}");
    }
}
