//! The local Redis for end-to-end tests: a key prefix per test (removed
//! when it ends) and the rows a Redis target wrote, read back.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

/// The Redis the tests use (`SYNCLINE_TEST_REDIS`, else the local one).
pub fn url() -> String {
    std::env::var("SYNCLINE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

pub fn connect() -> redis::Connection {
    let url = url();
    redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}"))
}

/// Every key under a prefix of one test's own, removed when dropped.
pub struct Prefix(pub String);

impl Prefix {
    pub fn new(name: &str) -> Prefix {
        Prefix(format!(
            "{name}_{}_{:06x}:",
            std::process::id(),
            fastrand::u32(..)
        ))
    }

    /// The keys under the prefix matching `pattern` (a glob).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = connect();
        redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}{pattern}", self.0))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
            .unwrap()
            .filter_map(Result::ok)
            .collect()
    }

    /// The rows a Redis target wrote as JSON under `<prefix><table>:<id>`
    /// (key template `<table>:{id}`), `columns` as text (strings as they
    /// are, NULL as empty), ordered by the integer `id`. A row found under
    /// another row's key fails the test.
    pub fn json_rows(&self, table: &str, columns: &[&str]) -> Vec<Vec<String>> {
        let mut conn = connect();
        let mut rows = BTreeMap::new();
        for key in self.keys(&format!("{table}:*")) {
            let value: Option<String> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
            let Some(value) = value else { continue };
            let doc: serde_json::Value = serde_json::from_str(&value).unwrap();
            let text = |f: &str| match &doc[f] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            let id: i64 = text("id").parse().unwrap();
            assert_eq!(
                key,
                format!("{}{table}:{id}", self.0),
                "a row under another row's key"
            );
            rows.insert(id, columns.iter().map(|c| text(c)).collect::<Vec<_>>());
        }
        rows.into_values().collect()
    }

    /// The target section of a Redis target writing `table` under this
    /// prefix as `<table>:{id}`.
    pub fn target(&self, name: &str, table: &str) -> String {
        format!(
            "[targets.{name}]
kind = \"redis\"
prefix = \"{}\"
inputs = [\"pg\"]
[targets.{name}.tables.{table}]
key = \"{table}:{{id}}\"
",
            self.0
        )
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let keys = self.keys("*");
        let mut conn = connect();
        for chunk in keys.chunks(500) {
            let _: Result<u64, _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}
