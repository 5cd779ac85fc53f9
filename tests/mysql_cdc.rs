//! The MariaDB source end to end through the real `syncline` binary: a
//! snapshot and the binary log into DuckDB, `kill -9` mid-snapshot and
//! mid-stream under a concurrent writer, and schema changes in the log;
//! source and target compared row by row.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::my::TestDb;
use support::*;

const ROWS: u64 = 40_000;

fn create_orders(db: &TestDb, rows: u64) {
    db.exec(
        "CREATE TABLE orders (
            id BIGINT PRIMARY KEY,
            customer VARCHAR(40) NOT NULL,
            amount DECIMAL(10,2) NOT NULL,
            qty INT UNSIGNED NOT NULL,
            note TEXT NULL,
            placed DATETIME(6) NOT NULL
        )",
    );
    // Rows from MariaDB's sequence engine, in one statement.
    db.exec(&format!(
        "INSERT INTO orders
         SELECT seq, CONCAT('c', seq % 977), (seq * 7 % 100000) / 100, 4000000000 + seq % 7,
                IF(seq % 5 = 0, NULL, CONCAT('note ', seq)),
                TIMESTAMP('2024-01-01') + INTERVAL seq SECOND + INTERVAL (seq % 1000) MICROSECOND
         FROM seq_1_to_{rows}"
    ));
}

fn pipeline(root: &Path, db: &str, batch_rows: usize) -> std::path::PathBuf {
    let path = root.join("my.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "mycdc"
[sources.my]
kind = "mysql"
database = "{db}"
batch_rows = {batch_rows}
heartbeat_secs = 1
[[sources.my.tables]]
name = "orders"
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["my"]
"#
        ),
    )
    .unwrap();
    path
}

/// The source's rows as text, by id.
fn source_rows(db: &TestDb, extra: &str) -> Vec<Vec<String>> {
    db.rows(&format!(
        "SELECT id, customer, amount, qty, COALESCE(note, '<null>'),
                DATE_FORMAT(placed, '%Y-%m-%d %H:%i:%s.%f'){extra}
         FROM orders ORDER BY id"
    ))
}

/// The target's rows as text, by id, in the source's format.
fn target_rows(out: &Path, extra: &str) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(out).unwrap();
    let sql = format!(
        "SELECT CAST(id AS VARCHAR), customer, CAST(amount AS VARCHAR), CAST(qty AS VARCHAR),
                coalesce(note, '<null>'), strftime(placed, '%Y-%m-%d %H:%M:%S.%f'){extra}
         FROM orders ORDER BY id"
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let width = stmt.query([]).unwrap().as_ref().unwrap().column_count();
    stmt.query_map([], |r| (0..width).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// One transaction of inserts, updates and deletes, different each round.
fn write_round(db: &str, round: u64) {
    let base = ROWS + round * 10;
    let victim = (round * 7919) % ROWS + 1;
    let sql = format!(
        "START TRANSACTION;
         INSERT INTO orders VALUES ({base}, 'new', 1.25, 1, NULL, '2025-01-01 00:00:00.5'),
                                   ({}, 'new', 2.50, 2, 'two', '2025-01-02 00:00:00');
         UPDATE orders SET amount = amount + 1, note = CONCAT('round ', {round}) WHERE id = {victim};
         UPDATE orders SET id = id + 1000000 WHERE id = {};
         DELETE FROM orders WHERE id = {};
         COMMIT;",
        base + 1,
        (victim + 17) % ROWS + 1,
        (victim + 31) % ROWS + 1
    );
    let out = std::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            db,
            "-e",
            &sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kill_9_mid_snapshot_and_mid_stream_loses_and_doubles_nothing() {
    let seed = fastrand::u64(..);
    eprintln!("kill points seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let db = TestDb::create("my_crash");
    create_orders(&db, ROWS);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, 500);

    // Ten kills in all. Mid-snapshot: each after a random amount of the
    // copy.
    for round in 0..4 {
        let mut run = Running::start(&file, &[]);
        let threshold = rng.u64(500..ROWS / 2);
        let status = run.wait_for("snapshot progress", Duration::from_secs(180), |s| {
            changes(s) >= threshold || s["tables"]["my.orders"]["phase"] == "streaming"
        });
        eprintln!("round {round}: kill -9 after {} changes", changes(&status));
        run.kill9();
    }

    // The copy finished (a snapshot resumed once more), so what the
    // stream rounds count below is streamed changes only.
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);

    // Mid-stream, with a writer committing transactions all along.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (name, stop) = (db.name.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                write_round(&name, round);
                std::thread::sleep(Duration::from_millis(5));
            }
            round
        })
    };
    for round in 0..6 {
        let mut run = Running::start(&file, &[]);
        let streaming = run.wait_for("streaming", Duration::from_secs(180), |s| {
            s["tables"]["my.orders"]["phase"] == "streaming"
        });
        let base = changes(&streaming);
        assert!(
            base < 1_000,
            "round {round} copied the table again ({base} changes)"
        );
        let threshold = base + rng.u64(1..300);
        let status = run.wait_for("stream progress", Duration::from_secs(120), |s| {
            changes(s) >= threshold
        });
        eprintln!(
            "stream round {round}: kill -9 after {} streamed changes",
            changes(&status) - base
        );
        run.kill9();
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    assert!(rounds > 0, "the writer wrote nothing");

    // Restart to the end of the log and compare every row.
    let run = Running::start(&file, &["--once"]);
    assert_eq!(run.wait(), 0);
    assert_same_rows(
        "orders",
        &source_rows(&db, ""),
        &target_rows(&root.join("out.duckdb"), ""),
    );
}

#[test]
fn added_columns_and_truncates_in_the_log_are_followed() {
    let db = TestDb::create("my_ddl");
    create_orders(&db, 100);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, 1000);
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    assert_same_rows(
        "orders",
        &source_rows(&db, ""),
        &target_rows(&root.join("out.duckdb"), ""),
    );

    // Rows before and after a column is added, in the same stretch of log.
    db.exec(
        "UPDATE orders SET note = 'before the column' WHERE id = 1;
         ALTER TABLE orders ADD COLUMN region VARCHAR(10) NULL;
         UPDATE orders SET region = 'north' WHERE id <= 10;
         INSERT INTO orders VALUES (1000, 'late', 9.99, 3, NULL, '2025-06-01 12:00:00', 'south');",
    );
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    let extra = ", COALESCE(region, '<null>')";
    let target_extra = ", coalesce(region, '<null>')";
    assert_same_rows(
        "orders",
        &source_rows(&db, extra),
        &target_rows(&root.join("out.duckdb"), target_extra),
    );

    // A truncate empties the target's table; rows after it arrive.
    db.exec(
        "TRUNCATE TABLE orders;
         INSERT INTO orders VALUES (7, 'after', 1.00, 1, NULL, '2025-06-02 00:00:00', NULL);",
    );
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    assert_same_rows(
        "orders",
        &source_rows(&db, extra),
        &target_rows(&root.join("out.duckdb"), target_extra),
    );
}

#[test]
fn a_dropped_column_stops_the_source_with_what_to_do() {
    let db = TestDb::create("my_drop");
    create_orders(&db, 10);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, 1000);
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    db.exec("ALTER TABLE orders DROP COLUMN note; UPDATE orders SET qty = 5 WHERE id = 1;");
    let (code, _, stderr) = syncline(&["run", "--once", "my.toml"], root);
    assert_ne!(code, 0, "a change the source cannot follow fails the run");
    assert!(
        stderr.contains("orders") && stderr.contains("follows added columns only"),
        "the error says what changed and what to do: {stderr}"
    );
}
