//! Reading the status lines `syncline run --json` prints.

use serde_json::Value as Json;

pub fn table_status<'a>(s: &'a Json, table: &str) -> &'a Json {
    &s["tables"][format!("pg.{table}")]
}

pub fn count(s: &Json, table: &str, field: &str) -> u64 {
    table_status(s, table)[field].as_u64().unwrap_or(0)
}

pub fn phase<'a>(s: &'a Json, table: &str) -> &'a str {
    table_status(s, table)["phase"].as_str().unwrap_or("")
}

pub fn changes(s: &Json, table: &str) -> u64 {
    count(s, table, "inserts") + count(s, table, "updates") + count(s, table, "deletes")
}

/// First status line (seconds since spawn) satisfying `pred`.
pub fn first_at(lines: &[(f64, Json)], pred: impl Fn(&Json) -> bool) -> Option<f64> {
    lines.iter().find(|(_, s)| pred(s)).map(|(t, _)| *t)
}
