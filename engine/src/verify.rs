//! Whether a target holds what its source holds, row by row.
//!
//! Both sides are read in key order through a [`RowReader`] (a source's
//! from [`Source::reader`](crate::connector::Source::reader), a target's
//! from [`Sink::reader`](crate::connector::Sink::reader)), a page at a time,
//! and merged: a key only the source has is *missing* from the target, a
//! key only the target has is *extra*, and a key both have *differs* when
//! any column's canonical form does. Memory holds two pages and the
//! differences kept, never a table.
//!
//! # Key order
//!
//! Readers return rows in the order of [`compare_keys`]: column by column,
//! numbers by value, text and bytes byte by byte (Postgres `COLLATE "C"`,
//! MySQL `BINARY`, DuckDB's default), UUIDs by their bytes, dates and times
//! by time. Pages that do not come in that order stop the comparison with
//! an error naming the side, never a wrong verdict.
//!
//! # Canonical form
//!
//! Two values are equal when [`canonical`] gives the same text for them,
//! read as the source's column type:
//!
//! | type | canonical form |
//! |---|---|
//! | NULL | `null` (never equal to an empty string or a missing row) |
//! | decimal | the exact digits at the column's scale (`1.5` in `decimal(10,2)` is `"1.50"`) |
//! | double | the shortest text that reads back as the same double; an integer read from an integer column is that double; `NaN`, `Infinity`, `-Infinity` |
//! | timestamp with time zone | the instant in UTC, microseconds (`"2024-02-29T13:14:15.123456Z"`): a value off by a zone differs |
//! | json | the document with object keys sorted, no spaces, numbers by value (`1.0`, `1` and `1e0` are one number; numbers are compared as doubles) |
//! | list | its items' canonical forms in order |
//! | anything else | [`encode::json`] of the value |
//!
//! # Changes in flight
//!
//! A pipeline that is running applies changes while both sides are read,
//! so a first pass can see a row the target has not received yet.
//! [`compare`] reads every key it found different again, source first,
//! for up to [`Options::settle`], and reports only the keys that never
//! matched.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

use crate::encode;
use crate::model::{DataType, DecimalParts, Row, TableSchema, Value};
use crate::{Error, ErrorKind, Result};

/// A table's rows, read in key order a page at a time.
#[async_trait]
pub trait RowReader: Send {
    /// The next rows after the last one returned, at most `limit`, in the
    /// order of [`compare_keys`] by the table's key; empty once every row
    /// was returned. Rows have the columns of the schema the reader was
    /// made for, in its order.
    async fn page(&mut self, limit: usize) -> Result<Vec<Row>>;

    /// The rows whose key is one of `keys` (each in key column order), in
    /// any order; keys with no row are left out.
    async fn rows(&mut self, keys: &[Vec<Value>]) -> Result<Vec<Row>>;

    /// Whether the rows hold column `column` of the schema (a cache may
    /// keep only some columns); a column not held is not compared. The
    /// default: every column.
    fn holds(&self, column: usize) -> bool {
        let _ = column;
        true
    }

    /// Whether [`RowReader::checksums`] and [`RowReader::span_rows`] work:
    /// the table has one integer key and every column a [`row_text`]
    /// form in this system. The default: no.
    fn sums(&self) -> bool {
        false
    }

    /// The lowest and highest key (one integer key; `None`: no rows).
    async fn key_bounds(&mut self) -> Result<Option<(i64, i64)>> {
        Err(Error::internal("this reader computes no checksums"))
    }

    /// For each run of `step` keys of `span` holding rows (bucket `i`:
    /// keys from `span.lo + i * step`), its number of rows and the sum of
    /// their row hashes, computed inside the system in one pass: each
    /// row's [`row_text`], the first 15 hex digits of its MD5 as an
    /// integer, summed exactly (as decimal text). Buckets without rows are
    /// left out.
    async fn checksums(&mut self, span: Span, step: i128) -> Result<Vec<Bucket>> {
        let _ = (span, step);
        Err(Error::internal("this reader computes no checksums"))
    }

    /// The rows whose key lies in `span`, in key order.
    async fn span_rows(&mut self, span: Span) -> Result<Vec<Row>> {
        let _ = span;
        Err(Error::internal("this reader computes no checksums"))
    }
}

/// One bucket of [`RowReader::checksums`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Which run of keys.
    pub index: i64,
    /// Rows in it.
    pub rows: u64,
    /// The sum of their row hashes.
    pub sum: String,
}

impl Bucket {
    /// A bucket from a result row of its index, row count and sum, each as
    /// text; anything else is an error, never a bucket of no rows.
    pub fn parse(fields: &[Option<String>]) -> Result<Bucket> {
        let field = |i: usize, what: &str| {
            fields
                .get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| Error::internal(format!("a checksum bucket lacks its {what}")))
        };
        let number = |i: usize, what: &str| -> Result<i128> {
            let text = field(i, what)?;
            text.trim().parse().map_err(|_| {
                Error::internal(format!(
                    "a checksum bucket's {what} is not a number: {text}"
                ))
            })
        };
        let out_of_range =
            |what: &str| Error::internal(format!("a checksum bucket's {what} is out of range"));
        Ok(Bucket {
            index: i64::try_from(number(0, "index")?).map_err(|_| out_of_range("index"))?,
            rows: u64::try_from(number(1, "row count")?).map_err(|_| out_of_range("row count"))?,
            sum: number(2, "sum")?.to_string(),
        })
    }
}

/// The lowest and highest key from a result row of both as text: `None`
/// when the table holds no row (both NULL); anything else is an error.
pub fn parse_bounds(fields: &[Option<String>]) -> Result<Option<(i64, i64)>> {
    let int = |i: usize| -> Result<Option<i64>> {
        match fields.get(i).cloned().flatten() {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::internal(format!("a key bound is not an integer: {text}"))),
        }
    };
    match (int(0)?, int(1)?) {
        (Some(lo), Some(hi)) => Ok(Some((lo, hi))),
        (None, None) => Ok(None),
        _ => Err(Error::internal("a table's key bounds are half missing")),
    }
}

/// The key column a table is checksummed by: its one key column, when that
/// is an integer and every column has a checksum text in the system
/// (`has_text`, by column index).
pub fn checksum_key(schema: &TableSchema, has_text: impl Fn(usize) -> bool) -> Option<usize> {
    let [k] = schema.key[..] else {
        return None;
    };
    let integer = matches!(
        schema.columns[k].data_type,
        DataType::Int32 | DataType::Int64
    );
    (integer && (0..schema.columns.len()).all(has_text)).then_some(k)
}

/// A range of one integer key: `lo` up to, not including, `hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The lowest key in it.
    pub lo: i64,
    /// The first key past it.
    pub hi: i128,
}

impl Span {
    /// The SQL condition on key column `k` that holds in the span.
    pub fn condition(&self, k: &str) -> String {
        format!("{k} BETWEEN {} AND {}", self.lo, self.hi - 1)
    }
}

/// What every system hashes for a row, so equal rows hash alike: each
/// column's text (each system's SQL for the column's type: integers,
/// decimals at their scale, booleans and UUIDs as their text; text and
/// JSON as their length in bytes, `:` and the text, so no value can pass
/// for a separator; doubles by their shortest digits, integral ones
/// without a fraction; bytes as lowercase hex; dates as days and
/// timestamps as microseconds from 1970) or `chr(1)` for NULL, joined by
/// `chr(30)`: one text per row, one row per text. A row that differs hashes differently (a checksum
/// only says where to look: rows are compared in their canonical form).
pub fn row_text(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("coalesce({c}, chr(1))"))
        .collect::<Vec<_>>()
        .join(" || chr(30) || ")
}

/// The SQL of the bucket of key column `k` in `span` cut into runs of
/// `step` keys ([`RowReader::checksums`]): `0` when one run holds the span,
/// integer arithmetic in the system's `int` type and integer division
/// `div` where it cannot overflow, else `wide` (with `{k}`, `{lo}` and
/// `{step}` in it).
pub fn bucket(k: &str, span: Span, step: i128, int: &str, div: &str, wide: &str) -> String {
    let lo = span.lo;
    if step >= span.hi - i128::from(lo) {
        return "0".into();
    }
    let safe = |x: i128| x.abs() < 1 << 62;
    if safe(i128::from(lo)) && safe(span.hi) && safe(step) {
        format!("(CAST({k} AS {int}) - {lo}) {div} {step}")
    } else {
        wide.replace("{k}", k)
            .replace("{lo}", &lo.to_string())
            .replace("{step}", &step.to_string())
    }
}

/// Segments a span is cut into when its checksums differ.
const FAN_OUT: i128 = 32;
/// A span holding at most this many rows (both sides together) is compared
/// row by row.
const LEAF_ROWS: u64 = 4_000;

/// How [`compare`] reads.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows read from each side at a time.
    pub page_rows: usize,
    /// Differences kept (and read again) at most; more are only counted.
    pub keep: usize,
    /// How long keys found different are read again before they count: a
    /// running pipeline's changes in flight land meanwhile. Zero reads
    /// them once.
    pub settle: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_rows: 5_000,
            keep: 100_000,
            settle: Duration::from_secs(5),
        }
    }
}

/// How one key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// The source has the key; the target does not.
    Missing,
    /// The target has the key; the source does not.
    Extra,
    /// Both have the key with different values.
    Changed,
}

/// One column of a changed row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnDiff {
    /// The column.
    pub column: String,
    /// The source's value, canonical.
    pub source: String,
    /// The target's value, canonical.
    pub target: String,
}

/// One key that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The key, as `{column: value}`.
    pub key: serde_json::Value,
    /// How it differs.
    pub kind: DiffKind,
    /// The columns that differ (changed rows only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
    #[serde(skip)]
    key_values: Vec<Value>,
}

impl Difference {
    /// The key's values, in key column order.
    pub fn key_values(&self) -> &[Value] {
        &self.key_values
    }
}

/// What comparing one table found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableCheck {
    /// Rows the source had when read.
    pub source_rows: u64,
    /// Rows the target had when read.
    pub target_rows: u64,
    /// Keys missing from the target.
    pub missing: u64,
    /// Keys the target has and the source does not.
    pub extra: u64,
    /// Keys whose values differ.
    pub changed: u64,
    /// The differences, in key order, up to [`Options::keep`].
    pub differences: Vec<Difference>,
    /// Differences found past [`Options::keep`]: counted, not listed, not
    /// read again.
    pub unlisted: u64,
    /// How it was compared: `checksums` (spans whose checksums match are
    /// not read) or `rows` (every row read).
    pub method: &'static str,
    /// Rows read and compared one by one, both sides together (with
    /// checksums, only those of spans whose checksums differ).
    pub rows_read: u64,
}

impl TableCheck {
    /// Whether the target equals the source.
    pub fn in_sync(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.changed == 0
    }
}

/// Compares `table` as `source` and `target` read it (see the module's
/// rustdoc), then reads the keys found different again for up to
/// [`Options::settle`].
pub async fn compare(
    schema: &TableSchema,
    source: &mut dyn RowReader,
    target: &mut dyn RowReader,
    options: &Options,
) -> Result<TableCheck> {
    if schema.key.is_empty() {
        return Err(Error::new(
            ErrorKind::Precondition,
            format!(
                "table `{}` has no key, so its rows cannot be matched",
                schema.id.name
            ),
        ));
    }
    let page = options.page_rows.max(1);
    let mut check = TableCheck::default();
    let held: Vec<bool> = (0..schema.columns.len()).map(|i| target.holds(i)).collect();
    let bisect = source.sums() && target.sums() && held.iter().all(|h| *h);
    let mut by_rows = !bisect;
    if bisect {
        check.method = "checksums";
        if let Err(e) = bisection(schema, &held, source, target, options, &mut check).await {
            // A checksum the systems cannot compute alike (a target column
            // of another type, say) costs speed, not the comparison.
            tracing::warn!(table = %schema.id.name, error = %e.chain(), "checksums failed; comparing row by row");
            check = TableCheck::default();
            by_rows = true;
        }
    }
    if by_rows {
        check.method = "rows";
        merge(schema, &held, source, target, page, options, &mut check).await?;
    }
    settle(schema, &held, source, target, options, &mut check).await?;
    Ok(check)
}

/// Compares by checksums of key spans, both systems computing theirs at
/// once, and row by row only in spans whose checksums differ (cut into
/// [`FAN_OUT`] until they hold at most [`LEAF_ROWS`]). Spans are taken in
/// key order, so differences come in key order.
async fn bisection(
    schema: &TableSchema,
    held: &[bool],
    source: &mut dyn RowReader,
    target: &mut dyn RowReader,
    options: &Options,
    check: &mut TableCheck,
) -> Result<()> {
    let (a, b) = tokio::join!(source.key_bounds(), target.key_bounds());
    let (lo, hi) = match (a?, b?) {
        (None, None) => return Ok(()),
        (Some((l, h)), None) | (None, Some((l, h))) => (l, h),
        (Some((l1, h1)), Some((l2, h2))) => (l1.min(l2), h1.max(h2)),
    };
    let whole = Span {
        lo,
        hi: i128::from(hi) + 1,
    };
    // The table cut into FAN_OUT runs of keys, all checksummed in one pass
    // over it (in parallel where the system can); runs that differ are cut
    // again the same way, or read row by row once small. Spans are taken
    // in key order.
    let width = whole.hi - i128::from(whole.lo);
    let mut stack = vec![(whole, (width + FAN_OUT - 1) / FAN_OUT)];
    while let Some((span, step)) = stack.pop() {
        if step == 0 {
            // Small enough: read row by row.
            let (a, b) = tokio::join!(source.span_rows(span), target.span_rows(span));
            let mut s = Loaded::new(a?);
            let mut t = Loaded::new(b?);
            merge(schema, held, &mut s, &mut t, usize::MAX, options, check).await?;
            continue;
        }
        let (a, b) = tokio::join!(source.checksums(span, step), target.checksums(span, step));
        let (a, b) = (a?, b?);
        let find = |buckets: &[Bucket], i: i64| buckets.iter().find(|b| b.index == i).cloned();
        let mut indexes: Vec<i64> = a.iter().chain(&b).map(|b| b.index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut differing = Vec::new();
        for i in indexes {
            let zero = || Bucket {
                index: i,
                rows: 0,
                sum: "0".into(),
            };
            let s = find(&a, i).unwrap_or_else(zero);
            let t = find(&b, i).unwrap_or_else(zero);
            let lo = i128::from(span.lo) + i128::from(i) * step;
            let run = Span {
                lo: i64::try_from(lo).map_err(|_| Error::internal("key span out of range"))?,
                hi: (lo + step).min(span.hi),
            };
            if s.rows == t.rows && s.sum == t.sum {
                check.source_rows += s.rows;
                check.target_rows += t.rows;
            } else {
                differing.push((run, s.rows + t.rows));
            }
        }
        // Pushed last first, so the lowest is taken next; step 0 marks a
        // span to read row by row.
        for (run, rows) in differing.into_iter().rev() {
            let width = run.hi - i128::from(run.lo);
            if rows <= LEAF_ROWS || width <= FAN_OUT {
                stack.push((run, 0));
            } else {
                stack.push((run, (width + FAN_OUT - 1) / FAN_OUT));
            }
        }
    }
    Ok(())
}

/// Rows already read, in key order, handed out a page at a time (readers
/// of systems without an order of their own sort the table in memory and
/// page through it with this).
#[derive(Debug)]
pub struct Loaded {
    rows: std::vec::IntoIter<Row>,
}

impl Loaded {
    /// `rows`, in key order.
    pub fn new(rows: Vec<Row>) -> Self {
        Loaded {
            rows: rows.into_iter(),
        }
    }
}

#[async_trait]
impl RowReader for Loaded {
    async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
        Ok(self.rows.by_ref().take(limit).collect())
    }

    async fn rows(&mut self, _keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        Err(Error::internal("rows already read are not read again"))
    }
}

/// Merges the two readers' rows in key order into `check`.
async fn merge(
    schema: &TableSchema,
    held: &[bool],
    source: &mut dyn RowReader,
    target: &mut dyn RowReader,
    page: usize,
    options: &Options,
    check: &mut TableCheck,
) -> Result<()> {
    let mut src = Side::new("source");
    let mut tgt = Side::new("target");
    loop {
        src.fill(source, schema, page).await?;
        tgt.fill(target, schema, page).await?;
        let order = match (src.rows.front(), tgt.rows.front()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(t)) => compare_keys(&key(schema, s), &key(schema, t)),
        };
        match order {
            Ordering::Less => {
                let s = src.take();
                check.source_rows += 1;
                record(check, options, diff(schema, held, Some(&s), None));
            }
            Ordering::Greater => {
                let t = tgt.take();
                check.target_rows += 1;
                record(check, options, diff(schema, held, None, Some(&t)));
            }
            Ordering::Equal => {
                let s = src.take();
                let t = tgt.take();
                check.source_rows += 1;
                check.target_rows += 1;
                if let Some(d) = diff(schema, held, Some(&s), Some(&t)) {
                    record(check, options, Some(d));
                }
            }
        }
    }
    check.rows_read += src.read + tgt.read;
    Ok(())
}

/// One side of the merge: its current page.
struct Side {
    name: &'static str,
    rows: VecDeque<Row>,
    last: Option<Vec<Value>>,
    done: bool,
    /// Rows read so far.
    read: u64,
}

impl Side {
    fn new(name: &'static str) -> Self {
        Side {
            name,
            rows: VecDeque::new(),
            last: None,
            done: false,
            read: 0,
        }
    }

    async fn fill(
        &mut self,
        reader: &mut dyn RowReader,
        schema: &TableSchema,
        page: usize,
    ) -> Result<()> {
        if !self.rows.is_empty() || self.done {
            return Ok(());
        }
        let rows = reader.page(page).await?;
        if rows.is_empty() {
            self.done = true;
            return Ok(());
        }
        self.read += rows.len() as u64;
        for row in &rows {
            if row.len() != schema.columns.len() {
                return Err(Error::internal(format!(
                    "the {} reader of `{}` gave a row of {} values for {} columns",
                    self.name,
                    schema.id.name,
                    row.len(),
                    schema.columns.len()
                )));
            }
            let k = key(schema, row);
            if let Some(last) = &self.last
                && compare_keys(last, &k) != Ordering::Less
            {
                return Err(Error::new(
                    ErrorKind::State,
                    format!(
                        "the {} gave the rows of `{}` out of key order (key {} after {}), so they cannot be compared",
                        self.name,
                        schema.id.name,
                        key_text(&k),
                        key_text(last)
                    ),
                ));
            }
            self.last = Some(k);
        }
        self.rows.extend(rows);
        Ok(())
    }

    fn take(&mut self) -> Row {
        self.rows.pop_front().unwrap_or_default()
    }
}

fn key(schema: &TableSchema, row: &Row) -> Vec<Value> {
    schema.key.iter().map(|&i| row[i].clone()).collect()
}

fn key_text(key: &[Value]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|v| encode::json(v).unwrap_or_else(|e| e))
        .collect();
    format!("({})", parts.join(", "))
}

fn key_json(schema: &TableSchema, key: &[Value]) -> serde_json::Value {
    let object: serde_json::Map<String, serde_json::Value> = schema
        .key
        .iter()
        .zip(key)
        .map(|(&i, v)| (schema.columns[i].name.clone(), v.to_json()))
        .collect();
    serde_json::Value::Object(object)
}

/// How the rows of one key differ, if they do.
fn diff(
    schema: &TableSchema,
    held: &[bool],
    source: Option<&Row>,
    target: Option<&Row>,
) -> Option<Difference> {
    let (kind, row) = match (source, target) {
        (Some(s), None) => (DiffKind::Missing, s),
        (None, Some(t)) => (DiffKind::Extra, t),
        (Some(s), Some(t)) => {
            let columns: Vec<ColumnDiff> = schema
                .columns
                .iter()
                .zip(s.iter().zip(t))
                .zip(held)
                .filter(|(_, held)| **held)
                .filter_map(|((c, (a, b)), _)| {
                    // Values alike are equal without their canonical text.
                    if a == b && !matches!(a, Value::Json(_) | Value::List(_)) {
                        return None;
                    }
                    let a = canonical(&c.data_type, a);
                    let b = canonical(&c.data_type, b);
                    (a != b).then(|| ColumnDiff {
                        column: c.name.clone(),
                        source: a,
                        target: b,
                    })
                })
                .collect();
            if columns.is_empty() {
                return None;
            }
            let key_values = key(schema, s);
            return Some(Difference {
                key: key_json(schema, &key_values),
                kind: DiffKind::Changed,
                columns,
                key_values,
            });
        }
        (None, None) => return None,
    };
    let key_values = key(schema, row);
    Some(Difference {
        key: key_json(schema, &key_values),
        kind,
        columns: Vec::new(),
        key_values,
    })
}

fn record(check: &mut TableCheck, options: &Options, found: Option<Difference>) {
    let Some(d) = found else { return };
    match d.kind {
        DiffKind::Missing => check.missing += 1,
        DiffKind::Extra => check.extra += 1,
        DiffKind::Changed => check.changed += 1,
    }
    if check.differences.len() < options.keep {
        check.differences.push(d);
    } else {
        check.unlisted += 1;
    }
}

/// Reads the differing keys again until they match or `settle` is over;
/// what still differs stays.
async fn settle(
    schema: &TableSchema,
    held: &[bool],
    source: &mut dyn RowReader,
    target: &mut dyn RowReader,
    options: &Options,
    check: &mut TableCheck,
) -> Result<()> {
    // The counts hold the unlisted differences too: only the listed ones
    // are read again and counted anew.
    let tally = |check: &TableCheck, kind| {
        check.differences.iter().filter(|d| d.kind == kind).count() as u64
    };
    let listed = (
        tally(check, DiffKind::Missing),
        tally(check, DiffKind::Extra),
        tally(check, DiffKind::Changed),
    );
    check.missing -= listed.0;
    check.extra -= listed.1;
    check.changed -= listed.2;
    let started = Instant::now();
    let mut wait = Duration::from_millis(100);
    let mut first = true;
    while !check.differences.is_empty() {
        let elapsed = started.elapsed();
        if !first && elapsed >= options.settle {
            break;
        }
        if !first {
            tokio::time::sleep(wait.min(options.settle - elapsed)).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
        first = false;
        let mut still = Vec::new();
        for chunk in check.differences.chunks(500) {
            let keys: Vec<Vec<Value>> = chunk.iter().map(|d| d.key_values.clone()).collect();
            // The source first: a change the target is about to receive is
            // then already in the source's row.
            let found = by_key(schema, source.rows(&keys).await?);
            let stored = by_key(schema, target.rows(&keys).await?);
            for k in &keys {
                let id = key_id(schema, k);
                if let Some(d) = diff(schema, held, found.get(&id), stored.get(&id)) {
                    still.push(d);
                }
            }
        }
        let before = check.differences.len();
        let fixed = before - still.len();
        if fixed > 0 || still != check.differences {
            tracing::debug!(table = %schema.id.name, fixed, "differences read again");
        }
        check.differences = still;
        if options.settle.is_zero() {
            break;
        }
    }
    let listed = (
        tally(check, DiffKind::Missing),
        tally(check, DiffKind::Extra),
        tally(check, DiffKind::Changed),
    );
    check.missing += listed.0;
    check.extra += listed.1;
    check.changed += listed.2;
    Ok(())
}

fn by_key(schema: &TableSchema, rows: Vec<Row>) -> HashMap<String, Row> {
    rows.into_iter()
        .map(|r| (key_id(schema, &key(schema, &r)), r))
        .collect()
}

/// A key as both sides spell it alike: each value's canonical form.
pub fn key_id(schema: &TableSchema, key: &[Value]) -> String {
    let parts: Vec<String> = schema
        .key
        .iter()
        .zip(key)
        .map(|(&i, v)| canonical(&schema.columns[i].data_type, v))
        .collect();
    parts.join("\u{1f}")
}

/// The order readers return keys in: column by column, see the module's
/// rustdoc.
pub fn compare_keys(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = compare_values(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Two values in key order; values of different kinds by kind (NULL last).
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    use Value as V;
    match (a, b) {
        (V::Null, V::Null) => Ordering::Equal,
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Float(x), V::Float(y)) => x.total_cmp(y),
        (V::Int(x), V::Float(y)) => (*x as f64).total_cmp(y),
        (V::Float(x), V::Int(y)) => x.total_cmp(&(*y as f64)),
        (V::Decimal(x), V::Decimal(y)) => compare_decimals(x, y),
        (V::Text(x) | V::Json(x), V::Text(y) | V::Json(y)) => x.as_bytes().cmp(y.as_bytes()),
        (V::Bytes(x), V::Bytes(y)) => x.cmp(y),
        (V::Date(x), V::Date(y)) => x.cmp(y),
        (V::Time(x), V::Time(y))
        | (V::Timestamp(x), V::Timestamp(y))
        | (V::TimestampTz(x), V::TimestampTz(y)) => x.cmp(y),
        (V::Uuid(x), V::Uuid(y)) => x.cmp(y),
        (
            V::Interval {
                months: m1,
                days: d1,
                micros: u1,
            },
            V::Interval {
                months: m2,
                days: d2,
                micros: u2,
            },
        ) => (m1, d1, u1).cmp(&(m2, d2, u2)),
        (V::List(x), V::List(y)) => compare_keys(x, y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Int(_) | Value::Float(_) => 1,
        Value::Decimal(_) => 2,
        Value::Text(_) | Value::Json(_) => 3,
        Value::Bytes(_) => 4,
        Value::Date(_) => 5,
        Value::Time(_) => 6,
        Value::Timestamp(_) => 7,
        Value::TimestampTz(_) => 8,
        Value::Uuid(_) => 9,
        Value::Interval { .. } => 10,
        Value::List(_) => 11,
        Value::Unchanged => 12,
        Value::Null => 13,
    }
}

/// Decimal texts by value; the special values after every number
/// (`-Infinity` first, as Postgres orders them... and `NaN` last).
fn compare_decimals(a: &str, b: &str) -> Ordering {
    let special = |s: &str| match s {
        "-Infinity" => Some(0),
        "Infinity" => Some(2),
        "NaN" => Some(3),
        _ => None,
    };
    match (special(a), special(b)) {
        (Some(x), Some(y)) => return x.cmp(&y),
        (Some(x), None) => return x.cmp(&1),
        (None, Some(y)) => return 1.cmp(&y),
        (None, None) => {}
    }
    match (DecimalParts::parse(a), DecimalParts::parse(b)) {
        (Some(x), Some(y)) => {
            let negative = |p: &DecimalParts<'_>| p.negative && !p.is_zero();
            match (negative(&x), negative(&y)) {
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (n, _) => {
                    let magnitude = x
                        .int
                        .len()
                        .cmp(&y.int.len())
                        .then_with(|| x.int.cmp(y.int))
                        .then_with(|| x.frac.cmp(y.frac));
                    if n { magnitude.reverse() } else { magnitude }
                }
            }
        }
        _ => a.cmp(b),
    }
}

/// A value's canonical form as a value of a column of type `t` (see the
/// module's rustdoc).
pub fn canonical(t: &DataType, value: &Value) -> String {
    match (t, value) {
        (_, Value::Null) => "null".into(),
        (DataType::Json, Value::Json(text) | Value::Text(text)) => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(doc) => {
                    let mut out = String::new();
                    canonical_json(&doc, &mut out);
                    out
                }
                Err(_) => format!("unparsable JSON {}", encode::quoted(text)),
            }
        }
        (DataType::List { item }, Value::List(items)) => {
            let parts: Vec<String> = items.iter().map(|v| canonical(item, v)).collect();
            format!("[{}]", parts.join(","))
        }
        (DataType::Float64, Value::Int(i)) => canonical(t, &Value::Float(*i as f64)),
        // The shortest digits that read back as the same double, without
        // an exponent or a trailing ".0".
        (DataType::Float64, Value::Float(f)) if f.is_finite() => format!("{f}"),
        _ => encode::json(&encode::conformed(t, value)).unwrap_or_else(|e| format!("<{e}>")),
    }
}

fn canonical_json(doc: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match doc {
        J::Object(map) => {
            let mut entries: Vec<(&String, &J)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&encode::quoted(k));
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
        J::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        // Numbers by value, as doubles (`1`, `1.0` and `1e0` are one).
        J::Number(n) => match n.as_f64() {
            Some(f) => out.push_str(&format!("{f}")),
            None => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{Column, TableId};

    fn schema() -> TableSchema {
        let column = |name: &str, data_type| Column {
            name: name.into(),
            data_type,
            nullable: true,
        };
        TableSchema {
            id: TableId {
                origin: "src".into(),
                name: "t".into(),
            },
            columns: vec![
                column("id", DataType::Int64),
                column("name", DataType::Text),
                column("doc", DataType::Json),
                column(
                    "price",
                    DataType::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                ),
            ],
            key: vec![0],
            version: 1,
        }
    }

    /// Rows in memory, returned a page at a time (or out of order).
    struct Rows {
        rows: Vec<Row>,
        at: usize,
    }

    #[async_trait]
    impl RowReader for Rows {
        async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
            let end = (self.at + limit).min(self.rows.len());
            let page = self.rows[self.at..end].to_vec();
            self.at = end;
            Ok(page)
        }

        async fn rows(&mut self, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
            Ok(self
                .rows
                .iter()
                .filter(|r| keys.iter().any(|k| k[0] == r[0]))
                .cloned()
                .collect())
        }
    }

    fn row(id: i64, name: Option<&str>, doc: &str, price: &str) -> Row {
        vec![
            Value::Int(id),
            name.map_or(Value::Null, |n| Value::Text(n.into())),
            Value::Json(doc.into()),
            Value::Decimal(price.into()),
        ]
    }

    fn options(page_rows: usize) -> Options {
        Options {
            page_rows,
            keep: 100,
            settle: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn every_kind_of_difference_is_found_at_its_key_and_equal_forms_are_not() {
        let source = vec![
            row(1, Some("a"), r#"{"x":1,"y":[1,2]}"#, "1.5"),
            row(2, Some(""), "{}", "2.00"),
            row(3, Some("c"), "{}", "3"),
            row(5, Some("e"), "{}", "5"),
        ];
        let target = vec![
            // Key order, spacing and number spelling in JSON, and decimal
            // scale, are one value.
            row(1, Some("a"), r#"{ "y": [1, 2.0], "x": 1e0 }"#, "1.50"),
            // NULL against an empty string.
            row(2, None, "{}", "2"),
            row(4, Some("d"), "{}", "4"),
            row(5, Some("e"), "{}", "5.01"),
        ];
        for page in [1, 2, 100] {
            let mut s = Rows {
                rows: source.clone(),
                at: 0,
            };
            let mut t = Rows {
                rows: target.clone(),
                at: 0,
            };
            let check = compare(&schema(), &mut s, &mut t, &options(page))
                .await
                .unwrap();
            assert_eq!((check.source_rows, check.target_rows), (4, 4));
            assert_eq!((check.missing, check.extra, check.changed), (1, 1, 2));
            let found: Vec<(serde_json::Value, DiffKind, Vec<ColumnDiff>)> = check
                .differences
                .iter()
                .map(|d| (d.key.clone(), d.kind, d.columns.clone()))
                .collect();
            let cd = |column: &str, source: &str, target: &str| ColumnDiff {
                column: column.into(),
                source: source.into(),
                target: target.into(),
            };
            assert_eq!(
                found,
                vec![
                    (
                        serde_json::json!({"id": 2}),
                        DiffKind::Changed,
                        vec![cd("name", "\"\"", "null")]
                    ),
                    (serde_json::json!({"id": 3}), DiffKind::Missing, vec![]),
                    (serde_json::json!({"id": 4}), DiffKind::Extra, vec![]),
                    (
                        serde_json::json!({"id": 5}),
                        DiffKind::Changed,
                        vec![cd("price", "\"5.00\"", "\"5.01\"")]
                    ),
                ],
                "page size {page}"
            );
        }
    }

    #[tokio::test]
    async fn rows_out_of_key_order_stop_the_comparison() {
        let mut s = Rows {
            rows: vec![row(2, None, "{}", "1"), row(1, None, "{}", "1")],
            at: 0,
        };
        let mut t = Rows {
            rows: Vec::new(),
            at: 0,
        };
        let e = compare(&schema(), &mut s, &mut t, &options(10))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::State);
        assert!(e.to_string().contains("out of key order"), "{e}");
    }

    #[tokio::test]
    async fn a_difference_that_is_gone_when_read_again_is_not_reported() {
        // The target's reader answers the second reading with the row the
        // pipeline has applied meanwhile.
        struct Late {
            first: Rows,
            then: Vec<Row>,
        }
        #[async_trait]
        impl RowReader for Late {
            async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
                self.first.page(limit).await
            }
            async fn rows(&mut self, _keys: &[Vec<Value>]) -> Result<Vec<Row>> {
                Ok(self.then.clone())
            }
        }
        let mut s = Rows {
            rows: vec![row(1, Some("new"), "{}", "1")],
            at: 0,
        };
        let mut t = Late {
            first: Rows {
                rows: vec![row(1, Some("old"), "{}", "1")],
                at: 0,
            },
            then: vec![row(1, Some("new"), "{}", "1")],
        };
        let options = Options {
            settle: Duration::from_millis(300),
            ..options(10)
        };
        let check = compare(&schema(), &mut s, &mut t, &options).await.unwrap();
        assert!(check.in_sync(), "{check:?}");
    }

    #[test]
    fn keys_order_as_the_databases_order_them() {
        let mut decimals = vec!["10", "-2.5", "2.05", "-10", "2.5", "0", "Infinity", "NaN"];
        decimals.sort_by(|a, b| compare_decimals(a, b));
        assert_eq!(
            decimals,
            vec!["-10", "-2.5", "0", "2.05", "2.5", "10", "Infinity", "NaN"]
        );
        // Byte order, as COLLATE "C": upper case before lower case.
        assert_eq!(
            compare_values(&Value::Text("Z".into()), &Value::Text("a".into())),
            Ordering::Less
        );
        assert_eq!(
            compare_keys(
                &[Value::Int(1), Value::Text("b".into())],
                &[Value::Int(1), Value::Text("a".into())]
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn canonical_forms_per_type() {
        let d = |v: Value, t: DataType| canonical(&t, &v);
        assert_eq!(d(Value::Int(3), DataType::Float64), "3");
        assert_eq!(d(Value::Float(3.0), DataType::Float64), "3");
        assert_eq!(d(Value::Float(0.1), DataType::Float64), "0.1");
        assert_ne!(
            d(Value::Float(0.1 + 0.2), DataType::Float64),
            d(Value::Float(0.3), DataType::Float64)
        );
        assert_eq!(d(Value::Float(f64::NAN), DataType::Float64), "\"NaN\"");
        // An instant off by a zone is another instant.
        assert_ne!(
            d(Value::TimestampTz(0), DataType::TimestampTz),
            d(Value::TimestampTz(3_600_000_000), DataType::TimestampTz)
        );
        assert_eq!(
            d(Value::TimestampTz(0), DataType::TimestampTz),
            "\"1970-01-01T00:00:00.000000Z\""
        );
        assert_eq!(
            d(
                Value::Json(r#"{"b": {"d": 1.0, "c": null}, "a": "x"}"#.into()),
                DataType::Json
            ),
            r#"{"a":"x","b":{"c":null,"d":1}}"#
        );
        assert_eq!(d(Value::Null, DataType::Text), "null");
        assert_eq!(d(Value::Text(String::new()), DataType::Text), "\"\"");
        assert_eq!(
            d(
                Value::List(vec![Value::Int(1), Value::Null]),
                DataType::List {
                    item: Box::new(DataType::Float64)
                }
            ),
            "[1,null]"
        );
        assert_eq!(
            d(
                Value::Int(7),
                DataType::Decimal {
                    precision: 5,
                    scale: 1
                }
            ),
            "\"7.0\""
        );
    }
}
