//! Phase 6, files: one large CSV file (`--csv-mb`, 2 GB by default) read by
//! `syncline run --once` into a fresh DuckDB file, against DuckDB's own
//! parallel CSV reader loading the same file into a table of the same
//! engine in the same run; the peak resident set shows that a file is read
//! as a stream, never whole. Then the file changes (a row in a hundred
//! updated, one in a thousand gone, new rows at its end) and a second run
//! diffs it by key against what it held: its peak resident set shows the
//! diff streams too, holding keys, not rows.

use std::io::Write as _;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::report::{TARGET_RSS_MB, per_sec, rate, round3, thousands, verdict};
use crate::run::Bench;

/// The CSV's columns: a key, text, a decimal, a timestamp and a longer note.
const HEADER: &str = "id,name,amount,at,note\n";

impl Bench {
    pub fn files(&mut self) -> Result<()> {
        let bytes = self.args.csv_mb * 1024 * 1024;
        let folder = self.dir.join("csv");
        std::fs::create_dir_all(&folder)?;
        let csv = folder.join("big.csv");
        self.note(&format!(
            "files: writing a {} MB CSV",
            thousands(self.args.csv_mb)
        ));
        let rows = write_csv(&csv, bytes, 1)?;

        // Raw: DuckDB's own CSV reader (parallel, typed by sniffing) into
        // a table of a fresh file.
        self.note("files: raw DuckDB read_csv into a table");
        let raw_db = self.dir.join("raw_csv.duckdb");
        let started = std::time::Instant::now();
        {
            let conn = duckdb::Connection::open(&raw_db)?;
            conn.execute_batch(&format!(
                "CREATE TABLE big AS SELECT * FROM read_csv('{}', header = true)",
                csv.display()
            ))?;
        }
        let raw_secs = started.elapsed().as_secs_f64();
        std::fs::remove_file(&raw_db).ok();

        let pipeline = self.dir.join("files.toml");
        std::fs::write(
            &pipeline,
            "name = \"bench_files\"\n\n[sources.csv]\nkind = \"files\"\npath = \"csv\"\n\n[[sources.csv.tables]]\nname = \"big\"\npattern = \"big.csv\"\nkey = [\"id\"]\n\n[targets.db]\nkind = \"duckdb\"\npath = \"files.duckdb\"\ninputs = [\"csv\"]\n",
        )?;
        self.note("files: syncline run --once");
        let f = self
            .syncline("files", &["run", "--once", "--json", "files.toml"], 250)?
            .wait()?;
        self.record(&f);
        if f.exit_code != 0 {
            bail!("syncline run --once (files) exited with {}", f.exit_code);
        }
        let landed: i64 = {
            let conn = duckdb::Connection::open(self.dir.join("files.duckdb"))?;
            conn.query_row("SELECT count(*) FROM big", [], |r| r.get(0))
                .context("counting the rows that landed")?
        };
        if u64::try_from(landed).ok() != Some(rows) {
            bail!("the CSV holds {rows} rows, the target {landed}");
        }
        self.note("files: the file changes; syncline run --once diffs it");
        let changed_rows = write_csv(&csv, bytes, 2)?;
        let c = self
            .syncline(
                "files changed",
                &["run", "--once", "--json", "files.toml"],
                250,
            )?
            .wait()?;
        self.record(&c);
        // A failed diff is a finding of the report, not the end of it.
        let changed_ok = c.exit_code == 0;
        if changed_ok {
            let (landed, updated): (i64, i64) = {
                let conn = duckdb::Connection::open(self.dir.join("files.duckdb"))?;
                conn.query_row(
                    "SELECT count(*), count(*) FILTER (WHERE note LIKE 'v2 %') FROM big",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .context("counting the rows after the change")?
            };
            if u64::try_from(landed).ok() != Some(changed_rows) || updated == 0 {
                bail!(
                    "the changed CSV holds {changed_rows} rows, the target {landed} ({updated} updated)"
                );
            }
        }
        let ratio = raw_secs / f.wall_secs;
        let met = f.peak_rss_mb < TARGET_RSS_MB && changed_ok && c.peak_rss_mb < TARGET_RSS_MB;
        self.report.insert(
            "files".into(),
            json!({
                "csv_bytes": bytes,
                "rows": rows,
                "raw_secs": round3(raw_secs),
                "raw_rows_per_sec": round3(per_sec(rows, raw_secs)),
                "syncline_secs": round3(f.wall_secs),
                "syncline_rows_per_sec": round3(per_sec(rows, f.wall_secs)),
                "ratio": round3(ratio),
                "peak_rss_mb": round3(f.peak_rss_mb),
                "changed": {
                    "rows": changed_rows,
                    "syncline_secs": round3(c.wall_secs),
                    "rows_per_sec": round3(per_sec(changed_rows, c.wall_secs)),
                    "peak_rss_mb": round3(c.peak_rss_mb),
                    "exit_code": c.exit_code,
                },
                "target_rss_mb": TARGET_RSS_MB,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n6. Files: a {} MB CSV ({} rows) into DuckDB\n   raw DuckDB read_csv: {:.1} s ({} rows/s)\n   syncline run --once: {:.1} s ({} rows/s) = {:.2} of raw\n   peak memory {:.0} MB (target < {TARGET_RSS_MB:.0} MB: {})",
            thousands(self.args.csv_mb),
            thousands(rows),
            raw_secs,
            rate(rows, raw_secs),
            f.wall_secs,
            rate(rows, f.wall_secs),
            ratio,
            f.peak_rss_mb,
            verdict(f.peak_rss_mb < TARGET_RSS_MB)
        ));
        if changed_ok {
            self.text.push(format!(
                "   changed (1 row in 100 updated, 1 in 1,000 gone, new rows at the end; {} rows), diffed by key: {:.1} s ({} rows/s), peak memory {:.0} MB (target < {TARGET_RSS_MB:.0} MB: {})",
                thousands(changed_rows),
                c.wall_secs,
                rate(changed_rows, c.wall_secs),
                c.peak_rss_mb,
                verdict(c.peak_rss_mb < TARGET_RSS_MB)
            ));
        } else {
            self.text.push(format!(
                "   changed ({} rows): FAILED, syncline run --once exited with {} after {:.1} s (its log: syncline.log in the work dir), peak memory {:.0} MB",
                thousands(changed_rows),
                c.exit_code,
                c.wall_secs,
                c.peak_rss_mb
            ));
        }
        std::fs::remove_file(&csv).ok();
        Ok(())
    }
}

/// Writes rows until the file holds `bytes`; returns how many. Version 2
/// leaves out every id that is 1 modulo 1,000 and changes the note of
/// every hundredth.
fn write_csv(path: &std::path::Path, bytes: u64, version: u32) -> Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(HEADER.as_bytes())?;
    let mut written = HEADER.len() as u64;
    let (mut id, mut rows) = (0u64, 0u64);
    let mut line = String::new();
    while written < bytes {
        id += 1;
        if version == 2 && id % 1000 == 1 {
            continue;
        }
        rows += 1;
        let v = if version == 2 && id % 100 == 0 {
            "v2 "
        } else {
            ""
        };
        line.clear();
        use std::fmt::Write as _;
        let _ = writeln!(
            line,
            "{id},customer {},{}.{:02},2026-{:02}-{:02} {:02}:{:02}:{:02},\"{v}note {id}, with a comma and \"\"quotes\"\"\"",
            id % 100_000,
            id % 10_000,
            id % 100,
            id % 12 + 1,
            id % 28 + 1,
            id % 24,
            id % 60,
            (id * 7) % 60
        );
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    out.flush()?;
    Ok(rows)
}
