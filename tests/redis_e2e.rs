//! Postgres → DuckDB (warehouse) + Redis (cache) through the real binary:
//! one change stream feeding both, `kill -9` at random points under a
//! writer of every kind of change, then both targets equal to the source
//! row by row (Redis values included).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::pg::{DOCS, TestDb, body_sql, spawn_writer, write_docs};
use support::*;

fn redis() -> redis::Connection {
    let url =
        std::env::var("SYNCLINE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}"))
}

/// Every key under `prefix`, removed when dropped.
struct Prefix(String);

impl Prefix {
    fn new(name: &str) -> Prefix {
        Prefix(format!(
            "{name}_{}_{:06x}:",
            std::process::id(),
            fastrand::u32(..)
        ))
    }

    fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = redis();
        let keys: Vec<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}{pattern}", self.0))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        keys
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let keys = self.keys("*");
        let mut conn = redis();
        for chunk in keys.chunks(500) {
            let _: Result<u64, _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

fn pipeline(name: &str, src: &TestDb, prefix: &Prefix) -> String {
    format!(
        "name = \"{name}\"
[sources.pg]
kind = \"postgres\"
database = \"{src}\"
heartbeat_secs = 1
chunk_rows = 500
batch_rows = 300
[[sources.pg.tables]]
name = \"docs\"

[targets.duck]
kind = \"duckdb\"
path = \"out.duckdb\"
inputs = [\"pg\"]

[targets.cache]
kind = \"redis\"
prefix = \"{prefix}\"
inputs = [\"pg\"]
[targets.cache.tables.docs]
key = \"doc:{{id}}\"
",
        src = src.name,
        prefix = prefix.0
    )
}

/// `(id, rev, note, body)` of every doc Redis holds, by id.
fn redis_docs(prefix: &Prefix) -> Vec<Vec<String>> {
    let mut conn = redis();
    let mut rows = BTreeMap::new();
    for key in prefix.keys("doc:*") {
        let value: Option<String> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        let Some(value) = value else { continue };
        let doc: serde_json::Value = serde_json::from_str(&value).unwrap();
        let text = |f: &str| match &doc[f] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let id: i64 = text("id").parse().unwrap();
        assert_eq!(
            key,
            format!("{}doc:{id}", prefix.0),
            "a row under another row's key"
        );
        rows.insert(
            id,
            vec![text("id"), text("rev"), text("note"), text("body")],
        );
    }
    rows.into_values().collect()
}

fn duck_rows(path: &Path) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT CAST(id AS VARCHAR), CAST(rev AS VARCHAR), coalesce(note, ''), body FROM docs ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        (0..4)
            .map(|i| r.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// `kill -9` trials of a Postgres → DuckDB + Redis pipeline under a
/// concurrent writer (key changes and swaps with unchanged TOASTed values,
/// deletes, inserts, truncates). `SYNCLINE_KILL_TRIALS` sets how many (10
/// by default).
#[test]
fn kill_9_trials_leave_the_cache_and_the_warehouse_equal_to_the_source() {
    let trials: u32 = std::env::var("SYNCLINE_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = fastrand::u64(..);
    eprintln!("kill points seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let src = TestDb::create("cache_src");
    let prefix = Prefix::new("e2e_cache");
    const ROWS: u64 = 2_000;
    src.exec(DOCS);
    src.exec(&format!(
        "INSERT INTO docs (id, note, body) SELECT i, 'seed', {} FROM generate_series(1, {ROWS}) i",
        body_sql("i")
    ));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    std::fs::write(&file, pipeline("cachetrials", &src, &prefix)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.name.clone(), write_docs, ROWS, stop.clone());
    for trial in 0..trials {
        let mut run = Running::start(&file, &[]);
        let n = rng.u64(1..600);
        let status = run.wait_for("progress", Duration::from_secs(180), |s| changes(s) >= n);
        run.kill9();
        eprintln!(
            "kill {trial}: {} after {} changes",
            status["tables"]["pg.docs"]["phase"],
            changes(&status)
        );
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.join().unwrap();
    eprintln!("{trials} trials, {rounds} writer transactions");

    let run = Running::start(&file, &["--once"]);
    assert_eq!(run.wait(), 0);
    let expected =
        src.rows("SELECT id::text, rev::text, coalesce(note, ''), body FROM docs ORDER BY docs.id");
    assert_same_rows("the Redis target", &expected, &redis_docs(&prefix));
    assert_same_rows(
        "the DuckDB target",
        &expected,
        &duck_rows(&tmp.path().join("out.duckdb")),
    );
    // The key index lists exactly the rows, and nothing was set aside.
    let mut conn = redis();
    let index: u64 = redis::cmd("HLEN")
        .arg(format!("{}syncline:cachetrials:index:docs", prefix.0))
        .query(&mut conn)
        .unwrap();
    assert_eq!(index as usize, expected.len(), "the key index");
    let kept: u64 = redis::cmd("HLEN")
        .arg(format!("{}syncline:cachetrials:dead_letters", prefix.0))
        .query(&mut conn)
        .unwrap();
    assert_eq!(kept, 0, "rows set aside in Redis");
}

/// Redis stopped for a while mid-stream (here: its connections refused by
/// pointing the target at a proxy that is down): the pipeline waits, says
/// so in its status, and catches up once Redis is back.
#[test]
fn a_cache_that_goes_away_is_waited_for_and_caught_up() {
    let src = TestDb::create("cache_outage");
    let prefix = Prefix::new("e2e_outage");
    src.exec("CREATE TABLE docs (id bigint PRIMARY KEY, rev int NOT NULL DEFAULT 0, note text, body text NOT NULL)");
    src.exec("INSERT INTO docs (id, note, body) SELECT i, 'seed', 'b' || i FROM generate_series(1, 500) i");
    let proxy = proxy::Proxy::start(6379);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    let text = pipeline("cacheoutage", &src, &prefix).replace(
        "kind = \"redis\"\n",
        &format!(
            "kind = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\n",
            proxy.port()
        ),
    );
    std::fs::write(&file, text).unwrap();
    let mut run = Running::start(&file, &[]);
    run.wait_for("streaming", Duration::from_secs(120), |s| {
        s["tables"]["pg.docs"]["phase"] == "streaming"
    });
    proxy.down();
    src.exec("UPDATE docs SET rev = rev + 1, note = 'during' WHERE id <= 100");
    let status = run.wait_for("the outage shown", Duration::from_secs(60), |s| {
        s.to_string().contains("unreachable")
    });
    eprintln!("status during the outage: {status}");
    proxy.up();
    run.wait_for("caught up", Duration::from_secs(120), |_| {
        redis_docs(&prefix)
            .iter()
            .filter(|r| r[2] == "during")
            .count()
            == 100
    });
    assert_eq!(run.interrupt(), 0);
    let expected =
        src.rows("SELECT id::text, rev::text, coalesce(note, ''), body FROM docs ORDER BY docs.id");
    assert_same_rows("the Redis target", &expected, &redis_docs(&prefix));
}
