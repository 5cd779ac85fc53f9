//! The Postgres source against the shared acceptance kit: one database
//! (and one replication slot) per scenario on the local server, dropped at
//! the end.

#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use syncline_acceptance::source::SOURCE_NAME;
use syncline_acceptance::{Origin, SourceHarness, Write, source_acceptance};
use syncline_engine::connector::Source;
use syncline_postgres::{PostgresSource, PostgresSourceConfig};

struct Postgres;

struct Database {
    db: support::TestDatabase,
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
        self.db.exec(&sql).await;
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
        self.db.exec(&sql).await;
    }

    fn source(&self) -> Box<dyn Source> {
        // The pipeline is named after the database: slot names are
        // cluster-wide.
        Box::new(PostgresSource::new(
            SOURCE_NAME,
            &self.db.name,
            Some("0123456789ab"),
            &config(&self.db.name, 5432),
        ))
    }

    async fn add_column(&self, id: i64, value: &str) {
        self.db
            .exec(&format!(
                "BEGIN; ALTER TABLE items ADD COLUMN extra text; UPDATE items SET extra = {} WHERE id = {id}; COMMIT;",
                literal(value)
            ))
            .await;
    }

    async fn write_unreadable(&self) -> Option<String> {
        // Postgres checks every value against its column's type on input.
        None
    }

    async fn clean_up(self: Box<Self>) {
        // Dropping the database drops its slots and the database.
        let Database { db } = *self;
        tokio::task::spawn_blocking(move || drop(db)).await.unwrap();
    }
}

#[async_trait]
impl SourceHarness for Postgres {
    async fn origin(&self, scenario: &str) -> Box<dyn Origin> {
        let db = support::TestDatabase::create(&format!("kit_src_{scenario}")).await;
        Box::new(Database { db })
    }

    fn broken_source(&self) -> Box<dyn Source> {
        // Nothing listens on port 1.
        Box::new(PostgresSource::new(
            SOURCE_NAME,
            "kit_broken",
            Some("0123456789ab"),
            &config("postgres", 1),
        ))
    }
}

source_acceptance!(Postgres);
