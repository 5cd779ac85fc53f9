//! Files are read as streams: the records, their raw text, line numbers and
//! the content digest come out as from the whole file, a bad record far
//! into a file keeps its exact text, a reader can stop early, and the
//! progress estimate needs only the file's start.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;

use syncline_engine::model::{Column, DataType, TableId, TableSchema, Value};
use syncline_files::FileFormat;
use syncline_files::format::{
    CsvDialect, Record, content_digest, file_digest, record_count, record_estimate, stream_records,
};

fn schema() -> TableSchema {
    let column = |name: &str, data_type| Column {
        name: name.into(),
        data_type,
        nullable: true,
    };
    TableSchema {
        id: TableId {
            origin: "src".into(),
            name: "items".into(),
        },
        columns: vec![
            column("id", DataType::Int64),
            column("name", DataType::Text),
        ],
        key: vec![0],
        version: 1,
    }
}

const COMMA: CsvDialect = CsvDialect { delimiter: b',' };

/// A reader that hands out at most 7 bytes per call, so records and the
/// reader's buffer boundaries never line up.
struct Trickle<R>(R);

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7);
        self.0.read(&mut buf[..n])
    }
}

fn read_all(text: &[u8], format: FileFormat) -> (Vec<Record>, Option<String>) {
    let mut records = Vec::new();
    let digest = stream_records(
        Path::new("items.csv"),
        "items.csv",
        Trickle(text),
        format,
        COMMA,
        &schema(),
        |r| {
            records.push(r);
            true
        },
    )
    .unwrap();
    (records, digest)
}

#[test]
fn a_bad_csv_record_deep_in_a_file_keeps_its_exact_text_and_line() {
    let mut text = String::from("id,name\n");
    for i in 1..=20_000 {
        text.push_str(&format!("{i},\"name {i}\"\n"));
    }
    // Line 20,002: a key that is not a number, quoted across two lines.
    let bad = "x1,\"two\nlines\"\n";
    text.push_str(bad);
    text.push_str("20001,last\n");
    let (records, digest) = read_all(text.as_bytes(), FileFormat::Csv);
    assert_eq!(records.len(), 20_002);
    let Record::Dead(dead) = &records[20_000] else {
        panic!("record 20,001 is a dead letter: {:?}", records[20_000]);
    };
    assert_eq!(dead.raw, bad.trim_end());
    assert_eq!(dead.line, Some(20_002));
    assert!(dead.reason.contains("id"), "{}", dead.reason);
    let Record::Row(last) = &records[20_001] else {
        panic!("the record after it is read");
    };
    assert_eq!(
        last.row,
        vec![Value::Int(20_001), Value::Text("last".into())]
    );
    let Record::Row(first) = &records[0] else {
        panic!("the first record is a row");
    };
    assert_eq!(first.row, vec![Value::Int(1), Value::Text("name 1".into())]);
    assert_eq!(digest, Some(content_digest(text.as_bytes())));
}

#[test]
fn json_lines_stream_with_their_line_numbers_and_digest() {
    let text = b"{\"id\": 1, \"name\": \"one\"}\n\n{\"id\": \"two\"}\n{\"id\": 3}\nnot json\n";
    let (records, digest) = read_all(text, FileFormat::Jsonl);
    assert_eq!(records.len(), 4);
    assert!(matches!(&records[0], Record::Row(r) if r.row[0] == Value::Int(1)));
    let Record::Dead(dead) = &records[1] else {
        panic!("a text key is a dead letter");
    };
    assert_eq!(
        (dead.line, dead.raw.as_str()),
        (Some(3), "{\"id\": \"two\"}")
    );
    assert!(matches!(&records[2], Record::Row(r) if r.row == vec![Value::Int(3), Value::Null]));
    assert!(matches!(&records[3], Record::Dead(d) if d.line == Some(5)));
    assert_eq!(digest, Some(content_digest(text)));
}

#[test]
fn a_reader_told_to_stop_stops_without_a_digest() {
    let text = "id,name\n1,a\n2,b\n3,c\n";
    let mut seen = 0;
    let digest = stream_records(
        Path::new("items.csv"),
        "items.csv",
        text.as_bytes(),
        FileFormat::Csv,
        COMMA,
        &schema(),
        |_| {
            seen += 1;
            seen < 2
        },
    )
    .unwrap();
    assert_eq!((seen, digest), (2, None));
}

#[test]
fn a_header_without_the_key_is_an_error_before_any_record() {
    let err = stream_records(
        Path::new("items.csv"),
        "items.csv",
        "name\na\n".as_bytes(),
        FileFormat::Csv,
        COMMA,
        &schema(),
        |_| panic!("no record is read"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no key column `id`"), "{err}");
}

#[test]
fn the_file_digest_is_the_content_digest_and_the_estimate_reads_only_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let mut text = String::from("id,name\n");
    // Records of one length, as an export writes them: the start tells the
    // mean.
    for i in 0..200_000 {
        text.push_str(&format!("{i:06},name {:03}\n", i % 1000));
    }
    std::fs::write(&path, &text).unwrap();
    assert_eq!(file_digest(&path).unwrap(), content_digest(text.as_bytes()));
    let exact = record_count(&path, FileFormat::Csv).unwrap();
    assert_eq!(exact, 200_000);
    let estimate = record_estimate(&path, FileFormat::Csv).unwrap();
    let off = estimate.abs_diff(exact) as f64 / exact as f64;
    assert!(off < 0.1, "estimate {estimate} for {exact} rows");
    // A file within the first 64 KiB is counted exactly.
    let small = dir.path().join("small.csv");
    std::fs::write(&small, "id,name\n1,a\n2,b\n\n").unwrap();
    assert_eq!(record_estimate(&small, FileFormat::Csv).unwrap(), 2);
}
