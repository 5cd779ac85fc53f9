//! Rendering the engine's status stream: progress bars on a terminal, plain
//! lines otherwise, JSON lines with `--json`; and the status file that
//! `syncline status` reads.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use syncline_engine::status::{Phase, PipelineStatus, StatusHandle, TableStatus};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What `status.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusFile {
    /// The process that wrote it.
    pub pid: u32,
    /// The last status.
    pub status: PipelineStatus,
}

/// A running renderer.
pub struct Renderer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Renderer {
    /// Renders the final state and stops.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

enum Mode {
    Bars(MultiProgress, BTreeMap<String, ProgressBar>),
    Lines(Instant),
    Json,
}

/// Starts rendering `status` until [`Renderer::finish`].
pub fn spawn(status: StatusHandle, json: bool, status_file: PathBuf) -> Renderer {
    let stop = CancellationToken::new();
    let mut rx = status.subscribe();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let mut mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                BTreeMap::new(),
            )
        } else {
            Mode::Lines(Instant::now())
        };
        let mut last_file_write = Instant::now() - Duration::from_secs(10);
        loop {
            let done = tokio::select! {
                changed = rx.changed() => changed.is_err(),
                _ = token.cancelled() => true,
            };
            let snapshot = rx.borrow_and_update().clone();
            render(&mut mode, &snapshot, done);
            if done || last_file_write.elapsed() >= Duration::from_secs(1) {
                write_status_file(&status_file, &snapshot);
                last_file_write = Instant::now();
            }
            if done {
                break;
            }
        }
    });
    Renderer { stop, task }
}

fn write_status_file(path: &PathBuf, status: &PipelineStatus) {
    let file = StatusFile {
        pid: std::process::id(),
        status: status.clone(),
    };
    if let Ok(text) = serde_json::to_vec_pretty(&file) {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "pending",
        Phase::Snapshot => "snapshot",
        Phase::CatchUp => "catching up",
        Phase::Streaming => "streaming",
        Phase::Done => "done",
        Phase::Paused => "paused",
    }
}

fn changes(t: &TableStatus) -> u64 {
    t.inserts + t.updates + t.deletes
}

fn render(mode: &mut Mode, s: &PipelineStatus, last: bool) {
    match mode {
        Mode::Json => {
            if let Ok(line) = serde_json::to_string(s) {
                println!("{line}");
            }
        }
        Mode::Lines(at) => {
            if last || at.elapsed() >= Duration::from_secs(2) {
                *at = Instant::now();
                eprint!("{}", table_lines(s));
            }
        }
        Mode::Bars(multi, bars) => {
            for (name, t) in &s.tables {
                let bar = bars.entry(name.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_prefix(name.clone());
                    bar
                });
                let snapshotting = t.phase == Phase::Snapshot;
                let rate = format!("{:.0} rows/s", t.rows_per_sec);
                let lag = t
                    .lag_seconds
                    .map(|l| format!("  lag {l:.1}s"))
                    .unwrap_or_default();
                let dead = if t.dead_letters > 0 {
                    format!("  {} dead letters", t.dead_letters)
                } else {
                    String::new()
                };
                let (style, message) = match (snapshotting, t.snapshot_total) {
                    (true, Some(total)) if total > 0 => {
                        bar.set_length(total);
                        bar.set_position(t.snapshot_done.min(total));
                        (
                            "{prefix:24} {msg:10} [{bar:30}] {pos}/{len} rows  ETA {eta}",
                            format!("{}  {rate}", phase_name(t.phase)),
                        )
                    }
                    _ => (
                        "{prefix:24} {msg}",
                        format!(
                            "{:<10} {} changes  {rate}{lag}{dead}",
                            phase_name(t.phase),
                            changes(t)
                        ),
                    ),
                };
                if let Ok(st) = ProgressStyle::with_template(style) {
                    bar.set_style(st.progress_chars("=> "));
                }
                bar.set_message(message);
                if last {
                    bar.finish();
                }
            }
        }
    }
}

/// One line per table, for plain output and `syncline status`.
pub fn table_lines(s: &PipelineStatus) -> String {
    let mut out = String::new();
    for (name, t) in &s.tables {
        let progress = match (t.phase, t.snapshot_total) {
            (Phase::Snapshot, Some(total)) => format!(" {}/{} rows", t.snapshot_done, total),
            _ => String::new(),
        };
        let lag = t
            .lag_seconds
            .map(|l| format!(", lag {l:.1}s"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{name}: {}{progress}, {} inserted, {} updated, {} deleted, {} dead letters, {:.0} rows/s{lag}\n",
            phase_name(t.phase),
            t.inserts,
            t.updates,
            t.deletes,
            t.dead_letters,
            t.rows_per_sec
        ));
    }
    for e in &s.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

/// The closing summary of a run.
pub fn summary(s: &PipelineStatus) -> String {
    let dead: u64 = s.tables.values().map(|t| t.dead_letters).sum();
    let mut out = format!(
        "{}: {} changes applied across {} table(s)",
        s.pipeline,
        s.total_changes(),
        s.tables.len()
    );
    if dead > 0 {
        out.push_str(&format!(
            "; {dead} record(s) could not be read and are kept in _syncline_dead_letters with their reason"
        ));
    }
    out
}
