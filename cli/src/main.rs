//! `syncline`: runs pipeline files headless with the same engine as the
//! desktop app.
//!
//! Exit codes: 0 success (including a stop by Ctrl-C with its final
//! checkpoint), 1 the run failed, 2 the pipeline file or the command line is
//! invalid, 3 a pre-flight check failed.
//!
//! Environment: `SYNCLINE_LOG` (log filter, e.g. `info` or
//! `syncline_files=debug`), `SYNCLINE_STATUS_INTERVAL_MS` (how often status
//! is published; default 250).

mod dlq;
mod progress;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use syncline_app::Pipeline;
use syncline_app::transforms::{SampleOptions, TransformCheckError};
use syncline_engine::connector::{Check, CheckOutcome};
use syncline_engine::status::StatusHandle;
use syncline_sample as sample;
use tokio_util::sync::CancellationToken;

/// Exit code: the run failed.
const EXIT_FAILED: u8 = 1;
/// Exit code: invalid pipeline file or arguments.
const EXIT_INVALID: u8 = 2;
/// Exit code: a pre-flight check failed.
const EXIT_CHECK: u8 = 3;
/// Exit code: `verify` found a target that differs from its source.
const EXIT_DIFFERS: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "syncline",
    version,
    about = "Keep systems in sync with a database's change log."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline: snapshot, then follow changes until Ctrl-C.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Stop once everything present at start is synced.
        #[arg(long)]
        once: bool,
        /// Print status as JSON lines on stdout instead of progress bars.
        #[arg(long)]
        json: bool,
    },
    /// Check a pipeline file and report every problem in it.
    Validate {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Connect to every source and target and run pre-flight checks.
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Print results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List each source's tables with their columns, types and keys.
    Discover {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Print results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the last known status of a pipeline.
    Status {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop a pipeline: remove its replication slots and publications, its
    /// local state and its checkpoints in every target (target data stays).
    Drop {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Run a transform's SQL on sample rows of its source (and recent
    /// changes, for change-log sources). Writes nothing anywhere.
    Preview {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The transform to preview.
        transform: String,
        /// Rows to sample from the source.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Which sample: another seed gives other rows.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Run this SQL (a file, or `-` for stdin) instead of the file's.
        #[arg(long)]
        sql: Option<PathBuf>,
        /// Output rows to print.
        #[arg(long, default_value_t = 20)]
        show: usize,
        /// Print the result as JSON (schema, counts, rows, changes).
        #[arg(long)]
        json: bool,
    },
    /// Inspect, replay or discard rows kept in the dead-letter queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Search a search index target: tantivy's query syntax (`shoe`,
    /// `title:"red shoe"`, `price:[10 TO 20]`, `_table:products AND red`),
    /// best matches first, with the words found highlighted.
    Search {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The search index target.
        target: String,
        /// The query.
        query: String,
        /// Matches to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print the matches as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare every table with each target that holds it: keys missing in
    /// the target, extra keys and rows whose values differ. Exits 0 when
    /// every target equals its source, 4 when one differs, 1 when a
    /// comparison failed.
    Verify {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
        /// Seconds to keep reading keys found different again, so changes
        /// a running pipeline has in flight land first (default: 5 while a
        /// `syncline run` of the pipeline is running, else 0).
        #[arg(long)]
        settle: Option<f64>,
        /// Differences to list per table; more are counted.
        #[arg(long, default_value_t = 100_000)]
        keep: usize,
        /// Rows read from each side at a time.
        #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..))]
        page_rows: u32,
        /// Print the report as JSON, every listed difference with its key.
        #[arg(long)]
        json: bool,
        /// Write the source's current rows for the differences found into
        /// their targets (a key the source no longer has is deleted), then
        /// verify again. Refused while a `syncline run` of the pipeline
        /// runs.
        #[arg(long)]
        repair: bool,
    },
    /// Print the JSON Schema of pipeline files.
    Schema,
    /// Write the sample shop (files and pipeline) into a folder and run it.
    Demo {
        /// Where to put the sample.
        #[arg(default_value = "demo")]
        dir: PathBuf,
        /// Stop once the sample is synced instead of following changes.
        #[arg(long)]
        once: bool,
        /// Orders to generate.
        #[arg(long, default_value_t = sample::SampleSize::DEFAULT.orders)]
        orders: u64,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List kept rows, per target.
    List {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show kept rows in full.
    Show {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Row ids (from `dlq list`).
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Send kept rows through the current transforms into the targets;
    /// rows that succeed leave the queue.
    Replay {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Row ids; all rows when none are given.
        ids: Vec<u64>,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Remove kept rows without applying them.
    Discard {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Row ids.
        ids: Vec<u64>,
        /// Remove every kept row.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
}

/// mimalloc returns freed memory where glibc's per-thread arenas keep it:
/// a search index snapshot peaked at 397 MB of heap with glibc, 221 MB with
/// two arenas (`scripts/bench` measures peak RSS).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet_terminal = std::io::stderr().is_terminal();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYNCLINE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if quiet_terminal {
            "warn"
        } else {
            "info,pg_walstream=warn"
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(quiet_terminal)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Prints an error of the engine with its class and returns the exit code
/// for it: a configuration problem is the user's to fix (2), anything else
/// a failed run (1).
fn failed(e: &syncline_engine::Error) -> ExitCode {
    eprintln!("error [{}]: {}", e.kind().code(), e.chain());
    ExitCode::from(if e.kind() == syncline_engine::ErrorKind::Config {
        EXIT_INVALID
    } else {
        EXIT_FAILED
    })
}

/// Loads a pipeline, printing every problem on failure.
fn load(path: &Path) -> Result<Pipeline, ExitCode> {
    syncline_app::load(path).map_err(|errors| {
        eprint!("{}", errors.render());
        ExitCode::from(EXIT_INVALID)
    })
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run {
            pipeline,
            once,
            json,
        } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            run(&p, !once, json).await
        }
        Command::Validate { pipeline } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let transforms = match syncline_app::transforms::check(&p).await {
                Ok(checked) if checked.is_empty() => String::new(),
                Ok(checked) => format!(
                    ", {} transform(s) checked against their sources",
                    checked.len()
                ),
                Err(TransformCheckError::Invalid(errors)) => {
                    eprint!("{}", errors.render());
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
                Err(TransformCheckError::Source(e)) => format!(
                    "; transforms not checked: cannot read their source ({})",
                    e.chain()
                ),
            };
            println!(
                "{}: valid ({} source(s), {} target(s){transforms})",
                pipeline.display(),
                p.spec.sources.len(),
                p.spec.targets.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview {
            pipeline,
            transform,
            limit,
            seed,
            sql,
            show,
            json,
        } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            preview(&p, &transform, limit, seed, sql.as_deref(), show, json).await
        }
        Command::Dlq { command } => dlq::run(command).await,
        Command::Verify {
            pipeline,
            target,
            table,
            settle,
            keep,
            page_rows,
            json,
            repair,
        } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let options = verify::Choices {
                settle,
                keep,
                page_rows: page_rows as usize,
                repair,
            };
            verify::run(&p, target.as_deref(), table.as_deref(), options, json).await
        }
        Command::Check { pipeline, json } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            check(&p, json).await
        }
        Command::Discover { pipeline, json } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            discover(&p, json).await
        }
        Command::Status { pipeline, json } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            status(&p, json)
        }
        Command::Drop { pipeline } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            drop_pipeline(&p).await
        }
        Command::Search {
            pipeline,
            target,
            query,
            limit,
            json,
        } => {
            let p = match load(&pipeline) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            search(&p, &target, &query, limit, json)
        }
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&syncline_app::schema())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, once, orders } => {
            let size = sample::SampleSize {
                orders,
                ..sample::SampleSize::DEFAULT
            };
            eprintln!("writing the sample shop into {} ...", dir.display());
            let path = sample::write(&dir, size)?;
            eprintln!(
                "syncing {} into {} (Ctrl-C to stop{})",
                dir.join("shop").display(),
                dir.join("shop.duckdb").display(),
                if once {
                    ""
                } else {
                    "; edit files under the folder and watch them sync"
                }
            );
            let p = match load(&path) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            run(&p, !once, false).await
        }
    }
}

async fn run(p: &Pipeline, follow: bool, json: bool) -> Result<ExitCode> {
    let plan = match syncline_app::lifecycle::prepare(p).await {
        Ok(plan) => plan,
        Err(e) => {
            return Ok(failed(&e));
        }
    };
    let status = StatusHandle::new(&p.spec.name);
    let cancel = CancellationToken::new();
    let state_dir = syncline_app::state_dir(p);

    // First Ctrl-C: graceful stop with a final checkpoint. Second: exit now
    // (safe: every target holds its checkpoint with its data).
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nstopping: finishing the current batch and checkpointing (Ctrl-C again to exit now)"
                );
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    }

    let renderer = progress::spawn(status.clone(), json, state_dir.join("status.json"));
    let options = syncline_app::lifecycle::run_options(follow);
    let result = syncline_engine::runtime::run(plan, options, status.clone(), cancel).await;
    renderer.finish().await;
    let last = status.snapshot();
    match result {
        Ok(()) => {
            if !json {
                eprintln!("{}", progress::summary(&last));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&e)),
    }
}

async fn drop_pipeline(p: &Pipeline) -> Result<ExitCode> {
    match syncline_app::lifecycle::drop_pipeline(p, |line| println!("{line}")).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error [{}]: {}", e.kind().code(), e.chain());
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

#[derive(Serialize)]
struct ConnectorChecks {
    role: &'static str,
    name: String,
    checks: Vec<Check>,
}

async fn check(p: &Pipeline, json: bool) -> Result<ExitCode> {
    let mut all = Vec::new();
    for name in p.spec.sources.keys() {
        let mut s = syncline_app::source(p, name)?;
        all.push(ConnectorChecks {
            role: "source",
            name: name.clone(),
            checks: s.check().await,
        });
    }
    for name in p.spec.targets.keys() {
        let mut s = syncline_app::sink(p, name)?;
        all.push(ConnectorChecks {
            role: "target",
            name: name.clone(),
            checks: s.check().await,
        });
    }
    let failed = all
        .iter()
        .flat_map(|c| &c.checks)
        .any(|c| c.outcome == CheckOutcome::Fail);
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for c in &all {
            println!("{} {}", c.role, c.name);
            for check in &c.checks {
                let mark = match check.outcome {
                    CheckOutcome::Pass => "ok  ",
                    CheckOutcome::Warn => "warn",
                    CheckOutcome::Fail => "FAIL",
                };
                println!("  [{mark}] {}: {}", check.name, check.detail);
                if let Some(fix) = &check.fix {
                    println!("         fix: {fix}");
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_CHECK)
    } else {
        ExitCode::SUCCESS
    })
}

async fn discover(p: &Pipeline, json: bool) -> Result<ExitCode> {
    let mut tables = Vec::new();
    for name in p.spec.sources.keys() {
        let mut s = syncline_app::source(p, name)?;
        match s.discover().await {
            Ok(found) => tables.extend(found),
            Err(e) => {
                eprintln!("error [{}]: source {name}: {}", e.kind().code(), e.chain());
                return Ok(ExitCode::from(EXIT_FAILED));
            }
        }
    }
    if json {
        let list: Vec<&syncline_engine::model::TableSchema> =
            tables.iter().map(|t| t.as_ref()).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for t in &tables {
            let key = if t.key.is_empty() {
                "none".to_owned()
            } else {
                t.key_names().join(", ")
            };
            println!("{}  (key: {key})", t.id);
            for c in &t.columns {
                println!("  {:<24} {}", c.name, c.data_type);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(p: &Pipeline, json: bool) -> Result<ExitCode> {
    let path = syncline_app::state_dir(p).join("status.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => {
            eprintln!(
                "pipeline `{}` has not run here yet (no {})",
                p.spec.name,
                path.display()
            );
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let file: progress::StatusFile =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&file)?);
    } else {
        let alive = Path::new(&format!("/proc/{}", file.pid)).exists();
        println!(
            "pipeline {}: {:?}{}",
            file.status.pipeline,
            file.status.state,
            if alive {
                format!(" (running, pid {})", file.pid)
            } else {
                " (no process running)".to_owned()
            }
        );
        print!("{}", progress::table_lines(&file.status));
    }
    Ok(ExitCode::SUCCESS)
}

async fn preview(
    p: &Pipeline,
    transform: &str,
    limit: usize,
    seed: u64,
    sql_file: Option<&Path>,
    show: usize,
    json: bool,
) -> Result<ExitCode> {
    let sql = match sql_file {
        None => match p.spec.transforms.get(transform) {
            Some(t) => t.sql.clone(),
            None => String::new(),
        },
        Some(path) if path == Path::new("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            text
        }
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
    };
    let options = SampleOptions {
        limit,
        seed,
        ..SampleOptions::default()
    };
    let mut session = match syncline_app::transforms::preview(p, transform, options).await {
        Ok(s) => s,
        Err(e) => {
            return Ok(failed(&e));
        }
    };
    let result = tokio::task::spawn_blocking(move || session.run(&sql)).await?;
    match result {
        Ok(out) => {
            if json {
                let mut value = serde_json::to_value(&out)?;
                value["rows"] = serde_json::Value::Array(syncline_transform::preview::rows_json(
                    &out.batches,
                    show,
                ));
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!(
                    "{} sample row(s) in, {} row(s) out ({:.1} ms)",
                    out.input_rows, out.output_rows, out.elapsed_ms
                );
                println!("output columns (key: {}):", out.key.join(", "));
                for c in &out.columns {
                    println!("  {:<24} {}", c.name, c.data_type);
                }
                println!("{}", out.table_text(show));
                if !out.changes.is_empty() {
                    println!("recent changes ({}):", out.changes.len());
                    for c in &out.changes {
                        let result = match &c.error {
                            Some(e) => format!("dead letter: {e}"),
                            None => c
                                .output
                                .iter()
                                .map(|o| format!("{:?} {}", o.op, o.row))
                                .collect::<Vec<_>>()
                                .join("; "),
                        };
                        println!(
                            "  {:?} {} -> {}",
                            c.op,
                            if c.after.is_null() {
                                &c.before
                            } else {
                                &c.after
                            },
                            if result.is_empty() {
                                "(nothing)".to_owned()
                            } else {
                                result
                            }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "error": problem }))?
                );
            } else {
                eprintln!("error: {problem}");
            }
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// `syncline search`: the best matches, with the words found marked.
fn search(p: &Pipeline, target: &str, query: &str, limit: usize, json: bool) -> Result<ExitCode> {
    let found = match syncline_app::search::search(p, target, query, limit) {
        Ok(found) => found,
        Err(e) => return Ok(failed(&e)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (open, close) = if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    println!(
        "{} of {} matching document(s) in `{target}`, best first:",
        found.hits.len(),
        found.total
    );
    for hit in &found.hits {
        let key: Vec<String> = hit.key.iter().map(ToString::to_string).collect();
        let change = match (&hit.op, hit.seq) {
            (Some(op), Some(seq)) => format!("  ({op} at {seq})"),
            _ => String::new(),
        };
        println!(
            "{:>8.3}  {} [{}]{change}",
            hit.score,
            hit.table,
            key.join(", ")
        );
        if hit.highlights.is_empty() {
            let mut row = serde_json::Value::Object(hit.row.clone()).to_string();
            if row.len() > 200 {
                let mut end = 200;
                while !row.is_char_boundary(end) {
                    end -= 1;
                }
                row.truncate(end);
                row.push('…');
            }
            println!("          {row}");
        }
        for (column, h) in &hit.highlights {
            println!(
                "          {column}: {}",
                h.marked(open, close).replace('\n', " ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
