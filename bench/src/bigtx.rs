//! Phase 10, one large transaction: `--bigtx-rows` rows (5 million by
//! default) inserted by one Postgres transaction while the pipeline is
//! stopped, then `syncline run --once` applying it to a DuckDB and a
//! Postgres target, against `pg_recvlogical` draining the same
//! transaction in the same run. The peak resident set shows that the
//! transaction streams through in parts, never held whole.

use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use crate::pg;
use crate::pipeline::slot_of;
use crate::raw::RAW_SLOT;
use crate::report::{TARGET_RSS_MB, per_sec, rate, round3, thousands, verdict};
use crate::run::Bench;

/// The table the transaction fills.
const BIG: &str = "bench_bigtx";
/// The pipeline (and its slot's owner).
const BIG_PIPELINE: &str = "bench_bigtx";
/// The Postgres target's schema, in the benchmark's database.
const BIG_SCHEMA: &str = "bench_bigtx_target";

impl Bench {
    pub fn bigtx(&mut self) -> Result<()> {
        let rows = self.args.bigtx_rows;
        let server = self.server.clone();
        let db = self.db().to_owned();
        self.note(&format!("one transaction: {rows} inserted rows"));
        self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::exec(
                &mut c,
                &format!(
                    "DROP TABLE IF EXISTS {BIG};
                     DROP SCHEMA IF EXISTS {BIG_SCHEMA} CASCADE;
                     CREATE TABLE {BIG} (id bigint PRIMARY KEY, c_int int NOT NULL,
                                         name text NOT NULL, c_ts timestamptz NOT NULL)"
                ),
            )
            .await
        })?;
        let file = "bigtx.toml";
        std::fs::write(
            self.dir.join(file),
            format!(
                "name = \"{BIG_PIPELINE}\"\n{}[targets.duck]\nkind = \"duckdb\"\npath = \"bigtx.duckdb\"\ninputs = [\"pg\"]\n[targets.warehouse]\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{db}\"\nsslmode = \"{}\"\nschema = \"{BIG_SCHEMA}\"\ninputs = [\"pg\"]\n",
                self.source_block(BIG, &[]),
                self.args.host,
                self.args.port,
                self.args.user,
                self.args.sslmode,
            ),
        )?;
        let outcome = self.bigtx_phases(file, rows);
        let dropped = self.drop_pipeline(file);
        let cleaned = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::exec(
                &mut c,
                &format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{RAW_SLOT}';
                     DROP TABLE IF EXISTS {BIG};
                     DROP SCHEMA IF EXISTS {BIG_SCHEMA} CASCADE"
                ),
            )
            .await
        });
        std::fs::remove_file(self.dir.join("bigtx.duckdb")).ok();
        outcome?;
        dropped?;
        cleaned
    }

    fn bigtx_phases(&mut self, file: &str, rows: u64) -> Result<()> {
        self.note("one transaction: syncline run --once (the empty table, the slot)");
        let first = self
            .syncline("bigtx start", &["run", "--once", "--json", file], 250)?
            .wait()?;
        self.record(&first);
        if first.exit_code != 0 {
            bail!(
                "syncline run --once (bigtx start) exited with {}",
                first.exit_code
            );
        }
        let server = self.server.clone();
        let db = self.db().to_owned();
        let (slot, after, gen_secs) = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let slot = slot_of(&mut c, BIG_PIPELINE).await?;
            pg::exec(
                &mut c,
                &format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{RAW_SLOT}';
                     SELECT pg_create_logical_replication_slot('{RAW_SLOT}', 'pgoutput')"
                ),
            )
            .await?;
            let t = Instant::now();
            pg::exec(
                &mut c,
                &format!(
                    "INSERT INTO {BIG} SELECT i, i % 1000, 'customer ' || i, now()
                       FROM generate_series(1, {rows}) i"
                ),
            )
            .await?;
            let gen_secs = t.elapsed().as_secs_f64();
            let after = pg::text(&mut c, "SELECT pg_current_wal_lsn()::text").await?;
            anyhow::Ok((slot, after, gen_secs))
        })?;
        self.note(&format!("one transaction: raw pg_recvlogical to {after}"));
        let (raw_args, raw, _) = self.recvlogical_drain(&after, &slot)?;
        self.note("one transaction: syncline run --once");
        let f = self
            .syncline("bigtx", &["run", "--once", "--json", file], 250)?
            .wait()?;
        self.record(&f);
        if f.exit_code != 0 {
            bail!("syncline run --once (bigtx) exited with {}", f.exit_code);
        }
        let in_pg = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::int(&mut c, &format!("SELECT count(*) FROM {BIG_SCHEMA}.{BIG}")).await
        })?;
        let in_duck: i64 = {
            let conn = duckdb::Connection::open(self.dir.join("bigtx.duckdb"))?;
            conn.query_row(&format!("SELECT count(*) FROM {BIG}"), [], |r| r.get(0))?
        };
        let expected = i64::try_from(rows)?;
        if in_pg != expected || in_duck != expected {
            bail!("the transaction inserted {rows} rows; Postgres holds {in_pg}, DuckDB {in_duck}");
        }
        let ratio = raw.wall_secs / f.wall_secs;
        let met = f.peak_rss_mb < TARGET_RSS_MB;
        self.report.insert(
            "one_transaction".into(),
            json!({
                "rows": rows,
                "generation_secs": round3(gen_secs),
                "raw": {
                    "command": format!("pg_recvlogical {}", raw_args.join(" ")),
                    "wall_secs": round3(raw.wall_secs),
                    "rows_per_sec": per_sec(rows, raw.wall_secs).round(),
                },
                "syncline": {
                    "command": format!("syncline run --once --json {file} (DuckDB and Postgres targets)"),
                    "wall_secs": round3(f.wall_secs),
                    "rows_per_sec": per_sec(rows, f.wall_secs).round(),
                    "peak_rss_mb": round3(f.peak_rss_mb),
                    "peak_anon_mb": round3(f.peak_anon_mb),
                    "cpu_secs": round3(f.cpu_secs),
                },
                "ratio": round3(ratio),
                "target_rss_mb": TARGET_RSS_MB,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n10. One transaction of {} inserted rows, into DuckDB and Postgres\n   generation: one INSERT ... SELECT generate_series {gen_secs:.1} s\n   raw  pg_recvlogical draining it: {:.1} s ({} rows/s)\n   syncline run --once: {:.1} s ({} rows/s into both targets) = {:.2} of raw\n   peak memory {:.0} MB, anonymous {:.0} MB (target < {TARGET_RSS_MB:.0} MB: {})",
            thousands(rows),
            raw.wall_secs,
            rate(rows, raw.wall_secs),
            f.wall_secs,
            rate(rows, f.wall_secs),
            ratio,
            f.peak_rss_mb,
            f.peak_anon_mb,
            verdict(met)
        ));
        Ok(())
    }
}
