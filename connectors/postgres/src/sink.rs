//! PostgreSQL target: bulk staged merges with the checkpoint in the same
//! transaction.
//!
//! * **One transaction per batch.** A batch's rows are bulk-loaded with
//!   `COPY ... FROM STDIN` (text format) into a per-table `TEMP` staging
//!   table, merged into the target table with set-based SQL, and committed
//!   together with the batch's dead letters and the pipeline's checkpoint row
//!   (`_syncline_checkpoints`). After a crash a batch is either wholly present
//!   with its checkpoint or wholly absent: exactly-once effect.
//! * **Redelivery.** A batch whose `seq` is at or below the stored checkpoint
//!   is skipped. The stored checkpoint is read again inside the batch's
//!   transaction, under an advisory lock per (schema, pipeline, source), so a
//!   retried batch whose first commit did reach the server is not applied
//!   twice, and two processes running the same pipeline cannot interleave.
//! * **Modes.** `upsert` deletes the staged keys and inserts the last change
//!   per key (`DISTINCT ON (key)`, latest change first) unless it is a
//!   delete; the table gets a `PRIMARY KEY` on the key columns. `append`
//!   inserts every insert and update. `history` inserts every change with
//!   `_op` (`i`, `u`, `d`, `t`), `_seq` (the batch's sequence number),
//!   `_commit_time` and `_synced_at` in front of the data columns.
//! * **Truncate** is applied in order: the changes of a table are split into
//!   segments at each truncate; `upsert` and `append` empty the table
//!   (`TRUNCATE`), `history` records a `t` row.
//! * **Unchanged values** ([`Value::Unchanged`], a TOAST value the source did
//!   not send) are taken from an earlier change of the same key in the batch,
//!   else from the row the target holds (in `history` and `append` mode: the
//!   latest row of that key); for an update that moved the row to another
//!   key, from the row under the old key.
//! * **Key-changing updates** (upsert) delete the row under the old key.
//! * **Schema.** Target tables are created in `schema` (created if missing)
//!   and named after the source table; columns the source gains are added.
//!   The bookkeeping tables (`_syncline_checkpoints`,
//!   `_syncline_dead_letters`) live in the same schema.
//! * **Lost connections** while writing are retried with backoff (the
//!   transaction was rolled back, or it committed and the retry skips it).
//!
//! # Type map
//!
//! | engine        | Postgres                   | COPY text form                     |
//! |---------------|----------------------------|------------------------------------|
//! | boolean       | `boolean`                  | `t` / `f`                          |
//! | int           | `integer`                  | decimal                            |
//! | bigint        | `bigint`                   | decimal                            |
//! | double        | `double precision`         | shortest exact form, `NaN`, `Infinity` |
//! | decimal(p,s)  | `numeric(p,s)`             | exact text, never rounded          |
//! | text          | `text`                     | as is                              |
//! | bytes         | `bytea`                    | `\x` hex                           |
//! | date          | `date`                     | ISO, `BC` before year 1            |
//! | time          | `time`                     | `HH:MM:SS.ffffff`                  |
//! | timestamp     | `timestamp`                | ISO with µs, `infinity`            |
//! | timestamptz   | `timestamptz`              | ISO with µs and `+00`              |
//! | interval      | `interval`                 | `M mons D days U microseconds`     |
//! | uuid          | `uuid`                     | hyphenated hex                     |
//! | json          | `jsonb`                    | the JSON text (normalised by jsonb)|
//! | T[]           | `T[]`                      | array literal, every item quoted   |
//!
//! Values that do not fit their column (a decimal with more digits than the
//! column's scale, an integer out of range, text into a date, ...) fail the
//! batch with the column named; nothing is rounded or truncated silently.
//! Text containing NUL characters cannot be stored in Postgres and is refused
//! the same way.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, Row as _};
use syncline_engine::apply;
use syncline_engine::config::{Secret, WriteMode};
use syncline_engine::connector::{Check, KeptRow, Sink};
use syncline_engine::model::{
    Batch, Change, DataType, DeadLetterStage, DecimalParts, Op, Position, Row, TableId,
    TableSchema, Value,
};
use syncline_engine::{Error, ErrorKind, Result};
use tracing::{info, warn};

use crate::config::SslMode;
use crate::introspect::quote;

/// Table holding one checkpoint row per (pipeline, source).
pub const CHECKPOINT_TABLE: &str = "_syncline_checkpoints";
/// Table holding rejected records with their reason.
pub const DEAD_LETTER_TABLE: &str = "_syncline_dead_letters";

/// Metadata columns of history-mode tables, before the data columns.
const HISTORY_COLUMNS: &str = "_op text NOT NULL, _seq bigint NOT NULL, _commit_time timestamptz, _synced_at timestamptz NOT NULL";

/// Longest identifier Postgres keeps (longer ones are cut).
const MAX_IDENTIFIER: usize = 63;

/// Attempts at a batch when the connection is lost or the server asks for a
/// retry (serialization failure, deadlock).
const WRITE_ATTEMPTS: u32 = 6;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of COPY data sent per message.
const COPY_CHUNK: usize = 1 << 20;

/// Staged rows from which the staging table is analysed before the merge.
const ANALYZE_FROM: usize = 1_000;

/// A PostgreSQL database as a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresTargetConfig {
    /// Host name or address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Database name. It must exist.
    pub database: String,
    /// User. It needs CREATE on the schema (or on the database, when the
    /// schema does not exist yet).
    #[serde(default = "default_user")]
    pub user: String,
    /// Password, as a reference: `${env:NAME}` or `${keyring:service/account}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// TLS: `disable`, `prefer` or `require`.
    #[serde(default)]
    pub sslmode: SslMode,
    /// Postgres schema the tables (and Syncline's checkpoint and dead-letter
    /// tables) are written into. Created if missing.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// What this target receives: `source` (all its tables), `source.table`,
    /// or a transform name.
    pub inputs: Vec<String>,
    /// How changes are written.
    #[serde(default)]
    pub mode: WriteMode,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    5432
}
fn default_user() -> String {
    "postgres".into()
}
fn default_schema() -> String {
    "public".into()
}

impl PostgresTargetConfig {
    /// Connection options (the password is looked up here).
    pub fn connect_options(&self) -> Result<PgConnectOptions, PgSinkError> {
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .database(&self.database)
            .application_name("syncline")
            .ssl_mode(match self.sslmode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require => PgSslMode::Require,
            })
            .options([
                ("TimeZone", "UTC"),
                ("DateStyle", "ISO"),
                ("IntervalStyle", "postgres"),
            ])
            .disable_statement_logging();
        if let Some(secret) = &self.password {
            let password = secret.resolve().map_err(PgSinkError::Secret)?;
            o = o.password(&password);
        }
        Ok(o)
    }

    /// `postgres://user@host:port/database`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// Opens one connection.
    pub async fn connect(&self) -> Result<PgConnection, PgSinkError> {
        let opts = self.connect_options()?;
        let target = self.describe();
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(source)) => Err(PgSinkError::Connect { target, source }),
            Err(_) => Err(PgSinkError::Connect {
                target,
                source: sqlx::Error::PoolTimedOut,
            }),
        }
    }
}

/// What went wrong writing to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum PgSinkError {
    /// Connecting failed.
    #[error("cannot connect to {target}")]
    Connect {
        /// `postgres://user@host:port/database`.
        target: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed.
    #[error("Postgres target: {what} failed")]
    Sql {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// The password reference cannot be resolved.
    #[error("password: {0}")]
    Secret(String),
    /// A value does not fit its column.
    #[error("column {column}: {detail}")]
    Value {
        /// Column name.
        column: String,
        /// What does not fit.
        detail: String,
    },
    /// A table cannot be written as configured.
    #[error("table {table}: {detail}")]
    Schema {
        /// Table.
        table: String,
        /// What is wrong.
        detail: String,
    },
    /// The stored checkpoint cannot be read or written.
    #[error("checkpoint of source {source_name}: {detail}")]
    Checkpoint {
        /// Source name.
        source_name: String,
        /// Why.
        detail: String,
    },
    /// `write` before `open`.
    #[error("the Postgres target was used before it was opened")]
    NotOpen,
}

impl PgSinkError {
    fn sql(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> PgSinkError {
        let what = what.into();
        move |source| PgSinkError::Sql { what, source }
    }

    /// The engine's classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PgSinkError::Connect { source, .. } => match sql_kind(source) {
                // Wrong password, unknown database: fix the settings.
                ErrorKind::Precondition | ErrorKind::Schema => ErrorKind::Precondition,
                other => other,
            },
            PgSinkError::Sql { source, .. } => sql_kind(source),
            PgSinkError::Secret(_) => ErrorKind::Precondition,
            PgSinkError::Value { .. } | PgSinkError::Schema { .. } => ErrorKind::Schema,
            PgSinkError::Checkpoint { .. } => ErrorKind::State,
            PgSinkError::NotOpen => ErrorKind::Internal,
        }
    }

    /// Whether the connection is gone (reconnect before retrying).
    fn connection_lost(&self) -> bool {
        match self {
            PgSinkError::Connect { .. } => self.kind() == ErrorKind::Connection,
            PgSinkError::Sql { source, .. } => match source {
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")
                }),
                other => sql_kind(other) == ErrorKind::Connection,
            },
            _ => false,
        }
    }
}

/// Classifies a driver error by its cause and SQLSTATE.
fn sql_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorKind::Connection,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                c if c.starts_with("08") => ErrorKind::Connection,
                // Shutdown, crash recovery, serialization failure, deadlock,
                // out of resources: worth another try.
                "57P01" | "57P02" | "57P03" | "40001" | "40P01" => ErrorKind::Connection,
                c if c.starts_with("53") => ErrorKind::Connection,
                // Data exceptions and integrity violations: the data does not
                // fit the table.
                c if c.starts_with("22") || c.starts_with("23") => ErrorKind::Schema,
                "42804" | "42703" | "42P01" => ErrorKind::Schema,
                _ => ErrorKind::Precondition,
            }
        }
        _ => ErrorKind::Precondition,
    }
}

impl From<PgSinkError> for Error {
    fn from(e: PgSinkError) -> Self {
        let kind = e.kind();
        let message = e.to_string();
        Error::new(kind, message).with_source(e)
    }
}

/// The Postgres type of a column of engine type `t` (see the module's type
/// map).
pub fn postgres_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        DataType::Text => "text".into(),
        DataType::Bytes => "bytea".into(),
        DataType::Date => "date".into(),
        DataType::Time => "time".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Uuid => "uuid".into(),
        DataType::Json => "jsonb".into(),
        DataType::Interval => "interval".into(),
        // Postgres arrays have no fixed dimensions: a list of lists is a
        // two-dimensional array of the same type.
        DataType::List { item } => match &**item {
            DataType::List { .. } => postgres_type(item),
            other => format!("{}[]", postgres_type(other)),
        },
    }
}

// ---------------------------------------------------------------------------
// Values → COPY text
// ---------------------------------------------------------------------------

/// Appends the Postgres input text of `v` as a value of type `t` to `out`.
/// Returns `false` (and appends nothing) for NULL.
pub fn value_text(t: &DataType, v: &Value, out: &mut String) -> Result<bool, String> {
    let bad = |v: &Value| -> String {
        let mut shown = format!("{v:?}");
        if shown.len() > 80 {
            let mut end = 77;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
            shown.push_str("...");
        }
        format!("{shown} is not a {t}")
    };
    if matches!(v, Value::Null | Value::Unchanged) {
        return Ok(false);
    }
    match (t, v) {
        (DataType::Boolean, Value::Bool(b)) => out.push(if *b { 't' } else { 'f' }),
        (DataType::Int32, Value::Int(x)) => {
            let x = i32::try_from(*x).map_err(|_| format!("{x} is out of range for int"))?;
            let _ = write!(out, "{x}");
        }
        (DataType::Int64, Value::Int(x)) => {
            let _ = write!(out, "{x}");
        }
        (DataType::Float64, Value::Float(f)) => {
            if f.is_nan() {
                out.push_str("NaN");
            } else if f.is_infinite() {
                out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" });
            } else {
                // Rust prints the shortest text that reads back as the same
                // double; Postgres reads it exactly.
                let _ = write!(out, "{f}");
            }
        }
        (DataType::Float64, Value::Int(x)) => {
            let _ = write!(out, "{x}");
        }
        (DataType::Decimal { precision, scale }, Value::Decimal(text)) => {
            out.push_str(&exact_decimal(text, *precision, *scale).ok_or_else(|| {
                format!("{text} does not fit decimal({precision},{scale}) without rounding")
            })?);
        }
        (DataType::Decimal { precision, scale }, Value::Int(x)) => {
            let text = x.to_string();
            out.push_str(
                &exact_decimal(&text, *precision, *scale)
                    .ok_or_else(|| format!("{x} does not fit decimal({precision},{scale})"))?,
            );
        }
        (DataType::Text, Value::Text(s) | Value::Json(s)) => push_text(out, s)?,
        (DataType::Text, Value::Uuid(u)) => out.push_str(&format_uuid(u)),
        (DataType::Bytes, Value::Bytes(b)) => {
            out.reserve(2 + 2 * b.len());
            out.push_str("\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        (DataType::Date, Value::Date(d)) => push_date(out, i64::from(*d)),
        (DataType::Time, Value::Time(t)) => {
            if !(0..=86_400_000_000).contains(t) {
                return Err(format!("{t} µs is not a time of day"));
            }
            push_time(out, *t);
        }
        (
            DataType::Timestamp | DataType::TimestampTz,
            Value::Timestamp(ts) | Value::TimestampTz(ts),
        ) => push_timestamp(out, *ts, *t == DataType::TimestampTz),
        (DataType::Uuid, Value::Uuid(u)) => out.push_str(&format_uuid(u)),
        // Text is parsed (and checked) by Postgres.
        (DataType::Uuid | DataType::Json | DataType::Interval, Value::Text(s)) => {
            push_text(out, s)?
        }
        (DataType::Json, Value::Json(s)) => push_text(out, s)?,
        (
            DataType::Interval,
            Value::Interval {
                months,
                days,
                micros,
            },
        ) => {
            let _ = write!(out, "{months} mons {days} days {micros} microseconds");
        }
        (DataType::List { item }, Value::List(items)) => push_array(out, item, items)?,
        (_, other) => return Err(bad(other)),
    }
    Ok(true)
}

fn push_text(out: &mut String, s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err("text contains a NUL character, which Postgres cannot store".into());
    }
    out.push_str(s);
    Ok(())
}

/// An array literal: `{"a","b",NULL}`; nested lists as nested braces.
fn push_array(out: &mut String, item: &DataType, items: &[Value]) -> Result<(), String> {
    out.push('{');
    let mut text = String::new();
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match (item, v) {
            (_, Value::Null | Value::Unchanged) => out.push_str("NULL"),
            (DataType::List { item: inner }, Value::List(nested)) => {
                push_array(out, inner, nested)?
            }
            _ => {
                text.clear();
                value_text(item, v, &mut text)?;
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    Ok(())
}

/// Exact decimal text that fits `numeric(precision, scale)` without
/// rounding; `None` if it does not (or is not a plain decimal).
pub fn exact_decimal(text: &str, precision: u8, scale: u8) -> Option<String> {
    let DecimalParts {
        negative,
        int,
        frac,
    } = DecimalParts::parse(text)?;
    if frac.len() > usize::from(scale) || int.len() > usize::from(precision.saturating_sub(scale)) {
        return None;
    }
    let mut out = String::with_capacity(int.len() + frac.len() + 3);
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01
/// (year 0 is 1 BC).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`; returns whether the year is BC (the caller appends ` BC`).
fn push_ymd(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    let (year, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    bc
}

fn push_date(out: &mut String, days: i64) {
    if push_ymd(out, days) {
        out.push_str(" BC");
    }
}

fn push_time(out: &mut String, micros: i64) {
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:06}",
        micros / 3_600_000_000,
        micros / 60_000_000 % 60,
        micros / 1_000_000 % 60,
        micros % 1_000_000
    );
}

fn push_timestamp(out: &mut String, micros: i64, tz: bool) {
    match micros {
        i64::MAX => out.push_str("infinity"),
        i64::MIN => out.push_str("-infinity"),
        _ => {
            let days = micros.div_euclid(86_400_000_000);
            let bc = push_ymd(out, days);
            out.push(' ');
            push_time(out, micros.rem_euclid(86_400_000_000));
            if tz {
                out.push_str("+00");
            }
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// Canonical lowercase hyphenated UUID text.
fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Appends one field of COPY text format: backslash, tab, newline and
/// carriage return escaped.
fn push_copy_field(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

/// The COPY NULL marker.
const COPY_NULL: &[u8] = b"\\N";

// ---------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------

/// One target table and its staging table.
#[derive(Debug)]
struct Target {
    /// `"schema"."table"`.
    table: String,
    /// `pg_temp."_syncline_stage_N"`.
    stage: String,
    /// Bare staging table name.
    stage_name: String,
    /// The schema the staging table has.
    schema: Arc<TableSchema>,
    /// Whether the staging table exists on the current connection.
    staged: bool,
}

/// Everything the sink knows besides its connection.
#[derive(Debug)]
struct State {
    pipeline: String,
    mode: WriteMode,
    schema_name: String,
    targets: HashMap<TableId, Target>,
    /// Highest seq held, per source.
    held: BTreeMap<String, u64>,
    stages: usize,
}

/// The Postgres sink.
pub struct PostgresSink {
    config: PostgresTargetConfig,
    conn: Option<PgConnection>,
    opened: bool,
    state: State,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("target", &self.config.describe())
            .field("schema", &self.config.schema)
            .field("pipeline", &self.state.pipeline)
            .field("mode", &self.state.mode)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl PostgresSink {
    /// A sink for `config`, writing for pipeline `pipeline`.
    pub fn new(config: PostgresTargetConfig, pipeline: &str) -> Self {
        let state = State {
            pipeline: pipeline.to_owned(),
            mode: config.mode,
            schema_name: config.schema.clone(),
            targets: HashMap::new(),
            held: BTreeMap::new(),
            stages: 0,
        };
        PostgresSink {
            config,
            conn: None,
            opened: false,
            state,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PostgresTargetConfig {
        &self.config
    }

    /// The connection (opened if there is none) and the state.
    async fn connection(&mut self) -> Result<(&mut PgConnection, &mut State), PgSinkError> {
        if self.conn.is_none() {
            let conn = self.config.connect().await?;
            // Temp staging tables died with the previous connection.
            for t in self.state.targets.values_mut() {
                t.staged = false;
            }
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok((conn, &mut self.state)),
            None => Err(PgSinkError::NotOpen),
        }
    }

    async fn try_write(&mut self, source: &str, batch: &Batch) -> Result<(), PgSinkError> {
        let (conn, state) = self.connection().await?;
        state.write(conn, source, batch).await.map(|_| ())
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn check(&mut self) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut conn = match self.config.connect().await {
            Ok(c) => c,
            Err(e) => {
                let fix = match &e {
                    PgSinkError::Secret(_) => {
                        "set the environment variable the password refers to".to_owned()
                    }
                    _ => "check host, port, database, user and password, and that the server accepts connections from here (pg_hba.conf)".to_owned(),
                };
                checks.push(Check::fail("connection", Error::from(e).chain(), fix));
                return checks;
            }
        };
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|_| "unknown".into());
        checks.push(Check::pass(
            "connection",
            format!(
                "connected to {}:{}/{} (PostgreSQL {version})",
                self.config.host, self.config.port, self.config.database
            ),
        ));
        let name = format!("can create tables in schema {}", self.config.schema);
        match probe_create(&mut conn, &self.config.schema).await {
            Ok(created_schema) => checks.push(Check::pass(
                name,
                if created_schema {
                    format!(
                        "schema {} does not exist yet and will be created",
                        self.config.schema
                    )
                } else {
                    format!("{} may create tables there", self.config.user)
                },
            )),
            Err((detail, fix)) => checks.push(Check::fail(name, detail, fix)),
        }
        let _ = conn.close().await;
        checks
    }

    async fn open(&mut self, tables: &[Arc<TableSchema>]) -> Result<BTreeMap<String, Position>> {
        let (conn, state) = self.connection().await?;
        let held = state.prepare(conn, tables).await?;
        self.opened = true;
        Ok(held)
    }

    async fn write(&mut self, source: &str, batch: Arc<Batch>) -> Result<()> {
        if !self.opened {
            return Err(PgSinkError::NotOpen.into());
        }
        let mut attempt = 1;
        loop {
            match self.try_write(source, &batch).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Connection && attempt < WRITE_ATTEMPTS => {
                    let wait = Duration::from_millis(250 << attempt.min(6));
                    warn!(
                        target_db = %self.config.describe(),
                        attempt,
                        error = %chain(&e),
                        "writing a batch failed; retrying in {wait:?}"
                    );
                    if (e.connection_lost() || matches!(e, PgSinkError::Connect { .. }))
                        && let Some(conn) = self.conn.take()
                    {
                        let _ = conn.close_hard().await;
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn dead_letters(&mut self) -> Result<Vec<KeptRow>> {
        let (conn, state) = self.connection().await?;
        let table = state.qualified(DEAD_LETTER_TABLE);
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await
            .map_err(PgSinkError::sql("looking for the dead-letter table"))?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, source, table_name, coalesce(stage, 'read'), origin, line, raw, reason, seq,
                    (extract(epoch FROM recorded_at) * 1000000)::bigint, kept::text
             FROM {table} WHERE pipeline = $1 ORDER BY id"
        )))
        .bind(&state.pipeline)
        .fetch_all(&mut *conn)
        .await
        .map_err(PgSinkError::sql("reading dead letters"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let read = PgSinkError::sql("reading dead letters");
            let get = |row: &sqlx::postgres::PgRow| -> Result<KeptRow, sqlx::Error> {
                let stage: String = row.try_get(3)?;
                let kept: Option<String> = row.try_get(10)?;
                Ok(KeptRow {
                    id: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
                    source: row.try_get(1)?,
                    table: row.try_get(2)?,
                    stage: DeadLetterStage::parse(&stage).unwrap_or_default(),
                    origin: row.try_get(4)?,
                    line: row
                        .try_get::<Option<i64>, _>(5)?
                        .and_then(|l| u64::try_from(l).ok()),
                    raw: row.try_get(6)?,
                    reason: row.try_get(7)?,
                    seq: u64::try_from(row.try_get::<i64, _>(8)?).unwrap_or(0),
                    recorded_at: chrono::DateTime::from_timestamp_micros(row.try_get(9)?)
                        .unwrap_or_default(),
                    kept: kept.and_then(|k| serde_json::from_str(&k).ok()),
                })
            };
            out.push(get(&row).map_err(read)?);
        }
        Ok(out)
    }

    async fn replay(&mut self, batches: Vec<Batch>, resolved: Vec<u64>) -> Result<()> {
        if !self.opened {
            return Err(PgSinkError::NotOpen.into());
        }
        let (conn, state) = self.connection().await?;
        for change in batches.iter().flat_map(|b| &b.changes) {
            state.ensure_table(conn, &change.table).await?;
        }
        let mut tx = conn.begin().await.map_err(PgSinkError::sql("BEGIN"))?;
        for batch in &batches {
            let seq = i64::try_from(batch.position.seq).unwrap_or(i64::MAX);
            state.apply(&mut tx, "", batch, seq).await?;
        }
        let ids: Vec<i64> = resolved
            .iter()
            .filter_map(|&i| i64::try_from(i).ok())
            .collect();
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE pipeline = $1 AND id = ANY($2)",
            state.qualified(DEAD_LETTER_TABLE)
        )))
        .bind(&state.pipeline)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(PgSinkError::sql("removing replayed dead letters"))?;
        tx.commit().await.map_err(PgSinkError::sql("COMMIT"))?;
        Ok(())
    }

    async fn discard(&mut self, ids: &[u64]) -> Result<u64> {
        let (conn, state) = self.connection().await?;
        let table = state.qualified(DEAD_LETTER_TABLE);
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await
            .map_err(PgSinkError::sql("looking for the dead-letter table"))?;
        if !exists {
            return Ok(0);
        }
        let ids: Vec<i64> = ids.iter().filter_map(|&i| i64::try_from(i).ok()).collect();
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE pipeline = $1 AND id = ANY($2)"
        )))
        .bind(&state.pipeline)
        .bind(&ids)
        .execute(&mut *conn)
        .await
        .map_err(PgSinkError::sql("discarding dead letters"))?;
        Ok(done.rows_affected())
    }

    async fn forget(&mut self) -> Result<()> {
        let (conn, state) = self.connection().await?;
        let table = state.qualified(CHECKPOINT_TABLE);
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await
            .map_err(PgSinkError::sql("looking for the checkpoint table"))?;
        if exists {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE pipeline = $1"
            )))
            .bind(&state.pipeline)
            .execute(&mut *conn)
            .await
            .map_err(PgSinkError::sql("forgetting checkpoints"))?;
        }
        state.held.clear();
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
        Ok(())
    }
}

/// The error with its causes, for logs.
fn chain(e: &PgSinkError) -> String {
    let mut text = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        next = cause.source();
    }
    text
}

/// Whether a table can be created in `schema`: creates the schema (when
/// missing) and a probe table in a transaction that is rolled back. Returns
/// whether the schema is missing; on failure, what failed and the fix.
async fn probe_create(conn: &mut PgConnection, schema: &str) -> Result<bool, (String, String)> {
    let failed = |e: sqlx::Error| e.to_string();
    let run = async {
        let mut tx = conn.begin().await.map_err(failed)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed)?;
        if !exists {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {}", quote(schema))))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {}.\"_syncline_probe\" (x int)",
            quote(schema)
        )))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.rollback().await.map_err(failed)?;
        Ok::<bool, String>(!exists)
    };
    run.await.map_err(|detail| {
        (
            detail,
            format!(
                "as the schema's owner or a superuser: `GRANT CREATE ON SCHEMA {s} TO <user>;` (or, when the schema does not exist yet, `GRANT CREATE ON DATABASE <database> TO <user>;`)",
                s = quote(schema)
            ),
        )
    })
}

impl State {
    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote(&self.schema_name), quote(table))
    }

    /// Creates the schema and bookkeeping tables, creates or evolves the
    /// target tables, and returns the stored checkpoints.
    async fn prepare(
        &mut self,
        conn: &mut PgConnection,
        tables: &[Arc<TableSchema>],
    ) -> Result<BTreeMap<String, Position>, PgSinkError> {
        if self.schema_name.len() > MAX_IDENTIFIER {
            return Err(PgSinkError::Schema {
                table: self.schema_name.clone(),
                detail: format!("schema names are at most {MAX_IDENTIFIER} bytes in Postgres"),
            });
        }
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&self.schema_name)
                .fetch_one(&mut *conn)
                .await
                .map_err(PgSinkError::sql("looking up the schema"))?;
        if !exists {
            // IF NOT EXISTS: another process may have created it meanwhile.
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote(&self.schema_name)
            )))
            .execute(&mut *conn)
            .await
            .map_err(PgSinkError::sql(format!(
                "creating schema {}",
                self.schema_name
            )))?;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {cp} (
                 pipeline text NOT NULL,
                 source text NOT NULL,
                 seq bigint NOT NULL,
                 position jsonb NOT NULL,
                 updated_at timestamptz NOT NULL,
                 PRIMARY KEY (pipeline, source));
             CREATE TABLE IF NOT EXISTS {dl} (
                 pipeline text NOT NULL,
                 source text NOT NULL,
                 table_name text NOT NULL,
                 origin text NOT NULL,
                 line bigint,
                 raw text NOT NULL,
                 reason text NOT NULL,
                 seq bigint NOT NULL,
                 recorded_at timestamptz NOT NULL DEFAULT now());
             ALTER TABLE {dl} ADD COLUMN IF NOT EXISTS id bigint GENERATED BY DEFAULT AS IDENTITY;
             ALTER TABLE {dl} ADD COLUMN IF NOT EXISTS stage text;
             ALTER TABLE {dl} ADD COLUMN IF NOT EXISTS kept jsonb;",
            cp = self.qualified(CHECKPOINT_TABLE),
            dl = self.qualified(DEAD_LETTER_TABLE),
        )))
        .execute(&mut *conn)
        .await
        .map_err(PgSinkError::sql("creating Syncline's bookkeeping tables"))?;
        // Known before any table work, so a redelivered batch is skipped.
        let held = self.read_checkpoints(conn).await?;
        self.held = held.iter().map(|(k, p)| (k.clone(), p.seq)).collect();
        for t in tables {
            self.ensure_table(conn, t).await?;
        }
        Ok(held)
    }

    async fn read_checkpoints(
        &self,
        conn: &mut PgConnection,
    ) -> Result<BTreeMap<String, Position>, PgSinkError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT source, seq, position::text FROM {} WHERE pipeline = $1",
            self.qualified(CHECKPOINT_TABLE)
        )))
        .bind(&self.pipeline)
        .fetch_all(&mut *conn)
        .await
        .map_err(PgSinkError::sql("reading checkpoints"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let unreadable = PgSinkError::sql("reading checkpoints");
            let (source, seq, text): (String, i64, String) =
                match (row.try_get(0), row.try_get(1), row.try_get(2)) {
                    (Ok(a), Ok(b), Ok(c)) => (a, b, c),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(unreadable(e)),
                };
            let seq = u64::try_from(seq).map_err(|_| PgSinkError::Checkpoint {
                source_name: source.clone(),
                detail: format!("stored sequence number {seq} is negative"),
            })?;
            let state = serde_json::from_str(&text).map_err(|e| PgSinkError::Checkpoint {
                source_name: source.clone(),
                detail: e.to_string(),
            })?;
            out.insert(source, Position { seq, state });
        }
        Ok(out)
    }

    async fn ensure_table(
        &mut self,
        conn: &mut PgConnection,
        schema: &Arc<TableSchema>,
    ) -> Result<(), PgSinkError> {
        if let Some(t) = self.targets.get(&schema.id)
            && (Arc::ptr_eq(&t.schema, schema)
                || (t.schema.version == schema.version && t.schema.columns == schema.columns))
        {
            if !t.staged {
                create_stage(conn, &t.stage, &t.schema).await?;
                if let Some(t) = self.targets.get_mut(&schema.id) {
                    t.staged = true;
                }
            }
            return Ok(());
        }
        let id = schema.id.to_string();
        if self.mode == WriteMode::Upsert && schema.key.is_empty() {
            return Err(PgSinkError::Schema {
                table: id,
                detail: "has no key, and upsert mode needs one: declare key = [...] for the table, or set mode = \"append\" or \"history\" on the target".into(),
            });
        }
        for name in std::iter::once(&schema.id.name).chain(schema.columns.iter().map(|c| &c.name)) {
            if name.len() > MAX_IDENTIFIER {
                return Err(PgSinkError::Schema {
                    table: id,
                    detail: format!(
                        "the name `{name}` is longer than the {MAX_IDENTIFIER} bytes Postgres keeps"
                    ),
                });
            }
        }
        let reserved: &[&str] = if self.mode == WriteMode::History {
            &[
                "_op",
                "_seq",
                "_commit_time",
                "_synced_at",
                "_syncline_seq",
                "_syncline_op",
                "_syncline_unchanged",
            ]
        } else {
            &["_syncline_seq", "_syncline_op", "_syncline_unchanged"]
        };
        if let Some(c) = schema
            .columns
            .iter()
            .find(|c| reserved.contains(&c.name.as_str()))
        {
            return Err(PgSinkError::Schema {
                table: id,
                detail: format!(
                    "has a column named `{}`, which the Postgres target uses for its own bookkeeping in {} mode",
                    c.name,
                    self.mode.as_str()
                ),
            });
        }
        let table = self.qualified(&schema.id.name);
        let existed: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await
            .map_err(PgSinkError::sql(format!("looking up {table}")))?;
        let mut columns: Vec<String> = Vec::new();
        if self.mode == WriteMode::History {
            columns.push(HISTORY_COLUMNS.to_owned());
        }
        columns.extend(
            schema
                .columns
                .iter()
                .map(|c| format!("{} {}", quote(&c.name), postgres_type(&c.data_type))),
        );
        let keys: Vec<String> = schema
            .key
            .iter()
            .map(|&k| quote(&schema.columns[k].name))
            .collect();
        if self.mode == WriteMode::Upsert {
            columns.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        if !existed {
            let mut sql = format!(
                "CREATE TABLE IF NOT EXISTS {table} ({})",
                columns.join(", ")
            );
            // History and append tables are read back by key for values the
            // source left out (unchanged TOAST).
            if !keys.is_empty() {
                match self.mode {
                    WriteMode::History => {
                        let _ =
                            write!(sql, "; CREATE INDEX ON {table} ({}, _seq)", keys.join(", "));
                    }
                    WriteMode::Append => {
                        let _ = write!(sql, "; CREATE INDEX ON {table} ({})", keys.join(", "));
                    }
                    WriteMode::Upsert => {}
                }
            }
            info!(table = %schema.id, target = %table, "creating target table");
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .map_err(PgSinkError::sql(format!("creating {table}")))?;
        }
        // Columns the source gained since the table was created.
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .map_err(PgSinkError::sql(format!("reading the columns of {table}")))?;
        for c in schema
            .columns
            .iter()
            .filter(|c| !existing.contains(&c.name))
        {
            info!(table = %schema.id, column = %c.name, "adding column to target");
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {}",
                quote(&c.name),
                postgres_type(&c.data_type)
            )))
            .execute(&mut *conn)
            .await
            .map_err(PgSinkError::sql(format!(
                "adding column {} to {table}",
                c.name
            )))?;
        }

        let stage_name = match self.targets.get(&schema.id) {
            Some(t) => t.stage_name.clone(),
            None => {
                self.stages += 1;
                format!("_syncline_stage_{}", self.stages)
            }
        };
        let stage = format!("pg_temp.{}", quote(&stage_name));
        create_stage(conn, &stage, schema).await?;
        self.targets.insert(
            schema.id.clone(),
            Target {
                table,
                stage,
                stage_name,
                schema: schema.clone(),
                staged: true,
            },
        );
        Ok(())
    }

    /// Applies a batch and its checkpoint in one transaction; `false` if it
    /// was skipped as already held.
    async fn write(
        &mut self,
        conn: &mut PgConnection,
        source: &str,
        batch: &Batch,
    ) -> Result<bool, PgSinkError> {
        if self
            .held
            .get(source)
            .is_some_and(|&held| batch.position.seq <= held)
        {
            return Ok(false);
        }
        let seq = i64::try_from(batch.position.seq).map_err(|_| PgSinkError::Checkpoint {
            source_name: source.to_owned(),
            detail: format!(
                "sequence number {} does not fit a bigint",
                batch.position.seq
            ),
        })?;
        let position =
            serde_json::to_string(&batch.position.state).map_err(|e| PgSinkError::Checkpoint {
                source_name: source.to_owned(),
                detail: e.to_string(),
            })?;
        // Tables first seen (or changed) mid-stream are created outside the
        // data transaction: the DDL is idempotent.
        for change in &batch.changes {
            self.ensure_table(conn, &change.table).await?;
        }
        let mut tx = conn.begin().await.map_err(PgSinkError::sql("BEGIN"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(&self.schema_name, &self.pipeline, source))
            .execute(&mut *tx)
            .await
            .map_err(PgSinkError::sql("locking the checkpoint"))?;
        let stored: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT seq FROM {} WHERE pipeline = $1 AND source = $2",
            self.qualified(CHECKPOINT_TABLE)
        )))
        .bind(&self.pipeline)
        .bind(source)
        .fetch_optional(&mut *tx)
        .await
        .map_err(PgSinkError::sql("reading the checkpoint"))?;
        if let Some(stored) = stored.filter(|&s| s >= seq) {
            tx.rollback().await.map_err(PgSinkError::sql("ROLLBACK"))?;
            self.held
                .insert(source.to_owned(), u64::try_from(stored).unwrap_or(0));
            return Ok(false);
        }
        self.apply(&mut tx, source, batch, seq).await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (pipeline, source, seq, position, updated_at)
             VALUES ($1, $2, $3, $4::jsonb, now())
             ON CONFLICT (pipeline, source) DO UPDATE SET
                 seq = excluded.seq, position = excluded.position, updated_at = excluded.updated_at",
            self.qualified(CHECKPOINT_TABLE)
        )))
        .bind(&self.pipeline)
        .bind(source)
        .bind(seq)
        .bind(&position)
        .execute(&mut *tx)
        .await
        .map_err(PgSinkError::sql("storing the checkpoint"))?;
        tx.commit().await.map_err(PgSinkError::sql("COMMIT"))?;
        self.held.insert(source.to_owned(), batch.position.seq);
        Ok(true)
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        source: &str,
        batch: &Batch,
        seq: i64,
    ) -> Result<(), PgSinkError> {
        // Changes of one table keep their order; tables are independent.
        let mut order: Vec<&TableId> = Vec::new();
        let normalized: Vec<Option<Vec<Change>>> =
            batch.changes.iter().map(|c| self.normalize(c)).collect();
        let mut by_table: HashMap<&TableId, Vec<&Change>> = HashMap::new();
        for (change, replaced) in batch.changes.iter().zip(&normalized) {
            let list = by_table.entry(&change.table.id).or_insert_with(|| {
                order.push(&change.table.id);
                Vec::new()
            });
            match replaced {
                Some(changes) => list.extend(changes),
                None => list.push(change),
            }
        }
        let commit_micros = batch.commit_time.map(|t| t.timestamp_micros());
        for id in order {
            let target = self.targets.get(id).ok_or_else(|| PgSinkError::Schema {
                table: id.to_string(),
                detail: "was not prepared".into(),
            })?;
            let mut staged = false;
            let mut segment: Vec<&Change> = Vec::new();
            for change in &by_table[id] {
                if change.op == Op::Truncate {
                    self.apply_segment(conn, target, &segment, seq, commit_micros, &mut staged)
                        .await?;
                    segment.clear();
                    self.truncate(conn, target, seq, commit_micros).await?;
                } else if change.op == Op::Prune {
                    self.apply_segment(conn, target, &segment, seq, commit_micros, &mut staged)
                        .await?;
                    segment.clear();
                    self.prune(conn, target, change, seq, commit_micros, &mut staged)
                        .await?;
                } else {
                    segment.push(change);
                }
            }
            self.apply_segment(conn, target, &segment, seq, commit_micros, &mut staged)
                .await?;
        }
        self.write_dead_letters(conn, source, batch, seq).await
    }

    /// `change` as it must be staged (see [`apply::conform`]).
    fn normalize(&self, change: &Change) -> Option<Vec<Change>> {
        let schema = &self.targets.get(&change.table.id)?.schema;
        apply::conform(schema, change, self.mode == WriteMode::Upsert)
    }

    async fn truncate(
        &self,
        conn: &mut PgConnection,
        target: &Target,
        seq: i64,
        commit_micros: Option<i64>,
    ) -> Result<(), PgSinkError> {
        let sql = match self.mode {
            WriteMode::Upsert | WriteMode::Append => format!("TRUNCATE {}", target.table),
            WriteMode::History => format!(
                "INSERT INTO {} (_op, _seq, _commit_time, _synced_at) VALUES ('t', {seq}, {}, now())",
                target.table,
                commit_time_sql(commit_micros)
            ),
        };
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(PgSinkError::sql(format!("truncating {}", target.table)))?;
        Ok(())
    }

    /// Removes the rows of a key range the source no longer holds (see
    /// [`Op::Prune`]): deleted in `upsert`, recorded as deletes in
    /// `history`; `append` keeps every row it was given.
    async fn prune(
        &self,
        conn: &mut PgConnection,
        target: &Target,
        change: &Change,
        seq: i64,
        commit_micros: Option<i64>,
        staged: &mut bool,
    ) -> Result<(), PgSinkError> {
        if self.mode == WriteMode::Append {
            return Ok(());
        }
        let schema = &target.schema;
        let range = change.prune_range().ok_or_else(|| PgSinkError::Value {
            column: "*".into(),
            detail: format!("a key scan of {} arrived without its keys", schema.id),
        })?;
        if schema.key.is_empty() {
            return Err(PgSinkError::Schema {
                table: schema.id.to_string(),
                detail: "a key scan needs a key; the table has none".into(),
            });
        }
        let stage = &target.stage;
        if *staged {
            sqlx::raw_sql(AssertSqlSafe(format!("DELETE FROM {stage}")))
                .execute(&mut *conn)
                .await
                .map_err(PgSinkError::sql("clearing the staging table"))?;
        }
        *staged = true;
        // Bounds and present keys go through the staging table, tagged in
        // `_syncline_op`: `lo`, `hi` and `k`.
        let mut tags: Vec<&str> = Vec::new();
        let mut keys: Vec<&Vec<Value>> = Vec::new();
        for (tag, key) in range
            .after_key
            .iter()
            .map(|k| ("lo", k))
            .chain(range.up_to.iter().map(|k| ("hi", k)))
            .chain(range.present.iter().map(|k| ("k", k)))
        {
            tags.push(tag);
            keys.push(key);
        }
        let width = schema.columns.len();
        let rows: Vec<Row> = keys
            .iter()
            .map(|key| {
                let mut row = vec![Value::Null; width];
                for (&i, v) in schema.key.iter().zip(key.iter()) {
                    row[i] = v.clone();
                }
                row
            })
            .collect();
        let changes: Vec<Change> = rows
            .iter()
            .map(|row| Change {
                op: Op::Insert,
                table: schema.clone(),
                before: None,
                after: Some(row.clone()),
            })
            .collect();
        let refs: Vec<&Change> = changes.iter().collect();
        let cows: Vec<Cow<'_, Row>> = rows.iter().map(Cow::Borrowed).collect();
        copy_rows(conn, target, &refs, &cows, Some(&tags)).await?;

        // Text compares byte-wise, as the source ordered the keys.
        let key_sql: Vec<(String, String)> = schema
            .key
            .iter()
            .map(|&k| {
                let c = &schema.columns[k];
                let name = quote(&c.name);
                if c.data_type == DataType::Text {
                    (format!("(h.{name} COLLATE \"C\")"), format!("p.{name}"))
                } else {
                    (format!("h.{name}"), format!("p.{name}"))
                }
            })
            .collect();
        let filter = apply::prune_condition(&key_sql, stage, "_syncline_op", &range);
        let table = &target.table;
        let sql = if self.mode == WriteMode::History {
            let cols: Vec<String> = schema
                .key
                .iter()
                .map(|&k| quote(&schema.columns[k].name))
                .collect();
            let cols = cols.join(", ");
            format!(
                "INSERT INTO {table} (_op, _seq, _commit_time, _synced_at, {cols})
                 SELECT 'd', {seq}, {commit}, now(), {cols} FROM (
                     SELECT DISTINCT ON ({cols}) {cols}, _op FROM {table}
                     WHERE _seq >= coalesce((SELECT max(_seq) FROM {table} WHERE _op = 't'), 0)
                       AND _op <> 't'
                     ORDER BY {cols}, _seq DESC, ctid DESC
                 ) h WHERE h._op <> 'd' AND {filter}",
                commit = commit_time_sql(commit_micros),
            )
        } else {
            format!("DELETE FROM {table} h WHERE {filter}")
        };
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(PgSinkError::sql(format!(
                "removing rows of {table} gone at the source"
            )))?;
        Ok(())
    }

    async fn apply_segment(
        &self,
        conn: &mut PgConnection,
        target: &Target,
        changes: &[&Change],
        seq: i64,
        commit_micros: Option<i64>,
        staged: &mut bool,
    ) -> Result<(), PgSinkError> {
        if changes.is_empty() {
            return Ok(());
        }
        let schema = &target.schema;
        let stage = &target.stage;
        if *staged {
            // An earlier segment of this batch (before a truncate) used it.
            sqlx::raw_sql(AssertSqlSafe(format!("DELETE FROM {stage}")))
                .execute(&mut *conn)
                .await
                .map_err(PgSinkError::sql("clearing the staging table"))?;
        }
        *staged = true;
        let rows = apply::resolve_unchanged(schema, changes);
        let unchanged_columns = copy_rows(conn, target, changes, &rows, None).await?;
        if rows.len() >= ANALYZE_FROM {
            sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE {stage}")))
                .execute(&mut *conn)
                .await
                .map_err(PgSinkError::sql("analysing the staging table"))?;
        }

        let keys: Vec<String> = schema
            .key
            .iter()
            .map(|&k| quote(&schema.columns[k].name))
            .collect();
        let table = &target.table;
        let join = |a: &str, b: &str| -> String {
            keys.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };

        // Values the source did not send (unchanged TOAST) come from the row
        // the target holds: the one row of the key in upsert mode, the
        // latest otherwise; for a row moved to another key, of its old key.
        if !unchanged_columns.is_empty() && !keys.is_empty() {
            let lookup = |alias: &str| -> Vec<String> {
                schema
                    .key
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        let c = &schema.columns[k];
                        format!(
                            "CASE WHEN {alias}._syncline_from IS NULL THEN {alias}.{name} ELSE ({alias}._syncline_from[{n}])::{ty} END",
                            name = quote(&c.name),
                            n = i + 1,
                            ty = postgres_type(&c.data_type),
                        )
                    })
                    .collect()
            };
            let lookup_join: Vec<String> = keys
                .iter()
                .zip(lookup("s"))
                .map(|(k, e)| format!("t.{k} = {e}"))
                .collect();
            let set: Vec<String> = unchanged_columns
                .iter()
                .map(|&c| {
                    let col = quote(&schema.columns[c].name);
                    format!(
                        "{col} = CASE WHEN {n} = ANY(s._syncline_unchanged) THEN t.{col} ELSE s.{col} END",
                        n = c
                    )
                })
                .collect();
            let from = match self.mode {
                WriteMode::Upsert => format!("{table} t"),
                WriteMode::Append | WriteMode::History => {
                    let order = if self.mode == WriteMode::History {
                        "_seq DESC, ctid DESC"
                    } else {
                        "ctid DESC"
                    };
                    let wanted: Vec<String> = unchanged_columns
                        .iter()
                        .map(|&c| quote(&schema.columns[c].name))
                        .collect();
                    // History: only rows that carry values (not deletes
                    // or truncates).
                    let ops = if self.mode == WriteMode::History {
                        "AND _op IN ('i', 'u')"
                    } else {
                        ""
                    };
                    format!(
                        "(SELECT DISTINCT ON ({k}) {k}, {wanted} FROM {table}
                          WHERE ({k}) IN (SELECT {looked} FROM {stage} x WHERE x._syncline_unchanged IS NOT NULL) {ops}
                          ORDER BY {k}, {order}) t",
                        k = keys.join(", "),
                        wanted = wanted.join(", "),
                        looked = lookup("x").join(", "),
                    )
                }
            };
            let sql = format!(
                "UPDATE {stage} s SET {set} FROM {from} WHERE s._syncline_unchanged IS NOT NULL AND {join}",
                set = set.join(", "),
                join = lookup_join.join(" AND "),
            );
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .map_err(PgSinkError::sql(format!(
                    "keeping unchanged values of {table}"
                )))?;
        }

        let cols: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        let cols = cols.join(", ");
        let sql = match self.mode {
            WriteMode::Upsert => {
                if keys.is_empty() {
                    return Err(PgSinkError::Schema {
                        table: schema.id.to_string(),
                        detail: "upsert mode needs a key; the table has none".into(),
                    });
                }
                let k = keys.join(", ");
                format!(
                    "DELETE FROM {table} t USING {stage} s WHERE {join};
                     INSERT INTO {table} ({cols})
                     SELECT {cols} FROM (
                         SELECT DISTINCT ON ({k}) * FROM {stage} ORDER BY {k}, _syncline_seq DESC
                     ) s WHERE _syncline_op <> 'd'",
                    join = join("t", "s"),
                )
            }
            WriteMode::Append => format!(
                "INSERT INTO {table} ({cols})
                 SELECT {cols} FROM {stage} WHERE _syncline_op IN ('i', 'u') ORDER BY _syncline_seq"
            ),
            WriteMode::History => format!(
                "INSERT INTO {table} (_op, _seq, _commit_time, _synced_at, {cols})
                 SELECT _syncline_op, {seq}, {commit}, now(), {cols} FROM {stage} ORDER BY _syncline_seq",
                commit = commit_time_sql(commit_micros),
            ),
        };
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(PgSinkError::sql(format!("merging into {table}")))?;
        Ok(())
    }

    async fn write_dead_letters(
        &self,
        conn: &mut PgConnection,
        source: &str,
        batch: &Batch,
        seq: i64,
    ) -> Result<(), PgSinkError> {
        if batch.dead_letters.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        let seq = seq.to_string();
        for dl in &batch.dead_letters {
            // NUL cannot be stored; a rejected record must not be lost for it.
            let clean = |s: &str| s.replace('\0', "\u{fffd}");
            let line = dl.line.map(|l| l.to_string());
            let kept = dl.kept.as_ref().and_then(|k| serde_json::to_string(k).ok());
            let fields: [Option<&str>; 10] = [
                Some(&self.pipeline),
                Some(source),
                Some(&dl.table.name),
                Some(&dl.origin),
                line.as_deref(),
                Some(&dl.raw),
                Some(&dl.reason),
                Some(&seq),
                Some(dl.stage.as_str()),
                kept.as_deref(),
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                match f {
                    Some(text) => push_copy_field(&mut data, &clean(text)),
                    None => data.extend_from_slice(COPY_NULL),
                }
            }
            data.push(b'\n');
        }
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {} (pipeline, source, table_name, origin, line, raw, reason, seq, stage, kept) FROM STDIN",
                self.qualified(DEAD_LETTER_TABLE)
            ))
            .await
            .map_err(PgSinkError::sql("writing dead letters"))?;
        if let Err(e) = copy.send(data).await {
            let _ = copy.abort("sending failed").await;
            return Err(PgSinkError::sql("writing dead letters")(e));
        }
        copy.finish()
            .await
            .map_err(PgSinkError::sql("writing dead letters"))?;
        Ok(())
    }
}

/// Creates (or re-creates) a staging table for `schema`. Rows vanish at
/// commit or rollback.
async fn create_stage(
    conn: &mut PgConnection,
    stage: &str,
    schema: &TableSchema,
) -> Result<(), PgSinkError> {
    let columns: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), postgres_type(&c.data_type)))
        .collect();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS {stage};
         CREATE TEMP TABLE {stage} (_syncline_seq integer NOT NULL, _syncline_op text NOT NULL, _syncline_unchanged integer[], _syncline_from text[], {})
             ON COMMIT DELETE ROWS",
        columns.join(", ")
    )))
    .execute(&mut *conn)
    .await
    .map_err(PgSinkError::sql("creating the staging table"))?;
    Ok(())
}

/// Bulk-loads one segment into its staging table with `COPY ... FROM STDIN`,
/// each row tagged with its change's op code or, where given, `tags[i]`.
/// Returns the columns that have values the source did not send.
async fn copy_rows(
    conn: &mut PgConnection,
    target: &Target,
    changes: &[&Change],
    rows: &[Cow<'_, Row>],
    tags: Option<&[&str]>,
) -> Result<BTreeSet<usize>, PgSinkError> {
    let schema = &target.schema;
    let mut columns = vec![
        "_syncline_seq".to_owned(),
        "_syncline_op".to_owned(),
        "_syncline_unchanged".to_owned(),
        "_syncline_from".to_owned(),
    ];
    columns.extend(schema.columns.iter().map(|c| quote(&c.name)));
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {} ({}) FROM STDIN",
            target.stage,
            columns.join(", ")
        ))
        .await
        .map_err(PgSinkError::sql(format!(
            "staging rows for {}",
            target.table
        )))?;
    let mut unchanged_columns = BTreeSet::new();
    let mut data: Vec<u8> = Vec::with_capacity(COPY_CHUNK + 64 * 1024);
    let mut text = String::new();
    let null = Value::Null;
    let mut failure: Option<PgSinkError> = None;
    'rows: for (i, (change, row)) in changes.iter().zip(rows).enumerate() {
        let _ = write!(text, "{i}");
        data.extend_from_slice(text.as_bytes());
        text.clear();
        data.push(b'\t');
        let tag = tags.and_then(|t| t.get(i).copied());
        data.extend_from_slice(tag.unwrap_or(change.op.code()).as_bytes());
        data.push(b'\t');
        let unchanged: Vec<String> = row
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v, Value::Unchanged))
            .map(|(c, _)| c.to_string())
            .collect();
        if unchanged.is_empty() {
            data.extend_from_slice(COPY_NULL);
        } else {
            data.push(b'{');
            data.extend_from_slice(unchanged.join(",").as_bytes());
            data.push(b'}');
            for (c, v) in row.iter().enumerate() {
                if matches!(v, Value::Unchanged) {
                    unchanged_columns.insert(c);
                }
            }
        }
        // Where values left out of a moved row are found: its old key.
        data.push(b'\t');
        match apply::moved_from(change).filter(|_| !unchanged.is_empty()) {
            Some(before) => match old_key_literal(schema, before) {
                Ok(literal) => push_copy_field(&mut data, &literal),
                Err(e) => {
                    failure = Some(e);
                    break 'rows;
                }
            },
            None => data.extend_from_slice(COPY_NULL),
        }
        for (c, column) in schema.columns.iter().enumerate() {
            data.push(b'\t');
            let v = row.get(c).unwrap_or(&null);
            match value_text(&column.data_type, v, &mut text) {
                Ok(true) => push_copy_field(&mut data, &text),
                Ok(false) => data.extend_from_slice(COPY_NULL),
                Err(detail) => {
                    failure = Some(PgSinkError::Value {
                        column: column.name.clone(),
                        detail,
                    });
                    break 'rows;
                }
            }
            text.clear();
        }
        data.push(b'\n');
        if data.len() >= COPY_CHUNK {
            if let Err(e) = copy.send(std::mem::take(&mut data)).await {
                failure = Some(PgSinkError::sql(format!(
                    "staging rows for {}",
                    target.table
                ))(e));
                break;
            }
            data.reserve(COPY_CHUNK + 64 * 1024);
        }
    }
    if let Some(e) = failure {
        let _ = copy.abort("the batch was refused").await;
        return Err(e);
    }
    let what = || format!("staging rows for {}", target.table);
    if !data.is_empty()
        && let Err(e) = copy.send(data).await
    {
        let _ = copy.abort("sending failed").await;
        return Err(PgSinkError::sql(what())(e));
    }
    copy.finish().await.map_err(PgSinkError::sql(what()))?;
    Ok(unchanged_columns)
}

/// The old key of a moved row as a `text[]` literal of its values' input
/// text (cast back to the key types when the target is searched).
fn old_key_literal(schema: &TableSchema, before: &Row) -> Result<String, PgSinkError> {
    let mut items = Vec::with_capacity(schema.key.len());
    for &k in &schema.key {
        let column = &schema.columns[k];
        let mut one = String::new();
        let v = before.get(k).unwrap_or(&Value::Null);
        value_text(&column.data_type, v, &mut one).map_err(|detail| PgSinkError::Value {
            column: column.name.clone(),
            detail,
        })?;
        items.push(Value::Text(one));
    }
    let mut literal = String::new();
    let list = DataType::List {
        item: Box::new(DataType::Text),
    };
    value_text(&list, &Value::List(items), &mut literal).map_err(|detail| PgSinkError::Value {
        column: "(key)".into(),
        detail,
    })?;
    Ok(literal)
}

fn commit_time_sql(micros: Option<i64>) -> String {
    micros.map_or_else(
        || "NULL".to_owned(),
        |m| format!("('epoch'::timestamptz + {m} * interval '1 microsecond')"),
    )
}

/// The advisory lock serialising writes of one (schema, pipeline, source).
fn lock_key(schema: &str, pipeline: &str, source: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in ["syncline", schema, pipeline, source] {
        for b in part.bytes().chain([0u8]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &DataType, v: &Value) -> Result<Option<String>, String> {
        let mut out = String::new();
        value_text(t, v, &mut out).map(|some| some.then_some(out))
    }

    fn copy_field(s: &str) -> String {
        let mut out = Vec::new();
        push_copy_field(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        assert_eq!(exact_decimal("12.50", 4, 2).as_deref(), Some("12.5"));
        assert_eq!(exact_decimal("+007", 3, 0).as_deref(), Some("7"));
        assert_eq!(exact_decimal("-0.000", 3, 2).as_deref(), Some("0"));
        assert_eq!(exact_decimal("-.5", 3, 2).as_deref(), Some("-0.5"));
        assert_eq!(exact_decimal("1.005", 5, 2), None);
        assert_eq!(exact_decimal("100", 4, 2), None);
        assert_eq!(exact_decimal("1e5", 10, 2), None);
        assert_eq!(exact_decimal("NaN", 10, 2), None);
        assert_eq!(exact_decimal(".", 10, 2), None);
        assert_eq!(
            exact_decimal("99999999999999999999.999999999999999999", 38, 18).as_deref(),
            Some("99999999999999999999.999999999999999999")
        );
    }

    #[test]
    fn dates_and_times_render_as_postgres_reads_them() {
        let ts = |m| text(&DataType::Timestamp, &Value::Timestamp(m));
        assert_eq!(
            text(&DataType::Date, &Value::Date(0)),
            Ok(Some("1970-01-01".into()))
        );
        assert_eq!(
            text(&DataType::Date, &Value::Date(19_782)),
            Ok(Some("2024-02-29".into()))
        );
        // 44 BC is year -43.
        assert_eq!(
            text(&DataType::Date, &Value::Date(-735_160)),
            Ok(Some("0044-03-15 BC".into()))
        );
        assert_eq!(ts(-1), Ok(Some("1969-12-31 23:59:59.999999".into())));
        assert_eq!(ts(i64::MAX), Ok(Some("infinity".into())));
        assert_eq!(ts(i64::MIN), Ok(Some("-infinity".into())));
        assert_eq!(
            text(
                &DataType::TimestampTz,
                &Value::TimestampTz(1_709_210_096_789_012)
            ),
            Ok(Some("2024-02-29 12:34:56.789012+00".into()))
        );
        assert_eq!(
            text(&DataType::Time, &Value::Time(86_400_000_000)),
            Ok(Some("24:00:00.000000".into()))
        );
        assert!(text(&DataType::Time, &Value::Time(-1)).is_err());
    }

    #[test]
    fn scalars_render_and_mismatches_are_refused() {
        assert_eq!(
            text(&DataType::Float64, &Value::Float(f64::NEG_INFINITY)),
            Ok(Some("-Infinity".into()))
        );
        assert_eq!(
            text(&DataType::Float64, &Value::Float(0.1)),
            Ok(Some("0.1".into()))
        );
        assert_eq!(
            text(&DataType::Bytes, &Value::Bytes(vec![0, 0x5c, 0xff])),
            Ok(Some("\\x005cff".into()))
        );
        assert_eq!(
            text(
                &DataType::Interval,
                &Value::Interval {
                    months: -1,
                    days: 2,
                    micros: -3
                }
            ),
            Ok(Some("-1 mons 2 days -3 microseconds".into()))
        );
        assert_eq!(text(&DataType::Text, &Value::Null), Ok(None));
        assert_eq!(text(&DataType::Text, &Value::Unchanged), Ok(None));
        assert!(text(&DataType::Int32, &Value::Int(1 << 40)).is_err());
        assert!(text(&DataType::Float64, &Value::Text("1.5".into())).is_err());
        assert!(
            text(
                &DataType::Decimal {
                    precision: 5,
                    scale: 2
                },
                &Value::Float(1.5)
            )
            .is_err()
        );
        assert!(text(&DataType::Text, &Value::Text("a\0b".into())).is_err());
        let err = text(&DataType::Date, &Value::Text("x".repeat(500))).expect_err("refused");
        assert!(err.len() < 120, "{err}");
    }

    #[test]
    fn arrays_quote_every_item() {
        let list = |item: DataType| DataType::List {
            item: Box::new(item),
        };
        assert_eq!(
            text(
                &list(DataType::Text),
                &Value::List(vec![
                    Value::Text("a,b".into()),
                    Value::Null,
                    Value::Text("NULL".into()),
                    Value::Text("say \"hi\" \\o/".into()),
                    Value::Text(String::new()),
                ])
            ),
            Ok(Some(r#"{"a,b",NULL,"NULL","say \"hi\" \\o/",""}"#.into()))
        );
        assert_eq!(
            text(
                &list(DataType::Bytes),
                &Value::List(vec![Value::Bytes(vec![1])])
            ),
            Ok(Some(r#"{"\\x01"}"#.into()))
        );
        assert_eq!(
            text(
                &list(list(DataType::Int32)),
                &Value::List(vec![
                    Value::List(vec![Value::Int(1), Value::Int(2)]),
                    Value::List(vec![Value::Int(3), Value::Null]),
                ])
            ),
            Ok(Some(r#"{{"1","2"},{"3",NULL}}"#.into()))
        );
        assert_eq!(postgres_type(&list(list(DataType::Int32))), "integer[]");
        assert_eq!(
            text(&list(DataType::Int64), &Value::List(vec![])),
            Ok(Some("{}".into()))
        );
    }

    #[test]
    fn copy_fields_escape_what_copy_text_reads_specially() {
        assert_eq!(copy_field("a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(copy_field("\\N"), "\\\\N");
        assert_eq!(copy_field("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: PostgresTargetConfig =
            serde_json::from_value(serde_json::json!({"database": "dw", "inputs": ["pg"]}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.schema.as_str()),
            ("127.0.0.1", 5432, "postgres", "public")
        );
        assert_eq!(c.mode, WriteMode::Upsert);
        assert!(
            serde_json::from_value::<PostgresTargetConfig>(
                serde_json::json!({"database": "dw", "inputs": [], "path": "x"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<PostgresTargetConfig>(
                serde_json::json!({"database": "dw", "inputs": [], "password": "hunter2"})
            )
            .is_err()
        );
    }

    #[test]
    fn lock_keys_differ_by_every_part() {
        let a = lock_key("public", "p", "src");
        assert_ne!(a, lock_key("public", "p", "src2"));
        assert_ne!(a, lock_key("other", "p", "src"));
        assert_ne!(lock_key("a", "bc", "d"), lock_key("ab", "c", "d"));
    }
}

/// Against the local PostgreSQL (127.0.0.1:5432, user postgres, as the rest
/// of the test suite): each test creates its own database.
#[cfg(test)]
pub(crate) mod live {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU32, Ordering};

    use syncline_engine::connector::CheckOutcome;
    use syncline_engine::model::{Column, DeadLetter};

    use super::*;

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    /// A database dropped when the test ends.
    pub(crate) struct Db {
        pub(crate) name: String,
    }

    fn admin() -> PostgresTargetConfig {
        config("postgres", "public", WriteMode::Upsert)
    }

    fn config(database: &str, schema: &str, mode: WriteMode) -> PostgresTargetConfig {
        PostgresTargetConfig {
            host: "127.0.0.1".into(),
            port: 5432,
            database: database.into(),
            user: "postgres".into(),
            password: None,
            sslmode: SslMode::Disable,
            schema: schema.into(),
            inputs: vec!["src".into()],
            mode,
        }
    }

    impl Db {
        pub(crate) async fn create(prefix: &str) -> Db {
            let name = format!(
                "sl_sink_{prefix}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            let mut conn = admin().connect().await.unwrap();
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            Db { name }
        }

        pub(crate) fn sink(&self, pipeline: &str, schema: &str, mode: WriteMode) -> PostgresSink {
            PostgresSink::new(config(&self.name, schema, mode), pipeline)
        }

        async fn conn(&self) -> PgConnection {
            config(&self.name, "public", WriteMode::Upsert)
                .connect()
                .await
                .unwrap()
        }

        /// Every row of `sql`, each value as text (`None` for NULL).
        pub(crate) async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
            let mut conn = self.conn().await;
            let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<Option<String>, _>(i))
                        .collect()
                })
                .collect()
        }
    }

    impl Drop for Db {
        fn drop(&mut self) {
            let _ = std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .output();
        }
    }

    pub(crate) fn some(cells: &[&str]) -> Vec<Option<String>> {
        cells
            .iter()
            .map(|c| (*c != "NULL").then(|| (*c).to_owned()))
            .collect()
    }

    pub(crate) fn table(
        name: &str,
        cols: &[(&str, DataType)],
        key: &[usize],
        version: u32,
    ) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            id: TableId {
                origin: "src".into(),
                name: name.into(),
            },
            columns: cols
                .iter()
                .map(|(n, d)| Column {
                    name: (*n).into(),
                    data_type: d.clone(),
                    nullable: true,
                })
                .collect(),
            key: key.to_vec(),
            version,
        })
    }

    fn items() -> Arc<TableSchema> {
        table(
            "items",
            &[
                ("id", DataType::Int64),
                ("name", DataType::Text),
                ("body", DataType::Text),
            ],
            &[0],
            1,
        )
    }

    pub(crate) fn change(op: Op, t: &Arc<TableSchema>, row: Row) -> Change {
        let (before, after) = match op {
            Op::Delete => (Some(row), None),
            Op::Truncate => (None, None),
            _ => (None, Some(row)),
        };
        Change {
            op,
            table: t.clone(),
            before,
            after,
        }
    }

    pub(crate) fn batch(seq: u64, changes: Vec<Change>) -> Arc<Batch> {
        Arc::new(Batch {
            position: Position {
                seq,
                state: serde_json::json!({ "lsn": seq, "note": "ünïcode \"quoted\"" }),
            },
            kind: syncline_engine::model::BatchKind::Stream,
            txid: None,
            commit_time: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456),
            changes,
            block: None,
            dead_letters: Vec::new(),
            inserts_are_new: false,
        })
    }

    fn i(v: i64) -> Value {
        Value::Int(v)
    }

    pub(crate) fn s(v: &str) -> Value {
        Value::Text(v.into())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn redelivered_batches_at_or_below_the_checkpoint_change_nothing() {
        let db = Db::create("redeliver").await;
        let t = items();
        let mut sink = db.sink("p", "public", WriteMode::Upsert);
        assert!(
            sink.write("src", batch(1, vec![])).await.is_err(),
            "write before open"
        );
        assert!(
            sink.open(std::slice::from_ref(&t))
                .await
                .unwrap()
                .is_empty()
        );
        sink.write(
            "src",
            batch(
                1,
                vec![
                    change(Op::Insert, &t, vec![i(1), s("one"), s("b1")]),
                    change(Op::Insert, &t, vec![i(2), s("two"), s("b2")]),
                ],
            ),
        )
        .await
        .unwrap();
        sink.write(
            "src",
            batch(
                2,
                vec![change(Op::Update, &t, vec![i(1), s("one v2"), s("b1")])],
            ),
        )
        .await
        .unwrap();
        let snapshot = || async {
            (
                db.rows("SELECT id::text, name, body FROM items ORDER BY id")
                    .await,
                db.rows(
                    "SELECT pipeline, source, seq::text, position::text FROM _syncline_checkpoints",
                )
                .await,
            )
        };
        let before = snapshot().await;
        assert_eq!(
            before.0,
            vec![some(&["1", "one v2", "b1"]), some(&["2", "two", "b2"])]
        );
        assert_eq!(before.1.len(), 1);
        assert_eq!(before.1[0][2].as_deref(), Some("2"));

        // Redelivered with other content: skipped, Ok.
        let other = |seq| {
            batch(
                seq,
                vec![
                    change(Op::Truncate, &t, vec![]),
                    change(Op::Insert, &t, vec![i(9), s("nine"), s("b9")]),
                ],
            )
        };
        sink.write("src", other(2)).await.unwrap();
        sink.write("src", other(1)).await.unwrap();
        assert_eq!(snapshot().await, before);

        // A restarted sink skips them too, even before open.
        let mut again = db.sink("p", "public", WriteMode::Upsert);
        let held = again.open(std::slice::from_ref(&t)).await.unwrap();
        assert_eq!(held["src"].seq, 2);
        assert_eq!(held["src"].state["note"], "ünïcode \"quoted\"");
        again.write("src", other(2)).await.unwrap();
        assert_eq!(snapshot().await, before);

        // A second process whose view of the checkpoint is stale: the check
        // inside the transaction skips what the first one committed.
        sink.write(
            "src",
            batch(
                3,
                vec![change(Op::Delete, &t, vec![i(2), Value::Null, Value::Null])],
            ),
        )
        .await
        .unwrap();
        let after3 = snapshot().await;
        assert_eq!(after3.0, vec![some(&["1", "one v2", "b1"])]);
        again.write("src", other(3)).await.unwrap();
        assert_eq!(snapshot().await, after3);

        // Another pipeline in the same schema keeps its own checkpoint.
        let mut second = db.sink("q", "public", WriteMode::Upsert);
        assert!(
            second
                .open(std::slice::from_ref(&t))
                .await
                .unwrap()
                .is_empty()
        );
        second.forget().await.unwrap();
        sink.forget().await.unwrap();
        assert!(
            db.rows("SELECT 1 FROM _syncline_checkpoints WHERE pipeline = 'p'")
                .await
                .is_empty()
        );
        sink.close().await.unwrap();
        again.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refused_batch_rolls_back_and_the_sink_stays_usable() {
        let db = Db::create("refused").await;
        let t = table(
            "amounts",
            &[
                ("id", DataType::Int64),
                (
                    "amount",
                    DataType::Decimal {
                        precision: 6,
                        scale: 2,
                    },
                ),
                ("note", DataType::Text),
            ],
            &[0],
            1,
        );
        let mut sink = db.sink("p", "public", WriteMode::Upsert);
        let checks = sink.check().await;
        assert!(
            checks.iter().all(|c| c.outcome == CheckOutcome::Pass),
            "{checks:?}"
        );
        sink.open(std::slice::from_ref(&t)).await.unwrap();
        let row = |id, amount: Value, note: &str| vec![i(id), amount, s(note)];
        let mut first = (*batch(
            1,
            vec![change(
                Op::Insert,
                &t,
                row(1, Value::Decimal("12.5".into()), "ok"),
            )],
        ))
        .clone();
        first.dead_letters.push(DeadLetter {
            table: t.id.clone(),
            origin: "file.csv".into(),
            line: Some(7),
            raw: "a\tb\\c\nd\0e".into(),
            reason: "unreadable".into(),
            stage: Default::default(),
            kept: None,
        });
        sink.write("src", Arc::new(first)).await.unwrap();
        for (seq, bad, needle) in [
            (
                2,
                row(2, Value::Decimal("1.005".into()), "x"),
                "column amount",
            ),
            (
                2,
                row(2, Value::Decimal("10000".into()), "x"),
                "column amount",
            ),
            (2, row(2, Value::Float(1.5), "x"), "column amount"),
            (2, row(2, i(3), "nul \0 inside"), "column note"),
            (2, vec![Value::Null, i(1), s("null key")], "null value"),
        ] {
            let err = sink
                .write(
                    "src",
                    batch(
                        seq,
                        vec![
                            change(Op::Insert, &t, row(5, i(5), "before the bad row")),
                            change(Op::Insert, &t, bad),
                        ],
                    ),
                )
                .await
                .unwrap_err();
            assert!(err.chain().contains(needle), "{needle}: {}", err.chain());
            assert_eq!(err.kind(), ErrorKind::Schema, "{}", err.chain());
        }
        sink.write(
            "src",
            batch(2, vec![change(Op::Insert, &t, row(2, i(-7), "fine"))]),
        )
        .await
        .unwrap();
        assert_eq!(
            db.rows("SELECT id::text, amount::text, note FROM amounts ORDER BY id")
                .await,
            vec![some(&["1", "12.50", "ok"]), some(&["2", "-7.00", "fine"])]
        );
        assert_eq!(
            db.rows("SELECT seq::text FROM _syncline_checkpoints").await,
            vec![some(&["2"])]
        );
        assert_eq!(
            db.rows(
                "SELECT pipeline, source, table_name, origin, line::text, raw, reason, seq::text
                 FROM _syncline_dead_letters"
            )
            .await,
            vec![some(&[
                "p",
                "src",
                "amounts",
                "file.csv",
                "7",
                "a\tb\\c\nd\u{fffd}e",
                "unreadable",
                "1"
            ])]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_type_round_trips_exactly() {
        let db = Db::create("types").await;
        let list = |item: DataType| DataType::List {
            item: Box::new(item),
        };
        let dec = DataType::Decimal {
            precision: 38,
            scale: 10,
        };
        let t = table(
            "every",
            &[
                ("id", DataType::Int32),
                ("b", DataType::Boolean),
                ("big", DataType::Int64),
                ("f", DataType::Float64),
                ("d", dec.clone()),
                ("t", DataType::Text),
                ("bin", DataType::Bytes),
                ("day", DataType::Date),
                ("tod", DataType::Time),
                ("ts", DataType::Timestamp),
                ("tstz", DataType::TimestampTz),
                ("u", DataType::Uuid),
                ("j", DataType::Json),
                ("iv", DataType::Interval),
                ("texts", list(DataType::Text)),
                ("decs", list(dec)),
                ("blobs", list(DataType::Bytes)),
                ("grid", list(list(DataType::Int64))),
            ],
            &[0],
            1,
        );
        let mut sink = db.sink("p", "warehouse", WriteMode::Upsert);
        sink.open(std::slice::from_ref(&t)).await.unwrap();
        let tricky = "tab\there, back\\slash, \"quotes\", 'single', new\nline, cr\r, \\N, NULL, ünïcødé ✓ 🚀";
        let full = vec![
            i(1),
            Value::Bool(true),
            i(i64::MIN),
            Value::Float(0.1),
            Value::Decimal("-1234567890123456789012345678.0123456789".into()),
            s(tricky),
            Value::Bytes(vec![0, b'\\', b'\t', b'\n', 0xff]),
            Value::Date(-735_160),
            Value::Time(86_399_999_999),
            Value::Timestamp(1_709_210_096_789_012),
            Value::TimestampTz(-1),
            Value::Uuid([
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11,
            ]),
            Value::Json(r#"{"k": "tab\there \\ \"q\" ✓", "n": [1, 2.50]}"#.into()),
            Value::Interval {
                months: 14,
                days: -3,
                micros: 14_706_789_000,
            },
            Value::List(vec![s(tricky), Value::Null, s("NULL"), s(""), s("a,b{c}")]),
            Value::List(vec![Value::Decimal("0.0000000001".into()), Value::Null]),
            Value::List(vec![Value::Bytes(vec![0x5c, 0x22])]),
            Value::List(vec![
                Value::List(vec![i(1), i(2)]),
                Value::List(vec![i(3), Value::Null]),
            ]),
        ];
        let edge = vec![
            i(2),
            Value::Bool(false),
            i(i64::MAX),
            Value::Float(f64::NAN),
            i(0),
            s(""),
            Value::Bytes(vec![]),
            Value::Date(0),
            Value::Time(0),
            Value::Timestamp(i64::MAX),
            Value::TimestampTz(i64::MIN),
            s("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
            Value::Json("null".into()),
            Value::Interval {
                months: 0,
                days: 0,
                micros: i64::MIN,
            },
            Value::List(vec![]),
            Value::List(vec![]),
            Value::List(vec![]),
            Value::List(vec![]),
        ];
        let nulls: Row = std::iter::once(i(3))
            .chain(std::iter::repeat_n(Value::Null, t.columns.len() - 1))
            .collect();
        sink.write(
            "src",
            batch(
                1,
                vec![
                    change(Op::Insert, &t, full),
                    change(Op::Insert, &t, edge),
                    change(Op::Insert, &t, nulls),
                ],
            ),
        )
        .await
        .unwrap();
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("{}::text", quote(&c.name)))
            .collect();
        let got = db
            .rows(&format!(
                "SELECT {} FROM warehouse.every ORDER BY id",
                cols.join(", ")
            ))
            .await;
        let tricky_array = "\"tab\there, back\\\\slash, \\\"quotes\\\", 'single', new\nline, cr\r, \\\\N, NULL, ünïcødé ✓ 🚀\"";
        assert_eq!(
            got[0],
            some(&[
                "1",
                "true",
                "-9223372036854775808",
                "0.1",
                "-1234567890123456789012345678.0123456789",
                tricky,
                "\\x005c090aff",
                "0044-03-15 BC",
                "23:59:59.999999",
                "2024-02-29 12:34:56.789012",
                "1969-12-31 23:59:59.999999+00",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                r#"{"k": "tab\there \\ \"q\" ✓", "n": [1, 2.50]}"#,
                "1 year 2 mons -3 days +04:05:06.789",
                &format!("{{{tricky_array},NULL,\"NULL\",\"\",\"a,b{{c}}\"}}"),
                "{0.0000000001,NULL}",
                "{\"\\\\x5c22\"}",
                "{{1,2},{3,NULL}}",
            ])
        );
        assert_eq!(
            got[1],
            some(&[
                "2",
                "false",
                "9223372036854775807",
                "NaN",
                "0.0000000000",
                "",
                "\\x",
                "1970-01-01",
                "00:00:00",
                "infinity",
                "-infinity",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "null",
                "-2562047788:00:54.775808",
                "{}",
                "{}",
                "{}",
                "{}",
            ])
        );
        let mut expected_nulls = vec![Some("3".to_owned())];
        expected_nulls.extend(std::iter::repeat_n(None, t.columns.len() - 1));
        assert_eq!(got[2], expected_nulls);
        // The documented type map.
        assert_eq!(
            db.rows(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = 'warehouse.every'::regclass AND attnum > 0 ORDER BY attnum"
            )
            .await
            .into_iter()
            .map(|r| format!("{} {}", r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect::<Vec<_>>(),
            [
                "id integer",
                "b boolean",
                "big bigint",
                "f double precision",
                "d numeric(38,10)",
                "t text",
                "bin bytea",
                "day date",
                "tod time without time zone",
                "ts timestamp without time zone",
                "tstz timestamp with time zone",
                "u uuid",
                "j jsonb",
                "iv interval",
                "texts text[]",
                "decs numeric(38,10)[]",
                "blobs bytea[]",
                "grid bigint[]",
            ]
        );
        // Bookkeeping sits beside the data, and the key is the primary key.
        assert_eq!(
            db.rows(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'warehouse' ORDER BY 1"
            )
            .await,
            vec![
                some(&["_syncline_checkpoints"]),
                some(&["_syncline_dead_letters"]),
                some(&["every"])
            ]
        );
        assert_eq!(
            db.rows(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint
                 WHERE conrelid = 'warehouse.every'::regclass AND contype = 'p'"
            )
            .await,
            vec![some(&["PRIMARY KEY (id)"])]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn upsert_history_and_append_apply_changes_in_order() {
        let db = Db::create("modes").await;
        let t = items();
        let v2 = table(
            "items",
            &[
                ("id", DataType::Int64),
                ("name", DataType::Text),
                ("body", DataType::Text),
                ("qty", DataType::Int32),
            ],
            &[0],
            2,
        );
        let batches = |t: &Arc<TableSchema>, v2: &Arc<TableSchema>| {
            let u = Value::Unchanged;
            let moved = Change {
                op: Op::Update,
                table: t.clone(),
                before: Some(vec![i(3), Value::Null, Value::Null]),
                after: Some(vec![i(30), s("three moved"), s("b3")]),
            };
            vec![
                batch(
                    1,
                    vec![
                        change(Op::Insert, t, vec![i(1), s("one"), s("big 1")]),
                        change(Op::Insert, t, vec![i(2), s("two"), s("big 2")]),
                        change(Op::Insert, t, vec![i(3), s("three"), s("b3")]),
                    ],
                ),
                // Unchanged from the target, then from the batch itself.
                batch(
                    2,
                    vec![
                        change(Op::Update, t, vec![i(1), s("one v2"), u.clone()]),
                        change(Op::Insert, t, vec![i(4), s("four"), s("big 4")]),
                        change(Op::Update, t, vec![i(4), s("four v2"), u.clone()]),
                        moved,
                        change(Op::Delete, t, vec![i(2), Value::Null, Value::Null]),
                    ],
                ),
                // Rows before a truncate vanish; a new column arrives.
                batch(
                    3,
                    vec![
                        change(Op::Insert, t, vec![i(5), s("gone"), s("b5")]),
                        change(Op::Truncate, t, vec![]),
                        change(Op::Insert, t, vec![i(6), s("six"), s("b6")]),
                        change(Op::Insert, v2, vec![i(7), s("seven"), s("b7"), i(70)]),
                        change(Op::Update, v2, vec![i(6), s("six v2"), u, i(60)]),
                    ],
                ),
            ]
        };
        for (schema, mode) in [
            ("up", WriteMode::Upsert),
            ("hist", WriteMode::History),
            ("app", WriteMode::Append),
        ] {
            let mut sink = db.sink("p", schema, mode);
            sink.open(std::slice::from_ref(&t)).await.unwrap();
            for b in batches(&t, &v2) {
                sink.write("src", b).await.unwrap();
            }
            sink.close().await.unwrap();
        }
        assert_eq!(
            db.rows("SELECT id::text, name, body, qty::text FROM up.items ORDER BY id")
                .await,
            vec![
                some(&["6", "six v2", "b6", "60"]),
                some(&["7", "seven", "b7", "70"]),
            ]
        );
        assert_eq!(
            db.rows(
                "SELECT _op, _seq::text, _commit_time::text, id::text, name, body, qty::text
                 FROM hist.items ORDER BY _seq, ctid"
            )
            .await,
            vec![
                some(&[
                    "i",
                    "1",
                    "2023-11-14 22:13:20.123456+00",
                    "1",
                    "one",
                    "big 1",
                    "NULL"
                ]),
                some(&[
                    "i",
                    "1",
                    "2023-11-14 22:13:20.123456+00",
                    "2",
                    "two",
                    "big 2",
                    "NULL"
                ]),
                some(&[
                    "i",
                    "1",
                    "2023-11-14 22:13:20.123456+00",
                    "3",
                    "three",
                    "b3",
                    "NULL"
                ]),
                some(&[
                    "u",
                    "2",
                    "2023-11-14 22:13:20.123456+00",
                    "1",
                    "one v2",
                    "big 1",
                    "NULL"
                ]),
                some(&[
                    "i",
                    "2",
                    "2023-11-14 22:13:20.123456+00",
                    "4",
                    "four",
                    "big 4",
                    "NULL"
                ]),
                some(&[
                    "u",
                    "2",
                    "2023-11-14 22:13:20.123456+00",
                    "4",
                    "four v2",
                    "big 4",
                    "NULL"
                ]),
                some(&[
                    "u",
                    "2",
                    "2023-11-14 22:13:20.123456+00",
                    "30",
                    "three moved",
                    "b3",
                    "NULL"
                ]),
                some(&[
                    "d",
                    "2",
                    "2023-11-14 22:13:20.123456+00",
                    "2",
                    "NULL",
                    "NULL",
                    "NULL"
                ]),
                some(&[
                    "i",
                    "3",
                    "2023-11-14 22:13:20.123456+00",
                    "5",
                    "gone",
                    "b5",
                    "NULL"
                ]),
                some(&[
                    "t",
                    "3",
                    "2023-11-14 22:13:20.123456+00",
                    "NULL",
                    "NULL",
                    "NULL",
                    "NULL"
                ]),
                some(&[
                    "i",
                    "3",
                    "2023-11-14 22:13:20.123456+00",
                    "6",
                    "six",
                    "b6",
                    "NULL"
                ]),
                some(&[
                    "i",
                    "3",
                    "2023-11-14 22:13:20.123456+00",
                    "7",
                    "seven",
                    "b7",
                    "70"
                ]),
                some(&[
                    "u",
                    "3",
                    "2023-11-14 22:13:20.123456+00",
                    "6",
                    "six v2",
                    "b6",
                    "60"
                ]),
            ]
        );
        assert_eq!(
            db.rows("SELECT id::text, name, body, qty::text FROM app.items ORDER BY ctid")
                .await,
            vec![
                some(&["6", "six", "b6", "NULL"]),
                some(&["7", "seven", "b7", "70"]),
                some(&["6", "six v2", "b6", "60"]),
            ]
        );
    }
}

#[cfg(test)]
mod live_more {
    #![allow(clippy::unwrap_used)]

    use super::live::*;
    use super::*;

    /// A key-changing update whose other values pgoutput left out (unchanged
    /// TOAST) keeps them: from the target's row under the old key, or from
    /// an earlier change of that row in the same batch. Composite keys with
    /// types that need a cast (text with a tab, timestamptz).
    #[tokio::test(flavor = "multi_thread")]
    async fn moved_rows_keep_values_the_source_left_out() {
        let db = Db::create("moved").await;
        let t = table(
            "docs",
            &[
                ("k", DataType::Text),
                ("at", DataType::TimestampTz),
                ("name", DataType::Text),
                ("body", DataType::Text),
            ],
            &[0, 1],
            1,
        );
        let key = |k: &str, at: i64| vec![s(k), Value::TimestampTz(at)];
        let row = |k: &str, at: i64, name: &str, body: Value| {
            let mut r = key(k, at);
            r.extend([s(name), body]);
            r
        };
        let moved = |from: (&str, i64), to: Row| Change {
            op: Op::Update,
            table: t.clone(),
            before: Some({
                let mut r = key(from.0, from.1);
                r.extend([Value::Null, Value::Null]);
                r
            }),
            after: Some(to),
        };
        let u = Value::Unchanged;
        for (schema, mode) in [
            ("up", WriteMode::Upsert),
            ("hist", WriteMode::History),
            ("app", WriteMode::Append),
        ] {
            let mut sink = db.sink("p", schema, mode);
            sink.open(std::slice::from_ref(&t)).await.unwrap();
            sink.write(
                "src",
                batch(
                    1,
                    vec![
                        change(Op::Insert, &t, row("a\tb", 1, "one", s("body one"))),
                        change(Op::Insert, &t, row("c", 2, "two", s("body two"))),
                    ],
                ),
            )
            .await
            .unwrap();
            sink.write(
                "src",
                batch(
                    2,
                    vec![
                        // From the target.
                        moved(("a\tb", 1), row("a\tb", 1_000_001, "one moved", u.clone())),
                        // From the batch.
                        change(Op::Insert, &t, row("d", 3, "three", s("body three"))),
                        moved(("d", 3), row("e", 3, "three moved", u.clone())),
                    ],
                ),
            )
            .await
            .unwrap();
        }
        let expected_final = vec![
            some(&[
                "a\tb",
                "1970-01-01 00:00:01.000001+00",
                "one moved",
                "body one",
            ]),
            some(&["c", "1970-01-01 00:00:00.000002+00", "two", "body two"]),
            some(&[
                "e",
                "1970-01-01 00:00:00.000003+00",
                "three moved",
                "body three",
            ]),
        ];
        assert_eq!(
            db.rows("SELECT k, at::text, name, body FROM up.docs ORDER BY k, at")
                .await,
            expected_final
        );
        let updates = "SELECT k, at::text, name, body FROM {} WHERE name LIKE '%moved' ORDER BY k";
        for table in ["hist.docs", "app.docs"] {
            assert_eq!(
                db.rows(&updates.replace("{}", table)).await,
                vec![expected_final[0].clone(), expected_final[2].clone()],
                "{table}"
            );
        }
    }

    /// The server drops the sink's connection between batches: the next
    /// batch reconnects (re-creating its staging tables) and is applied once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_lost_connection_is_reestablished_and_the_batch_applied_once() {
        let db = Db::create("reconnect").await;
        let t = table(
            "items",
            &[("id", DataType::Int64), ("v", DataType::Text)],
            &[0],
            1,
        );
        let mut sink = db.sink("p", "public", WriteMode::History);
        sink.open(std::slice::from_ref(&t)).await.unwrap();
        sink.write(
            "src",
            batch(1, vec![change(Op::Insert, &t, vec![Value::Int(1), s("a")])]),
        )
        .await
        .unwrap();
        let killed = db
            .rows(&format!(
                "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                db.name
            ))
            .await;
        assert_eq!(killed, vec![some(&["1"])]);
        sink.write(
            "src",
            batch(2, vec![change(Op::Insert, &t, vec![Value::Int(2), s("b")])]),
        )
        .await
        .unwrap();
        assert_eq!(
            db.rows("SELECT _op, _seq::text, id::text, v FROM items ORDER BY _seq")
                .await,
            vec![some(&["i", "1", "1", "a"]), some(&["i", "2", "2", "b"])]
        );
    }
}
