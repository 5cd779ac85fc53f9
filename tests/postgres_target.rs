//! The Postgres target end to end: a Postgres source synced into another
//! Postgres database (and DuckDB beside it) while writers run, `kill -9` of
//! the real process mid-snapshot and mid-stream, and every write mode with
//! values that are hard to carry (tabs, backslashes, quotes, newlines,
//! unicode, exact decimals, microseconds, arrays, JSON, unchanged TOAST).
//!
//! Each test has its own source and target databases and pipeline name.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::pg::{
    TestDb, docs_database, exec_in, kill_trials, position_lsn, spawn_bounded_writer, spawn_writer,
    write_docs,
};
use support::*;

const ACCOUNTS: &str = "CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    owner text NOT NULL,
    balance numeric(14,2) NOT NULL,
    version int NOT NULL DEFAULT 0,
    tags text[],
    updated timestamptz NOT NULL DEFAULT clock_timestamp(),
    doc jsonb)";

fn seed(db: &TestDb, rows: u64) {
    db.exec(ACCOUNTS);
    db.exec(&format!(
        "INSERT INTO accounts (id, owner, balance, tags, doc)
         SELECT i, 'owner ' || i, (i % 1000) * 1.25, ARRAY['t' || (i % 7)],
                jsonb_build_object('i', i, 'half', i / 2.0)
         FROM generate_series(1, {rows}) i"
    ));
    db.exec("ANALYZE accounts");
}

/// One writer transaction: inserts, updates and deletes across the key space.
fn write_once(db: &str, round: u64, max_id: u64) {
    let a = (round * 7919) % max_id + 1;
    let b = (round * 104_729) % max_id + 1;
    exec_in(db, &format!(
        "BEGIN;
         UPDATE accounts SET balance = balance + 1, version = version + 1, updated = clock_timestamp(),
                tags = array_append(tags, 'r{round}'), doc = doc || jsonb_build_object('r', {round})
             WHERE id BETWEEN {a} AND {a} + 20;
         DELETE FROM accounts WHERE id BETWEEN {b} AND {b} + 3;
         INSERT INTO accounts (id, owner, balance) VALUES ({new}, 'new {round}', {round}.50)
             ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, version = accounts.version + 1;
         COMMIT;",
        new = max_id + 1 + round
    ));
}

/// A pipeline from `src`'s `accounts` into `dst` (schema `sync`), plus a
/// DuckDB target `out.duckdb` when `with_duckdb`.
fn pipeline(
    name: &str,
    src: &TestDb,
    dst: &TestDb,
    extra_source: &str,
    with_duckdb: bool,
) -> String {
    let mut text = format!(
        "name = \"{name}\"
[sources.pg]
kind = \"postgres\"
database = \"{src}\"
heartbeat_secs = 1
{extra_source}
[[sources.pg.tables]]
name = \"accounts\"

[targets.warehouse]
kind = \"postgres\"
database = \"{dst}\"
schema = \"sync\"
inputs = [\"pg\"]
mode = \"upsert\"
",
        src = src.name,
        dst = dst.name
    );
    if with_duckdb {
        text.push_str(
            "
[targets.duck]
kind = \"duckdb\"
path = \"out.duckdb\"
inputs = [\"pg\"]
",
        );
    }
    text
}

/// The same query on the source table and the target table (same server,
/// so every value prints the same way when it is the same).
fn account_rows(db: &TestDb, table: &str) -> Vec<Vec<String>> {
    db.rows(&format!(
        "SELECT id, owner, balance, version, coalesce(array_to_string(tags, '|'), ''),
                updated, coalesce(doc::text, '') FROM {table} ORDER BY id"
    ))
}

fn assert_pg_in_sync(src: &TestDb, dst: &TestDb) {
    assert_eq!(
        dst.scalar("SELECT count(*) - count(DISTINCT id) FROM sync.accounts"),
        "0",
        "duplicate keys in the Postgres target"
    );
    assert_same_rows(
        "the Postgres target",
        &account_rows(src, "accounts"),
        &account_rows(dst, "sync.accounts"),
    );
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

fn assert_duck_in_sync(src: &TestDb, duck: &Path) {
    assert_eq!(
        duckdb_count(duck, "SELECT count(*) - count(DISTINCT id) FROM accounts"),
        0,
        "duplicate keys in the DuckDB target"
    );
    let expected = src.rows(
        "SELECT id, owner, balance, version, coalesce(array_to_string(tags, '|'), '') FROM accounts ORDER BY id",
    );
    assert_same_rows("the DuckDB target", &expected, &duck_rows(duck));
}

fn checkpoints(dst: &TestDb, schema: &str, pipeline: &str) -> Vec<Vec<String>> {
    dst.rows(&format!(
        "SELECT source, seq, position ->> 'slot' FROM {schema}._syncline_checkpoints
         WHERE pipeline = '{pipeline}'"
    ))
}

#[test]
fn postgres_to_postgres_snapshot_and_stream_with_concurrent_writers() {
    let src = TestDb::create("pgt_src");
    let dst = TestDb::create("pgt_dst");
    const ROWS: u64 = 30_000;
    seed(&src, ROWS);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline_file = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline_file,
        pipeline(
            "pgt_sync",
            &src,
            &dst,
            "chunk_rows = 3000\nbatch_rows = 1000",
            true,
        ),
    )
    .unwrap();
    let (code, out, err) = syncline(&["check", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("can create tables in schema sync"), "{out}");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.name.clone(), write_once, ROWS, stop.clone());
    let mut run = Running::start(&pipeline_file, &[]);
    run.wait_for("streaming", Duration::from_secs(180), |s| {
        s["tables"]["pg.accounts"]["phase"] == "streaming"
    });
    run.wait_for("streamed changes", Duration::from_secs(180), |s| {
        total(s, "updates") >= 2_000
    });
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    assert!(rounds > 10, "the writer ran only {rounds} transactions");
    let end = src.current_lsn();
    run.wait_for("every change applied", Duration::from_secs(180), |s| {
        position_lsn(s) >= end
    });
    assert_eq!(run.interrupt(), 0);

    assert_pg_in_sync(&src, &dst);
    assert_duck_in_sync(&src, &tmp.path().join("out.duckdb"));
    let rows: u64 = dst
        .scalar("SELECT count(*) FROM sync.accounts")
        .parse()
        .unwrap();
    assert!(rows > ROWS - 2_000, "only {rows} rows");
    let cp = checkpoints(&dst, "sync", "pgt_sync");
    assert_eq!(cp.len(), 1, "{cp:?}");
    assert_eq!(cp[0][0], "pg");
    assert!(cp[0][2].starts_with("syncline_pgt_sync"), "{cp:?}");
    // The key is the target's primary key.
    assert_eq!(
        dst.scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = 'sync.accounts'::regclass AND contype = 'p'"
        ),
        "PRIMARY KEY (id)"
    );
}

#[test]
fn postgres_target_crash_resume() {
    crash_resume("pgt_crash", false);
}

/// The same with a DuckDB target beside the Postgres one. After a kill the
/// two targets hold different checkpoints; the source resumes from the lower
/// one and numbers re-copied snapshot batches above the higher one, so the
/// target further ahead skips none of them.
#[test]
fn two_targets_crash_resume() {
    crash_resume("pgt_crash2", true);
}

fn crash_resume(name: &str, with_duckdb: bool) {
    let seed_value = fastrand::u64(..);
    eprintln!("kill points seed: {seed_value}");
    let mut rng = fastrand::Rng::with_seed(seed_value);
    let src = TestDb::create("pgt_crash_src");
    let dst = TestDb::create("pgt_crash_dst");
    const ROWS: u64 = 40_000;
    seed(&src, ROWS);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline_file = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline_file,
        pipeline(
            name,
            &src,
            &dst,
            "chunk_rows = 2000\nbatch_rows = 500",
            with_duckdb,
        ),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Held back while the pipeline is far behind, as in the kill trials.
    let writer = spawn_bounded_writer(src.name.clone(), write_once, ROWS, TRIALS_LAG, stop.clone());

    let mut kills = Vec::new();
    for round in 0..8 {
        let mut run = Running::start(&pipeline_file, &[]);
        let status = if round % 2 == 0 {
            // Mid-snapshot (or wherever the run is after a little progress).
            let n = rng.u64(1..8_000);
            run.wait_for("progress", Duration::from_secs(180), |s| {
                changes(s) >= n || s["tables"]["pg.accounts"]["phase"] == "streaming"
            })
        } else {
            // While streaming.
            let streaming = run.wait_for("streaming", Duration::from_secs(180), |s| {
                s["tables"]["pg.accounts"]["phase"] == "streaming"
            });
            let n = changes(&streaming) + rng.u64(1..300);
            run.wait_for("streamed changes", Duration::from_secs(180), |s| {
                changes(s) >= n
            })
        };
        run.kill9();
        let held = |cp: Vec<Vec<String>>| cp.first().map(|r| r[1].clone()).unwrap_or_default();
        let duck = if with_duckdb {
            format!(
                ", DuckDB holds seq {}",
                duckdb_count(
                    &tmp.path().join("out.duckdb"),
                    "SELECT coalesce(max(seq), 0) FROM _syncline_checkpoints"
                )
            )
        } else {
            String::new()
        };
        kills.push(format!(
            "{round}: {} after {} changes; Postgres holds seq {}{duck}",
            status["tables"]["pg.accounts"]["phase"],
            changes(&status),
            held(checkpoints(&dst, "sync", name)),
        ));
    }
    eprintln!("kill points:\n{}", kills.join("\n"));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let run = Running::start(&pipeline_file, &["--once"]);
    assert_eq!(run.wait(), 0);
    assert_pg_in_sync(&src, &dst);
    if with_duckdb {
        assert_duck_in_sync(&src, &tmp.path().join("out.duckdb"));
    }
    let cp = checkpoints(&dst, "sync", name);
    assert_eq!(cp.len(), 1, "{cp:?}");
    assert_eq!(cp[0][0], "pg");
    assert!(cp[0][1].parse::<u64>().unwrap() > 0, "{cp:?}");
    // No transaction of the killed runs is left behind.
    assert_eq!(
        dst.scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        ),
        "0"
    );

    // `drop` forgets the checkpoint and keeps the data.
    let rows = dst.scalar("SELECT count(*) FROM sync.accounts");
    let (code, out, err) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(checkpoints(&dst, "sync", name).is_empty());
    assert_eq!(dst.scalar("SELECT count(*) FROM sync.accounts"), rows);
    assert!(src.slots().is_empty(), "slots left: {:?}", src.slots());
}

const VALUES_TABLE: &str = r#"
    CREATE TABLE vals (
        id bigint PRIMARY KEY,
        t text,
        n numeric(20,6),
        f double precision,
        r real,
        b boolean,
        d date,
        tm time,
        ts timestamp,
        tstz timestamptz,
        iv interval,
        u uuid,
        j jsonb,
        bin bytea,
        ia int[],
        ta text[],
        na numeric(10,2)[],
        nu numeric,
        big text);
    -- md5 hex: pglz cannot shrink it below the TOAST threshold.
    CREATE FUNCTION big(seed text) RETURNS text LANGUAGE sql AS $$
        SELECT string_agg(md5(seed || i), '' ORDER BY i) FROM generate_series(1, 625) i $$;
    CREATE TABLE events (id int PRIMARY KEY, v text);
    INSERT INTO vals VALUES
    (1,
     E'tab\there back\\slash "dq" ''sq'' new\nline cr\r ünïcødé ✓ 🚀 \\N NULL',
     12345678901234.123456,
     1e-300,
     3.14,
     true,
     '0044-03-15 BC',
     '23:59:59.999999',
     '2024-02-29 12:34:56.789012',
     '2024-02-29 12:34:56.789012+02',
     '1 year 2 mons -3 days 04:05:06.000007',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     '{"k": "tab\there \\ \"q\" ✓", "n": [1, 2.50], "nested": {"a": null}}',
     '\x005c090aff',
     '{1,NULL,-3}',
     ARRAY[E'a\tb', 'NULL', NULL, '', 'say "hi"', E'back\\slash', '{x,y}'],
     '{1.10,NULL,-3.00}',
     12345678901234567890123456789012345678901234567890.000000000000000000001,
     big('one')),
    (2, '', -0.000001, 'NaN', '-Infinity', false, '1970-01-01', '00:00:00', 'infinity', '-infinity',
     '-1 mons -2 days -00:00:00.000001', '00000000-0000-0000-0000-000000000000', 'null', '\x',
     '{}', '{}', '{}', 'NaN', NULL),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL),
    (4, 'plain', 1, 1.5, 2.5, true, '2000-01-01', '12:00:00', '2000-01-01 00:00:00.000001',
     '1999-12-31 23:59:59.999999+00', '1 day', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '[1, "two"]',
     '\xdeadbeef', '{7}', '{"x"}', '{0.01}', 0.5, 'small');
    INSERT INTO events SELECT i, 'old ' || i FROM generate_series(1, 5) i;
"#;

/// Every value of `vals` as one line of JSON, each value in its text form.
fn vals_json(db: &TestDb, table: &str) -> String {
    db.scalar(&format!(
        "SELECT json_agg(x ORDER BY x.id)::text FROM (
            SELECT id, t, n::text AS n, f::text AS f, r::text AS r, b, d::text AS d, tm::text AS tm,
                   ts::text AS ts, tstz::text AS tstz, iv::text AS iv, u::text AS u, j::text AS j,
                   bin::text AS bin, ia::text AS ia, ta::text AS ta, na::text AS na, nu::text AS nu,
                   md5(big) AS big
            FROM {table}) x"
    ))
}

fn values_pipeline(name: &str, src: &TestDb, dst: &TestDb) -> String {
    let mut text = format!(
        "name = \"{name}\"
[sources.pg]
kind = \"postgres\"
database = \"{}\"
heartbeat_secs = 1
[[sources.pg.tables]]
name = \"vals\"
[[sources.pg.tables]]
name = \"events\"
",
        src.name
    );
    for (target, mode) in [("up", "upsert"), ("app", "append"), ("hist", "history")] {
        text.push_str(&format!(
            "
[targets.{target}]
kind = \"postgres\"
database = \"{}\"
schema = \"{target}\"
inputs = [\"pg\"]
mode = \"{mode}\"
",
            dst.name
        ));
    }
    text
}

fn run_once(dir: &Path) {
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], dir);
    assert_eq!(
        code, 0,
        "syncline run --once failed\nstdout:\n{out}\nstderr:\n{err}"
    );
}

/// A JSON string value printed by psql, decoded.
fn json_string(text: &str) -> String {
    serde_json::from_str::<String>(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn postgres_target_modes_and_types() {
    let src = TestDb::create("pgt_vals_src");
    let dst = TestDb::create("pgt_vals_dst");
    src.exec(VALUES_TABLE);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        values_pipeline("pgt_values", &src, &dst),
    )
    .unwrap();
    run_once(tmp.path());
    let snapshot = vals_json(&src, "vals");
    assert_eq!(vals_json(&dst, "up.vals"), snapshot);
    assert_eq!(vals_json(&dst, "app.vals"), snapshot);

    // Exact values, spelled out.
    let row = dst.rows(
        "SELECT to_json(t)::text, to_json(ta)::text, n::text, f::text, r::text, d::text, tm::text,
                ts::text, to_char(tstz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), iv::text,
                j::text, bin::text, ia::text, na::text, nu::text, length(big)
         FROM up.vals WHERE id = 1",
    );
    let row = &row[0];
    assert_eq!(
        json_string(&row[0]),
        "tab\there back\\slash \"dq\" 'sq' new\nline cr\r ünïcødé ✓ 🚀 \\N NULL"
    );
    assert_eq!(
        row[1],
        r#"["a\tb","NULL",null,"","say \"hi\"","back\\slash","{x,y}"]"#
    );
    assert_eq!(
        row[2..],
        [
            "12345678901234.123456",
            "1e-300",
            "3.14",
            "0044-03-15 BC",
            "23:59:59.999999",
            "2024-02-29 12:34:56.789012",
            "2024-02-29 10:34:56.789012",
            "1 year 2 mons -3 days +04:05:06.000007",
            r#"{"k": "tab\there \\ \"q\" ✓", "n": [1, 2.50], "nested": {"a": null}}"#,
            "\\x005c090aff",
            "{1,NULL,-3}",
            "{1.10,NULL,-3.00}",
            "12345678901234567890123456789012345678901234567890.000000000000000000001",
            "20000",
        ]
    );
    assert_eq!(
        dst.rows("SELECT t IS NULL, n IS NULL, ta IS NULL, big IS NULL FROM up.vals WHERE id = 3"),
        [["t", "t", "t", "t"]]
    );
    assert_eq!(
        dst.rows(
            "SELECT t = '', f::text, r::text, ts::text, ta::text, j::text FROM up.vals WHERE id = 2"
        ),
        [["t", "NaN", "-Infinity", "infinity", "{}", "null"]]
    );
    // The type map, for every mode.
    for schema in ["up", "app", "hist"] {
        let types: Vec<String> = dst
            .rows(&format!(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = '{schema}.vals'::regclass AND attnum > 0 AND NOT attisdropped
                 ORDER BY attnum"
            ))
            .into_iter()
            .map(|r| format!("{} {}", r[0], r[1]))
            .collect();
        let mut expected = if schema == "hist" {
            vec![
                "_op text",
                "_seq bigint",
                "_commit_time timestamp with time zone",
                "_synced_at timestamp with time zone",
            ]
        } else {
            vec![]
        };
        expected.extend([
            "id bigint",
            "t text",
            "n numeric(20,6)",
            "f double precision",
            "r double precision",
            "b boolean",
            "d date",
            "tm time without time zone",
            "ts timestamp without time zone",
            "tstz timestamp with time zone",
            "iv interval",
            "u uuid",
            "j jsonb",
            "bin bytea",
            "ia integer[]",
            "ta text[]",
            "na numeric(10,2)[]",
            "nu text",
            "big text",
        ]);
        assert_eq!(types, expected, "{schema}");
    }

    // Changes, one transaction each, then several in one.
    src.exec("UPDATE vals SET n = n + 1 WHERE id = 1"); // big: unchanged TOAST
    src.exec(
        r#"INSERT INTO vals (id, t, n, ta, j, big) VALUES
           (100, E'new\trow\\ \u00e9', 0.000001, ARRAY[E'x\ny', '"'], '{"a": "\\u00e9"}', big('hundred'))"#,
    );
    src.exec("DELETE FROM vals WHERE id = 2");
    src.exec(r"UPDATE vals SET t = E'changed\\\ttext' WHERE id = 3");
    src.exec(
        "BEGIN;
         UPDATE vals SET n = 42 WHERE id = 100;
         DELETE FROM vals WHERE id = 4;
         TRUNCATE events;
         INSERT INTO events VALUES (10, 'after truncate');
         COMMIT;",
    );
    run_once(tmp.path());

    // Upsert: the target equals the source.
    assert_eq!(vals_json(&dst, "up.vals"), vals_json(&src, "vals"));
    assert_eq!(
        dst.rows("SELECT id, v FROM up.events ORDER BY id"),
        [["10", "after truncate"]]
    );
    // The value pgoutput left out of the update is the one the target held.
    assert_eq!(
        dst.scalar("SELECT md5(big) FROM up.vals WHERE id = 1"),
        src.scalar("SELECT md5(big('one'))")
    );

    // Append: every insert and update, in order; the unchanged TOAST value
    // comes from the row appended before.
    assert_eq!(
        dst.rows(
            "SELECT id, coalesce(n::text, '-'), coalesce(md5(big), '-') FROM app.vals ORDER BY ctid"
        ),
        [
            [
                "1",
                "12345678901234.123456",
                &src.scalar("SELECT md5(big('one'))")
            ],
            ["2", "-0.000001", "-"],
            ["3", "-", "-"],
            ["4", "1.000000", &src.scalar("SELECT md5('small')")],
            [
                "1",
                "12345678901235.123456",
                &src.scalar("SELECT md5(big('one'))")
            ],
            ["100", "0.000001", &src.scalar("SELECT md5(big('hundred'))")],
            ["3", "-", "-"],
            [
                "100",
                "42.000000",
                &src.scalar("SELECT md5(big('hundred'))")
            ],
        ]
    );
    assert_eq!(
        dst.rows("SELECT id, v FROM app.events ORDER BY id"),
        [["10", "after truncate"]]
    );

    // History: every change with its operation, in order.
    let streamed = dst.rows(
        "SELECT _op, coalesce(id::text, '-'), coalesce(n::text, '-'), coalesce(to_json(t)::text, '-'),
                coalesce(md5(big), '-'), (_commit_time IS NOT NULL)::text
         FROM hist.vals WHERE _seq > (SELECT min(_seq) FROM hist.vals)
         ORDER BY _seq, ctid",
    );
    let md5 = |seed: &str| src.scalar(&format!("SELECT md5(big('{seed}'))"));
    let tricky = r#""tab\there back\\slash \"dq\" 'sq' new\nline cr\r ünïcødé ✓ 🚀 \\N NULL""#;
    assert_eq!(
        streamed,
        [
            [
                "u",
                "1",
                "12345678901235.123456",
                tricky,
                &md5("one"),
                "true"
            ],
            [
                "i",
                "100",
                "0.000001",
                r#""new\trow\\ é""#,
                &md5("hundred"),
                "true"
            ],
            ["d", "2", "-", "-", "-", "true"],
            ["u", "3", "-", r#""changed\\\ttext""#, "-", "true"],
            [
                "u",
                "100",
                "42.000000",
                r#""new\trow\\ é""#,
                &md5("hundred"),
                "true"
            ],
            ["d", "4", "-", "-", "-", "true"],
        ]
    );
    assert_eq!(
        dst.scalar("SELECT count(*) FROM hist.vals WHERE _op = 'i' AND id <> 100"),
        "4",
        "the snapshot rows"
    );
    assert_eq!(
        dst.rows("SELECT _op, coalesce(id::text, '-'), coalesce(v, '-') FROM hist.events ORDER BY _seq, ctid"),
        [
            ["i", "1", "old 1"],
            ["i", "2", "old 2"],
            ["i", "3", "old 3"],
            ["i", "4", "old 4"],
            ["i", "5", "old 5"],
            ["t", "-", "-"],
            ["i", "10", "after truncate"],
        ]
    );
    // One checkpoint per target, none of them behind.
    for schema in ["up", "app", "hist"] {
        assert_eq!(checkpoints(&dst, schema, "pgt_values").len(), 1, "{schema}");
    }
    assert_eq!(
        dst.scalar(
            "SELECT count(DISTINCT seq) FROM (
                 SELECT seq FROM up._syncline_checkpoints UNION ALL
                 SELECT seq FROM app._syncline_checkpoints UNION ALL
                 SELECT seq FROM hist._syncline_checkpoints) s"
        ),
        "1"
    );

    // A run with nothing new changes nothing.
    let before = dst.scalar("SELECT count(*) FROM hist.vals");
    run_once(tmp.path());
    assert_eq!(dst.scalar("SELECT count(*) FROM hist.vals"), before);
    assert_eq!(vals_json(&dst, "up.vals"), vals_json(&src, "vals"));
}

/// Updates that change a row's key and leave a TOASTed value alone: pgoutput
/// leaves the value out, and both targets carry it over from the row's old
/// key — across transactions, through a swap of two keys via a temporary
/// one, and through a move followed by more updates of the moved row in
/// the same transaction.
#[test]
fn unchanged_toast_values_follow_key_changes_into_both_targets() {
    let src = TestDb::create("pgt_toastkey_src");
    let dst = TestDb::create("pgt_toastkey_dst");
    src.exec(
        "CREATE TABLE docs (id int PRIMARY KEY, n int NOT NULL, big text NOT NULL);
         -- md5 hex: pglz cannot shrink it below the TOAST threshold.
         CREATE FUNCTION big(seed text) RETURNS text LANGUAGE sql AS $$
           SELECT string_agg(md5(seed || i), '' ORDER BY i) FROM generate_series(1, 200) i $$;
         INSERT INTO docs SELECT i, 0, big('doc ' || i) FROM generate_series(1, 6) i;",
    );
    assert!(
        src.scalar("SELECT min(pg_column_size(big)) FROM docs")
            .parse::<u32>()
            .unwrap()
            > 2100,
        "not toasted"
    );
    let tmp = tempfile::tempdir().unwrap();
    let text = pg_and_duck_pipeline("pgt_toastkey", &src, &dst, "docs", "");
    std::fs::write(tmp.path().join("p.toml"), text).unwrap();
    run_once(tmp.path());

    src.exec("UPDATE docs SET id = 10 WHERE id = 1");
    src.exec(
        "BEGIN;
         UPDATE docs SET id = 99 WHERE id = 2;
         UPDATE docs SET id = 2 WHERE id = 3;
         UPDATE docs SET id = 3 WHERE id = 99;
         UPDATE docs SET n = n + 1 WHERE id = 10;
         COMMIT;",
    );
    src.exec(
        "BEGIN;
         UPDATE docs SET id = 40 WHERE id = 4;
         UPDATE docs SET id = 41, n = 7 WHERE id = 40;
         UPDATE docs SET n = n + 1 WHERE id = 41;
         UPDATE docs SET id = 50 WHERE id = 5;
         COMMIT;",
    );
    src.exec("UPDATE docs SET id = 51 WHERE id = 50");
    run_once(tmp.path());

    let query = "SELECT id, n, md5(big) FROM {} ORDER BY id";
    let expected = src.rows(&query.replace("{}", "docs"));
    assert_eq!(expected.len(), 6);
    assert_same_rows(
        "the Postgres target",
        &expected,
        &dst.rows(&query.replace("{}", "sync.docs")),
    );
    let conn = duckdb::Connection::open(tmp.path().join("out.duckdb")).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(id AS VARCHAR), CAST(n AS VARCHAR), md5(big) FROM docs ORDER BY id")
        .unwrap();
    let duck: Vec<Vec<String>> = stmt
        .query_map([], |r| (0..3).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_same_rows("the DuckDB target", &expected, &duck);
}

/// A pipeline `name` from `src`'s `table` into `dst` (schema `sync`) and a
/// DuckDB file `out.duckdb`, in upsert mode; `extra` goes into the source.
fn pg_and_duck_pipeline(
    name: &str,
    src: &TestDb,
    dst: &TestDb,
    table: &str,
    extra: &str,
) -> String {
    format!(
        "name = \"{name}\"
[sources.pg]
kind = \"postgres\"
database = \"{src}\"
heartbeat_secs = 1
{extra}
[[sources.pg.tables]]
name = \"{table}\"

[targets.warehouse]
kind = \"postgres\"
database = \"{dst}\"
schema = \"sync\"
inputs = [\"pg\"]

[targets.duck]
kind = \"duckdb\"
path = \"out.duckdb\"
inputs = [\"pg\"]
",
        src = src.name,
        dst = dst.name
    )
}

/// Every row of `sql` on the DuckDB file at `path`, its first `n` columns
/// as text (NULL as empty).
fn duck_text_rows(path: &Path, sql: &str, n: usize) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Special values from a Postgres source: a NaN `numeric(p,s)` is stored by
/// the Postgres target and becomes a dead letter of its row in DuckDB (whose
/// DECIMAL has no NaN), never a NULL; `infinity` and `-infinity` dates and
/// timestamps arrive as themselves in both. Through the snapshot and the
/// stream.
#[test]
fn special_values_reach_each_target_or_its_dead_letters() {
    let src = TestDb::create("special_src");
    let dst = TestDb::create("special_dst");
    src.exec(
        "CREATE TABLE odd (id int PRIMARY KEY, amount numeric(10,2), day date, seen timestamp)",
    );
    let rows = |base: i32| {
        format!(
            "INSERT INTO odd VALUES
                ({}, 1.50, '2024-01-02', '2024-01-02 03:04:05'),
                ({}, 'NaN', '2024-01-03', NULL),
                ({}, 2, 'infinity', '-infinity'),
                ({}, 3, '-infinity', 'infinity')",
            base + 1,
            base + 2,
            base + 3,
            base + 4
        )
    };
    src.exec(&rows(0));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        pg_and_duck_pipeline("special", &src, &dst, "odd", ""),
    )
    .unwrap();
    run_once(tmp.path());
    src.exec(&rows(10));
    run_once(tmp.path());

    let select = "SELECT id::text, amount::text, day::text, seen::text FROM";
    let expected = src.rows(&format!("{select} odd ORDER BY odd.id"));
    assert_eq!(expected.len(), 8);
    assert_eq!(
        dst.rows(&format!("{select} sync.odd ORDER BY odd.id")),
        expected,
        "the Postgres target holds every row as the source has it"
    );
    let duck = duck_text_rows(
        &tmp.path().join("out.duckdb"),
        "SELECT CAST(id AS VARCHAR), CAST(amount AS VARCHAR), CAST(day AS VARCHAR), CAST(seen AS VARCHAR)
         FROM odd ORDER BY id",
        4,
    );
    let without_nan: Vec<Vec<String>> =
        expected.iter().filter(|r| r[1] != "NaN").cloned().collect();
    assert_eq!(duck, without_nan, "DuckDB holds every row but the NaN ones");

    let (code, stdout, stderr) = syncline(
        &["dlq", "list", "p.toml", "--json", "--target", "duck"],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kept = listed[0]["rows"].as_array().unwrap();
    assert_eq!(kept.len(), 2, "{stdout}");
    for r in kept {
        assert_eq!(r["stage"], "target", "{r}");
        assert!(r["reason"].as_str().unwrap().contains("NaN"), "{r}");
    }
    let (code, stdout, stderr) = syncline(
        &["dlq", "list", "p.toml", "--json", "--target", "warehouse"],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("\"reason\""), "{stdout}");
}

/// How far (bytes of WAL) the kill trials' writer lets the pipeline fall
/// behind before it waits: a few hundred of its transactions.
const TRIALS_LAG: u64 = 8 << 20;

/// `kill -9` trials of a Postgres → Postgres + DuckDB pipeline under a
/// concurrent writer of every kind of change (key changes and swaps with
/// unchanged TOASTed values, deletes, inserts, truncates): each trial
/// starts the real binary, lets it run to a random point (mid-snapshot,
/// catch-up or stream) and kills it. Source transactions of more than 64
/// changes (the writer's truncates with their 200 inserts) go to the
/// targets in parts (`transaction_rows = 64`), so kills land between parts
/// too; the writer's other transactions (about 25 changes) stay whole.
/// The writer holds back while the pipeline is more than [`TRIALS_LAG`]
/// behind: a writer running flat out gains on a pipeline that restarts
/// every few seconds, and every trial took longer than the one before.
/// Afterwards one run catches up and both targets equal the source row by
/// row. `SYNCLINE_KILL_TRIALS` sets how many trials (10 by default;
/// `SYNCLINE_KILL_TRIALS=100` for the long run).
#[test]
fn kill_9_trials_with_key_changes_toast_and_truncates_leave_both_targets_equal() {
    let (trials, mut rng) = kill_trials();
    const ROWS: u64 = 3_000;
    let src = docs_database("trials_src", ROWS);
    let dst = TestDb::create("trials_dst");
    let tmp = tempfile::tempdir().unwrap();
    let pipeline_file = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline_file,
        pg_and_duck_pipeline(
            "trials",
            &src,
            &dst,
            "docs",
            "chunk_rows = 500\nbatch_rows = 300\ntransaction_rows = 64",
        ),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_bounded_writer(src.name.clone(), write_docs, ROWS, TRIALS_LAG, stop.clone());
    let mut kills = Vec::new();
    for trial in 0..trials {
        let status = kill_after_progress(&pipeline_file, &mut rng);
        let held = |rows: Vec<Vec<String>>| rows.first().map(|r| r[0].clone()).unwrap_or_default();
        kills.push(format!(
            "{trial}: {} after {} changes; held: postgres {}, duckdb {}",
            status["tables"]["pg.docs"]["phase"],
            changes(&status),
            held(dst.rows("SELECT seq::text FROM sync._syncline_checkpoints")),
            held(duck_text_rows(
                &tmp.path().join("out.duckdb"),
                "SELECT CAST(seq AS VARCHAR) FROM _syncline_checkpoints",
                1
            )),
        ));
        // Each as it happens: a restart that fails leaves the kills before
        // it in the log.
        eprintln!("kill {}", kills.last().map_or("", String::as_str));
    }
    eprintln!("kill points:\n{}", kills.join("\n"));
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    eprintln!("{trials} trials, {rounds} writer transactions");

    let run = Running::start(&pipeline_file, &["--once"]);
    assert_eq!(run.wait(), 0);
    let select = "SELECT id::text, rev::text, coalesce(note, ''), md5(body) FROM";
    let expected = src.rows(&format!("{select} docs ORDER BY docs.id"));
    assert_same_rows(
        "the Postgres target",
        &expected,
        &dst.rows(&format!("{select} sync.docs ORDER BY docs.id")),
    );
    let out = tmp.path().join("out.duckdb");
    let duck = duck_text_rows(
        &out,
        "SELECT CAST(id AS VARCHAR), CAST(rev AS VARCHAR), coalesce(note, ''), md5(body)
         FROM docs ORDER BY id",
        4,
    );
    assert_same_rows("the DuckDB target", &expected, &duck);
    // Every change of the writer is valid: nothing may be set aside, in
    // particular no moved row whose TOASTed value a target could not find
    // (a resumed snapshot replays the log before its copy, never onto a
    // later state).
    let mut kept: Vec<Vec<String>> = duck_text_rows(
        &out,
        "SELECT 'duckdb', CAST(seq AS VARCHAR), origin, reason FROM _syncline_dead_letters ORDER BY seq",
        4,
    );
    kept.extend(dst.rows(
        "SELECT 'postgres', seq::text, origin, reason FROM sync._syncline_dead_letters ORDER BY seq",
    ));
    eprintln!("{} rows set aside in the two targets:", kept.len());
    for k in &kept {
        eprintln!("  {} seq {} ({}): {}", k[0], k[1], k[2], k[3]);
    }
    assert!(
        kept.is_empty(),
        "{} rows set aside (kill points and dead letters above)",
        kept.len()
    );
}

/// Waits until a connection to `db` other than the test's own holds a
/// transaction that wrote something and has been open for longer than
/// `age_ms` (`open`), or until there is no such transaction at all (not
/// `open`): a target transaction the pipeline keeps open across the parts
/// of a source transaction, or its end.
fn wait_for_open_write(db: &TestDb, age_ms: u64, open: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let found = db.scalar(&format!(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_xid IS NOT NULL
               AND now() - xact_start > interval '{age_ms} milliseconds'"
        ));
        if (found != "0") == open {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited in vain for a target transaction open for {age_ms} ms to be {}",
            if open { "there" } else { "gone" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A source transaction far larger than `transaction_rows` (inserts,
/// updates of every earlier row, deletes, key changes) reaches each target
/// in parts applied in one target transaction: `kill -9` while the parts
/// are applied (twice: the second run starts the transaction over) leaves
/// each target with all of it or none of it, never part, and the run
/// after it ends with both targets equal to the source row by row.
#[test]
fn a_transaction_larger_than_memory_commits_whole_or_not_at_all() {
    let src = TestDb::create("bigtx_src");
    let dst = TestDb::create("bigtx_dst");
    seed(&src, 1000);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    std::fs::write(
        &file,
        pipeline("bigtx", &src, &dst, "transaction_rows = 2000", true),
    )
    .unwrap();
    run_once(tmp.path());
    assert_pg_in_sync(&src, &dst);
    let mut run = Running::start(&file, &[]);
    run.wait_for("streaming", Duration::from_secs(60), |s| {
        s["tables"]["pg.accounts"]["phase"] == "streaming"
    });
    src.exec(
        "BEGIN;
         INSERT INTO accounts (id, owner, balance)
             SELECT i, 'bulk ' || i, (i % 100) * 1.5 FROM generate_series(1001, 151000) i;
         UPDATE accounts SET version = version + 1, balance = balance + 1 WHERE id <= 1000;
         DELETE FROM accounts WHERE id > 1000 AND id % 10 = 0;
         UPDATE accounts SET id = id + 1000000 WHERE id BETWEEN 500 AND 520;
         COMMIT;",
    );
    let after: i64 = src.scalar("SELECT count(*) FROM accounts").parse().unwrap();
    for round in 0..2 {
        wait_for_open_write(&dst, 300, true);
        run.kill9();
        // The server rolls back the killed process's transaction.
        wait_for_open_write(&dst, 0, false);
        let held: i64 = dst
            .scalar("SELECT count(*) FROM sync.accounts")
            .parse()
            .unwrap();
        let duck = duckdb_count(
            &tmp.path().join("out.duckdb"),
            "SELECT count(*) FROM accounts",
        );
        eprintln!("round {round}: killed with {held} rows in Postgres, {duck} in DuckDB");
        for (target, rows) in [("Postgres", held), ("DuckDB", duck)] {
            assert!(
                rows == 1000 || rows == after,
                "round {round}: the {target} target holds {rows} rows: part of a transaction (before: 1000, after: {after})"
            );
        }
        if round == 0 {
            run = Running::start(&file, &[]);
        } else {
            break;
        }
    }
    run_once(tmp.path());
    assert_pg_in_sync(&src, &dst);
    assert_duck_in_sync(&src, &tmp.path().join("out.duckdb"));
}
