//! Settings of a Redis target, and the key templates rows are stored under.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::config::{Secret, WriteMode};
use syncline_engine::model::TableSchema;

use crate::error::RedisError;

/// A Redis server as a target: a cache kept in sync by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisTargetConfig {
    /// `redis://host:port/db` (or `rediss://` for TLS). A user name may be
    /// given (`redis://user@host`); the password goes in `password`, never
    /// in the URL.
    #[serde(default = "default_url")]
    pub url: String,
    /// Password, as a reference: `${env:NAME}` or `${keyring:service/account}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Text put in front of every key this target writes, its own
    /// bookkeeping (`syncline:...`) included, to keep apart applications
    /// sharing one Redis database, e.g. `shop:`. Default: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// What this target receives: `source` (all its tables), `source.table`,
    /// or a transform name.
    pub inputs: Vec<String>,
    /// `upsert`: one Redis key per row, removed when the row is deleted.
    /// `history`: every change appended to a stream per table (`XADD`).
    /// `append`: inserts and updates appended to a stream per table.
    #[serde(default)]
    pub mode: WriteMode,
    /// How rows are stored in upsert mode, unless a table says otherwise:
    /// `json` (a string holding a JSON object) or `hash` (a Redis hash, one
    /// field per column; NULL leaves the field out).
    #[serde(default)]
    pub format: ValueFormat,
    /// Per-table settings, by target table name. Tables not listed get
    /// the defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, RedisTableConfig>,
}

fn default_url() -> String {
    "redis://127.0.0.1:6379/0".into()
}

/// How one table is kept in Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisTableConfig {
    /// The key of each row (upsert): text with placeholders `{table}`,
    /// `{key}` (every key column, joined with `:`) or `{column}` for a key
    /// column, e.g. `product:{id}`. Default `{table}:{key}`. Only key
    /// columns may appear, so a row's key never changes under it and two
    /// rows never share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How a row is stored (upsert): `json` or `hash`; default: the
    /// target's `format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ValueFormat>,
    /// The columns stored (upsert; default all). Key columns are always
    /// kept in a hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Seconds each row's key lives after its last change (upsert; default:
    /// forever; at most 100 years). An expired row is simply absent from
    /// the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// The stream's key (history and append): placeholders as in `key`
    /// but only `{table}`. Default `{table}:changes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Keep about this many entries in the stream (`XADD MAXLEN ~`),
    /// trimming the oldest; default: keep every entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_max_len: Option<u64>,
}

/// How a row is stored under its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    /// A string holding the row as a JSON object.
    #[default]
    Json,
    /// A hash: one field per column, NULL columns left out.
    Hash,
}

/// One piece of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Table,
    /// Every key column, joined with `:`.
    Key,
    /// One column, by its index in the table.
    Column(usize),
}

/// A parsed key template for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    pieces: Vec<Piece>,
    table: String,
    /// The template as written.
    pub text: String,
}

impl KeyTemplate {
    /// Parses `text` for `schema`; refuses columns that are not key
    /// columns, unknown placeholders, and templates that do not hold the
    /// whole key (two rows would share a key).
    pub fn parse(text: &str, schema: &TableSchema, table: &str) -> Result<Self, RedisError> {
        let refuse = |why: String| RedisError::Config {
            table: table.to_owned(),
            detail: format!("key template `{text}`: {why}"),
        };
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| refuse("a `{` is never closed".into()))?;
            let name = &after[..close];
            pieces.push(match name {
                "table" => Piece::Table,
                "key" => Piece::Key,
                column => {
                    let i = schema.column_index(column).ok_or_else(|| {
                        refuse(format!(
                            "`{{{column}}}` is neither `{{table}}`, `{{key}}` nor a column of the table (key: {})",
                            schema.key_names().join(", ")
                        ))
                    })?;
                    if !schema.key.contains(&i) {
                        return Err(refuse(format!(
                            "`{column}` is not a key column (key: {}); a row's Redis key must not change while the row lives",
                            schema.key_names().join(", ")
                        )));
                    }
                    Piece::Column(i)
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if schema.key.is_empty() {
            return Err(refuse(
                "the table has no key; declare one (a Redis key per row needs it)".into(),
            ));
        }
        let covers = |k: &usize| {
            pieces
                .iter()
                .any(|p| *p == Piece::Key || *p == Piece::Column(*k))
        };
        if !schema.key.iter().all(covers) {
            return Err(refuse(format!(
                "it must hold the whole key ({}), or `{{key}}`, so no two rows share a Redis key",
                schema.key_names().join(", ")
            )));
        }
        let values = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Key | Piece::Column(_)))
            .count();
        for pair in pieces.windows(2) {
            if matches!(pair[0], Piece::Key | Piece::Column(_))
                && matches!(pair[1], Piece::Key | Piece::Column(_))
            {
                return Err(refuse(
                    "two placeholders touch; put a `:` between them".into(),
                ));
            }
        }
        if values > 1
            && pieces
                .iter()
                .any(|p| matches!(p, Piece::Text(t) if !t.contains(':')))
        {
            return Err(refuse(
                "with several placeholders, the text between them must hold a `:`".into(),
            ));
        }
        let template = KeyTemplate {
            pieces,
            table: table.to_owned(),
            text: text.to_owned(),
        };
        reserved(&template.skeleton()).map_err(refuse)?;
        Ok(template)
    }

    /// The template with every value placeholder as `{}`: two tables whose
    /// skeletons are equal could store rows under the same keys.
    pub fn skeleton(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Table => self.table.clone(),
                Piece::Key | Piece::Column(_) => "{}".into(),
            })
            .collect()
    }

    /// The Redis key of the row whose key values (in column order of the
    /// whole row) are `key_text(i)` for column `i`. `%` and `:` inside a
    /// value are escaped (`%25`, `%3A`), so a value never adds a segment:
    /// keys of different templates (see [`overlaps`]) and of different rows
    /// stay apart.
    pub fn render(&self, schema: &TableSchema, key_text: impl Fn(usize) -> String) -> String {
        let part = |i: usize| key_text(i).replace('%', "%25").replace(':', "%3A");
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Table => out.push_str(&self.table),
                Piece::Key => {
                    let parts: Vec<String> = schema.key.iter().map(|&k| part(k)).collect();
                    out.push_str(&parts.join(":"));
                }
                Piece::Column(i) => out.push_str(&part(*i)),
            }
        }
        out
    }
}

/// Refuses a key skeleton (placeholders as `{}`) whose first `:`-segment is
/// not plain text, or is `syncline` (the target's own bookkeeping).
pub fn reserved(skeleton: &str) -> Result<(), String> {
    let first = skeleton.split(':').next().unwrap_or_default();
    if first.contains("{}") {
        return Err("it must begin with plain text before its first `:` (e.g. `product:{id}`), so its keys cannot meet other tables' or Syncline's own".into());
    }
    if first == "syncline" {
        return Err("keys beginning `syncline:` are the target's own bookkeeping".into());
    }
    Ok(())
}

/// Whether two key skeletons (placeholders as `{}`, values never holding
/// `:`) can produce the same key: as many `:`-segments, each pair equal or
/// one of them holding a placeholder.
pub fn overlaps(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split(':').collect(), b.split(':').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x == y || x.contains("{}") || y.contains("{}"))
}

/// The default key template.
pub const DEFAULT_KEY: &str = "{table}:{key}";
/// The default stream key template.
pub const DEFAULT_STREAM: &str = "{table}:changes";

impl RedisTargetConfig {
    /// The settings of `table` (defaults where it is not listed).
    pub fn table(&self, table: &str) -> RedisTableConfig {
        self.tables.get(table).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use syncline_engine::model::DataType;

    use super::*;

    fn schema(key: Vec<usize>) -> Arc<TableSchema> {
        syncline_acceptance::fixtures::table(
            "orders",
            &[
                ("shop", DataType::Text),
                ("id", DataType::Text),
                ("note", DataType::Text),
            ],
            &key,
            1,
        )
    }

    #[test]
    fn templates_render_and_refuse_what_could_collide() {
        let s = schema(vec![1]);
        let t = KeyTemplate::parse("order:{id}", &s, "orders").unwrap();
        assert_eq!(t.render(&s, |_| "a:b%".into()), "order:a%3Ab%25");
        let t = KeyTemplate::parse(DEFAULT_KEY, &s, "orders").unwrap();
        assert_eq!(t.render(&s, |_| "7".into()), "orders:7");
        assert_eq!(t.skeleton(), "orders:{}");

        let both = schema(vec![0, 1]);
        let t = KeyTemplate::parse(DEFAULT_KEY, &both, "orders").unwrap();
        // ("a:b", "c") and ("a", "b:c") must not meet.
        let one = t.render(&both, |i| if i == 0 { "a:b" } else { "c" }.into());
        let two = t.render(&both, |i| if i == 0 { "a" } else { "b:c" }.into());
        assert_ne!(one, two);
        assert_eq!(one, "orders:a%3Ab:c");

        for bad in [
            "order:{note}",
            "order:{nope}",
            "order:{shop}",
            "order:{id",
            "{shop}{id}",
            "o:{shop}-{id}",
            "{id}",
            "{id}:x",
            "syncline:{id}",
        ] {
            assert!(KeyTemplate::parse(bad, &both, "orders").is_err(), "{bad}");
        }
        assert!(KeyTemplate::parse("o:{shop}:{id}", &both, "orders").is_ok());
        assert!(KeyTemplate::parse("o:{id}", &schema(vec![]), "orders").is_err());
    }

    #[test]
    fn overlapping_skeletons_are_found() {
        assert!(overlaps("user:{}", "user:{}"));
        assert!(overlaps("user:{}", "user:admin"));
        assert!(overlaps("a:{}:x", "a:b:{}"));
        assert!(!overlaps("user:{}", "user:{}:settings"));
        assert!(!overlaps("user:{}", "users:{}"));
        assert!(!overlaps("items:changes", "items:{}:x"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let c: RedisTargetConfig =
            serde_json::from_value(serde_json::json!({"inputs": ["pg"]})).unwrap();
        assert_eq!(c.url, "redis://127.0.0.1:6379/0");
        assert_eq!(c.format, ValueFormat::Json);
        assert_eq!(c.table("x").format, None);
        assert!(
            serde_json::from_value::<RedisTargetConfig>(
                serde_json::json!({"inputs": [], "tables": {"t": {"ttl": 3}}})
            )
            .is_err()
        );
    }
}
