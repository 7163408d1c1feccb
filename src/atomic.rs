//! Files written whole or not at all: the bytes go to a temporary file beside the target
//! (`tempfile`), which is synced and then renamed over it. A run that fails or is killed before
//! the rename leaves what the user had untouched; dropping an uncommitted file removes the
//! temporary one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written in place of `target`.
pub struct AtomicFile {
    target: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Opens the temporary file now, so that an unwritable destination fails before any work.
    pub fn create(target: &Path) -> Result<Self> {
        if target.is_dir() {
            return Err(Error::output(target, "is a directory"));
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut builder = tempfile::Builder::new();
        // Readable as any file the user makes (the umask applies), or as the file it replaces.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(target).map_or(0o666, |m| m.permissions().mode() & 0o7777);
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        let tmp = builder
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::output(target, format!("cannot write here: {e}")))?;
        Ok(Self { target: target.to_path_buf(), tmp })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Appends `bytes` to the temporary file.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.tmp.as_file_mut().write_all(bytes).map_err(|e| Error::output(&self.target, e))
    }

    /// Syncs the file and puts it in place of the target.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        self.tmp.as_file().sync_all().map_err(|e| Error::output(&target, e))?;
        self.tmp.persist(&target).map_err(|e| Error::output(&target, e.error))?;
        // The rename itself survives a crash once the directory is synced too.
        if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Whether `a` and `b` name one existing file (through links, `..` or another spelling).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// Writes `bytes` to `path`, whole or not at all.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Writes `path` whole or not at all with `write`, which is given the temporary file's path (for
/// writers that open a path themselves).
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> std::result::Result<(), String>) -> Result<()> {
    let f = AtomicFile::create(path)?;
    write(f.tmp.path()).map_err(|e| Error::output(path, e))?;
    f.commit()
}

/// Saves `tensors` as safetensors to `path`, whole or not at all.
pub fn write_safetensors(path: &Path, tensors: &HashMap<String, candle_core::Tensor>) -> Result<()> {
    write_with(path, |tmp| candle_core::safetensors::save(tensors, tmp).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_dropped_before_commit_leaves_the_target_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.srt");
        std::fs::write(&target, "what the user had").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"half a new file").unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "what the user had");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file is gone");
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unwritable_place_fails_before_any_work() {
        let e = AtomicFile::create(Path::new("/proc/no/such/dir/out.srt")).err().unwrap().to_string();
        assert!(e.contains("/proc/no/such/dir/out.srt") && e.contains("cannot write here"), "{e}");
    }
}
