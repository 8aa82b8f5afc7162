//! `invalidator serve --stream`: processes sharing one Redis stream through
//! a consumer group. One of three is killed with SIGKILL in the middle and
//! nothing is lost; poison entries go to the dead-letter stream.

use std::time::Duration;

use invalidator_tests::{
    RedisCluster, RedisServer, SIGCONT, SIGSTOP, ServeProcess, deploy, fresh_dir, guests,
    wait_until,
};
use redis::Commands;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_invalidator");
const STREAM: &str = "commits";
const GROUP: &str = "invalidator";

/// A commit the turnus rule turns into the key `turnus_data_ID`.
fn geld(id: u64) -> String {
    json!({"txn": format!("t{id}"), "writes": [{"table": "geld", "op": "insert",
        "key": {"id": id}, "after": {"id": id, "turnus_id": id}}]})
    .to_string()
}

/// A pipeline caching `turnus_data_0` to `turnus_data_{n-1}`.
fn cache_turnus(n: u64) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for id in 0..n {
        pipe.set(format!("turnus_data_{id}"), "cached").ignore();
    }
    pipe
}

/// A rules folder holding the turnus rule.
fn turnus_dir(name: &str) -> std::path::PathBuf {
    let dir = fresh_dir(&format!("stream-{name}"));
    deploy(guests::TURNUS, &dir.join("turnus.wasm"));
    dir
}

/// `serve --stream` as consumer `name`, on the Redis at `url`.
fn consumer(dir: &std::path::Path, url: &str, name: &str, envs: &[(&str, &str)]) -> ServeProcess {
    ServeProcess::start(
        BIN,
        &[
            "--rules",
            dir.to_str().unwrap(),
            "--redis",
            url,
            "--stream",
            STREAM,
            "--group",
            GROUP,
            "--consumer",
            name,
        ],
        envs,
    )
}

/// Entries delivered to the group and not acknowledged, per consumer.
fn pending_of(conn: &mut redis::Connection, name: &str) -> u64 {
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(STREAM)
        .arg(GROUP)
        .query(conn)
        .unwrap_or_default();
    for c in consumers {
        let map: std::collections::HashMap<String, redis::Value> =
            redis::from_redis_value(c).unwrap();
        let this: String = redis::from_redis_value_ref(&map["name"]).unwrap();
        if this == name {
            return redis::from_redis_value_ref(&map["pending"]).unwrap();
        }
    }
    0
}

/// Pending entries of the whole group.
fn pending(conn: &mut redis::Connection) -> u64 {
    let reply: redis::streams::StreamPendingReply = conn.xpending(STREAM, GROUP).unwrap();
    reply.count() as u64
}

/// How many entries the group has been delivered (0 before the consumers
/// have created it).
fn entries_read(conn: &mut redis::Connection) -> u64 {
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(STREAM)
        .query(conn)
        .unwrap_or_default();
    let Some(group) = groups.into_iter().next() else {
        return 0;
    };
    let map: std::collections::HashMap<String, redis::Value> =
        redis::from_redis_value(group).unwrap();
    redis::from_redis_value_ref(&map["entries-read"]).unwrap_or(0)
}

#[test]
fn three_consumers_share_a_stream_and_a_killed_one_loses_nothing() {
    const N: u64 = 3000;
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let dir = turnus_dir("kill");
    let () = cache_turnus(N)
        .set("unrelated", "cached")
        .ignore()
        .query(&mut conn)
        .unwrap();

    let envs = [
        ("INVALIDATOR_STREAM__CLAIM_IDLE", "1000ms"),
        ("INVALIDATOR_STREAM__BLOCK", "100ms"),
        ("INVALIDATOR_STREAM__READ_COUNT", "50"),
    ];
    let survivors = [
        consumer(&dir, &redis.url(), "a", &envs),
        consumer(&dir, &redis.url(), "b", &envs),
    ];
    let victim = consumer(&dir, &redis.url(), "victim", &envs);

    // The producer adds entries while the consumers work.
    let producer = {
        let url = redis.url();
        std::thread::spawn(move || {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            for id in 0..N {
                let _: String = conn.xadd(STREAM, "*", &[("commit", geld(id))]).unwrap();
                if id % 100 == 99 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    // In the middle, once the victim holds entries it has not acknowledged:
    // freeze it, make sure it still holds some, and kill it.
    wait_until(
        "a third of the stream is read",
        Duration::from_secs(60),
        || entries_read(&mut conn) >= N / 3,
    );
    loop {
        victim.signal(SIGSTOP);
        if pending_of(&mut conn, "victim") > 0 {
            break;
        }
        victim.signal(SIGCONT);
        std::thread::sleep(Duration::from_millis(5));
    }
    victim.kill();
    // What the victim had written before it froze (an `XACK` on its way)
    // still reaches Redis after the kill: what it holds is what is pending
    // once its socket has drained, and that is what the others must claim.
    std::thread::sleep(Duration::from_millis(300));
    let held = pending_of(&mut conn, "victim");
    producer.join().unwrap();

    wait_until(
        "every entry is acknowledged",
        Duration::from_secs(120),
        || entries_read(&mut conn) == N && pending(&mut conn) == 0,
    );
    let left: Vec<u64> = (0..N)
        .filter(|id| conn.exists(format!("turnus_data_{id}")).unwrap())
        .collect();
    assert!(
        left.is_empty(),
        "{} keys never invalidated, e.g. {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    let unrelated: bool = conn.exists("unrelated").unwrap();
    assert!(unrelated, "only the commits' keys go");

    let mut claimed = 0;
    for survivor in survivors {
        let (status, summary) = survivor.stop(Duration::from_secs(60));
        assert!(status.success(), "{summary}");
        assert_eq!(summary["stream"]["in_flight"], 0, "{summary}");
        assert_eq!(summary["stream"]["dead_lettered"], 0, "{summary}");
        claimed += summary["stream"]["claimed"].as_u64().unwrap();
    }
    assert!(
        claimed >= held,
        "the victim held {held} entries; the survivors claimed {claimed}"
    );
}

#[test]
fn poison_entries_go_to_the_dead_letter_stream_and_the_stream_moves_on() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let dir = turnus_dir("poison");
    let () = conn.set("turnus_data_1", "cached").unwrap();
    let () = conn.set("turnus_data_2", "cached").unwrap();
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut conn)
        .unwrap();

    // An entry that took three consumers down with it: delivered to a
    // ghost consumer, then claimed twice more, never acknowledged.
    let spent: String = conn.xadd(STREAM, "*", &[("commit", geld(2))]).unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query(&mut conn)
        .unwrap();
    for _ in 0..2 {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(STREAM)
            .arg(GROUP)
            .arg("ghost")
            .arg(0)
            .arg(&spent)
            .query(&mut conn)
            .unwrap();
    }
    let not_json: String = conn.xadd(STREAM, "*", &[("commit", "{not json")]).unwrap();
    let no_field: String = conn.xadd(STREAM, "*", &[("payload", geld(1))]).unwrap();
    let good: String = conn.xadd(STREAM, "*", &[("commit", geld(1))]).unwrap();

    let envs = [
        ("INVALIDATOR_STREAM__CLAIM_IDLE", "200ms"),
        ("INVALIDATOR_STREAM__BLOCK", "100ms"),
        ("INVALIDATOR_STREAM__MAX_ATTEMPTS", "3"),
    ];
    let service = consumer(&dir, &redis.url(), "only", &envs);
    wait_until(
        "three entries are dead-lettered",
        Duration::from_secs(30),
        || conn.xlen::<_, u64>("commits:dead").unwrap() == 3,
    );
    wait_until("nothing is pending", Duration::from_secs(30), || {
        pending(&mut conn) == 0
    });
    let gone = !conn.exists::<_, bool>("turnus_data_1").unwrap();
    assert!(gone, "the good entry after the poison ones is applied");
    let spent_applied = !conn.exists::<_, bool>("turnus_data_2").unwrap();
    assert!(!spent_applied, "the spent entry is retired, not applied");

    let dead: redis::streams::StreamRangeReply = conn.xrange_all("commits:dead").unwrap();
    let reason_of = |id: &str| -> String {
        let entry = dead
            .ids
            .iter()
            .find(|e| e.get::<String>("entry").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("entry {id} is not in the dead-letter stream"));
        entry.get("reason").unwrap()
    };
    assert!(
        reason_of(&not_json).contains("not a valid commit"),
        "{}",
        reason_of(&not_json)
    );
    assert!(
        reason_of(&no_field).contains("no `commit` field"),
        "{}",
        reason_of(&no_field)
    );
    assert!(
        reason_of(&spent).contains("delivered 3 times"),
        "{}",
        reason_of(&spent)
    );
    assert!(
        !dead
            .ids
            .iter()
            .any(|e| e.get::<String>("entry").as_deref() == Some(good.as_str()))
    );
    let copied = dead
        .ids
        .iter()
        .find(|e| e.get::<String>("entry") == Some(not_json.clone()))
        .unwrap();
    assert_eq!(
        copied.get::<String>("commit").as_deref(),
        Some("{not json"),
        "the entry's own fields are kept"
    );

    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["stream"]["dead_lettered"], 3, "{summary}");
    assert_eq!(summary["stream"]["acked"], 1, "{summary}");
}

#[test]
fn a_consumer_works_on_a_cluster() {
    const N: u64 = 500;
    let cluster = RedisCluster::start(3);
    let mut conn = cluster.connection();
    let dir = turnus_dir("cluster");
    for id in 0..N {
        let () = conn.set(format!("turnus_data_{id}"), "cached").unwrap();
        let _: String = conn.xadd(STREAM, "*", &[("commit", geld(id))]).unwrap();
    }
    let service = consumer(
        &dir,
        &cluster.url(),
        "only",
        &[("INVALIDATOR_STREAM__BLOCK", "100ms")],
    );
    wait_until("every key is invalidated", Duration::from_secs(60), || {
        (0..N).all(|id| !conn.exists::<_, bool>(format!("turnus_data_{id}")).unwrap())
    });
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["stream"]["acked"], N, "{summary}");
    let pending: redis::streams::StreamPendingReply = conn.xpending(STREAM, GROUP).unwrap();
    assert_eq!(pending.count(), 0);
}

#[test]
fn consumers_that_stopped_and_hold_nothing_are_forgotten() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let dir = turnus_dir("forget");
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut conn)
        .unwrap();
    // A consumer from an earlier process, which acknowledged all it read.
    let _: String = conn.xadd(STREAM, "*", &[("commit", geld(1))]).unwrap();
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("gone-1")
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query(&mut conn)
        .unwrap();
    let id = read.keys[0].ids[0].id.clone();
    let _: u64 = conn.xack(STREAM, GROUP, &[&id]).unwrap();

    // Forgotten after ten claim times (here 10 x 100 ms) unseen.
    let service = consumer(
        &dir,
        &redis.url(),
        "live",
        &[
            ("INVALIDATOR_STREAM__CLAIM_IDLE", "100ms"),
            ("INVALIDATOR_STREAM__BLOCK", "50ms"),
        ],
    );
    let names = |conn: &mut redis::Connection| -> Vec<String> {
        let consumers: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(STREAM)
            .arg(GROUP)
            .query(conn)
            .unwrap();
        consumers
            .iter()
            .map(|fields| redis::from_redis_value_ref(&fields[1]).unwrap())
            .collect()
    };
    wait_until("`gone-1` is forgotten", Duration::from_secs(30), || {
        !names(&mut conn).contains(&"gone-1".to_owned())
    });
    // The live consumer, seen at every read, stays.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(names(&mut conn), ["live"]);
    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
}

#[test]
fn sigterm_mid_stream_acknowledges_what_was_read_and_the_rest_waits() {
    const N: u64 = 20_000;
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let dir = turnus_dir("sigterm");
    let mut pipe = cache_turnus(N);
    for id in 0..N {
        pipe.xadd(STREAM, "*", &[("commit", geld(id))]).ignore();
    }
    let () = pipe.query(&mut conn).unwrap();
    let envs = [
        ("INVALIDATOR_STREAM__BLOCK", "100ms"),
        ("INVALIDATOR_STREAM__READ_COUNT", "100"),
    ];
    let first = consumer(&dir, &redis.url(), "first", &envs);
    wait_until("it is under way", Duration::from_secs(60), || {
        entries_read(&mut conn) >= 1000
    });
    let (status, summary) = first.stop(Duration::from_secs(60));
    assert!(status.success(), "{summary}");
    let read = summary["stream"]["read"].as_u64().unwrap();
    assert!(read < N, "stopped in the middle: {summary}");
    assert_eq!(summary["stream"]["acked"], read, "{summary}");
    assert_eq!(summary["stream"]["in_flight"], 0, "{summary}");
    assert_eq!(pending(&mut conn), 0, "everything read was acknowledged");
    // What it read is applied; what it did not read is still cached...
    let cached = (0..N)
        .filter(|id| conn.exists::<_, bool>(format!("turnus_data_{id}")).unwrap())
        .count() as u64;
    assert_eq!(cached, N - read);
    // ...and waits in the stream for the next consumer.
    let second = consumer(&dir, &redis.url(), "second", &envs);
    wait_until("the rest is applied", Duration::from_secs(60), || {
        redis::cmd("DBSIZE").query::<u64>(&mut conn).unwrap() == 1
    });
    let (status, summary) = second.stop(Duration::from_secs(60));
    assert!(status.success(), "{summary}");
    assert_eq!(
        summary["stream"]["read"].as_u64().unwrap(),
        N - read,
        "{summary}"
    );
}

/// An entry whose key Redis refuses for good (`NOPERM`) goes to the
/// dead-letter stream with the refusal as reason, is acknowledged, and the
/// entries behind it are applied. Before, it was retried for ever and
/// stayed claimed, and nothing behind it was acknowledged.
#[test]
fn an_entry_redis_refuses_for_good_is_dead_lettered_and_the_stream_moves_on() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let () = cache_turnus(4).query(&mut conn).unwrap();
    // The cache user may not touch `turnus_data_2`; the stream is read
    // with the default user.
    let cache_url = redis.limited_user("cache", &["turnus_data_1", "turnus_data_3", "inv:*"]);
    let dir = turnus_dir("refused");
    let stream_url = redis.url();
    let envs = [
        ("INVALIDATOR_STREAM__REDIS", stream_url.as_str()),
        ("INVALIDATOR_STREAM__BLOCK", "100ms"),
    ];
    let service = consumer(&dir, &cache_url, "only", &envs);
    let gone = |conn: &mut redis::Connection, id: u64| -> bool {
        !conn.exists::<_, bool>(format!("turnus_data_{id}")).unwrap()
    };

    // One entry at a time, so that each is its own batch.
    let _: String = conn.xadd(STREAM, "*", &[("commit", geld(1))]).unwrap();
    wait_until("entry 1 is applied", Duration::from_secs(30), || {
        gone(&mut conn, 1) && pending(&mut conn) == 0
    });
    let refused: String = conn.xadd(STREAM, "*", &[("commit", geld(2))]).unwrap();
    wait_until("entry 2 is dead-lettered", Duration::from_secs(30), || {
        conn.xlen::<_, u64>("commits:dead").unwrap() == 1 && pending(&mut conn) == 0
    });
    let _: String = conn.xadd(STREAM, "*", &[("commit", geld(3))]).unwrap();
    wait_until("entry 3 is applied", Duration::from_secs(30), || {
        gone(&mut conn, 3) && pending(&mut conn) == 0
    });
    assert!(!gone(&mut conn, 2), "the refused key is still there");

    let dead: redis::streams::StreamRangeReply = conn.xrange_all("commits:dead").unwrap();
    let copy = &dead.ids[0];
    assert_eq!(copy.get::<String>("entry"), Some(refused));
    let reason: String = copy.get("reason").unwrap();
    assert!(reason.contains("key `turnus_data_2`"), "{reason}");
    assert!(reason.contains("NOPERM"), "{reason}");
    assert_eq!(
        copy.get::<String>("commit"),
        Some(geld(2)),
        "the entry is copied"
    );

    let (status, summary) = service.stop(Duration::from_secs(30));
    assert!(status.success(), "{summary}");
    assert_eq!(summary["stream"]["dead_lettered"], 1, "{summary}");
    assert_eq!(summary["stream"]["acked"], 2, "{summary}");
    assert_eq!(summary["unapplied"], 1, "{summary}");
    assert_eq!(
        summary["errors"], 1,
        "counted once, never retried: {summary}"
    );
}
