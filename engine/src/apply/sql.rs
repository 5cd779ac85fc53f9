//! The statements a SQL target runs for the steps of a
//! [`Plan`](super::Plan), written once for every SQL target over a small
//! [`SqlDialect`]: what differs between DuckDB, Postgres and MySQL is how
//! an identifier is quoted, how a staged value becomes a column's value,
//! how the last staged row of each key is found, and a few more fragments;
//! what a merge, a truncate or a prune *means* is here.
//!
//! A target stages each run of changes ([`super::Step::Rows`]) in a
//! staging table that has the table's columns after [`STAGE`]'s own, fills
//! the values the source left out from its own rows (see
//! [`super::StagedRow::lookup`]), then runs [`merge`]; a truncate runs
//! [`truncate`], a prune stages its keys and runs [`prune`].

use crate::config::WriteMode;
use crate::model::{DataType, PruneRange, TableSchema};

/// The staging table's own columns, before the table's, in order: the
/// change's order in the run, its op code (`i`, `u`, `d`; `lo`, `hi`, `k`
/// for a prune's bounds and keys), the columns it left unchanged, and the
/// position and commit time of its batch.
pub const STAGE: [&str; 5] = [
    "_syncline_seq",
    "_syncline_op",
    "_syncline_unchanged",
    "_syncline_bseq",
    "_syncline_commit",
];

const SEQ: &str = STAGE[0];
const OP: &str = STAGE[1];
const BSEQ: &str = STAGE[3];
const COMMIT: &str = STAGE[4];

/// The history table's own columns, before the table's: op code, position,
/// source commit time, time written.
pub const HISTORY: [&str; 4] = ["_op", "_seq", "_commit_time", "_synced_at"];

/// The staging column holding key column `i` (in key order) of the key
/// under which a row's unchanged values are looked up (see
/// [`super::StagedRow::lookup`]); these follow the table's columns.
pub fn lookup_column(i: usize) -> String {
    format!("_syncline_from_{i}")
}

/// What differs between SQL targets.
pub trait SqlDialect {
    /// An identifier, quoted.
    fn quote(&self, ident: &str) -> String;

    /// The staged value `expr` as a value of a column of type `t` (where the
    /// staging table keeps a type in another form).
    fn cast_staged(&self, expr: &str, t: &DataType) -> String {
        let _ = t;
        expr.to_owned()
    }

    /// A target key column `expr` as it compares in the source's key order
    /// (text byte by byte).
    fn in_key_order(&self, expr: &str, t: &DataType) -> String {
        let _ = t;
        expr.to_owned()
    }

    /// A relation of the rows of `stage` that are the last (highest
    /// sequence) of their key; `keys` is the quoted key column list.
    fn last_per_key(&self, stage: &str, keys: &str) -> String;

    /// A relation `h` of the key columns (`keys`, quoted list) and the op
    /// of each key's latest row in history table `table` since its last
    /// truncate.
    fn latest_in_history(&self, table: &str, keys: &str) -> String;

    /// Removes every row of `table`.
    fn delete_all(&self, table: &str) -> String;

    /// A commit time (microseconds since the epoch) as a timestamp with
    /// time zone, or NULL.
    fn timestamp(&self, micros: Option<i64>) -> String;
}

/// The tables one step works on: the target table and its staging table,
/// both qualified and quoted, and the table's schema as registered.
#[derive(Debug, Clone, Copy)]
pub struct Tables<'a> {
    /// The target table.
    pub table: &'a str,
    /// Its staging table.
    pub stage: &'a str,
    /// The table as the target registered it.
    pub schema: &'a TableSchema,
}

/// The position and commit time history rows record: those of one batch,
/// or each staged row's own ([`STAGE`]'s batch columns).
#[derive(Debug, Clone, Copy)]
pub enum Recorded {
    /// Every staged row is of this batch.
    Batch {
        /// Its position's sequence number.
        seq: u64,
        /// Its commit time (microseconds since the epoch).
        commit_micros: Option<i64>,
    },
    /// Each staged row carries its batch's.
    Staged,
}

fn columns(d: &dyn SqlDialect, schema: &TableSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| d.quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn staged_values(d: &dyn SqlDialect, schema: &TableSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| d.cast_staged(&format!("s.{}", d.quote(&c.name)), &c.data_type))
        .collect::<Vec<_>>()
        .join(", ")
}

fn keys(d: &dyn SqlDialect, schema: &TableSchema) -> Vec<String> {
    schema
        .key
        .iter()
        .map(|&k| d.quote(&schema.columns[k].name))
        .collect()
}

/// The target rows `t` an upsert merge of the staged rows replaces, as
/// `{table} t, {staged keys} s` and the condition joining them (`None`
/// without a key): what the merge's delete removes, for a dialect that
/// sizes it first.
pub fn replaced(d: &dyn SqlDialect, t: Tables<'_>) -> Option<(String, String)> {
    let keys = keys(d, t.schema);
    if keys.is_empty() {
        return None;
    }
    let join: Vec<String> = keys.iter().map(|k| format!("t.{k} = s.{k}")).collect();
    Some((
        format!(
            "{} t, (SELECT DISTINCT {} FROM {}) s",
            t.table,
            keys.join(", "),
            t.stage
        ),
        join.join(" AND "),
    ))
}

fn history_columns(d: &dyn SqlDialect) -> String {
    HISTORY
        .iter()
        .map(|c| d.quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements that apply the staged run to the table, in `mode`:
/// * upsert: the keys of the run are deleted, then the last staged row of
///   each key inserted unless it is a delete;
/// * append: every insert and update, in order;
/// * history: every change with its op, position and commit time, in order.
///
/// An upsert needs a key: without one this is an error saying so.
pub fn merge(
    d: &dyn SqlDialect,
    mode: WriteMode,
    t: Tables<'_>,
    recorded: Recorded,
) -> Result<String, String> {
    let (table, stage) = (t.table, t.stage);
    let cols = columns(d, t.schema);
    let values = staged_values(d, t.schema);
    let (seq, op) = (d.quote(SEQ), d.quote(OP));
    Ok(match mode {
        WriteMode::Upsert => {
            let Some((_, join)) = replaced(d, t) else {
                return Err("upsert mode needs a key; the table has none".into());
            };
            let keys = keys(d, t.schema).join(", ");
            format!(
                "DELETE FROM {table} t USING (SELECT DISTINCT {keys} FROM {stage}) s WHERE {join};
                 INSERT INTO {table} ({cols}) SELECT {values} FROM {last} s WHERE s.{op} <> 'd'",
                last = d.last_per_key(stage, &keys),
            )
        }
        WriteMode::Append => format!(
            "INSERT INTO {table} ({cols}) SELECT {values} FROM {stage} s WHERE s.{op} IN ('i', 'u') ORDER BY s.{seq}"
        ),
        WriteMode::History => {
            let (bseq, commit) = match recorded {
                Recorded::Batch { seq, commit_micros } => {
                    (seq.to_string(), d.timestamp(commit_micros))
                }
                Recorded::Staged => (
                    format!("s.{}", d.quote(BSEQ)),
                    format!("s.{}", d.quote(COMMIT)),
                ),
            };
            format!(
                "INSERT INTO {table} ({meta}, {cols}) SELECT s.{op}, {bseq}, {commit}, now(), {values} FROM {stage} s ORDER BY s.{seq}",
                meta = history_columns(d),
            )
        }
    })
}

/// The statement that truncates the table in `mode`: its rows removed in
/// upsert and append mode, a `t` row recorded in history mode.
pub fn truncate(
    d: &dyn SqlDialect,
    mode: WriteMode,
    table: &str,
    seq: u64,
    commit_micros: Option<i64>,
) -> String {
    match mode {
        WriteMode::Upsert | WriteMode::Append => d.delete_all(table),
        WriteMode::History => format!(
            "INSERT INTO {table} ({}, {}, {}, {}) VALUES ('t', {seq}, {}, now())",
            d.quote(HISTORY[0]),
            d.quote(HISTORY[1]),
            d.quote(HISTORY[2]),
            d.quote(HISTORY[3]),
            d.timestamp(commit_micros),
        ),
    }
}

/// The statement that removes the rows of a key range the source no longer
/// holds (see [`crate::model::Op::Prune`]), the range's bounds and present
/// keys staged as rows tagged `lo`, `hi` and `k`: deleted in upsert mode,
/// recorded as deletes in history mode; append mode keeps every row it was
/// given (`None`). A prune needs a key.
pub fn prune(
    d: &dyn SqlDialect,
    mode: WriteMode,
    t: Tables<'_>,
    range: &PruneRange,
    seq: u64,
    commit_micros: Option<i64>,
) -> Result<Option<String>, String> {
    if mode == WriteMode::Append {
        return Ok(None);
    }
    let schema = t.schema;
    if schema.key.is_empty() {
        return Err("a key scan needs a key; the table has none".into());
    }
    let pairs: Vec<(String, String)> = schema
        .key
        .iter()
        .map(|&k| {
            let c = &schema.columns[k];
            let name = d.quote(&c.name);
            (
                d.in_key_order(&format!("h.{name}"), &c.data_type),
                d.cast_staged(&format!("p.{name}"), &c.data_type),
            )
        })
        .collect();
    let filter = super::prune_condition(&pairs, t.stage, &d.quote(OP), range);
    let table = t.table;
    Ok(Some(match mode {
        WriteMode::History => {
            let keys = keys(d, schema).join(", ");
            format!(
                "INSERT INTO {table} ({meta}, {keys}) SELECT 'd', {seq}, {commit}, now(), {keys} FROM {latest} WHERE h.{op} <> 'd' AND {filter}",
                meta = history_columns(d),
                commit = d.timestamp(commit_micros),
                latest = d.latest_in_history(table, &keys),
                op = d.quote(HISTORY[0]),
            )
        }
        _ => format!("DELETE FROM {table} h WHERE {filter}"),
    }))
}
