//! The Postgres target against the shared acceptance kit, on the local
//! server (127.0.0.1:5432, user postgres): one database per scenario,
//! dropped when it ends.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Row as _};
use syncline_acceptance::{Harness, Target, TextRow, sink_acceptance};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_postgres::introspect::quote;
use syncline_postgres::{PostgresSink, PostgresTargetConfig, SslMode};

const URL: &str = "postgres://postgres@127.0.0.1:5432";

static COUNTER: AtomicU32 = AtomicU32::new(0);

struct Postgres;

/// A database of its own, dropped at the end.
struct Database {
    name: String,
}

fn config(database: &str, port: u16, mode: WriteMode) -> PostgresTargetConfig {
    PostgresTargetConfig {
        host: "127.0.0.1".into(),
        port,
        database: database.into(),
        user: "postgres".into(),
        password: None,
        sslmode: SslMode::Disable,
        schema: "kit".into(),
        inputs: vec!["src".into()],
        mode,
    }
}

#[async_trait]
impl Target for Database {
    fn sink(&self, pipeline: &str, mode: WriteMode) -> Box<dyn Sink> {
        Box::new(PostgresSink::new(config(&self.name, 5432, mode), pipeline))
    }

    async fn rows(&self, table: &str, columns: &[&str]) -> Vec<TextRow> {
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("{}::text", quote(c)))
            .collect();
        let sql = format!("SELECT {} FROM kit.{}", select.join(", "), quote(table));
        let mut conn = PgConnection::connect(&format!("{URL}/{}", self.name))
            .await
            .unwrap();
        let rows = sqlx::query(AssertSqlSafe(sql.clone()))
            .fetch_all(&mut conn)
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

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

#[async_trait]
impl Harness for Postgres {
    async fn target(&self, scenario: &str) -> Box<dyn Target> {
        let name = format!(
            "sl_kit_{scenario}_{}_{}",
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
        Box::new(Database { name })
    }

    fn broken_sink(&self) -> Box<dyn Sink> {
        // Port 1 on loopback: nothing listens there.
        Box::new(PostgresSink::new(
            config("postgres", 1, WriteMode::Upsert),
            "kit",
        ))
    }
}

sink_acceptance!(Postgres);
