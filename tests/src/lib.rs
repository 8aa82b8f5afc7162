//! The harness shared by the integration tests and benchmarks: the Wasm
//! guests the test build made, real Redis servers, throwaway Postgres
//! clusters and MariaDB servers, and `invalidator serve` processes.

mod browser;
pub mod cdc;
mod files;
mod mariadb_server;
pub mod polyglot;
mod postgres_server;
mod redis_server;
mod sentinel;
mod serve_process;
mod startup;
mod tls_certs;
mod wait;

pub use browser::Browser;
pub use files::{deploy, fresh_dir};
/// Signal numbers for [`ServeProcess::signal`].
pub use libc::{SIGCONT, SIGKILL, SIGSTOP, SIGTERM};
pub use mariadb_server::MariadbServer;
/// The Postgres client the harness hands out.
pub use postgres;
pub use postgres_server::PostgresServer;
pub use redis_server::{
    ClusterSpec, REPLICATION_ARGS, RedisCluster, RedisServer, all_keys, wait_link_up,
};
pub use sentinel::{SentinelGroup, SentinelSpec};
pub use serve_process::ServeProcess;
pub use tls_certs::TlsCerts;
pub use wait::wait_until;

/// Paths of the guest components built by this crate's build script, one
/// constant per guest crate (example rules and hostile test rules).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
