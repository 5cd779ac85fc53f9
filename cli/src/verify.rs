//! `syncline verify`: the comparison run and its report.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use syncline_app::Pipeline;
use syncline_app::verify::{Outcome, Report};
use syncline_engine::verify::{DiffKind, Options};

use crate::{EXIT_DIFFERS, EXIT_FAILED};

/// Differences shown per table (`--json` lists every one kept).
const SHOWN: usize = 10;

/// How long keys found different are read again by default while the
/// pipeline runs (its changes in flight land meanwhile); none when no
/// process runs it.
const SETTLE_WHILE_RUNNING: Duration = Duration::from_secs(5);

/// How the comparison reads, as given on the command line.
pub struct Choices {
    /// `--settle`.
    pub settle: Option<f64>,
    /// `--keep`.
    pub keep: usize,
    /// `--page-rows`.
    pub page_rows: usize,
    /// `--repair`.
    pub repair: bool,
}

pub async fn run(
    p: &Pipeline,
    target: Option<&str>,
    table: Option<&str>,
    choices: Choices,
    json: bool,
) -> Result<ExitCode> {
    if choices.repair && running(p) {
        anyhow::bail!(
            "pipeline `{}` is running: stop it before --repair (a repair racing its changes could write an older row over a newer one)",
            p.spec.name
        );
    }
    let settle = match choices.settle {
        Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
        Some(s) => anyhow::bail!("--settle takes seconds (0 or more), not {s}"),
        None if running(p) => SETTLE_WHILE_RUNNING,
        None => Duration::ZERO,
    };
    let options = Options {
        keep: choices.keep,
        settle,
        page_rows: choices.page_rows,
    };
    let progress = |t: &str, s: &str, name: &str| {
        if !json {
            eprintln!("reading {s}.{name} and target {t} ...");
        }
    };
    let mut report = syncline_app::verify::verify(p, target, table, &options, progress).await?;
    let mut repaired = Vec::new();
    if choices.repair && !report.in_sync() {
        if !json {
            print!("{}", render(&report));
        }
        repaired = syncline_app::verify::repair(p, &report).await?;
        if !json {
            for r in &repaired {
                println!("repaired {}: {}", r.target, r.summary());
            }
            println!("after the repair:");
        }
        report = syncline_app::verify::verify(p, target, table, &options, progress).await?;
    }
    if json {
        let mut out = serde_json::to_value(&report)?;
        if choices.repair {
            out["repaired"] = serde_json::to_value(&repaired)?;
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else if report.in_sync() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIFFERS)
    })
}

/// Whether a `syncline run` process of this pipeline is alive.
fn running(p: &Pipeline) -> bool {
    syncline_app::lifecycle::runs_in_a_process(p)
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    if report.tables.is_empty() {
        out.push_str("no target takes a table of a source: nothing to compare\n");
    }
    for t in &report.tables {
        let head = format!("{}.{} in {}", t.source, t.table, t.target);
        match &t.outcome {
            Outcome::Skipped { reason } => {
                out.push_str(&format!("{head}: not compared: {reason}\n"))
            }
            Outcome::Failed { error } => out.push_str(&format!("{head}: FAILED: {error}\n")),
            Outcome::Compared {
                check,
                dead_letters,
            } if check.in_sync() => out.push_str(&format!(
                "{head}: equal ({} rows){}\n",
                check.source_rows,
                if *dead_letters > 0 {
                    format!(", dead letters kept: {dead_letters}")
                } else {
                    String::new()
                }
            )),
            Outcome::Compared {
                check,
                dead_letters,
            } => {
                out.push_str(&format!(
                    "{head}: DIFFERS: {} missing, {} extra, {} changed (source {} rows, target {} rows)\n",
                    check.missing, check.extra, check.changed, check.source_rows, check.target_rows
                ));
                if *dead_letters > 0 {
                    out.push_str(&format!(
                        "  {dead_letters} {} of this table {} kept (`syncline dlq list`): rows the pipeline refused can account for differences\n",
                        if *dead_letters == 1 { "dead letter" } else { "dead letters" },
                        if *dead_letters == 1 { "is" } else { "are" }
                    ));
                }
                for d in check.differences.iter().take(SHOWN) {
                    let kind = match d.kind {
                        DiffKind::Missing => "missing",
                        DiffKind::Extra => "extra",
                        DiffKind::Changed => "changed",
                    };
                    out.push_str(&format!("  {kind:<8} {}", d.key));
                    for (i, c) in d.columns.iter().enumerate() {
                        out.push_str(if i == 0 { ": " } else { "; " });
                        out.push_str(&format!(
                            "{} source {} target {}",
                            c.column, c.source, c.target
                        ));
                    }
                    out.push('\n');
                }
                let more = check.differences.len().saturating_sub(SHOWN) as u64 + check.unlisted;
                if more > 0 {
                    out.push_str(&format!("  ... and {more} more (--json lists them)\n"));
                }
            }
        }
    }
    out
}
