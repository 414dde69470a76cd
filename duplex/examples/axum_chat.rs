//! One axum app on one port: a REST route behind a bearer-token
//! middleware, `/chat/{room}` with duplex's Handler API and rooms (the
//! relay of `duplex serve`), and `/echo` with the stream API.
//!
//! ```text
//! cargo run -p duplex-ws --example axum_chat --features axum
//! duplex connect ws://127.0.0.1:3000/chat/lobby      # two of these chat
//! duplex connect ws://127.0.0.1:3000/echo
//! curl -H 'Authorization: Bearer secret' http://127.0.0.1:3000/api/rooms/lobby
//! ```

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use duplex::axum::WebSocketUpgrade;
use duplex::{Hub, Relay};

/// The REST routes accept only this token (an example: read yours from
/// the environment).
const TOKEN: &str = "Bearer secret";

/// Refuses REST calls without the token.
async fn auth(request: Request, next: Next) -> Result<Response, StatusCode> {
    match request.headers().get("authorization") {
        Some(value) if value == TOKEN => Ok(next.run(request).await),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

/// `GET /api/rooms/{room}`: how many are in a room, from the same hub the
/// chat connections run in.
async fn room_info(State(hub): State<Arc<Hub>>, Path(room): Path<String>) -> String {
    format!("{room}: {} member(s)\n", hub.rooms().member_count(&room))
}

/// `/chat/{room}`: every message reaches the room's other members.
async fn chat(State(hub): State<Arc<Hub>>, ws: WebSocketUpgrade) -> Response {
    let relay = Relay::for_request(ws.request());
    ws.run(relay, hub)
}

/// `/echo`: every message comes back.
async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut ws| async move {
        while let Some(Ok(message)) = ws.recv().await {
            if message.is_data() && ws.send(message).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // One hub: its rooms, limits and keepalive are those of every chat
    // connection (give it `Rooms::with_backplane` for rooms across nodes).
    let hub = Arc::new(Hub::new());
    let api = Router::new()
        .route("/api/rooms/{room}", get(room_info))
        .route_layer(middleware::from_fn(auth));
    let app = Router::new()
        .route("/chat/{room}", get(chat))
        .route("/echo", get(echo))
        .merge(api)
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on ws://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
