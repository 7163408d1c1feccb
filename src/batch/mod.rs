//! Archives: many files subtitled once each, resumably, split across machines. What an item is
//! and where its output goes are here; [`ledger`] records what was done to each, [`queue`] hands
//! items out from Redis. The `subtitle batch` command runs them through the file pipeline.
//!
//! An item's id is its path relative to the source directory (or the manifest's `id`): its
//! output mirrors the id under the output directory, whatever the id holds, and its shard is a
//! stable hash of the id, so a shard rerun takes the same items on any machine.

pub mod ledger;
pub mod queue;
pub mod resp;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One file to subtitle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub path: PathBuf,
    /// Spoken language, when the manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Names and terms to expect (a glossary or script file), when the manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<PathBuf>,
}

/// Extensions taken as media even when the file cannot be opened: such a file is an item that
/// fails with its reason, not something quietly passed over.
const MEDIA_EXTENSIONS: &[&str] = &[
    "3gp", "aac", "ac3", "aif", "aiff", "amr", "ape", "asf", "avi", "caf", "dv", "f4v", "flac", "flv", "m2ts", "m2v",
    "m4a", "m4b", "m4v", "mka", "mkv", "mov", "mp2", "mp3", "mp4", "mpeg", "mpg", "mts", "mxf", "oga", "ogg", "ogv",
    "opus", "ts", "vob", "wav", "webm", "wma", "wmv",
];

/// Whether `path`'s extension names a media container.
pub fn has_media_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MEDIA_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The items of `source`: every file under a directory (recursively, hidden entries and
/// `skip` left out, in path order), or the lines of a manifest: one path a line, or JSON objects
/// with `id`, `path` and optional `language` and `context`. Relative paths in a manifest are
/// relative to the manifest. Which files of a directory are media is for the caller to probe.
pub fn list(source: &Path, skip: Option<&Path>) -> Result<Vec<Item>> {
    let meta = std::fs::metadata(source).map_err(|e| Error::input(source, e))?;
    if meta.is_dir() {
        let skip = skip.and_then(|s| s.canonicalize().ok());
        let mut files = Vec::new();
        walk(source, skip.as_deref(), &mut files)?;
        files.sort();
        Ok(files
            .into_iter()
            .map(|path| {
                let rel = path.strip_prefix(source).unwrap_or(&path);
                let id = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                Item { id, path, language: None, context: None }
            })
            .collect())
    } else {
        manifest(source)
    }
}

fn walk(dir: &Path, skip: Option<&Path>, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::input(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::input(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Symlinks are followed: an archive is often a tree of links into storage.
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            if skip.is_some_and(|s| path.canonicalize().is_ok_and(|p| p == s)) {
                continue;
            }
            walk(&path, skip, out)?;
        } else if meta.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn manifest(path: &Path) -> Result<Vec<Item>> {
    let bytes = std::fs::read(path).map_err(|e| Error::input(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::input(path, "not UTF-8 text"))?;
    parse_manifest(&text, path.parent().unwrap_or(Path::new("."))).map_err(|e| Error::input(path, e))
}

/// The items of a manifest's `text` (see [`list`]); relative paths are taken from `base`.
pub fn parse_manifest(text: &str, base: &Path) -> std::result::Result<Vec<Item>, String> {
    let mut items: Vec<Item> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| format!("line {}: {reason}", n + 1);
        let mut item = if line.starts_with('{') {
            let item: Item = serde_json::from_str(line).map_err(|e| bad(format!("not a manifest entry: {e}")))?;
            if item.id.trim().is_empty() {
                return Err(bad("empty id".into()));
            }
            item
        } else {
            Item { id: line.to_string(), path: PathBuf::from(line), language: None, context: None }
        };
        if item.path.is_relative() {
            item.path = base.join(&item.path);
        }
        if let Some(c) = item.context.as_mut().filter(|c| c.is_relative()) {
            *c = base.join(&*c);
        }
        if !seen.insert(item.id.clone()) {
            return Err(bad(format!("id {} twice", item.id)));
        }
        items.push(item);
    }
    Ok(items)
}

/// The output of each of `ids` under `out`, with `extension`: the id's path with its media
/// extension swapped, where that is unique; ids that would share an output keep their
/// extension (`talk.mp4.srt` beside `talk.mkv.srt`). Only normal path components are kept, so
/// no id reaches outside `out`; `None` for an id with none.
pub fn outputs(out: &Path, ids: &[&str], extension: &str) -> Vec<Option<PathBuf>> {
    let rel: Vec<Option<PathBuf>> = ids.iter().map(|id| relative(id)).collect();
    let short = |r: &Path| -> PathBuf {
        match has_media_extension(r) {
            true => r.with_extension(""),
            false => r.to_path_buf(),
        }
    };
    let mut count = std::collections::HashMap::new();
    for r in rel.iter().flatten() {
        *count.entry(short(r)).or_insert(0usize) += 1;
    }
    let named: Vec<Option<PathBuf>> = rel
        .iter()
        .map(|r| {
            let r = r.as_ref()?;
            let stem = short(r);
            let stem = if count[&stem] > 1 { r.clone() } else { stem };
            Some(with_extension(stem, extension))
        })
        .collect();
    // Ids that differ only in what was dropped (`a/./b`, `a/b`) still name one file: each gets
    // its id's hash in its name.
    let mut taken = std::collections::HashMap::new();
    for n in named.iter().flatten() {
        *taken.entry(n.clone()).or_insert(0usize) += 1;
    }
    named
        .into_iter()
        .zip(ids)
        .map(|(n, id)| {
            let n = n?;
            let n = match taken[&n] > 1 {
                true => with_extension(n.with_extension(""), &format!("{}.{extension}", &digest([id.as_bytes()])[..8])),
                false => n,
            };
            Some(out.join(n))
        })
        .collect()
}

/// `stem` with `.extension` added (not swapped: a stem may hold dots).
fn with_extension(stem: PathBuf, extension: &str) -> PathBuf {
    let mut name = stem.into_os_string();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// `id` as a relative path of normal components (`..`, roots and empty parts dropped, control
/// characters replaced), or `None` if nothing is left.
fn relative(id: &str) -> Option<PathBuf> {
    let clean: String = id.chars().map(|c| if c.is_control() { '_' } else { c }).collect();
    let clean = clean.replace('\\', "/");
    let parts: Vec<&str> = Path::new(&clean)
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => p.to_str(),
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| parts.iter().collect())
}

/// The shard (of `count`) that `id` belongs to: FNV-1a of the id, the same on every machine and
/// in every release.
pub fn shard_of(id: &str, count: u32) -> u32 {
    (fnv1a(FNV_OFFSET, id.as_bytes()) % u64::from(count.max(1))) as u32
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A hash of `parts`, in hex: for the settings that shape an output.
pub fn digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let h = parts.into_iter().fold(FNV_OFFSET, |h, p| fnv1a(fnv1a(h, &(p.len() as u64).to_le_bytes()), p));
    format!("{h:016x}")
}

/// What identifies an input's content, cheaply: its size and a hash of its first and last
/// 64 KiB (a changed file almost always changes one; a renamed or touched one does not).
pub fn fingerprint(path: &Path) -> std::io::Result<String> {
    const PART: u64 = 64 << 10;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = Vec::new();
    (&mut f).take(PART).read_to_end(&mut head)?;
    let mut tail = Vec::new();
    if len > PART {
        f.seek(SeekFrom::Start(len.saturating_sub(PART).max(PART)))?;
        f.take(PART).read_to_end(&mut tail)?;
    }
    Ok(format!("{len}-{}", digest([head.as_slice(), tail.as_slice()])))
}

/// Which shard of how many a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `I/N`, with I below N.
    pub fn parse(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("{s}: expected I/N (e.g. 0/4)"))?;
        let index: u32 = i.trim().parse().map_err(|e| format!("{s}: {e}"))?;
        let count: u32 = n.trim().parse().map_err(|e| format!("{s}: {e}"))?;
        if count == 0 || index >= count {
            return Err(format!("{s}: the index must be below the count"));
        }
        Ok(Shard { index, count })
    }

    pub fn holds(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }

    /// The name of its files in the ledger directory.
    pub fn name(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_stay_under_the_directory_and_do_not_collide() {
        let out = Path::new("/o");
        let ids =
            ["a/talk.mp4", "a/talk.mkv", "b/x.wav", "../../etc/passwd", "/abs/y.mp4", "c/../../z.mov", "..", "id7"];
        let got = outputs(out, &ids, "srt");
        let want = [
            Some("/o/a/talk.mp4.srt"),
            Some("/o/a/talk.mkv.srt"),
            Some("/o/b/x.srt"),
            Some("/o/etc/passwd.srt"),
            Some("/o/abs/y.srt"),
            Some("/o/c/z.srt"),
            None,
            Some("/o/id7.srt"),
        ];
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.as_deref(), w.map(Path::new));
        }
    }

    /// Found by the `manifest` fuzz target: `.8./.` and `.8.` were two ids writing one file.
    #[test]
    fn fuzz_manifest_ids_that_normalize_alike_get_their_own_outputs() {
        let ids = [".8./.", ".8.", "a/./b.mp4", "a/b.mp4", "c.mp4"];
        let got: Vec<PathBuf> = outputs(Path::new("/o"), &ids, "srt").into_iter().map(Option::unwrap).collect();
        let unique: std::collections::HashSet<&PathBuf> = got.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{got:?}");
        assert!(got.iter().all(|p| p.starts_with("/o") && p.extension().is_some_and(|e| e == "srt")), "{got:?}");
        assert_eq!(got[4], Path::new("/o/c.srt"));
    }

    #[test]
    fn shards_are_stable_and_cover_every_id() {
        // Fixed values: a change here reassigns every archive's shards.
        assert_eq!(shard_of("a/talk.mp4", 4), shard_of("a/talk.mp4", 4));
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        let ids: Vec<String> = (0..400).map(|i| format!("dir/{i}.mp4")).collect();
        let mut per = [0; 4];
        for id in &ids {
            let s = shard_of(id, 4);
            per[s as usize] += 1;
            assert_eq!((0..4).filter(|&i| Shard { index: i, count: 4 }.holds(id)).count(), 1);
        }
        assert!(per.iter().all(|&n| n > 60), "{per:?}");
    }

    #[test]
    fn shard_parses() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("1").is_err());
    }
}
