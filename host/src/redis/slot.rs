//! Cluster key slots: which slot a key hashes to, and keys grouped by
//! slot so that every multi-key command the handle sends names one slot.
//!
//! Why group ourselves rather than let the cluster client split a
//! multi-slot command: redis-rs 1.8 splits it by slot, sends each part to
//! the node its slot map names, and *silently leaves out* a part whose
//! node it holds no connection to (after a failover, the promoted replica
//! until it connects to it), then answers with the other parts' sum as if
//! the command were whole. A command of one slot is routed as a
//! single-node command instead, which follows `MOVED` or fails.

use std::collections::HashMap;

use redis::ToRedisArgs;

/// Key slots of a cluster.
pub(crate) const SLOTS: usize = 16384;

/// The slot of `key`: CRC16 of the key, or of its `{hash tag}`, modulo
/// 16384.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS as u16
}

/// `keys` grouped by slot, in the order each slot first appears, each
/// group in the keys' order.
pub(crate) fn by_slot<K: ToRedisArgs>(keys: &[K]) -> Vec<(u16, Vec<Vec<u8>>)> {
    let mut index: HashMap<u16, usize> = HashMap::new();
    let mut groups: Vec<(u16, Vec<Vec<u8>>)> = Vec::new();
    for key in keys.iter().flat_map(ToRedisArgs::to_redis_args) {
        let s = slot(&key);
        let at = *index.entry(s).or_insert_with(|| {
            groups.push((s, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(key);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_including_hash_tags() {
        // Known values: `CLUSTER KEYSLOT foo` is 12182, `{user1}.x` is
        // the slot of `user1`, 8106.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1}.following"), slot(b"user1"));
        assert_eq!(slot(b"user1"), 8106);
        // An empty tag is no tag.
        assert_eq!(slot(b"{}x"), slot(b"{}x"));
        assert_ne!(slot(b"{}x"), slot(b""));
    }

    #[test]
    fn keys_are_grouped_by_slot_in_first_seen_order() {
        let keys = ["foo", "{user1}.a", "bar", "{user1}.b", "foo2"];
        let groups = by_slot(&keys);
        let slots: Vec<u16> = groups.iter().map(|(s, _)| *s).collect();
        let mut unique = slots.clone();
        unique.dedup();
        assert_eq!(slots, unique, "one group per slot");
        let user1 = groups
            .iter()
            .find(|(s, _)| *s == 8106)
            .expect("user1's slot");
        assert_eq!(user1.1, [b"{user1}.a".to_vec(), b"{user1}.b".to_vec()]);
        assert_eq!(groups[0].0, 12182);
        let total: usize = groups.iter().map(|(_, k)| k.len()).sum();
        assert_eq!(total, keys.len());
        for (s, group) in &groups {
            assert!(group.iter().all(|k| slot(k) == *s));
        }
    }
}
