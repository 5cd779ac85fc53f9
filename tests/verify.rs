//! `syncline verify` end to end: a Postgres source synced into DuckDB and
//! Postgres, then each kind of divergence injected into the targets by hand
//! (a deleted row, an extra row, one changed value of each type, NULL
//! against an empty string, a timestamp off by an hour) and found exactly;
//! equal values written differently (JSON key order and spacing) are not
//! differences; and a pipeline under a steady writer verifies clean.
//!
//! Each test has its own source and target databases and pipeline name.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value as Json;
use support::pg::{TestDb, exec_in, position_lsn, spawn_writer};
use support::*;

const ROWS: u64 = 2_000;

fn seed(db: &TestDb) {
    db.exec(
        "CREATE TABLE items (
            id bigint PRIMARY KEY,
            name text,
            amount numeric(10,2),
            ratio float8,
            at timestamptz,
            doc jsonb,
            tags text[],
            flag boolean,
            day date,
            u uuid,
            raw bytea)",
    );
    db.exec(&format!(
        "INSERT INTO items
         SELECT i, CASE WHEN i = 7 THEN '' ELSE 'item ' || i END, i * 1.25, i / 3.0,
                timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
                jsonb_build_object('i', i, 'k', 'v'), ARRAY['a', 'b' || i], i % 2 = 0,
                date '2024-01-01' + i, md5(i::text)::uuid, decode(md5(i::text), 'hex')
         FROM generate_series(1, {ROWS}) i"
    ));
}

fn pipeline(name: &str, src: &TestDb, dst: &TestDb) -> String {
    format!(
        "name = \"{name}\"
[sources.pg]
kind = \"postgres\"
database = \"{src}\"
heartbeat_secs = 1
[[sources.pg.tables]]
name = \"items\"

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

/// `(target, id, kind, columns)` of every difference `verify --json` lists.
fn differences(report: &Json) -> BTreeSet<(String, i64, String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(t["outcome"], "compared", "{t}");
        for d in t["differences"].as_array().unwrap() {
            out.insert((
                t["target"].as_str().unwrap().to_owned(),
                d["key"]["id"].as_i64().unwrap(),
                d["kind"].as_str().unwrap().to_owned(),
                d["columns"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .map(|c| c["column"].as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            ));
        }
    }
    out
}

#[test]
fn verify_finds_exactly_the_differences_injected_into_each_target() {
    let src = TestDb::create("verify_src");
    let dst = TestDb::create("verify_dst");
    seed(&src);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        pipeline("verify_diffs", &src, &dst),
    )
    .unwrap();
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = syncline(&["verify", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    for target in ["duck", "warehouse"] {
        assert!(
            out.contains(&format!("pg.items in {target}: equal ({ROWS} rows)")),
            "{out}"
        );
    }

    // The same divergences in both targets, each in its own dialect.
    let duck = duckdb::Connection::open(tmp.path().join("out.duckdb")).unwrap();
    duck.execute_batch(
        r#"DELETE FROM items WHERE id = 3;
           INSERT INTO items (id, name) VALUES (1001 + 10000, 'extra');
           UPDATE items SET name = NULL WHERE id = 7;
           UPDATE items SET amount = amount + 0.01 WHERE id = 10;
           UPDATE items SET ratio = ratio + 1e-9 WHERE id = 11;
           UPDATE items SET "at" = "at" + INTERVAL 1 HOUR WHERE id = 12;
           UPDATE items SET doc = '{"i":13,"k":"w"}' WHERE id = 13;
           UPDATE items SET doc = '{ "k": "v",  "i": 14.0 }' WHERE id = 14;
           UPDATE items SET tags = ['a', 'x'] WHERE id = 15;
           UPDATE items SET flag = NOT flag WHERE id = 16;
           UPDATE items SET day = day + 1 WHERE id = 17;
           UPDATE items SET u = '00000000-0000-0000-0000-000000000000' WHERE id = 18;
           UPDATE items SET raw = '\x00'::BLOB WHERE id = 19;"#,
    )
    .unwrap();
    drop(duck);
    dst.exec(
        r#"SET search_path = sync;
           DELETE FROM items WHERE id = 3;
           INSERT INTO items (id, name) VALUES (1001 + 10000, 'extra');
           UPDATE items SET name = NULL WHERE id = 7;
           UPDATE items SET amount = amount + 0.01 WHERE id = 10;
           UPDATE items SET ratio = ratio + 1e-9 WHERE id = 11;
           UPDATE items SET at = at + interval '1 hour' WHERE id = 12;
           UPDATE items SET doc = '{"i":13,"k":"w"}' WHERE id = 13;
           UPDATE items SET doc = '{ "k": "v",  "i": 14.0 }' WHERE id = 14;
           UPDATE items SET tags = ARRAY['a', 'x'] WHERE id = 15;
           UPDATE items SET flag = NOT flag WHERE id = 16;
           UPDATE items SET day = day + 1 WHERE id = 17;
           UPDATE items SET u = '00000000-0000-0000-0000-000000000000' WHERE id = 18;
           UPDATE items SET raw = '\x00'::bytea WHERE id = 19;"#,
    );

    let (code, out, err) = syncline(
        &["verify", "p.toml", "--json", "--page-rows", "7"],
        tmp.path(),
    );
    assert_eq!(code, 4, "{out}{err}");
    let report: Json = serde_json::from_str(&out).unwrap();
    let mut expected = BTreeSet::new();
    for target in ["duck", "warehouse"] {
        let mut add = |id: i64, kind: &str, columns: &[&str]| {
            expected.insert((
                target.to_owned(),
                id,
                kind.to_owned(),
                columns.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>(),
            ));
        };
        add(3, "missing", &[]);
        add(11_001, "extra", &[]);
        add(7, "changed", &["name"]);
        add(10, "changed", &["amount"]);
        add(11, "changed", &["ratio"]);
        add(12, "changed", &["at"]);
        add(13, "changed", &["doc"]);
        add(15, "changed", &["tags"]);
        add(16, "changed", &["flag"]);
        add(17, "changed", &["day"]);
        add(18, "changed", &["u"]);
        add(19, "changed", &["raw"]);
    }
    assert_eq!(differences(&report), expected);
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(
            (&t["missing"], &t["extra"], &t["changed"]),
            (&Json::from(1), &Json::from(1), &Json::from(10)),
            "{t}"
        );
        assert_eq!(t["source_rows"], ROWS, "{t}");
        assert_eq!(t["target_rows"], ROWS, "{t}");
    }
    // The values themselves, as the report shows them: NULL against an
    // empty string, and the hour the timestamp is off by.
    let duck = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "duck")
        .unwrap();
    let column = |id: i64| {
        duck["differences"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["key"]["id"] == id)
            .unwrap()["columns"][0]
            .clone()
    };
    assert_eq!(column(7)["source"], "\"\"");
    assert_eq!(column(7)["target"], "null");
    assert_eq!(column(12)["source"], "\"2024-01-01T00:12:00.000000Z\"");
    assert_eq!(column(12)["target"], "\"2024-01-01T01:12:00.000000Z\"");

    // One target, one table, in words.
    let (code, out, err) = syncline(
        &[
            "verify",
            "p.toml",
            "--target",
            "warehouse",
            "--table",
            "items",
        ],
        tmp.path(),
    );
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        out.contains("pg.items in warehouse: DIFFERS: 1 missing, 1 extra, 10 changed"),
        "{out}"
    );
    assert!(out.contains("missing  {\"id\":3}"), "{out}");
    assert!(!out.contains("in duck"), "{out}");

    let (code, out, err) = syncline(&["verify", "p.toml", "--target", "nope"], tmp.path());
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("no target named `nope`"), "{err}");

    // Repaired: the source's rows written over what differs, the extra key
    // deleted, and verified again.
    let (code, out, err) = syncline(&["verify", "p.toml", "--repair"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    for target in ["duck", "warehouse"] {
        assert!(
            out.contains(&format!(
                "repaired {target}: 11 rows written as the source holds them, 1 key deleted"
            )),
            "{out}"
        );
    }
    let after = out.split("after the repair:").nth(1).unwrap_or_default();
    for target in ["duck", "warehouse"] {
        assert!(
            after.contains(&format!("pg.items in {target}: equal ({ROWS} rows)")),
            "{out}"
        );
    }
    let (code, out, err) = syncline(&["verify", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
}

/// One writer transaction: a few rows updated, one inserted, one deleted.
fn write_once(db: &str, round: u64, max_id: u64) {
    let a = (round * 7919) % max_id + 1;
    let b = (round * 104_729) % max_id + 1;
    exec_in(
        db,
        &format!(
            "BEGIN;
             UPDATE items SET name = 'r{round}', amount = amount + 1, at = clock_timestamp(),
                    doc = doc || jsonb_build_object('r', {round}) WHERE id BETWEEN {a} AND {a} + 3;
             DELETE FROM items WHERE id = {b};
             INSERT INTO items (id, name) VALUES ({new}, 'new') ON CONFLICT (id) DO NOTHING;
             COMMIT;",
            new = max_id + round
        ),
    );
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn a_pipeline_under_a_steady_writer_verifies_clean() {
    let src = TestDb::create("verify_live_src");
    let dst = TestDb::create("verify_live_dst");
    seed(&src);
    let tmp = tempfile::tempdir().unwrap();
    let pipeline_file = tmp.path().join("p.toml");
    std::fs::write(&pipeline_file, pipeline("verify_live", &src, &dst)).unwrap();
    let mut run = Running::start(&pipeline_file, &[]);
    run.wait_for("streaming", Duration::from_secs(180), |s| {
        s["tables"]["pg.items"]["phase"] == "streaming"
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.name.clone(), write_once, ROWS, stop.clone());
    run.wait_for("streamed changes", Duration::from_secs(180), |s| {
        total(s, "updates") >= 200
    });
    // The DuckDB file belongs to the running process; the Postgres target
    // is read while the writer goes on.
    let (code, out, err) = syncline(&["verify", "p.toml", "--target", "warehouse"], tmp.path());
    let rounds_during = {
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap()
    };
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        rounds_during > 20,
        "the writer ran only {rounds_during} transactions"
    );
    assert!(out.contains("pg.items in warehouse: equal"), "{out}");

    // A divergence made while it runs is still found.
    let end = src.current_lsn();
    run.wait_for("every change applied", Duration::from_secs(180), |s| {
        position_lsn(s) >= end
    });
    dst.exec("DELETE FROM sync.items WHERE id = 5");
    let (code, out, err) = syncline(&["verify", "p.toml", "--target", "warehouse"], tmp.path());
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("1 missing, 0 extra, 0 changed"), "{out}");
    assert_eq!(run.interrupt(), 0);
}

#[test]
fn verify_reads_redis_values_and_hashes_and_the_search_index_back() {
    use support::cache::{Prefix, connect};

    let src = TestDb::create("verify_cache_src");
    seed(&src);
    let json = Prefix::new("verify_json");
    let hash = Prefix::new("verify_hash");
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"verify_cache\"
[sources.pg]
kind = \"postgres\"
database = \"{src}\"
[[sources.pg.tables]]
name = \"items\"

[targets.cache]
kind = \"redis\"
prefix = \"{json}\"
inputs = [\"pg\"]
[targets.cache.tables.items]
key = \"items:{{id}}\"

[targets.hashes]
kind = \"redis\"
prefix = \"{hash}\"
format = \"hash\"
inputs = [\"pg\"]
[targets.hashes.tables.items]
key = \"h:{{id}}\"

[targets.index]
kind = \"search\"
path = \"items.index\"
inputs = [\"pg\"]
",
        src = src.name,
        json = json.0,
        hash = hash.0,
    );
    std::fs::write(tmp.path().join("p.toml"), text).unwrap();
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = syncline(&["verify", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    for target in ["cache", "hashes", "index"] {
        assert!(
            out.contains(&format!("pg.items in {target}: equal ({ROWS} rows)")),
            "{out}"
        );
    }

    // The JSON values: one gone, one an hour off, one the source no
    // longer has (listed in the table's key index, as a kept row is).
    let mut redis = connect();
    let key = |p: &Prefix, k: &str| format!("{}{k}", p.0);
    let _: () = redis::cmd("DEL")
        .arg(key(&json, "items:3"))
        .query(&mut redis)
        .unwrap();
    let twelve: String = redis::cmd("GET")
        .arg(key(&json, "items:12"))
        .query(&mut redis)
        .unwrap();
    let mut twelve: Json = serde_json::from_str(&twelve).unwrap();
    twelve["at"] = Json::from("2024-01-01T01:12:00.000000Z");
    let _: () = redis::cmd("SET")
        .arg(key(&json, "items:12"))
        .arg(twelve.to_string())
        .query(&mut redis)
        .unwrap();
    // One value of each other type changed, a key each.
    let edits: [(u32, &str, Json); 8] = [
        (21, "name", Json::from("x")),
        (22, "amount", Json::from("27.51")),
        (23, "ratio", Json::from(1.5)),
        (24, "doc", serde_json::json!({"i": 24, "k": "w"})),
        (25, "tags", serde_json::json!(["a", "x"])),
        (26, "day", Json::from("2024-01-28")),
        (27, "u", Json::from("00000000-0000-0000-0000-000000000000")),
        (28, "raw", Json::from("00")),
    ];
    for (id, column, value) in &edits {
        let name = key(&json, &format!("items:{id}"));
        let text: String = redis::cmd("GET").arg(&name).query(&mut redis).unwrap();
        let mut row: Json = serde_json::from_str(&text).unwrap();
        assert_ne!(&row[*column], value, "items:{id} {column} already holds it");
        row[*column] = value.clone();
        let _: () = redis::cmd("SET")
            .arg(&name)
            .arg(row.to_string())
            .query(&mut redis)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg(key(&json, "items:11001"))
        .arg(r#"{"id":11001,"name":"kept"}"#)
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(key(&json, "syncline:verify_cache:index:items"))
        .arg(key(&json, "items:11001"))
        .arg(r#"[{"t":"int","v":11001}]"#)
        .query(&mut redis)
        .unwrap();
    // The hashes: NULL (a field left out) against an empty string, and a
    // changed decimal.
    let _: () = redis::cmd("HDEL")
        .arg(key(&hash, "h:7"))
        .arg("name")
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(key(&hash, "h:10"))
        .arg("amount")
        .arg("12.51")
        .query(&mut redis)
        .unwrap();
    // A change the stopped pipeline has not applied anywhere yet.
    src.exec("UPDATE items SET flag = NOT flag WHERE id = 16");

    let (code, out, err) = syncline(&["verify", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 4, "{out}{err}");
    let report: Json = serde_json::from_str(&out).unwrap();
    let mut expected = BTreeSet::new();
    let mut add = |target: &str, id: i64, kind: &str, columns: &[&str]| {
        expected.insert((
            target.to_owned(),
            id,
            kind.to_owned(),
            columns.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>(),
        ));
    };
    add("cache", 3, "missing", &[]);
    add("cache", 12, "changed", &["at"]);
    add("cache", 16, "changed", &["flag"]);
    add("cache", 11_001, "extra", &[]);
    for (id, column, _) in &edits {
        add("cache", i64::from(*id), "changed", &[column]);
    }
    add("hashes", 7, "changed", &["name"]);
    add("hashes", 10, "changed", &["amount"]);
    add("hashes", 16, "changed", &["flag"]);
    add("index", 16, "changed", &["flag"]);
    assert_eq!(differences(&report), expected);

    // Caught up, the index equals its source again; the caches keep what
    // was done to them by hand.
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = syncline(&["verify", "p.toml"], tmp.path());
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        out.contains(&format!("pg.items in index: equal ({ROWS} rows)")),
        "{out}"
    );
    assert!(
        out.contains("pg.items in cache: DIFFERS: 1 missing, 1 extra, 9 changed"),
        "{out}"
    );
    assert!(
        out.contains("pg.items in hashes: DIFFERS: 0 missing, 0 extra, 2 changed"),
        "{out}"
    );
    let (code, out, err) = syncline(&["verify", "p.toml", "--repair"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("repaired cache: 10 rows written as the source holds them, 1 key deleted"),
        "{out}"
    );
    let (code, out, err) = syncline(&["verify", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    drop((json, hash));
}

#[test]
fn verify_reads_a_mariadb_source_in_the_byte_order_of_its_text_keys() {
    let db = support::my::TestDb::create("verify_my");
    db.exec(
        "CREATE TABLE tags (
            name VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY,
            n INT NOT NULL,
            amount DECIMAL(10,2),
            at DATETIME(6));
         INSERT INTO tags VALUES
            ('Zeta', 1, 1.50, '2024-01-01 00:00:01.5'),
            ('alpha', 2, NULL, NULL),
            ('Émile', 3, 3.00, '2024-01-01 00:00:03'),
            ('beta', 4, 4.25, '2024-01-01 00:00:04'),
            ('a b', 5, 5.00, '2024-01-01 00:00:05'),
            ('ünï', 6, 6.00, '2024-01-01 00:00:06');",
    );
    let tmp = synced_from_mariadb("verify_my", &db, "tags");
    // Pages of one row: every page starts past a text key.
    let (code, out, err) = syncline(&["verify", "p.toml", "--page-rows", "1"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("my.tags in db: equal (6 rows)"), "{out}");

    let duck = duckdb::Connection::open(tmp.path().join("out.duckdb")).unwrap();
    duck.execute_batch(
        r#"UPDATE tags SET amount = 3.01 WHERE name = 'Émile';
           DELETE FROM tags WHERE name = 'beta';
           UPDATE tags SET "at" = "at" + INTERVAL 1 HOUR WHERE name = 'Zeta';"#,
    )
    .unwrap();
    drop(duck);
    let (code, out, err) = syncline(&["verify", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 4, "{out}{err}");
    let report: Json = serde_json::from_str(&out).unwrap();
    let found: BTreeSet<(String, String, Vec<String>)> = report["tables"][0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"]["name"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap().to_owned(),
                d["columns"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .map(|c| c["column"].as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, Vec<String>)> = [
        ("Zeta", "changed", vec!["at"]),
        ("beta", "missing", vec![]),
        ("Émile", "changed", vec!["amount"]),
    ]
    .into_iter()
    .map(|(k, kind, c)| {
        (
            k.to_owned(),
            kind.to_owned(),
            c.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn verify_reads_a_folder_as_the_pipeline_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("part1.csv"), "id,name\n1,a\n2,b\n3,c\n").unwrap();
    // A later file's row replaces an earlier one's; a key one file holds
    // twice is refused.
    std::fs::write(data.join("part2.csv"), "id,name\n3,C\n4,d\n4,dd\n5,e\n").unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        r#"name = "verify_files"
[sources.folder]
kind = "files"
path = "data"
[[sources.folder.tables]]
name = "items"
pattern = "*.csv"
key = ["id"]
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["folder"]
"#,
    )
    .unwrap();
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = syncline(&["verify", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("folder.items in db: equal (4 rows)"), "{out}");

    let duck = duckdb::Connection::open(tmp.path().join("out.duckdb")).unwrap();
    duck.execute_batch("UPDATE items SET name = 'x' WHERE id = 1; DELETE FROM items WHERE id = 5;")
        .unwrap();
    drop(duck);
    let (code, out, err) = syncline(&["verify", "p.toml"], tmp.path());
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        out.contains("folder.items in db: DIFFERS: 1 missing, 0 extra, 1 changed"),
        "{out}"
    );
    assert!(
        out.contains(r#"changed  {"id":1}: name source "a" target "x""#),
        "{out}"
    );
    assert!(out.contains(r#"missing  {"id":5}"#), "{out}");
    assert!(
        out.contains("1 dead letter of this table is kept"),
        "the refused key's dead letters are pointed out: {out}"
    );
}

#[test]
fn checksums_of_key_spans_agree_across_systems_and_lead_to_each_difference() {
    const BIG: u64 = 60_000;
    let src = TestDb::create("verify_sum_src");
    let dst = TestDb::create("verify_sum_dst");
    src.exec(&format!(
        "CREATE TABLE big (
            id bigint PRIMARY KEY, n int, f float8, d numeric(12,2), t text, ts timestamptz,
            tl timestamp, day date, b bytea, u uuid, j jsonb, flag boolean);
         INSERT INTO big
         SELECT i, i % 1000, CASE WHEN i % 3 = 0 THEN i * 0.5 ELSE i / 7.0 END, i * 1.25,
                CASE WHEN i % 11 = 0 THEN NULL WHEN i % 13 = 0 THEN '' WHEN i % 17 = 0 THEN 'ü ' || chr(30) || chr(1) || i ELSE 'row ' || i END,
                timestamptz '2024-01-01 00:00:00+00' + i * interval '1.5 second',
                timestamp '1969-12-31 23:00:00' + i * interval '1 millisecond',
                date '1960-01-01' + (i % 40000), decode(md5(i::text), 'hex'), md5(i::text)::uuid,
                jsonb_build_object('i', i, 'a', jsonb_build_array(1, 'x')), i % 2 = 0
         FROM generate_series(1, {BIG}) i;
         INSERT INTO big (id) VALUES (-5), (9000000000)"
    ));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        pipeline("verify_sums", &src, &dst).replace("name = \"items\"", "name = \"big\""),
    )
    .unwrap();
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = syncline(&["verify", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let report: Json = serde_json::from_str(&out).unwrap();
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(t["method"], "checksums", "{t}");
        // Every value of every type hashed alike in both systems: not one
        // row had to be read.
        assert_eq!(t["rows_read"], 0, "{t}");
        assert_eq!(t["source_rows"], BIG + 2, "{t}");
    }

    // Ten scattered differences in each target, in several types.
    let ids = [
        1_u64, 6_007, 12_345, 20_000, 29_999, 33_333, 41_000, 47_777, 55_555, 60_000,
    ];
    let updates = |quote: &str| {
        [
            format!("UPDATE big SET n = n + 1 WHERE id = {}", ids[0]),
            format!("UPDATE big SET f = f + 0.25 WHERE id = {}", ids[1]),
            format!("UPDATE big SET d = d + 0.01 WHERE id = {}", ids[2]),
            format!("UPDATE big SET t = NULL WHERE id = {}", ids[3]),
            format!(
                "UPDATE big SET ts = ts + INTERVAL '1 hour' WHERE id = {}",
                ids[4]
            ),
            format!("UPDATE big SET day = day + 1 WHERE id = {}", ids[5]),
            format!("UPDATE big SET flag = NOT flag WHERE id = {}", ids[6]),
            format!("DELETE FROM big WHERE id = {}", ids[7]),
            format!("UPDATE big SET u = NULL WHERE id = {}", ids[8]),
            format!(
                "UPDATE big SET {quote}tl{quote} = NULL WHERE id = {}",
                ids[9]
            ),
        ]
        .join(";\n")
    };
    let duck = duckdb::Connection::open(tmp.path().join("out.duckdb")).unwrap();
    duck.execute_batch(&updates("\"")).unwrap();
    drop(duck);
    dst.exec(&format!("SET search_path = sync;\n{}", updates("")));
    let (code, out, err) = syncline(&["verify", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 4, "{out}{err}");
    let report: Json = serde_json::from_str(&out).unwrap();
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(t["method"], "checksums", "{t}");
        let found: Vec<i64> = t["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["key"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            found,
            ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            "{t}"
        );
        assert_eq!(
            (&t["missing"], &t["changed"]),
            (&Json::from(1), &Json::from(9)),
            "{t}"
        );
        // Only spans around the differences were read row by row.
        assert!(t["rows_read"].as_u64().unwrap() < BIG / 2, "{t}");
    }
}

#[test]
fn a_mariadb_table_checksums_alike_in_mariadb_and_duckdb() {
    let db = support::my::TestDb::create("verify_mysum");
    db.exec(
        "CREATE TABLE nums (
            id BIGINT PRIMARY KEY, n INT, big BIGINT UNSIGNED, amount DECIMAL(10,2),
            name VARCHAR(40) CHARACTER SET utf8mb4, note TEXT CHARACTER SET latin1, doc JSON,
            flag BIT(1), day DATE, at DATETIME(6), raw VARBINARY(16));
         INSERT INTO nums
         SELECT seq, seq % 1000, 18446744073709551615 - seq, seq * 1.25,
                CASE WHEN seq % 11 = 0 THEN NULL WHEN seq % 13 = 0 THEN '' ELSE CONCAT('ü ', seq) END,
                IF(seq % 7 = 0, NULL, CONCAT('café ', seq)), JSON_OBJECT('i', seq), seq % 2,
                DATE('1960-01-01') + INTERVAL (seq % 30000) DAY,
                TIMESTAMP('2024-01-01') + INTERVAL seq SECOND + INTERVAL (seq % 1000) MICROSECOND,
                UNHEX(MD5(seq))
         FROM seq_1_to_20000;",
    );
    let tmp = synced_from_mariadb("verify_mysum", &db, "nums");
    let (code, out, err) = syncline(&["verify", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    let report: Json = serde_json::from_str(&out).unwrap();
    let t = &report["tables"][0];
    assert_eq!(t["method"], "checksums", "{t}");
    // Both systems wrote every value's text alike: no row was read.
    assert_eq!(t["rows_read"], 0, "{t}");
    assert_eq!(t["source_rows"], 20_000, "{t}");

    let duck = duckdb::Connection::open(tmp.path().join("out.duckdb")).unwrap();
    duck.execute_batch(
        "UPDATE nums SET amount = amount + 1 WHERE id = 777; DELETE FROM nums WHERE id = 15000;",
    )
    .unwrap();
    drop(duck);
    let (code, out, err) = syncline(&["verify", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 4, "{out}{err}");
    let report: Json = serde_json::from_str(&out).unwrap();
    let t = &report["tables"][0];
    let found: Vec<(i64, String)> = t["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"]["id"].as_i64().unwrap(),
                d["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![(777, "changed".to_owned()), (15_000, "missing".to_owned())],
        "{t}"
    );
    assert!(t["rows_read"].as_u64().unwrap() < 10_000, "{t}");
}

/// A folder holding pipeline `p.toml`, named `name`, that has synced table
/// `table` of MariaDB database `db` into DuckDB (`out.duckdb`) once.
fn synced_from_mariadb(name: &str, db: &support::my::TestDb, table: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        format!(
            r#"name = "{name}"
[sources.my]
kind = "mysql"
database = "{db}"
[[sources.my.tables]]
name = "{table}"
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["my"]
"#,
            db = db.name
        ),
    )
    .unwrap();
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{err}");
    tmp
}
