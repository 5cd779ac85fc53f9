//! Postgres source end to end, value by value: every supported type through
//! both the snapshot (binary COPY) and the stream (binary pgoutput), unchanged
//! TOAST values, TRUNCATE, added columns, tables without a key, and `drop`.
//!
//! Each test gets its own database, temp folder and pipeline name, and drives
//! the real binary with `syncline run --once`.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;
use support::pg::TestDb;
use support::{Running, changes, duckdb_count, duckdb_rows, syncline};

/// `syncline run --once p.toml` in `dir`, which must succeed.
fn run_once(dir: &Path) {
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], dir);
    assert_eq!(
        code, 0,
        "syncline run --once failed\nstdout:\n{out}\nstderr:\n{err}"
    );
}

/// Writes `dir/p.toml`.
fn write_pipeline(dir: &Path, text: &str) {
    std::fs::write(dir.join("p.toml"), text).unwrap();
}

/// The table's counters from the status the last run left behind.
fn last_run(dir: &Path, pipeline: &str, table: &str) -> Json {
    let path = dir.join(".syncline").join(pipeline).join("status.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let file: Json = serde_json::from_str(&text).unwrap();
    file["status"]["tables"][format!("pg.{table}")].clone()
}

fn counter(status: &Json, field: &str) -> u64 {
    status[field].as_u64().unwrap_or(0)
}

/// A DuckDB connection whose text form of TIMESTAMPTZ is UTC.
fn duck(dir: &Path) -> duckdb::Connection {
    let conn = duckdb::Connection::open(dir.join("out.duckdb")).unwrap();
    conn.execute_batch("SET TimeZone = 'UTC'").unwrap();
    conn
}

/// Every row of a query, each value as text (`None` for NULL).
fn duck_query(conn: &duckdb::Connection, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let n = row.as_ref().column_count();
        out.push(
            (0..n)
                .map(|i| row.get::<_, Option<String>>(i).unwrap())
                .collect(),
        );
    }
    out
}

/// `(name, type)` of a DuckDB table's columns, in order.
fn duck_columns(conn: &duckdb::Connection, table: &str) -> Vec<(String, String)> {
    duck_query(
        conn,
        &format!(
            "SELECT column_name, data_type FROM information_schema.columns
             WHERE table_name = '{table}' ORDER BY ordinal_position"
        ),
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

const ALL_TYPES: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
    CREATE TABLE alltypes (
        id bigint PRIMARY KEY,
        c_smallint smallint,
        c_integer integer,
        c_bigint bigint,
        c_real real,
        c_double double precision,
        c_numeric_12_2 numeric(12,2),
        c_numeric_38_10 numeric(38,10),
        c_numeric numeric,
        c_text text,
        c_varchar varchar(20),
        c_char char(3),
        c_bool bool,
        c_date date,
        c_time time,
        c_timestamp timestamp,
        c_timestamptz timestamptz,
        c_interval interval,
        c_uuid uuid,
        c_json json,
        c_jsonb jsonb,
        c_bytea bytea,
        c_int_array int[],
        c_text_array text[],
        c_numeric_array numeric(10,2)[],
        c_enum mood,
        c_domain positive,
        c_timetz timetz,
        c_oid oid)";

/// One row with a value in every column; the same values for every `id`.
fn full_row(id: i64) -> String {
    format!(
        "INSERT INTO alltypes VALUES (
            {id},
            -32768,
            2147483647,
            -9223372036854775808,
            3.14,
            2.718281828459045,
            -1234567890.12,
            1234567890123456789012345678.0123456789,
            12345678901234567890123456789012345678901234567890.000000000000000000001,
            E'h\u{e9}llo \u{2713}\\nsecond line',
            'varchar value',
            'ab',
            true,
            '2024-02-29',
            '23:59:59.999999',
            '2024-02-29 12:34:56.789012',
            '2024-02-29 12:34:56.789012+02',
            '1 year 2 mons 3 days 04:05:06.789',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
            '{{\"b\": 1,  \"a\": [1, 2.50]}}',
            '{{\"b\": 1,  \"a\": [1, 2.50], \"s\": \"x\\\"y\"}}',
            '\\x00ff10',
            '{{1,2,NULL,-3}}',
            ARRAY['say \"hi\"', 'a,b', 'it''s', NULL, ''],
            '{{1.10,2.25,-3.00}}',
            'happy',
            42,
            '12:34:56.789012-05:30',
            4000000000)"
    )
}

/// One row of edge values (special floats and numerics, empty values,
/// infinities, times before both epochs, flattened 2-D arrays).
fn edge_row(id: i64) -> String {
    format!(
        "INSERT INTO alltypes VALUES (
            {id},
            0,
            -1,
            9223372036854775807,
            '-Infinity',
            'NaN',
            0,
            -0.0000000001,
            'NaN',
            '',
            'x',
            '',
            false,
            '1969-12-31',
            '00:00:00',
            '1969-12-31 23:59:59.999999',
            'infinity',
            '-1 mons -2 days -00:00:00.000001',
            '00000000-0000-0000-0000-000000000000',
            '[]',
            'null',
            '',
            '{{}}',
            '{{{{a,b}},{{\"c,d\",NULL}}}}',
            '{{NULL}}',
            'sad',
            1,
            '00:00:00+00',
            0)"
    )
}

#[test]
fn every_type_maps_exactly() {
    let db = TestDb::create("types");
    db.exec(ALL_TYPES);
    // Snapshot rows: one full, one all NULL, one of edge values.
    db.exec(&full_row(1));
    db.exec("INSERT INTO alltypes (id) VALUES (3)");
    db.exec(&edge_row(5));
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        &db.pipeline("types_every", &["alltypes"], "", "upsert"),
    );
    run_once(dir.path());
    let first = last_run(dir.path(), "types_every", "alltypes");
    assert_eq!(counter(&first, "snapshot_done"), 3, "{first}");

    // Stream rows: the same three again.
    db.exec(&full_row(2));
    db.exec("INSERT INTO alltypes (id) VALUES (4)");
    db.exec(&edge_row(6));
    run_once(dir.path());
    let second = last_run(dir.path(), "types_every", "alltypes");
    assert_eq!(counter(&second, "snapshot_done"), 0, "{second}");
    assert_eq!(counter(&second, "inserts"), 3, "{second}");

    let conn = duck(dir.path());
    let columns = duck_columns(&conn, "alltypes");
    let select: Vec<String> = columns
        .iter()
        .map(|(c, _)| format!("CAST(\"{c}\" AS VARCHAR)"))
        .collect();
    let rows = duck_query(
        &conn,
        &format!("SELECT {} FROM alltypes ORDER BY id", select.join(", ")),
    );
    assert_eq!(rows.len(), 6);

    // Identical inputs decode identically through COPY and pgoutput.
    for (snap, stream) in [(0, 1), (2, 3), (4, 5)] {
        for (i, (name, _)) in columns.iter().enumerate().skip(1) {
            assert_eq!(
                rows[snap][i], rows[stream][i],
                "{name}: snapshot and stream rows differ"
            );
        }
    }
    assert!(
        rows[2][1..].iter().all(Option::is_none),
        "the NULL row has values: {:?}",
        rows[2]
    );

    let show = |v: &Option<String>| v.as_ref().map_or("NULL".to_owned(), |s| format!("{s:?}"));
    let mut text = String::new();
    for (i, (name, ty)) in columns.iter().enumerate() {
        text.push_str(&format!(
            "{name:<16} {ty:<15} values={}  edges={}  nulls={}\n",
            show(&rows[0][i]),
            show(&rows[4][i]),
            show(&rows[2][i])
        ));
    }
    insta::assert_snapshot!(text);

    // A few values checked against Postgres's own text form.
    let pg = db.rows(
        "SELECT c_numeric::text, c_numeric_38_10::text, to_char(c_timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),
                c_text_array[1], c_text_array[2], c_text_array[3]
         FROM alltypes WHERE id = 1",
    );
    let duck_values = duck_query(
        &conn,
        "SELECT c_numeric, CAST(c_numeric_38_10 AS VARCHAR), strftime(c_timestamptz, '%Y-%m-%d %H:%M:%S.%f'),
                c_text_array[1], c_text_array[2], c_text_array[3]
         FROM alltypes WHERE id = 2",
    );
    let duck_values: Vec<String> = duck_values[0].iter().map(|v| v.clone().unwrap()).collect();
    assert_eq!(duck_values, pg[0]);
}

/// Every big column of `docs` as text both databases print alike.
const DOCS_PG: &str = "
    SELECT id, counter, length(body), md5(body),
           md5(array_to_string(tags, ',')),
           md5(array_to_string(embedding::numeric(20,4)[], ',')),
           md5(array_to_string(amounts, ',')),
           md5((SELECT string_agg(encode(b, 'hex'), ',' ORDER BY o) FROM unnest(blobs) WITH ORDINALITY u(b, o))),
           md5(array_to_string(attrs, ','))
    FROM docs ORDER BY id";
const DOCS_DUCK: &str = "
    SELECT CAST(id AS VARCHAR), CAST(counter AS VARCHAR), CAST(length(body) AS VARCHAR), md5(body),
           md5(array_to_string(tags, ',')),
           md5(array_to_string(list_transform(embedding, x -> CAST(CAST(x AS DECIMAL(20,4)) AS VARCHAR)), ',')),
           md5(array_to_string(amounts, ',')),
           md5(array_to_string(list_transform(blobs, x -> lower(hex(x))), ',')),
           md5(array_to_string(list_transform(attrs, x -> CAST(x AS VARCHAR)), ','))
    FROM docs ORDER BY id";

#[test]
fn unchanged_toast_values_are_kept() {
    let db = TestDb::create("toast");
    db.exec(
        "CREATE TABLE docs (
             id int PRIMARY KEY,
             counter int NOT NULL,
             body text,
             tags text[],
             embedding float8[],
             amounts numeric(38,10)[],
             blobs bytea[],
             attrs jsonb[]);
         -- md5 hex and hashes: pglz cannot shrink them below the TOAST
         -- threshold, so every big column is stored out of line.
         CREATE FUNCTION doc(id int, seed text) RETURNS docs LANGUAGE sql AS $$
           SELECT id, 0,
             (SELECT string_agg(md5(seed || i), '' ORDER BY i) FROM generate_series(1, 625) i),
             (SELECT array_agg(md5(seed || i) ORDER BY i) FROM generate_series(1, 700) i),
             (SELECT array_agg(hashtext(seed || i) / 1000.0 ORDER BY i) FROM generate_series(1, 1500) i),
             (SELECT array_agg(hashtext(seed || i)::numeric * 100 + i / 1e10 ORDER BY i) FROM generate_series(1, 600) i),
             (SELECT array_agg(decode(md5(seed || i), 'hex') ORDER BY i) FROM generate_series(1, 400) i),
             (SELECT array_agg(jsonb_build_object('k', md5(seed || i), 'n', i) ORDER BY i) FROM generate_series(1, 300) i)
         $$;
         INSERT INTO docs SELECT (doc(1, 'one')).*;
         INSERT INTO docs SELECT (doc(2, 'two')).*;",
    );
    // The values really live in the TOAST table.
    let sizes = db.rows(
        "SELECT pg_column_size(body), pg_column_size(tags), pg_column_size(embedding),
                pg_column_size(amounts), pg_column_size(blobs), pg_column_size(attrs) FROM docs",
    );
    for size in sizes.iter().flatten() {
        assert!(
            size.parse::<u32>().unwrap() > 2100,
            "not toasted: {sizes:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        &db.pipeline("types_toast", &["docs"], "", "upsert"),
    );
    run_once(dir.path());

    // Updates that leave the big values alone: pgoutput leaves them out.
    db.exec("UPDATE docs SET counter = counter + 1 WHERE id = 1");
    // Several in one transaction, one changing a big value too, and an insert
    // updated in the same transaction.
    db.exec(
        "BEGIN;
         UPDATE docs SET counter = counter + 1 WHERE id = 2;
         UPDATE docs SET counter = counter + 1, tags = tags[1:3] WHERE id = 2;
         UPDATE docs SET counter = counter + 1 WHERE id = 2;
         INSERT INTO docs SELECT (doc(3, 'three')).*;
         UPDATE docs SET counter = counter + 5 WHERE id = 3;
         COMMIT;",
    );
    run_once(dir.path());
    let status = last_run(dir.path(), "types_toast", "docs");
    assert_eq!(counter(&status, "updates"), 5, "{status}");

    let expected = db.rows(DOCS_PG);
    let conn = duck(dir.path());
    let actual: Vec<Vec<String>> = duck_query(&conn, DOCS_DUCK)
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect();
    assert_eq!(actual, expected);
    assert!(expected.iter().all(|r| r[2] == "20000"), "{expected:?}");
    assert_eq!(
        duck_query(
            &conn,
            "SELECT CAST(len(tags) AS VARCHAR) FROM docs ORDER BY id"
        ),
        [
            [Some("700".to_owned())],
            [Some("3".to_owned())],
            [Some("700".to_owned())]
        ]
    );
}

#[test]
fn truncate_is_applied() {
    let db = TestDb::create("trunc");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT i, 'old ' || i FROM generate_series(1, 50) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        &db.pipeline("types_truncate", &["t"], "", "upsert"),
    );
    run_once(dir.path());
    assert_eq!(
        duckdb_count(&dir.path().join("out.duckdb"), "SELECT count(*) FROM t"),
        50
    );

    // TRUNCATE alone, then new rows in a later transaction.
    db.exec("TRUNCATE t");
    db.exec("INSERT INTO t VALUES (100, 'new 100'), (101, 'new 101')");
    run_once(dir.path());
    let (rows, count) = duckdb_rows(&dir.path().join("out.duckdb"), "t");
    assert_eq!(count, 2, "{rows:?}");
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["100", "101"]);
    assert_eq!(rows["101"], ["101", "new 101"]);

    // Rows before and after a TRUNCATE in one transaction: only the later stay.
    db.exec(
        "BEGIN;
         INSERT INTO t VALUES (200, 'gone');
         UPDATE t SET v = 'gone too' WHERE id = 100;
         TRUNCATE t;
         INSERT INTO t VALUES (201, 'kept'), (202, 'kept');
         UPDATE t SET v = 'kept and updated' WHERE id = 202;
         COMMIT;",
    );
    run_once(dir.path());
    let (rows, count) = duckdb_rows(&dir.path().join("out.duckdb"), "t");
    assert_eq!(count, 2, "{rows:?}");
    assert_eq!(rows["201"], ["201", "kept"]);
    assert_eq!(rows["202"], ["202", "kept and updated"]);
}

#[test]
fn added_column_reaches_the_target() {
    let db = TestDb::create("addcol");
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO items VALUES (1, 'one'), (2, 'two');",
    );
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        &db.pipeline("types_addcol", &["items"], "", "upsert"),
    );
    run_once(dir.path());

    // A change in the old shape, then the new column and changes using it,
    // all waiting in the slot for the next run.
    db.exec("INSERT INTO items VALUES (3, 'three')");
    db.exec("ALTER TABLE items ADD COLUMN note text");
    db.exec("INSERT INTO items VALUES (4, 'four', 'note 4')");
    db.exec("UPDATE items SET note = 'note 1' WHERE id = 1");
    run_once(dir.path());

    let conn = duck(dir.path());
    let columns: Vec<String> = duck_columns(&conn, "items")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(columns, ["id", "name", "note"]);
    let expected = db.rows("SELECT id, name, coalesce(note, '') FROM items ORDER BY id");
    let (rows, count) = duckdb_rows(&dir.path().join("out.duckdb"), "items");
    assert_eq!(count, 4);
    assert_eq!(rows.into_values().collect::<Vec<_>>(), expected);
    let nulls = duck_query(
        &conn,
        "SELECT CAST(id AS VARCHAR) FROM items WHERE note IS NULL ORDER BY id",
    );
    assert_eq!(nulls, [[Some("2".to_owned())], [Some("3".to_owned())]]);

    drop(conn);

    // And the next run, with the new shape from the start, keeps going.
    db.exec("UPDATE items SET note = 'note 2' WHERE id = 2");
    run_once(dir.path());
    let expected = db.rows("SELECT id, name, coalesce(note, '') FROM items ORDER BY id");
    let (rows, _) = duckdb_rows(&dir.path().join("out.duckdb"), "items");
    assert_eq!(rows.into_values().collect::<Vec<_>>(), expected);

    // A column added while the pipeline follows the change log.
    let mut running = Running::start(&dir.path().join("p.toml"), &[]);
    running.wait_for("streaming", Duration::from_secs(60), |s| {
        s["tables"]["pg.items"]["phase"] == "streaming"
    });
    db.exec("ALTER TABLE items ADD COLUMN qty int");
    db.exec("INSERT INTO items VALUES (5, 'five', 'note 5', 7)");
    db.exec("UPDATE items SET qty = 1 WHERE id = 1");
    running.wait_for("the changes", Duration::from_secs(60), |s| changes(s) >= 2);
    assert_eq!(running.interrupt(), 0);
    let conn = duck(dir.path());
    let columns: Vec<String> = duck_columns(&conn, "items")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(columns, ["id", "name", "note", "qty"]);
    drop(conn);
    let expected = db.rows(
        "SELECT id, name, coalesce(note, ''), coalesce(qty::text, '') FROM items ORDER BY id",
    );
    let (rows, count) = duckdb_rows(&dir.path().join("out.duckdb"), "items");
    assert_eq!(count, 5);
    assert_eq!(rows.into_values().collect::<Vec<_>>(), expected);
}

#[test]
fn table_without_key_is_refused_with_explanation() {
    let db = TestDb::create("nokey");
    db.exec(
        "CREATE TABLE events (kind text, amount int);
         INSERT INTO events SELECT 'k' || (i % 3), i FROM generate_series(1, 10) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        &db.pipeline("types_nokey", &["events"], "", "append"),
    );

    let (code, out, err) = syncline(&["check", "p.toml"], dir.path());
    assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("REPLICA IDENTITY FULL"), "stdout:\n{out}");
    assert!(out.contains("events"), "stdout:\n{out}");

    let (code, out, err) = syncline(&["run", "--once", "p.toml"], dir.path());
    assert_ne!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("REPLICA IDENTITY FULL"), "stderr:\n{err}");
    assert!(err.contains("events"), "stderr:\n{err}");
    assert!(
        db.slots().is_empty(),
        "a refused run left a slot: {:?}",
        db.slots()
    );

    db.exec("ALTER TABLE events REPLICA IDENTITY FULL");

    // Append mode needs no key.
    let (code, out, err) = syncline(&["check", "p.toml"], dir.path());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    run_once(dir.path());
    let out_db = dir.path().join("out.duckdb");
    assert_eq!(duckdb_count(&out_db, "SELECT count(*) FROM events"), 10);
    db.exec("INSERT INTO events VALUES ('late', 11)");
    run_once(dir.path());
    assert_eq!(duckdb_count(&out_db, "SELECT count(*) FROM events"), 11);
    assert_eq!(duckdb_count(&out_db, "SELECT sum(amount) FROM events"), 66);

    // Upsert mode without a declared key is refused, saying a key is needed.
    let upsert = tempfile::tempdir().unwrap();
    write_pipeline(
        upsert.path(),
        &db.pipeline("types_nokey_upsert", &["events"], "", "upsert"),
    );
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], upsert.path());
    assert_ne!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("key"), "stderr:\n{err}");
    assert!(err.contains("upsert"), "stderr:\n{err}");
}

#[test]
fn drop_leaves_nothing_behind() {
    let db = TestDb::create("drop");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), &db.pipeline("types_drop", &["t"], "", "upsert"));
    run_once(dir.path());
    db.exec("INSERT INTO t VALUES (101, 'v101')");
    run_once(dir.path());
    let out_db = dir.path().join("out.duckdb");
    assert_eq!(duckdb_count(&out_db, "SELECT count(*) FROM t"), 101);
    assert_eq!(db.slots().len(), 1);
    assert_eq!(db.publications().len(), 1);

    let (code, out, err) = syncline(&["drop", "p.toml"], dir.path());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(db.slots().is_empty(), "slots left: {:?}", db.slots());
    assert!(
        db.publications().is_empty(),
        "publications left: {:?}",
        db.publications()
    );
    // The state folder holds only the note that the pipeline was dropped.
    let state: Vec<String> = std::fs::read_dir(dir.path().join(".syncline").join("types_drop"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(state, ["dropped"]);
    assert_eq!(
        duckdb_count(
            &out_db,
            "SELECT count(*) FROM _syncline_checkpoints WHERE pipeline = 'types_drop'"
        ),
        0
    );
    // Target data stays.
    assert_eq!(duckdb_count(&out_db, "SELECT count(*) FROM t"), 101);

    // Changes made while no slot exists reach the target only by a new
    // snapshot, which empties the table first: a row deleted meanwhile
    // does not stay.
    db.exec(
        "INSERT INTO t VALUES (102, 'v102'); UPDATE t SET v = 'changed' WHERE id = 5; DELETE FROM t WHERE id = 9",
    );
    run_once(dir.path());
    let status = last_run(dir.path(), "types_drop", "t");
    assert_eq!(counter(&status, "snapshot_done"), 101, "{status}");
    let (rows, count) = duckdb_rows(&out_db, "t");
    assert_eq!(
        count, 101,
        "duplicates or stale rows after the new snapshot"
    );
    let expected = db.rows("SELECT id, v FROM t ORDER BY id");
    let mut actual: Vec<Vec<String>> = rows.into_values().collect();
    actual.sort_by_key(|r| r[0].parse::<i64>().unwrap());
    assert_eq!(actual, expected);
    assert_eq!(db.slots().len(), 1);

    // And the new slot streams.
    db.exec("DELETE FROM t WHERE id = 1");
    run_once(dir.path());
    assert_eq!(duckdb_count(&out_db, "SELECT count(*) FROM t"), 100);
}

const ALL_ARRAYS: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE arrays (
        id int PRIMARY KEY,
        a_bool bool[],
        a_smallint smallint[],
        a_bigint bigint[],
        a_real real[],
        a_double float8[],
        a_numeric numeric[],
        a_numeric_38_10 numeric(38,10)[],
        a_varchar varchar(5)[],
        a_char char(2)[],
        a_bytea bytea[],
        a_date date[],
        a_time time[],
        a_timestamp timestamp[],
        a_timestamptz timestamptz[],
        a_interval interval[],
        a_uuid uuid[],
        a_json json[],
        a_jsonb jsonb[],
        a_enum mood[])";

fn array_row(id: i32) -> String {
    format!(
        "INSERT INTO arrays VALUES (
            {id},
            '{{t,f,NULL}}',
            '{{-32768,1}}',
            '{{-9223372036854775808,9007199254740993}}',
            '{{3.14,-Infinity,NaN}}',
            '{{0.1,1e300,-2.5}}',
            '{{1.5,NaN,123456789012345678901234567890.123456789}}',
            '{{1234567890123456789012345678.0123456789,-0.0000000001}}',
            '{{\"a b\",\"x\\\"y\",\"c,d\"}}',
            '{{a}}',
            ARRAY['\\x00ff'::bytea, 'a\\\\b'::bytea, ''::bytea, NULL],
            '{{2024-02-29,1969-12-31}}',
            '{{23:59:59.999999,00:00:00}}',
            '{{\"2024-02-29 12:34:56.789012\",-infinity}}',
            '{{\"2024-02-29 12:34:56.789012+02\",infinity}}',
            '{{\"1 year 2 mons 3 days 04:05:06.789\",\"-1 mons -00:00:00.000001\"}}',
            '{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}',
            ARRAY['{{\"a\":  [1, 2.50]}}'::json, '\"s\"'],
            ARRAY['{{\"b\": [1, \"x\"]}}'::jsonb, 'null', NULL],
            '{{happy,sad}}')"
    )
}

#[test]
fn arrays_of_every_type_map_exactly() {
    let db = TestDb::create("arrays");
    db.exec(ALL_ARRAYS);
    db.exec(&array_row(1));
    // Empty arrays, arrays of NULL, and a 2-D array (read as one list).
    db.exec(
        "INSERT INTO arrays (id, a_bool, a_smallint, a_varchar, a_bytea, a_jsonb)
         VALUES (3, '{}', '{NULL}', '{{a,b},{c,d}}', '{}', '{}')",
    );
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        &db.pipeline("types_arrays", &["arrays"], "", "upsert"),
    );
    run_once(dir.path());
    db.exec(&array_row(2));
    db.exec(
        "INSERT INTO arrays (id, a_bool, a_smallint, a_varchar, a_bytea, a_jsonb)
         VALUES (4, '{}', '{NULL}', '{{a,b},{c,d}}', '{}', '{}')",
    );
    run_once(dir.path());
    let second = last_run(dir.path(), "types_arrays", "arrays");
    assert_eq!(counter(&second, "snapshot_done"), 0, "{second}");
    assert_eq!(counter(&second, "inserts"), 2, "{second}");

    let conn = duck(dir.path());
    let columns = duck_columns(&conn, "arrays");
    let select: Vec<String> = columns
        .iter()
        .map(|(c, _)| format!("CAST(\"{c}\" AS VARCHAR)"))
        .collect();
    let rows = duck_query(
        &conn,
        &format!("SELECT {} FROM arrays ORDER BY id", select.join(", ")),
    );
    assert_eq!(rows.len(), 4);
    for (snap, stream) in [(0, 1), (2, 3)] {
        for (i, (name, _)) in columns.iter().enumerate().skip(1) {
            assert_eq!(
                rows[snap][i], rows[stream][i],
                "{name}: snapshot and stream rows differ"
            );
        }
    }
    let show = |v: &Option<String>| v.as_ref().map_or("NULL".to_owned(), |s| format!("{s:?}"));
    let mut text = String::new();
    for (i, (name, ty)) in columns.iter().enumerate() {
        text.push_str(&format!(
            "{name:<16} {ty:<26} values={}  edges={}\n",
            show(&rows[0][i]),
            show(&rows[2][i])
        ));
    }
    insta::assert_snapshot!(text);

    // Elements are typed values, not text: JSON is JSON, bytes are bytes.
    let typed = duck_query(
        &conn,
        "SELECT a_json[1]->>'$.a[1]', a_jsonb[1]->>'$.b[1]', CAST(octet_length(a_bytea[1]) AS VARCHAR),
                CAST(a_numeric_38_10[1] - 1234567890123456789012345678 AS VARCHAR)
         FROM arrays WHERE id = 2",
    );
    assert_eq!(
        typed[0],
        [
            Some("2.5".to_owned()),
            Some("x".to_owned()),
            Some("2".to_owned()),
            Some("0.0123456789".to_owned())
        ]
    );
}
