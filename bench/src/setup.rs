//! Phase 1, setup: a fresh database with the snapshot and streaming table,
//! the latency table and the streaming test's update procedure; and
//! dropping it all again at the end.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use crate::pg;
use crate::report::{round3, thousands};
use crate::run::Bench;

/// The snapshot and streaming table.
pub const TABLE: &str = "bench_rows";
/// The latency test's table.
pub const LAT_TABLE: &str = "bench_latency";
/// Rows seeded into the latency table.
pub const LAT_SEED: u64 = 1_000;

impl Bench {
    pub fn setup(&mut self) -> Result<()> {
        let rows = self.args.rows;
        let db = self.db().to_owned();
        self.note(&format!("setup: recreating database {db} with {rows} rows"));
        let server = self.server.clone();
        let (insert_secs, index_secs, vacuum_secs, size_mb) = self.rt.block_on(async {
            let mut admin = server.connect("postgres").await?;
            drop_database(&mut admin, &db).await?;
            pg::exec(&mut admin, &format!("CREATE DATABASE {db}")).await?;
            let mut c = server.connect(&db).await?;
            pg::exec(
                &mut c,
                &format!(
                    "CREATE TABLE {TABLE} (
                        id bigint NOT NULL,
                        c_int integer NOT NULL,
                        c_bigint bigint NOT NULL,
                        c_double double precision NOT NULL,
                        c_numeric numeric(12,2) NOT NULL,
                        c_text text NOT NULL,
                        c_varchar varchar(32) NOT NULL,
                        c_bool boolean NOT NULL,
                        c_ts timestamptz NOT NULL,
                        c_json jsonb NOT NULL)"
                ),
            )
            .await?;
            let t = Instant::now();
            pg::exec(
                &mut c,
                &format!(
                    "INSERT INTO {TABLE}
                     SELECT i, (i % 100000)::int, i * 7919, (i / 7.0)::float8,
                            round((i % 1000000) / 3.0, 2),
                            'row ' || md5(i::text) || ' ok',
                            'v-' || lpad((i % 100000)::text, 6, '0'),
                            i % 2 = 0,
                            timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
                            jsonb_build_object('n', i % 1000, 'tag', 't' || (i % 10), 'ok', i % 3 = 0)
                     FROM generate_series(1::bigint, {rows}::bigint) AS i"
                ),
            )
            .await?;
            let insert_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            pg::exec(&mut c, &format!("ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")).await?;
            let index_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            // VACUUM too: sets hint bits and the visibility map once, so
            // neither reader below pays for that.
            pg::exec(&mut c, &format!("VACUUM (ANALYZE) {TABLE}")).await?;
            let vacuum_secs = t.elapsed().as_secs_f64();
            let size = pg::int(&mut c, &format!("SELECT pg_relation_size('{TABLE}')")).await?;
            pg::exec(
                &mut c,
                &format!(
                    "CREATE TABLE {LAT_TABLE} (id bigint PRIMARY KEY, v integer NOT NULL, note text NOT NULL,
                                               at timestamptz NOT NULL DEFAULT now());
                     INSERT INTO {LAT_TABLE} (id, v, note) SELECT i, 0, 'seed ' || i FROM generate_series(1, {LAT_SEED}) i;
                     ANALYZE {LAT_TABLE};"
                ),
            )
            .await?;
            // Updates for the streaming test: one UPDATE of `per_tx`
            // consecutive ids per transaction (each row one change in the
            // WAL and in pgoutput), committed by the procedure itself.
            pg::exec(&mut c, &update_procedure("bench_update", TABLE)).await?;
            anyhow::Ok((insert_secs, index_secs, vacuum_secs, size as f64 / 1048576.0))
        })?;
        self.report.insert(
            "setup".into(),
            json!({
                "rows": rows,
                "insert_secs": round3(insert_secs),
                "primary_key_secs": round3(index_secs),
                "vacuum_analyze_secs": round3(vacuum_secs),
                "table_mb": round3(size_mb),
            }),
        );
        self.text.push(format!(
            "\n1. Setup: {} rows inserted in {insert_secs:.1} s, primary key {index_secs:.1} s, VACUUM ANALYZE {vacuum_secs:.1} s; heap {size_mb:.0} MB",
            thousands(rows)
        ));
        Ok(())
    }

    /// Drops the database (and any slot left in it) and the work dir.
    pub fn cleanup(&mut self, temp_dir: bool) {
        if self.args.keep {
            self.text.push(format!(
                "\nKept: database {}, its slots, and {}",
                self.db(),
                self.dir.display()
            ));
            return;
        }
        self.note("cleanup: dropping the database and its slots");
        let server = self.server.clone();
        let db = self.db().to_owned();
        let dropped = self.rt.block_on(async {
            let mut admin = server.connect("postgres").await?;
            drop_database(&mut admin, &db).await
        });
        if let Err(e) = dropped {
            eprintln!("cleanup failed: {e:#}");
            self.text.push(format!("cleanup failed: {e:#}"));
        }
        if temp_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Drops `db` after ending whatever streams from its slots and dropping
/// them (a database with slots cannot be dropped).
async fn drop_database(admin: &mut sqlx::postgres::PgConnection, db: &str) -> Result<()> {
    let lit = pg::literal(db);
    for _ in 0..50 {
        pg::exec(
            admin,
            &format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                 WHERE database = {lit} AND active_pid IS NOT NULL"
            ),
        )
        .await?;
        let _ = pg::exec(
            admin,
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE database = {lit} AND NOT active"
            ),
        )
        .await;
        let left = pg::int(
            admin,
            &format!("SELECT count(*) FROM pg_replication_slots WHERE database = {lit}"),
        )
        .await?;
        if left == 0 {
            pg::exec(admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("replication slots of {db} stay active; cannot drop it")
}

/// `CREATE PROCEDURE name(total, per_tx, max_id)`: `total` single-row
/// updates of `table` (`c_int` and `c_ts`), one UPDATE of `per_tx`
/// consecutive ids per transaction (each row one change in the WAL and in
/// pgoutput), committed by the procedure itself.
pub fn update_procedure(name: &str, table: &str) -> String {
    format!(
        "CREATE OR REPLACE PROCEDURE {name}(total bigint, per_tx bigint, max_id bigint)
         LANGUAGE plpgsql AS $$
         DECLARE
             blocks bigint := greatest(max_id / per_tx, 1);
             done bigint := 0;
             k bigint := 0;
             lo bigint;
             n bigint;
         BEGIN
             WHILE done < total LOOP
                 n := least(per_tx, total - done);
                 lo := (k % blocks) * per_tx;
                 UPDATE {table} SET c_int = c_int + 1, c_ts = c_ts + interval '1 millisecond'
                     WHERE id > lo AND id <= lo + n;
                 done := done + n;
                 k := k + 1;
                 COMMIT;
             END LOOP;
         END $$"
    )
}
