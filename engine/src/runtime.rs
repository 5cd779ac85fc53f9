//! The runtime: wires sources to sinks with bounded channels, coordinates
//! checkpoints, publishes status and shuts down gracefully.
//!
//! ```text
//! source ──batches──▶ router ──┬──▶ sink A ──ack──┐
//!   ▲                          └──▶ sink B ──ack──┤
//!   └────────── acknowledged position ◀── coordinator
//! ```
//!
//! The pieces, in the order [`run`] starts them: `open` (discover, derive,
//! open the sinks), one `sink_worker` per sink, per source its
//! [`Source::run`] and its router (`route`), the coordinator (`coordinate`)
//! and the status publisher (`publish_status`); `supervise` waits for them
//! all.
//!
//! Every channel is bounded, so a slow sink slows its source instead of
//! growing a queue. The coordinator acknowledges a position to a source only
//! when every sink that receives that source has committed it.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::batch::{Batch, Position};
use crate::connector::{Sink, Source, SourceContext, Transform};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{TableId, TableSchema};
use crate::status::{PipelineState, StatusHandle, Tally};

/// Which tables a sink receives: whole sources, single tables, or the
/// output of transforms.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    entries: Vec<(String, Option<String>)>,
    /// Sources whose batches carry transform outputs this sink takes.
    through: Vec<String>,
}

impl TableFilter {
    /// Builds a filter from target inputs: `source` or `source.table`.
    pub fn from_inputs<'a>(inputs: impl IntoIterator<Item = &'a str>) -> Self {
        TableFilter {
            entries: inputs
                .into_iter()
                .map(|i| match i.split_once('.') {
                    Some((s, t)) => (s.to_owned(), Some(t.to_owned())),
                    None => (i.to_owned(), None),
                })
                .collect(),
            through: Vec::new(),
        }
    }

    /// Also receives batches of `source`, which carry the output of a
    /// transform this sink takes.
    pub fn through(mut self, source: impl Into<String>) -> Self {
        self.through.push(source.into());
        self
    }

    /// Whether `table` passes.
    pub fn accepts(&self, table: &TableId) -> bool {
        self.entries
            .iter()
            .any(|(s, t)| *s == table.origin && t.as_ref().is_none_or(|t| *t == table.name))
    }

    /// The part of `batch` that passes; the batch itself when all of it does.
    /// The position always passes, so the sink's checkpoint moves.
    pub fn apply(&self, batch: Arc<Batch>) -> Arc<Batch> {
        let all = batch.changes.iter().all(|c| self.accepts(&c.table.id))
            && batch
                .block
                .as_ref()
                .is_none_or(|b| self.accepts(&b.table.id))
            && batch.dead_letters.iter().all(|d| self.accepts(&d.table));
        if all {
            return batch;
        }
        let mut part = (*batch).clone();
        part.changes.retain(|c| self.accepts(&c.table.id));
        part.block = part.block.filter(|b| self.accepts(&b.table.id));
        part.dead_letters.retain(|d| self.accepts(&d.table));
        Arc::new(part)
    }

    /// Whether any table of `source` passes.
    pub fn accepts_source(&self, source: &str) -> bool {
        self.entries.iter().any(|(s, _)| s == source) || self.through.iter().any(|s| s == source)
    }
}

/// A named source ready to run.
pub struct SourcePlan {
    /// Name in the pipeline file.
    pub name: String,
    /// The connector.
    pub source: Box<dyn Source>,
}

/// A named sink with the tables it receives.
pub struct SinkPlan {
    /// Name in the pipeline file.
    pub name: String,
    /// The connector.
    pub sink: Box<dyn Sink>,
    /// Its inputs.
    pub filter: TableFilter,
}

impl std::fmt::Debug for SourcePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcePlan")
            .field("name", &self.name)
            .finish()
    }
}

impl std::fmt::Debug for SinkPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkPlan")
            .field("name", &self.name)
            .field("filter", &self.filter)
            .finish()
    }
}

/// A pipeline ready to run.
pub struct PipelinePlan {
    /// Pipeline name.
    pub name: String,
    /// Sources.
    pub sources: Vec<SourcePlan>,
    /// The transforms between sources and sinks, if any.
    pub transform: Option<Box<dyn Transform>>,
    /// Sinks.
    pub sinks: Vec<SinkPlan>,
    /// Stop once more rows than this are in the dead-letter queue.
    pub max_dead_letters: Option<u64>,
    /// The sinks may hold rows of this pipeline from before it was dropped
    /// (see [`SourceContext::earlier_rows`](crate::connector::SourceContext)).
    pub earlier_rows: bool,
}

impl std::fmt::Debug for PipelinePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelinePlan")
            .field("name", &self.name)
            .field("sources", &self.sources)
            .field("transform", &self.transform.is_some())
            .field("sinks", &self.sinks)
            .finish()
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Keep streaming after the snapshot until cancelled.
    pub follow: bool,
    /// Batches buffered between a source and its router.
    pub channel_capacity: usize,
    /// Rows each sink may have queued. Queued batches of one source are
    /// applied together, so this also bounds a target transaction.
    pub max_rows_in_flight: usize,
    /// How often status is published.
    pub status_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            follow: true,
            channel_capacity: 4,
            max_rows_in_flight: 20_000,
            status_interval: Duration::from_millis(250),
        }
    }
}

/// A batch on its way to a sink: source index, batch, and the share of the
/// sink's row budget it holds until applied.
type Routed = (usize, Arc<Batch>, OwnedSemaphorePermit);

/// A sink's input: its queue and its row budget.
type SinkInput = (mpsc::UnboundedSender<Routed>, Arc<Semaphore>);

/// How long a sink may hold applied batches uncommitted
/// ([`Sink::holds_uncommitted`]) while no more batches arrive.
const UNCOMMITTED_WAIT: Duration = Duration::from_millis(100);

struct Ack {
    sink: usize,
    source: usize,
    seq: u64,
    /// The last batch's position and source commit time (for the status).
    position: Position,
    commit_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// Runs a pipeline until its sources finish (see [`RunOptions::follow`]) or
/// `cancel` fires; in both cases every batch already read is applied and
/// checkpointed before this returns.
pub async fn run(
    plan: PipelinePlan,
    options: RunOptions,
    status: StatusHandle,
    cancel: CancellationToken,
) -> Result<()> {
    let span = info_span!("pipeline", name = %plan.name);
    let result = run_inner(plan, options, status.clone(), cancel)
        .instrument(span)
        .await;
    match &result {
        Ok(()) => status.set_state(PipelineState::Stopped),
        Err(e) => {
            status.record_error(e.chain());
            status.set_state(PipelineState::Failed);
        }
    }
    result
}

async fn run_inner(
    plan: PipelinePlan,
    options: RunOptions,
    status: StatusHandle,
    cancel: CancellationToken,
) -> Result<()> {
    status.set_state(PipelineState::Starting);
    let max_dead_letters = plan.max_dead_letters;
    let earlier_rows = plan.earlier_rows;
    let Opened {
        sources,
        transform,
        sinks,
        checkpoints,
        kept_dead_letters,
        consumers,
        blocks,
    } = open(plan, &status).await?;

    let capacity = options.channel_capacity.max(1);
    let max_rows = options.max_rows_in_flight.max(1);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
    let (pending_tx, pending_rx) = mpsc::channel::<(usize, Tally)>(capacity * 4);
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let inner_cancel = cancel.child_token();
    let source_names: Arc<Vec<String>> = Arc::new(sources.iter().map(|s| s.name.clone()).collect());

    // Sink workers, each behind its queue and row budget.
    let mut sink_inputs: Vec<SinkInput> = Vec::new();
    for (i, plan) in sinks.into_iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel::<Routed>();
        sink_inputs.push((tx, Arc::new(Semaphore::new(max_rows))));
        let span = info_span!("sink", sink = %plan.name);
        tasks.spawn(
            sink_worker(
                i,
                plan,
                rx,
                ack_tx.clone(),
                source_names.clone(),
                max_rows,
                Outage {
                    status: status.clone(),
                    cancel: inner_cancel.clone(),
                },
            )
            .instrument(span),
        );
    }
    drop(ack_tx);

    // Sources, each with its router.
    let dead_letter_count = Arc::new(AtomicU64::new(kept_dead_letters));
    let mut ack_watches = Vec::new();
    for (si, s) in sources.into_iter().enumerate() {
        let resume = resume_point(&s.name, &consumers[si], &checkpoints);
        if let Some(p) = &resume {
            info!(source = %s.name, seq = p.seq, "resuming");
        }
        let held: Vec<Position> = consumers[si]
            .iter()
            .filter_map(|&k| checkpoints[k].get(&s.name).cloned())
            .collect();
        let highest_held = held.iter().map(|p| p.seq).max().unwrap_or(0);
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(capacity);
        let (acked_tx, acked_rx) = watch::channel(resume.clone());
        ack_watches.push(acked_tx);
        let ctx = SourceContext {
            name: s.name.clone(),
            resume,
            batches: batch_tx,
            acknowledged: acked_rx,
            status: status.clone(),
            cancel: inner_cancel.clone(),
            follow: options.follow,
            highest_held,
            held,
            blocks: blocks[si],
            earlier_rows,
        };
        let span = info_span!("source", source = %s.name);
        tasks.spawn(s.source.run(ctx).instrument(span));
        tasks.spawn(route(Router {
            source: si,
            batches: batch_rx,
            transform: transform.clone(),
            pending: pending_tx.clone(),
            sinks: consumers[si]
                .iter()
                .map(|&k| sink_inputs[k].clone())
                .collect(),
            dead_letters: dead_letter_count.clone(),
            max_dead_letters,
            max_rows,
        }));
    }
    drop(sink_inputs);
    drop(pending_tx);

    let coordinator = tokio::spawn(coordinate(
        consumers,
        ack_watches,
        pending_rx,
        ack_rx,
        status.clone(),
        source_names,
    ));
    let publisher_stop = CancellationToken::new();
    let publisher = tokio::spawn(publish_status(
        status.clone(),
        options.status_interval,
        publisher_stop.clone(),
    ));
    status.set_state(PipelineState::Running);

    let first_error = supervise(tasks, &cancel, &inner_cancel, &status).await;
    let _ = coordinator.await;
    publisher_stop.cancel();
    let _ = publisher.await;
    status.publish();
    match first_error {
        Some(e) if e.kind() != ErrorKind::Cancelled => Err(e),
        _ => Ok(()),
    }
}

/// A pipeline with its sources discovered, its transforms derived and its
/// sinks open.
struct Opened {
    sources: Vec<SourcePlan>,
    transform: Option<SharedTransform>,
    sinks: Vec<SinkPlan>,
    /// What each sink holds, per source.
    checkpoints: Vec<BTreeMap<String, Position>>,
    /// The most rows any sink keeps in its dead-letter queue already.
    kept_dead_letters: u64,
    /// Which sinks receive each source.
    consumers: Vec<Vec<usize>>,
    /// Whether each source may send column blocks.
    blocks: Vec<bool>,
}

type SharedTransform = Arc<std::sync::Mutex<Box<dyn Transform>>>;

/// Discovers every source's tables, derives the transforms' tables, then
/// opens every sink on its share.
async fn open(plan: PipelinePlan, status: &StatusHandle) -> Result<Opened> {
    let PipelinePlan {
        name: _,
        sources,
        mut transform,
        mut sinks,
        max_dead_letters,
        earlier_rows: _,
    } = plan;
    let mut all_tables: Vec<Arc<TableSchema>> = Vec::new();
    let mut ready = Vec::new();
    for mut s in sources {
        let tables = s.source.discover().await?;
        info!(source = %s.name, tables = tables.len(), "discovered");
        all_tables.extend(tables);
        ready.push(s);
    }
    if let Some(t) = transform.as_mut() {
        let derived = t.derive(&all_tables)?;
        info!(tables = derived.len(), "transforms derived");
        for d in &derived {
            if let Some(input) = t.input_of(&d.id) {
                status.mirror_phase(&input, &d.id);
            }
        }
        all_tables.extend(derived);
    }
    let mut checkpoints: Vec<BTreeMap<String, Position>> = Vec::new();
    let mut kept_dead_letters: u64 = 0;
    for sink in &mut sinks {
        let mine: Vec<Arc<TableSchema>> = all_tables
            .iter()
            .filter(|t| sink.filter.accepts(&t.id))
            .cloned()
            .collect();
        // Targets name tables by their name alone (see `Sink::open`).
        for (i, a) in mine.iter().enumerate() {
            if let Some(b) = mine[..i].iter().find(|b| b.id.name == a.id.name) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "target `{}` would write `{}` and `{}` into one table `{}`: the rows of one would overwrite the other's; send them to different targets, or list only one of them in the target's `inputs`",
                        sink.name, b.id, a.id, a.id.name
                    ),
                ));
            }
        }
        let held = sink.sink.open(&mine).await?;
        info!(sink = %sink.name, checkpoints = held.len(), "opened");
        if max_dead_letters.is_some() {
            let kept = sink.sink.dead_letters().await?.len() as u64;
            kept_dead_letters = kept_dead_letters.max(kept);
        }
        checkpoints.push(held);
    }
    let consumers: Vec<Vec<usize>> = ready
        .iter()
        .map(|s| {
            sinks
                .iter()
                .enumerate()
                .filter(|(_, k)| k.filter.accepts_source(&s.name))
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    // A source may send column blocks when nothing between it and its
    // sinks reads rows: no transform, and every sink applies blocks.
    let blocks: Vec<bool> = consumers
        .iter()
        .map(|ks| transform.is_none() && ks.iter().all(|&k| sinks[k].sink.takes_blocks()))
        .collect();
    Ok(Opened {
        sources: ready,
        transform: transform.map(|t| Arc::new(std::sync::Mutex::new(t))),
        sinks,
        checkpoints,
        kept_dead_letters,
        consumers,
        blocks,
    })
}

/// The first wait before a write that lost its target is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between tries.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What a sink worker reports an unreachable target to, and the stop that
/// ends its waiting.
struct Outage {
    status: StatusHandle,
    cancel: CancellationToken,
}

impl Outage {
    /// Writes `batches`, trying again (with a growing wait, reported in the
    /// status) for as long as the target cannot be reached and the pipeline
    /// runs: the batches stay queued and unacknowledged meanwhile, so the
    /// source holds its position and nothing is lost. Only for a sink that
    /// holds no uncommitted batches (a failure might have lost those).
    async fn write(
        &self,
        sink: &mut dyn Sink,
        name: &str,
        source: &str,
        batches: Vec<Arc<Batch>>,
        retry: bool,
    ) -> Result<()> {
        let mut wait = RETRY_FIRST;
        let mut since: Option<std::time::Instant> = None;
        loop {
            match sink.write_group(source, batches.clone()).await {
                Ok(()) => {
                    if let Some(since) = since {
                        let secs = since.elapsed().as_secs();
                        info!(target = name, secs, "target reachable again");
                        self.status.record_error(format!(
                            "target `{name}` is reachable again after {secs} s; catching up"
                        ));
                    }
                    return Ok(());
                }
                Err(e)
                    if retry
                        && e.kind() == ErrorKind::Connection
                        && !self.cancel.is_cancelled() =>
                {
                    since.get_or_insert_with(std::time::Instant::now);
                    warn!(target = name, error = %e.chain(), retry_in = ?wait, "target unreachable");
                    self.status.record_error(format!(
                        "target `{name}` is unreachable, trying again in {} s (nothing is lost meanwhile): {}",
                        wait.as_secs_f64().ceil(),
                        e.chain()
                    ));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.cancel.cancelled() => return Err(e),
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One sink's worker: applies what is queued for it in order, a group of
/// one source's batches at a time, and acknowledges each group once it is
/// committed.
async fn sink_worker(
    index: usize,
    plan: SinkPlan,
    mut rx: mpsc::UnboundedReceiver<Routed>,
    ack_tx: mpsc::UnboundedSender<Ack>,
    names: Arc<Vec<String>>,
    max_rows: usize,
    outage: Outage,
) -> Result<()> {
    let SinkPlan {
        name,
        mut sink,
        filter,
    } = plan;
    // Batches applied but not yet committed (see `Sink::holds_uncommitted`)
    // are acknowledged once they are.
    let mut unacked: Vec<Ack> = Vec::new();
    let status = outage.status.clone();
    let acknowledge = |unacked: &mut Vec<Ack>| {
        if let Some(last) = unacked.last() {
            status.record_target(&name, &names[last.source], &last.position, last.commit_time);
        }
        for ack in unacked.drain(..) {
            let _ = ack_tx.send(ack);
        }
    };
    // Sources whose transaction is open in the sink: its last part has not
    // come (see `Batch::continues`). Nothing is acknowledged or flushed
    // meanwhile.
    let mut open_transactions = std::collections::BTreeSet::new();
    let mut next = rx.recv().await;
    while let Some(first) = next.take() {
        // A sink that is behind applies the batches queued for it from the
        // same source together: one target transaction.
        let source = first.0;
        let mut group = vec![first];
        let mut rows: usize = group[0].1.len();
        while rows < max_rows {
            match rx.try_recv() {
                Ok(item) if item.0 == source => {
                    rows += item.1.len();
                    group.push(item);
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        // The group is never empty: it begins with `first`.
        let Some((position, commit_time)) = group
            .last()
            .map(|g| (g.1.position.clone(), g.1.commit_time))
        else {
            continue;
        };
        let seq = position.seq;
        let continues = group.last().is_some_and(|g| g.1.continues);
        let batches: Vec<Arc<Batch>> = group.iter().map(|g| filter.apply(g.1.clone())).collect();
        outage
            .write(
                sink.as_mut(),
                &name,
                &names[source],
                batches,
                unacked.is_empty(),
            )
            .await?;
        // Releases the rows' budget.
        drop(group);
        unacked.push(Ack {
            sink: index,
            source,
            seq,
            position,
            commit_time,
        });
        if continues {
            open_transactions.insert(source);
        } else {
            open_transactions.remove(&source);
        }
        let mid_transaction = !open_transactions.is_empty();
        if !mid_transaction && !sink.holds_uncommitted() {
            acknowledge(&mut unacked);
        }
        if next.is_none() {
            next = if unacked.is_empty() || mid_transaction {
                rx.recv().await
            } else {
                // The sink holds batches open: it commits them when no more
                // arrive for a moment.
                match tokio::time::timeout(UNCOMMITTED_WAIT, rx.recv()).await {
                    Ok(item) => item,
                    Err(_) => {
                        sink.flush().await?;
                        acknowledge(&mut unacked);
                        rx.recv().await
                    }
                }
            };
        }
    }
    if open_transactions.is_empty() {
        sink.flush().await?;
        acknowledge(&mut unacked);
    }
    // A transaction still open is rolled back: its source reads it again.
    sink.close().await
}

/// What a source's router needs.
struct Router {
    /// The source's index.
    source: usize,
    /// What the source emits.
    batches: mpsc::Receiver<Batch>,
    transform: Option<SharedTransform>,
    /// The coordinator's list of batches awaiting acknowledgement.
    pending: mpsc::Sender<(usize, Tally)>,
    /// The queues of the sinks that receive the source.
    sinks: Vec<SinkInput>,
    /// Rows in every dead-letter queue, with the limit.
    dead_letters: Arc<AtomicU64>,
    max_dead_letters: Option<u64>,
    max_rows: usize,
}

/// Takes a source's batches through the transforms and the misfit check,
/// registers each with the coordinator, then queues it for every sink that
/// receives the source, waiting while a sink's row budget is spent
/// (backpressure).
async fn route(mut r: Router) -> Result<()> {
    while let Some(mut batch) = r.batches.recv().await {
        if let Some(t) = &r.transform {
            // Transforms read rows (the source was told so; this keeps it
            // true whatever a source sends).
            batch = batch.without_block();
            let t = t.clone();
            batch = tokio::task::spawn_blocking(move || {
                let mut guard = t
                    .lock()
                    .map_err(|_| Error::internal("a transform panicked"))?;
                guard.apply(&mut batch).map(|()| batch)
            })
            .await
            .map_err(|e| Error::internal(format!("transform task failed: {e}")))??;
        }
        quarantine_misfits(&mut batch);
        if !batch.dead_letters.is_empty() {
            let n = batch.dead_letters.len() as u64;
            let total = r.dead_letters.fetch_add(n, Ordering::Relaxed) + n;
            if let Some(max) = r.max_dead_letters.filter(|&m| total > m) {
                return Err(Error::new(
                    ErrorKind::Precondition,
                    format!(
                        "stopped: {total} rows would be in the dead-letter queue, more than max_dead_letters = {max}; the batch that crossed it was not written. See them with `syncline dlq list`, fix the cause, then `syncline dlq replay` (or discard them) and run again"
                    ),
                ));
            }
        }
        // The coordinator keeps only the batch's counts until every sink
        // holds it: a sink that holds batches uncommitted does not keep
        // their rows in memory here.
        if r.pending.send((r.source, Tally::of(&batch))).await.is_err() {
            return Err(Error::internal("coordinator stopped early"));
        }
        let batch = Arc::new(batch);
        // Each sink holds at most `max_rows_in_flight` rows queued (a larger
        // batch, such as a column block, takes it all): a slow sink makes
        // this wait (backpressure).
        let cost = u32::try_from(batch.len().clamp(1, r.max_rows)).unwrap_or(u32::MAX);
        for (tx, budget) in &r.sinks {
            let permit = budget
                .clone()
                .acquire_many_owned(cost)
                .await
                .map_err(|_| Error::internal("a sink stopped early"))?;
            if tx.send((r.source, batch.clone(), permit)).is_err() {
                return Err(Error::internal("a sink stopped early"));
            }
        }
    }
    Ok(())
}

/// Publishes the status every `interval` until stopped.
async fn publish_status(status: StatusHandle, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => status.publish(),
            _ = stop.cancelled() => break,
        }
    }
}

/// Waits for every task: the first failure cancels the rest; `cancel`
/// (a stop) lets sources end and everything read be applied. Returns the
/// first error.
async fn supervise(
    mut tasks: JoinSet<Result<()>>,
    cancel: &CancellationToken,
    inner_cancel: &CancellationToken,
    status: &StatusHandle,
) -> Option<Error> {
    let mut first_error: Option<Error> = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    warn!(error = %e.chain(), "pipeline task failed");
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                    inner_cancel.cancel();
                }
                Some(Err(join)) => {
                    if first_error.is_none() {
                        first_error = Some(Error::internal(format!("task panicked: {join}")));
                    }
                    inner_cancel.cancel();
                }
            },
            _ = cancel.cancelled(), if !stopping => {
                stopping = true;
                info!("stopping: applying what was read, then a final checkpoint");
                status.set_state(PipelineState::Stopping);
            }
        }
    }
    first_error
}

/// Moves every change with a value that does not fit its column's type
/// into the batch's dead letters, so that one bad value costs one row, not
/// the pipeline (the sinks would refuse the whole batch).
fn quarantine_misfits(batch: &mut Batch) {
    // Each sink takes these dead letters' rows in as withheld.
    let mut withheld = crate::apply::Withheld::default();
    if let Cow::Owned(b) = crate::apply::set_aside(batch, |_, _| None, &mut withheld) {
        *batch = b;
    }
}

/// The lowest position every consumer of `source` holds; `None` if any of
/// them holds nothing (the source starts over and sinks skip what they have).
fn resume_point(
    source: &str,
    consumers: &[usize],
    checkpoints: &[BTreeMap<String, Position>],
) -> Option<Position> {
    let mut lowest: Option<Position> = None;
    for &k in consumers {
        let held = checkpoints[k].get(source)?;
        if lowest.as_ref().is_none_or(|l| held.seq < l.seq) {
            lowest = Some(held.clone());
        }
    }
    lowest
}

async fn coordinate(
    consumers: Vec<Vec<usize>>,
    acked: Vec<watch::Sender<Option<Position>>>,
    mut pending_rx: mpsc::Receiver<(usize, Tally)>,
    mut ack_rx: mpsc::UnboundedReceiver<Ack>,
    status: StatusHandle,
    names: Arc<Vec<String>>,
) {
    let mut pending: Vec<VecDeque<Tally>> = vec![VecDeque::new(); consumers.len()];
    // Highest committed seq per (source, sink).
    let mut committed: Vec<BTreeMap<usize, u64>> = consumers
        .iter()
        .map(|c| c.iter().map(|&k| (k, 0)).collect())
        .collect();
    let mut pending_open = true;
    let mut acks_open = true;
    while pending_open || acks_open {
        tokio::select! {
            p = pending_rx.recv(), if pending_open => match p {
                Some((si, tally)) => pending[si].push_back(tally),
                None => pending_open = false,
            },
            a = ack_rx.recv(), if acks_open => match a {
                Some(ack) => {
                    committed[ack.source].insert(ack.sink, ack.seq);
                }
                None => acks_open = false,
            },
        }
        for si in 0..pending.len() {
            let floor = committed[si].values().copied().min().unwrap_or(u64::MAX);
            let mut last = None;
            while pending[si].front().is_some_and(|b| b.position.seq <= floor) {
                if let Some(tally) = pending[si].pop_front() {
                    status.record_committed(&names[si], &tally);
                    last = Some(tally.position);
                }
            }
            if let Some(position) = last {
                acked[si].send_replace(Some(position));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_source_and_table() {
        let f = TableFilter::from_inputs(["shop.orders", "crm"]);
        let t = |o: &str, n: &str| TableId {
            origin: o.into(),
            name: n.into(),
        };
        assert!(f.accepts(&t("shop", "orders")));
        assert!(!f.accepts(&t("shop", "customers")));
        assert!(f.accepts(&t("crm", "anything")));
        assert!(f.accepts_source("shop"));
        assert!(!f.accepts_source("billing"));
    }

    #[test]
    fn resume_takes_the_lowest_and_needs_every_consumer() {
        let p = |seq| Position {
            seq,
            state: serde_json::Value::Null,
        };
        let a: BTreeMap<String, Position> = [("s".to_owned(), p(10))].into();
        let b: BTreeMap<String, Position> = [("s".to_owned(), p(7))].into();
        let none = BTreeMap::new();
        assert_eq!(
            resume_point("s", &[0, 1], &[a.clone(), b]).map(|p| p.seq),
            Some(7)
        );
        assert_eq!(resume_point("s", &[0, 1], &[a, none]), None);
    }
}
