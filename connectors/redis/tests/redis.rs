//! What the Redis target does beyond the kit, on the local server: lost
//! data found and refused, key templates kept apart, TTLs, hashes without
//! NULL fields, streams, and the pre-flight check.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use support::Namespace;
use syncline_acceptance::{batch, items};
use syncline_engine::ErrorKind;
use syncline_engine::config::{Secret, WriteMode};
use syncline_engine::connector::{CheckOutcome, Sink};
use syncline_engine::model::{Change, Op, Value};
use syncline_redis::{RedisSink, RedisTableConfig, ValueFormat};

fn row(id: i64, name: &str) -> Vec<Value> {
    vec![
        Value::Int(id),
        Value::Text(name.into()),
        Value::Text(format!("body {id}")),
    ]
}

fn insert(id: i64, name: &str) -> Change {
    Change::insert(items(1), row(id, name))
}

async fn get(space: &Namespace, key: &str) -> Option<String> {
    let mut conn = space.conn().await;
    redis::cmd("GET")
        .arg(space.key(key))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn lost_data_is_found_and_never_resumed_silently() {
    let space = Namespace::new("lost");
    let mut sink = RedisSink::new(space.config(WriteMode::Upsert), "p");
    sink.open(&[items(1)]).await.unwrap();
    sink.write("src", batch(1, vec![insert(1, "a")]))
        .await
        .unwrap();
    // Redis restarted without persistence: data and checkpoint gone.
    let mut conn = space.conn().await;
    for key in space.keys() {
        let _: u64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let err = sink
        .write("src", batch(2, vec![insert(2, "b")]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    assert!(err.to_string().contains("was lost"), "{err}");
    assert_eq!(
        get(&space, "items:2").await,
        None,
        "nothing written after the loss"
    );
    // A new run finds no position (so the runtime restates every table).
    let mut sink = RedisSink::new(space.config(WriteMode::Upsert), "p");
    assert!(sink.open(&[items(1)]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_redis_that_comes_back_with_less_is_cleared_and_restated() {
    let space = Namespace::new("ledger");
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("redis-cache.json");
    let sink = || RedisSink::new(space.config(WriteMode::Upsert), "p").remembering(ledger.clone());
    let mut first = sink();
    first.open(&[items(1)]).await.unwrap();
    first
        .write("src", batch(1, vec![insert(1, "a")]))
        .await
        .unwrap();
    first
        .write("src", batch(2, vec![insert(2, "b")]))
        .await
        .unwrap();
    // An older snapshot comes back: the checkpoint says 1.
    let mut conn = space.conn().await;
    let _: () = redis::cmd("HSET")
        .arg(space.key("syncline:p:checkpoint"))
        .arg("src")
        .arg(r#"1 {"at":1}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut again = sink();
    let held = again.open(&[items(1)]).await.unwrap();
    assert!(held.is_empty(), "resumed on an older checkpoint: {held:?}");
    assert_eq!(get(&space, "items:1").await, None, "old rows cleared");
    assert_eq!(get(&space, "items:2").await, None, "old rows cleared");
    // Written again from scratch, it is trusted again.
    again
        .write("src", batch(3, vec![insert(1, "a")]))
        .await
        .unwrap();
    let held = sink().open(&[items(1)]).await.unwrap();
    assert_eq!(held.get("src").map(|p| p.seq), Some(3));
}

#[tokio::test]
async fn two_pipelines_never_share_keys() {
    let space = Namespace::new("claims");
    let mut one = RedisSink::new(space.config(WriteMode::Upsert), "one");
    one.open(&[items(1)]).await.unwrap();
    let mut two = RedisSink::new(space.config(WriteMode::Upsert), "two");
    let err = two.open(&[items(1)]).await.unwrap_err();
    assert!(
        err.to_string().contains("one/items") && err.to_string().contains("items:{}"),
        "{err}"
    );
    // Another template for the same table: fine.
    let mut config = space.config(WriteMode::Upsert);
    config.tables.insert(
        "items".into(),
        RedisTableConfig {
            key: Some("item2:{id}".into()),
            ..RedisTableConfig::default()
        },
    );
    RedisSink::new(config, "two")
        .open(&[items(1)])
        .await
        .unwrap();
    // Templates whose keys could meet are refused too.
    let mut a = space.config(WriteMode::Upsert);
    a.tables.insert(
        "items".into(),
        RedisTableConfig {
            key: Some("shop:x:{id}".into()),
            ..RedisTableConfig::default()
        },
    );
    RedisSink::new(a, "three").open(&[items(1)]).await.unwrap();
    let mut b = space.config(WriteMode::Upsert);
    b.tables.insert(
        "items".into(),
        RedisTableConfig {
            key: Some("shop:{id}:x".into()),
            ..RedisTableConfig::default()
        },
    );
    let err = RedisSink::new(b, "four")
        .open(&[items(1)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("three/items"), "{err}");
    // Once `one` is dropped, its keys are free.
    one.forget().await.unwrap();
    RedisSink::new(space.config(WriteMode::Upsert), "two")
        .open(&[items(1)])
        .await
        .unwrap();
}

#[tokio::test]
async fn settings_shape_keys_values_and_lifetimes() {
    let space = Namespace::new("settings");
    let mut config = space.config(WriteMode::Upsert);
    config.tables.insert(
        "items".into(),
        RedisTableConfig {
            key: Some("product:{id}".into()),
            format: Some(ValueFormat::Hash),
            columns: Some(vec!["name".into()]),
            ttl_secs: Some(300),
            ..RedisTableConfig::default()
        },
    );
    let mut sink = RedisSink::new(config, "p");
    sink.open(&[items(1)]).await.unwrap();
    let mut nameless = insert(2, "x");
    if let Some(after) = nameless.after.as_mut() {
        after[1] = Value::Null;
    }
    sink.write("src", batch(1, vec![insert(1, "a"), nameless]))
        .await
        .unwrap();
    let mut conn = space.conn().await;
    let one: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(space.key("product:1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // The key column always, the listed columns, nothing else.
    assert_eq!(
        one,
        HashMap::from([("id".into(), "1".into()), ("name".into(), "a".into())])
    );
    let two: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(space.key("product:2"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        two,
        HashMap::from([("id".into(), "2".into())]),
        "NULL: no field"
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(space.key("product:1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=300).contains(&ttl), "TTL {ttl}");

    // A table setting the target does not receive is refused by name.
    let mut config = space.config(WriteMode::Upsert);
    config
        .tables
        .insert("itemz".into(), RedisTableConfig::default());
    let err = RedisSink::new(config, "p")
        .open(&[items(1)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("itemz"), "{err}");
    // A template holding a column that is not the key is refused.
    let mut config = space.config(WriteMode::Upsert);
    config.tables.insert(
        "items".into(),
        RedisTableConfig {
            key: Some("by-name:{name}".into()),
            ..RedisTableConfig::default()
        },
    );
    let err = RedisSink::new(config, "q")
        .open(&[items(1)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a key column"), "{err}");
}

#[tokio::test]
async fn one_key_has_one_spelling_and_a_null_key_is_set_aside() {
    let space = Namespace::new("spelling");
    let prices = syncline_acceptance::fixtures::table(
        "prices",
        &[
            (
                "amount",
                syncline_engine::model::DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("note", syncline_engine::model::DataType::Text),
        ],
        &[0],
        1,
    );
    let mut sink = RedisSink::new(space.config(WriteMode::Upsert), "p");
    sink.open(std::slice::from_ref(&prices)).await.unwrap();
    let row = |amount: Value, note: &str| vec![amount, Value::Text(note.into())];
    let key_only = |amount: Value| Some(vec![amount, Value::Null]);
    sink.write(
        "src",
        batch(
            1,
            vec![
                Change::insert(prices.clone(), row(Value::Decimal("1.50".into()), "a")),
                Change::insert(prices.clone(), row(Value::Int(7), "b")),
            ],
        ),
    )
    .await
    .unwrap();
    assert!(get(&space, "prices:1.50").await.is_some());
    assert!(get(&space, "prices:7.00").await.is_some());
    // The same keys, spelled otherwise, and a delete without its key.
    let delete = |before| Change {
        op: Op::Delete,
        table: prices.clone(),
        before,
        after: None,
    };
    sink.write(
        "src",
        batch(
            2,
            vec![
                delete(key_only(Value::Decimal("1.5".into()))),
                delete(key_only(Value::Decimal("7".into()))),
                delete(key_only(Value::Null)),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(get(&space, "prices:1.50").await, None);
    assert_eq!(get(&space, "prices:7.00").await, None);
    let kept = sink.dead_letters().await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].reason.contains("NULL"), "{}", kept[0].reason);
}

#[tokio::test]
async fn a_left_out_value_a_hash_lacks_is_set_aside_not_nulled() {
    let space = Namespace::new("hashfill");
    let mut config = space.config(WriteMode::Upsert);
    config.format = ValueFormat::Hash;
    let mut sink = RedisSink::new(config, "p");
    sink.open(&[items(1)]).await.unwrap();
    let mut bodiless = insert(1, "a");
    if let Some(after) = bodiless.after.as_mut() {
        after[2] = Value::Null;
    }
    sink.write("src", batch(1, vec![bodiless])).await.unwrap();
    // The source says the body did not change, but the hash has none.
    let untouched = Change {
        op: Op::Update,
        table: items(1),
        before: None,
        after: Some(vec![
            Value::Int(1),
            Value::Text("a2".into()),
            Value::Unchanged,
        ]),
    };
    sink.write("src", batch(2, vec![untouched])).await.unwrap();
    let kept = sink.dead_letters().await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].reason.contains("`body`"), "{}", kept[0].reason);
    let mut conn = space.conn().await;
    let row: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(space.key("items:1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get("name").map(String::as_str), Some("a"), "{row:?}");
}

#[tokio::test]
async fn history_streams_every_change_with_its_position() {
    let space = Namespace::new("stream");
    let mut sink = RedisSink::new(space.config(WriteMode::History), "p");
    sink.open(&[items(1)]).await.unwrap();
    let delete = Change {
        op: Op::Delete,
        table: items(1),
        before: Some(vec![Value::Int(1), Value::Null, Value::Null]),
        after: None,
    };
    sink.write("src", batch(7, vec![insert(1, "a"), delete]))
        .await
        .unwrap();
    let mut conn = space.conn().await;
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(space.key("items:changes"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let fields: Vec<(String, String, String)> = entries
        .into_iter()
        .map(|(_, f)| (f["op"].clone(), f["seq"].clone(), f["key"].clone()))
        .collect();
    assert_eq!(
        fields,
        [
            ("i".into(), "7".into(), r#"[{"t":"int","v":1}]"#.into()),
            ("d".into(), "7".into(), r#"[{"t":"int","v":1}]"#.into()),
        ]
    );
}

#[tokio::test]
async fn check_reports_the_server_and_refuses_a_password_in_the_url() {
    let space = Namespace::new("check");
    let mut sink = RedisSink::new(space.config(WriteMode::Upsert), "p");
    let checks = sink.check().await;
    let connection = checks.iter().find(|c| c.name == "connection").unwrap();
    assert_eq!(connection.outcome, CheckOutcome::Pass, "{checks:?}");
    assert!(connection.detail.contains("Redis"), "{connection:?}");
    assert!(checks.iter().any(|c| c.name == "persistence"), "{checks:?}");

    let mut config = space.config(WriteMode::Upsert);
    config.url = "redis://:hunter2@127.0.0.1:6379/0".into();
    let checks = RedisSink::new(config, "p").check().await;
    let failed = checks
        .iter()
        .find(|c| c.outcome == CheckOutcome::Fail)
        .unwrap();
    assert!(failed.detail.contains("password"), "{failed:?}");
    assert!(
        !failed.detail.contains("hunter2"),
        "the password echoed: {failed:?}"
    );

    let mut config = space.config(WriteMode::Upsert);
    config.password = Secret::parse("${env:SYNCLINE_TEST_UNSET_REDIS_PASSWORD}");
    let checks = RedisSink::new(config, "p").check().await;
    let failed = checks
        .iter()
        .find(|c| c.outcome == CheckOutcome::Fail)
        .unwrap();
    assert!(
        failed.detail.contains("SYNCLINE_TEST_UNSET_REDIS_PASSWORD"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn the_keys_a_pipeline_wrote_are_browsed_by_table() {
    let space = Namespace::new("browse");
    let mut config = space.config(WriteMode::Upsert);
    config.tables.insert(
        "items".into(),
        RedisTableConfig {
            key: Some("item:{id}".into()),
            format: Some(ValueFormat::Hash),
            ..RedisTableConfig::default()
        },
    );
    let mut sink = RedisSink::new(config.clone(), "p");
    sink.open(&[items(1)]).await.unwrap();
    sink.write("src", batch(1, (1..=5).map(|i| insert(i, "n")).collect()))
        .await
        .unwrap();
    let tables = syncline_redis::browse::tables(&config, "p").await.unwrap();
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert_eq!((tables[0].table.as_str(), tables[0].keys), ("items", 5));
    assert!(tables[0].template.contains("item:"), "{tables:?}");
    // Another pipeline's view holds none of them.
    assert!(
        syncline_redis::browse::tables(&config, "q")
            .await
            .unwrap()
            .is_empty()
    );
    let keys = syncline_redis::browse::keys(&config, "p", "items", 3)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0].key, space.key("item:1"));
    assert_eq!(keys[0].value["name"], "n");
    assert_eq!(keys[0].value["body"], "body 1");

    // History: the latest stream entries, newest first.
    let space = Namespace::new("browse_stream");
    let config = space.config(WriteMode::History);
    let mut sink = RedisSink::new(config.clone(), "p");
    sink.open(&[items(1)]).await.unwrap();
    sink.write("src", batch(1, vec![insert(1, "a"), insert(2, "b")]))
        .await
        .unwrap();
    let entries = syncline_redis::browse::keys(&config, "p", "items", 10)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].value["after"]["name"], "b");
    assert_eq!(entries[0].value["op"], "i");
}
