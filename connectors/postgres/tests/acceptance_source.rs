//! The Postgres source against the shared acceptance kit: one database
//! (and one replication slot) per scenario on the local server, dropped at
//! the end. Change data capture runs every scenario; polling by a cursor
//! (no deletes seen, every row an upsert) runs the ones that do not assume
//! a change log.

#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use syncline_acceptance::source::SOURCE_NAME;
use syncline_acceptance::{Origin, SourceHarness, Write, source_acceptance};
use syncline_engine::connector::Source;
use syncline_postgres::{PostgresSource, PostgresSourceConfig};

struct Postgres;

/// Polling `items` by a `rev` cursor that a trigger moves on every write.
struct Polling;

struct Database {
    db: support::TestDatabase,
    polled: bool,
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

fn polling_config(database: &str) -> PostgresSourceConfig {
    serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "port": 5432,
        "database": database,
        "sslmode": "disable",
        "poll_secs": 1,
        "tables": [{ "name": "items", "mode": "incremental", "cursor": "rev" }],
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
        if self.polled {
            sql.push_str(
                "CREATE SEQUENCE items_rev;
                 ALTER TABLE items ADD COLUMN rev bigint NOT NULL DEFAULT nextval('items_rev');
                 CREATE FUNCTION items_rev() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN NEW.rev := nextval('items_rev'); RETURN NEW; END $$;
                 CREATE TRIGGER items_rev BEFORE UPDATE ON items
                   FOR EACH ROW EXECUTE FUNCTION items_rev();",
            );
        }
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
        let config = if self.polled {
            polling_config(&self.db.name)
        } else {
            config(&self.db.name, 5432)
        };
        Box::new(PostgresSource::new(
            SOURCE_NAME,
            &self.db.name,
            Some("0123456789ab"),
            &config,
        ))
    }

    fn follows_deletes(&self) -> bool {
        !self.polled
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
        let Database { db, .. } = *self;
        tokio::task::spawn_blocking(move || drop(db)).await.unwrap();
    }
}

#[async_trait]
impl SourceHarness for Postgres {
    async fn origin(&self, scenario: &str) -> Box<dyn Origin> {
        let db = support::TestDatabase::create(&format!("kit_src_{scenario}")).await;
        Box::new(Database { db, polled: false })
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

#[async_trait]
impl SourceHarness for Polling {
    async fn origin(&self, scenario: &str) -> Box<dyn Origin> {
        let db = support::TestDatabase::create(&format!("kit_poll_{scenario}")).await;
        Box::new(Database { db, polled: true })
    }

    fn broken_source(&self) -> Box<dyn Source> {
        Postgres.broken_source()
    }
}

/// Polling: every scenario but those that need a change log (deletes,
/// inserts told apart from updates, a column added to rows in place).
mod polling {
    use super::Polling;

    syncline_acceptance::source_acceptance!(@tests Polling;
        discover_reports_the_table_and_its_key,
        sinks_at_different_positions_each_end_equal,
        source_check_explains_a_failure,
    );
}
