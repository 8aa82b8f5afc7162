//! [`Store`]: where invalidations go, Redis or this process's memory.

use std::sync::Arc;

use super::{Applied, MemoryStore, Redis, SinkError};
use crate::targets::TargetSet;

/// A cache store the pipeline applies targets to.
#[derive(Clone)]
pub enum Store {
    /// Redis, a single node or a cluster.
    Redis(Arc<Redis>),
    /// An in-process store.
    Memory(Arc<MemoryStore>),
}

impl Store {
    /// Applies `targets`; see [`apply`](super::apply()) for what is left in
    /// `targets` on an error.
    pub async fn apply(
        &self,
        targets: &mut TargetSet,
        applied: &mut Applied,
    ) -> Result<(), SinkError> {
        match self {
            Store::Redis(redis) => super::apply(redis, targets, applied).await,
            Store::Memory(memory) => {
                memory.apply(targets, applied);
                Ok(())
            }
        }
    }

    /// Where it is, for logs.
    pub fn describe(&self) -> String {
        match self {
            Store::Redis(redis) => redis.endpoint().to_string(),
            Store::Memory(_) => "in-process store".to_owned(),
        }
    }
}
