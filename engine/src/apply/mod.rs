//! The one SQL-target core: what every SQL target does with a batch's
//! changes ([`Plan`], [`resolve`]) and the statements it runs for them
//! ([`sql`], over a small [`sql::SqlDialect`]), so each target applies the
//! same semantics.

pub mod sql;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::batch::Batch;
use crate::connector::KeptRow;
use crate::model::{
    Change, DataType, DeadLetter, DeadLetterStage, KeptChange, Op, PruneRange, Row, TableId,
    TableSchema, Value, row_json,
};

/// The rows of one target whose last change there is a dead letter, by
/// table and key ([`KeptChange::key_text`]): the target holds an older
/// version of each, so values a later change leaves out
/// ([`Value::Unchanged`]) cannot be taken from it. Each sink keeps one,
/// made at open from the dead letters it keeps ([`Withheld::of`]) and
/// moved on by [`set_aside`]; a sink takes the moved-on state only once
/// the batch is written (a failed write screens the batch again, from the
/// state before it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Withheld {
    rows: HashMap<TableId, HashSet<String>>,
}

impl Withheld {
    /// The rows of the dead letters a sink keeps (those set aside at the
    /// target stage).
    pub fn of(kept: &[KeptRow]) -> Withheld {
        let mut withheld = Withheld::default();
        for row in kept {
            withheld.take(row.stage, row.kept.as_ref());
        }
        withheld
    }

    fn take(&mut self, stage: DeadLetterStage, kept: Option<&KeptChange>) {
        if stage == DeadLetterStage::Target
            && let Some(k) = kept
        {
            self.insert(&k.table, k.key.clone());
        }
    }

    /// Whether the row of `key` (its key text) in `table` is withheld.
    pub fn holds(&self, table: &TableId, key: &str) -> bool {
        self.rows.get(table).is_some_and(|r| r.contains(key))
    }

    fn has_table(&self, table: &TableId) -> bool {
        !self.rows.is_empty() && self.rows.get(table).is_some_and(|r| !r.is_empty())
    }

    fn insert(&mut self, table: &TableId, key: String) {
        self.rows.entry(table.clone()).or_default().insert(key);
    }

    fn remove(&mut self, table: &TableId, key: &str) {
        if let Some(r) = self.rows.get_mut(table) {
            r.remove(key);
            if r.is_empty() {
                self.rows.remove(table);
            }
        }
    }

    fn take_in(&mut self, dead: &[DeadLetter]) {
        for d in dead {
            self.take(d.stage, d.kept.as_ref());
        }
    }
}

fn key_text_of(schema: &TableSchema, row: &Row) -> Option<String> {
    if schema.key.is_empty() || schema.key.iter().any(|&k| k >= row.len()) {
        return None;
    }
    Some(KeptChange::key_text(&schema.key_of(row)))
}

/// `batch` without the changes holding a NULL key, a value that does not
/// fit its column's type ([`DataType::accepts`]) or one that `refuses` says the target
/// cannot store (text with a NUL character in Postgres, NaN in a DuckDB
/// DECIMAL), each of them moved into the batch's dead letters with the
/// reason, so one such value costs its row, in this target only, and
/// never turns into NULL; the batch as it is when every value can be
/// stored. Sinks call this first in [`Sink::write`](crate::connector::Sink::write).
///
/// A change that leaves values out ([`Value::Unchanged`]) of a row
/// `withheld` holds (its last change in this target is a dead letter) is
/// set aside too: the target's version of the row is older than the one
/// the values were left out of. `withheld` moves on with the batch: a row
/// is withheld once a change of it is set aside (or the batch comes with a
/// dead letter of it), and released by a change that carries every value.
pub fn set_aside<'b>(
    batch: &'b Batch,
    refuses: impl Fn(&DataType, &Value) -> Option<String>,
    withheld: &mut Withheld,
) -> Cow<'b, Batch> {
    let misfit = |change: &Change| -> Option<String> {
        // A prune lists keys column-wise, not a row.
        if change.op == Op::Prune {
            return None;
        }
        let row = change.after.as_ref()?;
        let schema = &change.table;
        if let Some(&k) = schema
            .key
            .iter()
            .find(|&&k| row.get(k).is_none_or(Value::is_null))
        {
            return Some(format!(
                "key column `{}` is NULL: a row without its whole key cannot be kept in sync (declare a key whose columns always have values)",
                schema.columns[k].name
            ));
        }
        schema.columns.iter().zip(row).find_map(|(c, v)| {
            if !c.data_type.accepts(v) {
                Some(format!(
                    "value {} does not fit column `{}` of type {}",
                    short_value(v),
                    c.name,
                    c.data_type
                ))
            } else {
                refuses(&c.data_type, v).map(|why| {
                    format!(
                        "value {} of column `{}` cannot be stored here: {why}",
                        short_value(v),
                        c.name
                    )
                })
            }
        })
    };
    // Dead letters the batch already carries (set aside upstream) count
    // before and after its changes: their order among them is not known.
    withheld.take_in(&batch.dead_letters);
    // Whether a change's row is withheld and the change leaves values out;
    // moves `withheld` on for a change that is kept.
    let stale = |change: &Change, withheld: &mut Withheld| -> Option<String> {
        let table = &change.table.id;
        if !withheld.has_table(table) {
            return None;
        }
        let schema = &change.table;
        if change.op == Op::Truncate {
            withheld.rows.remove(table);
            return None;
        }
        let now = change.key_row().and_then(|r| key_text_of(schema, r));
        let was = change
            .before
            .as_ref()
            .and_then(|r| key_text_of(schema, r))
            .filter(|_| moved_from(change).is_some())
            .or_else(|| now.clone());
        let left_out: Vec<&str> = change
            .after
            .iter()
            .flat_map(|row| schema.columns.iter().zip(row))
            .filter(|(_, v)| matches!(v, Value::Unchanged))
            .map(|(c, _)| c.name.as_str())
            .collect();
        if !left_out.is_empty() && was.as_deref().is_some_and(|k| withheld.holds(table, k)) {
            return Some(format!(
                "the source left {} out (unchanged since the row's last change) but that change of the row is in this target's dead letters, so the target holds an older version of it; replay or discard that dead letter, then re-snapshot the table to bring the row back",
                left_out
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for k in [was, now].into_iter().flatten() {
            withheld.remove(table, &k);
        }
        None
    };
    let mut out: Option<Batch> = None;
    for (i, change) in batch.changes.iter().enumerate() {
        let reason = match misfit(change) {
            Some(r) => Some(r),
            None => stale(change, withheld),
        };
        match reason {
            None => {
                if let Some(o) = out.as_mut() {
                    o.changes.push(change.clone());
                }
            }
            Some(reason) => {
                if let Some(k) = change.key_row().and_then(|r| key_text_of(&change.table, r)) {
                    withheld.insert(&change.table.id, k);
                }
                let o = out.get_or_insert_with(|| Batch {
                    position: batch.position.clone(),
                    kind: batch.kind,
                    txid: batch.txid.clone(),
                    commit_time: batch.commit_time,
                    changes: batch.changes[..i].to_vec(),
                    block: batch.block.clone(),
                    dead_letters: batch.dead_letters.clone(),
                    inserts_are_new: batch.inserts_are_new,
                    continues: batch.continues,
                });
                o.dead_letters.push(DeadLetter {
                    table: change.table.id.clone(),
                    origin: batch.origin(),
                    line: None,
                    raw: row_json(&change.table, change.key_row()),
                    reason,
                    stage: DeadLetterStage::Target,
                    kept: Some(KeptChange::of(change, None)),
                });
            }
        }
    }
    withheld.take_in(&batch.dead_letters);
    match out {
        Some(o) => Cow::Owned(o),
        None => Cow::Borrowed(batch),
    }
}

fn short_value(v: &Value) -> String {
    let text = format!("{v:?}");
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// `change` as a sink whose table is registered with `registered` must
/// stage it, where that differs from the change itself (`None`: as it is):
/// * rows of another schema version (a schema change inside a batch) are
///   mapped to the registered columns by name, not position;
/// * with `upsert`, an update that moves a row to another key is preceded
///   by a delete of the old key.
pub fn conform(
    registered: &Arc<TableSchema>,
    change: &Change,
    upsert: bool,
) -> Option<Vec<Change>> {
    let change =
        if Arc::ptr_eq(registered, &change.table) || registered.columns == change.table.columns {
            Cow::Borrowed(change)
        } else {
            let map = |row: &Row| -> Row {
                registered
                    .columns
                    .iter()
                    .map(|c| {
                        change
                            .table
                            .column_index(&c.name)
                            .and_then(|i| row.get(i))
                            .cloned()
                            .unwrap_or(Value::Null)
                    })
                    .collect()
            };
            Cow::Owned(Change {
                op: change.op,
                table: registered.clone(),
                before: change.before.as_ref().map(map),
                after: change.after.as_ref().map(map),
            })
        };
    let moved = if upsert {
        old_key_delete(&change)
    } else {
        None
    };
    match (moved, change) {
        (None, Cow::Borrowed(_)) => None,
        (moved, change) => Some(moved.into_iter().chain([change.into_owned()]).collect()),
    }
}

/// One change as a SQL target stages it: its row, with values the source
/// marked [`Value::Unchanged`] filled in from an earlier change of the same
/// row in the run where there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow<'a> {
    /// `after`, else `before` (a delete's key).
    pub row: Cow<'a, Row>,
    /// For a row that still holds [`Value::Unchanged`] values: the key
    /// (values in key-column order) under which the target held the row
    /// when the run began, traced back through every key change earlier
    /// in the run. The target fills the values from its row of that key,
    /// read before it applies the run. `None`: nothing left to fill.
    pub lookup: Option<Vec<Value>>,
}

/// The dead letter of a change whose left-out values (see
/// [`StagedRow::lookup`]) a target cannot take over because it holds no
/// row under `lookup`, the key the row had before. The source sends those
/// values again only when they change, so the row goes here rather than
/// into the table with NULLs in their place.
pub fn unchanged_values_lost(
    change: &Change,
    batch: &Batch,
    row: &Row,
    lookup: &[Value],
) -> DeadLetter {
    let schema = &change.table;
    let left_out: Vec<String> = schema
        .columns
        .iter()
        .zip(row)
        .filter(|(_, v)| matches!(v, Value::Unchanged))
        .map(|(c, _)| format!("`{}`", c.name))
        .collect();
    let key: Vec<String> = lookup.iter().map(|v| v.to_json().to_string()).collect();
    DeadLetter {
        table: schema.id.clone(),
        origin: batch.origin(),
        line: None,
        raw: row_json(schema, Some(row)),
        reason: format!(
            "the source left {} out (unchanged since the row's last change, as Postgres does with large TOASTed values) and the target holds no row under the key the row had, ({}), to take them from; re-snapshot the table, or restore that row and replay",
            left_out.join(", "),
            key.join(", "),
        ),
        stage: DeadLetterStage::Target,
        kept: Some(KeptChange::of(change, None)),
    }
}

impl StagedRow<'_> {
    /// Whether the row still holds values only the target has.
    pub fn has_unchanged(&self) -> bool {
        self.lookup.is_some()
    }
}

/// The rows to stage for a run of changes of one table (see [`StagedRow`]).
///
/// A row's left-out values are those of the same row as it was before the
/// change: the latest earlier change of its key in the run or, for an
/// update that moved the row to another key, of its old key (also when
/// the old key was deleted since, as an upsert target's [`conform`] does).
/// Chains resolve in order: a swap through a temporary key, or a key change
/// followed by another update of the moved row, ends at the key the row
/// had in the target before the run.
pub fn resolve<'a>(schema: &TableSchema, changes: &[&'a Change]) -> Vec<StagedRow<'a>> {
    let whole = |c: &&'a Change| -> StagedRow<'a> {
        StagedRow {
            row: c
                .key_row()
                .map_or_else(|| Cow::Owned(Vec::new()), Cow::Borrowed),
            lookup: None,
        }
    };
    let unchanged = |row: &Row| row.iter().any(|v| matches!(v, Value::Unchanged));
    // Nothing to fill: every row as it is (the snapshot's case).
    if schema.key.is_empty()
        || !changes
            .iter()
            .any(|c| c.after.as_ref().is_some_and(&unchanged))
    {
        return changes.iter().map(whole).collect();
    }
    let key_of = |row: &Row| -> Vec<Value> {
        schema
            .key
            .iter()
            .map(|&k| row.get(k).cloned().unwrap_or(Value::Null))
            .collect()
    };
    // Values hold floats, so keys are told apart by their debug text.
    let text = |key: &[Value]| format!("{key:?}");
    // Latest version per key, and the last version of keys deleted since.
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut gone: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<StagedRow<'a>> = Vec::with_capacity(changes.len());
    for change in changes {
        let mut staged = whole(change);
        let own = key_of(&staged.row);
        let key = text(&own);
        let (from, earlier) = match moved_from(change) {
            Some(before) => {
                let old = key_of(before);
                let t = text(&old);
                let earlier = latest.get(&t).or_else(|| gone.get(&t)).copied();
                (old, earlier)
            }
            None => (own, latest.get(&key).copied()),
        };
        if change.op != Op::Delete && unchanged(&staged.row) {
            match earlier {
                Some(earlier) => {
                    let before = &rows[earlier];
                    let mut merged = staged.row.into_owned();
                    for (i, v) in merged.iter_mut().enumerate() {
                        if matches!(v, Value::Unchanged)
                            && let Some(e) = before.row.get(i)
                        {
                            *v = e.clone();
                        }
                    }
                    staged.lookup = unchanged(&merged).then(|| before.lookup.clone()).flatten();
                    staged.row = Cow::Owned(merged);
                }
                None => staged.lookup = Some(from),
            }
        }
        if change.op == Op::Delete {
            if let Some(last) = latest.remove(&key) {
                gone.insert(key, last);
            }
        } else {
            gone.remove(&key);
            latest.insert(key, rows.len());
        }
        rows.push(staged);
    }
    rows
}

/// One step of a table's part of a plan, in order.
#[derive(Debug)]
pub enum Step<'p, 'a> {
    /// A run of inserts, updates and deletes, each with the batch it came
    /// in; staged and merged together (see [`resolve`]).
    Rows(Vec<(&'p Change, &'a Batch)>),
    /// Every row of the table removed, in this batch.
    Truncate(&'a Batch),
    /// Rows gone at the source in a key range (see [`Op::Prune`]).
    Prune(&'p Change, &'a Batch),
}

/// What a SQL target does with the changes of one or more consecutive
/// batches of a source, in the same way for every target: each change
/// conformed to the table as the target registered it ([`conform`]), the
/// changes grouped by table (tables are independent; a table's changes
/// keep their order), and each table's changes cut into [`Step`]s at every
/// truncate and prune.
#[derive(Debug)]
pub struct Plan<'a> {
    changes: Vec<(Cow<'a, Change>, &'a Batch)>,
}

impl<'a> Plan<'a> {
    /// Plans `changes` (each with its batch) for a target whose tables are
    /// registered as `registered` gives them (a table it does not know is
    /// passed as it is); `upsert`: the target keeps one row per key.
    pub fn new<'r>(
        changes: impl IntoIterator<Item = (&'a Change, &'a Batch)>,
        registered: impl Fn(&TableId) -> Option<&'r Arc<TableSchema>>,
        upsert: bool,
    ) -> Self {
        let mut planned = Vec::new();
        for (change, batch) in changes {
            let conformed =
                registered(&change.table.id).and_then(|schema| conform(schema, change, upsert));
            match conformed {
                Some(changes) => {
                    planned.extend(changes.into_iter().map(|c| (Cow::Owned(c), batch)));
                }
                None => planned.push((Cow::Borrowed(change), batch)),
            }
        }
        Plan { changes: planned }
    }

    /// The steps per table, tables in the order they first appear.
    pub fn tables(&self) -> Vec<(TableId, Vec<Step<'_, 'a>>)> {
        let mut tables: Vec<(TableId, Vec<Step<'_, 'a>>)> = Vec::new();
        let mut index: HashMap<&TableId, usize> = HashMap::new();
        // Runs of one table (a snapshot batch is one) look it up once.
        let mut last: Option<(&TableId, usize)> = None;
        for (change, batch) in &self.changes {
            let id = &change.table.id;
            let at = match last {
                Some((l, at)) if l == id => at,
                _ => *index.entry(id).or_insert_with(|| {
                    tables.push((id.clone(), Vec::new()));
                    tables.len() - 1
                }),
            };
            last = Some((id, at));
            let steps = &mut tables[at].1;
            match change.op {
                Op::Truncate => steps.push(Step::Truncate(batch)),
                Op::Prune => steps.push(Step::Prune(change, batch)),
                Op::Insert | Op::Update | Op::Delete => match steps.last_mut() {
                    Some(Step::Rows(rows)) => rows.push((change, *batch)),
                    _ => steps.push(Step::Rows(vec![(change, *batch)])),
                },
            }
        }
        tables
    }
}

/// For an update that moves a row to another key: its `before` row, which
/// holds the old key (known and not NULL).
pub fn moved_from(change: &Change) -> Option<&Row> {
    let schema = &change.table;
    if change.op != Op::Update || schema.key.is_empty() {
        return None;
    }
    let (before, after) = (change.before.as_ref()?, change.after.as_ref()?);
    let old: Vec<&Value> = schema
        .key
        .iter()
        .map(|&k| before.get(k))
        .collect::<Option<_>>()?;
    let new: Vec<&Value> = schema
        .key
        .iter()
        .map(|&k| after.get(k))
        .collect::<Option<_>>()?;
    (old.iter()
        .all(|v| !v.is_null() && !matches!(v, Value::Unchanged))
        && old != new)
        .then_some(before)
}

/// For an update that moves a row to another key: a delete of the row under
/// the old key.
pub fn old_key_delete(change: &Change) -> Option<Change> {
    moved_from(change).map(|before| Change {
        op: Op::Delete,
        table: change.table.clone(),
        before: Some(before.clone()),
        after: None,
    })
}

/// Fills the values the source left out (`missing`, by column name) into
/// `row` from `old`, the row as the target kept it. `false` when there is
/// no such row or it lacks one of them: a value left out is never NULL
/// (Postgres resends NULLs), so the change becomes a dead letter
/// ([`unchanged_values_lost`]) instead.
pub fn fill_left_out<V: Clone>(
    row: &mut std::collections::BTreeMap<String, V>,
    missing: &[String],
    old: Option<&std::collections::BTreeMap<String, V>>,
) -> bool {
    let Some(old) = old.filter(|old| missing.iter().all(|c| old.contains_key(c))) else {
        return false;
    };
    for c in missing {
        if let Some(v) = old.get(c) {
            row.insert(c.clone(), v.clone());
        }
    }
    true
}

/// For a target whose settings name tables (`settings`): the first name
/// none of the `tables` it receives has, with a message listing those it
/// does receive. A setting for a table that never comes is a typo, never
/// silently ignored.
pub fn unknown_table_setting<'a>(
    settings: impl IntoIterator<Item = &'a String>,
    tables: &[Arc<TableSchema>],
) -> Option<(String, String)> {
    let names: Vec<&str> = tables.iter().map(|t| t.id.name.as_str()).collect();
    settings
        .into_iter()
        .find(|t| !names.contains(&t.as_str()))
        .map(|unknown| {
            (
                unknown.clone(),
                format!(
                    "the target receives no table of that name (it receives: {})",
                    names.join(", ")
                ),
            )
        })
}

/// The row's key values as a target keyed by them (a cache, a search
/// index) keeps them: each as its column's type writes it (see
/// [`crate::encode::conformed`]: `1.5` and `1.50` in a `decimal(10,2)` are one
/// key), so one key has one spelling; a NULL in the key is refused.
pub fn key_values(schema: &TableSchema, row: &Row) -> Result<Vec<Value>, String> {
    schema
        .key
        .iter()
        .map(|&k| {
            let column = &schema.columns[k];
            match row.get(k) {
                None | Some(Value::Null) => Err(format!(
                    "key column `{}` is NULL: a row without its whole key cannot be kept by key",
                    column.name
                )),
                Some(v) => Ok(crate::encode::conformed(&column.data_type, v).into_owned()),
            }
        })
        .collect()
}

/// Key values (of a prune's range, a lookup) as [`key_values`] writes them.
pub fn conform_key(schema: &TableSchema, key: &[Value]) -> Vec<Value> {
    schema
        .key
        .iter()
        .zip(key)
        .map(|(&k, v)| crate::encode::conformed(&schema.columns[k].data_type, v).into_owned())
        .collect()
}

/// Orders two values of one key column (as the source orders them for
/// the numeric and binary types; text by its bytes).
pub fn compare(a: &Value, b: &Value) -> Ordering {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Float(x), V::Float(y)) => x.total_cmp(y),
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        (V::Date(x), V::Date(y)) => x.cmp(y),
        (V::Time(x), V::Time(y))
        | (V::Timestamp(x), V::Timestamp(y))
        | (V::TimestampTz(x), V::TimestampTz(y)) => x.cmp(y),
        (V::Uuid(x), V::Uuid(y)) => x.cmp(y),
        (V::Bytes(x), V::Bytes(y)) => x.cmp(y),
        (V::Decimal(x), V::Decimal(y)) => compare_decimals(x, y),
        (V::Text(x), V::Text(y)) | (V::Json(x), V::Json(y)) => x.cmp(y),
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}

/// Orders two decimal texts exactly (no rounding through floats); special
/// values after every number, as Postgres orders NaN.
fn compare_decimals(a: &str, b: &str) -> Ordering {
    use crate::model::DecimalParts;
    match (DecimalParts::parse(a), DecimalParts::parse(b)) {
        (Some(x), Some(y)) => {
            let magnitude = || {
                x.int
                    .len()
                    .cmp(&y.int.len())
                    .then_with(|| x.int.cmp(y.int))
                    .then_with(|| x.frac.cmp(y.frac))
            };
            match (x.negative && !x.is_zero(), y.negative && !y.is_zero()) {
                (false, false) => magnitude(),
                (true, true) => magnitude().reverse(),
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Orders two keys (values in key-column order).
pub fn compare_keys(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| compare(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Whether `key` is one a prune of `range` removes.
pub fn pruned(key: &[Value], range: &PruneRange) -> bool {
    let after = range
        .after_key
        .as_ref()
        .is_none_or(|lo| compare_keys(key, lo).is_gt());
    // No listed key: the range has no upper end (the scan went past the
    // last key the source has).
    let within = range
        .up_to
        .as_ref()
        .is_none_or(|hi| compare_keys(key, hi).is_le());
    after && within && !range.present.iter().any(|p| compare_keys(key, p).is_eq())
}

/// The condition, for SQL targets, that selects the rows a prune removes
/// (see [`Op::Prune`]): a target row `h` whose key lies in the range and is
/// not among the present keys. The range bounds and keys are staged in
/// `stage` as rows `p`, tagged in the column `tag` as `lo`, `hi` and `k`.
/// `keys` pairs each key column as read from `h` and from `p` (with any
/// cast or collation the target needs), in key order.
pub fn prune_condition(
    keys: &[(String, String)],
    stage: &str,
    tag: &str,
    range: &PruneRange,
) -> String {
    // `h` after `p` in key order, column by column.
    let after = {
        let terms: Vec<String> = (0..keys.len())
            .map(|i| {
                let mut term: Vec<String> = keys[..i]
                    .iter()
                    .map(|(h, p)| format!("{h} = {p}"))
                    .collect();
                term.push(format!("{} > {}", keys[i].0, keys[i].1));
                format!("({})", term.join(" AND "))
            })
            .collect();
        format!("({})", terms.join(" OR "))
    };
    let mut filter = Vec::new();
    if range.after_key.is_some() {
        filter.push(format!(
            "EXISTS (SELECT 1 FROM {stage} p WHERE p.{tag} = 'lo' AND {after})"
        ));
    }
    if range.up_to.is_some() {
        filter.push(format!(
            "EXISTS (SELECT 1 FROM {stage} p WHERE p.{tag} = 'hi' AND NOT {after})"
        ));
    }
    let same: Vec<String> = keys.iter().map(|(h, p)| format!("{h} = {p}")).collect();
    filter.push(format!(
        "NOT EXISTS (SELECT 1 FROM {stage} p WHERE p.{tag} = 'k' AND {})",
        same.join(" AND ")
    ));
    filter.join(" AND ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::batch::Position;
    use crate::model::{Column, DataType};

    fn docs() -> Arc<TableSchema> {
        let column = |name: &str| Column {
            name: name.into(),
            data_type: DataType::Text,
            nullable: true,
        };
        Arc::new(TableSchema {
            id: TableId {
                origin: "src".into(),
                name: "docs".into(),
            },
            columns: vec![column("k"), column("n"), column("body")],
            key: vec![0],
            version: 1,
        })
    }

    fn t(v: &str) -> Value {
        Value::Text(v.into())
    }

    fn insert(table: &Arc<TableSchema>, k: &str, n: &str, body: &str) -> Change {
        Change {
            op: Op::Insert,
            table: table.clone(),
            before: None,
            after: Some(vec![t(k), t(n), t(body)]),
        }
    }

    /// An update of `from` to key `to` that leaves `body` out.
    fn moved(table: &Arc<TableSchema>, from: &str, to: &str, n: &str) -> Change {
        Change {
            op: Op::Update,
            table: table.clone(),
            before: Some(vec![t(from), Value::Null, Value::Null]),
            after: Some(vec![t(to), t(n), Value::Unchanged]),
        }
    }

    fn batch(changes: Vec<Change>) -> Batch {
        let position = Position {
            seq: 1,
            state: serde_json::Value::Null,
        };
        Batch::stream(position, changes)
    }

    #[test]
    fn rows_a_target_cannot_keep_are_set_aside_as_dead_letters() {
        let docs = docs();
        let mut null_key = insert(&docs, "", "n", "b");
        null_key.after.as_mut().unwrap()[0] = Value::Null;
        let batch = batch(vec![
            insert(&docs, "1", "ok", "b"),
            null_key,
            insert(&docs, "2", "nul \0", "b"),
            insert(&docs, "3", "ok", "b"),
        ]);
        let refuses = |_: &DataType, v: &Value| match v {
            Value::Text(s) if s.contains('\0') => Some("no NUL here".to_owned()),
            _ => None,
        };
        let out = set_aside(&batch, refuses, &mut Withheld::default());
        let kept: Vec<&Value> = out
            .changes
            .iter()
            .map(|c| &c.after.as_ref().unwrap()[0])
            .collect();
        assert_eq!(kept, [&t("1"), &t("3")]);
        let reasons: Vec<&str> = out.dead_letters.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("key column `k` is NULL"), "{reasons:?}");
        assert!(
            reasons[1].contains("column `n`") && reasons[1].contains("no NUL here"),
            "{reasons:?}"
        );
        assert!(
            out.dead_letters
                .iter()
                .all(|d| d.stage == DeadLetterStage::Target)
        );
        // Nothing to set aside: the batch itself.
        let clean = self::batch(vec![insert(&docs, "1", "ok", "b")]);
        assert!(matches!(
            set_aside(&clean, refuses, &mut Withheld::default()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_change_leaving_values_out_of_a_row_whose_last_change_is_a_dead_letter_is_set_aside() {
        let docs = docs();
        let refuses = |_: &DataType, v: &Value| match v {
            Value::Text(s) if s.contains('\0') => Some("no NUL here".to_owned()),
            _ => None,
        };
        let update = |k: &str, n: &str, body: Value| Change {
            op: Op::Update,
            table: docs.clone(),
            before: None,
            after: Some(vec![t(k), t(n), body]),
        };
        let mut withheld = Withheld::default();
        // Row 1's new body comes with a value the target refuses.
        let first = batch(vec![update("1", "nul \0", t("new body"))]);
        let out = set_aside(&first, refuses, &mut withheld);
        assert_eq!((out.changes.len(), out.dead_letters.len()), (0, 1));
        assert!(withheld.holds(&docs.id, &KeptChange::key_text(&[&t("1")])));
        // Later: row 1 changes again and its body is left out; row 2 too,
        // but row 2 holds its last change.
        let later = batch(vec![
            update("2", "b", Value::Unchanged),
            update("1", "a", Value::Unchanged),
            moved(&docs, "1", "9", "c"),
        ]);
        let out = set_aside(&later, refuses, &mut withheld);
        let kept: Vec<&Value> = out
            .changes
            .iter()
            .map(|c| &c.after.as_ref().unwrap()[0])
            .collect();
        assert_eq!(kept, [&t("2")]);
        assert_eq!(out.dead_letters.len(), 2);
        assert!(
            out.dead_letters[0].reason.contains("`body`")
                && out.dead_letters[0].reason.contains("dead letters"),
            "{:?}",
            out.dead_letters[0].reason
        );
        // The row moved to key 9 while withheld: still withheld there.
        assert!(withheld.holds(&docs.id, &KeptChange::key_text(&[&t("9")])));
        // Screening the same batch again from where it left comes to the same.
        let again = set_aside(&later, refuses, &mut withheld);
        assert_eq!((again.changes.len(), again.dead_letters.len()), (1, 2));
        // A change carrying every value brings the row back.
        let whole = batch(vec![
            update("9", "d", t("body")),
            update("9", "e", Value::Unchanged),
        ]);
        let out = set_aside(&whole, refuses, &mut withheld);
        assert_eq!((out.changes.len(), out.dead_letters.len()), (2, 0));
        assert!(!withheld.holds(&docs.id, &KeptChange::key_text(&[&t("9")])));
        // The row under its old key stays as the target holds it.
        assert!(withheld.holds(&docs.id, &KeptChange::key_text(&[&t("1")])));
        // Made from the dead letters a target keeps.
        let d = &set_aside(&first, refuses, &mut Withheld::default()).dead_letters[0];
        let mut seeded = Withheld::of(&[KeptRow {
            id: 1,
            source: "src".into(),
            table: "docs".into(),
            stage: d.stage,
            origin: d.origin.clone(),
            line: None,
            raw: d.raw.clone(),
            reason: d.reason.clone(),
            seq: 1,
            recorded_at: chrono::Utc::now(),
            kept: d.kept.clone(),
        }]);
        assert!(seeded.holds(&docs.id, &KeptChange::key_text(&[&t("1")])));
        let again = batch(vec![update("1", "a", Value::Unchanged)]);
        let out = set_aside(&again, refuses, &mut seeded);
        assert_eq!(out.dead_letters.len(), 1);
    }

    /// Each staged row as (op, row, lookup key), through a plan for an
    /// upsert or an append target.
    fn staged(changes: Vec<Change>, upsert: bool) -> Vec<(Op, Row, Option<Vec<Value>>)> {
        let table = docs();
        let batch = batch(changes);
        let plan = Plan::new(
            batch.changes.iter().map(|c| (c, &batch)),
            |_| Some(&table),
            upsert,
        );
        let mut out = Vec::new();
        for (id, steps) in plan.tables() {
            assert_eq!(id, table.id);
            for step in steps {
                let Step::Rows(rows) = step else {
                    panic!("only rows")
                };
                let changes: Vec<&Change> = rows.iter().map(|(c, _)| *c).collect();
                for (change, row) in changes.iter().zip(resolve(&table, &changes)) {
                    out.push((change.op, row.row.into_owned(), row.lookup));
                }
            }
        }
        out
    }

    /// The (row, lookup) of every insert or update.
    fn written(changes: Vec<Change>, upsert: bool) -> Vec<(Row, Option<Vec<Value>>)> {
        staged(changes, upsert)
            .into_iter()
            .filter(|(op, _, _)| *op != Op::Delete)
            .map(|(_, row, lookup)| (row, lookup))
            .collect()
    }

    #[test]
    fn a_moved_row_looks_its_values_up_under_its_old_key() {
        for upsert in [true, false] {
            let rows = written(vec![moved(&docs(), "a", "b", "1")], upsert);
            assert_eq!(
                rows,
                [(vec![t("b"), t("1"), Value::Unchanged], Some(vec![t("a")]))]
            );
        }
    }

    #[test]
    fn an_update_of_a_moved_row_looks_up_the_key_before_the_move() {
        let table = docs();
        let update = Change {
            op: Op::Update,
            table: table.clone(),
            before: Some(vec![t("b"), Value::Null, Value::Null]),
            after: Some(vec![t("b"), t("2"), Value::Unchanged]),
        };
        for upsert in [true, false] {
            let rows = written(vec![moved(&table, "a", "b", "1"), update.clone()], upsert);
            assert_eq!(
                rows.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
                [Some(vec![t("a")]), Some(vec![t("a")])],
                "upsert: {upsert}"
            );
        }
    }

    #[test]
    fn a_swap_through_a_temporary_key_keeps_each_rows_values() {
        let table = docs();
        for upsert in [true, false] {
            let rows = written(
                vec![
                    moved(&table, "a", "tmp", "1"),
                    moved(&table, "b", "a", "2"),
                    moved(&table, "tmp", "b", "3"),
                ],
                upsert,
            );
            assert_eq!(
                rows.iter()
                    .map(|(r, l)| (r[0].clone(), l.clone()))
                    .collect::<Vec<_>>(),
                [
                    (t("tmp"), Some(vec![t("a")])),
                    (t("a"), Some(vec![t("b")])),
                    (t("b"), Some(vec![t("a")])),
                ],
                "upsert: {upsert}"
            );
        }
    }

    #[test]
    fn values_from_the_run_need_no_lookup() {
        let table = docs();
        for upsert in [true, false] {
            let rows = written(
                vec![
                    insert(&table, "a", "0", "body a"),
                    moved(&table, "a", "b", "1"),
                    moved(&table, "b", "c", "2"),
                ],
                upsert,
            );
            assert_eq!(
                rows.last(),
                Some(&(vec![t("c"), t("2"), t("body a")], None)),
                "upsert: {upsert}"
            );
        }
    }

    #[test]
    fn an_upsert_plan_deletes_the_old_key_before_a_move() {
        let ops: Vec<Op> = staged(vec![moved(&docs(), "a", "b", "1")], true)
            .into_iter()
            .map(|(op, _, _)| op)
            .collect();
        assert_eq!(ops, [Op::Delete, Op::Update]);
    }

    #[test]
    fn truncates_and_prunes_cut_a_tables_changes_into_steps() {
        let table = docs();
        let truncate = Change {
            op: Op::Truncate,
            table: table.clone(),
            before: None,
            after: None,
        };
        let prune = Change::prune(table.clone(), None, vec![vec![t("a")]]);
        let batch = batch(vec![
            insert(&table, "a", "0", "x"),
            truncate,
            insert(&table, "b", "0", "y"),
            insert(&table, "c", "0", "z"),
            prune,
        ]);
        let plan = Plan::new(batch.changes.iter().map(|c| (c, &batch)), |_| None, true);
        let tables = plan.tables();
        assert_eq!(tables.len(), 1);
        let shape: Vec<String> = tables[0]
            .1
            .iter()
            .map(|s| match s {
                Step::Rows(rows) => format!("rows {}", rows.len()),
                Step::Truncate(_) => "truncate".into(),
                Step::Prune(..) => "prune".into(),
            })
            .collect();
        assert_eq!(shape, ["rows 1", "truncate", "rows 2", "prune"]);
    }
}
