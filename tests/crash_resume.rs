//! Crash-resume: `kill -9` of the real `syncline` process mid-snapshot and
//! mid-stream, restart, and compare source and target row by row.

#![allow(clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use support::*;

const FILES: usize = 24;
const ROWS_PER_FILE: usize = 10_000;

fn write_file(dir: &Path, n: usize, version: u32) {
    let mut text = String::from("id,customer,amount,qty,note\n");
    for i in 0..ROWS_PER_FILE {
        let id = n * ROWS_PER_FILE + i;
        let _ = writeln!(
            text,
            "{id},c{},{}.{:02},{},v{version}",
            id % 977,
            (id * 7 + version as usize) % 1000,
            id % 100,
            id % 9
        );
    }
    write_atomic(&dir.join(format!("part-{n:03}.csv")), &text);
}

fn setup(root: &Path) -> std::path::PathBuf {
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for n in 0..FILES {
        write_file(&data, n, 1);
    }
    let pipeline = root.join("crash.toml");
    std::fs::write(
        &pipeline,
        r#"name = "crash"
[sources.src]
kind = "files"
path = "data"
batch_rows = 700
debounce_ms = 50
[[sources.src.tables]]
name = "facts"
pattern = "*.csv"
key = ["id"]
columns = { amount = "decimal(10,2)" }
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["src"]
"#,
    )
    .unwrap();
    pipeline
}

fn verify(root: &Path) {
    let expected = csv_rows(&csv_files(&root.join("data")), |_| true);
    assert_same(&expected, &root.join("out.duckdb"), "facts");
}

#[test]
fn kill_9_mid_snapshot_and_mid_stream_loses_and_doubles_nothing() {
    let seed = fastrand::u64(..);
    eprintln!("kill points seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pipeline = setup(root);
    let total = (FILES * ROWS_PER_FILE) as u64;

    // Mid-snapshot: several kills, each after a random amount of progress.
    for round in 0..4 {
        let mut run = Running::start(&pipeline, &[]);
        let threshold = rng.u64(700..total / 6);
        let status = run.wait_for("snapshot progress", Duration::from_secs(120), |s| {
            changes(s) >= threshold || s["tables"]["src.facts"]["phase"] == "streaming"
        });
        eprintln!("round {round}: kill -9 after {} changes", changes(&status));
        run.kill9();
    }

    // Finish the snapshot and stream; kill mid-stream.
    for round in 0..4 {
        let mut run = Running::start(&pipeline, &[]);
        let streaming = run.wait_for("streaming", Duration::from_secs(120), |s| {
            s["tables"]["src.facts"]["phase"] == "streaming"
        });
        let base = changes(&streaming);
        // A burst of changes: rewrite some files (updates), remove one
        // (deletes), add one (inserts).
        let data = root.join("data");
        for _ in 0..3 {
            write_file(&data, rng.usize(0..FILES), 10 + round);
        }
        let victim = data.join(format!("part-{:03}.csv", rng.usize(0..FILES)));
        let _ = std::fs::remove_file(victim);
        write_file(&data, FILES + round as usize, 1);
        let threshold = base + rng.u64(1..20_000);
        let status = run.wait_for("stream progress", Duration::from_secs(120), |s| {
            changes(s) >= threshold
        });
        eprintln!(
            "stream round {round}: kill -9 after {} streamed changes",
            changes(&status) - base
        );
        run.kill9();
    }

    // Restart to completion and compare every row.
    let run = Running::start(&pipeline, &["--once"]);
    assert_eq!(run.wait(), 0);
    verify(root);

    // The state folder keeps only the manifests the checkpoint refers to.
    let manifests = std::fs::read_dir(root.join(".syncline/crash/files-src"))
        .unwrap()
        .count();
    let files = csv_files(&root.join("data")).len();
    assert!(
        manifests <= files * 2,
        "{manifests} manifests for {files} files"
    );
}

#[test]
fn graceful_stop_checkpoints_and_restart_applies_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pipeline = setup(root);
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("some progress", Duration::from_secs(120), |s| {
        changes(s) >= 5_000
    });
    assert_eq!(run.interrupt(), 0);
    let mut run = Running::start(&pipeline, &["--once"]);
    let last = run.wait_for("done", Duration::from_secs(120), |s| {
        s["state"] == "stopped"
    });
    let resumed = changes(&last);
    assert_eq!(run.wait(), 0);
    assert!(
        resumed < (FILES * ROWS_PER_FILE) as u64,
        "the restart re-applied everything ({resumed} changes)"
    );
    verify(root);
    // Nothing left to do: a third run applies nothing.
    let mut run = Running::start(&pipeline, &["--once"]);
    let last = run.wait_for("done", Duration::from_secs(60), |s| s["state"] == "stopped");
    assert_eq!(changes(&last), 0);
    assert_eq!(run.wait(), 0);
}
