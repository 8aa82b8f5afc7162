//! [`Transaction`]: a guard that hands a transaction's writes over only
//! once it commits.

use crate::commit::{Commit, Op, Row, Value, Write};
use crate::pipeline::Invalidator;

/// The writes of one database transaction, recorded as the service makes
/// them.
///
/// Call [`commit`](Self::commit) once the database transaction has
/// committed: only then are its invalidations queued. A
/// [`rollback`](Self::rollback), or a guard dropped without commit (an
/// early return, an error, a panic), invalidates nothing, because nothing
/// changed in the database.
#[must_use = "a transaction invalidates nothing until `commit` is called"]
pub struct Transaction<'a> {
    invalidator: &'a Invalidator,
    commit: Commit,
    finished: bool,
}

/// Anything that lists a row's `(column, value)` pairs: an array or a
/// vector of pairs, or a [`Row`]. For columns of mixed types, make the
/// values [`Value`]s: `[("id", Value::from(7)), ("name", "Mia".into())]`.
pub trait IntoRow {
    /// The row.
    fn into_row(self) -> Row;
}

impl<I, K, V> IntoRow for I
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<Value>,
{
    fn into_row(self) -> Row {
        self.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }
}

fn row(r: impl IntoRow) -> Row {
    r.into_row()
}

impl Invalidator {
    /// Begins recording transaction `txn`.
    pub fn begin(&self, txn: impl Into<String>) -> Transaction<'_> {
        Transaction {
            invalidator: self,
            commit: Commit {
                txn: txn.into(),
                source: None,
                writes: Vec::new(),
            },
            finished: false,
        }
    }
}

impl Transaction<'_> {
    /// Names the service or database the writes come from.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.commit.source = Some(source.into());
        self
    }

    /// Records an inserted row.
    pub fn insert(&mut self, table: &str, key: impl IntoRow, after: impl IntoRow) -> &mut Self {
        self.record(Write {
            table: table.to_owned(),
            op: Op::Insert,
            key: row(key),
            before: None,
            after: Some(row(after)),
        })
    }

    /// Records an updated row, before and after.
    pub fn update(
        &mut self,
        table: &str,
        key: impl IntoRow,
        before: impl IntoRow,
        after: impl IntoRow,
    ) -> &mut Self {
        self.record(Write {
            table: table.to_owned(),
            op: Op::Update,
            key: row(key),
            before: Some(row(before)),
            after: Some(row(after)),
        })
    }

    /// Records a deleted row.
    pub fn delete(&mut self, table: &str, key: impl IntoRow, before: impl IntoRow) -> &mut Self {
        self.record(Write {
            table: table.to_owned(),
            op: Op::Delete,
            key: row(key),
            before: Some(row(before)),
            after: None,
        })
    }

    /// Records any write.
    pub fn record(&mut self, write: Write) -> &mut Self {
        self.commit.writes.push(write);
        self
    }

    /// The writes recorded so far.
    pub fn writes(&self) -> &[Write] {
        &self.commit.writes
    }

    /// The database transaction committed: hand its writes over. Returns
    /// the commit's sequence number in the pipeline.
    pub fn commit(mut self) -> u64 {
        self.finished = true;
        let commit = std::mem::replace(
            &mut self.commit,
            Commit {
                txn: String::new(),
                source: None,
                writes: Vec::new(),
            },
        );
        self.invalidator.after_commit(commit)
    }

    /// The database transaction rolled back: forget its writes.
    pub fn rollback(mut self) {
        self.finished = true;
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished && !self.commit.writes.is_empty() {
            tracing::debug!(
                txn = %self.commit.txn,
                writes = self.commit.writes.len(),
                "transaction dropped without commit: nothing invalidated"
            );
        }
    }
}
