//! End to end through the real `syncline` binary: a folder of files into
//! DuckDB, then files added, changed and removed while it runs.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use support::*;

/// Sample CSV timestamps as DuckDB prints them.
fn normalize_ts(v: &str) -> String {
    v.replace('T', " ").replace('Z', "+00")
}

fn expected_orders(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut rows = csv_rows(&csv_files(&dir.join("orders")), |f| {
        f[4].parse::<f64>().is_ok()
    });
    for row in rows.values_mut() {
        row[6] = normalize_ts(&row[6]);
    }
    rows
}

fn expected_customers(dir: &Path) -> BTreeMap<String, Vec<String>> {
    csv_rows(&[dir.join("customers.csv")], |_| true)
}

#[test]
fn sample_shop_syncs_then_follows_added_changed_and_removed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let (code, _, stderr) = syncline(
        &[
            "demo",
            demo.to_str().unwrap(),
            "--once",
            "--orders",
            "24000",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("could not be read"), "{stderr}");
    let db = demo.join("shop.duckdb");
    let shop = demo.join("shop");
    assert_same(&expected_customers(&shop), &db, "customers");
    assert_same(&expected_orders(&shop), &db, "orders");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM products"), 2000);
    assert_eq!(
        duckdb_count(
            &db,
            "SELECT count(*) FROM _syncline_dead_letters WHERE table_name = 'orders'"
        ),
        2
    );

    // Follow changes.
    let pipeline = demo.join("shop.toml");
    let mut run = Running::start(&pipeline, &[]);
    run.wait_for("streaming", Duration::from_secs(60), |s| {
        s["state"] == "running"
            && s["tables"]
                .as_object()
                .is_some_and(|t| t.len() == 3 && t.values().all(|t| t["phase"] == "streaming"))
    });

    // A new file: 100 inserts.
    let mut text =
        String::from("order_id,customer_id,product_id,quantity,amount,status,ordered_at\n");
    for i in 0..100 {
        let _ = writeln!(
            text,
            "{},{},{},1,{}.50,placed,2026-01-02T03:04:05Z",
            900_000 + i,
            1 + i,
            1 + i,
            i
        );
    }
    write_atomic(&shop.join("orders/2026-01.csv"), &text);

    // A changed file: 10 updates, 5 deletes, 3 inserts.
    let jan = shop.join("orders/2025-01.csv");
    let original = std::fs::read_to_string(&jan).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    for line in lines.iter_mut().skip(1).take(10) {
        let mut f: Vec<String> = line.split(',').map(str::to_owned).collect();
        f[5] = "refunded".into();
        *line = f.join(",");
    }
    lines.drain(11..16);
    for i in 0..3 {
        lines.push(format!(
            "{},7,7,1,9.99,placed,2026-02-01T00:00:00Z",
            800_000 + i
        ));
    }
    write_atomic(&jan, &(lines.join("\n") + "\n"));

    // A removed file: all its rows deleted.
    let feb = shop.join("orders/2025-02.csv");
    let feb_rows = std::fs::read_to_string(&feb).unwrap().lines().count() as u64 - 1;
    std::fs::remove_file(&feb).unwrap();

    run.wait_for("every change applied", Duration::from_secs(60), |s| {
        total(s, "inserts") >= 103
            && total(s, "updates") >= 10
            && total(s, "deletes") >= 5 + feb_rows
    });
    let last = run.last.clone().unwrap();
    assert_eq!(total(&last, "inserts"), 103, "{last}");
    assert_eq!(total(&last, "updates"), 10, "{last}");
    assert_eq!(total(&last, "deletes"), 5 + feb_rows, "{last}");
    assert_eq!(run.interrupt(), 0);

    assert_same(&expected_orders(&shop), &db, "orders");
    assert_same(&expected_customers(&shop), &db, "customers");
    assert_eq!(
        duckdb_count(&db, "SELECT count(*) FROM orders WHERE status = 'refunded'"),
        10
    );
}

#[test]
fn malformed_rows_go_to_dead_letters_with_reasons_and_good_rows_arrive() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("items.csv"),
        "id,name,price,qty\n\
         1,apple,1.50,3\n\
         2,pear,2.00\n\
         3,plum,abc,4\n\
         ,nokey,1.00,1\n\
         5,kiwi,0.75,many\n\
         6,fig,3.25,2,extra\n\
         7,lime,0.40,9\n",
    )
    .unwrap();
    std::fs::write(
        data.join("events.jsonl"),
        "{\"id\": 1, \"kind\": \"view\"}\n{\"id\": 2, \"kind\": \n{\"id\": 3, \"kind\": \"buy\"}\n[1,2]\n",
    )
    .unwrap();
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        r#"name = "dlq"
[sources.src]
kind = "files"
path = "data"
[[sources.src.tables]]
name = "items"
pattern = "items.csv"
key = ["id"]
columns = { price = "decimal(8,2)", qty = "int" }
[[sources.src.tables]]
name = "events"
pattern = "*.jsonl"
key = ["id"]
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["src"]
"#,
    )
    .unwrap();
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let db = tmp.path().join("out.duckdb");
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(items.keys().cloned().collect::<Vec<_>>(), ["1", "7"]);
    assert_eq!(items["1"], ["1", "apple", "1.50", "3"]);
    let (events, _) = duckdb_rows(&db, "events");
    assert_eq!(events.keys().cloned().collect::<Vec<_>>(), ["1", "3"]);

    let conn = duckdb::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT table_name, origin, line, raw, reason FROM _syncline_dead_letters ORDER BY table_name, line")
        .unwrap();
    let rows: Vec<(String, String, i64, String, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(stmt);
    drop(conn);
    let expected = [
        (
            "events",
            "events.jsonl",
            2,
            "{\"id\": 2, \"kind\": ",
            "invalid JSON",
        ),
        (
            "events",
            "events.jsonl",
            4,
            "[1,2]",
            "the line is not a JSON object",
        ),
        (
            "items",
            "items.csv",
            3,
            "2,pear,2.00",
            "expected 4 fields, found 3",
        ),
        (
            "items",
            "items.csv",
            4,
            "3,plum,abc,4",
            "column `price`: `abc` is not a valid decimal(8,2)",
        ),
        (
            "items",
            "items.csv",
            5,
            ",nokey,1.00,1",
            "key column `id` is empty",
        ),
        (
            "items",
            "items.csv",
            6,
            "5,kiwi,0.75,many",
            "column `qty`: `many` is not a valid int",
        ),
        (
            "items",
            "items.csv",
            7,
            "6,fig,3.25,2,extra",
            "expected 4 fields, found 5",
        ),
    ];
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
    for (row, exp) in rows.iter().zip(expected) {
        assert_eq!(row.0, exp.0);
        assert_eq!(row.1, exp.1);
        assert_eq!(row.2, exp.2, "{row:?}");
        assert_eq!(row.3, exp.3, "{row:?}");
        assert!(
            row.4.starts_with(exp.4),
            "{row:?} should start with {}",
            exp.4
        );
    }

    // Appending to the file: only the new bad row is recorded, the old ones
    // are not recorded twice; the new good row arrives.
    let mut text = std::fs::read_to_string(data.join("items.csv")).unwrap();
    text.push_str("8,date,1.10,1\n9,bad,,,\n");
    std::fs::write(data.join("items.csv"), text).unwrap();
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(items.keys().cloned().collect::<Vec<_>>(), ["1", "7", "8"]);
    assert_eq!(
        duckdb_count(
            &db,
            "SELECT count(*) FROM _syncline_dead_letters WHERE table_name = 'items'"
        ),
        6
    );
}

#[test]
fn parquet_files_and_full_refresh_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lake");
    std::fs::create_dir_all(&data).unwrap();
    {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT i AS id, 'n' || i AS name, (i * 1.25)::DECIMAL(10,2) AS score,
                   DATE '2025-01-01' + i::INTEGER AS day FROM range(1, 1001) t(i))
             TO '{}' (FORMAT parquet)",
            data.join("part-1.parquet").display()
        ))
        .unwrap();
    }
    std::fs::write(data.join("tags.csv"), "tag,weight\nred,1\nblue,2\n").unwrap();
    std::fs::write(
        tmp.path().join("p.toml"),
        r#"name = "lake"
[sources.lake]
kind = "files"
path = "lake"
[[sources.lake.tables]]
name = "scores"
pattern = "*.parquet"
key = ["id"]
[[sources.lake.tables]]
name = "tags"
pattern = "tags.csv"
mode = "full"
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["lake"]
mode = "append"
"#,
    )
    .unwrap();
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let db = tmp.path().join("out.duckdb");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM scores"), 1000);
    assert_eq!(
        duckdb_count(
            &db,
            "SELECT count(*) FROM scores WHERE id = 40 AND score = 50.00 AND day = DATE '2025-02-10'"
        ),
        1
    );
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM tags"), 2);

    // A full-refresh table is replaced, not appended to, when its file changes.
    std::fs::write(
        data.join("tags.csv"),
        "tag,weight\nred,1\nblue,2\ngreen,3\n",
    )
    .unwrap();
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM tags"), 3);
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM scores"), 1000);

    // Dropped, and the full-refresh table's file changed meanwhile: the
    // next run empties every table and loads what there is (one tag; the
    // appended scores once, not twice).
    std::fs::write(data.join("tags.csv"), "tag,weight\nred,1\n").unwrap();
    let (code, out, stderr) = syncline(&["drop", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{out}{stderr}");
    let (code, _, stderr) = syncline(&["run", "--once", "p.toml"], tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM tags"), 1);
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM scores"), 1000);
}

/// Writes `sql`'s rows to a Parquet file.
fn parquet(path: &Path, sql: &str) {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY ({sql}) TO '{}' (FORMAT parquet, ROW_GROUP_SIZE 2048)",
        path.display()
    ))
    .unwrap();
}

#[test]
fn parquet_streams_keeps_bytes_and_a_changed_file_is_diffed_by_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lake");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("part-1.parquet");
    // Bytes that are not text (0xff, NUL) in every row.
    parquet(
        &file,
        "SELECT i AS id, ('\\xFF\\x00' || i::VARCHAR)::BLOB AS raw, 'n' || i AS name
         FROM range(1, 10001) t(i)",
    );
    std::fs::write(
        tmp.path().join("p.toml"),
        r#"name = "lake"
[sources.lake]
kind = "files"
path = "lake"
batch_rows = 1000
[[sources.lake.tables]]
name = "blobs"
pattern = "*.parquet"
key = ["id"]
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["lake"]
"#,
    )
    .unwrap();
    run_once_ok(tmp.path());
    let db = tmp.path().join("out.duckdb");
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM blobs"), 10_000);
    assert_eq!(
        duckdb_count(
            &db,
            "SELECT count(*) FROM blobs WHERE raw = ('\\xFF\\x00' || id::VARCHAR)::BLOB"
        ),
        10_000,
        "binary values arrive as the bytes they are"
    );

    // Changed: rows 1..=100 gone, 101..=200 renamed, 10001..=10050 new.
    parquet(
        &file,
        "SELECT i AS id, ('\\xFF\\x00' || i::VARCHAR)::BLOB AS raw,
                CASE WHEN i <= 200 THEN 'renamed ' ELSE 'n' END || i AS name
         FROM range(101, 10051) t(i)",
    );
    run_once_ok(tmp.path());
    assert_eq!(duckdb_count(&db, "SELECT count(*) FROM blobs"), 9_950);
    assert_eq!(
        duckdb_count(&db, "SELECT count(*) FROM blobs WHERE id <= 100"),
        0
    );
    assert_eq!(
        duckdb_count(
            &db,
            "SELECT count(*) FROM blobs WHERE name LIKE 'renamed %'"
        ),
        100
    );
    assert_eq!(
        duckdb_count(
            &db,
            "SELECT count(*) FROM blobs WHERE raw = ('\\xFF\\x00' || id::VARCHAR)::BLOB"
        ),
        9_950
    );
}

#[test]
fn validate_check_discover_and_schema_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("d");
    let (code, _, stderr) = syncline(
        &["demo", demo.to_str().unwrap(), "--once", "--orders", "1200"],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let pipeline = demo.join("shop.toml");
    let p = pipeline.to_str().unwrap();

    let (code, out, _) = syncline(&["validate", p], tmp.path());
    assert_eq!(code, 0);
    assert!(out.contains("valid"), "{out}");

    let (code, out, _) = syncline(&["check", p], tmp.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[ok  ] folder is readable"), "{out}");
    assert!(out.contains("key: order_id"), "{out}");

    let (code, out, _) = syncline(&["discover", "--json", p], tmp.path());
    assert_eq!(code, 0);
    let tables: serde_json::Value = serde_json::from_str(&out).unwrap();
    let orders = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"]["name"] == "orders")
        .unwrap();
    let amount = orders["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "amount")
        .unwrap();
    assert_eq!(amount["data_type"]["type"], "decimal");
    assert_eq!(amount["data_type"]["scale"], 2);

    let (code, out, _) = syncline(&["status", "--json", p], tmp.path());
    assert_eq!(code, 0, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["status"]["state"], "stopped");
    assert_eq!(status["status"]["tables"]["shop.products"]["inserts"], 2000);

    let (code, out, _) = syncline(&["schema"], tmp.path());
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(schema["properties"]["sources"].is_object(), "{schema}");

    // A broken file: exit code 2 and a message naming file, line and field.
    std::fs::write(
        tmp.path().join("bad.toml"),
        "name = \"x\"\n[sources.a]\nkind = \"files\"\npth = \"d\"\n",
    )
    .unwrap();
    let (code, _, err) = syncline(&["validate", "bad.toml"], tmp.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:4:1"), "{err}");
    assert!(err.contains("unknown field `pth`"), "{err}");
    assert!(err.contains("did you mean `path`?"), "{err}");
}

/// Dead letters of a run's DuckDB target: (origin, reason), oldest first.
fn kept(db: &Path) -> Vec<(String, String)> {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT origin, reason FROM _syncline_dead_letters ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A folder `data` of `files` (name, content) under a fresh temp dir, and
/// a pipeline `p.toml` named `name` syncing its CSVs, keyed by `id`, into
/// `out.duckdb`.
fn items_folder(name: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (file, content) in files {
        std::fs::write(data.join(file), content).unwrap();
    }
    std::fs::write(
        tmp.path().join("p.toml"),
        format!(
            r#"name = "{name}"
[sources.src]
kind = "files"
path = "data"
[[sources.src.tables]]
name = "items"
pattern = "*.csv"
key = ["id"]
[targets.db]
kind = "duckdb"
path = "out.duckdb"
inputs = ["src"]
"#
        ),
    )
    .unwrap();
    tmp
}

fn run_once_ok(dir: &Path) {
    let (code, out, err) = syncline(&["run", "--once", "p.toml"], dir);
    assert_eq!(code, 0, "{out}{err}");
}

/// Files that cannot be read as a whole (empty, a header without the key)
/// are quarantined: one dead letter names each and why, the other files
/// sync, the run succeeds, and nothing is said twice; a quarantined file is
/// read again once it is fixed. A column only a later file has is a column
/// of the table, at start or while running. A key two files share stays
/// while either still has it.
#[test]
fn unreadable_files_are_quarantined_and_shared_keys_survive_one_file() {
    let tmp = items_folder(
        "quarantine",
        &[
            ("a.csv", "id,name\n1,one\n2,two\n"),
            ("b.csv", "id,name,note\n2,two,shared\n3,three,b only\n"),
            ("c_empty.csv", ""),
            ("d_nokey.csv", "name\nnine\n"),
        ],
    );
    let data = tmp.path().join("data");
    run_once_ok(tmp.path());
    let db = tmp.path().join("out.duckdb");
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(items.keys().cloned().collect::<Vec<_>>(), ["1", "2", "3"]);
    assert_eq!(items["3"], ["3", "three", "b only"], "b.csv's own column");
    let letters = kept(&db);
    let origins: Vec<&str> = letters.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(origins, ["c_empty.csv", "d_nokey.csv"], "{letters:?}");
    for (_, reason) in &letters {
        assert!(reason.contains("cannot be read"), "{reason}");
    }
    assert!(letters[1].1.contains("no key column `id`"), "{letters:?}");

    // Nothing changed: nothing said again.
    run_once_ok(tmp.path());
    assert_eq!(kept(&db).len(), 2);

    // While it runs: b.csv goes (key 3, b only, goes with it; key 2, also
    // in a.csv, stays), a file arrives with a column the table does not
    // have yet (it becomes one), and the file without the key is fixed
    // (read).
    let mut run = Running::start(&tmp.path().join("p.toml"), &[]);
    run.wait_for("following", Duration::from_secs(60), |s| {
        s["tables"]["src.items"]["phase"] == "streaming"
    });
    std::fs::remove_file(data.join("b.csv")).unwrap();
    std::fs::write(data.join("e_extra.csv"), "id,name,colour\n5,five,red\n").unwrap();
    std::fs::write(data.join("d_nokey.csv"), "id,name\n9,nine\n").unwrap();
    run.wait_for("changes applied", Duration::from_secs(60), |s| {
        total(s, "deletes") >= 1 && total(s, "inserts") >= 2
    });
    assert_eq!(run.interrupt(), 0);
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(
        items.keys().cloned().collect::<Vec<_>>(),
        ["1", "2", "5", "9"]
    );
    assert_eq!(items["5"], ["5", "five", "", "red"], "the added column");
    assert_eq!(
        items["1"],
        ["1", "one", "", ""],
        "NULL in it for older rows"
    );
    assert_eq!(kept(&db).len(), 2, "{:?}", kept(&db));

    // A restart changes nothing and says nothing twice.
    run_once_ok(tmp.path());
    let (after, _) = duckdb_rows(&db, "items");
    assert_eq!(after, items);
    assert_eq!(kept(&db).len(), 2, "nothing said twice");
}

/// A header that names a column twice quarantines its file; a value under
/// a field with no name in the header is a dead letter, not dropped.
#[test]
fn headers_that_lose_values_are_refused() {
    let tmp = items_folder(
        "headers",
        &[
            ("a.csv", "id,name,\n1,one,\n2,two,extra\n"),
            ("b.csv", "id,name,name\n3,three,tres\n"),
        ],
    );
    run_once_ok(tmp.path());
    let db = tmp.path().join("out.duckdb");
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(items.keys().cloned().collect::<Vec<_>>(), ["1"]);
    assert_eq!(items["1"], ["1", "one"], "no column without a name");
    let letters = kept(&db);
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].0, "a.csv");
    assert!(letters[0].1.contains("no column name"), "{letters:?}");
    assert_eq!(letters[1].0, "b.csv");
    assert!(letters[1].1.contains("`name` twice"), "{letters:?}");
}

/// A key a file holds twice is refused, not picked: neither row is kept,
/// one dead letter names the key and how often, and nothing is said twice
/// on a restart. Once the file holds the key once, its row arrives, even
/// when it is the very row written last before (the diff knows the target
/// does not hold it), and a key that leaves a file stays while another
/// file still holds it.
#[test]
fn a_key_a_file_holds_twice_is_refused_not_picked() {
    let tmp = items_folder(
        "twice",
        &[
            (
                "a.csv",
                "id,name\n1,one\n2,first\n3,three\n2,second\n7,seven\n",
            ),
            ("b.csv", "id,name\n8,eight\n8,acht\n9,nine\n"),
            ("c.csv", "id,name\n9,neun\n"),
        ],
    );
    let data = tmp.path().join("data");
    run_once_ok(tmp.path());
    let db = tmp.path().join("out.duckdb");
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(
        items.keys().cloned().collect::<Vec<_>>(),
        ["1", "3", "7", "9"],
        "{items:?}"
    );
    let letters = kept(&db);
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].0, "a.csv");
    assert!(
        letters[0]
            .1
            .contains("the key {\"id\":2} appears 2 times in this file")
            && letters[0].1.contains("none of its rows is taken"),
        "{letters:?}"
    );
    assert_eq!(letters[1].0, "b.csv");
    assert!(
        letters[1].1.contains("the key {\"id\":8} appears 2 times"),
        "{letters:?}"
    );

    // Nothing changed: nothing said again.
    run_once_ok(tmp.path());
    assert_eq!(kept(&db).len(), 2);

    // Fixed, keeping the row written last: it arrives; b.csv fixed too,
    // and without key 9, which c.csv holds.
    std::fs::write(
        data.join("a.csv"),
        "id,name\n1,one\n3,three\n2,second\n7,seven\n",
    )
    .unwrap();
    std::fs::write(data.join("b.csv"), "id,name\n8,acht\n").unwrap();
    run_once_ok(tmp.path());
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(
        items.keys().cloned().collect::<Vec<_>>(),
        ["1", "2", "3", "7", "8", "9"],
        "{items:?}"
    );
    assert_eq!(items["2"], ["2", "second"]);
    assert_eq!(items["8"], ["8", "acht"]);
    assert_eq!(items["9"], ["9", "neun"], "c.csv still holds key 9");
    assert_eq!(kept(&db).len(), 2, "{:?}", kept(&db));

    // A changed file that now holds a key twice: the key goes.
    std::fs::write(
        data.join("a.csv"),
        "id,name\n1,one\n3,three\n2,second\n7,seven\n3,tres\n",
    )
    .unwrap();
    run_once_ok(tmp.path());
    let (items, _) = duckdb_rows(&db, "items");
    assert_eq!(
        items.keys().cloned().collect::<Vec<_>>(),
        ["1", "2", "7", "8", "9"],
        "{items:?}"
    );
    let letters = kept(&db);
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(
        letters[2].1.contains("the key {\"id\":3} appears 2 times"),
        "{letters:?}"
    );
}
