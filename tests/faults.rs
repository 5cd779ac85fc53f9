//! Faults against the real services: the source's connections cut, stalled
//! and refused through a proxy the test controls, and the target database
//! unreachable for a minute. Each is survived while a writer keeps
//! committing, the outage shows in the status, and both sides end equal
//! row by row.
//!
//! Each test has its own databases, proxy and pipeline name.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::pg::{TestDb, exec_in, position_lsn, spawn_writer};
use support::proxy::Proxy;
use support::*;

const ITEMS: &str = "CREATE TABLE items (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    rev int NOT NULL DEFAULT 0)";

const ROWS: u64 = 5_000;

fn seed(db: &TestDb) {
    db.exec(ITEMS);
    db.exec(&format!(
        "INSERT INTO items SELECT i, 'item ' || i, 0 FROM generate_series(1, {ROWS}) i"
    ));
}

/// One writer transaction: updates, a delete and an insert.
fn write_once(db: &str, round: u64, max_id: u64) {
    let a = (round * 7919) % max_id + 1;
    let b = (round * 104_729) % max_id + 1;
    exec_in(
        db,
        &format!(
            "BEGIN;
             UPDATE items SET rev = rev + 1, name = 'item ' || id || ' r{round}' WHERE id BETWEEN {a} AND {a} + 9;
             DELETE FROM items WHERE id = {b};
             INSERT INTO items VALUES ({new}, 'new {round}', 0);
             COMMIT;",
            new = max_id + round
        ),
    );
}

fn rows(db: &TestDb, table: &str) -> Vec<Vec<String>> {
    db.rows(&format!("SELECT id, name, rev FROM {table} ORDER BY id"))
}

fn errors(s: &serde_json::Value) -> String {
    s["errors"].to_string()
}

fn pipeline(name: &str, src: &TestDb, src_port: u16, dst: &TestDb, dst_port: u16) -> String {
    format!(
        "name = \"{name}\"
[sources.pg]
kind = \"postgres\"
port = {src_port}
database = \"{src}\"
heartbeat_secs = 1
[[sources.pg.tables]]
name = \"items\"

[targets.warehouse]
kind = \"postgres\"
port = {dst_port}
database = \"{dst}\"
schema = \"sync\"
inputs = [\"pg\"]
",
        src = src.name,
        dst = dst.name
    )
}

/// Lets the writer commit `n` more transactions' worth of changes into the
/// target before the next fault.
fn progress(run: &mut Running, what: &str, n: u64) {
    let base = run.last.as_ref().map_or(0, changes);
    run.wait_for(what, Duration::from_secs(120), |s| changes(s) >= base + n);
}

/// Stops the writer, waits until every change reached the target, stops
/// the run with Ctrl-C and compares.
fn finish(
    mut run: Running,
    stop: &AtomicBool,
    writer: std::thread::JoinHandle<u64>,
    src: &TestDb,
    dst: &TestDb,
) -> serde_json::Value {
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    assert!(rounds > 20, "the writer ran only {rounds} transactions");
    let end = src.current_lsn();
    let last = run.wait_for("every change applied", Duration::from_secs(180), |s| {
        position_lsn(s) >= end
    });
    assert_eq!(run.interrupt(), 0, "a graceful stop after the faults");
    assert_same_rows("the target", &rows(src, "items"), &rows(dst, "sync.items"));
    last
}

#[test]
fn source_connections_cut_stalled_and_refused_lose_nothing() {
    let (src, dst) = (TestDb::create("fault_src"), TestDb::create("fault_dst"));
    seed(&src);
    let proxy = Proxy::start(5432);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    std::fs::write(&file, pipeline("fault_src", &src, proxy.port(), &dst, 5432)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.name.clone(), write_once, ROWS, stop.clone());
    let mut run = Running::start(&file, &[]);
    run.wait_for("streaming", Duration::from_secs(120), |s| {
        s["tables"]["pg.items"]["phase"] == "streaming"
    });
    // Every connection dropped, three times.
    for round in 0..3 {
        progress(&mut run, "changes before a cut", 300);
        eprintln!("cut {round}: {} connections so far", proxy.accepted());
        proxy.cut();
    }
    // The network goes silent for fifteen seconds (longer than a
    // heartbeat may take), then comes back.
    progress(&mut run, "changes before the stall", 300);
    proxy.stall(true);
    std::thread::sleep(Duration::from_secs(15));
    proxy.stall(false);
    // The server refuses connections for five seconds.
    progress(&mut run, "changes after the stall", 300);
    proxy.down();
    std::thread::sleep(Duration::from_secs(5));
    proxy.up();
    progress(&mut run, "changes after the outage", 300);

    let last = finish(run, &stop, writer, &src, &dst);
    assert!(
        errors(&last).contains("source `pg`: connection lost"),
        "the status shows the lost connection: {}",
        errors(&last)
    );
}

#[test]
fn a_target_down_for_a_minute_is_waited_for_and_caught_up() {
    let (src, dst) = (TestDb::create("fault_tsrc"), TestDb::create("fault_tdst"));
    seed(&src);
    let proxy = Proxy::start(5432);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    std::fs::write(&file, pipeline("fault_tgt", &src, 5432, &dst, proxy.port())).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.name.clone(), write_once, ROWS, stop.clone());
    let mut run = Running::start(&file, &[]);
    run.wait_for("streaming", Duration::from_secs(120), |s| {
        s["tables"]["pg.items"]["phase"] == "streaming"
    });
    progress(&mut run, "changes before the outage", 300);

    // The target database is gone for a minute while the writer goes on.
    let down = Instant::now();
    proxy.down();
    run.wait_for("the outage in the status", Duration::from_secs(60), |s| {
        errors(s).contains("target `warehouse` is unreachable")
    });
    let outage = Duration::from_secs(60).saturating_sub(down.elapsed());
    std::thread::sleep(outage);
    let during = run.latest();
    assert_eq!(during["state"], "running", "the pipeline waits: {during}");
    proxy.up();
    run.wait_for(
        "the target back in the status",
        Duration::from_secs(60),
        |s| errors(s).contains("target `warehouse` is reachable again"),
    );

    finish(run, &stop, writer, &src, &dst);
}

#[test]
fn connection_failures_are_explained_without_the_password() {
    let db = TestDb::create("fault_pw");
    db.exec(ITEMS);
    let proxy = Proxy::start(5432);
    proxy.down();
    let tmp = tempfile::tempdir().unwrap();
    let secret = "pw-Zq81/s&cret";
    std::fs::write(
        tmp.path().join("p.toml"),
        format!(
            "name = \"fault_pw\"
[sources.pg]
kind = \"postgres\"
port = {port}
database = \"{db}\"
password = \"${{env:SYNCLINE_FAULT_PW}}\"
[[sources.pg.tables]]
name = \"items\"
[targets.db]
kind = \"duckdb\"
path = \"out.duckdb\"
inputs = [\"pg\"]
",
            port = proxy.port(),
            db = db.name
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary())
            .args(args)
            .current_dir(tmp.path())
            .env("SYNCLINE_FAULT_PW", secret)
            .env("SYNCLINE_LOG", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for shown in [secret, "pw-Zq81%2Fs%26cret", "Zq81"] {
            assert!(
                !text.contains(shown),
                "`syncline {}` printed the password ({shown}):\n{text}",
                args.join(" ")
            );
        }
        (out.status.code().unwrap_or(-1), text)
    };
    // Refused: the failure says where it tried, without the password.
    let place = format!("127.0.0.1:{}", proxy.port());
    for args in [&["check", "p.toml"][..], &["run", "--once", "p.toml"][..]] {
        let (code, text) = run(args);
        assert_ne!(code, 0, "`syncline {}` fails: {text}", args.join(" "));
        assert!(text.contains(&place), "names the server it tried: {text}");
    }
    // Reachable (the server trusts loopback, so any password works): a
    // whole run logged at debug level shows no password either.
    proxy.up();
    let (code, text) = run(&["run", "--once", "p.toml"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(&["drop", "p.toml"]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_full_disk_under_the_duckdb_target_stops_clearly_and_loses_nothing() {
    let src = TestDb::create("fault_disk");
    src.exec(ITEMS);
    src.exec(
        "INSERT INTO items SELECT i, repeat(md5(i::text), 4), i % 7 FROM generate_series(1, 200000) i",
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        src.pipeline("fault_disk", &["items"], "", "upsert"),
    )
    .unwrap();
    // A file-size limit stands for a full disk: writes past 4 MiB fail with
    // EFBIG (the signal that would kill the process is ignored).
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 4096; exec \"$0\" run --once p.toml",
        ])
        .arg(binary())
        .current_dir(tmp.path())
        .env("SYNCLINE_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "the run cannot finish: {text}");
    assert!(
        text.contains("out.duckdb") && text.to_lowercase().contains("file too large"),
        "the message names the file and the cause: {text}"
    );
    // Room again: the next run finishes what the first began.
    let (code, stdout, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let db = tmp.path().join("out.duckdb");
    assert_eq!(
        duckdb_count(&db, "SELECT count(*) - count(DISTINCT id) FROM items"),
        0
    );
    let expected = src.rows("SELECT id, name, rev FROM items ORDER BY id");
    let actual: Vec<Vec<String>> = {
        let conn = duckdb::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT CAST(id AS VARCHAR), name, CAST(rev AS VARCHAR) FROM items ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |r| (0..3).map(|i| r.get::<_, String>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(expected.len(), actual.len(), "row counts");
    assert!(
        expected == actual,
        "every row arrived as it is at the source"
    );
    let (code, stdout, stderr) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stdout}{stderr}");
}
