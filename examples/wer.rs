//! WER with the project's normaliser (src/eval.rs), for benchmark scripts.
//!
//!   wer REF HYP                     # one pair (text, .srt or .vtt); prints WER in percent
//!   wer --manifest DATA_DIR RUN_DIR # corpus WER of RUN_DIR/<id>.srt over DATA_DIR's English clips
//!   wer --pairs LIST                # corpus WER over LIST's lines, REF<tab>HYP (a missing HYP: all deleted)

use std::path::Path;

use subtitle::eval::{errors, subtitle_text, Errors};

fn read(p: &Path) -> String {
    subtitle_text(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total = match args.as_slice() {
        [flag, data, run] if flag == "--manifest" => {
            let data = Path::new(data);
            let manifest = std::fs::read_to_string(data.join("manifest.tsv")).expect("manifest.tsv");
            let mut total = Errors::default();
            for line in manifest.lines().skip(1) {
                let f: Vec<&str> = line.split('\t').collect();
                if f.get(4) != Some(&"en") || f.get(6) != Some(&"1") {
                    continue;
                }
                let reference = read(&data.join(format!("refs/{}.txt", f[0])));
                total += errors(&reference, &read(&Path::new(run).join(format!("{}.srt", f[0]))));
            }
            total
        }
        [flag, list] if flag == "--pairs" => {
            let list = std::fs::read_to_string(list).unwrap_or_else(|e| panic!("{list}: {e}"));
            let mut total = Errors::default();
            for line in list.lines().filter(|l| !l.is_empty()) {
                let (reference, hypothesis) = line.split_once('\t').expect("REF<tab>HYP");
                let hyp = Path::new(hypothesis);
                let hyp = if hyp.is_file() { read(hyp) } else { String::new() };
                total += errors(&read(Path::new(reference)), &hyp);
            }
            total
        }
        [reference, hypothesis] => errors(&read(Path::new(reference)), &read(Path::new(hypothesis))),
        _ => {
            eprintln!("usage: wer REF HYP | wer --manifest DATA_DIR RUN_DIR | wer --pairs LIST");
            std::process::exit(2);
        }
    };
    println!("{:.2}", 100.0 * total.wer());
}
