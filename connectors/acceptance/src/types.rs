//! The type round trip of the sink kit: every type the engine knows, with
//! the values at its edges, written through a sink by each path a value
//! takes (an insert, an update, a block of new rows) and read back as the
//! target shows it.

use std::sync::Arc;

use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::columnar::{BlockBuilder, Cell, supports};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_engine::model::{Change, DataType, Op, Row, TableSchema, Value};

use crate::sink::{Harness, TextRow};

/// One value of one type, and the text the target shows for it (what
/// [`Target::rows`](crate::Target::rows) returns for it).
#[derive(Debug, Clone)]
pub struct TypeCase {
    /// The column's type.
    pub data_type: DataType,
    /// The value written.
    pub value: Value,
    /// The value as the target shows it.
    pub shown: &'static str,
}

impl TypeCase {
    /// A case of `value` of `data_type` that the target shows as `shown`.
    pub fn new(data_type: DataType, value: Value, shown: &'static str) -> TypeCase {
        TypeCase {
            data_type,
            value,
            shown,
        }
    }
}

/// Text with quotes, a backslash, non-ASCII letters and an emoji.
pub const TEXT: &str = "naïve \"double\" 'single' back\\slash 日本語 🦆";
/// A JSON document with nesting, a non-ASCII string and escaped quotes.
pub const JSON_DOC: &str = r#"{"b": [1, 2.50, null, true], "a": "ü \"q\"", "n": {}}"#;
/// A UUID with its top bit set (DuckDB stores UUIDs with that bit flipped).
pub const UUID: [u8; 16] = [
    0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6,
];

/// The values every sink's round trip writes, the edges of each type, in
/// the order [`cases`] takes their renderings.
pub fn edge_values() -> Vec<(DataType, Value)> {
    let dec = |precision, scale| DataType::Decimal { precision, scale };
    let list = |item| DataType::List {
        item: Box::new(item),
    };
    // 2024-02-29 13:14:15.123456 (a leap day), in microseconds.
    const LEAP_DAY: i64 = 1_709_212_455_123_456;
    vec![
        (DataType::Boolean, Value::Bool(true)),
        (DataType::Boolean, Value::Bool(false)),
        (DataType::Int32, Value::Int(i64::from(i32::MIN))),
        (DataType::Int32, Value::Int(i64::from(i32::MAX))),
        (DataType::Int64, Value::Int(i64::MIN)),
        (DataType::Int64, Value::Int(i64::MAX)),
        (DataType::Float64, Value::Float(-1.234_567_8)),
        (DataType::Float64, Value::Float(1e300)),
        (DataType::Float64, Value::Float(f64::NAN)),
        (DataType::Float64, Value::Float(f64::NEG_INFINITY)),
        (
            dec(38, 10),
            Value::Decimal("1234567890123456789012345678.0123456789".into()),
        ),
        (
            dec(38, 10),
            Value::Decimal("-9876543210987654321.0000000001".into()),
        ),
        (dec(10, 2), Value::Decimal("1.5".into())),
        (dec(5, 2), Value::Decimal("-999.99".into())),
        (DataType::Text, Value::Text(TEXT.into())),
        (DataType::Text, Value::Text(String::new())),
        (DataType::Text, Value::Text("line\nbreak\ttab".into())),
        (
            DataType::Bytes,
            Value::Bytes(vec![0x00, 0xff, b'A', 0x10, b'\\', b'\'']),
        ),
        (DataType::Bytes, Value::Bytes(Vec::new())),
        // 2024-02-29, 0001-01-01, 9999-12-31, infinity, -infinity.
        (DataType::Date, Value::Date(19_782)),
        (DataType::Date, Value::Date(-719_162)),
        (DataType::Date, Value::Date(2_932_896)),
        (DataType::Date, Value::Date(i32::MAX)),
        (DataType::Date, Value::Date(i32::MIN)),
        (DataType::Time, Value::Time(0)),
        (DataType::Time, Value::Time(86_399_999_999)),
        (DataType::Timestamp, Value::Timestamp(LEAP_DAY)),
        (DataType::Timestamp, Value::Timestamp(-1)),
        (DataType::Timestamp, Value::Timestamp(i64::MAX)),
        (DataType::Timestamp, Value::Timestamp(i64::MIN)),
        (DataType::TimestampTz, Value::TimestampTz(LEAP_DAY)),
        (DataType::TimestampTz, Value::TimestampTz(i64::MAX)),
        (DataType::Uuid, Value::Uuid(UUID)),
        (DataType::Json, Value::Json(JSON_DOC.into())),
        (
            DataType::Interval,
            Value::Interval {
                months: 14,
                days: 3,
                micros: 3_600_000_001,
            },
        ),
        (
            DataType::Interval,
            Value::Interval {
                months: -1,
                days: -2,
                micros: -3,
            },
        ),
        (
            list(DataType::Int64),
            Value::List(vec![Value::Int(1), Value::Null, Value::Int(3)]),
        ),
        (
            list(DataType::Text),
            Value::List(vec![
                Value::Text("a".into()),
                Value::Text("b c".into()),
                Value::Text("q\"".into()),
                Value::Text(String::new()),
            ]),
        ),
    ]
}

/// The cases of [`edge_values`], value `i` shown by the target as
/// `shown[i]`.
pub fn cases(shown: &[&'static str]) -> Vec<TypeCase> {
    let values = edge_values();
    assert_eq!(
        values.len(),
        shown.len(),
        "{} renderings for {} values: {values:?}",
        shown.len(),
        values.len()
    );
    values
        .into_iter()
        .zip(shown)
        .map(|((data_type, value), shown)| TypeCase::new(data_type, value, shown))
        .collect()
}

/// The cases as a target that keeps values in the engine's exact JSON
/// ([`syncline_engine::encode`]: a cache, a search index) shows them,
/// strings as their text; `bytes` is how it shows the bytes value.
pub fn json_cases(bytes: &'static str) -> Vec<TypeCase> {
    cases(&[
        "true",
        "false",
        "-2147483648",
        "2147483647",
        "-9223372036854775808",
        "9223372036854775807",
        "-1.2345678",
        "1e+300",
        "NaN",
        "-Infinity",
        "1234567890123456789012345678.0123456789",
        "-9876543210987654321.0000000001",
        "1.50",
        "-999.99",
        TEXT,
        "",
        "line\nbreak\ttab",
        bytes,
        "",
        "2024-02-29",
        "0001-01-01",
        "9999-12-31",
        "infinity",
        "-infinity",
        "00:00:00.000000",
        "23:59:59.999999",
        "2024-02-29T13:14:15.123456",
        "1969-12-31T23:59:59.999999",
        "infinity",
        "-infinity",
        "2024-02-29T13:14:15.123456Z",
        "infinity",
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        JSON_DOC,
        "P14M3DT3600.000001S",
        "P-1M-2DT-0.000003S",
        "[1,null,3]",
        r#"["a","b c","q\"",""]"#,
    ])
}

/// The name of a type's kind; one arm per kind, so a kind added to the
/// engine must be added here, and then to every sink's cases.
fn kind(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float64 => "float64",
        DataType::Decimal { .. } => "decimal",
        DataType::Text => "text",
        DataType::Bytes => "bytes",
        DataType::Date => "date",
        DataType::Time => "time",
        DataType::Timestamp => "timestamp",
        DataType::TimestampTz => "timestamptz",
        DataType::Uuid => "uuid",
        DataType::Json => "json",
        DataType::Interval => "interval",
        DataType::List { .. } => "list",
    }
}

/// Every kind the engine knows.
const KINDS: &[&str] = &[
    "boolean",
    "int32",
    "int64",
    "float64",
    "decimal",
    "text",
    "bytes",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "uuid",
    "json",
    "interval",
    "list",
];

/// `name(id bigint key, c0, c1, ...)` with one column per case.
fn table(name: &str, cases: &[&TypeCase]) -> Arc<TableSchema> {
    let names: Vec<String> = (0..cases.len()).map(|i| format!("c{i}")).collect();
    let mut columns: Vec<(&str, DataType)> = vec![("id", DataType::Int64)];
    columns.extend(
        names
            .iter()
            .zip(cases)
            .map(|(n, c)| (n.as_str(), c.data_type.clone())),
    );
    crate::fixtures::table(name, &columns, &[0], 1)
}

fn row(id: i64, cases: &[&TypeCase], values: bool) -> Row {
    let mut row = vec![Value::Int(id)];
    row.extend(
        cases
            .iter()
            .map(|c| if values { c.value.clone() } else { Value::Null }),
    );
    row
}

fn change(op: Op, table: &Arc<TableSchema>, row: Row) -> Change {
    crate::fixtures::change(op, table, row)
}

/// What the target must show for rows `(id, with values)`.
fn shown(cases: &[&TypeCase], rows: &[(i64, bool)]) -> Vec<TextRow> {
    rows.iter()
        .map(|&(id, values)| {
            let mut r = vec![Some(id.to_string())];
            r.extend(cases.iter().map(|c| values.then(|| c.shown.to_owned())));
            r
        })
        .collect()
}

/// Compares cell by cell, naming the type and the value of a cell that
/// came back different.
fn assert_shown(path: &str, cases: &[&TypeCase], got: &[TextRow], want: &[TextRow]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{path}: {} rows read back, {} written: {got:?}",
        got.len(),
        want.len()
    );
    let mut wrong = Vec::new();
    for (g, w) in got.iter().zip(want) {
        for (i, (gc, wc)) in g.iter().zip(w).enumerate().skip(1) {
            if gc != wc {
                let case = cases[i - 1];
                wrong.push(format!(
                    "row {}: {:?} {:?} came back as {gc:?}, expected {wc:?}",
                    w[0].as_deref().unwrap_or("?"),
                    case.data_type,
                    if wc.is_some() {
                        &case.value
                    } else {
                        &Value::Null
                    },
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{path}:\n{}", wrong.join("\n"));
}

/// Every value the harness lists for each kind of type comes back as the
/// target shows it, and NULL as NULL, whether it arrived in an insert, an
/// update or (for a sink that takes them) a block of new rows. The harness
/// must list at least one value of every kind the engine knows.
pub async fn every_type_round_trips(h: &dyn Harness) {
    let cases = h.types();
    let missing: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| !cases.iter().any(|c| kind(&c.data_type) == *k))
        .collect();
    assert!(
        missing.is_empty(),
        "the harness lists no value of the types {missing:?}"
    );
    let target = h.target("types").await;
    let all: Vec<&TypeCase> = cases.iter().collect();
    let rows_table = table("types", &all);
    // The kinds that travel in blocks, in a table of their own.
    let blockable: Vec<&TypeCase> = cases
        .iter()
        .filter(|c| supports(&table("one", &[*c])))
        .collect();
    let block_table = table("types_block", &blockable);

    let mut sink = target.sink("kit_types", WriteMode::Upsert);
    sink.open(&[rows_table.clone(), block_table.clone()])
        .await
        .unwrap_or_else(|e| panic!("opening the sink: {e}"));
    let write = |seq: u64, changes: Vec<Change>| {
        let position = Position {
            seq,
            state: serde_json::json!({ "at": seq }),
        };
        vec![Arc::new(Batch::stream(position, changes))]
    };
    let columns: Vec<String> = std::iter::once("id".to_owned())
        .chain((0..all.len()).map(|i| format!("c{i}")))
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let read = |name: &'static str, width: usize| {
        let columns = &columns[..=width];
        let target = &target;
        async move {
            let mut rows = target.rows(name, columns).await;
            rows.sort_by_key(|r| r[0].as_deref().and_then(|k| k.parse::<i64>().ok()));
            rows
        }
    };

    // Inserted: row 1 with every value, row 2 NULL throughout.
    sink.write_group(
        "src",
        write(
            1,
            vec![
                change(Op::Insert, &rows_table, row(1, &all, true)),
                change(Op::Insert, &rows_table, row(2, &all, false)),
            ],
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("writing the inserts: {e}"));
    committed(&mut *sink).await;
    assert_shown(
        "inserted",
        &all,
        &read("types", all.len()).await,
        &shown(&all, &[(1, true), (2, false)]),
    );

    // Updated: the values change places.
    sink.write_group(
        "src",
        write(
            2,
            vec![
                change(Op::Update, &rows_table, row(1, &all, false)),
                change(Op::Update, &rows_table, row(2, &all, true)),
            ],
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("writing the updates: {e}"));
    committed(&mut *sink).await;
    assert_shown(
        "updated",
        &all,
        &read("types", all.len()).await,
        &shown(&all, &[(1, false), (2, true)]),
    );

    // New rows in a block, as a snapshot sends them.
    let mut builder = BlockBuilder::new(block_table.clone(), 2)
        .unwrap_or_else(|| panic!("{block_table:?} cannot travel as a block"));
    for values in [true, false] {
        let r = row(3 + i64::from(!values), &blockable, values);
        let cells: Vec<Cell<'_>> = r
            .iter()
            .zip(&block_table.columns)
            .map(|(v, c)| {
                Cell::of(v, &c.data_type)
                    .unwrap_or_else(|| panic!("{v:?} does not fit a {:?} block", c.data_type))
            })
            .collect();
        assert!(builder.push_row(&cells), "{r:?} does not fit its block");
    }
    let block = builder
        .finish()
        .unwrap_or_else(|e| panic!("building the block: {e}"));
    let mut batch = Batch::stream(
        Position {
            seq: 3,
            state: serde_json::json!({ "at": 3 }),
        },
        Vec::new(),
    );
    batch.kind = BatchKind::Snapshot;
    if sink.takes_blocks() {
        batch.block = Some(block);
        batch.inserts_are_new = true;
    } else {
        batch.changes = block.changes();
    }
    sink.write_group("src", vec![Arc::new(batch)])
        .await
        .unwrap_or_else(|e| panic!("writing the block: {e}"));
    sink.flush()
        .await
        .unwrap_or_else(|e| panic!("committing the block: {e}"));
    sink.close()
        .await
        .unwrap_or_else(|e| panic!("closing the sink: {e}"));
    assert_shown(
        "in a block",
        &blockable,
        &read("types_block", blockable.len()).await,
        &shown(&blockable, &[(3, true), (4, false)]),
    );
}

/// Commits what a sink holds uncommitted ([`Sink::holds_uncommitted`]),
/// so it can be read back.
async fn committed(sink: &mut dyn Sink) {
    if sink.holds_uncommitted() {
        sink.flush()
            .await
            .unwrap_or_else(|e| panic!("committing: {e}"));
    }
}
