//! A node of a room spanning three `duplex serve` nodes on one real Redis
//! goes away (issue 11): killed with SIGKILL, or stopped with SIGTERM. Its
//! members' connections end (with 1001 on SIGTERM), its subscription
//! leaves Redis (at once on SIGTERM), and the other nodes are unaffected:
//! their members keep getting all of each other's messages, and what they
//! got from the departed node's members is an unbroken prefix.

mod common;

use std::time::Duration;

use common::chat::{ChatClient, End};
use common::delivery::{self, Losses};
use common::node::{room_channel, Node, PREFIX};
use common::redis::RedisServer;
use common::resp;
use common::traffic::{self, blocking};
use duplex::CloseCode;

/// The bound of one waiting step.
const STEP: Duration = Duration::from_secs(15);
/// The node that goes away.
const GONE: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

async fn node_goes_away(stop: Stop) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let room = "leaving";
    let channel = room_channel(PREFIX, room);
    let mut nodes: Vec<Node> = blocking(|| {
        let nodes: Vec<Node> = (0..3)
            .map(|i| Node::start(&redis.url(), &format!("n{i}"), &[]))
            .collect();
        for node in &nodes {
            node.wait_status("up", STEP);
        }
        nodes
    });
    // groups[0]: the members of nodes 0 and 1; groups[1]: those of node 2.
    let mut groups = vec![Vec::new(), Vec::new()];
    for i in 0..6 {
        let node = i % 3;
        let base = format!("ws://{}", nodes[node].addr());
        let member = ChatClient::join(&base, node, room, &format!("m{i}")).await;
        groups[usize::from(node == GONE)].push(member);
    }
    blocking(|| resp::wait_subscribers(&redis.addr(), &channel, 3, STEP));
    traffic::send_for(&mut groups, Duration::from_secs(1)).await;

    match stop {
        Stop::Kill => blocking(|| nodes[GONE].sigkill()),
        Stop::Term => nodes[GONE].sigterm(),
    }
    // The survivors keep talking while the node goes.
    let (survivors, gone) = groups.split_at_mut(1);
    let gone = &gone[0];
    for member in gone {
        let end = member.wait_end(STEP).await;
        match stop {
            Stop::Term => assert_eq!(
                end,
                Some(End::Closed(Some(CloseCode::Away))),
                "{}: on SIGTERM",
                member.name
            ),
            Stop::Kill => assert!(
                matches!(end, Some(End::Eof | End::Failed(_))),
                "{}: on SIGKILL: {end:?}",
                member.name
            ),
        }
    }
    if stop == Stop::Term {
        let status = blocking(|| nodes[GONE].wait_exit(STEP));
        assert!(status.success(), "SIGTERM: exit status {status}");
        // Its subscription went before it exited.
        assert_eq!(
            blocking(|| redis.subscribers(&channel)),
            2,
            "SIGTERM: the node's subscription is still there after its exit"
        );
    } else {
        blocking(|| resp::wait_subscribers(&redis.addr(), &channel, 2, STEP));
    }
    traffic::send_for(survivors, Duration::from_secs(2)).await;
    delivery::wait_last_delivered(&survivors[0], STEP, |_, _| true).await;

    // The survivors: untouched.
    let survivors = &survivors[0];
    delivery::assert_none_closed(survivors);
    let mut everyone: Vec<String> = delivery::members(survivors, room);
    everyone.extend(gone.iter().map(|m| m.name.clone()));
    for member in survivors {
        member.assert_clean(&everyone);
        // From a departed member: its first messages, without a gap.
        for sender in gone {
            let seqs = member.inbox(|i| i.seqs_from(&sender.name));
            let prefix: Vec<u64> = (0..seqs.len() as u64).collect();
            assert_eq!(seqs, prefix, "{} from {}: a gap", member.name, sender.name);
        }
    }
    let losses = Losses::of(survivors);
    assert_eq!((losses.local, losses.cross), (0, 0), "{stop:?}: {losses:?}");
    for node in &nodes[..GONE] {
        let stats = blocking(|| node.stats());
        assert!(stats.is_up(), "{stop:?}: {stats:?}");
        assert_eq!((stats.dropped(), stats.lost), (0, 0), "{stop:?}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_leaves_the_others_unaffected() {
    node_goes_away(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_closes_its_members_with_1001_and_unsubscribes_at_once() {
    node_goes_away(Stop::Term).await;
}
