//! The initial copy: tables split into ctid-range chunks, each read with
//! binary `COPY` inside a transaction that uses the slot's exported snapshot
//! (or, after a restart, a fresh one followed by a catch-up).

use std::ops::Range;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use sqlx::postgres::PgConnection;
use syncline_engine::columnar::{BlockBuilder, Cell, InsertBlock};
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
    stream: futures_util::stream::BoxStream<'c, sqlx::Result<Bytes>>,
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
                match self.parser.next_tuple(self.table)? {
                    Some(tuple) => rows.push(decode_tuple(self.table, self.parser.tuple(tuple))?),
                    None => break,
                }
            }
            if rows.len() >= max || self.done {
                return Ok((!rows.is_empty()).then_some(rows));
            }
            self.fill().await?;
        }
    }

    /// Appends up to `max` rows to `builder` (rows whose values do not fit
    /// it go to `misfits`); `false` once the copy is over and nothing was
    /// added.
    async fn next_block(
        &mut self,
        builder: &mut BlockBuilder,
        misfits: &mut Vec<Row>,
        max: usize,
    ) -> Result<bool, PgError> {
        let mut scratch = Scratch::default();
        let mut added = 0usize;
        loop {
            while added < max {
                let Some(tuple) = self.parser.next_tuple(self.table)? else {
                    break;
                };
                let tuple = self.parser.tuple(tuple);
                push_tuple(self.table, tuple, builder, misfits, &mut scratch)?;
                added += 1;
            }
            if added >= max || self.done {
                return Ok(added > 0);
            }
            self.fill().await?;
        }
    }

    /// Hands the next message of the copy to the parser (Postgres sends a
    /// message per row); builds the error text only for an error.
    async fn fill(&mut self) -> Result<(), PgError> {
        match self.stream.next().await {
            Some(Ok(message)) => self.parser.push(message),
            Some(Err(e)) => {
                let what = format!("COPY of {}", self.table.wire_name());
                return Err(PgError::query(what)(e));
            }
            None => self.done = true,
        }
        Ok(())
    }
}

/// The fields of a whole binary COPY tuple (after its field count): each
/// value's bytes, `None` for NULL.
fn fields(tuple: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let count = i16::from_be_bytes([tuple[0], tuple[1]]).max(0) as usize;
    let mut at = 2usize;
    (0..count).map(move |_| {
        let len = i32::from_be_bytes([tuple[at], tuple[at + 1], tuple[at + 2], tuple[at + 3]]);
        at += 4;
        if len < 0 {
            return None;
        }
        let start = at;
        at += len as usize;
        Some(&tuple[start..at])
    })
}

/// Buffers [`push_tuple`] reuses from tuple to tuple.
#[derive(Debug, Default)]
struct Scratch {
    owned: Vec<Value>,
    cells: Vec<Cell<'static>>,
}

/// Decodes one tuple into `builder`, or, if a value does not fit its
/// column there, into `misfits` as a row.
fn push_tuple(
    table: &TableInfo,
    tuple: &[u8],
    builder: &mut BlockBuilder,
    misfits: &mut Vec<Row>,
    scratch: &mut Scratch,
) -> Result<(), PgError> {
    let decode_error = |i: usize, detail: String| PgError::Value {
        column: format!("{}.{}", table.wire_name(), table.schema.columns[i].name),
        detail,
    };
    // Most values go straight from the wire to a cell; the others (free
    // numerics, intervals, ...) are decoded into `owned` first and their
    // cells filled in after.
    let owned = &mut scratch.owned;
    owned.clear();
    // The empty buffer of the last tuple, borrowing this one's bytes now.
    let mut cells: Vec<Cell<'_>> = std::mem::take(&mut scratch.cells);
    for (i, (field, decoder)) in fields(tuple).zip(&table.decoders).enumerate() {
        cells.push(match field.map(|b| (b, decoder.cell(b))) {
            None => Cell::Null,
            Some((_, Some(cell))) => cell.map_err(|d| decode_error(i, d))?,
            Some((b, None)) => {
                owned.push(decoder.decode(b).map_err(|d| decode_error(i, d))?);
                Cell::Null
            }
        });
    }
    let mut fits = true;
    if !owned.is_empty() {
        let mut next = owned.iter();
        let slots = cells.iter_mut().zip(fields(tuple)).zip(&table.decoders);
        for (((slot, field), decoder), t) in slots.zip(builder.types()) {
            if let (Cell::Null, Some(b)) = (*slot, field)
                && decoder.cell(b).is_none()
            {
                match next.next().and_then(|v| Cell::of(v, t)) {
                    Some(cell) => *slot = cell,
                    None => fits = false,
                }
            }
        }
    }
    if !(fits && builder.push_row(&cells)) {
        misfits.push(decode_tuple(table, tuple)?);
    }
    scratch.cells = recycle(cells);
    Ok(())
}

/// The allocation of `cells`, emptied, so it borrows nothing and serves
/// the next tuple (collecting an empty iterator in place reuses it).
#[allow(clippy::unnecessary_filter_map)]
fn recycle(mut cells: Vec<Cell<'_>>) -> Vec<Cell<'static>> {
    cells.clear();
    cells.into_iter().filter_map(|_| None).collect()
}

/// Decodes one whole tuple into a row.
fn decode_tuple(table: &TableInfo, tuple: &[u8]) -> Result<Row, PgError> {
    fields(tuple)
        .zip(&table.decoders)
        .enumerate()
        .map(|(i, (field, decoder))| match field {
            None => Ok(Value::Null),
            Some(b) => decoder.decode(b).map_err(|detail| PgError::Value {
                column: format!("{}.{}", table.wire_name(), table.schema.columns[i].name),
                detail,
            }),
        })
        .collect()
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
    /// Rows of a chunk as a column block, with the rows whose values did
    /// not fit it.
    Block {
        /// Table index.
        table: usize,
        /// The rows, column by column.
        block: InsertBlock,
        /// Rows that do not fit the block (the engine dead-letters them).
        misfits: Vec<Row>,
    },
    /// Every row of the chunk has been sent.
    ChunkDone {
        /// Table index.
        table: usize,
        /// Chunk index.
        chunk: usize,
    },
}

/// How a chunk's rows are sent.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Rows, in groups of at most this many.
    Rows(usize),
    /// Column blocks of at most this many rows, where the table's types
    /// allow ([`syncline_engine::columnar::supports`]); rows otherwise.
    Blocks(usize),
}

/// Reads one chunk, sending its rows shaped as `shape` says.
pub async fn read_chunk(
    conn: &mut PgConnection,
    table: &TableInfo,
    table_index: usize,
    chunk: Chunk,
    shape: Shape,
    tx: &mpsc::Sender<Result<Part, PgError>>,
) -> Result<u64, PgError> {
    let send = async |part: Part| {
        tx.send(Ok(part))
            .await
            .map_err(|_| PgError::State("snapshot cancelled".into()))
    };
    let statement = copy_statement(table, &chunk_filter(chunk), None);
    let mut reader = CopyReader::open(conn, table, &statement).await?;
    let mut total = 0u64;
    let (rows, builder) = match shape {
        Shape::Rows(n) => (n, None),
        Shape::Blocks(n) => (n, BlockBuilder::new(table.schema.clone(), n.max(1))),
    };
    if let Some(mut builder) = builder {
        let mut misfits = Vec::new();
        while reader
            .next_block(&mut builder, &mut misfits, rows.max(1))
            .await?
        {
            let block = builder.finish().map_err(PgError::State)?;
            total += (block.len() + misfits.len()) as u64;
            send(Part::Block {
                table: table_index,
                block,
                misfits: std::mem::take(&mut misfits),
            })
            .await?;
        }
        return Ok(total);
    }
    while let Some(rows) = reader.next_batch(rows.max(1)).await? {
        total += rows.len() as u64;
        send(Part::Rows {
            table: table_index,
            rows,
        })
        .await?;
    }
    Ok(total)
}

/// Incremental parser of the binary COPY format. Tuples are read where
/// they lie in the message that brought them; only a tuple split across
/// messages is copied, to join its parts.
#[derive(Debug, Default)]
struct CopyParser {
    /// The message being read.
    message: Bytes,
    /// How much of `message` has been read.
    at: usize,
    header_done: bool,
}

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyParser {
    /// Takes the next message, after what is left of the current one.
    fn push(&mut self, message: Bytes) {
        let rest = &self.message[self.at..];
        self.message = if rest.is_empty() {
            message
        } else {
            let mut joined = Vec::with_capacity(rest.len() + message.len());
            joined.extend_from_slice(rest);
            joined.extend_from_slice(&message);
            Bytes::from(joined)
        };
        self.at = 0;
    }

    /// The bytes of a tuple [`CopyParser::next_tuple`] found.
    fn tuple(&self, range: Range<usize>) -> &[u8] {
        &self.message[range]
    }

    /// Where the next whole tuple (field count and fields) lies in the
    /// current message, if it holds one.
    fn next_tuple(&mut self, table: &TableInfo) -> Result<Option<Range<usize>>, PgError> {
        let bad = |detail: &str| PgError::Value {
            column: table.wire_name(),
            detail: format!("binary COPY: {detail}"),
        };
        let mut buf = &self.message[self.at..];
        if !self.header_done {
            if buf.len() < SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(bad("bad signature"));
            }
            let ext_len = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
            if buf.len() < 19 + ext_len {
                return Ok(None);
            }
            self.at += 19 + ext_len;
            buf = &buf[19 + ext_len..];
            self.header_done = true;
        }
        if buf.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([buf[0], buf[1]]);
        if fields == -1 {
            // The trailer: nothing follows.
            self.at = self.message.len();
            return Ok(None);
        }
        // Is the whole tuple here?
        let mut pos = 2usize;
        for _ in 0..fields {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
            pos += 4;
            if len > 0 {
                pos += len as usize;
            }
            if buf.len() < pos {
                return Ok(None);
            }
        }
        if fields as usize != table.decoders.len() {
            return Err(bad(&format!(
                "{fields} fields for {} columns",
                table.decoders.len()
            )));
        }
        let start = self.at;
        self.at += pos;
        Ok(Some(start..self.at))
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

/// Reads the first `limit` rows of `table` matching `filter` in `order`.
pub async fn read_page(
    conn: &mut PgConnection,
    table: &TableInfo,
    filter: &str,
    order: &str,
    limit: usize,
) -> Result<Vec<Row>, PgError> {
    read_rows(conn, table, filter, &format!("{order} LIMIT {limit}")).await
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use syncline_engine::model::{Column, DataType, TableId, TableSchema};

    use super::*;
    use crate::types::Decoder;

    fn table() -> TableInfo {
        let column = |name: &str, data_type| Column {
            name: name.into(),
            data_type,
            nullable: true,
        };
        TableInfo {
            schema: Arc::new(TableSchema {
                id: TableId {
                    origin: "pg".into(),
                    name: "t".into(),
                },
                columns: vec![
                    column("id", DataType::Int32),
                    column("note", DataType::Text),
                ],
                key: vec![0],
                version: 1,
            }),
            decoders: vec![Decoder::Int4, Decoder::Text],
            pg_schema: "public".into(),
            pg_table: "t".into(),
            oid: 1,
            replica_identity: 'd',
            key_is_unique: true,
        }
    }

    /// A binary COPY of `(id, note)` rows, as one byte string.
    fn copy_bytes(rows: &[(i32, Option<&str>)]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&[0; 8]);
        for (id, note) in rows {
            out.extend_from_slice(&2i16.to_be_bytes());
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes());
            match note {
                Some(n) => {
                    out.extend_from_slice(&(n.len() as i32).to_be_bytes());
                    out.extend_from_slice(n.as_bytes());
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn parse(messages: &[&[u8]]) -> Vec<Row> {
        let table = table();
        let mut parser = CopyParser::default();
        let mut rows = Vec::new();
        for m in messages {
            parser.push(Bytes::copy_from_slice(m));
            while let Some(t) = parser.next_tuple(&table).expect("valid copy") {
                rows.push(decode_tuple(&table, parser.tuple(t)).expect("decodable"));
            }
        }
        rows
    }

    #[test]
    fn tuples_split_anywhere_across_messages_are_read_whole() {
        let rows = [
            (1, Some("one")),
            (2, None),
            (3, Some("")),
            (-4, Some("vier")),
        ];
        let bytes = copy_bytes(&rows);
        let expected: Vec<Row> = rows
            .iter()
            .map(|(id, note)| {
                vec![
                    Value::Int(i64::from(*id)),
                    note.map_or(Value::Null, |n| Value::Text(n.into())),
                ]
            })
            .collect();
        assert_eq!(parse(&[&bytes]), expected);
        for cut in 1..bytes.len() {
            assert_eq!(
                parse(&[&bytes[..cut], &bytes[cut..]]),
                expected,
                "split at byte {cut}"
            );
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse(&singles), expected);
    }

    #[test]
    fn a_wrong_field_count_or_signature_is_an_error() {
        let table = table();
        let mut parser = CopyParser::default();
        let mut bytes = copy_bytes(&[(1, Some("x"))]);
        // One field (the id) where the table has two columns.
        bytes[19..21].copy_from_slice(&1i16.to_be_bytes());
        parser.push(Bytes::from(bytes));
        let err = parser
            .next_tuple(&table)
            .expect_err("1 field for 2 columns");
        assert!(err.to_string().contains("1 fields for 2 columns"), "{err}");

        let mut parser = CopyParser::default();
        parser.push(Bytes::from_static(b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        let err = parser.next_tuple(&table).expect_err("bad signature");
        assert!(err.to_string().contains("bad signature"), "{err}");
    }
}
