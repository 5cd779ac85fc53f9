//! What every source must do, checked against its real system: the
//! snapshot and the change stream together reproduce the source, in order,
//! and a restart from an acknowledged position neither repeats nor skips a
//! change.
//!
//! A connector's test file implements [`SourceHarness`] (a fresh origin per
//! scenario: its own database or folder) and expands
//! [`source_acceptance!`](crate::source_acceptance). Every scenario works on
//! one table, `items(id integer key, name text)`, which the origin creates
//! and writes with its own client: SQL for a database, files for a folder.
//!
//! The kit replays what the source emits into a strict replica: an insert
//! of a key it already holds is a change delivered twice, an update or
//! delete of a key it does not hold is a change lost, a position that does
//! not increase breaks the order.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use syncline_engine::batch::{Batch, Position};
use syncline_engine::connector::{CheckOutcome, Source, SourceContext};
use syncline_engine::model::{Change, DeadLetter, Op, Value};
use syncline_engine::status::StatusHandle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a scenario waits for a source to deliver what it wrote.
const DEADLINE: Duration = Duration::from_secs(60);

/// The name the sources run under.
pub const SOURCE_NAME: &str = "src";

/// One write at the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Inserts the row, or updates it if its key is there.
    Upsert(i64, String),
    /// Deletes the row of this key.
    Delete(i64),
}

/// One origin a scenario writes to and reads from.
#[async_trait]
pub trait Origin: Send + Sync {
    /// Creates `items(id integer key, name text)` holding `rows`.
    async fn create(&self, rows: &[(i64, &str)]);

    /// Applies `writes` as one unit: one transaction of a database, one
    /// rewrite of a file.
    async fn write(&self, writes: &[Write]);

    /// A source reading `items` from this origin. Every call reads the
    /// same origin as the same pipeline (the same slot, the same state
    /// folder), as the engine does across a restart.
    fn source(&self) -> Box<dyn Source>;

    /// Adds a text column `extra` to `items` and sets it to `value` in row
    /// `id`, as one unit (one transaction, one rewrite of a file); every
    /// other row holds NULL in it, and later writes leave it NULL.
    async fn add_column(&self, id: i64, value: &str);

    /// Writes a record the source cannot read into `items` and returns
    /// what its dead letter's reason must mention; `None` where the origin
    /// enforces its own schema, so no such record can exist.
    async fn write_unreadable(&self) -> Option<String>;

    /// Whether the source sees deletes. A source that polls by a cursor
    /// does not (deletes reach its targets only through key scans), and the
    /// scenarios then write none.
    fn follows_deletes(&self) -> bool {
        true
    }

    /// Removes everything the origin made (databases, slots, folders).
    async fn clean_up(self: Box<Self>);
}

/// How the kit reaches a source's real system.
#[async_trait]
pub trait SourceHarness: Sync {
    /// A fresh origin for one scenario, named after it.
    async fn origin(&self, scenario: &str) -> Box<dyn Origin>;

    /// A source that cannot work (an unreachable server, a missing folder):
    /// its pre-flight check must fail and say how to fix it.
    fn broken_source(&self) -> Box<dyn Source>;
}

/// Makes one `#[tokio::test]` per source scenario for the harness
/// `$harness` (an expression of a type implementing [`SourceHarness`]).
#[macro_export]
macro_rules! source_acceptance {
    ($harness:expr) => {
        $crate::source_acceptance!(@tests $harness;
            snapshot_and_stream_reproduce_the_source,
            a_restart_resumes_after_the_acknowledged_position,
            discover_reports_the_table_and_its_key,
            unreadable_records_become_dead_letters,
            an_added_column_arrives_with_its_values,
            sinks_at_different_positions_each_end_equal,
            source_check_explains_a_failure,
        );
    };
    (@tests $harness:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                $crate::source::$scenario(&$harness).await;
            }
        )*
    };
}

/// `items` as the kit expects it: `id` to `name`.
type Rows = BTreeMap<i64, String>;

fn rows(pairs: &[(i64, &str)]) -> Rows {
    pairs.iter().map(|&(k, v)| (k, v.to_owned())).collect()
}

fn apply(expected: &mut Rows, writes: &[Write]) {
    for w in writes {
        match w {
            Write::Upsert(id, name) => {
                expected.insert(*id, name.clone());
            }
            Write::Delete(id) => {
                expected.remove(id);
            }
        }
    }
}

/// What the source delivered, replayed strictly.
#[derive(Debug, Default)]
struct Replica {
    rows: Rows,
    /// The columns of the last change's table, in order.
    columns: Vec<String>,
    last: Option<Position>,
    dead_letters: Vec<DeadLetter>,
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(*i),
        Value::Decimal(d) => d.parse().ok(),
        Value::Text(t) => t.parse().ok(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::Text(t)) => t.clone(),
        Some(other) => format!("{other:?}"),
        None => "(missing)".into(),
    }
}

/// What one change of `items` does, as the kit reads it.
enum Effect {
    /// The row `key` now holds `record`; it was under `from` before
    /// (`from == key` unless the key changed). `insert`: the source says
    /// the row is new.
    Put {
        from: i64,
        key: i64,
        record: String,
        insert: bool,
    },
    /// The row of this key is gone.
    Remove(i64),
    /// Every row is gone.
    Clear,
}

/// The effect of `change`, and the columns of its table.
fn effect(change: &Change) -> (Effect, Vec<String>) {
    let schema = &change.table;
    assert_eq!(schema.id.name, "items", "only `items` is read");
    let (id, name) = (schema.column_index("id"), schema.column_index("name"));
    let (Some(id), Some(name)) = (id, name) else {
        panic!("`items` arrived without `id` or `name`: {schema:?}");
    };
    let extra = schema.column_index("extra");
    let columns = schema.columns.iter().map(|c| c.name.clone()).collect();
    // `name`, and `extra` after it where the row holds one.
    let record = |row: Option<&Vec<Value>>| {
        let name = text(row.and_then(|r| r.get(name)));
        match extra.and_then(|e| row.and_then(|r| r.get(e))) {
            None | Some(Value::Null) => name,
            Some(v) => format!("{name} | {}", text(Some(v))),
        }
    };
    let key = |row: Option<&Vec<Value>>| {
        int(row.and_then(|r| r.get(id)))
            .unwrap_or_else(|| panic!("a change without its key: {change:?}"))
    };
    let effect = match change.op {
        Op::Insert => {
            let k = key(change.after.as_ref());
            Effect::Put {
                from: k,
                key: k,
                record: record(change.after.as_ref()),
                insert: true,
            }
        }
        Op::Update => {
            let k = key(change.after.as_ref());
            let from = change
                .before
                .as_ref()
                .and_then(|b| int(b.get(id)))
                .unwrap_or(k);
            Effect::Put {
                from,
                key: k,
                record: record(change.after.as_ref()),
                insert: false,
            }
        }
        Op::Delete => Effect::Remove(key(change.before.as_ref())),
        Op::Truncate => Effect::Clear,
        other => panic!("unexpected {other:?} from a plain table"),
    };
    (effect, columns)
}

impl Replica {
    fn apply(&mut self, batch: Batch) {
        if let Some(last) = &self.last {
            assert!(
                batch.position.seq > last.seq,
                "positions must increase: {} after {}",
                batch.position.seq,
                last.seq
            );
        }
        assert!(
            batch.block.is_none(),
            "a source given `blocks: false` sends changes only"
        );
        for change in &batch.changes {
            let (effect, columns) = effect(change);
            self.columns = columns;
            match effect {
                Effect::Put {
                    from,
                    key,
                    record,
                    insert: true,
                } => {
                    debug_assert_eq!(from, key);
                    let before = self.rows.insert(key, record);
                    assert!(
                        before.is_none(),
                        "key {key} inserted twice (a change delivered again)"
                    );
                }
                Effect::Put {
                    from, key, record, ..
                } => {
                    assert!(
                        self.rows.remove(&from).is_some(),
                        "update of key {from}, which never arrived (a change lost)"
                    );
                    self.rows.insert(key, record);
                }
                Effect::Remove(key) => {
                    assert!(
                        self.rows.remove(&key).is_some(),
                        "delete of key {key}, which never arrived (a change lost)"
                    );
                }
                Effect::Clear => self.rows.clear(),
            }
        }
        self.dead_letters.extend(batch.dead_letters);
        self.last = Some(batch.position);
    }
}

/// What a target in upsert mode makes of the batches it is given: it skips
/// a batch at or below the position it holds and applies the rest by key
/// (an insert of a key it holds replaces the row, an update of one it
/// lacks adds it, a delete of one it lacks does nothing).
#[derive(Debug, Default)]
struct Target {
    name: &'static str,
    rows: Rows,
    last: Option<Position>,
    /// Given nothing (stopped, while others go on); still holds its
    /// position back from acknowledgement.
    paused: bool,
}

impl Target {
    fn new(name: &'static str) -> Target {
        Target {
            name,
            ..Target::default()
        }
    }

    fn offer(&mut self, batch: &Batch) {
        if self.paused
            || self
                .last
                .as_ref()
                .is_some_and(|l| batch.position.seq <= l.seq)
        {
            return;
        }
        for change in &batch.changes {
            match effect(change).0 {
                Effect::Put {
                    from, key, record, ..
                } => {
                    self.rows.remove(&from);
                    self.rows.insert(key, record);
                }
                Effect::Remove(key) => {
                    self.rows.remove(&key);
                }
                Effect::Clear => self.rows.clear(),
            }
        }
        self.last = Some(batch.position.clone());
    }
}

/// A source running in the background.
struct Running {
    task: JoinHandle<syncline_engine::Result<()>>,
    batches: mpsc::Receiver<Batch>,
    acknowledged: watch::Sender<Option<Position>>,
    cancel: CancellationToken,
}

async fn start(source: Box<dyn Source>, resume: Option<Position>) -> Running {
    let held = resume.iter().cloned().collect();
    start_holding(source, resume, held).await
}

/// Starts `source` as the runtime does for sinks holding `held` (the lowest
/// of them, or `None` when a sink holds nothing, is `resume`).
async fn start_holding(
    mut source: Box<dyn Source>,
    resume: Option<Position>,
    held: Vec<Position>,
) -> Running {
    source
        .discover()
        .await
        .unwrap_or_else(|e| panic!("discover: {e}"));
    let (tx, batches) = mpsc::channel(8);
    let (acknowledged, acked_rx) = watch::channel(resume.clone());
    let cancel = CancellationToken::new();
    let ctx = SourceContext {
        name: SOURCE_NAME.into(),
        highest_held: held.iter().map(|p| p.seq).max().unwrap_or(0),
        held,
        resume,
        batches: tx,
        acknowledged: acked_rx,
        status: StatusHandle::new("kit"),
        cancel: cancel.clone(),
        follow: true,
        blocks: false,
        earlier_rows: false,
    };
    let task = tokio::spawn(source.run(ctx));
    Running {
        task,
        batches,
        acknowledged,
        cancel,
    }
}

impl Running {
    /// Replays batches into `replica` until it holds `expected` (and, with
    /// `dead_letters`, that many dead letters), acknowledging each.
    async fn until(&mut self, replica: &mut Replica, expected: &Rows, dead_letters: usize) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while replica.rows != *expected || replica.dead_letters.len() < dead_letters {
            let batch = tokio::time::timeout_at(deadline, self.batches.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "after {DEADLINE:?} the replica holds {:?}, the origin {expected:?}",
                        replica.rows
                    )
                })
                .unwrap_or_else(|| panic!("the source stopped early: {:?}", replica.rows));
            replica.apply(batch);
            let _ = self.acknowledged.send(replica.last.clone());
        }
    }

    /// Offers batches to every target until each one not paused holds
    /// `expected`, acknowledging the lowest position all targets hold.
    async fn feed(&mut self, targets: &mut [&mut Target], expected: &Rows) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while targets.iter().any(|t| !t.paused && t.rows != *expected) {
            let batch = tokio::time::timeout_at(deadline, self.batches.recv())
                .await
                .unwrap_or_else(|_| {
                    let held: Vec<String> = targets
                        .iter()
                        .map(|t| {
                            let seq = t.last.as_ref().map(|p| p.seq);
                            format!("{} (at {seq:?}) holds {:?}", t.name, t.rows)
                        })
                        .collect();
                    panic!(
                        "after {DEADLINE:?} the origin holds {expected:?}; {}",
                        held.join("; ")
                    )
                });
            let Some(batch) = batch else {
                self.stopped_early().await
            };
            for t in targets.iter_mut() {
                t.offer(&batch);
            }
            let lowest = targets
                .iter()
                .map(|t| t.last.clone())
                .min_by_key(|p| p.as_ref().map(|p| p.seq));
            if let Some(Some(lowest)) = lowest {
                let _ = self.acknowledged.send(Some(lowest));
            }
        }
    }

    /// Fails the scenario with what the source returned when it stopped
    /// before it should have.
    async fn stopped_early(&mut self) -> ! {
        let result = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
        panic!("the source stopped early: {result:?}")
    }

    /// Offers the next `n` batches to every target.
    async fn offer(&mut self, targets: &mut [&mut Target], n: usize) {
        for _ in 0..n {
            let batch = tokio::time::timeout(DEADLINE, self.batches.recv())
                .await
                .unwrap_or_else(|_| panic!("no batch within {DEADLINE:?}"));
            let Some(batch) = batch else {
                self.stopped_early().await
            };
            for t in targets.iter_mut() {
                t.offer(&batch);
            }
        }
    }

    /// Stops the source (see [`Running::stop`]) and offers the targets
    /// every batch it had sent before it stopped.
    async fn stop_into(mut self, targets: &mut [&mut Target]) {
        self.cancel.cancel();
        while let Some(batch) = self.batches.recv().await {
            for t in targets.iter_mut() {
                t.offer(&batch);
            }
        }
        let done = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("a cancelled source returns within 20 s");
        done.expect("the source task panicked")
            .unwrap_or_else(|e| panic!("the source failed: {e}"));
    }

    /// Writes `writes` at the origin and waits until the replica holds
    /// what the origin then holds.
    async fn write_and_wait(
        &mut self,
        origin: &dyn Origin,
        replica: &mut Replica,
        expected: &mut Rows,
        writes: &[Write],
    ) {
        origin.write(writes).await;
        apply(expected, writes);
        self.until(replica, expected, 0).await;
    }

    /// Stops the source; it must return `Ok` promptly.
    async fn stop(self) {
        self.cancel.cancel();
        let Running { task, batches, .. } = self;
        drop(batches);
        let done = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a cancelled source returns within 20 s");
        done.expect("the source task panicked")
            .unwrap_or_else(|e| panic!("the source failed: {e}"));
    }
}

/// A fresh origin holding `initial`, and its source started and caught up
/// with it.
async fn begin(
    h: &dyn SourceHarness,
    scenario: &str,
    initial: &[(i64, &str)],
) -> (Box<dyn Origin>, Rows, Replica, Running) {
    let origin = h.origin(scenario).await;
    origin.create(initial).await;
    let expected = rows(initial);
    let mut replica = Replica::default();
    let mut running = start(origin.source(), None).await;
    running.until(&mut replica, &expected, 0).await;
    (origin, expected, replica, running)
}

/// The snapshot of the rows present at start, then changes of every kind
/// in separate transactions and in one, replay into the source's rows.
pub async fn snapshot_and_stream_reproduce_the_source(h: &dyn SourceHarness) {
    let (origin, mut expected, mut replica, mut running) =
        begin(h, "reproduce", &[(1, "one"), (2, "two"), (3, "three")]).await;

    let steps: [Vec<Write>; 4] = [
        vec![Write::Upsert(4, "four".into())],
        vec![Write::Upsert(2, "two, again".into())],
        vec![Write::Delete(1)],
        // One transaction touching a key several times.
        vec![
            Write::Upsert(5, "five".into()),
            Write::Upsert(5, "five, again".into()),
            Write::Delete(3),
            Write::Upsert(6, "six".into()),
        ],
    ];
    for writes in &steps {
        running
            .write_and_wait(&*origin, &mut replica, &mut expected, writes)
            .await;
    }
    running.stop().await;
    assert_eq!(replica.rows, expected);
    origin.clean_up().await;
}

/// A source stopped after its changes were acknowledged and started again
/// from that position delivers exactly what was written in between.
pub async fn a_restart_resumes_after_the_acknowledged_position(h: &dyn SourceHarness) {
    let (origin, mut expected, mut replica, mut running) =
        begin(h, "resume", &[(1, "one"), (2, "two")]).await;
    let first = [Write::Upsert(3, "three".into())];
    running
        .write_and_wait(&*origin, &mut replica, &mut expected, &first)
        .await;
    running.stop().await;

    // Written while nothing reads.
    let offline = vec![Write::Upsert(1, "one, offline".into()), Write::Delete(2)];
    origin.write(&offline).await;
    apply(&mut expected, &offline);
    let resume = replica.last.clone();
    assert!(resume.is_some(), "the first run delivered a position");
    let mut running = start(origin.source(), resume).await;
    running.until(&mut replica, &expected, 0).await;
    let online = [Write::Upsert(4, "four".into())];
    running
        .write_and_wait(&*origin, &mut replica, &mut expected, &online)
        .await;
    running.stop().await;
    assert_eq!(replica.rows, expected);
    origin.clean_up().await;
}

/// Discovery reports `items` with its columns and `id` as its key.
pub async fn discover_reports_the_table_and_its_key(h: &dyn SourceHarness) {
    let origin = h.origin("discover").await;
    origin.create(&[(1, "one")]).await;
    let mut source = origin.source();
    let tables = source
        .discover()
        .await
        .unwrap_or_else(|e| panic!("discover: {e}"));
    let items = tables
        .iter()
        .find(|t| t.id.name == "items")
        .unwrap_or_else(|| panic!("`items` not discovered: {tables:?}"));
    assert_eq!(items.id.origin, SOURCE_NAME);
    let key: Vec<&str> = items
        .key
        .iter()
        .map(|&k| items.columns[k].name.as_str())
        .collect();
    assert_eq!(key, ["id"]);
    assert!(items.column_index("name").is_some(), "{items:?}");
    let checks = source.check().await;
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Fail)
        .collect();
    assert!(
        failed.is_empty(),
        "a working source passes its checks: {failed:?}"
    );
    origin.clean_up().await;
}

/// A record the source cannot read becomes a dead letter with its reason;
/// the records around it still arrive. Where the origin enforces its own
/// schema, no such record can be written, and the scenario checks that the
/// origin says so.
pub async fn unreadable_records_become_dead_letters(h: &dyn SourceHarness) {
    let (origin, mut expected, mut replica, mut running) =
        begin(h, "unreadable", &[(1, "one")]).await;
    let Some(reason) = origin.write_unreadable().await else {
        running.stop().await;
        origin.clean_up().await;
        return;
    };
    let after = vec![Write::Upsert(2, "two".into())];
    origin.write(&after).await;
    apply(&mut expected, &after);
    running.until(&mut replica, &expected, 1).await;
    running.stop().await;
    let dl = &replica.dead_letters[0];
    assert!(
        dl.reason.contains(&reason),
        "the dead letter's reason {:?} mentions {reason:?}",
        dl.reason
    );
    assert_eq!(dl.table.name, "items");
    assert!(!dl.raw.is_empty(), "the dead letter keeps the raw record");
    origin.clean_up().await;
}

/// A column added at the origin while the source runs arrives without a
/// restart: the changes after it carry it in their table's schema (a new
/// version, which the targets add as a column) and the row that holds a
/// value in it arrives with that value.
pub async fn an_added_column_arrives_with_its_values(h: &dyn SourceHarness) {
    let (origin, mut expected, mut replica, mut running) =
        begin(h, "added_column", &[(1, "one"), (2, "two")]).await;
    origin.add_column(1, "more").await;
    expected.insert(1, "one | more".into());
    running.until(&mut replica, &expected, 0).await;
    let later = [Write::Upsert(3, "three".into())];
    running
        .write_and_wait(&*origin, &mut replica, &mut expected, &later)
        .await;
    running.stop().await;
    assert_eq!(replica.rows, expected);
    assert_eq!(
        replica.columns,
        ["id", "name", "extra"],
        "the last change's table has the added column"
    );
    origin.clean_up().await;
}

/// Targets at different positions each end equal to the origin: one that
/// fell behind (it stopped taking batches while another went on) gets what
/// it lacks after a restart from the lowest position, the one ahead loses
/// nothing the restart reads again differently, and a target added later
/// (holding nothing) gets everything while the others drop what the origin
/// deleted meanwhile. Every source must answer "which batches does each
/// target still need" so; a batch a target skips (at or below its
/// position) must hold nothing it lacks.
pub async fn sinks_at_different_positions_each_end_equal(h: &dyn SourceHarness) {
    let origin = h.origin("positions").await;
    let initial = [(1, "one"), (2, "two"), (3, "three")];
    origin.create(&initial).await;
    let mut expected = rows(&initial);
    let deletes = origin.follows_deletes();
    let with_delete = |mut writes: Vec<Write>, id: i64| {
        if deletes {
            writes.push(Write::Delete(id));
        }
        writes
    };
    let (mut ahead, mut behind) = (Target::new("ahead"), Target::new("behind"));

    // Both take the first copy; then `behind` stops taking batches.
    let mut running = start(origin.source(), None).await;
    running
        .feed(&mut [&mut ahead, &mut behind], &expected)
        .await;
    behind.paused = true;
    let first = with_delete(
        vec![
            Write::Upsert(4, "four".into()),
            Write::Upsert(2, "two, again".into()),
        ],
        3,
    );
    origin.write(&first).await;
    apply(&mut expected, &first);
    running
        .feed(&mut [&mut ahead, &mut behind], &expected)
        .await;
    running.stop().await;
    assert_ne!(behind.rows, expected, "`behind` missed the first changes");

    // Written while nothing reads; then a restart from the lowest position.
    let offline = with_delete(
        vec![
            Write::Upsert(5, "five".into()),
            Write::Upsert(1, "one, offline".into()),
        ],
        4,
    );
    origin.write(&offline).await;
    apply(&mut expected, &offline);
    behind.paused = false;
    let held = |targets: &[&Target]| -> Vec<Position> {
        targets.iter().filter_map(|t| t.last.clone()).collect()
    };
    let mut running = start_holding(
        origin.source(),
        behind.last.clone(),
        held(&[&ahead, &behind]),
    )
    .await;
    running
        .feed(&mut [&mut ahead, &mut behind], &expected)
        .await;
    let online = vec![Write::Upsert(6, "six".into())];
    origin.write(&online).await;
    apply(&mut expected, &online);
    running
        .feed(&mut [&mut ahead, &mut behind], &expected)
        .await;
    running.stop().await;

    // A target added: it holds nothing, so the run starts afresh while the
    // other two hold positions. It takes the first batch (the truncate
    // that begins the restatement) and the run stops before the others
    // take anything; the origin deletes a row meanwhile (a polling source
    // sees it only because the restatement truncates).
    let mut added = Target::new("added");
    let mut running = start_holding(origin.source(), None, held(&[&ahead, &behind])).await;
    (ahead.paused, behind.paused) = (true, true);
    running
        .offer(&mut [&mut ahead, &mut behind, &mut added], 1)
        .await;
    running.stop().await;
    assert!(
        added.last.is_some(),
        "the added target took the restatement's first batch"
    );
    (ahead.paused, behind.paused) = (false, false);
    let later = vec![Write::Upsert(7, "seven".into()), Write::Delete(5)];
    origin.write(&later).await;
    apply(&mut expected, &later);

    // The restatement, resumed from the lowest position, must not leave
    // the added target with part of it: every target ends equal.
    let lowest = [&ahead, &behind, &added]
        .into_iter()
        .filter_map(|t| t.last.clone())
        .min_by_key(|p| p.seq);
    let mut running =
        start_holding(origin.source(), lowest, held(&[&ahead, &behind, &added])).await;
    running
        .feed(&mut [&mut ahead, &mut behind, &mut added], &expected)
        .await;
    // Whatever the source sent after that must not undo it.
    running
        .stop_into(&mut [&mut ahead, &mut behind, &mut added])
        .await;
    for t in [&ahead, &behind, &added] {
        assert_eq!(t.rows, expected, "target `{}`", t.name);
    }
    origin.clean_up().await;
}

/// A source that cannot work fails its pre-flight check and says how to
/// fix it.
pub async fn source_check_explains_a_failure(h: &dyn SourceHarness) {
    let mut source = h.broken_source();
    let checks = source.check().await;
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Fail)
        .collect();
    assert!(
        !failed.is_empty(),
        "a broken source fails a check: {checks:?}"
    );
    for c in failed {
        assert!(
            c.fix.as_deref().is_some_and(|f| !f.trim().is_empty()),
            "failed check {:?} says how to fix it",
            c.name
        );
    }
}
