//! SQL transforms end to end through the real `syncline` binary: a files
//! source through a transform into DuckDB (snapshot, then rows moving in and
//! out of the filter), the dead-letter queue filled and replayed after the
//! SQL is fixed, the threshold, validation errors placed in the file, and
//! preview on a files source and a Postgres source.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use support::pg::TestDb;
use support::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_atomic(path, text);
}

fn orders_csv(rows: &[(i64, &str, &str, &str)]) -> String {
    let mut text = String::from("id,status,amount,note\n");
    for (id, status, amount, note) in rows {
        text.push_str(&format!("{id},{status},{amount},{note}\n"));
    }
    text
}

fn pipeline(name: &str, sql: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
{extra}
[sources.shop]
kind = "files"
path = "data"

[[sources.shop.tables]]
name = "orders"
pattern = "orders*.csv"
key = ["id"]
columns = {{ note = "text" }}

[transforms.open_orders]
input = "shop.orders"
sql = """
{sql}
"""

[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["open_orders", "shop.orders"]
"#
    )
}

const FILTER: &str = "SELECT id, upper(status) AS status, amount * 2 AS doubled
FROM source
WHERE status <> 'cancelled'";

/// `id -> [status, doubled]` of the transform's output table.
fn output(db: &Path) -> BTreeMap<String, Vec<String>> {
    duckdb_rows(db, "open_orders").0
}

fn expect(rows: &[(i64, &str, &str)]) -> BTreeMap<String, Vec<String>> {
    rows.iter()
        .map(|(id, s, d)| {
            (
                id.to_string(),
                vec![id.to_string(), s.to_string(), d.to_string()],
            )
        })
        .collect()
}

#[test]
fn transform_runs_on_the_snapshot_and_on_changes_moving_rows_in_and_out() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    write(&file, &pipeline("tr_files", FILTER, ""));
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[
            (1, "placed", "10.50", "a"),
            (2, "cancelled", "3.00", "b"),
            (3, "paid", "1.25", "c"),
            (4, "placed", "2.00", "d"),
        ]),
    );
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let db = tmp.path().join("out.duckdb");
    assert_eq!(
        output(&db),
        expect(&[
            (1, "PLACED", "21.00"),
            (3, "PAID", "2.50"),
            (4, "PLACED", "4.00")
        ])
    );
    // The raw table is there too, untouched by the transform.
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM orders"), 4);

    // 1 moves out of the filter, 2 moves in, 3 changes, 4 is deleted.
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[
            (1, "cancelled", "10.50", "a"),
            (2, "placed", "3.00", "b"),
            (3, "paid", "9.99", "c"),
        ]),
    );
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        output(&db),
        expect(&[(2, "PLACED", "6.00"), (3, "PAID", "19.98")])
    );
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM orders"), 3);
}

#[test]
fn dead_letters_fill_then_replay_after_the_sql_is_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    let bad = "SELECT id, status, CAST(note AS INTEGER) AS n FROM source";
    write(&file, &pipeline("tr_dlq", bad, ""));
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[
            (1, "placed", "1.00", "7"),
            (2, "placed", "1.00", "seven"),
            (3, "placed", "1.00", "8"),
            (4, "placed", "1.00", "n/a"),
        ]),
    );
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let db = tmp.path().join("out.duckdb");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM open_orders"), 2);

    let (code, stdout, stderr) = syncline(&["dlq", "list", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let listed: Json = serde_json::from_str(&stdout).unwrap();
    let rows = listed[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{stdout}");
    for r in rows {
        assert_eq!(r["stage"], "transform");
        assert_eq!(r["table"], "open_orders");
        assert!(
            r["reason"].as_str().unwrap().contains("Could not convert"),
            "{r}"
        );
        assert!(r["kept"].is_object(), "{r}");
        assert!(r["seq"].as_u64().unwrap() > 0);
        assert!(r["recorded_at"].is_string());
    }
    let first = rows[0]["id"].as_u64().unwrap().to_string();
    let (code, stdout, _) = syncline(&["dlq", "show", "p.toml", &first], tmp.path());
    assert_eq!(code, 0);
    assert!(stdout.contains("\"note\":\"seven\""), "{stdout}");

    // Replaying with the SQL unchanged fails again and keeps both rows.
    let (code, stdout, stderr) = syncline(&["dlq", "replay", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("0 replayed") && stdout.contains("2 still failing"),
        "{stdout}"
    );

    // Fix the SQL; replay applies both and empties the queue.
    let fixed = "SELECT id, status, coalesce(TRY_CAST(note AS INTEGER), -1) AS n FROM source";
    write(&file, &pipeline("tr_dlq", fixed, ""));
    let (code, stdout, stderr) = syncline(&["dlq", "replay", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("2 replayed"), "{stdout}");
    assert_eq!(
        duckdb_rows(&db, "open_orders").0,
        [
            ("1", "placed", "7"),
            ("2", "placed", "-1"),
            ("3", "placed", "8"),
            ("4", "placed", "-1"),
        ]
        .iter()
        .map(|(a, b, c)| (
            a.to_string(),
            vec![a.to_string(), b.to_string(), c.to_string()]
        ))
        .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(
        duckdb_count(&db, "SELECT count(*) FROM _syncline_dead_letters"),
        0
    );
    // The checkpoint did not move: a new run has nothing to do.
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM open_orders"), 4);
}

#[test]
fn discard_removes_kept_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = "SELECT id, CAST(note AS INTEGER) AS n FROM source";
    write(&tmp.path().join("p.toml"), &pipeline("tr_discard", bad, ""));
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[(1, "placed", "1.00", "x"), (2, "placed", "1.00", "y")]),
    );
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = syncline(&["dlq", "discard", "p.toml"], tmp.path());
    assert_eq!(code, 2, "naming nothing is refused: {stderr}");
    let (code, stdout, _) = syncline(&["dlq", "discard", "p.toml", "--all"], tmp.path());
    assert_eq!(code, 0);
    assert!(stdout.contains("2 row(s) discarded"), "{stdout}");
    let db = tmp.path().join("out.duckdb");
    assert_eq!(
        duckdb_count(&db, "SELECT count(*) FROM _syncline_dead_letters"),
        0
    );
}

#[test]
fn the_threshold_stops_the_pipeline_without_losing_the_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = "SELECT id, CAST(note AS INTEGER) AS n FROM source";
    write(
        &tmp.path().join("p.toml"),
        &pipeline("tr_max", bad, "max_dead_letters = 1"),
    );
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[(1, "placed", "1.00", "x"), (2, "placed", "1.00", "y")]),
    );
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("max_dead_letters = 1"), "{stderr}");
    // Nothing of that batch was written: after the fix, it all arrives.
    let fixed = "SELECT id, TRY_CAST(note AS INTEGER) AS n FROM source";
    write(
        &tmp.path().join("p.toml"),
        &pipeline("tr_max", fixed, "max_dead_letters = 1"),
    );
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let db = tmp.path().join("out.duckdb");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM open_orders"), 2);
}

#[test]
fn removing_a_key_column_is_a_validation_error_in_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("p.toml"),
        &pipeline("tr_key", "SELECT status, amount FROM source", ""),
    );
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[(1, "placed", "1.00", "x")]),
    );
    let (code, _, stderr) = syncline(&["validate", "p.toml"], tmp.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("drops key column `id` of `shop.orders`"),
        "{stderr}"
    );
    assert!(stderr.contains("p.toml:"), "{stderr}");
    assert!(stderr.contains("transforms.open_orders.sql"), "{stderr}");
    // And `run` refuses it too, before touching the target.
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("drops key column"), "{stderr}");
}

#[test]
fn a_sql_syntax_error_points_at_its_place_in_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let text = pipeline("tr_syntax", "SELECT id, status\nFORM source", "");
    write(&tmp.path().join("p.toml"), &text);
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[(1, "placed", "1.00", "x")]),
    );
    let (code, _, stderr) = syncline(&["validate", "p.toml"], tmp.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");
    // `status FORM` reads as `status AS FORM`, so DuckDB stumbles on
    // `source`: column 6 of the SQL's second line.
    let line = text.lines().position(|l| l.starts_with("FORM")).unwrap() + 1;
    assert!(
        stderr.contains(&format!("p.toml:{line}:6")),
        "expected p.toml:{line}:6 in\n{stderr}"
    );
}

#[test]
fn preview_on_a_files_source_writes_nothing_and_samples_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("p.toml"),
        &pipeline("tr_preview", FILTER, ""),
    );
    let rows: Vec<(i64, String)> = (1..=500)
        .map(|i| {
            (
                i,
                if i % 5 == 0 {
                    "cancelled".into()
                } else {
                    "placed".into()
                },
            )
        })
        .collect();
    let mut text = String::from("id,status,amount,note\n");
    for (id, s) in &rows {
        text.push_str(&format!("{id},{s},{id}.25,n\n"));
    }
    write(&tmp.path().join("data/orders.csv"), &text);

    let preview = |extra: &[&str]| -> Json {
        let mut args = vec![
            "preview",
            "p.toml",
            "open_orders",
            "--json",
            "--show",
            "1000",
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = syncline(&args, tmp.path());
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let all = preview(&[]);
    assert_eq!(all["input_rows"], 500);
    assert_eq!(all["output_rows"], 400);
    let names: Vec<&str> = all["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "status", "doubled"]);
    assert_eq!(all["columns"][2]["data_type"]["type"], "decimal");
    assert_eq!(all["key"], serde_json::json!(["id"]));
    assert_eq!(
        all["rows"][0],
        serde_json::json!({"id": "1", "status": "PLACED", "doubled": "2.50"})
    );

    let a = preview(&["--limit", "50", "--seed", "1"]);
    let b = preview(&["--limit", "50", "--seed", "1"]);
    let c = preview(&["--limit", "50", "--seed", "2"]);
    assert_eq!(a["input_rows"], 50);
    assert_eq!(a["rows"], b["rows"], "same seed, same sample");
    assert_ne!(a["rows"], c["rows"], "another seed, another sample");

    // Another SQL from a file, with an error: message and position.
    std::fs::write(
        tmp.path().join("edit.sql"),
        "SELECT id,\n  nope\nFROM source",
    )
    .unwrap();
    let (code, stdout, _) = syncline(
        &[
            "preview",
            "p.toml",
            "open_orders",
            "--json",
            "--sql",
            "edit.sql",
        ],
        tmp.path(),
    );
    assert_eq!(code, 2);
    let error: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"]["sql"]["line"], 2, "{error}");
    assert_eq!(error["error"]["sql"]["column"], 3, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("nope"));

    assert!(
        !tmp.path().join("out.duckdb").exists(),
        "preview wrote a target"
    );
    assert!(
        !tmp.path().join(".syncline").exists(),
        "preview wrote state"
    );
}

#[test]
fn preview_on_a_postgres_source() {
    let pg = TestDb::create("tr_preview");
    pg.exec(
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, amount numeric(12,2));
         INSERT INTO orders SELECT g, CASE WHEN g % 4 = 0 THEN 'cancelled' ELSE 'placed' END, g * 1.5
         FROM generate_series(1, 2000) g;
         ANALYZE orders;",
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut text = pg.pipeline("tr_pg_preview", &["orders"], "", "upsert");
    text.push_str(
        "[transforms.open_orders]\ninput = \"pg.orders\"\nsql = \"SELECT id, amount FROM source WHERE status = 'placed'\"\n",
    );
    write(&tmp.path().join("p.toml"), &text);
    let (code, stdout, stderr) = syncline(
        &[
            "preview",
            "p.toml",
            "open_orders",
            "--json",
            "--limit",
            "100",
            "--seed",
            "3",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let out: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["input_rows"], 100, "{out}");
    let n = out["output_rows"].as_u64().unwrap();
    assert!(n > 50 && n < 100, "about 3/4 pass the filter: {n}");
    assert_eq!(out["columns"][1]["data_type"]["type"], "decimal");
    // Deterministic for a seed.
    let (_, again, _) = syncline(
        &[
            "preview",
            "p.toml",
            "open_orders",
            "--json",
            "--limit",
            "100",
            "--seed",
            "3",
        ],
        tmp.path(),
    );
    let again: Json = serde_json::from_str(&again).unwrap();
    assert_eq!(out["rows"], again["rows"]);
    // Nothing was created on the server or locally.
    assert!(pg.slots().is_empty());
    assert!(pg.publications().is_empty());
    assert!(!tmp.path().join("out.duckdb").exists());
}

#[test]
fn dead_letters_in_a_postgres_target_replay_after_the_fix() {
    let dst = TestDb::create("tr_dlq_pg");
    let tmp = tempfile::tempdir().unwrap();
    let with_target = |sql: &str| {
        pipeline("tr_dlq_pg", sql, "").replace(
            "[targets.db]\nkind = \"duckdb\"\npath = \"out.duckdb\"\n",
            &format!(
                "[targets.db]\nkind = \"postgres\"\ndatabase = \"{}\"\nschema = \"sync\"\n",
                dst.name
            ),
        )
    };
    let bad = "SELECT id, status, CAST(note AS INTEGER) AS n FROM source";
    write(&tmp.path().join("p.toml"), &with_target(bad));
    write(
        &tmp.path().join("data/orders.csv"),
        &orders_csv(&[(1, "placed", "1.00", "7"), (2, "placed", "1.00", "seven")]),
    );
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.scalar("SELECT count(*) FROM sync.open_orders"), "1");
    let (code, stdout, stderr) = syncline(&["dlq", "list", "p.toml", "--json"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let listed: Json = serde_json::from_str(&stdout).unwrap();
    let rows = listed[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{stdout}");
    assert_eq!(rows[0]["stage"], "transform");

    let fixed = "SELECT id, status, coalesce(TRY_CAST(note AS INTEGER), 0) AS n FROM source";
    write(&tmp.path().join("p.toml"), &with_target(fixed));
    let (code, stdout, stderr) = syncline(&["dlq", "replay", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 replayed"), "{stdout}");
    assert_eq!(
        dst.rows("SELECT id, status, n FROM sync.open_orders ORDER BY id"),
        vec![
            vec!["1".to_owned(), "placed".to_owned(), "7".to_owned()],
            vec!["2".to_owned(), "placed".to_owned(), "0".to_owned()],
        ]
    );
    assert_eq!(
        dst.scalar("SELECT count(*) FROM sync._syncline_dead_letters"),
        "0"
    );
}

#[test]
fn preview_shows_recent_changes_of_a_postgres_source_with_their_output() {
    let pg = TestDb::create("tr_recent");
    pg.exec(
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, amount numeric(12,2));
         INSERT INTO orders VALUES (1, 'placed', 10), (2, 'placed', 20);",
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut text = pg.pipeline("tr_recent", &["orders"], "", "upsert");
    text.push_str(
        "[transforms.open_orders]\ninput = \"pg.orders\"\nsql = \"SELECT id, upper(status) AS status FROM source WHERE status <> 'cancelled'\"\n",
    );
    write(&tmp.path().join("p.toml"), &text);
    // Before the first run there is no slot, so no changes (and no error).
    let (code, stdout, stderr) =
        syncline(&["preview", "p.toml", "open_orders", "--json"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let out: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["changes"], serde_json::json!([]));
    // A run creates the slot; changes made after it stays retained.
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let slot_lsn = pg.scalar(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE database = current_database()",
    );
    pg.exec(
        "INSERT INTO orders VALUES (3, 'placed', 30);
         UPDATE orders SET status = 'cancelled' WHERE id = 1;
         DELETE FROM orders WHERE id = 2;",
    );
    let (code, stdout, stderr) =
        syncline(&["preview", "p.toml", "open_orders", "--json"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let out: Json = serde_json::from_str(&stdout).unwrap();
    let changes = out["changes"].as_array().unwrap();
    let summary: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().to_owned(),
                c["output"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| format!("{} {}", o["op"].as_str().unwrap(), o["row"]))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "insert".into(),
                r#"insert {"id":3,"status":"PLACED"}"#.into()
            ),
            ("update".into(), r#"delete {"id":1,"status":null}"#.into()),
            ("delete".into(), r#"delete {"id":2,"status":null}"#.into()),
        ],
        "{stdout}"
    );
    assert_eq!(changes[1]["after"]["status"], "cancelled");
    // Peeking did not consume the slot.
    assert_eq!(
        pg.scalar(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE database = current_database()",
    ),
        slot_lsn
    );
    let (code, _, stderr) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
}
