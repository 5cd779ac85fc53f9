//! Postgres restarted under a streaming pipeline: it reconnects with backoff
//! and resumes, losing and doubling nothing. It restarts the server, so
//! `scripts/test` runs it alone, after the rest of the suite.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::pg::TestDb;
use support::*;

fn restart_postgres() {
    let cluster = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .unwrap();
    let ctl = |action: &str| {
        Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &cluster, "main", action])
            .status()
            .unwrap()
            .success()
    };
    let ok = ctl("restart");
    if !ok {
        // Never leave the machine's server down for the tests after this.
        ctl("start");
    }
    assert!(ok, "pg_ctlcluster restart failed");
}

fn lsn(db: &TestDb) -> u64 {
    db.scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
        .parse()
        .unwrap()
}

#[test]
fn postgres_restart_mid_stream_is_survived() {
    let db = TestDb::create("restart");
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL, n int NOT NULL)");
    db.exec("INSERT INTO items SELECT i, 'item ' || i, 0 FROM generate_series(1, 5000) i");
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        db.pipeline("pg_restart", &["items"], "", "upsert"),
    )
    .unwrap();
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("streaming", Duration::from_secs(60), |s| {
        s["tables"]["pg.items"]["phase"] == "streaming"
    });
    db.exec("UPDATE items SET n = n + 1 WHERE id <= 100");

    restart_postgres();
    // Wait for the server, then change more while the pipeline reconnects.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db.try_exec("SELECT 1").is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "Postgres did not come back"
        );
    }
    db.exec("UPDATE items SET n = n + 10 WHERE id BETWEEN 50 AND 150");
    db.exec("DELETE FROM items WHERE id > 4990");
    db.exec("INSERT INTO items VALUES (9001, 'after restart', 1)");
    let end = lsn(&db);
    run.wait_for("changes after the restart", Duration::from_secs(120), |s| {
        s["positions"]["pg"]["lsn"].as_u64().unwrap_or(0) >= end
    });
    assert_eq!(run.interrupt(), 0);

    let expected: Vec<Vec<String>> = db.rows("SELECT id, label, n FROM items ORDER BY id");
    let conn = duckdb::Connection::open(tmp.path().join("out.duckdb")).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(id AS VARCHAR), label, CAST(n AS VARCHAR) FROM items ORDER BY id")
        .unwrap();
    let actual: Vec<Vec<String>> = stmt
        .query_map([], |r| (0..3).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(expected.len(), actual.len());
    assert!(
        expected == actual,
        "target differs from source after the restart"
    );
}
