//! Postgres → DuckDB (warehouse) + Redis (cache) + a search index through
//! the real binary: one change stream feeding all three, `kill -9` at
//! random points under a writer of every kind of change, then every target
//! equal to the source row by row (Redis values and the index's stored
//! documents included), and the index answering `syncline search`.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::cache::{Prefix, connect};
use support::pg::{TestDb, docs_database, kill_trials, spawn_writer, write_docs};
use support::*;

/// `docs` of `src` into DuckDB (`out.duckdb`) and Redis (under `prefix`).
fn pipeline(name: &str, src: &TestDb, prefix: &Prefix) -> String {
    src.pipeline(
        name,
        &["docs"],
        "chunk_rows = 500\nbatch_rows = 300",
        "upsert",
    ) + &prefix.target("cache", "docs")
}

/// The search index target `index` (folder `docs.index`), committing at
/// least every 200 ms.
const SEARCH_TARGET: &str = "[targets.index]\nkind = \"search\"\npath = \"docs.index\"\ninputs = [\"pg.docs\"]\ncommit_ms = 200\n";

/// `(id, rev, note, body)` of every row document the index holds, by id.
fn index_docs(dir: &Path) -> Vec<Vec<String>> {
    let config = syncline_search::SearchTargetConfig {
        path: "docs.index".into(),
        inputs: vec!["pg.docs".into()],
        mode: syncline_engine::config::WriteMode::Upsert,
        commit_rows: 50_000,
        commit_ms: 200,
        tables: std::collections::BTreeMap::new(),
    };
    let mut rows: Vec<(i64, Vec<String>)> = syncline_search::query::documents(&config, dir, "docs")
        .unwrap()
        .into_iter()
        .map(|doc| {
            let row: serde_json::Value = serde_json::from_str(&doc.row).unwrap();
            let text = |f: &str| match &row[f] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let id = row["id"].as_i64().unwrap();
            (
                id,
                vec![text("id"), text("rev"), text("note"), text("body")],
            )
        })
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    rows.into_iter().map(|(_, r)| r).collect()
}

/// `(id, rev, note, body)` of every doc Redis holds, by id.
fn redis_docs(prefix: &Prefix) -> Vec<Vec<String>> {
    prefix.json_rows("docs", &["id", "rev", "note", "body"])
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
fn kill_9_trials_leave_the_cache_the_index_and_the_warehouse_equal_to_the_source() {
    let (trials, mut rng) = kill_trials();
    const ROWS: u64 = 2_000;
    let src = docs_database("cache_src", ROWS);
    let prefix = Prefix::new("e2e_cache");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    std::fs::write(
        &file,
        pipeline("cachetrials", &src, &prefix) + SEARCH_TARGET,
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.name.clone(), write_docs, ROWS, stop.clone());
    for trial in 0..trials {
        let status = kill_after_progress(&file, &mut rng);
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
    assert_same_rows("the search index", &expected, &index_docs(tmp.path()));
    // The index answers queries: every row's note is a word to find.
    let seeds = expected.iter().filter(|r| r[2] == "seed").count();
    let (code, stdout, stderr) = syncline(
        &[
            "search",
            "p.toml",
            "index",
            "note:seed",
            "--limit",
            "3",
            "--json",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let found: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(found["total"], seeds, "rows with note `seed`: {found}");
    assert_eq!(found["hits"].as_array().map(Vec::len), Some(seeds.min(3)));
    // The key index lists exactly the rows, and nothing was set aside.
    let mut conn = connect();
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
