//! Phase 4, latency: a following `syncline run` into a history-mode
//! DuckDB target under a steady transaction rate, measured as
//! `_synced_at - _commit_time`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use crate::pg;
use crate::pipeline::LAT_PIPELINE;
use crate::report::{
    TARGET_P99_MS, load_note, load_text, per_sec, percentile, rate, round3, thousands, verdict,
};
use crate::run::Bench;
use crate::setup::{LAT_SEED, LAT_TABLE};
use crate::status::{changes, count, first_at, phase, table_status};

impl Bench {
    pub fn latency(&mut self) -> Result<()> {
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
