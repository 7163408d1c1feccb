//! Batch ledgers as a rerun reads them (lines cut by a kill, foreign lines): any sequence of
//! records sums up without a panic, and counts add up to the items.
#![no_main]

use libfuzzer_sys::fuzz_target;
use subtitle::batch::ledger::{histories, summarize, Record};

fuzz_target!(|text: &str| {
    let records: Vec<Record> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let _ = histories(&records, "s");
    let known: Vec<String> = records.iter().take(3).map(|r| r.id.clone()).collect();
    let s = summarize(&records, &known, Vec::new());
    assert_eq!(s.done + s.failed + s.skipped + s.pending, s.items);
});
