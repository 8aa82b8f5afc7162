//! [`NodeState`]: each Redis node's state as the console shows it: every
//! primary, asked `INFO replication` (which also answers for its
//! replicas, as the primary sees them), within a bound so that a dead
//! node makes the page say so rather than hang.

use std::time::Duration;

use serde::Serialize;

use super::{Node, Redis};

/// How long a node may take to answer before it is shown as down.
const ASK_WITHIN: Duration = Duration::from_secs(2);

/// One node's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeState {
    /// `host:port`, as the node (or its primary) reports it.
    pub node: String,
    /// `primary` or `replica`.
    pub role: &'static str,
    /// `up` or `down` for a primary; for a replica, the state its primary
    /// reports (`online`, `wait_bgsave`, `send_bulk`).
    pub state: String,
    /// Replication lag in seconds for a replica; why, for a node down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Redis {
    /// The state of every primary and of the replicas each reports.
    /// Never fails: a primary that cannot be asked is shown down, with
    /// the error.
    pub async fn node_states(&self) -> Vec<NodeState> {
        let primaries = match tokio::time::timeout(ASK_WITHIN, self.primaries()).await {
            Ok(Ok(nodes)) => nodes,
            Ok(Err(e)) => return vec![down(self.endpoint().to_string(), e.to_string())],
            Err(_) => return vec![down(self.endpoint().to_string(), silent())],
        };
        let mut states = Vec::new();
        for node in primaries {
            states.extend(self.ask(&node).await);
        }
        states
    }

    async fn ask(&self, node: &Node) -> Vec<NodeState> {
        let address = format!("{}:{}", node.host, node.port);
        let info = redis::cmd("INFO").arg("replication").to_owned();
        let info: String = match tokio::time::timeout(ASK_WITHIN, self.query_node(node, info)).await
        {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => return vec![down(address, e.to_string())],
            Err(_) => return vec![down(address, silent())],
        };
        let mut states = vec![NodeState {
            node: address,
            role: "primary",
            state: "up".to_owned(),
            detail: None,
        }];
        states.extend(replicas(&info));
        states
    }
}

fn down(node: String, why: String) -> NodeState {
    NodeState {
        node,
        role: "primary",
        state: "down".to_owned(),
        detail: Some(why),
    }
}

fn silent() -> String {
    format!("no answer within {} s", ASK_WITHIN.as_secs())
}

/// The replicas an `INFO replication` answer lists, one line each:
/// `slave0:ip=10.0.0.2,port=6380,state=online,offset=14,lag=0`.
fn replicas(info: &str) -> Vec<NodeState> {
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains(":ip="))
        .filter_map(|line| {
            let (_, fields) = line.split_once(':')?;
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            };
            Some(NodeState {
                node: format!("{}:{}", field("ip")?, field("port")?),
                role: "replica",
                state: field("state").unwrap_or("unknown").to_owned(),
                detail: field("lag").map(|lag| format!("lag {lag} s")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_read_from_info_replication() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=6380,state=online,offset=14,lag=0\r\n\
            slave1:ip=10.0.0.3,port=6381,state=wait_bgsave,offset=0,lag=3\r\n\
            master_failover_state:no-failover\r\n";
        let found = replicas(info);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].node, "127.0.0.1:6380");
        assert_eq!(found[0].state, "online");
        assert_eq!(found[1].state, "wait_bgsave");
        assert_eq!(found[1].detail.as_deref(), Some("lag 3 s"));
        assert_eq!(found[1].role, "replica");
    }
}
