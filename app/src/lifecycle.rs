//! Running pipelines: what `syncline run` and the desktop studio share, and
//! the studio's in-process runner (start, stop, pause, resume, drop) with
//! each pipeline's status on a `watch` channel.
//!
//! A pipeline run in-process is the same as `syncline run` of its file:
//! [`prepare`] builds the plan and the state folder, the engine's runtime
//! moves the data, and stopping is the same graceful stop with a final
//! checkpoint as Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use syncline_engine::runtime::{PipelinePlan, RunOptions};
use syncline_engine::status::{PipelineState, PipelineStatus, StatusHandle};
use syncline_engine::{Error, ErrorKind, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::desktop::Failure;
use crate::{Pipeline, sink, source, state_dir};

/// Builds a pipeline's connectors and creates its state folder: everything
/// before the engine runs it.
pub async fn prepare(pipeline: &Pipeline) -> Result<PipelinePlan> {
    let state = state_dir(pipeline);
    std::fs::create_dir_all(&state).map_err(|e| {
        Error::new(ErrorKind::Io, format!("creating {}", state.display())).with_source(e)
    })?;
    crate::registry::ensure_identity(&state)?;
    crate::plan(pipeline).await
}

/// Whether a `syncline run` process of `pipeline` is alive: the status
/// file a run keeps in the state folder names its process, looked up in
/// `/proc` (Linux).
pub fn runs_in_a_process(pipeline: &Pipeline) -> bool {
    let path = state_dir(pipeline).join("status.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|file| file["pid"].as_u64())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Run options: `follow` keeps streaming after the snapshot;
/// `SYNCLINE_STATUS_INTERVAL_MS` sets how often status is published
/// (default 250 ms).
pub fn run_options(follow: bool) -> RunOptions {
    let mut options = RunOptions {
        follow,
        ..RunOptions::default()
    };
    if let Some(ms) = std::env::var("SYNCLINE_STATUS_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options.status_interval = Duration::from_millis(ms.max(10));
    }
    options
}

/// Drops a pipeline: removes its replication slots and publications, its
/// checkpoints in every target (their data stays until the next run, which
/// empties every table and copies it again) and its state, leaving only the
/// note that says so ([`crate::registry::DROPPED`], written first).
/// `report` gets one line per thing removed, as it goes. An error names the
/// source or target it came from.
pub async fn drop_pipeline(pipeline: &Pipeline, mut report: impl FnMut(String)) -> Result<()> {
    let context = |role: &str, name: &str, e: Error| {
        Error::new(e.kind(), format!("{role} {name}: {}", e.chain()))
    };
    // First the note that the targets keep rows no checkpoint covers, so
    // that a drop cut short still makes the next run copy every table anew.
    let state = state_dir(pipeline);
    let marker = state.join(crate::registry::DROPPED);
    std::fs::create_dir_all(&state)
        .and_then(|()| {
            std::fs::write(
                &marker,
                "dropped: the next run empties every target table and copies it again\n",
            )
        })
        .map_err(|e| {
            Error::new(ErrorKind::Io, format!("writing {}", marker.display())).with_source(e)
        })?;
    for name in pipeline.spec.sources.keys() {
        let mut s = source(pipeline, name)?;
        let removed = s.release().await.map_err(|e| context("source", name, e))?;
        for r in removed {
            report(format!("source {name}: {r}"));
        }
    }
    for name in pipeline.spec.targets.keys() {
        let mut s = sink(pipeline, name)?;
        s.forget().await.map_err(|e| context("target", name, e))?;
        report(format!(
            "target {name}: checkpoints of `{}` removed (data kept)",
            pipeline.spec.name
        ));
    }
    // Everything of the state folder but that note.
    let entries = std::fs::read_dir(&state).map_err(|e| {
        Error::new(ErrorKind::Io, format!("reading {}", state.display())).with_source(e)
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path == marker {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| {
            Error::new(ErrorKind::Io, format!("removing {}", path.display())).with_source(e)
        })?;
    }
    report(format!("removed the state in {}", state.display()));
    report("the next run empties every target table and copies it again".to_owned());
    Ok(())
}

/// A pipeline the runner knows: running, paused, or ended.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RunningPipeline {
    /// The pipeline file.
    pub path: String,
    /// Pipeline name.
    pub name: String,
    /// Stopped by pause (resume starts it again from its checkpoint).
    pub paused: bool,
    /// Its latest status.
    pub status: crate::desktop::PipelineStatus,
}

#[derive(Debug)]
struct Entry {
    name: String,
    status: StatusHandle,
    cancel: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
    paused: bool,
}

/// Pipelines running in this process, by file. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PipelineHost {
    entries: Arc<Mutex<BTreeMap<PathBuf, Entry>>>,
}

/// The key of a pipeline file: its canonical path.
fn key(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

impl PipelineHost {
    /// A runner with nothing running.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<PathBuf, Entry>) -> R) -> R {
        f(&mut self.entries.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Starts the saved pipeline file at `path` in the background, following
    /// changes until stopped. A pipeline started before (stopped, paused or
    /// failed) keeps its status channel: subscribers stay subscribed.
    pub async fn start(&self, path: &Path) -> Result<watch::Receiver<PipelineStatus>, Failure> {
        let key = key(path);
        let busy = self.with(|e| {
            e.get(&key)
                .and_then(|entry| entry.task.as_ref())
                .is_some_and(|t| !t.is_finished())
        });
        if busy {
            return Err(Failure::busy(format!(
                "{} is already running",
                path.display()
            )));
        }
        let pipeline = crate::load(&key).map_err(|e| Failure::from(&e))?;
        let status = self.with(|e| match e.get(&key) {
            Some(entry) if entry.name == pipeline.spec.name => entry.status.clone(),
            _ => StatusHandle::new(&pipeline.spec.name),
        });
        status.set_state(PipelineState::Starting);
        let plan = match prepare(&pipeline).await {
            Ok(plan) => plan,
            Err(e) => {
                status.record_error(e.chain());
                status.set_state(PipelineState::Failed);
                return Err(Failure::from(e));
            }
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(syncline_engine::runtime::run(
            plan,
            run_options(true),
            status.clone(),
            cancel.clone(),
        ));
        let rx = status.subscribe();
        self.with(|e| {
            e.insert(
                key,
                Entry {
                    name: pipeline.spec.name.clone(),
                    status,
                    cancel,
                    task: Some(task),
                    paused: false,
                },
            )
        });
        Ok(rx)
    }

    /// The status channel of a pipeline the runner knows.
    pub fn watch(&self, path: &Path) -> Result<watch::Receiver<PipelineStatus>, Failure> {
        let key = key(path);
        self.with(|e| e.get(&key).map(|entry| entry.status.subscribe()))
            .ok_or_else(|| Failure::not_found(format!("{} is not running", path.display())))
    }

    /// Stops a pipeline gracefully (final checkpoint) and waits for it.
    /// `pause` marks it paused. An error of the run itself is in its status.
    async fn halt(&self, path: &Path, pause: bool) -> Result<(), Failure> {
        let key = key(path);
        let task = self
            .with(|e| {
                e.get_mut(&key).map(|entry| {
                    entry.cancel.cancel();
                    entry.paused = pause;
                    entry.task.take()
                })
            })
            .ok_or_else(|| Failure::not_found(format!("{} is not running", path.display())))?;
        if let Some(task) = task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.kind() == ErrorKind::Cancelled => {}
                Ok(Err(e)) => {
                    tracing::warn!(path = %path.display(), error = %e.chain(), "pipeline ended with an error")
                }
                Err(e) => {
                    return Err(Failure::internal(format!("the pipeline task failed: {e}")));
                }
            }
        }
        Ok(())
    }

    /// Stops a pipeline gracefully with a final checkpoint.
    pub async fn stop(&self, path: &Path) -> Result<(), Failure> {
        self.halt(path, false).await
    }

    /// Stops a pipeline, keeping it listed as paused.
    pub async fn pause(&self, path: &Path) -> Result<(), Failure> {
        self.halt(path, true).await
    }

    /// Starts a paused (or stopped) pipeline again from its checkpoint.
    pub async fn resume(&self, path: &Path) -> Result<watch::Receiver<PipelineStatus>, Failure> {
        self.start(path).await
    }

    /// Stops a pipeline if it runs, then drops it (see [`drop_pipeline`])
    /// and forgets it.
    pub async fn drop_pipeline(&self, path: &Path) -> Result<Vec<String>, Failure> {
        let key = key(path);
        let known = self.with(|e| e.contains_key(&key));
        if known {
            self.halt(path, false).await?;
        }
        let pipeline = crate::load(&key).map_err(|e| Failure::from(&e))?;
        let mut lines = Vec::new();
        drop_pipeline(&pipeline, |line| lines.push(line)).await?;
        self.with(|e| e.remove(&key));
        Ok(lines)
    }

    /// Whether the pipeline of file `path` runs here now: its task is
    /// alive, or its status says it starts, runs or stops.
    pub fn is_running(&self, path: &Path) -> bool {
        let key = key(path);
        self.with(|e| {
            e.get(&key).is_some_and(|entry| {
                entry.task.as_ref().is_some_and(|t| !t.is_finished())
                    || matches!(
                        entry.status.snapshot().state,
                        PipelineState::Starting | PipelineState::Running | PipelineState::Stopping
                    ) && !entry.paused
            })
        })
    }

    /// Every pipeline the runner knows, by path.
    pub fn list(&self) -> Vec<RunningPipeline> {
        self.with(|e| {
            e.iter()
                .map(|(path, entry)| RunningPipeline {
                    path: path.display().to_string(),
                    name: entry.name.clone(),
                    paused: entry.paused,
                    status: (&entry.status.snapshot()).into(),
                })
                .collect()
        })
    }

    /// Stops every running pipeline gracefully (when the app quits).
    pub async fn stop_all(&self) {
        let paths: Vec<PathBuf> = self.with(|e| {
            e.iter()
                .filter(|(_, entry)| entry.task.is_some())
                .map(|(p, _)| p.clone())
                .collect()
        });
        for path in paths {
            if let Err(e) = self.stop(&path).await {
                tracing::warn!(path = %path.display(), error = %e.message, "stopping failed");
            }
        }
    }
}
