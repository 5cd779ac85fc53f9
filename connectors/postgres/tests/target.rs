//! The Postgres target through its public API, against the local server
//! (127.0.0.1:5432, user postgres, as the rest of the test suite): each test
//! creates its own database, dropped when it ends.

#![allow(clippy::unwrap_used)]

mod support;

use syncline_acceptance::fixtures::{change, table};

use std::sync::Arc;

use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::{CheckOutcome, Sink};
use syncline_engine::model::{
    Change, DataType, DeadLetter, DeadLetterStage, Op, Row, TableSchema, Value,
};
use syncline_postgres::introspect::quote;
use syncline_postgres::{PostgresSink, PostgresTargetConfig, SslMode};

/// A database dropped when the test ends.
struct Db {
    name: String,
    db: support::TestDatabase,
}

fn config(database: &str, schema: &str, mode: WriteMode) -> PostgresTargetConfig {
    PostgresTargetConfig {
        host: "127.0.0.1".into(),
        port: 5432,
        database: database.into(),
        user: "postgres".into(),
        password: None,
        sslmode: SslMode::Disable,
        schema: schema.into(),
        inputs: vec!["src".into()],
        mode,
    }
}

impl Db {
    async fn create(prefix: &str) -> Db {
        let db = support::TestDatabase::create(&format!("sink_{prefix}")).await;
        Db {
            name: db.name.clone(),
            db,
        }
    }

    fn sink(&self, pipeline: &str, schema: &str, mode: WriteMode) -> PostgresSink {
        PostgresSink::new(config(&self.name, schema, mode), pipeline)
    }

    /// Every row of `sql`, each value as text (`None` for NULL).
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.db.rows(sql).await
    }
}

fn some(cells: &[&str]) -> Vec<Option<String>> {
    cells
        .iter()
        .map(|c| (*c != "NULL").then(|| (*c).to_owned()))
        .collect()
}

fn items() -> Arc<TableSchema> {
    table(
        "items",
        &[
            ("id", DataType::Int64),
            ("name", DataType::Text),
            ("body", DataType::Text),
        ],
        &[0],
        1,
    )
}

fn batch(seq: u64, changes: Vec<Change>) -> Arc<Batch> {
    Arc::new(Batch {
        position: Position {
            seq,
            state: serde_json::json!({ "lsn": seq, "note": "ünïcode \"quoted\"" }),
        },
        kind: BatchKind::Stream,
        txid: None,
        commit_time: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456),
        changes,
        block: None,
        dead_letters: Vec::new(),
        inserts_are_new: false,
        continues: false,
    })
}

fn i(v: i64) -> Value {
    Value::Int(v)
}

fn s(v: &str) -> Value {
    Value::Text(v.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_batches_at_or_below_the_checkpoint_change_nothing() {
    let db = Db::create("redeliver").await;
    let t = items();
    let mut sink = db.sink("p", "public", WriteMode::Upsert);
    assert!(
        sink.write("src", batch(1, vec![])).await.is_err(),
        "write before open"
    );
    assert!(
        sink.open(std::slice::from_ref(&t))
            .await
            .unwrap()
            .is_empty()
    );
    sink.write(
        "src",
        batch(
            1,
            vec![
                change(Op::Insert, &t, vec![i(1), s("one"), s("b1")]),
                change(Op::Insert, &t, vec![i(2), s("two"), s("b2")]),
            ],
        ),
    )
    .await
    .unwrap();
    sink.write(
        "src",
        batch(
            2,
            vec![change(Op::Update, &t, vec![i(1), s("one v2"), s("b1")])],
        ),
    )
    .await
    .unwrap();
    let snapshot = || async {
        (
            db.rows("SELECT id::text, name, body FROM items ORDER BY id")
                .await,
            db.rows(
                "SELECT pipeline, source, seq::text, position::text FROM _syncline_checkpoints",
            )
            .await,
        )
    };
    let before = snapshot().await;
    assert_eq!(
        before.0,
        vec![some(&["1", "one v2", "b1"]), some(&["2", "two", "b2"])]
    );
    assert_eq!(before.1.len(), 1);
    assert_eq!(before.1[0][2].as_deref(), Some("2"));

    // Redelivered with other content: skipped, Ok.
    let other = |seq| {
        batch(
            seq,
            vec![
                change(Op::Truncate, &t, vec![]),
                change(Op::Insert, &t, vec![i(9), s("nine"), s("b9")]),
            ],
        )
    };
    sink.write("src", other(2)).await.unwrap();
    sink.write("src", other(1)).await.unwrap();
    assert_eq!(snapshot().await, before);

    // A restarted sink skips them too, even before open.
    let mut again = db.sink("p", "public", WriteMode::Upsert);
    let held = again.open(std::slice::from_ref(&t)).await.unwrap();
    assert_eq!(held["src"].seq, 2);
    assert_eq!(held["src"].state["note"], "ünïcode \"quoted\"");
    again.write("src", other(2)).await.unwrap();
    assert_eq!(snapshot().await, before);

    // A second process whose view of the checkpoint is stale: the check
    // inside the transaction skips what the first one committed.
    sink.write(
        "src",
        batch(
            3,
            vec![change(Op::Delete, &t, vec![i(2), Value::Null, Value::Null])],
        ),
    )
    .await
    .unwrap();
    let after3 = snapshot().await;
    assert_eq!(after3.0, vec![some(&["1", "one v2", "b1"])]);
    again.write("src", other(3)).await.unwrap();
    assert_eq!(snapshot().await, after3);

    // Another pipeline in the same schema keeps its own checkpoint.
    let mut second = db.sink("q", "public", WriteMode::Upsert);
    assert!(
        second
            .open(std::slice::from_ref(&t))
            .await
            .unwrap()
            .is_empty()
    );
    second.forget().await.unwrap();
    sink.forget().await.unwrap();
    assert!(
        db.rows("SELECT 1 FROM _syncline_checkpoints WHERE pipeline = 'p'")
            .await
            .is_empty()
    );
    sink.close().await.unwrap();
    again.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn values_postgres_cannot_store_cost_their_row_not_the_batch() {
    let db = Db::create("refused").await;
    let t = table(
        "amounts",
        &[
            ("id", DataType::Int64),
            (
                "amount",
                DataType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            ("note", DataType::Text),
        ],
        &[0],
        1,
    );
    let mut sink = db.sink("p", "public", WriteMode::Upsert);
    let checks = sink.check().await;
    assert!(
        checks.iter().all(|c| c.outcome == CheckOutcome::Pass),
        "{checks:?}"
    );
    sink.open(std::slice::from_ref(&t)).await.unwrap();
    let row = |id, amount: Value, note: &str| vec![i(id), amount, s(note)];
    let mut first = (*batch(
        1,
        vec![change(
            Op::Insert,
            &t,
            row(1, Value::Decimal("12.5".into()), "ok"),
        )],
    ))
    .clone();
    first.dead_letters.push(DeadLetter {
        table: t.id.clone(),
        origin: "file.csv".into(),
        line: Some(7),
        raw: "a\tb\\c\nd\0e".into(),
        reason: "unreadable".into(),
        stage: Default::default(),
        kept: None,
    });
    sink.write("src", Arc::new(first)).await.unwrap();
    // Values Postgres cannot store (or that do not fit the column) cost
    // their row: a dead letter naming the column; the batch goes on.
    for (seq, bad, needle) in [
        (2, row(2, Value::Decimal("1.005".into()), "x"), "`amount`"),
        (3, row(2, Value::Decimal("10000".into()), "x"), "`amount`"),
        (4, row(2, Value::Float(1.5), "x"), "`amount`"),
        (5, row(2, i(3), "nul \0 inside"), "`note`"),
        (
            6,
            vec![Value::Null, i(1), s("null key")],
            "key column `id` is NULL",
        ),
    ] {
        sink.write(
            "src",
            batch(
                seq,
                vec![
                    change(Op::Insert, &t, row(5, i(5), "before the bad row")),
                    change(Op::Insert, &t, bad),
                ],
            ),
        )
        .await
        .unwrap();
        let kept = sink.dead_letters().await.unwrap();
        let last = kept.last().unwrap();
        assert_eq!((last.seq, last.stage), (seq, DeadLetterStage::Target));
        assert!(last.reason.contains(needle), "{needle}: {}", last.reason);
    }
    sink.write(
        "src",
        batch(7, vec![change(Op::Insert, &t, row(2, i(-7), "fine"))]),
    )
    .await
    .unwrap();
    assert_eq!(
        db.rows("SELECT id::text, amount::text, note FROM amounts ORDER BY id")
            .await,
        vec![
            some(&["1", "12.50", "ok"]),
            some(&["2", "-7.00", "fine"]),
            some(&["5", "5.00", "before the bad row"])
        ]
    );
    assert_eq!(
        db.rows("SELECT seq::text FROM _syncline_checkpoints").await,
        vec![some(&["7"])]
    );
    assert_eq!(
        db.rows(
            "SELECT pipeline, source, table_name, origin, line::text, raw, reason, seq::text
             FROM _syncline_dead_letters ORDER BY id LIMIT 1"
        )
        .await,
        vec![some(&[
            "p",
            "src",
            "amounts",
            "file.csv",
            "7",
            "a\tb\\c\nd\u{fffd}e",
            "unreadable",
            "1"
        ])]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_exactly() {
    let db = Db::create("types").await;
    let list = |item: DataType| DataType::List {
        item: Box::new(item),
    };
    let dec = DataType::Decimal {
        precision: 38,
        scale: 10,
    };
    let t = table(
        "every",
        &[
            ("id", DataType::Int32),
            ("b", DataType::Boolean),
            ("big", DataType::Int64),
            ("f", DataType::Float64),
            ("d", dec.clone()),
            ("t", DataType::Text),
            ("bin", DataType::Bytes),
            ("day", DataType::Date),
            ("tod", DataType::Time),
            ("ts", DataType::Timestamp),
            ("tstz", DataType::TimestampTz),
            ("u", DataType::Uuid),
            ("j", DataType::Json),
            ("iv", DataType::Interval),
            ("texts", list(DataType::Text)),
            ("decs", list(dec)),
            ("blobs", list(DataType::Bytes)),
            ("grid", list(list(DataType::Int64))),
        ],
        &[0],
        1,
    );
    let mut sink = db.sink("p", "warehouse", WriteMode::Upsert);
    sink.open(std::slice::from_ref(&t)).await.unwrap();
    let tricky =
        "tab\there, back\\slash, \"quotes\", 'single', new\nline, cr\r, \\N, NULL, ünïcødé ✓ 🚀";
    let full = vec![
        i(1),
        Value::Bool(true),
        i(i64::MIN),
        Value::Float(0.1),
        Value::Decimal("-1234567890123456789012345678.0123456789".into()),
        s(tricky),
        Value::Bytes(vec![0, b'\\', b'\t', b'\n', 0xff]),
        Value::Date(-735_160),
        Value::Time(86_399_999_999),
        Value::Timestamp(1_709_210_096_789_012),
        Value::TimestampTz(-1),
        Value::Uuid([
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ]),
        Value::Json(r#"{"k": "tab\there \\ \"q\" ✓", "n": [1, 2.50]}"#.into()),
        Value::Interval {
            months: 14,
            days: -3,
            micros: 14_706_789_000,
        },
        Value::List(vec![s(tricky), Value::Null, s("NULL"), s(""), s("a,b{c}")]),
        Value::List(vec![Value::Decimal("0.0000000001".into()), Value::Null]),
        Value::List(vec![Value::Bytes(vec![0x5c, 0x22])]),
        Value::List(vec![
            Value::List(vec![i(1), i(2)]),
            Value::List(vec![i(3), Value::Null]),
        ]),
    ];
    let edge = vec![
        i(2),
        Value::Bool(false),
        i(i64::MAX),
        Value::Float(f64::NAN),
        i(0),
        s(""),
        Value::Bytes(vec![]),
        Value::Date(0),
        Value::Time(0),
        Value::Timestamp(i64::MAX),
        Value::TimestampTz(i64::MIN),
        s("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
        Value::Json("null".into()),
        Value::Interval {
            months: 0,
            days: 0,
            micros: i64::MIN,
        },
        Value::List(vec![]),
        Value::List(vec![]),
        Value::List(vec![]),
        Value::List(vec![]),
    ];
    let nulls: Row = std::iter::once(i(3))
        .chain(std::iter::repeat_n(Value::Null, t.columns.len() - 1))
        .collect();
    sink.write(
        "src",
        batch(
            1,
            vec![
                change(Op::Insert, &t, full),
                change(Op::Insert, &t, edge),
                change(Op::Insert, &t, nulls),
            ],
        ),
    )
    .await
    .unwrap();
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("{}::text", quote(&c.name)))
        .collect();
    let got = db
        .rows(&format!(
            "SELECT {} FROM warehouse.every ORDER BY id",
            cols.join(", ")
        ))
        .await;
    let tricky_array = "\"tab\there, back\\\\slash, \\\"quotes\\\", 'single', new\nline, cr\r, \\\\N, NULL, ünïcødé ✓ 🚀\"";
    assert_eq!(
        got[0],
        some(&[
            "1",
            "true",
            "-9223372036854775808",
            "0.1",
            "-1234567890123456789012345678.0123456789",
            tricky,
            "\\x005c090aff",
            "0044-03-15 BC",
            "23:59:59.999999",
            "2024-02-29 12:34:56.789012",
            "1969-12-31 23:59:59.999999+00",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            r#"{"k": "tab\there \\ \"q\" ✓", "n": [1, 2.50]}"#,
            "1 year 2 mons -3 days +04:05:06.789",
            &format!("{{{tricky_array},NULL,\"NULL\",\"\",\"a,b{{c}}\"}}"),
            "{0.0000000001,NULL}",
            "{\"\\\\x5c22\"}",
            "{{1,2},{3,NULL}}",
        ])
    );
    assert_eq!(
        got[1],
        some(&[
            "2",
            "false",
            "9223372036854775807",
            "NaN",
            "0.0000000000",
            "",
            "\\x",
            "1970-01-01",
            "00:00:00",
            "infinity",
            "-infinity",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "null",
            "-2562047788:00:54.775808",
            "{}",
            "{}",
            "{}",
            "{}",
        ])
    );
    let mut expected_nulls = vec![Some("3".to_owned())];
    expected_nulls.extend(std::iter::repeat_n(None, t.columns.len() - 1));
    assert_eq!(got[2], expected_nulls);
    // The documented type map.
    assert_eq!(
        db.rows(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'warehouse.every'::regclass AND attnum > 0 ORDER BY attnum"
        )
        .await
        .into_iter()
        .map(|r| format!("{} {}", r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect::<Vec<_>>(),
        [
            "id integer",
            "b boolean",
            "big bigint",
            "f double precision",
            "d numeric(38,10)",
            "t text",
            "bin bytea",
            "day date",
            "tod time without time zone",
            "ts timestamp without time zone",
            "tstz timestamp with time zone",
            "u uuid",
            "j jsonb",
            "iv interval",
            "texts text[]",
            "decs numeric(38,10)[]",
            "blobs bytea[]",
            "grid bigint[]",
        ]
    );
    // Bookkeeping sits beside the data, and the key is the primary key.
    assert_eq!(
        db.rows(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'warehouse' ORDER BY 1"
        )
        .await,
        vec![
            some(&["_syncline_checkpoints"]),
            some(&["_syncline_dead_letters"]),
            some(&["every"])
        ]
    );
    assert_eq!(
        db.rows(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = 'warehouse.every'::regclass AND contype = 'p'"
        )
        .await,
        vec![some(&["PRIMARY KEY (id)"])]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_history_and_append_apply_changes_in_order() {
    let db = Db::create("modes").await;
    let t = items();
    let v2 = table(
        "items",
        &[
            ("id", DataType::Int64),
            ("name", DataType::Text),
            ("body", DataType::Text),
            ("qty", DataType::Int32),
        ],
        &[0],
        2,
    );
    let batches = |t: &Arc<TableSchema>, v2: &Arc<TableSchema>| {
        let u = Value::Unchanged;
        let moved = Change {
            op: Op::Update,
            table: t.clone(),
            before: Some(vec![i(3), Value::Null, Value::Null]),
            after: Some(vec![i(30), s("three moved"), s("b3")]),
        };
        vec![
            batch(
                1,
                vec![
                    change(Op::Insert, t, vec![i(1), s("one"), s("big 1")]),
                    change(Op::Insert, t, vec![i(2), s("two"), s("big 2")]),
                    change(Op::Insert, t, vec![i(3), s("three"), s("b3")]),
                ],
            ),
            // Unchanged from the target, then from the batch itself.
            batch(
                2,
                vec![
                    change(Op::Update, t, vec![i(1), s("one v2"), u.clone()]),
                    change(Op::Insert, t, vec![i(4), s("four"), s("big 4")]),
                    change(Op::Update, t, vec![i(4), s("four v2"), u.clone()]),
                    moved,
                    change(Op::Delete, t, vec![i(2), Value::Null, Value::Null]),
                ],
            ),
            // Rows before a truncate vanish; a new column arrives.
            batch(
                3,
                vec![
                    change(Op::Insert, t, vec![i(5), s("gone"), s("b5")]),
                    change(Op::Truncate, t, vec![]),
                    change(Op::Insert, t, vec![i(6), s("six"), s("b6")]),
                    change(Op::Insert, v2, vec![i(7), s("seven"), s("b7"), i(70)]),
                    change(Op::Update, v2, vec![i(6), s("six v2"), u, i(60)]),
                ],
            ),
        ]
    };
    for (schema, mode) in [
        ("up", WriteMode::Upsert),
        ("hist", WriteMode::History),
        ("app", WriteMode::Append),
    ] {
        let mut sink = db.sink("p", schema, mode);
        sink.open(std::slice::from_ref(&t)).await.unwrap();
        for b in batches(&t, &v2) {
            sink.write("src", b).await.unwrap();
        }
        sink.close().await.unwrap();
        // The same batches as one group (a sink that is behind receives
        // them so: one transaction) leave the same rows.
        let grouped = format!("{schema}_g");
        let mut sink = db.sink("p", &grouped, mode);
        sink.open(std::slice::from_ref(&t)).await.unwrap();
        sink.write_group("src", batches(&t, &v2)).await.unwrap();
        sink.close().await.unwrap();
        let (columns, order) = match mode {
            WriteMode::History => (
                "_op, _seq::text, _commit_time::text, id::text, name, body, qty::text",
                "_seq, ctid",
            ),
            WriteMode::Append => ("id::text, name, body, qty::text", "ctid"),
            WriteMode::Upsert => ("id::text, name, body, qty::text", "id"),
        };
        let rows = |schema: &str| format!("SELECT {columns} FROM {schema}.items ORDER BY {order}");
        assert_eq!(
            db.rows(&rows(&grouped)).await,
            db.rows(&rows(schema)).await,
            "{mode:?}: grouped as written one by one"
        );
        assert_eq!(
            db.rows(&format!(
                "SELECT seq::text, position->>'lsn' FROM {grouped}._syncline_checkpoints"
            ))
            .await,
            vec![some(&["3", "3"])],
            "{mode:?}: the group's checkpoint is its last batch's"
        );
    }
    assert_eq!(
        db.rows("SELECT id::text, name, body, qty::text FROM up.items ORDER BY id")
            .await,
        vec![
            some(&["6", "six v2", "b6", "60"]),
            some(&["7", "seven", "b7", "70"]),
        ]
    );
    assert_eq!(
        db.rows(
            "SELECT _op, _seq::text, _commit_time::text, id::text, name, body, qty::text
             FROM hist.items ORDER BY _seq, ctid"
        )
        .await,
        vec![
            some(&[
                "i",
                "1",
                "2023-11-14 22:13:20.123456+00",
                "1",
                "one",
                "big 1",
                "NULL"
            ]),
            some(&[
                "i",
                "1",
                "2023-11-14 22:13:20.123456+00",
                "2",
                "two",
                "big 2",
                "NULL"
            ]),
            some(&[
                "i",
                "1",
                "2023-11-14 22:13:20.123456+00",
                "3",
                "three",
                "b3",
                "NULL"
            ]),
            some(&[
                "u",
                "2",
                "2023-11-14 22:13:20.123456+00",
                "1",
                "one v2",
                "big 1",
                "NULL"
            ]),
            some(&[
                "i",
                "2",
                "2023-11-14 22:13:20.123456+00",
                "4",
                "four",
                "big 4",
                "NULL"
            ]),
            some(&[
                "u",
                "2",
                "2023-11-14 22:13:20.123456+00",
                "4",
                "four v2",
                "big 4",
                "NULL"
            ]),
            some(&[
                "u",
                "2",
                "2023-11-14 22:13:20.123456+00",
                "30",
                "three moved",
                "b3",
                "NULL"
            ]),
            some(&[
                "d",
                "2",
                "2023-11-14 22:13:20.123456+00",
                "2",
                "NULL",
                "NULL",
                "NULL"
            ]),
            some(&[
                "i",
                "3",
                "2023-11-14 22:13:20.123456+00",
                "5",
                "gone",
                "b5",
                "NULL"
            ]),
            some(&[
                "t",
                "3",
                "2023-11-14 22:13:20.123456+00",
                "NULL",
                "NULL",
                "NULL",
                "NULL"
            ]),
            some(&[
                "i",
                "3",
                "2023-11-14 22:13:20.123456+00",
                "6",
                "six",
                "b6",
                "NULL"
            ]),
            some(&[
                "i",
                "3",
                "2023-11-14 22:13:20.123456+00",
                "7",
                "seven",
                "b7",
                "70"
            ]),
            some(&[
                "u",
                "3",
                "2023-11-14 22:13:20.123456+00",
                "6",
                "six v2",
                "b6",
                "60"
            ]),
        ]
    );
    assert_eq!(
        db.rows("SELECT id::text, name, body, qty::text FROM app.items ORDER BY ctid")
            .await,
        vec![
            some(&["6", "six", "b6", "NULL"]),
            some(&["7", "seven", "b7", "70"]),
            some(&["6", "six v2", "b6", "60"]),
        ]
    );
}

/// A key-changing update whose other values pgoutput left out (unchanged
/// TOAST) keeps them: from the target's row under the old key, or from
/// an earlier change of that row in the same batch. Composite keys with
/// types that need a cast (text with a tab, timestamptz).
#[tokio::test(flavor = "multi_thread")]
async fn moved_rows_keep_values_the_source_left_out() {
    let db = Db::create("moved").await;
    let t = table(
        "docs",
        &[
            ("k", DataType::Text),
            ("at", DataType::TimestampTz),
            ("name", DataType::Text),
            ("body", DataType::Text),
        ],
        &[0, 1],
        1,
    );
    let key = |k: &str, at: i64| vec![s(k), Value::TimestampTz(at)];
    let row = |k: &str, at: i64, name: &str, body: Value| {
        let mut r = key(k, at);
        r.extend([s(name), body]);
        r
    };
    let moved = |from: (&str, i64), to: Row| Change {
        op: Op::Update,
        table: t.clone(),
        before: Some({
            let mut r = key(from.0, from.1);
            r.extend([Value::Null, Value::Null]);
            r
        }),
        after: Some(to),
    };
    let u = Value::Unchanged;
    for (schema, mode) in [
        ("up", WriteMode::Upsert),
        ("hist", WriteMode::History),
        ("app", WriteMode::Append),
    ] {
        let mut sink = db.sink("p", schema, mode);
        sink.open(std::slice::from_ref(&t)).await.unwrap();
        sink.write(
            "src",
            batch(
                1,
                vec![
                    change(Op::Insert, &t, row("a\tb", 1, "one", s("body one"))),
                    change(Op::Insert, &t, row("c", 2, "two", s("body two"))),
                ],
            ),
        )
        .await
        .unwrap();
        sink.write(
            "src",
            batch(
                2,
                vec![
                    // From the target.
                    moved(("a\tb", 1), row("a\tb", 1_000_001, "one moved", u.clone())),
                    // From the batch.
                    change(Op::Insert, &t, row("d", 3, "three", s("body three"))),
                    moved(("d", 3), row("e", 3, "three moved", u.clone())),
                ],
            ),
        )
        .await
        .unwrap();
    }
    let expected_final = vec![
        some(&[
            "a\tb",
            "1970-01-01 00:00:01.000001+00",
            "one moved",
            "body one",
        ]),
        some(&["c", "1970-01-01 00:00:00.000002+00", "two", "body two"]),
        some(&[
            "e",
            "1970-01-01 00:00:00.000003+00",
            "three moved",
            "body three",
        ]),
    ];
    assert_eq!(
        db.rows("SELECT k, at::text, name, body FROM up.docs ORDER BY k, at")
            .await,
        expected_final
    );
    let updates = "SELECT k, at::text, name, body FROM {} WHERE name LIKE '%moved' ORDER BY k";
    for table in ["hist.docs", "app.docs"] {
        assert_eq!(
            db.rows(&updates.replace("{}", table)).await,
            vec![expected_final[0].clone(), expected_final[2].clone()],
            "{table}"
        );
    }
}

/// The server drops the sink's connection between batches: the next
/// batch reconnects (re-creating its staging tables) and is applied once.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_is_reestablished_and_the_batch_applied_once() {
    let db = Db::create("reconnect").await;
    let t = table(
        "items",
        &[("id", DataType::Int64), ("v", DataType::Text)],
        &[0],
        1,
    );
    let mut sink = db.sink("p", "public", WriteMode::History);
    sink.open(std::slice::from_ref(&t)).await.unwrap();
    sink.write(
        "src",
        batch(1, vec![change(Op::Insert, &t, vec![Value::Int(1), s("a")])]),
    )
    .await
    .unwrap();
    let killed = db
        .rows(&format!(
            "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name
        ))
        .await;
    assert_eq!(killed, vec![some(&["1"])]);
    sink.write(
        "src",
        batch(2, vec![change(Op::Insert, &t, vec![Value::Int(2), s("b")])]),
    )
    .await
    .unwrap();
    assert_eq!(
        db.rows("SELECT _op, _seq::text, id::text, v FROM items ORDER BY _seq")
            .await,
        vec![some(&["i", "1", "1", "a"]), some(&["i", "2", "2", "b"])]
    );
}
