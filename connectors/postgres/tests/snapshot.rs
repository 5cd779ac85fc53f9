//! Which snapshot batches promise new rows (`Batch::inserts_are_new`), read
//! off what the real source emits against the local server: the first copy
//! under the slot's exported snapshot does, for tables with a unique key; a
//! copy resumed after a crash (a fresh snapshot) never does.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use syncline_engine::connector::{Source, SourceContext};
use syncline_engine::model::{Batch, BatchKind, Op, Position, Value};
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

/// Runs the source once (not following) from `resume` and returns every
/// batch it emitted.
async fn run(db: &str, resume: Option<Position>) -> Vec<Batch> {
    let mut source = PostgresSource::new("pg", "snapflags", &config(db));
    source.discover().await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let (_acked_tx, acked_rx) = watch::channel(resume.clone());
    let ctx = SourceContext {
        name: "pg".into(),
        highest_held: resume.as_ref().map_or(0, |p| p.seq),
        resume,
        batches: tx,
        acknowledged: acked_rx,
        status: StatusHandle::new("snapflags"),
        cancel: CancellationToken::new(),
        follow: false,
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

    let first = run(&db.name, None).await;
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
    let resumed = run(&db.name, Some(mid)).await;
    let again: Vec<&Batch> = inserts_of(&resumed, "keyed").collect();
    assert!(!again.is_empty(), "the resumed copy sent no rows");
    assert!(resumed.iter().all(|b| !b.inserts_are_new));

    db.drop_all().await;
}
