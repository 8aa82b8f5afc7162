//! HTTP plumbing, and nothing that answers a request of its own: the
//! listener and its bounds ([`server`]), who may do what ([`auth`]: the
//! bearer tokens, and the refusal to listen beyond this machine without
//! one), the one JSON shape of every error ([`ApiError`]), reading a body
//! in time and within its size, answering once work is applied
//! ([`applied`]), and counting what was answered ([`HttpCounters`]).
//!
//! The routes live with what they serve: the commit intake is a source
//! ([`crate::source::http`]); the operations API is `serve`'s
//! ([`crate::serve`]). Both ride on one listener.

mod applied;
mod auth;
mod counters;
mod error;
mod origin;
mod server;

use std::net::SocketAddr;

pub(crate) use applied::{Answer, Wait, answer, wait};
pub use auth::MIN_PUBLIC_TOKEN_LEN;
pub(crate) use auth::{check_exposure, require_read_token, require_token};
pub(crate) use counters::count_requests;
pub use counters::{HttpCounters, HttpStats};
pub(crate) use error::{ApiError, read_body};
pub(crate) use origin::refuse_cross_site;
pub use server::Limits;
pub(crate) use server::{read_body_in_time, serve};

/// Why the HTTP API cannot listen where it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address could not be resolved or bound.
    #[error("cannot listen on `{listen}`: {source}")]
    Bind {
        /// The address asked for.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
    /// An address reachable from other machines, with no token.
    #[error(
        "refusing to listen on `{addr}` without a token: it is reachable from other \
         machines. Set `http.token` (or INVALIDATOR_HTTP__TOKEN), or listen on 127.0.0.1"
    )]
    Exposed {
        /// The address.
        addr: SocketAddr,
    },
    /// An address reachable from other machines, with a token too short
    /// to resist guessing.
    #[error(
        "refusing to listen on `{addr}` with a token of {len} bytes: it is reachable from \
         other machines, where a token needs at least 16 bytes (`openssl rand -hex 16` makes one)"
    )]
    WeakToken {
        /// The address.
        addr: SocketAddr,
        /// The token's length in bytes.
        len: usize,
    },
}
