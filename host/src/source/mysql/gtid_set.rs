//! MySQL's global transaction ids: one transaction's ([`SidGtid`]:
//! `UUID:N`, or `UUID:TAG:N` from MySQL 8.4), and the set a reader has
//! read ([`GtidSet`], as `@@GLOBAL.gtid_executed` prints it), which is
//! the position MySQL resumes from (`COM_BINLOG_DUMP_GTID` sends every
//! transaction not in it).
//!
//! MariaDB's are in [`super::gtid`]: one counter per replication domain,
//! where MySQL keeps a set of intervals per source server, since a
//! replica may apply them out of order.

use std::collections::BTreeMap;
use std::fmt;

use mysql_async::Sid;

/// One MySQL transaction's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SidGtid {
    /// The source: the server's UUID, lower case and hyphenated, with
    /// `:TAG` after it for a tagged GTID.
    pub source: String,
    /// The transaction's number at that source.
    pub gno: u64,
}

impl SidGtid {
    /// The id a GTID event carries: the server UUID's 16 bytes, its tag
    /// if any, and the number.
    pub(crate) fn of_event(sid: [u8; 16], tag: Option<String>, gno: u64) -> Self {
        let mut source = uuid_text(sid);
        if let Some(tag) = tag {
            source.push(':');
            source.push_str(&tag);
        }
        Self { source, gno }
    }
}

impl fmt::Display for SidGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.gno)
    }
}

/// `8-4-4-4-12` lower-case hex, as MySQL prints a server UUID.
fn uuid_text(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A set of MySQL transactions: for each source, its numbers as sorted,
/// disjoint, inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sources: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidSet {
    /// Whether the set holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Adds `gtid`, merging it with the intervals it touches.
    pub fn add(&mut self, gtid: &SidGtid) {
        let intervals = self.sources.entry(gtid.source.clone()).or_default();
        add_interval(intervals, gtid.gno, gtid.gno);
    }

    /// Whether `gtid` is in the set.
    pub fn contains(&self, gtid: &SidGtid) -> bool {
        self.sources.get(&gtid.source).is_some_and(|intervals| {
            intervals
                .iter()
                .any(|&(start, end)| start <= gtid.gno && gtid.gno <= end)
        })
    }

    /// The set as `COM_BINLOG_DUMP_GTID` carries it: one block per source.
    pub(crate) fn sids(&self) -> Result<Vec<Sid<'static>>, String> {
        self.sources
            .iter()
            .map(|(source, intervals)| {
                let text = format!("{source}:{}", Intervals(intervals));
                text.parse::<Sid<'static>>()
                    .map_err(|e| format!("`{text}` is no GTID block: {e}"))
            })
            .collect()
    }
}

/// Adds `[start, end]` to sorted, disjoint intervals, merging neighbours.
fn add_interval(intervals: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    intervals.push((start, end));
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(s, e) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *intervals = merged;
}

/// Intervals as MySQL prints them: `1-5:7:9-12`.
struct Intervals<'a>(&'a [(u64, u64)]);

impl fmt::Display for Intervals<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(start, end)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for GtidSet {
    /// `uuid:1-5:7,uuid:tag:1-3`, as MySQL prints a set (without its line
    /// breaks).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (source, intervals)) in self.sources.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{source}:{}", Intervals(intervals))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for GtidSet {
    type Err = String;

    /// A set as `@@GLOBAL.gtid_executed` prints it: blocks separated by
    /// commas (and line breaks), each a UUID and its intervals, where a
    /// tag (MySQL 8.4) applies to the intervals after it. Empty is none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = Self::default();
        for block in s.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let bad = |why: &str| format!("`{block}` is no GTID set block ({why}; want UUID:1-5)");
            let mut parts = block.split(':');
            let uuid = parts.next().unwrap_or_default().to_ascii_lowercase();
            let hex = uuid.chars().filter(|c| *c != '-').count();
            if uuid.len() != 36
                || hex != 32
                || !uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
            {
                return Err(bad("its UUID"));
            }
            let mut source = uuid.clone();
            let mut any = false;
            for part in parts {
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    let (start, end) = match part.split_once('-') {
                        Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                        None => (part.parse::<u64>(), part.parse::<u64>()),
                    };
                    let (Ok(start), Ok(end)) = (start, end) else {
                        return Err(bad("an interval that is not numbers"));
                    };
                    if start == 0 || end < start {
                        return Err(bad("an empty interval"));
                    }
                    add_interval(set.sources.entry(source.clone()).or_default(), start, end);
                    any = true;
                } else if !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    source = format!("{uuid}:{part}");
                } else {
                    return Err(bad("a part that is neither a tag nor an interval"));
                }
            }
            if !any {
                return Err(bad("no interval"));
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4d8a2c10-0000-11ef-8000-0242ac120002";

    fn gtid(source: &str, gno: u64) -> SidGtid {
        SidGtid {
            source: source.to_owned(),
            gno,
        }
    }

    #[test]
    fn a_set_reads_and_prints_as_mysql_does() {
        let text = format!("{A}:1-5:7,\n{B}:1-3");
        let set: GtidSet = text.parse().unwrap();
        assert_eq!(set.to_string(), format!("{A}:1-5:7,{B}:1-3"));
        assert!(set.contains(&gtid(A, 3)) && set.contains(&gtid(A, 7)));
        assert!(!set.contains(&gtid(A, 6)) && !set.contains(&gtid(B, 4)));
        assert_eq!("".parse::<GtidSet>().unwrap(), GtidSet::default());
        // Upper-case UUIDs, as some tools print them, are the same source.
        let upper: GtidSet = format!("{}:1-5:7", A.to_uppercase()).parse().unwrap();
        assert!(upper.contains(&gtid(A, 7)));
    }

    #[test]
    fn tagged_blocks_of_mysql_8_4_are_sources_of_their_own() {
        let set: GtidSet = format!("{A}:1-3:batch:1-2:9").parse().unwrap();
        assert!(set.contains(&gtid(A, 3)));
        assert!(set.contains(&gtid(&format!("{A}:batch"), 9)));
        assert!(!set.contains(&gtid(&format!("{A}:batch"), 3)));
        assert_eq!(set.to_string(), format!("{A}:1-3,{A}:batch:1-2:9"));
    }

    #[test]
    fn adding_merges_neighbouring_intervals() {
        let mut set: GtidSet = format!("{A}:1-5:7-9").parse().unwrap();
        set.add(&gtid(A, 6));
        assert_eq!(set.to_string(), format!("{A}:1-9"));
        set.add(&gtid(B, 1));
        set.add(&gtid(A, 11));
        assert_eq!(set.to_string(), format!("{A}:1-9:11,{B}:1"));
        set.add(&gtid(A, 3));
        assert_eq!(set.to_string(), format!("{A}:1-9:11,{B}:1"));
    }

    #[test]
    fn bad_sets_are_refused_naming_the_block() {
        for bad in [
            "0-1-42",
            "not-a-uuid:1-5",
            A,
            &format!("{A}:5-1"),
            &format!("{A}:0"),
            &format!("{A}:1-x"),
            &format!("{A}:Bad:1"),
        ] {
            let err = bad.parse::<GtidSet>().unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }

    #[test]
    fn the_set_becomes_the_blocks_of_the_dump_request() {
        let set: GtidSet = format!("{A}:1-5:7,{B}:1-3").parse().unwrap();
        let sids = set.sids().unwrap();
        assert_eq!(sids.len(), 2);
        assert_eq!(sids[0].to_string(), format!("{A}:1-5:7"));
        // MySQL's dump request carries half-open intervals.
        let ends: Vec<(u64, u64)> = sids[0]
            .intervals()
            .iter()
            .map(|i| (i.start(), i.end()))
            .collect();
        assert_eq!(ends, [(1, 6), (7, 8)]);
    }

    #[test]
    fn an_events_id_names_its_server_uuid() {
        let sid = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(
            SidGtid::of_event(sid, None, 42).to_string(),
            format!("{A}:42")
        );
        assert_eq!(
            SidGtid::of_event(sid, Some("batch".into()), 3).to_string(),
            format!("{A}:batch:3")
        );
    }
}
