//! What a transform makes of every kind of change, as snapshots: inserts,
//! updates (staying in, moving out of and into a filter, changing key),
//! deletes, truncates, unchanged TOAST values, several changes of one key
//! in one batch, rows the SQL fails on, lookups, and schema checks.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::sync::Arc;

use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::model::{
    Change, Column, DataType, Op, Row, TableId, TableSchema, Value, row_json,
};
use syncline_transform::{TransformDef, TransformError, Transforms, locate_error};

fn orders() -> Arc<TableSchema> {
    let col = |name: &str, data_type: DataType| Column {
        name: name.into(),
        data_type,
        nullable: true,
    };
    Arc::new(TableSchema {
        id: TableId {
            origin: "shop".into(),
            name: "orders".into(),
        },
        columns: vec![
            col("id", DataType::Int64),
            col("status", DataType::Text),
            col(
                "amount",
                DataType::Decimal {
                    precision: 12,
                    scale: 2,
                },
            ),
            col("note", DataType::Text),
        ],
        key: vec![0],
        version: 1,
    })
}

fn row(id: i64, status: &str, amount: &str, note: Value) -> Row {
    vec![
        Value::Int(id),
        Value::Text(status.into()),
        Value::Decimal(amount.into()),
        note,
    ]
}

fn change(op: Op, before: Option<Row>, after: Option<Row>) -> Change {
    Change {
        op,
        table: orders(),
        before,
        after,
    }
}

fn batch(changes: Vec<Change>) -> Batch {
    Batch {
        position: Position {
            seq: 7,
            state: serde_json::Value::Null,
        },
        kind: BatchKind::Stream,
        txid: Some("42".into()),
        commit_time: None,
        changes,
        block: None,
        dead_letters: Vec::new(),
        inserts_are_new: false,
        continues: false,
    }
}

const FILTER: &str = "SELECT id, upper(status) AS status, amount * 2 AS doubled, note
FROM source
WHERE status <> 'cancelled'";

fn transforms(sql: &str) -> Transforms {
    let mut t = Transforms::new(
        vec![TransformDef {
            name: "open_orders".into(),
            input: orders().id.clone(),
            sql: sql.into(),
            lookups: Vec::new(),
        }],
        std::env::temp_dir().as_path(),
    )
    .unwrap();
    t.derive_all(&[orders()]).unwrap();
    t
}

/// The output part of a batch, one line per change or dead letter.
fn render(b: &Batch) -> String {
    let mut out = String::new();
    for c in b
        .changes
        .iter()
        .filter(|c| c.table.id.origin == "open_orders")
    {
        let _ = writeln!(
            out,
            "{:?} before={} after={}",
            c.op,
            row_json(&c.table, c.before.as_ref()),
            row_json(&c.table, c.after.as_ref())
        );
    }
    for d in &b.dead_letters {
        let _ = writeln!(
            out,
            "DEAD {} stage={} reason={} row={} replayable={}",
            d.table,
            d.stage.as_str(),
            d.reason.lines().next().unwrap_or(""),
            d.raw,
            d.kept.is_some()
        );
    }
    out
}

fn run(sql: &str, changes: Vec<Change>) -> String {
    let mut t = transforms(sql);
    let mut b = batch(changes);
    t.apply_batch(&mut b).unwrap();
    // The input's own changes stay in the batch for targets that take them.
    assert!(b.changes.iter().any(|c| c.table.id.name == "orders"));
    render(&b)
}

#[test]
fn output_schema_is_derived_from_the_sql() {
    let mut t = Transforms::new(
        vec![TransformDef {
            name: "open_orders".into(),
            input: orders().id.clone(),
            sql: FILTER.into(),
            lookups: Vec::new(),
        }],
        std::env::temp_dir().as_path(),
    )
    .unwrap();
    let out = t.derive_all(&[orders()]).unwrap();
    insta::assert_snapshot!(
        out[0]
            .columns
            .iter()
            .map(|c| format!("{} {} nullable={}", c.name, c.data_type, c.nullable))
            .collect::<Vec<_>>()
            .join("\n"),
        @r"
    id bigint nullable=false
    status text nullable=true
    doubled decimal(18,2) nullable=true
    note text nullable=true
    "
    );
    assert_eq!(out[0].key_names(), vec!["id"]);
    assert_eq!(out[0].id.to_string(), "open_orders.open_orders");
}

#[test]
fn inserts_run_through_the_sql_and_filtered_inserts_vanish() {
    insta::assert_snapshot!(run(FILTER, vec![
        change(Op::Insert, None, Some(row(1, "placed", "10.50", Value::Text("a".into())))),
        change(Op::Insert, None, Some(row(2, "cancelled", "3.00", Value::Null))),
    ]), @r#"Insert before=null after={"id":1,"status":"PLACED","doubled":"21.00","note":"a"}"#);
}

#[test]
fn updates_stay_move_out_of_and_into_the_filter() {
    insta::assert_snapshot!(run(FILTER, vec![
        // stays in
        change(Op::Update, Some(row(1, "placed", "10.50", Value::Null)), Some(row(1, "paid", "10.50", Value::Null))),
        // moves out: becomes a delete of the key
        change(Op::Update, Some(row(2, "placed", "1.00", Value::Null)), Some(row(2, "cancelled", "1.00", Value::Null))),
        // moves in: an update of a row the target lacks (upsert inserts it)
        change(Op::Update, Some(row(3, "cancelled", "2.00", Value::Null)), Some(row(3, "placed", "2.00", Value::Null))),
    ]), @r#"
    Update before={"id":1,"status":null,"doubled":null,"note":null} after={"id":1,"status":"PAID","doubled":"21.00","note":null}
    Delete before={"id":2,"status":null,"doubled":null,"note":null} after=null
    Update before={"id":3,"status":null,"doubled":null,"note":null} after={"id":3,"status":"PLACED","doubled":"4.00","note":null}
    "#);
}

#[test]
fn deletes_pass_the_key_and_truncates_pass_through() {
    insta::assert_snapshot!(run(FILTER, vec![
        change(Op::Delete, Some(vec![Value::Int(5), Value::Null, Value::Null, Value::Null]), None),
        Change { op: Op::Truncate, table: orders(), before: None, after: None },
    ]), @r#"
    Delete before={"id":5,"status":null,"doubled":null,"note":null} after=null
    Truncate before=null after=null
    "#);
}

#[test]
fn key_changing_update_keeps_the_old_key_and_filtered_one_deletes_both() {
    insta::assert_snapshot!(run(FILTER, vec![
        change(Op::Update, Some(row(1, "placed", "1.00", Value::Null)), Some(row(10, "placed", "1.00", Value::Null))),
        change(Op::Update, Some(row(2, "placed", "1.00", Value::Null)), Some(row(20, "cancelled", "1.00", Value::Null))),
    ]), @r#"
    Update before={"id":1,"status":null,"doubled":null,"note":null} after={"id":10,"status":"PLACED","doubled":"2.00","note":null}
    Delete before={"id":2,"status":null,"doubled":null,"note":null} after=null
    Delete before={"id":20,"status":null,"doubled":null,"note":null} after=null
    "#);
}

#[test]
fn unchanged_toast_values_stay_unchanged_through_same_named_columns() {
    insta::assert_snapshot!(run(FILTER, vec![
        change(Op::Update, None, Some(row(1, "paid", "1.00", Value::Unchanged))),
    ]), @r#"Update before={"id":1,"status":null,"doubled":null,"note":null} after={"id":1,"status":"PAID","doubled":"2.00","note":"(unchanged)"}"#);
}

#[test]
fn several_changes_of_one_key_in_a_batch_keep_their_order() {
    insta::assert_snapshot!(run(FILTER, vec![
        change(Op::Insert, None, Some(row(1, "placed", "1.00", Value::Null))),
        change(Op::Update, Some(row(1, "placed", "1.00", Value::Null)), Some(row(1, "paid", "1.00", Value::Null))),
        change(Op::Update, Some(row(1, "paid", "1.00", Value::Null)), Some(row(1, "cancelled", "1.00", Value::Null))),
        change(Op::Insert, None, Some(row(2, "placed", "5.00", Value::Null))),
    ]), @r#"
    Insert before=null after={"id":1,"status":"PLACED","doubled":"2.00","note":null}
    Update before={"id":1,"status":null,"doubled":null,"note":null} after={"id":1,"status":"PAID","doubled":"2.00","note":null}
    Delete before={"id":1,"status":null,"doubled":null,"note":null} after=null
    Insert before=null after={"id":2,"status":"PLACED","doubled":"10.00","note":null}
    "#);
}

#[test]
fn a_row_the_sql_fails_on_is_a_dead_letter_and_the_rest_goes_on() {
    let sql = "SELECT id, status, CAST(note AS INTEGER) AS n FROM source";
    insta::assert_snapshot!(run(sql, vec![
        change(Op::Insert, None, Some(row(1, "placed", "1.00", Value::Text("7".into())))),
        change(Op::Insert, None, Some(row(2, "placed", "1.00", Value::Text("seven".into())))),
        change(Op::Insert, None, Some(row(3, "placed", "1.00", Value::Null))),
    ]), @r#"
    Insert before=null after={"id":1,"status":"placed","n":7}
    Insert before=null after={"id":3,"status":"placed","n":null}
    DEAD open_orders.open_orders stage=transform reason=Conversion Error: Could not convert string 'seven' to INT32 when casting from source column note row={"id":2,"status":"placed","amount":"1.00","note":"seven"} replayable=true
    "#);
}

#[test]
fn a_row_whose_key_the_sql_changes_is_a_dead_letter() {
    let sql = "SELECT id + 1 AS id, status FROM source";
    insta::assert_snapshot!(run(sql, vec![
        change(Op::Insert, None, Some(row(1, "placed", "1.00", Value::Null))),
    ]), @r#"DEAD open_orders.open_orders stage=transform reason=the transform output a row whose key no input row had: key columns must pass through unchanged row={"id":2,"status":"placed"} replayable=false"#);
}

#[test]
fn replay_runs_a_kept_change_through_the_fixed_sql() {
    let bad = "SELECT id, CAST(note AS INTEGER) AS n FROM source";
    let mut t = transforms(bad);
    let mut b = batch(vec![change(
        Op::Insert,
        None,
        Some(row(2, "placed", "1.00", Value::Text("seven".into()))),
    )]);
    t.apply_batch(&mut b).unwrap();
    let kept = b.dead_letters[0].kept.clone().unwrap();
    // Still failing with the same SQL.
    assert!(t.replay("open_orders", &orders(), &kept).unwrap().is_err());
    // Fixed SQL: TRY_CAST.
    let mut fixed = transforms("SELECT id, TRY_CAST(note AS INTEGER) AS n FROM source");
    let out = fixed
        .replay("open_orders", &orders(), &kept)
        .unwrap()
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].op, Op::Insert);
    assert_eq!(
        out[0].after.as_ref().unwrap(),
        &vec![Value::Int(2), Value::Null]
    );
}

#[test]
fn a_lookup_table_is_joined_and_kept_up_to_date() {
    let regions = Arc::new(TableSchema {
        id: TableId {
            origin: "shop".into(),
            name: "statuses".into(),
        },
        columns: vec![
            Column {
                name: "code".into(),
                data_type: DataType::Text,
                nullable: false,
            },
            Column {
                name: "label".into(),
                data_type: DataType::Text,
                nullable: true,
            },
        ],
        key: vec![0],
        version: 1,
    });
    let sql = "SELECT o.id, s.label FROM source o LEFT JOIN statuses s ON s.code = o.status";
    let mut t = Transforms::new(
        vec![TransformDef {
            name: "open_orders".into(),
            input: orders().id.clone(),
            sql: sql.into(),
            lookups: vec![regions.id.clone()],
        }],
        std::env::temp_dir().as_path(),
    )
    .unwrap();
    t.load_lookup(
        &regions,
        &[vec![
            Value::Text("placed".into()),
            Value::Text("Placed".into()),
        ]],
    )
    .unwrap();
    t.derive_all(&[orders(), regions.clone()]).unwrap();
    let mut b = batch(vec![
        Change {
            op: Op::Update,
            table: regions.clone(),
            before: Some(vec![Value::Text("placed".into()), Value::Null]),
            after: Some(vec![
                Value::Text("placed".into()),
                Value::Text("Placed (new label)".into()),
            ]),
        },
        change(
            Op::Insert,
            None,
            Some(row(1, "placed", "1.00", Value::Null)),
        ),
    ]);
    t.apply_batch(&mut b).unwrap();
    insta::assert_snapshot!(render(&b), @r#"Insert before=null after={"id":1,"label":"Placed (new label)"}"#);
}

fn derive_error(sql: &str) -> TransformError {
    derive_error_in(tempfile::tempdir().unwrap().path(), sql)
}

/// Checks `sql` as transform `open_orders` of a pipeline in `dir`.
fn derive_in(dir: &std::path::Path, sql: &str) -> Result<(), TransformError> {
    let mut t = Transforms::new(
        vec![TransformDef {
            name: "open_orders".into(),
            input: orders().id.clone(),
            sql: sql.into(),
            lookups: Vec::new(),
        }],
        dir,
    )
    .unwrap();
    t.derive_all(&[orders()]).map(drop).map_err(|e| e.1)
}

fn derive_error_in(dir: &std::path::Path, sql: &str) -> TransformError {
    derive_in(dir, sql).unwrap_err()
}

#[test]
fn a_second_statement_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("written.csv");
    let sql = format!(
        "SELECT id FROM source;\n  COPY (SELECT 42) TO '{}';\nSELECT id FROM source",
        written.display()
    );
    let e = derive_error_in(dir.path(), &sql);
    assert!(matches!(e, TransformError::Statement { .. }), "{e:?}");
    assert!(!written.exists(), "checking the SQL ran its COPY");
    let located = locate_error(&e, &sql).unwrap();
    assert_eq!(
        (located.line, located.column),
        (Some(2), Some(3)),
        "{located:?}"
    );
    assert!(
        sql[located.offset.unwrap()..].starts_with("COPY"),
        "{located:?}"
    );

    // Two queries are two statements as well.
    let sql = "SELECT id FROM source; SELECT 'a;b' AS id";
    let e = derive_error(sql);
    insta::assert_snapshot!(e.to_string(), @"the transform's SQL holds more than one statement");
    let located = locate_error(&e, sql).unwrap();
    assert_eq!(located.offset, sql.find("SELECT 'a"), "{located:?}");
}

#[test]
fn only_a_query_is_a_transform() {
    for sql in [
        "DROP TABLE source",
        "  INSTALL httpfs",
        "SET enable_external_access = true",
        "ATTACH 'other.duckdb' AS o",
        "CREATE TABLE t AS SELECT * FROM source",
    ] {
        let e = derive_error(sql);
        let TransformError::Statement { message, help, .. } = &e else {
            panic!("{sql}: {e:?}");
        };
        assert!(message.contains("must be one SELECT"), "{sql}: {message}");
        assert!(help.contains("cannot change tables"), "{sql}: {help}");
        let located = locate_error(&e, sql).unwrap();
        assert_eq!(located.offset, Some(sql.len() - sql.trim_start().len()));
    }
    // Every way to write a query passes.
    let dir = tempfile::tempdir().unwrap();
    for sql in [
        "SELECT id FROM source;",
        "WITH s AS (SELECT * FROM source) SELECT id FROM s",
        "FROM source SELECT id",
        "(SELECT id FROM source) UNION ALL (SELECT id FROM source)",
    ] {
        derive_in(dir.path(), sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn transform_sql_reads_files_only_inside_the_pipeline_folder() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("pipeline");
    std::fs::create_dir_all(folder.join("ref")).unwrap();
    std::fs::write(folder.join("ref/labels.csv"), "code,label\npaid,Paid\n").unwrap();
    std::fs::write(root.path().join("secret.csv"), "code,label\nx,y\n").unwrap();
    let inside = folder.join("ref/labels.csv");
    let outside = root.path().join("secret.csv");
    for read in [
        "'ref/labels.csv'".to_owned(),
        "'./ref/labels.csv'".to_owned(),
        format!("'{}'", inside.display()),
    ] {
        let sql = format!(
            "SELECT o.id, l.label FROM source o LEFT JOIN read_csv({read}) l ON l.code = o.status"
        );
        derive_in(&folder, &sql).unwrap_or_else(|e| panic!("{read}: {e}"));
    }
    for read in [
        format!("read_csv('{}')", outside.display()),
        "read_csv('../secret.csv')".to_owned(),
        format!("read_csv('{}/../secret.csv')", folder.display()),
        "read_text('/etc/hostname')".to_owned(),
        "read_csv('https://example.com/a.csv')".to_owned(),
    ] {
        let sql = format!("SELECT o.id, x.* FROM source o, {read} x");
        let e = derive_error_in(&folder, &sql);
        assert!(
            e.to_string().contains("Permission Error"),
            "{read} was not refused: {e}"
        );
    }
}

#[test]
fn dropping_a_key_column_is_refused() {
    let e = derive_error("SELECT status, amount FROM source");
    insta::assert_snapshot!(e.to_string(), @"transform `open_orders` drops key column `id` of `shop.orders`: its output must keep the input's key columns");
}

#[test]
fn sql_errors_carry_their_position() {
    let sql = "SELECT id,\n       statuz\nFROM source";
    let e = derive_error(sql);
    let located = locate_error(&e, sql).unwrap();
    assert_eq!(
        (located.line, located.column),
        (Some(2), Some(8)),
        "{located:?}"
    );
    assert_eq!(&sql[located.offset.unwrap()..][..6], "statuz");
    assert!(located.message.contains("statuz"), "{located:?}");

    // Leading blank lines count, and DuckDB's own `DESCRIBE` prefix does not.
    let sql = "\n  SELECT id FROM source ORDER id";
    let e = derive_error(sql);
    let located = locate_error(&e, sql).unwrap();
    assert!(located.message.contains("syntax error"), "{located:?}");
    assert_eq!(
        (located.line, located.column),
        (Some(2), Some(31)),
        "{located:?}"
    );
    assert_eq!(located.offset, sql.rfind("id"), "{located:?}");

    // Columns count characters, offsets bytes.
    let sql = "SELECT 'ünï', id FROM source ORDER id";
    let located = locate_error(&derive_error(sql), sql).unwrap();
    assert_eq!(located.offset, sql.rfind("id"), "{located:?}");
    assert_eq!(located.column, Some(36), "{located:?}");
}

#[test]
fn types_targets_cannot_store_are_refused_with_a_fix() {
    let e = derive_error("SELECT id, {'a': 1} AS s FROM source");
    match e {
        TransformError::Invalid { message, help } => {
            assert!(message.contains("STRUCT"), "{message}");
            assert!(help.contains("to_json(s)"), "{help}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lookup_file_is_read_relative_to_the_pipeline_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("labels.csv"),
        "code,label\nplaced,Placed\npaid,Paid\n",
    )
    .unwrap();
    let sql = "SELECT o.id, l.label FROM source o LEFT JOIN read_csv('labels.csv') l ON l.code = o.status";
    let mut t = Transforms::new(
        vec![TransformDef {
            name: "open_orders".into(),
            input: orders().id.clone(),
            sql: sql.into(),
            lookups: Vec::new(),
        }],
        dir.path(),
    )
    .unwrap();
    t.derive_all(&[orders()]).unwrap();
    let mut b = batch(vec![
        change(Op::Insert, None, Some(row(1, "paid", "1.00", Value::Null))),
        change(
            Op::Insert,
            None,
            Some(row(2, "shipped", "1.00", Value::Null)),
        ),
    ]);
    t.apply_batch(&mut b).unwrap();
    insta::assert_snapshot!(render(&b), @r#"
    Insert before=null after={"id":1,"label":"Paid"}
    Insert before=null after={"id":2,"label":null}
    "#);
}
