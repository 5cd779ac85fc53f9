//! The desktop studio's library calls against real files and DuckDB: the
//! in-process runner (start, rows land, browse while writing, pause,
//! resume, stop), drafts rendered to TOML and read back, secrets refused,
//! open/save byte for byte, checks and discovery of an unfinished pipeline,
//! preview, and the dead-letter queue.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use syncline_app::desktop::{self, FailureCode, Previews};
use syncline_app::lifecycle::PipelineHost;
use syncline_engine::status::PipelineState;
use syncline_sample::SampleSize;

const SMALL: SampleSize = SampleSize {
    customers: 200,
    products: 20,
    orders: 1_200,
};

/// Malformed order rows the sample generator writes at this size (one in
/// March, one in July): they become dead letters.
const BAD_ORDERS: u64 = 2;

fn sample(dir: &Path) -> PathBuf {
    syncline_sample::write(dir, SMALL).expect("sample written")
}

fn count(rows: &[desktop::TableInfo], name: &str) -> u64 {
    rows.iter().find(|t| t.name == name).map_or(0, |t| t.rows)
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_starts_browses_while_writing_pauses_resumes_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sample(dir.path());
    let database = dir.path().join("shop.duckdb");
    let runner = PipelineHost::new();

    let mut rx = runner.start(&path).await.expect("starts");
    // Starting it twice is refused while it runs.
    let again = runner.start(&path).await.expect_err("already running");
    assert_eq!(again.code, FailureCode::Busy);

    // Rows land, and the data view reads the file the running pipeline
    // writes (one DuckDB instance shared in this process).
    let tables = wait_for("every row to land", async || {
        let tables = desktop::list_tables(database.clone()).await.ok()?;
        (count(&tables, "orders") == SMALL.orders - BAD_ORDERS
            && count(&tables, "customers") == SMALL.customers
            && count(&tables, "products") == SMALL.products)
            .then_some(tables)
    })
    .await;
    let orders = tables.iter().find(|t| t.name == "orders").expect("orders");
    assert!(
        orders
            .columns
            .iter()
            .any(|c| c.name == "amount" && c.data_type == "DECIMAL(12,2)")
    );
    let q = desktop::run_query(
        database.clone(),
        "SELECT sum(amount) AS total, count(*) AS n FROM orders".into(),
        10,
    )
    .await
    .expect("query while running");
    assert_eq!(q.rows.len(), 1);
    assert!(
        q.rows[0][0].is_string(),
        "decimals cross as text: {:?}",
        q.rows[0]
    );
    assert_eq!(q.rows[0][1], serde_json::json!(SMALL.orders - BAD_ORDERS));
    let bad = desktop::run_query(database.clone(), "SELECT nope FROM orders".into(), 10)
        .await
        .expect_err("bad SQL");
    assert_eq!(bad.code, FailureCode::Sql);
    // The data view reads the database it was given and nothing else: no
    // file of the machine through DuckDB's readers, no extension.
    for sql in [
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
    ] {
        let e = desktop::run_query(database.clone(), sql.into(), 10)
            .await
            .expect_err(sql);
        assert_eq!(e.code, FailureCode::Sql, "{sql}: {e}");
        assert!(e.message.contains("disabled"), "{sql}: {e}");
    }

    // The status channel follows the run.
    let status = wait_for("the run to stream", async || {
        let s = rx.borrow_and_update().clone();
        (s.state == PipelineState::Running && s.total_changes() > 0).then_some(s)
    })
    .await;
    assert_eq!(status.pipeline, "shop");
    let listed = runner.list();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].paused);

    // Pause: a graceful stop, listed as paused; the file is free again.
    runner.pause(&path).await.expect("pauses");
    let listed = runner.list();
    assert!(listed[0].paused);
    assert_eq!(listed[0].status.state, desktop::PipelineState::Stopped);
    assert!(!syncline_duckdb::shared::is_open(&database));

    // Rows added while paused arrive after resume, on the same channel.
    std::fs::write(
        dir.path().join("shop/orders/2026-01.csv"),
        "order_id,customer_id,product_id,quantity,amount,status,ordered_at\n\
         900001,1,1,2,10.50,paid,2026-01-02T10:00:00Z\n",
    )
    .expect("new file");
    runner.resume(&path).await.expect("resumes");
    wait_for("the new order", async || {
        let tables = desktop::list_tables(database.clone()).await.ok()?;
        (count(&tables, "orders") == SMALL.orders - BAD_ORDERS + 1).then_some(())
    })
    .await;
    assert!(rx.has_changed().is_ok(), "the channel survives a resume");

    runner.stop(&path).await.expect("stops");
    assert_eq!(
        runner.list()[0].status.state,
        desktop::PipelineState::Stopped
    );
    assert_eq!(
        runner
            .stop(&dir.path().join("other.toml"))
            .await
            .expect_err("unknown")
            .code,
        FailureCode::NotFound
    );

    // The kept rows of the malformed orders are in the dead-letter queue.
    let text = std::fs::read_to_string(&path).expect("pipeline");
    let kept = desktop::dlq_list(&path, text.clone()).await.expect("lists");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].rows.len() as u64, BAD_ORDERS);

    // Dropping removes its state and checkpoints, keeping the data (the
    // state folder says only that the next run copies every table anew).
    let lines = runner.drop_pipeline(&path).await.expect("drops");
    assert!(runner.list().is_empty());
    let state: Vec<String> = std::fs::read_dir(dir.path().join(".syncline/shop"))
        .expect("state folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(state, ["dropped"]);
    assert!(
        lines.iter().any(|l| l.contains("copies it again")),
        "{lines:?}"
    );
    let tables = desktop::list_tables(database.clone())
        .await
        .expect("data kept");
    assert_eq!(count(&tables, "customers"), SMALL.customers);
}

#[test]
fn drafts_render_to_toml_that_reads_back_the_same() {
    let sample = syncline_sample::PIPELINE;
    let draft = syncline_engine::config::document_json(Path::new("shop.toml"), sample)
        .expect("sample parses");
    let rendered = desktop::render_pipeline(&draft).expect("renders");
    assert!(rendered.problems.is_empty(), "{:?}", rendered.problems);
    assert!(
        rendered
            .text
            .starts_with("name = \"shop\"\ndescription = \"Sample shop: files -> DuckDB\"\n"),
        "{}",
        rendered.text
    );
    assert!(
        rendered.text.contains("[[sources.shop.tables]]"),
        "{}",
        rendered.text
    );
    assert!(
        rendered
            .text
            .contains("columns = { amount = \"decimal(12,2)\" }"),
        "{}",
        rendered.text
    );

    // The same pipeline as the hand-written file.
    let original = syncline_app::parse(Path::new("shop.toml"), sample.to_owned()).expect("valid");
    let back = syncline_app::parse(Path::new("shop.toml"), rendered.text.clone()).expect("valid");
    assert_eq!(original.spec, back.spec);

    // Canonical: rendering the rendered text's structure changes nothing.
    let again = syncline_engine::config::document_json(Path::new("shop.toml"), &rendered.text)
        .expect("parses");
    assert_eq!(
        desktop::render_pipeline(&again).expect("renders").text,
        rendered.text
    );

    // Multi-line SQL stays readable.
    let mut with_sql = draft.clone();
    with_sql["transforms"] = serde_json::json!({
        "paid": { "input": "shop.orders", "sql": "SELECT *\nFROM source\nWHERE status = 'paid'" }
    });
    with_sql["targets"]["warehouse"]["inputs"] = serde_json::json!(["shop", "paid"]);
    let r = desktop::render_pipeline(&with_sql).expect("renders");
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(
        r.text.contains("sql = \"\"\"\nSELECT *\nFROM source\n"),
        "{}",
        r.text
    );

    // Problems come back with their line and field.
    let mut broken = draft.clone();
    broken["targets"]["warehouse"]["mode"] = serde_json::json!("upsurt");
    let r = desktop::render_pipeline(&broken).expect("renders");
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(
        r.problems[0].field.as_deref(),
        Some("targets.warehouse.mode")
    );
    let line = r.problems[0].line.expect("a line") as usize;
    assert!(
        r.text
            .lines()
            .nth(line - 1)
            .expect("line")
            .contains("upsurt")
    );
}

#[test]
fn secrets_typed_as_values_are_refused() {
    let draft = serde_json::json!({
        "name": "pg",
        "sources": { "db": {
            "kind": "postgres", "host": "localhost", "database": "app", "user": "sync",
            "password": "hunter2"
        }},
        "targets": { "local": { "kind": "duckdb", "path": "pg.duckdb", "inputs": ["db"] } }
    });
    let refused = desktop::render_pipeline(&draft).expect_err("refused");
    assert_eq!(refused.code, FailureCode::Config);
    assert!(
        refused.message.contains("sources.db.password"),
        "{}",
        refused.message
    );
    assert!(!refused.message.contains("hunter2"), "{}", refused.message);

    let mut referenced = draft.clone();
    referenced["sources"]["db"]["password"] = serde_json::json!("${keyring:syncline/pg}");
    let r = desktop::render_pipeline(&referenced).expect("a reference is fine");
    assert!(
        r.text.contains("password = \"${keyring:syncline/pg}\""),
        "{}",
        r.text
    );
    assert!(!r.text.contains("hunter2"));
}

#[tokio::test]
async fn opened_files_save_back_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("odd.toml");
    let text = "# odd but valid\nname='odd'   # trailing\n\n[ sources . s ]\nkind = \"files\"\npath = \"in\"\n[[sources.s.tables]]\nname = \"t\"\npattern = \"*.csv\"\nkey = [ \"id\" ]\n[targets.d]\nkind=\"duckdb\"\npath=\"o.duckdb\"\ninputs=[\"s\"]";
    std::fs::write(&path, text).expect("written");
    let opened = desktop::open_pipeline(path.clone()).await.expect("opens");
    assert_eq!(opened.text, text);
    assert_eq!(opened.draft["sources"]["s"]["tables"][0]["key"][0], "id");
    let copy = dir.path().join("copy/odd.toml");
    desktop::save_pipeline(copy.clone(), opened.text)
        .await
        .expect("saves");
    assert_eq!(std::fs::read(&copy).expect("read"), text.as_bytes());
    let missing = desktop::open_pipeline(dir.path().join("nope.toml"))
        .await
        .expect_err("missing");
    assert_eq!(missing.code, FailureCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_pipeline_checks_discovers_and_previews() {
    let dir = tempfile::tempdir().expect("tempdir");
    syncline_sample::write_data(dir.path(), SMALL).expect("sample data");
    let path = dir.path().join("wip.toml");
    // No targets yet: the wizard is still at the source.
    let text = syncline_sample::PIPELINE
        .split("[targets.warehouse]")
        .next()
        .expect("head")
        .to_owned();

    let checks = desktop::test_connection(&path, &text, "shop")
        .await
        .expect("checks");
    assert!(!checks.is_empty());
    assert!(checks.iter().all(|c| c.outcome != "fail"), "{checks:?}");

    let tables = desktop::discover(&path, &text, "shop")
        .await
        .expect("discovers");
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["customers", "products", "orders"]);
    let orders = &tables[2];
    assert!(orders.columns.iter().any(|c| c.name == "order_id" && c.key));
    assert!(orders.modes.contains(&"cdc".to_owned()));

    // A section with a mistake is reported at its line.
    let wrong = text.replace("pattern = \"customers.csv\"", "patern = \"customers.csv\"");
    let e = desktop::discover(&path, &wrong, "shop")
        .await
        .expect_err("unknown field");
    assert_eq!(e.code, FailureCode::Config);
    assert!(e.message.contains("line 13"), "{}", e.message);
    let e = desktop::test_connection(&path, &text, "nothing")
        .await
        .expect_err("no such section");
    assert_eq!(e.code, FailureCode::Config);

    let text = format!(
        "{text}\n[transforms.open_orders]\ninput = \"shop.orders\"\nsql = \"SELECT order_id, amount FROM source WHERE status <> 'returned'\"\n"
    );
    let previews = Previews::new();
    let sql = "SELECT order_id, amount FROM source WHERE status <> 'returned'".to_owned();
    let out = previews
        .run(&path, text.clone(), "open_orders", sql, 500, 0)
        .await
        .expect("previews");
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.input_rows, 500);
    assert!(out.output_rows > 0 && out.output_rows < 500);
    assert_eq!(out.rows.len() as u64, out.output_rows);
    assert_eq!(out.key, ["order_id"]);
    assert!(
        out.rows[0][1].is_string(),
        "decimal as text: {:?}",
        out.rows[0]
    );

    // Edited SQL runs on the loaded sample; a mistake comes back inline.
    let broken = previews
        .run(
            &path,
            text,
            "open_orders",
            "SELECT order_id,\n  amout FROM source".into(),
            500,
            0,
        )
        .await
        .expect("answers");
    let problem = broken.error.expect("an error");
    assert_eq!(problem.line, Some(2), "{problem:?}");
    assert!(broken.rows.is_empty());
}

#[test]
fn connector_kinds_carry_their_form_schemas() {
    let kinds = desktop::kinds();
    let files = kinds
        .iter()
        .find(|k| k.kind == "files" && k.role == "source")
        .expect("files");
    assert_eq!(files.title, "Files");
    assert_eq!(files.schema["properties"]["kind"]["const"], "files");
    assert!(
        kinds
            .iter()
            .any(|k| k.kind == "duckdb" && k.role == "target")
    );
    assert!(
        kinds
            .iter()
            .any(|k| k.kind == "postgres" && k.role == "source")
    );
    let mysql = kinds
        .iter()
        .find(|k| k.kind == "mysql" && k.role == "source")
        .expect("mysql");
    assert_eq!(mysql.title, "MySQL / MariaDB");
    assert_eq!(mysql.schema["properties"]["kind"]["const"], "mysql");
    let redis = kinds
        .iter()
        .find(|k| k.kind == "redis" && k.role == "target")
        .expect("redis");
    assert_eq!(redis.title, "Redis");
    assert!(
        redis.schema["properties"]["tables"].is_object(),
        "{}",
        redis.schema
    );
    assert!(kinds.iter().all(|k| !k.description.is_empty()), "{kinds:?}");
}

#[tokio::test]
async fn storing_a_secret_gives_a_reference_or_an_io_failure() {
    let name = format!("syncline/test-desktop-{}", std::process::id());
    match desktop::store_secret(name.clone(), "s3cret".into()).await {
        Ok(reference) => assert_eq!(reference, format!("${{keyring:{name}}}")),
        // No Secret Service on this machine: `io`, with what to do instead.
        Err(e) => {
            assert_eq!(e.code, FailureCode::Io);
            assert!(e.message.contains("${env:NAME}"), "{}", e.message);
        }
    }
}
