//! Preview speed: a 100,000-row sample is loaded once, then a transform's
//! SQL is re-run on it as a user edits it (target: under 200 ms per run).
//!
//! `cargo bench -p syncline-transform --bench preview [-- ROWS RUNS]`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use syncline_engine::model::{Column, DataType, Row, TableId, TableSchema, Value};
use syncline_transform::preview::{Preview, PreviewInput};

fn table() -> Arc<TableSchema> {
    let col = |name: &str, data_type: DataType| Column {
        name: name.into(),
        data_type,
        nullable: true,
    };
    Arc::new(TableSchema {
        id: TableId {
            origin: "app".into(),
            name: "orders".into(),
        },
        columns: vec![
            col("id", DataType::Int64),
            col("customer_id", DataType::Int32),
            col("quantity", DataType::Int64),
            col("score", DataType::Float64),
            col(
                "amount",
                DataType::Decimal {
                    precision: 12,
                    scale: 2,
                },
            ),
            col("status", DataType::Text),
            col("country", DataType::Text),
            col("paid", DataType::Boolean),
            col("created_at", DataType::TimestampTz),
            col("attrs", DataType::Json),
        ],
        key: vec![0],
        version: 1,
    })
}

fn rows(n: usize) -> Vec<Row> {
    const STATUS: [&str; 4] = ["placed", "paid", "shipped", "cancelled"];
    const COUNTRY: [&str; 5] = ["DE", "FR", "NL", "US", "JP"];
    (0..n)
        .map(|i| {
            let i64v = i as i64;
            vec![
                Value::Int(i64v),
                Value::Int(i64v % 5_000),
                Value::Int(i64v % 7),
                Value::Float(i as f64 / 3.0),
                Value::Decimal(format!("{}.{:02}", i % 10_000, i % 100)),
                Value::Text(STATUS[i % 4].into()),
                Value::Text(COUNTRY[i % 5].into()),
                Value::Bool(i % 2 == 0),
                Value::TimestampTz(1_700_000_000_000_000 + i64v * 1_000_000),
                Value::Json(format!("{{\"n\":{}}}", i % 13)),
            ]
        })
        .collect()
}

const SQL: &str = "SELECT id, customer_id, upper(status) AS status, country,
       amount * quantity AS total,
       CASE WHEN score > 1000 THEN 'high' ELSE 'low' END AS band,
       date_trunc('day', created_at) AS day,
       CAST(attrs->>'n' AS INTEGER) AS n
FROM source
WHERE status <> 'cancelled' AND paid";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let runs = args.get(1).copied().unwrap_or(20).max(1);

    let started = Instant::now();
    let input = PreviewInput {
        table: table(),
        rows: rows(n),
        changes: Vec::new(),
        lookups: Vec::new(),
    };
    let mut preview = Preview::load("bench", input, std::env::temp_dir().as_path()).unwrap();
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;

    // One warm-up run, then the measured ones.
    let first = preview.run(SQL).unwrap();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let out = preview.run(SQL).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(out.output_rows, first.output_rows);
    }
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!("preview benchmark: {n} sample rows, {runs} runs of the SQL");
    println!("  load sample            {load_ms:8.1} ms (once)");
    println!(
        "  re-run SQL  median     {:8.1} ms   p95 {:8.1} ms   max {:8.1} ms   (target < 200 ms)",
        p(0.5),
        p(0.95),
        times[times.len() - 1]
    );
    println!(
        "  output                 {} rows, {} columns, {} bytes of Arrow IPC",
        first.output_rows,
        first.columns.len(),
        first.arrow.len()
    );
}
