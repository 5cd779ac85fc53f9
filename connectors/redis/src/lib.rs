//! Redis target: a cache kept in sync with the source by key.
//!
//! * **Layout.** In `upsert` mode every row is one Redis key, named by the
//!   table's key template (default `{table}:{key}`), holding the row as a
//!   JSON object (`format = "json"`) or a hash (`format = "hash"`); a
//!   delete removes the key. In `history` mode every change is appended to
//!   a stream per table (`XADD`, fields `op`, `seq`, `key`, `after`,
//!   `before`, `commit_time`); in `append` mode inserts and updates are.
//!   The value encoding is in [`encode`].
//! * **Bookkeeping** lives under `syncline:<pipeline>:`: the checkpoint
//!   (a hash, one field per source), the dead letters, and per table an
//!   index of the keys written (a hash: key → the row's key values, or in
//!   stream modes the row's last version). A truncate removes the keys
//!   the index lists, never by scanning the keyspace; a prune compares the
//!   index with the keys the source still has. `syncline:claims` records
//!   which pipeline and table write each key template, so two never share
//!   keys.
//! * **Exactly-once.** A batch (or a group of batches) is applied by one
//!   Lua script (`EVALSHA`) that checks the checkpoint, skips what Redis
//!   already holds, checks every bookkeeping key's type before its first
//!   write (so it writes all or nothing), applies the writes and moves the
//!   checkpoint. Redis runs a script alone, so no reader sees half a batch.
//! * **Durability.** Redis acknowledges a script once it is in memory (and,
//!   with `appendonly yes` and `appendfsync always`, on disk). With
//!   persistence off, a restart loses the data and the checkpoint
//!   together: the sink then finds no checkpoint where it committed one
//!   and stops with a [`State`](syncline_engine::ErrorKind::State) error
//!   saying so; on the next run it holds no position while other targets
//!   do, so the source restates every table (the runtime's restatement)
//!   and Redis is filled again. A Redis that comes back *between* runs
//!   holding less than the sink committed (an RDB snapshot, `appendfsync
//!   everysec`) is found out at open from a local record of what was
//!   committed ([`RedisSink::remembering`]): this pipeline's keys there are
//!   cleared and the sink reports no position. `check` warns about every
//!   setting short of `appendfsync always`.
//! * **Unchanged values** (a TOAST value the source did not resend) are
//!   taken from the row's earlier change in the batch, else from what Redis
//!   holds under the row's key before the batch (the old key, after a key
//!   change); a row whose values cannot be found becomes a dead letter.
//! * **Cluster mode** is refused: one script touches keys of many hash
//!   slots.

pub mod browse;
mod config;
pub mod encode;
mod error;
mod plan;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use syncline_engine::batch::{Batch, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::{Check, DeadLetterRecord, KeptRow, Sink};
use syncline_engine::model::{TableId, TableSchema};
use syncline_engine::{Error, Result};
use tracing::warn;

pub use config::{
    DEFAULT_KEY, DEFAULT_STREAM, KeyTemplate, RedisTableConfig, RedisTargetConfig, ValueFormat,
};
pub use error::RedisError;
use plan::{Ops, TableState};

/// The script that applies a batch with its checkpoint.
const APPLY: &str = include_str!("apply.lua");

/// Oldest Redis version the target works with (streams, `UNLINK`).
const MIN_VERSION: (u32, u32) = (5, 0);

/// The bookkeeping keys of one pipeline.
#[derive(Debug, Clone)]
pub struct Bookkeeping {
    /// The target's `prefix`.
    namespace: String,
    prefix: String,
}

impl Bookkeeping {
    /// The keys of `pipeline` in a target whose keys start with `namespace`.
    pub fn new(namespace: &str, pipeline: &str) -> Self {
        Bookkeeping {
            namespace: namespace.to_owned(),
            prefix: format!("{namespace}syncline:{pipeline}"),
        }
    }

    /// The hash recording which pipeline and table writes each key
    /// template (or stream).
    pub fn claims(&self) -> String {
        format!("{}syncline:claims", self.namespace)
    }

    /// A key of the synced data: `key` behind the target's prefix.
    pub fn data(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }

    /// The checkpoint hash: one field per source, `"<seq> <position>"`.
    pub fn checkpoint(&self) -> String {
        format!("{}:checkpoint", self.prefix)
    }

    /// The dead letters: a hash of id → record.
    pub fn dead_letters(&self) -> String {
        format!("{}:dead_letters", self.prefix)
    }

    fn dead_letter_ids(&self) -> String {
        format!("{}:dead_letter_ids", self.prefix)
    }

    /// The index of the keys written for `table`.
    pub fn index(&self, table: &str) -> String {
        format!("{}:index:{table}", self.prefix)
    }
}

/// The Redis sink.
#[derive(Debug)]
pub struct RedisSink {
    config: RedisTargetConfig,
    pipeline: String,
    keys: Bookkeeping,
    conn: Option<ConnectionManager>,
    tables: HashMap<TableId, TableState>,
    /// The position Redis holds, per source, as far as this sink knows.
    held: BTreeMap<String, u64>,
    script: redis::Script,
    /// A local file recording what this sink committed, per source (see
    /// [`RedisSink::remembering`]).
    ledger: Option<PathBuf>,
    /// Rows whose last change here is a dead letter.
    withheld: syncline_engine::apply::Withheld,
    /// The parts of a source transaction whose last part has not come, per
    /// source (see [`Batch::continues`]).
    unfinished: BTreeMap<String, Vec<Arc<Batch>>>,
}

impl RedisSink {
    /// A sink of `pipeline` writing as `config` says.
    pub fn new(config: RedisTargetConfig, pipeline: &str) -> Self {
        RedisSink {
            keys: Bookkeeping::new(&config.prefix, pipeline),
            config,
            pipeline: pipeline.to_owned(),
            conn: None,
            tables: HashMap::new(),
            held: BTreeMap::new(),
            withheld: syncline_engine::apply::Withheld::default(),
            script: redis::Script::new(APPLY),
            ledger: None,
            unfinished: BTreeMap::new(),
        }
    }

    /// Records in the file `ledger` (the pipeline's local state) the
    /// position committed for each source after every write, so that a
    /// Redis that comes back holding less (its data lost, or an older
    /// snapshot restored) is found out when the sink opens: its data for
    /// this pipeline is cleared and it reports no position, so the run
    /// copies every table again. The file is a hint written without sync:
    /// after a crash of the machine it may be behind, never ahead.
    pub fn remembering(mut self, ledger: PathBuf) -> Self {
        self.ledger = Some(ledger);
        self
    }

    fn read_ledger(&self) -> BTreeMap<String, u64> {
        let Some(path) = &self.ledger else {
            return BTreeMap::new();
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                warn!(file = %path.display(), error = %e, "ignoring an unreadable Redis target ledger");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        }
    }

    fn write_ledger(&self) {
        let Some(path) = &self.ledger else { return };
        let written = serde_json::to_string(&self.held)
            .map_err(std::io::Error::other)
            .and_then(|text| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let partial = path.with_extension("partial");
                std::fs::write(&partial, text)?;
                std::fs::rename(&partial, path)
            });
        if let Err(e) = written {
            warn!(file = %path.display(), error = %e, "cannot record the Redis target's position");
        }
    }

    /// Removes what this pipeline wrote in Redis for its tables (the keys
    /// their indexes list, the indexes, and in append mode the streams),
    /// and its checkpoint: Redis no longer holds what it acknowledged, so
    /// the run starts it over.
    async fn clear(&mut self) -> std::result::Result<(), RedisError> {
        let mut ops = Ops::default();
        for state in self.tables.values() {
            ops.push(&state.clear_ops());
        }
        ops.push(&[b"U", self.keys.checkpoint().as_bytes()]);
        self.held.clear();
        self.run("", None, ops).await
    }

    /// The client for the configured URL and password.
    pub fn client(config: &RedisTargetConfig) -> std::result::Result<redis::Client, RedisError> {
        let mut info: redis::ConnectionInfo =
            config.url.as_str().parse().map_err(|e| {
                RedisError::Settings(format!("url `{}`: {e}", redacted(&config.url)))
            })?;
        if info.redis_settings().password().is_some() {
            return Err(RedisError::Settings(
                "the url holds a password; write `password = \"${env:NAME}\"` instead, so the file holds no secret".into(),
            ));
        }
        if let Some(secret) = &config.password {
            let password = secret.resolve().map_err(RedisError::Settings)?;
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        redis::Client::open(info).map_err(|e| RedisError::Settings(e.to_string()))
    }

    /// A managed connection (it reconnects on its own).
    pub async fn connect(
        config: &RedisTargetConfig,
    ) -> std::result::Result<ConnectionManager, RedisError> {
        let client = Self::client(config)?;
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(60)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        ConnectionManager::new_with_config(client, settings)
            .await
            .map_err(RedisError::command(format!(
                "connecting to {}",
                redacted(&config.url)
            )))
    }

    fn conn(&self) -> std::result::Result<ConnectionManager, RedisError> {
        self.conn
            .clone()
            .ok_or_else(|| RedisError::State("the sink was used before it was opened".into()))
    }

    async fn ensure_conn(&mut self) -> std::result::Result<ConnectionManager, RedisError> {
        if self.conn.is_none() {
            self.conn = Some(Self::connect(&self.config).await?);
        }
        self.conn()
    }

    /// Runs the script over `ops`; `group` is `(first seq, last position)`
    /// of the batches, or `None` for a replay.
    /// Applies consecutive batches of `source` in one script, with the last
    /// one's position.
    async fn write_whole(&mut self, source: &str, batches: &[Arc<Batch>]) -> Result<()> {
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Ok(());
        };
        let (first, last) = (first.position.seq, last.position.clone());
        self.evolve(batches)?;
        // Moved on only once Redis holds the batches.
        let mut withheld = self.withheld.clone();
        let ops = self.apply(source, batches, &mut withheld).await?;
        self.run(source, Some((first, &last)), ops).await?;
        self.withheld = withheld;
        Ok(())
    }

    async fn run(
        &mut self,
        source: &str,
        group: Option<(u64, &Position)>,
        ops: Ops,
    ) -> std::result::Result<(), RedisError> {
        let mut conn = self.conn()?;
        let expected = self
            .held
            .get(source)
            .map(u64::to_string)
            .unwrap_or_default();
        let mut call = self.script.prepare_invoke();
        call.arg(self.keys.checkpoint()).arg(source);
        match group {
            Some((first, last)) => {
                let position = serde_json::to_string(&last.state)
                    .map_err(|e| RedisError::State(e.to_string()))?;
                call.arg(first.to_string())
                    .arg(last.seq.to_string())
                    .arg(position)
                    .arg(&expected);
            }
            None => {
                call.arg("").arg("").arg("").arg("");
            }
        }
        call.arg(ops.checks.len());
        for (key, kind) in &ops.checks {
            call.arg(key).arg(*kind);
        }
        for arg in &ops.args {
            call.arg(arg.as_slice());
        }
        let reply: Vec<String> = call
            .invoke_async(&mut conn)
            .await
            .map_err(RedisError::command("applying a batch"))?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                if let Some((_, last)) = group {
                    self.held.insert(source.to_owned(), last.seq);
                    self.write_ledger();
                }
                Ok(())
            }
            Some("held") => {
                let seq = reply.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                self.held.insert(source.to_owned(), seq);
                Ok(())
            }
            Some("lost") => Err(RedisError::Lost(format!(
                "Redis holds {} for source `{source}` where this sink had committed position {expected}: its data was lost (a restart without persistence, a flush, or an evicted key). Nothing more is written; run the pipeline again and every table is copied again into every target. Turn on `appendonly yes` to keep data across restarts",
                match reply.get(1) {
                    Some(s) if !s.is_empty() => format!("position {s}"),
                    _ => "no checkpoint".into(),
                }
            ))),
            Some("partial") => Err(RedisError::State(format!(
                "Redis holds position {} for source `{source}`, inside the group of batches being written: another process writes this pipeline's keys",
                reply.get(1).map_or("?", String::as_str)
            ))),
            Some("type") => Err(RedisError::Refused(format!(
                "key `{}` holds a {}, where Syncline keeps a {}; remove it, or change the table's key template or stream so they do not meet",
                reply.get(1).map_or("?", String::as_str),
                reply.get(2).map_or("?", String::as_str),
                reply.get(3).map_or("?", String::as_str),
            ))),
            other => Err(RedisError::State(format!(
                "unexpected reply from the apply script: {other:?}"
            ))),
        }
    }

    /// How `schema` is kept, from the target's settings for its table.
    fn table_state(
        &self,
        schema: &Arc<TableSchema>,
    ) -> std::result::Result<TableState, RedisError> {
        let name = &schema.id.name;
        TableState::new(
            schema.clone(),
            name,
            &self.config.table(name),
            self.config.format,
            self.config.mode,
            &self.keys,
        )
    }

    /// Takes up newer schema versions the batches carry (a column added at
    /// the source): rows are stored with the new column from then on.
    fn evolve(&mut self, batches: &[Arc<Batch>]) -> std::result::Result<(), RedisError> {
        for change in batches.iter().flat_map(|b| b.changes.iter()) {
            let Some(state) = self.tables.get(&change.table.id) else {
                continue;
            };
            if change.table.version > state.schema.version
                && change.table.columns != state.schema.columns
            {
                let evolved = self.table_state(&change.table)?;
                self.tables.insert(change.table.id.clone(), evolved);
            }
        }
        Ok(())
    }

    async fn apply(
        &mut self,
        source: &str,
        batches: &[Arc<Batch>],
        withheld: &mut syncline_engine::apply::Withheld,
    ) -> std::result::Result<Ops, RedisError> {
        let conn = self.conn()?;
        plan::build(
            conn,
            &self.keys,
            &self.tables,
            self.config.mode,
            source,
            batches,
            withheld,
        )
        .await
    }

    /// Claims the key templates of the tables for this pipeline, refusing
    /// those another pipeline (or another table) writes.
    async fn claim(&self) -> std::result::Result<(), RedisError> {
        let mut conn = self.conn()?;
        let claims: HashMap<String, String> = conn
            .hgetall(self.keys.claims())
            .await
            .map_err(RedisError::command("reading key template claims"))?;
        let mut mine: Vec<(String, String)> = Vec::new();
        for state in self.tables.values() {
            let owner = format!("{}/{}", self.pipeline, state.name);
            let skeleton = state.claim();
            let others = claims.iter().chain(mine.iter().map(|(s, o)| (s, o)));
            for (theirs, holder) in others {
                if *holder != owner && config::overlaps(&skeleton, theirs) {
                    return Err(RedisError::Refused(format!(
                        "table `{}` would write keys `{skeleton}`, which can meet the keys `{theirs}` that `{holder}` (pipeline/table) writes; give one of them another key template or stream, or drop that pipeline (its claim is the field `{theirs}` of the hash `{}`)",
                        state.name,
                        self.keys.claims()
                    )));
                }
            }
            mine.push((skeleton, owner));
        }
        for (skeleton, owner) in mine {
            let taken: bool = conn
                .hset_nx(self.keys.claims(), &skeleton, &owner)
                .await
                .map_err(RedisError::command("claiming the key template"))?;
            if !taken {
                // Claimed meanwhile, or ours from an earlier run.
                let holder: Option<String> = conn
                    .hget(self.keys.claims(), &skeleton)
                    .await
                    .map_err(RedisError::command("reading key template claims"))?;
                if let Some(holder) = holder
                    && holder != owner
                {
                    return Err(RedisError::Refused(format!(
                        "keys `{skeleton}` were just claimed by `{holder}` (pipeline/table)"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `url` with any password in it hidden, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Redis's `INFO` as field → value.
async fn info(
    conn: &mut ConnectionManager,
    section: &str,
) -> std::result::Result<HashMap<String, String>, RedisError> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .map_err(RedisError::command(format!("INFO {section}")))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}

/// Refuses cluster mode and servers too old for streams.
async fn refuse_unsupported(
    conn: &mut ConnectionManager,
) -> std::result::Result<String, RedisError> {
    let server = info(conn, "server").await?;
    let version = server.get("redis_version").cloned().unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < MIN_VERSION {
        return Err(RedisError::Refused(format!(
            "Redis {version} is too old; Syncline needs {}.{} or later (streams, UNLINK)",
            MIN_VERSION.0, MIN_VERSION.1
        )));
    }
    let cluster = info(conn, "cluster").await?;
    if cluster.get("cluster_enabled").map(String::as_str) == Some("1") {
        return Err(RedisError::Refused(
            "this Redis runs in cluster mode, which the target does not support: a batch is applied by one script over keys of many hash slots. Point it at a standalone Redis (or a primary with replicas)".into(),
        ));
    }
    Ok(version)
}

#[async_trait]
impl Sink for RedisSink {
    async fn check(&mut self) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut conn = match Self::connect(&self.config).await {
            Ok(c) => c,
            Err(e) => {
                let fix = match &e {
                    RedisError::Settings(_) => "fix the url or set the password's variable",
                    _ => "check that Redis runs at the url, and the password",
                };
                checks.push(Check::fail("connection", Error::from(e).chain(), fix));
                return checks;
            }
        };
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut conn).await {
            let fix = if e.code() == Some("NOAUTH") || e.code() == Some("WRONGPASS") {
                "set `password` (a `${env:NAME}` reference) to the server's password"
            } else {
                "check that Redis runs at the url and accepts this client"
            };
            checks.push(Check::fail(
                "connection",
                format!("Redis at {} refused PING: {e}", redacted(&self.config.url)),
                fix,
            ));
            return checks;
        }
        match refuse_unsupported(&mut conn).await {
            Ok(version) => checks.push(Check::pass(
                "connection",
                format!(
                    "connected to Redis {version} at {}",
                    redacted(&self.config.url)
                ),
            )),
            Err(e) => {
                checks.push(Check::fail(
                    "server",
                    e.to_string(),
                    "use a standalone Redis 5.0 or later",
                ));
                return checks;
            }
        }
        let config = |name: &'static str| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
                    .ok()
                    .and_then(|v| v.get(1).cloned())
            }
        };
        let (aof, fsync, save) = (
            config("appendonly").await,
            config("appendfsync").await,
            config("save").await,
        );
        match (aof.as_deref(), fsync.as_deref()) {
            (Some("yes"), Some("always")) => checks.push(Check::pass(
                "persistence",
                "appendonly yes, appendfsync always: what Redis acknowledges survives a crash",
            )),
            (Some("yes"), fsync) => checks.push(Check::warn(
                "persistence",
                format!(
                    "appendonly yes, appendfsync {}: a crash of Redis can lose the last second of writes, checkpoint included, after Syncline was told they were kept; the next run would resume from the older checkpoint and the changes in between would be missing from the cache",
                    fsync.unwrap_or("?")
                ),
                "set `appendfsync always` for a cache that must not miss a change across a Redis crash",
            )),
            (Some(_), _) if save.as_deref().is_some_and(|s| !s.is_empty()) => {
                checks.push(Check::warn(
                    "persistence",
                    format!(
                        "appendonly no, RDB snapshots (save \"{}\"): a restart brings back an older snapshot, data and checkpoint together; changes after it would be missing from the cache",
                        save.unwrap_or_default()
                    ),
                    "set `appendonly yes` and `appendfsync always`",
                ));
            }
            (Some(_), _) => checks.push(Check::warn(
                "persistence",
                "appendonly is off and no RDB saves are set: a restart of Redis loses the cache and its checkpoint together (Syncline notices, stops, and copies every table again on the next run)",
                "set `appendonly yes` and `appendfsync always` if the cache should survive a restart",
            )),
            (None, _) => checks.push(Check::warn(
                "persistence",
                "CONFIG GET is not allowed for this user: persistence settings unknown",
                "make sure Redis keeps data across restarts (appendonly yes, appendfsync always)",
            )),
        }
        let policy = config("maxmemory-policy").await.unwrap_or_default();
        let limit = config("maxmemory").await.unwrap_or_default();
        if limit != "0" && !limit.is_empty() && policy != "noeviction" {
            checks.push(Check::warn(
                "eviction",
                format!("maxmemory {limit} with policy {policy}: Redis may evict synced keys and the checkpoint"),
                "set `maxmemory-policy noeviction`, or give Redis enough memory; an evicted checkpoint makes Syncline copy every table again",
            ));
        } else {
            checks.push(Check::pass(
                "eviction",
                format!("maxmemory {limit}, policy {policy}: no key is evicted"),
            ));
        }
        checks
    }

    async fn open(&mut self, tables: &[Arc<TableSchema>]) -> Result<BTreeMap<String, Position>> {
        let mut conn = self.ensure_conn().await?;
        refuse_unsupported(&mut conn).await?;
        if let Some((table, detail)) =
            syncline_engine::apply::unknown_table_setting(self.config.tables.keys(), tables)
        {
            return Err(RedisError::Config { table, detail }.into());
        }
        self.tables.clear();
        for schema in tables {
            let state = self.table_state(schema)?;
            self.tables.insert(schema.id.clone(), state);
        }
        self.claim().await?;
        let stored: HashMap<String, String> = conn
            .hgetall(self.keys.checkpoint())
            .await
            .map_err(RedisError::command("reading the checkpoint"))?;
        let mut held = BTreeMap::new();
        self.held.clear();
        for (source, text) in stored {
            let (seq, state) = text.split_once(' ').ok_or_else(|| {
                RedisError::State(format!(
                    "the checkpoint of source `{source}` in `{}` is not `<seq> <position>`: {text}",
                    self.keys.checkpoint()
                ))
            })?;
            let seq: u64 = seq.parse().map_err(|_| {
                RedisError::State(format!("the checkpoint of source `{source}` is unreadable"))
            })?;
            let state = serde_json::from_str(state).map_err(|e| {
                RedisError::State(format!(
                    "the checkpoint of source `{source}` is unreadable: {e}"
                ))
            })?;
            self.held.insert(source.clone(), seq);
            held.insert(source, Position { seq, state });
        }
        // Redis holding less than this sink committed: its data was lost.
        let committed = self.read_ledger();
        let lost: Vec<String> = committed
            .iter()
            .filter(|&(source, seq)| held.get(source).is_none_or(|p| p.seq < *seq))
            .map(|(source, seq)| {
                format!(
                    "source `{source}`: committed {seq}, Redis holds {}",
                    held.get(source)
                        .map_or("nothing".to_owned(), |p| p.seq.to_string())
                )
            })
            .collect();
        if !lost.is_empty() {
            warn!(
                target_url = %redacted(&self.config.url),
                lost = %lost.join("; "),
                "Redis holds less than this target committed (its data was lost, or an older snapshot restored): clearing this pipeline's keys there; every table is copied again"
            );
            self.clear().await?;
            held.clear();
            self.write_ledger();
        }
        self.withheld = syncline_engine::apply::Withheld::of(&self.dead_letters().await?);
        Ok(held)
    }

    async fn write(&mut self, source: &str, batch: Arc<Batch>) -> Result<()> {
        self.write_group(source, vec![batch]).await
    }

    async fn write_group(&mut self, source: &str, batches: Vec<Arc<Batch>>) -> Result<()> {
        if self.conn.is_none() {
            return Err(RedisError::State("the sink was used before it was opened".into()).into());
        }
        let held = self.held.get(source).copied();
        let batches: Vec<Arc<Batch>> = batches
            .into_iter()
            .filter(|b| held.is_none_or(|h| b.position.seq > h))
            .collect();
        let Some(last) = batches.last() else {
            return Ok(());
        };
        if last.continues {
            // A part of a source transaction: kept until its last part, so
            // Redis takes the transaction in one script, with its position.
            self.unfinished
                .entry(source.to_owned())
                .or_default()
                .extend(batches);
            return Ok(());
        }
        let parts = self.unfinished.remove(source).unwrap_or_default();
        let batches: Vec<Arc<Batch>> = parts.iter().cloned().chain(batches).collect();
        let written = self.write_whole(source, &batches).await;
        if written.is_err() && !parts.is_empty() {
            // Tried again, the transaction needs its parts.
            self.unfinished.insert(source.to_owned(), parts);
        }
        written
    }

    /// The parts of a source transaction wait for its last part.
    fn holds_uncommitted(&self) -> bool {
        !self.unfinished.is_empty()
    }

    async fn close(&mut self) -> Result<()> {
        if !self.unfinished.is_empty() {
            tracing::info!(
                "dropping the parts of a source transaction whose last part did not come"
            );
            self.unfinished.clear();
        }
        Ok(())
    }

    async fn dead_letters(&mut self) -> Result<Vec<KeptRow>> {
        let mut conn = self.ensure_conn().await?;
        let stored: HashMap<u64, String> = conn
            .hgetall(self.keys.dead_letters())
            .await
            .map_err(RedisError::command("reading dead letters"))?;
        let mut rows = Vec::with_capacity(stored.len());
        for (id, text) in stored {
            let d: DeadLetterRecord = serde_json::from_str(&text)
                .map_err(|e| RedisError::State(format!("dead letter {id} is unreadable: {e}")))?;
            rows.push(d.into_kept(id));
        }
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    async fn replay(&mut self, batches: Vec<Batch>, resolved: Vec<u64>) -> Result<()> {
        let batches: Vec<Arc<Batch>> = batches.into_iter().map(Arc::new).collect();
        self.evolve(&batches)?;
        let mut ops = self
            .apply(
                "",
                &batches,
                &mut syncline_engine::apply::Withheld::default(),
            )
            .await?;
        for id in resolved {
            ops.push(&[
                b"R",
                self.keys.dead_letters().as_bytes(),
                id.to_string().as_bytes(),
            ]);
        }
        self.run("", None, ops).await?;
        Ok(())
    }

    async fn discard(&mut self, ids: &[u64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.ensure_conn().await?;
        let removed: u64 = conn
            .hdel(self.keys.dead_letters(), ids)
            .await
            .map_err(RedisError::command("removing dead letters"))?;
        Ok(removed)
    }

    async fn reader(
        &mut self,
        table: &Arc<TableSchema>,
    ) -> Result<Box<dyn syncline_engine::verify::RowReader>> {
        if self.config.mode != WriteMode::Upsert {
            return Err(Error::new(
                syncline_engine::ErrorKind::Precondition,
                format!(
                    "this target keeps every change in a stream ({} mode), not the source's rows",
                    self.config.mode.as_str()
                ),
            ));
        }
        if let Some(ttl) = self.config.table(&table.id.name).ttl_secs {
            return Err(Error::new(
                syncline_engine::ErrorKind::Precondition,
                format!(
                    "its keys expire (ttl_secs = {ttl}): a key gone from the cache may have expired, so the table cannot be compared"
                ),
            ));
        }
        let state = self.table_state(table)?;
        let conn = Self::connect(&self.config).await?;
        Ok(Box::new(verify::TableReader::open(conn, state).await?))
    }

    async fn forget(&mut self) -> Result<()> {
        let mut conn = self.ensure_conn().await?;
        let _: u64 = conn
            .del(self.keys.checkpoint())
            .await
            .map_err(RedisError::command("removing the checkpoint"))?;
        // Its key templates are free for another pipeline again.
        let claims: HashMap<String, String> = conn
            .hgetall(self.keys.claims())
            .await
            .map_err(RedisError::command("reading key template claims"))?;
        let mine = format!("{}/", self.pipeline);
        let released: Vec<&String> = claims
            .iter()
            .filter(|(_, owner)| owner.starts_with(&mine))
            .map(|(skeleton, _)| skeleton)
            .collect();
        if !released.is_empty() {
            let _: u64 = conn
                .hdel(self.keys.claims(), released)
                .await
                .map_err(RedisError::command("releasing key template claims"))?;
        }
        self.held.clear();
        if let Some(path) = &self.ledger {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("redis://app:s3cret@cache:6379/0"),
            "redis://app:***@cache:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1/1"), "redis://127.0.0.1/1");
    }
}
