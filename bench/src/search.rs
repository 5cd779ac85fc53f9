//! Phase 8, search and fan-out.
//!
//! * **Indexing**: the snapshot table (`--rows`) into a search index target
//!   by `syncline run --once`, against tantivy alone indexing the same rows
//!   (read by one `COPY`) into documents of the same fields in one commit,
//!   in the same run.
//! * **Fan-out**: single-row updates (`--fanout-updates` in `--tx-rows`) of
//!   the cache phase's table, made while the pipelines are stopped, applied
//!   by one pipeline into DuckDB, Redis and a search index at once, against
//!   each target alone (a pipeline of its own, the same changes): the
//!   three-target rate over the slowest single target's.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures_util::TryStreamExt as _;
use serde_json::json;
use syncline_search::FieldSpec;
use syncline_search::index::{DOC, Fields};
use tantivy::TantivyDocument;

use crate::pg;
use crate::report::{
    TARGET_FANOUT_RATIO, TARGET_SEARCH_RATIO, load_note, load_text, per_sec, rate, round3,
    thousands, verdict,
};
use crate::run::Bench;
use crate::setup::{TABLE, update_procedure};

const FAN_TABLE: &str = "bench_fanout";

/// The fields the search target makes of the snapshot table's columns (by
/// type, as `syncline_search::config::default_kind` gives them).
fn bench_fields() -> BTreeMap<String, FieldSpec> {
    let text = || FieldSpec::Text("default".into());
    [
        ("id", FieldSpec::Int),
        ("c_int", FieldSpec::Int),
        ("c_bigint", FieldSpec::Int),
        ("c_double", FieldSpec::Float),
        ("c_numeric", FieldSpec::Float),
        ("c_text", text()),
        ("c_varchar", text()),
        ("c_bool", FieldSpec::Bool),
        ("c_ts", FieldSpec::Date),
        ("c_json", text()),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_owned(), s))
    .collect()
}

impl Bench {
    pub fn search(&mut self) -> Result<()> {
        self.search_indexing()?;
        self.fanout()
    }

    fn search_indexing(&mut self) -> Result<()> {
        let rows = self.args.rows;
        let file = "search.toml";
        std::fs::write(
            self.dir.join(file),
            format!(
                "name = \"bench_search\"\n{}[targets.index]\nkind = \"search\"\npath = \"search.index\"\ninputs = [\"pg\"]\n",
                self.source_block(TABLE, &[])
            ),
        )?;
        let outcome = self.search_phases(file, rows);
        let dropped = self.drop_pipeline(file);
        let _ = std::fs::remove_dir_all(self.dir.join("search.index"));
        let _ = std::fs::remove_dir_all(self.dir.join("raw.index"));
        outcome?;
        dropped
    }

    fn search_phases(&mut self, file: &str, rows: u64) -> Result<()> {
        let load = load_note();
        self.note(&format!(
            "search: tantivy alone indexing {rows} rows in one commit"
        ));
        let raw_dir = self.dir.join("raw.index");
        let server = self.server.clone();
        let db = self.db().to_owned();
        let (raw_secs, raw_docs) = self.rt.block_on(raw_index(&server, &db, &raw_dir))?;
        if raw_docs != rows {
            bail!("tantivy alone indexed {raw_docs} rows of {rows}");
        }
        self.note("search: syncline run --once (snapshot into the search index)");
        let f = self
            .syncline("search", &["run", "--once", "--json", file], 250)?
            .wait()?;
        self.record(&f);
        if f.exit_code != 0 {
            bail!("syncline run --once (search) exited with {}", f.exit_code);
        }
        let config = syncline_search::SearchTargetConfig {
            path: "search.index".into(),
            inputs: vec!["pg".into()],
            mode: syncline_engine::config::WriteMode::Upsert,
            commit_rows: 200_000,
            commit_ms: 1000,
            tables: BTreeMap::new(),
        };
        let docs = syncline_search::query::count(&config, &self.dir, TABLE)?;
        if docs != rows {
            bail!("the search index holds {docs} documents of {rows} rows");
        }
        let raw_rate = per_sec(rows, raw_secs);
        let sync_rate = per_sec(rows, f.wall_secs);
        let ratio = sync_rate / raw_rate;
        let met = ratio >= TARGET_SEARCH_RATIO;
        self.report.insert(
            "search".into(),
            json!({
                "load": load,
                "rows": rows,
                "raw": {
                    "method": "one COPY read into tantivy documents of the same fields (2 writer threads, 96 MB), one commit",
                    "secs": round3(raw_secs),
                    "docs_per_sec": raw_rate.round(),
                },
                "syncline": {
                    "command": format!("syncline run --once --json {file}"),
                    "wall_secs": round3(f.wall_secs),
                    "docs_per_sec": sync_rate.round(),
                    "peak_rss_mb": round3(f.peak_rss_mb),
                    "peak_anon_mb": round3(f.peak_anon_mb),
                    "cpu_secs": round3(f.cpu_secs),
                    "documents": docs,
                },
                "ratio": round3(ratio),
                "target_ratio": TARGET_SEARCH_RATIO,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n8. Search index ({} rows of the snapshot table; {})",
            thousands(rows),
            load_text(&load)
        ));
        self.text.push(format!(
            "   raw  tantivy alone (one COPY read, same fields, one commit): {raw_secs:.1} s = {} docs/s",
            rate(rows, raw_secs)
        ));
        self.text.push(format!(
            "   syncline run --once (snapshot, commits every 200,000 rows): {:.1} s = {} docs/s = {:.1}% of raw (target >= {:.0}%: {}); peak memory {:.0} MB (anon {:.0} MB; the rest is the index's mapped segments)",
            f.wall_secs,
            rate(rows, f.wall_secs),
            ratio * 100.0,
            TARGET_SEARCH_RATIO * 100.0,
            verdict(met),
            f.peak_rss_mb,
            f.peak_anon_mb
        ));
        Ok(())
    }

    fn fanout(&mut self) -> Result<()> {
        let rows = self.args.cache_rows;
        let updates = self.args.fanout_updates;
        let tx_rows = self.args.tx_rows.min(rows);
        let server = self.server.clone();
        let db = self.db().to_owned();
        let url = self.args.redis.clone();
        let prefix = format!("bench_fanout_{}:", std::process::id());
        self.note(&format!(
            "fan-out: a {rows}-row table into DuckDB, Redis and a search index"
        ));
        self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::exec(&mut c, &format!("DROP TABLE IF EXISTS {FAN_TABLE}")).await?;
            pg::exec(
                &mut c,
                &format!(
                    "CREATE TABLE {FAN_TABLE} AS SELECT i::bigint AS id, (i % 1000)::int AS c_int,
                            'customer ' || i AS name, now() AS c_ts
                       FROM generate_series(1, {rows}) i;
                     ALTER TABLE {FAN_TABLE} ADD PRIMARY KEY (id)"
                ),
            )
            .await?;
            pg::exec(&mut c, &update_procedure("bench_fanout_update", FAN_TABLE)).await
        })?;
        let duck = |n: &str| {
            format!(
                "[targets.db]\nkind = \"duckdb\"\npath = \"fan_{n}.duckdb\"\ninputs = [\"pg\"]\n"
            )
        };
        let cache = |n: &str| {
            format!(
                "[targets.cache]\nkind = \"redis\"\nurl = \"{url}\"\nprefix = \"{prefix}{n}:\"\ninputs = [\"pg\"]\n"
            )
        };
        let index = |n: &str| {
            format!(
                "[targets.index]\nkind = \"search\"\npath = \"fan_{n}.index\"\ninputs = [\"pg\"]\n"
            )
        };
        let pipelines = [
            ("duckdb", duck("duckdb")),
            ("redis", cache("redis")),
            ("search", index("search")),
            ("all", duck("all") + &cache("all") + &index("all")),
        ];
        let mut files = Vec::new();
        for (name, targets) in &pipelines {
            let file = format!("fan_{name}.toml");
            std::fs::write(
                self.dir.join(&file),
                format!(
                    "name = \"bench_fan_{name}\"\n{}{targets}",
                    self.source_block(FAN_TABLE, &[])
                ),
            )?;
            files.push(((*name).to_owned(), file));
        }
        let outcome = self.fanout_phases(&files, rows, updates, tx_rows);
        let mut dropped = Ok(());
        for (_, file) in &files {
            if let Err(e) = self.drop_pipeline(file) {
                dropped = Err(e);
            }
        }
        let cleaned = self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::exec(&mut c, &format!("DROP TABLE IF EXISTS {FAN_TABLE}")).await?;
            crate::cache::remove_keys(&url, &prefix).await
        });
        outcome?;
        dropped?;
        cleaned
    }

    fn fanout_phases(
        &mut self,
        files: &[(String, String)],
        rows: u64,
        updates: u64,
        tx_rows: u64,
    ) -> Result<()> {
        for (name, file) in files {
            self.note(&format!("fan-out: snapshot of `{name}`"));
            let f = self
                .syncline(
                    &format!("fan-out snapshot {name}"),
                    &["run", "--once", "--json", file],
                    250,
                )?
                .wait()?;
            self.record(&f);
            if f.exit_code != 0 {
                bail!(
                    "syncline run --once ({file} snapshot) exited with {}",
                    f.exit_code
                );
            }
        }
        self.note(&format!(
            "fan-out: {updates} updates in {tx_rows}-row transactions (pipelines stopped)"
        ));
        let server = self.server.clone();
        let db = self.db().to_owned();
        self.rt.block_on(async {
            let mut c = server.connect(&db).await?;
            pg::exec(
                &mut c,
                &format!("CALL bench_fanout_update({updates}, {tx_rows}, {rows})"),
            )
            .await
        })?;
        let load = load_note();
        let mut runs: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (name, file) in files {
            self.note(&format!(
                "fan-out: syncline run --once `{name}` (the updates)"
            ));
            let f = self
                .syncline(
                    &format!("fan-out {name}"),
                    &["run", "--once", "--json", file],
                    250,
                )?
                .wait()?;
            self.record(&f);
            if f.exit_code != 0 {
                bail!("syncline run --once ({file}) exited with {}", f.exit_code);
            }
            runs.insert(name.clone(), (f.wall_secs, f.peak_rss_mb));
        }
        let single = ["duckdb", "redis", "search"];
        let (slowest, slowest_secs) = single
            .iter()
            .filter_map(|n| runs.get(*n).map(|r| (*n, r.0)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .context("no single-target run")?;
        let all_secs = runs
            .get("all")
            .map(|r| r.0)
            .context("no three-target run")?;
        let ratio = per_sec(updates, all_secs) / per_sec(updates, slowest_secs);
        let met = ratio >= TARGET_FANOUT_RATIO;
        let mut each = serde_json::Map::new();
        for (name, (secs, rss)) in &runs {
            each.insert(
                name.clone(),
                json!({
                    "wall_secs": round3(*secs),
                    "changes_per_sec": per_sec(updates, *secs).round(),
                    "peak_rss_mb": round3(*rss),
                }),
            );
        }
        self.report.insert(
            "fanout".into(),
            json!({
                "load": load,
                "rows": rows,
                "updates": updates,
                "tx_rows": tx_rows,
                "runs": each,
                "slowest_single": slowest,
                "ratio": round3(ratio),
                "target_ratio": TARGET_FANOUT_RATIO,
                "met": met,
            }),
        );
        self.text.push(format!(
            "\n9. Fan-out ({} single-row updates in {}-row transactions of a {}-row table; {})",
            thousands(updates),
            thousands(tx_rows),
            thousands(rows),
            load_text(&load)
        ));
        for (name, (secs, rss)) in &runs {
            self.text.push(format!(
                "   {name:<7} {secs:.2} s = {} changes/s, peak memory {rss:.0} MB",
                rate(updates, *secs)
            ));
        }
        self.text.push(format!(
            "   three targets at once: {:.1}% of the slowest alone ({slowest}) (target >= {:.0}%: {})",
            ratio * 100.0,
            TARGET_FANOUT_RATIO * 100.0,
            verdict(met)
        ));
        Ok(())
    }
}

/// Tantivy alone: the table read by one `COPY` into documents of the
/// fields the search target makes, one commit; returns seconds and rows.
async fn raw_index(server: &pg::Server, db: &str, dir: &std::path::Path) -> Result<(f64, u64)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let schema = Fields::schema(&bench_fields());
    let index = tantivy::Index::create_in_dir(dir, schema.clone())?;
    let fields = Fields::of(&schema)?;
    let field = |n: &str| fields.columns[n].0;
    let mut writer: tantivy::IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(2, 2 * (48 << 20))?;
    let mut conn = server.connect(db).await?;
    let started = Instant::now();
    let mut stream = conn
        .copy_out_raw(&format!("COPY {TABLE} TO STDOUT"))
        .await?;
    let mut rest: Vec<u8> = Vec::new();
    let mut count = 0u64;
    let names = [
        "id",
        "c_int",
        "c_bigint",
        "c_double",
        "c_numeric",
        "c_text",
        "c_varchar",
        "c_bool",
        "c_ts",
        "c_json",
    ];
    let mut add = |line: &[u8]| -> Result<()> {
        let line = std::str::from_utf8(line)?;
        let cells: Vec<&str> = line.split('\t').collect();
        if cells.len() != names.len() {
            bail!("a COPY line of {} cells", cells.len());
        }
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.table, TABLE);
        doc.add_text(fields.kind, DOC);
        doc.add_text(
            fields.id,
            format!("{DOC}\u{1f}{TABLE}\u{1f}[{{\"Int\":{}}}]", cells[0]),
        );
        doc.add_text(fields.key, format!("[{{\"Int\":{}}}]", cells[0]));
        let mut row = String::with_capacity(line.len() + 160);
        row.push('{');
        for (i, (name, cell)) in names.iter().zip(&cells).enumerate() {
            if i > 0 {
                row.push(',');
            }
            row.push_str(&serde_json::to_string(name)?);
            row.push(':');
            match i {
                0..=3 => row.push_str(cell),
                7 => row.push_str(if *cell == "t" { "true" } else { "false" }),
                9 => row.push_str(cell),
                _ => row.push_str(&serde_json::to_string(cell)?),
            }
        }
        row.push('}');
        doc.add_text(fields.row, row);
        doc.add_i64(field("id"), cells[0].parse()?);
        doc.add_i64(field("c_int"), cells[1].parse()?);
        doc.add_i64(field("c_bigint"), cells[2].parse()?);
        doc.add_f64(field("c_double"), cells[3].parse()?);
        doc.add_f64(field("c_numeric"), cells[4].parse()?);
        doc.add_text(field("c_text"), cells[5]);
        doc.add_text(field("c_varchar"), cells[6]);
        doc.add_bool(field("c_bool"), cells[7] == "t");
        let ts = chrono::DateTime::parse_from_str(cells[8], "%Y-%m-%d %H:%M:%S%#z")
            .with_context(|| format!("timestamp {:?}", cells[8]))?;
        doc.add_date(
            field("c_ts"),
            tantivy::DateTime::from_timestamp_micros(ts.timestamp_micros()),
        );
        doc.add_text(field("c_json"), cells[9]);
        writer.add_document(doc)?;
        count += 1;
        Ok(())
    };
    while let Some(chunk) = stream.try_next().await? {
        rest.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = rest[start..].iter().position(|b| *b == b'\n') {
            add(&rest[start..start + end])?;
            start += end + 1;
        }
        rest.drain(..start);
    }
    drop(stream);
    writer.commit()?;
    writer.wait_merging_threads()?;
    Ok((started.elapsed().as_secs_f64(), count))
}
