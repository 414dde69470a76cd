//! Self-tests of the backplane tests' support (tests/common): the RESP
//! helper, a real `redis-server` (start, kill, restart on the same port,
//! stopped on drop, the skip/fail policy when it is missing), the TCP
//! fault proxy in each mode, a local 3-master Redis Cluster, and the chat
//! members' delivery checks against a plain `duplex serve`. None of them
//! needs the backplane itself.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::chat::ChatClient;
use common::cluster::RedisCluster;
use common::delivery::{self, Losses};
use common::fault_proxy::{FaultProxy, Mode};
use common::redis::RedisServer;
use common::resp::{self, read_reply, Reply, Resp};

#[test]
fn resp_replies_parse_and_commands_encode() {
    let raw = b"+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\nx\r\n:1\r\n*-1\r\n";
    let mut reader = &raw[..];
    let replies: Vec<Reply> = (0..7).map(|_| read_reply(&mut reader).unwrap()).collect();
    assert_eq!(
        replies,
        [
            Reply::Simple("OK".into()),
            Reply::Error("ERR no".into()),
            Reply::Int(42),
            Reply::Bulk(Some(b"abc".to_vec())),
            Reply::Bulk(None),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"x".to_vec())), Reply::Int(1)])),
            Reply::Array(None),
        ]
    );
    assert!(read_reply(&mut reader).is_err(), "EOF is an error");
    assert_eq!(
        resp::encode(&["SET", "k", ""]),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    );
    let info = "# Stats\r\ncmdstat_ping:calls=3,usec=1\r\n";
    assert_eq!(
        resp::info_field(info, "cmdstat_ping").as_deref(),
        Some("calls=3,usec=1")
    );
}

/// Whether a connection to `addr` is refused (nothing listens there).
fn refused(addr: &str) -> bool {
    matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

#[test]
fn redis_server_starts_kills_restarts_and_stops() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let addr = redis.addr();
    assert_eq!(redis.url(), format!("redis://{addr}"));
    assert_eq!(redis.command(&["PING"]), Reply::Simple("PONG".into()));
    redis.command(&["SET", "k", "v"]).expect_ok("SET");
    assert_eq!(
        redis.command(&["GET", "k"]),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    // Persistence is off.
    let config = redis.command(&["CONFIG", "GET", "save"]);
    assert_eq!(config.items()[1].text(), "");
    assert_eq!(
        redis.command(&["CONFIG", "GET", "appendonly"]).items()[1].text(),
        "no"
    );

    // Subscriptions are visible, plain and sharded, and CLIENT KILL ends
    // them.
    let mut subscriber = redis.connect();
    subscriber.command(&["SUBSCRIBE", "room"]).unwrap();
    let mut sharded = redis.connect();
    sharded.command(&["SSUBSCRIBE", "room"]).unwrap();
    assert_eq!(redis.subscribers("room"), 2);
    assert_eq!(resp::command_calls(&addr, "subscribe"), 1);
    assert_eq!(resp::command_calls(&addr, "ssubscribe"), 1);
    assert_eq!(resp::command_calls(&addr, "unsubscribe"), 0);
    assert_eq!(
        redis.command(&["PUBLISH", "room", "hi"]),
        Reply::Int(1),
        "PUBLISH reaches the plain subscriber"
    );
    let pushed = subscriber.read_reply().unwrap();
    assert_eq!(pushed.items()[2].text(), "hi");
    assert_eq!(
        redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]),
        Reply::Int(2)
    );
    assert_eq!(redis.subscribers("room"), 0);
    assert!(
        subscriber.read_reply().is_err(),
        "the killed connection ends"
    );

    // The other faults the tests inject are enabled.
    redis
        .command(&["CLIENT", "PAUSE", "100", "ALL"])
        .expect_ok("CLIENT PAUSE");
    let mut sleeper = redis.connect();
    let start = Instant::now();
    sleeper
        .command(&["DEBUG", "SLEEP", "0.2"])
        .unwrap()
        .expect_ok("DEBUG SLEEP");
    assert!(start.elapsed() >= Duration::from_millis(200));

    // Killed: nothing listens; restarted on the same port, empty.
    redis.kill();
    assert!(!redis.is_running());
    assert!(refused(&addr), "a killed redis still accepts");
    redis.restart();
    assert_eq!(redis.addr(), addr);
    assert_eq!(redis.command(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(redis.command(&["GET", "k"]), Reply::Bulk(None));

    drop(redis);
    assert!(refused(&addr), "a dropped redis still accepts");
}

/// Run by [`missing_redis_server_skips_outside_ci_and_fails_in_ci`] in a
/// child test process with `DUPLEX_REDIS_SERVER` pointing at nothing.
#[test]
#[ignore = "run by missing_redis_server_skips_outside_ci_and_fails_in_ci"]
fn probe_missing_redis_server() {
    assert!(RedisServer::start().is_none());
}

#[test]
fn missing_redis_server_skips_outside_ci_and_fails_in_ci() {
    let probe = |ci: bool| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--ignored",
                "--exact",
                "probe_missing_redis_server",
                "--nocapture",
            ])
            .env("DUPLEX_REDIS_SERVER", "/nonexistent/redis-server")
            .env_remove("CI")
            .env_remove("DUPLEX_REQUIRE_PEERS");
        if ci {
            command.env("CI", "true");
        }
        command.output().expect("run the probe")
    };
    let skipped = probe(false);
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "outside CI it skips: {stderr}");
    assert!(
        stderr.contains("SKIPPED: redis-server not found"),
        "{stderr}"
    );
    let failed = probe(true);
    assert!(
        !failed.status.success(),
        "in CI a missing redis-server fails the test"
    );
}

/// A TCP echo server on a thread; it stops when the test process ends.
fn echo_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Connects to the proxy with a read timeout.
fn client(proxy: &FaultProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Sends `text` and reads back as many bytes.
fn round_trip(stream: &mut TcpStream, text: &str) -> std::io::Result<String> {
    stream.write_all(text.as_bytes())?;
    let mut buf = vec![0; text.len()];
    stream.read_exact(&mut buf)?;
    Ok(String::from_utf8(buf).unwrap())
}

/// Waits until `check` holds, at most 5 s.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fault_proxy_passes_delays_black_holes_and_resets() {
    let proxy = FaultProxy::start(&echo_server());
    let addr = proxy.addr();

    // Pass.
    let mut a = client(&proxy);
    assert_eq!(round_trip(&mut a, "hello").unwrap(), "hello");
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.open(), 1);

    // Delay: each direction waits at least that long.
    proxy.delay(150);
    let start = Instant::now();
    assert_eq!(round_trip(&mut a, "slow").unwrap(), "slow");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    proxy.pass();

    // Black hole: nothing comes back, yet the socket stays open, and new
    // connections are accepted; what was sent flows once it passes again.
    proxy.black_hole();
    assert_eq!(proxy.mode(), Mode::BlackHole);
    a.write_all(b"held").unwrap();
    let mut b = client(&proxy);
    b.write_all(b"also").unwrap();
    for stream in [&mut a, &mut b] {
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0; 4];
        match stream.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("a black hole forwarded or closed: {other:?}"),
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
    eventually("the second connection is held", || proxy.open() == 2);
    proxy.pass();
    let mut buf = [0; 4];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"held");
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"also");

    // Reset: both current connections get an RST, and so does a new one.
    proxy.reset();
    for stream in [&mut a, &mut b] {
        match stream.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("expected a reset, got {other:?}"),
        }
    }
    eventually("the reset connections are gone", || proxy.open() == 0);
    let mut c = client(&proxy);
    match c.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("a new connection in reset mode: {other:?}"),
    }
    assert_eq!(proxy.accepted(), 3);

    // Passing again serves new connections.
    proxy.pass();
    let mut d = client(&proxy);
    assert_eq!(round_trip(&mut d, "back").unwrap(), "back");

    // Dropped: its port is closed and its connections with it.
    drop(proxy);
    assert!(refused(&addr), "a dropped proxy still accepts");
    assert_eq!(
        d.read(&mut buf).unwrap_or(0),
        0,
        "a dropped proxy's connection ends"
    );
}

#[test]
fn fault_proxy_in_front_of_redis() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let proxy = FaultProxy::start(&redis.addr());
    assert_eq!(proxy.redis_url(), format!("redis://{}", proxy.addr()));
    let mut conn = Resp::connect(&proxy.addr()).unwrap();
    assert_eq!(
        conn.command(&["PING"]).unwrap(),
        Reply::Simple("PONG".into())
    );

    // A black-holed PING is not answered, then is.
    proxy.black_hole();
    conn.set_reply_timeout(Duration::from_millis(300)).unwrap();
    conn.send(&["PING"]).unwrap();
    assert!(conn.read_reply().is_err(), "a black hole answered");
    proxy.pass();
    conn.set_reply_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(conn.read_reply().unwrap(), Reply::Simple("PONG".into()));

    // The target's death reaches the client as the end of its connection;
    // while the target is down, new connections are reset.
    redis.kill();
    assert!(conn.command(&["PING"]).is_err());
    let mut refused_conn = Resp::connect(&proxy.addr()).unwrap();
    assert!(refused_conn.command(&["PING"]).is_err());
    redis.restart();
    let mut again = Resp::connect(&proxy.addr()).unwrap();
    assert_eq!(
        again.command(&["PING"]).unwrap(),
        Reply::Simple("PONG".into())
    );
}

#[test]
fn redis_cluster_of_three_masters() {
    let Some(mut cluster) = RedisCluster::start(3) else {
        return;
    };
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.urls().len(), 3);
    // Slot of "foo", as every Redis Cluster client computes it.
    assert_eq!(cluster.keyslot("foo"), 12182);
    assert_eq!(cluster.owner_of_key("foo"), 2);
    assert_eq!(cluster.owner_of_slot(0), 0);
    assert_eq!(cluster.owner_of_slot(16383), 2);

    // One channel per shard, found by hashing; sharded pub/sub works on
    // each owner.
    let channels: Vec<String> = (0..3)
        .map(|shard| {
            (0..)
                .map(|i| format!("chan-{i}"))
                .find(|c| cluster.owner_of_key(c) == shard)
                .unwrap()
        })
        .collect();
    let mut subscribers = Vec::new();
    for (shard, channel) in channels.iter().enumerate() {
        let mut conn = cluster.node(shard).connect();
        conn.command(&["SSUBSCRIBE", channel]).unwrap();
        subscribers.push(conn);
        assert_eq!(cluster.shard_subscribers(channel), 1);
    }
    // A key is refused by a node that does not own it.
    let wrong = (cluster.owner_of_key("foo") + 1) % 3;
    let moved = cluster.node(wrong).command(&["SET", "foo", "1"]);
    assert!(moved.text().starts_with("MOVED 12182"), "{moved:?}");

    // One master killed: the others still serve their slots.
    cluster.kill(1);
    for shard in [0, 2] {
        let key = &channels[shard];
        cluster
            .node(shard)
            .command(&["SET", key, "1"])
            .expect_ok("SET");
        let reply = cluster.node(shard).command(&["SPUBLISH", key, "x"]);
        assert_eq!(reply, Reply::Int(1), "SPUBLISH on a live shard");
    }
    assert!(
        subscribers[1].read_reply().is_err(),
        "the killed master's subscriber ends"
    );
    // Restarted, it serves its slots again.
    cluster.restart(1);
    assert_eq!(cluster.owner_of_key(&channels[1]), 1);
    cluster
        .node(1)
        .command(&["SET", &channels[1], "1"])
        .expect_ok("SET on the restarted master");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_members_and_delivery_checks_on_one_plain_node() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_duplex"));
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    let (_server, addr) = common::start_serve(command, Duration::from_secs(15));
    let base = format!("ws://{addr}");
    let mut clients = Vec::new();
    for (room, n) in [("a", 3), ("b", 2)] {
        for i in 0..n {
            clients.push(ChatClient::join(&base, 0, room, &format!("{room}{i}")).await);
        }
    }
    // Every member is in its room before anyone sends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    futures_util::future::join_all(clients.iter_mut().map(|c| c.send_numbered(200))).await;
    delivery::wait_all_delivered(&clients, Duration::from_secs(30)).await;
    delivery::assert_all_clean(&clients);
    delivery::assert_none_closed(&clients);
    let losses = Losses::of(&clients);
    assert_eq!((losses.local, losses.cross), (0, 0), "{losses:?}");
    assert_eq!(clients[0].inbox(|i| i.messages.len()), 400);
    assert_eq!(
        clients[3].inbox(|i| i.seqs_from("b1")),
        (0..200).collect::<Vec<_>>()
    );

    // The checks catch a member that missed messages, and one that got
    // another room's.
    let late = ChatClient::join(&base, 0, "a", "late").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    clients[0].send_numbered(1).await;
    assert!(
        late.wait_until(Duration::from_secs(5), |i| i.has("a0", 200))
            .await
    );
    assert_eq!(late.missing_from("a0", 201), (0..200).collect::<Vec<_>>());
    clients.push(late);
    let losses = Losses::of(&clients);
    assert_eq!(losses.local, 3 * 200, "{losses:?}");
    let outsider = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        clients[0].assert_clean(&["a1".to_string()])
    }));
    assert!(
        outsider.is_err(),
        "a message from outside the given members passed"
    );
    for client in clients {
        client.leave().await;
    }
}
