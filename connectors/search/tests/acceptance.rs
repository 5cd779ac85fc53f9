//! The search index target against the shared acceptance kit: every
//! scenario writes a fresh index in a folder of its own, removed when it
//! ends.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::value::RawValue;
use syncline_acceptance::{Harness, Target, TextRow, TypeCase, types};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_engine::model::{DataType, Value};
use syncline_search::{SearchSink, SearchTargetConfig, query};

/// One scenario's index folder.
struct Folder {
    dir: tempfile::TempDir,
    /// The mode of the sink last made (rows are read back accordingly).
    mode: Mutex<WriteMode>,
    /// Whether this folder's scenario holds [`ALONE`].
    alone: bool,
}

/// Where scenarios share a process (`cargo test`, not nextest), the one
/// (a test thread) whose folders are open, and how many: the file-size
/// limit of [`Target::obstruct`] is the process's, so scenarios run one
/// at a time there. A scenario may open several folders.
static ALONE: (
    Mutex<Option<(std::thread::ThreadId, usize)>>,
    std::sync::Condvar,
) = (Mutex::new(None), std::sync::Condvar::new());

/// Waits until no other scenario's folders are open, and counts one more
/// of this one's.
fn enter_alone() {
    let me = std::thread::current().id();
    let (lock, freed) = &ALONE;
    let mut owner = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match &mut *owner {
            None => {
                *owner = Some((me, 1));
                return;
            }
            Some((thread, n)) if *thread == me => {
                *n += 1;
                return;
            }
            Some(_) => owner = freed.wait(owner).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        // A scenario that failed between `obstruct` and `clear`.
        if let Some(soft) = LIMIT.lock().unwrap_or_else(|e| e.into_inner()).take() {
            prlimit(&[&format!("--fsize={soft}:")]);
        }
        if self.alone {
            let (lock, freed) = &ALONE;
            let mut owner = lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, n)) = &mut *owner {
                *n -= 1;
                if *n == 0 {
                    *owner = None;
                    freed.notify_all();
                }
            }
        }
    }
}

fn config(mode: WriteMode) -> SearchTargetConfig {
    SearchTargetConfig {
        path: "index".into(),
        inputs: vec!["src".into()],
        mode,
        commit_rows: 50_000,
        commit_ms: 1000,
        tables: BTreeMap::new(),
    }
}

/// A kept value as the kit reads it: strings as their text, `null` as
/// NULL, anything else as its JSON text exactly as kept.
fn shown(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text == "null" {
        None
    } else if text.starts_with('"') {
        Some(serde_json::from_str::<String>(text).unwrap())
    } else {
        Some(text.to_owned())
    }
}

#[async_trait]
impl Target for Folder {
    fn sink(&self, pipeline: &str, mode: WriteMode) -> Box<dyn Sink> {
        *self.mode.lock().unwrap() = mode;
        Box::new(SearchSink::new(config(mode), self.dir.path(), pipeline))
    }

    async fn rows(&self, table: &str, columns: &[&str]) -> Vec<TextRow> {
        let mode = *self.mode.lock().unwrap();
        let docs = query::documents(&config(mode), self.dir.path(), table).unwrap();
        docs.into_iter()
            .map(|doc| {
                let row: BTreeMap<String, Box<RawValue>> = serde_json::from_str(&doc.row).unwrap();
                columns
                    .iter()
                    .map(|c| match *c {
                        "_seq" => doc.seq.map(|s| s.to_string()),
                        "_op" => doc.op.clone(),
                        c => row.get(c).and_then(|v| shown(v)),
                    })
                    .collect()
            })
            .collect()
    }

    async fn obstruct(&self, _table: &str) {
        // No room for the files a commit writes: a file-size limit of 0
        // bytes for this process (every kit scenario runs in a process of
        // its own under nextest, or alone: see [`ALONE`]); with
        // SIGXFSZ handled, such writes fail with EFBIG instead of ending
        // the process. Reading still works.
        let xfsz = tokio::signal::unix::SignalKind::from_raw(25);
        std::mem::forget(tokio::signal::unix::signal(xfsz).unwrap());
        let soft = prlimit(&["--fsize", "--raw", "--noheadings", "--output", "SOFT"]);
        *LIMIT.lock().unwrap() = Some(soft.trim().to_owned());
        prlimit(&["--fsize=0:"]);
    }

    async fn clear(&self, _table: &str) {
        if let Some(soft) = LIMIT.lock().unwrap().take() {
            prlimit(&[&format!("--fsize={soft}:")]);
        }
    }
}

/// The soft file-size limit [`Target::obstruct`] replaced.
static LIMIT: Mutex<Option<String>> = Mutex::new(None);

/// Runs util-linux's `prlimit` on this process; its output.
fn prlimit(args: &[&str]) -> String {
    let out = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prlimit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Search;

#[async_trait]
impl Harness for Search {
    async fn target(&self, scenario: &str) -> Box<dyn Target> {
        let alone = std::env::var_os("NEXTEST_RUN_ID").is_none();
        if alone {
            enter_alone();
        }
        Box::new(Folder {
            alone,
            dir: tempfile::Builder::new()
                .prefix(&format!("kit_search_{scenario}_"))
                .tempdir()
                .unwrap(),
            mode: Mutex::new(WriteMode::Upsert),
        })
    }

    fn broken_sink(&self) -> Box<dyn Sink> {
        // A folder inside a file cannot be made.
        Box::new(SearchSink::new(
            SearchTargetConfig {
                path: "/dev/null/index".into(),
                ..config(WriteMode::Upsert)
            },
            std::path::Path::new("/"),
            "kit",
        ))
    }

    fn unstorable(&self) -> Option<(DataType, Value, &'static str, Value)> {
        // Every value has a form in the index's rows (see
        // `syncline_engine::encode`).
        None
    }

    fn types(&self) -> Vec<TypeCase> {
        types::json_cases("00ff41105c27")
    }
}

syncline_acceptance::sink_acceptance!(Search);
