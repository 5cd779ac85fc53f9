//! A group of batches turned into the index writer's operations.
//!
//! The engine's [`Plan`] decides what the changes mean (conformed to the
//! registered schema, grouped by table, cut at truncates and prunes;
//! [`resolve`] fills values the source left out from earlier changes of
//! the same row). What remains to fill comes from the rows the index
//! keeps: those applied since the last commit (the sink's overlay), else
//! the committed ones. Nothing touches the writer until the whole group
//! is planned, so a refused batch leaves the index as it was.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use syncline_engine::apply::{
    Plan, Step, Withheld, fill_left_out, moved_from, pruned, resolve, set_aside,
    unchanged_values_lost,
};
use syncline_engine::batch::Batch;
use syncline_engine::config::WriteMode;
use syncline_engine::connector::DeadLetterRecord;
use syncline_engine::encode;
use syncline_engine::model::{
    Change, DataType, DeadLetter, DeadLetterStage, KeptChange, Op, PruneRange, Row, TableId,
    TableSchema, Value, row_json,
};
use tantivy::collector::TopDocs;
use tantivy::query::{Query, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption, Value as _};
use tantivy::{IndexWriter, Searcher, TantivyDocument, Term};

use crate::config::ColumnPlan;
use crate::error::SearchError;
use crate::index::{self, DEAD, DOC, Fields, LAST, Stored};

/// One operation on the index writer.
#[derive(Debug)]
pub enum WriteOp {
    /// Removes the documents holding this `_id`.
    Delete(Term),
    /// Removes the documents matching the query.
    DeleteQuery(Box<dyn Query>),
    /// Adds a document.
    Add(TantivyDocument),
}

/// Applies `ops` to `writer` in their order, with the term deletes of each
/// stretch in which no `_id` (`id`) is removed after a document of it was
/// added made one delete of the set of those terms, ahead of the stretch's
/// documents: the same outcome (a delete removes only documents added
/// before it) with one delete operation in the writer's queue where there
/// were thousands (each a query of its own, kept until the next commit).
pub fn apply_ops(
    writer: &IndexWriter<TantivyDocument>,
    id: Field,
    ops: Vec<WriteOp>,
) -> tantivy::Result<()> {
    let mut deletes: Vec<Term> = Vec::new();
    let mut adds: Vec<TantivyDocument> = Vec::new();
    let mut added: HashSet<String> = HashSet::new();
    let flush = |deletes: &mut Vec<Term>,
                 adds: &mut Vec<TantivyDocument>,
                 added: &mut HashSet<String>|
     -> tantivy::Result<()> {
        if !deletes.is_empty() {
            writer.delete_query(Box::new(TermSetQuery::new(deletes.drain(..))))?;
        }
        for doc in adds.drain(..) {
            writer.add_document(doc)?;
        }
        added.clear();
        Ok(())
    };
    for op in ops {
        match op {
            WriteOp::Delete(term) => {
                if term.value().as_str().is_some_and(|t| added.contains(t)) {
                    flush(&mut deletes, &mut adds, &mut added)?;
                }
                deletes.push(term);
            }
            WriteOp::DeleteQuery(query) => {
                flush(&mut deletes, &mut adds, &mut added)?;
                writer.delete_query(query)?;
            }
            WriteOp::Add(doc) => {
                if let Some(t) = doc.get_first(id).and_then(|v| v.as_str()) {
                    added.insert(t.to_owned());
                }
                adds.push(doc);
            }
        }
    }
    flush(&mut deletes, &mut adds, &mut added)
}

/// One target table as the sink keeps it.
#[derive(Debug, Clone)]
pub struct TableState {
    pub schema: Arc<TableSchema>,
    /// How each column is indexed, in column order.
    pub plans: Vec<ColumnPlan>,
}

/// A dead letter as the index keeps it (the `_row` of a dead-letter
/// document).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDeadLetter {
    pub id: u64,
    /// The pipeline it belongs to.
    pub pipeline: String,
    #[serde(flatten)]
    pub record: DeadLetterRecord,
}

/// Rows written (`Some`, with their key values) or removed (`None`) since
/// the last commit, by `_id`, and the tables emptied since. Only keys are
/// kept: a later change that needs the values of a row written since the
/// last commit has that commit made first ([`build`] answers `None`).
///
/// New rows of a first copy ([`Fill`]) are not listed one by one: their
/// table is `unlisted`, and any lookup or listing of it commits first. A
/// snapshot of millions of rows then costs no memory per row here.
#[derive(Debug, Default)]
pub struct Overlay {
    pub rows: HashMap<String, Option<Vec<Value>>>,
    pub emptied: HashSet<String>,
    /// Tables holding rows written since the last commit that `rows` does
    /// not list.
    pub unlisted: HashSet<String>,
    /// Within a group: the rows of `rows` that are new rows of a first
    /// copy (by `_id`, with their table), left unlisted once merged.
    fresh: HashMap<String, String>,
}

impl Overlay {
    /// Takes in what a later group did.
    pub fn merge(&mut self, later: Overlay) {
        for table in later.emptied {
            let own = |kind: &str| format!("{kind}\u{1f}{table}\u{1f}");
            let (doc, last) = (own(DOC), own(LAST));
            self.rows
                .retain(|id, _| !id.starts_with(&doc) && !id.starts_with(&last));
            self.unlisted.remove(&table);
            self.emptied.insert(table);
        }
        for (id, row) in later.rows {
            match later.fresh.get(&id) {
                Some(table) => {
                    self.rows.remove(&id);
                    if !self.unlisted.contains(table) {
                        self.unlisted.insert(table.clone());
                    }
                }
                None => {
                    self.rows.insert(id, row);
                }
            }
        }
        self.unlisted.extend(later.unlisted);
    }
}

/// What a target table holds, as far as rows promised new go
/// ([`Batch::inserts_are_new`]): such inserts are added without removing
/// a document of their key only while the table holds nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// No document of the table.
    Empty,
    /// Only inserts this source promised new, in this run.
    NewRowsOf(String),
    /// Anything else (documents from before this run, other changes).
    Unknown,
}

/// The `_id` of the row of `table` with `key`: its document (upsert) or
/// its last version (history, append).
pub fn row_id(mode: WriteMode, table: &str, key: &[Value]) -> Result<String, String> {
    let kind = if mode == WriteMode::Upsert { DOC } else { LAST };
    let key = serde_json::to_string(key).map_err(|e| e.to_string())?;
    Ok(format!("{kind}\u{1f}{table}\u{1f}{key}"))
}

/// The `_id` of dead letter `n`.
pub fn dead_letter_id(n: u64) -> String {
    format!("{DEAD}\u{1f}{n}")
}

/// What the index holds as the group goes: the committed index, the
/// overlay of earlier groups, and this group's own writes.
struct View<'v> {
    /// The last commit, read when a row is looked up.
    searcher: &'v mut dyn FnMut() -> Result<Searcher, SearchError>,
    fields: &'v Fields,
    base: &'v Overlay,
    delta: Overlay,
    /// Each table's fill as the group goes.
    fills: HashMap<String, Fill>,
    /// The source of the group.
    source: &'v str,
    /// The rows this group wrote, with their values.
    written: HashMap<String, Option<Stored>>,
    /// A row written since the last commit (by an earlier group) was
    /// looked up: the group must be planned again after a commit.
    needs_commit: bool,
}

impl View<'_> {
    fn write(&mut self, id: String, row: Option<(Vec<Value>, Stored)>) {
        self.delta.fresh.remove(&id);
        match row {
            Some((key, stored)) => {
                self.delta.rows.insert(id.clone(), Some(key));
                self.written.insert(id, Some(stored));
            }
            None => {
                self.delta.rows.insert(id.clone(), None);
                self.written.insert(id, None);
            }
        }
    }

    /// Writes a new row of a first copy of `table` (see [`Fill`]).
    fn write_fresh(&mut self, table: &str, id: String, key: Vec<Value>, stored: Stored) {
        self.write(id.clone(), Some((key, stored)));
        self.delta.fresh.insert(id, table.to_owned());
    }

    /// Whether an insert of `table` that `source` promised new may be
    /// added without removing a document of its key; the table's fill
    /// moves on accordingly.
    fn takes_as_new(&mut self, table: &str, source: &str, promised: bool) -> bool {
        let fill = self.fills.entry(table.to_owned()).or_insert(Fill::Unknown);
        let new = promised
            && match fill {
                Fill::Empty => true,
                Fill::NewRowsOf(s) => s == source,
                Fill::Unknown => false,
            };
        *fill = if new {
            Fill::NewRowsOf(source.to_owned())
        } else {
            Fill::Unknown
        };
        new
    }

    fn lookup(&mut self, table: &str, id: &str) -> Result<Option<Stored>, SearchError> {
        if let Some(row) = self.written.get(id) {
            return Ok(row.clone());
        }
        if self.delta.emptied.contains(table) {
            return Ok(None);
        }
        match self.base.rows.get(id) {
            Some(None) => return Ok(None),
            Some(Some(_)) => {
                // Its values are in the writer, not yet readable.
                self.needs_commit = true;
                return Ok(None);
            }
            None => {}
        }
        if self.base.unlisted.contains(table) {
            // It may be one of the rows written but not listed.
            self.needs_commit = true;
            return Ok(None);
        }
        if self.base.emptied.contains(table) {
            return Ok(None);
        }
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let searcher = (self.searcher)()?;
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| SearchError::State(format!("looking a row up failed: {e}")))?;
        let Some((_, address)) = top.first() else {
            return Ok(None);
        };
        let kept = index::read_docs(&searcher, self.fields, [*address])?;
        kept.first().map(|k| index::parse_row(&k.row)).transpose()
    }

    /// Every row of `table` as of now, by `_id`, with its key.
    fn live(
        &mut self,
        table: &str,
        kind: &str,
    ) -> Result<HashMap<String, Vec<Value>>, SearchError> {
        let mut live = HashMap::new();
        if self.base.unlisted.contains(table) && !self.delta.emptied.contains(table) {
            // Rows written but not listed: readable once committed.
            self.needs_commit = true;
            return Ok(live);
        }
        if !self.base.emptied.contains(table) && !self.delta.emptied.contains(table) {
            let searcher = (self.searcher)()?;
            for k in index::matching(&searcher, self.fields, &self.fields.of_table(table, kind))? {
                let key: Vec<Value> = serde_json::from_str(k.key.as_deref().unwrap_or("[]"))
                    .map_err(|e| SearchError::State(format!("a kept key is unreadable: {e}")))?;
                live.insert(k.id, key);
            }
        }
        let prefix = format!("{kind}\u{1f}{table}\u{1f}");
        let layers: Vec<&Overlay> = if self.delta.emptied.contains(table) {
            vec![&self.delta]
        } else {
            vec![self.base, &self.delta]
        };
        for layer in layers {
            for (id, row) in &layer.rows {
                if !id.starts_with(&prefix) {
                    continue;
                }
                match row {
                    Some(key) => {
                        live.insert(id.clone(), key.clone());
                    }
                    None => {
                        live.remove(id);
                    }
                }
            }
        }
        Ok(live)
    }
}

/// What a group comes to.
#[derive(Debug, Default)]
pub struct Planned {
    pub ops: Vec<WriteOp>,
    /// The rows it writes and removes, to merge into the overlay once the
    /// ops are applied.
    pub overlay: Overlay,
    /// Dead letters, with the position of the batch each came with.
    pub dead: Vec<(DeadLetter, u64)>,
    /// Changes applied (for the commit's row bound).
    pub rows: u64,
    /// Each table's fill once the ops are applied.
    pub fills: HashMap<String, Fill>,
    /// The rows withheld once the ops are applied.
    pub withheld: Withheld,
}

/// Plans `batches` for the index; `None` when a row written since the last
/// commit must be read first (commit, then plan again).
#[allow(clippy::too_many_arguments)]
pub fn build(
    searcher: &mut dyn FnMut() -> Result<Searcher, SearchError>,
    fields: &Fields,
    base: &Overlay,
    fills: &HashMap<String, Fill>,
    tables: &HashMap<TableId, TableState>,
    mode: WriteMode,
    source: &str,
    batches: &[Arc<Batch>],
    withheld: &Withheld,
) -> Result<Option<Planned>, SearchError> {
    // Every value has a form in the index: only NULL keys, misfits and
    // rows whose last change here is a dead letter are set aside.
    let mut planned = Planned {
        withheld: withheld.clone(),
        ..Planned::default()
    };
    let conformed: Vec<std::borrow::Cow<'_, Batch>> = batches
        .iter()
        .map(|b| set_aside(b, |_, _| None, &mut planned.withheld))
        .collect();
    for b in &conformed {
        planned
            .dead
            .extend(b.dead_letters.iter().map(|d| (d.clone(), b.position.seq)));
    }
    let plan = Plan::new(
        conformed
            .iter()
            .flat_map(|b| b.changes.iter().map(move |c| (c, b.as_ref()))),
        |id| tables.get(id).map(|t| &t.schema),
        mode == WriteMode::Upsert,
    );
    let mut view = View {
        searcher,
        fields,
        base,
        delta: Overlay::default(),
        fills: fills.clone(),
        source,
        written: HashMap::new(),
        needs_commit: false,
    };
    for (id, steps) in plan.tables() {
        let table = tables.get(&id).ok_or_else(|| {
            SearchError::State(format!("table `{}` was not opened in this target", id.name))
        })?;
        for step in steps {
            match step {
                Step::Rows(run) => rows(&mut view, table, mode, &run, &mut planned)?,
                Step::Truncate(batch) => truncate(&mut view, table, mode, batch, &mut planned),
                Step::Prune(change, batch) => {
                    prune(&mut view, table, mode, change, batch, &mut planned)?;
                }
            }
        }
    }
    if view.needs_commit {
        return Ok(None);
    }
    planned.overlay = view.delta;
    planned.fills = view.fills;
    Ok(Some(planned))
}

/// `value` as the column's type keeps it: text the target casts (to a
/// UUID, a JSON document) must be one.
fn cast<'v>(
    table: &str,
    column: &str,
    data_type: &DataType,
    value: std::borrow::Cow<'v, Value>,
) -> Result<std::borrow::Cow<'v, Value>, SearchError> {
    let refuse = |t: &str, what: &str| {
        SearchError::Cast(format!(
            "table `{table}`, column `{column}`: {} is not {what}",
            encode::quoted(t)
        ))
    };
    match (data_type, value.as_ref()) {
        (DataType::Uuid, Value::Text(t)) => uuid_text(t)
            .map(|u| std::borrow::Cow::Owned(Value::Text(u)))
            .ok_or_else(|| refuse(t, "a UUID")),
        (DataType::Json, Value::Text(t)) => {
            serde_json::from_str::<serde::de::IgnoredAny>(t)
                .map_err(|_| refuse(t, "a JSON document"))?;
            Ok(std::borrow::Cow::Owned(Value::Json(t.clone())))
        }
        _ => Ok(value),
    }
}

/// A UUID's text in its 8-4-4-4-12 lowercase form.
fn uuid_text(text: &str) -> Option<String> {
    let hex: String = text.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The row as kept (every column), and the columns the source left out.
fn encode_row(
    table: &TableState,
    row: &Row,
) -> Result<Result<(Stored, Vec<String>), String>, SearchError> {
    let mut out = Stored::new();
    let mut missing = Vec::new();
    for (i, column) in table.schema.columns.iter().enumerate() {
        let value = encode::conformed(&column.data_type, row.get(i).unwrap_or(&Value::Null));
        if matches!(value.as_ref(), Value::Unchanged) {
            missing.push(column.name.clone());
            continue;
        }
        let value = cast(
            &table.schema.id.name,
            &column.name,
            &column.data_type,
            value,
        )?;
        match encode::json(&value) {
            Ok(fragment) => {
                out.insert(column.name.clone(), fragment);
            }
            Err(e) => return Ok(Err(format!("column `{}`: {e}", column.name))),
        }
    }
    Ok(Ok((out, missing)))
}

fn key_values(table: &TableState, row: &Row) -> Result<Vec<Value>, String> {
    syncline_engine::apply::key_values(&table.schema, row)
}

fn conform_key(table: &TableState, key: &[Value]) -> Vec<Value> {
    syncline_engine::apply::conform_key(&table.schema, key)
}

/// A document of `table`, its fields indexed from the kept row; with
/// `values` (the change's row, of that schema) straight from the engine's
/// values where they can, without reading the kept JSON back.
#[allow(clippy::too_many_arguments)]
fn document(
    fields: &Fields,
    table: &str,
    kind: &str,
    id: Option<&str>,
    key: &[Value],
    row: &Stored,
    change: Option<(&str, u64)>,
    values: Option<(&TableSchema, &Row)>,
) -> Result<TantivyDocument, SearchError> {
    let mut doc = TantivyDocument::default();
    doc.add_text(fields.table, table);
    doc.add_text(fields.kind, kind);
    if let Some(id) = id {
        doc.add_text(fields.id, id);
    }
    doc.add_text(
        fields.key,
        serde_json::to_string(key).map_err(|e| SearchError::State(e.to_string()))?,
    );
    doc.add_text(fields.row, index::row_text(row));
    if let Some((op, seq)) = change {
        doc.add_text(fields.op, op);
        doc.add_u64(fields.seq, seq);
    }
    if kind == DOC {
        match values {
            Some((schema, values)) => fields.index_values(&mut doc, schema, values, row),
            None => fields.index_row(&mut doc, row),
        }
    }
    Ok(doc)
}

fn term(fields: &Fields, id: &str) -> Term {
    Term::from_field_text(fields.id, id)
}

fn rows(
    view: &mut View<'_>,
    table: &TableState,
    mode: WriteMode,
    run: &[(&Change, &Batch)],
    planned: &mut Planned,
) -> Result<(), SearchError> {
    let name = table.schema.id.name.as_str();
    let changes: Vec<&Change> = run.iter().map(|(c, _)| *c).collect();
    let staged = resolve(&table.schema, &changes);
    // What the index holds for the rows to fill, as the run begins.
    let mut held: HashMap<String, Option<Stored>> = HashMap::new();
    for s in &staged {
        if let Some(lookup) = &s.lookup
            && let Ok(id) = row_id(mode, name, &conform_key(table, lookup))
            && !held.contains_key(&id)
        {
            let found = view.lookup(name, &id)?;
            held.insert(id, found);
        }
    }
    for ((change, batch), s) in run.iter().zip(&staged) {
        let seq = batch.position.seq;
        let row: &Row = &s.row;
        let keyed =
            key_values(table, row).and_then(|key| row_id(mode, name, &key).map(|id| (key, id)));
        let (key, id) = match keyed {
            Ok(k) => k,
            Err(e) => {
                planned.dead.push((refused(change, batch, &e), seq));
                continue;
            }
        };
        if change.op == Op::Delete {
            view.takes_as_new(name, "", false);
            match mode {
                WriteMode::Upsert => {
                    planned.ops.push(WriteOp::Delete(term(view.fields, &id)));
                    view.write(id, None);
                }
                WriteMode::History => {
                    let before = match encode_row(table, row)? {
                        Ok((mut b, missing)) => {
                            for c in missing {
                                b.insert(c, "null".into());
                            }
                            b
                        }
                        Err(e) => {
                            planned.dead.push((refused(change, batch, &e), seq));
                            continue;
                        }
                    };
                    planned.ops.push(WriteOp::Add(document(
                        view.fields,
                        name,
                        DOC,
                        None,
                        &key,
                        &before,
                        Some(("d", seq)),
                        None,
                    )?));
                    planned.ops.push(WriteOp::Delete(term(view.fields, &id)));
                    view.write(id, None);
                }
                WriteMode::Append => {}
            }
            planned.rows += 1;
            continue;
        }
        let (mut stored, missing) = match encode_row(table, row)? {
            Ok(s) => s,
            Err(e) => {
                planned.dead.push((refused(change, batch, &e), seq));
                continue;
            }
        };
        if !missing.is_empty() {
            let old = s
                .lookup
                .as_ref()
                .and_then(|k| row_id(mode, name, &conform_key(table, k)).ok())
                .and_then(|id| held.get(&id).cloned().flatten());
            if !fill_left_out(&mut stored, &missing, old.as_ref()) {
                let lookup = s.lookup.clone().unwrap_or_default();
                planned
                    .dead
                    .push((unchanged_values_lost(change, batch, row, &lookup), seq));
                continue;
            }
        }
        // A promised-new insert into a table holding nothing else needs no
        // removal of its key's document (see `Fill`).
        let source = view.source;
        let fresh = mode == WriteMode::Upsert
            && view.takes_as_new(
                name,
                source,
                batch.inserts_are_new && change.op == Op::Insert,
            );
        match mode {
            WriteMode::Upsert => {
                if !fresh {
                    planned.ops.push(WriteOp::Delete(term(view.fields, &id)));
                }
                planned.ops.push(WriteOp::Add(document(
                    view.fields,
                    name,
                    DOC,
                    Some(&id),
                    &key,
                    &stored,
                    None,
                    Some((&table.schema, row)),
                )?));
            }
            WriteMode::History | WriteMode::Append => {
                let op = if change.op == Op::Insert { "i" } else { "u" };
                planned.ops.push(WriteOp::Add(document(
                    view.fields,
                    name,
                    DOC,
                    None,
                    &key,
                    &stored,
                    Some((op, seq)),
                    Some((&table.schema, row)),
                )?));
                if mode == WriteMode::History
                    && let Some(before) = moved_from(change)
                    && let Ok(old) = key_values(table, before).and_then(|k| row_id(mode, name, &k))
                {
                    planned.ops.push(WriteOp::Delete(term(view.fields, &old)));
                    view.write(old, None);
                }
                // The row's last version, for values later changes leave out.
                planned.ops.push(WriteOp::Delete(term(view.fields, &id)));
                planned.ops.push(WriteOp::Add(document(
                    view.fields,
                    name,
                    LAST,
                    Some(&id),
                    &key,
                    &stored,
                    None,
                    None,
                )?));
            }
        }
        planned.rows += 1;
        if fresh {
            view.write_fresh(name, id, key, stored);
        } else {
            view.write(id, Some((key, stored)));
        }
    }
    Ok(())
}

fn truncate(
    view: &mut View<'_>,
    table: &TableState,
    mode: WriteMode,
    batch: &Batch,
    planned: &mut Planned,
) {
    let name = table.schema.id.name.as_str();
    let fields = view.fields;
    match mode {
        WriteMode::Upsert | WriteMode::Append => {
            planned
                .ops
                .push(WriteOp::DeleteQuery(Box::new(fields.of_table(name, DOC))));
        }
        WriteMode::History => {
            if let Ok(doc) = document(
                fields,
                name,
                DOC,
                None,
                &[],
                &Stored::new(),
                Some(("t", batch.position.seq)),
                None,
            ) {
                planned.ops.push(WriteOp::Add(doc));
            }
        }
    }
    planned
        .ops
        .push(WriteOp::DeleteQuery(Box::new(fields.of_table(name, LAST))));
    // Rows before the truncate are gone; those after it are added later.
    let own = |kind: &str| format!("{kind}\u{1f}{name}\u{1f}");
    let (doc, last) = (own(DOC), own(LAST));
    let before_truncate = |id: &String| id.starts_with(&doc) || id.starts_with(&last);
    view.delta.rows.retain(|id, _| !before_truncate(id));
    view.delta.fresh.retain(|id, _| !before_truncate(id));
    view.written.retain(|id, _| !before_truncate(id));
    view.delta.emptied.insert(name.to_owned());
    if mode == WriteMode::Upsert {
        // Every document of the table is gone.
        view.fills.insert(name.to_owned(), Fill::Empty);
    }
    planned.rows += 1;
}

fn prune(
    view: &mut View<'_>,
    table: &TableState,
    mode: WriteMode,
    change: &Change,
    batch: &Batch,
    planned: &mut Planned,
) -> Result<(), SearchError> {
    if mode == WriteMode::Append {
        return Ok(());
    }
    let name = table.schema.id.name.as_str();
    let Some(range) = change.prune_range() else {
        return Err(SearchError::State(format!(
            "a malformed prune of table `{name}`"
        )));
    };
    let range = PruneRange {
        after_key: range.after_key.map(|k| conform_key(table, &k)),
        up_to: range.up_to.map(|k| conform_key(table, &k)),
        present: range
            .present
            .iter()
            .map(|k| conform_key(table, k))
            .collect(),
    };
    let kind = if mode == WriteMode::Upsert { DOC } else { LAST };
    let mut gone: Vec<(String, Vec<Value>)> = view
        .live(name, kind)?
        .into_iter()
        .filter(|(_, key)| pruned(key, &range))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, key) in gone {
        if mode == WriteMode::History {
            let mut before = Stored::new();
            for (&k, v) in table.schema.key.iter().zip(&key) {
                let fragment = encode::json(v).map_err(SearchError::State)?;
                before.insert(table.schema.columns[k].name.clone(), fragment);
            }
            planned.ops.push(WriteOp::Add(document(
                view.fields,
                name,
                DOC,
                None,
                &key,
                &before,
                Some(("d", batch.position.seq)),
                None,
            )?));
        }
        planned.ops.push(WriteOp::Delete(term(view.fields, &id)));
        view.write(id, None);
        planned.rows += 1;
    }
    Ok(())
}

fn refused(change: &Change, batch: &Batch, why: &str) -> DeadLetter {
    DeadLetter {
        table: change.table.id.clone(),
        origin: batch.origin(),
        line: None,
        raw: row_json(&change.table, change.key_row()),
        reason: format!("cannot be stored in the search index: {why}"),
        stage: DeadLetterStage::Target,
        kept: Some(KeptChange::of(change, None)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn uuids_are_read_in_their_forms_and_nothing_else() {
        assert_eq!(
            uuid_text("F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6").as_deref(),
            Some("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
        );
        assert_eq!(
            uuid_text("{f81d4fae7dec11d0a76500a0c91e6bf6}").as_deref(),
            Some("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
        );
        assert_eq!(uuid_text("not-a-uuid"), None);
        assert_eq!(uuid_text("f81d4fae-7dec-11d0-a765-00a0c91e6bfz"), None);
    }

    /// The ids of the documents `ops` leave in a new index, sorted, with
    /// the `_row` of each.
    fn after_ops(ops: impl Fn(&Fields) -> Vec<WriteOp>) -> Vec<(String, String)> {
        let index = tantivy::Index::create_in_ram(Fields::schema(&Default::default()));
        let fields = Fields::of(&index.schema()).unwrap();
        let mut writer: IndexWriter<TantivyDocument> =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        apply_ops(&writer, fields.id, ops(&fields)).unwrap();
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let mut out: Vec<(String, String)> =
            index::matching(&searcher, &fields, &tantivy::query::AllQuery)
                .unwrap()
                .into_iter()
                .map(|k| (k.id, k.row))
                .collect();
        out.sort();
        out
    }

    #[test]
    fn coalesced_deletes_remove_what_each_delete_removed_in_order() {
        let doc = |f: &Fields, id: &str, row: &str| {
            let mut d = TantivyDocument::default();
            d.add_text(f.table, "t");
            d.add_text(f.kind, DOC);
            d.add_text(f.id, id);
            d.add_text(f.row, row);
            WriteOp::Add(d)
        };
        let del = |f: &Fields, id: &str| WriteOp::Delete(Term::from_field_text(f.id, id));
        // A row updated twice, one deleted after it was added, one added
        // after its delete, and an untouched one.
        let got = after_ops(|f| {
            vec![
                doc(f, "a", "a0"),
                doc(f, "b", "b0"),
                doc(f, "c", "c0"),
                del(f, "a"),
                doc(f, "a", "a1"),
                del(f, "b"),
                del(f, "a"),
                doc(f, "a", "a2"),
                del(f, "d"),
                doc(f, "d", "d1"),
                del(f, "d"),
            ]
        });
        assert_eq!(
            got,
            vec![("a".into(), "a2".into()), ("c".into(), "c0".into())]
        );
        // A query delete in the middle keeps its place.
        let got = after_ops(|f| {
            vec![
                doc(f, "a", "a0"),
                del(f, "b"),
                WriteOp::DeleteQuery(Box::new(tantivy::query::AllQuery)),
                doc(f, "b", "b1"),
            ]
        });
        assert_eq!(got, vec![("b".into(), "b1".into())]);
    }

    #[test]
    fn a_truncate_drops_earlier_rows_of_its_table_only() {
        let mut base = Overlay::default();
        base.rows.insert(format!("{DOC}\u{1f}a\u{1f}[1]"), None);
        base.rows.insert(format!("{DOC}\u{1f}b\u{1f}[1]"), None);
        let mut later = Overlay::default();
        later.emptied.insert("a".into());
        base.merge(later);
        assert_eq!(base.rows.len(), 1);
        assert!(base.rows.contains_key(&format!("{DOC}\u{1f}b\u{1f}[1]")));
        assert!(base.emptied.contains("a"));
    }
}
