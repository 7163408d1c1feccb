//! The shape of the tree, checked: dependencies between the library's modules run one way (no
//! cycle), nothing below `pipeline` imports it, `model` reads no files and knows nothing of
//! sources, sinks or threads, and no source file outgrows what a reader holds in mind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The library's source files by top-level module (`src/model/step.rs` is `model`), without
/// the binary's own (`main.rs`, `app/`) and without comments.
fn library() -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "app" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        out.entry(module).or_default().push((f, code));
    }
    out
}

/// The modules each module's code names as `crate::X`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let lib = library();
    let names: BTreeSet<String> = lib.keys().cloned().collect();
    lib.iter()
        .map(|(m, files)| {
            let used = files
                .iter()
                .flat_map(|(_, code)| code.match_indices("crate::").map(|(i, _)| &code[i + 7..]).collect::<Vec<_>>())
                .map(|rest| rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap().to_string())
                .filter(|u| u != m && names.contains(u))
                .collect();
            (m.clone(), used)
        })
        .collect()
}

#[test]
fn dependencies_between_modules_run_one_way() {
    let graph = imports();
    // Take modules that import nothing not yet taken; whatever is left is a cycle.
    let mut placed: Vec<String> = Vec::new();
    let mut left: BTreeSet<String> = graph.keys().cloned().collect();
    while !left.is_empty() {
        let ready: Vec<String> =
            left.iter().filter(|m| graph[*m].iter().all(|d| placed.contains(d))).cloned().collect();
        assert!(
            !ready.is_empty(),
            "a cycle among {left:?}: {:?}",
            left.iter().map(|m| (m, &graph[m])).collect::<Vec<_>>()
        );
        for m in ready {
            left.remove(&m);
            placed.push(m);
        }
    }
}

#[test]
fn nothing_below_the_pipeline_imports_it() {
    for (m, used) in imports() {
        assert!(m == "pipeline" || !used.contains("pipeline"), "{m} imports pipeline");
    }
}

#[test]
fn the_model_reads_no_files_and_knows_no_sources_sinks_or_threads() {
    let graph = imports();
    for banned in ["source", "sink", "pipeline", "infer", "preprocess", "weights"] {
        assert!(!graph["model"].contains(banned), "model imports {banned}");
    }
    for (path, code) in &library()["model"] {
        for io in ["std::fs", "File::open", "std::thread", "crossbeam"] {
            assert!(!code.contains(io), "{} uses {io}", path.display());
        }
    }
}

#[test]
fn no_source_file_outgrows_700_lines() {
    for files in library().values() {
        for (path, code) in files {
            let lines = code.lines().count();
            assert!(lines <= 700, "{} has {lines} lines", path.display());
        }
    }
}
