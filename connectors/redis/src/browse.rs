//! What a Redis target holds, read back for people (the studio's data
//! view): the tables a pipeline writes, and their keys with their values.

use std::collections::HashMap;

use redis::AsyncCommands as _;
use serde::Serialize;
use syncline_engine::config::WriteMode;

use crate::config::{DEFAULT_STREAM, RedisTargetConfig};
use crate::error::RedisError;
use crate::{Bookkeeping, RedisSink};

/// One table of a pipeline in a Redis target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyedTable {
    /// The table's name.
    pub table: String,
    /// Its key template (upsert) or stream (history, append), as claimed.
    pub template: String,
    /// Rows it holds (upsert: keys; streams: rows with a last version).
    pub keys: u64,
}

/// One key (or stream entry) and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrowsedKey {
    /// The Redis key (for a stream entry: the stream and the entry id).
    pub key: String,
    /// The row: a JSON object (a JSON string's document, or a hash's fields).
    pub value: serde_json::Value,
}

/// The tables `pipeline` writes in the target, from its claims.
pub async fn tables(
    config: &RedisTargetConfig,
    pipeline: &str,
) -> Result<Vec<KeyedTable>, RedisError> {
    let mut conn = RedisSink::connect(config).await?;
    let keys = Bookkeeping::new(&config.prefix, pipeline);
    let claims: HashMap<String, String> = conn
        .hgetall(keys.claims())
        .await
        .map_err(RedisError::command("reading key template claims"))?;
    let owner = format!("{pipeline}/");
    let mut out = Vec::new();
    for (template, holder) in claims {
        let Some(table) = holder.strip_prefix(&owner) else {
            continue;
        };
        let count: u64 = conn
            .hlen(keys.index(table))
            .await
            .map_err(RedisError::command("counting a table's keys"))?;
        out.push(KeyedTable {
            table: table.to_owned(),
            template,
            keys: count,
        });
    }
    out.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(out)
}

/// Up to `limit` keys of `table` with their values (upsert), or the latest
/// `limit` entries of its stream (history, append).
pub async fn keys(
    config: &RedisTargetConfig,
    pipeline: &str,
    table: &str,
    limit: usize,
) -> Result<Vec<BrowsedKey>, RedisError> {
    let mut conn = RedisSink::connect(config).await?;
    let keys = Bookkeeping::new(&config.prefix, pipeline);
    if config.mode != WriteMode::Upsert {
        let stream = keys.data(
            &config
                .table(table)
                .stream
                .as_deref()
                .unwrap_or(DEFAULT_STREAM)
                .replace("{table}", table),
        );
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(RedisError::command("reading the table's stream"))?;
        return Ok(entries
            .into_iter()
            .map(|(id, fields)| BrowsedKey {
                key: format!("{stream} {id}"),
                value: serde_json::Value::Object(
                    fields.into_iter().map(|(k, v)| (k, parsed(&v))).collect(),
                ),
            })
            .collect());
    }
    let index = keys.index(table);
    let mut names: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("HSCAN")
            .arg(&index)
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(RedisError::command("reading the table's key index"))?;
        // Field, value, field, value...: the fields are the keys.
        names.extend(page.into_iter().step_by(2));
        cursor = next;
        if cursor == 0 || names.len() >= limit {
            break;
        }
    }
    names.truncate(limit);
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for key in names {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(RedisError::command("reading a key's type"))?;
        let value = match kind.as_str() {
            "string" => {
                let text: Option<String> = conn
                    .get(&key)
                    .await
                    .map_err(RedisError::command("reading a key"))?;
                text.map_or(serde_json::Value::Null, |t| parsed(&t))
            }
            "hash" => {
                let fields: HashMap<String, String> = conn
                    .hgetall(&key)
                    .await
                    .map_err(RedisError::command("reading a key"))?;
                serde_json::Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect(),
                )
            }
            // Expired (a TTL) since the index was read: nothing to show.
            _ => continue,
        };
        out.push(BrowsedKey { key, value });
    }
    Ok(out)
}

/// A stored text as JSON where it is, else as a string.
fn parsed(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}
