//! The local preview: sampled rows (and, for change-log sources, recent
//! changes) loaded once into an embedded DuckDB; a transform's SQL then runs
//! against them as often as the user edits it. Nothing here writes to a
//! target or moves a checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use duckdb::Connection;
use duckdb::arrow::record_batch::RecordBatch;
use serde::Serialize;
use syncline_engine::model::{Change, Column, Op, Row, TableId, TableSchema, row_json};

use crate::{SqlError, TransformDef, TransformError, Transforms, derive, duck, locate_error};

/// What the preview is run on.
#[derive(Debug, Clone)]
pub struct PreviewInput {
    /// The input table as the source describes it.
    pub table: Arc<TableSchema>,
    /// Sampled rows.
    pub rows: Vec<Row>,
    /// Recent changes of the table, oldest first (empty where the source
    /// has no change log, or nothing is retained).
    pub changes: Vec<Change>,
    /// Lookup tables the SQL may join, with their rows.
    pub lookups: Vec<(Arc<TableSchema>, Vec<Row>)>,
}

/// A change and what the transform makes of it.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewChange {
    /// The change's operation.
    pub op: Op,
    /// The row before, as JSON.
    pub before: serde_json::Value,
    /// The row after, as JSON.
    pub after: serde_json::Value,
    /// What the target receives.
    pub output: Vec<PreviewOutputChange>,
    /// Why the transform rejected it (it would go to the dead-letter queue).
    pub error: Option<String>,
}

/// One change the target receives.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewOutputChange {
    /// Its operation.
    pub op: Op,
    /// The row (after for inserts and updates, the key for deletes).
    pub row: serde_json::Value,
}

/// The result of running a transform's SQL on the loaded sample.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewOutput {
    /// Output columns and their engine types: what the target table gets.
    pub columns: Vec<Column>,
    /// Key columns of the output.
    pub key: Vec<String>,
    /// Rows in the sample.
    pub input_rows: usize,
    /// Rows the SQL output for the sample.
    pub output_rows: usize,
    /// The output rows as an Arrow IPC stream.
    #[serde(skip)]
    pub arrow: Vec<u8>,
    /// The output rows as Arrow record batches.
    #[serde(skip)]
    pub batches: Vec<RecordBatch>,
    /// Recent changes and their output.
    pub changes: Vec<PreviewChange>,
    /// Time to run the SQL and collect the output, in milliseconds.
    pub elapsed_ms: f64,
}

/// Why a preview produced no rows.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewProblem {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Where in the SQL, when the SQL is at fault.
    pub sql: Option<SqlError>,
}

impl std::fmt::Display for PreviewProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(e) = &self.sql
            && let (Some(line), Some(column)) = (e.line, e.column)
        {
            write!(f, " (line {line}, column {column})")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\nhelp: {help}")?;
        }
        Ok(())
    }
}

impl PreviewProblem {
    fn of(error: &TransformError, sql: &str) -> Self {
        PreviewProblem {
            message: error.to_string(),
            help: match error {
                TransformError::Invalid { help, .. } | TransformError::Statement { help, .. } => {
                    Some(help.clone())
                }
                _ => None,
            },
            sql: locate_error(error, sql),
        }
    }
}

/// A loaded sample, ready to run SQL against.
pub struct Preview {
    conn: Connection,
    transforms: Transforms,
    name: String,
    input: PreviewInput,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preview")
            .field("name", &self.name)
            .field("table", &self.input.table.id)
            .field("rows", &self.input.rows.len())
            .field("changes", &self.input.changes.len())
            .finish()
    }
}

impl Preview {
    /// Loads `input` for transform `name`; lookup files resolve against
    /// `base_dir`.
    pub fn load(name: &str, input: PreviewInput, base_dir: &Path) -> Result<Self, TransformError> {
        let def = TransformDef {
            name: name.to_owned(),
            input: input.table.id.clone(),
            sql: "SELECT * FROM source".into(),
            lookups: input.lookups.iter().map(|(t, _)| t.id.clone()).collect(),
        };
        let mut transforms = Transforms::open(vec![def], base_dir, true)?;
        for (schema, rows) in &input.lookups {
            transforms.load_lookup(schema, rows)?;
        }
        let conn = transforms
            .root
            .try_clone()
            .map_err(|e| TransformError::engine("opening the preview connection", e))?;
        duck::create_input(&conn, &input.table)?;
        let rows: Vec<&Row> = input.rows.iter().collect();
        duck::load_rows(&conn, &input.table, &rows)?;
        Ok(Preview {
            conn,
            transforms,
            name: name.to_owned(),
            input,
        })
    }

    /// The input table.
    pub fn table(&self) -> &Arc<TableSchema> {
        &self.input.table
    }

    /// Rows loaded.
    pub fn sample_rows(&self) -> usize {
        self.input.rows.len()
    }

    /// Runs `sql` on the sample and on the recent changes.
    pub fn run(&mut self, sql: &str) -> Result<PreviewOutput, PreviewProblem> {
        let started = Instant::now();
        let def = TransformDef {
            name: self.name.clone(),
            input: self.input.table.id.clone(),
            sql: sql.to_owned(),
            lookups: Vec::new(),
        };
        // Derived on the transform's own connection: deriving re-creates
        // the input table, and this one holds the sample.
        let derived = derive(
            &self.transforms.running[0].conn,
            &def,
            &self.input.table,
            None,
        )
        .map_err(|e| PreviewProblem::of(&e, sql))?;
        let batches = {
            let mut stmt = self
                .conn
                // The output as DuckDB has it: exact types in Arrow.
                .prepare(&format!("SELECT * FROM ({}\n)", crate::clean_sql(sql).0))
                .map_err(|e| PreviewProblem::of(&TransformError::Sql(e), sql))?;
            let arrow = stmt
                .query_arrow([])
                .map_err(|e| PreviewProblem::of(&TransformError::Sql(e), sql))?;
            arrow.collect::<Vec<RecordBatch>>()
        };
        let output_rows = batches.iter().map(RecordBatch::num_rows).sum();
        let arrow = ipc_stream(&batches).map_err(|message| PreviewProblem {
            message,
            help: None,
            sql: None,
        })?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let changes = self.preview_changes(sql)?;
        Ok(PreviewOutput {
            key: derived
                .output
                .key_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            columns: derived.output.columns.clone(),
            input_rows: self.input.rows.len(),
            output_rows,
            arrow,
            batches,
            changes,
            elapsed_ms,
        })
    }

    fn preview_changes(&mut self, sql: &str) -> Result<Vec<PreviewChange>, PreviewProblem> {
        if self.input.changes.is_empty() {
            return Ok(Vec::new());
        }
        let r = &mut self.transforms.running[0];
        r.def.sql = sql.to_owned();
        r.input = None;
        r.derived = None;
        let mut out = Vec::with_capacity(self.input.changes.len());
        for change in &self.input.changes {
            r.ensure(&change.table)
                .map_err(|e| PreviewProblem::of(&e, sql))?;
            let (changes, letters) = r
                .process(&[change])
                .map_err(|e| PreviewProblem::of(&e, sql))?;
            let schema = &change.table;
            let json = |row: Option<&Row>| -> serde_json::Value {
                serde_json::from_str(&row_json(schema, row)).unwrap_or(serde_json::Value::Null)
            };
            out.push(PreviewChange {
                op: change.op,
                before: json(change.before.as_ref()),
                after: json(change.after.as_ref()),
                output: changes
                    .iter()
                    .map(|c| PreviewOutputChange {
                        op: c.op,
                        row: serde_json::from_str(&row_json(&c.table, c.key_row()))
                            .unwrap_or(serde_json::Value::Null),
                    })
                    .collect(),
                error: letters.into_iter().next().map(|l| l.reason),
            });
        }
        Ok(out)
    }
}

impl PreviewOutput {
    /// The first `max_rows` output rows as a text table, for terminals.
    pub fn table_text(&self, max_rows: usize) -> String {
        let mut left = max_rows;
        let mut shown = Vec::new();
        for b in &self.batches {
            if left == 0 {
                break;
            }
            let n = b.num_rows().min(left);
            shown.push(b.slice(0, n));
            left -= n;
        }
        if shown.is_empty() {
            return "(no rows)".to_owned();
        }
        duckdb::arrow::util::pretty::pretty_format_batches(&shown)
            .map_or_else(|e| format!("(cannot show rows: {e})"), |t| t.to_string())
    }
}

/// The first `max_rows` rows of `batches` as JSON objects, every value as
/// its display text (NULL as `null`).
pub fn rows_json(batches: &[RecordBatch], max_rows: usize) -> Vec<serde_json::Value> {
    use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let formatters: Vec<Option<ArrayFormatter<'_>>> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for i in 0..b.num_rows() {
            if out.len() >= max_rows {
                return out;
            }
            let mut object = serde_json::Map::new();
            for (j, field) in schema.fields().iter().enumerate() {
                let value = match &formatters[j] {
                    Some(_) if b.column(j).is_null(i) => serde_json::Value::Null,
                    Some(f) => serde_json::Value::String(f.value(i).to_string()),
                    None => serde_json::Value::Null,
                };
                object.insert(field.name().clone(), value);
            }
            out.push(serde_json::Value::Object(object));
        }
    }
    out
}

/// Record batches as one Arrow IPC stream.
pub fn ipc_stream(batches: &[RecordBatch]) -> Result<Vec<u8>, String> {
    let mut buffer = Vec::new();
    let Some(first) = batches.first() else {
        return Ok(buffer);
    };
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut buffer, &first.schema())
        .map_err(|e| format!("encoding rows: {e}"))?;
    for b in batches {
        writer.write(b).map_err(|e| format!("encoding rows: {e}"))?;
    }
    writer.finish().map_err(|e| format!("encoding rows: {e}"))?;
    drop(writer);
    Ok(buffer)
}

/// The input table id a transform reads, from `source.table`.
pub fn table_id(input: &str) -> Option<TableId> {
    input.split_once('.').map(|(o, n)| TableId {
        origin: o.to_owned(),
        name: n.to_owned(),
    })
}
