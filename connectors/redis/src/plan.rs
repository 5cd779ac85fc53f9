//! A group of batches turned into the operations of the apply script.
//!
//! The engine's [`Plan`] decides what the changes mean (conformed to the
//! registered schema, grouped by table, cut at truncates and prunes;
//! [`resolve`] fills values the source left out from earlier changes of
//! the same row). What remains to fill comes from Redis, read before the
//! script runs; an overlay of what the earlier steps of the same group
//! wrote stands in for Redis where they touched it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Utc;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use serde_json::value::RawValue;
use syncline_engine::apply::{
    Plan, Step, Withheld, fill_left_out, pruned, resolve, set_aside, unchanged_values_lost,
};
use syncline_engine::batch::Batch;
use syncline_engine::config::WriteMode;
use syncline_engine::model::{
    Change, DeadLetter, Op, PruneRange, Row, TableId, TableSchema, Value, row_json,
};

use crate::Bookkeeping;
use crate::config::{DEFAULT_KEY, DEFAULT_STREAM, KeyTemplate, RedisTableConfig, ValueFormat};
use crate::encode;
use crate::error::RedisError;
use syncline_engine::connector::DeadLetterRecord;

/// The longest `ttl_secs`: 100 years.
const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// The operations of one script call, and the keys whose type it checks.
#[derive(Debug, Default)]
pub struct Ops {
    /// `(key, type)`: the key must hold that type or nothing.
    pub checks: Vec<(String, &'static str)>,
    /// Operation codes and their arguments, flat.
    pub args: Vec<Vec<u8>>,
}

impl Ops {
    /// Appends one operation.
    pub fn push(&mut self, parts: &[&[u8]]) {
        self.args.extend(parts.iter().map(|p| p.to_vec()));
    }

    fn check(&mut self, key: &str, kind: &'static str) {
        if !self.checks.iter().any(|(k, _)| k == key) {
            self.checks.push((key.to_owned(), kind));
        }
    }
}

/// One target table as the sink keeps it.
#[derive(Debug)]
pub struct TableState {
    pub schema: Arc<TableSchema>,
    pub name: String,
    /// Row keys (upsert).
    key: Option<KeyTemplate>,
    pub(crate) format: ValueFormat,
    /// Indexes of the stored columns.
    pub(crate) stored: Vec<usize>,
    ttl: Option<u64>,
    /// The index hash.
    pub(crate) index: String,
    /// The target's prefix, in front of every row key.
    namespace: String,
    /// The stream (history and append), with the target's prefix.
    stream: String,
    /// The stream's name as configured (without the prefix).
    stream_name: String,
    /// Append mode (its stream is the table's content).
    append: bool,
    max_len: Option<u64>,
}

impl TableState {
    pub fn new(
        schema: Arc<TableSchema>,
        name: &str,
        config: &RedisTableConfig,
        format: ValueFormat,
        mode: WriteMode,
        keys: &Bookkeeping,
    ) -> Result<Self, RedisError> {
        let upsert = mode == WriteMode::Upsert;
        // Streams hold JSON whatever the format.
        let format = if upsert {
            config.format.unwrap_or(format)
        } else {
            ValueFormat::Json
        };
        let refuse = |detail: String| RedisError::Config {
            table: name.to_owned(),
            detail,
        };
        let key = if upsert {
            Some(KeyTemplate::parse(
                config.key.as_deref().unwrap_or(DEFAULT_KEY),
                &schema,
                name,
            )?)
        } else {
            if config.key.is_some()
                || config.ttl_secs.is_some()
                || config.columns.is_some()
                || config.format.is_some()
            {
                return Err(refuse(format!(
                    "`key`, `format`, `columns` and `ttl_secs` apply to upsert mode; in {} mode rows go to the stream `stream`",
                    mode.as_str()
                )));
            }
            None
        };
        if upsert && (config.stream.is_some() || config.stream_max_len.is_some()) {
            return Err(refuse(
                "`stream` and `stream_max_len` apply to history and append modes".into(),
            ));
        }
        let stored = match &config.columns {
            None => (0..schema.columns.len()).collect(),
            Some(columns) => {
                let mut stored = Vec::new();
                for c in columns {
                    let i = schema.column_index(c).ok_or_else(|| {
                        refuse(format!(
                            "`columns` lists `{c}`, which the table does not have (it has {})",
                            schema
                                .columns
                                .iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                    stored.push(i);
                }
                if format == ValueFormat::Hash {
                    for &k in &schema.key {
                        if !stored.contains(&k) {
                            stored.push(k);
                        }
                    }
                }
                stored.sort_unstable();
                stored.dedup();
                stored
            }
        };
        if config.ttl_secs.is_some_and(|t| t == 0 || t > MAX_TTL_SECS) {
            return Err(refuse(format!(
                "`ttl_secs` must be between 1 and {MAX_TTL_SECS} (100 years)"
            )));
        }
        if config
            .stream_max_len
            .is_some_and(|n| n == 0 || n > i64::MAX as u64)
        {
            return Err(refuse("`stream_max_len` must be at least 1".into()));
        }
        let stream_name = config
            .stream
            .as_deref()
            .unwrap_or(DEFAULT_STREAM)
            .replace("{table}", name);
        if !upsert {
            if stream_name.contains('{') || stream_name.contains('}') {
                return Err(refuse(format!(
                    "stream `{stream_name}`: only `{{table}}` may appear in it"
                )));
            }
            crate::config::reserved(&stream_name)
                .map_err(|why| refuse(format!("stream `{stream_name}`: {why}")))?;
        }
        let stream = keys.data(&stream_name);
        Ok(TableState {
            name: name.to_owned(),
            key,
            format,
            stored,
            ttl: config.ttl_secs,
            index: keys.index(name),
            namespace: keys.data(""),
            stream,
            stream_name,
            append: mode == WriteMode::Append,
            max_len: config.stream_max_len,
            schema,
        })
    }

    /// What this table claims in Redis: its key template's skeleton, or
    /// its stream's name (see [`crate::config::overlaps`]).
    pub fn claim(&self) -> String {
        match &self.key {
            Some(t) => t.skeleton(),
            None => self.stream_name.clone(),
        }
    }

    /// The script operations that remove what the table holds: its keys
    /// (upsert) or its stream (append; a history stream is kept), and its
    /// index.
    pub fn clear_ops(&self) -> Vec<&[u8]> {
        match (&self.key, self.append) {
            (Some(_), _) => vec![b"T", self.index.as_bytes()],
            (None, true) => vec![b"U", self.stream.as_bytes(), b"U", self.index.as_bytes()],
            (None, false) => vec![b"U", self.index.as_bytes()],
        }
    }

    /// The Redis key of the row whose key values are `key` (upsert).
    pub(crate) fn redis_key(&self, key: &[Value]) -> Result<String, String> {
        let Some(template) = &self.key else {
            return Err("no key template".into());
        };
        let mut parts = vec![String::new(); self.schema.columns.len()];
        for (&k, v) in self.schema.key.iter().zip(key) {
            parts[k] = encode::text(v)?;
        }
        let key = template.render(&self.schema, |i| parts[i].clone());
        Ok(format!("{}{key}", self.namespace))
    }

    fn key_values(&self, row: &Row) -> Result<Vec<Value>, String> {
        syncline_engine::apply::key_values(&self.schema, row)
    }

    fn conform_key(&self, key: &[Value]) -> Vec<Value> {
        syncline_engine::apply::conform_key(&self.schema, key)
    }
}

/// A row as stored: column name → encoded value (a JSON fragment, or a
/// hash field's bytes).
pub(crate) type Stored = BTreeMap<String, Vec<u8>>;

/// What the earlier steps of the group did to one table.
#[derive(Debug, Default)]
struct Overlay {
    /// Emptied by a truncate: Redis's rows before it are gone.
    emptied: bool,
    /// Rows written (`Some`) or removed (`None`), by index field.
    rows: HashMap<String, Option<(Vec<Value>, Stored)>>,
    /// The index as Redis holds it, read once when a prune needs it.
    index: Option<HashMap<String, String>>,
}

fn json_object(stored: &Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(b'{');
    for (i, (name, fragment)) in stored.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(encode::quoted(name).as_bytes());
        out.push(b':');
        out.extend_from_slice(fragment);
    }
    out.push(b'}');
    out
}

pub(crate) fn parse_json_object(bytes: &[u8]) -> Result<Stored, RedisError> {
    let map: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(bytes)
        .map_err(|e| RedisError::State(format!("a stored row is not a JSON object: {e}")))?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.get().as_bytes().to_vec()))
        .collect())
}

/// Builds the operations for `batches` of `source`.
pub async fn build(
    mut conn: ConnectionManager,
    keys: &Bookkeeping,
    tables: &HashMap<TableId, TableState>,
    mode: WriteMode,
    source: &str,
    batches: &[Arc<Batch>],
    withheld: &mut Withheld,
) -> Result<Ops, RedisError> {
    let mut ops = Ops::default();
    // Every value has a form in Redis: only NULL keys, misfits and rows
    // whose last change here is a dead letter are set aside.
    let conformed: Vec<std::borrow::Cow<'_, Batch>> = batches
        .iter()
        .map(|b| set_aside(b, |_, _| None, withheld))
        .collect();
    let mut dead: Vec<(DeadLetter, u64)> = Vec::new();
    for b in &conformed {
        dead.extend(b.dead_letters.iter().map(|d| (d.clone(), b.position.seq)));
    }
    let plan = Plan::new(
        conformed
            .iter()
            .flat_map(|b| b.changes.iter().map(move |c| (c, b.as_ref()))),
        |id| tables.get(id).map(|t| &t.schema),
        mode == WriteMode::Upsert,
    );
    for (id, steps) in plan.tables() {
        let table = tables.get(&id).ok_or_else(|| {
            RedisError::State(format!("table `{}` was not opened in this target", id.name))
        })?;
        ops.check(&table.index, "hash");
        if mode != WriteMode::Upsert {
            ops.check(&table.stream, "stream");
        }
        let mut overlay = Overlay::default();
        for step in steps {
            match step {
                Step::Rows(run) => {
                    rows(
                        &mut conn,
                        table,
                        mode,
                        &run,
                        &mut overlay,
                        &mut ops,
                        &mut dead,
                    )
                    .await?;
                }
                Step::Truncate(batch) => {
                    truncate(table, mode, batch, &mut overlay, &mut ops);
                }
                Step::Prune(change, batch) => {
                    prune(
                        &mut conn,
                        table,
                        mode,
                        change,
                        batch,
                        &mut overlay,
                        &mut ops,
                    )
                    .await?;
                }
            }
        }
    }
    let dead_letters = keys.dead_letters();
    let counter = keys.dead_letter_ids();
    if !dead.is_empty() {
        ops.check(&dead_letters, "hash");
        ops.check(&counter, "counter");
    }
    let now = Utc::now();
    for (d, seq) in dead {
        let record = DeadLetterRecord::new(source, d, seq, now);
        let text = serde_json::to_vec(&record).map_err(|e| RedisError::State(e.to_string()))?;
        ops.push(&[b"L", dead_letters.as_bytes(), counter.as_bytes(), &text]);
    }
    Ok(ops)
}

/// The index field of the row whose key values are `key`: its Redis key
/// (upsert) or its key values as JSON (streams).
fn field_of(table: &TableState, mode: WriteMode, key: &[Value]) -> Result<String, String> {
    if mode == WriteMode::Upsert {
        table.redis_key(key)
    } else {
        serde_json::to_string(key).map_err(|e| e.to_string())
    }
}

/// The row as stored (the stored columns, encoded for the format).
fn encode_row(table: &TableState, mode: WriteMode, row: &Row) -> Result<Stored, String> {
    let mut out = Stored::new();
    let hash = mode == WriteMode::Upsert && table.format == ValueFormat::Hash;
    let columns: Box<dyn Iterator<Item = usize>> = if mode == WriteMode::Upsert {
        Box::new(table.stored.iter().copied())
    } else {
        Box::new(0..table.schema.columns.len())
    };
    for i in columns {
        let column = &table.schema.columns[i];
        let value = encode::conformed(&column.data_type, row.get(i).unwrap_or(&Value::Null));
        let value = value.as_ref();
        if matches!(value, Value::Unchanged) {
            continue;
        }
        let encoded = if hash {
            match encode::field(value) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(e) => return Err(format!("column `{}`: {e}", column.name)),
            }
        } else {
            encode::json(value)
                .map_err(|e| format!("column `{}`: {e}", column.name))?
                .into_bytes()
        };
        out.insert(column.name.clone(), encoded);
    }
    Ok(out)
}

/// The columns of `row` the source left out, by name (only those stored).
fn left_out(table: &TableState, mode: WriteMode, row: &Row) -> Vec<String> {
    row.iter()
        .enumerate()
        .filter(|(i, v)| {
            matches!(v, Value::Unchanged) && (mode != WriteMode::Upsert || table.stored.contains(i))
        })
        .map(|(i, _)| table.schema.columns[i].name.clone())
        .collect()
}

/// Reads what Redis holds for the index fields `fields` (rows for upsert,
/// index entries for streams), skipping those the overlay answers.
async fn fetch(
    conn: &mut ConnectionManager,
    table: &TableState,
    mode: WriteMode,
    fields: &[String],
    overlay: &Overlay,
) -> Result<HashMap<String, Option<Stored>>, RedisError> {
    let mut found = HashMap::new();
    let wanted: Vec<&String> = fields
        .iter()
        .filter(|f| !overlay.rows.contains_key(*f) && !overlay.emptied)
        .collect();
    for f in fields {
        if let Some(known) = overlay.rows.get(f) {
            found.insert(f.clone(), known.as_ref().map(|(_, s)| s.clone()));
        } else if overlay.emptied {
            found.insert(f.clone(), None);
        }
    }
    if wanted.is_empty() {
        return Ok(found);
    }
    let read = RedisError::command("reading rows to fill values the source left out");
    if mode == WriteMode::Upsert && table.format == ValueFormat::Hash {
        let mut pipe = redis::pipe();
        for f in &wanted {
            pipe.hgetall(*f);
        }
        let values: Vec<BTreeMap<String, Vec<u8>>> = pipe.query_async(conn).await.map_err(read)?;
        for (f, v) in wanted.into_iter().zip(values) {
            found.insert(f.clone(), (!v.is_empty()).then_some(v));
        }
        return Ok(found);
    }
    // JSON objects: the rows themselves (upsert), or the index's last
    // version of each row (streams).
    let command = if mode == WriteMode::Upsert {
        redis::cmd("MGET").arg(&wanted).clone()
    } else {
        redis::cmd("HMGET").arg(&table.index).arg(&wanted).clone()
    };
    let values: Vec<Option<Vec<u8>>> = command.query_async(conn).await.map_err(read)?;
    for (f, v) in wanted.into_iter().zip(values) {
        let row = v.map(|bytes| parse_json_object(&bytes)).transpose()?;
        found.insert(f.clone(), row);
    }
    Ok(found)
}

async fn rows(
    conn: &mut ConnectionManager,
    table: &TableState,
    mode: WriteMode,
    run: &[(&Change, &Batch)],
    overlay: &mut Overlay,
    ops: &mut Ops,
    dead: &mut Vec<(DeadLetter, u64)>,
) -> Result<(), RedisError> {
    let changes: Vec<&Change> = run.iter().map(|(c, _)| *c).collect();
    let staged = resolve(&table.schema, &changes);
    // What Redis holds for the rows to fill, as the run begins.
    let lookups: Vec<Option<String>> = staged
        .iter()
        .map(|s| {
            s.lookup
                .as_ref()
                .and_then(|key| field_of(table, mode, &table.conform_key(key)).ok())
        })
        .collect();
    let wanted: Vec<String> = lookups.iter().flatten().cloned().collect();
    let held = fetch(conn, table, mode, &wanted, overlay).await?;
    for (((change, batch), s), lookup) in run.iter().zip(&staged).zip(&lookups) {
        let seq = batch.position.seq;
        let row: &Row = &s.row;
        let key_and_field = table
            .key_values(row)
            .and_then(|key| field_of(table, mode, &key).map(|field| (key, field)));
        let (key, field) = match key_and_field {
            Ok(k) => k,
            Err(e) => {
                dead.push((refused(change, batch, &e), seq));
                continue;
            }
        };
        if change.op == Op::Delete {
            match mode {
                WriteMode::Upsert => {
                    ops.push(&[b"D", field.as_bytes(), table.index.as_bytes()]);
                    overlay.rows.insert(field, None);
                }
                WriteMode::History => {
                    let before = match encode_row(table, mode, row) {
                        Ok(b) => b,
                        Err(e) => {
                            dead.push((refused(change, batch, &e), seq));
                            continue;
                        }
                    };
                    entry(table, ops, "d", seq, batch, &field, None, Some(&before));
                    if !table.schema.key.is_empty() {
                        ops.push(&[b"J", table.index.as_bytes(), field.as_bytes()]);
                    }
                    overlay.rows.insert(field, None);
                }
                WriteMode::Append => {}
            }
            continue;
        }
        let mut stored = match encode_row(table, mode, row) {
            Ok(s) => s,
            Err(e) => {
                dead.push((refused(change, batch, &e), seq));
                continue;
            }
        };
        let missing = left_out(table, mode, row);
        if !missing.is_empty() {
            let old = lookup.as_ref().and_then(|f| held.get(f).cloned().flatten());
            // In a hash too: a field left out is NULL there, not a value.
            if !fill_left_out(&mut stored, &missing, old.as_ref()) {
                let lookup = s.lookup.clone().unwrap_or_default();
                dead.push((unchanged_values_lost(change, batch, row, &lookup), seq));
                continue;
            }
        }
        match mode {
            WriteMode::Upsert => {
                let ttl = table.ttl.map(|t| t.to_string()).unwrap_or_default();
                let entry =
                    serde_json::to_vec(&key).map_err(|e| RedisError::State(e.to_string()))?;
                match table.format {
                    ValueFormat::Json => ops.push(&[
                        b"S",
                        field.as_bytes(),
                        &json_object(&stored),
                        ttl.as_bytes(),
                        table.index.as_bytes(),
                        &entry,
                    ]),
                    ValueFormat::Hash => {
                        let m = stored.len().to_string();
                        let mut parts: Vec<&[u8]> = vec![
                            b"H",
                            field.as_bytes(),
                            ttl.as_bytes(),
                            table.index.as_bytes(),
                            &entry,
                            m.as_bytes(),
                        ];
                        for (k, v) in &stored {
                            parts.push(k.as_bytes());
                            parts.push(v);
                        }
                        ops.push(&parts);
                    }
                }
            }
            WriteMode::History | WriteMode::Append => {
                let code = if change.op == Op::Insert { "i" } else { "u" };
                entry(table, ops, code, seq, batch, &field, Some(&stored), None);
                if mode == WriteMode::History
                    && let Some(before) = syncline_engine::apply::moved_from(change)
                    && let Ok(old) = table
                        .key_values(before)
                        .and_then(|key| field_of(table, mode, &key))
                {
                    ops.push(&[b"J", table.index.as_bytes(), old.as_bytes()]);
                    overlay.rows.insert(old, None);
                }
                if !table.schema.key.is_empty() {
                    ops.push(&[
                        b"I",
                        table.index.as_bytes(),
                        field.as_bytes(),
                        &json_object(&stored),
                    ]);
                }
            }
        }
        overlay.rows.insert(field, Some((key, stored)));
    }
    Ok(())
}

/// A stream entry of one change.
#[allow(clippy::too_many_arguments)]
fn entry(
    table: &TableState,
    ops: &mut Ops,
    op: &str,
    seq: u64,
    batch: &Batch,
    key: &str,
    after: Option<&Stored>,
    before: Option<&Stored>,
) {
    let seq = seq.to_string();
    let max = table.max_len.map(|m| m.to_string()).unwrap_or_default();
    let after = after.map(json_object);
    let before = before.map(json_object);
    let time = batch.commit_time.map(|t| t.to_rfc3339());
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b"op", op.as_bytes()),
        (b"seq", seq.as_bytes()),
        (b"key", key.as_bytes()),
    ];
    if let Some(a) = &after {
        fields.push((b"after", a));
    }
    if let Some(b) = &before {
        fields.push((b"before", b));
    }
    if let Some(t) = &time {
        fields.push((b"commit_time", t.as_bytes()));
    }
    let m = fields.len().to_string();
    let mut parts: Vec<&[u8]> = vec![b"X", table.stream.as_bytes(), max.as_bytes(), m.as_bytes()];
    for (k, v) in &fields {
        parts.push(k);
        parts.push(v);
    }
    ops.push(&parts);
}

fn refused(change: &Change, batch: &Batch, why: &str) -> DeadLetter {
    DeadLetter {
        table: change.table.id.clone(),
        origin: batch.origin(),
        line: None,
        raw: row_json(&change.table, change.key_row()),
        reason: format!("cannot be stored in Redis: {why}"),
        stage: syncline_engine::model::DeadLetterStage::Target,
        kept: Some(syncline_engine::model::KeptChange::of(change, None)),
    }
}

fn truncate(
    table: &TableState,
    mode: WriteMode,
    batch: &Batch,
    overlay: &mut Overlay,
    ops: &mut Ops,
) {
    match mode {
        WriteMode::Upsert => ops.push(&[b"T", table.index.as_bytes()]),
        WriteMode::History => {
            entry(table, ops, "t", batch.position.seq, batch, "", None, None);
            ops.push(&[b"U", table.index.as_bytes()]);
        }
        WriteMode::Append => {
            ops.push(&[b"U", table.stream.as_bytes()]);
            ops.push(&[b"U", table.index.as_bytes()]);
        }
    }
    overlay.emptied = true;
    overlay.rows.clear();
    overlay.index = Some(HashMap::new());
}

async fn prune(
    conn: &mut ConnectionManager,
    table: &TableState,
    mode: WriteMode,
    change: &Change,
    batch: &Batch,
    overlay: &mut Overlay,
    ops: &mut Ops,
) -> Result<(), RedisError> {
    if mode == WriteMode::Append {
        return Ok(());
    }
    let Some(range) = change.prune_range() else {
        return Err(RedisError::State(format!(
            "a malformed prune of table `{}`",
            table.name
        )));
    };
    let range = PruneRange {
        after_key: range.after_key.map(|k| table.conform_key(&k)),
        up_to: range.up_to.map(|k| table.conform_key(&k)),
        present: range.present.iter().map(|k| table.conform_key(k)).collect(),
    };
    if overlay.index.is_none() {
        let mut index: HashMap<String, String> = HashMap::new();
        let mut iter: redis::AsyncIter<'_, (String, String)> = conn
            .hscan(&table.index)
            .await
            .map_err(RedisError::command("reading the key index"))?;
        while let Some(item) = iter.next_item().await {
            let (field, entry) = item.map_err(RedisError::command("reading the key index"))?;
            index.insert(field, entry);
        }
        overlay.index = Some(index);
    }
    // The index as of now: Redis's, with the group's earlier writes.
    let mut live: Vec<(String, Vec<Value>)> = Vec::new();
    if let Some(index) = &overlay.index {
        for (field, entry) in index {
            if overlay.rows.contains_key(field) {
                continue;
            }
            let text = if mode == WriteMode::Upsert {
                entry
            } else {
                field
            };
            let key: Vec<Value> = serde_json::from_str(text).map_err(|e| {
                RedisError::State(format!(
                    "an entry of the key index `{}` is unreadable: {e}",
                    table.index
                ))
            })?;
            live.push((field.clone(), key));
        }
    }
    for (field, row) in &overlay.rows {
        if let Some((key, _)) = row {
            live.push((field.clone(), key.clone()));
        }
    }
    for (field, key) in live {
        if !pruned(&key, &range) {
            continue;
        }
        match mode {
            WriteMode::Upsert => ops.push(&[b"D", field.as_bytes(), table.index.as_bytes()]),
            _ => {
                let mut row = vec![Value::Null; table.schema.columns.len()];
                for (&k, v) in table.schema.key.iter().zip(key) {
                    row[k] = v;
                }
                let before = encode_row(table, mode, &row).unwrap_or_default();
                entry(
                    table,
                    ops,
                    "d",
                    batch.position.seq,
                    batch,
                    &field,
                    None,
                    Some(&before),
                );
                ops.push(&[b"J", table.index.as_bytes(), field.as_bytes()]);
            }
        }
        overlay.rows.insert(field, None);
    }
    Ok(())
}
