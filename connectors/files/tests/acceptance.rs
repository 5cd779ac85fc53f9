//! The files source against the shared acceptance kit: one folder per
//! scenario, `items.csv` rewritten whole for every write (a new file
//! replaced in one rename, as an export job writes it).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use syncline_acceptance::source::SOURCE_NAME;
use syncline_acceptance::{Origin, SourceHarness, Write, source_acceptance};
use syncline_engine::connector::Source;
use syncline_files::{FilesSource, FilesSourceConfig};

struct Files;

struct Folder {
    dir: tempfile::TempDir,
    rows: Mutex<BTreeMap<i64, String>>,
    /// `extra` of each row, once the column is added.
    extra: Mutex<Option<BTreeMap<i64, String>>>,
    /// Lines no reader accepts, kept in every rewrite.
    bad: Mutex<Vec<String>>,
}

fn config(path: &Path) -> FilesSourceConfig {
    serde_json::from_value(serde_json::json!({
        "path": path.display().to_string(),
        "debounce_ms": 50,
        "tables": [{ "name": "items", "pattern": "*.csv", "key": ["id"] }],
    }))
    .unwrap()
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Folder {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes `items.csv` anew from the rows, through a rename so the
    /// source never reads half a file.
    fn rewrite(&self) {
        let extra = self.extra.lock().unwrap();
        let mut text = match extra.as_ref() {
            Some(_) => "id,name,extra\n",
            None => "id,name\n",
        }
        .to_owned();
        for (id, name) in self.rows.lock().unwrap().iter() {
            text.push_str(&format!("{id},{}", csv_field(name)));
            if let Some(extra) = extra.as_ref() {
                // An empty field is NULL.
                text.push(',');
                text.push_str(&extra.get(id).map(|v| csv_field(v)).unwrap_or_default());
            }
            text.push('\n');
        }
        for line in self.bad.lock().unwrap().iter() {
            text.push_str(line);
            text.push('\n');
        }
        let tmp = self.dir.path().join("items.csv.partial");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.data().join("items.csv")).unwrap();
    }
}

#[async_trait]
impl Origin for Folder {
    async fn create(&self, rows: &[(i64, &str)]) {
        *self.rows.lock().unwrap() = rows.iter().map(|&(k, v)| (k, v.to_owned())).collect();
        self.rewrite();
    }

    async fn write(&self, writes: &[Write]) {
        {
            let mut rows = self.rows.lock().unwrap();
            for w in writes {
                match w {
                    Write::Upsert(id, name) => {
                        rows.insert(*id, name.clone());
                    }
                    Write::Delete(id) => {
                        rows.remove(id);
                    }
                }
            }
        }
        self.rewrite();
    }

    fn source(&self) -> Box<dyn Source> {
        Box::new(
            FilesSource::new(
                SOURCE_NAME,
                &config(&self.data()),
                self.dir.path(),
                &self.dir.path().join("state"),
            )
            .unwrap(),
        )
    }

    async fn add_column(&self, id: i64, value: &str) {
        *self.extra.lock().unwrap() = Some(BTreeMap::from([(id, value.to_owned())]));
        self.rewrite();
    }

    async fn write_unreadable(&self) -> Option<String> {
        self.bad.lock().unwrap().push("7,seven,extra".into());
        self.rewrite();
        Some("expected 2 fields".into())
    }

    async fn clean_up(self: Box<Self>) {
        self.dir.close().unwrap();
    }
}

#[async_trait]
impl SourceHarness for Files {
    async fn origin(&self, _scenario: &str) -> Box<dyn Origin> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        Box::new(Folder {
            dir,
            rows: Mutex::default(),
            extra: Mutex::default(),
            bad: Mutex::default(),
        })
    }

    fn broken_source(&self) -> Box<dyn Source> {
        let missing = std::env::temp_dir().join("syncline-kit-no-such-folder");
        Box::new(
            FilesSource::new(
                SOURCE_NAME,
                &config(&missing),
                &std::env::temp_dir(),
                &std::env::temp_dir().join("syncline-kit-state"),
            )
            .unwrap(),
        )
    }
}

source_acceptance!(Files);
