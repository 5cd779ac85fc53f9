//! Settings of a search index target, and the index fields they make.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::config::WriteMode;
use syncline_engine::model::{DataType, TableSchema};

use crate::error::SearchError;

/// An embedded full-text index (tantivy) as a target: one document per row,
/// searchable by `syncline search` and in the studio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchTargetConfig {
    /// The index folder, relative to the pipeline file. Created if missing;
    /// it holds nothing else.
    pub path: String,
    /// What this target receives: `source` (all its tables), `source.table`,
    /// or a transform name.
    pub inputs: Vec<String>,
    /// `upsert`: one document per row, replaced on update, removed on
    /// delete. `history`: one document per change (fields `_op`, `_seq`).
    /// `append`: one document per insert and update.
    #[serde(default)]
    pub mode: WriteMode,
    /// Most rows applied but not yet committed: a commit is made once this
    /// many are waiting (default 200000). A crash loses only uncommitted
    /// rows, which the source sends again. Each commit makes segments the
    /// index merges later: a snapshot indexed 35% faster with 200000 than
    /// with 50000; streamed changes are committed by `commit_ms` anyway.
    #[serde(default = "default_commit_rows")]
    pub commit_rows: u64,
    /// Most milliseconds a change waits to be committed, and so to be
    /// found by searches (default 1000).
    #[serde(default = "default_commit_ms")]
    pub commit_ms: u64,
    /// Per-table settings, by target table name. Tables not listed get the
    /// defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, SearchTableConfig>,
}

fn default_commit_rows() -> u64 {
    200_000
}

fn default_commit_ms() -> u64 {
    1000
}

/// How one table is indexed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchTableConfig {
    /// Per-column settings, by column name. Columns not listed get the
    /// defaults of their type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnConfig>,
}

/// How one column is indexed and shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// How the column is searched; default by its type: text, JSON and
    /// lists `text`; UUIDs, intervals and times `keyword`; numbers
    /// `number`; dates and timestamps `date`; booleans `boolean`; bytes
    /// `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<FieldKind>,
    /// For `text`: the language whose stemmer reduces words to their stem
    /// (`english` finds "running" for "run"). Default: none, words as
    /// written, lowercased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// Whether search results show the column (default `true`). Every
    /// column's value is kept in the row's document all the same: later
    /// changes that leave a value out (unchanged TOAST) need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<bool>,
}

/// How a column's values are searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Words: `title:shoe`, phrases, highlights.
    Text,
    /// The whole value as one term: `sku:AB-12`.
    Keyword,
    /// Numbers, with ranges: `price:[10 TO 20]`.
    Number,
    /// Instants, with ranges: `created:[2024-01-01T00:00:00Z TO *]`.
    Date,
    /// `true` / `false`.
    Boolean,
    /// Not searchable (still kept and shown).
    None,
}

/// Stemmers (tantivy's, from the Snowball project).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Language {
    Arabic,
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Greek,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Tamil,
    Turkish,
}

impl Language {
    /// Every language, for registering their tokenizers.
    pub const ALL: [Language; 18] = [
        Language::Arabic,
        Language::Danish,
        Language::Dutch,
        Language::English,
        Language::Finnish,
        Language::French,
        Language::German,
        Language::Greek,
        Language::Hungarian,
        Language::Italian,
        Language::Norwegian,
        Language::Portuguese,
        Language::Romanian,
        Language::Russian,
        Language::Spanish,
        Language::Swedish,
        Language::Tamil,
        Language::Turkish,
    ];

    /// The tokenizer's name in the index.
    pub fn tokenizer(self) -> String {
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        format!("syncline_{name}")
    }

    /// Tantivy's stemmer language.
    pub fn stemmer(self) -> tantivy::tokenizer::Language {
        use tantivy::tokenizer::Language as L;
        match self {
            Language::Arabic => L::Arabic,
            Language::Danish => L::Danish,
            Language::Dutch => L::Dutch,
            Language::English => L::English,
            Language::Finnish => L::Finnish,
            Language::French => L::French,
            Language::German => L::German,
            Language::Greek => L::Greek,
            Language::Hungarian => L::Hungarian,
            Language::Italian => L::Italian,
            Language::Norwegian => L::Norwegian,
            Language::Portuguese => L::Portuguese,
            Language::Romanian => L::Romanian,
            Language::Russian => L::Russian,
            Language::Spanish => L::Spanish,
            Language::Swedish => L::Swedish,
            Language::Tamil => L::Tamil,
            Language::Turkish => L::Turkish,
        }
    }
}

/// The names of the index's own fields; no column may take one.
pub const RESERVED: [&str; 7] = ["_table", "_kind", "_id", "_key", "_row", "_op", "_seq"];

/// The index field a column makes: its name is the column's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSpec {
    /// Tokenized text, with this tokenizer.
    Text(String),
    /// One term per value.
    Keyword,
    /// 64-bit integers.
    Int,
    /// 64-bit floats (decimals too, for ranges; the exact digits are kept
    /// in the row).
    Float,
    /// Instants, to the microsecond.
    Date,
    /// Booleans.
    Bool,
}

impl FieldSpec {
    /// What users see in messages.
    pub fn describe(&self) -> String {
        match self {
            FieldSpec::Text(t) if t == "default" => "text".into(),
            FieldSpec::Text(t) => format!("text ({})", t.trim_start_matches("syncline_")),
            FieldSpec::Keyword => "keyword".into(),
            FieldSpec::Int => "integer number".into(),
            FieldSpec::Float => "decimal number".into(),
            FieldSpec::Date => "date".into(),
            FieldSpec::Bool => "boolean".into(),
        }
    }
}

/// One column as the target indexes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    /// The index field (`None`: not searchable).
    pub field: Option<FieldSpec>,
    /// Whether search results show it.
    pub shown: bool,
}

impl SearchTargetConfig {
    /// How each column of `schema` is indexed, in column order; refuses
    /// settings that name no column, reserved names and kinds that do not
    /// fit the column's type.
    pub fn columns(&self, schema: &TableSchema) -> Result<Vec<ColumnPlan>, SearchError> {
        let table = &schema.id.name;
        let settings = self.tables.get(table).cloned().unwrap_or_default();
        let refuse = |detail: String| SearchError::Config {
            table: table.clone(),
            detail,
        };
        if let Some(unknown) = settings
            .columns
            .keys()
            .find(|c| schema.column_index(c).is_none())
        {
            let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(refuse(format!(
                "`columns.{unknown}` names no column of the table (it has: {})",
                names.join(", ")
            )));
        }
        let mut plans = Vec::with_capacity(schema.columns.len());
        for column in &schema.columns {
            if RESERVED.contains(&column.name.as_str()) {
                return Err(refuse(format!(
                    "column `{}` has the name of one of the index's own fields ({}); rename it in a transform",
                    column.name,
                    RESERVED.join(", ")
                )));
            }
            let options = settings
                .columns
                .get(&column.name)
                .cloned()
                .unwrap_or_default();
            let kind = options
                .index
                .unwrap_or_else(|| default_kind(&column.data_type));
            let numeric = matches!(
                column.data_type,
                DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Decimal { .. }
            );
            let dated = matches!(
                column.data_type,
                DataType::Date | DataType::Timestamp | DataType::TimestampTz
            );
            let field = match kind {
                FieldKind::Text => Some(FieldSpec::Text(
                    options
                        .language
                        .map_or_else(|| "default".to_owned(), Language::tokenizer),
                )),
                FieldKind::Keyword => Some(FieldSpec::Keyword),
                FieldKind::Number if numeric => Some(match column.data_type {
                    DataType::Int32 | DataType::Int64 => FieldSpec::Int,
                    _ => FieldSpec::Float,
                }),
                FieldKind::Date if dated => Some(FieldSpec::Date),
                FieldKind::Boolean if column.data_type == DataType::Boolean => {
                    Some(FieldSpec::Bool)
                }
                FieldKind::None => None,
                other => {
                    return Err(refuse(format!(
                        "column `{}` is {:?} and cannot be indexed as `{}`; use `text`, `keyword` or `none`",
                        column.name,
                        column.data_type,
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    )));
                }
            };
            if options.language.is_some() && kind != FieldKind::Text {
                return Err(refuse(format!(
                    "column `{}`: `language` applies to `index = \"text\"` only",
                    column.name
                )));
            }
            plans.push(ColumnPlan {
                field,
                shown: options.stored.unwrap_or(true),
            });
        }
        Ok(plans)
    }
}

/// How a column of `data_type` is searched unless its settings say.
pub fn default_kind(data_type: &DataType) -> FieldKind {
    match data_type {
        DataType::Text | DataType::Json | DataType::List { .. } => FieldKind::Text,
        DataType::Uuid | DataType::Interval | DataType::Time => FieldKind::Keyword,
        DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Decimal { .. } => {
            FieldKind::Number
        }
        DataType::Date | DataType::Timestamp | DataType::TimestampTz => FieldKind::Date,
        DataType::Boolean => FieldKind::Boolean,
        DataType::Bytes => FieldKind::None,
    }
}
