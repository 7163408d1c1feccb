//! On-screen text with Tesseract: each changed still is read once; lines come out with the time
//! they appeared.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::source::VideoFrame;
use crate::visual::{text_like, OcrConfig};

/// Tesseract's API object, owned (its C API: the `tesseract` crate hides the object, and with it
/// the monitor that gives a still a deadline).
#[cfg(feature = "ocr")]
struct Engine(*mut tesseract_sys::TessBaseAPI);
#[cfg(not(feature = "ocr"))]
struct Engine;

// SAFETY: a TessBaseAPI has no thread affinity; the stage owns it and only its own thread uses it.
#[cfg(feature = "ocr")]
unsafe impl Send for Engine {}

#[cfg(feature = "ocr")]
impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the object was made by TessBaseAPICreate and is deleted once, here.
        unsafe { tesseract_sys::TessBaseAPIDelete(self.0) }
    }
}

/// How Tesseract's reading of a still ended.
#[cfg(feature = "ocr")]
enum Reading {
    /// Its TSV (words with their confidences).
    Read(String),
    /// The still's deadline passed first.
    TimedOut,
}

#[cfg(feature = "ocr")]
impl Engine {
    /// Reads `frame` (RGB), giving up after `deadline_ms`.
    fn read(&mut self, frame: &VideoFrame, deadline_ms: u32) -> std::result::Result<Reading, &'static str> {
        let (w, h) = (frame.width as i32, frame.height as i32);
        if frame.rgb.len() < frame.width as usize * frame.height as usize * 3 {
            return Err("a still smaller than its size");
        }
        // SAFETY: the image is `frame.rgb`, at least w x h x 3 bytes, which outlives the calls
        // reading it (Tesseract copies it when set); the monitor is made, used and deleted here;
        // the text Tesseract returns is copied, then freed with its own deleter.
        unsafe {
            tesseract_sys::TessBaseAPISetImage(self.0, frame.rgb.as_ptr(), w, h, 3, w * 3);
            let monitor = tesseract_sys::TessMonitorCreate();
            tesseract_sys::TessMonitorSetDeadlineMSecs(monitor, deadline_ms.min(i32::MAX as u32) as i32);
            let t0 = std::time::Instant::now();
            let recognised = tesseract_sys::TessBaseAPIRecognize(self.0, monitor);
            tesseract_sys::TessMonitorDelete(monitor);
            if recognised != 0 {
                return match t0.elapsed().as_millis() >= u128::from(deadline_ms) {
                    true => Ok(Reading::TimedOut),
                    false => Err("Tesseract could not read the still"),
                };
            }
            let text = tesseract_sys::TessBaseAPIGetTsvText(self.0, 0);
            if text.is_null() {
                return Err("Tesseract gave no text");
            }
            let tsv = std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned();
            tesseract_sys::TessDeleteText(text);
            Ok(Reading::Read(tsv))
        }
    }
}

// Without the `ocr` feature no reader is ever made (`new` fails): its fields go unread.
#[cfg_attr(not(feature = "ocr"), allow(dead_code))]
pub struct OcrReader {
    cfg: OcrConfig,
    input: PathBuf,
    engine: Option<Engine>,
    last: Option<Vec<String>>,
    /// Stills read (pictures that settled and were new), and the time spent reading them.
    pub read: usize,
    /// Of those, stills without a row of letter-like marks, not given to Tesseract.
    pub passed_over: usize,
    /// Of those, stills Tesseract did not read within their deadline.
    pub timed_out: usize,
    pub busy: std::time::Duration,
}

impl OcrReader {
    /// Checks Tesseract's language data now, so that missing data fails before any work starts;
    /// Tesseract itself loads at the first still with a row of letters (0.07 s of CPU, which a
    /// video without text on screen never spends). Where no folder of language data is found to
    /// check, it loads now, and says itself what it misses.
    #[cfg(feature = "ocr")]
    pub fn new(cfg: OcrConfig, input: PathBuf) -> Result<Self> {
        let engine = if tessdata_dirs().iter().any(|d| d.is_dir()) {
            check(&cfg.language)?;
            None
        } else {
            Some(load(&cfg.language)?)
        };
        let busy = std::time::Duration::ZERO;
        Ok(Self { cfg, input, engine, last: None, read: 0, passed_over: 0, timed_out: 0, busy })
    }

    /// The same reader, for another input (named in its errors).
    pub fn for_input(self, input: PathBuf) -> Self {
        Self { input, ..self }
    }

    #[cfg(not(feature = "ocr"))]
    pub fn new(_: OcrConfig, _: PathBuf) -> Result<Self> {
        Err(Error::config("--ocr", "this build has no on-screen text (built without the `ocr` feature): use --ocr off"))
    }

    #[cfg(not(feature = "ocr"))]
    fn read(&mut self, _: &VideoFrame) -> Result<Vec<String>> {
        unreachable!("an OcrReader cannot be made without the `ocr` feature")
    }

    #[cfg(feature = "ocr")]
    fn read(&mut self, frame: &VideoFrame) -> Result<Vec<String>> {
        let mut engine = match self.engine.take() {
            Some(engine) => engine,
            None => load(&self.cfg.language)?,
        };
        let read = engine.read(frame, self.cfg.still_deadline_ms);
        self.engine = Some(engine);
        match read {
            Ok(Reading::Read(tsv)) => Ok(lines_from_tsv(&tsv, &self.cfg)),
            Ok(Reading::TimedOut) => {
                let ms = self.cfg.still_deadline_ms;
                tracing::info!(at = %frame.at, ms, "a still not read within its deadline: left without text");
                self.timed_out += 1;
                Ok(Vec::new())
            }
            Err(reason) => Err(Error::Decode {
                path: self.input.clone(),
                at: frame.at,
                reason: format!("on-screen text: {reason}"),
            }),
        }
    }
}

/// Where Tesseract looks for its language data: `TESSDATA_PREFIX` (the folder itself, or the
/// folder above it), else where Debian's packages put it.
#[cfg_attr(not(feature = "ocr"), allow(dead_code))]
fn tessdata_dirs() -> Vec<PathBuf> {
    match std::env::var_os("TESSDATA_PREFIX") {
        Some(p) => vec![PathBuf::from(&p), PathBuf::from(p).join("tessdata")],
        None => {
            ["/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata"]
                .map(PathBuf::from)
                .to_vec()
        }
    }
}

/// The first of `language`'s parts ("eng+deu") that none of the existing `dirs` holds data
/// for; `None` when all are there, or when no such folder exists (Tesseract then says itself).
#[cfg_attr(not(feature = "ocr"), allow(dead_code))]
fn missing_language<'a>(language: &'a str, dirs: &[PathBuf]) -> Option<&'a str> {
    let dirs: Vec<&PathBuf> = dirs.iter().filter(|d| d.is_dir()).collect();
    if dirs.is_empty() {
        return None;
    }
    language.split('+').find(|l| !dirs.iter().any(|d| d.join(format!("{l}.traineddata")).is_file()))
}

/// Why Tesseract cannot load `language`, in one line.
#[cfg(feature = "ocr")]
fn cannot(language: &str, why: String, part: &str) -> Error {
    Error::config(
        "[ocr] language",
        format!("Tesseract cannot load '{language}' ({why}): install tesseract-ocr-{part}, or use --ocr off"),
    )
}

/// A language without data, found before Tesseract (which would print lines of its own) is asked.
#[cfg(feature = "ocr")]
fn check(language: &str) -> Result<()> {
    match missing_language(language, &tessdata_dirs()) {
        Some(part) => Err(cannot(language, format!("no {part}.traineddata"), part)),
        None => Ok(()),
    }
}

/// A Tesseract instance for `language`, or a one-line reason it cannot be had.
#[cfg(feature = "ocr")]
fn load(language: &str) -> Result<Engine> {
    check(language)?;
    // Tesseract's parallel loops (OpenMP, up to 4 threads each) wait for each other by spinning:
    // beside the model and the video's decoding they slowed it, and everything with it, more
    // than they sped it (three 1080p slides: 0.95 s of reading and 1.96 s in all, against 0.31 s
    // and 1.17 s one thread each). No loop is run on more than one thread, in this process
    // (nothing else here uses OpenMP).
    // SAFETY: a plain setter of libgomp's global state, which Tesseract links.
    unsafe { omp_set_max_active_levels(0) };
    let lang = std::ffi::CString::new(language).map_err(|_| cannot(language, "a NUL in its name".into(), language))?;
    // SAFETY: the object is owned by `Engine` from here (deleted on drop, a failed one too); the
    // strings outlive the calls, which copy them.
    unsafe {
        let engine = Engine(tesseract_sys::TessBaseAPICreate());
        if tesseract_sys::TessBaseAPIInit3(engine.0, std::ptr::null(), lang.as_ptr()) != 0 {
            return Err(cannot(language, "its data does not load".into(), language));
        }
        // One page of sparse text (titles, bullets, captions) in any layout.
        tesseract_sys::TessBaseAPISetPageSegMode(engine.0, tesseract_sys::TessPageSegMode_PSM_SPARSE_TEXT);
        // Tesseract's notes ("Estimating resolution as ...") would go to stderr.
        tesseract_sys::TessBaseAPISetVariable(engine.0, c"debug_file".as_ptr(), c"/dev/null".as_ptr());
        Ok(engine)
    }
}

#[cfg(feature = "ocr")]
#[link(name = "gomp")]
extern "C" {
    /// The most parallel regions active at once, nested: 0, none (each runs on one thread).
    fn omp_set_max_active_levels(levels: std::ffi::c_int);
}

/// Lines of confident words from Tesseract's TSV (level 5 rows are words, grouped by block,
/// paragraph and line).
#[cfg_attr(not(feature = "ocr"), allow(dead_code))]
fn lines_from_tsv(tsv: &str, cfg: &OcrConfig) -> Vec<String> {
    let mut lines: Vec<((u32, u32, u32), String)> = Vec::new();
    for row in tsv.lines() {
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() < 12 || f[0] != "5" {
            continue;
        }
        let key = (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0), f[4].parse().unwrap_or(0));
        let conf: f32 = f[10].parse().unwrap_or(-1.0);
        let word = f[11].trim();
        if word.is_empty() || conf < cfg.min_word_confidence || !word.chars().any(char::is_alphanumeric) {
            continue;
        }
        match lines.last_mut() {
            Some((k, text)) if *k == key => {
                text.push(' ');
                text.push_str(word);
            }
            _ => lines.push((key, word.to_string())),
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (_, text) in lines {
        if text.chars().filter(|c| c.is_alphabetic()).count() >= cfg.min_line_letters && !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

impl OcrReader {
    /// The lines on `frame`, or `None` when they are the lines of the last frame read.
    pub fn read_changed(&mut self, frame: &VideoFrame) -> Result<Option<Vec<String>>> {
        self.read += 1;
        let t0 = std::time::Instant::now();
        // Tesseract takes about a quarter of a second a still; most pictures without text are
        // told apart in a few milliseconds.
        let row = text_like::longest_row(frame);
        let lines = if row >= text_like::LETTERS {
            self.read(frame)?
        } else {
            tracing::debug!(at = %frame.at, row, ms = t0.elapsed().as_secs_f64() * 1e3, "no row of letters: not given to Tesseract");
            self.passed_over += 1;
            Vec::new()
        };
        self.busy += t0.elapsed();
        Ok((self.last.as_ref() != Some(&lines)).then(|| {
            tracing::debug!(at = %frame.at, ?lines, "on-screen text");
            self.last = Some(lines.clone());
            lines
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_words_group_into_confident_lines() {
        let row = |b: u32, l: u32, conf: f32, w: &str| format!("5\t1\t{b}\t1\t{l}\t1\t0\t0\t10\t10\t{conf}\t{w}");
        let tsv = [
            "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext".to_string(),
            "4\t1\t1\t1\t1\t0\t0\t0\t10\t10\t-1\t".to_string(),
            row(1, 1, 96.0, "Mairead"),
            row(1, 1, 91.0, "Ui"),
            row(1, 1, 88.0, "Cheallaigh"),
            row(2, 1, 95.0, "\u{2022}"),
            row(2, 1, 93.0, "oligodendrocytes"),
            row(3, 1, 30.0, "xq~"),
            row(4, 1, 90.0, "1"),
            row(4, 1, 90.0, "/"),
            row(4, 1, 90.0, "3"),
        ]
        .join("\n");
        let lines = lines_from_tsv(&tsv, &OcrConfig::default());
        assert_eq!(lines, vec!["Mairead Ui Cheallaigh".to_string(), "oligodendrocytes".to_string()]);
    }

    #[cfg(feature = "ocr")]
    #[test]
    fn tesseract_loads_only_for_a_still_with_a_row_of_letters() {
        let mut reader = OcrReader::new(OcrConfig::default(), PathBuf::from("blank.mp4")).expect("English data");
        let blank = VideoFrame {
            at: crate::time::Ts(0),
            width: 320,
            height: 180,
            rgb: vec![200; 320 * 180 * 3],
            follows: Default::default(),
        };
        assert_eq!(reader.read_changed(&blank).unwrap(), Some(Vec::new()));
        assert!(reader.engine.is_none(), "Tesseract was loaded for a blank picture");
        assert_eq!(reader.passed_over, 1);
    }

    /// A busy picture can hold Tesseract for seconds (a 720p test pattern: 5 s); a still not
    /// read within its deadline is left without text, and the reader goes on.
    #[cfg(feature = "ocr")]
    #[test]
    fn a_still_tesseract_does_not_read_within_its_deadline_is_left_without_text() {
        let mut seed = 1u32;
        let noise = (0..640 * 360 * 3)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        let still =
            VideoFrame { at: crate::time::Ts(0), width: 640, height: 360, rgb: noise, follows: Default::default() };
        let mut engine = load("eng").expect("English data");
        let t0 = std::time::Instant::now();
        assert!(matches!(engine.read(&still, 1), Ok(Reading::TimedOut)));
        assert!(t0.elapsed() < std::time::Duration::from_secs(1), "{:?}", t0.elapsed());
        // The same engine reads the next still in full.
        assert!(matches!(engine.read(&still, 60_000), Ok(Reading::Read(_))));
    }

    #[test]
    fn a_language_without_data_is_named_before_tesseract_is_asked() {
        let dir = std::env::temp_dir().join(format!("subtitle-tessdata-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("eng.traineddata"), b"").unwrap();
        let nowhere = dir.join("nowhere");
        assert_eq!(missing_language("eng", &[nowhere.clone(), dir.clone()]), None);
        assert_eq!(missing_language("eng+xyz", std::slice::from_ref(&dir)), Some("xyz"));
        // No folder of language data at all: Tesseract is left to say what it misses.
        assert_eq!(missing_language("xyz", &[nowhere]), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
