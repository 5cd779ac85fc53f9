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

/// Rows of the crash test's table: more than two DuckDB row groups, which a
/// first copy commits a group at a time.
const ROWS: u64 = 300_000;

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

/// The pipeline file: `orders` of `db` into DuckDB, with `extra` lines for
/// the source.
fn pipeline(root: &Path, db: &str, extra: &str) -> std::path::PathBuf {
    let path = root.join("my.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "mycdc"
[sources.my]
kind = "mysql"
database = "{db}"
heartbeat_secs = 1
{extra}
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
    support::my::exec_in(db, &sql);
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
    // Small snapshot batches, so the kills land between many; writer
    // transactions (five changes) go out in parts, so kills land between
    // the parts of one too.
    let file = pipeline(
        root,
        &db.name,
        "block_rows = 500\nbatch_rows = 500\ntransaction_rows = 3",
    );

    // A writer commits transactions all along: while the copy runs (a
    // resumed copy is taken at a later point than the first, so its table's
    // changes in between are passed over) and while the log is followed.
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

    // Ten kills in all. Mid-snapshot: each after a random amount of the
    // copy.
    for round in 0..4 {
        let mut run = Running::start(&file, &[]);
        let threshold = rng.u64(500..ROWS / 2);
        let status = run.wait_for("snapshot progress", Duration::from_secs(180), |s| {
            changes(s) >= threshold
        });
        eprintln!("round {round}: kill -9 after {} changes", changes(&status));
        run.kill9();
    }

    // The copy finished (a snapshot resumed once more), so what the
    // stream rounds count below is streamed changes only.
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);

    // Mid-stream.
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
    let file = pipeline(root, &db.name, "");
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

/// `--once` reads to the end of the log as it was when the run started,
/// also when that end is a new file with no transaction in it yet (the
/// server began it on `FLUSH BINARY LOGS`, a restart or a full file).
#[test]
fn once_ends_at_a_log_file_with_no_transaction_yet() {
    let db = TestDb::create("my_flushed");
    create_orders(&db, 10);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, "");
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    db.exec("UPDATE orders SET qty = 7 WHERE id <= 3; FLUSH BINARY LOGS;");
    let code = Running::start(&file, &["--once"])
        .wait_within("a run to a freshly begun log file", Duration::from_secs(60));
    assert_eq!(code, 0);
    assert_same_rows(
        "orders",
        &source_rows(&db, ""),
        &target_rows(&root.join("out.duckdb"), ""),
    );
}

#[test]
fn a_dropped_column_stops_the_source_with_what_to_do() {
    let db = TestDb::create("my_drop");
    create_orders(&db, 10);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, "");
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    db.exec("ALTER TABLE orders DROP COLUMN note; UPDATE orders SET qty = 5 WHERE id = 1;");
    let (code, _, stderr) = syncline(&["run", "--once", "my.toml"], root);
    assert_ne!(code, 0, "a change the source cannot follow fails the run");
    assert!(
        stderr.contains("orders") && stderr.contains("follows added columns only"),
        "the error says what changed and what to do: {stderr}"
    );
}

/// The server fills an added column's default into every existing row
/// without logging it: followed, the targets would hold NULL there.
#[test]
fn a_column_added_with_a_default_stops_the_source() {
    let db = TestDb::create("my_default");
    create_orders(&db, 10);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, "");
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    db.exec("ALTER TABLE orders ADD COLUMN region VARCHAR(10) NOT NULL DEFAULT 'north'; UPDATE orders SET qty = 5 WHERE id = 1;");
    let (code, _, stderr) = syncline(&["run", "--once", "my.toml"], root);
    assert_ne!(code, 0, "a defaulted column fails the run");
    assert!(
        stderr.contains("`region`") && stderr.contains("with a default"),
        "the error names the column and why: {stderr}"
    );
}

#[test]
fn a_column_dropped_while_following_stops_the_source() {
    let db = TestDb::create("my_drop_live");
    create_orders(&db, 10);
    db.exec("ALTER TABLE orders ADD COLUMN region VARCHAR(10) NULL");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, "");
    let mut run = Running::start(&file, &[]);
    run.wait_for("streaming", Duration::from_secs(60), |s| {
        s["tables"]["my.orders"]["phase"] == "streaming"
    });
    // The status says how much binary log the pipeline still needs.
    let status = run.wait_for("the binary log kept", Duration::from_secs(30), |s| {
        s["retained_bytes"]["my"].is_u64()
    });
    let kept = status["retained_bytes"]["my"].as_u64().unwrap();
    let logs: u64 = db
        .rows("SHOW BINARY LOGS")
        .iter()
        .map(|r| r[1].parse::<u64>().unwrap())
        .sum();
    assert!(kept <= logs, "{kept} bytes kept of {logs} logged");
    // The last column goes: later rows are logged without it.
    db.exec("ALTER TABLE orders DROP COLUMN region; UPDATE orders SET qty = 9 WHERE id = 2;");
    let code = run.wait();
    assert_ne!(code, 0, "a dropped column stops the pipeline");
    // The stored position still names the column, so a restart says so too.
    let (code, _, stderr) = syncline(&["run", "--once", "my.toml"], root);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("region") && stderr.contains("follows added columns only"),
        "{stderr}"
    );
}

/// An `ALTER` that reorders enum members and puts a set member first
/// renumbers both in every row without logging the rows: changes logged
/// before it must be read by the old lists and changes after it by the
/// new ones, whatever the server describes when the run starts.
#[test]
fn enum_and_set_members_changed_in_the_log_keep_their_names() {
    let db = TestDb::create("my_members");
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, e ENUM('a','b','c') NOT NULL, s SET('x','y','z') NOT NULL,
                              l ENUM('é','ü') CHARACTER SET latin1 NOT NULL);
         INSERT INTO orders VALUES (1, 'a', 'x', 'é'), (2, 'b', 'y,z', 'ü'), (3, 'c', '', 'é');",
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = pipeline(root, &db.name, "");
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    db.exec(
        "UPDATE orders SET e = 'c', s = 'x,z', l = 'ü' WHERE id = 1;
         INSERT INTO orders VALUES (4, 'b', 'y', 'é');
         ALTER TABLE orders MODIFY e ENUM('c','b','a','d') NOT NULL, MODIFY s SET('w','x','y','z') NOT NULL,
                            MODIFY l ENUM('ñ','ü','é') CHARACTER SET latin1 NOT NULL;
         UPDATE orders SET e = 'd', s = 'w,x', l = 'ñ' WHERE id = 2;
         INSERT INTO orders VALUES (5, 'a', 'z', 'é');",
    );
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    let source = db.rows("SELECT id, e, s, l FROM orders ORDER BY id");
    let conn = duckdb::Connection::open(root.join("out.duckdb")).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(id AS VARCHAR), e, s, l FROM orders ORDER BY id")
        .unwrap();
    let target: Vec<Vec<String>> = stmt
        .query_map([], |r| (0..4).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(source.len(), 5);
    assert_same_rows("orders", &source, &target);
}

/// A column whose signedness or decimal scale changes in place keeps its
/// type code in the log: read on with the old type, its values would be
/// wrong, so the source stops and names it.
#[test]
fn a_column_retyped_in_place_stops_the_source() {
    for (alter, column, said) in [
        (
            "ALTER TABLE orders MODIFY amount DECIMAL(12,4) NOT NULL; UPDATE orders SET amount = 1.2345 WHERE id = 2;",
            "`amount`",
            "is decimal(10,2) in the log",
        ),
        (
            "ALTER TABLE orders MODIFY id BIGINT UNSIGNED NOT NULL; UPDATE orders SET qty = 6 WHERE id = 2;",
            "`id`",
            "is signed in the log",
        ),
    ] {
        let db = TestDb::create("my_retype");
        create_orders(&db, 10);
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let file = pipeline(root, &db.name, "");
        assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
        db.exec(&format!("UPDATE orders SET qty = 5 WHERE id = 1; {alter}"));
        let (code, _, stderr) = syncline(&["run", "--once", "my.toml"], root);
        assert_ne!(code, 0, "{alter}: a column retyped in place fails the run");
        assert!(
            stderr.contains(column)
                && stderr.contains(said)
                && stderr.contains("follows added columns only"),
            "{alter}: the error names the column and its types: {stderr}"
        );
    }
}

/// Every supported type, written before the copy and again (under other
/// ids) after it: the copy (a query) and the log (row events) must give
/// the target the same values.
#[test]
fn every_type_reads_the_same_from_the_copy_and_from_the_log() {
    let db = TestDb::create("my_types");
    db.exec(
        "CREATE TABLE t (
            id INT PRIMARY KEY,
            u8 TINYINT UNSIGNED, i16 SMALLINT, u24 MEDIUMINT UNSIGNED, u32 INT UNSIGNED,
            u64 BIGINT UNSIGNED, i64 BIGINT,
            dec30 DECIMAL(30,10), f FLOAT, d DOUBLE,
            vc VARCHAR(20), tx TEXT, fixed BINARY(4), vb VARBINARY(8), bl BLOB,
            js JSON, en ENUM('small','big, really'), st SET('a','b','c'),
            b1 BIT(1), b12 BIT(12),
            dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), yr YEAR,
            l1 VARCHAR(20) CHARACTER SET latin1, lc CHAR(4) CHARACTER SET latin1,
            u16 SMALLINT UNSIGNED
        )",
    );
    let rows = [
        "0, 255, -32768, 16777215, 4294967295, 18446744073709551615, -9223372036854775808,
         -12345678901234567890.0123456789, 0.1, 2.5e-300, 'ünï 🎉', 'line\\nbreak', X'61620000', X'00ff', X'deadbeef',
         '{\"b\": [1, 2.50, null], \"a\": \"x\"}', 'big, really', 'a,c', b'1', b'101010101010',
         '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.499999', '-838:59:59.000000', 2155,
         _latin1 X'80e98141', 'ça', 65535",
        "1, 0, 0, 0, 0, 0, 0, 0, -0.5, -1.5, '', '', X'00000000', X'', X'', '[]', 'small', '', b'0', b'0',
         '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00.000001', 1901, '', '', 0",
        "2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL",
    ];
    let insert = |offset: i32| {
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                let (id, rest) = r.split_once(',').unwrap();
                format!("({}, {rest})", id.trim().parse::<i32>().unwrap() + offset)
            })
            .collect();
        db.exec(&format!(
            "SET time_zone = '+00:00'; INSERT INTO t VALUES {}",
            values.join(", ")
        ));
    };
    insert(0);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = root.join("types.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"mytypes\"\n[sources.my]\nkind = \"mysql\"\ndatabase = \"{}\"\n[[sources.my.tables]]\nname = \"t\"\n[targets.db]\nkind = \"duckdb\"\npath = \"out.duckdb\"\ninputs = [\"my\"]\n",
            db.name
        ),
    )
    .unwrap();
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);
    insert(100);
    assert_eq!(Running::start(&file, &["--once"]).wait(), 0);

    let conn = duckdb::Connection::open(root.join("out.duckdb")).unwrap();
    let columns: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT column_name FROM information_schema.columns WHERE table_name = 't' AND column_name NOT LIKE '\\_syncline%' ESCAPE '\\' ORDER BY ordinal_position")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("coalesce(CAST(\"{c}\" AS VARCHAR), '<null>')"))
        .collect();
    let read = |id: i32| -> Vec<String> {
        conn.query_row(
            &format!("SELECT {} FROM t WHERE id = {id}", select.join(", ")),
            [],
            |r| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect(),
        )
        .unwrap()
    };
    for id in 0..3 {
        let (copied, logged) = (read(id), read(id + 100));
        for (i, c) in columns.iter().enumerate().skip(1) {
            assert_eq!(
                copied[i], logged[i],
                "column {c} of row {id}: copied vs logged"
            );
        }
    }
    let first = read(0);
    let at = |name: &str| first[columns.iter().position(|c| c == name).unwrap()].clone();
    assert_eq!(at("u64"), "18446744073709551615");
    assert_eq!(at("u32"), "4294967295");
    assert_eq!(at("u8"), "255");
    assert_eq!(at("dec30"), "-12345678901234567890.0123456789");
    assert_eq!(at("f"), "0.1");
    assert_eq!(at("vc"), "ünï 🎉");
    assert_eq!(at("en"), "big, really");
    assert_eq!(at("st"), "a,c");
    assert_eq!(at("b1"), "true");
    assert_eq!(at("b12"), "2730");
    assert_eq!(at("dtm"), "9999-12-31 23:59:59.999999");
    assert_eq!(at("yr"), "2155");
    assert!(
        at("ts").starts_with("2038-01-19 03:14:07.499999"),
        "{}",
        at("ts")
    );
    assert_eq!(at("fixed"), "ab\\x00\\x00");
    // latin1 is Windows-1252: 0x80 is the euro sign, 0x81 (undefined
    // there) the C1 control U+0081.
    assert_eq!(at("l1"), "€é\u{81}A");
    assert_eq!(at("lc"), "ça");
    // Signedness in the log counts every numeric column, the year too.
    assert_eq!(at("u16"), "65535");
}

#[test]
fn columns_the_log_cannot_carry_faithfully_are_refused_by_name() {
    let db = TestDb::create("my_refused");
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, name VARCHAR(10) CHARACTER SET cp1251);
         CREATE TABLE waits (id INT PRIMARY KEY, took TIME(2));
         CREATE TABLE plain (id INT PRIMARY KEY) ENGINE = MyISAM;
         CREATE VIEW seen AS SELECT id FROM orders;",
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (table, says) in [
        ("orders", "column `name`"),
        ("waits", "column `took`"),
        ("plain", "MyISAM"),
        ("seen", "is a view"),
    ] {
        std::fs::write(
            root.join("p.toml"),
            format!(
                "name = \"refused\"\n[sources.my]\nkind = \"mysql\"\ndatabase = \"{}\"\n[[sources.my.tables]]\nname = \"{table}\"\n[targets.db]\nkind = \"duckdb\"\npath = \"out.duckdb\"\ninputs = [\"my\"]\n",
                db.name
            ),
        )
        .unwrap();
        let (code, stdout, stderr) = syncline(&["run", "--once", "p.toml"], root);
        assert_ne!(code, 0, "{table} is refused");
        let text = format!("{stdout}{stderr}");
        assert!(
            text.contains(says),
            "the refusal of {table} names {says}: {text}"
        );
    }
}
