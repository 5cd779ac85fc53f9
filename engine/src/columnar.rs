//! Inserts stored column by column: the form a bulk copy takes when every
//! consumer of a source can read it ([`crate::connector::Sink::takes_blocks`]).
//!
//! A row of [`Value`]s costs an allocation per row and per text value; a
//! snapshot of millions of rows spends more time building and freeing them
//! than moving data. An [`InsertBlock`] holds the same inserts as Arrow
//! arrays, one per column, whose types are fixed by [`arrow_type`]:
//!
//! | engine         | Arrow                      |
//! |----------------|----------------------------|
//! | boolean        | Boolean                    |
//! | int            | Int32                      |
//! | bigint         | Int64                      |
//! | double         | Float64                    |
//! | decimal(p,s)   | Decimal128(p,s)            |
//! | text, json     | Utf8 (the text)            |
//! | uuid           | Utf8 (lowercase, hyphens)  |
//! | bytes          | Binary                     |
//! | date           | Date32                     |
//! | time           | Time64(µs)                 |
//! | timestamp      | Timestamp(µs)              |
//! | timestamptz    | Timestamp(µs, UTC)         |
//! | interval, T[]  | Utf8 (not in blocks)       |
//!
//! Intervals and lists have no exact inverse in that form, so tables with
//! them travel as rows ([`supports`]). [`InsertBlock::changes`] turns a
//! block back into the changes it stands for, value for value, for any
//! consumer that needs rows.

use std::sync::Arc;

pub use arrow_array;
pub use arrow_schema;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field, Schema, TimeUnit};

use crate::model::{Change, DataType, DecimalParts, TableSchema, Value};

/// The Arrow type that carries values of `t` (see the module table).
pub fn arrow_type(t: &DataType) -> ArrowType {
    match t {
        DataType::Boolean => ArrowType::Boolean,
        DataType::Int32 => ArrowType::Int32,
        DataType::Int64 => ArrowType::Int64,
        DataType::Float64 => ArrowType::Float64,
        DataType::Decimal { precision, scale } => ArrowType::Decimal128(*precision, *scale as i8),
        DataType::Text
        | DataType::Uuid
        | DataType::Json
        | DataType::Interval
        | DataType::List { .. } => ArrowType::Utf8,
        DataType::Bytes => ArrowType::Binary,
        DataType::Date => ArrowType::Date32,
        DataType::Time => ArrowType::Time64(TimeUnit::Microsecond),
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        DataType::TimestampTz => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// Whether rows of `table` can travel as an [`InsertBlock`]: every column
/// has a type with an exact columnar form.
pub fn supports(table: &TableSchema) -> bool {
    table
        .columns
        .iter()
        .all(|c| !matches!(c.data_type, DataType::Interval | DataType::List { .. }))
}

/// Inserts into one table, column by column, in the types [`arrow_type`]
/// gives the table's columns. JSON columns hold JSON documents: checked
/// with [`json_is_valid`], or vouched for by their source ([`Cell::Json`]).
#[derive(Debug, Clone)]
pub struct InsertBlock {
    /// The table, as of these rows.
    pub table: Arc<TableSchema>,
    /// One array per column of `table`, in order.
    pub columns: RecordBatch,
}

impl InsertBlock {
    /// A block, if `columns` has exactly the columns and types of `table`.
    pub fn new(table: Arc<TableSchema>, columns: RecordBatch) -> Result<Self, String> {
        let fields = columns.schema_ref().fields().clone();
        if fields.len() != table.columns.len() || !supports(&table) {
            return Err(format!(
                "{} arrays for the {} columns of {}",
                fields.len(),
                table.columns.len(),
                table.id
            ));
        }
        for (field, column) in fields.iter().zip(&table.columns) {
            let want = arrow_type(&column.data_type);
            if field.name() != &column.name || field.data_type() != &want {
                return Err(format!(
                    "column `{}` of {} arrives as {} `{}`, not {want}",
                    column.name,
                    table.id,
                    field.data_type(),
                    field.name()
                ));
            }
        }
        for (array, column) in columns.columns().iter().zip(&table.columns) {
            if column.data_type == DataType::Json
                && !array.as_string::<i32>().iter().flatten().all(json_is_valid)
            {
                return Err(format!(
                    "column `{}` of {} holds text that is not JSON",
                    column.name, table.id
                ));
            }
        }
        Ok(InsertBlock { table, columns })
    }

    /// Rows in the block.
    pub fn len(&self) -> usize {
        self.columns.num_rows()
    }

    /// Whether the block has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inserts the block stands for, in order.
    pub fn changes(&self) -> Vec<Change> {
        let width = self.table.columns.len();
        let mut rows: Vec<Vec<Value>> =
            (0..self.len()).map(|_| Vec::with_capacity(width)).collect();
        for (array, column) in self.columns.columns().iter().zip(&self.table.columns) {
            for (i, row) in rows.iter_mut().enumerate() {
                row.push(value_at(array, i, &column.data_type));
            }
        }
        rows.into_iter()
            .map(|row| Change::insert(self.table.clone(), row))
            .collect()
    }
}

/// One value of `array` (built by [`BlockBuilder`]) as the engine's value.
fn value_at(array: &ArrayRef, i: usize, t: &DataType) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match t {
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int32 => Value::Int(i64::from(array.as_primitive::<Int32Type>().value(i))),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal { scale, .. } => Value::Decimal(decimal_text(
            array.as_primitive::<Decimal128Type>().value(i),
            *scale,
        )),
        DataType::Text | DataType::Interval | DataType::List { .. } => {
            Value::Text(array.as_string::<i32>().value(i).to_owned())
        }
        DataType::Json => Value::Json(array.as_string::<i32>().value(i).to_owned()),
        DataType::Uuid => {
            let text = array.as_string::<i32>().value(i);
            parse_uuid(text).map_or_else(|| Value::Text(text.to_owned()), Value::Uuid)
        }
        DataType::Bytes => Value::Bytes(array.as_binary::<i32>().value(i).to_vec()),
        DataType::Date => Value::Date(array.as_primitive::<Date32Type>().value(i)),
        DataType::Time => Value::Time(array.as_primitive::<Time64MicrosecondType>().value(i)),
        DataType::Timestamp => {
            Value::Timestamp(array.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        DataType::TimestampTz => {
            Value::TimestampTz(array.as_primitive::<TimestampMicrosecondType>().value(i))
        }
    }
}

/// A value ready for a [`BlockBuilder`] column, borrowed where it is text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// A decimal, already scaled to its column's scale (`12.50` at scale 2
    /// is `1250`).
    Decimal(i128),
    /// Text (text and JSON columns). Into a JSON column it is checked to
    /// be one JSON document.
    Str(&'a str),
    /// JSON text its source has already checked (Postgres validates `json`
    /// and `jsonb` values when they are written), stored without a second
    /// parse.
    Json(&'a str),
    /// Bytes.
    Bytes(&'a [u8]),
    /// Days since 1970-01-01.
    Days(i32),
    /// Microseconds (since midnight for times, since the epoch otherwise).
    Micros(i64),
    /// A UUID.
    Uuid([u8; 16]),
}

impl<'a> Cell<'a> {
    /// The cell for `value` in a column of type `t`, if it fits there.
    pub fn of(value: &'a Value, t: &DataType) -> Option<Cell<'a>> {
        let cell = match value {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Bool(*b),
            Value::Int(i) => match t {
                DataType::Decimal { scale, .. } => {
                    Cell::Decimal(i128::from(*i).checked_mul(10i128.pow(u32::from(*scale)))?)
                }
                _ => Cell::Int(*i),
            },
            Value::Float(f) => Cell::Float(*f),
            Value::Decimal(text) => match t {
                DataType::Decimal { scale, .. } => Cell::Decimal(scaled_decimal(text, *scale)?),
                _ => return None,
            },
            Value::Text(s) | Value::Json(s) => Cell::Str(s),
            Value::Bytes(b) => Cell::Bytes(b),
            Value::Date(d) => Cell::Days(*d),
            Value::Time(m) | Value::Timestamp(m) => Cell::Micros(*m),
            Value::TimestampTz(m) => Cell::Micros(*m),
            Value::Uuid(u) => Cell::Uuid(*u),
            Value::Interval { .. } | Value::List(_) | Value::Unchanged => return None,
        };
        // A time value only where its own kind of column is.
        let kind_fits = match (value, t) {
            (Value::Time(_), DataType::Time)
            | (Value::Timestamp(_), DataType::Timestamp)
            | (Value::TimestampTz(_), DataType::TimestampTz) => true,
            (Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_), _) => false,
            (Value::Json(_), DataType::Text | DataType::Json) => true,
            (Value::Json(_), _) => false,
            _ => true,
        };
        (kind_fits && fits(&cell, t)).then_some(cell)
    }
}

/// Whether `cell` can be stored in a column of type `t` exactly.
pub fn fits(cell: &Cell<'_>, t: &DataType) -> bool {
    match (cell, t) {
        (Cell::Null, _) => true,
        (Cell::Bool(_), DataType::Boolean) => true,
        (Cell::Int(i), DataType::Int32) => i32::try_from(*i).is_ok(),
        (Cell::Int(_), DataType::Int64 | DataType::Float64) => true,
        (Cell::Float(_), DataType::Float64) => true,
        (Cell::Decimal(d), DataType::Decimal { precision, .. }) => {
            d.unsigned_abs()
                < 10u128
                    .checked_pow(u32::from(*precision))
                    .unwrap_or(u128::MAX)
        }
        (Cell::Str(_) | Cell::Json(_), DataType::Text | DataType::Json) => true,
        (Cell::Bytes(_), DataType::Bytes) => true,
        (Cell::Days(_), DataType::Date) => true,
        (Cell::Micros(_), DataType::Time | DataType::Timestamp | DataType::TimestampTz) => true,
        (Cell::Uuid(_), DataType::Uuid) => true,
        _ => false,
    }
}

/// One column being built.
#[derive(Debug)]
enum Builder {
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float(Float64Builder),
    Decimal(Decimal128Builder),
    Str(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, bool),
}

impl Builder {
    fn new(t: &DataType, rows: usize, bytes: usize) -> Builder {
        match t {
            DataType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Builder::Float(Float64Builder::with_capacity(rows)),
            DataType::Decimal { precision, scale } => Builder::Decimal(
                Decimal128Builder::with_capacity(rows)
                    .with_data_type(ArrowType::Decimal128(*precision, *scale as i8)),
            ),
            DataType::Bytes => Builder::Bytes(BinaryBuilder::with_capacity(rows, bytes)),
            DataType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            DataType::Time => Builder::Time(Time64MicrosecondBuilder::with_capacity(rows)),
            DataType::Timestamp | DataType::TimestampTz => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows),
                *t == DataType::TimestampTz,
            ),
            DataType::Text
            | DataType::Json
            | DataType::Uuid
            | DataType::Interval
            | DataType::List { .. } => Builder::Str(StringBuilder::with_capacity(rows, bytes)),
        }
    }

    /// Appends `cell`, which [`fits`] the column.
    fn push(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (Builder::Bool(b), Cell::Null) => b.append_null(),
            (Builder::Int32(b), Cell::Null) => b.append_null(),
            (Builder::Int64(b), Cell::Null) => b.append_null(),
            (Builder::Float(b), Cell::Null) => b.append_null(),
            (Builder::Decimal(b), Cell::Null) => b.append_null(),
            (Builder::Str(b), Cell::Null) => b.append_null(),
            (Builder::Bytes(b), Cell::Null) => b.append_null(),
            (Builder::Date(b), Cell::Null) => b.append_null(),
            (Builder::Time(b), Cell::Null) => b.append_null(),
            (Builder::Timestamp(b, _), Cell::Null) => b.append_null(),
            (Builder::Bool(b), Cell::Bool(x)) => b.append_value(*x),
            (Builder::Int32(b), Cell::Int(x)) => b.append_value(*x as i32),
            (Builder::Int64(b), Cell::Int(x)) => b.append_value(*x),
            (Builder::Float(b), Cell::Float(x)) => b.append_value(*x),
            (Builder::Float(b), Cell::Int(x)) => b.append_value(*x as f64),
            (Builder::Decimal(b), Cell::Decimal(x)) => b.append_value(*x),
            (Builder::Str(b), Cell::Str(x) | Cell::Json(x)) => b.append_value(x),
            (Builder::Str(b), Cell::Uuid(u)) => b.append_value(format_uuid(u)),
            (Builder::Bytes(b), Cell::Bytes(x)) => b.append_value(x),
            (Builder::Date(b), Cell::Days(x)) => b.append_value(*x),
            (Builder::Time(b), Cell::Micros(x)) => b.append_value(*x),
            (Builder::Timestamp(b, _), Cell::Micros(x)) => b.append_value(*x),
            // `fits` was checked by the caller; a mismatch stores NULL
            // rather than a wrong value.
            (b, _) => b.push(&Cell::Null),
        }
    }

    /// Bytes of variable-length values held (0 for fixed-width columns).
    fn value_bytes(&self) -> usize {
        match self {
            Builder::Str(b) => b.values_slice().len(),
            Builder::Bytes(b) => b.values_slice().len(),
            _ => 0,
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Decimal(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Bytes(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, true) => Arc::new(b.finish().with_timezone("UTC")),
            Builder::Timestamp(b, false) => Arc::new(b.finish()),
        }
    }
}

/// Builds [`InsertBlock`]s of one table a row at a time.
#[derive(Debug)]
pub struct BlockBuilder {
    table: Arc<TableSchema>,
    schema: Arc<Schema>,
    columns: Vec<Builder>,
    rows: usize,
    capacity: usize,
}

impl BlockBuilder {
    /// A builder for blocks of up to about `capacity` rows of `table`, or
    /// `None` if the table's rows cannot travel as blocks ([`supports`]).
    pub fn new(table: Arc<TableSchema>, capacity: usize) -> Option<BlockBuilder> {
        if !supports(&table) {
            return None;
        }
        let schema = Arc::new(Schema::new(
            table
                .columns
                .iter()
                .map(|c| Field::new(&c.name, arrow_type(&c.data_type), true))
                .collect::<Vec<_>>(),
        ));
        let columns = table
            .columns
            .iter()
            .map(|c| Builder::new(&c.data_type, capacity, capacity * 16))
            .collect();
        Some(BlockBuilder {
            table,
            schema,
            columns,
            rows: 0,
            capacity,
        })
    }

    /// The table's column types, in order.
    pub fn types(&self) -> impl Iterator<Item = &DataType> {
        self.table.columns.iter().map(|c| &c.data_type)
    }

    /// Appends a row if every cell [`fits`] its column; otherwise appends
    /// nothing and returns `false` (the caller sends that row as a change,
    /// which the engine checks and dead-letters with its reason).
    pub fn push_row(&mut self, cells: &[Cell<'_>]) -> bool {
        if cells.len() != self.columns.len()
            || !cells.iter().zip(&self.table.columns).all(|(cell, c)| {
                fits(cell, &c.data_type)
                    && match (cell, &c.data_type) {
                        (Cell::Str(text), DataType::Json) => json_is_valid(text),
                        _ => true,
                    }
            })
        {
            return false;
        }
        for (builder, cell) in self.columns.iter_mut().zip(cells) {
            builder.push(cell);
        }
        self.rows += 1;
        true
    }

    /// Rows appended since the last [`BlockBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`BlockBuilder::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The block of the rows appended so far; the builder starts over.
    pub fn finish(&mut self) -> Result<InsertBlock, String> {
        // The next block's text takes about as much room as this one's, so
        // its buffers are sized once instead of grown by doubling.
        let rows = self.rows.max(1);
        let bytes: Vec<usize> = self
            .columns
            .iter()
            .map(|b| (b.value_bytes() / rows + 1) * self.capacity)
            .collect();
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Builder::finish).collect();
        for ((builder, column), bytes) in
            self.columns.iter_mut().zip(&self.table.columns).zip(bytes)
        {
            *builder = Builder::new(&column.data_type, self.capacity, bytes);
        }
        self.rows = 0;
        let columns = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| format!("column block of {}: {e}", self.table.id))?;
        Ok(InsertBlock {
            table: self.table.clone(),
            columns,
        })
    }
}

/// Whether `text` is one JSON document (RFC 8259, strings decoded in full).
/// Stricter than DuckDB's JSON cast (which takes `NaN` and trailing
/// commas), so a text it accepts DuckDB accepts, unchanged.
pub fn json_is_valid(text: &str) -> bool {
    serde_json::from_str::<JsonCheck>(text).is_ok()
}

/// Visits a JSON document and keeps nothing.
struct JsonCheck;

impl<'de> serde::Deserialize<'de> for JsonCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonCheck)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonCheck {
    type Value = JsonCheck;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_str<E>(self, _: &str) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_unit<E>(self) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<JsonCheck, A::Error> {
        while a.next_element::<JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<JsonCheck, A::Error> {
        while a.next_entry::<JsonCheck, JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
}

/// `"-12.5"` at scale 2 → `-1250`. `None` if it is not a decimal or has more
/// fractional digits than `scale` (nothing is rounded silently).
pub fn scaled_decimal(text: &str, scale: u8) -> Option<i128> {
    let parts = DecimalParts::parse(text)?;
    if parts.frac.len() > usize::from(scale) {
        return None;
    }
    let mut value: i128 = 0;
    for b in parts.int.bytes() {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    for i in 0..usize::from(scale) {
        let digit = parts.frac.as_bytes().get(i).map_or(0, |b| b - b'0');
        value = value.checked_mul(10)?.checked_add(i128::from(digit))?;
    }
    Some(if parts.negative { -value } else { value })
}

/// `-1250` at scale 2 → `"-12.50"` (the inverse of [`scaled_decimal`]).
pub fn decimal_text(value: i128, scale: u8) -> String {
    let digits = value.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Canonical lowercase hyphenated UUID text.
pub fn format_uuid(u: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The bytes of a UUID in a form every target reads: 32 hex digits (either
/// case), bare or as 8-4-4-4-12 with hyphens, optionally in braces; `None`
/// for anything else.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let bare = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let hex: Vec<u8> = match bare.len() {
        32 => bare.bytes().collect(),
        36 => {
            let groups: Vec<&str> = bare.split('-').collect();
            if groups.len() != 5
                || groups
                    .iter()
                    .zip([8, 4, 4, 4, 12])
                    .any(|(g, n)| g.len() != n)
            {
                return None;
            }
            groups.concat().into_bytes()
        }
        _ => return None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let nibble = |c: u8| {
            char::from(c)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, Op, TableId};

    fn table(types: &[(&str, &str)]) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            id: TableId {
                origin: "src".into(),
                name: "t".into(),
            },
            columns: types
                .iter()
                .map(|(n, t)| Column {
                    name: (*n).into(),
                    data_type: DataType::parse(t).expect("type"),
                    nullable: true,
                })
                .collect(),
            key: vec![0],
            version: 1,
        })
    }

    #[test]
    fn decimals_scale_exactly_or_refuse() {
        assert_eq!(scaled_decimal("12.34", 2), Some(1234));
        assert_eq!(scaled_decimal("-0.5", 2), Some(-50));
        assert_eq!(scaled_decimal("7", 2), Some(700));
        assert_eq!(scaled_decimal("1.230", 2), Some(123));
        assert_eq!(scaled_decimal("1.234", 2), None);
        assert_eq!(scaled_decimal("abc", 2), None);
        assert_eq!(scaled_decimal(".", 2), None);
        assert_eq!(
            scaled_decimal("12345678901234567890123456.78", 2),
            Some(1234567890123456789012345678)
        );
        for (v, s, text) in [
            (-1250, 2, "-12.50"),
            (5, 2, "0.05"),
            (-5, 3, "-0.005"),
            (0, 2, "0.00"),
            (42, 0, "42"),
            (
                1234567890123456789012345678,
                2,
                "12345678901234567890123456.78",
            ),
        ] {
            assert_eq!(decimal_text(v, s), text);
            assert_eq!(scaled_decimal(text, s), Some(v));
        }
    }

    #[test]
    fn uuid_text_round_trips() {
        let u = [
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00,
        ];
        assert_eq!(format_uuid(&u), "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(parse_uuid("123E4567-E89B-12D3-A456-426614174000"), Some(u));
        assert_eq!(parse_uuid("123e4567"), None);
        assert_eq!(parse_uuid("zz3e4567-e89b-12d3-a456-426614174000"), None);
    }

    #[test]
    fn a_block_gives_back_the_rows_it_was_built_from() {
        let t = table(&[
            ("id", "bigint"),
            ("n", "int"),
            ("ok", "boolean"),
            ("x", "double"),
            ("price", "decimal(12,2)"),
            ("name", "text"),
            ("doc", "json"),
            ("raw", "bytes"),
            ("day", "date"),
            ("at", "time"),
            ("ts", "timestamp"),
            ("tz", "timestamptz"),
            ("u", "uuid"),
        ]);
        let rows = vec![
            vec![
                Value::Int(1),
                Value::Int(-7),
                Value::Bool(true),
                Value::Float(2.5),
                Value::Decimal("-12.50".into()),
                Value::Text("zürich".into()),
                Value::Json(r#"{"a":1}"#.into()),
                Value::Bytes(vec![0, 255]),
                Value::Date(19_000),
                Value::Time(3_600_000_001),
                Value::Timestamp(1_700_000_000_123_456),
                Value::TimestampTz(-1),
                Value::Uuid([7; 16]),
            ],
            vec![Value::Int(2)]
                .into_iter()
                .chain(std::iter::repeat_n(Value::Null, 12))
                .collect(),
        ];
        let mut builder = BlockBuilder::new(t.clone(), 4).expect("supported");
        for row in &rows {
            let cells: Vec<Cell<'_>> = row
                .iter()
                .zip(&t.columns)
                .map(|(v, c)| Cell::of(v, &c.data_type).expect("fits"))
                .collect();
            assert!(builder.push_row(&cells));
        }
        let block = builder.finish().expect("block");
        assert_eq!(block.len(), 2);
        assert!(builder.is_empty());
        let again = InsertBlock::new(t.clone(), block.columns.clone()).expect("same types");
        let back: Vec<Vec<Value>> = again
            .changes()
            .into_iter()
            .map(|c| {
                assert_eq!(c.op, Op::Insert);
                c.after.expect("row")
            })
            .collect();
        assert_eq!(back, rows);
    }

    #[test]
    fn rows_that_do_not_fit_are_refused_whole() {
        let t = table(&[("id", "bigint"), ("n", "int"), ("p", "decimal(4,2)")]);
        let mut builder = BlockBuilder::new(t, 2).expect("supported");
        assert!(!builder.push_row(&[Cell::Int(1), Cell::Int(1 << 40), Cell::Null]));
        assert!(!builder.push_row(&[Cell::Int(1), Cell::Int(1), Cell::Decimal(10_000)]));
        assert!(!builder.push_row(&[Cell::Int(1), Cell::Str("1")]));
        let docs = table(&[("id", "bigint"), ("doc", "json")]);
        let mut json = BlockBuilder::new(docs, 2).expect("supported");
        assert!(!json.push_row(&[Cell::Int(1), Cell::Str("{not json")]));
        assert!(json.push_row(&[Cell::Int(2), Cell::Str(r#"{"ok": [1]}"#)]));
        // A source that checked its JSON is taken at its word.
        assert!(json.push_row(&[Cell::Int(3), Cell::Json(r#"{"n": 1e400}"#)]));
        let docs = json.finish().expect("block");
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs.columns.column(1).as_string::<i32>().value(1),
            r#"{"n": 1e400}"#
        );
        assert!(builder.push_row(&[Cell::Int(1), Cell::Int(1), Cell::Decimal(9_999)]));
        assert_eq!(builder.finish().expect("block").len(), 1);
        assert_eq!(Cell::of(&Value::Decimal("1.234".into()), &t_dec()), None);
        assert_eq!(Cell::of(&Value::Timestamp(1), &DataType::TimestampTz), None);
    }

    fn t_dec() -> DataType {
        DataType::Decimal {
            precision: 4,
            scale: 2,
        }
    }

    #[test]
    fn intervals_and_lists_travel_as_rows() {
        assert!(BlockBuilder::new(table(&[("id", "bigint"), ("i", "interval")]), 1).is_none());
        assert!(BlockBuilder::new(table(&[("id", "bigint"), ("l", "bigint[]")]), 1).is_none());
        let t = table(&[("id", "bigint")]);
        let wrong = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", ArrowType::Int32, true)])),
            vec![Arc::new(arrow_array::Int32Array::from(vec![1]))],
        )
        .expect("batch");
        assert!(InsertBlock::new(t, wrong).is_err());
    }

    #[test]
    fn json_validity() {
        for good in [
            r#"{"a": [1, 2.50, null, true], "b": "\u00fc \"q\"", "c": {}}"#,
            "1",
            " \"text\" ",
            "123456789012345678901234567890",
            r#""\ud83e\udd86""#,
        ] {
            assert!(json_is_valid(good), "{good}");
        }
        for bad in [
            "",
            "{not json",
            "[1,]",
            "NaN",
            "1 2",
            r#""\ud800""#,
            "1e400",
            "{\"a\": 1,}",
        ] {
            assert!(!json_is_valid(bad), "{bad}");
        }
    }
}
