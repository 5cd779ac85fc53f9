//! Integration tests of the DuckDB target against real database files.
//!
//! Every test writes through the public blocking [`Writer`] (or once through
//! the async [`DuckDbSink`]) into a DuckDB file in its own temp dir, drops
//! the writer, and reads the file back with a fresh connection.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use duckdb::Connection;
use serde_json::json;
use syncline_acceptance::fixtures;
use syncline_duckdb::{
    CHECKPOINT_TABLE, DEAD_LETTER_TABLE, DuckDbSink, DuckDbTargetConfig, Writer,
};
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::{CheckOutcome, Sink};
use syncline_engine::model::{
    Change, Column, DataType, DeadLetter, Op, Row, TableId, TableSchema, Value,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A database file in a fresh temp dir (kept alive by the returned guard).
fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.duckdb");
    (dir, path)
}

fn table(name: &str, cols: &[(&str, DataType)], key: &[usize]) -> Arc<TableSchema> {
    table_v(name, cols, key, 1)
}

fn table_v(name: &str, cols: &[(&str, DataType)], key: &[usize], version: u32) -> Arc<TableSchema> {
    fixtures::table(name, cols, key, version)
}

/// `items(id BIGINT key, name VARCHAR, qty INTEGER)`.
fn items() -> Arc<TableSchema> {
    table(
        "items",
        &[
            ("id", DataType::Int64),
            ("name", DataType::Text),
            ("qty", DataType::Int32),
        ],
        &[0],
    )
}

fn i(v: i64) -> Value {
    Value::Int(v)
}

fn s(v: &str) -> Value {
    Value::Text(v.into())
}

fn ins(t: &Arc<TableSchema>, row: Row) -> Change {
    fixtures::change(Op::Insert, t, row)
}

fn upd(t: &Arc<TableSchema>, row: Row) -> Change {
    fixtures::change(Op::Update, t, row)
}

/// A delete carrying the full `before` row.
fn del(t: &Arc<TableSchema>, row: Row) -> Change {
    fixtures::change(Op::Delete, t, row)
}

/// A delete carrying only the key (other columns NULL), as the files source
/// sends for removed files.
fn del_key(t: &Arc<TableSchema>, key: &[Value]) -> Change {
    let mut row = vec![Value::Null; t.columns.len()];
    for (&k, v) in t.key.iter().zip(key) {
        row[k] = v.clone();
    }
    del(t, row)
}

fn trunc(t: &Arc<TableSchema>) -> Change {
    fixtures::change(Op::Truncate, t, Vec::new())
}

fn position(seq: u64) -> Position {
    Position {
        seq,
        state: json!({ "lsn": format!("0/{seq:X}"), "files": { "a.csv": seq } }),
    }
}

fn batch(seq: u64, changes: Vec<Change>) -> Batch {
    Batch {
        position: position(seq),
        kind: BatchKind::Stream,
        txid: None,
        commit_time: None,
        changes,
        block: None,
        dead_letters: vec![],
        inserts_are_new: false,
    }
}

/// Opens a writer and prepares `tables`, returning the stored checkpoints.
fn open(
    path: &Path,
    pipeline: &str,
    mode: WriteMode,
    tables: &[&Arc<TableSchema>],
) -> (Writer, BTreeMap<String, Position>) {
    let mut w = Writer::open(path, pipeline, mode, "main").unwrap();
    let tables: Vec<Arc<TableSchema>> = tables.iter().map(|&t| t.clone()).collect();
    let held = w.prepare(&tables).unwrap();
    (w, held)
}

/// Renders one result value; every test compares these strings.
fn render(v: duckdb::types::Value) -> String {
    use duckdb::types::Value as V;
    match v {
        V::Null => "NULL".into(),
        V::Boolean(b) => b.to_string(),
        V::TinyInt(x) => x.to_string(),
        V::SmallInt(x) => x.to_string(),
        V::Int(x) => x.to_string(),
        V::BigInt(x) => x.to_string(),
        V::HugeInt(x) => x.to_string(),
        V::UTinyInt(x) => x.to_string(),
        V::USmallInt(x) => x.to_string(),
        V::UInt(x) => x.to_string(),
        V::UBigInt(x) => x.to_string(),
        V::Double(x) => x.to_string(),
        V::Text(x) => x,
        other => format!("{other:?}"),
    }
}

/// Runs `sql` on a fresh connection (session time zone UTC) and returns
/// every row as strings. The writer must be dropped first: one process must
/// not hold two DuckDB instances of one file.
fn rows(path: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("SET TimeZone = 'UTC'").unwrap();
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let n = row.as_ref().column_count();
        out.push(
            (0..n)
                .map(|c| render(row.get::<_, duckdb::types::Value>(c).unwrap()))
                .collect(),
        );
    }
    out
}

fn r(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// `(pipeline, source, seq)` of every stored checkpoint.
fn checkpoints(path: &Path) -> Vec<Vec<String>> {
    rows(
        path,
        &format!("SELECT pipeline, source, seq FROM {CHECKPOINT_TABLE} ORDER BY pipeline, source"),
    )
}

fn micros(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
        .timestamp_micros()
}

// ---------------------------------------------------------------------------
// 1. Upsert
// ---------------------------------------------------------------------------

#[test]
fn upsert_last_change_per_key_wins_within_a_batch() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, held) = open(&path, "p", WriteMode::Upsert, &[&t]);
    assert!(held.is_empty());
    let applied = w
        .write(
            "src",
            &batch(
                1,
                vec![
                    ins(&t, vec![i(1), s("a"), i(1)]),
                    ins(&t, vec![i(2), s("b"), i(2)]),
                    ins(&t, vec![i(3), s("c"), i(3)]),
                    // update after insert of the same key
                    upd(&t, vec![i(1), s("a2"), i(10)]),
                    // insert then delete: gone
                    del(&t, vec![i(2), s("b"), i(2)]),
                    // delete then re-insert in one batch: present
                    ins(&t, vec![i(4), s("d"), i(4)]),
                    del_key(&t, &[i(4)]),
                    ins(&t, vec![i(4), s("d2"), i(40)]),
                    // an update of a key the target does not hold inserts it
                    upd(&t, vec![i(5), s("e"), Value::Null]),
                    // many updates: the last one wins, not the first
                    ins(&t, vec![i(6), s("f1"), i(1)]),
                    upd(&t, vec![i(6), s("f2"), i(2)]),
                    upd(&t, vec![i(6), s("f3"), i(3)]),
                ],
            ),
        )
        .unwrap();
    assert!(applied);
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY id"),
        vec![
            r(&["1", "a2", "10"]),
            r(&["3", "c", "3"]),
            r(&["4", "d2", "40"]),
            r(&["5", "e", "NULL"]),
            r(&["6", "f3", "3"]),
        ]
    );
}

#[test]
fn upsert_across_batches_updates_deletes_and_reinserts() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &batch(
            1,
            vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                ins(&t, vec![i(2), s("b"), i(2)]),
                ins(&t, vec![i(3), s("c"), i(3)]),
                ins(&t, vec![i(4), s("d"), i(4)]),
            ],
        ),
    )
    .unwrap();
    assert!(
        w.write(
            "src",
            &batch(
                2,
                vec![
                    upd(&t, vec![i(3), s("c2"), i(30)]),
                    del_key(&t, &[i(1)]),
                    // deleted here, re-inserted in batch 3
                    del(&t, vec![i(2), s("b"), i(2)]),
                    // deleting a key the target never had is a no-op
                    del_key(&t, &[i(99)]),
                    // an insert of a key already held replaces it (no duplicate)
                    ins(&t, vec![i(4), s("d2"), i(44)]),
                    // insert then delete of a new key: never visible
                    ins(&t, vec![i(7), s("g"), i(7)]),
                    del_key(&t, &[i(7)]),
                ],
            ),
        )
        .unwrap()
    );
    w.write(
        "src",
        &batch(
            3,
            vec![
                // re-insert of a key deleted in an earlier batch
                ins(&t, vec![i(2), s("b3"), i(222)]),
                // delete then re-insert of a key held from an earlier batch
                del_key(&t, &[i(3)]),
                ins(&t, vec![i(3), s("c3"), i(333)]),
            ],
        ),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY id"),
        vec![
            r(&["2", "b3", "222"]),
            r(&["3", "c3", "333"]),
            r(&["4", "d2", "44"]),
        ]
    );
    assert_eq!(
        rows(&path, "SELECT count(*), count(DISTINCT id) FROM items"),
        vec![r(&["3", "3"])]
    );
}

#[test]
fn upsert_composite_key() {
    let (_dir, path) = db();
    // Key columns are neither first nor in column order: (order_id, line).
    let t = table(
        "lines",
        &[
            ("sku", DataType::Text),
            ("line", DataType::Int32),
            ("order_id", DataType::Int64),
            (
                "amount",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
        ],
        &[2, 1],
    );
    let d = |x: &str| Value::Decimal(x.into());
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &batch(
            1,
            vec![
                ins(&t, vec![s("apple"), i(1), i(100), d("1.50")]),
                ins(&t, vec![s("pear"), i(2), i(100), d("2.00")]),
                ins(&t, vec![s("plum"), i(1), i(200), d("3.25")]),
                // same line number, other order: a different key
                ins(&t, vec![s("fig"), i(2), i(200), d("4")]),
            ],
        ),
    )
    .unwrap();
    w.write(
        "src",
        &batch(
            2,
            vec![
                upd(&t, vec![s("pear"), i(2), i(100), d("2.99")]),
                del_key(&t, &[i(200), i(1)]),
                ins(&t, vec![s("kiwi"), i(3), i(200), d("-0.01")]),
                // key (1, 200) deleted and the line renumbered: key (200, 1) stays gone
                upd(&t, vec![s("fig"), i(2), i(200), d("4.10")]),
            ],
        ),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        rows(
            &path,
            "SELECT order_id, line, sku, CAST(amount AS VARCHAR) FROM lines ORDER BY order_id, line"
        ),
        vec![
            r(&["100", "1", "apple", "1.50"]),
            r(&["100", "2", "pear", "2.99"]),
            r(&["200", "2", "fig", "4.10"]),
            r(&["200", "3", "kiwi", "-0.01"]),
        ]
    );
}

#[test]
fn upsert_truncate_in_the_middle_of_a_batch() {
    let (_dir, path) = db();
    let t = items();
    let other = table("other", &[("id", DataType::Int64)], &[0]);
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t, &other]);
    w.write(
        "src",
        &batch(
            1,
            vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                ins(&t, vec![i(2), s("b"), i(2)]),
                ins(&t, vec![i(3), s("c"), i(3)]),
                ins(&other, vec![i(1)]),
            ],
        ),
    )
    .unwrap();
    w.write(
        "src",
        &batch(
            2,
            vec![
                ins(&t, vec![i(4), s("before"), i(4)]),
                upd(&t, vec![i(1), s("a-before"), i(1)]),
                ins(&other, vec![i(2)]),
                trunc(&t),
                ins(&t, vec![i(5), s("after"), i(5)]),
                // a key that existed before the truncate comes back
                ins(&t, vec![i(2), s("b-after"), i(22)]),
                upd(&t, vec![i(6), s("upd-after"), i(6)]),
                ins(&other, vec![i(3)]),
            ],
        ),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY id"),
        vec![
            r(&["2", "b-after", "22"]),
            r(&["5", "after", "5"]),
            r(&["6", "upd-after", "6"]),
        ]
    );
    // The truncate only touches its own table.
    assert_eq!(
        rows(&path, "SELECT id FROM other ORDER BY id"),
        vec![r(&["1"]), r(&["2"]), r(&["3"])]
    );
}

#[test]
fn upsert_without_a_key_is_refused() {
    let (_dir, path) = db();
    let t = table("nokey", &[("v", DataType::Text)], &[]);
    let mut w = Writer::open(&path, "p", WriteMode::Upsert, "main").unwrap();
    // Refused when prepared, or at the latest when written to.
    let refused = match w.prepare(std::slice::from_ref(&t)) {
        Err(e) => e.to_string(),
        Ok(_) => w
            .write("src", &batch(1, vec![ins(&t, vec![s("x")])]))
            .unwrap_err()
            .to_string(),
    };
    assert!(refused.contains("key"), "{refused}");
    // A table first seen mid-stream is refused too.
    let err = w
        .write("src", &batch(1, vec![ins(&t, vec![s("x")])]))
        .unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    drop(w);
    assert!(checkpoints(&path).is_empty());
}

// ---------------------------------------------------------------------------
// 2. Redelivery and checkpoints
// ---------------------------------------------------------------------------

#[test]
fn redelivered_batches_are_skipped_and_change_nothing() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    for seq in 1..=3 {
        let id = i64::try_from(seq).unwrap();
        assert!(
            w.write(
                "src",
                &batch(seq, vec![ins(&t, vec![i(id), s("v1"), i(id)])])
            )
            .unwrap()
        );
    }
    // Equal and lower seqs are skipped, even with other content.
    for seq in [3, 2, 1] {
        let mut b = batch(seq, vec![trunc(&t), ins(&t, vec![i(100), s("dup"), i(0)])]);
        b.position.state = json!("must not be stored");
        b.dead_letters.push(dead_letter("x", "must not be stored"));
        assert!(!w.write("src", &b).unwrap(), "seq {seq} must be skipped");
    }
    drop(w);
    let data = "SELECT id, name FROM items ORDER BY id";
    let expected = vec![r(&["1", "v1"]), r(&["2", "v1"]), r(&["3", "v1"])];
    assert_eq!(rows(&path, data), expected);
    assert_eq!(checkpoints(&path), vec![r(&["p", "src", "3"])]);
    assert_eq!(
        rows(&path, &format!("SELECT count(*) FROM {DEAD_LETTER_TABLE}")),
        vec![r(&["0"])]
    );

    // After reopening, prepare returns the checkpoint with its state, and the
    // skip still holds.
    let (mut w, held) = open(&path, "p", WriteMode::Upsert, &[&t]);
    assert_eq!(held, BTreeMap::from([("src".to_owned(), position(3))]));
    assert!(
        !w.write(
            "src",
            &batch(3, vec![ins(&t, vec![i(100), s("dup"), i(0)])])
        )
        .unwrap()
    );
    // A new batch is applied, and gaps in seq are fine.
    assert!(
        w.write("src", &batch(7, vec![ins(&t, vec![i(7), s("new"), i(7)])]))
            .unwrap()
    );
    drop(w);
    assert_eq!(
        rows(&path, data),
        vec![
            r(&["1", "v1"]),
            r(&["2", "v1"]),
            r(&["3", "v1"]),
            r(&["7", "new"]),
        ]
    );
    assert_eq!(checkpoints(&path), vec![r(&["p", "src", "7"])]);
    assert_eq!(
        rows(
            &path,
            &format!("SELECT CAST(position AS VARCHAR) FROM {CHECKPOINT_TABLE}")
        ),
        vec![r(&[&serde_json::to_string(&position(7).state).unwrap()])]
    );
}

#[test]
fn checkpoints_are_per_source() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    assert!(
        w.write("a", &batch(10, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
            .unwrap()
    );
    // Source b's seq 1 is below a's checkpoint but is b's first batch.
    assert!(
        w.write("b", &batch(1, vec![ins(&t, vec![i(2), s("b"), i(2)])]))
            .unwrap()
    );
    assert!(
        !w.write("b", &batch(1, vec![ins(&t, vec![i(3), s("x"), i(3)])]))
            .unwrap()
    );
    assert!(w.write("a", &batch(11, vec![])).unwrap());
    drop(w);
    assert_eq!(
        checkpoints(&path),
        vec![r(&["p", "a", "11"]), r(&["p", "b", "1"])]
    );
    let (_w, held) = open(&path, "p", WriteMode::Upsert, &[&t]);
    assert_eq!(
        held,
        BTreeMap::from([
            ("a".to_owned(), position(11)),
            ("b".to_owned(), position(1))
        ])
    );
    drop(_w);
    assert_eq!(
        rows(&path, "SELECT id FROM items ORDER BY id"),
        vec![r(&["1"]), r(&["2"])]
    );
}

#[test]
fn two_pipelines_in_one_file_keep_separate_checkpoints() {
    let (_dir, path) = db();
    let t1 = table("from_p1", &[("id", DataType::Int64)], &[0]);
    let t2 = table("from_p2", &[("id", DataType::Int64)], &[0]);

    let (mut w, held) = open(&path, "p1", WriteMode::Upsert, &[&t1]);
    assert!(held.is_empty());
    assert!(
        w.write("src", &batch(5, vec![ins(&t1, vec![i(1)])]))
            .unwrap()
    );
    drop(w);

    // p2 does not see p1's checkpoint: its seq 1 is applied.
    let (mut w, held) = open(&path, "p2", WriteMode::Append, &[&t2]);
    assert!(held.is_empty(), "{held:?}");
    assert!(
        w.write("src", &batch(1, vec![ins(&t2, vec![i(1)])]))
            .unwrap()
    );
    assert!(
        w.write("src", &batch(2, vec![ins(&t2, vec![i(2)])]))
            .unwrap()
    );
    drop(w);

    let (mut w, held) = open(&path, "p1", WriteMode::Upsert, &[&t1]);
    assert_eq!(held, BTreeMap::from([("src".to_owned(), position(5))]));
    assert!(
        !w.write("src", &batch(2, vec![ins(&t1, vec![i(99)])]))
            .unwrap()
    );
    drop(w);
    let (_w, held) = open(&path, "p2", WriteMode::Append, &[&t2]);
    assert_eq!(held, BTreeMap::from([("src".to_owned(), position(2))]));
    drop(_w);

    assert_eq!(
        checkpoints(&path),
        vec![r(&["p1", "src", "5"]), r(&["p2", "src", "2"])]
    );
    assert_eq!(rows(&path, "SELECT id FROM from_p1"), vec![r(&["1"])]);
    assert_eq!(
        rows(&path, "SELECT id FROM from_p2 ORDER BY id"),
        vec![r(&["1"]), r(&["2"])]
    );
}

// ---------------------------------------------------------------------------
// 3. Atomicity
// ---------------------------------------------------------------------------

#[test]
fn a_value_of_the_wrong_type_costs_its_row_not_the_batch() {
    let (_dir, path) = db();
    let t = table(
        "items",
        &[
            ("id", DataType::Int64),
            ("name", DataType::Text),
            ("stock", DataType::Int64),
        ],
        &[0],
    );
    let other = table("other", &[("id", DataType::Int64)], &[0]);
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t, &other]);
    w.write("src", &batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
        .unwrap();

    // Valid changes to another table (merged first), a truncate, valid
    // changes, a dead letter, then a text value in a BIGINT column.
    let mut bad = batch(
        2,
        vec![
            ins(&other, vec![i(1)]),
            upd(&t, vec![i(1), s("changed"), i(2)]),
            trunc(&t),
            ins(&t, vec![i(2), s("b"), i(2)]),
            ins(&t, vec![i(3), s("c"), s("many")]),
        ],
    );
    bad.dead_letters.push(dead_letter("x,y", "bad line"));
    // The bad row is set aside as a dead letter naming column and value;
    // the rest of the batch is applied.
    assert!(w.write("src", &bad).unwrap());
    let kept = w.dead_letters().unwrap();
    let reasons: Vec<&str> = kept.iter().map(|k| k.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "bad line");
    assert!(
        reasons[1].contains("`stock`") && reasons[1].contains("many"),
        "the reason names the column and the value: {}",
        reasons[1]
    );
    // Redelivered: skipped, nothing kept twice.
    assert!(!w.write("src", &bad).unwrap());
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, stock FROM items ORDER BY id"),
        vec![r(&["2", "b", "2"])]
    );
    assert_eq!(rows(&path, "SELECT id FROM other"), vec![r(&["1"])]);
    assert_eq!(
        rows(&path, &format!("SELECT count(*) FROM {DEAD_LETTER_TABLE}")),
        vec![r(&["2"])]
    );
    assert_eq!(checkpoints(&path), vec![r(&["p", "src", "2"])]);
}

#[test]
fn a_failed_batch_leaves_data_checkpoint_and_dead_letters_unchanged() {
    let (_dir, path) = db();
    let t = items();
    let ids = table(
        "ids",
        &[("id", DataType::Int64), ("u", DataType::Uuid)],
        &[0],
    );
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t, &ids]);
    w.write("src", &batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
        .unwrap();
    let mut bad = batch(
        2,
        vec![
            ins(&t, vec![i(2), s("b"), i(2)]),
            del_key(&t, &[i(1)]),
            // Text DuckDB's cast to UUID refuses while merging.
            ins(&ids, vec![i(3), s("not-a-uuid")]),
        ],
    );
    bad.dead_letters.push(dead_letter("x", "bad"));
    let err = w.write("src", &bad).unwrap_err();
    assert!(err.to_string().contains("ids"), "{err}");
    drop(w);

    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY id"),
        vec![r(&["1", "a", "1"])]
    );
    assert_eq!(checkpoints(&path), vec![r(&["p", "src", "1"])]);
    assert_eq!(
        rows(&path, &format!("SELECT count(*) FROM {DEAD_LETTER_TABLE}")),
        vec![r(&["0"])]
    );
    let (_w, held) = open(&path, "p", WriteMode::Upsert, &[&t, &ids]);
    assert_eq!(held["src"].seq, 1);
}

/// A failure inside DuckDB itself (a text that is not a UUID, cast while
/// merging) comes after rows were staged and another table merged: all of
/// it is rolled back, and the staged rows do not leak into the next batch.
#[test]
fn a_failure_while_merging_rolls_back_staged_and_merged_rows() {
    let t = items();
    let ids = table(
        "ids",
        &[("id", DataType::Int64), ("u", DataType::Uuid)],
        &[0],
    );
    let uuid = "123e4567-e89b-12d3-a456-426614174000";
    for mode in [WriteMode::Upsert, WriteMode::Append, WriteMode::History] {
        let (_dir, path) = db();
        let (mut w, _) = open(&path, "p", mode, &[&t, &ids]);
        let bad = batch(
            1,
            vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                ins(&ids, vec![i(1), s(uuid)]),
                ins(&ids, vec![i(2), s("not-a-uuid")]),
            ],
        );
        assert!(w.write("src", &bad).is_err(), "{mode:?}");
        assert!(
            w.write("src", &batch(1, vec![ins(&ids, vec![i(3), s(uuid)])]))
                .unwrap()
        );
        drop(w);
        assert_eq!(
            rows(&path, "SELECT count(*) FROM items"),
            vec![r(&["0"])],
            "{mode:?}"
        );
        assert_eq!(
            rows(&path, "SELECT id, CAST(u AS VARCHAR) FROM ids ORDER BY id"),
            vec![r(&["3", uuid])],
            "{mode:?}"
        );
        assert_eq!(checkpoints(&path), vec![r(&["p", "src", "1"])]);
    }
}

// ---------------------------------------------------------------------------
// 4. Append and history modes
// ---------------------------------------------------------------------------

#[test]
fn append_keeps_every_insert_and_update_and_ignores_deletes() {
    let (_dir, path) = db();
    let keyed = items();
    // Append needs no key.
    let log = table("log", &[("msg", DataType::Text)], &[]);
    let (mut w, _) = open(&path, "p", WriteMode::Append, &[&keyed, &log]);
    w.write(
        "src",
        &batch(
            1,
            vec![
                ins(&keyed, vec![i(1), s("a"), i(1)]),
                upd(&keyed, vec![i(1), s("b"), i(2)]),
                del(&keyed, vec![i(1), s("b"), i(2)]),
                ins(&keyed, vec![i(2), s("c"), i(3)]),
                ins(&log, vec![s("hello")]),
                ins(&log, vec![s("hello")]),
            ],
        ),
    )
    .unwrap();
    w.write(
        "src",
        &batch(
            2,
            vec![
                upd(&keyed, vec![i(2), s("d"), i(4)]),
                del_key(&keyed, &[i(2)]),
                // the same insert again is a new row
                ins(&keyed, vec![i(1), s("a"), i(1)]),
                del(&log, vec![s("hello")]),
            ],
        ),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY qty, id"),
        vec![
            r(&["1", "a", "1"]),
            r(&["1", "a", "1"]),
            r(&["1", "b", "2"]),
            r(&["2", "c", "3"]),
            r(&["2", "d", "4"]),
        ]
    );
    // Rows land in change order.
    assert_eq!(
        rows(&path, "SELECT name FROM items ORDER BY rowid"),
        vec![r(&["a"]), r(&["b"]), r(&["c"]), r(&["d"]), r(&["a"])]
    );
    assert_eq!(
        rows(&path, "SELECT msg FROM log"),
        vec![r(&["hello"]), r(&["hello"])]
    );
    // No bookkeeping columns in append mode.
    assert_eq!(
        rows(
            &path,
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' ORDER BY ordinal_position"
        ),
        vec![r(&["id"]), r(&["name"]), r(&["qty"])]
    );
}

/// A truncate does empty an append table (full-refresh file tables are
/// replaced this way), in the middle of a batch like in upsert mode.
#[test]
fn append_truncate_empties_the_table() {
    let (_dir, path) = db();
    let log = table("log", &[("msg", DataType::Text)], &[]);
    let (mut w, _) = open(&path, "p", WriteMode::Append, &[&log]);
    w.write(
        "src",
        &batch(
            1,
            vec![ins(&log, vec![s("old")]), ins(&log, vec![s("old")])],
        ),
    )
    .unwrap();
    w.write(
        "src",
        &batch(
            2,
            vec![
                ins(&log, vec![s("before")]),
                trunc(&log),
                ins(&log, vec![s("after")]),
                upd(&log, vec![s("after 2")]),
                del(&log, vec![s("after")]),
            ],
        ),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        rows(&path, "SELECT msg FROM log ORDER BY rowid"),
        vec![r(&["after"]), r(&["after 2"])]
    );
}

#[test]
fn history_keeps_every_change_with_its_metadata() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::History, &[&t]);
    let before = Utc::now().timestamp_micros();
    let mut b7 = batch(
        7,
        vec![
            ins(&t, vec![i(1), s("a"), i(1)]),
            upd(&t, vec![i(1), s("b"), i(2)]),
            ins(&t, vec![i(2), s("x"), i(9)]),
        ],
    );
    b7.commit_time =
        Some(DateTime::from_timestamp_micros(micros("2024-05-01T12:00:00.123456Z")).unwrap());
    w.write("src", &b7).unwrap();
    w.write(
        "src",
        &batch(
            8,
            vec![
                del(&t, vec![i(1), s("b"), i(2)]),
                trunc(&t),
                ins(&t, vec![i(3), s("c"), i(3)]),
                del_key(&t, &[i(3)]),
            ],
        ),
    )
    .unwrap();
    let after = Utc::now().timestamp_micros();
    drop(w);

    assert_eq!(
        rows(
            &path,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'items' ORDER BY ordinal_position"
        ),
        vec![
            r(&["_op", "VARCHAR"]),
            r(&["_seq", "UBIGINT"]),
            r(&["_commit_time", "TIMESTAMP WITH TIME ZONE"]),
            r(&["_synced_at", "TIMESTAMP WITH TIME ZONE"]),
            r(&["id", "BIGINT"]),
            r(&["name", "VARCHAR"]),
            r(&["qty", "INTEGER"]),
        ]
    );
    assert_eq!(
        rows(
            &path,
            "SELECT _op, _seq, CAST(_commit_time AS VARCHAR), id, name, qty FROM items ORDER BY rowid"
        ),
        vec![
            r(&["i", "7", "2024-05-01 12:00:00.123456+00", "1", "a", "1"]),
            r(&["u", "7", "2024-05-01 12:00:00.123456+00", "1", "b", "2"]),
            r(&["i", "7", "2024-05-01 12:00:00.123456+00", "2", "x", "9"]),
            r(&["d", "8", "NULL", "1", "b", "2"]),
            r(&["t", "8", "NULL", "NULL", "NULL", "NULL"]),
            r(&["i", "8", "NULL", "3", "c", "3"]),
            // a key-only delete is recorded with the key and NULLs
            r(&["d", "8", "NULL", "3", "NULL", "NULL"]),
        ]
    );
    let synced = rows(
        &path,
        "SELECT min(epoch_us(_synced_at)), max(epoch_us(_synced_at)), count(_synced_at), count(*) FROM items",
    );
    let (min, max): (i64, i64) = (synced[0][0].parse().unwrap(), synced[0][1].parse().unwrap());
    assert!(
        before <= min && max <= after,
        "{before} <= {min} <= {max} <= {after}"
    );
    assert_eq!(synced[0][2], synced[0][3], "every row has _synced_at");
}

// ---------------------------------------------------------------------------
// 5. Dead letters
// ---------------------------------------------------------------------------

fn dead_letter(raw: &str, reason: &str) -> DeadLetter {
    DeadLetter {
        table: TableId {
            origin: "src".into(),
            name: "items".into(),
        },
        origin: "data/a.csv".into(),
        line: Some(7),
        raw: raw.into(),
        reason: reason.into(),
        stage: Default::default(),
        kept: None,
    }
}

#[test]
fn dead_letters_are_written_with_the_batch() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "pipe", WriteMode::Upsert, &[&t]);
    let mut b = batch(4, vec![ins(&t, vec![i(1), s("a"), i(1)])]);
    b.dead_letters.push(dead_letter(
        "1,\"x\",oops",
        "column qty: \"oops\" is not an int",
    ));
    b.dead_letters.push(DeadLetter {
        table: TableId {
            origin: "src".into(),
            name: "events".into(),
        },
        origin: "0/16B3748".into(),
        line: None,
        raw: "{\"broken\": ".into(),
        reason: "invalid JSON: EOF while parsing — ünïcödé".into(),
        stage: Default::default(),
        kept: None,
    });
    let before = Utc::now().timestamp_micros();
    assert!(w.write("src", &b).unwrap());
    // A batch with nothing but dead letters also moves the checkpoint.
    let mut only = batch(5, vec![]);
    only.dead_letters.push(dead_letter("", "empty line"));
    assert!(w.write("other", &only).unwrap());
    // Redelivery does not record them twice.
    assert!(!w.write("src", &b).unwrap());
    let after = Utc::now().timestamp_micros();
    drop(w);

    assert_eq!(
        rows(
            &path,
            &format!(
                "SELECT pipeline, source, table_name, origin, line, raw, reason, seq
                 FROM {DEAD_LETTER_TABLE} ORDER BY seq, line NULLS LAST"
            )
        ),
        vec![
            r(&[
                "pipe",
                "src",
                "items",
                "data/a.csv",
                "7",
                "1,\"x\",oops",
                "column qty: \"oops\" is not an int",
                "4",
            ]),
            r(&[
                "pipe",
                "src",
                "events",
                "0/16B3748",
                "NULL",
                "{\"broken\": ",
                "invalid JSON: EOF while parsing — ünïcödé",
                "4",
            ]),
            r(&[
                "pipe",
                "other",
                "items",
                "data/a.csv",
                "7",
                "",
                "empty line",
                "5"
            ]),
        ]
    );
    let recorded = rows(
        &path,
        &format!(
            "SELECT min(epoch_us(recorded_at)), max(epoch_us(recorded_at)) FROM {DEAD_LETTER_TABLE}"
        ),
    );
    let (min, max): (i64, i64) = (
        recorded[0][0].parse().unwrap(),
        recorded[0][1].parse().unwrap(),
    );
    assert!(
        before <= min && max <= after,
        "{before} <= {min} <= {max} <= {after}"
    );
    assert_eq!(
        checkpoints(&path),
        vec![r(&["pipe", "other", "5"]), r(&["pipe", "src", "4"])]
    );
    assert_eq!(rows(&path, "SELECT id FROM items"), vec![r(&["1"])]);
}

// ---------------------------------------------------------------------------
// 6. Schema evolution
// ---------------------------------------------------------------------------

#[test]
fn a_new_schema_version_mid_stream_adds_the_column() {
    let (_dir, path) = db();
    let v1 = table_v(
        "people",
        &[("id", DataType::Int64), ("name", DataType::Text)],
        &[0],
        1,
    );
    // The new column is not last in the source's order: columns are matched
    // by name, not position.
    let v2 = table_v(
        "people",
        &[
            ("id", DataType::Int64),
            ("email", DataType::Text),
            ("name", DataType::Text),
        ],
        &[0],
        2,
    );
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&v1]);
    w.write(
        "src",
        &batch(
            1,
            vec![
                ins(&v1, vec![i(1), s("ann")]),
                ins(&v1, vec![i(2), s("bob")]),
            ],
        ),
    )
    .unwrap();
    w.write(
        "src",
        &batch(
            2,
            vec![
                ins(&v2, vec![i(3), s("cy@example.com"), s("cy")]),
                upd(&v2, vec![i(2), s("bob@example.com"), s("bob")]),
            ],
        ),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, email FROM people ORDER BY id"),
        vec![
            r(&["1", "ann", "NULL"]),
            r(&["2", "bob", "bob@example.com"]),
            r(&["3", "cy", "cy@example.com"]),
        ]
    );
    assert_eq!(
        rows(
            &path,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'people' ORDER BY ordinal_position"
        ),
        vec![
            r(&["id", "BIGINT"]),
            r(&["name", "VARCHAR"]),
            r(&["email", "VARCHAR"]),
        ]
    );
}

#[test]
fn a_new_schema_version_at_prepare_adds_the_column() {
    let cols = [("id", DataType::Int64), ("name", DataType::Text)];
    let v1 = table_v("people", &cols, &[0], 1);
    let v2 = table_v(
        "people",
        &[
            ("id", DataType::Int64),
            ("name", DataType::Text),
            ("born", DataType::Date),
        ],
        &[0],
        2,
    );
    for mode in [WriteMode::Upsert, WriteMode::Append, WriteMode::History] {
        let (_dir, path) = db();
        let (mut w, _) = open(&path, "p", mode, &[&v1]);
        w.write("src", &batch(1, vec![ins(&v1, vec![i(1), s("ann")])]))
            .unwrap();
        drop(w);
        let (mut w, held) = open(&path, "p", mode, &[&v2]);
        assert_eq!(held["src"].seq, 1);
        w.write(
            "src",
            &batch(2, vec![ins(&v2, vec![i(2), s("bob"), Value::Date(0)])]),
        )
        .unwrap();
        drop(w);
        assert_eq!(
            rows(
                &path,
                "SELECT id, name, CAST(born AS VARCHAR) FROM people ORDER BY id"
            ),
            vec![r(&["1", "ann", "NULL"]), r(&["2", "bob", "1970-01-01"])],
            "{mode:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. Type map
// ---------------------------------------------------------------------------

fn every_type() -> Arc<TableSchema> {
    table(
        "every_type",
        &[
            ("id", DataType::Int64),
            ("c_boolean", DataType::Boolean),
            ("c_int", DataType::Int32),
            ("c_bigint", DataType::Int64),
            ("c_double", DataType::Float64),
            (
                "c_decimal",
                DataType::Decimal {
                    precision: 38,
                    scale: 10,
                },
            ),
            (
                "c_decimal_neg",
                DataType::Decimal {
                    precision: 38,
                    scale: 10,
                },
            ),
            ("c_text", DataType::Text),
            ("c_bytes", DataType::Bytes),
            ("c_date", DataType::Date),
            ("c_time", DataType::Time),
            ("c_timestamp", DataType::Timestamp),
            ("c_timestamptz", DataType::TimestampTz),
            ("c_uuid", DataType::Uuid),
            ("c_json", DataType::Json),
        ],
        &[0],
    )
}

const TEXT: &str = "naïve \"double\" 'single' back\\slash 日本語 🦆";
const JSON_DOC: &str = r#"{"b": [1, 2.50, null, true], "a": "ü \"q\"", "n": {}}"#;
const DECIMAL_BIG: &str = "1234567890123456789012345678.0123456789";
const DECIMAL_NEG: &str = "-9876543210987654321.0000000001";
const BYTES: &[u8] = &[0x00, 0xff, b'A', 0x10, b'\\', b'\''];
/// Has its top bit set (DuckDB stores UUIDs with that bit flipped).
const UUID: [u8; 16] = [
    0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6,
];

fn every_value_row() -> Row {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    vec![
        i(1),
        Value::Bool(true),
        i(i64::from(i32::MIN)),
        i(i64::MAX),
        Value::Float(-1234.5678e-3),
        Value::Decimal(DECIMAL_BIG.into()),
        Value::Decimal(DECIMAL_NEG.into()),
        s(TEXT),
        Value::Bytes(BYTES.to_vec()),
        Value::Date(i32::try_from((date - epoch).num_days()).unwrap()),
        // 23:59:59.999999
        Value::Time(86_399_999_999),
        Value::Timestamp(
            date.and_hms_micro_opt(13, 14, 15, 123_456)
                .unwrap()
                .and_utc()
                .timestamp_micros(),
        ),
        // 13:14:15.654321 at +02:00 is 11:14:15.654321 UTC.
        Value::TimestampTz(micros("2024-02-29T13:14:15.654321+02:00")),
        Value::Uuid(UUID),
        Value::Json(JSON_DOC.into()),
    ]
}

fn type_report(path: &Path) -> String {
    let mut out = String::from("-- column types\n");
    for row in rows(
        path,
        "SELECT column_name, data_type FROM information_schema.columns
         WHERE table_name = 'every_type' ORDER BY ordinal_position",
    ) {
        out.push_str(&format!("{:<15} {}\n", row[0], row[1]));
    }
    let names: Vec<String> = rows(
        path,
        "SELECT column_name FROM information_schema.columns
         WHERE table_name = 'every_type' ORDER BY ordinal_position",
    )
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect();
    let select: Vec<String> = names
        .iter()
        .map(|n| format!("CAST({n} AS VARCHAR)"))
        .collect();
    for row in rows(
        path,
        &format!("SELECT {} FROM every_type ORDER BY id", select.join(", ")),
    ) {
        out.push_str(&format!("-- row id = {}\n", row[0]));
        for (name, value) in names.iter().zip(&row).skip(1) {
            out.push_str(&format!("{name:<15} {value}\n"));
        }
    }
    out
}

#[test]
fn every_type_round_trips() {
    let (_dir, path) = db();
    let t = every_type();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    let mut nulls = vec![Value::Null; t.columns.len()];
    nulls[0] = i(2);
    w.write(
        "src",
        &batch(1, vec![ins(&t, every_value_row()), ins(&t, nulls)]),
    )
    .unwrap();
    drop(w);

    insta::assert_snapshot!(type_report(&path));

    // Exactness checked directly too, independent of the snapshot.
    assert_eq!(
        rows(
            &path,
            "SELECT CAST(c_decimal AS VARCHAR), CAST(c_decimal_neg AS VARCHAR),
                    epoch_us(c_timestamptz), c_text, CAST(c_json AS VARCHAR),
                    CAST(c_uuid AS VARCHAR), c_double = -1.2345678
             FROM every_type WHERE id = 1"
        ),
        vec![r(&[
            DECIMAL_BIG,
            DECIMAL_NEG,
            &micros("2024-02-29T11:14:15.654321Z").to_string(),
            TEXT,
            JSON_DOC,
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "true",
        ])]
    );
    let conn = Connection::open(&path).unwrap();
    let bytes: Vec<u8> = conn
        .query_row("SELECT c_bytes FROM every_type WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(bytes, BYTES);
    let all_null: bool = conn
        .query_row(
            "SELECT COLUMNS(* EXCLUDE (id)) IS NULL FROM every_type WHERE id = 2",
            [],
            |r| {
                let n = r.as_ref().column_count();
                Ok((0..n).all(|c| r.get::<_, bool>(c).unwrap()))
            },
        )
        .unwrap();
    assert!(all_null);
}

/// Values the type map accepts for a column of another engine type, and
/// those it refuses with the column's name.
#[test]
fn type_coercions_and_refusals() {
    let (_dir, path) = db();
    let dec = |precision, scale| DataType::Decimal { precision, scale };
    let t = table(
        "coerce",
        &[
            ("id", DataType::Int64),
            ("f", DataType::Float64),
            ("d", dec(12, 3)),
            ("big", dec(38, 20)),
            ("u", DataType::Uuid),
            ("ts", DataType::Timestamp),
        ],
        &[0],
    );
    let row = |id: i64, f: Value, d: Value, big: Value, u: Value, ts: Value| {
        vec![i(id), f, d, big, u, ts]
    };
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &batch(
            1,
            vec![
                ins(
                    &t,
                    row(
                        1,
                        // an integer into a double and decimals
                        i(3),
                        i(-42),
                        i(-999_999_999_999_999_999),
                        // a UUID as text, upper case
                        s("F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6"),
                        Value::Timestamp(0),
                    ),
                ),
                ins(
                    &t,
                    row(
                        2,
                        Value::Float(0.1),
                        // trailing zeros past the scale are not a loss
                        Value::Decimal("+1.50000".into()),
                        Value::Decimal("-0.00000000000000000001".into()),
                        Value::Null,
                        Value::Timestamp(-1),
                    ),
                ),
                // exactly `precision` digits
                ins(
                    &t,
                    row(
                        3,
                        Value::Null,
                        Value::Decimal("-999999999.999".into()),
                        Value::Decimal("999999999999999999.99999999999999999999".into()),
                        Value::Null,
                        Value::Null,
                    ),
                ),
            ],
        ),
    )
    .unwrap();
    let null = || Value::Null;
    for (seq, bad, needle) in [
        // more fractional digits than the scale: never rounded
        (
            2,
            row(
                9,
                null(),
                Value::Decimal("1.0005".into()),
                null(),
                null(),
                null(),
            ),
            "column d",
        ),
        (
            3,
            row(
                9,
                null(),
                Value::Decimal("1e5".into()),
                null(),
                null(),
                null(),
            ),
            "column d",
        ),
        (
            4,
            row(9, null(), Value::Float(1.5), null(), null(), null()),
            "column d",
        ),
        // more integer digits than precision - scale
        (
            5,
            row(
                9,
                null(),
                Value::Decimal("1000000000".into()),
                null(),
                null(),
                null(),
            ),
            "column d",
        ),
        (
            6,
            row(9, null(), i(1_000_000_000), null(), null(), null()),
            "column d",
        ),
        (
            7,
            row(9, null(), null(), i(i64::MAX), null(), null()),
            "column big",
        ),
        (
            8,
            row(
                9,
                null(),
                null(),
                Value::Decimal("-1000000000000000000".into()),
                null(),
                null(),
            ),
            "column big",
        ),
        (
            9,
            row(9, s("1.5"), null(), null(), null(), null()),
            "column f",
        ),
        (
            10,
            row(9, null(), null(), null(), null(), Value::Date(1)),
            "column ts",
        ),
    ] {
        // Refused values cost their row: a dead letter naming the column.
        assert!(w.write("src", &batch(seq, vec![ins(&t, bad)])).unwrap());
        let kept = w.dead_letters().unwrap();
        let last = kept.last().unwrap();
        let column = needle.replace("column ", "column `") + "`";
        assert_eq!(last.seq, seq, "{needle}");
        assert!(
            last.reason.contains(&column),
            "seq {seq}: {needle}: {}",
            last.reason
        );
    }
    drop(w);
    assert_eq!(
        rows(
            &path,
            "SELECT id, f, CAST(d AS VARCHAR), CAST(big AS VARCHAR), CAST(u AS VARCHAR), CAST(ts AS VARCHAR)
             FROM coerce ORDER BY id"
        ),
        vec![
            r(&[
                "1",
                "3",
                "-42.000",
                "-999999999999999999.00000000000000000000",
                "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
                "1970-01-01 00:00:00",
            ]),
            r(&[
                "2",
                "0.1",
                "1.500",
                "-0.00000000000000000001",
                "NULL",
                "1969-12-31 23:59:59.999999",
            ]),
            r(&[
                "3",
                "NULL",
                "-999999999.999",
                "999999999999999999.99999999999999999999",
                "NULL",
                "NULL",
            ]),
        ]
    );
    // Each refused row's batch still moved the checkpoint.
    assert_eq!(checkpoints(&path), vec![r(&["p", "src", "10"])]);
}

// ---------------------------------------------------------------------------
// The async sink
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_sink_opens_writes_skips_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let t = items();
    let config = DuckDbTargetConfig {
        // a folder that does not exist yet, and a schema other than main
        path: "out/sink.duckdb".into(),
        schema: "analytics".into(),
        inputs: vec!["src".into()],
        mode: WriteMode::Upsert,
    };
    let mut sink = DuckDbSink::new(config.clone(), dir.path(), "pipe");
    let path = dir.path().join("out/sink.duckdb");
    assert_eq!(sink.path(), path);

    // Writing before open is an error, not a panic.
    assert!(sink.write("src", Arc::new(batch(1, vec![]))).await.is_err());

    let checks = sink.check().await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].outcome, CheckOutcome::Pass, "{checks:?}");

    let held = sink.open(std::slice::from_ref(&t)).await.unwrap();
    assert!(held.is_empty());
    let mut first = batch(
        1,
        vec![
            ins(&t, vec![i(1), s("a"), i(1)]),
            ins(&t, vec![i(2), s("b"), i(2)]),
            upd(&t, vec![i(1), s("a2"), i(3)]),
        ],
    );
    first.dead_letters.push(dead_letter("bad", "unreadable"));
    sink.write("src", Arc::new(first)).await.unwrap();
    // Redelivered: Ok, and skipped.
    sink.write("src", Arc::new(batch(1, vec![trunc(&t)])))
        .await
        .unwrap();
    sink.write("src", Arc::new(batch(2, vec![del_key(&t, &[i(2)])])))
        .await
        .unwrap();
    sink.close().await.unwrap();
    drop(sink);

    let mut sink = DuckDbSink::new(config, dir.path(), "pipe");
    let held = sink.open(std::slice::from_ref(&t)).await.unwrap();
    assert_eq!(held, BTreeMap::from([("src".to_owned(), position(2))]));
    drop(sink);

    assert_eq!(
        rows(
            &path,
            "SELECT id, name, qty FROM analytics.items ORDER BY id"
        ),
        vec![r(&["1", "a2", "3"])]
    );
    // Bookkeeping stays in `main` whatever the target schema.
    assert_eq!(
        rows(
            &path,
            &format!("SELECT pipeline, source, raw, seq FROM main.{DEAD_LETTER_TABLE}")
        ),
        vec![r(&["pipe", "src", "bad", "1"])]
    );
    assert_eq!(checkpoints(&path), vec![r(&["pipe", "src", "2"])]);
    assert_eq!(
        rows(
            &path,
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL"
        ),
        vec![
            r(&["analytics", "items"]),
            r(&["main", CHECKPOINT_TABLE]),
            r(&["main", DEAD_LETTER_TABLE]),
        ]
    );
}

// ---------------------------------------------------------------------------
// Regressions (bugs these tests found)
// ---------------------------------------------------------------------------

/// An update whose `before` has another key than its `after` (a primary key
/// change) moves the row: nothing stays behind under the old key.
#[test]
fn upsert_update_that_changes_the_key_moves_the_row() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &batch(
            1,
            vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                ins(&t, vec![i(2), s("b"), i(2)]),
                ins(&t, vec![i(3), s("c"), i(3)]),
            ],
        ),
    )
    .unwrap();
    let moved = |from: i64, to: Row| {
        let mut c = upd(&t, to);
        // the old key only, as Postgres sends it
        c.before = Some(vec![i(from), Value::Null, Value::Null]);
        c
    };
    let mut full_before = upd(&t, vec![i(3), s("c2"), i(33)]);
    full_before.before = Some(vec![i(3), s("c"), i(3)]);
    w.write(
        "src",
        &batch(
            2,
            vec![
                moved(1, vec![i(10), s("a"), i(1)]),
                // 2 moves to 20, and a new row takes key 2
                moved(2, vec![i(20), s("b"), i(2)]),
                ins(&t, vec![i(2), s("new b"), i(22)]),
                // an update with its full before row and the same key
                full_before,
            ],
        ),
    )
    .unwrap();
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY id"),
        vec![
            r(&["2", "new b", "22"]),
            r(&["3", "c2", "33"]),
            r(&["10", "a", "1"]),
            r(&["20", "b", "2"]),
        ]
    );
}

/// A schema change inside one batch (changes under version 1, then under
/// version 2 with columns in other positions, then version 3 dropping one):
/// values stay in their columns, matched by name.
#[test]
fn a_schema_change_inside_a_batch_keeps_values_in_their_columns() {
    let v1 = table_v(
        "people",
        &[("id", DataType::Int64), ("name", DataType::Text)],
        &[0],
        1,
    );
    let v2 = table_v(
        "people",
        &[
            ("id", DataType::Int64),
            ("email", DataType::Text),
            ("name", DataType::Text),
        ],
        &[0],
        2,
    );
    // Version 3 drops `email` again: later columns shift left.
    let v3 = table_v(
        "people",
        &[("id", DataType::Int64), ("name", DataType::Text)],
        &[0],
        3,
    );
    for mode in [WriteMode::Upsert, WriteMode::Append, WriteMode::History] {
        let (_dir, path) = db();
        let (mut w, _) = open(&path, "p", mode, &[&v1]);
        w.write(
            "src",
            &batch(
                1,
                vec![
                    ins(&v1, vec![i(1), s("ann")]),
                    ins(&v2, vec![i(2), s("bob@x"), s("bob")]),
                ],
            ),
        )
        .unwrap();
        w.write(
            "src",
            &batch(
                2,
                vec![
                    ins(&v2, vec![i(3), s("cy@x"), s("cy")]),
                    ins(&v3, vec![i(4), s("dee")]),
                ],
            ),
        )
        .unwrap();
        drop(w);
        assert_eq!(
            rows(&path, "SELECT id, name FROM people ORDER BY id"),
            vec![
                r(&["1", "ann"]),
                r(&["2", "bob"]),
                r(&["3", "cy"]),
                r(&["4", "dee"]),
            ],
            "{mode:?}"
        );
        assert_eq!(
            rows(
                &path,
                "SELECT id, email FROM people WHERE id <= 2 ORDER BY id"
            ),
            vec![r(&["1", "NULL"]), r(&["2", "bob@x"])],
            "{mode:?}"
        );
        // Row 3 was staged in version 3's shape, which has no `email`: its
        // value is not kept (the column is gone at the source), but it is
        // not moved into another column either.
        assert_eq!(
            rows(&path, "SELECT count(*) FROM people WHERE email = 'cy'"),
            vec![r(&["0"])],
            "{mode:?}"
        );
    }
}

/// A writer knows the stored checkpoints from `open`, so a redelivered batch
/// is skipped even when `write` comes before any `prepare`.
#[test]
fn a_writer_skips_held_batches_even_before_prepare() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Append, &[&t]);
    w.write("src", &batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
        .unwrap();
    drop(w);
    let mut w = Writer::open(&path, "p", WriteMode::Append, "main").unwrap();
    assert!(
        !w.write("src", &batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
            .unwrap()
    );
    assert!(
        w.write("src", &batch(2, vec![ins(&t, vec![i(2), s("b"), i(2)])]))
            .unwrap()
    );
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id FROM items ORDER BY id"),
        vec![r(&["1"]), r(&["2"])]
    );
}

/// `a_b`.`c` and `a`.`b_c` are different tables with different staging
/// tables.
#[test]
fn tables_whose_names_join_alike_are_staged_apart() {
    let (_dir, path) = db();
    let with_origin = |origin: &str, t: Arc<TableSchema>| {
        let mut t = (*t).clone();
        t.id.origin = origin.into();
        Arc::new(t)
    };
    let c = with_origin("a_b", table("c", &[("id", DataType::Int64)], &[0]));
    let b_c = with_origin(
        "a",
        table(
            "b_c",
            &[("id", DataType::Int64), ("x", DataType::Text)],
            &[0],
        ),
    );
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&c, &b_c]);
    w.write(
        "src",
        &batch(1, vec![ins(&c, vec![i(1)]), ins(&b_c, vec![i(2), s("x")])]),
    )
    .unwrap();
    drop(w);
    assert_eq!(rows(&path, "SELECT id FROM c"), vec![r(&["1"])]);
    assert_eq!(rows(&path, "SELECT id, x FROM b_c"), vec![r(&["2", "x"])]);
}

// ---------------------------------------------------------------------------
// New rows (`Batch::inserts_are_new`): appended without the key merge
// ---------------------------------------------------------------------------

/// A batch whose inserts the source promises are new rows.
fn new_rows(seq: u64, changes: Vec<Change>) -> Batch {
    Batch {
        kind: BatchKind::Snapshot,
        inserts_are_new: true,
        ..batch(seq, changes)
    }
}

fn stats(w: &Writer) -> (u64, u64) {
    let s = w.stats();
    (s.appended, s.merged)
}

#[test]
fn new_rows_are_appended_while_the_table_holds_only_new_rows() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &new_rows(
            1,
            vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                ins(&t, vec![i(2), s("b"), i(2)]),
            ],
        ),
    )
    .unwrap();
    w.write_group(
        "src",
        &[
            &new_rows(2, vec![ins(&t, vec![i(3), s("c"), i(3)])]),
            &new_rows(3, vec![ins(&t, vec![i(4), s("d"), i(4)])]),
        ],
    )
    .unwrap();
    assert_eq!(stats(&w), (4, 0));
    // A streamed change is merged by key; from then on the table may hold
    // anything, so even rows promised new are merged.
    w.write("src", &batch(4, vec![upd(&t, vec![i(1), s("a2"), i(10)])]))
        .unwrap();
    assert_eq!(stats(&w), (4, 1));
    w.write(
        "src",
        &new_rows(5, vec![ins(&t, vec![i(2), s("b2"), i(20)])]),
    )
    .unwrap();
    assert_eq!(stats(&w), (4, 2));
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY id"),
        vec![
            r(&["1", "a2", "10"]),
            r(&["2", "b2", "20"]),
            r(&["3", "c", "3"]),
            r(&["4", "d", "4"]),
        ]
    );
    assert_eq!(checkpoints(&path)[0][2], "5");
}

/// After `syncline drop` the target keeps its rows, and a new snapshot
/// (whose rows are new to the source's run, not to the table) must still
/// replace them by key.
#[test]
fn new_rows_into_a_table_that_already_holds_rows_are_merged() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "old", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &new_rows(1, vec![ins(&t, vec![i(1), s("old"), i(1)])]),
    )
    .unwrap();
    drop(w);
    let (mut w, _) = open(&path, "new", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &new_rows(
            1,
            vec![
                ins(&t, vec![i(1), s("new"), i(1)]),
                ins(&t, vec![i(2), s("b"), i(2)]),
            ],
        ),
    )
    .unwrap();
    assert_eq!(stats(&w), (0, 2));
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name FROM items ORDER BY id"),
        vec![r(&["1", "new"]), r(&["2", "b"])]
    );
}

/// Two sources writing one table: each one's rows are new only to itself.
#[test]
fn new_rows_of_a_second_source_are_merged() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write("a", &new_rows(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
        .unwrap();
    w.write("b", &new_rows(1, vec![ins(&t, vec![i(1), s("b"), i(2)])]))
        .unwrap();
    assert_eq!(stats(&w), (1, 1));
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name FROM items"),
        vec![r(&["1", "b"])]
    );
}

/// A truncate empties the table (new rows are appended again); a failed
/// batch leaves what the writer knows about the table as it was.
#[test]
fn truncate_empties_and_a_rolled_back_batch_restores_what_the_table_holds() {
    let (_dir, path) = db();
    let t = items();
    let ids = table(
        "ids",
        &[("id", DataType::Int64), ("u", DataType::Uuid)],
        &[0],
    );
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t, &ids]);
    w.write("src", &batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
        .unwrap();
    // Truncate, then text DuckDB cannot cast to a UUID: all of it rolls
    // back, and the table still holds row 1.
    let err = w
        .write(
            "src",
            &batch(2, vec![trunc(&t), ins(&ids, vec![i(2), s("not a uuid")])]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("ids"), "{err}");
    w.write(
        "src",
        &new_rows(3, vec![ins(&t, vec![i(1), s("again"), i(3)])]),
    )
    .unwrap();
    assert_eq!(stats(&w), (0, 2));
    w.write("src", &batch(4, vec![trunc(&t)])).unwrap();
    w.write(
        "src",
        &new_rows(5, vec![ins(&t, vec![i(1), s("fresh"), i(5)])]),
    )
    .unwrap();
    assert_eq!(stats(&w), (1, 2));
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name FROM items"),
        vec![r(&["1", "fresh"])]
    );
}

/// Deletes, updates, TOAST-unchanged values or an append/history target
/// never take the shortcut, whatever the batch promises.
#[test]
fn only_inserts_into_an_upsert_target_are_appended() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write(
        "src",
        &new_rows(
            1,
            vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                del(&t, vec![i(1), s("a"), i(1)]),
            ],
        ),
    )
    .unwrap();
    assert_eq!(stats(&w), (0, 2));
    drop(w);
    assert!(rows(&path, "SELECT id FROM items").is_empty());

    for mode in [WriteMode::Append, WriteMode::History] {
        let (_dir, path) = db();
        let (mut w, _) = open(&path, "p", mode, &[&t]);
        w.write("src", &new_rows(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]))
            .unwrap();
        assert_eq!(stats(&w), (0, 1), "{mode:?}");
    }
}

/// The table may have columns the source no longer sends: they stay NULL.
#[test]
fn new_rows_leave_columns_the_source_no_longer_sends_null() {
    let (_dir, path) = db();
    let wide = table(
        "items",
        &[
            ("id", DataType::Int64),
            ("gone", DataType::Text),
            ("name", DataType::Text),
            ("qty", DataType::Int32),
        ],
        &[0],
    );
    let (w, _) = open(&path, "p", WriteMode::Upsert, &[&wide]);
    drop(w);
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write("src", &new_rows(1, vec![ins(&t, vec![i(1), s("a"), i(7)])]))
        .unwrap();
    assert_eq!(stats(&w), (1, 0));
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, gone, name, qty FROM items"),
        vec![r(&["1", "NULL", "a", "7"])]
    );
}

/// Every type, lists and intervals included, reads back the same whether
/// its rows were appended as new or merged (with lists the new rows still
/// go through the staging table; without them, straight to the table).
#[test]
fn new_rows_of_every_type_read_back_as_merged_rows() {
    let base = every_type();
    let extra = [
        ("c_interval", DataType::Interval),
        (
            "c_ints",
            DataType::List {
                item: Box::new(DataType::Int64),
            },
        ),
        (
            "c_texts",
            DataType::List {
                item: Box::new(DataType::Text),
            },
        ),
        (
            "c_jsons",
            DataType::List {
                item: Box::new(DataType::Json),
            },
        ),
    ];
    let extra_values = [
        Value::Interval {
            months: 14,
            days: -3,
            micros: 4_000_001,
        },
        Value::List(vec![i(1), Value::Null, i(-3)]),
        Value::List(vec![s(TEXT), s("a\nb\\c"), s("")]),
        Value::List(vec![Value::Json(JSON_DOC.into())]),
    ];
    for with_lists in [true, false] {
        let take = if with_lists { extra.len() } else { 1 };
        let mut columns = base.columns.clone();
        for (name, data_type) in extra.iter().take(take) {
            columns.push(Column {
                name: (*name).into(),
                data_type: data_type.clone(),
                nullable: true,
            });
        }
        let t = Arc::new(TableSchema {
            columns,
            ..(*base).clone()
        });
        let mut full = every_value_row();
        full.extend(extra_values.iter().take(take).cloned());
        let mut nulls = vec![Value::Null; t.columns.len()];
        nulls[0] = i(2);
        let changes = vec![ins(&t, full), ins(&t, nulls)];
        let select: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                format!(
                    "typeof({0}) || ': ' || coalesce(CAST({0} AS VARCHAR), 'NULL')",
                    c.name
                )
            })
            .collect();
        let sql = format!("SELECT {} FROM every_type ORDER BY id", select.join(", "));
        let mut results = Vec::new();
        for promised in [true, false] {
            let (_dir, path) = db();
            let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
            let b = Batch {
                inserts_are_new: promised,
                ..batch(1, changes.clone())
            };
            w.write("src", &b).unwrap();
            assert_eq!(stats(&w), if promised { (2, 0) } else { (0, 2) });
            drop(w);
            results.push(rows(&path, &sql));
        }
        assert_eq!(results[0], results[1], "with lists: {with_lists}");
        assert!(
            results[0][0].iter().any(|v| v.contains("f81d4fae-7dec")),
            "{:?}",
            results[0]
        );
    }
}

/// JSON text is checked on the way in either way: a document DuckDB
/// refuses fails the batch whether it was promised new or not.
#[test]
fn new_rows_with_invalid_json_fail_as_merged_rows_do() {
    let t = table(
        "docs",
        &[("id", DataType::Int64), ("doc", DataType::Json)],
        &[0],
    );
    for promised in [true, false] {
        let (_dir, path) = db();
        let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
        let bad = Batch {
            inserts_are_new: promised,
            ..batch(
                1,
                vec![
                    ins(&t, vec![i(1), Value::Json("{\"ok\": 1}".into())]),
                    ins(&t, vec![i(2), Value::Json("{not json".into())]),
                ],
            )
        };
        assert!(w.write("src", &bad).is_err(), "promised: {promised}");
        let good = Batch {
            inserts_are_new: promised,
            ..batch(2, vec![ins(&t, vec![i(3), Value::Json("[1, {}]".into())])])
        };
        w.write("src", &good).unwrap();
        drop(w);
        assert_eq!(
            rows(&path, "SELECT id, CAST(doc AS VARCHAR) FROM docs"),
            vec![r(&["3", "[1, {}]"])],
            "promised: {promised}"
        );
    }
}

/// `rows` of `t` as one column block.
fn block_of(t: &Arc<TableSchema>, rows: &[Row]) -> syncline_engine::columnar::InsertBlock {
    use syncline_engine::columnar::{BlockBuilder, Cell};
    let mut builder = BlockBuilder::new(t.clone(), rows.len()).unwrap();
    for row in rows {
        let cells: Vec<Cell<'_>> = row
            .iter()
            .zip(&t.columns)
            .map(|(v, c)| Cell::of(v, &c.data_type).unwrap())
            .collect();
        assert!(builder.push_row(&cells));
    }
    builder.finish().unwrap()
}

/// A snapshot batch that is nothing but a block of new rows.
fn new_block(seq: u64, t: &Arc<TableSchema>, rows: &[Row]) -> Batch {
    Batch {
        block: Some(block_of(t, rows)),
        ..new_rows(seq, vec![])
    }
}

/// Blocks of new rows go through the appender as they are; a block the
/// table cannot take that way (rows already there, a change in the same
/// group) is applied as its inserts, merged by key and in order.
#[test]
fn blocks_are_appended_or_applied_as_their_inserts() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write_group(
        "src",
        &[
            &new_block(1, &t, &[vec![i(1), s("a"), i(1)], vec![i(2), s("b"), i(2)]]),
            &new_block(2, &t, &[vec![i(3), s("c"), i(3)]]),
        ],
    )
    .unwrap();
    assert_eq!(stats(&w), (3, 0));
    // Fewer rows than a DuckDB row group: the transaction stays open for
    // the next blocks, and nothing is committed yet.
    assert!(w.holds_uncommitted());
    // A group with a streamed change commits it first; the block becomes
    // inserts after its batch's changes, then the update of the next batch
    // applies on top.
    w.write_group(
        "src",
        &[
            &new_block(3, &t, &[vec![i(4), s("d"), i(4)]]),
            &batch(4, vec![upd(&t, vec![i(4), s("d2"), i(40)])]),
        ],
    )
    .unwrap();
    assert_eq!(stats(&w).0, 3);
    assert!(!w.holds_uncommitted());
    // The table may now hold anything: a block promised new is merged.
    w.write(
        "src",
        &new_block(
            5,
            &t,
            &[vec![i(1), s("a2"), i(10)], vec![i(5), s("e"), i(5)]],
        ),
    )
    .unwrap();
    assert_eq!(stats(&w).0, 3);
    // A block not promised new is never appended.
    let plain = Batch {
        inserts_are_new: false,
        ..new_block(6, &t, &[vec![i(6), s("f"), i(6)]])
    };
    w.write("src", &plain).unwrap();
    assert_eq!(stats(&w).0, 3);
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM items ORDER BY id"),
        vec![
            r(&["1", "a2", "10"]),
            r(&["2", "b", "2"]),
            r(&["3", "c", "3"]),
            r(&["4", "d2", "40"]),
            r(&["5", "e", "5"]),
            r(&["6", "f", "6"]),
        ]
    );
    assert_eq!(checkpoints(&path)[0][2], "6");
}

/// Every block-able type lands through the appender exactly as the same
/// rows do through the merge (a block holds only valid JSON: the engine's
/// builder refuses other text, see `engine::columnar`).
#[test]
fn appended_blocks_store_what_merged_rows_store() {
    let t = table(
        "typed",
        &[
            ("id", DataType::Int64),
            ("n", DataType::Int32),
            ("ok", DataType::Boolean),
            ("x", DataType::Float64),
            (
                "price",
                DataType::Decimal {
                    precision: 12,
                    scale: 2,
                },
            ),
            ("name", DataType::Text),
            ("doc", DataType::Json),
            ("raw", DataType::Bytes),
            ("day", DataType::Date),
            ("at", DataType::Time),
            ("ts", DataType::Timestamp),
            ("tz", DataType::TimestampTz),
            ("u", DataType::Uuid),
        ],
        &[0],
    );
    let data: Vec<Row> = vec![
        vec![
            i(1),
            i(-7),
            Value::Bool(true),
            Value::Float(2.5),
            Value::Decimal("-12.50".into()),
            s("zürich"),
            Value::Json(r#"{"a": [1, 2.50]}"#.into()),
            Value::Bytes(vec![0, 255]),
            Value::Date(19_000),
            Value::Time(3_600_000_001),
            Value::Timestamp(1_700_000_000_123_456),
            Value::TimestampTz(i64::MAX),
            Value::Uuid([7; 16]),
        ],
        std::iter::once(i(2))
            .chain(std::iter::repeat_n(Value::Null, 12))
            .collect(),
    ];
    let sql = "SELECT * FROM typed ORDER BY id";
    let mut results = Vec::new();
    for as_block in [true, false] {
        let (_dir, path) = db();
        let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
        let b = if as_block {
            new_block(1, &t, &data)
        } else {
            batch(1, data.iter().map(|row| ins(&t, row.clone())).collect())
        };
        w.write("src", &b).unwrap();
        assert_eq!(stats(&w), if as_block { (2, 0) } else { (0, 2) });
        w.commit_open().unwrap();
        drop(w);
        results.push(rows(&path, sql));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].len(), 2);
}

/// Blocks held in an open transaction are lost with the process, as is
/// their checkpoint: the source sends them again, nothing is doubled.
#[test]
fn blocks_left_uncommitted_vanish_with_their_checkpoint() {
    let (_dir, path) = db();
    let t = items();
    let (mut w, _) = open(&path, "p", WriteMode::Upsert, &[&t]);
    w.write("src", &new_block(1, &t, &[vec![i(1), s("a"), i(1)]]))
        .unwrap();
    w.commit_open().unwrap();
    w.write("src", &new_block(2, &t, &[vec![i(2), s("b"), i(2)]]))
        .unwrap();
    assert!(w.holds_uncommitted());
    drop(w);
    let (w, held) = open(&path, "p", WriteMode::Upsert, &[&t]);
    assert_eq!(held["src"].seq, 1);
    drop(w);
    assert_eq!(
        rows(&path, "SELECT id, name FROM items ORDER BY id"),
        vec![r(&["1", "a"])]
    );
}
