//! Builders connector tests share: a table schema, a change.

use std::sync::Arc;

use syncline_engine::model::{Change, Column, DataType, Op, Row, TableId, TableSchema};

/// Table `name` of source `src` with nullable `cols`, the columns at
/// `key` (in key order) as its key, at schema `version`.
pub fn table(
    name: &str,
    cols: &[(&str, DataType)],
    key: &[usize],
    version: u32,
) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId {
            origin: "src".into(),
            name: name.into(),
        },
        columns: cols
            .iter()
            .map(|(n, d)| Column {
                name: (*n).into(),
                data_type: d.clone(),
                nullable: true,
            })
            .collect(),
        key: key.to_vec(),
        version,
    })
}

/// A change of `op` to `t`: `row` is the delete's `before`, the insert's
/// or update's `after`; a truncate has neither.
pub fn change(op: Op, t: &Arc<TableSchema>, row: Row) -> Change {
    let (before, after) = match op {
        Op::Delete => (Some(row), None),
        Op::Truncate => (None, None),
        _ => (None, Some(row)),
    };
    Change {
        op,
        table: t.clone(),
        before,
        after,
    }
}
