//! The Redis client both ends of the flow use: the sink applies targets
//! through it, and the stream source reads commits through it. It owns the
//! connection ([`Redis`], single node or cluster, reconnecting by itself),
//! the address forms ([`Endpoint`]) and what can go wrong
//! ([`RedisError`], with which errors no retry can fix), and the
//! [`Backoff`] both retry Redis with.

mod backoff;
mod endpoint;
mod error;
mod handle;

pub use backoff::Backoff;
pub use endpoint::Endpoint;
pub use error::RedisError;
pub use handle::{Node, Redis, RedisConfig};
