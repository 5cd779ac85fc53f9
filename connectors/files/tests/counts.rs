//! Record counts for the snapshot's progress, per format.

#![allow(clippy::unwrap_used)]

use syncline_files::FileFormat;
use syncline_files::format::record_count;

fn count(name: &str, text: &str, format: FileFormat) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    record_count(&path, format).unwrap()
}

#[test]
fn csv_counts_lines_after_the_header_with_or_without_a_last_newline() {
    assert_eq!(count("a.csv", "id,v\n1,a\n2,b\n", FileFormat::Csv), 2);
    assert_eq!(count("a.csv", "id,v\n1,a\n2,b", FileFormat::Csv), 2);
    assert_eq!(count("a.csv", "id,v\n", FileFormat::Csv), 0);
    assert_eq!(count("a.csv", "", FileFormat::Csv), 0);
}

#[test]
fn json_lines_count_every_record_and_no_blank_line() {
    // There is no header: the first record counts (it was one short).
    assert_eq!(
        count("a.jsonl", "{\"id\":1}\n{\"id\":2}\n", FileFormat::Jsonl),
        2
    );
    assert_eq!(
        count("a.jsonl", "{\"id\":1}\n\n  \n{\"id\":2}", FileFormat::Jsonl),
        2
    );
}

#[test]
fn parquet_counts_rows_from_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT range AS id, chr(10) || 'x' AS v FROM range(1234)) TO '{}' (FORMAT parquet)",
        path.display()
    ))
    .unwrap();
    assert_eq!(record_count(&path, FileFormat::Parquet).unwrap(), 1234);
}
