//! [`Relay`]: the chat behind `duplex serve`'s `/chat/<room>`.

use duplex_proto::{CloseCode, Message};

use crate::handler::Handler;
use crate::presence::display_name;
use crate::request::UpgradeRequest;
use crate::session::Session;

/// The chat relay handler: joins the room named by the route parameter
/// `room` and republishes every message it receives, unchanged and in
/// order, to the room's other members.
///
/// The member's display name in the room's [presence](crate::Rooms::presence)
/// comes from the `name` query parameter (`/chat/lobby?name=ada`), cleaned
/// by [`display_name`](crate::presence::display_name); without one the
/// member is anonymous. The relay itself never sends anything of its own
/// into the room.
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
    name: Option<String>,
}

impl Relay {
    /// A relay for the room in the request's `room` parameter, named by
    /// its `name` query parameter.
    pub fn for_request(request: &UpgradeRequest) -> Relay {
        Relay {
            room: request.param("room").unwrap_or_default().to_string(),
            name: request
                .query_param("name")
                .and_then(|name| display_name(&name)),
        }
    }

    /// A relay for a fixed room, joined anonymously.
    pub fn new(room: impl Into<String>) -> Relay {
        Relay {
            room: room.into(),
            name: None,
        }
    }

    /// Joins under this display name instead.
    pub fn with_name(mut self, name: &str) -> Relay {
        self.name = display_name(name);
        self
    }
}

impl Handler for Relay {
    async fn on_open(&mut self, session: &Session) {
        match &self.name {
            Some(name) => session.join_as(&self.room, name),
            None => session.join(&self.room),
        }
    }

    async fn on_message(&mut self, session: &Session, message: Message) {
        session.publish(&self.room, &message);
    }

    async fn on_close(&mut self, session: &Session, _code: CloseCode, _reason: &str) {
        session.leave(&self.room);
    }
}
