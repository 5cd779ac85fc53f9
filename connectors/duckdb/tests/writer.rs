//! Integration tests of the DuckDB target's [`Writer`] against real
//! database files, for what the shared acceptance kit
//! (`tests/acceptance.rs`) does not prove for every sink: what the writer
//! reports (batches applied or skipped, rows appended or merged), the
//! bookkeeping DuckDB keeps (checkpoints per pipeline and source, dead
//! letters, history columns), new rows appended without the key merge,
//! blocks left uncommitted, the type map, and keys and schema changes the
//! kit's one table does not have.
//!
//! Most tests are cases declared with [`cases!`]: steps that open writers,
//! write batches and read the database file back, run against a file of
//! their own. The rest drive the [`Writer`] (or the async [`DuckDbSink`])
//! directly.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use duckdb::Connection;
use serde_json::json;
use syncline_acceptance::fixtures;
use syncline_duckdb::{
    CHECKPOINT_TABLE, DEAD_LETTER_TABLE, DuckDbSink, DuckDbTargetConfig, Writer,
};
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::columnar::{BlockBuilder, Cell, InsertBlock};
use syncline_engine::config::WriteMode::{self, Append, History, Upsert};
use syncline_engine::connector::{CheckOutcome, Sink};
use syncline_engine::model::{Change, DataType, DeadLetter, Op, Row, TableId, TableSchema, Value};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A database file in a fresh temp dir (kept alive by the returned guard).
fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.duckdb");
    (dir, path)
}

fn table(name: &str, cols: &[(&str, DataType)], key: &[usize]) -> Arc<TableSchema> {
    fixtures::table(name, cols, key, 1)
}

/// `items(id BIGINT key, name VARCHAR, qty INTEGER)`.
fn items() -> Arc<TableSchema> {
    table(
        "items",
        &[
            ("id", DataType::Int64),
            ("name", DataType::Text),
            ("qty", DataType::Int32),
        ],
        &[0],
    )
}

/// `people(id BIGINT key, ...)` at schema `version`, with the text columns
/// `cols` in that order.
fn people(version: u32, cols: &[&str]) -> Arc<TableSchema> {
    let mut columns = vec![("id", DataType::Int64)];
    columns.extend(cols.iter().map(|&c| (c, DataType::Text)));
    fixtures::table("people", &columns, &[0], version)
}

/// `ids(id BIGINT key, u UUID)`: text DuckDB's own cast to UUID refuses
/// fails a batch while merging, after its other rows were staged.
fn ids() -> Arc<TableSchema> {
    table(
        "ids",
        &[("id", DataType::Int64), ("u", DataType::Uuid)],
        &[0],
    )
}

const A_UUID: &str = "123e4567-e89b-12d3-a456-426614174000";

fn i(v: i64) -> Value {
    Value::Int(v)
}

fn s(v: &str) -> Value {
    Value::Text(v.into())
}

fn ins(t: &Arc<TableSchema>, row: Row) -> Change {
    fixtures::change(Op::Insert, t, row)
}

fn upd(t: &Arc<TableSchema>, row: Row) -> Change {
    fixtures::change(Op::Update, t, row)
}

/// A delete carrying the full `before` row.
fn del(t: &Arc<TableSchema>, row: Row) -> Change {
    fixtures::change(Op::Delete, t, row)
}

/// A delete carrying only the key (other columns NULL), as the files source
/// sends for removed files.
fn del_key(t: &Arc<TableSchema>, key: &[Value]) -> Change {
    let mut row = vec![Value::Null; t.columns.len()];
    for (&k, v) in t.key.iter().zip(key) {
        row[k] = v.clone();
    }
    del(t, row)
}

fn trunc(t: &Arc<TableSchema>) -> Change {
    fixtures::change(Op::Truncate, t, Vec::new())
}

fn position(seq: u64) -> Position {
    Position {
        seq,
        state: json!({ "lsn": format!("0/{seq:X}"), "files": { "a.csv": seq } }),
    }
}

fn batch(seq: u64, changes: Vec<Change>) -> Batch {
    Batch {
        position: position(seq),
        kind: BatchKind::Stream,
        txid: None,
        commit_time: None,
        changes,
        block: None,
        dead_letters: vec![],
        inserts_are_new: false,
        continues: false,
    }
}

/// A batch whose inserts the source promises are new rows.
fn new_rows(seq: u64, changes: Vec<Change>) -> Batch {
    Batch {
        kind: BatchKind::Snapshot,
        inserts_are_new: true,
        continues: false,
        ..batch(seq, changes)
    }
}

/// `rows` of `t` as one column block.
fn block_of(t: &Arc<TableSchema>, rows: &[Row]) -> InsertBlock {
    let mut builder = BlockBuilder::new(t.clone(), rows.len()).unwrap();
    for row in rows {
        let cells: Vec<Cell<'_>> = row
            .iter()
            .zip(&t.columns)
            .map(|(v, c)| Cell::of(v, &c.data_type).unwrap())
            .collect();
        assert!(builder.push_row(&cells));
    }
    builder.finish().unwrap()
}

/// A snapshot batch that is nothing but a block of new rows.
fn new_block(seq: u64, t: &Arc<TableSchema>, rows: &[Row]) -> Batch {
    Batch {
        block: Some(block_of(t, rows)),
        ..new_rows(seq, vec![])
    }
}

fn dead_letter(raw: &str, reason: &str) -> DeadLetter {
    DeadLetter {
        table: TableId {
            origin: "src".into(),
            name: "items".into(),
        },
        origin: "data/a.csv".into(),
        line: Some(7),
        raw: raw.into(),
        reason: reason.into(),
        stage: Default::default(),
        kept: None,
    }
}

/// Opens a writer of pipeline `p` and prepares `tables`.
fn writer(path: &Path, mode: WriteMode, tables: &[&Arc<TableSchema>]) -> Writer {
    let mut w = Writer::open(path, "p", mode, "main").unwrap();
    let tables: Vec<Arc<TableSchema>> = tables.iter().map(|&t| t.clone()).collect();
    w.prepare(&tables).unwrap();
    w
}

/// `(appended, merged)` rows so far.
fn stats(w: &Writer) -> (u64, u64) {
    let s = w.stats();
    (s.appended, s.merged)
}

/// Renders one result value; every test compares these strings.
fn render(v: duckdb::types::Value) -> String {
    use duckdb::types::Value as V;
    match v {
        V::Null => "NULL".into(),
        V::Boolean(b) => b.to_string(),
        V::TinyInt(x) => x.to_string(),
        V::SmallInt(x) => x.to_string(),
        V::Int(x) => x.to_string(),
        V::BigInt(x) => x.to_string(),
        V::HugeInt(x) => x.to_string(),
        V::UTinyInt(x) => x.to_string(),
        V::USmallInt(x) => x.to_string(),
        V::UInt(x) => x.to_string(),
        V::UBigInt(x) => x.to_string(),
        V::Double(x) => x.to_string(),
        V::Text(x) => x,
        other => format!("{other:?}"),
    }
}

/// Runs `sql` on a fresh connection (session time zone UTC) and returns
/// every row as strings. The writer must be dropped first: one process must
/// not hold two DuckDB instances of one file.
fn rows(path: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("SET TimeZone = 'UTC'").unwrap();
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let n = row.as_ref().column_count();
        out.push(
            (0..n)
                .map(|c| render(row.get::<_, duckdb::types::Value>(c).unwrap()))
                .collect(),
        );
    }
    out
}

fn r(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

fn micros(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
        .timestamp_micros()
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// One step of a case.
enum Step {
    /// Drops the writer open before, if any; opens one of `pipeline` in
    /// `mode` and, if `prepare`, prepares `tables`, which must return the
    /// positions `held` (source and seq; the state is [`position`]'s).
    Open {
        pipeline: &'static str,
        mode: WriteMode,
        tables: Vec<Arc<TableSchema>>,
        prepare: bool,
        held: Vec<(&'static str, u64)>,
    },
    /// Writes `batches` of `source` as one group: `applied` of them must be
    /// applied, the others skipped as held.
    Write {
        source: &'static str,
        batches: Vec<Batch>,
        applied: usize,
    },
    /// Writing `batch` of `src` must fail with an error naming `needle`.
    Fail {
        batch: Box<Batch>,
        needle: &'static str,
    },
    /// The writer's counts of rows appended and merged so far.
    Stats(u64, u64),
    /// Whether the writer holds applied batches in an open transaction.
    Uncommitted(bool),
    /// Commits that transaction.
    Commit,
    /// The writer's dead letters, in order: the seq of each, and words its
    /// reason must contain.
    DeadLetters(Vec<(u64, Vec<&'static str>)>),
    /// Drops the writer; `sql` must return these rows.
    Rows(String, Vec<Vec<String>>),
    /// Runs SQL of another program's on the database, beside the writer.
    Sql(&'static str),
}

/// Opens a writer of pipeline `p` in `mode` and prepares `tables`; it must
/// hold no position (see [`Step::holding`]).
fn open(mode: WriteMode, tables: &[&Arc<TableSchema>]) -> Step {
    Step::Open {
        pipeline: "p",
        mode,
        tables: tables.iter().map(|&t| t.clone()).collect(),
        prepare: true,
        held: Vec::new(),
    }
}

/// Writes `b` of `src`, which must be applied.
fn write(b: Batch) -> Step {
    group(vec![b])
}

/// Writes `bs` of `src` as one group, which must all be applied.
fn group(bs: Vec<Batch>) -> Step {
    Step::Write {
        source: "src",
        applied: bs.len(),
        batches: bs,
    }
}

/// Writes `b` of `src`, which must be skipped as held.
fn skip(b: Batch) -> Step {
    Step::Write {
        source: "src",
        batches: vec![b],
        applied: 0,
    }
}

/// Writing `batch` of `src` must fail with an error naming `needle`.
fn fail(batch: Batch, needle: &'static str) -> Step {
    Step::Fail {
        batch: Box::new(batch),
        needle,
    }
}

/// A unique index of another program's on `ids (u)`: a batch writing one
/// UUID twice into it is refused while merging.
const UNIQUE_U: Step = Step::Sql("CREATE UNIQUE INDEX other_programs_u ON ids (u)");

/// The writer must have appended and merged these many rows so far.
fn stats_are(appended: u64, merged: u64) -> Step {
    Step::Stats(appended, merged)
}

/// The writer's dead letters must be `kept`: each one's seq, and words its
/// reason contains.
fn dead_letters(kept: &[(u64, &[&'static str])]) -> Step {
    Step::DeadLetters(kept.iter().map(|(seq, w)| (*seq, w.to_vec())).collect())
}

/// `sql` must return `expected`.
fn expect(sql: impl Into<String>, expected: &[&[&str]]) -> Step {
    Step::Rows(sql.into(), expected.iter().map(|row| r(row)).collect())
}

/// The stored checkpoints must be `expected` (pipeline, source, seq).
fn checkpoints(expected: &[&[&str]]) -> Step {
    expect(
        format!("SELECT pipeline, source, seq FROM {CHECKPOINT_TABLE} ORDER BY pipeline, source"),
        expected,
    )
}

/// The name and type of each column of `table`, in order.
fn columns_of(table: &str) -> String {
    format!(
        "SELECT column_name, data_type FROM information_schema.columns
         WHERE table_name = '{table}' ORDER BY ordinal_position"
    )
}

/// The file must hold `n` dead letters.
fn dead_letter_count(n: &str) -> Step {
    expect(format!("SELECT count(*) FROM {DEAD_LETTER_TABLE}"), &[&[n]])
}

impl Step {
    /// This opening must find positions `seqs` (source, seq) stored.
    fn holding(mut self, seqs: &[(&'static str, u64)]) -> Step {
        match &mut self {
            Step::Open { held, .. } => *held = seqs.to_vec(),
            _ => panic!("only an opening holds positions"),
        }
        self
    }

    /// This opening is of pipeline `name`.
    fn of_pipeline(mut self, name: &'static str) -> Step {
        match &mut self {
            Step::Open { pipeline, .. } => *pipeline = name,
            _ => panic!("only an opening has a pipeline"),
        }
        self
    }

    /// This opening does not prepare its tables.
    fn unprepared(mut self) -> Step {
        match &mut self {
            Step::Open { prepare, .. } => *prepare = false,
            _ => panic!("only an opening prepares"),
        }
        self
    }

    /// This write's batches are of source `name`.
    fn of_source(mut self, name: &'static str) -> Step {
        match &mut self {
            Step::Write { source, .. } => *source = name,
            _ => panic!("only a write has a source"),
        }
        self
    }
}

/// The writer `current` holds, at step `at`.
fn live<'a>(current: &'a mut Option<Writer>, at: &str) -> &'a mut Writer {
    current
        .as_mut()
        .unwrap_or_else(|| panic!("{at}: no writer is open"))
}

/// Runs the steps of case `name` against a database file of its own.
fn run(name: &str, steps: Vec<Step>) {
    let (_dir, path) = db();
    let mut current: Option<Writer> = None;
    for (n, step) in steps.into_iter().enumerate() {
        let at = format!("{name}, step {}", n + 1);
        match step {
            Step::Open {
                pipeline,
                mode,
                tables,
                prepare,
                held,
            } => {
                // One writer of a file at a time.
                drop(current.take());
                let mut w = Writer::open(&path, pipeline, mode, "main")
                    .unwrap_or_else(|e| panic!("{at}: opening: {e}"));
                if prepare {
                    let got = w
                        .prepare(&tables)
                        .unwrap_or_else(|e| panic!("{at}: preparing: {e}"));
                    let want: BTreeMap<String, Position> = held
                        .iter()
                        .map(|&(source, seq)| (source.to_owned(), position(seq)))
                        .collect();
                    assert_eq!(got, want, "{at}: the positions held");
                }
                current = Some(w);
            }
            Step::Write {
                source,
                batches,
                applied,
            } => {
                let seqs: Vec<u64> = batches.iter().map(|b| b.position.seq).collect();
                let group: Vec<&Batch> = batches.iter().collect();
                let got = live(&mut current, &at)
                    .write_group(source, &group)
                    .unwrap_or_else(|e| panic!("{at}: writing {seqs:?} of {source}: {e}"));
                assert_eq!(got, applied, "{at}: batches of {seqs:?} applied");
            }
            Step::Fail { batch, needle } => {
                let seq = batch.position.seq;
                let err = live(&mut current, &at)
                    .write("src", &batch)
                    .err()
                    .unwrap_or_else(|| panic!("{at}: batch {seq} was written"));
                assert!(
                    err.to_string().contains(needle),
                    "{at}: the error does not name {needle}: {err}"
                );
            }
            Step::Stats(appended, merged) => {
                assert_eq!(
                    stats(live(&mut current, &at)),
                    (appended, merged),
                    "{at}: rows (appended, merged)"
                );
            }
            Step::Uncommitted(want) => {
                assert_eq!(
                    live(&mut current, &at).holds_uncommitted(),
                    want,
                    "{at}: holds uncommitted batches"
                );
            }
            Step::Commit => live(&mut current, &at)
                .commit_open()
                .unwrap_or_else(|e| panic!("{at}: committing: {e}")),
            Step::DeadLetters(want) => {
                let kept = live(&mut current, &at)
                    .dead_letters()
                    .unwrap_or_else(|e| panic!("{at}: reading dead letters: {e}"));
                let got: Vec<(u64, &str)> =
                    kept.iter().map(|k| (k.seq, k.reason.as_str())).collect();
                assert_eq!(got.len(), want.len(), "{at}: dead letters {got:?}");
                for ((seq, reason), (want_seq, words)) in got.iter().zip(&want) {
                    assert_eq!(seq, want_seq, "{at}: the seq of {reason:?}");
                    for word in words {
                        assert!(reason.contains(word), "{at}: {reason:?} lacks {word:?}");
                    }
                }
            }
            Step::Rows(sql, want) => {
                drop(current.take());
                assert_eq!(rows(&path, &sql), want, "{at}: {sql}");
            }
            Step::Sql(sql) => syncline_duckdb::shared::connect(&path)
                .and_then(|c| c.execute_batch(sql))
                .unwrap_or_else(|e| panic!("{at}: {sql}: {e}")),
        }
    }
}

/// Declares cases: `fn name(var in values) { steps }` is one `#[test]`
/// that runs the steps its block returns once for each value of `var`
/// (a write mode, or a variant of the case), naming the case, the value
/// and the step in every failure.
macro_rules! cases {
    ($($(#[$attr:meta])* fn $name:ident($var:ident in $values:expr) $body:block)*) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                for $var in IntoIterator::into_iter($values) {
                    let name = format!(
                        "{} ({} = {:?})",
                        stringify!($name),
                        stringify!($var),
                        $var
                    );
                    run(&name, $body);
                }
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Upsert, append and history
// ---------------------------------------------------------------------------

cases! {
    /// A key deleted and inserted again in one batch is present; an update
    /// of a key the target does not hold inserts it; a later batch's
    /// deletes (by the full row or by the key alone) remove held rows, a
    /// delete of a key never held does nothing, and an insert of a held key
    /// replaces its row.
    fn upsert_deletes_and_reinserts_within_and_across_batches(mode in [Upsert]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(batch(1, vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                ins(&t, vec![i(2), s("b"), i(2)]),
                ins(&t, vec![i(3), s("c"), i(3)]),
                ins(&t, vec![i(4), s("d"), i(4)]),
                // Deleted and inserted again.
                ins(&t, vec![i(5), s("e"), i(5)]),
                del_key(&t, &[i(5)]),
                ins(&t, vec![i(5), s("e2"), i(50)]),
                // An update of a key not held.
                upd(&t, vec![i(6), s("f"), Value::Null]),
            ])),
            write(batch(2, vec![
                del(&t, vec![i(1), s("a"), i(1)]),
                del_key(&t, &[i(2)]),
                // A key never held.
                del_key(&t, &[i(99)]),
                // An insert of a held key.
                ins(&t, vec![i(3), s("c2"), i(33)]),
                // A held key deleted and inserted again.
                del_key(&t, &[i(4)]),
                ins(&t, vec![i(4), s("d2"), i(44)]),
            ])),
            expect("SELECT id, name, qty FROM items ORDER BY id", &[
                &["3", "c2", "33"],
                &["4", "d2", "44"],
                &["5", "e2", "50"],
                &["6", "f", "NULL"],
            ]),
        ]
    }

    /// A key of two columns that are neither first nor in column order:
    /// `(order_id, line)`.
    fn upsert_by_a_composite_key(mode in [Upsert]) {
        let t = table(
            "lines",
            &[
                ("sku", DataType::Text),
                ("line", DataType::Int32),
                ("order_id", DataType::Int64),
                ("amount", DataType::Decimal { precision: 10, scale: 2 }),
            ],
            &[2, 1],
        );
        let d = |x: &str| Value::Decimal(x.into());
        vec![
            open(mode, &[&t]),
            write(batch(1, vec![
                ins(&t, vec![s("apple"), i(1), i(100), d("1.50")]),
                ins(&t, vec![s("pear"), i(2), i(100), d("2.00")]),
                ins(&t, vec![s("plum"), i(1), i(200), d("3.25")]),
                // The same line number in another order: another key.
                ins(&t, vec![s("fig"), i(2), i(200), d("4")]),
            ])),
            write(batch(2, vec![
                upd(&t, vec![s("pear"), i(2), i(100), d("2.99")]),
                del_key(&t, &[i(200), i(1)]),
                ins(&t, vec![s("kiwi"), i(3), i(200), d("-0.01")]),
                upd(&t, vec![s("fig"), i(2), i(200), d("4.10")]),
            ])),
            expect(
                "SELECT order_id, line, sku, CAST(amount AS VARCHAR) FROM lines ORDER BY order_id, line",
                &[
                    &["100", "1", "apple", "1.50"],
                    &["100", "2", "pear", "2.99"],
                    &["200", "2", "fig", "4.10"],
                    &["200", "3", "kiwi", "-0.01"],
                ],
            ),
        ]
    }

    /// A truncate inside a batch empties only its own table (another
    /// table's changes before and after it stay), and a key held before it
    /// can come back after it.
    fn upsert_truncate_empties_only_its_own_table(mode in [Upsert]) {
        let t = items();
        let other = table("other", &[("id", DataType::Int64)], &[0]);
        vec![
            open(mode, &[&t, &other]),
            write(batch(1, vec![
                ins(&t, vec![i(1), s("a"), i(1)]),
                ins(&t, vec![i(2), s("b"), i(2)]),
                ins(&other, vec![i(1)]),
            ])),
            write(batch(2, vec![
                ins(&other, vec![i(2)]),
                trunc(&t),
                ins(&t, vec![i(2), s("b-after"), i(22)]),
                ins(&other, vec![i(3)]),
            ])),
            expect("SELECT id, name, qty FROM items ORDER BY id", &[&["2", "b-after", "22"]]),
            expect("SELECT id FROM other ORDER BY id", &[&["1"], &["2"], &["3"]]),
        ]
    }

    /// Append needs no key: every insert and update becomes a row in change
    /// order, the same row twice is two rows, deletes are ignored, and the
    /// table has no bookkeeping columns.
    fn append_needs_no_key_and_keeps_rows_in_change_order(mode in [Append]) {
        let keyed = items();
        let log = table("log", &[("msg", DataType::Text)], &[]);
        vec![
            open(mode, &[&keyed, &log]),
            write(batch(1, vec![
                ins(&keyed, vec![i(1), s("a"), i(1)]),
                upd(&keyed, vec![i(1), s("b"), i(2)]),
                del(&keyed, vec![i(1), s("b"), i(2)]),
                ins(&keyed, vec![i(2), s("c"), i(3)]),
                ins(&log, vec![s("hello")]),
                ins(&log, vec![s("hello")]),
            ])),
            write(batch(2, vec![
                upd(&keyed, vec![i(2), s("d"), i(4)]),
                del_key(&keyed, &[i(2)]),
                ins(&keyed, vec![i(1), s("a"), i(1)]),
                del(&log, vec![s("hello")]),
            ])),
            expect("SELECT id, name, qty FROM items ORDER BY rowid", &[
                &["1", "a", "1"],
                &["1", "b", "2"],
                &["2", "c", "3"],
                &["2", "d", "4"],
                &["1", "a", "1"],
            ]),
            expect("SELECT msg FROM log", &[&["hello"], &["hello"]]),
            expect(
                columns_of("items"),
                &[&["id", "BIGINT"], &["name", "VARCHAR"], &["qty", "INTEGER"]],
            ),
        ]
    }

    /// A truncate empties an append table too (full-refresh file tables are
    /// replaced this way), in the middle of a batch as in upsert mode.
    fn append_truncate_empties_the_table(mode in [Append]) {
        let log = table("log", &[("msg", DataType::Text)], &[]);
        vec![
            open(mode, &[&log]),
            write(batch(1, vec![ins(&log, vec![s("old")]), ins(&log, vec![s("old")])])),
            write(batch(2, vec![
                ins(&log, vec![s("before")]),
                trunc(&log),
                ins(&log, vec![s("after")]),
                upd(&log, vec![s("after 2")]),
                del(&log, vec![s("after")]),
            ])),
            expect("SELECT msg FROM log ORDER BY rowid", &[&["after"], &["after 2"]]),
        ]
    }

    /// History puts its columns first, with their types, and records every
    /// change in order with its batch's commit time: a truncate as a row of
    /// NULLs, a delete by key alone with the key and NULLs.
    fn history_records_every_change_with_its_metadata(mode in [History]) {
        let t = items();
        let committed = DateTime::from_timestamp_micros(micros("2024-05-01T12:00:00.123456Z"));
        let at = "2024-05-01 12:00:00.123456+00";
        vec![
            open(mode, &[&t]),
            write(Batch {
                commit_time: committed,
                ..batch(7, vec![
                    ins(&t, vec![i(1), s("a"), i(1)]),
                    upd(&t, vec![i(1), s("b"), i(2)]),
                    ins(&t, vec![i(2), s("x"), i(9)]),
                ])
            }),
            write(batch(8, vec![
                del(&t, vec![i(1), s("b"), i(2)]),
                trunc(&t),
                ins(&t, vec![i(3), s("c"), i(3)]),
                del_key(&t, &[i(3)]),
            ])),
            expect(columns_of("items"), &[
                &["_op", "VARCHAR"],
                &["_seq", "UBIGINT"],
                &["_commit_time", "TIMESTAMP WITH TIME ZONE"],
                &["_synced_at", "TIMESTAMP WITH TIME ZONE"],
                &["id", "BIGINT"],
                &["name", "VARCHAR"],
                &["qty", "INTEGER"],
            ]),
            expect(
                "SELECT _op, _seq, CAST(_commit_time AS VARCHAR), id, name, qty FROM items ORDER BY rowid",
                &[
                    &["i", "7", at, "1", "a", "1"],
                    &["u", "7", at, "1", "b", "2"],
                    &["i", "7", at, "2", "x", "9"],
                    &["d", "8", "NULL", "1", "b", "2"],
                    &["t", "8", "NULL", "NULL", "NULL", "NULL"],
                    &["i", "8", "NULL", "3", "c", "3"],
                    &["d", "8", "NULL", "3", "NULL", "NULL"],
                ],
            ),
        ]
    }
}

// ---------------------------------------------------------------------------
// Checkpoints, failures and dead letters
// ---------------------------------------------------------------------------

cases! {
    /// The writer reports batches at or below the checkpoint as skipped,
    /// also before any restart, and stores nothing of theirs: not their
    /// changes, their dead letters nor their position's state. A gap in seq
    /// is no matter.
    fn a_skipped_batch_stores_nothing_of_its_own(mode in [Upsert]) {
        let t = items();
        let redelivered = |seq| {
            let mut b = batch(seq, vec![trunc(&t), ins(&t, vec![i(100), s("dup"), i(0)])]);
            b.position.state = json!("must not be stored");
            b.dead_letters.push(dead_letter("x", "must not be stored"));
            b
        };
        vec![
            open(mode, &[&t]),
            write(batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])),
            write(batch(2, vec![ins(&t, vec![i(2), s("b"), i(2)])])),
            skip(redelivered(2)),
            skip(redelivered(1)),
            expect("SELECT id FROM items ORDER BY id", &[&["1"], &["2"]]),
            dead_letter_count("0"),
            open(mode, &[&t]).holding(&[("src", 2)]),
            write(batch(7, vec![ins(&t, vec![i(7), s("g"), i(7)])])),
            open(mode, &[&t]).holding(&[("src", 7)]),
            expect("SELECT id FROM items ORDER BY id", &[&["1"], &["2"], &["7"]]),
        ]
    }

    /// Each source has its own checkpoint: a second source's first batch
    /// is applied whatever another's seq, and a batch with no changes moves
    /// its source's checkpoint.
    fn checkpoints_are_per_source(mode in [Upsert]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(batch(10, vec![ins(&t, vec![i(1), s("a"), i(1)])])).of_source("a"),
            write(batch(1, vec![ins(&t, vec![i(2), s("b"), i(2)])])).of_source("b"),
            skip(batch(1, vec![ins(&t, vec![i(3), s("x"), i(3)])])).of_source("b"),
            write(batch(11, vec![])).of_source("a"),
            checkpoints(&[&["p", "a", "11"], &["p", "b", "1"]]),
            open(mode, &[&t]).holding(&[("a", 11), ("b", 1)]),
            expect("SELECT id FROM items ORDER BY id", &[&["1"], &["2"]]),
        ]
    }

    /// Two pipelines writing one file (in different modes) keep separate
    /// checkpoints.
    fn two_pipelines_in_one_file_keep_separate_checkpoints(mode in [Upsert]) {
        let t1 = table("from_p1", &[("id", DataType::Int64)], &[0]);
        let t2 = table("from_p2", &[("id", DataType::Int64)], &[0]);
        vec![
            open(mode, &[&t1]),
            write(batch(5, vec![ins(&t1, vec![i(1)])])),
            // p2 does not see p's checkpoint: its seq 1 is applied.
            open(Append, &[&t2]).of_pipeline("p2"),
            write(batch(1, vec![ins(&t2, vec![i(1)])])),
            write(batch(2, vec![ins(&t2, vec![i(2)])])),
            open(mode, &[&t1]).holding(&[("src", 5)]),
            skip(batch(2, vec![ins(&t1, vec![i(99)])])),
            open(Append, &[&t2]).of_pipeline("p2").holding(&[("src", 2)]),
            checkpoints(&[&["p", "src", "5"], &["p2", "src", "2"]]),
            expect("SELECT id FROM from_p1", &[&["1"]]),
            expect("SELECT id FROM from_p2 ORDER BY id", &[&["1"], &["2"]]),
        ]
    }

    /// A writer knows the stored checkpoints from `open`, so a redelivered
    /// batch is skipped even when `write` comes before any `prepare`.
    fn a_writer_skips_held_batches_even_before_prepare(mode in [Append]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])),
            open(mode, &[&t]).unprepared(),
            skip(batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])),
            write(batch(2, vec![ins(&t, vec![i(2), s("b"), i(2)])])),
            expect("SELECT id FROM items ORDER BY id", &[&["1"], &["2"]]),
        ]
    }

    /// A batch DuckDB refuses while merging (one UUID twice under another
    /// program's unique index, after rows of another table were staged and
    /// merged) fails with an error naming the table, in every mode; it
    /// leaves data, checkpoint and dead letters as they were, and its
    /// staged rows do not leak into the next batch, written at the same
    /// position.
    fn a_failed_batch_leaves_data_checkpoint_and_dead_letters_unchanged(
        mode in [Upsert, Append, History]
    ) {
        let (t, ids) = (items(), ids());
        let mut bad = batch(2, vec![
            ins(&t, vec![i(2), s("b"), i(2)]),
            del_key(&t, &[i(1)]),
            ins(&ids, vec![i(1), s(A_UUID)]),
            ins(&ids, vec![i(2), s(A_UUID)]),
        ]);
        bad.dead_letters.push(dead_letter("x", "bad"));
        vec![
            open(mode, &[&t, &ids]),
            write(batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])),
            UNIQUE_U,
            fail(bad, "ids"),
            write(batch(2, vec![ins(&ids, vec![i(3), s(A_UUID)])])),
            expect("SELECT id, name, qty FROM items", &[&["1", "a", "1"]]),
            expect("SELECT id, CAST(u AS VARCHAR) FROM ids", &[&["3", A_UUID]]),
            dead_letter_count("0"),
            checkpoints(&[&["p", "src", "2"]]),
        ]
    }

    /// A value of the wrong type (text in a BIGINT column) costs its row,
    /// not the batch: the row becomes a dead letter naming the column and
    /// the value, after the batch's own dead letters; the rest of the batch
    /// (another table's changes, a truncate, rows after it) is applied.
    fn a_value_of_the_wrong_type_costs_its_row_not_the_batch(mode in [Upsert]) {
        let t = table(
            "items",
            &[("id", DataType::Int64), ("name", DataType::Text), ("stock", DataType::Int64)],
            &[0],
        );
        let other = table("other", &[("id", DataType::Int64)], &[0]);
        let mut bad = batch(2, vec![
            ins(&other, vec![i(1)]),
            upd(&t, vec![i(1), s("changed"), i(2)]),
            trunc(&t),
            ins(&t, vec![i(2), s("b"), i(2)]),
            ins(&t, vec![i(3), s("c"), s("many")]),
        ]);
        bad.dead_letters.push(dead_letter("x,y", "bad line"));
        vec![
            open(mode, &[&t, &other]),
            write(batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])),
            write(bad),
            dead_letters(&[(2, &["bad line"]), (2, &["`stock`", "many"])]),
            expect("SELECT id, name, stock FROM items", &[&["2", "b", "2"]]),
            expect("SELECT id FROM other", &[&["1"]]),
        ]
    }

    /// Dead letters are stored with their pipeline, source, table, origin,
    /// line (or NULL), raw text and reason, at their batch's seq; a batch
    /// of nothing but dead letters moves its source's checkpoint.
    fn dead_letters_are_written_with_the_batch(mode in [Upsert]) {
        let t = items();
        let (oops, broken) = (
            "column qty: \"oops\" is not an int",
            "invalid JSON: EOF while parsing — ünïcödé",
        );
        let mut b = batch(4, vec![ins(&t, vec![i(1), s("a"), i(1)])]);
        b.dead_letters.push(dead_letter("1,\"x\",oops", oops));
        b.dead_letters.push(DeadLetter {
            table: TableId { origin: "src".into(), name: "events".into() },
            origin: "0/16B3748".into(),
            line: None,
            ..dead_letter("{\"broken\": ", broken)
        });
        let mut only = batch(5, vec![]);
        only.dead_letters.push(dead_letter("", "empty line"));
        vec![
            open(mode, &[&t]).of_pipeline("pipe"),
            write(b),
            write(only).of_source("other"),
            expect(
                format!(
                    "SELECT pipeline, source, table_name, origin, line, raw, reason, seq
                     FROM {DEAD_LETTER_TABLE} ORDER BY seq, line NULLS LAST"
                ),
                &[
                    &["pipe", "src", "items", "data/a.csv", "7", "1,\"x\",oops", oops, "4"],
                    &["pipe", "src", "events", "0/16B3748", "NULL", "{\"broken\": ", broken, "4"],
                    &["pipe", "other", "items", "data/a.csv", "7", "", "empty line", "5"],
                ],
            ),
            checkpoints(&[&["pipe", "other", "5"], &["pipe", "src", "4"]]),
        ]
    }
}

// ---------------------------------------------------------------------------
// Schema changes and table names
// ---------------------------------------------------------------------------

cases! {
    /// A new schema version mid-stream whose new column is not last in the
    /// source's order: columns are matched by name, the new one is added at
    /// the end of the target table, and a row written before can be
    /// updated under the new version.
    fn a_new_schema_version_mid_stream_adds_the_column(mode in [Upsert]) {
        let v1 = people(1, &["name"]);
        let v2 = people(2, &["email", "name"]);
        vec![
            open(mode, &[&v1]),
            write(batch(1, vec![ins(&v1, vec![i(1), s("ann")]), ins(&v1, vec![i(2), s("bob")])])),
            write(batch(2, vec![
                ins(&v2, vec![i(3), s("cy@example.com"), s("cy")]),
                upd(&v2, vec![i(2), s("bob@example.com"), s("bob")]),
            ])),
            expect("SELECT id, name, email FROM people ORDER BY id", &[
                &["1", "ann", "NULL"],
                &["2", "bob", "bob@example.com"],
                &["3", "cy", "cy@example.com"],
            ]),
            expect(
                columns_of("people"),
                &[&["id", "BIGINT"], &["name", "VARCHAR"], &["email", "VARCHAR"]],
            ),
        ]
    }

    /// A new schema version given to `prepare` after a restart adds its
    /// column, in every mode.
    fn a_new_schema_version_at_prepare_adds_the_column(mode in [Upsert, Append, History]) {
        let v1 = people(1, &["name"]);
        let v2 = fixtures::table(
            "people",
            &[("id", DataType::Int64), ("name", DataType::Text), ("born", DataType::Date)],
            &[0],
            2,
        );
        vec![
            open(mode, &[&v1]),
            write(batch(1, vec![ins(&v1, vec![i(1), s("ann")])])),
            open(mode, &[&v2]).holding(&[("src", 1)]),
            write(batch(2, vec![ins(&v2, vec![i(2), s("bob"), Value::Date(0)])])),
            expect(
                "SELECT id, name, CAST(born AS VARCHAR) FROM people ORDER BY id",
                &[&["1", "ann", "NULL"], &["2", "bob", "1970-01-01"]],
            ),
        ]
    }

    /// A schema change inside one batch (changes under version 1, then
    /// under version 2 with columns in other positions, then version 3
    /// dropping one, so later columns shift left): values stay in their
    /// columns, matched by name, in every mode.
    fn a_schema_change_inside_a_batch_keeps_values_in_their_columns(
        mode in [Upsert, Append, History]
    ) {
        let v1 = people(1, &["name"]);
        let v2 = people(2, &["email", "name"]);
        let v3 = people(3, &["name"]);
        vec![
            open(mode, &[&v1]),
            write(batch(
                1,
                vec![ins(&v1, vec![i(1), s("ann")]), ins(&v2, vec![i(2), s("bob@x"), s("bob")])],
            )),
            write(batch(
                2,
                vec![ins(&v2, vec![i(3), s("cy@x"), s("cy")]), ins(&v3, vec![i(4), s("dee")])],
            )),
            expect(
                "SELECT id, name FROM people ORDER BY id",
                &[&["1", "ann"], &["2", "bob"], &["3", "cy"], &["4", "dee"]],
            ),
            expect(
                "SELECT id, email FROM people WHERE id <= 2 ORDER BY id",
                &[&["1", "NULL"], &["2", "bob@x"]],
            ),
            // Row 3 was staged in version 3's shape, which has no `email`:
            // its value is not kept (the column is gone at the source), but
            // it is not moved into another column either.
            expect("SELECT count(*) FROM people WHERE email = 'cy'", &[&["0"]]),
        ]
    }

    /// `a_b`.`c` and `a`.`b_c` are different tables with different staging
    /// tables.
    fn tables_whose_names_join_alike_are_staged_apart(mode in [Upsert]) {
        let with_origin = |origin: &str, t: Arc<TableSchema>| {
            let mut t = (*t).clone();
            t.id.origin = origin.into();
            Arc::new(t)
        };
        let c = with_origin("a_b", table("c", &[("id", DataType::Int64)], &[0]));
        let b_c = with_origin(
            "a",
            table("b_c", &[("id", DataType::Int64), ("x", DataType::Text)], &[0]),
        );
        vec![
            open(mode, &[&c, &b_c]),
            write(batch(1, vec![ins(&c, vec![i(1)]), ins(&b_c, vec![i(2), s("x")])])),
            expect("SELECT id FROM c", &[&["1"]]),
            expect("SELECT id, x FROM b_c", &[&["2", "x"]]),
        ]
    }
}

// ---------------------------------------------------------------------------
// New rows (`Batch::inserts_are_new`): appended without the key merge
// ---------------------------------------------------------------------------

cases! {
    /// Rows promised new are appended while the table holds nothing but
    /// new rows, also in a group; a streamed change is merged by key, and
    /// from then on the table may hold anything, so even rows promised new
    /// are merged.
    fn new_rows_are_appended_while_the_table_holds_only_new_rows(mode in [Upsert]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(new_rows(
                1,
                vec![ins(&t, vec![i(1), s("a"), i(1)]), ins(&t, vec![i(2), s("b"), i(2)])],
            )),
            group(vec![
                new_rows(2, vec![ins(&t, vec![i(3), s("c"), i(3)])]),
                new_rows(3, vec![ins(&t, vec![i(4), s("d"), i(4)])]),
            ]),
            stats_are(4, 0),
            write(batch(4, vec![upd(&t, vec![i(1), s("a2"), i(10)])])),
            stats_are(4, 1),
            write(new_rows(5, vec![ins(&t, vec![i(2), s("b2"), i(20)])])),
            stats_are(4, 2),
            expect("SELECT id, name, qty FROM items ORDER BY id", &[
                &["1", "a2", "10"],
                &["2", "b2", "20"],
                &["3", "c", "3"],
                &["4", "d", "4"],
            ]),
            checkpoints(&[&["p", "src", "5"]]),
        ]
    }

    /// After `syncline drop` the target keeps its rows, and a new snapshot
    /// (whose rows are new to the source's run, not to the table) must still
    /// replace them by key.
    fn new_rows_into_a_table_that_already_holds_rows_are_merged(mode in [Upsert]) {
        let t = items();
        vec![
            open(mode, &[&t]).of_pipeline("old"),
            write(new_rows(1, vec![ins(&t, vec![i(1), s("old"), i(1)])])),
            open(mode, &[&t]).of_pipeline("new"),
            write(new_rows(
                1,
                vec![ins(&t, vec![i(1), s("new"), i(1)]), ins(&t, vec![i(2), s("b"), i(2)])],
            )),
            stats_are(0, 2),
            expect("SELECT id, name FROM items ORDER BY id", &[&["1", "new"], &["2", "b"]]),
        ]
    }

    /// Two sources writing one table: each one's rows are new only to itself.
    fn new_rows_of_a_second_source_are_merged(mode in [Upsert]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(new_rows(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])).of_source("a"),
            write(new_rows(1, vec![ins(&t, vec![i(1), s("b"), i(2)])])).of_source("b"),
            stats_are(1, 1),
            expect("SELECT id, name FROM items", &[&["1", "b"]]),
        ]
    }

    /// A truncate empties the table, so new rows are appended again; a
    /// failed batch (a truncate, then one UUID twice under another
    /// program's unique index) leaves what the writer knows about the
    /// table as it was: it still holds a row, so new rows are merged.
    fn truncate_empties_and_a_rolled_back_batch_restores_what_the_table_holds(mode in [Upsert]) {
        let (t, ids) = (items(), ids());
        let twice = vec![
            trunc(&t),
            ins(&ids, vec![i(2), s(A_UUID)]),
            ins(&ids, vec![i(3), s(A_UUID)]),
        ];
        vec![
            open(mode, &[&t, &ids]),
            write(batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])),
            UNIQUE_U,
            fail(batch(2, twice), "ids"),
            write(new_rows(3, vec![ins(&t, vec![i(1), s("again"), i(3)])])),
            stats_are(0, 2),
            write(batch(4, vec![trunc(&t)])),
            write(new_rows(5, vec![ins(&t, vec![i(1), s("fresh"), i(5)])])),
            stats_are(1, 2),
            expect("SELECT id, name FROM items", &[&["1", "fresh"]]),
        ]
    }

    /// A batch promised new whose changes include a delete is merged, its
    /// inserts too.
    fn a_batch_of_new_rows_with_a_delete_is_merged(mode in [Upsert]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(new_rows(
                1,
                vec![ins(&t, vec![i(1), s("a"), i(1)]), del(&t, vec![i(1), s("a"), i(1)])],
            )),
            stats_are(0, 2),
            expect("SELECT id FROM items", &[]),
        ]
    }

    /// Append and history targets never take the shortcut: rows promised new
    /// are copied like any others.
    fn new_rows_into_append_and_history_targets_are_copied(mode in [Append, History]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(new_rows(1, vec![ins(&t, vec![i(1), s("a"), i(1)])])),
            stats_are(0, 1),
            expect("SELECT id, name, qty FROM items", &[&["1", "a", "1"]]),
        ]
    }

    /// The table may have columns the source no longer sends: appended new
    /// rows leave them NULL.
    fn new_rows_leave_columns_the_source_no_longer_sends_null(mode in [Upsert]) {
        let wide = table(
            "items",
            &[
                ("id", DataType::Int64),
                ("gone", DataType::Text),
                ("name", DataType::Text),
                ("qty", DataType::Int32),
            ],
            &[0],
        );
        let t = items();
        vec![
            open(mode, &[&wide]),
            open(mode, &[&t]),
            write(new_rows(1, vec![ins(&t, vec![i(1), s("a"), i(7)])])),
            stats_are(1, 0),
            expect("SELECT id, gone, name, qty FROM items", &[&["1", "NULL", "a", "7"]]),
        ]
    }

    /// JSON text is checked on the way in either way: a document DuckDB
    /// refuses fails the batch whether its rows were promised new or not.
    fn new_rows_with_invalid_json_fail_as_merged_rows_do(promised in [true, false]) {
        let t = table("docs", &[("id", DataType::Int64), ("doc", DataType::Json)], &[0]);
        let json = |id, doc: &str| ins(&t, vec![i(id), Value::Json(doc.into())]);
        let promise = |b: Batch| Batch {
            inserts_are_new: promised,
            continues: false,
            ..b
        };
        vec![
            open(Upsert, &[&t]),
            fail(promise(batch(1, vec![json(1, "{\"ok\": 1}"), json(2, "{not json")])), "docs"),
            write(promise(batch(2, vec![json(3, "[1, {}]")]))),
            expect("SELECT id, CAST(doc AS VARCHAR) FROM docs", &[&["3", "[1, {}]"]]),
        ]
    }

    /// Blocks of new rows go through the appender as they are, and wait in
    /// an open transaction while they are fewer than a DuckDB row group; a
    /// group with a streamed change commits it, and its block becomes
    /// inserts after its batch's changes. Once the table may hold anything,
    /// a block promised new is merged, as is a block never promised new.
    fn blocks_are_appended_or_applied_as_their_inserts(mode in [Upsert]) {
        let t = items();
        let plain = Batch {
            inserts_are_new: false,
            continues: false,
            ..new_block(6, &t, &[vec![i(6), s("f"), i(6)]])
        };
        vec![
            open(mode, &[&t]),
            group(vec![
                new_block(1, &t, &[vec![i(1), s("a"), i(1)], vec![i(2), s("b"), i(2)]]),
                new_block(2, &t, &[vec![i(3), s("c"), i(3)]]),
            ]),
            stats_are(3, 0),
            Step::Uncommitted(true),
            group(vec![
                new_block(3, &t, &[vec![i(4), s("d"), i(4)]]),
                batch(4, vec![upd(&t, vec![i(4), s("d2"), i(40)])]),
            ]),
            stats_are(3, 2),
            Step::Uncommitted(false),
            write(new_block(5, &t, &[vec![i(1), s("a2"), i(10)], vec![i(5), s("e"), i(5)]])),
            stats_are(3, 4),
            write(plain),
            stats_are(3, 5),
            expect("SELECT id, name, qty FROM items ORDER BY id", &[
                &["1", "a2", "10"],
                &["2", "b", "2"],
                &["3", "c", "3"],
                &["4", "d2", "40"],
                &["5", "e", "5"],
                &["6", "f", "6"],
            ]),
            checkpoints(&[&["p", "src", "6"]]),
        ]
    }

    /// Blocks held in an open transaction are lost with the writer, as is
    /// their checkpoint: the source sends them again, nothing is doubled.
    fn blocks_left_uncommitted_vanish_with_their_checkpoint(mode in [Upsert]) {
        let t = items();
        vec![
            open(mode, &[&t]),
            write(new_block(1, &t, &[vec![i(1), s("a"), i(1)]])),
            Step::Commit,
            write(new_block(2, &t, &[vec![i(2), s("b"), i(2)]])),
            Step::Uncommitted(true),
            open(mode, &[&t]).holding(&[("src", 1)]),
            expect("SELECT id, name FROM items ORDER BY id", &[&["1", "a"]]),
        ]
    }
}

// ---------------------------------------------------------------------------
// Tests of other shapes
// ---------------------------------------------------------------------------

/// Upsert needs a key: a table without one is refused when prepared, or
/// at the latest when written to, also when first seen mid-stream.
#[test]
fn upsert_without_a_key_is_refused() {
    let (_dir, path) = db();
    let t = table("nokey", &[("v", DataType::Text)], &[]);
    let mut w = Writer::open(&path, "p", Upsert, "main").unwrap();
    let refused = match w.prepare(std::slice::from_ref(&t)) {
        Err(e) => e.to_string(),
        Ok(_) => w
            .write("src", &batch(1, vec![ins(&t, vec![s("x")])]))
            .unwrap_err()
            .to_string(),
    };
    assert!(refused.contains("key"), "{refused}");
    let err = w
        .write("src", &batch(1, vec![ins(&t, vec![s("x")])]))
        .unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    drop(w);
    assert!(rows(&path, &format!("SELECT * FROM {CHECKPOINT_TABLE}")).is_empty());
}

/// History rows get `_synced_at`, and dead letters `recorded_at`: the time
/// they were written.
#[test]
fn history_rows_and_dead_letters_are_stamped_when_written() {
    let (_dir, path) = db();
    let t = items();
    let mut w = writer(&path, History, &[&t]);
    let before = Utc::now().timestamp_micros();
    let mut b = batch(
        1,
        vec![
            ins(&t, vec![i(1), s("a"), i(1)]),
            upd(&t, vec![i(1), s("b"), i(2)]),
        ],
    );
    b.dead_letters.push(dead_letter("x", "bad"));
    w.write("src", &b).unwrap();
    w.write("src", &batch(2, vec![del_key(&t, &[i(1)])]))
        .unwrap();
    let after = Utc::now().timestamp_micros();
    drop(w);
    for (column, table) in [("_synced_at", "items"), ("recorded_at", DEAD_LETTER_TABLE)] {
        let sql = format!(
            "SELECT min(epoch_us({column})), max(epoch_us({column})), count({column}), count(*)
             FROM {table}"
        );
        let got = &rows(&path, &sql)[0];
        let (min, max): (i64, i64) = (got[0].parse().unwrap(), got[1].parse().unwrap());
        assert!(
            before <= min && max <= after,
            "{column}: {before} <= {min} <= {max} <= {after}"
        );
        assert_eq!(got[2], got[3], "{column}: on every row");
    }
}

/// The DuckDB column type each engine type is created as.
#[test]
fn every_engine_type_has_its_duckdb_column_type() {
    let dec = |precision, scale| DataType::Decimal { precision, scale };
    let list = |item| DataType::List {
        item: Box::new(item),
    };
    let cases = [
        (DataType::Boolean, "BOOLEAN"),
        (DataType::Int32, "INTEGER"),
        (DataType::Int64, "BIGINT"),
        (DataType::Float64, "DOUBLE"),
        (dec(38, 10), "DECIMAL(38,10)"),
        (dec(5, 2), "DECIMAL(5,2)"),
        (DataType::Text, "VARCHAR"),
        (DataType::Bytes, "BLOB"),
        (DataType::Date, "DATE"),
        (DataType::Time, "TIME"),
        (DataType::Timestamp, "TIMESTAMP"),
        (DataType::TimestampTz, "TIMESTAMP WITH TIME ZONE"),
        (DataType::Uuid, "UUID"),
        (DataType::Json, "JSON"),
        (DataType::Interval, "INTERVAL"),
        (list(DataType::Int64), "BIGINT[]"),
        (list(DataType::Text), "VARCHAR[]"),
        (list(DataType::Json), "JSON[]"),
    ];
    let names: Vec<String> = (0..cases.len()).map(|n| format!("c{n}")).collect();
    let mut columns = vec![("id", DataType::Int64)];
    columns.extend(
        names
            .iter()
            .zip(&cases)
            .map(|(n, (t, _))| (n.as_str(), t.clone())),
    );
    let t = table("typed", &columns, &[0]);
    let (_dir, path) = db();
    drop(writer(&path, Upsert, &[&t]));
    let created: BTreeMap<String, String> = rows(
        &path,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'typed'",
    )
    .into_iter()
    .map(|mut row| (row.remove(0), row.remove(0)))
    .collect();
    assert_eq!(created.len(), cases.len() + 1, "{created:?}");
    for (name, (data_type, want)) in names.iter().zip(&cases) {
        assert_eq!(created[name], *want, "{data_type:?}");
    }
}

/// `coerce(id, ...)` with a column `name` of `data_type` per case.
fn coerce_table(cases: &[(&str, DataType)]) -> Arc<TableSchema> {
    let mut columns = vec![("id", DataType::Int64)];
    columns.extend(cases.iter().map(|(n, t)| (*n, t.clone())));
    table("coerce", &columns, &[0])
}

/// Values the type map accepts for a column of another engine type, or at
/// the edge of a decimal's precision, stored exactly.
#[test]
fn type_coercions_store_the_value_exactly() {
    let dec = |precision, scale| DataType::Decimal { precision, scale };
    let d = |x: &str| Value::Decimal(x.into());
    // (column, its type, the value written, as DuckDB shows it)
    let cases = [
        ("int_into_double", DataType::Float64, i(3), "3.0"),
        ("int_into_decimal", dec(12, 3), i(-42), "-42.000"),
        (
            "long_int_into_wide_decimal",
            dec(38, 20),
            i(-999_999_999_999_999_999),
            "-999999999999999999.00000000000000000000",
        ),
        ("zeros_past_the_scale", dec(12, 3), d("+1.50000"), "1.500"),
        (
            "the_smallest_fraction",
            dec(38, 20),
            d("-0.00000000000000000001"),
            "-0.00000000000000000001",
        ),
        (
            "precision_digits",
            dec(12, 3),
            d("-999999999.999"),
            "-999999999.999",
        ),
        (
            "precision_digits_wide",
            dec(38, 20),
            d("999999999999999999.99999999999999999999"),
            "999999999999999999.99999999999999999999",
        ),
        (
            "uuid_as_upper_case_text",
            DataType::Uuid,
            s("F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6"),
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
    ];
    let columns: Vec<(&str, DataType)> = cases.iter().map(|(n, t, _, _)| (*n, t.clone())).collect();
    let t = coerce_table(&columns);
    let (_dir, path) = db();
    let mut w = writer(&path, Upsert, &[&t]);
    let mut row = vec![i(1)];
    row.extend(cases.iter().map(|(_, _, v, _)| v.clone()));
    assert!(w.write("src", &batch(1, vec![ins(&t, row)])).unwrap());
    assert!(w.dead_letters().unwrap().is_empty());
    drop(w);
    let select: Vec<String> = cases
        .iter()
        .map(|(n, ..)| format!("CAST({n} AS VARCHAR)"))
        .collect();
    let got = rows(&path, &format!("SELECT {} FROM coerce", select.join(", ")));
    assert_eq!(got.len(), 1, "{got:?}");
    for ((name, _, value, want), shown) in cases.iter().zip(&got[0]) {
        assert_eq!(shown, want, "{name}: {value:?}");
    }
}

/// Values the type map refuses for their column (never rounded, never
/// cut): each costs its row, as a dead letter naming the column, and its
/// batch still moves the checkpoint.
#[test]
fn type_refusals_cost_their_row() {
    let dec = |precision, scale| DataType::Decimal { precision, scale };
    let d = |x: &str| Value::Decimal(x.into());
    // (column, its type, a value it refuses)
    let cases = [
        (
            "more_fraction_digits_than_the_scale",
            dec(12, 3),
            d("1.0005"),
        ),
        ("an_exponent", dec(12, 3), d("1e5")),
        ("a_double_into_a_decimal", dec(12, 3), Value::Float(1.5)),
        ("more_integer_digits_than_fit", dec(12, 3), d("1000000000")),
        (
            "an_int_with_more_digits_than_fit",
            dec(12, 3),
            i(1_000_000_000),
        ),
        (
            "an_int_too_long_for_a_wide_decimal",
            dec(38, 20),
            i(i64::MAX),
        ),
        (
            "more_integer_digits_than_fit_wide",
            dec(38, 20),
            d("-1000000000000000000"),
        ),
        ("text_into_a_double", DataType::Float64, s("1.5")),
        (
            "a_date_into_a_timestamp",
            DataType::Timestamp,
            Value::Date(1),
        ),
    ];
    let columns: Vec<(&str, DataType)> = cases.iter().map(|(n, t, _)| (*n, t.clone())).collect();
    let t = coerce_table(&columns);
    let (_dir, path) = db();
    let mut w = writer(&path, Upsert, &[&t]);
    for (n, (name, _, value)) in cases.iter().enumerate() {
        let seq = n as u64 + 1;
        let mut row = vec![Value::Null; t.columns.len()];
        row[0] = i(1);
        row[n + 1] = value.clone();
        assert!(
            w.write("src", &batch(seq, vec![ins(&t, row)])).unwrap(),
            "{name}"
        );
        let kept = w.dead_letters().unwrap();
        assert_eq!(kept.len(), n + 1, "{name}: {kept:?}");
        let one = kept.last().unwrap();
        assert_eq!(one.seq, seq, "{name}");
        assert!(
            one.reason.contains(&format!("`{name}`")),
            "{name}: {value:?}: {}",
            one.reason
        );
    }
    drop(w);
    assert!(rows(&path, "SELECT id FROM coerce").is_empty());
    assert_eq!(
        rows(&path, &format!("SELECT seq FROM {CHECKPOINT_TABLE}")),
        vec![r(&[&cases.len().to_string()])]
    );
}

/// A table of every type (its own values, not only the kit's edges),
/// with `extra` columns added.
fn every_type(extra: &[(&str, DataType)]) -> Arc<TableSchema> {
    let dec = DataType::Decimal {
        precision: 38,
        scale: 10,
    };
    let mut columns = vec![
        ("id", DataType::Int64),
        ("c_boolean", DataType::Boolean),
        ("c_int", DataType::Int32),
        ("c_bigint", DataType::Int64),
        ("c_double", DataType::Float64),
        ("c_decimal", dec.clone()),
        ("c_decimal_neg", dec),
        ("c_text", DataType::Text),
        ("c_bytes", DataType::Bytes),
        ("c_date", DataType::Date),
        ("c_time", DataType::Time),
        ("c_timestamp", DataType::Timestamp),
        ("c_timestamptz", DataType::TimestampTz),
        ("c_uuid", DataType::Uuid),
        ("c_json", DataType::Json),
    ];
    columns.extend(extra.iter().cloned());
    table("every_type", &columns, &[0])
}

const TEXT: &str = "naïve \"double\" 'single' back\\slash 日本語 🦆";
const JSON_DOC: &str = r#"{"b": [1, 2.50, null, true], "a": "ü \"q\"", "n": {}}"#;

/// A row of values for [`every_type`]'s columns, then `extra`.
fn every_value_row(extra: &[Value]) -> Row {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let mut row = vec![
        i(1),
        Value::Bool(true),
        i(i64::from(i32::MIN)),
        i(i64::MAX),
        Value::Float(-1234.5678e-3),
        Value::Decimal("1234567890123456789012345678.0123456789".into()),
        Value::Decimal("-9876543210987654321.0000000001".into()),
        s(TEXT),
        Value::Bytes(vec![0x00, 0xff, b'A', 0x10, b'\\', b'\'']),
        Value::Date(i32::try_from((date - epoch).num_days()).unwrap()),
        Value::Time(86_399_999_999),
        Value::Timestamp(
            date.and_hms_micro_opt(13, 14, 15, 123_456)
                .unwrap()
                .and_utc()
                .timestamp_micros(),
        ),
        Value::TimestampTz(micros("2024-02-29T13:14:15.654321+02:00")),
        // Its top bit set (DuckDB stores UUIDs with that bit flipped).
        Value::Uuid([
            0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e,
            0x6b, 0xf6,
        ]),
        Value::Json(JSON_DOC.into()),
    ];
    row.extend(extra.iter().cloned());
    row
}

/// New rows read back the same as the same rows merged by key, whichever
/// path appends them: rows with lists (still staged first), rows without
/// (straight into the table, intervals included), and blocks (through the
/// appender as they are).
#[test]
fn every_path_of_new_rows_stores_what_the_merge_stores() {
    let list = |item| DataType::List {
        item: Box::new(item),
    };
    let interval = (
        ("c_interval", DataType::Interval),
        Value::Interval {
            months: 14,
            days: -3,
            micros: 4_000_001,
        },
    );
    let lists = [
        (
            ("c_ints", list(DataType::Int64)),
            Value::List(vec![i(1), Value::Null, i(-3)]),
        ),
        (
            ("c_texts", list(DataType::Text)),
            Value::List(vec![s(TEXT), s("a\nb\\c"), s("")]),
        ),
        (
            ("c_jsons", list(DataType::Json)),
            Value::List(vec![Value::Json(JSON_DOC.into())]),
        ),
    ];
    let with_lists: Vec<_> = std::iter::once(interval.clone()).chain(lists).collect();
    // (path, the columns added to `every_type`, whether as a block)
    let paths = [
        ("new rows with lists", with_lists, false),
        ("new rows without lists", vec![interval], false),
        ("a block", vec![], true),
    ];
    for (what, extra, as_block) in paths {
        let (columns, values): (Vec<_>, Vec<_>) = extra.into_iter().unzip();
        let t = every_type(&columns);
        let mut nulls = vec![Value::Null; t.columns.len()];
        nulls[0] = i(2);
        let data = [every_value_row(&values), nulls];
        let select: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                format!(
                    "typeof({0}) || ': ' || coalesce(CAST({0} AS VARCHAR), 'NULL')",
                    c.name
                )
            })
            .collect();
        let sql = format!("SELECT {} FROM every_type ORDER BY id", select.join(", "));
        let inserts = || data.iter().map(|row| ins(&t, row.clone())).collect();
        let mut results = Vec::new();
        for (appended, b) in [
            (
                true,
                if as_block {
                    new_block(1, &t, &data)
                } else {
                    new_rows(1, inserts())
                },
            ),
            (false, batch(1, inserts())),
        ] {
            let (_dir, path) = db();
            let mut w = writer(&path, Upsert, &[&t]);
            assert!(w.write("src", &b).unwrap(), "{what}");
            let want = if appended { (2, 0) } else { (0, 2) };
            assert_eq!(stats(&w), want, "{what}: appended: {appended}");
            w.commit_open().unwrap();
            drop(w);
            results.push(rows(&path, &sql));
        }
        assert_eq!(results[0], results[1], "{what}: appended, then merged");
        assert_eq!(results[0].len(), 2, "{what}");
        assert!(
            results[0][0].iter().any(|v| v.contains("f81d4fae-7dec")),
            "{what}: {:?}",
            results[0]
        );
    }
}

// ---------------------------------------------------------------------------
// The async sink
// ---------------------------------------------------------------------------

/// The sink resolves its path against the pipeline's folder (creating
/// folders that do not exist yet), passes its check, refuses to write
/// before it is open, writes into its own schema while the bookkeeping
/// stays in `main`, and resumes from its checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn the_sink_writes_into_its_schema_and_keeps_bookkeeping_in_main() {
    let dir = tempfile::tempdir().unwrap();
    let t = items();
    let config = DuckDbTargetConfig {
        path: "out/sink.duckdb".into(),
        schema: "analytics".into(),
        inputs: vec!["src".into()],
        mode: Upsert,
    };
    let mut sink = DuckDbSink::new(config.clone(), dir.path(), "pipe");
    let path = dir.path().join("out/sink.duckdb");
    assert_eq!(sink.path(), path);

    assert!(sink.write("src", Arc::new(batch(1, vec![]))).await.is_err());

    let checks = sink.check().await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].outcome, CheckOutcome::Pass, "{checks:?}");

    let held = sink.open(std::slice::from_ref(&t)).await.unwrap();
    assert!(held.is_empty());
    let mut first = batch(1, vec![ins(&t, vec![i(1), s("a"), i(1)])]);
    first.dead_letters.push(dead_letter("bad", "unreadable"));
    sink.write("src", Arc::new(first)).await.unwrap();
    sink.close().await.unwrap();
    drop(sink);

    let mut sink = DuckDbSink::new(config, dir.path(), "pipe");
    let held = sink.open(std::slice::from_ref(&t)).await.unwrap();
    assert_eq!(held, BTreeMap::from([("src".to_owned(), position(1))]));
    drop(sink);

    assert_eq!(
        rows(&path, "SELECT id, name, qty FROM analytics.items"),
        vec![r(&["1", "a", "1"])]
    );
    assert_eq!(
        rows(
            &path,
            &format!("SELECT pipeline, source, raw, seq FROM main.{DEAD_LETTER_TABLE}")
        ),
        vec![r(&["pipe", "src", "bad", "1"])]
    );
    assert_eq!(
        rows(
            &path,
            &format!("SELECT pipeline, source, seq FROM main.{CHECKPOINT_TABLE}")
        ),
        vec![r(&["pipe", "src", "1"])]
    );
    assert_eq!(
        rows(
            &path,
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL"
        ),
        vec![
            r(&["analytics", "items"]),
            r(&["main", CHECKPOINT_TABLE]),
            r(&["main", DEAD_LETTER_TABLE]),
        ]
    );
}

/// A writer of an upsert `items` table holding `rows` rows (`id` 0 to
/// `rows - 1`, name `n <id>`, qty 0), the first written through a writer,
/// the rest by DuckDB itself (fast).
fn large_items(path: &Path, t: &Arc<TableSchema>, rows: i64) -> Writer {
    let mut w = writer(path, Upsert, &[t]);
    assert!(
        w.write("src", &batch(1, vec![ins(t, vec![i(0), s("n 0"), i(0)])]))
            .unwrap()
    );
    drop(w);
    {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO items SELECT i, 'n ' || i, 0 FROM range(1, {rows}) t(i)"
        ))
        .unwrap();
    }
    writer(path, Upsert, &[t])
}

/// Updates and deletes spread over a large table: DuckDB keeps 16 KB for
/// every 2,048-row vector a transaction deletes from until a checkpoint,
/// and cannot write it out, so one batch touching every vector of a
/// 13-million-row table (about 100 MB of them) failed at the writer's
/// memory limit with "failed to pin block", batch after batch. The writer
/// makes room for a transaction's deletes, checkpoints after it, and
/// every batch lands: updated rows, deleted rows, the rest untouched.
#[test]
fn updates_spread_over_a_large_table_land_within_the_memory_limit() {
    const ROWS: i64 = 13_000_000;
    const SPACING: i64 = 2048;
    let (_dir, path) = db();
    let t = items();
    let mut w = large_items(&path, &t, ROWS);
    // Batch 2 updates a row of every vector; batch 3 deletes another row
    // of every vector and updates the first ones again.
    let touched: Vec<i64> = (0..ROWS / SPACING).map(|v| v * SPACING + 7).collect();
    let updates: Vec<Change> = touched
        .iter()
        .map(|&k| upd(&t, vec![i(k), s("updated"), i(1)]))
        .collect();
    assert!(w.write("src", &batch(2, updates)).unwrap());
    let mut third: Vec<Change> = touched.iter().map(|&k| del_key(&t, &[i(k + 1)])).collect();
    third.extend(
        touched
            .iter()
            .map(|&k| upd(&t, vec![i(k), s("updated"), i(2)])),
    );
    assert!(w.write("src", &batch(3, third)).unwrap());
    assert!(w.stats().checkpoints >= 2, "{:?}", w.stats());
    drop(w);
    let n = touched.len();
    let expected = [
        ROWS.to_string(),
        n.to_string(),
        n.to_string(),
        (ROWS - n as i64).to_string(),
    ];
    assert_eq!(
        rows(
            &path,
            &format!(
                "SELECT count(*) + {n}, count(*) FILTER (WHERE name = 'updated' AND qty = 2),
                        {n} - count(*) FILTER (WHERE (id - 8) % {SPACING} = 0 AND id < {n} * {SPACING}),
                        count(*) FILTER (WHERE name = 'n ' || id AND qty = 0) + {n}
                 FROM items"
            )
        ),
        vec![expected.to_vec()]
    );
}

/// The memory deletes hold stays within the writer's room however batches
/// queue up: a group of batches whose deletes are spread over a large
/// table goes in several transactions, each followed by a checkpoint once
/// enough has piled up, and updates of rows stored together (a changed
/// file's, in its order) are counted by the vectors they really touch, not
/// one each. Before, the group was one transaction of 3,000 touched vectors
/// and the 10,000 updates were taken as 10,000: DuckDB's memory limit grew
/// by 47 and 156 MB for them.
#[test]
fn deletes_spread_over_a_large_table_stay_within_the_room() {
    const ROWS: i64 = 8_192_000;
    const PER_BATCH: i64 = 600;
    let (_dir, path) = db();
    let t = items();
    let mut w = large_items(&path, &t, ROWS);
    // Five batches, each deleting one row of 600 vectors of its own.
    let group: Vec<Batch> = (0..5)
        .map(|b| {
            let deletes = (0..PER_BATCH)
                .map(|v| del_key(&t, &[i(((b * PER_BATCH + v) * 2048) + 100)]))
                .collect();
            batch(2 + b as u64, deletes)
        })
        .collect();
    let refs: Vec<&Batch> = group.iter().collect();
    assert_eq!(w.write_group("src", &refs).unwrap(), 5);
    let after_group = w.stats();
    assert!(after_group.commits >= 3, "{after_group:?}");
    assert!(after_group.checkpoints >= 1, "{after_group:?}");
    // 10,000 updates of consecutive keys past those deleted: five vectors.
    let updates = (7_000_000..7_010_000)
        .map(|k| upd(&t, vec![i(k), s("updated"), i(1)]))
        .collect();
    assert!(w.write("src", &batch(7, updates)).unwrap());
    let stats = w.stats();
    assert!(stats.delete_room_mb <= 32, "{stats:?}");
    drop(w);
    assert_eq!(
        rows(
            &path,
            "SELECT count(*), count(*) FILTER (WHERE name = 'updated'),
                    count(*) FILTER (WHERE id % 2048 = 100 AND id < 3000 * 2048)
             FROM items"
        ),
        vec![vec![
            (ROWS - 5 * PER_BATCH).to_string(),
            "10000".to_string(),
            "0".to_string(),
        ]]
    );
    assert_eq!(
        rows(
            &path,
            &format!("SELECT seq FROM main.{CHECKPOINT_TABLE} WHERE pipeline = 'p'")
        ),
        vec![vec!["7".to_string()]]
    );
}

/// A group of batches that update more rows than the room counts, all in
/// a table of a few vectors, stays one transaction: no table is counted as
/// more vectors than it holds.
#[test]
fn a_group_of_updates_to_a_small_table_stays_one_transaction() {
    let (_dir, path) = db();
    let t = items();
    let mut w = writer(&path, Upsert, &[&t]);
    let inserts = (0..4000)
        .map(|k| ins(&t, vec![i(k), s("n"), i(0)]))
        .collect();
    assert!(w.write("src", &batch(1, inserts)).unwrap());
    let before = w.stats().commits;
    let group: Vec<Batch> = (0..4)
        .map(|b| {
            let updates = (0..1000)
                .map(|k| upd(&t, vec![i(k * 4 + b), s("u"), i(b)]))
                .collect();
            batch(2 + b as u64, updates)
        })
        .collect();
    let refs: Vec<&Batch> = group.iter().collect();
    assert_eq!(w.write_group("src", &refs).unwrap(), 4);
    assert_eq!(w.stats().commits, before + 1, "{:?}", w.stats());
    drop(w);
    assert_eq!(
        rows(
            &path,
            "SELECT count(*), count(*) FILTER (WHERE name = 'u') FROM items"
        ),
        vec![vec!["4000".to_string(), "4000".to_string()]]
    );
}
