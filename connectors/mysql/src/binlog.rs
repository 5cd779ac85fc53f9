//! Following the binary log: row events to changes, one batch per source
//! transaction in commit order, positioned at the end of its commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use syncline_engine::batch::{Batch, BatchKind};
use syncline_engine::connector::SourceContext;
use syncline_engine::model::{Change, DeadLetter, DeadLetterStage, Op, Row, TableSchema, Value};
use syncline_engine::status::Phase;
use syncline_engine::{Error, Result};
use tracing::{info, warn};

use crate::error::MyError;
use crate::introspect::{self, ColumnInfo, MyType, TableInfo};
use crate::runner::{log_end, position, send, stop};
use crate::snapshot::decode_values;
use crate::values::decode;
use crate::{LogPos, MySqlSource, MyState};

/// MariaDB's GTID event.
const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB's flag of a GTID event whose transaction is that one statement
/// (DDL): no XID or COMMIT ends it.
const FL_STANDALONE: u8 = 1;
/// MariaDB's compressed query and row events (`log_bin_compress`).
const MARIADB_COMPRESSED_EVENTS: std::ops::RangeInclusive<u8> = 165..=171;
/// An event the server made up (a rotate at the start of a dump).
const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
/// How many transactions of other tables are passed over before the
/// position moves with an empty batch.
const SKIPPED_BEFORE_MOVING: u32 = 1_000;
/// How often the binary log the pipeline still needs is measured.
const RETAINED_EVERY: Duration = Duration::from_secs(5);
/// How long that measure may take before it is given up for this time.
const SIDE_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A MariaDB GTID: `domain-server-sequence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaGtid {
    /// Replication domain.
    pub domain: u32,
    /// Originating server.
    pub server: u32,
    /// Sequence number.
    pub seq: u64,
    /// The GTID event's flags.
    pub flags: u8,
}

impl std::fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// Parses the body of MariaDB's GTID event (`seq_no u64`, `domain_id u32`,
/// `flags2 u8`, then optional parts this source does not need), from server
/// `server`.
pub fn parse_mariadb_gtid(body: &[u8], server: u32) -> Option<MariaGtid> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    Some(MariaGtid {
        domain,
        server,
        seq,
        flags,
    })
}

/// A table as the log describes it now.
struct Followed {
    /// The table as the targets have it: its columns as the server
    /// described them, and those the log added since.
    info: TableInfo,
    /// `info`'s column names.
    names: Vec<String>,
    /// How many of them (the first ones) the log has at this point: fewer
    /// before a column the server describes was added. Rows logged before
    /// it hold NULL in it.
    logged: usize,
}

/// The transaction being read.
#[derive(Default)]
struct Txn {
    /// Where it starts (the end of the event before it).
    start: u64,
    gtid: Option<String>,
    changes: Vec<Change>,
    dead: Vec<DeadLetter>,
    /// Changes and dead letters of it sent in parts already.
    sent: usize,
    /// Of those, how many this reading has passed (after a reconnect, the
    /// first `skip` are passed over: they went out before).
    skip: usize,
    /// Whether one of its changes touches a followed table.
    relevant: bool,
    /// MariaDB's standalone transaction (DDL): it ends with its statement.
    standalone: bool,
}

struct Follower<'a> {
    src: &'a MySqlSource,
    ctx: &'a SourceContext,
    state: MyState,
    tables: HashMap<String, Followed>,
    /// The current binary log file.
    file: String,
    /// The end of the last event read.
    end: u64,
    /// The end of the last transaction read, applied or passed over.
    done: LogPos,
    skipped: u32,
    txn: Option<Txn>,
    /// A transaction whose parts went out before the connection was lost:
    /// its start and how many of its changes and dead letters went out.
    resend: Option<(u64, usize)>,
    seen_format: bool,
}

/// Reads the binary log from `state.at` and sends every transaction that
/// touches the source's tables, until cancelled (or, when not following,
/// until the end of the log as it was at the start).
pub(crate) async fn stream(src: MySqlSource, ctx: SourceContext, state: MyState) -> Result<()> {
    for t in &src.tables {
        ctx.status.set_phase(&t.schema.id, Phase::Streaming);
    }
    let mut state = state;
    let mut tables = HashMap::new();
    for t in &src.tables {
        let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        // The columns the log has where it is read from: those of the
        // position, a prefix of what the server describes now (columns
        // added since come later in the log).
        let logged = match state.columns.get(&t.name) {
            None => names.len(),
            Some(stored) if stored.len() <= names.len() && names[..stored.len()] == stored[..] => {
                stored.len()
            }
            Some(stored) => {
                return Err(stop(format!(
                    "table {} changed while the pipeline was stopped: columns ({}) became ({}); Syncline follows added columns only: drop the pipeline and run it again to copy the table anew",
                    t.name,
                    stored.join(", "),
                    names.join(", ")
                )));
            }
        };
        refuse_defaulted(&t.name, &t.columns[logged..], &state.at)?;
        state
            .columns
            .insert(t.name.clone(), names[..logged].to_vec());
        tables.insert(
            t.name.clone(),
            Followed {
                info: t.clone(),
                names,
                logged,
            },
        );
    }
    let until = if ctx.follow {
        None
    } else {
        let mut conn = MySqlSource::connect(&src.config).await?;
        let end = log_end(&mut conn).await?;
        let _ = conn.disconnect().await;
        Some(end)
    };
    let mut f = Follower {
        src: &src,
        ctx: &ctx,
        file: state.at.file.clone(),
        end: state.at.pos,
        done: state.at.clone(),
        state,
        tables,
        skipped: 0,
        txn: None,
        resend: None,
        seen_format: false,
    };
    // Aborted when the stream ends, however it ends.
    let _measure = AbortOnDrop(tokio::spawn(measure_retained(
        src.config.clone(),
        ctx.name.clone(),
        ctx.status.clone(),
        ctx.acknowledged.clone(),
    )));
    let mut wait = Duration::from_millis(500);
    loop {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        match f.follow(until.as_ref()).await {
            Ok(()) => return Ok(()),
            Err(e)
                if e.kind() == syncline_engine::ErrorKind::Connection
                    && !ctx.cancel.is_cancelled() =>
            {
                warn!(source = %ctx.name, error = %e.chain(), "binary log connection lost; reconnecting");
                ctx.status.record_error(format!(
                    "source {}: {}; reconnecting in {:?}",
                    ctx.name,
                    e.chain(),
                    wait
                ));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = ctx.cancel.cancelled() => return Ok(()),
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Follower<'_> {
    /// One connection's reading of the log, from the last position sent.
    async fn follow(&mut self, until: Option<&LogPos>) -> Result<()> {
        // A transaction cut off by the lost connection is read again from
        // its start; what of it went out in parts is passed over.
        if let Some(txn) = self.txn.take()
            && txn.sent > 0
        {
            self.resend = Some((txn.start, txn.sent));
        }
        self.file = self.state.at.file.clone();
        self.end = self.state.at.pos;
        self.done = self.state.at.clone();
        self.seen_format = false;
        let mut stream = self.open(until.is_some()).await?;
        info!(source = %self.ctx.name, at = %self.state.at, "reading the binary log");
        loop {
            // The server sends heartbeats while the log is idle: a
            // connection silent for three of them is a dead one.
            let silence =
                Duration::from_secs(self.src.config.heartbeat_secs.saturating_mul(3).max(30));
            let next = tokio::select! {
                next = stream.next() => next,
                () = tokio::time::sleep(silence), if self.src.config.heartbeat_secs > 0 => {
                    return Err(Error::new(
                        syncline_engine::ErrorKind::Connection,
                        format!("the binary log connection was silent for {} s at {}:{}", silence.as_secs(), self.file, self.end),
                    ));
                }
                () = self.ctx.cancel.cancelled() => return Ok(()),
            };
            let event = match next {
                // The end of the log as it was at the start, when not
                // following.
                None if until
                    .is_some_and(|u| self.reached().coordinate().ok() >= u.coordinate().ok()) =>
                {
                    self.done = self.reached();
                    self.move_position().await?;
                    return Ok(());
                }
                // Otherwise a stream ends only when the server closes it
                // (a shutdown): reconnect.
                None => {
                    return Err(Error::new(
                        syncline_engine::ErrorKind::Connection,
                        format!(
                            "the server closed the binary log connection at {}:{}",
                            self.file, self.end
                        ),
                    ));
                }
                // A lost connection is classified as one, and retried.
                Some(Err(e)) => return Err(self.read_error(e)),
                Some(Ok(event)) => event,
            };
            self.event(&stream, event).await?;
            if let Some(until) = until
                && self.txn.is_none()
                && self.reached().coordinate()? >= until.coordinate()?
            {
                self.done = self.reached();
                self.move_position().await?;
                return Ok(());
            }
        }
    }

    /// How far the log is read, whole transactions only: outside a
    /// transaction, the end of the last event (events between transactions,
    /// such as a new file's GTID list and checkpoint, are passed over);
    /// inside one, the end of the transaction before it.
    fn reached(&self) -> LogPos {
        if self.txn.is_some() {
            return self.done.clone();
        }
        let read = LogPos {
            file: self.file.clone(),
            pos: self.end,
        };
        match (read.coordinate(), self.done.coordinate()) {
            (Ok(r), Ok(d)) if r > d => read,
            _ => self.done.clone(),
        }
    }

    async fn open(&self, non_blocking: bool) -> Result<BinlogStream> {
        let config = &self.src.config;
        // Row events of large transactions come as packets of up to 1 GiB.
        let mut conn =
            MySqlSource::connect_with(config, |opts| opts.max_allowed_packet(Some(1 << 30)))
                .await?;
        // GTID events as they are (not rewritten into BEGIN), and the
        // server's heartbeats while the log is idle.
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(MyError::query("asking for the server's GTID events"))?;
        if config.heartbeat_secs > 0 {
            conn.query_drop(format!(
                "SET @master_heartbeat_period = {}",
                config.heartbeat_secs.saturating_mul(1_000_000_000)
            ))
            .await
            .map_err(MyError::query("setting the binary log heartbeat"))?;
        }
        let mut request = BinlogStreamRequest::new(self.src.server_id)
            .with_filename(self.state.at.file.as_bytes())
            .with_pos(self.state.at.pos);
        if non_blocking {
            request = request.with_non_blocking();
        }
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| self.read_error(e))?;
        Ok(stream)
    }

    /// What a failure of the binary log stream means: a position the server
    /// no longer has (the answer to the dump request comes as the stream's
    /// first item) says how to recover.
    fn read_error(&self, e: mysql_async::Error) -> Error {
        if let mysql_async::Error::Server(s) = &e
            && s.code == 1236
        {
            return MyError::Precondition(format!(
                "the server cannot send the binary log from {} ({}): if it was purged while the pipeline was stopped, run `syncline drop` on the pipeline file and run it again (every table is emptied and copied anew), and keep binary logs longer (binlog_expire_logs_seconds)",
                self.state.at, s.message
            ))
            .into();
        }
        MyError::query(format!(
            "reading the binary log at {}:{}",
            self.file, self.end
        ))(e)
        .into()
    }

    async fn event(
        &mut self,
        stream: &BinlogStream,
        event: mysql_async::binlog::events::Event,
    ) -> Result<()> {
        let header = event.header();
        let artificial = header.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0 || header.log_pos() == 0;
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            let gtid = parse_mariadb_gtid(event.data(), header.server_id()).ok_or_else(|| {
                MyError::Binlog(format!(
                    "a GTID event at {}:{} cannot be read",
                    self.file, self.end
                ))
            })?;
            self.begin(Some(gtid.to_string()), gtid.flags & FL_STANDALONE != 0)?;
            self.end = u64::from(header.log_pos());
            return Ok(());
        }
        if MARIADB_COMPRESSED_EVENTS.contains(&header.event_type_raw()) {
            return Err(MyError::Precondition(format!(
                "the binary log at {}:{} is compressed (log_bin_compress = ON), which Syncline cannot read yet: set log_bin_compress = OFF on the server",
                self.file, self.end
            ))
            .into());
        }
        let data = event.read_data().map_err(|e| {
            MyError::Binlog(format!(
                "an event at {}:{} cannot be read: {e}",
                self.file, self.end
            ))
        })?;
        match data {
            Some(EventData::FormatDescriptionEvent(_)) => self.seen_format = true,
            Some(EventData::RotateEvent(r)) => {
                // The first rotate of a dump comes before the format event,
                // its name with a checksum the reader cannot strip yet: the
                // file is the one asked for.
                if !artificial || self.seen_format {
                    let name = r.name().into_owned();
                    if name != self.file {
                        self.file = name;
                        self.end = r.position();
                        self.done = LogPos {
                            file: self.file.clone(),
                            pos: self.end,
                        };
                    }
                }
                return Ok(());
            }
            Some(EventData::TransactionPayloadEvent(_)) => {
                return Err(MyError::Precondition(format!(
                    "the binary log at {}:{} holds compressed transactions (binlog_transaction_compression = ON), which Syncline cannot read yet: turn it off on the server",
                    self.file, self.end
                ))
                .into());
            }
            Some(EventData::HeartbeatEvent) => {
                self.move_position().await?;
                return Ok(());
            }
            Some(EventData::QueryEvent(q)) => {
                let query = q.query().trim().to_owned();
                let schema = q.schema().into_owned();
                // A transaction begins where its first event does.
                let upper = query.to_ascii_uppercase();
                if self.txn.is_none() && upper != "COMMIT" && upper != "ROLLBACK" {
                    self.begin(None, upper != "BEGIN")?;
                }
                self.end = u64::from(header.log_pos());
                match upper.as_str() {
                    "BEGIN" => {}
                    "COMMIT" => self.commit(header.timestamp()).await?,
                    // A group rolled back: nothing of it happened.
                    "ROLLBACK" => self.roll_back()?,
                    _ => {
                        self.statement(&schema, &query)?;
                        if self.txn.as_ref().is_some_and(|t| t.standalone) {
                            self.commit(header.timestamp()).await?;
                        }
                    }
                }
                return Ok(());
            }
            Some(EventData::XidEvent(_)) => {
                self.end = u64::from(header.log_pos());
                self.commit(header.timestamp()).await?;
                return Ok(());
            }
            Some(EventData::RowsEvent(rows)) => {
                let tme = stream.get_tme(rows.table_id()).cloned();
                let at = LogPos {
                    file: self.file.clone(),
                    pos: self.end,
                };
                self.end = u64::from(header.log_pos());
                match tme {
                    Some(tme) => self.rows(&rows, &tme, &at).await?,
                    None => {
                        return Err(MyError::Binlog(format!(
                            "a row event at {at} names a table the log has not described (no table map before it)"
                        ))
                        .into());
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        if !artificial && header.log_pos() != 0 {
            self.end = u64::from(header.log_pos());
        }
        Ok(())
    }

    /// Drops the transaction a `ROLLBACK` ends; one whose parts went out
    /// already cannot be taken back, so that stops the source.
    fn roll_back(&mut self) -> Result<()> {
        if let Some(txn) = self.txn.take() {
            if txn.sent > txn.skip {
                return Err(MyError::Binlog(format!(
                    "a transaction rolled back at {}:{} after parts of it were sent; run again to read it anew",
                    self.file, self.end
                ))
                .into());
            }
            self.done = LogPos {
                file: self.file.clone(),
                pos: self.end,
            };
        }
        Ok(())
    }

    fn begin(&mut self, gtid: Option<String>, standalone: bool) -> Result<()> {
        // A transaction that never ended (an XA transaction prepared, a
        // group rolled back) must not lose its rows to the next one.
        if let Some(open) = &self.txn
            && (open.relevant || open.sent > 0)
        {
            return Err(MyError::Binlog(format!(
                "a transaction touching the pipeline's tables did not end before the next began at {}:{} (XA transactions are not supported yet)",
                self.file, self.end
            ))
            .into());
        }
        let start = LogPos {
            file: self.file.clone(),
            pos: self.end,
        }
        .coordinate()
        .unwrap_or(0);
        let skip = match self.resend {
            Some((s, n)) if s == start => n,
            _ => 0,
        };
        self.txn = Some(Txn {
            start,
            gtid,
            skip,
            sent: skip,
            standalone,
            ..Txn::default()
        });
        Ok(())
    }

    /// A statement logged as text: a `TRUNCATE` of a followed table
    /// empties it; a `DROP` or `RENAME` of one stops the source.
    fn statement(&mut self, schema: &str, query: &str) -> Result<()> {
        let (op, names) = statement_tables(query, schema);
        let ours = |(db, table): &(String, String)| {
            db == &self.src.config.database && (table == "*" || self.tables.contains_key(table))
        };
        let Some((_, table)) = names.iter().find(|n| ours(n)).cloned() else {
            return Ok(());
        };
        if op != Op::Truncate {
            let what = if table == "*" {
                format!("database {} was dropped", self.src.config.database)
            } else {
                format!("table {table} was dropped, replaced or renamed")
            };
            return Err(stop(format!(
                "{what} at {}:{} (`{}`): Syncline cannot follow it; drop the pipeline and run it again",
                self.file,
                self.end,
                query.chars().take(200).collect::<String>()
            )));
        }
        // The table's copy already holds this statement's effect.
        let start = self.txn.as_ref().map_or(0, |t| t.start);
        if let Some(from) = self.state.from.get(&table)
            && start < from.coordinate()?
        {
            return Ok(());
        }
        if let Some(t) = self.tables.get(&table) {
            let change = Change::truncate(t.info.schema.clone());
            self.push(Item::Change(change));
        }
        Ok(())
    }

    fn push(&mut self, item: Item) {
        let Some(txn) = self.txn.as_mut() else { return };
        if txn.skip > 0 {
            txn.skip -= 1;
            return;
        }
        txn.relevant = true;
        match item {
            Item::Change(c) => txn.changes.push(c),
            Item::Dead(d) => txn.dead.push(*d),
        }
    }

    async fn rows(
        &mut self,
        rows: &RowsEventData<'_>,
        tme: &TableMapEvent<'_>,
        at: &LogPos,
    ) -> Result<()> {
        if tme.database_name() != self.src.config.database.as_str() {
            return Ok(());
        }
        let table = tme.table_name().into_owned();
        if !self.tables.contains_key(&table) {
            return Ok(());
        }
        let Some(start) = self.txn.as_ref().map(|t| t.start) else {
            return Err(
                MyError::Binlog(format!("a row event at {at} outside a transaction")).into(),
            );
        };
        // The table's copy already holds this transaction.
        if let Some(from) = self.state.from.get(&table)
            && start < from.coordinate()?
        {
            return Ok(());
        }
        let meta = map_meta(tme)?;
        self.conform(&table, tme, &meta, at).await?;
        let Some(followed) = self.tables.get(&table) else {
            return Ok(());
        };
        // Enum and set members as the log numbers them at this point (an
        // ALTER may have reordered or added members since or before).
        let info = with_logged_members(&followed.info, followed.logged, tme, &meta)?;
        let logged = followed.logged;
        let full_before = rows.columns_before_image().is_none_or(|b| b.all());
        let full_after = rows.columns_after_image().is_none_or(|b| b.all());
        if !full_before || !full_after {
            return Err(MyError::Precondition(format!(
                "a row event of table {table} at {at} holds only some columns: set binlog_row_image = FULL on the server"
            ))
            .into());
        }
        let origin = match self.txn.as_ref().and_then(|t| t.gtid.clone()) {
            Some(g) => format!("binary log {at} (GTID {g})"),
            None => format!("binary log {at}"),
        };
        let mut items = Vec::new();
        for pair in rows.rows(tme) {
            let (before, after) = pair.map_err(|e| {
                MyError::Binlog(format!(
                    "a row of table {table} at {at} cannot be read: {e}"
                ))
            })?;
            items.push(change_of(&info, logged, before, after, &origin));
        }
        for item in items {
            self.push(item);
            self.maybe_send_part().await?;
        }
        Ok(())
    }

    /// Matches the table map of `table` against the schema followed: the
    /// same columns go on; columns added at the end make the next schema
    /// version; anything else stops the source, saying why.
    async fn conform(
        &mut self,
        table: &str,
        tme: &TableMapEvent<'_>,
        meta: &MapMeta,
        at: &LogPos,
    ) -> Result<()> {
        let names = meta.names.as_ref();
        let Some(followed) = self.tables.get(table) else {
            return Ok(());
        };
        let count = usize::try_from(tme.columns_count()).unwrap_or(usize::MAX);
        // The log's columns: the followed ones, or the first of them (a
        // column the server describes is not added yet at this point).
        let prefix = match names {
            Some(names) => {
                names.len() <= followed.names.len() && names[..] == followed.names[..names.len()]
            }
            None => count == followed.logged || count == followed.names.len(),
        };
        if prefix && count < followed.logged {
            return Err(stop(format!(
                "table {table} lost columns ({}) at {at}: Syncline follows added columns only; drop the pipeline and run it again to copy the table anew",
                followed.names[count..followed.logged].join(", ")
            )));
        }
        if prefix {
            // The same names: the same types too, or the log would be read
            // with the wrong decoder.
            let mut numeric = 0;
            for (i, c) in followed.info.columns.iter().take(count).enumerate() {
                let logged = tme.get_column_type(i).ok().flatten();
                let Some(logged) = logged.filter(|t| type_matches(&c.ty, *t)) else {
                    return Err(stop(format!(
                        "the type of column `{}` of table {table} changed at {at} (the log has {logged:?}): Syncline follows added columns only; drop the pipeline and run it again to copy the table anew",
                        c.name
                    )));
                };
                if let Some(was) = retyped(&c.ty, logged, tme.get_column_metadata(i), meta, numeric)
                {
                    return Err(stop(format!(
                        "column `{}` of table {table} is {} in the log at {at}, where Syncline follows it as {}: Syncline follows added columns only; drop the pipeline and run it again to copy the table anew",
                        c.name,
                        was,
                        describe(&c.ty)
                    )));
                }
                if logged.is_numeric_type() {
                    numeric += 1;
                }
            }
            if followed.logged != count {
                let logged = followed.names[..count].to_vec();
                if let Some(f) = self.tables.get_mut(table) {
                    f.logged = count;
                }
                self.state.columns.insert(table.to_owned(), logged);
            }
            return Ok(());
        }
        let Some(names) = names else {
            return Err(stop(format!(
                "table {table} has {count} columns at {at} where {} were expected, and the log does not name them: set binlog_row_metadata = FULL on the server, then drop the pipeline and run it again",
                followed.names.len()
            )));
        };
        let old = followed.info.clone();
        let added =
            names.len() > old.columns.len() && names[..old.columns.len()] == followed.names[..];
        if !added {
            return Err(stop(format!(
                "table {table} changed at {at}: columns ({}) became ({}); Syncline follows added columns only: drop the pipeline and run it again to copy the table anew",
                followed.names.join(", "),
                names.join(", ")
            )));
        }
        // The types of the added columns, as the server describes the table
        // now; it must still have the columns the log names.
        let mut conn = MySqlSource::connect(&self.src.config).await?;
        let decl = self
            .src
            .config
            .tables
            .iter()
            .find(|t| t.name == table)
            .cloned()
            .ok_or_else(|| Error::internal(format!("table {table} is not configured")))?;
        let described =
            introspect::describe(&mut conn, &self.ctx.name, &self.src.config.database, &decl).await;
        let _ = conn.disconnect().await;
        let (now, unsupported) = described?;
        let now_names: Vec<String> = now.columns.iter().map(|c| c.name.clone()).collect();
        if now_names.len() < names.len()
            || now_names[..names.len()] != names[..]
            || !unsupported.is_empty()
        {
            return Err(stop(format!(
                "table {table} gained columns ({}) at {at}, but the server describes it as ({}) now: it changed again since; drop the pipeline and run it again to copy the table anew",
                names[old.columns.len()..].join(", "),
                now_names.join(", ")
            )));
        }
        let columns: Vec<ColumnInfo> = now.columns[..names.len()].to_vec();
        refuse_defaulted(table, &columns[old.columns.len()..], at)?;
        if !columns
            .iter()
            .zip(&old.columns)
            .all(|(now, was)| now.same_but_members(was))
        {
            return Err(stop(format!(
                "the types of table {table}'s columns changed at or after {at}: Syncline follows added columns only; drop the pipeline and run it again"
            )));
        }
        let schema: TableSchema = introspect::schema_of(
            &self.ctx.name,
            table,
            &columns,
            old.schema.key.clone(),
            old.schema.version + 1,
        );
        info!(table, at = %at, added = ?&names[old.columns.len()..], "columns added");
        let info = TableInfo {
            name: table.to_owned(),
            columns,
            schema: Arc::new(schema),
        };
        self.state.columns.insert(table.to_owned(), names.clone());
        let logged = names.len();
        self.tables.insert(
            table.to_owned(),
            Followed {
                info,
                names: names.clone(),
                logged,
            },
        );
        Ok(())
    }

    async fn maybe_send_part(&mut self) -> Result<()> {
        let limit = self.src.config.transaction_rows;
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        if txn.changes.len() + txn.dead.len() < limit {
            return Ok(());
        }
        let changes = std::mem::take(&mut txn.changes);
        let dead = std::mem::take(&mut txn.dead);
        txn.sent += changes.len() + dead.len();
        let seq = seq_of(txn.start, self.state.offset)? + 1;
        let mut part_state = self.state.clone();
        part_state.gtid = txn.gtid.clone();
        let mut batch = Batch::stream(position(seq, &part_state)?, changes);
        batch.dead_letters = dead;
        batch.kind = BatchKind::Stream;
        batch.txid = txn.gtid.clone();
        batch.continues = true;
        send(self.ctx, batch).await
    }

    async fn commit(&mut self, timestamp: u32) -> Result<()> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        self.done = LogPos {
            file: self.file.clone(),
            pos: self.end,
        };
        if self.resend.as_ref().is_some_and(|(s, _)| *s == txn.start) {
            self.resend = None;
        }
        if !txn.relevant && txn.sent == 0 {
            self.skipped += 1;
            if self.skipped >= SKIPPED_BEFORE_MOVING {
                self.move_position().await?;
            }
            return Ok(());
        }
        self.skipped = 0;
        let at = self.done.clone();
        let coordinate = at.coordinate()?;
        self.state
            .from
            .retain(|_, from| from.coordinate().map_or(true, |c| c > coordinate));
        self.state.at = at;
        self.state.gtid = txn.gtid.clone();
        let seq = seq_of(coordinate, self.state.offset)?;
        let mut batch = Batch::stream(position(seq, &self.state)?, txn.changes);
        batch.dead_letters = txn.dead;
        batch.kind = BatchKind::Stream;
        batch.txid = txn.gtid;
        batch.commit_time = DateTime::<Utc>::from_timestamp(i64::from(timestamp), 0);
        send(self.ctx, batch).await
    }

    /// Moves the position over transactions of other tables with an empty
    /// batch, so a restart does not read them again.
    async fn move_position(&mut self) -> Result<()> {
        if self.txn.is_some() || self.done.coordinate()? <= self.state.at.coordinate()? {
            return Ok(());
        }
        self.skipped = 0;
        let coordinate = self.done.coordinate()?;
        self.state
            .from
            .retain(|_, from| from.coordinate().map_or(true, |c| c > coordinate));
        self.state.at = self.done.clone();
        let seq = seq_of(coordinate, self.state.offset)?;
        let mut batch = Batch::stream(position(seq, &self.state)?, Vec::new());
        batch.kind = BatchKind::Stream;
        send(self.ctx, batch).await
    }
}

/// A task that is aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reports, every [`RETAINED_EVERY`], how many bytes of binary log the
/// server keeps that the pipeline still needs: from the position every
/// target holds (`acknowledged`, which starts at the resumed position) to
/// the log's end. On its own connection, beside the log's reader; a
/// measure that fails or takes longer than [`SIDE_QUERY_TIMEOUT`] is
/// skipped: it is status, not progress.
async fn measure_retained(
    config: crate::MySqlSourceConfig,
    source: String,
    status: syncline_engine::status::StatusHandle,
    acknowledged: tokio::sync::watch::Receiver<Option<syncline_engine::batch::Position>>,
) {
    let mut side: Option<mysql_async::Conn> = None;
    let mut every = tokio::time::interval(RETAINED_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let from = acknowledged
            .borrow()
            .clone()
            .and_then(|p| serde_json::from_value::<MyState>(p.state).ok())
            .map(|s| s.at);
        let Some(from) = from else { continue };
        let measured = tokio::time::timeout(SIDE_QUERY_TIMEOUT, async {
            if side.is_none() {
                side = Some(MySqlSource::connect(&config).await?);
            }
            let conn = side
                .as_mut()
                .ok_or_else(|| Error::internal("no connection"))?;
            let logs: Vec<mysql_async::Row> = conn
                .query("SHOW BINARY LOGS")
                .await
                .map_err(MyError::query("listing the binary logs"))?;
            Ok::<_, Error>(
                logs.into_iter()
                    .filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
                    .collect::<Vec<_>>(),
            )
        })
        .await;
        match measured {
            Ok(Ok(logs)) => {
                if let Some(bytes) = retained_bytes(&logs, &from) {
                    status.set_retained_bytes(&source, bytes);
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(source, error = %e.chain(), "measuring the binary log kept failed");
                side = None;
            }
            Err(_) => side = None,
        }
    }
}

/// The bytes of `logs` (each file's name and size, as `SHOW BINARY LOGS`
/// lists them) from `from` to the end; `None` when `from`'s file is not
/// among them (purged, or from another server).
fn retained_bytes(logs: &[(String, u64)], from: &LogPos) -> Option<u64> {
    let i = logs.iter().position(|(name, _)| *name == from.file)?;
    let rest: u64 = logs[i + 1..].iter().map(|(_, size)| size).sum();
    Some(logs[i].1.saturating_sub(from.pos) + rest)
}

/// Stops on an added column with a default: the rows the table held when
/// it was added hold the default at the source, without a row event that
/// would bring it to the targets (they would keep NULL there).
fn refuse_defaulted(table: &str, added: &[ColumnInfo], at: &LogPos) -> Result<()> {
    match added.iter().find(|c| c.defaulted) {
        Some(c) => Err(stop(format!(
            "column `{}` was added to table {table} after {at} with a default, which the server gave every existing row without logging it: Syncline follows added columns only without a default; drop the pipeline and run it again to copy the table anew",
            c.name
        ))),
        None => Ok(()),
    }
}

fn seq_of(coordinate: u64, offset: i64) -> Result<u64> {
    let c = i64::try_from(coordinate)
        .map_err(|_| Error::internal("binary log coordinate out of range"))?;
    u64::try_from(c + offset)
        .map_err(|_| Error::internal("a binary log position numbered below zero"))
}

/// What a statement logged as text does to which tables: `Truncate` for a
/// `TRUNCATE`, `Delete` for a `DROP TABLE`, `RENAME TABLE` or `ALTER TABLE
/// ... RENAME` (every table it names), nothing (`Insert`, no tables)
/// otherwise. Tables as `(database, table)`, `schema` where unqualified.
fn statement_tables(query: &str, schema: &str) -> (Op, Vec<(String, String)>) {
    // Leading comments (`/* app */ TRUNCATE ...`, `-- app`, `# app`) say
    // nothing.
    let mut query = query.trim_start();
    loop {
        if let Some(rest) = query.strip_prefix("/*") {
            query = rest
                .split_once("*/")
                .map_or("", |(_, after)| after)
                .trim_start();
        } else if query.starts_with("-- ") || query.starts_with('#') {
            query = query
                .split_once('\n')
                .map_or("", |(_, after)| after)
                .trim_start();
        } else {
            break;
        }
    }
    let words: Vec<&str> = query
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let is = |i: usize, w: &str| upper.get(i).is_some_and(|u| u == w);
    let names = |from: usize| -> Vec<(String, String)> {
        words
            .iter()
            .zip(&upper)
            .skip(from)
            .take_while(|(w, _)| !w.starts_with("/*"))
            .filter(|(_, u)| {
                !matches!(
                    u.as_str(),
                    "IF" | "EXISTS" | "TO" | "TEMPORARY" | "RESTRICT" | "CASCADE"
                )
            })
            .map(|(w, _)| unquote_table(w, schema))
            .collect()
    };
    if is(0, "TRUNCATE") {
        let from = if is(1, "TABLE") { 2 } else { 1 };
        return (Op::Truncate, names(from).into_iter().take(1).collect());
    }
    if (is(0, "DROP") && (is(1, "TABLE") || (is(1, "TEMPORARY") && is(2, "TABLE"))))
        || (is(0, "RENAME") && is(1, "TABLE"))
    {
        return (Op::Delete, names(2));
    }
    // A table renamed (not an index, key or column of it).
    let renamed = upper
        .windows(2)
        .any(|w| w[0] == "RENAME" && !matches!(w[1].as_str(), "INDEX" | "KEY" | "COLUMN"));
    if is(0, "ALTER") && is(1, "TABLE") && renamed {
        return (Op::Delete, names(2).into_iter().take(1).collect());
    }
    if is(0, "CREATE") && is(1, "OR") && is(2, "REPLACE") && is(3, "TABLE") {
        return (Op::Delete, names(4).into_iter().take(1).collect());
    }
    if is(0, "DROP") && (is(1, "DATABASE") || is(1, "SCHEMA")) {
        let db = names(2).into_iter().next().map(|(_, name)| name);
        return (
            Op::Delete,
            db.map(|d| (d, "*".to_owned())).into_iter().collect(),
        );
    }
    (Op::Insert, Vec::new())
}

/// `[db.]table` of a statement, unquoted, with `schema` for no database.
fn unquote_table(text: &str, schema: &str) -> (String, String) {
    let unquote = |s: &str| s.trim_matches('`').replace("``", "`");
    match text.split_once("`.`").or_else(|| text.split_once('.')) {
        Some((db, t)) => (unquote(db), unquote(t)),
        None => (schema.to_owned(), unquote(text)),
    }
}

/// Whether a column the log types as `logged` can be read as `ty`.
fn type_matches(ty: &MyType, logged: ColumnType) -> bool {
    use ColumnType::*;
    match ty {
        MyType::Int { bits, .. } => matches!(
            (bits, logged),
            (8, MYSQL_TYPE_TINY)
                | (16, MYSQL_TYPE_SHORT)
                | (24, MYSQL_TYPE_INT24)
                | (32, MYSQL_TYPE_LONG)
                | (64, MYSQL_TYPE_LONGLONG)
        ),
        MyType::Decimal { .. } => matches!(logged, MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL),
        MyType::Float => logged == MYSQL_TYPE_FLOAT,
        MyType::Double => logged == MYSQL_TYPE_DOUBLE,
        MyType::Text | MyType::Latin1 | MyType::Bytes | MyType::FixedBytes(_) | MyType::Json => {
            matches!(
                logged,
                MYSQL_TYPE_VARCHAR
                    | MYSQL_TYPE_VAR_STRING
                    | MYSQL_TYPE_STRING
                    | MYSQL_TYPE_BLOB
                    | MYSQL_TYPE_TINY_BLOB
                    | MYSQL_TYPE_MEDIUM_BLOB
                    | MYSQL_TYPE_LONG_BLOB
                    | MYSQL_TYPE_JSON
            )
        }
        MyType::Enum(_) => logged == MYSQL_TYPE_ENUM,
        MyType::Set(_) => logged == MYSQL_TYPE_SET,
        MyType::Bit(_) => logged == MYSQL_TYPE_BIT,
        MyType::Date => matches!(logged, MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE),
        MyType::DateTime => matches!(logged, MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2),
        MyType::Timestamp => matches!(logged, MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2),
        MyType::Time => matches!(logged, MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2),
        MyType::Year => logged == MYSQL_TYPE_YEAR,
    }
}

/// What a table map says of its columns beyond their types, where the
/// server logs it (`binlog_row_metadata = FULL`; each part `None` when it
/// does not).
#[derive(Debug, Default)]
struct MapMeta {
    /// Column names, in order.
    names: Option<Vec<String>>,
    /// Per numeric column (those whose type
    /// [`ColumnType::is_numeric_type`]), in order: `unsigned`.
    unsigned: Option<Vec<bool>>,
    /// The members of each enum column, in order, in the column's
    /// character set.
    enums: Option<Vec<Vec<Vec<u8>>>>,
    /// The members of each set column, likewise.
    sets: Option<Vec<Vec<Vec<u8>>>>,
}

/// Reads a table map's optional metadata.
fn map_meta(tme: &TableMapEvent<'_>) -> Result<MapMeta> {
    use mysql_async::binlog::events::OptionalMetadataField;
    let unreadable = |what: &str, e: std::io::Error| -> Error {
        MyError::Binlog(format!(
            "the {what} of {} in the binary log cannot be read: {e}",
            tme.table_name()
        ))
        .into()
    };
    let mut meta = MapMeta::default();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| unreadable("table map", e))? {
            OptionalMetadataField::ColumnName(names) => {
                let names: std::result::Result<Vec<String>, _> = names
                    .iter_names()
                    .map(|n| n.map(|n| n.name().into_owned()))
                    .collect();
                meta.names = Some(names.map_err(|e| unreadable("column names", e))?);
            }
            OptionalMetadataField::Signedness(bits) => {
                meta.unsigned = Some(bits.iter().by_vals().collect());
            }
            OptionalMetadataField::EnumStrValue(lists) => {
                let all: std::io::Result<_> = lists
                    .iter_values()
                    .map(|l| l.map(|l| owned(l.values().iter().map(|v| v.value_raw()))))
                    .collect();
                meta.enums = Some(all.map_err(|e| unreadable("enum members", e))?);
            }
            OptionalMetadataField::SetStrValue(lists) => {
                let all: std::io::Result<_> = lists
                    .iter_values()
                    .map(|l| l.map(|l| owned(l.values().iter().map(|v| v.value_raw()))))
                    .collect();
                meta.sets = Some(all.map_err(|e| unreadable("set members", e))?);
            }
            _ => {}
        }
    }
    Ok(meta)
}

/// A member list's bytes, owned.
fn owned<'a>(members: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    members.map(<[u8]>::to_vec).collect()
}

/// How the log types a column that [`type_matches`] `ty`, where that
/// differs from `ty` in what changes its values: signedness (the log's
/// `numeric`-th numeric column) or a decimal's precision and scale. `None`
/// when they agree or the log does not say.
fn retyped(
    ty: &MyType,
    logged: ColumnType,
    column_meta: Option<&[u8]>,
    meta: &MapMeta,
    numeric: usize,
) -> Option<String> {
    match ty {
        MyType::Int { unsigned, .. } if logged.is_numeric_type() => {
            let now = *meta.unsigned.as_ref()?.get(numeric)?;
            (now != *unsigned).then(|| if now { "unsigned" } else { "signed" }.to_owned())
        }
        MyType::Decimal { precision, scale } if logged == ColumnType::MYSQL_TYPE_NEWDECIMAL => {
            match column_meta? {
                [p, s, ..] if (*p, *s) != (*precision, *scale) => Some(format!("decimal({p},{s})")),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `ty` as the server writes it, for a message.
fn describe(ty: &MyType) -> String {
    match ty {
        MyType::Int { unsigned: true, .. } => "unsigned".into(),
        MyType::Int {
            unsigned: false, ..
        } => "signed".into(),
        MyType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        other => format!("{other:?}"),
    }
}

/// `info` with the enum and set members of its first `logged` columns as
/// the table map lists them, where it lists them and they differ: rows
/// logged before or after an `ALTER` that reordered or added members
/// number them by the list of their own time.
fn with_logged_members(
    info: &TableInfo,
    logged: usize,
    tme: &TableMapEvent<'_>,
    meta: &MapMeta,
) -> Result<TableInfo> {
    let mut out = None::<TableInfo>;
    let (mut enums, mut sets) = (0, 0);
    for (i, column) in info.columns.iter().enumerate().take(logged) {
        let lists = match tme.get_column_type(i).ok().flatten() {
            Some(ColumnType::MYSQL_TYPE_ENUM) => {
                enums += 1;
                meta.enums.as_ref().and_then(|l| l.get(enums - 1))
            }
            Some(ColumnType::MYSQL_TYPE_SET) => {
                sets += 1;
                meta.sets.as_ref().and_then(|l| l.get(sets - 1))
            }
            _ => None,
        };
        if !matches!(column.ty, MyType::Enum(_) | MyType::Set(_)) {
            continue;
        }
        let Some(raw) = lists else {
            return Err(MyError::Precondition(format!(
                "the binary log does not list the members of column `{}` of table {}, so a reordered member would be read wrong: set binlog_row_metadata = FULL on the server",
                column.name, info.name
            ))
            .into());
        };
        // Members in another character set than UTF-8 or latin1 cannot be
        // compared: they are read by the lists the server describes.
        let utf8 = column
            .charset
            .as_deref()
            .is_none_or(|c| c.starts_with("utf8") || c == "ascii");
        let latin1 = column.charset.as_deref() == Some("latin1");
        if !utf8 && !latin1 {
            let described = match &column.ty {
                MyType::Enum(m) | MyType::Set(m) => m.len(),
                _ => 0,
            };
            if raw.len() != described {
                return Err(stop(format!(
                    "column `{}` of table {} has {} members in the binary log where the server describes {described}: its members changed; drop the pipeline and run it again to copy the table anew",
                    column.name,
                    info.name,
                    raw.len()
                )));
            }
            continue;
        }
        let mut members = Vec::with_capacity(raw.len());
        for bytes in raw {
            members.push(if latin1 {
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0
                    .into_owned()
            } else {
                String::from_utf8(bytes.clone()).map_err(|_| {
                    MyError::Binlog(format!(
                        "a member of column `{}` of table {} in the binary log is not UTF-8",
                        column.name, info.name
                    ))
                })?
            });
        }
        let ty = match &column.ty {
            MyType::Enum(m) if *m != members => MyType::Enum(members),
            MyType::Set(m) if *m != members => MyType::Set(members),
            _ => continue,
        };
        out.get_or_insert_with(|| info.clone()).columns[i].ty = ty;
    }
    Ok(out.unwrap_or_else(|| info.clone()))
}

/// One row image of the table's first `logged` columns as an engine row
/// of all of them (NULL in those not added yet at this point of the log).
fn row_of(
    info: &TableInfo,
    logged: usize,
    row: BinlogRow,
) -> std::result::Result<Row, (String, String)> {
    let columns = info.columns.get(..logged).unwrap_or(&info.columns);
    let mut out = decode_values(columns, row.unwrap(), binlog_value)?;
    out.resize(info.columns.len(), Value::Null);
    Ok(out)
}

/// A value of a row event as an engine value.
pub fn binlog_value(ty: &MyType, v: BinlogValue<'_>) -> std::result::Result<Value, String> {
    match v {
        // A set comes as its bit mask, little-endian.
        BinlogValue::Value(mysql_async::Value::Bytes(b)) if matches!(ty, MyType::Set(_)) => {
            if b.len() > 8 {
                return Err(format!("a set of {} bytes", b.len()));
            }
            let mask = b.iter().rev().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            decode(ty, mysql_async::Value::UInt(mask))
        }
        // The log leaves the trailing zero bytes of a `binary(n)` out.
        BinlogValue::Value(mysql_async::Value::Bytes(mut b)) if matches!(ty, MyType::FixedBytes(_)) => {
            if let MyType::FixedBytes(n) = ty {
                let n = usize::try_from(*n).unwrap_or(usize::MAX);
                if b.len() < n {
                    b.resize(n, 0);
                }
            }
            decode(ty, mysql_async::Value::Bytes(b))
        }
        // The log carries latin1 text as stored: Windows-1252 (whose five
        // undefined bytes decode to the C1 controls, as MySQL converts them).
        BinlogValue::Value(mysql_async::Value::Bytes(b)) if matches!(ty, MyType::Latin1) => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&b);
            decode(ty, mysql_async::Value::Bytes(text.into_owned().into_bytes()))
        }
        // The driver reads the year 0000 as 1900 (outside YEAR's range).
        BinlogValue::Value(mysql_async::Value::Bytes(b)) if matches!(ty, MyType::Year) && b == b"1900" => {
            Ok(Value::Int(0))
        }
        BinlogValue::Value(v) => decode(ty, v),
        BinlogValue::Jsonb(j) => {
            let json = serde_json::Value::try_from(j).map_err(|e| format!("a JSON value cannot be read: {e}"))?;
            decode(ty, mysql_async::Value::Bytes(json.to_string().into_bytes()))
        }
        BinlogValue::JsonDiff(_) => Err(
            "a partial JSON update: set binlog_row_value_options = '' on the server so updates log whole documents".into(),
        ),
    }
}

/// A change read from the log, or the dead letter of one that could not be.
enum Item {
    Change(Change),
    Dead(Box<DeadLetter>),
}

/// The change a row event's pair of images stands for, or its dead letter.
fn change_of(
    info: &TableInfo,
    logged: usize,
    before: Option<BinlogRow>,
    after: Option<BinlogRow>,
    origin: &str,
) -> Item {
    match read_change(info, logged, before, after, origin) {
        Ok(change) => Item::Change(change),
        Err(dead) => Item::Dead(dead),
    }
}

fn read_change(
    info: &TableInfo,
    logged: usize,
    before: Option<BinlogRow>,
    after: Option<BinlogRow>,
    origin: &str,
) -> std::result::Result<Change, Box<DeadLetter>> {
    let dead = |raw: String, reason: String| {
        Box::new(DeadLetter {
            table: info.schema.id.clone(),
            origin: origin.to_owned(),
            line: None,
            raw,
            reason,
            stage: DeadLetterStage::Read,
            kept: None,
        })
    };
    let before = before
        .map(|r| row_of(info, logged, r))
        .transpose()
        .map_err(|(why, raw)| dead(format!("before: {raw}"), why))?;
    let after = after
        .map(|r| row_of(info, logged, r))
        .transpose()
        .map_err(|(why, raw)| dead(format!("after: {raw}"), why))?;
    let images = || format!("before: {before:?}, after: {after:?}");
    let key_set = |row: &Row| info.schema.key.iter().all(|&i| row[i] != Value::Null);
    if before.as_ref().is_some_and(|r| !key_set(r)) || after.as_ref().is_some_and(|r| !key_set(r)) {
        return Err(dead(images(), "a key column is NULL".into()));
    }
    let op = match (&before, &after) {
        (None, Some(_)) => Op::Insert,
        (Some(_), Some(_)) => Op::Update,
        (Some(_), None) => Op::Delete,
        (None, None) => return Err(dead(images(), "a row event with no row image".into())),
    };
    Ok(Change {
        op,
        table: info.schema.clone(),
        before,
        after,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_log_retained_counts_from_the_held_position_to_the_end() {
        let logs = vec![
            ("mysql-bin.000001".to_owned(), 1_000),
            ("mysql-bin.000002".to_owned(), 500),
            ("mysql-bin.000003".to_owned(), 200),
        ];
        let at = |file: &str, pos| LogPos {
            file: file.into(),
            pos,
        };
        assert_eq!(
            retained_bytes(&logs, &at("mysql-bin.000002", 100)),
            Some(600)
        );
        assert_eq!(retained_bytes(&logs, &at("mysql-bin.000003", 200)), Some(0));
        assert_eq!(
            retained_bytes(&logs, &at("mysql-bin.000001", 0)),
            Some(1_700)
        );
        assert_eq!(retained_bytes(&logs, &at("mysql-bin.000009", 4)), None);
    }

    #[test]
    fn mariadb_gtid_events_read_as_domain_server_sequence() {
        let mut body = Vec::new();
        body.extend_from_slice(&42u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(FL_STANDALONE);
        body.extend_from_slice(&[0; 6]);
        let g = parse_mariadb_gtid(&body, 7).unwrap();
        assert_eq!(g.to_string(), "3-7-42");
        assert_eq!(g.flags & FL_STANDALONE, FL_STANDALONE);
        assert_eq!(parse_mariadb_gtid(&body[..10], 7), None);
    }

    #[test]
    fn statements_say_what_they_do_to_which_tables() {
        let t = |db: &str, t: &str| (db.to_owned(), t.to_owned());
        assert_eq!(
            statement_tables("TRUNCATE TABLE `orders`", "shop"),
            (Op::Truncate, vec![t("shop", "orders")])
        );
        assert_eq!(
            statement_tables("truncate shop.orders;", "x"),
            (Op::Truncate, vec![t("shop", "orders")])
        );
        assert_eq!(
            statement_tables(
                "DROP TABLE IF EXISTS `a`,`b` /* generated by server */",
                "shop"
            ),
            (Op::Delete, vec![t("shop", "a"), t("shop", "b")])
        );
        assert_eq!(
            statement_tables("RENAME TABLE orders TO old_orders, x TO orders", "shop"),
            (
                Op::Delete,
                vec![
                    t("shop", "orders"),
                    t("shop", "old_orders"),
                    t("shop", "x"),
                    t("shop", "orders")
                ]
            )
        );
        assert_eq!(
            statement_tables("ALTER TABLE orders RENAME TO o2", "shop").0,
            Op::Delete
        );
        assert_eq!(
            statement_tables("ALTER TABLE orders ADD COLUMN x INT", "shop").0,
            Op::Insert
        );
        assert_eq!(
            statement_tables("CREATE TABLE orders (id INT)", "shop").1,
            vec![]
        );
        assert_eq!(
            statement_tables("ALTER TABLE orders RENAME INDEX a TO b", "shop").0,
            Op::Insert
        );
        assert_eq!(
            statement_tables("ALTER TABLE orders RENAME COLUMN a TO b", "shop").0,
            Op::Insert
        );
        assert_eq!(
            statement_tables("-- app\n# more\n/* app */ TRUNCATE orders", "shop"),
            (Op::Truncate, vec![t("shop", "orders")])
        );
        assert_eq!(
            statement_tables("CREATE OR REPLACE TABLE orders (id INT)", "shop"),
            (Op::Delete, vec![t("shop", "orders")])
        );
        assert_eq!(
            statement_tables("DROP DATABASE IF EXISTS `shop`", "x"),
            (Op::Delete, vec![t("shop", "*")])
        );
    }

    #[test]
    fn statements_name_their_table() {
        assert_eq!(
            unquote_table("`shop`.`or``ders`", "x"),
            ("shop".into(), "or`ders".into())
        );
        assert_eq!(
            unquote_table("orders", "shop"),
            ("shop".into(), "orders".into())
        );
        assert_eq!(
            unquote_table("shop.orders", "x"),
            ("shop".into(), "orders".into())
        );
    }

    #[test]
    fn sets_from_the_log_read_as_from_a_query() {
        let ty = MyType::Set(vec!["a".into(), "b".into(), "c".into()]);
        let v = BinlogValue::Value(mysql_async::Value::Bytes(vec![0b110]));
        assert_eq!(binlog_value(&ty, v), Ok(Value::Text("b,c".into())));
    }
}
