//! Phase 3, streaming: single-row updates in fixed-size transactions,
//! made while the pipeline is stopped; `pg_recvlogical` (pgoutput) versus
//! `syncline run --once` applying them.

use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use crate::pg;
use crate::pipeline::{PIPELINE, slot_of};
use crate::raw::RAW_SLOT;
use crate::report::{
    TARGET_STREAM_RATIO, load_note, load_text, per_sec, rate, round3, thousands, verdict,
};
use crate::run::Bench;
use crate::setup::TABLE;
use crate::status::{count, first_at, phase};

impl Bench {
    pub fn stream(&mut self) -> Result<()> {
        let updates = self.args.updates;
        let tx_rows = self.args.tx_rows;
        let rows = self.args.rows;
        let server = self.server.clone();
        let db = self.db().to_owned();
        self.note(&format!(
            "streaming: {updates} updates in {tx_rows}-row transactions (pipeline stopped)"
        ));
        let (slot, before, after, gen_secs, wal_bytes) = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let slot = slot_of(&mut c, PIPELINE).await?;
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
            anyhow::Ok((slot, before, after, gen_secs, wal))
        })?;
        let load = load_note();

        // For context, the server's decoding alone (no network, no client):
        // peek (does not consume) the raw slot up to the same LSN.
        self.note("streaming: server-side decode only (pg_logical_slot_peek_binary_changes)");
        let (peek_secs, peek_messages) = self.server_decode(&after, &slot)?;
        self.note(&format!("streaming: raw pg_recvlogical to {after}"));
        let (raw_args, raw, raw_confirmed) = self.recvlogical_drain(&after, &slot)?;

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
}
