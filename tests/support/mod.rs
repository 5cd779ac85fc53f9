//! Helpers for end-to-end tests that drive the real `syncline` binary.

#![allow(dead_code, clippy::unwrap_used)]

pub mod cache;
pub mod my;
pub mod pg;
pub mod proxy;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_syncline"))
}

/// Runs `syncline` with `args` to completion; returns (exit code, stdout, stderr).
pub fn syncline(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env("SYNCLINE_LOG", "warn")
        .output()
        .expect("syncline runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `syncline run --json` whose status lines are collected.
pub struct Running {
    child: Child,
    lines: Receiver<Json>,
    /// The latest status seen.
    pub last: Option<Json>,
}

impl Running {
    /// Starts `syncline run --json <pipeline> [extra...]`.
    pub fn start(pipeline: &Path, extra: &[&str]) -> Running {
        let mut child = Command::new(binary())
            .arg("run")
            .arg("--json")
            .arg(pipeline)
            .args(extra)
            .env(
                "SYNCLINE_LOG",
                std::env::var("SYNCLINE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("SYNCLINE_STATUS_INTERVAL_MS", "20")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("syncline starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Json>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            last: None,
        }
    }

    /// Waits until a status satisfies `pred`, failing the test after `limit`.
    pub fn wait_for(&mut self, what: &str, limit: Duration, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(last) = &self.last
                && pred(last)
            {
                return last.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.last = Some(v),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}; last status: {:?}", self.last)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!(
                        "syncline exited ({status}) while waiting for {what}; last status: {:?}",
                        self.last
                    )
                }
            }
        }
    }

    /// The newest status line: every line queued so far is read, then the
    /// next one is waited for (the status is published several times a
    /// second).
    pub fn latest(&mut self) -> Json {
        while let Ok(v) = self.lines.try_recv() {
            self.last = Some(v);
        }
        match self.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(v) => self.last = Some(v),
            Err(e) => panic!("no status line within 10 s ({e}); last: {:?}", self.last),
        }
        self.last.clone().unwrap()
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ctrl-C (SIGINT), then waits for the exit code.
    pub fn interrupt(self) -> i32 {
        let ok = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -INT failed");
        self.wait_within("a stop after SIGINT", Duration::from_secs(60))
    }

    /// Waits for a run that ends by itself; returns its exit code.
    pub fn wait(mut self) -> i32 {
        self.child.wait().unwrap().code().unwrap_or(-1)
    }

    /// Waits for a run that must end by itself within `limit` (the test
    /// fails, and the process is killed, when it does not); returns its
    /// exit code.
    pub fn wait_within(mut self, what: &str, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: syncline did not end within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    /// A failed test must not leave a running `syncline` behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `kill -9` trial: runs `pipeline` until a random number of changes
/// (1 to 600, from `rng`) is committed, kills it, and returns the last
/// status it showed.
pub fn kill_after_progress(pipeline: &Path, rng: &mut fastrand::Rng) -> Json {
    let mut run = Running::start(pipeline, &[]);
    let n = rng.u64(1..600);
    let status = run.wait_for("progress", Duration::from_secs(180), |s| changes(s) >= n);
    run.kill9();
    status
}

/// Fails with the first few rows each side lacks when `actual` is not
/// `expected` row for row.
pub fn assert_same_rows(what: &str, expected: &[Vec<String>], actual: &[Vec<String>]) {
    if expected != actual {
        let missing: Vec<_> = expected
            .iter()
            .filter(|r| !actual.contains(r))
            .take(3)
            .collect();
        let extra: Vec<_> = actual
            .iter()
            .filter(|r| !expected.contains(r))
            .take(3)
            .collect();
        panic!(
            "{what} differs from the source ({} vs {} rows); source-only rows {missing:?}; target-only rows {extra:?}",
            expected.len(),
            actual.len()
        );
    }
}

/// Sum of one counter over every table of a status line.
pub fn total(status: &Json, field: &str) -> u64 {
    status["tables"]
        .as_object()
        .map(|t| t.values().map(|v| v[field].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// Changes (inserts + updates + deletes) committed so far.
pub fn changes(status: &Json) -> u64 {
    total(status, "inserts") + total(status, "updates") + total(status, "deletes")
}

/// Every row of a DuckDB table as text, keyed by its first column, plus the
/// row count (to catch duplicates a map would hide).
pub fn duckdb_rows(db: &Path, table: &str) -> (BTreeMap<String, Vec<String>>, usize) {
    let conn = duckdb::Connection::open(db).unwrap();
    let columns: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position")
            .unwrap();
        stmt.query_map([table], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("coalesce(CAST(\"{c}\" AS VARCHAR), '')"))
        .collect();
    let sql = format!("SELECT {} FROM \"{table}\"", select.join(", "));
    let mut stmt = conn.prepare(&sql).unwrap();
    let n = columns.len();
    let rows: Vec<Vec<String>> = stmt
        .query_map([], |r| (0..n).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let count = rows.len();
    let map = rows.into_iter().map(|r| (r[0].clone(), r)).collect();
    (map, count)
}

/// One query's single integer result.
pub fn duckdb_count(db: &Path, sql: &str) -> i64 {
    let conn = duckdb::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Expected rows from a folder of simple CSV files (no quoting), keyed by
/// the first column, last file wins; rows that `is_good` rejects are skipped.
pub fn csv_rows(
    files: &[PathBuf],
    is_good: impl Fn(&[&str]) -> bool,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let width = header.split(',').count();
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() == width && is_good(&fields) {
                out.insert(
                    fields[0].to_owned(),
                    fields.iter().map(|s| s.to_string()).collect(),
                );
            }
        }
    }
    out
}

/// CSV files matching `dir/*.csv`, sorted.
pub fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    files
}

/// Asserts target equals expected row by row, with no duplicates.
pub fn assert_same(expected: &BTreeMap<String, Vec<String>>, db: &Path, table: &str) {
    let (actual, count) = duckdb_rows(db, table);
    assert_eq!(count, actual.len(), "duplicate keys in {table}");
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{table}: missing {missing:?}, extra {extra:?} (expected {}, got {})",
        expected.len(),
        actual.len()
    );
    for (k, row) in expected {
        assert_eq!(&actual[k], row, "{table}: row {k} differs");
    }
}

/// Writes a file atomically (temp + rename), as well-behaved producers do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
