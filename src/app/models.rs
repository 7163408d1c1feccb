//! `subtitle models ...`: list, find and convert models.

use std::path::PathBuf;

use subtitle::weights;

use crate::app::cli::ModelsCommand;

pub fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::List => {
            for dir in weights::search_dirs() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<PathBuf> =
                    entries.flatten().map(|e| e.path()).filter(|p| p.join("model.safetensors").is_file()).collect();
                names.sort();
                for p in names {
                    let kind = match weights::read_config(&p.join("config.json")) {
                        Err(_) if !p.join("config.json").exists() => "image encoder",
                        Ok(c) if c.dims.is_multilingual() => "multilingual",
                        Ok(_) => "english-only",
                        Err(_) => "unreadable config",
                    };
                    println!("{}\t{}\t{kind}", p.file_name().unwrap_or_default().to_string_lossy(), p.display());
                }
            }
            Ok(())
        }
        ModelsCommand::Convert { src, dst } => {
            weights::ct2::convert_whisper_dir(&src, &dst)?;
            eprintln!("converted {} -> {}", src.display(), dst.display());
            Ok(())
        }
        ModelsCommand::ConvertImage { src, dst } => {
            std::fs::create_dir_all(&dst)?;
            weights::dinov2::convert_onnx(&src, &dst.join("model.safetensors"))?;
            weights::write_checksums(&dst, &["model.safetensors"])?;
            eprintln!("converted {} -> {}", src.display(), dst.display());
            Ok(())
        }
        ModelsCommand::Path { name } => {
            println!("{}", weights::resolve(&name)?.display());
            Ok(())
        }
    }
}
