//! The Redis target against the shared acceptance kit, on the local server
//! (127.0.0.1:6379, or `SYNCLINE_TEST_REDIS`): every scenario writes under
//! a prefix of its own (the target's `prefix`), removed when it ends. The
//! kit runs twice: rows as JSON strings, and rows as hashes.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::value::RawValue;
use syncline_acceptance::{Harness, Target, TextRow, TypeCase, types};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_engine::model::{DataType, Value};
use syncline_redis::{RedisSink, ValueFormat};

use support::Namespace;

/// One scenario's keys.
struct Keys {
    space: Namespace,
    format: ValueFormat,
    /// The mode and pipeline of the sink last made (rows are read back
    /// accordingly).
    last: Mutex<(WriteMode, String)>,
}

/// A stored value as the kit reads it: strings as their text, `null` as
/// NULL, anything else as its JSON text exactly as stored.
fn shown(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text == "null" {
        None
    } else if text.starts_with('"') {
        Some(serde_json::from_str::<String>(text).unwrap())
    } else {
        Some(text.to_owned())
    }
}

fn object(bytes: &[u8]) -> std::collections::BTreeMap<String, Box<RawValue>> {
    serde_json::from_slice(bytes).unwrap()
}

/// Hash field bytes as text; bytes that are not UTF-8 as `\x` and hex.
fn field_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(t) => t.to_owned(),
        Err(_) => format!(
            "\\x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

#[async_trait]
impl Target for Keys {
    fn sink(&self, pipeline: &str, mode: WriteMode) -> Box<dyn Sink> {
        *self.last.lock().unwrap() = (mode, pipeline.to_owned());
        let mut config = self.space.config(mode);
        config.format = self.format;
        Box::new(RedisSink::new(config, pipeline))
    }

    async fn rows(&self, table: &str, columns: &[&str]) -> Vec<TextRow> {
        let (mode, pipeline) = self.last.lock().unwrap().clone();
        let mut conn = self.space.conn().await;
        let mut out = Vec::new();
        if mode == WriteMode::Upsert {
            let index = self
                .space
                .key(&format!("syncline:{pipeline}:index:{table}"));
            let kind: String = redis::cmd("TYPE")
                .arg(&index)
                .query_async(&mut conn)
                .await
                .unwrap();
            if kind != "hash" {
                // Nothing written (or something else's in the way).
                return out;
            }
            let keys: Vec<String> = redis::cmd("HKEYS")
                .arg(&index)
                .query_async(&mut conn)
                .await
                .unwrap();
            for key in keys {
                let row: TextRow = match self.format {
                    ValueFormat::Json => {
                        let value: Option<Vec<u8>> = redis::cmd("GET")
                            .arg(&key)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        let Some(value) = value else { continue };
                        let object = object(&value);
                        columns
                            .iter()
                            .map(|c| object.get(*c).and_then(|v| shown(v)))
                            .collect()
                    }
                    ValueFormat::Hash => {
                        let fields: std::collections::HashMap<String, Vec<u8>> =
                            redis::cmd("HGETALL")
                                .arg(&key)
                                .query_async(&mut conn)
                                .await
                                .unwrap();
                        if fields.is_empty() {
                            continue;
                        }
                        columns
                            .iter()
                            .map(|c| fields.get(*c).map(|v| field_text(v)))
                            .collect()
                    }
                };
                out.push(row);
            }
        } else {
            let stream = self.space.key(&format!("{table}:changes"));
            let entries: Vec<(String, std::collections::HashMap<String, Vec<u8>>)> =
                redis::cmd("XRANGE")
                    .arg(&stream)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            for (_, fields) in entries {
                let text = |name: &str| fields.get(name).map(|v| field_text(v));
                let data = fields
                    .get("after")
                    .or_else(|| fields.get("before"))
                    .map(|v| object(v))
                    .unwrap_or_default();
                out.push(
                    columns
                        .iter()
                        .map(|c| match *c {
                            "_seq" => text("seq"),
                            "_op" => text("op"),
                            c => data.get(c).and_then(|v| shown(v)),
                        })
                        .collect(),
                );
            }
        }
        out
    }

    async fn obstruct(&self, table: &str) {
        // A string where the sink keeps the table's key index.
        let mut conn = self.space.conn().await;
        let pipeline = self.last.lock().unwrap().1.clone();
        let index = self
            .space
            .key(&format!("syncline:{pipeline}:index:{table}"));
        let _: () = redis::cmd("SET")
            .arg(&index)
            .arg("someone else's")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

struct Redis(ValueFormat);

#[async_trait]
impl Harness for Redis {
    async fn target(&self, scenario: &str) -> Box<dyn Target> {
        let format = match self.0 {
            ValueFormat::Json => "json",
            ValueFormat::Hash => "hash",
        };
        Box::new(Keys {
            space: Namespace::new(&format!("kit_{format}_{scenario}")),
            format: self.0,
            last: Mutex::new((WriteMode::Upsert, "kit".into())),
        })
    }

    fn broken_sink(&self) -> Box<dyn Sink> {
        // Port 1 on loopback: nothing listens there.
        let mut config = Namespace::config_for("redis://127.0.0.1:1/0", "", WriteMode::Upsert);
        config.prefix = "kit_broken:".into();
        Box::new(RedisSink::new(config, "kit"))
    }

    fn unstorable(&self) -> Option<(DataType, Value, &'static str, Value)> {
        // Every value has a form in Redis (see `syncline_redis::encode`).
        None
    }

    fn types(&self) -> Vec<TypeCase> {
        types::json_cases(match self.0 {
            ValueFormat::Json => "00ff41105c27",
            ValueFormat::Hash => r"\x00ff41105c27",
        })
    }
}

mod json {
    use super::*;
    syncline_acceptance::sink_acceptance!(Redis(ValueFormat::Json));
}

mod hash {
    use super::*;
    syncline_acceptance::sink_acceptance!(Redis(ValueFormat::Hash));
}
