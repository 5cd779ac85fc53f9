//! A table's rows read back from Redis in key order, for `syncline verify`:
//! its keys from the table's key index (the whole index is read and sorted
//! in memory: a cache's keys), its rows a page at a time, every stored
//! value parsed back to its column's type.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use syncline_engine::encode;
use syncline_engine::model::{Row, Value};
use syncline_engine::verify::{RowReader, compare_keys};
use syncline_engine::{Error, Result};

use crate::ValueFormat;
use crate::error::RedisError;
use crate::plan::{Stored, TableState, parse_json_object};

pub(crate) struct TableReader {
    conn: ConnectionManager,
    table: TableState,
    /// Every key the index lists, in key order, with its Redis key.
    keys: Vec<(Vec<Value>, String)>,
    at: usize,
}

impl TableReader {
    pub(crate) async fn open(
        mut conn: ConnectionManager,
        table: TableState,
    ) -> Result<Self, RedisError> {
        let mut iter: redis::AsyncIter<'_, (String, String)> =
            redis::AsyncCommands::hscan(&mut conn, &table.index)
                .await
                .map_err(RedisError::command("reading the key index"))?;
        let mut keys = Vec::new();
        while let Some(item) = iter.next_item().await {
            let (field, entry) = item.map_err(RedisError::command("reading the key index"))?;
            let key: Vec<Value> = serde_json::from_str(&entry).map_err(|e| {
                RedisError::State(format!(
                    "an entry of the key index `{}` is unreadable: {e}",
                    table.index
                ))
            })?;
            keys.push((key, field));
        }
        drop(iter);
        keys.sort_by(|a, b| compare_keys(&a.0, &b.0));
        Ok(TableReader {
            conn,
            table,
            keys,
            at: 0,
        })
    }

    /// The rows stored under `wanted` Redis keys (`None`: no such key).
    async fn read(&mut self, wanted: &[String]) -> Result<Vec<Option<Stored>>, RedisError> {
        let read = RedisError::command("reading rows");
        if self.table.format == ValueFormat::Hash {
            let mut pipe = redis::pipe();
            for k in wanted {
                pipe.hgetall(k);
            }
            let values: Vec<BTreeMap<String, Vec<u8>>> =
                pipe.query_async(&mut self.conn).await.map_err(read)?;
            return Ok(values
                .into_iter()
                .map(|v| (!v.is_empty()).then_some(v))
                .collect());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(wanted)
            .query_async(&mut self.conn)
            .await
            .map_err(read)?;
        values
            .into_iter()
            .map(|v| v.map(|bytes| parse_json_object(&bytes)).transpose())
            .collect()
    }

    /// A stored row as the table's row: columns not stored are NULL (and
    /// not compared, see [`RowReader::holds`]), key values from `key`.
    fn row(&self, key: &[Value], stored: &Stored) -> Result<Row, RedisError> {
        let schema = &self.table.schema;
        let mut row = vec![Value::Null; schema.columns.len()];
        for &i in &self.table.stored {
            let c = &schema.columns[i];
            let Some(bytes) = stored.get(&c.name) else {
                continue;
            };
            let bad = |detail: String| {
                RedisError::State(format!("column `{}` of a stored row: {detail}", c.name))
            };
            row[i] = if self.table.format == ValueFormat::Hash {
                match c.data_type {
                    syncline_engine::model::DataType::Bytes => Value::Bytes(bytes.clone()),
                    _ => {
                        let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
                        encode::parse_text(&c.data_type, text).map_err(bad)?
                    }
                }
            } else {
                let doc: serde_json::Value =
                    serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
                encode::parse_json(&c.data_type, &doc).map_err(bad)?
            };
        }
        for (&k, v) in schema.key.iter().zip(key) {
            row[k] = v.clone();
        }
        Ok(row)
    }
}

#[async_trait]
impl RowReader for TableReader {
    async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        // Keys that expired since the index was read are passed over.
        while out.is_empty() && self.at < self.keys.len() {
            let end = (self.at + limit).min(self.keys.len());
            let slice: Vec<(Vec<Value>, String)> = self.keys[self.at..end].to_vec();
            self.at = end;
            let names: Vec<String> = slice.iter().map(|(_, k)| k.clone()).collect();
            let stored = self.read(&names).await?;
            for ((key, _), s) in slice.iter().zip(stored) {
                if let Some(s) = s {
                    out.push(self.row(key, &s)?);
                }
            }
        }
        Ok(out)
    }

    async fn rows(&mut self, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let mut names = Vec::with_capacity(keys.len());
        for k in keys {
            let key = syncline_engine::apply::conform_key(&self.table.schema, k);
            names.push(self.table.redis_key(&key).map_err(Error::internal)?);
        }
        let stored = self.read(&names).await?;
        let mut out = Vec::new();
        for (k, s) in keys.iter().zip(stored) {
            if let Some(s) = s {
                out.push(self.row(k, &s)?);
            }
        }
        Ok(out)
    }

    fn holds(&self, column: usize) -> bool {
        self.table.stored.contains(&column) || self.table.schema.key.contains(&column)
    }
}
