//! The application's cache layout in Redis: what a tagged value and a lease
//! look like, and the Lua scripts that write and read them.
//!
//! Both sides of the cache share it. The sink invalidates tags through
//! [`tags`]; [`crate::cache::Cache`] and the clients in other languages
//! fill values through [`tags`] and [`leases`]. The scripts in `lua/` are
//! the only copy in the repository: the Python package's build takes them
//! from here, so every client runs exactly the host's bytes.

pub mod leases;
pub mod tags;
