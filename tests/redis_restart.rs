//! Redis restarted mid-stream with persistence off (its data and the
//! target's checkpoint gone): the running pipeline notices, stops saying
//! so, and the next run copies every table again, leaving Redis (and the
//! warehouse) equal to the source. It restarts the local Redis, so it runs
//! alone (after the rest, like `postgres_restart`).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::cache::Prefix;
use support::pg::TestDb;
use support::*;

fn ping() -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "ping"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops Redis without saving and starts it again as `scripts/bootstrap`
/// does: empty, persistence off.
fn restart_redis() {
    let _ = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
        .output();
    wait_until("Redis to stop", Duration::from_secs(30), || !ping());
    let started = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .status()
        .unwrap();
    assert!(started.success(), "redis-server did not start");
    wait_until("Redis to answer", Duration::from_secs(30), ping);
}

#[test]
fn a_redis_restart_that_loses_everything_is_noticed_and_refilled() {
    let src = TestDb::create("redis_restart");
    src.exec("CREATE TABLE docs (id bigint PRIMARY KEY, note text NOT NULL)");
    src.exec("INSERT INTO docs SELECT i, 'seed' FROM generate_series(1, 300) i");
    let prefix = Prefix::new("restart");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    std::fs::write(
        &file,
        src.pipeline("restart", &["docs"], "", "upsert") + &prefix.target("cache", "docs"),
    )
    .unwrap();
    let mut run = Running::start(&file, &[]);
    run.wait_for("streaming", Duration::from_secs(120), |s| {
        s["tables"]["pg.docs"]["phase"] == "streaming"
    });
    src.exec("UPDATE docs SET note = 'before' WHERE id <= 10");
    wait_until("the first update in Redis", Duration::from_secs(60), || {
        prefix
            .json_rows("docs", &["id", "note"])
            .iter()
            .filter(|r| r[1] == "before")
            .count()
            == 10
    });

    restart_redis();
    src.exec("UPDATE docs SET note = 'after' WHERE id <= 20");
    let status = run.wait_for("the loss reported", Duration::from_secs(60), |s| {
        s.to_string().contains("was lost")
    });
    eprintln!("status: {status}");
    let code = run.wait();
    assert_ne!(code, 0, "the run went on after Redis lost its data");
    assert!(
        prefix.json_rows("docs", &["id", "note"]).is_empty(),
        "something was written onto the emptied Redis"
    );

    // The next run finds no checkpoint in Redis: every table is copied again.
    let (code, stdout, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let expected = src.rows("SELECT id::text, note FROM docs ORDER BY docs.id");
    assert_same_rows(
        "Redis after the restart",
        &expected,
        &prefix.json_rows("docs", &["id", "note"]),
    );
    assert_eq!(
        duckdb_count(
            &tmp.path().join("out.duckdb"),
            "SELECT count(*) FROM docs WHERE note = 'after'"
        ),
        20
    );
}
