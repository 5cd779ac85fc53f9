//! SQL transforms over changes, run by an embedded DuckDB, and the local
//! preview of a transform on sampled rows.
//!
//! # What a transform does to each kind of change
//!
//! A transform is a `SELECT` over the relation `source`: the rows of one
//! input table. It runs on every batch (snapshot chunks and streamed
//! transactions alike) over the batch's rows of that table, and its output
//! is a table named after the transform. Changes, not only rows, have a
//! defined meaning:
//!
//! | input change | output                                                    |
//! |--------------|-----------------------------------------------------------|
//! | insert       | the SQL's rows for it, as inserts (none if filtered out)  |
//! | update       | its rows as updates; **none: a delete of the key** (the update moved the row out of a filter). An update into a filter arrives as an update of a row the target lacks: upsert targets insert it |
//! | delete       | a delete of the key; the SQL does not run                 |
//! | truncate     | a truncate of the output table                            |
//!
//! Rows are matched to their changes by key, so the output must keep the
//! input's key columns, unchanged (checked when the transform is checked;
//! an output row whose key no input row had is a dead letter). Several
//! changes of one key in one batch run in successive passes, in order.
//! Values the source did not send (unchanged TOAST) are NULL to the SQL; an
//! output column of the same name that comes out NULL stays "unchanged",
//! so the target keeps what it holds.
//!
//! A row the SQL fails on (a cast, a division by zero) becomes a dead
//! letter with the error, kept with the change so it can be replayed after
//! the SQL is fixed; the other rows go on.
//!
//! # Lookups
//!
//! The SQL may join small lookup tables: files, by path relative to the
//! pipeline file (`read_csv('regions.csv')`, `read_parquet(...)`), and
//! other source tables listed in `lookups`, by table name. Source lookups
//! are read whole when the pipeline starts and then kept up to date from
//! their own changes, in order: a row is joined with the lookup as it is
//! when the row passes (a processing-time join; later changes of a lookup
//! row do not revisit rows already sent).

mod duck;
mod error;
pub mod preview;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use duckdb::Connection;
use syncline_duck::quote;
use syncline_engine::batch::Batch;
use syncline_engine::connector::Transform;
use syncline_engine::model::{
    Change, Column, DeadLetter, DeadLetterStage, KeptChange, Op, Row, TableId, TableSchema, Value,
    row_json,
};

pub use error::{SqlError, TransformError};

/// A transform as declared in the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformDef {
    /// Its name: also the name of its output table.
    pub name: String,
    /// The input table.
    pub input: TableId,
    /// The `SELECT` over `source`.
    pub sql: String,
    /// Source tables the SQL joins by name.
    pub lookups: Vec<TableId>,
}

/// A transform checked against its input's schema.
#[derive(Debug, Clone)]
pub struct Derived {
    /// The output table.
    pub output: Arc<TableSchema>,
    /// The query that reads the output in a form read back exactly.
    select: String,
    /// Output index of each input key column, in key order.
    key_out: Vec<usize>,
    /// For each output column, the input column of the same name.
    passthrough: Vec<Option<usize>>,
}

/// The user's SQL without surrounding blanks and a final `;`, and how many
/// bytes were cut from its front.
fn clean_sql(sql: &str) -> (&str, usize) {
    let lead = sql.len() - sql.trim_start().len();
    (sql.trim().trim_end_matches(';').trim_end(), lead)
}

/// Checks `def`'s SQL on `conn` against `input` (loading nothing) and
/// derives its output table. `previous` is the output derived before (its
/// version is kept when nothing changed and raised otherwise). SQL errors
/// carry their position in `def.sql`.
pub fn derive(
    conn: &Connection,
    def: &TransformDef,
    input: &TableSchema,
    previous: Option<&Arc<TableSchema>>,
) -> Result<Derived, TransformError> {
    let (sql, _) = clean_sql(&def.sql);
    duck::check_query(conn, sql)?;
    duck::create_input(conn, input)?;
    let described = duck::describe(conn, sql).map_err(TransformError::Sql)?;
    let mut columns = Vec::with_capacity(described.len());
    for d in &described {
        if columns.iter().any(|c: &Column| c.name == d.name) {
            return Err(TransformError::Invalid {
                message: format!(
                    "transform `{}` outputs two columns named `{}`",
                    def.name, d.name
                ),
                help: "give each output column its own name with AS".into(),
            });
        }
        let data_type = duck::engine_type(&d.duck_type).map_err(|t| TransformError::Invalid {
            message: format!(
                "output column `{}` of transform `{}` has type {t}, which targets cannot store",
                d.name, def.name
            ),
            help: format!(
                "turn it into text or JSON, e.g. `to_json({0}) AS {0}`",
                d.name
            ),
        })?;
        columns.push(Column {
            name: d.name.clone(),
            data_type,
            nullable: d.nullable,
        });
    }
    let mut key_out = Vec::with_capacity(input.key.len());
    for key in input.key_names() {
        match columns.iter().position(|c| c.name == key) {
            Some(i) => key_out.push(i),
            None => {
                return Err(TransformError::Invalid {
                    message: format!(
                        "transform `{}` drops key column `{key}` of `{}`: its output must keep the input's key columns",
                        def.name, input.id
                    ),
                    help: format!(
                        "keep `{key}` in the SELECT list, unchanged: changes are matched to output rows by key"
                    ),
                });
            }
        }
    }
    for &k in &key_out {
        // Input keys are never NULL; the output's are the same values.
        columns[k].nullable = false;
    }
    let passthrough = columns
        .iter()
        .map(|c| input.column_index(&c.name))
        .collect();
    let reads: Vec<String> = columns
        .iter()
        .map(|c| duck::read_expr(&c.name, &c.data_type))
        .collect();
    let select = format!(
        "SELECT {} FROM ({sql}\n) AS _syncline_output",
        reads.join(", ")
    );
    let id = TableId {
        origin: def.name.clone(),
        name: def.name.clone(),
    };
    let output = match previous {
        Some(p) if p.columns == columns && p.key == key_out => p.clone(),
        Some(p) => Arc::new(TableSchema {
            id,
            columns,
            key: key_out.clone(),
            version: p.version + 1,
        }),
        None => Arc::new(TableSchema {
            id,
            columns,
            key: key_out.clone(),
            version: 1,
        }),
    };
    Ok(Derived {
        output,
        select,
        key_out,
        passthrough,
    })
}

/// The SQL error of `error`, positioned in `sql` as written.
pub fn locate_error(error: &TransformError, sql: &str) -> Option<SqlError> {
    let (_, lead) = clean_sql(sql);
    let (found, offset) = match error {
        // Checked on the trimmed text.
        TransformError::Statement {
            message, offset, ..
        } => (
            SqlError {
                message: message.clone(),
                line: None,
                column: None,
                offset: None,
            },
            Some(offset + lead),
        ),
        _ => {
            // DuckDB saw `DESCRIBE <sql>` or `<sql>` (from the trimmed text).
            let shifted = error.sql_error()?.locate(&sql[lead..], "DESCRIBE ".len());
            let offset = shifted.offset.map(|o| o + lead);
            (shifted, offset)
        }
    };
    let Some(offset) = offset.filter(|&o| sql.is_char_boundary(o)) else {
        return Some(found);
    };
    // Line and column in the text as written.
    let before = &sql[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some(SqlError {
        offset: Some(offset),
        line: Some(before.matches('\n').count() + 1),
        column: Some(sql[line_start..offset].chars().count() + 1),
        ..found
    })
}

/// One transform at run time: its own connection (the input table and the
/// `source` view are temp objects, per connection) and what it derived.
struct Running {
    def: TransformDef,
    conn: Connection,
    input: Option<Arc<TableSchema>>,
    derived: Option<Derived>,
}

/// What one insert or update came out of the SQL as.
enum Outcome {
    Rows(Vec<Row>),
    Failed(String),
}

/// Every transform of a pipeline, as the runtime's [`Transform`] step.
pub struct Transforms {
    root: Connection,
    running: Vec<Running>,
    /// Lookup tables: id → schema they were created with.
    lookups: HashMap<TableId, Arc<TableSchema>>,
    base_dir: PathBuf,
}

impl std::fmt::Debug for Transforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transforms")
            .field(
                "transforms",
                &self.running.iter().map(|r| &r.def.name).collect::<Vec<_>>(),
            )
            .field("base_dir", &self.base_dir)
            .finish()
    }
}

impl Transforms {
    /// Transforms for `defs`; lookup files resolve against `base_dir`.
    pub fn new(defs: Vec<TransformDef>, base_dir: &Path) -> Result<Self, TransformError> {
        Self::open(defs, base_dir, false)
    }

    /// As [`Transforms::new`]; `all_cores` lets one query use every core
    /// (the preview runs one query at a time).
    pub(crate) fn open(
        defs: Vec<TransformDef>,
        base_dir: &Path,
        all_cores: bool,
    ) -> Result<Self, TransformError> {
        let root = duck::open_engine(base_dir, all_cores)?;
        let mut running = Vec::with_capacity(defs.len());
        for def in defs {
            let conn = root
                .try_clone()
                .map_err(|e| TransformError::engine("opening a transform connection", e))?;
            running.push(Running {
                def,
                conn,
                input: None,
                derived: None,
            });
        }
        Ok(Transforms {
            root,
            running,
            lookups: HashMap::new(),
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// The source tables the transforms join, read whole before the run.
    pub fn lookup_tables(&self) -> Vec<TableId> {
        let mut out: Vec<TableId> = self
            .running
            .iter()
            .flat_map(|r| r.def.lookups.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Creates lookup table `schema.id.name` holding `rows`.
    pub fn load_lookup(
        &mut self,
        schema: &Arc<TableSchema>,
        rows: &[Row],
    ) -> Result<(), TransformError> {
        if schema.key.is_empty() {
            return Err(TransformError::Invalid {
                message: format!("lookup table `{}` has no key", schema.id),
                help: "declare key = [\"id\"] on the table: lookups are kept up to date by key"
                    .into(),
            });
        }
        let columns: Vec<String> = schema
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    quote(&c.name),
                    syncline_duck::types::duckdb_type(&c.data_type)
                )
            })
            .collect();
        let table = quote(&schema.id.name);
        self.root
            .execute_batch(&format!(
                "CREATE OR REPLACE TABLE main.{table} ({})",
                columns.join(", ")
            ))
            .map_err(|e| TransformError::engine("creating a lookup table", e))?;
        self.lookups.insert(schema.id.clone(), schema.clone());
        self.upsert_lookup(schema, rows.iter().collect(), Vec::new())
    }

    /// Applies changes of a lookup table: deletes by key, then the rows.
    fn upsert_lookup(
        &mut self,
        schema: &Arc<TableSchema>,
        rows: Vec<&Row>,
        deleted: Vec<&Row>,
    ) -> Result<(), TransformError> {
        let table = quote(&schema.id.name);
        let keys: Vec<&Row> = deleted.iter().chain(rows.iter()).copied().collect();
        if keys.is_empty() {
            return Ok(());
        }
        duck::create_input(&self.root, schema)?;
        duck::load_rows(&self.root, schema, &keys)?;
        let on: Vec<String> = schema
            .key_names()
            .iter()
            .map(|k| format!("l.{0} = s.{0}", quote(k)))
            .collect();
        self.root
            .execute_batch(&format!(
                "DELETE FROM main.{table} AS l USING source AS s WHERE {};",
                on.join(" AND ")
            ))
            .map_err(|e| TransformError::engine("updating a lookup table", e))?;
        duck::load_rows(&self.root, schema, &rows)?;
        self.root
            .execute_batch(&format!("INSERT INTO main.{table} SELECT * FROM source;"))
            .map_err(|e| TransformError::engine("updating a lookup table", e))
    }

    /// Keeps lookup tables up to date with the batch's changes of them.
    fn apply_lookups(&mut self, batch: &Batch) -> Result<(), TransformError> {
        let ids: Vec<TableId> = self.lookups.keys().cloned().collect();
        for id in ids {
            let Some(schema) = self.lookups.get(&id).cloned() else {
                continue;
            };
            let mut rows = Vec::new();
            let mut deleted = Vec::new();
            for change in batch.changes.iter().filter(|c| c.table.id == id) {
                if change.op == Op::Truncate {
                    self.upsert_lookup(
                        &schema,
                        std::mem::take(&mut rows),
                        std::mem::take(&mut deleted),
                    )?;
                    self.root
                        .execute_batch(&format!("DELETE FROM main.{}", quote(&id.name)))
                        .map_err(|e| TransformError::engine("truncating a lookup table", e))?;
                    continue;
                }
                // A lookup is read whole at start; rows a key scan finds
                // gone stay in it until the next start.
                if change.op == Op::Prune {
                    continue;
                }
                if let Some(before) = &change.before {
                    deleted.push(before);
                }
                match &change.after {
                    Some(after) => rows.push(after),
                    None => {
                        if let Some(before) = &change.before {
                            deleted.push(before);
                        }
                    }
                }
            }
            if !rows.is_empty() || !deleted.is_empty() {
                // Unchanged values would be lost; lookups take whole rows.
                let rows = rows
                    .into_iter()
                    .filter(|r| !r.iter().any(|v| matches!(v, Value::Unchanged)))
                    .collect();
                self.upsert_lookup(&schema, rows, deleted)?;
            }
        }
        Ok(())
    }

    /// Derives the output table of every transform whose input is among
    /// `tables`; the first transform that fails stops it, named.
    pub fn derive_all(
        &mut self,
        tables: &[Arc<TableSchema>],
    ) -> Result<Vec<Arc<TableSchema>>, (String, TransformError)> {
        let mut out = Vec::new();
        for r in &mut self.running {
            let Some(input) = tables.iter().find(|t| t.id == r.def.input) else {
                return Err((
                    r.def.name.clone(),
                    TransformError::Invalid {
                        message: format!(
                            "transform `{}` reads `{}`, which its source does not have",
                            r.def.name, r.def.input
                        ),
                        help: "check the table name with `syncline discover`".into(),
                    },
                ));
            };
            let derived =
                derive(&r.conn, &r.def, input, None).map_err(|e| (r.def.name.clone(), e))?;
            out.push(derived.output.clone());
            r.input = Some(input.clone());
            r.derived = Some(derived);
        }
        Ok(out)
    }

    /// Runs every transform on `batch`: adds output changes and dead letters.
    pub fn apply_batch(&mut self, batch: &mut Batch) -> Result<(), TransformError> {
        if !self.lookups.is_empty() {
            self.apply_lookups(batch)?;
        }
        let mut added = Vec::new();
        let mut dead = Vec::new();
        for r in &mut self.running {
            let mine: Vec<&Change> = batch
                .changes
                .iter()
                .filter(|c| c.table.id == r.def.input)
                .collect();
            if mine.is_empty() {
                continue;
            }
            // Runs of one input schema version at a time.
            let mut start = 0;
            while start < mine.len() {
                let schema = mine[start].table.clone();
                let end = mine[start..]
                    .iter()
                    .position(|c| {
                        !Arc::ptr_eq(&c.table, &schema) && c.table.as_ref() != schema.as_ref()
                    })
                    .map_or(mine.len(), |n| start + n);
                r.ensure(&schema)?;
                let (changes, letters) = r.process(&mine[start..end])?;
                added.extend(changes);
                dead.extend(letters);
                start = end;
            }
        }
        if !added.is_empty() {
            // A transform may output several rows for one key (a join
            // fanning out): its inserts carry no promise of new keys.
            batch.inserts_are_new = false;
        }
        batch.changes.extend(added);
        batch.dead_letters.extend(dead);
        Ok(())
    }

    /// Runs `kept` (a dead letter's change) through transform `name` as it
    /// is now: the output changes, or why it still fails.
    pub fn replay(
        &mut self,
        name: &str,
        input: &Arc<TableSchema>,
        kept: &KeptChange,
    ) -> Result<Result<Vec<Change>, String>, TransformError> {
        let r = self
            .running
            .iter_mut()
            .find(|r| r.def.name == name)
            .ok_or_else(|| TransformError::Invalid {
                message: format!("the pipeline has no transform `{name}` any more"),
                help: "discard the row, or add the transform back".into(),
            })?;
        r.ensure(input)?;
        let change = kept.to_change(input);
        let (changes, letters) = r.process(&[&change])?;
        Ok(match letters.into_iter().next() {
            Some(letter) => Err(letter.reason),
            None => Ok(changes),
        })
    }

    /// The folder lookup files resolve against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

impl Transform for Transforms {
    fn input_of(&self, derived: &TableId) -> Option<TableId> {
        self.running
            .iter()
            .find(|r| r.derived.as_ref().is_some_and(|d| &d.output.id == derived))
            .map(|r| r.def.input.clone())
    }

    fn derive(
        &mut self,
        tables: &[Arc<TableSchema>],
    ) -> syncline_engine::Result<Vec<Arc<TableSchema>>> {
        self.derive_all(tables).map_err(|(name, e)| {
            syncline_engine::Error::new(e.kind(), format!("transform `{name}`: {e}"))
        })
    }

    fn apply(&mut self, batch: &mut Batch) -> syncline_engine::Result<()> {
        self.apply_batch(batch)
            .map_err(syncline_engine::Error::from)
    }
}

impl Running {
    /// Re-derives when the input's schema changed.
    fn ensure(&mut self, input: &Arc<TableSchema>) -> Result<(), TransformError> {
        let same = self
            .input
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(i, input) || i.as_ref() == input.as_ref());
        if same && self.derived.is_some() {
            return Ok(());
        }
        let previous = self.derived.as_ref().map(|d| d.output.clone());
        let derived = derive(&self.conn, &self.def, input, previous.as_ref())?;
        self.input = Some(input.clone());
        self.derived = Some(derived);
        Ok(())
    }

    /// Runs the SQL over `rows` loaded as `source`.
    fn run(&self, input: &TableSchema, rows: &[&Row]) -> Result<Vec<Row>, TransformError> {
        let derived = self
            .derived
            .as_ref()
            .ok_or_else(|| TransformError::Load("transform used before it was derived".into()))?;
        duck::load_rows(&self.conn, input, rows)?;
        duck::query_rows(&self.conn, &derived.select, &derived.output.columns)
    }

    /// The output changes and dead letters for `changes` (all of the input
    /// table, one schema version), in order.
    fn process(
        &mut self,
        changes: &[&Change],
    ) -> Result<(Vec<Change>, Vec<DeadLetter>), TransformError> {
        let input = self
            .input
            .clone()
            .ok_or_else(|| TransformError::Load("transform used before it was derived".into()))?;
        let derived = self
            .derived
            .clone()
            .ok_or_else(|| TransformError::Load("transform used before it was derived".into()))?;
        let out = &derived.output;
        let key_text = |row: &Row| KeptChange::key_text(&input.key_of(row));

        // What goes into the SQL: inserts and updates, their unchanged
        // values filled from the old row where the source sent it.
        let mut fed: Vec<Option<Row>> = Vec::with_capacity(changes.len());
        for c in changes {
            fed.push(match (c.op, &c.after) {
                (Op::Insert | Op::Update, Some(after)) => {
                    let mut row = after.clone();
                    if let Some(before) = &c.before {
                        for (v, b) in row.iter_mut().zip(before) {
                            if matches!(v, Value::Unchanged) && !matches!(b, Value::Unchanged) {
                                *v = b.clone();
                            }
                        }
                    }
                    Some(row)
                }
                _ => None,
            });
        }
        // Passes: the n-th change of a key runs in pass n.
        let mut passes: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, row) in fed.iter().enumerate() {
            if let Some(row) = row {
                let n = seen.entry(key_text(row)).or_insert(0);
                if passes.len() <= *n {
                    passes.push(Vec::new());
                }
                passes[*n].push(i);
                *n += 1;
            }
        }
        let mut outcomes: Vec<Option<Outcome>> = (0..changes.len()).map(|_| None).collect();
        let mut dead = Vec::new();
        for pass in passes {
            let rows: Vec<&Row> = pass.iter().filter_map(|&i| fed[i].as_ref()).collect();
            match self.run(&input, &rows) {
                Ok(output) => {
                    let mut by_key: HashMap<String, Vec<Row>> = HashMap::new();
                    for row in output {
                        let k = KeptChange::key_text(
                            &derived.key_out.iter().map(|&i| &row[i]).collect::<Vec<_>>(),
                        );
                        by_key.entry(k).or_default().push(row);
                    }
                    for &i in &pass {
                        let k = fed[i].as_ref().map(&key_text).unwrap_or_default();
                        outcomes[i] = Some(Outcome::Rows(by_key.remove(&k).unwrap_or_default()));
                    }
                    for (_, rows) in by_key {
                        for row in rows {
                            dead.push(DeadLetter {
                                table: out.id.clone(),
                                origin: format!("transform {} on {}", self.def.name, input.id),
                                line: None,
                                raw: row_json(out, Some(&row)),
                                reason: "the transform output a row whose key no input row had: key columns must pass through unchanged".into(),
                                stage: DeadLetterStage::Transform,
                                kept: None,
                            });
                        }
                    }
                }
                Err(TransformError::Sql(e)) if pass.len() > 1 => {
                    tracing::debug!(transform = %self.def.name, error = %e, "a row failed; running rows one by one");
                    for &i in &pass {
                        let Some(row) = fed[i].as_ref() else { continue };
                        outcomes[i] = Some(match self.run(&input, &[row]) {
                            Ok(rows) => Outcome::Rows(rows),
                            Err(TransformError::Sql(e)) => {
                                Outcome::Failed(SqlError::from_duckdb(&e).message)
                            }
                            Err(other) => return Err(other),
                        });
                    }
                }
                Err(TransformError::Sql(e)) => {
                    for &i in &pass {
                        outcomes[i] = Some(Outcome::Failed(SqlError::from_duckdb(&e).message));
                    }
                }
                Err(other) => return Err(other),
            }
        }

        // The output changes, in input order.
        let key_only = |row: &Row| -> Row {
            let mut r = vec![Value::Null; out.columns.len()];
            for (ki, &src) in input.key.iter().enumerate() {
                if let Some(v) = row.get(src) {
                    r[derived.key_out[ki]] = v.clone();
                }
            }
            r
        };
        let mut result = Vec::new();
        let change_of = |op, before: Option<Row>, after: Option<Row>| Change {
            op,
            table: out.clone(),
            before,
            after,
        };
        for (i, c) in changes.iter().enumerate() {
            match c.op {
                Op::Truncate => result.push(change_of(Op::Truncate, None, None)),
                // Outputs keep their input's key, so the same keys are gone.
                Op::Prune => result.push(change_of(
                    Op::Prune,
                    c.before.as_ref().map(key_only),
                    c.after.as_ref().map(key_only),
                )),
                Op::Delete => {
                    if let Some(before) = &c.before {
                        result.push(change_of(Op::Delete, Some(key_only(before)), None));
                    }
                }
                Op::Insert | Op::Update => match outcomes[i].take() {
                    None => {}
                    Some(Outcome::Failed(reason)) => dead.push(DeadLetter {
                        table: out.id.clone(),
                        origin: format!("transform {} on {}", self.def.name, input.id),
                        line: None,
                        raw: row_json(&input, c.after.as_ref()),
                        reason,
                        stage: DeadLetterStage::Transform,
                        kept: Some(KeptChange::of(c, Some(&self.def.name))),
                    }),
                    Some(Outcome::Rows(rows)) => {
                        let Some(after) = &c.after else { continue };
                        // The old key: where an update moved the row from.
                        let old = syncline_engine::apply::moved_from(c);
                        if rows.is_empty() {
                            if c.op == Op::Update {
                                if let Some(old) = old {
                                    result.push(change_of(Op::Delete, Some(key_only(old)), None));
                                }
                                result.push(change_of(Op::Delete, Some(key_only(after)), None));
                            }
                            continue;
                        }
                        for mut row in rows {
                            for (j, src) in derived.passthrough.iter().enumerate() {
                                if let Some(src) = src
                                    && matches!(after.get(*src), Some(Value::Unchanged))
                                    && fed[i].as_ref().is_some_and(|f| {
                                        matches!(f.get(*src), Some(Value::Unchanged))
                                    })
                                    && row[j].is_null()
                                {
                                    row[j] = Value::Unchanged;
                                }
                            }
                            let before = match c.op {
                                Op::Update => Some(key_only(old.unwrap_or(after))),
                                _ => None,
                            };
                            result.push(change_of(c.op, before, Some(row)));
                        }
                    }
                },
            }
        }
        Ok((result, dead))
    }
}
