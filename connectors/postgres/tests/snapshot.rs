//! Which snapshot batches promise new rows (`Batch::inserts_are_new`), read
//! off what the real source emits against the local server: the first copy
//! under the slot's exported snapshot does, for tables with a unique key; a
//! copy resumed after a crash (a fresh snapshot) never does.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::connector::{Source, SourceContext};
use syncline_engine::model::{Op, Row, Value};
use syncline_engine::status::StatusHandle;
use syncline_postgres::{PostgresSource, PostgresSourceConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

static COUNTER: AtomicU32 = AtomicU32::new(0);

const URL: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own, dropped (slots first) at the end.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn create(setup: &str) -> TestDb {
        let name = format!(
            "sl_pgsnap_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = PgConnection::connect(&format!("{URL}/postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut conn = PgConnection::connect(&format!("{URL}/{name}"))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
        TestDb { name }
    }

    async fn drop_all(self) {
        let mut admin = PgConnection::connect(&format!("{URL}/postgres"))
            .await
            .unwrap();
        // The source's replication connection may still be closing.
        for _ in 0..50 {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE database = '{}' AND NOT active",
                self.name
            )))
            .execute(&mut admin)
            .await
            .unwrap();
            let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
            if dropped.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("could not drop {}", self.name);
    }
}

fn config(db: &str) -> PostgresSourceConfig {
    serde_json::from_value(serde_json::json!({
        "database": db,
        "sslmode": "disable",
        "chunk_rows": 1000,
        "batch_rows": 300,
        "snapshot_workers": 2,
        "tables": [
            { "name": "keyed" },
            // A declared key may repeat: nothing is promised.
            { "name": "declared", "key": ["k"] },
        ],
    }))
    .unwrap()
}

/// Runs the source once (not following) as pipeline `pipeline` (whose
/// slot names are cluster-wide: one per test) from `resume` and returns
/// every batch it emitted; `blocks`: the consumers read column blocks.
async fn run(db: &str, pipeline: &str, resume: Option<Position>, blocks: bool) -> Vec<Batch> {
    let mut source = PostgresSource::new("pg", pipeline, Some("0123456789ab"), &config(db));
    source.discover().await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let (_acked_tx, acked_rx) = watch::channel(resume.clone());
    let ctx = SourceContext {
        name: "pg".into(),
        highest_held: resume.as_ref().map_or(0, |p| p.seq),
        held: resume.iter().cloned().collect(),
        resume,
        batches: tx,
        acknowledged: acked_rx,
        status: StatusHandle::new(pipeline),
        cancel: CancellationToken::new(),
        follow: false,
        blocks,
        earlier_rows: false,
    };
    let task = tokio::spawn(Box::new(source).run(ctx));
    let mut batches = Vec::new();
    while let Some(b) = rx.recv().await {
        batches.push(b);
    }
    task.await.unwrap().unwrap();
    batches
}

fn inserts_of<'a>(batches: &'a [Batch], table: &'a str) -> impl Iterator<Item = &'a Batch> {
    batches.iter().filter(move |b| {
        b.changes
            .iter()
            .any(|c| c.op == Op::Insert && c.table.id.name == table)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_copy_promises_new_rows_and_a_resumed_copy_does_not() {
    let db = TestDb::create(
        "CREATE TABLE keyed (id bigint PRIMARY KEY, v text NOT NULL);
         INSERT INTO keyed SELECT i, repeat('x', 200) FROM generate_series(1, 6000) i;
         CREATE TABLE declared (k int NOT NULL, v text NOT NULL);
         ALTER TABLE declared REPLICA IDENTITY FULL;
         INSERT INTO declared SELECT i % 50, 'v' || i FROM generate_series(1, 500) i;
         ANALYZE keyed; ANALYZE declared;",
    )
    .await;

    let pipeline = format!("{}_flags", db.name);
    let first = run(&db.name, &pipeline, None, false).await;
    let keyed: Vec<&Batch> = inserts_of(&first, "keyed").collect();
    assert!(keyed.len() > 5, "{} batches", keyed.len());
    assert!(
        keyed
            .iter()
            .all(|b| b.inserts_are_new && b.kind == BatchKind::Snapshot)
    );
    assert!(inserts_of(&first, "declared").all(|b| !b.inserts_are_new));
    // The promise itself: no key twice across the flagged batches.
    let ids: Vec<i64> = keyed
        .iter()
        .flat_map(|b| &b.changes)
        .filter(|c| c.table.id.name == "keyed")
        .map(|c| match c.after.as_ref().unwrap()[0] {
            Value::Int(id) => id,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!((ids.len(), distinct.len()), (6000, 6000));

    // A crash after some chunks were committed: the rest is copied again
    // under a fresh snapshot, after rows moved to other pages.
    let mid = first
        .iter()
        .find(|b| {
            let chunks = &b.position.state["snapshot"]["tables"]["keyed"];
            chunks["done"].as_array().is_some_and(|d| !d.is_empty())
                && chunks["done"].as_array().map(Vec::len)
                    < chunks["chunks"].as_array().map(Vec::len)
        })
        .map(|b| b.position.clone())
        .expect("a position in the middle of the snapshot");
    let mut conn = PgConnection::connect(&format!("{URL}/{}", db.name))
        .await
        .unwrap();
    sqlx::raw_sql("UPDATE keyed SET v = 'moved' WHERE id % 7 = 0")
        .execute(&mut conn)
        .await
        .unwrap();
    let resumed = run(&db.name, &pipeline, Some(mid), false).await;
    let again: Vec<&Batch> = inserts_of(&resumed, "keyed").collect();
    assert!(!again.is_empty(), "the resumed copy sent no rows");
    assert!(resumed.iter().all(|b| !b.inserts_are_new));

    db.drop_all().await;
}

/// Every insert row of `table`, blocks turned back into rows, sorted.
fn rows_of(batches: &[Batch], table: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = batches
        .iter()
        .flat_map(|b| b.clone().without_block().changes)
        .filter(|c| c.op == Op::Insert && c.table.id.name == table)
        .map(|c| c.after.unwrap())
        .collect();
    rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    rows
}

/// With consumers that read blocks, the copy arrives column by column
/// (tables with intervals or lists still as rows), and the blocks hold
/// exactly the rows the row-wise copy gives, value for value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_blocks_carry_the_same_rows_as_changes() {
    let db = TestDb::create(
        "CREATE TYPE mood AS ENUM ('sad', 'ok');
         CREATE TABLE keyed (
            id bigint PRIMARY KEY, small smallint, n int, f4 real, f8 double precision,
            price numeric(12,2), wide numeric(38,10), free numeric, name varchar(40),
            m mood, ok boolean, raw bytea, day date, t time, ts timestamp,
            tz timestamptz, u uuid, j json, jb jsonb, v text NOT NULL);
         INSERT INTO keyed SELECT i, (i % 30000)::smallint, -i, i / 3.0, i * 1.5,
            (i * 7 % 100000) / 100.0, i * 12345.6789012345, i / 7.0,
            'name ' || i, CASE WHEN i % 2 = 0 THEN 'ok' ELSE 'sad' END::mood, i % 3 = 0,
            decode(md5(i::text), 'hex'), date '2024-01-01' + i, time '00:00:01.5' + i * interval '1 ms',
            timestamp '2024-01-01 00:00:00.000001' + i * interval '1 second',
            timestamptz '2024-06-01 12:00:00+02' - i * interval '1 minute',
            md5(i::text)::uuid, json_build_object('i', i), jsonb_build_object('k', i, 'a', array[i]),
            repeat('x', 50)
         FROM generate_series(1, 3000) i;
         INSERT INTO keyed (id, price, wide, free, day, ts, tz, v) VALUES
            (-1, -9999999999.99, -9999999999999999999999999999.9999999999, 'NaN', 'infinity', '-infinity', 'infinity', 'edge'),
            (-2, NULL, 0, 0.000000000000000000001, '-infinity', 'infinity', '-infinity', '');
         CREATE TABLE declared (k int NOT NULL, v text NOT NULL, span interval);
         ALTER TABLE declared REPLICA IDENTITY FULL;
         INSERT INTO declared SELECT i % 50, 'v' || i, i * interval '1 hour' FROM generate_series(1, 500) i;
         ANALYZE keyed; ANALYZE declared;",
    )
    .await;
    let as_rows = run(&db.name, &format!("{}_rows", db.name), None, false).await;
    let as_blocks = run(&db.name, &format!("{}_blocks", db.name), None, true).await;
    assert!(as_rows.iter().all(|b| b.block.is_none()));
    let blocks: Vec<&Batch> = as_blocks
        .iter()
        .filter(|b| b.block.as_ref().is_some_and(|k| k.table.id.name == "keyed"))
        .collect();
    assert!(blocks.len() > 1, "{} blocks", blocks.len());
    assert!(
        blocks
            .iter()
            .all(|b| b.changes.is_empty() && b.inserts_are_new)
    );
    // An interval column keeps its table on rows.
    assert!(as_blocks.iter().all(|b| {
        b.block
            .as_ref()
            .is_none_or(|k| k.table.id.name != "declared")
    }));
    for table in ["keyed", "declared"] {
        let (a, b) = (rows_of(&as_rows, table), rows_of(&as_blocks, table));
        assert_eq!(a.len(), if table == "keyed" { 3002 } else { 500 });
        assert_eq!(a, b, "{table}");
    }
    db.drop_all().await;
}
