//! [`Catalog`]: a plain (not replication) connection to the database, for
//! what the replication stream does not carry: each table's primary key,
//! the publication and slot (checked, and created when allowed), the
//! tables whose updates carry no `before` image, and how much WAL the slot
//! holds back.

use pg_walstream::sql_builder::{quote_ident, quote_literal};
use pg_walstream::{PgReplicationConnection, PgResult};

use super::config::{PostgresConfig, redact};
use super::error::PostgresError;

/// A connection for catalog queries.
pub(crate) struct Catalog {
    conn: PgReplicationConnection,
}

/// What [`Catalog::prepare`] found and did.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The database's name.
    pub(crate) database: String,
    /// Published tables without `REPLICA IDENTITY FULL`, as rules name
    /// them.
    pub(crate) without_full_identity: Vec<String>,
}

/// Where the slot stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SlotPosition {
    /// WAL the slot keeps from being recycled: the server's current
    /// position minus the slot's confirmed one, in bytes.
    pub(crate) retained_bytes: u64,
    /// The slot's confirmed position (`confirmed_flush_lsn`).
    pub(crate) confirmed: u64,
}

impl Catalog {
    /// Connects to `url`.
    pub(crate) async fn connect(url: &str) -> Result<Self, PostgresError> {
        let conn = PgReplicationConnection::connect_async(url)
            .await
            .map_err(|source| PostgresError::Connect {
                address: redact(url),
                source,
            })?;
        Ok(Self { conn })
    }

    /// Runs `sql`; the rows, each value as text (`None` for NULL).
    async fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PostgresError> {
        let result: PgResult =
            self.conn
                .exec_async(sql)
                .await
                .map_err(|source| PostgresError::Statement {
                    statement: sql.to_owned(),
                    source,
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

    /// Checks what the source needs, creating the publication and the slot
    /// when they are missing and `config.create` allows it.
    pub(crate) async fn prepare(
        &mut self,
        config: &PostgresConfig,
    ) -> Result<Prepared, PostgresError> {
        let database = self
            .value("SELECT current_database()")
            .await?
            .unwrap_or_default();
        let level = self.value("SHOW wal_level").await?.unwrap_or_default();
        if level != "logical" {
            return Err(PostgresError::Refused(format!(
                "database `{database}` has wal_level = {level}: logical replication needs \
                 `wal_level = logical` in postgresql.conf (and a restart)"
            )));
        }
        self.ensure_publication(config, &database).await?;
        self.ensure_slot(config, &database).await?;
        let without_full_identity = self.without_full_identity(&config.publication).await?;
        Ok(Prepared {
            database,
            without_full_identity,
        })
    }

    async fn ensure_publication(
        &mut self,
        config: &PostgresConfig,
        database: &str,
    ) -> Result<(), PostgresError> {
        let name = &config.publication;
        let exists = self
            .value(&format!(
                "SELECT 1 FROM pg_publication WHERE pubname = {}",
                literal(name)?
            ))
            .await?
            .is_some();
        if exists {
            return Ok(());
        }
        if !config.create {
            return Err(PostgresError::Refused(format!(
                "publication `{name}` does not exist in database `{database}`, and \
                 `postgres.create` is false: create it with `CREATE PUBLICATION {} FOR ALL \
                 TABLES` (or for the tables your rules read)",
                ident(name)?
            )));
        }
        let sql = format!("CREATE PUBLICATION {} FOR ALL TABLES", ident(name)?);
        if self.create(&sql).await? {
            tracing::info!(publication = %name, %database, "created the publication FOR ALL TABLES");
        }
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
            let plugin = row.first().cloned().flatten().unwrap_or_default();
            let on = row.get(1).cloned().flatten().unwrap_or_default();
            if plugin != "pgoutput" || on != database {
                return Err(PostgresError::Refused(format!(
                    "replication slot `{name}` exists but is not ours to use: it decodes with \
                     `{plugin}` for database `{on}`, and this source needs `pgoutput` for \
                     `{database}`; name another slot (`postgres.slot`)"
                )));
            }
            return Ok(());
        }
        if !config.create {
            return Err(PostgresError::Refused(format!(
                "replication slot `{name}` does not exist, and `postgres.create` is false: \
                 create it with `SELECT pg_create_logical_replication_slot({}, 'pgoutput')`",
                literal(name)?
            )));
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

    /// Published tables whose replica identity is not `FULL`.
    async fn without_full_identity(
        &mut self,
        publication: &str,
    ) -> Result<Vec<String>, PostgresError> {
        let sql = format!(
            "SELECT t.schemaname, t.tablename FROM pg_publication_tables t \
             JOIN pg_namespace n ON n.nspname = t.schemaname \
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename \
             WHERE t.pubname = {} AND c.relreplident <> 'f' ORDER BY 1, 2",
            literal(publication)?
        );
        Ok(self
            .rows(&sql)
            .await?
            .into_iter()
            .map(|row| {
                let schema = row.first().cloned().flatten().unwrap_or_default();
                let table = row.get(1).cloned().flatten().unwrap_or_default();
                super::decode::table_name(&schema, &table)
            })
            .collect())
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
             (confirmed_flush_lsn - '0/0'::pg_lsn)::int8 \
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
        }))
    }
}

/// `value` as an SQL string literal.
fn literal(value: &str) -> Result<String, PostgresError> {
    quote_literal(value).map_err(|e| PostgresError::Refused(format!("`{value}`: {e}")))
}

/// `name` as an SQL identifier.
fn ident(name: &str) -> Result<String, PostgresError> {
    quote_ident(name).map_err(|e| PostgresError::Refused(format!("`{name}`: {e}")))
}
