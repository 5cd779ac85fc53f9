//! A throwaway Postgres database per test, driven with `psql`.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database created for one test and dropped (with its replication slots)
/// when the test ends.
pub struct TestDb {
    /// Database name.
    pub name: String,
}

fn psql(db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-F",
            "\t",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs SQL in database `db`, failing the calling test on error (for
/// threads that share a [`TestDb`] by name).
pub fn exec_in(db: &str, sql: &str) {
    if let Err(e) = psql(db, sql) {
        panic!("SQL failed: {e}\n{sql}");
    }
}

/// Runs `write(db, round, max_id)` for rounds 1, 2, ... on a thread until
/// `stop` is set; returns how many rounds ran.
pub fn spawn_writer(
    db: String,
    write: fn(&str, u64, u64),
    max_id: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    spawn_bounded_writer(db, write, max_id, u64::MAX, stop)
}

/// As [`spawn_writer`] (whose `max_lag` is `u64::MAX`), but the writer waits before each round while the
/// replication slots of `db` are more than `max_lag` bytes of WAL behind
/// the server (a source that keeps up, as a healthy deployment has): a
/// writer that outruns the pipeline would otherwise grow the backlog with
/// every restart of a `kill -9` trial, and the trials with it. Writes go on
/// until the pipeline has a slot, and whenever it is within the bound.
pub fn spawn_bounded_writer(
    db: String,
    write: fn(&str, u64, u64),
    max_id: u64,
    max_lag: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let lag_sql = "SELECT coalesce(max(pg_current_wal_lsn() - confirmed_flush_lsn), 0)::bigint
             FROM pg_replication_slots WHERE database = current_database()";
        let mut round = 0;
        while !stop.load(Ordering::SeqCst) {
            let lag: u64 = if max_lag == u64::MAX {
                0
            } else {
                psql(&db, lag_sql)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            if lag > max_lag {
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
            round += 1;
            write(&db, round, max_id);
        }
        round
    })
}

/// The LSN every target holds for source `pg`, from a status line.
pub fn position_lsn(status: &serde_json::Value) -> u64 {
    status["positions"]["pg"]["lsn"].as_u64().unwrap_or(0)
}

impl TestDb {
    /// Creates `sl_<prefix>_<pid>_<n>`.
    pub fn create(prefix: &str) -> TestDb {
        let name = format!(
            "sl_{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        psql("postgres", &format!("CREATE DATABASE {name}")).unwrap();
        TestDb { name }
    }

    /// Runs SQL, failing the test on error.
    pub fn exec(&self, sql: &str) {
        if let Err(e) = psql(&self.name, sql) {
            panic!("SQL failed: {e}\n{sql}");
        }
    }

    /// Runs SQL, returning the error text if it fails.
    pub fn try_exec(&self, sql: &str) -> Result<String, String> {
        psql(&self.name, sql)
    }

    /// Rows of a query, each as its tab-separated fields.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let out = psql(&self.name, sql).unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"));
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// One value.
    pub fn scalar(&self, sql: &str) -> String {
        self.rows(sql)
            .first()
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or_default()
    }

    /// The server's current WAL position, as a number.
    pub fn current_lsn(&self) -> u64 {
        self.scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
            .parse()
            .unwrap()
    }

    /// Replication slots of this database.
    pub fn slots(&self) -> Vec<String> {
        psql(
            "postgres",
            &format!(
                "SELECT slot_name FROM pg_replication_slots WHERE database = '{}'",
                self.name
            ),
        )
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// Publications of this database.
    pub fn publications(&self) -> Vec<String> {
        self.rows("SELECT pubname FROM pg_publication")
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    }

    /// A pipeline file that syncs `tables` of this database into `out.duckdb`.
    pub fn pipeline(
        &self,
        name: &str,
        tables: &[&str],
        extra_source: &str,
        target_mode: &str,
    ) -> String {
        let mut text = format!(
            "name = \"{name}\"\n[sources.pg]\nkind = \"postgres\"\ndatabase = \"{}\"\nheartbeat_secs = 1\n{extra_source}\n",
            self.name
        );
        for t in tables {
            text.push_str(&format!("[[sources.pg.tables]]\nname = \"{t}\"\n"));
        }
        text.push_str(&format!(
            "[targets.db]\nkind = \"duckdb\"\npath = \"out.duckdb\"\ninputs = [\"pg\"]\nmode = \"{target_mode}\"\n"
        ));
        text
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '{0}' AND active_pid IS NOT NULL",
                self.name
            ),
        );
        for _ in 0..50 {
            let _ = psql(
                "postgres",
                &format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{}' AND NOT active",
                    self.name
                ),
            );
            if psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            )
            .is_ok()
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// `docs`: rows with a body Postgres stores out of line (TOAST), for the
/// writers of kill trials ([`write_docs`]).
pub const DOCS: &str = "CREATE TABLE docs (
    id bigint PRIMARY KEY,
    rev int NOT NULL DEFAULT 0,
    note text,
    body text NOT NULL);
    ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL";

/// A body Postgres stores out of line (TOASTed): an update that does not
/// touch it does not resend it.
pub fn body_sql(id: &str) -> String {
    format!("repeat(md5({id}::text), 100)")
}

/// One writer transaction of every kind the targets must carry: updates
/// that leave the TOASTed body unchanged, key changes (a row moves between
/// `id` and `-id`, its body unchanged), a swap of two keys through a
/// temporary one, deletes, inserts, and now and then a truncate.
pub fn write_docs(db: &str, round: u64, max_id: u64) {
    let a = (round * 7919) % max_id + 1;
    let b = (round * 104_729) % max_id + 1;
    let c = (round * 3_571) % max_id + 1;
    let sql = if round.is_multiple_of(97) {
        format!(
            "BEGIN;
             TRUNCATE docs;
             INSERT INTO docs (id, note, body)
                 SELECT i, 'after truncate {round}', {body} FROM generate_series(1, 200) i;
             COMMIT;",
            body = body_sql("i")
        )
    } else {
        format!(
            "BEGIN;
             UPDATE docs SET rev = rev + 1, note = 'r{round}' WHERE abs(id) BETWEEN {a} AND {a} + 10;
             UPDATE docs SET id = -id, rev = rev + 1
                 WHERE id = {c} AND NOT EXISTS (SELECT 1 FROM docs WHERE id = -{c});
             UPDATE docs SET id = 0 WHERE id = {b};
             UPDATE docs SET id = {b} WHERE id = -{b};
             UPDATE docs SET id = -{b} WHERE id = 0;
             DELETE FROM docs WHERE abs(id) BETWEEN {b} + 5 AND {b} + 6;
             INSERT INTO docs (id, note, body) VALUES ({new}, 'new {round}', {body})
                 ON CONFLICT (id) DO UPDATE SET rev = docs.rev + 1;
             COMMIT;",
            new = max_id + round,
            body = body_sql(&(max_id + round).to_string())
        )
    };
    exec_in(db, &sql);
}

/// How many `kill -9` trials to run (`SYNCLINE_KILL_TRIALS`, 10 by default)
/// and where to kill: a generator whose seed is printed, so a failure can be
/// replayed.
pub fn kill_trials() -> (u32, fastrand::Rng) {
    let trials = std::env::var("SYNCLINE_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = fastrand::u64(..);
    eprintln!("kill points seed: {seed}");
    (trials, fastrand::Rng::with_seed(seed))
}

/// A database holding `docs` ([`DOCS`]) with `rows` seed rows.
pub fn docs_database(prefix: &str, rows: u64) -> TestDb {
    let db = TestDb::create(prefix);
    db.exec(DOCS);
    db.exec(&format!(
        "INSERT INTO docs (id, note, body) SELECT i, 'seed', {} FROM generate_series(1, {rows}) i",
        body_sql("i")
    ));
    db
}
