//! Searching the index: tantivy's query syntax over the rows' documents,
//! with the words found highlighted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use syncline_engine::model::Value;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Searcher, TantivyDocument};

use crate::config::{FieldSpec, SearchTargetConfig};
use crate::error::SearchError;
use crate::index::{self, DOC, Fields, Folder};

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// How many documents match in all.
    pub total: usize,
    /// The best `limit` of them, best first.
    pub hits: Vec<Hit>,
}

/// One matching document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Relevance (BM25).
    pub score: f32,
    /// The table the row belongs to.
    pub table: String,
    /// The row's key values, in key-column order.
    pub key: Vec<serde_json::Value>,
    /// History and append modes: the change's op (`i`, `u`, `d`, `t`) and
    /// position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The row's columns (those shown), as JSON.
    pub row: serde_json::Map<String, serde_json::Value>,
    /// Per text column where the query matched: the passage, with the
    /// matched words' byte ranges.
    pub highlights: BTreeMap<String, Highlight>,
}

/// A passage of a column with the words a query matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Highlight {
    pub fragment: String,
    /// Byte ranges of `fragment` that matched.
    pub ranges: Vec<(usize, usize)>,
}

impl Highlight {
    /// The passage with the matched words between `open` and `close`.
    pub fn marked(&self, open: &str, close: &str) -> String {
        let mut out = String::new();
        let mut at = 0;
        for &(start, end) in &self.ranges {
            out.push_str(&self.fragment[at..start]);
            out.push_str(open);
            out.push_str(&self.fragment[start..end]);
            out.push_str(close);
            at = end;
        }
        out.push_str(&self.fragment[at..]);
        out
    }
}

/// Searches the index of the target `config` (its folder taken from
/// `base_dir`) with a query in tantivy's syntax (`shoe`, `title:"red
/// shoe"`, `price:[10 TO 20]`, `_table:products AND sale`); words without a
/// field are looked for in every text and keyword column.
pub fn search(
    config: &SearchTargetConfig,
    base_dir: &Path,
    text: &str,
    limit: usize,
) -> Result<Found, SearchError> {
    let folder = Folder::new(crate::index_path(config, base_dir));
    let Some((index, fields, reader)) = index::read_current(&folder)? else {
        return Err(SearchError::Refused {
            path: folder.path().display().to_string(),
            detail: "there is no index yet: run the pipeline first".into(),
        });
    };
    let defaults: Vec<_> = fields
        .columns
        .values()
        .filter(|(_, spec)| matches!(spec, FieldSpec::Text(_) | FieldSpec::Keyword))
        .map(|(f, _)| *f)
        .collect();
    let parser = QueryParser::for_index(&index, defaults);
    let user = parser
        .parse_query(text)
        .map_err(|e| SearchError::Query(format!("{text:?}: {e}")))?;
    let query = BooleanQuery::new(vec![
        (Occur::Must, user.box_clone()),
        (Occur::Must, Box::new(fields.of_kind(DOC))),
    ]);
    let searcher = reader.searcher();
    let (total, top) = searcher
        .search(
            &query,
            &(Count, TopDocs::with_limit(limit.max(1)).order_by_score()),
        )
        .map_err(folder.index_error("searching"))?;
    let snippets = snippet_generators(&searcher, &fields, user.as_ref());
    let mut hits = Vec::with_capacity(top.len());
    for (score, address) in top.into_iter().take(limit) {
        let doc: TantivyDocument = searcher
            .doc(address)
            .map_err(folder.index_error("reading a document"))?;
        let kept = index::kept(&doc, &fields);
        hits.push(hit(config, &kept, score, &snippets)?);
    }
    Ok(Found { total, hits })
}

fn snippet_generators(
    searcher: &Searcher,
    fields: &Fields,
    query: &dyn Query,
) -> BTreeMap<String, SnippetGenerator> {
    fields
        .columns
        .iter()
        .filter(|(_, (_, spec))| matches!(spec, FieldSpec::Text(_)))
        .filter_map(|(name, (field, _))| {
            SnippetGenerator::create(searcher, query, *field)
                .ok()
                .map(|mut g| {
                    g.set_max_num_chars(200);
                    (name.clone(), g)
                })
        })
        .collect()
}

fn hit(
    config: &SearchTargetConfig,
    kept: &index::Kept,
    score: f32,
    snippets: &BTreeMap<String, SnippetGenerator>,
) -> Result<Hit, SearchError> {
    let hidden: Vec<&str> = config
        .tables
        .get(&kept.table)
        .map(|t| {
            t.columns
                .iter()
                .filter(|(_, c)| c.stored == Some(false))
                .map(|(n, _)| n.as_str())
                .collect()
        })
        .unwrap_or_default();
    let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&kept.row)
        .map_err(|e| SearchError::State(format!("a row kept in the index is unreadable: {e}")))?;
    let mut highlights = BTreeMap::new();
    for (name, generator) in snippets {
        if hidden.contains(&name.as_str()) {
            continue;
        }
        let Some(serde_json::Value::String(text)) = row.get(name) else {
            continue;
        };
        let snippet = generator.snippet(text);
        if snippet.highlighted().is_empty() {
            continue;
        }
        highlights.insert(
            name.clone(),
            Highlight {
                fragment: snippet.fragment().to_owned(),
                ranges: snippet
                    .highlighted()
                    .iter()
                    .map(|r| (r.start, r.end))
                    .collect(),
            },
        );
    }
    let key: Vec<Value> = serde_json::from_str(kept.key.as_deref().unwrap_or("[]"))
        .map_err(|e| SearchError::State(format!("a kept key is unreadable: {e}")))?;
    Ok(Hit {
        score,
        table: kept.table.clone(),
        key: key.iter().map(Value::to_json).collect(),
        op: kept.op.clone(),
        seq: kept.seq,
        row: row
            .into_iter()
            .filter(|(k, _)| !hidden.contains(&k.as_str()))
            .collect(),
        highlights,
    })
}

/// Every searchable document of `table` (rows in upsert mode, changes in
/// history and append), as kept: for comparing the index with its source.
pub fn documents(
    config: &SearchTargetConfig,
    base_dir: &Path,
    table: &str,
) -> Result<Vec<index::Kept>, SearchError> {
    let folder = Folder::new(crate::index_path(config, base_dir));
    let Some((_, fields, reader)) = index::read_current(&folder)? else {
        return Ok(Vec::new());
    };
    index::matching(&reader.searcher(), &fields, &fields.of_table(table, DOC))
}

/// How many searchable documents of `table` the index holds (committed).
pub fn count(
    config: &SearchTargetConfig,
    base_dir: &Path,
    table: &str,
) -> Result<u64, SearchError> {
    let folder = Folder::new(crate::index_path(config, base_dir));
    let Some((_, fields, reader)) = index::read_current(&folder)? else {
        return Ok(0);
    };
    let n = reader
        .searcher()
        .search(&fields.of_table(table, DOC), &Count)
        .map_err(folder.index_error("counting documents"))?;
    Ok(n as u64)
}
