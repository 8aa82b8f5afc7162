//! [`figures!`](crate::figures!): declares a set of counters once (name,
//! description, counter or gauge) and derives from that one declaration
//! the live atomics, the snapshot (`/v1/stats`, summaries) and what the
//! metrics endpoint exposes ([`Figure`]). Adding a counter is one line.
//!
//! One vocabulary for counting, crate-wide: what an owner updates is its
//! `…Counters` (`PipelineCounters`, `StreamCounters`, `PostgresCounters`,
//! `RuleCounters`); their values at one moment are `…Stats`
//! (`PipelineStats`, `StreamStats`, `PostgresStats`, `CacheStats`); what a
//! run reports when it ends is its `…Summary` (`ApplySummary`,
//! `ServeSummary`).

/// Whether a figure only grows or also falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKind {
    /// Only grows: exposed as `NAME_total`.
    Counter,
    /// Goes up and down: a level, such as a queue's length.
    Gauge,
}

/// One figure of a snapshot, described for the metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    /// Its name (the snapshot's field).
    pub name: &'static str,
    /// What it counts: the field's documentation.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: FigureKind,
    /// Its value in the snapshot.
    pub value: u64,
}

/// Declares `$live`, a struct of `AtomicU64`s whose fields are private to
/// the calling module (which updates them), and `$snapshot`, their values at one
/// moment, with `$live::snapshot()` and `$snapshot::figures()`. Each field
/// is written once, with its documentation (which becomes the metric's
/// help) and its kind:
///
/// ```
/// invalidator::figures! {
///     /// What a worker has done.
///     pub live Counters;
///     /// The counters at one moment.
///     pub struct Snapshot {
///         /// Jobs done.
///         Counter jobs,
///     }
/// }
/// let counters = Counters::default();
/// counters.jobs.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
/// let figure = counters.snapshot().figures()[0];
/// assert_eq!((figure.name, figure.help, figure.value), ("jobs", " Jobs done.", 2));
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! figures {
    (
        $(#[doc = $ldoc:literal])*
        $lvis:vis live $live:ident;
        $(#[doc = $sdoc:literal])*
        pub struct $snapshot:ident {
            $( $(#[doc = $doc:literal])+ $kind:ident $field:ident, )*
        }
    ) => {
        $(#[doc = $ldoc])*
        #[derive(Debug, Default)]
        $lvis struct $live {
            $( $field: std::sync::atomic::AtomicU64, )*
        }

        impl $live {
            /// The counters now.
            pub fn snapshot(&self) -> $snapshot {
                $snapshot {
                    $( $field: self.$field.load(std::sync::atomic::Ordering::Relaxed), )*
                }
            }
        }

        $(#[doc = $sdoc])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        pub struct $snapshot {
            $( $(#[doc = $doc])+ pub $field: u64, )*
        }

        impl $snapshot {
            /// Every figure, named and described, in declaration order.
            pub fn figures(&self) -> Vec<$crate::figures::Figure> {
                vec![$(
                    $crate::figures::Figure {
                        name: stringify!($field),
                        help: concat!($($doc),+),
                        kind: $crate::figures::FigureKind::$kind,
                        value: self.$field,
                    },
                )*]
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    crate::figures! {
        /// Test counters.
        live Counts;
        /// Test figures.
        pub struct CountsSnapshot {
            /// Things seen.
            Counter seen,
            /// Things waiting,
            /// across two lines.
            Gauge waiting,
        }
    }

    #[test]
    fn one_declaration_gives_the_snapshot_and_the_descriptions() {
        let live = Counts::default();
        live.seen.fetch_add(3, Relaxed);
        live.waiting.store(2, Relaxed);
        let snapshot = live.snapshot();
        assert_eq!((snapshot.seen, snapshot.waiting), (3, 2));
        let figures = snapshot.figures();
        assert_eq!(
            figures[0],
            Figure {
                name: "seen",
                help: " Things seen.",
                kind: FigureKind::Counter,
                value: 3
            }
        );
        assert_eq!(figures[1].help, " Things waiting, across two lines.");
        assert_eq!(figures[1].kind, FigureKind::Gauge);
    }
}
