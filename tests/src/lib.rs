//! The harness shared by the integration tests and benchmarks: the Wasm
//! guests the test build made, and real Redis servers.

mod files;
mod redis_server;

pub use files::{deploy, fresh_dir};
pub use redis_server::{RedisCluster, RedisServer, all_keys};

/// Paths of the guest components built by this crate's build script, one
/// constant per guest crate (example rules and hostile test rules).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
