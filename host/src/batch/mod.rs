//! One-shot runs over a file of commits (JSON Lines), beside the flow
//! rather than in it: what `invalidator run`, `apply` and `diff` do, kept in
//! the library so that embedders and benchmarks run exactly the same code.
//!
//! - [`dry_run`]: the targets each commit would invalidate, nothing touched;
//! - [`replay`]: every commit through the pipeline into Redis, summarised;
//! - [`diff`]: two versions of a rule, and the commits they disagree on.

pub mod diff;
pub mod dry_run;
pub mod replay;
