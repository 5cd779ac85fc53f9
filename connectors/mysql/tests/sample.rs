//! Samples of MariaDB tables for the studio's previews: a seed picks the
//! rows, the same seed the same ones; large tables are sampled by index
//! seeks where the key starts with an integer, by a random share of rows
//! otherwise; every sampled row is a row of the table.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use mysql_async::prelude::Queryable;
mod common;

use common::connect;
use syncline_engine::connector::Source;
use syncline_engine::model::{Row, Value};
use syncline_mysql::{MySqlSource, MySqlSourceConfig};

fn source(database: &str, table: &str) -> MySqlSource {
    let config: MySqlSourceConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "database": database,
        "tables": [{ "name": table }],
    }))
    .unwrap();
    MySqlSource::new("my", database, &config)
}

fn text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Text(t) => t.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Checks a sample of `table`: `n` rows of distinct keys, each as the
/// table holds it (`name` is `item <id>`), the same for the same seed and
/// other for another.
async fn check_sample(database: &str, table: &str, n: usize) {
    let mut src = source(database, table);
    let (_, first) = src.sample(table, Some(n), 7).await.unwrap();
    let (_, again) = src.sample(table, Some(n), 7).await.unwrap();
    let (_, other) = src.sample(table, Some(n), 8).await.unwrap();
    assert_eq!(first.len(), n, "{table}: a sample of {n} rows");
    assert_eq!(first, again, "{table}: the same seed, the same rows");
    assert_ne!(first, other, "{table}: another seed, other rows");
    let keys: BTreeSet<String> = first.iter().map(|r: &Row| text(&r[0])).collect();
    assert_eq!(keys.len(), n, "{table}: distinct rows");
    for row in &first {
        assert_eq!(
            text(&row[1]),
            format!("item {}", text(&row[0]).trim_start_matches('k')),
            "{table}: a row as the table holds it"
        );
    }
}

#[tokio::test]
async fn samples_are_rows_of_the_table_picked_by_the_seed() {
    let name = format!("sl_sample_{}", std::process::id());
    common::fresh_database(&name).await;
    let mut conn = connect(Some(&name)).await;
    for sql in [
        // Large, with an integer key (gaps between keys too): index seeks.
        "CREATE TABLE big (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO big SELECT seq * 3, CONCAT('item ', seq * 3) FROM seq_1_to_200000",
        // Large, with a text key: a random share of rows.
        "CREATE TABLE named (id VARCHAR(20) PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO named SELECT CONCAT('k', seq), CONCAT('item ', seq) FROM seq_1_to_50000",
        // Small: shuffled whole.
        "CREATE TABLE small (id INT PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO small SELECT seq, CONCAT('item ', seq) FROM seq_1_to_100",
        "ANALYZE TABLE big, named, small",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    check_sample(&name, "big", 50).await;
    // Drawn over the whole key range (3 to 600,000), not its start.
    let (_, rows) = source(&name, "big")
        .sample("big", Some(50), 3)
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| text(&r[0]).parse().unwrap()).collect();
    assert!(
        ids.iter().any(|&i| i > 300_000) && ids.iter().any(|&i| i < 300_000),
        "{ids:?}"
    );
    check_sample(&name, "named", 50).await;
    check_sample(&name, "small", 50).await;
    // A limit above the rows: all of them.
    let (_, all) = source(&name, "small")
        .sample("small", Some(500), 1)
        .await
        .unwrap();
    assert_eq!(all.len(), 100);
    conn.query_drop(format!("DROP DATABASE `{name}`"))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
}
