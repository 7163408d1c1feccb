//! `subtitle batch`: an archive subtitled once per file through kills, poison files, static
//! shards on a real single-node Slurm, and a real Redis queue with a worker killed mid-file.
//! Each test checks the outputs (whole, parseable, under the output directory) and the ledgers
//! (each item done exactly once).

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// English clips of the shared corpus, each copied to `dir/REL` (`REL` from the list).
fn corpus(dir: &Path, files: &[(&str, &str)]) {
    let real = shared_real();
    for (src, rel) in files {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(real.join(src), &to).unwrap_or_else(|e| panic!("{src}: {e}"));
    }
}

const CLIPS: &[(&str, &str)] = &[
    ("mp4/jfk.mp4", "1961/jfk.mp4"),
    ("mp4/lj_LJ001-0001.mp4", "books/lj/0001.mp4"),
    ("orig/lj_LJ001-0002.wav", "books/lj/0002.wav"),
    ("mp4/lj_LJ001-0003.mp4", "books/lj/0003.mp4"),
    ("orig/lj_LJ001-0004.wav", "books/lj/0004.wav"),
    ("mp4/arctic_aew_a0001.mp4", "arctic/a0001.mp4"),
    ("orig/arctic_aew_a0002.wav", "arctic/a0002.wav"),
    ("mp4/ps_cards_001.mp4", "cards/001 first.mp4"),
    ("orig/ps_cards_002.wav", "cards/002.wav"),
    ("mp4/ldc93s1.mp4", "ldc93s1.mp4"),
];

/// `subtitle batch ARGS` with tiny.en, greedy, no OCR.
fn batch(args: &[&OsStr]) -> Command {
    let mut c = bin();
    c.env("SUBTITLE_MODELS", models()).arg("batch").args(args);
    c.args(["--ocr", "off", "--beam", "1"]);
    c
}

fn status(out: &Path) -> serde_json::Value {
    let o = bin()
        .args([OsStr::new("batch"), OsStr::new("status"), out.as_os_str(), OsStr::new("--json")])
        .output()
        .unwrap();
    assert!(o.status.success(), "batch status: {}", stderr(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// Every ledger line under `out` (a line cut by a kill passed over).
fn records(out: &Path) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(out.join(".subtitle-batch")).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("ledger-") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            all.extend(text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()));
        }
    }
    all
}

/// How many done records each id has.
fn done_counts(out: &Path) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in records(out).iter().filter(|r| r["state"] == "done") {
        *n.entry(r["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    n
}

/// Every file under `dir`, recursively, hidden ones too.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The subtitle outputs under `out` (not the ledgers): each must parse, none may be a
/// temporary file left over.
fn outputs_whole(out: &Path) -> Vec<PathBuf> {
    let srts: Vec<PathBuf> =
        files_under(out).into_iter().filter(|p| !p.starts_with(out.join(".subtitle-batch"))).collect();
    for p in &srts {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(!(name.starts_with('.') && name.ends_with(".tmp")), "a temporary file was left: {}", p.display());
        subtitle::check::read(p).unwrap_or_else(|e| panic!("{} is not whole: {e}", p.display()));
    }
    srts
}

/// A tiny deterministic generator (the kill times), so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn kill9(child: &mut Child) {
    // SAFETY: kill(2) on a child we started and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

fn finished(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

/// A directory of ten clips, a file named as media that is not (`broken/fake.mkv`), a video
/// without sound (skipped), and a text file (not media: not an item).
fn archive(dir: &Path) -> PathBuf {
    let src = dir.join("archive");
    corpus(&src, CLIPS);
    // Twice more under other names: enough work to be killed in.
    for copy in ["copy-a", "copy-b"] {
        let renamed: Vec<(&str, String)> = CLIPS.iter().map(|(from, rel)| (*from, format!("{copy}/{rel}"))).collect();
        corpus(&src, &renamed.iter().map(|(f, r)| (*f, r.as_str())).collect::<Vec<_>>());
    }
    std::fs::create_dir_all(src.join("broken")).unwrap();
    std::fs::write(src.join("broken/fake.mkv"), b"this is not a video\n".repeat(100)).unwrap();
    std::fs::write(src.join("README.txt"), b"tapes digitised in 2009\n").unwrap();
    std::fs::create_dir_all(src.join("silent")).unwrap();
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "2"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(src.join("silent/no-audio.mp4"))
        .status()
        .unwrap();
    assert!(ok.success());
    src
}

#[test]
fn a_batch_killed_at_random_resumes_and_does_each_file_once() {
    let dir = tempdir("batch-kill");
    let src = archive(&dir);
    let out = dir.join("subs");
    let args = [src.as_os_str(), OsStr::new("--out"), out.as_os_str(), OsStr::new("--retries"), OsStr::new("6")];
    let mut rng = Lcg(0x5eed);
    let mut kills = 0;
    for round in 0..8 {
        let mut child = batch(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Some kills land in the model load or the probing, most inside a file.
        std::thread::sleep(Duration::from_millis(200 + rng.below(1500)));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        kill9(&mut child);
        kills += 1;
        // What a kill leaves: whole outputs (perhaps a temporary file beside them, which the
        // next run removes), never a partial one in an output's place.
        for p in files_under(&out).into_iter().filter(|p| p.extension().is_some_and(|e| e == "srt")) {
            subtitle::check::read(&p)
                .unwrap_or_else(|e| panic!("after kill {round}: {} is not whole: {e}", p.display()));
        }
    }
    assert!(kills >= 3, "the batch ended before it could be killed enough ({kills} kills)");
    let o = batch(&args).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "a failed file makes the exit status non-zero: {err}");
    assert!(err.contains("1 failed"), "the failure is counted: {err}");
    eprintln!("{kills} kills, then: {err}");
    let s = status(&out);
    assert_eq!(
        (s["done"].as_u64(), s["failed"].as_u64(), s["skipped"].as_u64(), s["pending"].as_u64()),
        (Some(30), Some(1), Some(1), Some(0)),
        "after {kills} kills: {s}"
    );
    assert_eq!(s["done_twice"], 0, "{s}");
    let counts = done_counts(&out);
    assert_eq!(counts.len(), 30, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "each file done exactly once: {counts:?}");
    assert!(s["failures"][0]["error"].as_str().unwrap().contains("fake.mkv"), "{s}");
    let srts = outputs_whole(&out);
    assert_eq!(srts.len(), 30, "{srts:?}");
    assert!(out.join("cards/001 first.srt").is_file() && out.join("books/lj/0002.srt").is_file());
    let jfk = std::fs::read_to_string(out.join("1961/jfk.srt")).unwrap();
    assert!(jfk.to_lowercase().contains("ask not what your country"), "{jfk}");

    // A rerun does nothing to what is done; a changed input is done again, alone.
    let before = std::fs::metadata(out.join("arctic/a0001.srt")).unwrap().modified().unwrap();
    std::fs::copy(shared_real().join("mp4/lj_LJ001-0005.mp4"), src.join("books/lj/0003.mp4")).unwrap();
    let o = batch(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(out.join("arctic/a0001.srt")).unwrap().modified().unwrap(), before);
    let counts = done_counts(&out);
    assert_eq!(counts["books/lj/0003.mp4"], 2, "the changed file is done again: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 31, "and nothing else: {counts:?}");
    let s = status(&out);
    assert_eq!((s["done"].as_u64(), s["done_twice"].as_u64()), (Some(30), Some(0)), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn poison_files_fail_alone_with_their_reasons() {
    let dir = tempdir("batch-poison");
    let src = dir.join("archive");
    corpus(&src, &CLIPS[..3]);
    // 22 minutes of speech: past a 10-second limit (which the short files keep well within, even
    // with the other tests of this file running beside this one on 2 cores).
    let long = src.join("long/meeting.wav");
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    looped(&shared_real().join("orig/jfk.wav"), 120, &long);
    std::fs::write(src.join("tape.mp4"), b"\0\0\0\x18ftypmp42").unwrap();
    // An upload cut short: done, with a warning that says so.
    let bytes = std::fs::read(shared_real().join("mp4/jfk.mp4")).unwrap();
    std::fs::write(src.join("upload-head.mp4"), &bytes[..60_000]).unwrap();
    let out = dir.join("subs");
    let t0 = Instant::now();
    let o = batch(&[src.as_os_str(), OsStr::new("--out"), out.as_os_str(), OsStr::new("--timeout"), OsStr::new("10")])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("failed:")).collect();
    assert_eq!(lines.len(), 2, "one line a failure: {err}");
    assert!(lines.iter().any(|l| l.contains("meeting.wav") && l.contains("time limit")), "{err}");
    assert!(lines.iter().any(|l| l.contains("tape.mp4")), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(120), "the limit stopped the long file");
    assert!(err.lines().any(|l| l.starts_with("warning:") && l.contains("upload-head.mp4")), "{err}");
    let s = status(&out);
    assert_eq!((s["done"].as_u64(), s["failed"].as_u64(), s["pending"].as_u64()), (Some(4), Some(2), Some(0)), "{s}");
    assert_eq!(s["warnings"][0][0], "upload-head.mp4", "{s}");
    assert_eq!(outputs_whole(&out).len(), 4);
    assert!(!out.join("long/meeting.srt").exists(), "a failed file leaves no output");
    // A failed file is not tried again while it and the settings are unchanged.
    let o = batch(&[src.as_os_str(), OsStr::new("--out"), out.as_os_str(), OsStr::new("--timeout"), OsStr::new("10")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let starts = records(&out).iter().filter(|r| r["state"] == "started" && r["id"] == "long/meeting.wav").count();
    assert_eq!(starts, 1, "the poison file was not run again");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn manifest_ids_stay_under_the_output_and_shards_split_the_items() {
    let dir = tempdir("batch-shards");
    let real = shared_real();
    let manifest = dir.join("list.jsonl");
    let lines = [
        format!(r#"{{"id": "../../escape/jfk", "path": "{}"}}"#, real.join("mp4/jfk.mp4").display()),
        format!(r#"{{"id": "/abs/lj1", "path": "{}"}}"#, real.join("orig/lj_LJ001-0001.wav").display()),
        format!(
            r#"{{"id": "talks/a0001", "path": "{}", "language": "en"}}"#,
            real.join("mp4/arctic_aew_a0001.mp4").display()
        ),
        real.join("orig/ps_cards_001.wav").display().to_string(),
        format!(r#"{{"id": "missing", "path": "{}"}}"#, dir.join("nowhere.mp4").display()),
    ];
    std::fs::write(&manifest, lines.join("\n") + "\n").unwrap();
    let out = dir.join("deep/subs");
    let mut shard_items = Vec::new();
    for i in 0..3 {
        let mut c = batch(&[manifest.as_os_str(), OsStr::new("--out"), out.as_os_str()]);
        // Shard 1 from Slurm's variables, the others from --shard.
        if i == 1 {
            c.env("SLURM_ARRAY_TASK_ID", "1").env("SLURM_ARRAY_TASK_COUNT", "3");
        } else {
            c.args(["--shard", &format!("{i}/3")]);
        }
        let o = c.output().unwrap();
        let plan: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!(".subtitle-batch/plan-shard-{i}-of-3.json"))).unwrap(),
        )
        .unwrap();
        let items: Vec<String> = plan["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
        assert_eq!(o.status.success(), !items.contains(&"missing".to_string()), "shard {i}: {}", stderr(&o));
        shard_items.push(items);
    }
    let mut all: Vec<String> = shard_items.concat();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (5, 5), "each item in exactly one shard: {shard_items:?}");
    let s = status(&out);
    assert_eq!((s["done"].as_u64(), s["failed"].as_u64(), s["pending"].as_u64()), (Some(4), Some(1), Some(0)), "{s}");
    assert_eq!(s["shards"].as_array().unwrap().len(), 3);
    // Nothing outside the output directory, whatever the ids say.
    let written: Vec<PathBuf> =
        files_under(&dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "srt")).collect();
    assert!(written.iter().all(|p| p.starts_with(&out)), "{written:?}");
    for want in ["escape/jfk.srt", "abs/lj1.srt", "talks/a0001.srt"] {
        assert!(out.join(want).is_file(), "{want}: {written:?}");
    }
    assert_eq!(outputs_whole(&out).len(), 4);
    // A shard rerun from the environment takes the same items and passes over them.
    let o =
        batch(&[manifest.as_os_str(), OsStr::new("--out"), out.as_os_str(), OsStr::new("--shards"), OsStr::new("3")])
            .env("JOB_COMPLETION_INDEX", "2")
            .output()
            .unwrap();
    let plan = std::fs::read_to_string(out.join(".subtitle-batch/plan-shard-2-of-3.json")).unwrap();
    let items: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(items["items"].as_array().unwrap().len(), shard_items[2].len(), "{}", stderr(&o));
    assert!(done_counts(&out).values().all(|&n| n == 1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Redis(Child);
impl Drop for Redis {
    fn drop(&mut self) {
        kill9(&mut self.0);
    }
}

fn redis_server() -> (Redis, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian: apt-get install redis-server; .ci/setup installs it)");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Redis(child), port)
}

#[test]
fn a_redis_queue_survives_a_worker_killed_mid_file() {
    let dir = tempdir("batch-redis");
    let src = dir.join("archive");
    corpus(&src, &CLIPS[..8]);
    std::fs::write(src.join("fake.mkv"), b"not a video").unwrap();
    let (_redis, port) = redis_server();
    let queue = format!("redis://127.0.0.1:{port}/archive");
    let enqueue = |expect: &str| {
        let o = bin()
            .args([OsStr::new("batch"), OsStr::new("enqueue"), src.as_os_str(), OsStr::new(&queue)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{}", stderr(&o));
    };
    enqueue("9 items added");
    enqueue("0 items added, 9 were queued before");
    let out = dir.join("subs");
    let worker = || {
        batch(&[OsStr::new(&queue), OsStr::new("--out"), out.as_os_str(), OsStr::new("--lease"), OsStr::new("2")])
            .args(["--jobs", "1", "--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut victim = worker();
    let others: Vec<Child> = (0..2).map(|_| worker()).collect();
    // Killed once it has started a file, before it finishes it.
    let ledger = out.join(format!(".subtitle-batch/ledger-worker-{}-{}.jsonl", hostname(), victim.id()));
    let t0 = Instant::now();
    let started = loop {
        let text = std::fs::read_to_string(&ledger).unwrap_or_default();
        let recs: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if let Some(r) = recs.iter().rev().find(|r| r["state"] == "started") {
            if !recs.iter().any(|x| x["state"] != "started" && x["id"] == r["id"]) {
                break r["id"].as_str().unwrap().to_string();
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the worker started nothing");
        std::thread::sleep(Duration::from_millis(20));
    };
    kill9(&mut victim);
    for w in others {
        let o = finished(w);
        // The fake file fails in one of them: exit 2 there.
        assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
    }
    let s = status(&out);
    assert_eq!((s["done"].as_u64(), s["failed"].as_u64(), s["pending"].as_u64()), (Some(8), Some(1), Some(0)), "{s}");
    assert_eq!(s["done_twice"], 0, "{s}");
    let counts = done_counts(&out);
    assert!(counts.len() == 8 && counts.values().all(|&n| n == 1), "{counts:?}");
    let finisher = records(&out)
        .into_iter()
        .find(|r| r["state"] == "done" && r["id"] == started.as_str())
        .unwrap_or_else(|| panic!("{started}, the killed worker's file, was not finished by another"));
    assert!(!finisher["worker"].as_str().unwrap().ends_with(&format!(":{}", victim.id())));
    assert_eq!(outputs_whole(&out).len(), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

/// Runs `cmd`, returning its stdout; panics with its stderr on failure.
fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Waits until Slurm has no task of `job` left.
fn slurm_wait(job: &str) {
    let t0 = Instant::now();
    while !sh(Command::new("squeue").args(["-h", "-j", job])).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(600), "job {job} did not end");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_slurm_array_with_a_cancelled_task_is_completed_by_resubmitting_its_index() {
    let cluster = root().join("pipelines/slurm/local-cluster.sh");
    sh(Command::new("bash").arg(&cluster));
    let dir = tempdir("batch-slurm");
    let src = dir.join("archive");
    corpus(&src, CLIPS);
    let out = dir.join("subs");
    let script = root().join("pipelines/slurm/subtitle-array.sbatch");
    let submit = |array: &str, hold: bool| -> String {
        let mut c = Command::new("sbatch");
        c.current_dir(&dir)
            .args(["--parsable", "--cpus-per-task", "1", &format!("--array={array}")])
            .args(["--output", &dir.join("slurm-%A_%a.out").display().to_string()])
            .env("SOURCE", &src)
            .env("OUT", &out)
            .env("SHARDS", "4")
            .env("SUBTITLE", env!("CARGO_BIN_EXE_subtitle"))
            .env("SUBTITLE_MODELS", models())
            .env("SUBTITLE_ARGS", "--ocr off --beam 1 --jobs 1");
        if hold {
            c.arg("--hold");
        }
        c.arg(&script);
        sh(&mut c).split(';').next().unwrap().to_string()
    };
    let ids: Vec<String> = CLIPS.iter().map(|(_, rel)| rel.to_string()).collect();
    let held = |i: u32| ids.iter().filter(|id| subtitle::batch::shard_of(id, 4) == i).count();
    let victim = (0..4).max_by_key(|&i| held(i)).unwrap();
    // Held, one task cancelled, the rest released: that task surely never ran.
    let job = submit("0-3", true);
    sh(Command::new("scancel").arg(format!("{job}_{victim}")));
    sh(Command::new("scontrol").args(["release", &job]));
    slurm_wait(&job);
    let s = status(&out);
    let shards: Vec<&str> = s["shards"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let missing: Vec<String> =
        (0..4).filter(|i| !shards.contains(&format!("shard-{i}-of-4").as_str())).map(|i| i.to_string()).collect();
    assert_eq!(missing, [victim.to_string()], "{s}");
    assert_eq!(s["done"].as_u64(), Some((ids.len() - held(victim)) as u64), "{s}");
    // Only the missing index again.
    let again = submit(&missing.join(","), false);
    slurm_wait(&again);
    let logs: String = files_under(&dir)
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("slurm-"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let s = status(&out);
    assert_eq!(
        (s["items"].as_u64(), s["done"].as_u64(), s["pending"].as_u64(), s["done_twice"].as_u64()),
        (Some(10), Some(10), Some(0), Some(0)),
        "{s}\n{logs}"
    );
    assert!(done_counts(&out).values().all(|&n| n == 1));
    assert_eq!(outputs_whole(&out).len(), 10);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM (what `scancel` and Kubernetes send) or Ctrl-C mid-file: the worker stops at once,
/// removes its temporary output, exits 2, and records the file as stopped rather than as a death,
/// so even with `--retries 0` a rerun does it (a killed worker's file counts towards a poison
/// file; a stopped one does not).
#[test]
fn a_batch_stopped_by_sigterm_redoes_the_file_without_counting_a_death() {
    let dir = tempdir("batch-sigterm");
    let src = dir.join("archive");
    std::fs::create_dir_all(&src).unwrap();
    let long = src.join("talk.wav");
    looped(&shared_real().join("orig/jfk.wav"), 6, &long);
    let out = dir.join("subs");
    let args = [src.as_os_str(), OsStr::new("--out"), out.as_os_str(), OsStr::new("--retries"), OsStr::new("0")];
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let child = batch(&args).stderr(Stdio::piped()).spawn().unwrap();
        let t0 = Instant::now();
        while !files_under(&out).iter().any(|p| p.to_string_lossy().ends_with(".tmp")) {
            assert!(t0.elapsed() < Duration::from_secs(60), "no temporary output appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: kill(2) on a child we started and have not reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
        let o = finished(child);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(files_under(&out).iter().all(|p| !p.to_string_lossy().ends_with(".tmp")), "temporary file left");
        assert!(!out.join("talk.srt").exists());
    }
    let last = records(&out).into_iter().last().unwrap();
    assert_eq!(last["state"], "retry", "{last}");
    let o = batch(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = status(&out);
    assert_eq!((s["done"].as_u64(), s["failed"].as_u64()), (Some(1), Some(0)), "{s}");
    assert_eq!(outputs_whole(&out).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
