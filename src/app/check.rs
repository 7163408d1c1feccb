//! `subtitle check FILE`: lints an SRT or WebVTT file against a profile.

use std::collections::BTreeSet;
use std::io::Write;

use subtitle::config::PipelineConfig;

use crate::app::cli::CheckArgs;
use crate::app::setup::load_pipeline;

/// True when the file keeps every rule.
pub fn run(args: CheckArgs) -> anyhow::Result<bool> {
    let (file, profile) = (&args.file, &args.profile);
    let cues_cfg = load_pipeline(args.pipeline.as_deref(), PipelineConfig::default_file)?.cues;
    let p = cues_cfg.resolve(profile).map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
    let cues = subtitle::check::read(file)?;
    let violations = subtitle::check::lint(&cues, &p, args.fps);
    let mut out = std::io::stdout().lock();
    for v in &violations {
        writeln!(out, "{}: cue {} ({}): {}", file.display(), v.cue, v.at.clock(','), v.message)?;
    }
    let bad: BTreeSet<usize> = violations.iter().map(|v| v.cue).collect();
    let speed: BTreeSet<usize> = violations.iter().filter(|v| v.over_speed).map(|v| v.cue).collect();
    let other: BTreeSet<usize> = violations.iter().filter(|v| !v.over_speed).map(|v| v.cue).collect();
    writeln!(
        out,
        "{}: {} cues, {} keep every {profile} rule; {} break a rule other than reading speed, {} are over reading speed",
        file.display(),
        cues.len(),
        cues.len() - bad.len(),
        other.len(),
        speed.len()
    )?;
    Ok(violations.is_empty())
}
