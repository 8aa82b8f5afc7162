//! [`Catalog`]: a plain (not replication) connection to the database, for
//! what the replication stream does not carry: each table's primary key,
//! the publication and slot (checked, and created when allowed), the
//! tables whose updates carry no `before` image, and how much WAL the slot
//! holds back.

use std::collections::HashSet;
use std::time::Duration;

use pg_walstream::sql_builder::quote_literal;
use pg_walstream::{PgReplicationConnection, PgResult};

use super::config::{PostgresConfig, redact};
use super::error::PostgresError;
use super::setup::{Facts, Identity, PublicationFacts, RoleFacts, Setup, SlotFacts, TableFacts};
use super::tables::{RuleTables, TableName, sql_literal};

/// A connection for catalog queries.
pub(crate) struct Catalog {
    conn: PgReplicationConnection,
}

/// What [`Catalog::prepare`] found and did.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The database's name.
    pub(crate) database: String,
    /// `wal_sender_timeout`: how long the server waits for a word from us
    /// before it ends the stream (zero: never).
    pub(crate) wal_sender_timeout: std::time::Duration,
}

/// Where the slot stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SlotPosition {
    /// WAL the slot keeps from being recycled: the server's current
    /// position minus the slot's confirmed one, in bytes.
    pub(crate) retained_bytes: u64,
    /// The slot's confirmed position (`confirmed_flush_lsn`).
    pub(crate) confirmed: u64,
    /// Whether a process streams from it now.
    pub(crate) active: bool,
}

/// A replication slot of the server, as `invalidator postgres slots`
/// lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotInfo {
    /// Its name.
    pub name: String,
    /// `logical` or `physical`.
    pub kind: String,
    /// Its output plugin (logical slots).
    pub plugin: Option<String>,
    /// Its database (logical slots).
    pub database: Option<String>,
    /// Whether a process streams from it now.
    pub active: bool,
    /// WAL it keeps from being recycled, in bytes (from its restart
    /// position).
    pub retained_bytes: u64,
}

impl Catalog {
    /// Connects to `url`.
    pub(crate) async fn connect(url: &str) -> Result<Self, PostgresError> {
        let conn = PgReplicationConnection::connect_async(url)
            .await
            .map_err(|error| PostgresError::Connect {
                address: redact(url),
                error,
            })?;
        Ok(Self { conn })
    }

    /// Runs `sql`; the rows, each value as text (`None` for NULL).
    async fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PostgresError> {
        let result: PgResult =
            self.conn
                .exec_async(sql)
                .await
                .map_err(|error| PostgresError::Statement {
                    statement: sql.to_owned(),
                    error,
                })?;
        Ok((0..result.ntuples())
            .map(|r| {
                (0..result.nfields())
                    .map(|c| result.get_value(r, c))
                    .collect()
            })
            .collect())
    }

    /// The first value of the first row, if any.
    async fn value(&mut self, sql: &str) -> Result<Option<String>, PostgresError> {
        Ok(self
            .rows(sql)
            .await?
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten()))
    }

    /// What the source needs to know of the database, for rules reading
    /// `wanted`, with publication and slot named by `config`.
    pub(crate) async fn facts(
        &mut self,
        config: &PostgresConfig,
        wanted: &RuleTables,
    ) -> Result<Facts, PostgresError> {
        let database = self
            .value("SELECT current_database()")
            .await?
            .unwrap_or_default();
        let wal_level = self.value("SHOW wal_level").await?.unwrap_or_default();
        let role = self
            .rows(
                "SELECT current_user, rolsuper, rolreplication, \
                 has_database_privilege(current_database(), 'CREATE') \
                 FROM pg_roles WHERE rolname = current_user",
            )
            .await?
            .into_iter()
            .next()
            .map(|row| RoleFacts {
                name: text(&row, 0),
                superuser: flag(&row, 1),
                replication: flag(&row, 2),
                create: flag(&row, 3),
            })
            .unwrap_or_default();
        let name = literal(&config.publication)?;
        let publication = match self
            .rows(&format!(
                "SELECT puballtables, pg_get_userbyid(pubowner) FROM pg_publication \
                 WHERE pubname = {name}"
            ))
            .await?
            .into_iter()
            .next()
        {
            None => None,
            Some(row) => {
                let tables = self
                    .rows(&format!(
                        "SELECT schemaname, tablename FROM pg_publication_tables \
                         WHERE pubname = {name}"
                    ))
                    .await?
                    .iter()
                    .map(|r| TableName::new(&text(r, 0), &text(r, 1)))
                    .collect();
                Some(PublicationFacts {
                    all_tables: flag(&row, 0),
                    owner: text(&row, 1),
                    tables,
                })
            }
        };
        let slot = self
            .rows(&format!(
                "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = {}",
                literal(&config.slot)?
            ))
            .await?
            .into_iter()
            .next()
            .map(|row| SlotFacts {
                plugin: text(&row, 0),
                database: text(&row, 1),
            });
        let tables = self.tables(wanted).await?;
        Ok(Facts {
            database,
            wal_level,
            role,
            publication,
            slot,
            tables,
        })
    }

    /// The tables that exist among `wanted` (every user table for
    /// [`RuleTables::All`]), with their replica identity.
    async fn tables(&mut self, wanted: &RuleTables) -> Result<Vec<TableFacts>, PostgresError> {
        let filter = match wanted {
            RuleTables::All(_) => "n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_%'"
                .to_owned(),
            RuleTables::Some(tables) if tables.is_empty() => return Ok(Vec::new()),
            RuleTables::Some(tables) => format!(
                "(n.nspname, c.relname) IN ({})",
                tables
                    .iter()
                    .map(|t| format!("({}, {})", sql_literal(&t.schema), sql_literal(&t.table)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let sql = format!(
            "SELECT n.nspname, c.relname, c.relreplident, \
             EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), \
             EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {filter} ORDER BY 1, 2"
        );
        Ok(self
            .rows(&sql)
            .await?
            .iter()
            .map(|row| {
                let identity = match text(row, 2).as_str() {
                    "f" => Identity::Full,
                    "d" if flag(row, 3) => Identity::Key,
                    "i" if flag(row, 4) => Identity::Key,
                    _ => Identity::Nothing,
                };
                TableFacts {
                    name: TableName::new(&text(row, 0), &text(row, 1)),
                    identity,
                }
            })
            .collect())
    }

    /// Checks what the source needs for rules reading `wanted`: creates
    /// the publication (for exactly their tables) and the slot when they
    /// are missing and `config.create` allows it, makes an existing
    /// publication follow the rules' tables, and says once what the
    /// tables lack.
    pub(crate) async fn prepare(
        &mut self,
        config: &PostgresConfig,
        wanted: &RuleTables,
    ) -> Result<Prepared, PostgresError> {
        let facts = self.facts(config, wanted).await?;
        let database = facts.database.clone();
        if facts.wal_level != "logical" {
            return Err(PostgresError::WalLevel {
                database: database.to_string(),
                wal_level: facts.wal_level.to_string(),
            });
        }
        if !facts.role.superuser && !facts.role.replication {
            return Err(PostgresError::NoReplication {
                role: facts.role.name.clone(),
                database: database.to_string(),
            });
        }
        let setup = Setup::new(wanted, &facts);
        if config.require_full_identity && !setup.not_full.is_empty() {
            return Err(PostgresError::IdentityRequired {
                tables: names(&setup.not_full),
            });
        }
        self.publish(config, &setup, &facts, true).await?;
        self.ensure_slot(config, &database).await?;
        let timeout = self
            .value(
                "SELECT setting::int8 * CASE unit WHEN 's' THEN 1000 ELSE 1 END \
                 FROM pg_settings WHERE name = 'wal_sender_timeout'",
            )
            .await?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(60_000);
        Ok(Prepared {
            database,
            wal_sender_timeout: Duration::from_millis(timeout),
        })
    }

    /// Makes the publication follow rules that now read `wanted` (a swap
    /// brought or took tables), before those rules serve.
    pub(crate) async fn follow(
        &mut self,
        config: &PostgresConfig,
        wanted: &RuleTables,
    ) -> Result<(), PostgresError> {
        let facts = self.facts(config, wanted).await?;
        let setup = Setup::new(wanted, &facts);
        self.publish(config, &setup, &facts, false).await
    }

    /// Creates the publication, or makes it name the rules' tables, as
    /// `config` allows; warns of what the tables lack (all of it at start,
    /// only what is refused on a swap).
    async fn publish(
        &mut self,
        config: &PostgresConfig,
        setup: &Setup,
        facts: &Facts,
        at_start: bool,
    ) -> Result<(), PostgresError> {
        let name = &config.publication;
        let database = &facts.database;
        match &setup.publish {
            None if !setup.no_identity.is_empty() => tracing::warn!(
                rules = setup.all_tables_for.join(", "),
                tables = names(&setup.no_identity),
                "a rule reads every table, so the publication is FOR ALL TABLES: Postgres \
                 refuses UPDATE and DELETE on these tables, which have no primary key or \
                 replica identity. Give each a primary key or REPLICA IDENTITY FULL"
            ),
            _ => {}
        }
        if setup.publish.is_some() {
            for table in &setup.no_identity {
                tracing::error!(
                    %table,
                    fix = format!("ALTER TABLE {} REPLICA IDENTITY FULL", table.sql()),
                    "a rule reads this table, but it has no primary key or replica identity: it \
                     is not published (Postgres would refuse its updates and deletes), so its \
                     writes invalidate nothing. Give it a primary key, or run the statement"
                );
            }
        }
        if at_start {
            if !setup.absent.is_empty() {
                tracing::warn!(
                    %database,
                    tables = names(&setup.absent),
                    "tables the rules read are not in the database (a table outside `public` \
                     is named `schema.table` in a rule)"
                );
            }
            if setup.publish.as_ref().is_some_and(|t| t.is_empty()) {
                tracing::warn!(
                    %database,
                    "no table the rules read can be published: the source will see no write"
                );
            }
            if !setup.not_full.is_empty() {
                tracing::warn!(
                    tables = names(&setup.not_full),
                    "the rules' tables without REPLICA IDENTITY FULL: their updates and deletes \
                     carry only the old row's key, so a delete makes a rule that reads other \
                     columns fall back, and a row that moves (to another parent, say) leaves \
                     its old place stale. Run `ALTER TABLE ... REPLICA IDENTITY FULL` on them"
                );
            }
        }
        let Some(now) = &facts.publication else {
            let sql = setup.create_publication(name);
            if !config.create {
                return Err(PostgresError::NoPublication {
                    name: name.to_string(),
                    database: database.to_string(),
                    sql,
                });
            }
            return match self.create(&sql).await {
                Ok(true) => {
                    tracing::info!(publication = %name, %database, statement = %sql,
                        "created the publication");
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(PostgresError::PublicationNotCreated {
                    name: name.to_string(),
                    role: facts.role.name.clone(),
                    cause: e.cause(),
                }),
            };
        };
        if now.all_tables {
            if setup.publish.is_some() && at_start {
                tracing::warn!(
                    publication = %name,
                    "the publication is FOR ALL TABLES though the rules read only some: \
                     Postgres refuses UPDATE and DELETE on every table without a replica \
                     identity. `invalidator postgres check` prints the statements that make \
                     it the rules' tables"
                );
            }
            return Ok(());
        }
        let missing = setup.unpublished(Some(now)).unwrap_or_default();
        let Some(sql) = setup.follow_publication(name, now) else {
            return Ok(());
        };
        if config.create {
            match self.rows(&sql).await {
                Ok(_) => {
                    tracing::info!(publication = %name, statement = %sql,
                        "the publication follows the rules' tables");
                    return Ok(());
                }
                Err(e) if missing.is_empty() => {
                    tracing::warn!(publication = %name, error = %e.cause(),
                        "could not take tables no rule reads off the publication");
                    return Ok(());
                }
                Err(e) => {
                    return Err(PostgresError::PublicationNotExtended {
                        name: name.to_string(),
                        tables: names(&missing),
                        role: facts.role.name.clone(),
                        cause: e.cause(),
                    });
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(PostgresError::PublicationLacksTables {
            name: name.to_string(),
            tables: names(&missing),
            sql,
        })
    }

    /// Which of transactions `xids` (as decoded: 32 bits) are visible to a
    /// new snapshot, i.e. to any reader who starts now. Each id is widened
    /// to its 64-bit form with the epoch of the snapshot's `xmax`: a
    /// committed transaction is older than `xmax`, so an id above `xmax`'s
    /// low half belongs to the epoch before.
    pub(crate) async fn visible(&mut self, xids: &[u32]) -> Result<HashSet<u32>, PostgresError> {
        if xids.is_empty() {
            return Ok(HashSet::new());
        }
        let list = xids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT u.x FROM unnest('{{{list}}}'::int8[]) AS u(x), \
             (SELECT s, pg_snapshot_xmax(s)::text::int8 AS m FROM pg_current_snapshot() AS t(s)) \
             AS v WHERE pg_visible_in_snapshot((((v.m >> 32) - CASE WHEN u.x >= (v.m & \
             4294967295) THEN 1 ELSE 0 END) << 32 | u.x)::text::xid8, v.s)"
        );
        Ok(self
            .rows(&sql)
            .await?
            .iter()
            .filter_map(|row| text(row, 0).parse().ok())
            .collect())
    }

    /// Every replication slot of the server.
    pub(crate) async fn slots(&mut self) -> Result<Vec<SlotInfo>, PostgresError> {
        let sql = "SELECT slot_name, slot_type, plugin, database, active, \
             COALESCE((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
             ELSE pg_current_wal_lsn() END - restart_lsn)::int8, 0) \
             FROM pg_replication_slots ORDER BY slot_name";
        Ok(self
            .rows(sql)
            .await?
            .iter()
            .map(|row| SlotInfo {
                name: text(row, 0),
                kind: text(row, 1),
                plugin: row.get(2).cloned().flatten(),
                database: row.get(3).cloned().flatten(),
                active: flag(row, 4),
                retained_bytes: text(row, 5).parse::<i64>().unwrap_or(0).max(0) as u64,
            })
            .collect())
    }

    /// Warns of every other slot that nobody streams from and that holds
    /// more than `config.warn_retained` bytes of WAL: a trial run with
    /// another slot name leaves one behind, and it fills the disk quietly.
    pub(crate) async fn warn_of_idle_slots(&mut self, config: &PostgresConfig) {
        let Ok(slots) = self.slots().await else {
            return;
        };
        for slot in slots.iter().filter(|s| {
            !s.active && s.name != config.slot && s.retained_bytes > config.warn_retained
        }) {
            tracing::warn!(
                slot = %slot.name,
                retained_bytes = slot.retained_bytes,
                "an inactive replication slot holds WAL back, and the server keeps it until the \
                 slot is used or dropped; if nothing uses it, drop it with `invalidator postgres \
                 drop-slot {}`",
                slot.name
            );
        }
    }

    /// Drops slot `name`, refusing one that a process streams from.
    pub(crate) async fn drop_slot(&mut self, name: &str) -> Result<(), PostgresError> {
        let slots = self.slots().await?;
        let Some(slot) = slots.iter().find(|s| s.name == name) else {
            return Err(PostgresError::NoSuchSlot {
                name: name.to_string(),
            });
        };
        if slot.active {
            return Err(PostgresError::SlotInUse {
                name: name.to_string(),
            });
        }
        self.rows(&format!(
            "SELECT pg_drop_replication_slot({})",
            literal(name)?
        ))
        .await?;
        Ok(())
    }

    async fn ensure_slot(
        &mut self,
        config: &PostgresConfig,
        database: &str,
    ) -> Result<(), PostgresError> {
        let name = &config.slot;
        let found = self
            .rows(&format!(
                "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = {}",
                literal(name)?
            ))
            .await?;
        if let Some(row) = found.first() {
            let plugin = text(row, 0);
            let on = text(row, 1);
            if plugin != "pgoutput" || on != database {
                return Err(PostgresError::SlotNotOurs {
                    name: name.to_string(),
                    plugin,
                    on,
                    database: database.to_string(),
                });
            }
            return Ok(());
        }
        if !config.create {
            return Err(PostgresError::NoSlot {
                name: name.to_string(),
                sql: format!(
                    "SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
                    literal(name)?
                ),
            });
        }
        let sql = format!(
            "SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
            literal(name)?
        );
        if self.create(&sql).await? {
            tracing::info!(slot = %name, %database,
                "created the replication slot; changes are kept for it from now on");
        }
        Ok(())
    }

    /// Runs the creating statement `sql`: `true` when it created, `false`
    /// when another process had created the same thing in the meantime.
    async fn create(&mut self, sql: &str) -> Result<bool, PostgresError> {
        match self.rows(sql).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("already exists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The primary-key columns of relation `oid`, in key order; empty when
    /// it has none.
    pub(crate) async fn primary_key(&mut self, oid: u32) -> Result<Vec<String>, PostgresError> {
        let sql = format!(
            "SELECT a.attname FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = {oid} AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)"
        );
        Ok(self
            .rows(&sql)
            .await?
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .collect())
    }

    /// Where slot `slot` stands; `None` when it does not exist.
    pub(crate) async fn slot_position(
        &mut self,
        slot: &str,
    ) -> Result<Option<SlotPosition>, PostgresError> {
        let sql = format!(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8, \
             (confirmed_flush_lsn - '0/0'::pg_lsn)::int8, active \
             FROM pg_replication_slots WHERE slot_name = {}",
            literal(slot)?
        );
        let rows = self.rows(&sql).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let number = |i: usize| {
            row.get(i)
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                .max(0) as u64
        };
        Ok(Some(SlotPosition {
            retained_bytes: number(0),
            confirmed: number(1),
            active: flag(row, 2),
        }))
    }
}

/// Value `i` of `row` as text (empty for NULL).
fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Value `i` of `row` as a boolean (`t`).
fn flag(row: &[Option<String>], i: usize) -> bool {
    row.get(i).is_some_and(|v| v.as_deref() == Some("t"))
}

/// Tables as a list for people.
fn names(tables: &[TableName]) -> String {
    tables
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `value` as an SQL string literal.
fn literal(value: &str) -> Result<String, PostgresError> {
    quote_literal(value).map_err(|e| PostgresError::Literal {
        value: value.to_owned(),
        reason: e.to_string(),
    })
}
