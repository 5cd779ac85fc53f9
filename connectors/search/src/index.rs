//! The index folder: its generations, its fields, and the documents rows
//! become.
//!
//! The folder holds `CURRENT` (the live generation's number) and one
//! tantivy index per generation (`index-N`). A change of fields (a column
//! added at the source, other settings) makes a new generation from the
//! rows the live one keeps, and `CURRENT` moves to it by an atomic rename:
//! a crash leaves either generation whole.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tantivy::collector::DocSetCollector;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, STORED, STRING,
    Schema, TextFieldIndexing, TextOptions, Value as _,
};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer};
use tantivy::{DocAddress, Index, Searcher, TantivyDocument, Term};

use crate::config::{FieldSpec, Language};
use crate::error::SearchError;
use syncline_engine::model::{DataType, Row, TableSchema, Value};

/// `_kind` of a searchable document: a row (upsert) or a change (history,
/// append).
pub const DOC: &str = "doc";
/// `_kind` of a row's last version, kept for filling values a later change
/// leaves out (history, append); never found by searches.
pub const LAST: &str = "last";
/// `_kind` of a dead letter.
pub const DEAD: &str = "dead";

/// What the last commit holds besides documents: its payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Per pipeline writing the index: the position held, per source.
    pub pipelines: BTreeMap<String, BTreeMap<String, HeldPosition>>,
    /// The pipeline writing each table (two writing one would overwrite
    /// each other's rows).
    pub tables: BTreeMap<String, String>,
    /// The next dead letter's number.
    pub next_dead_letter: u64,
    /// Per table: the field each of its columns makes (by column name).
    #[serde(default)]
    pub fields: BTreeMap<String, BTreeMap<String, FieldSpec>>,
}

/// A source position as the payload keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldPosition {
    /// The batch's sequence number.
    pub seq: u64,
    /// The source's own position.
    pub state: serde_json::Value,
}

/// The index's fields.
#[derive(Debug, Clone)]
pub struct Fields {
    pub table: Field,
    pub kind: Field,
    pub id: Field,
    pub key: Field,
    pub row: Field,
    pub op: Field,
    pub seq: Field,
    /// Column fields by name.
    pub columns: BTreeMap<String, (Field, FieldSpec)>,
}

impl Fields {
    /// The schema holding the index's own fields and `columns`.
    pub fn schema(columns: &BTreeMap<String, FieldSpec>) -> Schema {
        let mut b = Schema::builder();
        b.add_text_field("_table", STRING | STORED);
        b.add_text_field("_kind", STRING | STORED);
        b.add_text_field("_id", STRING | STORED);
        b.add_text_field("_key", STORED);
        b.add_text_field("_row", STORED);
        b.add_text_field("_op", STRING | STORED);
        b.add_u64_field(
            "_seq",
            NumericOptions::default()
                .set_indexed()
                .set_stored()
                .set_fast(),
        );
        for (name, spec) in columns {
            match spec {
                FieldSpec::Text(tokenizer) => {
                    b.add_text_field(
                        name,
                        TextOptions::default().set_indexing_options(
                            TextFieldIndexing::default()
                                .set_tokenizer(tokenizer)
                                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                        ),
                    );
                }
                FieldSpec::Keyword => {
                    b.add_text_field(name, STRING);
                }
                FieldSpec::Int => {
                    b.add_i64_field(name, NumericOptions::default().set_indexed().set_fast());
                }
                FieldSpec::Float => {
                    b.add_f64_field(name, NumericOptions::default().set_indexed().set_fast());
                }
                FieldSpec::Date => {
                    b.add_date_field(
                        name,
                        DateOptions::default()
                            .set_indexed()
                            .set_fast()
                            .set_precision(DateTimePrecision::Microseconds),
                    );
                }
                FieldSpec::Bool => {
                    b.add_bool_field(name, NumericOptions::default().set_indexed().set_fast());
                }
            }
        }
        b.build()
    }

    /// The fields of `schema` (one made by [`Fields::schema`]).
    pub fn of(schema: &Schema) -> Result<Fields, SearchError> {
        let get = |name: &str| {
            schema.get_field(name).map_err(|_| {
                SearchError::State(format!(
                    "the index has no field `{name}`: it was not made by Syncline"
                ))
            })
        };
        let mut columns = BTreeMap::new();
        for (field, entry) in schema.fields() {
            let name = entry.name();
            if name.starts_with('_') && crate::config::RESERVED.contains(&name) {
                continue;
            }
            use tantivy::schema::FieldType as T;
            let spec = match entry.field_type() {
                T::Str(options) => match options.get_indexing_options() {
                    Some(i) if i.tokenizer() == "raw" => FieldSpec::Keyword,
                    Some(i) => FieldSpec::Text(i.tokenizer().to_owned()),
                    None => continue,
                },
                T::I64(_) => FieldSpec::Int,
                T::F64(_) => FieldSpec::Float,
                T::Date(_) => FieldSpec::Date,
                T::Bool(_) => FieldSpec::Bool,
                _ => continue,
            };
            columns.insert(name.to_owned(), (field, spec));
        }
        Ok(Fields {
            table: get("_table")?,
            kind: get("_kind")?,
            id: get("_id")?,
            key: get("_key")?,
            row: get("_row")?,
            op: get("_op")?,
            seq: get("_seq")?,
            columns,
        })
    }

    /// The column fields as specs, to compare with what the tables need.
    pub fn specs(&self) -> BTreeMap<String, FieldSpec> {
        self.columns
            .iter()
            .map(|(n, (_, s))| (n.clone(), s.clone()))
            .collect()
    }

    /// Indexes the row's values (JSON fragments by column name) into `doc`.
    pub fn index_row(&self, doc: &mut TantivyDocument, row: &Stored) {
        for (name, fragment) in row {
            if let Some((field, spec)) = self.columns.get(name) {
                index_fragment(doc, *field, spec, fragment);
            }
        }
    }

    /// Indexes a row into `doc` from the engine's `values` (of `schema`)
    /// where a field takes them as they are (text, numbers, booleans,
    /// instants), else from the kept JSON fragment (values the source left
    /// out, cast text, the other types): the same terms either way.
    pub fn index_values(
        &self,
        doc: &mut TantivyDocument,
        schema: &TableSchema,
        values: &Row,
        row: &Stored,
    ) {
        for (i, column) in schema.columns.iter().enumerate() {
            let Some((field, spec)) = self.columns.get(&column.name) else {
                continue;
            };
            let native = values
                .get(i)
                .is_some_and(|v| index_value(doc, *field, spec, &column.data_type, v));
            if !native && let Some(fragment) = row.get(&column.name) {
                index_fragment(doc, *field, spec, fragment);
            }
        }
    }

    /// A query for the documents of `kind` of `table`.
    pub fn of_table(&self, table: &str, kind: &str) -> BooleanQuery {
        let term = |f: Field, t: &str| -> (Occur, Box<dyn Query>) {
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f, t),
                    IndexRecordOption::Basic,
                )),
            )
        };
        BooleanQuery::new(vec![term(self.table, table), term(self.kind, kind)])
    }

    /// A query for every document of `kind`.
    pub fn of_kind(&self, kind: &str) -> TermQuery {
        TermQuery::new(
            Term::from_field_text(self.kind, kind),
            IndexRecordOption::Basic,
        )
    }
}

/// A row as kept: column name → its value as a JSON fragment (see
/// [`syncline_engine::encode`]); NULL columns are kept as `null`.
pub type Stored = BTreeMap<String, String>;

/// The row as one JSON object.
pub fn row_text(row: &Stored) -> String {
    let mut out = String::with_capacity(64 + row.values().map(String::len).sum::<usize>());
    out.push('{');
    for (i, (name, fragment)) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&syncline_engine::encode::quoted(name));
        out.push(':');
        out.push_str(fragment);
    }
    out.push('}');
    out
}

/// A kept row read back.
pub fn parse_row(text: &str) -> Result<Stored, SearchError> {
    let object: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text)
        .map_err(|e| SearchError::State(format!("a row kept in the index is unreadable: {e}")))?;
    Ok(object
        .into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect())
}

/// Microseconds from 1970 tantivy's dates hold (nanoseconds in an i64).
const DATE_LIMIT_MICROS: i64 = i64::MAX / 1000;

/// Adds one JSON fragment to `doc` as `spec` indexes it. A value the field
/// cannot take (a date outside 1678–2262, NaN) is not searchable by that
/// field; the row keeps it all the same.
fn index_fragment(doc: &mut TantivyDocument, field: Field, spec: &FieldSpec, fragment: &str) {
    if fragment == "null" {
        return;
    }
    let text = || -> Option<String> {
        if fragment.starts_with('"') {
            serde_json::from_str::<String>(fragment).ok()
        } else {
            Some(fragment.to_owned())
        }
    };
    match spec {
        FieldSpec::Text(_) | FieldSpec::Keyword => {
            if let Some(t) = text() {
                doc.add_text(field, t);
            }
        }
        FieldSpec::Int => {
            if let Ok(i) = fragment.parse::<i64>() {
                doc.add_i64(field, i);
            }
        }
        FieldSpec::Float => {
            if let Some(f) = text().and_then(|t| t.parse::<f64>().ok())
                && !f.is_nan()
            {
                doc.add_f64(field, f);
            }
        }
        FieldSpec::Bool => match fragment {
            "true" => doc.add_bool(field, true),
            "false" => doc.add_bool(field, false),
            _ => {}
        },
        FieldSpec::Date => {
            if let Some(micros) = text().and_then(|t| instant_micros(&t)) {
                add_instant(doc, field, micros);
            }
        }
    }
}

/// Adds `value` to `doc` as `spec` indexes it, where it can be taken as it
/// is; `false`: leave it to its JSON fragment ([`index_fragment`]).
fn index_value(
    doc: &mut TantivyDocument,
    field: Field,
    spec: &FieldSpec,
    data_type: &DataType,
    value: &Value,
) -> bool {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    match (spec, value) {
        (_, Value::Null) => {}
        (FieldSpec::Text(_) | FieldSpec::Keyword, Value::Text(t))
            if *data_type == DataType::Text =>
        {
            doc.add_text(field, t);
        }
        (FieldSpec::Int, Value::Int(i)) => doc.add_i64(field, *i),
        (FieldSpec::Float, Value::Float(f)) => {
            if !f.is_nan() {
                doc.add_f64(field, *f);
            }
        }
        (FieldSpec::Float, Value::Int(i)) => doc.add_f64(field, *i as f64),
        (FieldSpec::Bool, Value::Bool(b)) => doc.add_bool(field, *b),
        // Infinities are not instants: kept, not searchable by date.
        (FieldSpec::Date, Value::Date(d)) => {
            if *d != i32::MAX && *d != i32::MIN {
                add_instant(doc, field, i64::from(*d) * MICROS_PER_DAY);
            }
        }
        (FieldSpec::Date, Value::Timestamp(us) | Value::TimestampTz(us)) => {
            if *us != i64::MAX && *us != i64::MIN {
                add_instant(doc, field, *us);
            }
        }
        _ => return false,
    }
    true
}

/// An instant in microseconds from 1970, where tantivy's dates reach it.
fn add_instant(doc: &mut TantivyDocument, field: Field, micros: i64) {
    if micros.abs() < DATE_LIMIT_MICROS {
        doc.add_date(field, tantivy::DateTime::from_timestamp_micros(micros));
    }
}

/// A date or timestamp as the engine writes it, in microseconds from 1970
/// (UTC; a timestamp without zone taken as UTC).
fn instant_micros(text: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_micros());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// Registers the stemming tokenizers on `index` (tokenizers live in the
/// process, not in the index).
pub fn register_tokenizers(index: &Index) {
    for language in Language::ALL {
        index.tokenizers().register(
            &language.tokenizer(),
            TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(40))
                .filter(LowerCaser)
                .filter(Stemmer::new(language.stemmer()))
                .build(),
        );
    }
}

/// The index folder and its generations.
#[derive(Debug, Clone)]
pub struct Folder {
    pub root: PathBuf,
}

impl Folder {
    pub fn new(root: PathBuf) -> Folder {
        Folder { root }
    }

    fn shown(&self) -> String {
        self.root.display().to_string()
    }

    fn io(&self, what: &str) -> impl FnOnce(std::io::Error) -> SearchError {
        let (path, what) = (self.shown(), what.to_owned());
        move |source| SearchError::Io { path, what, source }
    }

    pub fn index_error(&self, what: &str) -> impl FnOnce(tantivy::TantivyError) -> SearchError {
        let (path, what) = (self.shown(), what.to_owned());
        move |source| SearchError::Index { path, what, source }
    }

    fn generation_dir(&self, generation: u64) -> PathBuf {
        self.root.join(format!("index-{generation}"))
    }

    /// The live generation, if the folder holds an index.
    pub fn current(&self) -> Result<Option<u64>, SearchError> {
        match std::fs::read_to_string(self.root.join("CURRENT")) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                SearchError::State(format!(
                    "`{}` does not hold a generation number: {text:?}",
                    self.root.join("CURRENT").display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("reading CURRENT")(e)),
        }
    }

    /// Opens the live generation for reading, if there is one.
    pub fn open_current(&self) -> Result<Option<Index>, SearchError> {
        let Some(generation) = self.current()? else {
            return Ok(None);
        };
        let index = Index::open_in_dir(self.generation_dir(generation))
            .map_err(self.index_error("opening the index"))?;
        register_tokenizers(&index);
        Ok(Some(index))
    }

    /// Creates generation `generation` with `schema` (not yet live).
    pub fn create(&self, generation: u64, schema: Schema) -> Result<Index, SearchError> {
        let dir = self.generation_dir(generation);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(self.io("clearing an unfinished generation"))?;
        }
        std::fs::create_dir_all(&dir).map_err(self.io("creating the index folder"))?;
        let index =
            Index::create_in_dir(&dir, schema).map_err(self.index_error("creating the index"))?;
        register_tokenizers(&index);
        Ok(index)
    }

    /// Refuses a folder that holds something other than an index.
    pub fn ensure_ours(&self) -> Result<(), SearchError> {
        if self.current()?.is_some() {
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(());
        };
        let foreign: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // An unfinished first generation, or its `CURRENT` not yet
            // renamed into place.
            .filter(|n| !n.starts_with("index-") && n != "CURRENT.tmp")
            .collect();
        if foreign.is_empty() {
            Ok(())
        } else {
            Err(SearchError::Refused {
                path: self.shown(),
                detail: format!(
                    "the folder holds files that are not a Syncline index ({}); give the target an empty or new folder",
                    foreign.join(", ")
                ),
            })
        }
    }

    /// Makes `generation` the live one (an atomic rename of `CURRENT`) and
    /// removes the others.
    pub fn make_current(&self, generation: u64) -> Result<(), SearchError> {
        let tmp = self.root.join("CURRENT.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(self.io("writing CURRENT"))?;
        file.write_all(generation.to_string().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(self.io("writing CURRENT"))?;
        std::fs::rename(&tmp, self.root.join("CURRENT")).map_err(self.io("writing CURRENT"))?;
        if let Ok(dir) = std::fs::File::open(&self.root) {
            let _ = dir.sync_all();
        }
        self.remove_others(generation);
        Ok(())
    }

    /// Removes generations other than `keep` (unfinished or replaced).
    pub fn remove_others(&self, keep: u64) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix("index-")
                .and_then(|n| n.parse::<u64>().ok())
                && n != keep
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
}

/// The live generation opened for reading (its fields and a reader of its
/// last commit), if the folder holds an index.
pub fn read_current(
    folder: &Folder,
) -> Result<Option<(Index, Fields, tantivy::IndexReader)>, SearchError> {
    let Some(index) = folder.open_current()? else {
        return Ok(None);
    };
    let fields = Fields::of(&index.schema())?;
    let reader = index
        .reader_builder()
        .reload_policy(tantivy::ReloadPolicy::Manual)
        .try_into()
        .map_err(folder.index_error("reading the index"))?;
    Ok(Some((index, fields, reader)))
}

/// The payload of the index's last commit (default: nothing committed).
pub fn payload(index: &Index, folder: &Folder) -> Result<Payload, SearchError> {
    let metas = index
        .load_metas()
        .map_err(folder.index_error("reading the last commit"))?;
    match metas.payload {
        None => Ok(Payload::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            SearchError::State(format!(
                "the checkpoint in the last commit of `{}` is unreadable: {e}",
                folder.path().display()
            ))
        }),
    }
}

/// One stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub table: String,
    pub kind: String,
    pub id: String,
    pub key: Option<String>,
    pub row: String,
    pub op: Option<String>,
    pub seq: Option<u64>,
}

/// Reads the stored fields of the documents at `addresses`.
pub fn read_docs(
    searcher: &Searcher,
    fields: &Fields,
    addresses: impl IntoIterator<Item = DocAddress>,
) -> Result<Vec<Kept>, SearchError> {
    let mut out = Vec::new();
    for address in addresses {
        let doc: TantivyDocument = searcher
            .doc(address)
            .map_err(|e| SearchError::State(format!("a document is unreadable: {e}")))?;
        out.push(kept(&doc, fields));
    }
    Ok(out)
}

/// The stored fields of `doc`.
pub fn kept(doc: &TantivyDocument, fields: &Fields) -> Kept {
    let text = |f: Field| doc.get_first(f).and_then(|v| v.as_str().map(str::to_owned));
    Kept {
        table: text(fields.table).unwrap_or_default(),
        kind: text(fields.kind).unwrap_or_default(),
        id: text(fields.id).unwrap_or_default(),
        key: text(fields.key),
        row: text(fields.row).unwrap_or_default(),
        op: text(fields.op),
        seq: doc.get_first(fields.seq).and_then(|v| v.as_u64()),
    }
}

/// Every document matching `query`, with its stored fields.
pub fn matching(
    searcher: &Searcher,
    fields: &Fields,
    query: &dyn Query,
) -> Result<Vec<Kept>, SearchError> {
    let found = searcher
        .search(query, &DocSetCollector)
        .map_err(|e| SearchError::State(format!("reading the index failed: {e}")))?;
    let mut addresses: Vec<DocAddress> = found.into_iter().collect();
    addresses.sort();
    read_docs(searcher, fields, addresses)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use syncline_engine::model::{Column, TableId};
    use tantivy::Document as _;

    use super::*;

    /// Values indexed as they are give the terms their kept JSON gives.
    #[test]
    fn values_and_their_json_index_alike() {
        let columns = [
            ("t", DataType::Text, Value::Text("Red shoe".into())),
            ("i", DataType::Int64, Value::Int(-7)),
            ("f", DataType::Float64, Value::Float(2.5)),
            ("b", DataType::Boolean, Value::Bool(true)),
            ("d", DataType::Date, Value::Date(19_782)),
            (
                "ts",
                DataType::TimestampTz,
                Value::TimestampTz(1_709_212_455_123_456),
            ),
            ("inf", DataType::Timestamp, Value::Timestamp(i64::MAX)),
            ("n", DataType::Float64, Value::Null),
        ];
        let schema = Arc::new(TableSchema {
            id: TableId {
                origin: "src".into(),
                name: "t".into(),
            },
            columns: columns
                .iter()
                .map(|(n, d, _)| Column {
                    name: (*n).into(),
                    data_type: d.clone(),
                    nullable: true,
                })
                .collect(),
            key: vec![],
            version: 1,
        });
        let specs: BTreeMap<String, FieldSpec> = [
            ("t", FieldSpec::Text("default".into())),
            ("i", FieldSpec::Int),
            ("f", FieldSpec::Float),
            ("b", FieldSpec::Bool),
            ("d", FieldSpec::Date),
            ("ts", FieldSpec::Date),
            ("inf", FieldSpec::Date),
            ("n", FieldSpec::Float),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
        let index_schema = Fields::schema(&specs);
        let fields = Fields::of(&index_schema).unwrap();
        let values: Row = columns.iter().map(|(_, _, v)| v.clone()).collect();
        let kept: Stored = columns
            .iter()
            .map(|(n, _, v)| ((*n).to_owned(), syncline_engine::encode::json(v).unwrap()))
            .collect();
        let mut from_values = TantivyDocument::default();
        fields.index_values(&mut from_values, &schema, &values, &kept);
        let mut from_json = TantivyDocument::default();
        fields.index_row(&mut from_json, &kept);
        let shown = |doc: &TantivyDocument| {
            let mut v: serde_json::Value =
                serde_json::from_str(&doc.to_json(&index_schema)).unwrap();
            v.as_object_mut().unwrap().retain(|_, x| !x.is_null());
            v
        };
        assert_eq!(shown(&from_values), shown(&from_json));
        assert!(
            shown(&from_values)["ts"].is_array(),
            "{}",
            shown(&from_values)
        );
        assert!(shown(&from_values).get("inf").is_none());
    }
}
