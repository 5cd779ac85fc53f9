//! The search index target against the shared acceptance kit: every
//! scenario writes a fresh index in a folder of its own, removed when it
//! ends.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::value::RawValue;
use syncline_acceptance::{Harness, Target, TextRow, TypeCase, types};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_engine::model::{DataType, Value};
use syncline_search::{SearchSink, SearchTargetConfig, query};

/// One scenario's index folder.
struct Folder {
    dir: tempfile::TempDir,
    /// The mode of the sink last made (rows are read back accordingly).
    mode: Mutex<WriteMode>,
}

fn config(mode: WriteMode) -> SearchTargetConfig {
    SearchTargetConfig {
        path: "index".into(),
        inputs: vec!["src".into()],
        mode,
        commit_rows: 50_000,
        commit_ms: 1000,
        tables: BTreeMap::new(),
    }
}

/// A kept value as the kit reads it: strings as their text, `null` as
/// NULL, anything else as its JSON text exactly as kept.
fn shown(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text == "null" {
        None
    } else if text.starts_with('"') {
        Some(serde_json::from_str::<String>(text).unwrap())
    } else {
        Some(text.to_owned())
    }
}

#[async_trait]
impl Target for Folder {
    fn sink(&self, pipeline: &str, mode: WriteMode) -> Box<dyn Sink> {
        *self.mode.lock().unwrap() = mode;
        Box::new(SearchSink::new(config(mode), self.dir.path(), pipeline))
    }

    async fn rows(&self, table: &str, columns: &[&str]) -> Vec<TextRow> {
        let mode = *self.mode.lock().unwrap();
        let docs = query::documents(&config(mode), self.dir.path(), table).unwrap();
        docs.into_iter()
            .map(|doc| {
                let row: BTreeMap<String, Box<RawValue>> = serde_json::from_str(&doc.row).unwrap();
                columns
                    .iter()
                    .map(|c| match *c {
                        "_seq" => doc.seq.map(|s| s.to_string()),
                        "_op" => doc.op.clone(),
                        c => row.get(c).and_then(|v| shown(v)),
                    })
                    .collect()
            })
            .collect()
    }
}

struct Search;

#[async_trait]
impl Harness for Search {
    async fn target(&self, scenario: &str) -> Box<dyn Target> {
        Box::new(Folder {
            dir: tempfile::Builder::new()
                .prefix(&format!("kit_search_{scenario}_"))
                .tempdir()
                .unwrap(),
            mode: Mutex::new(WriteMode::Upsert),
        })
    }

    fn broken_sink(&self) -> Box<dyn Sink> {
        // A folder inside a file cannot be made.
        Box::new(SearchSink::new(
            SearchTargetConfig {
                path: "/dev/null/index".into(),
                ..config(WriteMode::Upsert)
            },
            std::path::Path::new("/"),
            "kit",
        ))
    }

    fn unstorable(&self) -> Option<(DataType, Value, &'static str, Value)> {
        // Every value has a form in the index's rows (see
        // `syncline_engine::encode`).
        None
    }

    fn types(&self) -> Vec<TypeCase> {
        types::cases(&[
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
            types::TEXT,
            "",
            "line\nbreak\ttab",
            "00ff41105c27",
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
            types::JSON_DOC,
            "P14M3DT3600.000001S",
            "P-1M-2DT-0.000003S",
            "[1,null,3]",
            r#"["a","b c","q\"",""]"#,
        ])
    }
}

syncline_acceptance::sink_acceptance!(Search);
