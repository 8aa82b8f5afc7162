//! [`Assembler`]: turns the binary log's events (a GTID event, table maps,
//! row events, the `XID` or `COMMIT` that ends the transaction) into
//! [`Commit`]s, one per transaction, in the shape rules expect.
//!
//! - `txn` is the transaction's GTID, in its server's form (MariaDB's
//!   GTID event is parsed by hand, MySQL's by `mysql_common`); `source`
//!   is `mysql:SERVER`.
//! - Tables are named `db.table`, or plain `table` in the database the URL
//!   names, so rules written against an application's table names work
//!   unchanged.
//! - Column names and the primary key come from the table map's optional
//!   metadata, which only `binlog_row_metadata=FULL` writes (checked at
//!   start).
//! - Values are typed as the Postgres source types them: integers and
//!   floats as numbers, `DECIMAL`, dates, times and text as text, `ENUM`
//!   and `SET` as their labels, bytes that are not UTF-8 as `\x` and hex.
//! - A DDL statement is a transaction of its own with no rows: it ends at
//!   once, so that the position moves past it, as an empty commit, or as
//!   deletes with nothing known of the tables it empties or replaces
//!   ([`super::ddl`]). MariaDB
//!   flags it in its GTID event; on MySQL it is a transaction whose first
//!   statement is not `BEGIN` (or `XA START`).
//!
//! - Rows a foreign key's action changes, which the log lacks, are added
//!   after the row that set them off ([`super::cascade`]).
//!
//! Nothing here does I/O: the source feeds it events (and the foreign
//! keys).

use std::collections::HashMap;

use mysql_async::Value as SqlValue;
use mysql_async::binlog::events::{
    Event, EventData, OptionalMetadataField, RowsEventData, TableMapEvent,
};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;

use super::cascade::Cascades;
use super::ddl;
use super::flavour::TxnId;
use super::gtid::{GTID_EVENT, GtidEvent};
use super::gtid_set::SidGtid;
use crate::commit::{Commit, Op, Row, Value, Write};

/// What is known of a table from its table map.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// Its name as rules see it.
    pub(crate) name: String,
    /// The column names, in table order (`@N` where metadata is missing).
    pub(crate) columns: Vec<String>,
    /// The primary-key columns' indexes.
    pub(crate) key: Vec<usize>,
    /// Each column's type.
    pub(crate) types: Vec<Option<ColumnType>>,
    /// The labels of each `ENUM` or `SET` column, by column index.
    pub(crate) labels: HashMap<usize, Vec<String>>,
}

impl Table {
    /// Reads a table map; `database` is the URL's, whose tables go by
    /// their plain names.
    pub(crate) fn of(tme: &TableMapEvent<'_>, database: &str) -> Result<Self, String> {
        let db = tme.database_name();
        let table = tme.table_name();
        let name = if db == database {
            table.to_string()
        } else {
            format!("{db}.{table}")
        };
        let count = tme.columns_count() as usize;
        let types: Vec<Option<ColumnType>> = (0..count)
            .map(|i| tme.get_column_type(i).ok().flatten())
            .collect();
        let mut columns: Vec<String> = Vec::new();
        let mut key: Vec<usize> = Vec::new();
        let mut enums: Vec<Vec<String>> = Vec::new();
        let mut sets: Vec<Vec<String>> = Vec::new();
        let bad = |e: std::io::Error| format!("the table map of `{name}`: {e}");
        for field in tme.iter_optional_meta() {
            match field.map_err(bad)? {
                OptionalMetadataField::ColumnName(names) => {
                    for n in names.iter_names() {
                        columns.push(n.map_err(bad)?.name().into_owned());
                    }
                }
                OptionalMetadataField::SimplePrimaryKey(pk) => {
                    for i in pk.iter_indexes() {
                        key.push(i.map_err(bad)? as usize);
                    }
                }
                OptionalMetadataField::PrimaryKeyWithPrefix(pk) => {
                    for k in pk.iter_keys() {
                        key.push(k.map_err(bad)?.column_index() as usize);
                    }
                }
                OptionalMetadataField::EnumStrValue(values) => {
                    for column in values.iter_values() {
                        let column = column.map_err(bad)?;
                        enums.push(
                            column
                                .values()
                                .iter()
                                .map(|v| v.value().into_owned())
                                .collect(),
                        );
                    }
                }
                OptionalMetadataField::SetStrValue(values) => {
                    for column in values.iter_values() {
                        let column = column.map_err(bad)?;
                        sets.push(
                            column
                                .values()
                                .iter()
                                .map(|v| v.value().into_owned())
                                .collect(),
                        );
                    }
                }
                _ => {}
            }
        }
        if columns.len() != count {
            return Err(format!(
                "the table map of `{name}` names {} of its {count} columns: is \
                 `binlog_row_metadata` FULL?",
                columns.len()
            ));
        }
        // Labels are listed per ENUM (and per SET) column, in column order.
        let mut labels = HashMap::new();
        let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
        for (i, t) in types.iter().enumerate() {
            let next = match t {
                Some(ColumnType::MYSQL_TYPE_ENUM) => enums.next(),
                Some(ColumnType::MYSQL_TYPE_SET) => sets.next(),
                _ => continue,
            };
            if let Some(list) = next {
                labels.insert(i, list);
            }
        }
        Ok(Self {
            name,
            columns,
            key,
            types,
            labels,
        })
    }

    /// A row image as rules see it: every column the image holds.
    fn row(&self, row: BinlogRow) -> Row {
        let names: Vec<String> = row
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        names
            .into_iter()
            .zip(row.unwrap())
            .map(|(name, value)| {
                let index = self.columns.iter().position(|c| *c == name);
                let value = self.value(index, value);
                (name, value)
            })
            .collect()
    }

    /// The key columns of `row`.
    fn key_of(&self, row: &Row) -> Row {
        self.key
            .iter()
            .filter_map(|&i| {
                let name = self.columns.get(i)?;
                row.iter().find(|(n, _)| n == name).cloned()
            })
            .collect()
    }

    /// A value of column `index`, typed as rules see it.
    fn value(&self, index: Option<usize>, value: BinlogValue<'_>) -> Value {
        let kind = index.and_then(|i| self.types.get(i).copied().flatten());
        let labels = index.and_then(|i| self.labels.get(&i));
        match value {
            BinlogValue::Value(v) => typed(v, kind, labels),
            // MySQL's binary JSON (MariaDB's JSON is text).
            // MySQL logs JSON in its binary form (MariaDB's is text):
            // rendered as JSON text, as the Postgres source gives it.
            BinlogValue::Jsonb(j) => match j.clone().parse() {
                Ok(dom) => Value::Text(serde_json::Value::from(dom).to_string()),
                Err(_) => Value::Text(format!("{j:?}")),
            },
            BinlogValue::JsonDiff(d) => Value::Text(format!("{d:?}")),
        }
    }
}

/// A column value by its type: see the module's documentation.
fn typed(value: SqlValue, kind: Option<ColumnType>, labels: Option<&Vec<String>>) -> Value {
    match value {
        SqlValue::NULL => Value::Null,
        SqlValue::Int(n) => match (kind, labels) {
            // An ENUM is its label's index, from 1 (0: the empty error value).
            (Some(ColumnType::MYSQL_TYPE_ENUM), Some(labels)) => Value::Text(
                usize::try_from(n)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| labels.get(i))
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => Value::Integer(n),
        },
        SqlValue::UInt(n) => match i64::try_from(n) {
            Ok(n) => Value::Integer(n),
            Err(_) => Value::Text(n.to_string()),
        },
        SqlValue::Float(f) => Value::Float(f.into()),
        SqlValue::Double(f) => Value::Float(f),
        SqlValue::Bytes(bytes) => match (kind, labels) {
            // A SET is a bit mask of its labels, little-endian.
            (Some(ColumnType::MYSQL_TYPE_SET), Some(labels)) => {
                let mut mask = [0u8; 8];
                let n = bytes.len().min(8);
                mask[..n].copy_from_slice(&bytes[..n]);
                let mask = u64::from_le_bytes(mask);
                let chosen: Vec<&str> = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && mask & (1 << i) != 0)
                    .map(|(_, l)| l.as_str())
                    .collect();
                Value::Text(chosen.join(","))
            }
            _ => text(bytes),
        },
        SqlValue::Date(y, m, d, h, mi, s, us) => {
            let date = format!("{y:04}-{m:02}-{d:02}");
            if matches!(
                kind,
                Some(ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE)
            ) {
                Value::Text(date)
            } else if us == 0 {
                Value::Text(format!("{date} {h:02}:{mi:02}:{s:02}"))
            } else {
                Value::Text(format!("{date} {h:02}:{mi:02}:{s:02}.{us:06}"))
            }
        }
        SqlValue::Time(negative, days, h, m, s, us) => {
            let sign = if negative { "-" } else { "" };
            let hours = u64::from(days) * 24 + u64::from(h);
            if us == 0 {
                Value::Text(format!("{sign}{hours:02}:{m:02}:{s:02}"))
            } else {
                Value::Text(format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}"))
            }
        }
    }
}

/// Bytes as text: UTF-8 as it is, anything else as `\x` and hex (as
/// Postgres prints `bytea`).
fn text(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(s) => Value::Text(s),
        Err(e) => {
            let mut hex = String::from("\\x");
            for b in e.as_bytes() {
                hex.push_str(&format!("{b:02x}"));
            }
            Value::Text(hex)
        }
    }
}

/// Something in the stream that could not be taken as it is; logged by
/// the source, never fatal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Oddity {
    /// The binary log position of the event (`log_pos`, where the next
    /// one starts).
    pub(crate) pos: u32,
    /// What was odd, and what was done instead.
    pub(crate) what: String,
}

/// The transaction being read.
struct Open {
    gtid: TxnId,
    /// A transaction of one statement with no end event after it (DDL).
    standalone: bool,
    /// The first part of an XA transaction: its rows are held at its
    /// `XA PREPARE` until an `XA COMMIT` ends it.
    prepared_xa: bool,
    /// Its XA id, as its `XA END` names it (`X'7831',X'',1`).
    xid: Option<String>,
    writes: Vec<Write>,
}

/// The `XA PREPARE` event (the same number on MariaDB and MySQL).
const XA_PREPARE_EVENT: u8 = 38;

/// Where in the binary log: a file, and a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LogPos {
    /// The file, as `SHOW MASTER STATUS` names it (`binlog.000042`): the
    /// server numbers them with zero-padded digits, so names order as the
    /// files do.
    pub(crate) file: String,
    /// The offset.
    pub(crate) pos: u64,
}

/// What an event meant to the transaction being read.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Nothing to hand over yet.
    Nothing,
    /// A transaction ended: hand it over once it is visible (everything
    /// up to `end` in the log is); its GTID is the new position.
    Committed {
        commit: Commit,
        gtid: TxnId,
        end: LogPos,
        /// A DDL transaction: the foreign keys may have changed.
        ddl: bool,
    },
    /// An XA transaction was prepared: its rows are held until its
    /// `XA COMMIT`, and the position must not pass it while they are.
    Held(TxnId),
}

/// Assembles transactions from the stream's events.
pub(crate) struct Assembler {
    /// `mysql:SERVER`, each commit's source.
    source: String,
    /// The database the URL names.
    database: String,
    tables: HashMap<u64, Table>,
    open: Option<Open>,
    oddities: Vec<Oddity>,
    /// The log file being read, from the last rotate event.
    file: String,
    /// Prepared XA transactions' rows, by XA id, until committed or
    /// rolled back.
    held: Vec<(String, Vec<Write>)>,
    /// The foreign keys whose actions change rows the log does not carry.
    cascades: Cascades,
}

impl Assembler {
    pub(crate) fn new(source: String, database: String) -> Self {
        Self {
            source,
            database,
            tables: HashMap::new(),
            open: None,
            oddities: Vec::new(),
            file: String::new(),
            held: Vec::new(),
            cascades: Cascades::default(),
        }
    }

    /// Sets the foreign keys whose actions are followed.
    pub(crate) fn set_cascades(&mut self, cascades: Cascades) {
        self.cascades = cascades;
    }

    /// How many prepared XA transactions are held.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Forgets a transaction half read (the stream broke): it is read
    /// again from the position.
    pub(crate) fn reset(&mut self) {
        self.open = None;
        self.tables.clear();
        // Held XA transactions stay: the stream resumes after their
        // prepare.
    }

    /// The oddities since last taken.
    pub(crate) fn take_oddities(&mut self) -> Vec<Oddity> {
        std::mem::take(&mut self.oddities)
    }

    fn odd(&mut self, event: &Event, what: String) {
        self.oddities.push(Oddity {
            pos: event.header().log_pos(),
            what,
        });
    }

    /// Takes one event. A table map is needed to read the rows that
    /// follow it: `table_map` finds the one the stream kept by id.
    pub(crate) fn event<'t>(
        &mut self,
        event: &Event,
        table_map: impl Fn(u64) -> Option<&'t TableMapEvent<'static>>,
    ) -> Step {
        if let Some(what) = checksum_mismatch(event) {
            self.odd(event, what);
        }
        let header = event.header();
        if header.event_type_raw() == GTID_EVENT {
            return self.gtid(event);
        }
        if header.event_type_raw() == XA_PREPARE_EVENT {
            return self.prepared(event);
        }
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            // MariaDB's own events other than GTID (annotations, GTID
            // lists, checkpoints): nothing of a transaction's rows.
            Ok(None) => return Step::Nothing,
            Err(e) => {
                self.odd(
                    event,
                    format!("an event that could not be read ({e}): skipped"),
                );
                return Step::Nothing;
            }
        };
        match data {
            EventData::RotateEvent(_) => {
                self.file = rotated_to(event);
                Step::Nothing
            }
            EventData::TableMapEvent(tme) => {
                match Table::of(&tme, &self.database) {
                    Ok(table) => {
                        self.tables.insert(tme.table_id(), table);
                    }
                    Err(what) => self.odd(event, what),
                }
                Step::Nothing
            }
            EventData::RowsEvent(rows) => {
                self.rows(event, &rows, table_map);
                Step::Nothing
            }
            EventData::GtidEvent(gtid) => {
                // MySQL's: a DDL transaction until a `BEGIN` says it is not.
                let tag = gtid.tag().map(ToString::to_string);
                let id = SidGtid::of_event(gtid.sid(), tag, gtid.gno());
                self.begin(event, TxnId::Set(id), true, false);
                Step::Nothing
            }
            EventData::XidEvent(_) => self.end(event),
            EventData::QueryEvent(query) => {
                let text = query.query();
                let statement = text.trim();
                let upper = statement.to_ascii_uppercase();
                if statement.eq_ignore_ascii_case("COMMIT") {
                    self.end(event)
                } else if let Some(xid) = upper.strip_prefix("XA END ") {
                    if let Some(open) = &mut self.open {
                        open.xid = Some(xid.trim().to_owned());
                    }
                    Step::Nothing
                } else if let Some(xid) = upper.strip_prefix("XA COMMIT ") {
                    self.xa_completed(event, xid.trim(), true)
                } else if let Some(xid) = upper.strip_prefix("XA ROLLBACK ") {
                    self.xa_completed(event, xid.trim(), false)
                } else if statement.eq_ignore_ascii_case("BEGIN") || upper.starts_with("XA START ")
                {
                    // MySQL opens a transaction of rows so (MariaDB's GTID
                    // event says it instead).
                    if let Some(open) = &mut self.open {
                        open.standalone = false;
                        open.prepared_xa |= upper.starts_with("XA START ");
                    }
                    Step::Nothing
                } else if self.open.as_ref().is_some_and(|o| o.standalone) {
                    // DDL: the whole transaction. A table it empties or
                    // replaces (`TRUNCATE`, `DROP`, `RENAME`) has no row
                    // events: a delete with nothing known (no key, an empty
                    // image), as the Postgres source gives a `TRUNCATE`, so
                    // rules invalidate the whole table.
                    let tables = ddl::emptied(statement, &query.schema(), &self.database);
                    if let Some(open) = &mut self.open {
                        open.writes.extend(tables.into_iter().map(|table| Write {
                            table,
                            op: Op::Delete,
                            key: Row::new(),
                            before: Some(Row::new()),
                            after: None,
                        }));
                    }
                    self.end(event)
                } else if self.open.is_none() || is_savepoint(&upper) {
                    // Savepoints are logged as text inside a transaction
                    // (Django's nested `atomic`, `get_or_create`,
                    // SQLAlchemy's `begin_nested`), and write nothing;
                    // rows rolled back to one are cut from the log.
                    Step::Nothing
                } else {
                    // Inside a transaction, a statement logged as text: a
                    // session that set `binlog_format=STATEMENT` (or
                    // MIXED chose it). Its rows are not in the log.
                    let shown: String = statement.chars().take(120).collect();
                    self.odd(
                        event,
                        format!(
                            "a write logged as a statement, not as rows (a session with \
                             binlog_format=STATEMENT or MIXED); rules cannot see its rows: \
                             `{shown}`"
                        ),
                    );
                    Step::Nothing
                }
            }
            _ => Step::Nothing,
        }
    }

    /// MariaDB's GTID event, which `mysql_common` does not know.
    fn gtid(&mut self, event: &Event) -> Step {
        match GtidEvent::parse(event.data(), event.header().server_id()) {
            Ok(gtid) => self.begin(
                event,
                TxnId::Domain(gtid.gtid),
                gtid.standalone,
                gtid.prepared_xa,
            ),
            Err(what) => self.odd(event, what),
        }
        Step::Nothing
    }

    /// A transaction begins with its id: one still open did not end, and
    /// its rows are carried into this one (the safe way: invalidated too).
    fn begin(&mut self, event: &Event, gtid: TxnId, standalone: bool, prepared_xa: bool) {
        if let Some(open) = &self.open {
            let what = format!(
                "transaction {} did not end before {gtid}: its rows are read with the next",
                open.gtid
            );
            self.odd(event, what);
        }
        let writes = self.open.take().map(|o| o.writes).unwrap_or_default();
        self.open = Some(Open {
            gtid,
            standalone,
            prepared_xa,
            xid: None,
            writes,
        });
    }

    fn rows<'t>(
        &mut self,
        event: &Event,
        rows: &RowsEventData<'_>,
        table_map: impl Fn(u64) -> Option<&'t TableMapEvent<'static>>,
    ) {
        let id = rows.table_id();
        let (Some(table), Some(tme)) = (self.tables.get(&id), table_map(id)) else {
            let what = format!("rows of table id {id}, whose table map was not read: skipped");
            self.odd(event, what);
            return;
        };
        let table = table.clone();
        // A session's `binlog_row_image=MINIMAL` (or NOBLOB) logs only some
        // columns: rules see the others as changed, which costs misses,
        // never a stale key; it is still worth knowing.
        let n = table.columns.len();
        let partial_before = rows
            .columns_before_image()
            .is_some_and(|bits| bits.iter().take(n).any(|b| !*b));
        let partial_after = rows
            .columns_after_image()
            .is_some_and(|bits| bits.iter().take(n).any(|b| !*b));
        if partial_before || partial_after {
            let what = format!(
                "rows of `{}` logged with some columns only (a session with \
                 binlog_row_image=MINIMAL or NOBLOB): rules see the others as changed",
                table.name
            );
            self.odd(event, what);
        }
        let mut writes = Vec::new();
        let mut odd = None;
        for pair in rows.rows(tme) {
            let (before, after) = match pair {
                Ok(pair) => pair,
                Err(e) => {
                    odd = Some(format!(
                        "rows of `{}` that could not be read: {e}",
                        table.name
                    ));
                    break;
                }
            };
            let before = before.map(|r| table.row(r));
            let after = after.map(|r| table.row(r));
            let (op, key) = match (&before, &after) {
                (None, Some(after)) => (Op::Insert, table.key_of(after)),
                (Some(_), Some(after)) => (Op::Update, table.key_of(after)),
                (Some(before), None) => (Op::Delete, table.key_of(before)),
                (None, None) => continue,
            };
            let write = Write {
                table: table.name.clone(),
                op,
                key,
                before,
                after,
            };
            // What the write's foreign keys change, which the log lacks.
            let children = self.cascades.follow(&write);
            writes.push(write);
            writes.extend(children);
        }
        if let Some(what) = odd {
            self.odd(event, what);
        }
        match &mut self.open {
            Some(open) => open.writes.extend(writes),
            None => {
                let what = format!(
                    "rows of `{}` outside a transaction (no GTID event before them): skipped",
                    table.name
                );
                self.odd(event, what);
            }
        }
    }

    /// `XA PREPARE`: the open transaction's rows are held until its
    /// `XA COMMIT`.
    fn prepared(&mut self, event: &Event) -> Step {
        // Its first byte says "one phase": MySQL logs `XA COMMIT … ONE
        // PHASE` as this event, after `XA END`, and nothing follows it.
        if event.data().first() == Some(&1) {
            return self.end(event);
        }
        let Some(open) = self.open.take() else {
            self.odd(event, "an XA PREPARE with no GTID event before it".into());
            return Step::Nothing;
        };
        let Some(xid) = open.xid.clone().filter(|_| open.prepared_xa) else {
            // Not as MariaDB writes XA: take it as ended, the safe way.
            self.odd(
                event,
                format!(
                    "an XA PREPARE of transaction {} with no XA END before it: its rows are \
                     applied now",
                    open.gtid
                ),
            );
            self.open = Some(open);
            return self.end(event);
        };
        self.held.push((xid, open.writes));
        Step::Held(open.gtid)
    }

    /// `XA COMMIT` (or, `committed` false, `XA ROLLBACK`) of the prepared
    /// transaction `xid`: its held rows are handed over, or dropped, with
    /// this transaction.
    fn xa_completed(&mut self, event: &Event, xid: &str, committed: bool) -> Step {
        if xid.ends_with(" ONE PHASE") {
            // Never prepared: the rows are this transaction's own. (MySQL
            // logs a one-phase commit as a flagged prepare event instead:
            // see `prepared`.)
            return self.end(event);
        }
        match self.held.iter().position(|(held, _)| held == xid) {
            Some(i) => {
                let (_, writes) = self.held.remove(i);
                if committed && let Some(open) = &mut self.open {
                    open.writes.extend(writes);
                }
            }
            None if committed => {
                let what = format!(
                    "XA COMMIT {xid} of a transaction prepared before this stream began: its \
                     rows are unknown, and not invalidated"
                );
                self.odd(event, what);
            }
            None => {}
        }
        self.end(event)
    }

    fn end(&mut self, event: &Event) -> Step {
        let Some(open) = self.open.take() else {
            self.odd(
                event,
                "a transaction end with no GTID event before it".into(),
            );
            return Step::Nothing;
        };
        let commit = Commit {
            txn: open.gtid.to_string(),
            source: Some(self.source.clone()),
            writes: open.writes,
        };
        Step::Committed {
            commit,
            ddl: open.standalone,
            gtid: open.gtid,
            end: LogPos {
                file: self.file.clone(),
                pos: u64::from(event.header().log_pos()),
            },
        }
    }
}

/// Whether `upper` (a statement, upper-cased) sets, releases or rolls
/// back to a savepoint.
fn is_savepoint(upper: &str) -> bool {
    upper.starts_with("SAVEPOINT ")
        || upper.starts_with("RELEASE SAVEPOINT ")
        || upper.starts_with("ROLLBACK TO ")
        || upper.starts_with("ROLLBACK WORK TO ")
}

/// The file a rotate event names. The first event of a stream is an
/// artificial rotate sent before the format description, and
/// `mysql_common` then leaves its checksum on the end of the name
/// (mysql_async issue 189): the last four bytes are dropped when they are
/// the CRC32 of the rest of the event.
fn rotated_to(event: &Event) -> String {
    let body = event.data();
    let name = body.get(8..).unwrap_or_default();
    if name.len() > 4 {
        let (rest, crc) = body.split_at(body.len() - 4);
        let h = event.header();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&h.timestamp().to_le_bytes());
        hasher.update(&[h.event_type_raw()]);
        hasher.update(&h.server_id().to_le_bytes());
        hasher.update(&h.event_size().to_le_bytes());
        hasher.update(&h.log_pos().to_le_bytes());
        hasher.update(&h.flags_raw().to_le_bytes());
        hasher.update(rest);
        if hasher.finalize().to_le_bytes() == crc {
            return String::from_utf8_lossy(&name[..name.len() - 4]).into_owned();
        }
    }
    String::from_utf8_lossy(name).into_owned()
}

/// Whether `event`'s checksum is wrong: `mysql_common` strips it without
/// checking it. `None` when it is right, or when the event has none (the
/// server's `binlog_checksum=NONE`, or the first, artificial rotate).
fn checksum_mismatch(event: &Event) -> Option<String> {
    use mysql_async::binlog::BinlogChecksumAlg;
    // The events of a compressed transaction (MySQL's
    // `binlog_transaction_compression`) carry none: the payload that held
    // them was checked.
    if !event.footer().get_checksum_enabled() {
        return None;
    }
    let alg = event.footer().get_checksum_alg().ok().flatten()?;
    if alg != BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32 {
        return None;
    }
    let stored = u32::from_le_bytes(event.checksum()?);
    let computed = event.calc_checksum(alg);
    (stored != computed).then(|| {
        format!("an event whose CRC32 is {stored:08x}, computed {computed:08x}: read anyway")
    })
}

#[cfg(test)]
mod tests {
    //! MySQL's transaction shapes, from events built byte by byte as MySQL
    //! 8 writes them (MySQL itself could not be installed here; MariaDB's
    //! are covered against a real server in `host/tests/mysql.rs`).

    use mysql_async::binlog::BinlogVersion;
    use mysql_async::binlog::events::FormatDescriptionEvent;

    use super::*;

    const SID: [u8; 16] = [
        0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95,
        0x62,
    ];
    const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    /// An event of type `kind` with `body`, as the stream carries it
    /// (with no checksum).
    fn event(kind: u8, body: &[u8]) -> Event {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes()); // timestamp
        bytes.push(kind);
        bytes.extend_from_slice(&1u32.to_le_bytes()); // server id
        bytes.extend_from_slice(&((19 + body.len()) as u32).to_le_bytes());
        bytes.extend_from_slice(&4u32.to_le_bytes()); // log position
        bytes.extend_from_slice(&0u16.to_le_bytes()); // flags
        bytes.extend_from_slice(body);
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        Event::read(&fde, &bytes[..]).expect("a well-formed event")
    }

    /// MySQL's GTID event (33): flags, server UUID, number, then the
    /// logical clock.
    fn gtid(gno: u64) -> Event {
        let mut body = vec![1];
        body.extend_from_slice(&SID);
        body.extend_from_slice(&gno.to_le_bytes());
        body.push(2);
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        event(33, &body)
    }

    /// A query event (2) of `text`, with no status variables.
    fn query(text: &str) -> Event {
        query_in("", text)
    }

    /// A query event of `text` in a session whose database is `schema`.
    fn query_in(schema: &str, text: &str) -> Event {
        let mut body = vec![0; 8]; // thread id, execution time
        body.push(schema.len() as u8);
        body.extend_from_slice(&[0, 0, 0, 0]); // error code, status length
        body.extend_from_slice(schema.as_bytes());
        body.push(0); // the schema's terminator
        body.extend_from_slice(text.as_bytes());
        event(2, &body)
    }

    fn xid() -> Event {
        event(16, &7u64.to_le_bytes())
    }

    fn feed(assembler: &mut Assembler, events: &[Event]) -> Vec<Step> {
        events
            .iter()
            .map(|e| assembler.event(e, |_| None))
            .filter(|s| *s != Step::Nothing)
            .collect()
    }

    fn committed_txn(step: &Step) -> String {
        match step {
            Step::Committed { commit, .. } => commit.txn.clone(),
            other => panic!("not a commit: {other:?}"),
        }
    }

    #[test]
    fn mysql_ddl_ends_at_its_statement_and_dml_at_its_xid() {
        let mut a = Assembler::new("mysql:1".into(), "app".into());
        let steps = feed(
            &mut a,
            &[
                gtid(5),
                query("CREATE TABLE t (id int primary key)"),
                gtid(6),
                query("BEGIN"),
                xid(),
            ],
        );
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(committed_txn(&steps[0]), format!("{UUID}:5"));
        assert_eq!(committed_txn(&steps[1]), format!("{UUID}:6"));
        assert!(a.take_oddities().is_empty());
    }

    #[test]
    fn truncate_is_a_delete_of_every_row_of_its_table() {
        let mut a = Assembler::new("mysql:1".into(), "app".into());
        let steps = feed(
            &mut a,
            &[
                gtid(12),
                query_in("app", "TRUNCATE TABLE inventory"),
                gtid(13),
                query_in("app", "truncate `shop`.`bills`"),
            ],
        );
        let tables: Vec<Vec<(String, Op, usize)>> = steps
            .iter()
            .map(|step| match step {
                Step::Committed { commit, .. } => commit
                    .writes
                    .iter()
                    .map(|w| (w.table.clone(), w.op, w.key.len()))
                    .collect(),
                other => panic!("not a commit: {other:?}"),
            })
            .collect();
        assert_eq!(
            tables,
            [
                vec![("inventory".to_owned(), Op::Delete, 0)],
                vec![("shop.bills".to_owned(), Op::Delete, 0)]
            ]
        );
    }

    #[test]
    fn savepoints_are_no_statement_writes() {
        let mut a = Assembler::new("mysql:1".into(), "app".into());
        let steps = feed(
            &mut a,
            &[
                gtid(10),
                query("BEGIN"),
                query("SAVEPOINT `s1`"),
                query("ROLLBACK TO `s1`"),
                query("RELEASE SAVEPOINT `s1`"),
                xid(),
            ],
        );
        assert_eq!(committed_txn(&steps[0]), format!("{UUID}:10"));
        assert!(a.take_oddities().is_empty());
        // A statement that writes is still one.
        feed(
            &mut a,
            &[gtid(11), query("BEGIN"), query("UPDATE t SET v = 1"), xid()],
        );
        assert_eq!(a.take_oddities().len(), 1);
    }

    #[test]
    fn mysql_xa_is_held_from_prepare_to_commit_and_one_phase_is_not() {
        let mut a = Assembler::new("mysql:1".into(), "app".into());
        let xa = "X'78',X'',1";
        let steps = feed(
            &mut a,
            &[
                gtid(7),
                query(&format!("XA START {xa}")),
                query(&format!("XA END {xa}")),
                event(38, &[0; 13]),
            ],
        );
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(matches!(&steps[0], Step::Held(TxnId::Set(g)) if g.gno == 7));
        assert_eq!(a.held(), 1);
        let steps = feed(&mut a, &[gtid(8), query(&format!("XA COMMIT {xa}"))]);
        assert_eq!(committed_txn(&steps[0]), format!("{UUID}:8"));
        assert_eq!(a.held(), 0);
        // One phase, as MySQL logs it: the prepare event, flagged; never
        // held, nothing odd.
        let mut one_phase = vec![1];
        one_phase.extend_from_slice(&[0; 12]);
        let steps = feed(
            &mut a,
            &[
                gtid(9),
                query(&format!("XA START {xa}")),
                query(&format!("XA END {xa}")),
                event(38, &one_phase),
            ],
        );
        assert_eq!(committed_txn(&steps[0]), format!("{UUID}:9"));
        assert!(a.take_oddities().is_empty(), "{:?}", a.take_oddities());
    }
}
