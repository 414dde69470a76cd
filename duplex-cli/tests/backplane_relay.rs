//! Rooms across `duplex serve` nodes on one real Redis (issue 11): every
//! member on any node gets each other member's messages in the order they
//! were sent, none twice, never its own, nothing from another room; and a
//! node's subscription to a room's channel follows its local membership,
//! without churn when members flap.

mod common;

use std::time::Duration;

use common::chat::ChatClient;
use common::delivery::{self, Losses};
use common::node::{room_channel, Node, PREFIX};
use common::redis::RedisServer;
use common::resp;
use common::traffic::blocking;

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);
/// How long a node may keep a room's subscription after its last member
/// left (the backplane lingers briefly, so that flapping costs nothing).
const LINGER_WITHIN: Duration = Duration::from_secs(10);

/// Starts `n` nodes on `redis`, named n0, n1, ..., and waits until each
/// backplane is up.
fn start_nodes(redis: &RedisServer, n: usize) -> Vec<Node> {
    let nodes: Vec<Node> = (0..n)
        .map(|i| Node::start(&redis.url(), &format!("n{i}"), &[]))
        .collect();
    for node in &nodes {
        node.wait_status("up", STEP);
    }
    nodes
}

fn base(node: &Node) -> String {
    format!("ws://{}", node.addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_every_other_members_messages_across_three_nodes() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    const MESSAGES: u64 = 1000;
    let nodes = blocking(|| start_nodes(&redis, 3));

    // Two rooms of six members, two of each room on every node.
    let rooms = ["red", "blue"];
    let mut clients = Vec::new();
    for room in rooms {
        for i in 0..6 {
            let node = i % 3;
            let name = format!("{room}{i}");
            clients.push(ChatClient::join(&base(&nodes[node]), node, room, &name).await);
        }
    }
    // Each room's channel has one subscriber per node, not per member.
    for room in rooms {
        let channel = room_channel(PREFIX, room);
        blocking(|| resp::wait_subscribers(&redis.addr(), &channel, 3, STEP));
    }

    futures_util::future::join_all(clients.iter_mut().map(|c| c.send_numbered(MESSAGES))).await;
    delivery::wait_all_delivered(&clients, Duration::from_secs(120)).await;
    delivery::assert_all_clean(&clients);
    delivery::assert_none_closed(&clients);
    for client in &clients {
        assert_eq!(
            client.inbox(|i| i.messages.len()) as u64,
            5 * MESSAGES,
            "{}",
            client.name
        );
    }

    // Nothing was lost, and each node forwarded its members' messages and
    // received the other nodes' ones (per room: 2 local members, 4 remote).
    for node in &nodes {
        let stats = blocking(|| node.stats());
        assert_eq!(stats.node, node.name);
        assert!(stats.is_up(), "{stats:?}");
        assert_eq!((stats.dropped(), stats.lost), (0, 0), "{stats:?}");
        assert_eq!(stats.subscriptions, 2, "{stats:?}");
        assert_eq!(stats.forwarded, 2 * 2 * MESSAGES, "{stats:?}");
        assert_eq!(stats.received, 2 * 4 * MESSAGES, "{stats:?}");
        assert!(stats.lag_max_us >= stats.lag_last_us, "{stats:?}");
    }

    // Node 2's members leave: its subscriptions go (after the linger);
    // then everyone leaves and nothing is subscribed.
    let (leaving, staying): (Vec<_>, Vec<_>) = clients.into_iter().partition(|c| c.node == 2);
    for client in leaving {
        client.leave().await;
    }
    for room in rooms {
        let channel = room_channel(PREFIX, room);
        blocking(|| resp::wait_subscribers(&redis.addr(), &channel, 2, LINGER_WITHIN));
    }
    assert_eq!(blocking(|| nodes[2].stats()).subscriptions, 0);
    for client in staying {
        client.leave().await;
    }
    for room in rooms {
        let channel = room_channel(PREFIX, room);
        blocking(|| resp::wait_subscribers(&redis.addr(), &channel, 0, LINGER_WITHIN));
    }
}

/// The SUBSCRIBE and UNSUBSCRIBE calls (plain and sharded) Redis has seen.
fn subscription_calls(redis: &RedisServer) -> (u64, u64) {
    let calls = |name: &str| resp::command_calls(&redis.addr(), name);
    (
        calls("subscribe") + calls("ssubscribe"),
        calls("unsubscribe") + calls("sunsubscribe"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_membership_without_churn_when_members_flap() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let nodes = blocking(|| start_nodes(&redis, 2));
    let room = "flap";
    let channel = room_channel(PREFIX, room);
    let addr = redis.addr();
    assert_eq!(
        blocking(|| redis.subscribers(&channel)),
        0,
        "nobody joined yet"
    );

    let mut a = ChatClient::join(&base(&nodes[0]), 0, room, "a").await;
    blocking(|| resp::wait_subscribers(&addr, &channel, 1, STEP));
    let b = ChatClient::join(&base(&nodes[1]), 1, room, "b").await;
    blocking(|| resp::wait_subscribers(&addr, &channel, 2, STEP));
    // A second member on a node adds no subscription.
    let a2 = ChatClient::join(&base(&nodes[0]), 0, room, "a2").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(blocking(|| redis.subscribers(&channel)), 2);
    assert_eq!(blocking(|| nodes[0].stats()).subscriptions, 1);

    // Node 0's members flap: all leave and one comes back at once, again
    // and again. Redis sees no SUBSCRIBE or UNSUBSCRIBE for it.
    let before = blocking(|| subscription_calls(&redis));
    a.leave().await;
    a2.leave().await;
    for i in 0..5 {
        let flapper = ChatClient::join(&base(&nodes[0]), 0, room, &format!("f{i}")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        flapper.leave().await;
    }
    a = ChatClient::join(&base(&nodes[0]), 0, room, "a").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        blocking(|| subscription_calls(&redis)),
        before,
        "(subscribe, unsubscribe) calls changed while members flapped"
    );
    assert_eq!(blocking(|| redis.subscribers(&channel)), 2);

    // The room still spans both nodes.
    a.send_numbered(10).await;
    assert!(
        b.wait_until(STEP, |i| i.count_from("a") == 10).await,
        "b did not get a's messages after the flapping"
    );
    b.assert_clean(&["a".to_string(), "a2".to_string()]);
    assert_eq!(b.missing_from("a", 10), Vec::<u64>::new());

    // Node 0's last member leaves for good: its subscription goes.
    a.leave().await;
    blocking(|| resp::wait_subscribers(&addr, &channel, 1, LINGER_WITHIN));
    assert_eq!(blocking(|| nodes[0].stats()).subscriptions, 0);
    let losses = Losses::of(std::slice::from_ref(&b));
    assert_eq!(losses.cross, 0);
    b.leave().await;
    blocking(|| resp::wait_subscribers(&addr, &channel, 0, LINGER_WITHIN));
}
