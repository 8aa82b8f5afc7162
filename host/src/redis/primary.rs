//! Who the primaries are, and [`PrimaryChange`]: noticing that they are
//! no longer who they were.
//!
//! Replication is asynchronous: a delete a primary acknowledged may not
//! have reached its replica when the primary dies, and the promoted
//! replica then still holds the stale value. The handle remembers which
//! server answered as primary (its `run_id`, or in a cluster the node id
//! owning each slot) and, whenever it connects or is asked to look, says
//! when another one answers: a Sentinel switch, a cluster failover or a
//! slot moving, a restart behind the same address. The pipeline then
//! applies again what it applied lately.

use std::fmt;

use super::Node;

/// The primaries as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Primaries {
    owners: Vec<Owner>,
}

/// One primary: its address and identity, and for a cluster the slot
/// ranges it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// How it is reached.
    pub(crate) node: Node,
    /// Its `run_id` (single node) or cluster node id.
    pub(crate) id: String,
    /// Inclusive slot ranges; empty for a single node.
    pub(crate) slots: Vec<(u16, u16)>,
}

/// The primary changed: invalidations applied to the old one may be
/// missing on the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryChange {
    /// The primary (or primaries) before, as `host:port`.
    pub old: String,
    /// The primary (or primaries) now.
    pub new: String,
}

impl fmt::Display for PrimaryChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "primary changed from {} to {}", self.old, self.new)
    }
}

impl Primaries {
    /// A single node, identified by the `run_id` of `INFO server`.
    pub(crate) fn single(node: Node, run_id: String) -> Self {
        Self {
            owners: vec![Owner {
                node,
                id: run_id,
                slots: Vec::new(),
            }],
        }
    }

    /// The primaries of a cluster, from `CLUSTER NODES`.
    pub(crate) fn cluster(owners: Vec<Owner>) -> Self {
        Self { owners }
    }

    /// The primaries, each with a slot it owns for a cluster.
    pub(crate) fn nodes(&self) -> Vec<Node> {
        self.owners.iter().map(|o| o.node.clone()).collect()
    }

    /// The primary owning `slot`.
    pub(crate) fn owner(&self, slot: u16) -> Option<&Owner> {
        self.owners
            .iter()
            .find(|o| o.slots.is_empty() || o.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
    }

    /// What changed from `before` to `self`, if any server that holds data
    /// now is not the one that held it then.
    pub(crate) fn change_from(&self, before: &Primaries) -> Option<PrimaryChange> {
        let (mut old, mut new) = (Vec::new(), Vec::new());
        if self.owners.iter().all(|o| o.slots.is_empty()) {
            // A single node: its identity is all there is.
            if self
                .owners
                .iter()
                .map(|o| &o.id)
                .ne(before.owners.iter().map(|o| &o.id))
            {
                old.extend(before.owners.iter().map(|o| o.node.to_string()));
                new.extend(self.owners.iter().map(|o| o.node.to_string()));
            }
        } else {
            // Every slot at which either layout starts a range: between
            // two such slots the owners on both sides are constant.
            let mut marks: Vec<u16> = self
                .owners
                .iter()
                .chain(&before.owners)
                .flat_map(|o| o.slots.iter().map(|&(a, _)| a))
                .collect();
            marks.sort_unstable();
            marks.dedup();
            for slot in marks {
                let (was, is) = (before.owner(slot), self.owner(slot));
                if let Some(is) = is
                    && was.is_none_or(|w| w.id != is.id)
                {
                    let was = was.map_or("(none)".to_owned(), |w| w.node.to_string());
                    if !old.contains(&was) {
                        old.push(was);
                    }
                    let is = is.node.to_string();
                    if !new.contains(&is) {
                        new.push(is);
                    }
                }
            }
        }
        (!new.is_empty()).then(|| PrimaryChange {
            old: old.join(","),
            new: new.join(","),
        })
    }
}

/// The primaries that own slots, from the text of `CLUSTER NODES`:
/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch>
/// <link> <slot>...`. A primary that owns slots but is failing (or
/// suspected to be) is an error: sweeping without it would skip its keys,
/// so the caller retries until the cluster has settled.
pub(crate) fn parse_cluster_nodes(text: &str) -> Result<Vec<Owner>, String> {
    let mut owners = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 {
            continue; // no slots
        }
        let flags = fields[2];
        if !flags.split(',').any(|f| f == "master") {
            continue;
        }
        // `0-5460`, `5461`; skip `[slot->-id]` markers of slots being
        // migrated.
        let slots: Vec<(u16, u16)> = fields[8..]
            .iter()
            .filter(|f| !f.starts_with('['))
            .filter_map(|f| {
                let (a, b) = f.split_once('-').unwrap_or((f, f));
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        let Some(&(first, _)) = slots.first() else {
            continue;
        };
        if flags.split(',').any(|f| f == "fail" || f == "fail?") {
            return Err(format!(
                "primary `{}` owns slots but is marked `{flags}`; retrying until the cluster settles",
                fields[1]
            ));
        }
        let addr = fields[1].split(['@', ',']).next().unwrap_or_default();
        if let Some((host, port)) = addr.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            owners.push(Owner {
                node: Node {
                    host: host.to_owned(),
                    port,
                    slot: Some(first),
                },
                id: fields[0].to_owned(),
                slots,
            });
        }
    }
    Ok(owners)
}

/// The `run_id` in the text of `INFO server`.
pub(crate) fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 1 2 connected [5460->-a1] 5461-10922
c3 127.0.0.1:7003@17003 slave b2 0 1 2 connected
d4 127.0.0.1:7004@17004 master - 0 1 4 connected
";

    #[test]
    fn cluster_nodes_yields_primaries_with_their_slots() {
        let owners = parse_cluster_nodes(NODES).unwrap();
        let names: Vec<String> = owners.iter().map(|o| o.node.to_string()).collect();
        assert_eq!(names, ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert_eq!(owners[1].node.slot, Some(5461));
        assert_eq!(owners[1].slots, [(5461, 10922)]);
        let p = Primaries::cluster(owners);
        assert_eq!(p.owner(6000).unwrap().id, "b2");
        assert!(p.owner(12000).is_none());
    }

    #[test]
    fn a_failing_primary_that_owns_slots_is_an_error() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8000
e5 127.0.0.1:7002@17002 master,fail? - 0 1 3 connected 8001-16383
";
        let err = parse_cluster_nodes(text).unwrap_err();
        assert!(err.contains("`127.0.0.1:7002@17002`"), "{err}");
    }

    #[test]
    fn a_replica_taking_over_slots_is_a_change_naming_both() {
        let before = Primaries::cluster(parse_cluster_nodes(NODES).unwrap());
        let after = Primaries::cluster(
            parse_cluster_nodes(
                "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
c3 127.0.0.1:7003@17003 master - 0 1 5 connected 5461-10922
b2 127.0.0.1:7001@17001 master,fail - 0 1 2 connected
",
            )
            .unwrap(),
        );
        let change = after.change_from(&before).unwrap();
        assert_eq!(change.old, "127.0.0.1:7001");
        assert_eq!(change.new, "127.0.0.1:7003");
        assert_eq!(after.change_from(&after), None);
    }

    #[test]
    fn a_single_node_changes_with_its_run_id() {
        let node = Node {
            host: "h".into(),
            port: 1,
            slot: None,
        };
        let a = Primaries::single(node.clone(), "r1".into());
        let b = Primaries::single(node, "r2".into());
        assert!(a.change_from(&a).is_none());
        assert_eq!(
            b.change_from(&a).unwrap().to_string(),
            "primary changed from h:1 to h:1"
        );
        assert_eq!(run_id("# Server\r\nrun_id:abc\r\n").as_deref(), Some("abc"));
    }
}
