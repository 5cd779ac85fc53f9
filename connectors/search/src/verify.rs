//! A table's rows read back from the index in key order, for `syncline
//! verify`: the table's documents as of the last commit, read whole and
//! sorted in memory; keys read again by their `_id`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use syncline_engine::config::WriteMode;
use syncline_engine::encode;
use syncline_engine::model::{Row, TableSchema, Value};
use syncline_engine::verify::{Loaded, RowReader, compare_keys};
use syncline_engine::{Error, Result};
use tantivy::Term;
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;

use crate::error::SearchError;
use crate::index::{self, DOC, Folder, Kept};
use crate::plan::row_id;

pub(crate) struct TableReader {
    folder: PathBuf,
    schema: Arc<TableSchema>,
    rows: Loaded,
}

impl TableReader {
    pub(crate) fn open(folder: PathBuf, schema: Arc<TableSchema>) -> Result<Self, SearchError> {
        let shown = Folder::new(folder.clone());
        let mut rows = Vec::new();
        if let Some((_, fields, reader)) = index::read_current(&shown)? {
            let kept = index::matching(
                &reader.searcher(),
                &fields,
                &fields.of_table(&schema.id.name, DOC),
            )?;
            for k in &kept {
                rows.push(row(&schema, k)?);
            }
        }
        rows.sort_by(|a, b| {
            let key =
                |r: &Row| -> Vec<Value> { schema.key.iter().map(|&i| r[i].clone()).collect() };
            compare_keys(&key(a), &key(b))
        });
        Ok(TableReader {
            folder,
            schema,
            rows: Loaded::new(rows),
        })
    }
}

/// A kept document as a row of `schema`: every column from the kept JSON
/// (a column the document lacks, added since it was written, is NULL).
fn row(schema: &TableSchema, kept: &Kept) -> Result<Row, SearchError> {
    let stored = index::parse_row(&kept.row)?;
    let mut out = Vec::with_capacity(schema.columns.len());
    for c in &schema.columns {
        let value = match stored.get(&c.name) {
            None => Value::Null,
            Some(fragment) => {
                let bad = |detail: String| {
                    SearchError::State(format!("column `{}` of a kept row: {detail}", c.name))
                };
                let doc: serde_json::Value =
                    serde_json::from_str(fragment).map_err(|e| bad(e.to_string()))?;
                encode::parse_json(&c.data_type, &doc).map_err(bad)?
            }
        };
        out.push(value);
    }
    Ok(out)
}

#[async_trait]
impl RowReader for TableReader {
    async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
        self.rows.page(limit).await
    }

    async fn rows(&mut self, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let folder = self.folder.clone();
        let schema = self.schema.clone();
        let keys = keys.to_vec();
        tokio::task::spawn_blocking(move || -> Result<Vec<Row>, SearchError> {
            let shown = Folder::new(folder);
            let Some((_, fields, reader)) = index::read_current(&shown)? else {
                return Ok(Vec::new());
            };
            let searcher = reader.searcher();
            let mut out = Vec::new();
            for key in keys {
                let key = syncline_engine::apply::conform_key(&schema, &key);
                let id =
                    row_id(WriteMode::Upsert, &schema.id.name, &key).map_err(SearchError::State)?;
                let query = TermQuery::new(
                    Term::from_field_text(fields.id, &id),
                    IndexRecordOption::Basic,
                );
                let top = searcher
                    .search(&query, &TopDocs::with_limit(1).order_by_score())
                    .map_err(|e| SearchError::State(format!("looking a row up failed: {e}")))?;
                if let Some((_, address)) = top.first() {
                    for k in index::read_docs(&searcher, &fields, [*address])? {
                        // The key as asked (the document was found by it).
                        let mut r = row(&schema, &k)?;
                        for (&i, v) in schema.key.iter().zip(&key) {
                            r[i] = v.clone();
                        }
                        out.push(r);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|_| Error::internal("the index reader stopped"))?
        .map_err(Error::from)
    }
}
