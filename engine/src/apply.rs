//! What every sink does to a batch's changes before it stages them, so each
//! target applies the same semantics.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Change, Op, PruneRange, Row, TableSchema, Value};

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

/// The rows to stage for a run of changes of one table, with values the
/// source marked [`Value::Unchanged`] filled in from an earlier change of
/// the same row in the run where there is one (for an update that moved the
/// row to another key: of the old key). What stays unchanged must come from
/// the row the target holds.
pub fn resolve_unchanged<'a>(schema: &TableSchema, changes: &[&'a Change]) -> Vec<Cow<'a, Row>> {
    // Nothing to fill: every row as it is (the snapshot's case).
    let unchanged =
        |row: Option<&Row>| row.is_some_and(|r| r.iter().any(|v| matches!(v, Value::Unchanged)));
    if !changes
        .iter()
        .any(|c| unchanged(c.after.as_ref()) || unchanged(c.before.as_ref()))
    {
        return changes
            .iter()
            .map(|c| {
                c.key_row()
                    .map_or_else(|| Cow::Owned(Vec::new()), Cow::Borrowed)
            })
            .collect();
    }
    let key_text = |row: &Row, key: &[usize]| -> String {
        format!("{:?}", key.iter().map(|&k| row.get(k)).collect::<Vec<_>>())
    };
    // Latest version per key, and the last version of keys deleted since.
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut gone: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<Cow<'a, Row>> = Vec::with_capacity(changes.len());
    for change in changes {
        let row = match change.key_row() {
            Some(r) => Cow::Borrowed(r),
            None => Cow::Owned(Vec::new()),
        };
        if schema.key.is_empty() {
            rows.push(row);
            continue;
        }
        let key = key_text(&row, &schema.key);
        let earlier = match moved_from(change) {
            Some(before) => {
                let old = key_text(before, &schema.key);
                latest.get(&old).or_else(|| gone.get(&old)).copied()
            }
            None => latest.get(&key).copied(),
        };
        let row = match earlier {
            Some(earlier) if row.iter().any(|v| matches!(v, Value::Unchanged)) => {
                let mut merged = row.into_owned();
                for (i, v) in merged.iter_mut().enumerate() {
                    if matches!(v, Value::Unchanged)
                        && let Some(e) = rows[earlier].get(i)
                    {
                        *v = e.clone();
                    }
                }
                Cow::Owned(merged)
            }
            _ => row,
        };
        if change.op == Op::Delete {
            if let Some(last) = latest.remove(&key) {
                gone.insert(key, last);
            }
        } else {
            gone.remove(&key);
            latest.insert(key, rows.len());
        }
        rows.push(row);
    }
    rows
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
