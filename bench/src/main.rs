//! `syncline-bench`: measures Syncline against the raw limits of the local
//! PostgreSQL server on the same machine, in one run:
//!
//! 1. **Setup**: a fresh database with a 10-column table of N rows.
//! 2. **Snapshot**: a binary `COPY` drained by a plain client versus
//!    `syncline run --once` into a fresh DuckDB file, in rounds of one each
//!    back to back (`--rounds`, 3 by default); the median round's ratio
//!    counts, so one noisy moment on a shared machine decides nothing.
//! 3. **Streaming**: single-row updates in fixed-size transactions, made while
//!    the pipeline is stopped; `pg_recvlogical` (pgoutput) versus
//!    `syncline run --once` applying them.
//! 4. **Latency**: a following `syncline run` into a history-mode DuckDB
//!    target under a steady transaction rate; `_synced_at - _commit_time`.
//! 5. **Memory**: the peak resident set of every `syncline` process.
//!
//! The report goes to stdout (JSON with `--json`); progress to stderr.
//! `scripts/bench` builds everything and runs this.

mod pg;
mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Map, Value as Json, json};
use tokio::runtime::Runtime;

use process::{Finished, Monitored};

/// The snapshot and streaming table.
const TABLE: &str = "bench_rows";
/// The latency test's table.
const LAT_TABLE: &str = "bench_latency";
/// Rows seeded into the latency table.
const LAT_SEED: u64 = 1_000;
/// The raw `pg_recvlogical` slot.
const RAW_SLOT: &str = "bench_raw_pgoutput";
/// Pipeline of the snapshot and streaming tests (its slot and publication
/// are `syncline_bench_pg`).
const PIPELINE: &str = "bench";
/// Pipeline of the latency test.
const LAT_PIPELINE: &str = "bench_lat";

/// Targets the report checks.
const TARGET_SNAPSHOT_RATIO: f64 = 0.60;
const TARGET_STREAM_RATIO: f64 = 0.50;
const TARGET_P99_MS: f64 = 100.0;
const TARGET_RSS_MB: f64 = 300.0;

#[derive(Debug, Parser)]
#[command(
    name = "syncline-bench",
    about = "Measure Syncline against the raw limits of PostgreSQL on this machine: snapshot, streaming, latency and memory."
)]
struct Args {
    /// Rows in the snapshot table.
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Single-row updates in the streaming test.
    #[arg(long, default_value_t = 1_000_000)]
    updates: u64,
    /// Updated rows per transaction in the streaming test.
    #[arg(long, default_value_t = 1_000)]
    tx_rows: u64,
    /// Transactions per second driven in the latency test.
    #[arg(long, default_value_t = 1_000)]
    latency_rate: u64,
    /// Seconds the latency test drives load.
    #[arg(long, default_value_t = 20)]
    latency_secs: u64,
    /// Client connections sharing the latency test's schedule.
    #[arg(long, default_value_t = 4)]
    latency_clients: usize,
    /// The `syncline` binary [default: $CARGO_TARGET_DIR/debug/syncline].
    #[arg(long)]
    syncline: Option<PathBuf>,
    /// Build profile of that binary, for the report [default: from its path].
    #[arg(long)]
    profile: Option<String>,
    /// An extra line for the pipelines' Postgres source, e.g.
    /// `--source-option 'snapshot_workers = 2'` (repeatable).
    #[arg(long = "source-option", value_name = "TOML")]
    source_options: Vec<String>,
    /// TLS for every connection, Syncline's and the raw clients' alike:
    /// disable, prefer or require.
    #[arg(long, default_value = "prefer")]
    sslmode: String,
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 5432)]
    port: u16,
    /// User (needs REPLICATION and CREATEDB; trust authentication).
    #[arg(long, default_value = "postgres")]
    user: String,
    /// The database the benchmark drops, creates and drops again.
    #[arg(long, default_value = "syncline_bench")]
    database: String,
    /// Directory with psql and pg_recvlogical [default: PATH, then
    /// /usr/lib/postgresql/15/bin].
    #[arg(long)]
    pg_bin: Option<PathBuf>,
    /// Also ask pgoutput for binary=true in the raw stream (Syncline does).
    #[arg(long)]
    raw_binary: bool,
    /// Working directory for pipeline files, DuckDB files and logs
    /// [default: a fresh temporary directory, removed at the end].
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Keep the database, slots and working directory at the end.
    #[arg(long)]
    keep: bool,
    /// Rounds of the snapshot benchmark (raw copy, then Syncline); the
    /// median round's ratio counts.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Phases to leave out: stream, latency (comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner(args: Args) -> Result<ExitCode> {
    if !args
        .database
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("--database must be lowercase letters, digits and underscores");
    }
    if args.rows < args.tx_rows {
        bail!("--rows must be at least --tx-rows");
    }
    if !matches!(args.sslmode.as_str(), "disable" | "prefer" | "require") {
        bail!("--sslmode must be disable, prefer or require");
    }
    for s in &args.skip {
        if !matches!(s.as_str(), "stream" | "latency") {
            bail!("--skip takes stream and/or latency, not `{s}`");
        }
    }
    let syncline = match &args.syncline {
        Some(p) => p.clone(),
        None => {
            let target = std::env::var("CARGO_TARGET_DIR")
                .context("CARGO_TARGET_DIR is not set: pass --syncline or source scripts/env.sh")?;
            PathBuf::from(target).join("debug").join("syncline")
        }
    };
    if !syncline.is_file() {
        bail!(
            "{} does not exist: build it with `cargo build -p syncline-cli`",
            syncline.display()
        );
    }
    let syncline = syncline.canonicalize()?;
    let built = std::fs::metadata(&syncline)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map(|age| format!("built {:.0} min before this run", age.as_secs_f64() / 60.0))
        .unwrap_or_default();
    let profile = args.profile.clone().unwrap_or_else(|| {
        let s = syncline.to_string_lossy();
        if s.contains("/release/") {
            "release".into()
        } else if s.contains("/debug/") {
            "debug".into()
        } else {
            "unknown".into()
        }
    });
    let (dir, temp_dir) = match &args.workdir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (d.canonicalize()?, false)
        }
        None => {
            let d = std::env::temp_dir().join(format!("syncline-bench-{}", std::process::id()));
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
            std::fs::create_dir_all(&d)?;
            (d, true)
        }
    };
    // Others may rebuild the shared target dir while this runs: every run
    // uses one private copy of the binary (its rpath is absolute).
    let private = dir.join("syncline");
    std::fs::copy(&syncline, &private)
        .with_context(|| format!("copying {} into {}", syncline.display(), dir.display()))?;
    let psql = find_tool("psql", args.pg_bin.as_deref())?;
    let recvlogical = find_tool("pg_recvlogical", args.pg_bin.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server = pg::Server {
        host: args.host.clone(),
        port: args.port,
        user: args.user.clone(),
        sslmode: args.sslmode.clone(),
    };
    let mut bench = Bench {
        log: dir.join("syncline.log"),
        dir,
        server,
        rt,
        syncline: private,
        syncline_source: format!("{} ({built})", syncline.display()),
        profile,
        psql,
        recvlogical,
        started: Instant::now(),
        report: Map::new(),
        text: Vec::new(),
        processes: Vec::new(),
        args,
    };
    let outcome = bench.run_all();
    if let Err(e) = &outcome {
        eprintln!("benchmark failed: {e:#}");
        bench.report.insert("error".into(), json!(format!("{e:#}")));
        bench.text.push(format!("FAILED: {e:#}"));
        if let Ok(log) = std::fs::read_to_string(&bench.log) {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            if !tail.is_empty() {
                eprintln!("last lines of {}:", bench.log.display());
                for l in tail.iter().rev() {
                    eprintln!("  {l}");
                }
            }
        }
    }
    bench.cleanup(temp_dir);
    bench.finish_report();
    if bench.args.json {
        println!("{}", serde_json::to_string_pretty(&bench.report)?);
    } else {
        for line in &bench.text {
            println!("{line}");
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `name` in `dir`, else on PATH, else in the Debian PostgreSQL 15 bin dir.
fn find_tool(name: &str, dir: Option<&Path>) -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(d) = dir {
        candidates.push(d.join(name));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join(name)));
    }
    candidates.push(PathBuf::from("/usr/lib/postgresql/15/bin").join(name));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found (pass --pg-bin)"))
}

#[derive(Debug)]
struct Bench {
    args: Args,
    server: pg::Server,
    rt: Runtime,
    dir: PathBuf,
    log: PathBuf,
    syncline: PathBuf,
    /// Where the binary was copied from, and its age.
    syncline_source: String,
    profile: String,
    psql: PathBuf,
    recvlogical: PathBuf,
    started: Instant,
    report: Map<String, Json>,
    text: Vec<String>,
    /// Every measured process: label, wall, exit, peak RSS, CPU.
    processes: Vec<Finished>,
}

// ---------------------------------------------------------------- helpers

/// `syncline_<pipeline>_<source>`, as the Postgres source names its slot
/// and publication (the names used here need no cleaning).
fn slot_of(pipeline: &str) -> String {
    format!("syncline_{pipeline}_pg")
}

fn table_status<'a>(s: &'a Json, table: &str) -> &'a Json {
    &s["tables"][format!("pg.{table}")]
}

fn count(s: &Json, table: &str, field: &str) -> u64 {
    table_status(s, table)[field].as_u64().unwrap_or(0)
}

fn phase<'a>(s: &'a Json, table: &str) -> &'a str {
    table_status(s, table)["phase"].as_str().unwrap_or("")
}

fn changes(s: &Json, table: &str) -> u64 {
    count(s, table, "inserts") + count(s, table, "updates") + count(s, table, "deletes")
}

/// First status line (seconds since spawn) satisfying `pred`.
fn first_at(lines: &[(f64, Json)], pred: impl Fn(&Json) -> bool) -> Option<f64> {
    lines.iter().find(|(_, s)| pred(s)).map(|(t, _)| *t)
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn rate(n: u64, secs: f64) -> String {
    thousands(per_sec(n, secs).round() as u64)
}

/// Nearest-rank percentile of sorted values.
/// One round of the snapshot benchmark: the raw copy, then Syncline's.
#[derive(Debug)]
struct SnapshotRound {
    raw_secs: f64,
    raw_bytes: u64,
    wall_secs: f64,
    snap_start: Option<f64>,
    first_rows: Option<f64>,
    snap_end: Option<f64>,
    peak_rss_mb: f64,
    cpu_secs: f64,
    target_mb: f64,
}

impl SnapshotRound {
    /// Syncline's rate as a share of the raw rate in the same round.
    fn ratio(&self) -> f64 {
        self.raw_secs / self.wall_secs
    }

    fn phase_secs(&self) -> Option<f64> {
        match (self.snap_start, self.snap_end) {
            (Some(a), Some(b)) if b > a => Some(b - a),
            _ => None,
        }
    }
}

/// The middle value (the lower middle of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

/// Other builds and the load average, to judge how quiet the machine was.
fn load_note() -> Json {
    let mut busy: BTreeMap<String, u64> = BTreeMap::new();
    for p in process::busy_processes() {
        *busy.entry(p).or_default() += 1;
    }
    json!({ "loadavg": process::loadavg(), "compilers_running": busy })
}

fn load_text(j: &Json) -> String {
    let busy = j["compilers_running"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "load avg {}{}",
        j["loadavg"].as_str().unwrap_or("?"),
        if busy.is_empty() {
            String::new()
        } else {
            format!("; running: {busy}")
        }
    )
}

fn process_json(f: &Finished) -> Json {
    json!({
        "label": f.label,
        "wall_secs": round3(f.wall_secs),
        "exit_code": f.exit_code,
        "peak_rss_mb": round3(f.peak_rss_mb),
        "cpu_secs": round3(f.cpu_secs),
        "memory_polls": f.polls,
    })
}

impl Bench {
    fn note(&self, msg: &str) {
        eprintln!("[{:>7.1}s] {msg}", self.started.elapsed().as_secs_f64());
    }

    fn db(&self) -> &str {
        &self.args.database
    }

    /// Environment for the psql and pg_recvlogical children.
    fn pg_env(&self) -> Vec<(&'static str, String)> {
        vec![("PGSSLMODE", self.args.sslmode.clone())]
    }

    fn source_block(&self, table: &str, extra: &[&str]) -> String {
        let mut s = format!(
            "[sources.pg]\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{}\"\nsslmode = \"{}\"\n",
            self.args.host,
            self.args.port,
            self.args.user,
            self.db(),
            self.args.sslmode
        );
        for line in extra
            .iter()
            .copied()
            .chain(self.args.source_options.iter().map(String::as_str))
        {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("[[sources.pg.tables]]\nname = \"{table}\"\n"));
        s
    }

    /// Writes a pipeline file into the work dir.
    fn write_pipeline(
        &self,
        file: &str,
        name: &str,
        table: &str,
        extra: &[&str],
        target: &str,
        mode: &str,
    ) -> Result<PathBuf> {
        let text = format!(
            "name = \"{name}\"\n{}[targets.db]\nkind = \"duckdb\"\npath = \"{target}\"\ninputs = [\"pg\"]\nmode = \"{mode}\"\n",
            self.source_block(table, extra)
        );
        let path = self.dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Starts `syncline args...` in the work dir.
    fn syncline(&self, label: &str, args: &[&str], status_ms: u64) -> Result<Monitored> {
        Monitored::spawn(
            label,
            &self.syncline,
            args,
            &self.dir,
            &[
                ("SYNCLINE_LOG", "warn".to_owned()),
                ("SYNCLINE_STATUS_INTERVAL_MS", status_ms.to_string()),
            ],
            &self.log,
        )
    }

    fn record(&mut self, f: &Finished) {
        self.processes.push(f.clone());
    }

    fn run_all(&mut self) -> Result<()> {
        let machine = json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "memory": std::fs::read_to_string("/proc/meminfo").ok()
                .and_then(|m| m.lines().next().map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))),
            "at_start": load_note(),
        });
        self.report.insert("machine".into(), machine.clone());
        let server_info = self.rt.block_on(async {
            let mut c = self.server.connect("postgres").await?;
            let version = pg::text(&mut c, "SELECT version()").await?;
            let settings = pg::text(
                &mut c,
                "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings
                 WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'ssl', 'autovacuum', 'max_wal_size')",
            )
            .await?;
            anyhow::Ok(json!({ "version": version, "settings": settings }))
        })?;
        self.report.insert("server".into(), server_info.clone());
        self.report.insert(
            "config".into(),
            json!({
                "syncline": self.syncline_source,
                "profile": self.profile,
                "rows": self.args.rows,
                "updates": self.args.updates,
                "tx_rows": self.args.tx_rows,
                "latency_rate": self.args.latency_rate,
                "latency_secs": self.args.latency_secs,
                "latency_clients": self.args.latency_clients,
                "sslmode": self.args.sslmode,
                "source_options": self.args.source_options,
                "workdir": self.dir.display().to_string(),
                "command": std::env::args().collect::<Vec<_>>().join(" "),
            }),
        );
        self.text.push(format!(
            "Syncline benchmark: {} rows, {} updates in {}-row transactions, latency {} tx/s for {} s",
            thousands(self.args.rows),
            thousands(self.args.updates),
            thousands(self.args.tx_rows),
            thousands(self.args.latency_rate),
            self.args.latency_secs
        ));
        self.text.push(format!(
            "  syncline: {} (profile: {}; run from a private copy)",
            self.syncline_source, self.profile
        ));
        self.text.push(format!(
            "  machine: {} cores, {}; at start: {}",
            machine["cores"],
            machine["memory"].as_str().unwrap_or("?"),
            load_text(&machine["at_start"])
        ));
        self.text.push(format!(
            "  server: {}",
            server_info["version"]
                .as_str()
                .unwrap_or("?")
                .split(" on ")
                .next()
                .unwrap_or("?")
        ));
        self.text.push(format!(
            "          {}",
            server_info["settings"].as_str().unwrap_or("")
        ));
        self.text.push(format!(
            "  TLS (sslmode) for every client, raw and syncline: {}",
            self.args.sslmode
        ));

        self.setup()?;
        self.snapshot()?;
        if self.args.skip.iter().any(|s| s == "stream") {
            self.text.push("\n3. Streaming: skipped".into());
        } else {
            self.stream()?;
        }
        // The first pipeline is done with: release its slot so it does not
        // keep WAL while the latency test runs.
        self.drop_pipeline("p.toml")?;
        if self.args.skip.iter().any(|s| s == "latency") {
            self.text.push("\n4. Latency: skipped".into());
        } else {
            self.latency()?;
            self.drop_pipeline("lat.toml")?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ 1. setup

    fn setup(&mut self) -> Result<()> {
        let rows = self.args.rows;
        let db = self.db().to_owned();
        self.note(&format!("setup: recreating database {db} with {rows} rows"));
        let server = self.server.clone();
        let (insert_secs, index_secs, vacuum_secs, size_mb) = self.rt.block_on(async {
            let mut admin = server.connect("postgres").await?;
            drop_database(&mut admin, &db).await?;
            pg::exec(&mut admin, &format!("CREATE DATABASE {db}")).await?;
            let mut c = server.connect(&db).await?;
            pg::exec(
                &mut c,
                &format!(
                    "CREATE TABLE {TABLE} (
                        id bigint NOT NULL,
                        c_int integer NOT NULL,
                        c_bigint bigint NOT NULL,
                        c_double double precision NOT NULL,
                        c_numeric numeric(12,2) NOT NULL,
                        c_text text NOT NULL,
                        c_varchar varchar(32) NOT NULL,
                        c_bool boolean NOT NULL,
                        c_ts timestamptz NOT NULL,
                        c_json jsonb NOT NULL)"
                ),
            )
            .await?;
            let t = Instant::now();
            pg::exec(
                &mut c,
                &format!(
                    "INSERT INTO {TABLE}
                     SELECT i, (i % 100000)::int, i * 7919, (i / 7.0)::float8,
                            round((i % 1000000) / 3.0, 2),
                            'row ' || md5(i::text) || ' ok',
                            'v-' || lpad((i % 100000)::text, 6, '0'),
                            i % 2 = 0,
                            timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
                            jsonb_build_object('n', i % 1000, 'tag', 't' || (i % 10), 'ok', i % 3 = 0)
                     FROM generate_series(1::bigint, {rows}::bigint) AS i"
                ),
            )
            .await?;
            let insert_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            pg::exec(&mut c, &format!("ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")).await?;
            let index_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            // VACUUM too: sets hint bits and the visibility map once, so
            // neither reader below pays for that.
            pg::exec(&mut c, &format!("VACUUM (ANALYZE) {TABLE}")).await?;
            let vacuum_secs = t.elapsed().as_secs_f64();
            let size = pg::int(&mut c, &format!("SELECT pg_relation_size('{TABLE}')")).await?;
            pg::exec(
                &mut c,
                &format!(
                    "CREATE TABLE {LAT_TABLE} (id bigint PRIMARY KEY, v integer NOT NULL, note text NOT NULL,
                                               at timestamptz NOT NULL DEFAULT now());
                     INSERT INTO {LAT_TABLE} (id, v, note) SELECT i, 0, 'seed ' || i FROM generate_series(1, {LAT_SEED}) i;
                     ANALYZE {LAT_TABLE};"
                ),
            )
            .await?;
            // Updates for the streaming test: one UPDATE of `per_tx`
            // consecutive ids per transaction (each row one change in the
            // WAL and in pgoutput), committed by the procedure itself.
            pg::exec(
                &mut c,
                &format!(
                    "CREATE PROCEDURE bench_update(total bigint, per_tx bigint, max_id bigint)
                     LANGUAGE plpgsql AS $$
                     DECLARE
                         blocks bigint := greatest(max_id / per_tx, 1);
                         done bigint := 0;
                         k bigint := 0;
                         lo bigint;
                         n bigint;
                     BEGIN
                         WHILE done < total LOOP
                             n := least(per_tx, total - done);
                             lo := (k % blocks) * per_tx;
                             UPDATE {TABLE} SET c_int = c_int + 1, c_ts = c_ts + interval '1 millisecond'
                                 WHERE id > lo AND id <= lo + n;
                             done := done + n;
                             k := k + 1;
                             COMMIT;
                         END LOOP;
                     END $$"
                ),
            )
            .await?;
            anyhow::Ok((insert_secs, index_secs, vacuum_secs, size as f64 / 1048576.0))
        })?;
        self.report.insert(
            "setup".into(),
            json!({
                "rows": rows,
                "insert_secs": round3(insert_secs),
                "primary_key_secs": round3(index_secs),
                "vacuum_analyze_secs": round3(vacuum_secs),
                "table_mb": round3(size_mb),
            }),
        );
        self.text.push(format!(
            "\n1. Setup: {} rows inserted in {insert_secs:.1} s, primary key {index_secs:.1} s, VACUUM ANALYZE {vacuum_secs:.1} s; heap {size_mb:.0} MB",
            thousands(rows)
        ));
        Ok(())
    }

    // --------------------------------------------------------- 2. snapshot

    fn snapshot(&mut self) -> Result<()> {
        let rows = self.args.rows;
        let rounds = self.args.rounds.max(1);
        let load = load_note();
        let copy = format!("COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT binary)");
        // For context: psql's \copy into /dev/null.
        self.note("snapshot: psql \\copy to /dev/null");
        let t = Instant::now();
        let out = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-h",
                &self.args.host,
                "-p",
                &self.args.port.to_string(),
                "-U",
                &self.args.user,
                "-d",
                self.db(),
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("\\copy (SELECT * FROM {TABLE}) TO '/dev/null' (FORMAT binary)"),
            ])
            .envs(self.pg_env())
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        let psql_secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "psql \\copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.write_pipeline("p.toml", PIPELINE, TABLE, &[], "snapshot.duckdb", "upsert")?;
        let db_path = self.dir.join("snapshot.duckdb");

        // Rounds of the raw copy and the Syncline run back to back, so both
        // meet the same machine; each round's ratio compares its own pair.
        let mut runs: Vec<SnapshotRound> = Vec::new();
        for round in 1..=rounds {
            // Raw: the same binary COPY drained by a plain sqlx client
            // (what the Postgres source uses too).
            self.note(&format!("snapshot round {round}: raw COPY"));
            let server = self.server.clone();
            let db = self.db().to_owned();
            let copy = copy.clone();
            let (raw_secs, raw_bytes) = self.rt.block_on(async move {
                let t = Instant::now();
                let mut conn = server.connect(&db).await?;
                let mut stream = conn.copy_out_raw(&copy).await?;
                let mut bytes = 0u64;
                while let Some(chunk) = stream.next().await {
                    bytes += chunk?.len() as u64;
                }
                anyhow::Ok((t.elapsed().as_secs_f64(), bytes))
            })?;

            if round > 1 {
                // A fresh pipeline: new slot, exported snapshot, empty file.
                self.drop_pipeline("p.toml")?;
                for file in ["snapshot.duckdb", "snapshot.duckdb.wal"] {
                    let path = self.dir.join(file);
                    if path.exists() {
                        std::fs::remove_file(&path)
                            .with_context(|| format!("removing {}", path.display()))?;
                    }
                }
            }
            self.note(&format!("snapshot round {round}: syncline run --once"));
            let run = self.syncline("snapshot", &["run", "--once", "--json", "p.toml"], 50)?;
            let f = run.wait()?;
            self.record(&f);
            if f.exit_code != 0 {
                bail!("syncline run --once (snapshot) exited with {}", f.exit_code);
            }
            let lines = &f.lines;
            let target_rows: i64 = {
                let conn = duckdb::Connection::open(&db_path)?;
                conn.query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))?
            };
            if target_rows as u64 != rows {
                bail!("the DuckDB target holds {target_rows} rows, expected {rows}");
            }
            runs.push(SnapshotRound {
                raw_secs,
                raw_bytes,
                wall_secs: f.wall_secs,
                snap_start: first_at(lines, |s| phase(s, TABLE) == "snapshot"),
                first_rows: first_at(lines, |s| count(s, TABLE, "snapshot_done") > 0),
                snap_end: first_at(lines, |s| count(s, TABLE, "snapshot_done") >= rows),
                peak_rss_mb: f.peak_rss_mb,
                cpu_secs: f.cpu_secs,
                target_mb: std::fs::metadata(&db_path)
                    .map(|m| m.len() as f64 / 1048576.0)
                    .unwrap_or(0.0),
            });
        }

        let ratios: Vec<f64> = runs.iter().map(SnapshotRound::ratio).collect();
        let ratio = median(&ratios);
        // The round whose ratio is the median stands for the others below.
        let mid = &runs[ratios.iter().position(|r| *r == ratio).unwrap_or_default()];
        let raw_secs = mid.raw_secs;
        let raw_rate = per_sec(rows, raw_secs);
        let sync_rate = per_sec(rows, mid.wall_secs);
        let phase_secs = mid.phase_secs();
        let phase_rate = phase_secs.map(|s| per_sec(rows, s));
        let best_raw = runs
            .iter()
            .map(|r| r.raw_secs)
            .fold(f64::INFINITY, f64::min);
        let best_sync = runs
            .iter()
            .map(|r| r.wall_secs)
            .fold(f64::INFINITY, f64::min);
        let peak_rss = runs.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max);
        self.report.insert(
            "snapshot".into(),
            json!({
                "load": load,
                "method": format!("{rounds} rounds, each the raw copy then `syncline run --once` of a fresh pipeline; ratio = median over rounds of raw seconds / syncline seconds"),
                "raw": {
                    "method": "sqlx PgConnection::copy_out_raw of `COPY (SELECT * FROM bench_rows) TO STDOUT (FORMAT binary)`, bytes drained and dropped; connect included",
                    "runs_secs": runs.iter().map(|r| round3(r.raw_secs)).collect::<Vec<_>>(),
                    "secs": round3(raw_secs),
                    "bytes": mid.raw_bytes,
                    "rows_per_sec": raw_rate.round(),
                    "mb_per_sec": round3(mid.raw_bytes as f64 / 1048576.0 / raw_secs),
                },
                "psql_copy_devnull": {
                    "method": "psql -c \"\\copy (SELECT * FROM bench_rows) TO '/dev/null' (FORMAT binary)\"",
                    "secs": round3(psql_secs),
                    "rows_per_sec": per_sec(rows, psql_secs).round(),
                },
                "syncline": {
                    "command": "syncline run --once --json p.toml (postgres -> fresh DuckDB file, upsert)",
                    "runs_secs": runs.iter().map(|r| round3(r.wall_secs)).collect::<Vec<_>>(),
                    "wall_secs": round3(mid.wall_secs),
                    "rows_per_sec": sync_rate.round(),
                    "startup_secs": mid.snap_start.map(round3),
                    "first_rows_committed_secs": mid.first_rows.map(round3),
                    "snapshot_phase_secs": phase_secs.map(round3),
                    "snapshot_phase_rows_per_sec": phase_rate.map(f64::round),
                    "after_snapshot_secs": mid.snap_end.map(|e| round3(mid.wall_secs - e)),
                    "target_rows": rows,
                    "target_file_mb": round3(mid.target_mb),
                    "peak_rss_mb": round3(peak_rss),
                    "cpu_secs": round3(mid.cpu_secs),
                },
                "round_ratios": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
                "ratio": round3(ratio),
                "best_to_best_ratio": round3(best_raw / best_sync),
                "snapshot_phase_ratio": phase_rate.map(|r| round3(r / raw_rate)),
                "target_ratio": TARGET_SNAPSHOT_RATIO,
                "met": ratio >= TARGET_SNAPSHOT_RATIO,
            }),
        );
        let secs = |f: &dyn Fn(&SnapshotRound) -> f64| {
            runs.iter()
                .map(|r| format!("{:.2}", f(r)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.text.push(format!(
            "\n2. Snapshot ({} rows, {:.0} MB of binary COPY data; {rounds} rounds of raw then syncline; {})",
            thousands(rows),
            mid.raw_bytes as f64 / 1048576.0,
            load_text(&load)
        ));
        self.text.push(format!(
            "   raw  sqlx copy_out_raw, COPY ... TO STDOUT (FORMAT binary) drained: {} s",
            secs(&|r| r.raw_secs)
        ));
        self.text.push(format!(
            "        (psql \\copy ... TO '/dev/null' (FORMAT binary): {psql_secs:.2} s = {} rows/s)",
            rate(rows, psql_secs)
        ));
        self.text.push(format!(
            "   syncline run --once -> DuckDB, process start to exit: {} s",
            secs(&|r| r.wall_secs)
        ));
        self.text.push(format!(
            "   per round: {} of raw -> median {:.1}% (target >= {:.0}%: {}); best against best {:.1}%",
            ratios
                .iter()
                .map(|r| format!("{:.1}%", r * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            ratio * 100.0,
            TARGET_SNAPSHOT_RATIO * 100.0,
            verdict(ratio >= TARGET_SNAPSHOT_RATIO),
            best_raw / best_sync * 100.0
        ));
        self.text.push(format!(
            "   median round: raw {raw_secs:.2} s = {} rows/s; syncline {:.2} s = {} rows/s",
            rate(rows, raw_secs),
            mid.wall_secs,
            rate(rows, mid.wall_secs)
        ));
        if let (Some(start), Some(ps), Some(pr), Some(end)) =
            (mid.snap_start, phase_secs, phase_rate, mid.snap_end)
        {
            self.text.push(format!(
                "        startup {start:.2} s | snapshot phase {ps:.2} s = {} rows/s = {:.1}% of raw | after the last row {:.2} s",
                thousands(pr.round() as u64),
                pr / raw_rate * 100.0,
                mid.wall_secs - end
            ));
        }
        self.text.push(format!(
            "        target holds {} rows ({:.0} MB file); peak RSS {peak_rss:.0} MB over the rounds; CPU {:.1} s over {:.1} s wall",
            thousands(rows),
            mid.target_mb,
            mid.cpu_secs,
            mid.wall_secs
        ));
        Ok(())
    }

    // -------------------------------------------------------- 3. streaming

    fn stream(&mut self) -> Result<()> {
        let updates = self.args.updates;
        let tx_rows = self.args.tx_rows;
        let rows = self.args.rows;
        let server = self.server.clone();
        let db = self.db().to_owned();
        let slot = slot_of(PIPELINE);
        self.note(&format!(
            "streaming: {updates} updates in {tx_rows}-row transactions (pipeline stopped)"
        ));
        let (before, after, gen_secs, wal_bytes) = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let have = pg::int(
                &mut c,
                &format!(
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = {}",
                    pg::literal(&slot)
                ),
            )
            .await?;
            if have != 1 {
                bail!("the pipeline's slot {slot} does not exist after the snapshot");
            }
            pg::exec(
                &mut c,
                &format!("SELECT pg_create_logical_replication_slot('{RAW_SLOT}', 'pgoutput')"),
            )
            .await?;
            let before = pg::text(&mut c, "SELECT pg_current_wal_lsn()::text").await?;
            let t = Instant::now();
            pg::exec(
                &mut c,
                &format!("CALL bench_update({updates}, {tx_rows}, {rows})"),
            )
            .await?;
            let gen_secs = t.elapsed().as_secs_f64();
            let after = pg::text(&mut c, "SELECT pg_current_wal_lsn()::text").await?;
            let wal = pg::int(
                &mut c,
                &format!("SELECT pg_wal_lsn_diff('{after}', '{before}')::int8"),
            )
            .await?;
            anyhow::Ok((before, after, gen_secs, wal))
        })?;
        let load = load_note();

        // For context, the server's decoding alone (no network, no client):
        // peek (does not consume) the raw slot up to the same LSN.
        self.note("streaming: server-side decode only (pg_logical_slot_peek_binary_changes)");
        let (peek_secs, peek_messages) = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let t = Instant::now();
            let n = pg::int(
                &mut c,
                &format!(
                    "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('{RAW_SLOT}', '{after}', NULL,
                         'proto_version', '1', 'publication_names', {})",
                    pg::literal(&slot)
                ),
            )
            .await?;
            anyhow::Ok((t.elapsed().as_secs_f64(), n))
        })?;
        self.note(&format!("streaming: raw pg_recvlogical to {after}"));
        let mut raw_args: Vec<String> = vec![
            "-h".into(),
            self.args.host.clone(),
            "-p".into(),
            self.args.port.to_string(),
            "-U".into(),
            self.args.user.clone(),
            "-d".into(),
            db.clone(),
            "--slot".into(),
            RAW_SLOT.into(),
            "--start".into(),
            "--no-loop".into(),
            "-o".into(),
            "proto_version=1".into(),
            "-o".into(),
            format!("publication_names={slot}"),
            "-f".into(),
            "/dev/null".into(),
            format!("--endpos={after}"),
        ];
        if self.args.raw_binary {
            raw_args.extend(["-o".into(), "binary=true".into()]);
        }
        let raw_arg_refs: Vec<&str> = raw_args.iter().map(String::as_str).collect();
        let raw_log = self.dir.join("pg_recvlogical.log");
        let raw = Monitored::spawn(
            "pg_recvlogical",
            &self.recvlogical,
            &raw_arg_refs,
            &self.dir,
            &self.pg_env(),
            &raw_log,
        )?
        .wait()?;
        if raw.exit_code != 0 {
            bail!(
                "pg_recvlogical exited with {}: {}",
                raw.exit_code,
                std::fs::read_to_string(&raw_log).unwrap_or_default()
            );
        }
        let raw_confirmed = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::text(
                &mut c,
                &format!(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{RAW_SLOT}'"
                ),
            )
            .await
        })?;

        self.note("streaming: syncline run --once");
        let run = self.syncline("stream", &["run", "--once", "--json", "p.toml"], 50)?;
        let f = run.wait()?;
        self.record(&f);
        if f.exit_code != 0 {
            bail!(
                "syncline run --once (streaming) exited with {}",
                f.exit_code
            );
        }
        let lines = &f.lines;
        let applied = lines
            .last()
            .map(|(_, s)| count(s, TABLE, "updates"))
            .unwrap_or(0);
        if applied != updates {
            bail!("syncline applied {applied} updates, expected {updates}");
        }
        let stream_start = first_at(lines, |s| phase(s, TABLE) == "streaming");
        let first_change = first_at(lines, |s| count(s, TABLE, "updates") > 0);
        let stream_end = first_at(lines, |s| count(s, TABLE, "updates") >= updates);
        // The target must equal the source.
        let pg_sum = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::int(&mut c, &format!("SELECT sum(c_int)::int8 FROM {TABLE}")).await
        })?;
        let duck_sum: i64 = {
            let conn = duckdb::Connection::open(self.dir.join("snapshot.duckdb"))?;
            conn.query_row(
                &format!("SELECT CAST(sum(c_int) AS BIGINT) FROM {TABLE}"),
                [],
                |r| r.get(0),
            )?
        };
        if pg_sum != duck_sum {
            bail!("after streaming, sum(c_int) is {pg_sum} in Postgres but {duck_sum} in DuckDB");
        }
        let raw_rate = per_sec(updates, raw.wall_secs);
        let sync_rate = per_sec(updates, f.wall_secs);
        let ratio = sync_rate / raw_rate;
        let phase_secs = match (stream_start, stream_end) {
            (Some(a), Some(b)) if b > a => Some(b - a),
            _ => None,
        };
        let phase_rate = phase_secs.map(|s| per_sec(updates, s));
        self.report.insert(
            "streaming".into(),
            json!({
                "load": load,
                "generation": {
                    "method": "CALL bench_update(): a plpgsql loop, one UPDATE of tx_rows consecutive ids per transaction, COMMIT after each",
                    "secs": round3(gen_secs),
                    "updates_per_sec": per_sec(updates, gen_secs).round(),
                    "lsn_before": before,
                    "lsn_after": after,
                    "wal_bytes": wal_bytes,
                },
                "raw": {
                    "command": format!("pg_recvlogical {}", raw_args.join(" ")),
                    "wall_secs": round3(raw.wall_secs),
                    "changes_per_sec": raw_rate.round(),
                    "slot_confirmed_flush_lsn": raw_confirmed,
                    "server_decode_only": {
                        "method": "SELECT count(*) FROM pg_logical_slot_peek_binary_changes(raw slot, lsn_after, NULL, proto_version 1, same publication) before pg_recvlogical ran",
                        "secs": round3(peek_secs),
                        "messages": peek_messages,
                        "changes_per_sec": per_sec(updates, peek_secs).round(),
                    },
                    "peak_rss_mb": round3(raw.peak_rss_mb),
                    "cpu_secs": round3(raw.cpu_secs),
                },
                "syncline": {
                    "command": "syncline run --once --json p.toml",
                    "wall_secs": round3(f.wall_secs),
                    "changes_per_sec": sync_rate.round(),
                    "startup_secs": stream_start.map(round3),
                    "first_change_committed_secs": first_change.map(round3),
                    "stream_phase_secs": phase_secs.map(round3),
                    "stream_phase_changes_per_sec": phase_rate.map(f64::round),
                    "after_last_change_secs": stream_end.map(|e| round3(f.wall_secs - e)),
                    "updates_applied": applied,
                    "sum_c_int_matches": true,
                    "peak_rss_mb": round3(f.peak_rss_mb),
                    "cpu_secs": round3(f.cpu_secs),
                },
                "ratio": round3(ratio),
                "stream_phase_ratio": phase_rate.map(|r| round3(r / raw_rate)),
                "target_ratio": TARGET_STREAM_RATIO,
                "met": ratio >= TARGET_STREAM_RATIO,
            }),
        );
        self.text.push(format!(
            "\n3. Streaming ({} single-row updates in {}-row transactions, {:.0} MB of WAL; {})",
            thousands(updates),
            thousands(tx_rows),
            wal_bytes as f64 / 1048576.0,
            load_text(&load)
        ));
        self.text.push(format!(
            "   generation: CALL bench_update() (server-side loop, COMMIT every {tx_rows}) {gen_secs:.1} s = {} updates/s; WAL {before} -> {after}",
            rate(updates, gen_secs)
        ));
        self.text.push(format!(
            "   raw  pg_recvlogical --start (pgoutput, proto_version=1{}, publication {slot}) -f /dev/null --endpos={after}: {:.2} s = {} changes/s (slot confirmed {raw_confirmed}; CPU {:.1} s)",
            if self.args.raw_binary { ", binary=true" } else { "" },
            raw.wall_secs,
            rate(updates, raw.wall_secs),
            raw.cpu_secs
        ));
        self.text.push(format!(
            "        (server-side decoding alone, pg_logical_slot_peek_binary_changes: {peek_secs:.2} s = {} changes/s, {} messages)",
            rate(updates, peek_secs),
            thousands(peek_messages.max(0) as u64)
        ));
        self.text.push(format!(
            "   syncline run --once: {:.2} s process start to exit = {} changes/s = {:.1}% of raw (target >= {:.0}%: {})",
            f.wall_secs,
            rate(updates, f.wall_secs),
            ratio * 100.0,
            TARGET_STREAM_RATIO * 100.0,
            verdict(ratio >= TARGET_STREAM_RATIO)
        ));
        if let (Some(start), Some(ps), Some(pr), Some(end)) =
            (stream_start, phase_secs, phase_rate, stream_end)
        {
            self.text.push(format!(
                "        startup {start:.2} s | streaming phase {ps:.2} s = {} changes/s = {:.1}% of raw | after the last change {:.2} s",
                thousands(pr.round() as u64),
                pr / raw_rate * 100.0,
                f.wall_secs - end
            ));
        }
        self.text.push(format!(
            "        {} updates applied, sum(c_int) equal in Postgres and DuckDB; peak RSS {:.0} MB; CPU {:.1} s over {:.1} s wall",
            thousands(applied),
            f.peak_rss_mb,
            f.cpu_secs,
            f.wall_secs
        ));
        Ok(())
    }

    // ---------------------------------------------------------- 4. latency

    fn latency(&mut self) -> Result<()> {
        let rate_target = self.args.latency_rate;
        let secs = self.args.latency_secs;
        let clients = self.args.latency_clients.max(1);
        self.write_pipeline(
            "lat.toml",
            LAT_PIPELINE,
            LAT_TABLE,
            &["heartbeat_secs = 1"],
            "latency.duckdb",
            "history",
        )?;
        self.note("latency: starting syncline run (following)");
        let mut run = self.syncline("latency", &["run", "--json", "lat.toml"], 20)?;
        // Streaming, and the seed rows' snapshot committed (the phase turns
        // to streaming before the target has committed the last snapshot
        // batch).
        run.wait_for("streaming", Duration::from_secs(300), |s| {
            phase(s, LAT_TABLE) == "streaming" && count(s, LAT_TABLE, "snapshot_done") >= LAT_SEED
        })?;
        let baseline = LAT_SEED;
        std::thread::sleep(Duration::from_secs(1));
        let tls = self.rt.block_on(async {
            let mut c = self.server.connect("postgres").await?;
            pg::text(
                &mut c,
                &format!(
                    "SELECT string_agg(DISTINCT CASE WHEN s.ssl THEN 'TLS' ELSE 'plain' END, '+')
                     FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                     WHERE a.application_name = 'syncline' AND a.datname = '{}'",
                    self.args.database
                ),
            )
            .await
        })?;
        let load = load_note();
        self.note(&format!(
            "latency: driving {rate_target} tx/s for {secs} s with {clients} clients"
        ));
        let drive_start = run.elapsed_secs();
        let server = self.server.clone();
        let db = self.db().to_owned();
        let drive = self
            .rt
            .block_on(drive(server, db, rate_target, secs, clients))?;
        let drive_end = run.elapsed_secs();
        let target = baseline + drive.sent;
        let caught_up = run.wait_for("every driven change", Duration::from_secs(900), |s| {
            changes(s, LAT_TABLE) >= target
        });
        self.note("latency: stopping syncline (SIGINT)");
        let f = run.interrupt(Duration::from_secs(60))?;
        self.record(&f);
        caught_up?;
        if f.exit_code != 0 {
            bail!(
                "syncline run (latency) exited with {} after SIGINT",
                f.exit_code
            );
        }
        // When the target had every driven change, and how far behind it
        // was when the load stopped.
        let caught_up_at =
            first_at(&f.lines, |s| changes(s, LAT_TABLE) >= target).unwrap_or(f.wall_secs);
        let caught_up_secs = (caught_up_at - drive_end).max(0.0);
        let backlog = target.saturating_sub(
            f.lines
                .iter()
                .take_while(|(t, _)| *t <= drive_end)
                .last()
                .map(|(_, s)| changes(s, LAT_TABLE))
                .unwrap_or(0),
        );
        let drain_rate = if caught_up_secs > 0.5 {
            Some(per_sec(backlog, caught_up_secs))
        } else {
            None
        };
        // The status stream's lag (source commit to the acknowledged target
        // commit), sampled each tick from the start of the load until the
        // target had every change.
        let mut lag: Vec<f64> = f
            .lines
            .iter()
            .filter(|(t, _)| *t >= drive_start && *t <= caught_up_at)
            .filter_map(|(_, s)| table_status(s, LAT_TABLE)["lag_seconds"].as_f64())
            .map(|l| l * 1000.0)
            .collect();
        lag.sort_by(f64::total_cmp);
        let conn = duckdb::Connection::open(self.dir.join("latency.duckdb"))?;
        let (n, p50, p99, p999, max, avg, batches): (i64, f64, f64, f64, f64, f64, i64) = conn
            .query_row(
                &format!(
                    "SELECT count(*), quantile_cont(ms, 0.5), quantile_cont(ms, 0.99), quantile_cont(ms, 0.999),
                            max(ms), avg(ms), count(DISTINCT _seq)
                     FROM (SELECT (epoch_us(_synced_at) - epoch_us(_commit_time)) / 1000.0 AS ms, _seq
                           FROM {LAT_TABLE} WHERE _commit_time IS NOT NULL)"
                ),
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<f64>>(1)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
                        r.get(6)?,
                    ))
                },
            )?;
        drop(conn);
        if n as u64 != drive.sent {
            bail!(
                "the history table holds {n} streamed changes, {} were driven",
                drive.sent
            );
        }
        let met = p99 < TARGET_P99_MS;
        self.report.insert(
            "latency".into(),
            json!({
                "load": load,
                "pipeline": "syncline run --json lat.toml (following; DuckDB target mode = history; heartbeat_secs = 1); stopped with SIGINT",
                "syncline_connections": tls,
                "driver": {
                    "method": format!("{clients} sqlx connections share one schedule (transaction k starts at t0 + k/rate); even k: INSERT of a new row, odd k: UPDATE of one of {LAT_SEED} rows; autocommit"),
                    "target_rate": rate_target,
                    "sent": drive.sent,
                    "secs": round3(drive.secs),
                    "achieved_rate": per_sec(drive.sent, drive.secs).round(),
                    "exec_ms_p50": round3(drive.exec_p50),
                    "exec_ms_p99": round3(drive.exec_p99),
                    "start_slip_ms_p99": round3(drive.slip_p99),
                    "start_slip_ms_max": round3(drive.slip_max),
                },
                "commit_to_synced_at_ms": {
                    "what": "DuckDB: _synced_at - _commit_time over every streamed row (_synced_at is DuckDB now(): the start of the target transaction)",
                    "rows": n,
                    "target_transactions": batches,
                    "p50": round3(p50),
                    "p99": round3(p99),
                    "p999": round3(p999),
                    "max": round3(max),
                    "avg": round3(avg),
                },
                "status_lag_ms": {
                    "what": "lag_seconds of the status stream (source commit to every target committed), sampled every 20 ms from the start of the load until the target had every change; 1 ms resolution",
                    "samples": lag.len(),
                    "p50": round3(percentile(&lag, 0.5)),
                    "p99": round3(percentile(&lag, 0.99)),
                    "max": round3(lag.last().copied().unwrap_or(0.0)),
                },
                "caught_up_after_load_secs": round3(caught_up_secs),
                "backlog_at_load_end": backlog,
                "backlog_drain_changes_per_sec": drain_rate.map(f64::round),
                "peak_rss_mb": round3(f.peak_rss_mb),
                "cpu_secs": round3(f.cpu_secs),
                "target_p99_ms": TARGET_P99_MS,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n4. Latency ({} tx/s target for {secs} s, history-mode DuckDB target; {})",
            thousands(rate_target),
            load_text(&load)
        ));
        self.text.push(format!(
            "   driver: {clients} connections on one schedule, single-row INSERT/UPDATE autocommit: {} tx in {:.2} s = {} tx/s; exec p50 {:.2} ms p99 {:.2} ms; start slip p99 {:.2} ms max {:.1} ms",
            thousands(drive.sent),
            drive.secs,
            rate(drive.sent, drive.secs),
            drive.exec_p50,
            drive.exec_p99,
            drive.slip_p99,
            drive.slip_max
        ));
        self.text.push(format!(
            "   _synced_at - _commit_time over {} rows ({} target transactions): p50 {p50:.1} ms, p99 {p99:.1} ms, p99.9 {p999:.1} ms, max {max:.1} ms (target p99 < {TARGET_P99_MS:.0} ms: {})",
            thousands(n as u64),
            thousands(batches as u64),
            verdict(met)
        ));
        self.text.push(format!(
            "   status-stream lag (after the target commit), {} samples: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; caught up {caught_up_secs:.2} s after the load ended{}",
            lag.len(),
            percentile(&lag, 0.5),
            percentile(&lag, 0.99),
            lag.last().copied().unwrap_or(0.0),
            drain_rate
                .map(|r| format!(
                    " (backlog {} changes, drained at {} changes/s)",
                    thousands(backlog),
                    thousands(r.round() as u64)
                ))
                .unwrap_or_default()
        ));
        self.text.push(format!(
            "   syncline connections: {}; peak RSS {:.0} MB; CPU {:.1} s over {:.1} s wall",
            if tls.is_empty() { "?" } else { &tls },
            f.peak_rss_mb,
            f.cpu_secs,
            f.wall_secs
        ));
        Ok(())
    }

    /// `syncline drop <file>`: removes the pipeline's slot and publication.
    fn drop_pipeline(&mut self, file: &str) -> Result<()> {
        if !self.dir.join(file).exists() {
            return Ok(());
        }
        self.note(&format!("syncline drop {file}"));
        let f = self
            .syncline(&format!("drop {file}"), &["drop", file], 250)?
            .wait()?;
        self.record(&f);
        if f.exit_code != 0 {
            bail!("syncline drop {file} exited with {}", f.exit_code);
        }
        if file == "p.toml" {
            let server = self.server.clone();
            self.rt.block_on(async {
                let mut c = server.connect("postgres").await?;
                pg::exec(
                    &mut c,
                    &format!(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{RAW_SLOT}'"
                    ),
                )
                .await
            })?;
        }
        Ok(())
    }

    /// Drops the database (and any slot left in it) and the work dir.
    fn cleanup(&mut self, temp_dir: bool) {
        if self.args.keep {
            self.text.push(format!(
                "\nKept: database {}, its slots, and {}",
                self.db(),
                self.dir.display()
            ));
            return;
        }
        self.note("cleanup: dropping the database and its slots");
        let server = self.server.clone();
        let db = self.db().to_owned();
        let dropped = self.rt.block_on(async {
            let mut admin = server.connect("postgres").await?;
            drop_database(&mut admin, &db).await
        });
        if let Err(e) = dropped {
            eprintln!("cleanup failed: {e:#}");
            self.text.push(format!("cleanup failed: {e:#}"));
        }
        if temp_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn finish_report(&mut self) {
        let peak = self
            .processes
            .iter()
            .filter(|p| !p.label.starts_with("drop"))
            .map(|p| p.peak_rss_mb)
            .fold(0.0, f64::max);
        let list: Vec<Json> = self.processes.iter().map(process_json).collect();
        let met = !self.processes.is_empty() && peak < TARGET_RSS_MB;
        self.report.insert(
            "memory".into(),
            json!({
                "method": "VmHWM of /proc/<pid>/status polled every 10 ms until the process is reaped",
                "processes": list,
                "peak_rss_mb": round3(peak),
                "target_mb": TARGET_RSS_MB,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n5. Peak memory (VmHWM polled every 10 ms): {} -> max {peak:.0} MB (target < {TARGET_RSS_MB:.0} MB: {})",
            self.processes
                .iter()
                .map(|p| format!("{} {:.0} MB", p.label, p.peak_rss_mb))
                .collect::<Vec<_>>()
                .join(", "),
            verdict(met)
        ));
        let end = load_note();
        self.text.push(format!(
            "\nTotal {:.0} s; at the end: {}",
            self.started.elapsed().as_secs_f64(),
            load_text(&end)
        ));
        if let Some(m) = self.report.get_mut("machine").and_then(Json::as_object_mut) {
            m.insert("at_end".into(), end);
        }
        let mut targets = Map::new();
        for key in ["snapshot", "streaming", "latency", "memory"] {
            if let Some(v) = self.report.get(key).and_then(|v| v.get("met")) {
                targets.insert(key.into(), v.clone());
            }
        }
        self.report
            .insert("targets_met".into(), Json::Object(targets));
        self.report.insert(
            "total_secs".into(),
            json!(round3(self.started.elapsed().as_secs_f64())),
        );
    }
}

/// Drops `db` after ending whatever streams from its slots and dropping
/// them (a database with slots cannot be dropped).
async fn drop_database(admin: &mut sqlx::postgres::PgConnection, db: &str) -> Result<()> {
    let lit = pg::literal(db);
    for _ in 0..50 {
        pg::exec(
            admin,
            &format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                 WHERE database = {lit} AND active_pid IS NOT NULL"
            ),
        )
        .await?;
        let _ = pg::exec(
            admin,
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE database = {lit} AND NOT active"
            ),
        )
        .await;
        let left = pg::int(
            admin,
            &format!("SELECT count(*) FROM pg_replication_slots WHERE database = {lit}"),
        )
        .await?;
        if left == 0 {
            pg::exec(admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("replication slots of {db} stay active; cannot drop it")
}

/// What the latency driver did.
#[derive(Debug)]
struct Drive {
    sent: u64,
    secs: f64,
    exec_p50: f64,
    exec_p99: f64,
    slip_p99: f64,
    slip_max: f64,
}

/// Drives `rate` single-row transactions per second for `secs` seconds:
/// transaction k is due at t0 + k/rate and taken by whichever of the
/// `clients` connections is free.
async fn drive(
    server: pg::Server,
    db: String,
    rate: u64,
    secs: u64,
    clients: usize,
) -> Result<Drive> {
    let total = rate * secs;
    let step_ns = 1_000_000_000 / rate.max(1);
    let next = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(server.connect(&db).await?);
    }
    let t0 = tokio::time::Instant::now() + Duration::from_millis(200);
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let next = next.clone();
        tasks.spawn(async move {
            let mut exec = Vec::new();
            let mut slip = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= total {
                    break;
                }
                let due = t0 + Duration::from_nanos(k * step_ns);
                tokio::time::sleep_until(due).await;
                let started = tokio::time::Instant::now();
                slip.push(started.duration_since(due).as_secs_f64() * 1000.0);
                let id = i64::try_from(k).unwrap_or(i64::MAX);
                if k.is_multiple_of(2) {
                    sqlx::query("INSERT INTO bench_latency (id, v, note) VALUES ($1, 0, 'new')")
                        .bind(10_000_000 + id)
                        .execute(&mut conn)
                        .await?;
                } else {
                    sqlx::query("UPDATE bench_latency SET v = v + 1, at = now() WHERE id = $1")
                        .bind((id / 2) % LAT_SEED as i64 + 1)
                        .execute(&mut conn)
                        .await?;
                }
                exec.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok((exec, slip))
        });
    }
    let mut exec = Vec::new();
    let mut slip = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (e, s) = r??;
        exec.extend(e);
        slip.extend(s);
    }
    let secs = t0.elapsed().as_secs_f64();
    exec.sort_by(f64::total_cmp);
    slip.sort_by(f64::total_cmp);
    Ok(Drive {
        sent: exec.len() as u64,
        secs,
        exec_p50: percentile(&exec, 0.5),
        exec_p99: percentile(&exec, 0.99),
        slip_p99: percentile(&slip, 0.99),
        slip_max: slip.last().copied().unwrap_or(0.0),
    })
}
