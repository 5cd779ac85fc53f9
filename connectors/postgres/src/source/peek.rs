//! Recent changes for a preview: the pipeline's slot peeked (never
//! consumed), its pgoutput messages decoded with the same binary decoders
//! as the stream.

use std::collections::{HashMap, VecDeque};

use futures_util::TryStreamExt;
use pg_walstream::protocol::{LogicalReplicationMessage, LogicalReplicationParser, TupleData};
use sqlx::postgres::PgConnection;
use syncline_engine::model::{Change, Op, Row, Value};
use tracing::info;

use crate::error::PgError;
use crate::introspect::TableInfo;

/// Why there are no changes to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoChanges {
    /// The pipeline has not created its slot yet (it has not run).
    NoSlot,
    /// The running pipeline is reading the slot.
    SlotInUse,
}

/// Up to `limit` of the latest changes of `table` the slot retains, oldest
/// first. The slot's position does not move.
pub async fn recent_changes(
    conn: &mut PgConnection,
    slot: &str,
    table: &TableInfo,
    limit: usize,
) -> Result<Result<Vec<Change>, NoChanges>, PgError> {
    let state: Option<bool> =
        sqlx::query_scalar("SELECT active FROM pg_replication_slots WHERE slot_name = $1")
            .bind(slot)
            .fetch_optional(&mut *conn)
            .await
            .map_err(PgError::query("reading the replication slot"))?;
    match state {
        None => return Ok(Err(NoChanges::NoSlot)),
        Some(true) => return Ok(Err(NoChanges::SlotInUse)),
        Some(false) => {}
    }
    let mut rows = sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
             'proto_version', '1', 'publication_names', $1, 'binary', 'true')",
    )
    .bind(slot)
    .fetch(&mut *conn);
    let mut parser = LogicalReplicationParser::with_protocol_version(1);
    // relation id -> position of each of the table's columns in its tuples.
    let mut relations: HashMap<u32, Vec<Option<usize>>> = HashMap::new();
    let wire = (table.pg_schema.as_str(), table.pg_table.as_str());
    let mut latest: VecDeque<Change> = VecDeque::with_capacity(limit.min(4096));
    while let Some(data) = rows
        .try_next()
        .await
        .map_err(PgError::query("peeking the replication slot"))?
    {
        let Ok(message) = parser.parse_wal_message(&data) else {
            continue;
        };
        let change = match message.message {
            LogicalReplicationMessage::Relation {
                relation_id,
                namespace,
                relation_name,
                columns,
                ..
            } => {
                if (namespace.as_ref(), relation_name.as_ref()) == wire {
                    let map = table
                        .schema
                        .columns
                        .iter()
                        .map(|c| columns.iter().position(|rc| rc.name.as_ref() == c.name))
                        .collect();
                    relations.insert(relation_id, map);
                } else {
                    relations.remove(&relation_id);
                }
                None
            }
            LogicalReplicationMessage::Insert { relation_id, tuple } => relations
                .get(&relation_id)
                .map(|m| -> Result<Change, PgError> {
                    Ok(change(
                        table,
                        Op::Insert,
                        None,
                        Some(decode(table, m, &tuple, Value::Unchanged)?),
                    ))
                }),
            LogicalReplicationMessage::Update {
                relation_id,
                old_tuple,
                new_tuple,
                ..
            } => relations.get(&relation_id).map(|m| {
                let before = old_tuple
                    .as_ref()
                    .map(|t| decode(table, m, t, Value::Null))
                    .transpose()?;
                Ok(change(
                    table,
                    Op::Update,
                    before,
                    Some(decode(table, m, &new_tuple, Value::Unchanged)?),
                ))
            }),
            LogicalReplicationMessage::Delete {
                relation_id,
                old_tuple,
                ..
            } => relations.get(&relation_id).map(|m| {
                Ok(change(
                    table,
                    Op::Delete,
                    Some(decode(table, m, &old_tuple, Value::Null)?),
                    None,
                ))
            }),
            _ => None,
        };
        if let Some(change) = change {
            if latest.len() == limit {
                latest.pop_front();
            }
            if limit > 0 {
                latest.push_back(change?);
            }
        }
    }
    info!(table = %table.schema.id, changes = latest.len(), "peeked recent changes");
    Ok(Ok(latest.into()))
}

fn change(table: &TableInfo, op: Op, before: Option<Row>, after: Option<Row>) -> Change {
    Change {
        op,
        table: table.schema.clone(),
        before,
        after,
    }
}

/// A tuple as a row of the table's columns (`missing`: columns the tuple
/// does not carry).
fn decode(
    table: &TableInfo,
    map: &[Option<usize>],
    tuple: &TupleData,
    missing: Value,
) -> Result<Row, PgError> {
    table
        .schema
        .columns
        .iter()
        .zip(&table.decoders)
        .zip(map)
        .map(|((c, d), at)| {
            let Some(col) = at.and_then(|i| tuple.get_column(i)) else {
                return Ok(missing.clone());
            };
            match col.data_type {
                b'n' => Ok(Value::Null),
                b'u' => Ok(Value::Unchanged),
                b'b' => d.decode(col.as_bytes()).map_err(|detail| PgError::Value {
                    column: format!("{}.{}", table.wire_name(), c.name),
                    detail,
                }),
                _ => Ok(Value::Text(
                    String::from_utf8_lossy(col.as_bytes()).into_owned(),
                )),
            }
        })
        .collect()
}
