//! One benchmark run: checks the arguments, takes a private copy of the
//! `syncline` binary into the work dir, runs the phases in order, cleans up
//! and prints the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value as Json, json};
use tokio::runtime::Runtime;

use crate::Args;
use crate::pg;
use crate::process::Finished;
use crate::report::{load_note, load_text, thousands};

/// Checks the arguments, runs every phase, cleans up and prints the
/// report. A failed phase goes into the report and the exit code; `Err` is
/// for what stops the run before it starts.
pub fn run(args: Args) -> Result<ExitCode> {
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
        if !matches!(
            s.as_str(),
            "stream"
                | "latency"
                | "verify"
                | "files"
                | "cache"
                | "search"
                | "bigtx"
                | "mysql"
                | "pg"
        ) {
            bail!(
                "--skip takes stream, latency, verify, files, cache, search, bigtx, mysql and pg, not `{s}`"
            );
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
            "{} does not exist: build it with `scripts/bench` (or `cargo build --workspace --bins`)",
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

/// One run's state: the arguments, where everything is, and the report as
/// the phases add to it.
#[derive(Debug)]
pub struct Bench {
    pub args: Args,
    pub server: pg::Server,
    pub rt: Runtime,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub syncline: PathBuf,
    /// Where the binary was copied from, and its age.
    pub syncline_source: String,
    pub profile: String,
    pub psql: PathBuf,
    pub recvlogical: PathBuf,
    pub started: Instant,
    pub report: Map<String, Json>,
    pub text: Vec<String>,
    /// Every measured process: label, wall, exit, peak RSS, CPU.
    pub processes: Vec<Finished>,
}

impl Bench {
    pub fn note(&self, msg: &str) {
        eprintln!("[{:>7.1}s] {msg}", self.started.elapsed().as_secs_f64());
    }

    pub fn db(&self) -> &str {
        &self.args.database
    }

    /// Environment for the psql and pg_recvlogical children.
    pub fn pg_env(&self) -> Vec<(&'static str, String)> {
        vec![("PGSSLMODE", self.args.sslmode.clone())]
    }

    pub fn record(&mut self, f: &Finished) {
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

        let skipped = |phase: &str| self.args.skip.iter().any(|s| s == phase || s == "pg");
        let (no_pg, no_stream, no_latency, no_cache, no_search, no_bigtx) = (
            skipped("snapshot"),
            skipped("stream"),
            skipped("latency"),
            skipped("cache"),
            skipped("search"),
            skipped("bigtx"),
        );
        let no_verify = skipped("verify");
        if no_pg {
            self.text
                .push("\n1.-4. Setup, snapshot, streaming and latency: skipped".into());
        } else {
            self.setup()?;
            self.snapshot()?;
            if no_stream {
                self.text.push("\n3. Streaming: skipped".into());
            } else {
                self.stream()?;
            }
            if no_verify {
                self.text.push("\n12. Verify: skipped".into());
            } else {
                self.verify()?;
            }
            // The first pipeline is done with: release its slot so it does
            // not keep WAL while the latency test runs.
            self.drop_pipeline("p.toml")?;
            if no_latency {
                self.text.push("\n4. Latency: skipped".into());
            } else {
                self.latency()?;
                self.drop_pipeline("lat.toml")?;
            }
            if no_cache {
                self.text.push("\n7. Cache: skipped".into());
            } else {
                self.cache()?;
            }
            if no_search {
                self.text
                    .push("\n8.-9. Search index and fan-out: skipped".into());
            } else {
                self.search()?;
            }
            if no_bigtx {
                self.text
                    .push("\n10. One large transaction: skipped".into());
            } else {
                self.bigtx()?;
            }
        }
        if self.args.skip.iter().any(|s| s == "mysql") {
            self.text.push("\n11. MariaDB: skipped".into());
        } else {
            self.mysql()?;
        }
        if self.args.skip.iter().any(|s| s == "files") {
            self.text.push("\n6. Files: skipped".into());
        } else {
            self.files()?;
        }
        Ok(())
    }
}
