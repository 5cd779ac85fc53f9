//! `syncline verify` of the snapshot table between Postgres and DuckDB:
//! with no difference, then with ten scattered ones, against the raw
//! limit of `SELECT count(*)` on both sides in the same run.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};

use crate::pg;
use crate::report::round3;
use crate::run::Bench;
use crate::setup::TABLE;

/// The bar: verify within this many times the two counts.
const TARGET_COUNT_RATIO: f64 = 3.0;
/// Differences injected into the target.
const SCATTERED: u64 = 10;

impl Bench {
    pub fn verify(&mut self) -> Result<()> {
        let rows = self.args.rows;
        let db_path = self.dir.join("snapshot.duckdb");
        let server = self.server.clone();
        let db = self.db().to_owned();
        self.note("verify: count(*) on both sides");
        let (pg_secs, pg_rows) = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let t = Instant::now();
            let n = pg::int(&mut c, &format!("SELECT count(*) FROM {TABLE}")).await?;
            anyhow::Ok((t.elapsed().as_secs_f64(), n))
        })?;
        let duck_count = || -> Result<(f64, i64)> {
            let t = Instant::now();
            let conn = duckdb::Connection::open(&db_path)?;
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))?;
            Ok((t.elapsed().as_secs_f64(), n))
        };
        let (duck_secs, duck_rows) = duck_count()?;
        if pg_rows != duck_rows {
            bail!("before verify, Postgres holds {pg_rows} rows and DuckDB {duck_rows}");
        }
        let counts = pg_secs + duck_secs;

        self.note("verify: syncline verify, no difference");
        let (clean_secs, clean_code, _) = self.run_verify()?;
        if clean_code != 0 {
            bail!("syncline verify of equal tables exited with {clean_code}");
        }
        // Ten scattered differences: one value changed in each of ten rows
        // spread over the key range.
        let step = (rows / SCATTERED).max(1);
        let ids: Vec<String> = (0..SCATTERED)
            .map(|i| (1 + i * step + i * 7 % step.max(1)).min(rows).to_string())
            .collect();
        {
            let conn = duckdb::Connection::open(&db_path)?;
            conn.execute_batch(&format!(
                "UPDATE {TABLE} SET c_int = c_int + 1 WHERE id IN ({})",
                ids.join(", ")
            ))?;
        }
        self.note("verify: syncline verify, ten differences");
        let (diff_secs, diff_code, report) = self.run_verify()?;
        let found: u64 = report["tables"]
            .as_array()
            .map(|t| t.iter().map(|t| t["changed"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        // Put the rows back, so later phases see equal tables.
        {
            let conn = duckdb::Connection::open(&db_path)?;
            conn.execute_batch(&format!(
                "UPDATE {TABLE} SET c_int = c_int - 1 WHERE id IN ({})",
                ids.join(", ")
            ))?;
        }
        if diff_code != 4 || found != SCATTERED {
            bail!(
                "syncline verify with {SCATTERED} differences exited with {diff_code} and found {found}"
            );
        }
        let clean_ratio = clean_secs / counts;
        let diff_ratio = diff_secs / counts;
        self.report.insert(
            "verify".into(),
            json!({
                "method": "`syncline verify p.toml --settle 0 --json` of the snapshot table (Postgres source, DuckDB target), process start to exit; raw = SELECT count(*) on Postgres (one connection, timed around the query) plus on DuckDB (open and query)",
                "rows": rows,
                "count_secs": {"postgres": round3(pg_secs), "duckdb": round3(duck_secs)},
                "clean_secs": round3(clean_secs),
                "clean_ratio_to_counts": round3(clean_ratio),
                "scattered_secs": round3(diff_secs),
                "scattered_ratio_to_counts": round3(diff_ratio),
                "scattered_found": found,
                "target_ratio": TARGET_COUNT_RATIO,
            }),
        );
        self.text.push(format!(
            "\n12. Verify ({rows} rows, Postgres against DuckDB)\n   raw  count(*): Postgres {pg_secs:.2} s + DuckDB {duck_secs:.2} s\n   syncline verify, equal: {clean_secs:.1} s = {clean_ratio:.1}x the counts (target <= {TARGET_COUNT_RATIO:.0}x: {})\n   syncline verify, {SCATTERED} scattered differences: {diff_secs:.1} s = {diff_ratio:.1}x, found {found}",
            if clean_ratio <= TARGET_COUNT_RATIO { "met" } else { "NOT met" }
        ));
        Ok(())
    }

    /// Runs `syncline verify p.toml --settle 0 --json`: seconds, exit code,
    /// report.
    fn run_verify(&self) -> Result<(f64, i32, Json)> {
        let t = Instant::now();
        let out = Command::new(&self.syncline)
            .args(["verify", "p.toml", "--settle", "0", "--json"])
            .current_dir(&self.dir)
            .env("SYNCLINE_LOG", "warn")
            .output()
            .context("running syncline verify")?;
        let secs = t.elapsed().as_secs_f64();
        let code = out.status.code().unwrap_or(-1);
        let report: Json = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "syncline verify exited with {code} without a report: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok((secs, code, report))
    }
}
