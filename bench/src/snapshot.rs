//! Phase 2, snapshot: a binary `COPY` drained by a plain client versus
//! `syncline run --once` into a fresh DuckDB file, in rounds of one each
//! back to back; the median round's ratio counts.

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::pipeline::PIPELINE;
use crate::report::{
    TARGET_SNAPSHOT_RATIO, load_note, load_text, median, per_sec, rate, round3, thousands, verdict,
};
use crate::run::Bench;
use crate::setup::TABLE;
use crate::status::{count, first_at, phase};

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

impl Bench {
    pub fn snapshot(&mut self) -> Result<()> {
        let rows = self.args.rows;
        let rounds = self.args.rounds.max(1);
        let load = load_note();
        // For context: psql's \copy into /dev/null.
        self.note("snapshot: psql \\copy to /dev/null");
        let psql_secs = self.psql_copy_devnull()?;
        self.write_pipeline("p.toml", PIPELINE, TABLE, &[], "snapshot.duckdb", "upsert")?;
        let db_path = self.dir.join("snapshot.duckdb");

        // Rounds of the raw copy and the Syncline run back to back, so both
        // meet the same machine; each round's ratio compares its own pair.
        let mut runs: Vec<SnapshotRound> = Vec::new();
        for round in 1..=rounds {
            // Raw: the same binary COPY drained by a plain sqlx client
            // (what the Postgres source uses too).
            self.note(&format!("snapshot round {round}: raw COPY"));
            let (raw_secs, raw_bytes) = self.copy_drain()?;

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
}
