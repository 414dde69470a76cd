//! Protocol violations after a good handshake, over raw TCP: each bad
//! frame gets a close frame with the right code, then the end of the TCP
//! connection, whether the route stops at the first error or reads on;
//! invalid UTF-8 fails as soon as the bad byte arrives; and the whole
//! battery (handshakes, frames, silent clients, a huge length) on one
//! server leaves it serving.

mod common;

use common::battery::frames::{frame_battery, special_cases, utf8_cases};
use common::battery::handshakes::{half_request_then_disconnect, handshake_battery, silent_client};
use common::battery::*;
use common::*;
use duplex::{Server, ServerSocket, UpgradeRequest};

/// An echo route that keeps calling `recv` after an error until it returns
/// `None`, instead of dropping the socket at the first error like the
/// `duplex serve` route (and the crate's examples) do.
async fn echo_reading_to_the_end(mut ws: ServerSocket, _req: UpgradeRequest) {
    while let Some(item) = ws.recv().await {
        if let Ok(message) = item {
            if message.is_data() && ws.send(message).await.is_err() {
                break;
            }
        }
    }
}

fn server_reading_to_the_end() -> Server {
    Server::new()
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .route("/echo", echo_reading_to_the_end)
}

/// With the echo route of `duplex serve`, which stops at the first error.
#[tokio::test]
async fn protocol_violations_get_the_right_close_code() {
    let running = Running::start(server()).await;
    assert_no_failures(run_cases(frame_battery(running.addr)).await);
    assert_still_serving_then_stop(running).await;
}

/// The same with a route that reads on after the error: the engine's
/// codes, independent of how the application reacts to the error.
#[tokio::test]
async fn protocol_violations_get_the_right_close_code_when_the_route_reads_on() {
    let running = Running::start(server_reading_to_the_end()).await;
    let addr = running.addr;
    let mut failures = run_cases(frame_battery(addr)).await;
    failures.extend(run_cases(special_cases(addr)).await);
    assert_no_failures(failures);
    assert_still_serving_then_stop(running).await;
}

#[tokio::test]
async fn invalid_utf8_fails_fast() {
    let running = Running::start(server()).await;
    let addr = running.addr;
    assert_no_failures(run_cases(utf8_cases(addr)).await);
    assert_still_serving_then_stop(running).await;
}

/// Everything above on one server, then a normal client is still served.
#[tokio::test]
async fn server_survives_the_whole_battery() {
    let running = Running::start(server()).await;
    let addr = running.addr;
    let mut failures = run_cases(handshake_battery(addr)).await;
    failures.extend(run_cases(frame_battery(addr)).await);
    let more = vec![
        named("silent client", silent_client(addr)),
        named(
            "half request then disconnect",
            half_request_then_disconnect(addr),
        ),
    ];
    failures.extend(run_cases(more).await);
    failures.extend(run_cases(special_cases(addr)).await);
    assert_no_failures(failures);
    assert_still_serving_then_stop(running).await;
}
