//! The raw limits Syncline is measured against, taken by plain clients of
//! the same server: the table's binary `COPY` (drained by sqlx, and by
//! psql into /dev/null) and the streamed changes (drained by
//! `pg_recvlogical`, and decoded by the server alone).

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;

use crate::pg;
use crate::process::{Finished, Monitored};
use crate::run::Bench;
use crate::setup::TABLE;

/// The raw `pg_recvlogical` slot.
pub const RAW_SLOT: &str = "bench_raw_pgoutput";

impl Bench {
    /// psql's `\copy` of the table into /dev/null: its seconds.
    pub fn psql_copy_devnull(&self) -> Result<f64> {
        let t = Instant::now();
        let out = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-h",
                &self.args.host,
                "-p",
                &self.args.port.to_string(),
                "-U",
                &self.args.user,
                "-d",
                self.db(),
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("\\copy (SELECT * FROM {TABLE}) TO '/dev/null' (FORMAT binary)"),
            ])
            .envs(self.pg_env())
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        let psql_secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "psql \\copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(psql_secs)
    }

    /// The table's binary `COPY` drained by a plain sqlx client (what the
    /// Postgres source uses too): seconds, connect included, and bytes.
    pub fn copy_drain(&self) -> Result<(f64, u64)> {
        let copy = format!("COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT binary)");
        let server = self.server.clone();
        let db = self.db().to_owned();
        self.rt.block_on(async move {
            let t = Instant::now();
            let mut conn = server.connect(&db).await?;
            let mut stream = conn.copy_out_raw(&copy).await?;
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                bytes += chunk?.len() as u64;
            }
            anyhow::Ok((t.elapsed().as_secs_f64(), bytes))
        })
    }

    /// The server's decoding alone (no network, no client): peeks (does
    /// not consume) the raw slot up to `after` with the publication `slot`;
    /// seconds and messages.
    pub fn server_decode(&self, after: &str, slot: &str) -> Result<(f64, i64)> {
        let server = self.server.clone();
        let db = self.db().to_owned();
        self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            let t = Instant::now();
            let n = pg::int(
                &mut c,
                &format!(
                    "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('{RAW_SLOT}', '{after}', NULL,
                         'proto_version', '1', 'publication_names', {})",
                    pg::literal(slot)
                ),
            )
            .await?;
            anyhow::Ok((t.elapsed().as_secs_f64(), n))
        })
    }

    /// `pg_recvlogical` (pgoutput, publication `slot`) draining the raw
    /// slot into /dev/null up to `after`: its arguments, the finished
    /// process, and the LSN the slot then confirms.
    pub fn recvlogical_drain(
        &self,
        after: &str,
        slot: &str,
    ) -> Result<(Vec<String>, Finished, String)> {
        let server = self.server.clone();
        let db = self.db().to_owned();
        let mut raw_args: Vec<String> = vec![
            "-h".into(),
            self.args.host.clone(),
            "-p".into(),
            self.args.port.to_string(),
            "-U".into(),
            self.args.user.clone(),
            "-d".into(),
            db.clone(),
            "--slot".into(),
            RAW_SLOT.into(),
            "--start".into(),
            "--no-loop".into(),
            "-o".into(),
            "proto_version=1".into(),
            "-o".into(),
            format!("publication_names={slot}"),
            "-f".into(),
            "/dev/null".into(),
            format!("--endpos={after}"),
        ];
        if self.args.raw_binary {
            raw_args.extend(["-o".into(), "binary=true".into()]);
        }
        let raw_arg_refs: Vec<&str> = raw_args.iter().map(String::as_str).collect();
        let raw_log = self.dir.join("pg_recvlogical.log");
        let raw = Monitored::spawn(
            "pg_recvlogical",
            &self.recvlogical,
            &raw_arg_refs,
            &self.dir,
            &self.pg_env(),
            &raw_log,
        )?
        .wait()?;
        if raw.exit_code != 0 {
            bail!(
                "pg_recvlogical exited with {}: {}",
                raw.exit_code,
                std::fs::read_to_string(&raw_log).unwrap_or_default()
            );
        }
        let raw_confirmed = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::text(
                &mut c,
                &format!(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{RAW_SLOT}'"
                ),
            )
            .await
        })?;
        Ok((raw_args, raw, raw_confirmed))
    }
}
