//! The Postgres source against the shared acceptance kit: one database
//! (and one replication slot) per scenario on the local server, dropped at
//! the end.

#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use syncline_acceptance::source::SOURCE_NAME;
use syncline_acceptance::{Origin, SourceHarness, Write, source_acceptance};
use syncline_engine::connector::Source;
use syncline_postgres::{PostgresSource, PostgresSourceConfig};

const URL: &str = "postgres://postgres@127.0.0.1:5432";

struct Postgres;

struct Database {
    name: String,
}

fn config(database: &str, port: u16) -> PostgresSourceConfig {
    serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "database": database,
        "sslmode": "disable",
        "tables": [{ "name": "items" }],
    }))
    .unwrap()
}

impl Database {
    async fn conn(&self) -> PgConnection {
        PgConnection::connect(&format!("{URL}/{}", self.name))
            .await
            .unwrap()
    }

    async fn run(&self, sql: String) {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut self.conn().await)
            .await
            .unwrap();
    }
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[async_trait]
impl Origin for Database {
    async fn create(&self, rows: &[(i64, &str)]) {
        let mut sql = "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);".to_owned();
        for (id, name) in rows {
            sql.push_str(&format!(
                "INSERT INTO items VALUES ({id}, {});",
                literal(name)
            ));
        }
        self.run(sql).await;
    }

    async fn write(&self, writes: &[Write]) {
        // raw_sql sends the statements as one simple query: one transaction.
        let mut sql = "BEGIN;".to_owned();
        for w in writes {
            sql.push_str(&match w {
                Write::Upsert(id, name) => format!(
                    "INSERT INTO items VALUES ({id}, {}) ON CONFLICT (id) DO UPDATE SET name = excluded.name;",
                    literal(name)
                ),
                Write::Delete(id) => format!("DELETE FROM items WHERE id = {id};"),
            });
        }
        sql.push_str("COMMIT;");
        self.run(sql).await;
    }

    fn source(&self) -> Box<dyn Source> {
        // The pipeline is named after the database: slot names are
        // cluster-wide.
        Box::new(PostgresSource::new(
            SOURCE_NAME,
            &self.name,
            &config(&self.name, 5432),
        ))
    }

    async fn write_unreadable(&self) -> Option<String> {
        // Postgres checks every value against its column's type on input.
        None
    }

    async fn clean_up(self: Box<Self>) {
        let mut admin = PgConnection::connect(&format!("{URL}/postgres"))
            .await
            .unwrap();
        // The source's replication connection may still be closing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE database = '{}' AND NOT active",
                self.name
            )))
            .execute(&mut admin)
            .await
            .unwrap();
            let dropped = sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP DATABASE {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
            match dropped {
                Ok(_) => return,
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("could not drop {}: {e}", self.name)
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }
}

#[async_trait]
impl SourceHarness for Postgres {
    async fn origin(&self, scenario: &str) -> Box<dyn Origin> {
        let name = format!("sl_kit_src_{scenario}_{}", std::process::id());
        let mut admin = PgConnection::connect(&format!("{URL}/postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        Box::new(Database { name })
    }

    fn broken_source(&self) -> Box<dyn Source> {
        // Nothing listens on port 1.
        Box::new(PostgresSource::new(
            SOURCE_NAME,
            "kit_broken",
            &config("postgres", 1),
        ))
    }
}

source_acceptance!(Postgres);
