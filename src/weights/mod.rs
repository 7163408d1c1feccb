//! Weights on disk: finding a model directory by name, reading its files into the models of
//! [`crate::model`] (which read nothing themselves), and the converters that make those files
//! from what the registries ship ([`ct2`]: CTranslate2 Whisper; [`dinov2`] through [`onnx`]:
//! the image encoder).

pub mod ct2;
pub mod dinov2;
pub mod onnx;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::model::dinov2::ImageEncoder;
use crate::model::fusion::Fusion;
use crate::model::{Kernels, LoadedModel, ModelConfig, Whisper, WhisperTokenizer};

/// Where `--model` names are looked up: `$SUBTITLE_MODELS`, then `./models`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SUBTITLE_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("models"));
    dirs
}

/// A directory as given, or a name found in `search_dirs()`.
pub fn resolve(model: &str) -> Result<PathBuf> {
    let as_dir = Path::new(model);
    if as_dir.join("model.safetensors").is_file() || (model.contains('/') && as_dir.is_dir()) {
        return Ok(as_dir.to_path_buf());
    }
    for dir in search_dirs() {
        let d = dir.join(model);
        if d.join("model.safetensors").is_file() {
            return Ok(d);
        }
    }
    let looked: Vec<String> = search_dirs().iter().map(|d| d.display().to_string()).collect();
    Err(Error::model(
        model,
        format!("no such model (looked in {}; fetch one with `models/fetch.sh {model}`)", looked.join(", ")),
    ))
}

/// The file in a model directory that records the SHA-256 of every file in it the loaders read
/// (`sha256sum`'s format), written by the converters (`subtitle models convert`,
/// `models/fetch.sh` through it). A load reads nothing that does not match it, and nothing in a
/// directory without it; weights are safetensors, never pickle, so nothing read is executed.
pub const CHECKSUMS: &str = "SHA256SUMS";

/// Records the SHA-256 of `files` (names in `dir`) in `dir/SHA256SUMS`.
pub fn write_checksums(dir: &Path, files: &[&str]) -> Result<()> {
    let mut text = String::new();
    for name in files {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|e| Error::model(&path, e))?;
        text += &format!("{}  {name}\n", sha256_of(file).map_err(|e| Error::model(&path, e))?);
    }
    crate::atomic::write_atomic(&dir.join(CHECKSUMS), text.as_bytes())
}

/// Records the SHA-256 of `path` in its directory's `SHA256SUMS`, beside what that lists of the
/// other files (a file `subtitle train` writes into a directory of the user's).
pub fn record_checksum(path: &Path) -> Result<()> {
    let (dir, name) = dir_and_name(path);
    let file = File::open(path).map_err(|e| Error::model(path, e))?;
    let sha = sha256_of(file).map_err(|e| Error::model(path, e))?;
    let list = dir.join(CHECKSUMS);
    let old = match std::fs::read_to_string(&list) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::model(&list, e)),
    };
    let mut text: String = old
        .lines()
        .filter(|l| l.split_once("  ").is_none_or(|(_, f)| f.trim_start_matches('*') != name))
        .map(|l| format!("{l}\n"))
        .collect();
    text += &format!("{sha}  {name}\n");
    crate::atomic::write_atomic(&list, text.as_bytes())
}

/// The directory `path` is in ("." for a bare name), and its file name.
fn dir_and_name(path: &Path) -> (&Path, String) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    (dir, path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// SHA-256 of everything `r` reads, in hex.
fn sha256_of(mut r: impl std::io::Read) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf)? {
            0 => break,
            n => hash.update(&buf[..n]),
        }
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks that `got` is the SHA-256 recorded for `path` in its directory's `SHA256SUMS`.
fn check_sha256(path: &Path, got: &str) -> Result<()> {
    let (dir, name) = dir_and_name(path);
    let list = dir.join(CHECKSUMS);
    let text = std::fs::read_to_string(&list).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::model(
            path,
            format!(
                "no {CHECKSUMS} in its directory: model files are loaded only as their SHA-256 is recorded there (models/fetch.sh, \
                 `subtitle models convert` and `subtitle train` record it; for a file from elsewhere, \
                 `sha256sum FILE >> {CHECKSUMS}` in its directory)"
            ),
        ),
        _ => Error::model(&list, e),
    })?;
    let expected = text.lines().find_map(|l| {
        let (sha, file) = l.split_once("  ")?;
        (file.trim_start_matches('*') == name).then_some(sha.trim())
    });
    match expected {
        Some(sha) if sha.eq_ignore_ascii_case(got) => Ok(()),
        Some(sha) => Err(Error::model(
            path,
            format!("SHA-256 {got} does not match {sha} recorded in {CHECKSUMS}: changed, corrupt or truncated since it was fetched (fetch it again)"),
        )),
        None => Err(Error::model(path, format!("not listed in {}", list.display()))),
    }
}

/// The bytes of `path`, checked against its directory's `SHA256SUMS`.
pub fn read_verified(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::model(path, e))?;
    check_sha256(path, &sha256_of(bytes.as_slice()).expect("reading memory"))?;
    Ok(bytes)
}

/// Checks the whole of `path` against its directory's `SHA256SUMS`, read through once.
fn verify_file(path: &Path) -> Result<()> {
    let t = std::time::Instant::now();
    let file = File::open(path).map_err(|e| Error::model(path, e))?;
    check_sha256(path, &sha256_of(file).map_err(|e| Error::model(path, e))?)?;
    tracing::debug!("{}: SHA-256 checked in {:.0} ms", path.display(), t.elapsed().as_secs_f64() * 1e3);
    Ok(())
}

/// How a model is loaded: whose kernels run it, and whether it will be trained through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    pub kernels: Kernels,
    /// Keep every weight in f32 as well, for training's backward pass through the frozen
    /// decoder (inference reads only the packed and int8 forms on the CPU).
    pub training: bool,
}

impl LoadOptions {
    /// Inference on `device`, with the kernels that suit it.
    pub fn inference(device: &Device) -> Self {
        Self { kernels: Kernels::for_device(device), training: false }
    }
}

/// A Whisper model directory (`model.safetensors`, `config.json`, `tokenizer.json`) on `device`.
pub fn load_whisper(dir: &Path, device: &Device, opts: LoadOptions) -> Result<LoadedModel> {
    load_weights(dir, read_config(&dir.join("config.json"))?, device, opts)
}

/// [`load_whisper`] with `config`, the directory's `config.json` already read.
pub fn load_weights(dir: &Path, config: ModelConfig, device: &Device, opts: LoadOptions) -> Result<LoadedModel> {
    let t = std::time::Instant::now();
    let st = dir.join("model.safetensors");
    if !st.is_file() {
        return Err(Error::model(&st, "missing model.safetensors"));
    }
    let whisper = verified_load(&st, |file| {
        let vb = VarBuilder::from_backend(Box::new(file), DType::F32, device.clone());
        Whisper::load(vb, &config.dims, opts.kernels, opts.training)
            .map_err(|e| Error::model(&st, format!("weights do not fit the config: {}", first_line(&e))))
    })?;
    tracing::debug!("{}: loaded in {:.0} ms", dir.display(), t.elapsed().as_secs_f64() * 1e3);
    Ok(LoadedModel { dir: dir.to_path_buf(), config, whisper })
}

/// A model directory's `config.json`.
pub fn read_config(path: &Path) -> Result<ModelConfig> {
    let bytes = read_verified(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::model(path, e))?;
    ModelConfig::parse(&text).map_err(|e| Error::model(path, format!("bad model config: {e}")))
}

/// A model directory's `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<WhisperTokenizer> {
    let bytes = read_verified(path)?;
    WhisperTokenizer::from_bytes(&bytes).map_err(|e| Error::model(path, e))
}

/// A fusion adapter written by `subtitle train`, for a decoder of `model`'s dimensions: read only
/// as its directory's `SHA256SUMS` records it (`subtitle train` writes that line; an adapter
/// from elsewhere is taken once its SHA-256 is recorded there, as `sha256sum` writes it).
pub fn load_adapter(path: &Path, model: &LoadedModel, device: &Device) -> Result<Fusion> {
    let d = &model.config.dims;
    let bad =
        |e: &dyn std::fmt::Display| Error::model(path, format!("not an adapter for {}: {e}", model.dir.display()));
    let bytes = read_verified(path)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| bad(&e))?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let fusion = Fusion::load(vb, d.n_text_state, d.n_text_head, d.n_text_layer).map_err(|e| bad(&e))?;
    fusion.fits(d.n_text_layer, d.n_text_state).map_err(|e| bad(&e))?;
    Ok(fusion)
}

/// The image encoder in `dir/model.safetensors`, as `weights::dinov2` writes it.
pub fn load_image_encoder(dir: &Path, device: &Device) -> Result<ImageEncoder> {
    let st = dir.join("model.safetensors");
    if !st.is_file() {
        return Err(Error::model(dir, "no model.safetensors (fetch it with `models/fetch.sh dinov2`)"));
    }
    verified_load(&st, |file| {
        let vb = VarBuilder::from_backend(Box::new(file), DType::F32, device.clone());
        ImageEncoder::load(vb).map_err(|e| Error::model(&st, format!("not a DINOv2 ViT-S/14: {e}")))
    })
}

/// What `load` builds from the safetensors file `st`, given only once the whole file matches its
/// `SHA256SUMS` line: the check reads the file on another thread while `load` runs (on a
/// mismatch what was built is dropped unused).
fn verified_load<T: Send>(st: &Path, load: impl FnOnce(SafetensorsFile) -> Result<T>) -> Result<T> {
    std::thread::scope(|s| {
        let check = s.spawn(|| verify_file(st));
        // The header first, so a truncated or corrupt file is named as such.
        let built = SafetensorsFile::open(st)
            .map_err(|e| Error::model(st, format!("corrupt or truncated weights: {}", first_line(&e))))
            .and_then(load);
        check.join().map_err(|_| Error::model(st, "the SHA-256 check failed"))??;
        built
    })
}

/// A safetensors file read one tensor at a time, not mapped: a mapping keeps every page of the
/// checkpoint it touched resident until it is dropped, so loading peaked at the whole file (75 MB
/// for tiny.en) on top of the weights built from it. The header is read and checked by the
/// `safetensors` crate (every tensor's bytes inside the file, matching its shape and dtype),
/// through a mapping that touches only the header's pages and is let go at once.
struct SafetensorsFile {
    file: File,
    tensors: TensorIndex,
}

impl SafetensorsFile {
    fn open(path: &Path) -> std::result::Result<Self, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: the mapping is only read, and dropped before this returns; the file is not
        // written by this process.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
        Ok(Self { file, tensors: safetensors_index(&map)? })
    }
}

/// name -> (dtype, shape, first byte, end byte), absolute in the file.
pub type TensorIndex = HashMap<String, (DType, Vec<usize>, u64, u64)>;

/// Where each tensor of a safetensors file's `bytes` lies: name -> (dtype, shape, first byte,
/// end byte), absolute in the file. The header is checked by the `safetensors` crate (every
/// tensor's bytes inside the file, matching its shape and dtype); this refuses dtypes candle
/// has not.
pub fn safetensors_index(bytes: &[u8]) -> std::result::Result<TensorIndex, String> {
    let (n, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let data_start = 8 + n as u64;
    let mut tensors = HashMap::new();
    for (name, info) in meta.tensors() {
        let dtype = DType::try_from(info.dtype).map_err(|e| format!("{name}: {e}"))?;
        let (a, b) = info.data_offsets;
        if a > b || data_start + b as u64 > bytes.len() as u64 {
            return Err(format!("{name}: its bytes lie outside the file"));
        }
        tensors.insert(name, (dtype, info.shape.clone(), data_start + a as u64, data_start + b as u64));
    }
    Ok(tensors)
}

impl SimpleBackend for SafetensorsFile {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            candle_core::bail!("shape mismatch for {name}: expected {s:?}, got {:?}", t.shape());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some((stored, shape, a, b)) = self.tensors.get(name) else {
            candle_core::bail!("no tensor {name}");
        };
        let mut buf = vec![0u8; (b - a) as usize];
        self.file.read_exact_at(&mut buf, *a)?;
        if *stored == DType::F16 && dtype == DType::F32 && dev.is_cpu() {
            // Checkpoints keep f16: widened eight at a time (a third of loading went to
            // candle's conversion, a value at a time).
            let half: Vec<half::f16> = buf.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]])).collect();
            let mut f32s = vec![0f32; half.len()];
            crate::model::simd::f16_to_f32(&half, &mut f32s);
            return Tensor::from_vec(f32s, shape.clone(), dev);
        }
        Tensor::from_raw_buffer(&buf, *stored, shape, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose header claims more bytes than the file holds is refused by name, not read
    /// past its end.
    #[test]
    fn a_truncated_safetensors_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let t = Tensor::arange(0f32, 64.0, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("w".to_string(), t)]), &path).unwrap();
        let full = std::fs::read(&path).unwrap();
        assert!(SafetensorsFile::open(&path).is_ok());
        std::fs::write(&path, &full[..full.len() - 4]).unwrap();
        assert!(SafetensorsFile::open(&path).is_err());
        std::fs::write(&path, &full[..6]).unwrap();
        assert!(SafetensorsFile::open(&path).is_err());
    }
}
