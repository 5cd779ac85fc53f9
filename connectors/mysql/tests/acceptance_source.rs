//! The MySQL / MariaDB source against the shared acceptance kit: one
//! database per scenario on the local MariaDB (its binary log on, row
//! format, full row metadata), dropped at the end.

#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
mod common;

use common::connect;
use syncline_acceptance::source::SOURCE_NAME;
use syncline_acceptance::{Origin, SourceHarness, Write, source_acceptance};
use syncline_engine::connector::Source;
use syncline_mysql::{MySqlSource, MySqlSourceConfig};

struct MariaDb;

struct Database {
    name: String,
}

fn config(database: &str, port: u16) -> MySqlSourceConfig {
    serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "database": database,
        "heartbeat_secs": 1,
        "tables": [{ "name": "items" }],
    }))
    .unwrap()
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl Database {
    async fn exec(&self, statements: &[String]) {
        let mut conn = connect(Some(&self.name)).await;
        for s in statements {
            conn.query_drop(s)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        conn.disconnect().await.unwrap();
    }
}

#[async_trait]
impl Origin for Database {
    async fn create(&self, rows: &[(i64, &str)]) {
        let mut sql =
            vec!["CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)".to_owned()];
        for (id, name) in rows {
            sql.push(format!(
                "INSERT INTO items (id, name) VALUES ({id}, {})",
                literal(name)
            ));
        }
        self.exec(&sql).await;
    }

    async fn write(&self, writes: &[Write]) {
        let mut sql = vec!["START TRANSACTION".to_owned()];
        for w in writes {
            sql.push(match w {
                Write::Upsert(id, name) => format!(
                    "INSERT INTO items (id, name) VALUES ({id}, {}) ON DUPLICATE KEY UPDATE name = VALUES(name)",
                    literal(name)
                ),
                Write::Delete(id) => format!("DELETE FROM items WHERE id = {id}"),
            });
        }
        sql.push("COMMIT".to_owned());
        self.exec(&sql).await;
    }

    fn source(&self) -> Box<dyn Source> {
        // The pipeline is named after the database: replica ids are
        // server-wide.
        Box::new(MySqlSource::new(
            SOURCE_NAME,
            &self.name,
            &config(&self.name, 3306),
        ))
    }

    async fn add_column(&self, id: i64, value: &str) {
        // DDL commits on its own in MySQL: the column, then its value.
        self.exec(&[
            "ALTER TABLE items ADD COLUMN extra TEXT NULL".to_owned(),
            format!(
                "UPDATE items SET extra = {} WHERE id = {id}",
                literal(value)
            ),
        ])
        .await;
    }

    async fn write_unreadable(&self) -> Option<String> {
        // Under a lax sql_mode the server stores a date that is no date.
        self.exec(&[
            "ALTER TABLE items ADD COLUMN born DATE NULL".to_owned(),
            "SET SESSION sql_mode = ''".to_owned(),
            "INSERT INTO items (id, name, born) VALUES (100, 'zero date', '0000-00-00')".to_owned(),
        ])
        .await;
        Some("not a calendar date".to_owned())
    }

    async fn clean_up(self: Box<Self>) {
        let mut conn = connect(None).await;
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
    }
}

#[async_trait]
impl SourceHarness for MariaDb {
    async fn origin(&self, scenario: &str) -> Box<dyn Origin> {
        let name = format!("kit_my_{scenario}_{}", std::process::id());
        common::fresh_database(&name).await;
        Box::new(Database { name })
    }

    fn broken_source(&self) -> Box<dyn Source> {
        // Nothing listens on port 1.
        Box::new(MySqlSource::new(
            SOURCE_NAME,
            "kit_broken",
            &config("test", 1),
        ))
    }
}

source_acceptance!(MariaDb);
