//! Postgres change data capture end to end: snapshot and stream while
//! writers run, and `kill -9` of the real process at random points.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::pg::{TestDb, exec_in, position_lsn, spawn_writer};
use support::*;

const TABLE: &str = "CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    owner text NOT NULL,
    balance numeric(14,2) NOT NULL,
    version int NOT NULL DEFAULT 0,
    tags text[],
    updated timestamptz NOT NULL DEFAULT now())";

fn seed(db: &TestDb, rows: u64) {
    db.exec(TABLE);
    db.exec(&format!(
        "INSERT INTO accounts (id, owner, balance, tags)
         SELECT i, 'owner ' || i, (i % 1000) * 1.25, ARRAY['t' || (i % 7)] FROM generate_series(1, {rows}) i"
    ));
    db.exec("ANALYZE accounts");
}

/// One writer transaction: inserts, updates and deletes across the key space.
fn write_once(db: &str, round: u64, max_id: u64) {
    let a = (round * 7919) % max_id + 1;
    let b = (round * 104_729) % max_id + 1;
    exec_in(db, &format!(
        "BEGIN;
         UPDATE accounts SET balance = balance + 1, version = version + 1, tags = array_append(tags, 'r{round}') WHERE id BETWEEN {a} AND {a} + 20;
         DELETE FROM accounts WHERE id BETWEEN {b} AND {b} + 3;
         INSERT INTO accounts (id, owner, balance) VALUES ({new}, 'new {round}', {round}.50)
             ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, version = accounts.version + 1;
         COMMIT;",
        new = max_id + 1 + round
    ));
}

fn pg_rows(db: &TestDb) -> Vec<Vec<String>> {
    db.rows("SELECT id, owner, balance, version, coalesce(array_to_string(tags, '|'), '') FROM accounts ORDER BY id")
}

fn duck_rows(path: &Path) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT CAST(id AS VARCHAR), owner, CAST(balance AS VARCHAR), CAST(version AS VARCHAR),
                    coalesce(array_to_string(tags, '|'), '') FROM accounts ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| (0..5).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn assert_in_sync(db: &TestDb, duck: &Path) {
    let expected = pg_rows(db);
    let actual = duck_rows(duck);
    assert_eq!(
        duckdb_count(duck, "SELECT count(*) - count(DISTINCT id) FROM accounts"),
        0,
        "duplicate keys in the target"
    );
    assert_same_rows("the target", &expected, &actual);
}

#[test]
fn snapshot_and_stream_while_writers_run_end_in_sync() {
    let db = TestDb::create("cdc");
    seed(&db, 60_000);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        db.pipeline(
            "cdc_sync",
            &["accounts"],
            "chunk_rows = 5000\nbatch_rows = 2000",
            "upsert",
        ),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(db.name.clone(), write_once, 60_000, stop.clone());
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("streaming", Duration::from_secs(120), |s| {
        s["tables"]["pg.accounts"]["phase"] == "streaming"
    });
    // Let the writers go on for a while during streaming too.
    run.wait_for("streamed changes", Duration::from_secs(120), |s| {
        total(s, "updates") >= 2_000
    });
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    assert!(rounds > 10, "the writer ran only {rounds} transactions");
    let end = db.current_lsn();
    run.wait_for("every change applied", Duration::from_secs(120), |s| {
        position_lsn(s) >= end
    });
    // The slot's confirmed position follows what the targets hold (feedback
    // goes out every second).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let confirmed: u64 = db
            .scalar(
                "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots
                 WHERE database = current_database()",
            )
            .parse()
            .unwrap();
        if confirmed >= end {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slot confirmed {confirmed}, targets hold {end}"
        );
        run.last = None;
        run.wait_for("a newer status", Duration::from_secs(5), |_| true);
    }
    assert_eq!(run.interrupt(), 0);
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));
}

#[test]
fn kill_9_at_random_points_across_snapshot_handoff_and_stream() {
    let seed_value = fastrand::u64(..);
    eprintln!("kill points seed: {seed_value}");
    let mut rng = fastrand::Rng::with_seed(seed_value);
    let db = TestDb::create("crash");
    const ROWS: u64 = 120_000;
    seed(&db, ROWS);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        db.pipeline(
            "cdc_crash",
            &["accounts"],
            "chunk_rows = 4000\nbatch_rows = 1000",
            "upsert",
        ),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(db.name.clone(), write_once, ROWS, stop.clone());

    let mut kills = Vec::new();
    for round in 0..20 {
        let mut run = Running::start(&pipeline, &[]);
        let status = match rng.u8(0..3) {
            // Mid-snapshot (or wherever the run is after a little progress).
            0 => {
                let n = rng.u64(1..20_000);
                run.wait_for("progress", Duration::from_secs(120), |s| {
                    changes(s) >= n || s["tables"]["pg.accounts"]["phase"] == "streaming"
                })
            }
            // At the handoff from snapshot to stream.
            1 => run.wait_for("handoff", Duration::from_secs(120), |s| {
                let phase = &s["tables"]["pg.accounts"]["phase"];
                *phase == "catch_up" || *phase == "streaming"
            }),
            // While streaming.
            _ => {
                let streaming = run.wait_for("streaming", Duration::from_secs(120), |s| {
                    s["tables"]["pg.accounts"]["phase"] == "streaming"
                });
                let n = changes(&streaming) + rng.u64(1..500);
                run.wait_for("streamed changes", Duration::from_secs(120), |s| {
                    changes(s) >= n
                })
            }
        };
        kills.push(format!(
            "{round}: {} after {} changes",
            status["tables"]["pg.accounts"]["phase"],
            changes(&status)
        ));
        run.kill9();
    }
    eprintln!("kill points:\n{}", kills.join("\n"));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let run = Running::start(&pipeline, &["--once"]);
    assert_eq!(run.wait(), 0);
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));

    let (code, out, err) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(db.slots().is_empty(), "slots left: {:?}", db.slots());
    assert!(
        db.publications().is_empty(),
        "publications left: {:?}",
        db.publications()
    );
}

/// `syncline run --once` with the DuckDB target's summary logged; returns
/// (rows appended as new, changes merged by key) from it.
fn run_once_counting(dir: &Path) -> (u64, u64) {
    let out = std::process::Command::new(binary())
        .args(["run", "--once", "p.toml"])
        .current_dir(dir)
        .env("SYNCLINE_LOG", "warn,syncline_duckdb=info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let field = |name: &str| -> u64 {
        let line = err
            .lines()
            .find(|l| l.contains("DuckDB target done"))
            .unwrap_or_else(|| panic!("no summary in:\n{err}"));
        let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("appended"), field("merged"))
}

/// The first snapshot under the slot's exported snapshot goes into the
/// empty target without key lookups; a second pipeline into the same file
/// (the table is no longer empty) merges by key.
#[test]
fn a_fresh_snapshot_is_appended_and_one_into_a_filled_table_is_merged() {
    let db = TestDb::create("newrows");
    seed(&db, 30_000);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    let write = |name: &str| {
        std::fs::write(
            &pipeline,
            db.pipeline(
                name,
                &["accounts"],
                "chunk_rows = 4000\nbatch_rows = 1000",
                "upsert",
            ),
        )
        .unwrap();
    };
    write("cdc_newrows_a");
    assert_eq!(run_once_counting(tmp.path()), (30_000, 0));
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));

    db.exec("UPDATE accounts SET version = version + 1 WHERE id % 5 = 0");
    write("cdc_newrows_b");
    assert_eq!(run_once_counting(tmp.path()), (0, 30_000));
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));
}

/// `kill -9` while the snapshot is being appended as new rows, with rows
/// moving to other pages in between: the resumed copy sees some of them
/// again and must merge them by key.
#[test]
fn kill_9_mid_snapshot_after_new_rows_were_appended_leaves_no_duplicates() {
    let db = TestDb::create("newrows_crash");
    const ROWS: u64 = 100_000;
    seed(&db, ROWS);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        db.pipeline(
            "cdc_newrows_crash",
            &["accounts"],
            "chunk_rows = 4000\nbatch_rows = 1000",
            "upsert",
        ),
    )
    .unwrap();
    for (round, at) in [10_000u64, 30_000].into_iter().enumerate() {
        let mut run = Running::start(&pipeline, &[]);
        let status = run.wait_for("snapshot progress", Duration::from_secs(120), |s| {
            changes(s) >= at
        });
        assert_eq!(
            status["tables"]["pg.accounts"]["phase"], "snapshot",
            "round {round}: the snapshot ended before the kill"
        );
        run.kill9();
        exec_in(
            &db.name,
            &format!(
                "UPDATE accounts SET version = version + 1, owner = owner || '+' WHERE id % 11 = {round};
                 DELETE FROM accounts WHERE id % 97 = {round};
                 INSERT INTO accounts (id, owner, balance) VALUES ({}, 'late', 1);",
                ROWS + 1 + round as u64
            ),
        );
    }
    let (appended, merged) = run_once_counting(tmp.path());
    assert_eq!(appended, 0, "a resumed snapshot must not be appended");
    assert!(merged > 0);
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));
}

#[test]
fn lost_connections_are_reestablished_and_streaming_resumes() {
    let db = TestDb::create("reconnect");
    seed(&db, 1_000);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        db.pipeline("cdc_reconnect", &["accounts"], "", "upsert"),
    )
    .unwrap();
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("streaming", Duration::from_secs(60), |s| {
        s["tables"]["pg.accounts"]["phase"] == "streaming"
    });
    for round in 1..=20 {
        write_once(&db.name, round, 1_000);
    }
    let first = db.current_lsn();
    run.wait_for("first changes", Duration::from_secs(60), |s| {
        position_lsn(s) >= first
    });

    // The server drops every connection of the pipeline (as on a restart).
    let killed = db.scalar(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'syncline' AND datname = '{}'",
        db.name
    ));
    assert_ne!(killed, "0", "no connection of the pipeline was found");
    for round in 21..=40 {
        write_once(&db.name, round, 1_000);
    }
    let second = db.current_lsn();
    let status = run.wait_for(
        "changes after the reconnect",
        Duration::from_secs(90),
        |s| position_lsn(s) >= second,
    );
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_replication_slots WHERE active AND database = current_database()"),
        "1",
        "the slot is streaming again"
    );
    assert_eq!(run.interrupt(), 0);
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));
}

#[test]
fn incremental_and_full_modes_work_without_replication() {
    let db = TestDb::create("poll");
    db.exec(
        "CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL, updated_at timestamptz NOT NULL);
         INSERT INTO items SELECT i, 'item ' || i, '2025-01-01'::timestamptz + i * interval '1 second'
             FROM generate_series(1, 3000) i;
         CREATE TABLE lookup (code text PRIMARY KEY, name text NOT NULL);
         INSERT INTO lookup VALUES ('a', 'Alpha'), ('b', 'Beta'), ('c', 'Gamma');",
    );
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"poll_modes\"\n[sources.pg]\nkind = \"postgres\"\ndatabase = \"{}\"\nbatch_rows = 700\npoll_secs = 1\n\
             [[sources.pg.tables]]\nname = \"items\"\nmode = \"incremental\"\ncursor = \"updated_at\"\n\
             [[sources.pg.tables]]\nname = \"lookup\"\nmode = \"full\"\n\
             [targets.db]\nkind = \"duckdb\"\npath = \"out.duckdb\"\ninputs = [\"pg\"]\n",
            db.name
        ),
    )
    .unwrap();
    let out = tmp.path().join("out.duckdb");
    let (code, _, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(db.slots().is_empty(), "polling must not create a slot");
    assert_eq!(duckdb_count(&out, "SELECT count(*) FROM items"), 3000);
    assert_eq!(duckdb_count(&out, "SELECT count(*) FROM lookup"), 3);

    // Changes with a later cursor arrive; the full table is replaced.
    db.exec(
        "UPDATE items SET label = 'changed', updated_at = '2026-01-01' WHERE id <= 10;
         INSERT INTO items VALUES (5000, 'new', '2026-01-02');
         DELETE FROM lookup WHERE code = 'b'; UPDATE lookup SET name = 'GAMMA' WHERE code = 'c';",
    );
    let (code, _, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(duckdb_count(&out, "SELECT count(*) FROM items"), 3001);
    assert_eq!(
        duckdb_count(&out, "SELECT count(*) FROM items WHERE label = 'changed'"),
        10
    );
    assert_eq!(
        duckdb_count(&out, "SELECT count(*) - count(DISTINCT id) FROM items"),
        0
    );
    let (lookup, _) = duckdb_rows(&out, "lookup");
    assert_eq!(lookup.keys().cloned().collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(lookup["c"][1], "GAMMA");

    // Following: new rows are picked up by the next poll.
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("polling", Duration::from_secs(60), |s| {
        s["tables"]["pg.items"]["phase"] == "streaming"
    });
    db.exec("INSERT INTO items SELECT i, 'later', '2027-01-01'::timestamptz + i * interval '1 ms' FROM generate_series(6000, 7999) i");
    run.wait_for("polled rows", Duration::from_secs(60), |s| {
        total(s, "updates") >= 2000
    });
    assert_eq!(run.interrupt(), 0);
    assert_eq!(duckdb_count(&out, "SELECT count(*) FROM items"), 5001);
}

/// Incremental mode with a key scan: rows deleted at the source leave every
/// target (DuckDB upsert, Postgres upsert and history), across pages of a
/// composite key whose text part sorts differently by locale and by byte.
#[test]
fn key_scans_remove_rows_deleted_at_the_source() {
    let db = TestDb::create("keyscan");
    let dst = TestDb::create("keyscan_dst");
    // Mixed case and accents: en_US and C order them differently.
    db.exec(
        "CREATE TABLE stock (region text NOT NULL, id int NOT NULL, qty int NOT NULL,
             updated_at timestamptz NOT NULL, PRIMARY KEY (region, id));
         INSERT INTO stock
             SELECT r, i, i % 17, '2025-01-01'::timestamptz + i * interval '1 second'
             FROM unnest(ARRAY['a', 'B', 'c', 'Ä', 'b']) r, generate_series(1, 600) i;",
    );
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    let text = format!(
        "name = \"key_scan\"\n[sources.pg]\nkind = \"postgres\"\ndatabase = \"{src}\"\nbatch_rows = 700\n\
         [[sources.pg.tables]]\nname = \"stock\"\nmode = \"incremental\"\ncursor = \"updated_at\"\nkey_scan_secs = 1\n\
         [targets.duck]\nkind = \"duckdb\"\npath = \"out.duckdb\"\ninputs = [\"pg\"]\n\
         [targets.pgup]\nkind = \"postgres\"\ndatabase = \"{dst}\"\nschema = \"up\"\ninputs = [\"pg\"]\n\
         [targets.pghist]\nkind = \"postgres\"\ndatabase = \"{dst}\"\nschema = \"hist\"\ninputs = [\"pg\"]\nmode = \"history\"\n",
        src = db.name,
        dst = dst.name
    );
    std::fs::write(&pipeline, text).unwrap();
    let out = tmp.path().join("out.duckdb");
    let (code, _, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(duckdb_count(&out, "SELECT count(*) FROM stock"), 3000);

    // Deletes at the first key, the last key, inside a page, a whole page's
    // worth, and a row updated then deleted between runs.
    db.exec(
        "DELETE FROM stock WHERE region = 'B' AND id = 1;
         DELETE FROM stock WHERE region = 'Ä' AND id = 600;
         DELETE FROM stock WHERE region = 'a' AND id BETWEEN 100 AND 110;
         DELETE FROM stock WHERE region = 'b' AND id BETWEEN 1 AND 700;
         UPDATE stock SET qty = -1, updated_at = '2026-01-01' WHERE region = 'c' AND id <= 5;
         INSERT INTO stock VALUES ('d', 1, 1, '2026-01-02'), ('C', 1, 1, '2026-01-02');",
    );
    let expected = db.rows("SELECT region, id, qty FROM stock ORDER BY region COLLATE \"C\", id");
    assert_eq!(expected.len(), 3000 - 1 - 1 - 11 - 600 + 2);
    let duck = |out: &Path| -> Vec<Vec<String>> {
        let conn = duckdb::Connection::open(out).unwrap();
        let mut stmt = conn
            .prepare("SELECT region, CAST(id AS VARCHAR), CAST(qty AS VARCHAR) FROM stock ORDER BY region, id")
            .unwrap();
        stmt.query_map([], |r| (0..3).map(|i| r.get::<_, String>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let upsert =
        || dst.rows("SELECT region, id, qty FROM up.stock ORDER BY region COLLATE \"C\", id");
    // The history's latest version of each key, deletes removed.
    let history = || {
        dst.rows(
            "SELECT region, id, qty FROM (
                 SELECT DISTINCT ON (region, id) region, id, qty, _op FROM hist.stock
                 ORDER BY region, id, _seq DESC, ctid DESC) h
             WHERE _op <> 'd' ORDER BY region COLLATE \"C\", id",
        )
    };
    // A scan runs when a second has passed since the last one began.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
        assert_eq!(code, 0, "{err}");
        if duck(&out) == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the key scan did not remove deleted rows in time: {} rows in DuckDB, {} at the source",
            duck(&out).len(),
            expected.len()
        );
    }
    assert_eq!(upsert(), expected);
    assert_eq!(history(), expected);
    assert_eq!(
        dst.scalar("SELECT count(*) FROM hist.stock WHERE _op = 'd'"),
        "613",
        "one delete recorded per row gone, and none twice"
    );

    // An emptied table empties its targets; cdc tables refuse the setting.
    db.exec("DELETE FROM stock");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while duckdb_count(&out, "SELECT count(*) FROM stock") != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the emptied table was not pruned"
        );
        let (code, _, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(dst.scalar("SELECT count(*) FROM up.stock"), "0");
    std::fs::write(
        &pipeline,
        std::fs::read_to_string(&pipeline)
            .unwrap()
            .replace("mode = \"incremental\"\ncursor = \"updated_at\"\n", ""),
    )
    .unwrap();
    let (code, _, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_ne!(code, 0);
    assert!(
        err.contains("key_scan_secs applies to incremental tables only"),
        "{err}"
    );
}

/// Runs `syncline run --once` on `dir/p.toml`; its exit code and output.
fn run_once(dir: &Path) -> (i32, String) {
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], dir);
    (code, format!("{out}{err}"))
}

/// Two pipelines of the same name, in two folders, on one database: each
/// has its own slot, neither's first run drops the other's, and `drop` of
/// one leaves the other running.
#[test]
fn pipelines_named_alike_keep_their_own_slots() {
    let db = TestDb::create("twins");
    seed(&db, 100);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        std::fs::write(
            dir.path().join("p.toml"),
            db.pipeline("shop", &["accounts"], "", "upsert"),
        )
        .unwrap();
    }
    let (code, out) = run_once(a.path());
    assert_eq!(code, 0, "{out}");
    db.exec("INSERT INTO accounts (id, owner, balance) SELECT i, 'late ' || i, 1 FROM generate_series(101, 150) i");
    let (code, out) = run_once(b.path());
    assert_eq!(code, 0, "{out}");
    assert_eq!(db.slots().len(), 2, "one slot each: {:?}", db.slots());
    db.exec("UPDATE accounts SET version = version + 1 WHERE id % 10 = 0");
    // A's changes since its first run are still in its own slot.
    let (code, out) = run_once(a.path());
    assert_eq!(code, 0, "{out}");
    assert_in_sync(&db, &a.path().join("out.duckdb"));

    let (code, out, err) = syncline(&["drop", "p.toml"], b.path());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        db.slots().len(),
        1,
        "B's drop took A's slot: {:?}",
        db.slots()
    );
    db.exec("DELETE FROM accounts WHERE id % 7 = 0");
    let (code, out) = run_once(a.path());
    assert_eq!(code, 0, "{out}");
    assert_in_sync(&db, &a.path().join("out.duckdb"));
}

/// A slot whose publication names another owner is neither read nor
/// dropped.
#[test]
fn a_slot_another_pipeline_owns_is_left_alone() {
    let db = TestDb::create("owned");
    seed(&db, 50);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        db.pipeline("owned", &["accounts"], "", "upsert"),
    )
    .unwrap();
    let (code, out) = run_once(tmp.path());
    assert_eq!(code, 0, "{out}");
    let publication = db.publications().pop().unwrap();
    db.exec(&format!(
        r#"COMMENT ON PUBLICATION {publication} IS '{{"syncline_pipeline":"ffffffffffff","pipeline":"elsewhere","source":"pg"}}'"#
    ));
    db.exec("INSERT INTO accounts (id, owner, balance) VALUES (1000, 'x', 1)");
    let (code, out) = run_once(tmp.path());
    assert_ne!(code, 0, "ran on another pipeline's slot: {out}");
    assert!(
        out.contains(&format!("{publication} belong to pipeline `elsewhere`")),
        "{out}"
    );
    let (code, out, err) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("left alone"), "{out}");
    assert_eq!(
        db.slots(),
        vec![publication.clone()],
        "dropped another's slot"
    );
    assert_eq!(db.publications(), vec![publication]);
}

/// A slot that has confirmed past what the targets hold (another reader
/// consumed changes) is refused, not resumed from with a silent gap.
#[test]
fn a_slot_that_moved_past_the_targets_is_refused() {
    let db = TestDb::create("gap");
    seed(&db, 50);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        db.pipeline("gap", &["accounts"], "", "upsert"),
    )
    .unwrap();
    let (code, out) = run_once(tmp.path());
    assert_eq!(code, 0, "{out}");
    let slot = db.slots().pop().unwrap();
    db.exec("INSERT INTO accounts (id, owner, balance) VALUES (1000, 'consumed elsewhere', 1)");
    db.exec(&format!(
        "SELECT pg_replication_slot_advance('{slot}', pg_current_wal_lsn())"
    ));
    let (code, out) = run_once(tmp.path());
    assert_ne!(code, 0, "resumed past a gap: {out}");
    assert!(out.contains("are lost to this pipeline"), "{out}");
    assert!(out.contains("syncline drop"), "{out}");
    // After a drop, a new snapshot brings the row.
    let (code, out, err) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = run_once(tmp.path());
    assert_eq!(code, 0, "{out}");
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));
}

/// Ctrl-C while a backlog streams in stops within the graceful-stop
/// deadline (the batch in hand finished or abandoned, a final checkpoint),
/// exits 0, and the next run takes over where it stopped.
#[test]
fn ctrl_c_with_a_backlog_stops_promptly() {
    let db = TestDb::create("ctrlc");
    seed(&db, 2_000);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(&pipeline, db.pipeline("ctrlc", &["accounts"], "", "upsert")).unwrap();
    let (code, out) = run_once(tmp.path());
    assert_eq!(code, 0, "{out}");
    // A backlog while the pipeline is stopped: 300 transactions of 2,000
    // updates each.
    db.exec(
        "DO $$ BEGIN FOR i IN 1..300 LOOP
             UPDATE accounts SET version = version + 1, balance = balance + 0.01;
             COMMIT;
         END LOOP; END $$",
    );
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("catching up", Duration::from_secs(120), |s| {
        total(s, "updates") >= 20_000
    });
    let asked = std::time::Instant::now();
    assert_eq!(run.interrupt(), 0, "Ctrl-C did not end in a graceful stop");
    eprintln!("stopped {:?} after Ctrl-C", asked.elapsed());
    let (code, out) = run_once(tmp.path());
    assert_eq!(code, 0, "{out}");
    assert_in_sync(&db, &tmp.path().join("out.duckdb"));
}
