//! The Redis client both ends of the flow use: the sink applies targets
//! through it, and the stream source reads commits through it. It owns the
//! connection ([`Redis`]: single node, cluster or primary found through
//! sentinels, over TLS or not, reconnecting by itself), the address forms
//! ([`Endpoint`]), what it demands before deletes count as done (replica
//! acknowledgements, [`replicas`]), how it notices that the primary
//! changed ([`PrimaryChange`]), each node's state for people
//! ([`NodeState`]), and what can go wrong ([`RedisError`],
//! with which errors no retry can fix). Retrying is [`crate::retry`]'s,
//! which every source and the sink share.

mod client;
mod config;
mod endpoint;
mod error;
mod nodes;
mod primary;
mod replicas;
mod slot;
mod tls;

pub use client::{Node, Redis};
pub use config::{RedisConfig, TlsFiles};
pub use endpoint::{Endpoint, SentinelEndpoint, redact as redact_url};
pub use error::RedisError;
pub use nodes::NodeState;
pub use primary::PrimaryChange;
