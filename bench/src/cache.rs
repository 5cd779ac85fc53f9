//! Phase 7, cache: single-row updates in fixed-size transactions (`--updates`
//! in `--tx-rows`) of a `--cache-rows` table, made while the pipeline is
//! stopped, applied by `syncline run --once` into Redis; against the raw
//! limit of the same Redis in the same run: one client sending `SET`s of
//! values of the same size in pipelines of `--tx-rows`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::pg;
use crate::report::{TARGET_CACHE_RATIO, load_note, load_text, per_sec, rate, round3, verdict};
use crate::run::Bench;
use crate::setup::update_procedure;

const TABLE: &str = "bench_cache";
const PIPELINE: &str = "bench_cache";

impl Bench {
    pub fn cache(&mut self) -> Result<()> {
        let rows = self.args.cache_rows;
        let updates = self.args.updates;
        let tx_rows = self.args.tx_rows.min(rows);
        let server = self.server.clone();
        let db = self.db().to_owned();
        let prefix = format!("bench_cache_{}:", std::process::id());
        let url = self.args.redis.clone();
        self.note(&format!("cache: a {rows}-row table into Redis at {url}"));
        self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::exec(&mut c, &format!("DROP TABLE IF EXISTS {TABLE}")).await?;
            pg::exec(
                &mut c,
                &format!(
                    "CREATE TABLE {TABLE} AS SELECT i::bigint AS id, (i % 1000)::int AS c_int,
                            'customer ' || i AS name, now() AS c_ts
                       FROM generate_series(1, {rows}) i;
                     ALTER TABLE {TABLE} ADD PRIMARY KEY (id)"
                ),
            )
            .await?;
            pg::exec(&mut c, &update_procedure("bench_cache_update", TABLE)).await
        })?;
        let file = "cache.toml";
        std::fs::write(
            self.dir.join(file),
            format!(
                "name = \"{PIPELINE}\"\n{}[targets.cache]\nkind = \"redis\"\nurl = \"{url}\"\nprefix = \"{prefix}\"\ninputs = [\"pg\"]\n[targets.cache.tables.{TABLE}]\nkey = \"c:{{id}}\"\n",
                self.source_block(TABLE, &[])
            ),
        )?;
        let outcome = self.cache_phases(file, &prefix, rows, updates, tx_rows);
        // Whatever happened: the pipeline's slot, the table and the keys go.
        let dropped = self.drop_pipeline(file);
        let cleaned = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::exec(&mut c, &format!("DROP TABLE IF EXISTS {TABLE}")).await?;
            remove_keys(&url, &prefix).await
        });
        outcome?;
        dropped?;
        cleaned
    }

    fn cache_phases(
        &mut self,
        file: &str,
        prefix: &str,
        rows: u64,
        updates: u64,
        tx_rows: u64,
    ) -> Result<()> {
        let url = self.args.redis.clone();
        self.note("cache: syncline run --once (snapshot into Redis)");
        let snap = self
            .syncline("cache snapshot", &["run", "--once", "--json", file], 250)?
            .wait()?;
        self.record(&snap);
        if snap.exit_code != 0 {
            bail!(
                "syncline run --once (cache snapshot) exited with {}",
                snap.exit_code
            );
        }
        self.note(&format!(
            "cache: {updates} updates in {tx_rows}-row transactions (pipeline stopped)"
        ));
        let server = self.server.clone();
        let db = self.db().to_owned();
        let gen_secs = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let t = Instant::now();
            pg::exec(
                &mut c,
                &format!("CALL bench_cache_update({updates}, {tx_rows}, {rows})"),
            )
            .await?;
            anyhow::Ok(t.elapsed().as_secs_f64())
        })?;
        let load = load_note();
        // The raw limit: one client, pipelined SETs of values of the size
        // Syncline writes, in pipelines of one transaction's rows.
        self.note("cache: raw pipelined SETs");
        let (raw_secs, value_bytes) = self
            .rt
            .block_on(raw_sets(&url, prefix, rows, updates, tx_rows))?;
        self.note("cache: syncline run --once (the updates)");
        let f = self
            .syncline("cache", &["run", "--once", "--json", file], 50)?
            .wait()?;
        self.record(&f);
        if f.exit_code != 0 {
            bail!("syncline run --once (cache) exited with {}", f.exit_code);
        }
        // Redis must equal the source.
        let (pg_sum, redis_sum, keys) = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let pg_sum = pg::int(&mut c, &format!("SELECT sum(c_int)::int8 FROM {TABLE}")).await?;
            let (redis_sum, keys) = sum_in_redis(&url, prefix, rows).await?;
            anyhow::Ok((pg_sum, redis_sum, keys))
        })?;
        if pg_sum != redis_sum || keys != rows {
            bail!(
                "after the updates, sum(c_int) is {pg_sum} in Postgres but {redis_sum} over {keys} keys in Redis"
            );
        }
        let raw_rate = per_sec(updates, raw_secs);
        let sync_rate = per_sec(updates, f.wall_secs);
        let ratio = sync_rate / raw_rate;
        let met = ratio >= TARGET_CACHE_RATIO;
        self.report.insert(
            "cache".into(),
            json!({
                "load": load,
                "rows": rows,
                "updates": updates,
                "tx_rows": tx_rows,
                "generation_secs": round3(gen_secs),
                "snapshot": {
                    "wall_secs": round3(snap.wall_secs),
                    "rows_per_sec": per_sec(rows, snap.wall_secs).round(),
                    "peak_rss_mb": round3(snap.peak_rss_mb),
                },
                "raw": {
                    "method": format!("one client, SET of {value_bytes}-byte values in pipelines of {tx_rows}"),
                    "secs": round3(raw_secs),
                    "sets_per_sec": raw_rate.round(),
                },
                "syncline": {
                    "command": format!("syncline run --once --json {file}"),
                    "wall_secs": round3(f.wall_secs),
                    "changes_per_sec": sync_rate.round(),
                    "peak_rss_mb": round3(f.peak_rss_mb),
                    "cpu_secs": round3(f.cpu_secs),
                    "sum_c_int_matches": true,
                },
                "ratio": round3(ratio),
                "target_ratio": TARGET_CACHE_RATIO,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n7. Cache ({} single-row updates in {}-row transactions of a {}-row table, into Redis; {})",
            crate::report::thousands(updates),
            crate::report::thousands(tx_rows),
            crate::report::thousands(rows),
            load_text(&load)
        ));
        self.text.push(format!(
            "   snapshot into Redis: {:.1} s = {} rows/s, peak memory {:.0} MB",
            snap.wall_secs,
            rate(rows, snap.wall_secs),
            snap.peak_rss_mb
        ));
        self.text.push(format!(
            "   raw  one client, pipelined SETs of {value_bytes}-byte values ({tx_rows} per pipeline): {raw_secs:.2} s = {} SETs/s",
            rate(updates, raw_secs)
        ));
        self.text.push(format!(
            "   syncline run --once (Postgres log decoded, one Lua script per transaction): {:.2} s = {} changes/s = {:.1}% of raw (target >= {:.0}%: {}); peak memory {:.0} MB",
            f.wall_secs,
            rate(updates, f.wall_secs),
            ratio * 100.0,
            TARGET_CACHE_RATIO * 100.0,
            verdict(met),
            f.peak_rss_mb
        ));
        Ok(())
    }
}

async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)
        .with_context(|| format!("Redis url {url}"))?
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to Redis at {url}"))
}

/// Pipelined SETs of `updates` values the size of one synced row under
/// `<prefix>raw:`; returns the seconds and the value size.
async fn raw_sets(
    url: &str,
    prefix: &str,
    rows: u64,
    updates: u64,
    per_pipeline: u64,
) -> Result<(f64, usize)> {
    let mut conn = connect(url).await?;
    let sample: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}c:1"))
        .query_async(&mut conn)
        .await?;
    let sample = sample.context("the snapshot left no value at c:1")?;
    let started = Instant::now();
    let mut done = 0u64;
    while done < updates {
        let mut pipe = redis::pipe();
        let n = per_pipeline.min(updates - done);
        for i in 0..n {
            let id = (done + i) % rows + 1;
            pipe.set(format!("{prefix}raw:{id}"), &sample).ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
        done += n;
    }
    Ok((started.elapsed().as_secs_f64(), sample.len()))
}

/// The sum of `c_int` over the synced rows, and how many there are.
async fn sum_in_redis(url: &str, prefix: &str, rows: u64) -> Result<(i64, u64)> {
    let mut conn = connect(url).await?;
    let (mut sum, mut keys) = (0i64, 0u64);
    let ids: Vec<u64> = (1..=rows).collect();
    for chunk in ids.chunks(10_000) {
        let names: Vec<String> = chunk.iter().map(|id| format!("{prefix}c:{id}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut conn)
            .await?;
        for v in values.into_iter().flatten() {
            let doc: serde_json::Value = serde_json::from_str(&v)?;
            sum += doc["c_int"].as_i64().context("a row without c_int")?;
            keys += 1;
        }
    }
    Ok((sum, keys))
}

/// Removes every key under `prefix`.
pub(crate) async fn remove_keys(url: &str, prefix: &str) -> Result<()> {
    let mut conn = connect(url).await?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
