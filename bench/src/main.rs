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
//! 6. **Files**: a large CSV file (`--csv-mb`) into DuckDB versus DuckDB's
//!    own `read_csv` of it, with the peak resident set.
//! 7. **Cache**: single-row updates of a `--cache-rows` table applied into
//!    Redis versus pipelined `SET`s of one client to the same Redis.
//! 8. **Search**: the snapshot table into a search index versus tantivy
//!    alone indexing the same rows in one commit.
//! 9. **Fan-out**: updates applied into DuckDB, Redis and a search index by
//!    one pipeline versus each target alone.
//! 10. **One transaction**: `--bigtx-rows` rows inserted by one Postgres
//!     transaction applied into DuckDB and Postgres versus `pg_recvlogical`
//!     draining it, with the peak resident set.
//! 11. **MariaDB**: the snapshot table's shape in MariaDB into DuckDB versus
//!     `mariadb-dump --quick`, and single-row updates from the binary log
//!     versus `mariadb-binlog -v` decoding the same stretch of it.
//!
//! The report goes to stdout (JSON with `--json`); progress to stderr.
//! `scripts/bench` builds everything and runs this.

mod bigtx;
mod cache;
mod files;
mod latency;
mod memory;
mod mysql;
mod pg;
mod pipeline;
mod process;
mod raw;
mod report;
mod run;
mod search;
mod setup;
mod snapshot;
mod status;
mod stream;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

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
    /// Megabytes of the CSV file of the files phase.
    #[arg(long, default_value_t = 2048)]
    csv_mb: u64,
    /// Rows of the table the cache phase keeps in Redis.
    #[arg(long, default_value_t = 100_000)]
    cache_rows: u64,
    /// Single-row updates of the fan-out phase.
    #[arg(long, default_value_t = 200_000)]
    fanout_updates: u64,
    /// The Redis of the cache phase.
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis: String,
    /// Rows the one large transaction of the last phase inserts.
    #[arg(long, default_value_t = 5_000_000)]
    bigtx_rows: u64,
    /// Phases to leave out: stream, latency, verify, files, cache, search, bigtx,
    /// mysql, or pg for every phase that reads from Postgres
    /// (comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}
fn main() -> ExitCode {
    let args = Args::parse();
    match run::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
