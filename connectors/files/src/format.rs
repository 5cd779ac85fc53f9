//! Reading CSV, JSON-lines and Parquet files into rows, keeping every record
//! that cannot be read as a dead letter with its line, raw text and reason.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::model::{
    Column, DataType, DeadLetter, DeadLetterStage, Row, TableId, TableSchema, Value,
};
use xxhash_rust::xxh3::Xxh3;

use crate::error::FilesError;
use crate::infer::{Inference, parse_value, shorten};

/// File format of a table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// The format a file name implies.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::Jsonl),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// CSV dialect.
#[derive(Debug, Clone, Copy)]
pub struct CsvDialect {
    /// Field delimiter byte.
    pub delimiter: u8,
}

/// One row read from a file.
#[derive(Debug, Clone)]
pub struct ParsedRow {
    /// Values in schema column order.
    pub row: Row,
    /// Hash of the record's content, to tell changed rows from unchanged.
    pub hash: u64,
}

/// Rows sampled for type inference.
const SAMPLE_ROWS: usize = 2_000;

/// Infers the columns of a file from its first rows. `overrides` (column →
/// type) win over inference.
/// About how many records `path` holds, for progress, from its size and
/// its first 64 KiB: exact for a file that small and for Parquet (its
/// metadata), otherwise the file's size over the mean record length of its
/// start. The file is never read through for it.
pub fn record_estimate(path: &Path, format: FileFormat) -> Result<u64, FilesError> {
    const PREFIX: usize = 64 * 1024;
    if format == FileFormat::Parquet {
        return record_count(path, format);
    }
    let mut file = std::fs::File::open(path).map_err(|e| FilesError::read(path, e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| FilesError::read(path, e.to_string()))?
        .len();
    let mut start = Vec::with_capacity(PREFIX);
    (&mut file)
        .take(PREFIX as u64)
        .read_to_end(&mut start)
        .map_err(|e| FilesError::read(path, e.to_string()))?;
    let header = match format {
        FileFormat::Csv => start
            .iter()
            .position(|&b| b == b'\n')
            .map_or(start.len(), |i| i + 1),
        _ => 0,
    };
    let lines = count_lines(&start[header..]);
    if size <= start.len() as u64 {
        return Ok(lines);
    }
    let body = (start.len() - header).max(1) as u64;
    // Whole lines only: the prefix ends inside one.
    let whole = lines.saturating_sub(1).max(1);
    Ok((size.saturating_sub(header as u64)) * whole / body)
}

/// Lines holding more than whitespace.
fn count_lines(bytes: &[u8]) -> u64 {
    let (mut lines, mut content) = (0u64, false);
    for &b in bytes {
        if b == b'\n' {
            lines += u64::from(content);
            content = false;
        } else if !b.is_ascii_whitespace() {
            content = true;
        }
    }
    lines + u64::from(content)
}

/// How many records `path` holds, for a progress estimate, read as a
/// stream (never whole into memory): CSV lines after the header, JSON
/// lines that are not blank, a Parquet file's row count from its metadata.
/// A quoted CSV field spanning lines counts once per line.
pub fn record_count(path: &Path, format: FileFormat) -> Result<u64, FilesError> {
    use std::io::Read as _;
    if format == FileFormat::Parquet {
        let conn = duckdb::Connection::open_in_memory().map_err(duckdb_err(path))?;
        let sql = format!("SELECT count(*) FROM ({})", parquet_query(path));
        let n: i64 = conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(duckdb_err(path))?;
        return Ok(u64::try_from(n).unwrap_or(0));
    }
    let mut file = std::fs::File::open(path).map_err(|e| FilesError::read(path, e.to_string()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut content) = (0u64, false);
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| FilesError::read(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                lines += u64::from(content);
                content = false;
            } else if !b.is_ascii_whitespace() {
                content = true;
            }
        }
    }
    lines += u64::from(content);
    Ok(match format {
        FileFormat::Csv => lines.saturating_sub(1),
        _ => lines,
    })
}

pub fn infer_columns(
    path: &Path,
    bytes: &[u8],
    format: FileFormat,
    dialect: CsvDialect,
    overrides: &dyn Fn(&str) -> Option<DataType>,
) -> Result<Vec<Column>, FilesError> {
    let mut names: Vec<String> = Vec::new();
    let mut inferences: Vec<Inference> = Vec::new();
    match format {
        FileFormat::Csv => {
            let mut reader = csv_reader(bytes, dialect);
            let headers = reader
                .headers()
                .map_err(|e| FilesError::read(path, e.to_string()))?;
            names = headers.iter().map(|h| h.trim().to_owned()).collect();
            inferences = vec![Inference::default(); names.len()];
            for record in reader.records().take(SAMPLE_ROWS).flatten() {
                if record.len() != names.len() {
                    continue;
                }
                for (i, field) in record.iter().enumerate() {
                    inferences[i].observe(field);
                }
            }
        }
        FileFormat::Jsonl => {
            for line in bytes.split(|b| *b == b'\n').take(SAMPLE_ROWS) {
                let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(line) else {
                    continue;
                };
                for (k, v) in obj {
                    let idx = match names.iter().position(|n| *n == k) {
                        Some(i) => i,
                        None => {
                            names.push(k);
                            inferences.push(Inference::default());
                            names.len() - 1
                        }
                    };
                    observe_json(&mut inferences[idx], &v);
                }
            }
        }
        FileFormat::Parquet => return parquet_columns(path, overrides),
    }
    if let Some((i, n)) = names
        .iter()
        .enumerate()
        .find(|(i, n)| !n.is_empty() && names[..*i].contains(n))
    {
        return Err(FilesError::read(
            path,
            format!(
                "the header names `{n}` twice (field {}): name each column once",
                i + 1
            ),
        ));
    }
    // A field without a name is no column (a value under it is refused when
    // rows are read).
    if names.iter().all(String::is_empty) {
        return Err(FilesError::read(path, "no columns found".into()));
    }
    Ok(names
        .into_iter()
        .zip(inferences)
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, inf)| Column {
            data_type: overrides(&name).unwrap_or_else(|| inf.data_type()),
            nullable: true,
            name,
        })
        .collect())
}

fn observe_json(inf: &mut Inference, v: &serde_json::Value) {
    match v {
        serde_json::Value::Null => inf.observe(""),
        serde_json::Value::String(s) => inf.observe(s),
        serde_json::Value::Bool(b) => inf.observe(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => inf.observe(&n.to_string()),
        // Nested values are kept as JSON text: force text inference to fail
        // every narrower type, then `json` is chosen by the caller's override
        // or the column stays text holding JSON.
        other => inf.observe(&other.to_string()),
    }
}

fn csv_reader<R: Read>(input: R, dialect: CsvDialect) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(dialect.delimiter)
        .from_reader(input)
}

/// One record of a file, as read.
#[derive(Debug)]
pub enum Record {
    /// A good row.
    Row(ParsedRow),
    /// A record that could not be read, with its reason.
    Dead(Box<DeadLetter>),
}

/// Reads the records of a file from `input` as a stream, handing each to
/// `each` in file order (`false` from it stops the read): memory holds one
/// record and the reader's buffer (for Parquet, one chunk of rows DuckDB
/// reads from `path`; `input` is not used), whatever the file's size.
/// Returns the digest of the bytes read (the same as [`content_digest`] of
/// them; for Parquet, of the file once read) once the whole input is read,
/// or `None` when `each` stopped it.
pub fn stream_records(
    path: &Path,
    origin: &str,
    input: impl Read,
    format: FileFormat,
    dialect: CsvDialect,
    schema: &TableSchema,
    each: impl FnMut(Record) -> bool,
) -> Result<Option<String>, FilesError> {
    match format {
        FileFormat::Csv => stream_csv(path, origin, input, dialect, schema, each),
        FileFormat::Jsonl => stream_jsonl(path, origin, input, schema, each),
        FileFormat::Parquet => stream_parquet(path, schema, each),
    }
}

/// The digest that names a file's content (xxh3, 128 bits, as hex).
pub fn content_digest(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// The digest of the file at `path`, read as a stream.
pub fn file_digest(path: &Path) -> Result<String, FilesError> {
    let file = std::fs::File::open(path).map_err(|e| FilesError::read(path, e.to_string()))?;
    let mut tail = Tail::new(file, false);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match tail.read(&mut buf) {
            Ok(0) => return Ok(tail.digest()),
            Ok(_) => {}
            Err(e) => return Err(FilesError::read(path, e.to_string())),
        }
    }
}

/// A reader that digests every byte it passes on and, when asked, keeps
/// the bytes from a given offset on, so the raw text of a bad record can be
/// shown while the file streams.
struct Tail<R> {
    inner: R,
    keep: bool,
    kept: Vec<u8>,
    /// The offset of `kept[0]` in the input.
    kept_from: u64,
    hasher: Xxh3,
}

impl<R: Read> Tail<R> {
    fn new(inner: R, keep: bool) -> Tail<R> {
        Tail {
            inner,
            keep,
            kept: Vec::new(),
            kept_from: 0,
            hasher: Xxh3::new(),
        }
    }

    /// The bytes at `start..end` of the input, as far as they are kept.
    fn bytes(&self, start: u64, end: u64) -> &[u8] {
        let len = self.kept.len() as u64;
        let from = start.saturating_sub(self.kept_from).min(len);
        let to = end.saturating_sub(self.kept_from).clamp(from, len);
        &self.kept[from as usize..to as usize]
    }

    /// Drops the kept bytes before `offset`.
    fn forget_before(&mut self, offset: u64) {
        let n = offset
            .saturating_sub(self.kept_from)
            .min(self.kept.len() as u64);
        self.kept.drain(..n as usize);
        self.kept_from += n;
    }

    fn digest(&self) -> String {
        format!("{:032x}", self.hasher.digest128())
    }
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if self.keep {
            self.kept.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

fn dead(table: &TableId, origin: &str, line: u64, raw: &[u8], reason: String) -> DeadLetter {
    DeadLetter {
        table: table.clone(),
        origin: origin.to_owned(),
        line: Some(line),
        raw: String::from_utf8_lossy(raw)
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        reason,
        stage: DeadLetterStage::Read,
        kept: None,
    }
}

fn check_key(schema: &TableSchema, row: &Row) -> Result<(), String> {
    for &k in &schema.key {
        if row[k].is_null() {
            return Err(format!("key column `{}` is empty", schema.columns[k].name));
        }
    }
    Ok(())
}

fn stream_csv(
    path: &Path,
    origin: &str,
    input: impl Read,
    dialect: CsvDialect,
    schema: &TableSchema,
    mut each: impl FnMut(Record) -> bool,
) -> Result<Option<String>, FilesError> {
    let mut reader = csv_reader(Tail::new(input, true), dialect);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| FilesError::read(path, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    // Where each schema column sits in this file.
    let positions: Vec<Option<usize>> = schema
        .columns
        .iter()
        .map(|c| headers.iter().position(|h| *h == c.name))
        .collect();
    for &k in &schema.key {
        if positions[k].is_none() {
            return Err(FilesError::read(
                path,
                format!("the header has no key column `{}`", schema.columns[k].name),
            ));
        }
    }
    if let Some((i, h)) = headers
        .iter()
        .enumerate()
        .find(|(i, h)| !h.is_empty() && headers[..*i].contains(h))
    {
        return Err(FilesError::read(
            path,
            format!(
                "the header names `{h}` twice (fields {} and {}): name each column once",
                headers.iter().position(|x| x == h).unwrap_or(0) + 1,
                i + 1
            ),
        ));
    }
    // Fields under an empty header name: only empty values are let go.
    let unnamed: Vec<usize> = (0..headers.len())
        .filter(|&i| headers[i].is_empty())
        .collect();
    let unknown: Vec<&str> = headers
        .iter()
        .map(String::as_str)
        .filter(|h| !h.is_empty() && schema.column_index(h).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(FilesError::read(
            path,
            format!(
                "the header has columns the table does not ({}), and their types could not be inferred from the file's start: restart the pipeline to add them, and this file is read again then",
                unknown
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let mut record = csv::ByteRecord::new();
    let bad = |reader: &csv::Reader<Tail<_>>, line: u64, start: u64, reason: String| {
        let end = reader.position().byte();
        let raw = reader.get_ref().bytes(start, end);
        Record::Dead(Box::new(dead(&schema.id, origin, line, raw, reason)))
    };
    loop {
        let start = reader.position().byte();
        reader.get_mut().forget_before(start);
        let line = reader.position().line();
        let record_read = reader.read_byte_record(&mut record);
        let go_on = match record_read {
            Ok(false) => break,
            Err(e) if e.is_io_error() => {
                return Err(FilesError::read(path, e.to_string()));
            }
            Err(e) => each(bad(&reader, line, start, format!("unreadable CSV: {e}"))),
            Ok(true) => match csv_row(&record, &headers, &positions, &unnamed, schema) {
                Ok(row) => each(Record::Row(row)),
                Err(reason) => each(bad(&reader, line, start, reason)),
            },
        };
        if !go_on {
            return Ok(None);
        }
    }
    Ok(Some(reader.get_ref().digest()))
}

/// One CSV record as a row of the table, or why it is not one.
fn csv_row(
    record: &csv::ByteRecord,
    headers: &[String],
    positions: &[Option<usize>],
    unnamed: &[usize],
    schema: &TableSchema,
) -> Result<ParsedRow, String> {
    if record.len() != headers.len() {
        return Err(format!(
            "expected {} fields, found {}",
            headers.len(),
            record.len()
        ));
    }
    if let Some(&i) = unnamed
        .iter()
        .find(|&&i| !record[i].trim_ascii().is_empty())
    {
        return Err(format!(
            "field {} has a value but no column name in the header",
            i + 1
        ));
    }
    let mut row = Vec::with_capacity(schema.columns.len());
    for (column, pos) in schema.columns.iter().zip(positions) {
        let Some(pos) = pos else {
            row.push(Value::Null);
            continue;
        };
        let text = std::str::from_utf8(&record[*pos])
            .map_err(|_| format!("column `{}` is not valid UTF-8", column.name))?;
        let value = parse_value(text, &column.data_type)
            .map_err(|reason| format!("column `{}`: {reason}", column.name))?;
        row.push(value);
    }
    check_key(schema, &row)?;
    let mut hasher = Xxh3::new();
    for field in record.iter() {
        hasher.update(field);
        hasher.update(&[0x1f]);
    }
    Ok(ParsedRow {
        row,
        hash: hasher.digest(),
    })
}

fn json_to_value(v: &serde_json::Value, t: &DataType) -> Result<Value, String> {
    match (v, t) {
        (serde_json::Value::Null, _) => Ok(Value::Null),
        (v, DataType::Json) => Ok(Value::Json(v.to_string())),
        (serde_json::Value::String(s), t) => parse_value(s, t),
        (serde_json::Value::Bool(b), DataType::Boolean) => Ok(Value::Bool(*b)),
        (serde_json::Value::Number(n), DataType::Float64) => n
            .as_f64()
            .map(Value::Float)
            .ok_or_else(|| format!("`{n}` is not a valid double")),
        (serde_json::Value::Number(n), t) => parse_value(&n.to_string(), t),
        (serde_json::Value::Bool(b), DataType::Text) => Ok(Value::Text(b.to_string())),
        (other @ (serde_json::Value::Array(_) | serde_json::Value::Object(_)), DataType::Text) => {
            Ok(Value::Text(other.to_string()))
        }
        (other, t) => Err(format!(
            "`{}` is not a valid {t}",
            shorten(&other.to_string())
        )),
    }
}

fn stream_jsonl(
    path: &Path,
    origin: &str,
    input: impl Read,
    schema: &TableSchema,
    mut each: impl FnMut(Record) -> bool,
) -> Result<Option<String>, FilesError> {
    let mut reader = BufReader::with_capacity(1 << 16, Tail::new(input, false));
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| FilesError::read(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = match json_row(&line, schema) {
            Ok(row) => Record::Row(row),
            Err(reason) => Record::Dead(Box::new(dead(&schema.id, origin, line_no, &line, reason))),
        };
        if !each(record) {
            return Ok(None);
        }
    }
    Ok(Some(reader.get_ref().digest()))
}

/// One JSON line as a row of the table, or why it is not one.
fn json_row(line: &[u8], schema: &TableSchema) -> Result<ParsedRow, String> {
    let trimmed = line.trim_ascii();
    let object = match serde_json::from_slice::<serde_json::Value>(trimmed) {
        Ok(serde_json::Value::Object(o)) => o,
        Ok(_) => return Err("the line is not a JSON object".into()),
        Err(e) => return Err(format!("invalid JSON: {e}")),
    };
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| schema.column_index(k).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{} not a column of the table: its columns come from the first 4 MiB of each file, and this field first appears after that",
            unknown
                .iter()
                .map(|k| format!("`{k}` is"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let row: Row = schema
        .columns
        .iter()
        .map(|c| {
            object
                .get(&c.name)
                .map_or(Ok(Value::Null), |v| json_to_value(v, &c.data_type))
                .map_err(|reason| format!("column `{}`: {reason}", c.name))
        })
        .collect::<Result<_, _>>()?;
    check_key(schema, &row)?;
    Ok(ParsedRow {
        row,
        hash: xxhash_rust::xxh3::xxh3_64(trimmed),
    })
}

fn duckdb_err(path: &Path) -> impl Fn(duckdb::Error) -> FilesError + '_ {
    move |e| FilesError::read(path, format!("reading Parquet: {e}"))
}

fn parquet_query(path: &Path) -> String {
    format!(
        "SELECT * FROM read_parquet('{}')",
        path.display().to_string().replace('\'', "''")
    )
}

fn parquet_columns(
    path: &Path,
    overrides: &dyn Fn(&str) -> Option<DataType>,
) -> Result<Vec<Column>, FilesError> {
    let conn = duckdb::Connection::open_in_memory().map_err(duckdb_err(path))?;
    let sql = format!(
        "SELECT column_name, column_type FROM (DESCRIBE {})",
        parquet_query(path)
    );
    let mut stmt = conn.prepare(&sql).map_err(duckdb_err(path))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(duckdb_err(path))?;
    let mut columns = Vec::new();
    for row in rows {
        let (name, duck_type) = row.map_err(duckdb_err(path))?;
        let data_type = overrides(&name).unwrap_or_else(|| from_duckdb_type(&duck_type));
        columns.push(Column {
            name,
            data_type,
            nullable: true,
        });
    }
    Ok(columns)
}

/// The bytes of row `row` of a column DuckDB gave as text or binary,
/// `None` for NULL.
fn cell_bytes<'a>(
    path: &Path,
    a: &'a duckdb::arrow::array::ArrayRef,
    row: usize,
) -> Result<Option<&'a [u8]>, FilesError> {
    use duckdb::arrow::array::{Array as _, AsArray as _};
    use duckdb::arrow::datatypes::DataType as ArrowType;
    if a.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match a.data_type() {
        ArrowType::Utf8 => a.as_string::<i32>().value(row).as_bytes(),
        ArrowType::LargeUtf8 => a.as_string::<i64>().value(row).as_bytes(),
        ArrowType::Utf8View => a.as_string_view().value(row).as_bytes(),
        ArrowType::Binary => a.as_binary::<i32>().value(row),
        ArrowType::LargeBinary => a.as_binary::<i64>().value(row),
        ArrowType::BinaryView => a.as_binary_view().value(row),
        other => {
            return Err(FilesError::read(
                path,
                format!("reading Parquet: DuckDB gave a column as {other}"),
            ));
        }
    }))
}

/// DuckDB's type name (as DESCRIBE prints it) → engine type.
fn from_duckdb_type(t: &str) -> DataType {
    let upper = t.to_ascii_uppercase();
    match upper.as_str() {
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" | "SMALLINT" | "INTEGER" | "UTINYINT" | "USMALLINT" => DataType::Int32,
        "BIGINT" | "UINTEGER" => DataType::Int64,
        "FLOAT" | "DOUBLE" => DataType::Float64,
        "DATE" => DataType::Date,
        "TIME" => DataType::Time,
        "TIMESTAMP" | "TIMESTAMP_NS" | "TIMESTAMP_MS" | "TIMESTAMP_S" => DataType::Timestamp,
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => DataType::TimestampTz,
        "BLOB" => DataType::Bytes,
        "UUID" => DataType::Uuid,
        "JSON" => DataType::Json,
        other => DataType::parse(other).unwrap_or(DataType::Text),
    }
}

/// Reads the rows of a Parquet file as a stream, handing each to `each`
/// (`false` from it stops the read): DuckDB fetches the file a chunk of
/// rows at a time, so memory holds one chunk whatever the file's size.
/// Binary columns are read as the bytes they hold; every other column as
/// DuckDB's text of its value, parsed with the table's types (one
/// conversion path for all formats). Returns the digest of the file as it
/// is once read (the content the caller first digested, unless the file
/// changed meanwhile), or `None` when `each` stopped the read.
fn stream_parquet(
    path: &Path,
    schema: &TableSchema,
    mut each: impl FnMut(Record) -> bool,
) -> Result<Option<String>, FilesError> {
    use duckdb::arrow::array::Array as _;
    let conn = duckdb::Connection::open_in_memory().map_err(duckdb_err(path))?;
    let select: Vec<String> = schema
        .columns
        .iter()
        .map(|c| {
            let name = format!("\"{}\"", c.name.replace('"', "\"\""));
            if c.data_type == DataType::Bytes {
                format!("CAST({name} AS BLOB)")
            } else {
                format!("CAST({name} AS VARCHAR)")
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM read_parquet('{}')",
        select.join(", "),
        path.display().to_string().replace('\'', "''")
    );
    let mut stmt = conn.prepare(&sql).map_err(duckdb_err(path))?;
    // Executed as a stream; its chunks are then fetched with `step`, which
    // reports a failure (a damaged row group) instead of panicking as the
    // iterator does.
    drop(stmt.stream_arrow([]).map_err(duckdb_err(path))?);
    let mut n: u64 = 0;
    while let Some(chunk) = stmt.step().map_err(duckdb_err(path))? {
        let columns = chunk.columns();
        for r in 0..chunk.len() {
            n += 1;
            let mut row = Vec::with_capacity(schema.columns.len());
            let mut hasher = Xxh3::new();
            let mut error = None;
            for (i, c) in schema.columns.iter().enumerate() {
                let bytes = cell_bytes(path, &columns[i], r)?;
                hasher.update(bytes.unwrap_or(b"\0".as_slice()));
                hasher.update(&[0x1f]);
                let value = match bytes {
                    None => Ok(Value::Null),
                    Some(b) if c.data_type == DataType::Bytes => Ok(Value::Bytes(b.to_vec())),
                    Some(b) => parse_value(&String::from_utf8_lossy(b), &c.data_type),
                };
                match value {
                    Ok(v) => row.push(v),
                    Err(reason) => {
                        error = Some(format!("column `{}`: {reason}", c.name));
                        break;
                    }
                }
            }
            let record = match error.or_else(|| check_key(schema, &row).err()) {
                None => Record::Row(ParsedRow {
                    row,
                    hash: hasher.digest(),
                }),
                Some(reason) => Record::Dead(Box::new(DeadLetter {
                    table: schema.id.clone(),
                    origin: path.display().to_string(),
                    line: Some(n),
                    raw: format!("row {n}"),
                    reason,
                    stage: DeadLetterStage::Read,
                    kept: None,
                })),
            };
            if !each(record) {
                return Ok(None);
            }
        }
    }
    drop(stmt);
    file_digest(path).map(Some)
}
