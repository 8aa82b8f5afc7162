//! The Redis client both ends of the flow use: the sink applies targets
//! through it, and the stream source reads commits through it. It owns the
//! connection ([`Redis`], single node or cluster, reconnecting by itself),
//! the address forms ([`Endpoint`]) and what can go wrong
//! ([`RedisError`], with which errors no retry can fix). Retrying is
//! [`crate::retry`]'s, which every source and the sink share.

mod client;
mod endpoint;
mod error;

pub use client::{Node, Redis, RedisConfig};
pub use endpoint::Endpoint;
pub use error::RedisError;
