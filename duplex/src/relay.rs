//! [`Relay`]: the chat behind `duplex serve`'s `/chat/<room>`.

use duplex_proto::{CloseCode, Message};

use crate::handler::Handler;
use crate::request::UpgradeRequest;
use crate::session::Session;

/// The chat relay handler: joins the room named by the route parameter
/// `room` and republishes every message it receives, unchanged and in
/// order, to the room's other members.
///
/// ```no_run
/// use duplex::{Relay, Server};
///
/// # async fn run() -> duplex::Result<()> {
/// // Every message a client sends to /chat/<room> reaches the room's other members.
/// let server = Server::new().handler("/chat/{room}", Relay::for_request);
/// server.bind("127.0.0.1:8080").await?.serve().await
/// # }
/// ```
#[derive(Debug)]
pub struct Relay {
    room: String,
}

impl Relay {
    /// A relay for the room in the request's `room` parameter.
    pub fn for_request(request: &UpgradeRequest) -> Relay {
        Relay {
            room: request.param("room").unwrap_or_default().to_string(),
        }
    }

    /// A relay for a fixed room.
    pub fn new(room: impl Into<String>) -> Relay {
        Relay { room: room.into() }
    }
}

impl Handler for Relay {
    async fn on_open(&mut self, session: &Session) {
        session.join(&self.room);
    }

    async fn on_message(&mut self, session: &Session, message: Message) {
        session.publish(&self.room, &message);
    }

    async fn on_close(&mut self, session: &Session, _code: CloseCode, _reason: &str) {
        session.leave(&self.room);
    }
}
