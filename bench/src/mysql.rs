//! Phase 11, MariaDB: the snapshot table's shape in MariaDB (`--rows`
//! rows), copied into DuckDB by `syncline run --once` against
//! `mariadb-dump --quick` of the same table into /dev/null; then
//! `--updates` single-row updates in `--tx-rows`-row transactions, made
//! while the pipeline is stopped, applied by `syncline run --once` against
//! `mariadb-binlog` reading and decoding (`-v`) the same stretch of the
//! binary log from the server into /dev/null, in the same run.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::report::{
    TARGET_RSS_MB, TARGET_SNAPSHOT_RATIO, TARGET_STREAM_RATIO, per_sec, rate, round3, thousands,
    verdict,
};
use crate::run::Bench;

/// The benchmark's MariaDB database (dropped at the end).
const MY_DB: &str = "syncline_bench_my";
/// Its table.
const MY_TABLE: &str = "bench_my";
/// The pipeline file.
const MY_FILE: &str = "my.toml";

/// Runs `mariadb` with `sql` on stdin, in `db`; its output.
fn mariadb(db: Option<&str>, sql: &str) -> Result<String> {
    let mut cmd = Command::new("mariadb");
    cmd.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"]);
    if let Some(db) = db {
        cmd.arg(db);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the mariadb client")?;
    child
        .stdin
        .take()
        .context("the mariadb client's stdin")?
        .write_all(sql.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("mariadb: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The binary log's current file and position.
fn log_end() -> Result<(String, u64)> {
    let out = mariadb(None, "SHOW MASTER STATUS")?;
    let mut fields = out.split_whitespace();
    match (fields.next(), fields.next().and_then(|p| p.parse().ok())) {
        (Some(file), Some(pos)) => Ok((file.to_owned(), pos)),
        _ => bail!("SHOW MASTER STATUS gave `{out}`: is the binary log on?"),
    }
}

/// Runs a raw client to completion with its output to /dev/null; seconds.
fn timed(program: &str, args: &[String]) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting {program}"))?;
    if !out.status.success() {
        bail!("{program}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed().as_secs_f64())
}

impl Bench {
    pub fn mysql(&mut self) -> Result<()> {
        let outcome = self.mysql_phases();
        let dropped = mariadb(None, &format!("DROP DATABASE IF EXISTS {MY_DB}"));
        std::fs::remove_file(self.dir.join("my.duckdb")).ok();
        outcome?;
        dropped.map(|_| ())
    }

    fn mysql_phases(&mut self) -> Result<()> {
        let rows = self.args.rows;
        self.note(&format!(
            "mariadb: recreating database {MY_DB} with {rows} rows"
        ));
        let t = Instant::now();
        mariadb(
            None,
            &format!(
                "DROP DATABASE IF EXISTS {MY_DB}; CREATE DATABASE {MY_DB}; USE {MY_DB};
                 CREATE TABLE {MY_TABLE} (
                    id BIGINT NOT NULL PRIMARY KEY,
                    c_int INT NOT NULL,
                    c_bigint BIGINT NOT NULL,
                    c_double DOUBLE NOT NULL,
                    c_numeric DECIMAL(12,2) NOT NULL,
                    c_text TEXT NOT NULL,
                    c_varchar VARCHAR(32) NOT NULL,
                    c_bool BOOLEAN NOT NULL,
                    c_ts TIMESTAMP(6) NOT NULL,
                    c_json JSON NOT NULL);
                 INSERT INTO {MY_TABLE}
                 SELECT seq, seq % 1000, seq * 1000, seq / 7, (seq % 100000) / 100,
                        CONCAT('text value number ', seq), CONCAT('v', seq % 977), seq % 2,
                        TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND,
                        JSON_OBJECT('k', seq, 's', 'some text')
                 FROM seq_1_to_{rows};"
            ),
        )?;
        let setup_secs = t.elapsed().as_secs_f64();
        std::fs::write(
            self.dir.join(MY_FILE),
            format!(
                "name = \"bench_my\"\n[sources.my]\nkind = \"mysql\"\ndatabase = \"{MY_DB}\"\n[[sources.my.tables]]\nname = \"{MY_TABLE}\"\n[targets.db]\nkind = \"duckdb\"\npath = \"my.duckdb\"\ninputs = [\"my\"]\n"
            ),
        )?;

        // Snapshot: the raw dump, then Syncline.
        let dump_args: Vec<String> = [
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "--quick",
            "--single-transaction",
            MY_DB,
            MY_TABLE,
        ]
        .map(str::to_owned)
        .to_vec();
        self.note("mariadb: raw mariadb-dump --quick into /dev/null");
        let raw_snapshot = timed("mariadb-dump", &dump_args)?;
        self.note("mariadb: syncline run --once (snapshot)");
        let snap = self
            .syncline(
                "mariadb snapshot",
                &["run", "--once", "--json", MY_FILE],
                250,
            )?
            .wait()?;
        self.record(&snap);
        if snap.exit_code != 0 {
            bail!(
                "syncline run --once (mariadb snapshot) exited with {}",
                snap.exit_code
            );
        }
        let in_duck: i64 = {
            let conn = duckdb::Connection::open(self.dir.join("my.duckdb"))?;
            conn.query_row(&format!("SELECT count(*) FROM {MY_TABLE}"), [], |r| {
                r.get(0)
            })?
        };
        if in_duck != i64::try_from(rows)? {
            bail!("the snapshot copied {in_duck} of {rows} rows");
        }

        // Streaming: updates while the pipeline is stopped, then the raw
        // decoder and Syncline over the same stretch of the log.
        let updates = self.args.updates;
        let per_tx = self.args.tx_rows.max(1);
        let (file, start) = log_end()?;
        self.note(&format!(
            "mariadb: {updates} single-row updates in {per_tx}-row transactions"
        ));
        let mut sql = format!("USE {MY_DB};\n");
        let mut done = 0;
        while done < updates {
            let n = per_tx.min(updates - done);
            let first = done % rows + 1;
            let last = (first + n - 1).min(rows);
            sql.push_str(&format!(
                "UPDATE {MY_TABLE} SET c_int = c_int + 1 WHERE id BETWEEN {first} AND {last};\n"
            ));
            done += last - first + 1;
        }
        let t = Instant::now();
        mariadb(None, &sql)?;
        let gen_secs = t.elapsed().as_secs_f64();
        let binlog_args: Vec<String> = vec![
            "--read-from-remote-server".into(),
            "-h".into(),
            "127.0.0.1".into(),
            "-P".into(),
            "3306".into(),
            "-u".into(),
            "root".into(),
            "-v".into(),
            format!("--start-position={start}"),
            "--to-last-log".into(),
            file.clone(),
        ];
        self.note("mariadb: raw mariadb-binlog -v into /dev/null");
        let raw_stream = timed("mariadb-binlog", &binlog_args)?;
        self.note("mariadb: syncline run --once (stream)");
        let stream = self
            .syncline("mariadb stream", &["run", "--once", "--json", MY_FILE], 250)?
            .wait()?;
        self.record(&stream);
        if stream.exit_code != 0 {
            bail!(
                "syncline run --once (mariadb stream) exited with {}",
                stream.exit_code
            );
        }
        let source_sum: i64 = mariadb(Some(MY_DB), &format!("SELECT SUM(c_int) FROM {MY_TABLE}"))?
            .trim()
            .parse()
            .context("the source's sum")?;
        let target_sum: i64 = {
            let conn = duckdb::Connection::open(self.dir.join("my.duckdb"))?;
            conn.query_row(
                &format!("SELECT CAST(sum(c_int) AS BIGINT) FROM {MY_TABLE}"),
                [],
                |r| r.get(0),
            )?
        };
        if source_sum != target_sum {
            bail!(
                "after the updates the source sums c_int to {source_sum}, DuckDB to {target_sum}"
            );
        }

        let snap_ratio = raw_snapshot / snap.wall_secs;
        let stream_ratio = raw_stream / stream.wall_secs;
        let peak = snap.peak_rss_mb.max(stream.peak_rss_mb);
        let met = snap_ratio >= TARGET_SNAPSHOT_RATIO
            && stream_ratio >= TARGET_STREAM_RATIO
            && peak < TARGET_RSS_MB;
        self.report.insert(
            "mariadb".into(),
            json!({
                "rows": rows,
                "setup_secs": round3(setup_secs),
                "snapshot": {
                    "raw": { "command": format!("mariadb-dump {}", dump_args.join(" ")), "wall_secs": round3(raw_snapshot), "rows_per_sec": per_sec(rows, raw_snapshot).round() },
                    "syncline": { "wall_secs": round3(snap.wall_secs), "rows_per_sec": per_sec(rows, snap.wall_secs).round(), "peak_rss_mb": round3(snap.peak_rss_mb) },
                    "ratio": round3(snap_ratio),
                },
                "stream": {
                    "updates": updates,
                    "tx_rows": per_tx,
                    "generation_secs": round3(gen_secs),
                    "raw": { "command": format!("mariadb-binlog {}", binlog_args.join(" ")), "wall_secs": round3(raw_stream), "changes_per_sec": per_sec(updates, raw_stream).round() },
                    "syncline": { "wall_secs": round3(stream.wall_secs), "changes_per_sec": per_sec(updates, stream.wall_secs).round(), "peak_rss_mb": round3(stream.peak_rss_mb) },
                    "ratio": round3(stream_ratio),
                },
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n11. MariaDB: {} rows into DuckDB, then {} single-row updates in {}-row transactions\n   snapshot: raw mariadb-dump --quick {:.1} s ({} rows/s); syncline run --once {:.1} s ({} rows/s) = {:.2} of raw (target {TARGET_SNAPSHOT_RATIO}: {})\n   stream: raw mariadb-binlog -v {:.1} s ({} changes/s); syncline run --once {:.1} s ({} changes/s) = {:.2} of raw (target {TARGET_STREAM_RATIO}: {})\n   peak memory {:.0} MB (target < {TARGET_RSS_MB:.0} MB: {})",
            thousands(rows),
            thousands(updates),
            thousands(per_tx),
            raw_snapshot,
            rate(rows, raw_snapshot),
            snap.wall_secs,
            rate(rows, snap.wall_secs),
            snap_ratio,
            verdict(snap_ratio >= TARGET_SNAPSHOT_RATIO),
            raw_stream,
            rate(updates, raw_stream),
            stream.wall_secs,
            rate(updates, stream.wall_secs),
            stream_ratio,
            verdict(stream_ratio >= TARGET_STREAM_RATIO),
            peak,
            verdict(peak < TARGET_RSS_MB)
        ));
        Ok(())
    }
}
