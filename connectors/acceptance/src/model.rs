//! The model-based scenario of the sink kit: random change histories, cut
//! into random batches written in random groups (`Sink::write_group`, as a
//! sink that is behind receives them), with a restart and a redelivery in
//! between, must leave the target holding exactly what a reference model of
//! upsert semantics holds, and no dead letter. Histories are those a real
//! source produces: inserts of absent keys, updates and deletes of present
//! ones, key changes to absent keys, values left out (unchanged TOAST)
//! only where the row had them, truncates. proptest generates them and,
//! on a failure, shrinks to a short history that still fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use syncline_engine::batch::{Batch, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::model::{Change, DataType, Op, Row, TableSchema, Value};

use crate::sink::{Harness, TextRow};

/// How many histories each sink is given.
const CASES: u32 = 24;
/// Keys are drawn from `0..KEYS`, so histories revisit them.
const KEYS: u8 = 6;
/// The most batches written together (`Sink::write_group`, as a sink that
/// is behind receives them).
const MAX_GROUP: usize = 3;

/// One step as generated: what to try, and on which keys.
#[derive(Debug, Clone)]
struct Step {
    op: u8,
    a: u8,
    b: u8,
    value: u16,
    /// Ends the batch after this step.
    cut: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u8..10,
        0..KEYS,
        0..KEYS,
        any::<u16>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(op, a, b, value, cut)| Step {
            op,
            a,
            b,
            value,
            cut,
        })
}

/// The reference: key → (name, body).
type Model = BTreeMap<i64, (String, String)>;

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// Turns generated steps into a valid history against the model, applying
/// each to it: the changes, cut into batches.
fn history(table: &Arc<TableSchema>, steps: &[Step], model: &mut Model) -> Vec<Vec<Change>> {
    let change = |op: Op, before: Option<Row>, after: Option<Row>| Change {
        op,
        table: table.clone(),
        before,
        after,
    };
    let key_only = |k: i64| Some(vec![Value::Int(k), Value::Null, Value::Null]);
    let mut batches = vec![Vec::new()];
    for s in steps {
        let (a, b) = (i64::from(s.a), i64::from(s.b));
        let name = format!("n{}", s.value);
        let body = format!("b{}", s.value % 7);
        let present = model.contains_key(&a);
        let c = match s.op {
            // Insert, or an update of a present key.
            0..=2 if !present => {
                model.insert(a, (name.clone(), body.clone()));
                change(
                    Op::Insert,
                    None,
                    Some(vec![Value::Int(a), text(&name), text(&body)]),
                )
            }
            0..=3 if present => {
                // An update; every other one leaves `body` out.
                let keep = s.value % 2 == 0;
                let old = model[&a].1.clone();
                let new_body = if keep { old } else { body.clone() };
                model.insert(a, (name.clone(), new_body));
                let body_value = if keep { Value::Unchanged } else { text(&body) };
                change(
                    Op::Update,
                    None,
                    Some(vec![Value::Int(a), text(&name), body_value]),
                )
            }
            // A key change to an absent key, leaving `body` out half the time.
            4..=5 if present && a != b && !model.contains_key(&b) => {
                let keep = s.value % 2 == 0;
                let (_, old) = model.remove(&a).unwrap_or_default();
                let new_body = if keep { old } else { body.clone() };
                model.insert(b, (name.clone(), new_body));
                let body_value = if keep { Value::Unchanged } else { text(&body) };
                change(
                    Op::Update,
                    key_only(a),
                    Some(vec![Value::Int(b), text(&name), body_value]),
                )
            }
            6..=8 if present => {
                model.remove(&a);
                change(Op::Delete, key_only(a), None)
            }
            9 if s.value % 5 == 0 => {
                model.clear();
                change(Op::Truncate, None, None)
            }
            _ => continue,
        };
        let last = batches.len() - 1;
        batches[last].push(c);
        if s.cut {
            batches.push(Vec::new());
        }
    }
    batches.retain(|b| !b.is_empty());
    batches
}

fn expected(model: &Model) -> Vec<TextRow> {
    model
        .iter()
        .map(|(k, (n, b))| vec![Some(k.to_string()), Some(n.clone()), Some(b.clone())])
        .collect()
}

/// Random histories through an upsert sink, in groups of batches, equal
/// the reference model and leave no dead letter; a restart in the middle
/// redelivers the last group, which changes nothing.
pub async fn random_changes_match_a_reference_model(h: &dyn Harness) {
    let target = h.target("model").await;
    let target = &*target;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let inputs = (
        prop::collection::vec(step(), 1..40),
        prop::collection::vec(1..=MAX_GROUP, 40),
    );
    let result = runner.run(&inputs, |(steps, group_sizes)| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let name = format!("model_{n}");
        let table = crate::fixtures::table(
            &name,
            &[
                ("id", DataType::Int64),
                ("name", DataType::Text),
                ("body", DataType::Text),
            ],
            &[0],
            1,
        );
        let mut model = Model::new();
        let batches: Vec<Arc<Batch>> = history(&table, &steps, &mut model)
            .into_iter()
            .enumerate()
            .map(|(i, changes)| {
                let seq = i as u64 + 1;
                let position = Position {
                    seq,
                    state: serde_json::json!({ "at": seq }),
                };
                Arc::new(Batch::stream(position, changes))
            })
            .collect();
        // Consecutive batches a sink that is behind receives together.
        let mut groups: Vec<&[Arc<Batch>]> = Vec::new();
        let mut rest = &batches[..];
        for &size in &group_sizes {
            if rest.is_empty() {
                break;
            }
            let (group, tail) = rest.split_at(size.min(rest.len()));
            groups.push(group);
            rest = tail;
        }
        if !rest.is_empty() {
            groups.push(rest);
        }
        let pipeline = format!("kit_{name}");
        let (rows, kept) = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let restart_at = groups.len() / 2;
                let mut sink = target.sink(&pipeline, WriteMode::Upsert);
                sink.open(std::slice::from_ref(&table))
                    .await
                    .map_err(|e| format!("opening: {e}"))?;
                for (i, group) in groups.iter().enumerate() {
                    let seqs = || group.iter().map(|b| b.position.seq).collect::<Vec<_>>();
                    sink.write_group("src", group.to_vec())
                        .await
                        .map_err(|e| format!("writing batches {:?}: {e}", seqs()))?;
                    if i + 1 == restart_at {
                        sink.close().await.map_err(|e| format!("closing: {e}"))?;
                        sink = target.sink(&pipeline, WriteMode::Upsert);
                        sink.open(std::slice::from_ref(&table))
                            .await
                            .map_err(|e| format!("reopening: {e}"))?;
                        // Redelivered after the restart: already held.
                        sink.write_group("src", group.to_vec())
                            .await
                            .map_err(|e| format!("redelivering batches {:?}: {e}", seqs()))?;
                    }
                }
                sink.close().await.map_err(|e| format!("closing: {e}"))?;
                let mut rows = target.rows(&name, &["id", "name", "body"]).await;
                rows.sort_by_key(|r| r[0].as_deref().and_then(|k| k.parse::<i64>().ok()));
                let kept = target
                    .sink(&pipeline, WriteMode::Upsert)
                    .dead_letters()
                    .await
                    .map_err(|e| format!("reading dead letters: {e}"))?;
                Ok::<_, String>((rows, kept))
            })
        })
        .map_err(TestCaseError::fail)?;
        let groups: Vec<Vec<&Vec<Change>>> = groups
            .iter()
            .map(|g| g.iter().map(|b| &b.changes).collect())
            .collect();
        let reasons: Vec<&str> = kept.iter().map(|k| k.reason.as_str()).collect();
        prop_assert!(
            reasons.is_empty(),
            "a valid history left dead letters {:?}; batches by group: {:#?}",
            reasons,
            groups
        );
        prop_assert_eq!(rows, expected(&model), "batches by group: {:#?}", groups);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
