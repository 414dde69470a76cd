//! The modes of `duplex connect` a wscat/websocat user reaches for, on the
//! built binary against real servers (`duplex serve`, library servers):
//! `--binary`, `--input hex|base64`, `-1`, `--show-control`, `--jsonl`,
//! slash commands, `-v`; exit codes and exact output lines.

mod common;

use std::time::Duration;

use common::cli_run::{run, serve};
use duplex::{CloseFrame, Message, Server, ServerSocket, UpgradeRequest};

const STEP: Duration = Duration::from_secs(20);

fn echo_url(addr: &str) -> String {
    format!("ws://{addr}/echo")
}

#[test]
fn binary_hex_and_base64_input_arrive_as_binary() {
    let (_serve, addr) = serve(&[]);
    let url = echo_url(&addr);
    let out = run(&["connect", &url, "--binary"], "hi\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["<binary 2 bytes: 6869>"]);

    let out = run(
        &["connect", &url, "--input", "hex"],
        "deadbeef\n00 01 ff\n",
        STEP,
    );
    out.assert_ok();
    assert_eq!(
        out.lines(),
        ["<binary 4 bytes: deadbeef>", "<binary 3 bytes: 0001ff>"]
    );
    assert_eq!(out.stderr, "");

    let out = run(&["connect", &url, "--input", "base64"], "3q2+7w==\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["<binary 4 bytes: deadbeef>"]);

    // A line that is not hex is not sent, said on stderr; the rest goes on.
    let out = run(&["connect", &url, "--input", "hex"], "xyz\nab\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["<binary 1 bytes: ab>"]);
    assert!(out.stderr.contains("not hex"), "{out:#?}");
}

/// Sends a text with a newline, binary, a ping, then closes 1000 "bye".
async fn multiline_then_close(mut ws: ServerSocket, _req: UpgradeRequest) {
    let _ = ws.send("two\nlines").await;
    let _ = ws.send(vec![0xdeu8, 0xad]).await;
    let _ = ws.send(Message::Ping(b"p?".to_vec().into())).await;
    let _ = ws.close(Some(CloseFrame::new(1000, "bye"))).await;
}

#[test]
fn jsonl_keeps_a_multiline_text_one_message_and_shows_the_close() {
    let server = common::lib_server(Server::new().route("/m", multiline_then_close), STEP);
    let url = format!("ws://{}/m", server.addr);
    // Stdin kept open would also work; the server closes first.
    let out = run(&["connect", &url, "--jsonl"], "", STEP);
    out.assert_ok();
    let json = out.json_lines();
    // Without --show-control: data messages and the close.
    assert_eq!(json.len(), 3, "{out:#?}");
    assert_eq!(json[0]["type"], "text");
    assert_eq!(json[0]["text"], "two\nlines");
    assert_eq!(json[0]["size"], 9);
    assert_eq!(json[1]["type"], "binary");
    assert_eq!(json[1]["base64"], "3q0=");
    assert_eq!(json[1]["size"], 2);
    assert_eq!(json[2]["type"], "close");
    assert_eq!(json[2]["code"], 1000);
    assert_eq!(json[2]["reason"], "bye");

    let out = run(&["connect", &url, "--jsonl", "--show-control"], "", STEP);
    out.assert_ok();
    let json = out.json_lines();
    let types: Vec<&str> = json.iter().map(|j| j["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["text", "binary", "ping", "close"], "{out:#?}");
    assert_eq!(json[2]["base64"], "cD8=");
    assert_eq!(json[2]["size"], 2);
}

#[test]
fn show_control_prints_pings_and_the_close_in_plain_output() {
    let server = common::lib_server(Server::new().route("/m", multiline_then_close), STEP);
    let url = format!("ws://{}/m", server.addr);
    let out = run(&["connect", &url, "--show-control"], "", STEP);
    out.assert_ok();
    assert_eq!(
        out.lines(),
        [
            "two",
            "lines",
            "<binary 2 bytes: dead>",
            "<ping 2 bytes: 703f>",
            "<close 1000 bye>"
        ]
    );
    // Without it, the default contract's output.
    let out = run(&["connect", &url], "", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["two", "lines", "<binary 2 bytes: dead>"]);
}

#[test]
fn slash_commands_ping_close_and_send_literal_slashes() {
    let (_serve, addr) = serve(&[]);
    let url = echo_url(&addr);
    let out = run(
        &["connect", &url, "--slash", "--show-control"],
        "//literal\n/ping hello\n/close 4000 done\nnot sent\n",
        STEP,
    );
    out.assert_ok();
    assert_eq!(
        out.lines(),
        [
            "/literal",
            "<pong 5 bytes: 68656c6c6f>",
            // The server's answer: our code back, without our reason.
            "<close 4000>"
        ]
    );
    // Unknown commands are refused on stderr, not sent.
    let out = run(&["connect", &url, "--slash"], "/nope\nok\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["ok"]);
    assert!(out.stderr.contains("unknown command /nope"), "{out:#?}");
    // Piped stdin without --slash: lines starting with / are messages
    // (the contract of DESIGN.md).
    let out = run(&["connect", &url], "/ping\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["/ping"]);
}

/// Answers every message with two, then waits.
async fn two_replies(mut ws: ServerSocket, _req: UpgradeRequest) {
    while let Some(Ok(message)) = ws.recv().await {
        if message.is_data() {
            let _ = ws.send("reply 1").await;
            let _ = ws.send("reply 2").await;
        }
    }
}

/// Greets, then answers nothing.
async fn greeter(mut ws: ServerSocket, _req: UpgradeRequest) {
    let _ = ws.send("welcome").await;
    while let Some(Ok(_)) = ws.recv().await {}
}

#[test]
fn once_prints_as_many_replies_as_messages_sent_then_closes_1000() {
    let (_serve, addr) = serve(&[]);
    let out = run(&["connect", "-1", &echo_url(&addr)], "a\nb\n", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["a", "b"]);

    let server = common::lib_server(
        Server::new()
            .route("/two", two_replies)
            .route("/greet", greeter),
        STEP,
    );
    // One message sent: one reply printed, though the server sends two.
    let url = format!("ws://{}/two", server.addr);
    let out = run(&["connect", "--once", &url, "--jsonl"], "x\n", STEP);
    out.assert_ok();
    let json = out.json_lines();
    assert_eq!(json[0]["text"], "reply 1");
    // What follows is the close the client asked for (1000), perhaps
    // after the second reply, which was already on its way.
    let last = json.last().unwrap();
    assert_eq!(last["type"], "close");
    assert_eq!(last["code"], 1000);
    assert!(json.len() <= 3, "{out:#?}");

    // Empty stdin: the first message the server sends.
    let url = format!("ws://{}/greet", server.addr);
    let out = run(&["connect", "-1", &url], "", STEP);
    out.assert_ok();
    assert_eq!(out.lines(), ["welcome"]);
}

#[test]
fn verbose_prints_the_handshake_on_stderr() {
    let (_serve, addr) = serve(&[]);
    let out = run(
        &["connect", "-v", &echo_url(&addr), "-H", "X-Test: yes"],
        "v\n",
        STEP,
    );
    out.assert_ok();
    assert_eq!(out.lines(), ["v"]);
    let err: Vec<&str> = out.stderr.lines().collect();
    assert!(err.contains(&"> GET /echo HTTP/1.1"), "{err:#?}");
    assert!(
        err.contains(&format!("> Host: {addr}").as_str()),
        "{err:#?}"
    );
    assert!(err.contains(&"> X-Test: yes"), "{err:#?}");
    assert!(
        err.contains(&"< HTTP/1.1 101 Switching Protocols"),
        "{err:#?}"
    );
    assert!(
        err.iter()
            .any(|l| l.to_lowercase().starts_with("< sec-websocket-accept: ")),
        "{err:#?}"
    );
    assert!(
        err.contains(&"* connected; subprotocol none, permessage-deflate on"),
        "{err:#?}"
    );
}
