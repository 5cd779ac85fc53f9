//! What this crate's live-database tests share: a database of their own on
//! the local server (127.0.0.1:5432, user postgres), dropped with its
//! replication slots when the value is dropped, whether the test passed or
//! not.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Row as _};

pub const URL: &str = "postgres://postgres@127.0.0.1:5432";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of one test.
pub struct TestDatabase {
    /// Its name: `sl_<prefix>_<process>_<n>`.
    pub name: String,
}

impl TestDatabase {
    /// Creates an empty database named after `prefix`.
    pub async fn create(prefix: &str) -> TestDatabase {
        let name = format!(
            "sl_{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = PgConnection::connect(&format!("{URL}/postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        TestDatabase { name }
    }

    /// A new connection to it.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&format!("{URL}/{}", self.name))
            .await
            .unwrap()
    }

    /// Runs `sql` (one or more statements) on a new connection.
    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every row of `sql`, each value as text (`None` for NULL).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<Option<String>, _>(i))
                    .collect()
            })
            .collect()
    }
}

impl Drop for TestDatabase {
    /// Drops the slots of the database, then the database; a source's
    /// replication connection may still be closing, so it tries for a while.
    fn drop(&mut self) {
        let psql = |sql: String| {
            std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
                .arg(sql)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        for _ in 0..100 {
            psql(format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE database = '{}' AND NOT active",
                self.name
            ));
            if psql(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
