//! MariaDB restarted under a streaming pipeline: the binary log connection
//! is re-established with backoff, the log is read on across the file the
//! restart begins, and nothing is lost or doubled; and a position whose
//! log was purged. The tests restart the server and purge the log the
//! other tests read, so `scripts/test` runs them alone, after the rest of
//! the suite.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::my::{self, TestDb};
use support::*;

fn up() -> bool {
    Command::new("mariadb-admin")
        .args(my::SERVER)
        .args(["--connect-timeout=2", "ping"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn start() {
    let server = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    let _ = Command::new("install")
        .args(["-d", "-o", "mysql", "-g", "mysql", "/run/mysqld"])
        .status();
    let _ = Command::new("start-stop-daemon")
        .args(["--start", "--background", "--oknodo", "--exec", server])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !up() {
        assert!(Instant::now() < deadline, "MariaDB did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn restart_mariadb() {
    let stopped = Command::new("mariadb-admin")
        .args(my::SERVER)
        .arg("shutdown")
        .status()
        .unwrap()
        .success();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Command::new("pgrep")
        .args(["-x", "mariadbd|mysqld"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(Instant::now() < deadline, "MariaDB did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Never leave the machine's server down for the tests after this.
    start();
    assert!(stopped, "mariadb-admin shutdown failed");
}

/// The binary log's end as one comparable number (file number, offset).
fn log_end(db: &TestDb) -> (u64, u64) {
    let row = db.rows("SHOW MASTER STATUS").remove(0);
    let file: u64 = row[0].rsplit_once('.').unwrap().1.parse().unwrap();
    (file, row[1].parse().unwrap())
}

fn position(status: &serde_json::Value) -> (u64, u64) {
    let at = &status["positions"]["my"]["at"];
    let file = at["file"]
        .as_str()
        .and_then(|f| f.rsplit_once('.'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    (file, at["pos"].as_u64().unwrap_or(0))
}

/// A database `name` with `rows` items, and a pipeline file of that name
/// following it into DuckDB (`out.duckdb` beside it).
fn items_pipeline(name: &str, rows: u32) -> (TestDb, tempfile::TempDir, std::path::PathBuf) {
    let db = TestDb::create(name);
    db.exec(&format!(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, label VARCHAR(40) NOT NULL, n INT NOT NULL);
         INSERT INTO items SELECT seq, CONCAT('item ', seq), 0 FROM seq_1_to_{rows};"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"{name}\"\n[sources.my]\nkind = \"mysql\"\ndatabase = \"{}\"\nheartbeat_secs = 1\n[[sources.my.tables]]\nname = \"items\"\n[targets.db]\nkind = \"duckdb\"\npath = \"out.duckdb\"\ninputs = [\"my\"]\n",
            db.name
        ),
    )
    .unwrap();
    (db, tmp, pipeline)
}

/// The target's items, by id, as text.
fn target_items(dir: &std::path::Path) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(dir.join("out.duckdb")).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(id AS VARCHAR), label, CAST(n AS VARCHAR) FROM items ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| (0..3).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn mariadb_restart_mid_stream_is_survived() {
    let (db, tmp, pipeline) = items_pipeline("my_restart", 5000);
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("streaming", Duration::from_secs(60), |s| {
        s["tables"]["my.items"]["phase"] == "streaming"
    });
    db.exec("UPDATE items SET n = n + 1 WHERE id <= 100");

    restart_mariadb();
    // More changes, in the log file the restart began, while the pipeline
    // reconnects.
    db.exec("UPDATE items SET n = n + 10 WHERE id BETWEEN 50 AND 150");
    db.exec("DELETE FROM items WHERE id > 4990");
    db.exec("INSERT INTO items VALUES (9001, 'after restart', 1)");
    let end = log_end(&db);
    run.wait_for("changes after the restart", Duration::from_secs(120), |s| {
        position(s) >= end
    });
    assert_eq!(run.interrupt(), 0);

    let expected = db.rows("SELECT id, label, n FROM items ORDER BY id");
    let actual = target_items(tmp.path());
    assert_same_rows("items after the restart", &expected, &actual);
}

/// The binary log at the pipeline's position is purged while it is
/// stopped: the run stops and says how to recover, and doing what it says
/// brings the target back equal to the source. Purging removes log the
/// other tests may be reading, so this runs alone too.
#[test]
fn a_purged_position_stops_the_run_with_how_to_recover() {
    let (db, tmp, pipeline) = items_pipeline("my_purged", 100);
    assert_eq!(Running::start(&pipeline, &["--once"]).wait(), 0);

    // Changes the pipeline has not read, then their log is purged.
    db.exec("UPDATE items SET n = 7 WHERE id <= 10; DELETE FROM items WHERE id > 95");
    db.exec("FLUSH BINARY LOGS");
    let active = db.rows("SHOW MASTER STATUS").remove(0).remove(0);
    // MariaDB keeps a file until InnoDB's commits in it are durable (its
    // binary log checkpoint), so the purge is repeated until it is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        db.exec(&format!("PURGE BINARY LOGS TO '{active}'"));
        let first = db.rows("SHOW BINARY LOGS").remove(0).remove(0);
        if first == active {
            break;
        }
        assert!(Instant::now() < deadline, "{first} was not purged");
        std::thread::sleep(Duration::from_millis(200));
    }

    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_ne!(code, 0, "a purged position fails the run");
    assert!(
        stderr.contains("cannot send the binary log from")
            && stderr.contains("run `syncline drop` on the pipeline file and run it again")
            && stderr.contains("binlog_expire_logs_seconds"),
        "the error says what happened and how to recover: {stderr}"
    );

    // What it says: drop the pipeline, run it again.
    let (code, out, stderr) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{stderr}");
    assert_eq!(Running::start(&pipeline, &["--once"]).wait(), 0);
    let expected = db.rows("SELECT id, label, n FROM items ORDER BY id");
    let actual = target_items(tmp.path());
    assert_eq!(expected.len(), 95);
    assert_same_rows("items copied anew", &expected, &actual);
}
