//! The initial copy: tables split into ctid-range chunks, each read with
//! binary `COPY` inside a transaction that uses the slot's exported snapshot
//! (or, after a restart, a fresh one followed by a catch-up).

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use sqlx::postgres::PgConnection;
use syncline_engine::model::{Row, Value};
use tokio::sync::mpsc;

use crate::error::PgError;
use crate::introspect::TableInfo;

/// A range of heap pages: `[start, end)`, open-ended when `end` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// First page.
    pub start: u32,
    /// Page after the last, or `None` for "to the end".
    pub end: Option<u32>,
}

/// Splits a table into chunks of about `chunk_rows` rows.
pub async fn plan(
    conn: &mut PgConnection,
    table: &TableInfo,
    chunk_rows: u64,
) -> Result<Vec<Chunk>, PgError> {
    let row = sqlx::query(
        "SELECT (pg_relation_size($1::int8::oid) / current_setting('block_size')::int8)::int8,
                greatest(reltuples, 0)::float8
         FROM pg_class WHERE oid = $1::int8::oid",
    )
    .bind(i64::from(table.oid))
    .fetch_one(&mut *conn)
    .await
    .map_err(PgError::query("sizing the table"))?;
    let pages = row.get::<i64, _>(0).max(0) as u64;
    let tuples = row.get::<f64, _>(1);
    let rows_per_page = if tuples > 0.0 && pages > 0 {
        (tuples / pages as f64).max(1.0)
    } else {
        60.0
    };
    let per_chunk = ((chunk_rows.max(1) as f64 / rows_per_page).ceil() as u64).max(1);
    let mut chunks = Vec::new();
    let mut start = 0u64;
    while start + per_chunk < pages {
        chunks.push(Chunk {
            start: start as u32,
            end: Some((start + per_chunk) as u32),
        });
        start += per_chunk;
    }
    chunks.push(Chunk {
        start: start as u32,
        end: None,
    });
    Ok(chunks)
}

/// Estimated rows of a table (for progress).
pub async fn estimate_rows(conn: &mut PgConnection, table: &TableInfo) -> u64 {
    sqlx::query_scalar::<_, f64>(
        "SELECT greatest(reltuples, 0)::float8 FROM pg_class WHERE oid = $1::int8::oid",
    )
    .bind(i64::from(table.oid))
    .fetch_one(conn)
    .await
    .map(|t| t as u64)
    .unwrap_or(0)
}

/// `COPY (SELECT <all columns> FROM ONLY <table> WHERE <filter> [ORDER BY ..])`
/// in binary.
fn copy_statement(table: &TableInfo, filter: &str, order: Option<&str>) -> String {
    let cols: Vec<String> = table
        .schema
        .columns
        .iter()
        .map(|c| crate::introspect::quote(&c.name))
        .collect();
    let order = order.map(|o| format!(" ORDER BY {o}")).unwrap_or_default();
    format!(
        "COPY (SELECT {} FROM ONLY {} WHERE {filter}{order}) TO STDOUT (FORMAT binary)",
        cols.join(", "),
        table.quoted()
    )
}

/// The ctid range of a chunk as a filter.
fn chunk_filter(chunk: Chunk) -> String {
    let mut filter = format!("ctid >= '({},0)'::tid", chunk.start);
    if let Some(end) = chunk.end {
        filter.push_str(&format!(" AND ctid < '({end},0)'::tid"));
    }
    filter
}

/// Rows of one binary `COPY`, read in groups.
struct CopyReader<'c> {
    stream: futures_util::stream::BoxStream<'c, sqlx::Result<bytes::Bytes>>,
    parser: CopyParser,
    table: &'c TableInfo,
    done: bool,
}

impl<'c> CopyReader<'c> {
    async fn open(
        conn: &'c mut PgConnection,
        table: &'c TableInfo,
        statement: &str,
    ) -> Result<Self, PgError> {
        let stream = conn
            .copy_out_raw(statement)
            .await
            .map_err(PgError::query(format!("COPY of {}", table.wire_name())))?;
        Ok(CopyReader {
            stream,
            parser: CopyParser::default(),
            table,
            done: false,
        })
    }

    /// Up to `max` rows; `None` once the copy is over.
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Row>>, PgError> {
        let mut rows = Vec::new();
        loop {
            while rows.len() < max {
                match self.parser.next_row(self.table)? {
                    Some(row) => rows.push(row),
                    None => break,
                }
            }
            if rows.len() >= max || self.done {
                return Ok((!rows.is_empty()).then_some(rows));
            }
            match self.stream.next().await {
                Some(bytes) => {
                    let bytes = bytes.map_err(PgError::query(format!(
                        "COPY of {}",
                        self.table.wire_name()
                    )))?;
                    self.parser.buffer.extend_from_slice(&bytes);
                }
                None => self.done = true,
            }
        }
    }
}

/// What snapshot workers hand to the source.
#[derive(Debug)]
pub enum Part {
    /// Rows of a chunk (a chunk may come in several parts).
    Rows {
        /// Table index.
        table: usize,
        /// The rows.
        rows: Vec<Row>,
    },
    /// Every row of the chunk has been sent.
    ChunkDone {
        /// Table index.
        table: usize,
        /// Chunk index.
        chunk: usize,
    },
}

/// Reads one chunk, sending rows in groups of at most `batch_rows`.
pub async fn read_chunk(
    conn: &mut PgConnection,
    table: &TableInfo,
    table_index: usize,
    chunk: Chunk,
    batch_rows: usize,
    tx: &mpsc::Sender<Result<Part, PgError>>,
) -> Result<u64, PgError> {
    let send = async |rows: Vec<Row>| {
        tx.send(Ok(Part::Rows {
            table: table_index,
            rows,
        }))
        .await
        .map_err(|_| PgError::State("snapshot cancelled".into()))
    };
    let statement = copy_statement(table, &chunk_filter(chunk), None);
    let mut reader = CopyReader::open(conn, table, &statement).await?;
    let mut total = 0u64;
    while let Some(rows) = reader.next_batch(batch_rows.max(1)).await? {
        total += rows.len() as u64;
        send(rows).await?;
    }
    Ok(total)
}

/// Incremental parser of the binary COPY format.
#[derive(Debug, Default)]
struct CopyParser {
    buffer: BytesMut,
    header_done: bool,
}

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyParser {
    fn next_row(&mut self, table: &TableInfo) -> Result<Option<Row>, PgError> {
        let bad = |detail: &str| PgError::Decode {
            column: table.wire_name(),
            detail: format!("binary COPY: {detail}"),
        };
        if !self.header_done {
            if self.buffer.len() < SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &self.buffer[..SIGNATURE.len()] != SIGNATURE {
                return Err(bad("bad signature"));
            }
            let ext_len = u32::from_be_bytes([
                self.buffer[15],
                self.buffer[16],
                self.buffer[17],
                self.buffer[18],
            ]) as usize;
            if self.buffer.len() < 19 + ext_len {
                return Ok(None);
            }
            self.buffer.advance(19 + ext_len);
            self.header_done = true;
        }
        if self.buffer.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([self.buffer[0], self.buffer[1]]);
        if fields == -1 {
            self.buffer.clear();
            return Ok(None);
        }
        // Is the whole tuple here?
        let mut pos = 2usize;
        for _ in 0..fields {
            if self.buffer.len() < pos + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes([
                self.buffer[pos],
                self.buffer[pos + 1],
                self.buffer[pos + 2],
                self.buffer[pos + 3],
            ]);
            pos += 4;
            if len > 0 {
                pos += len as usize;
            }
            if self.buffer.len() < pos {
                return Ok(None);
            }
        }
        if fields as usize != table.decoders.len() {
            return Err(bad(&format!(
                "{fields} fields for {} columns",
                table.decoders.len()
            )));
        }
        let tuple = self.buffer.split_to(pos);
        let mut row = Vec::with_capacity(fields as usize);
        let mut at = 2usize;
        for (i, decoder) in table.decoders.iter().enumerate() {
            let len = i32::from_be_bytes([tuple[at], tuple[at + 1], tuple[at + 2], tuple[at + 3]]);
            at += 4;
            if len < 0 {
                row.push(Value::Null);
                continue;
            }
            let end = at + len as usize;
            let value = decoder
                .decode(&tuple[at..end])
                .map_err(|detail| PgError::Decode {
                    column: format!("{}.{}", table.wire_name(), table.schema.columns[i].name),
                    detail,
                })?;
            row.push(value);
            at = end;
        }
        Ok(Some(row))
    }
}

/// Reads the rows of `table` matching `filter`, ordered, all at once (the
/// caller bounds the size with its filter).
pub async fn read_rows(
    conn: &mut PgConnection,
    table: &TableInfo,
    filter: &str,
    order: &str,
) -> Result<Vec<Row>, PgError> {
    let statement = copy_statement(table, filter, Some(order));
    let mut reader = CopyReader::open(conn, table, &statement).await?;
    Ok(reader.next_batch(usize::MAX).await?.unwrap_or_default())
}

/// Reads up to `limit` rows of `table` (all when `None`): a Bernoulli
/// sample sized from the planner's row estimate, repeatable for `seed`
/// while the table is unchanged, in key order.
pub async fn sample_rows(
    conn: &mut PgConnection,
    table: &TableInfo,
    limit: Option<usize>,
    seed: u64,
) -> Result<Vec<Row>, PgError> {
    let order = if table.schema.key.is_empty() {
        "ctid".to_owned()
    } else {
        table
            .schema
            .key_names()
            .iter()
            .map(|k| crate::introspect::quote(k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let estimate = estimate_rows(conn, table).await;
    let cols: Vec<String> = table
        .schema
        .columns
        .iter()
        .map(|c| crate::introspect::quote(&c.name))
        .collect();
    let statement = match limit {
        // Twice the share needed, so a sample rarely comes out short.
        Some(limit) if estimate > limit as u64 => {
            let percent = (limit as f64 * 200.0 / estimate as f64).min(100.0);
            format!(
                "COPY (SELECT {cols} FROM (SELECT * FROM ONLY {t} TABLESAMPLE BERNOULLI ({percent}) REPEATABLE ({seed})) AS s ORDER BY {order} LIMIT {limit}) TO STDOUT (FORMAT binary)",
                cols = cols.join(", "),
                t = table.quoted(),
                seed = seed % (i64::MAX as u64),
            )
        }
        Some(limit) => format!(
            "COPY (SELECT {cols} FROM ONLY {t} ORDER BY {order} LIMIT {limit}) TO STDOUT (FORMAT binary)",
            cols = cols.join(", "),
            t = table.quoted(),
        ),
        None => copy_statement(table, "true", Some(&order)),
    };
    let mut reader = CopyReader::open(conn, table, &statement).await?;
    Ok(reader.next_batch(usize::MAX).await?.unwrap_or_default())
}
