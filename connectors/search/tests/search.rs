//! The search index beyond the shared kit: field settings, queries with
//! highlights, commits grouped and bounded, generations, and what is
//! refused.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use syncline_acceptance::batch;
use syncline_acceptance::fixtures::{change, table};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_engine::model::{DataType, Op, TableSchema, Value};
use syncline_search::{
    ColumnConfig, FieldKind, Language, SearchSink, SearchTableConfig, SearchTargetConfig, query,
};

fn config() -> SearchTargetConfig {
    SearchTargetConfig {
        path: "index".into(),
        inputs: vec!["src".into()],
        mode: WriteMode::Upsert,
        commit_rows: 50_000,
        commit_ms: 60_000,
        tables: BTreeMap::new(),
    }
}

fn products() -> Arc<TableSchema> {
    table(
        "products",
        &[
            ("id", DataType::Int64),
            ("title", DataType::Text),
            ("sku", DataType::Text),
            (
                "price",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("added", DataType::Date),
            ("secret", DataType::Text),
        ],
        &[0],
        1,
    )
}

fn product(id: i64, title: &str, sku: &str, price: &str, added: i32) -> Vec<Value> {
    vec![
        Value::Int(id),
        Value::Text(title.into()),
        Value::Text(sku.into()),
        Value::Decimal(price.into()),
        Value::Date(added),
        Value::Text(format!("hidden {id}")),
    ]
}

fn shop_config() -> SearchTargetConfig {
    let mut columns = BTreeMap::new();
    columns.insert(
        "title".into(),
        ColumnConfig {
            index: Some(FieldKind::Text),
            language: Some(Language::English),
            stored: None,
        },
    );
    columns.insert(
        "sku".into(),
        ColumnConfig {
            index: Some(FieldKind::Keyword),
            ..ColumnConfig::default()
        },
    );
    columns.insert(
        "secret".into(),
        ColumnConfig {
            stored: Some(false),
            ..ColumnConfig::default()
        },
    );
    let mut c = config();
    c.tables
        .insert("products".into(), SearchTableConfig { columns });
    c
}

async fn filled(dir: &Path) -> SearchTargetConfig {
    let c = shop_config();
    let mut sink = SearchSink::new(c.clone(), dir, "shop");
    sink.open(&[products()]).await.unwrap();
    let t = products();
    let rows = [
        product(1, "Running shoes for trails", "AB-12", "89.90", 19_700),
        product(2, "A garden hose", "AB-13", "19.50", 19_800),
        product(3, "Shoe polish, black", "CD-1", "4.25", 19_900),
    ];
    sink.write(
        "src",
        batch(
            1,
            rows.iter()
                .map(|r| change(Op::Insert, &t, r.clone()))
                .collect(),
        ),
    )
    .await
    .unwrap();
    sink.close().await.unwrap();
    c
}

fn ids(found: &query::Found) -> Vec<String> {
    let mut ids: Vec<String> = found.hits.iter().map(|h| h.key[0].to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_find_words_stems_terms_and_ranges_with_highlights() {
    let dir = tempfile::tempdir().unwrap();
    let c = filled(dir.path()).await;
    let search = |q: &str| query::search(&c, dir.path(), q, 10).unwrap();

    // Stemmed: "run" finds "Running", "shoe" finds "shoes" and "Shoe".
    assert_eq!(ids(&search("run")), ["1"]);
    let shoes = search("title:shoe");
    assert_eq!(ids(&shoes), ["1", "3"]);
    for hit in &shoes.hits {
        let h = &hit.highlights["title"];
        assert!(h.marked("[", "]").to_lowercase().contains("[shoe"), "{h:?}");
    }
    // A keyword is one term: the whole value, as written.
    assert_eq!(ids(&search("sku:AB-12")), ["1"]);
    assert_eq!(search("sku:AB").total, 0);
    // Numbers and dates as ranges.
    assert_eq!(ids(&search("price:[10 TO 50]")), ["2"]);
    assert_eq!(
        ids(&search("added:[2024-06-01T00:00:00Z TO *]")),
        ["3"],
        "day 19,900 is 2024-06-26, 19,800 2024-03-18"
    );
    // A column not shown is searchable but left out of results.
    let hidden = search("secret:hidden");
    assert_eq!(hidden.total, 3);
    assert!(hidden.hits.iter().all(|h| !h.row.contains_key("secret")));
    // Rows come back with their exact values.
    let one = search("sku:CD-1");
    assert_eq!(one.hits[0].row["price"], serde_json::json!("4.25"));
    assert_eq!(one.hits[0].table, "products");
    // A query that does not parse says so.
    let bad = query::search(&c, dir.path(), "title:(", 10).unwrap_err();
    assert!(bad.to_string().contains("search query"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_grouped_and_bounded_by_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.commit_rows = 3;
    let t = table(
        "t",
        &[("id", DataType::Int64), ("v", DataType::Text)],
        &[0],
        1,
    );
    let mut sink = SearchSink::new(c.clone(), dir.path(), "p");
    sink.open(std::slice::from_ref(&t)).await.unwrap();
    let row = |i: i64| {
        change(
            Op::Insert,
            &t,
            vec![Value::Int(i), Value::Text(format!("v{i}"))],
        )
    };
    sink.write_group("src", vec![batch(1, vec![row(1)]), batch(2, vec![row(2)])])
        .await
        .unwrap();
    assert!(sink.holds_uncommitted(), "two rows are under the bound");
    assert_eq!(
        query::count(&c, dir.path(), "t").unwrap(),
        0,
        "nothing committed yet"
    );
    sink.write_group("src", vec![batch(3, vec![row(3)])])
        .await
        .unwrap();
    assert!(!sink.holds_uncommitted(), "the third row reaches the bound");
    assert_eq!(query::count(&c, dir.path(), "t").unwrap(), 3);
    sink.write_group("src", vec![batch(4, vec![row(4)])])
        .await
        .unwrap();
    // Dropped without a commit (as a crash would): batch 4 is not held.
    drop(sink);
    let mut sink = SearchSink::new(c.clone(), dir.path(), "p");
    let held = sink.open(std::slice::from_ref(&t)).await.unwrap();
    assert_eq!(held["src"].seq, 3);
    assert_eq!(query::count(&c, dir.path(), "t").unwrap(), 3);
    sink.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_column_makes_a_new_generation_that_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let c = config();
    let v1 = table(
        "t",
        &[("id", DataType::Int64), ("v", DataType::Text)],
        &[0],
        1,
    );
    let v2 = table(
        "t",
        &[
            ("id", DataType::Int64),
            ("v", DataType::Text),
            ("tag", DataType::Text),
        ],
        &[0],
        2,
    );
    let mut sink = SearchSink::new(c.clone(), dir.path(), "p");
    sink.open(std::slice::from_ref(&v1)).await.unwrap();
    sink.write(
        "src",
        batch(
            1,
            vec![change(
                Op::Insert,
                &v1,
                vec![Value::Int(1), Value::Text("old row".into())],
            )],
        ),
    )
    .await
    .unwrap();
    sink.write(
        "src",
        batch(
            2,
            vec![change(
                Op::Insert,
                &v2,
                vec![
                    Value::Int(2),
                    Value::Text("new row".into()),
                    Value::Text("fresh".into()),
                ],
            )],
        ),
    )
    .await
    .unwrap();
    sink.close().await.unwrap();
    let root = dir.path().join("index");
    assert_eq!(std::fs::read_to_string(root.join("CURRENT")).unwrap(), "2");
    assert!(
        !root.join("index-1").exists(),
        "the old generation is removed"
    );
    assert_eq!(
        ids(&query::search(&c, dir.path(), "row", 10).unwrap()),
        ["1", "2"]
    );
    assert_eq!(
        ids(&query::search(&c, dir.path(), "tag:fresh", 10).unwrap()),
        ["2"]
    );
    // Reopened with the new schema: the position survived the rebuild.
    let mut sink = SearchSink::new(c, dir.path(), "p");
    assert_eq!(sink.open(&[v2]).await.unwrap()["src"].seq, 2);
    sink.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_work_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let t = products();
    let refused = |c: SearchTargetConfig, tables: Vec<Arc<TableSchema>>| {
        let dir = dir.path().to_path_buf();
        async move {
            let mut sink = SearchSink::new(c, &dir, "p");
            sink.open(&tables).await.unwrap_err().to_string()
        }
    };
    // A table without a key cannot be kept by key.
    let keyless = table("log", &[("line", DataType::Text)], &[], 1);
    let e = refused(config(), vec![keyless]).await;
    assert!(e.contains("no primary key") && e.contains("append"), "{e}");
    // Settings of a column the table does not have.
    let mut c = config();
    let mut columns = BTreeMap::new();
    columns.insert("nope".into(), ColumnConfig::default());
    c.tables
        .insert("products".into(), SearchTableConfig { columns });
    let e = refused(c, vec![t.clone()]).await;
    assert!(e.contains("`columns.nope`") && e.contains("title"), "{e}");
    // A number index on text.
    let mut c = config();
    let mut columns = BTreeMap::new();
    columns.insert(
        "title".into(),
        ColumnConfig {
            index: Some(FieldKind::Number),
            ..ColumnConfig::default()
        },
    );
    c.tables
        .insert("products".into(), SearchTableConfig { columns });
    let e = refused(c, vec![t.clone()]).await;
    assert!(e.contains("cannot be indexed as `number`"), "{e}");
    // Two tables whose columns of one name would be indexed differently.
    let other = table(
        "other",
        &[("id", DataType::Int64), ("title", DataType::Int64)],
        &[0],
        1,
    );
    let e = refused(config(), vec![t.clone(), other]).await;
    assert!(e.contains("one field per name"), "{e}");
    // A column named like one of the index's own fields.
    let clash = table(
        "clash",
        &[("id", DataType::Int64), ("_row", DataType::Text)],
        &[0],
        1,
    );
    let e = refused(config(), vec![clash]).await;
    assert!(e.contains("`_row`"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_belongs_to_one_pipeline_and_the_folder_holds_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let c = filled(dir.path()).await;
    // Another pipeline may not write the same table...
    let mut other = SearchSink::new(c.clone(), dir.path(), "someone_else");
    let e = other.open(&[products()]).await.unwrap_err().to_string();
    assert!(
        e.contains("table `products`")
            && e.contains("pipeline `shop`")
            && e.contains("another `path`"),
        "{e}"
    );
    // ...nor index a column of the same name otherwise...
    let clash = table(
        "notes",
        &[("id", DataType::Int64), ("title", DataType::Text)],
        &[0],
        1,
    );
    let mut other = SearchSink::new(config(), dir.path(), "someone_else");
    let e = other.open(&[clash]).await.unwrap_err().to_string();
    assert!(
        e.contains("one field per name") && e.contains("`products`"),
        "{e}"
    );
    // ...but it may write one of its own beside it.
    let t = table(
        "notes",
        &[("id", DataType::Int64), ("body", DataType::Text)],
        &[0],
        1,
    );
    let mut other = SearchSink::new(config(), dir.path(), "someone_else");
    other.open(std::slice::from_ref(&t)).await.unwrap();
    other
        .write(
            "src",
            batch(
                1,
                vec![change(
                    Op::Insert,
                    &t,
                    vec![Value::Int(1), Value::Text("a note".into())],
                )],
            ),
        )
        .await
        .unwrap();
    other.close().await.unwrap();
    let checks = SearchSink::new(config(), dir.path(), "x").check().await;
    assert!(
        checks
            .iter()
            .any(|c| c.detail.contains("4 documents") && c.detail.contains("shop, someone_else")),
        "{checks:?}"
    );
    // Dropping a pipeline releases its tables and keeps its documents.
    let mut owner = SearchSink::new(c.clone(), dir.path(), "shop");
    owner.forget().await.unwrap();
    let mut other = SearchSink::new(c.clone(), dir.path(), "someone_else");
    let held = other.open(&[products(), t]).await.unwrap();
    assert_eq!(held["src"].seq, 1, "its own position: {held:?}");
    other.close().await.unwrap();
    assert_eq!(query::count(&c, dir.path(), "products").unwrap(), 3);

    // A folder of other files is not taken over.
    let foreign = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(foreign.path().join("index")).unwrap();
    std::fs::write(foreign.path().join("index/notes.txt"), "mine").unwrap();
    let mut sink = SearchSink::new(config(), foreign.path(), "p");
    let e = sink.open(&[products()]).await.unwrap_err().to_string();
    assert!(e.contains("notes.txt"), "{e}");
    assert_eq!(
        std::fs::read_to_string(foreign.path().join("index/notes.txt")).unwrap(),
        "mine"
    );
}

/// Rows of a first copy (promised new, into an empty table) are added
/// without a lookup and not listed one by one while uncommitted; a later
/// change that needs one of them (a value the source left out), or a key
/// scan of the table, reads them after a commit: nothing doubled, nothing
/// filled from nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_an_uncommitted_first_copy_are_read_after_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.commit_rows = 1_000_000;
    let t = table(
        "t",
        &[
            ("id", DataType::Int64),
            ("v", DataType::Text),
            ("body", DataType::Text),
        ],
        &[0],
        1,
    );
    let mut sink = SearchSink::new(c.clone(), dir.path(), "p");
    sink.open(std::slice::from_ref(&t)).await.unwrap();
    let row = |i: i64, v: &str, body: Value| vec![Value::Int(i), Value::Text(v.into()), body];
    let mut copy = (*batch(
        1,
        (1..=3)
            .map(|i| {
                change(
                    Op::Insert,
                    &t,
                    row(i, "copied", Value::Text(format!("body {i}"))),
                )
            })
            .collect(),
    ))
    .clone();
    copy.kind = syncline_engine::batch::BatchKind::Snapshot;
    copy.inserts_are_new = true;
    sink.write_group("src", vec![Arc::new(copy)]).await.unwrap();
    assert!(sink.holds_uncommitted());
    // An update of row 2 leaving `body` out (unchanged TOAST).
    sink.write_group(
        "src",
        vec![batch(
            2,
            vec![change(Op::Update, &t, row(2, "updated", Value::Unchanged))],
        )],
    )
    .await
    .unwrap();
    // A key scan of keys after 2 that lists only 4: row 3 goes.
    sink.write_group(
        "src",
        vec![batch(
            3,
            vec![syncline_engine::model::Change::prune(
                t.clone(),
                Some(vec![Value::Int(2)]),
                vec![vec![Value::Int(4)]],
            )],
        )],
    )
    .await
    .unwrap();
    sink.close().await.unwrap();
    let mut docs: Vec<String> = query::documents(&c, dir.path(), "t")
        .unwrap()
        .into_iter()
        .map(|k| k.row)
        .collect();
    docs.sort();
    assert_eq!(
        docs,
        [
            r#"{"body":"body 1","id":1,"v":"copied"}"#,
            r#"{"body":"body 2","id":2,"v":"updated"}"#,
        ]
    );
    assert!(sink.dead_letters().await.unwrap().is_empty());
}
