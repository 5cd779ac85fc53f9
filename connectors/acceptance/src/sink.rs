//! What every sink must do, checked against its real service.
//!
//! A connector's test file implements [`Harness`] (a fresh, empty target
//! per scenario: its own database file, database or schema, so scenarios run
//! in parallel and leave nothing behind) and expands [`sink_acceptance!`],
//! which makes one test per scenario. A sink is done when every scenario
//! passes. The scenarios speak only through the [`Sink`] trait and read the
//! target back as text, so one scenario holds for every target:
//!
//! | scenario | what it proves |
//! |---|---|
//! | [`upsert_applies_changes_in_order`] | the last change of a key wins, within and across batches |
//! | [`history_and_append_keep_changes_in_order`] | every change recorded with its op and position; append keeps inserts and updates |
//! | [`redelivered_batches_change_nothing`] | after a restart, batches at or below the checkpoint are skipped, later ones applied |
//! | [`a_transaction_in_parts_commits_whole`] | the parts of one source transaction commit only with its last part; a restart between them finds none of it |
//! | [`a_failed_batch_leaves_data_and_checkpoint_as_they_were`] | the checkpoint and the data commit together, or neither |
//! | [`unchanged_values_follow_key_changes`] | values the source left out (unchanged TOAST) are kept through key changes, chains and swaps |
//! | [`unchanged_values_without_a_row_become_dead_letters`] | values left out that the target cannot find become a dead letter, never NULLs |
//! | [`truncate_inside_a_batch`] | rows before a truncate are gone, rows after it stay |
//! | [`a_fresh_copy_into_a_table_with_rows_doubles_nothing`] | inserts promised new (a first copy under one snapshot) into a table that already holds rows land once per key |
//! | [`prune_removes_keys_gone_at_the_source`] | a key scan removes exactly the missing keys of its range |
//! | [`an_added_column_is_added`] | a new schema version adds its column; older rows keep NULL |
//! | [`dead_letters_commit_with_their_batch`] | dead letters are kept once, with their reason, even when redelivered |
//! | [`values_the_target_cannot_store_become_dead_letters`] | a value of the column's type the target cannot store costs its row, as a dead letter; the batch applies |
//! | [`check_explains_a_failure`] | a target that cannot work fails its pre-flight check with a fix |
//! | [`random_changes_match_a_reference_model`] | random histories (inserts, updates, key changes, values left out, deletes, truncates) in random batches written in random groups, with a restart, equal a reference model and leave no dead letter |
//! | [`every_type_round_trips`] | a value at each edge of every type comes back as written, and NULL as NULL, by insert, update and block |

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use syncline_engine::batch::{Batch, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::{CheckOutcome, KeptRow, Sink};
use syncline_engine::model::{
    Change, DataType, DeadLetter, DeadLetterStage, Op, Row, TableSchema, Value,
};

/// One row read back: each column as text, NULL as `None`.
pub type TextRow = Vec<Option<String>>;

/// One empty target a scenario writes into.
#[async_trait]
pub trait Target: Send + Sync {
    /// A new sink of `pipeline` writing into this target in `mode`. A
    /// scenario may make several in turn (a restart), never two at once.
    fn sink(&self, pipeline: &str, mode: WriteMode) -> Box<dyn Sink>;

    /// Every row of the target table named `table` (as the sink names the
    /// source table), the `columns` given rendered as text in the target's
    /// own rendering of integers and text, in any order.
    async fn rows(&self, table: &str, columns: &[&str]) -> Vec<TextRow>;

    /// Puts something of another program's in the way of every write to
    /// `table`, so the sink must refuse the next batch that touches it: a
    /// constraint no new row meets, a row holding a value the kit writes
    /// under a unique index, a key of another type where the sink keeps its
    /// own bookkeeping, no room left for the files it writes. (A value the
    /// target cannot store is a dead letter, never a refused batch: it
    /// cannot stand for a failure.)
    async fn obstruct(&self, table: &str);

    /// Takes away what [`Target::obstruct`] put in the way, where it would
    /// stop the target from being read. The default does nothing.
    async fn clear(&self, table: &str) {
        let _ = table;
    }
}

/// How the kit reaches a sink's real service.
#[async_trait]
pub trait Harness: Sync {
    /// A fresh, empty target for one scenario, named after it.
    async fn target(&self, scenario: &str) -> Box<dyn Target>;

    /// A sink that cannot work (an unreachable server, a path it cannot
    /// write): its pre-flight check must fail and say how to fix it.
    fn broken_sink(&self) -> Box<dyn Sink>;

    /// A column type and two values of it: one the target stores, shown as
    /// the target renders it, and one that fits the type but that the target
    /// cannot store (text with a NUL character for Postgres, a NaN decimal
    /// for DuckDB). `None`: the target stores every value of every type
    /// (the kit then checks that no edge value becomes a dead letter).
    fn unstorable(&self) -> Option<(DataType, Value, &'static str, Value)>;

    /// Values of every kind of type the engine knows (at least one each;
    /// the values at the type's edges), each with the text the target shows
    /// for it: see [`every_type_round_trips`].
    fn types(&self) -> Vec<crate::TypeCase>;
}

/// Makes one `#[tokio::test]` per scenario for the harness `$harness`
/// (an expression of a type implementing [`Harness`]).
#[macro_export]
macro_rules! sink_acceptance {
    ($harness:expr) => {
        $crate::sink_acceptance!(@tests $harness;
            upsert_applies_changes_in_order,
            history_and_append_keep_changes_in_order,
            redelivered_batches_change_nothing,
            a_transaction_in_parts_commits_whole,
            a_failed_batch_leaves_data_and_checkpoint_as_they_were,
            unchanged_values_follow_key_changes,
            unchanged_values_without_a_row_become_dead_letters,
            a_row_whose_last_change_is_a_dead_letter_is_not_filled_from_an_older_version,
            truncate_inside_a_batch,
            a_fresh_copy_into_a_table_with_rows_doubles_nothing,
            prune_removes_keys_gone_at_the_source,
            an_added_column_is_added,
            dead_letters_commit_with_their_batch,
            replayed_rows_land_once_each,
            values_the_target_cannot_store_become_dead_letters,
            text_that_is_not_a_uuid_or_json_is_a_dead_letter,
            check_explains_a_failure,
            random_changes_match_a_reference_model,
            every_type_round_trips,
        );
    };
    (@tests $harness:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                $crate::sink::$scenario(&$harness).await;
            }
        )*
    };
}

pub use crate::model::random_changes_match_a_reference_model;
pub use crate::types::every_type_round_trips;
pub use crate::unchanged::{
    a_row_whose_last_change_is_a_dead_letter_is_not_filled_from_an_older_version,
    unchanged_values_without_a_row_become_dead_letters,
};

const SOURCE: &str = "src";
const PIPELINE: &str = "kit";

/// `items(id bigint, name text, body text)`, keyed by `id`, at `version`
/// (version 2 adds `extra text`).
pub fn items(version: u32) -> Arc<TableSchema> {
    let mut columns = vec![
        ("id", DataType::Int64),
        ("name", DataType::Text),
        ("body", DataType::Text),
    ];
    if version >= 2 {
        columns.push(("extra", DataType::Text));
    }
    crate::fixtures::table("items", &columns, &[0], version)
}

pub(crate) fn row(id: i64, name: &str, body: &str) -> Row {
    vec![Value::Int(id), text(name), text(body)]
}

pub(crate) fn text(v: &str) -> Value {
    Value::Text(v.into())
}

pub(crate) fn insert(id: i64, name: &str, body: &str) -> Change {
    Change {
        op: Op::Insert,
        table: items(1),
        before: None,
        after: Some(row(id, name, body)),
    }
}

pub(crate) fn update(id: i64, name: &str, body: &str) -> Change {
    Change {
        op: Op::Update,
        table: items(1),
        before: None,
        after: Some(row(id, name, body)),
    }
}

/// An update of row `from` to key `to` that leaves `body` out, as Postgres
/// sends an update that does not touch a TOASTed value (the old key in
/// `before`).
pub(crate) fn moved(from: i64, to: i64, name: &str) -> Change {
    Change {
        op: Op::Update,
        table: items(1),
        before: Some(vec![Value::Int(from), Value::Null, Value::Null]),
        after: Some(vec![Value::Int(to), text(name), Value::Unchanged]),
    }
}

/// A delete carrying only the key.
pub(crate) fn delete(id: i64) -> Change {
    Change {
        op: Op::Delete,
        table: items(1),
        before: Some(vec![Value::Int(id), Value::Null, Value::Null]),
        after: None,
    }
}

pub(crate) fn truncate() -> Change {
    Change {
        op: Op::Truncate,
        table: items(1),
        before: None,
        after: None,
    }
}

/// A streamed batch at position `seq`.
pub fn batch(seq: u64, changes: Vec<Change>) -> Arc<Batch> {
    let position = Position {
        seq,
        state: serde_json::json!({ "at": seq }),
    };
    Arc::new(Batch::stream(position, changes))
}

pub(crate) fn t(cells: &[Option<&str>]) -> TextRow {
    cells.iter().map(|c| c.map(str::to_owned)).collect()
}

pub(crate) fn sorted(mut rows: Vec<TextRow>) -> Vec<TextRow> {
    rows.sort();
    rows
}

/// Opens a sink of the kit's pipeline for `items`, returning the positions
/// it holds.
pub(crate) async fn open(
    target: &dyn Target,
    mode: WriteMode,
    tables: &[Arc<TableSchema>],
) -> (Box<dyn Sink>, BTreeMap<String, Position>) {
    let mut sink = target.sink(PIPELINE, mode);
    let held = sink
        .open(tables)
        .await
        .unwrap_or_else(|e| panic!("opening the sink: {e}"));
    (sink, held)
}

pub(crate) async fn write(sink: &mut dyn Sink, batch: Arc<Batch>) {
    let seq = batch.position.seq;
    sink.write(SOURCE, batch)
        .await
        .unwrap_or_else(|e| panic!("writing batch {seq}: {e}"));
}

pub(crate) async fn close(mut sink: Box<dyn Sink>) {
    sink.close()
        .await
        .unwrap_or_else(|e| panic!("closing the sink: {e}"));
}

/// The dead letters of the kit's pipeline in `target`, read by a new sink.
pub(crate) async fn kept(target: &dyn Target, mode: WriteMode) -> Vec<KeptRow> {
    target
        .sink(PIPELINE, mode)
        .dead_letters()
        .await
        .unwrap_or_else(|e| panic!("reading dead letters: {e}"))
}

/// `(id, name, body)` of every row, sorted.
pub(crate) async fn contents(target: &dyn Target) -> Vec<TextRow> {
    sorted(target.rows("items", &["id", "name", "body"]).await)
}

pub(crate) fn mode_name(mode: WriteMode) -> &'static str {
    match mode {
        WriteMode::Upsert => "upsert",
        WriteMode::Append => "append",
        WriteMode::History => "history",
    }
}

/// Upsert: within a batch and across batches, the last change of each key
/// wins; deletes remove, re-inserts come back.
pub async fn upsert_applies_changes_in_order(h: &dyn Harness) {
    let target = h.target("order_upsert").await;
    let (mut sink, held) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    assert!(held.is_empty(), "a new target holds no position: {held:?}");
    write(
        &mut *sink,
        batch(
            1,
            vec![
                insert(1, "a", "x"),
                insert(2, "b", "x"),
                update(1, "a2", "y"),
                delete(2),
                insert(3, "c", "x"),
            ],
        ),
    )
    .await;
    write(
        &mut *sink,
        batch(
            2,
            vec![
                update(3, "c2", "z"),
                insert(2, "b2", "w"),
                update(3, "c3", "z"),
            ],
        ),
    )
    .await;
    close(sink).await;
    assert_eq!(
        contents(&*target).await,
        [
            t(&[Some("1"), Some("a2"), Some("y")]),
            t(&[Some("2"), Some("b2"), Some("w")]),
            t(&[Some("3"), Some("c3"), Some("z")]),
        ]
    );
}

/// History records every change with its op and batch position; append
/// keeps every insert and update and ignores deletes.
pub async fn history_and_append_keep_changes_in_order(h: &dyn Harness) {
    let batches = || {
        [
            batch(
                1,
                vec![
                    insert(1, "a", "x"),
                    insert(2, "b", "x"),
                    update(1, "a2", "x"),
                ],
            ),
            batch(2, vec![delete(2), update(1, "a3", "x")]),
        ]
    };
    let target = h.target("order_history").await;
    let (mut sink, _) = open(&*target, WriteMode::History, &[items(1)]).await;
    for b in batches() {
        write(&mut *sink, b).await;
    }
    close(sink).await;
    assert_eq!(
        sorted(target.rows("items", &["_seq", "_op", "id", "name"]).await),
        [
            t(&[Some("1"), Some("i"), Some("1"), Some("a")]),
            t(&[Some("1"), Some("i"), Some("2"), Some("b")]),
            t(&[Some("1"), Some("u"), Some("1"), Some("a2")]),
            t(&[Some("2"), Some("d"), Some("2"), None]),
            t(&[Some("2"), Some("u"), Some("1"), Some("a3")]),
        ]
    );

    let target = h.target("order_append").await;
    let (mut sink, _) = open(&*target, WriteMode::Append, &[items(1)]).await;
    for b in batches() {
        write(&mut *sink, b).await;
    }
    close(sink).await;
    assert_eq!(
        sorted(target.rows("items", &["id", "name"]).await),
        [
            t(&[Some("1"), Some("a")]),
            t(&[Some("1"), Some("a2")]),
            t(&[Some("1"), Some("a3")]),
            t(&[Some("2"), Some("b")]),
        ]
    );
}

/// After a restart the sink reports the position it holds; batches at or
/// below it are skipped (even with other contents), later ones applied.
pub async fn redelivered_batches_change_nothing(h: &dyn Harness) {
    for mode in [WriteMode::Upsert, WriteMode::History, WriteMode::Append] {
        let target = h.target(&format!("redelivery_{}", mode_name(mode))).await;
        let (mut sink, _) = open(&*target, mode, &[items(1)]).await;
        write(&mut *sink, batch(1, vec![insert(1, "a", "x")])).await;
        write(&mut *sink, batch(2, vec![insert(2, "b", "x")])).await;
        close(sink).await;
        let before = contents(&*target).await;

        let (mut sink, held) = open(&*target, mode, &[items(1)]).await;
        assert_eq!(
            held.get(SOURCE).map(|p| (p.seq, p.state.clone())),
            Some((2, serde_json::json!({ "at": 2 }))),
            "{mode:?}: the position held after a restart"
        );
        // Redelivered (the source resumed from an older position), then new.
        write(&mut *sink, batch(1, vec![insert(1, "a", "x")])).await;
        write(&mut *sink, batch(2, vec![insert(9, "never", "x")])).await;
        assert_eq!(contents(&*target).await, before, "{mode:?}: redelivery");
        write(&mut *sink, batch(3, vec![insert(3, "c", "x")])).await;
        close(sink).await;
        let mut expected = before.clone();
        expected.push(t(&[Some("3"), Some("c"), Some("x")]));
        assert_eq!(contents(&*target).await, sorted(expected), "{mode:?}");
        let (sink, held) = open(&*target, mode, &[items(1)]).await;
        assert_eq!(held.get(SOURCE).map(|p| p.seq), Some(3), "{mode:?}");
        close(sink).await;
    }
}

/// A source transaction too large to hold whole comes in parts
/// ([`Batch::continues`]) that share a seq, then its last part. The target
/// holds none of it before the last part (a restart in between finds the
/// rows and the position as they were, and the parts are applied from the
/// start again), then all of it, with the last part's position. A value
/// left out in a later part is found in an earlier one, through a key
/// moved in one part and again in the next.
pub async fn a_transaction_in_parts_commits_whole(h: &dyn Harness) {
    let target = h.target("parts").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    write(
        &mut *sink,
        batch(1, vec![insert(1, "a", "x"), insert(2, "b", "y")]),
    )
    .await;
    let before = contents(&*target).await;
    let part = |changes: Vec<Change>| {
        let mut b = (*batch(5, changes)).clone();
        b.continues = true;
        Arc::new(b)
    };
    let parts = [
        part(vec![insert(3, "c", "z"), moved(1, 10, "a moved")]),
        part(vec![moved(10, 11, "a twice"), delete(2)]),
    ];
    for p in &parts {
        write(&mut *sink, p.clone()).await;
    }
    assert!(
        sink.holds_uncommitted(),
        "a sink amid a source transaction holds it uncommitted"
    );
    // Stopped before the last part: it goes, with what the parts did.
    close(sink).await;
    assert_eq!(
        contents(&*target).await,
        before,
        "the parts of a transaction whose last part never came"
    );
    let (mut sink, held) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    assert_eq!(held.get(SOURCE).map(|p| p.seq), Some(1));
    for p in &parts {
        write(&mut *sink, p.clone()).await;
    }
    assert_eq!(
        contents(&*target).await,
        before,
        "a transaction is visible before its last part"
    );
    write(&mut *sink, batch(9, vec![insert(4, "d", "w")])).await;
    sink.flush()
        .await
        .unwrap_or_else(|e| panic!("flushing: {e}"));
    assert!(!sink.holds_uncommitted());
    close(sink).await;
    assert_eq!(
        contents(&*target).await,
        [
            t(&[Some("11"), Some("a twice"), Some("x")]),
            t(&[Some("3"), Some("c"), Some("z")]),
            t(&[Some("4"), Some("d"), Some("w")]),
        ]
    );
    let (sink, held) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    assert_eq!(held.get(SOURCE).map(|p| p.seq), Some(9));
    close(sink).await;
    assert!(
        kept(&*target, WriteMode::Upsert).await.is_empty(),
        "no dead letter: every value left out was found"
    );
}

/// A batch the target refuses partway (a write something else stands in
/// the way of, after rows it could store and another table's changes)
/// changes nothing: neither data nor checkpoint; the sink stays usable and
/// a restart resumes after the last good batch.
pub async fn a_failed_batch_leaves_data_and_checkpoint_as_they_were(h: &dyn Harness) {
    let target = h.target("atomic").await;
    let ids = crate::fixtures::table(
        "ids",
        &[("id", DataType::Int64), ("u", DataType::Uuid)],
        &[0],
        1,
    );
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1), ids.clone()]).await;
    write(&mut *sink, batch(1, vec![insert(1, "a", "x")])).await;
    target.obstruct("ids").await;
    let before = sorted(target.rows("ids", &["id", "u"]).await);
    let bad = Change {
        op: Op::Insert,
        table: ids.clone(),
        before: None,
        after: Some(vec![Value::Int(3), Value::Uuid(crate::types::UUID)]),
    };
    let refused = sink
        .write(
            SOURCE,
            batch(2, vec![insert(2, "b", "x"), update(1, "a2", "y"), bad]),
        )
        .await;
    target.clear("ids").await;
    assert!(
        refused.is_err(),
        "the target must refuse the batch: something stands in the way"
    );
    assert_eq!(
        contents(&*target).await,
        [t(&[Some("1"), Some("a"), Some("x")])],
        "the refused batch left rows behind"
    );
    assert_eq!(
        sorted(target.rows("ids", &["id", "u"]).await),
        before,
        "the refused batch left rows behind"
    );
    write(&mut *sink, batch(3, vec![insert(4, "d", "x")])).await;
    close(sink).await;
    let (sink, held) = open(&*target, WriteMode::Upsert, &[items(1), ids]).await;
    assert_eq!(held.get(SOURCE).map(|p| p.seq), Some(3));
    close(sink).await;
    assert_eq!(
        contents(&*target).await,
        [
            t(&[Some("1"), Some("a"), Some("x")]),
            t(&[Some("4"), Some("d"), Some("x")]),
        ]
    );
}

/// Values the source left out of an update ([`Value::Unchanged`]: a
/// Postgres TOAST value that did not change) keep what the row held, also
/// when the update moved the row to another key: from the target across
/// batches, from earlier changes within one, through chains (a moved row
/// updated again) and swaps through a temporary key.
pub async fn unchanged_values_follow_key_changes(h: &dyn Harness) {
    let batches = [
        batch(
            1,
            vec![
                insert(1, "one", "body 1"),
                insert(2, "two", "body 2"),
                insert(3, "three", "body 3"),
                insert(4, "four", "body 4"),
            ],
        ),
        // The old key's values are in the target.
        batch(2, vec![moved(1, 10, "one at 10")]),
        // A swap of 2 and 3 through 99, and an update of the moved row.
        batch(
            3,
            vec![
                moved(2, 99, "two at 99"),
                moved(3, 2, "three at 2"),
                moved(99, 3, "two at 3"),
                moved(10, 10, "one again"),
            ],
        ),
        // A move, then another move of the moved row, then an update of it.
        batch(
            4,
            vec![
                moved(4, 40, "four at 40"),
                moved(40, 41, "four at 41"),
                moved(41, 41, "four again"),
            ],
        ),
    ];
    let target = h.target("unchanged_upsert").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    for b in &batches {
        write(&mut *sink, b.clone()).await;
    }
    close(sink).await;
    assert_eq!(
        contents(&*target).await,
        [
            t(&[Some("10"), Some("one again"), Some("body 1")]),
            t(&[Some("2"), Some("three at 2"), Some("body 3")]),
            t(&[Some("3"), Some("two at 3"), Some("body 2")]),
            t(&[Some("41"), Some("four again"), Some("body 4")]),
        ]
    );
    // History and append record every update with the values it kept.
    let updates = sorted(vec![
        t(&[Some("10"), Some("one at 10"), Some("body 1")]),
        t(&[Some("99"), Some("two at 99"), Some("body 2")]),
        t(&[Some("2"), Some("three at 2"), Some("body 3")]),
        t(&[Some("3"), Some("two at 3"), Some("body 2")]),
        t(&[Some("10"), Some("one again"), Some("body 1")]),
        t(&[Some("40"), Some("four at 40"), Some("body 4")]),
        t(&[Some("41"), Some("four at 41"), Some("body 4")]),
        t(&[Some("41"), Some("four again"), Some("body 4")]),
    ]);
    for mode in [WriteMode::History, WriteMode::Append] {
        let target = h.target(&format!("unchanged_{}", mode_name(mode))).await;
        let (mut sink, _) = open(&*target, mode, &[items(1)]).await;
        for b in &batches {
            write(&mut *sink, b.clone()).await;
        }
        close(sink).await;
        // The inserts' names have no space; every update's has.
        let written: Vec<TextRow> = contents(&*target)
            .await
            .into_iter()
            .filter(|r| r[1].as_deref().is_some_and(|n| n.contains(' ')))
            .collect();
        assert_eq!(written, updates, "{mode:?}");
    }
}

/// A truncate inside a batch removes the rows before it; rows after it in
/// the same batch stay.
pub async fn truncate_inside_a_batch(h: &dyn Harness) {
    let target = h.target("truncate").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    write(
        &mut *sink,
        batch(1, vec![insert(1, "a", "x"), insert(2, "b", "x")]),
    )
    .await;
    write(
        &mut *sink,
        batch(
            2,
            vec![
                insert(3, "c", "x"),
                update(1, "a2", "x"),
                truncate(),
                insert(4, "d", "x"),
                update(4, "d2", "x"),
            ],
        ),
    )
    .await;
    close(sink).await;
    assert_eq!(
        contents(&*target).await,
        [t(&[Some("4"), Some("d2"), Some("x")])]
    );
}

/// A source copying a table afresh under one snapshot promises its inserts
/// are new ([`Batch::inserts_are_new`]): no two share a key. That says
/// nothing of what the target holds: a pipeline dropped (its checkpoint
/// forgotten, its data kept) and run again copies rows the target already
/// has. Each key must end up once, with the copy's values, whether the
/// table held rows when the sink opened or received others since.
pub async fn a_fresh_copy_into_a_table_with_rows_doubles_nothing(h: &dyn Harness) {
    let target = h.target("fresh_copy").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    write(
        &mut *sink,
        batch(1, vec![insert(1, "a", "x"), insert(2, "b", "x")]),
    )
    .await;
    close(sink).await;
    // Dropped: the checkpoint goes, the rows stay.
    target
        .sink(PIPELINE, WriteMode::Upsert)
        .forget()
        .await
        .unwrap_or_else(|e| panic!("forgetting the checkpoint: {e}"));
    let fresh = |seq: u64, changes: Vec<Change>| {
        let mut b = Batch::stream(
            Position {
                seq,
                state: serde_json::json!({ "at": seq }),
            },
            changes,
        );
        b.kind = syncline_engine::batch::BatchKind::Snapshot;
        b.inserts_are_new = true;
        Arc::new(b)
    };
    let (mut sink, held) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    assert!(held.is_empty(), "the checkpoint was forgotten: {held:?}");
    write(
        &mut *sink,
        fresh(1, vec![insert(1, "a2", "y"), insert(3, "c", "y")]),
    )
    .await;
    // A row streamed in between, then more of the copy: still once per key.
    write(&mut *sink, batch(2, vec![insert(4, "d", "z")])).await;
    write(
        &mut *sink,
        fresh(3, vec![insert(2, "b2", "y"), insert(5, "e", "y")]),
    )
    .await;
    close(sink).await;
    assert_eq!(
        contents(&*target).await,
        [
            t(&[Some("1"), Some("a2"), Some("y")]),
            t(&[Some("2"), Some("b2"), Some("y")]),
            t(&[Some("3"), Some("c"), Some("y")]),
            t(&[Some("4"), Some("d"), Some("z")]),
            t(&[Some("5"), Some("e"), Some("y")]),
        ]
    );
}

/// A key scan of a range removes the rows in it whose keys are not listed,
/// and only those; a range listing no key has no upper end (the scan went
/// past the source's last key); history records them as deletes; append
/// keeps them.
pub async fn prune_removes_keys_gone_at_the_source(h: &dyn Harness) {
    let prune = Change::prune(
        items(1),
        Some(vec![Value::Int(1)]),
        vec![vec![Value::Int(3)], vec![Value::Int(5)]],
    );
    let past_the_end = Change::prune(items(1), Some(vec![Value::Int(5)]), Vec::new());
    for mode in [WriteMode::Upsert, WriteMode::History, WriteMode::Append] {
        let target = h.target(&format!("prune_{}", mode_name(mode))).await;
        let (mut sink, _) = open(&*target, mode, &[items(1)]).await;
        write(
            &mut *sink,
            batch(1, (1..=6).map(|i| insert(i, "r", "x")).collect()),
        )
        .await;
        write(&mut *sink, batch(2, vec![prune.clone()])).await;
        write(&mut *sink, batch(3, vec![past_the_end.clone()])).await;
        close(sink).await;
        let ids = |rows: Vec<TextRow>| -> Vec<String> {
            let mut ids: Vec<String> = rows.into_iter().filter_map(|r| r[0].clone()).collect();
            ids.sort();
            ids
        };
        match mode {
            WriteMode::Upsert => assert_eq!(
                ids(target.rows("items", &["id"]).await),
                ["1", "3", "5"],
                "range (1, 5]: 2 and 4 are gone; past 5: 6 is gone"
            ),
            WriteMode::Append => assert_eq!(
                ids(target.rows("items", &["id"]).await),
                ["1", "2", "3", "4", "5", "6"]
            ),
            WriteMode::History => {
                let deleted: Vec<TextRow> = target
                    .rows("items", &["_op", "id"])
                    .await
                    .into_iter()
                    .filter(|r| r[0].as_deref() == Some("d"))
                    .collect();
                assert_eq!(
                    ids(deleted.into_iter().map(|r| vec![r[1].clone()]).collect()),
                    ["2", "4", "6"]
                );
            }
        }
    }
}

/// A new schema version mid-stream adds its column to the target; rows
/// written before keep NULL in it.
pub async fn an_added_column_is_added(h: &dyn Harness) {
    let target = h.target("added_column").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    write(&mut *sink, batch(1, vec![insert(1, "a", "x")])).await;
    let v2 = items(2);
    let mut later = insert(2, "b", "y");
    later.table = v2.clone();
    if let Some(after) = later.after.as_mut() {
        after.push(text("more"));
    }
    write(&mut *sink, batch(2, vec![later])).await;
    close(sink).await;
    assert_eq!(
        sorted(target.rows("items", &["id", "name", "extra"]).await),
        [
            t(&[Some("1"), Some("a"), None]),
            t(&[Some("2"), Some("b"), Some("more")]),
        ]
    );
    // A restart with the new schema keeps it.
    let (sink, _) = open(&*target, WriteMode::Upsert, &[v2]).await;
    close(sink).await;
}

/// Dead letters are kept with their reason in the same transaction as
/// their batch: once, even when the batch is redelivered.
pub async fn dead_letters_commit_with_their_batch(h: &dyn Harness) {
    let target = h.target("dead_letters").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, &[items(1)]).await;
    let with_dead_letter = || {
        let mut b = Arc::unwrap_or_clone(batch(1, vec![insert(1, "a", "x")]));
        b.dead_letters.push(DeadLetter {
            table: items(1).id.clone(),
            origin: "items.csv".into(),
            line: Some(7),
            raw: "1,a,\"x".into(),
            reason: "unterminated quote".into(),
            stage: DeadLetterStage::Read,
            kept: None,
        });
        Arc::new(b)
    };
    write(&mut *sink, with_dead_letter()).await;
    write(&mut *sink, with_dead_letter()).await;
    close(sink).await;
    let kept = kept(&*target, WriteMode::Upsert).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let one = &kept[0];
    assert_eq!(
        (
            one.table.as_str(),
            one.origin.as_str(),
            one.line,
            one.raw.as_str(),
            one.reason.as_str(),
            one.seq
        ),
        (
            "items",
            "items.csv",
            Some(7),
            "1,a,\"x",
            "unterminated quote",
            1
        )
    );
    assert_eq!(
        contents(&*target).await,
        [t(&[Some("1"), Some("a"), Some("x")])]
    );
}

/// A value the target cannot store costs its row: the row becomes a dead
/// letter saying why (kept once, even when the batch is redelivered), the
/// other rows of the batch are applied, and no NULL is written in its place.
pub async fn values_the_target_cannot_store_become_dead_letters(h: &dyn Harness) {
    let Some((data_type, good, shown, bad)) = h.unstorable() else {
        return every_value_is_stored(h).await;
    };
    let odd = crate::fixtures::table("odd", &[("id", DataType::Int64), ("v", data_type)], &[0], 1);
    let insert = |id: i64, v: &Value| Change {
        op: Op::Insert,
        table: odd.clone(),
        before: None,
        after: Some(vec![Value::Int(id), v.clone()]),
    };
    let target = h.target("unstorable").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, std::slice::from_ref(&odd)).await;
    let changes = vec![insert(1, &good), insert(2, &bad), insert(3, &good)];
    write(&mut *sink, batch(1, changes.clone())).await;
    close(sink).await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, std::slice::from_ref(&odd)).await;
    write(&mut *sink, batch(1, changes)).await;
    write(&mut *sink, batch(2, vec![insert(4, &good)])).await;
    close(sink).await;
    assert_eq!(
        sorted(target.rows("odd", &["id", "v"]).await),
        [1, 3, 4].map(|id| t(&[Some(&id.to_string()), Some(shown)])),
        "the rows with storable values, and no NULL in place of the other"
    );
    let kept = kept(&*target, WriteMode::Upsert).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let one = &kept[0];
    assert_eq!(
        (one.table.as_str(), one.seq, one.stage),
        ("odd", 1, DeadLetterStage::Target)
    );
    assert!(
        one.reason.contains("`v`"),
        "the reason names the column: {}",
        one.reason
    );
    assert!(one.raw.contains('2'), "{}", one.raw);
    assert!(one.kept.is_some(), "the change is kept for replay");
}

/// Dead letters replayed together (a batch each, at the position each was
/// kept at, as `dlq replay` sends them) land once each and in order, in
/// upsert and in history mode, and move no checkpoint.
pub async fn replayed_rows_land_once_each(h: &dyn Harness) {
    let replayed = || {
        [
            batch(5, vec![insert(1, "a", "x")]),
            batch(7, vec![update(1, "b", "x")]),
            batch(9, vec![insert(2, "c", "x")]),
        ]
        .map(Arc::unwrap_or_clone)
        .to_vec()
    };
    for mode in [WriteMode::Upsert, WriteMode::History] {
        let target = h.target(&format!("replay_{}", mode_name(mode))).await;
        let (mut sink, _) = open(&*target, mode, &[items(1)]).await;
        sink.replay(replayed(), Vec::new())
            .await
            .unwrap_or_else(|e| panic!("replaying: {e}"));
        close(sink).await;
        if mode == WriteMode::Upsert {
            assert_eq!(
                contents(&*target).await,
                [
                    t(&[Some("1"), Some("b"), Some("x")]),
                    t(&[Some("2"), Some("c"), Some("x")]),
                ]
            );
        } else {
            assert_eq!(
                sorted(target.rows("items", &["_seq", "_op", "id", "name"]).await),
                [
                    t(&[Some("5"), Some("i"), Some("1"), Some("a")]),
                    t(&[Some("7"), Some("u"), Some("1"), Some("b")]),
                    t(&[Some("9"), Some("i"), Some("2"), Some("c")]),
                ],
                "each replayed row once, with the position it was kept at"
            );
        }
        let (sink, held) = open(&*target, mode, &[items(1)]).await;
        close(sink).await;
        assert!(
            held.is_empty(),
            "a replay in {mode:?} moved a checkpoint: {held:?}"
        );
    }
}

/// Text for a UUID or JSON column (from a file or a transform) that does
/// not read as one becomes a dead letter of its row, whatever the target:
/// never a batch refused on every retry, never a NULL. The rows around it,
/// and text that does read as one, arrive.
pub async fn text_that_is_not_a_uuid_or_json_is_a_dead_letter(h: &dyn Harness) {
    let odd = crate::fixtures::table(
        "texts",
        &[
            ("id", DataType::Int64),
            ("u", DataType::Uuid),
            ("j", DataType::Json),
        ],
        &[0],
        1,
    );
    let insert = |id: i64, u: &str, j: &str| Change {
        op: Op::Insert,
        table: odd.clone(),
        before: None,
        after: Some(vec![Value::Int(id), text(u), text(j)]),
    };
    let uuid = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
    let target = h.target("texts").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, std::slice::from_ref(&odd)).await;
    write(
        &mut *sink,
        batch(
            1,
            vec![
                insert(1, uuid, "[1]"),
                insert(2, "not-a-uuid", "[2]"),
                insert(3, uuid, "{not json"),
                insert(4, &uuid.to_uppercase(), "{\"a\": 4}"),
            ],
        ),
    )
    .await;
    close(sink).await;
    let ids: Vec<TextRow> = sorted(target.rows("texts", &["id"]).await);
    assert_eq!(
        ids,
        [t(&[Some("1")]), t(&[Some("4")])],
        "the rows whose text reads as a UUID and JSON, and no NULL in place of the others"
    );
    let kept = kept(&*target, WriteMode::Upsert).await;
    let mut reasons: Vec<(&str, &str)> = kept
        .iter()
        .map(|k| (k.raw.as_str(), k.reason.as_str()))
        .collect();
    reasons.sort_unstable();
    assert_eq!(kept.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|(raw, why)| raw.contains("not-a-uuid") && why.contains("`u`")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(raw, why)| raw.contains("not json") && why.contains("`j`")),
        "{reasons:?}"
    );
}

/// For a target that stores every value: a row holding every edge value
/// of every type is applied, and nothing becomes a dead letter.
async fn every_value_is_stored(h: &dyn Harness) {
    let values = crate::types::edge_values();
    let mut columns: Vec<(String, DataType)> = vec![("id".into(), DataType::Int64)];
    columns.extend(
        values
            .iter()
            .enumerate()
            .map(|(i, (data_type, _))| (format!("c{i}"), data_type.clone())),
    );
    let named: Vec<(&str, DataType)> = columns
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let odd = crate::fixtures::table("odd", &named, &[0], 1);
    let mut row = vec![Value::Int(1)];
    row.extend(values.into_iter().map(|(_, v)| v));
    let target = h.target("unstorable").await;
    let (mut sink, _) = open(&*target, WriteMode::Upsert, std::slice::from_ref(&odd)).await;
    write(&mut *sink, batch(1, vec![Change::insert(odd.clone(), row)])).await;
    close(sink).await;
    assert_eq!(
        target.rows("odd", &["id"]).await,
        [t(&[Some("1")])],
        "the row with every edge value"
    );
    let kept = kept(&*target, WriteMode::Upsert).await;
    assert!(kept.is_empty(), "values became dead letters: {kept:?}");
}

/// A sink that cannot work fails its pre-flight check, saying what is wrong
/// and how to fix it.
pub async fn check_explains_a_failure(h: &dyn Harness) {
    let mut sink = h.broken_sink();
    let checks = sink.check().await;
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Fail)
        .collect();
    assert!(!failed.is_empty(), "no failed check: {checks:?}");
    for c in failed {
        assert!(!c.detail.is_empty(), "{c:?}");
        assert!(
            c.fix.as_deref().is_some_and(|f| !f.trim().is_empty()),
            "a failed check without a fix: {c:?}"
        );
    }
}
