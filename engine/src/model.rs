//! The change model: what travels from a source to its sinks.
//!
//! A source emits [`Batch`]es. A batch is one source transaction (or one
//! snapshot chunk): an ordered list of [`Change`]s that a transactional sink
//! applies atomically, together with the [`Position`] the source will have
//! reached once the batch is applied.

use std::fmt;
use std::sync::Arc;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

/// A column type, as the engine understands it. Connectors map their native
/// types onto these; sinks map these onto theirs (each sink documents its map).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum DataType {
    /// `true` / `false`.
    Boolean,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// IEEE 754 double.
    Float64,
    /// Exact decimal with `precision` digits, `scale` of them after the point.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: u8,
    },
    /// UTF-8 text.
    Text,
    /// Raw bytes.
    Bytes,
    /// Calendar date.
    Date,
    /// Time of day, microsecond precision.
    Time,
    /// Timestamp without time zone, microsecond precision.
    Timestamp,
    /// Instant in time (UTC), microsecond precision.
    TimestampTz,
    /// 128-bit UUID.
    Uuid,
    /// A JSON document, kept as its text.
    Json,
    /// A span of months, days and microseconds (kept apart, as SQL does).
    Interval,
    /// A list of values of one type.
    List {
        /// Type of the elements.
        item: Box<DataType>,
    },
}

impl DataType {
    /// Parses the names used in pipeline files (`columns = { amount = "decimal(12,2)" }`).
    pub fn parse(name: &str) -> Option<DataType> {
        let lower = name.trim().to_ascii_lowercase();
        let simple = match lower.as_str() {
            "bool" | "boolean" => Some(DataType::Boolean),
            "int" | "int4" | "integer" | "int32" => Some(DataType::Int32),
            "bigint" | "int8" | "int64" | "long" => Some(DataType::Int64),
            "double" | "float" | "float8" | "float64" | "real" => Some(DataType::Float64),
            "text" | "string" | "varchar" => Some(DataType::Text),
            "bytes" | "blob" | "bytea" => Some(DataType::Bytes),
            "date" => Some(DataType::Date),
            "time" => Some(DataType::Time),
            "timestamp" | "datetime" => Some(DataType::Timestamp),
            "timestamptz" | "timestamp with time zone" => Some(DataType::TimestampTz),
            "uuid" => Some(DataType::Uuid),
            "json" | "jsonb" => Some(DataType::Json),
            "interval" => Some(DataType::Interval),
            _ => None,
        };
        if simple.is_some() {
            return simple;
        }
        if let Some(item) = lower.strip_suffix("[]") {
            return DataType::parse(item).map(|item| DataType::List {
                item: Box::new(item),
            });
        }
        let args = lower
            .strip_prefix("decimal(")
            .or_else(|| lower.strip_prefix("numeric("))?
            .strip_suffix(')')?;
        let (p, s) = args.split_once(',')?;
        let precision: u8 = p.trim().parse().ok()?;
        let scale: u8 = s.trim().parse().ok()?;
        (precision > 0 && precision <= 38 && scale <= precision)
            .then_some(DataType::Decimal { precision, scale })
    }
}

impl DataType {
    /// Whether `value` can be stored in a column of this type without loss
    /// (NULL and unchanged values always can).
    pub fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null | Value::Unchanged) => true,
            (DataType::Boolean, Value::Bool(_)) => true,
            (DataType::Int32, Value::Int(i)) => i32::try_from(*i).is_ok(),
            (DataType::Int64, Value::Int(_)) => true,
            (DataType::Float64, Value::Float(_) | Value::Int(_)) => true,
            // NaN and the infinities: whether a target stores them is its
            // own call (`Sink` implementations refuse what they cannot).
            (DataType::Decimal { .. }, Value::Decimal(d)) if is_decimal_special(d) => true,
            (DataType::Decimal { precision, scale }, Value::Decimal(d)) => DecimalParts::parse(d)
                .is_some_and(|p| {
                    p.frac.len() <= usize::from(*scale)
                        && p.int.len() <= usize::from(precision - scale)
                }),
            (DataType::Decimal { precision, scale }, Value::Int(i)) => {
                i.unsigned_abs().to_string().len() <= usize::from(precision - scale)
            }
            // Text for a UUID or a JSON column must read as one: every
            // target casts it, and a cast that fails would fail the batch.
            (DataType::Uuid, Value::Text(t)) => crate::columnar::parse_uuid(t).is_some(),
            (DataType::Json, Value::Text(t)) => crate::columnar::json_is_valid(t),
            // Other text-like columns take text-like values (as the sinks
            // stage them); the target's cast decides the rest.
            (
                DataType::Text | DataType::Json | DataType::Interval | DataType::List { .. },
                Value::Text(_) | Value::Json(_),
            ) => true,
            (DataType::Bytes, Value::Bytes(_)) => true,
            (DataType::Date, Value::Date(_)) => true,
            (DataType::Time, Value::Time(_)) => true,
            (DataType::Timestamp, Value::Timestamp(_)) => true,
            (DataType::TimestampTz, Value::TimestampTz(_)) => true,
            (DataType::Uuid, Value::Uuid(_)) => true,
            (DataType::Interval, Value::Interval { .. }) => true,
            (DataType::List { item }, Value::List(items)) => items.iter().all(|v| item.accepts(v)),
            _ => false,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("boolean"),
            DataType::Int32 => f.write_str("int"),
            DataType::Int64 => f.write_str("bigint"),
            DataType::Float64 => f.write_str("double"),
            DataType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            DataType::Text => f.write_str("text"),
            DataType::Bytes => f.write_str("bytes"),
            DataType::Date => f.write_str("date"),
            DataType::Time => f.write_str("time"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::TimestampTz => f.write_str("timestamptz"),
            DataType::Uuid => f.write_str("uuid"),
            DataType::Json => f.write_str("json"),
            DataType::Interval => f.write_str("interval"),
            DataType::List { item } => write!(f, "{item}[]"),
        }
    }
}

/// One value of a row. Decimals are kept as their exact decimal text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "t", content = "v")]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// Floating point.
    Float(f64),
    /// Exact decimal, as text (`"-12.50"`), or one of the special values
    /// `"NaN"`, `"Infinity"`, `"-Infinity"` (see [`is_decimal_special`]).
    Decimal(String),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01; `i32::MAX` is `infinity` and `i32::MIN`
    /// `-infinity` (as Postgres has them).
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00:00 (no time zone); `i64::MAX`
    /// is `infinity` and `i64::MIN` `-infinity`.
    Timestamp(i64),
    /// Microseconds since the Unix epoch, UTC; infinities as in
    /// [`Value::Timestamp`].
    TimestampTz(i64),
    /// UUID bytes.
    Uuid([u8; 16]),
    /// JSON document text.
    Json(String),
    /// An interval.
    Interval {
        /// Months.
        months: i32,
        /// Days.
        days: i32,
        /// Microseconds.
        micros: i64,
    },
    /// A list.
    List(Vec<Value>),
    /// The source did not send this value because it did not change (a
    /// Postgres TOAST value in an update). Sinks keep the value they hold.
    Unchanged,
}

/// Whether decimal text is one of the special values `NaN`, `Infinity`,
/// `-Infinity` (Postgres `numeric` has them; most targets do not).
pub fn is_decimal_special(text: &str) -> bool {
    matches!(text, "NaN" | "Infinity" | "-Infinity")
}

impl Value {
    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A plain decimal literal (`-12.50`, `+3`, `.5`) taken apart, with leading
/// zeros of the integer part and trailing zeros of the fraction removed.
/// Sinks use it to write [`Value::Decimal`] exactly, never rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalParts<'a> {
    /// A minus sign was written.
    pub negative: bool,
    /// Integer digits (empty for zero).
    pub int: &'a str,
    /// Fraction digits (empty for none).
    pub frac: &'a str,
}

impl<'a> DecimalParts<'a> {
    /// `None` unless `text` is digits with an optional sign and point.
    pub fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        Some(DecimalParts {
            negative,
            int: int.trim_start_matches('0'),
            frac: frac.trim_end_matches('0'),
        })
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }
}

/// A row: one value per column of its table's schema, in column order.
pub type Row = Vec<Value>;

impl Value {
    /// The value as plain JSON, for people to read (decimals as strings,
    /// so they stay exact; bytes as hex).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Unchanged => J::String("(unchanged)".into()),
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Decimal(d) => J::String(d.clone()),
            Value::Text(t) | Value::Json(t) => J::String(t.clone()),
            Value::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Date(d) => chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163)
                .map_or(J::Null, |d| J::String(d.to_string())),
            Value::Time(us) => chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(us.div_euclid(1_000_000)).unwrap_or(0),
                u32::try_from(us.rem_euclid(1_000_000) * 1000).unwrap_or(0),
            )
            .map_or(J::Null, |t| J::String(t.to_string())),
            Value::Timestamp(us) => DateTime::from_timestamp_micros(*us)
                .map_or(J::Null, |t| J::String(t.naive_utc().to_string())),
            Value::TimestampTz(us) => {
                DateTime::from_timestamp_micros(*us).map_or(J::Null, |t| J::String(t.to_rfc3339()))
            }
            Value::Uuid(u) => J::String(
                u.iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let dash = if matches!(i, 4 | 6 | 8 | 10) { "-" } else { "" };
                        format!("{dash}{b:02x}")
                    })
                    .collect(),
            ),
            Value::Interval {
                months,
                days,
                micros,
            } => J::String(format!("{months} months {days} days {micros} microseconds")),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
        }
    }
}

/// A row as a JSON object `{column: value}`, for people to read (dead
/// letters, previews). Missing rows are `null`.
pub fn row_json(schema: &TableSchema, row: Option<&Row>) -> String {
    let Some(row) = row else {
        return "null".into();
    };
    let object: serde_json::Map<String, serde_json::Value> = schema
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.name.clone(), v.to_json()))
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name as the target will see it.
    pub name: String,
    /// Engine type.
    pub data_type: DataType,
    /// Whether NULL may appear.
    pub nullable: bool,
}

/// Identifies a table across the pipeline: the source (or transform) that
/// produces it, and its name there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// Name of the source or transform in the pipeline file.
    pub origin: String,
    /// Table name.
    pub name: String,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.origin, self.name)
    }
}

/// The shape of a table at one moment. A schema change yields a new
/// `TableSchema` with a higher `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Which table.
    pub id: TableId,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the key, in key order. Empty: no key.
    pub key: Vec<usize>,
    /// Increases by one with each schema change of this table.
    pub version: u32,
}

impl TableSchema {
    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Names of the key columns.
    pub fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
    }

    /// The key values of `row`.
    pub fn key_of<'r>(&self, row: &'r Row) -> Vec<&'r Value> {
        self.key.iter().map(|&i| &row[i]).collect()
    }
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A new row (`after` is set).
    Insert,
    /// A changed row (`after` is set; `before` where the source knows it).
    Update,
    /// A removed row (`before` is set, at least its key columns).
    Delete,
    /// Every row of the table is removed.
    Truncate,
    /// Rows gone at the source, found by a periodic scan of its keys (for
    /// tables read without a change log, where deletes are not seen). One
    /// prune covers a range of keys in the source's key order and lists
    /// every key the source holds in it; a sink removes the rows it holds in
    /// that range whose key is not listed, as if each were deleted.
    ///
    /// * `after`: the keys present, column-wise: each key column holds a
    ///   [`Value::List`] of that column's values, in key order (other
    ///   columns `Null`). The range's upper bound (inclusive) is the last
    ///   listed key; with no key listed, the range has no upper bound.
    /// * `before`: the range's lower bound (exclusive), a row with the key
    ///   columns set; `None` for a range from the first key.
    ///
    /// Key order is the source's ordering of the key columns' values, with
    /// text compared byte by byte (the C collation), which is how sinks
    /// compare them too.
    Prune,
}

impl Op {
    /// One-letter code stored by sinks (`i`, `u`, `d`, `t`, `p`).
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "i",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Prune => "p",
        }
    }
}

/// The range and keys of an [`Op::Prune`] change, row-wise.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneRange {
    /// Exclusive lower bound (key values in key-column order), if any.
    pub after_key: Option<Vec<Value>>,
    /// Inclusive upper bound: the last present key, if any.
    pub up_to: Option<Vec<Value>>,
    /// The keys present at the source in the range, in key order.
    pub present: Vec<Vec<Value>>,
}

/// One change to one row (or, for truncate, to a whole table).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What happened.
    pub op: Op,
    /// The table's schema at the time of the change.
    pub table: Arc<TableSchema>,
    /// The row before the change, where known (deletes carry at least the key).
    pub before: Option<Row>,
    /// The row after the change (inserts and updates).
    pub after: Option<Row>,
}

impl Change {
    /// The row that identifies the change's key: `after`, else `before`.
    pub fn key_row(&self) -> Option<&Row> {
        self.after.as_ref().or(self.before.as_ref())
    }

    /// An insert of `row` into `table`.
    pub fn insert(table: Arc<TableSchema>, row: Row) -> Change {
        Change {
            op: Op::Insert,
            table,
            before: None,
            after: Some(row),
        }
    }

    /// A truncate of `table`: every row goes.
    pub fn truncate(table: Arc<TableSchema>) -> Change {
        Change {
            op: Op::Truncate,
            table,
            before: None,
            after: None,
        }
    }

    /// A prune of `table`'s keys in `(after_key, last of present]` (see
    /// [`Op::Prune`]); `present` are key tuples in key-column order.
    pub fn prune(
        table: Arc<TableSchema>,
        after_key: Option<Vec<Value>>,
        present: Vec<Vec<Value>>,
    ) -> Change {
        let width = table.columns.len();
        let spread = |key: Vec<Value>| -> Row {
            let mut row = vec![Value::Null; width];
            for (&i, v) in table.key.iter().zip(key) {
                row[i] = v;
            }
            row
        };
        let mut columns: Vec<Vec<Value>> = vec![Vec::with_capacity(present.len()); table.key.len()];
        for key in present {
            for (column, v) in columns.iter_mut().zip(key) {
                column.push(v);
            }
        }
        let listed = spread(columns.into_iter().map(Value::List).collect());
        Change {
            op: Op::Prune,
            before: after_key.map(spread),
            after: Some(listed),
            table,
        }
    }

    /// The range and keys of a prune, or `None` for another op or a
    /// malformed prune.
    pub fn prune_range(&self) -> Option<PruneRange> {
        if self.op != Op::Prune {
            return None;
        }
        let key = &self.table.key;
        let after_key = match &self.before {
            Some(row) => Some(
                key.iter()
                    .map(|&i| row.get(i).cloned())
                    .collect::<Option<Vec<_>>>()?,
            ),
            None => None,
        };
        let listed = self.after.as_ref()?;
        let columns: Vec<&Vec<Value>> = key
            .iter()
            .map(|&i| match listed.get(i) {
                Some(Value::List(values)) => Some(values),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let n = columns.first().map_or(0, |c| c.len());
        if columns.iter().any(|c| c.len() != n) {
            return None;
        }
        let present: Vec<Vec<Value>> = (0..n)
            .map(|r| columns.iter().map(|c| c[r].clone()).collect())
            .collect();
        Some(PruneRange {
            after_key,
            up_to: present.last().cloned(),
            present,
        })
    }
}

/// A record the source could not turn into a change (a malformed line, a
/// value that does not parse). It is written to the sink's dead-letter table
/// in the same transaction as the batch it came with, so it is neither lost
/// nor recorded twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The table the record was meant for.
    pub table: TableId,
    /// Where it came from (file path, LSN, ...).
    pub origin: String,
    /// 1-based line (or record) number within `origin`, where it has one.
    pub line: Option<u64>,
    /// The record as it was read.
    pub raw: String,
    /// Why it was rejected, in plain words.
    pub reason: String,
    /// Which step rejected it.
    pub stage: DeadLetterStage,
    /// The change as it entered the step that rejected it, for replay
    /// (`None`: the record cannot be replayed, only fixed at its origin).
    pub kept: Option<KeptChange>,
}

/// The step that rejected a [`DeadLetter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStage {
    /// Reading the source (a malformed line, a value that does not parse).
    #[default]
    Read,
    /// A SQL transform failed on the row.
    Transform,
    /// A value does not fit the column type the target was created with.
    Target,
}

impl DeadLetterStage {
    /// The name stored by sinks.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStage::Read => "read",
            DeadLetterStage::Transform => "transform",
            DeadLetterStage::Target => "target",
        }
    }

    /// Parses [`DeadLetterStage::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(DeadLetterStage::Read),
            "transform" => Some(DeadLetterStage::Transform),
            "target" => Some(DeadLetterStage::Target),
            _ => None,
        }
    }
}

/// A change kept with a dead letter so it can be replayed once the cause is
/// fixed: the table it belonged to, by name, and its rows with their column
/// names (the table may have gained columns by the time it is replayed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptChange {
    /// The transform that rejected it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// The table the change is a change of.
    pub table: TableId,
    /// What happened.
    pub op: Op,
    /// Column names of `before` and `after`.
    pub columns: Vec<String>,
    /// Row before the change, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Row>,
    /// Row after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Row>,
    /// The key values, as JSON text: what a later change of the same row
    /// is recognised by (see [`KeptChange::key_text`]).
    pub key: String,
}

impl KeptChange {
    /// Keeps `change`, which a step identified by `transform` rejected.
    pub fn of(change: &Change, transform: Option<&str>) -> Self {
        let key = change
            .key_row()
            .map(|row| KeptChange::key_text(&change.table.key_of(row)))
            .unwrap_or_default();
        KeptChange {
            transform: transform.map(str::to_owned),
            table: change.table.id.clone(),
            op: change.op,
            columns: change
                .table
                .columns
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            before: change.before.clone(),
            after: change.after.clone(),
            key,
        }
    }

    /// The change again, its rows mapped by name onto `schema` (columns it
    /// did not have are NULL).
    pub fn to_change(&self, schema: &Arc<TableSchema>) -> Change {
        let map = |row: &Row| -> Row {
            schema
                .columns
                .iter()
                .map(|c| {
                    self.columns
                        .iter()
                        .position(|n| *n == c.name)
                        .and_then(|i| row.get(i))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
                .collect()
        };
        Change {
            op: self.op,
            table: schema.clone(),
            before: self.before.as_ref().map(map),
            after: self.after.as_ref().map(map),
        }
    }

    /// Canonical text of key values: equal keys give equal text whatever
    /// their decimal spelling (`1.50` and `1.5`).
    pub fn key_text(values: &[&Value]) -> String {
        let canon: Vec<Value> = values
            .iter()
            .map(|v| match v {
                Value::Decimal(d) => match DecimalParts::parse(d) {
                    Some(p) if p.is_zero() => Value::Decimal("0".into()),
                    Some(p) => Value::Decimal(format!(
                        "{}{}{}{}",
                        if p.negative { "-" } else { "" },
                        if p.int.is_empty() { "0" } else { p.int },
                        if p.frac.is_empty() { "" } else { "." },
                        p.frac
                    )),
                    None => (*v).clone(),
                },
                other => (*other).clone(),
            })
            .collect();
        serde_json::to_string(&canon).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text in a UUID or JSON column fits only when it reads as one: the
    /// targets' casts would otherwise fail the whole batch.
    #[test]
    fn text_fits_a_uuid_or_json_column_only_when_it_reads_as_one() {
        let uuid = DataType::Uuid;
        let text = |t: &str| Value::Text(t.into());
        for good in [
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6",
            "f81d4fae7dec11d0a76500a0c91e6bf6",
            "{f81d4fae-7dec-11d0-a765-00a0c91e6bf6}",
        ] {
            assert!(uuid.accepts(&text(good)), "{good}");
        }
        for bad in [
            "not-a-uuid",
            "",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bfz",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf",
            "f81d4fa-e7dec-11d0-a765-00a0c91e6bf6",
            "{f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ] {
            assert!(!uuid.accepts(&text(bad)), "{bad}");
        }
        let json = DataType::Json;
        assert!(json.accepts(&text(r#"{"a": [1, null]}"#)));
        assert!(json.accepts(&text("3")));
        assert!(!json.accepts(&text("{a: 1}")));
        assert!(!json.accepts(&text("")));
        // What Postgres's jsonb refuses: a lone surrogate, a number out of
        // range.
        assert!(!json.accepts(&text(r#""\ud800""#)));
        assert!(!json.accepts(&text("1e400")));
        assert!(DataType::Text.accepts(&text("not-a-uuid")));
    }

    #[test]
    fn decimal_parts() {
        let p = DecimalParts::parse(" -0012.5000 ").expect("decimal");
        assert_eq!((p.negative, p.int, p.frac), (true, "12", "5"));
        assert!(DecimalParts::parse("+0.000").expect("zero").is_zero());
        assert_eq!(DecimalParts::parse(".5").map(|p| p.frac), Some("5"));
        for bad in ["", ".", "-", "1e5", "1.2.3", "abc", "1,5"] {
            assert_eq!(DecimalParts::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn data_type_names_round_trip() {
        for name in [
            "boolean",
            "int",
            "bigint",
            "double",
            "decimal(12,2)",
            "text",
            "bytes",
            "date",
            "time",
            "timestamp",
            "timestamptz",
            "uuid",
            "json",
            "interval",
            "bigint[]",
            "decimal(10,2)[]",
        ] {
            let parsed = DataType::parse(name).expect(name);
            assert_eq!(parsed.to_string(), name);
        }
        assert_eq!(DataType::parse("decimal(2,3)"), None);
        assert_eq!(DataType::parse("decimal(39,2)"), None);
        assert_eq!(DataType::parse("money"), None);
    }
}
