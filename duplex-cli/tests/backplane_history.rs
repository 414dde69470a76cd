//! Room history (`--history N`) against real nodes: a member who joins gets
//! the room's last N messages, then the live ones, with no gap and no
//! duplicate between the two; on one node, and across nodes through a
//! real `redis-server` (the joiner's node has no members of the room yet,
//! so its history comes from the Redis stream).

mod common;

use std::time::Duration;

use common::chat::ChatClient;
use common::node::Node;
use common::redis::RedisServer;
use common::traffic::blocking;

const STEP: Duration = Duration::from_secs(15);
const HISTORY: u64 = 20;

fn base(node: &Node) -> String {
    format!("ws://{}", node.addr())
}

/// `seqs` is one contiguous run ending at `last`, at least `at_least` long.
fn assert_contiguous(who: &str, seqs: &[u64], last: u64, at_least: usize) {
    assert!(!seqs.is_empty(), "{who} got nothing");
    let first = seqs[0];
    let want: Vec<u64> = (first..=last).collect();
    assert_eq!(seqs, want.as_slice(), "{who}: a gap or a duplicate");
    assert!(
        seqs.len() >= at_least,
        "{who}: {} messages, wanted at least {at_least}",
        seqs.len()
    );
}

/// A joiner gets the last HISTORY of 30 earlier messages, then live ones.
async fn replay_then_live(sender_node: &str, joiner_node: &str) {
    let mut sender = ChatClient::join(sender_node, 0, "h", "s").await;
    let listener = ChatClient::join(sender_node, 0, "h", "l").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sender.send_numbered(30).await;
    assert!(listener.wait_until(STEP, |i| i.count_from("s") == 30).await);
    let joiner = ChatClient::join(joiner_node, 1, "h", "j").await;
    assert!(
        joiner
            .wait_until(STEP, |i| i.count_from("s") == HISTORY as usize)
            .await
    );
    sender.send_numbered(5).await;
    assert!(
        joiner
            .wait_until(STEP, |i| i.count_from("s") == HISTORY as usize + 5)
            .await
    );
    let seqs = joiner.inbox(|i| i.seqs_from("s"));
    let want: Vec<u64> = (30 - HISTORY..35).collect();
    assert_eq!(seqs, want, "the last {HISTORY}, then the live ones");
}

/// Members join on both nodes while a sender streams 1500 messages: each
/// gets one contiguous run, from some point of the history to the end.
async fn joins_during_a_stream(nodes: &[String]) {
    let mut sender = ChatClient::join(&nodes[0], 0, "stream", "s").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    const N: u64 = 1500;
    let sending = tokio::spawn(async move {
        for i in 0..N {
            sender.send_next().await.expect("send");
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        sender
    });
    let mut joiners = Vec::new();
    for k in 0..4 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let node = &nodes[(k + 1) % nodes.len()];
        joiners.push(ChatClient::join(node, k, "stream", &format!("j{k}")).await);
    }
    let _sender = sending.await.unwrap();
    for joiner in &joiners {
        assert!(
            joiner.wait_until(STEP, |i| i.has("s", N - 1)).await,
            "a joiner never got the last message"
        );
        let seqs = joiner.inbox(|i| i.seqs_from("s"));
        assert_contiguous("joiner", &seqs, N - 1, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_one_node() {
    let (_node, addr) = blocking(|| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_duplex"));
        command.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--history",
            &HISTORY.to_string(),
        ]);
        common::start_serve(command, STEP)
    });
    let url = format!("ws://{addr}");
    replay_then_live(&url, &url).await;
    joins_during_a_stream(&[url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_across_nodes_through_redis() {
    let Some(redis) = blocking(RedisServer::start) else {
        return;
    };
    let history = HISTORY.to_string();
    let (a, b) = blocking(|| {
        let a = Node::start(&redis.url(), "a", &["--history", &history]);
        let b = Node::start(&redis.url(), "b", &["--history", &history]);
        a.wait_status("up", STEP);
        b.wait_status("up", STEP);
        (a, b)
    });
    replay_then_live(&base(&a), &base(&b)).await;
    joins_during_a_stream(&[base(&a), base(&b)]).await;
}
