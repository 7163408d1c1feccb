//! The status ledger of a batch: JSON lines under `OUT/.subtitle-batch/`, one file per shard or
//! queue worker, so writers never share a file. A worker appends `started` before an item and
//! `done`, `failed` or `skipped` after it, each line synced before the next step: an output
//! counts as done only once it is written whole, read back and recorded. A line cut by a kill is
//! ignored when read, and the next append starts on a new line.
//!
//! Reading every ledger of a directory gives each item's state under the settings of a run:
//! done (with the same input and settings), failed (with its reason), or started times without
//! an end (a worker died on it: after enough of those it is a poison file).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The directory of the ledgers, plans and queue note under an output directory.
pub const DIR: &str = ".subtitle-batch";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Done,
    /// Failed for good (until the input or settings change, or `--retry-failed`).
    Failed,
    /// A try failed; another follows.
    Retry,
    Skipped,
}

/// One line of a ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub state: State,
    /// The input's fingerprint and the settings' digest this record holds for.
    pub fingerprint: String,
    pub settings: String,
    /// The try this is (1 for the first).
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Done, with something the user should know (the input ended before its stated length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
    pub worker: String,
    /// Seconds since the Unix epoch.
    pub at: f64,
}

impl Record {
    pub fn new(id: &str, state: State, fingerprint: &str, settings: &str, attempt: u32, worker: &str) -> Self {
        Record {
            id: id.to_string(),
            state,
            fingerprint: fingerprint.to_string(),
            settings: settings.to_string(),
            attempt,
            input: None,
            output: None,
            error: None,
            warning: None,
            media_s: None,
            wall_s: None,
            worker: worker.to_string(),
            at: now(),
        }
    }
}

pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// This process's name in the ledgers: host and process id.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    format!("{}:{}", host.trim(), std::process::id())
}

/// One ledger file, open for appending.
pub struct Ledger {
    path: PathBuf,
    file: std::fs::File,
}

impl Ledger {
    /// Opens (or creates) `OUT/.subtitle-batch/ledger-NAME.jsonl`.
    pub fn open(out: &Path, name: &str) -> Result<Self> {
        let dir = out.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::output(&dir, e))?;
        let path = dir.join(format!("ledger-{name}.jsonl"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| Error::output(&path, e))?;
        // A line cut by a kill: the next record starts on a line of its own.
        let len = file.metadata().map_err(|e| Error::output(&path, e))?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(|e| Error::output(&path, e))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(|e| Error::output(&path, e))?;
            }
        }
        Ok(Ledger { path, file })
    }

    /// Appends `record` and syncs it to disk before returning.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| Error::output(&self.path, e))?;
        line.push(b'\n');
        // One write of a whole line: appends of one line are not interleaved.
        self.file.write_all(&line).and_then(|_| self.file.sync_data()).map_err(|e| Error::output(&self.path, e))
    }
}

/// Every record of every ledger under `out`, in file then line order; lines that do not parse
/// (one cut by a kill) are passed over.
pub fn read_all(out: &Path) -> Result<Vec<Record>> {
    let dir = out.join(DIR);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                name.starts_with("ledger-") && name.ends_with(".jsonl")
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::input(&dir, e)),
    };
    files.sort();
    let mut records = Vec::new();
    for path in files {
        let file = std::fs::File::open(&path).map_err(|e| Error::input(&path, e))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::input(&path, e))?;
            if let Ok(r) = serde_json::from_str::<Record>(&line) {
                records.push(r);
            }
        }
    }
    Ok(records)
}

/// What the ledgers say of one item, under one input fingerprint and settings digest.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The done record, if any.
    pub done: Option<Record>,
    /// The last failure or skip, if no done record came after it.
    pub ended: Option<Record>,
    /// Tries started, and of those the ones no record ended (the worker died).
    pub started: u32,
    pub unended: u32,
}

/// Each item's [`History`] for `fingerprint(id)` and `settings`; records for other inputs or
/// settings do not count.
pub fn histories(records: &[Record], settings: &str) -> HashMap<String, (String, History)> {
    let mut by_id: HashMap<String, (String, History)> = HashMap::new();
    // Records of one item come from one writer at a time, in order.
    for r in records.iter().filter(|r| r.settings == settings) {
        let entry = by_id.entry(r.id.clone()).or_insert_with(|| (r.fingerprint.clone(), History::default()));
        if entry.0 != r.fingerprint {
            // The input changed: what was recorded before is for another file.
            *entry = (r.fingerprint.clone(), History::default());
        }
        let h = &mut entry.1;
        match r.state {
            State::Started => {
                h.started += 1;
                h.unended += 1;
            }
            State::Done => {
                h.unended = h.unended.saturating_sub(1);
                h.done = Some(r.clone());
                h.ended = None;
            }
            State::Failed | State::Skipped => {
                h.unended = h.unended.saturating_sub(1);
                h.ended = Some(r.clone());
            }
            State::Retry => h.unended = h.unended.saturating_sub(1),
        }
    }
    by_id
}

/// The plan of one shard: the items it holds, written when it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub shard: String,
    pub items: Vec<String>,
    pub settings: String,
    /// Media seconds of the items, as probed.
    pub media_s: f64,
}

impl Plan {
    pub fn write(&self, out: &Path) -> Result<()> {
        let path = out.join(DIR).join(format!("plan-{}.json", self.shard));
        let bytes = serde_json::to_vec(self).map_err(|e| Error::output(&path, e))?;
        crate::atomic::write_atomic(&path, &bytes)
    }

    pub fn read_all(out: &Path) -> Result<Vec<Plan>> {
        let dir = out.join(DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut plans = Vec::new();
        for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with("plan-") && name.ends_with(".json") {
                let text = std::fs::read(&p).map_err(|e| Error::input(&p, e))?;
                plans.push(serde_json::from_slice(&text).map_err(|e| Error::input(&p, e))?);
            }
        }
        plans.sort_by(|a: &Plan, b: &Plan| a.shard.cmp(&b.shard));
        Ok(plans)
    }
}

/// A summary of every ledger under an output directory, for `subtitle batch status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Items known: in a plan or a queue, or in a ledger.
    pub items: usize,
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    pub pending: usize,
    /// Done records beyond the first for one item and input (0 when each was done once).
    pub done_twice: usize,
    pub media_hours_done: f64,
    /// From the first start to the last end recorded.
    pub elapsed_hours: f64,
    pub files_per_hour: f64,
    pub media_hours_per_hour: f64,
    pub shards: Vec<String>,
    pub failures: Vec<Failure>,
    /// Items done with a warning (id, warning).
    pub warnings: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    pub error: String,
    pub attempts: u32,
}

/// Sums up `records` for the items `known` (every item of the plans or the queue; empty when
/// there is none, and then the ledgers' items are all there is). Each item counts in its latest
/// settings.
pub fn summarize(records: &[Record], known: &[String], shards: Vec<String>) -> Summary {
    // An item's latest record tells its settings and input; its state is its history there.
    let mut latest: HashMap<&str, &Record> = HashMap::new();
    let mut of_id: HashMap<&str, Vec<&Record>> = HashMap::new();
    for r in records {
        latest.insert(&r.id, r);
        of_id.entry(&r.id).or_default().push(r);
    }
    let mut s = Summary { shards, ..Summary::default() };
    let mut done_keys: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let (mut first, mut last) = (f64::INFINITY, 0.0f64);
    for r in records {
        first = first.min(r.at - r.wall_s.unwrap_or(0.0));
        last = last.max(r.at);
        if r.state == State::Done {
            *done_keys.entry((&r.id, &r.fingerprint, &r.settings)).or_default() += 1;
        }
    }
    s.done_twice = done_keys.values().map(|n| n - 1).sum();
    let mut ids: Vec<&str> = known.iter().map(String::as_str).collect();
    let known_set: std::collections::HashSet<&str> = ids.iter().copied().collect();
    let mut extra: Vec<&str> = latest.keys().copied().filter(|id| !known_set.contains(id)).collect();
    extra.sort();
    ids.extend(extra);
    s.items = ids.len();
    for id in ids {
        let Some(r) = latest.get(id) else {
            s.pending += 1;
            continue;
        };
        let mine: Vec<&Record> =
            of_id[id].iter().copied().filter(|x| x.settings == r.settings && x.fingerprint == r.fingerprint).collect();
        let last_end = mine.iter().rev().find(|x| x.state != State::Started);
        match last_end.map(|x| x.state) {
            Some(State::Done) => {
                s.done += 1;
                let x = last_end.expect("a done record");
                s.media_hours_done += x.media_s.unwrap_or(0.0) / 3600.0;
                if let Some(w) = &x.warning {
                    s.warnings.push((id.to_string(), w.clone()));
                }
            }
            Some(State::Skipped) => s.skipped += 1,
            Some(State::Failed) => {
                s.failed += 1;
                let x = last_end.expect("a failure");
                s.failures.push(Failure {
                    id: id.to_string(),
                    error: x.error.clone().unwrap_or_default(),
                    attempts: mine.iter().filter(|x| x.state == State::Started).count().max(x.attempt as usize) as u32,
                });
            }
            Some(State::Retry | State::Started) | None => s.pending += 1,
        }
    }
    if last > first {
        s.elapsed_hours = (last - first) / 3600.0;
        s.files_per_hour = s.done as f64 / s.elapsed_hours;
        s.media_hours_per_hour = s.media_hours_done / s.elapsed_hours;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, state: State, fp: &str, at: f64) -> Record {
        let mut r = Record::new(id, state, fp, "s1", 1, "w");
        r.at = at;
        r
    }

    #[test]
    fn a_cut_line_is_passed_over_and_the_next_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path(), "t").unwrap();
        l.append(&rec("a", State::Started, "f", 1.0)).unwrap();
        drop(l);
        let path = dir.path().join(DIR).join("ledger-t.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"id":"a","state":"do"#).unwrap();
        let mut l = Ledger::open(dir.path(), "t").unwrap();
        l.append(&rec("a", State::Done, "f", 2.0)).unwrap();
        let records = read_all(dir.path()).unwrap();
        assert_eq!(records.len(), 2);
        let h = &histories(&records, "s1")["a"].1;
        assert!(h.done.is_some() && h.unended == 0 && h.started == 1);
    }

    #[test]
    fn histories_follow_the_input_and_count_deaths() {
        let records = vec![
            rec("a", State::Started, "f1", 1.0),
            rec("a", State::Done, "f1", 2.0),
            rec("b", State::Started, "g", 3.0),
            rec("b", State::Started, "g", 4.0),
            rec("a", State::Started, "f2", 5.0),
        ];
        let h = histories(&records, "s1");
        assert_eq!(h["a"].0, "f2");
        assert!(h["a"].1.done.is_none(), "a changed input is not done");
        assert_eq!((h["b"].1.started, h["b"].1.unended), (2, 2));
        assert!(histories(&records, "other").is_empty());
    }

    #[test]
    fn summary_counts_states_and_double_work() {
        let mut failed = rec("c", State::Failed, "h", 6.0);
        failed.error = Some("c: broken".into());
        let mut done = rec("a", State::Done, "f", 2.0);
        done.media_s = Some(3600.0);
        let records = vec![
            rec("a", State::Started, "f", 1.0),
            done.clone(),
            rec("b", State::Started, "g", 3.0),
            rec("c", State::Started, "h", 5.0),
            failed,
            done,
        ];
        let known: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let s = summarize(&records, &known, vec![]);
        assert_eq!((s.items, s.done, s.failed, s.pending, s.done_twice), (4, 1, 1, 2, 1));
        assert_eq!(s.failures[0].error, "c: broken");
        assert!((s.media_hours_done - 1.0).abs() < 1e-9);
    }
}
