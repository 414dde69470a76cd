//! The life of a connection, from open to a closed transport (RFC 6455 §7).
//!
//! A [`Connection`](crate::Connection) is in one [`State`]; the close
//! handshake moves it forward, never back. Once both close frames are
//! exchanged, or the connection failed, the transport is still to be
//! closed, and RFC 6455 §7.1.1 says who goes first: the server closes the
//! TCP connection, the client waits for it; whoever fails a connection
//! closes at once. [`Connection::transport_step`](crate::Connection::transport_step)
//! turns that rule into the next thing the I/O layer does
//! ([`TransportStep`]), so the layer executes it without deciding anything.

use crate::role::Role;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's; its messages still
    /// arrive until then, but nothing more can be sent.
    CloseSent,
    /// Both close frames were exchanged; the transport is being closed.
    Closed,
    /// The peer broke the protocol: a close frame with the matching code is
    /// queued, nothing more is read, and the transport is being closed.
    Failed,
    /// Nothing more to read or write: the transport can be dropped.
    Finished,
}

/// What the I/O layer does next with the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportStep {
    /// Read frames and feed them to the engine.
    Read,
    /// Write out the pending output, then shut down our sending side (TCP
    /// FIN), then call
    /// [`Connection::transport_shut_down`](crate::Connection::transport_shut_down).
    ShutDown,
    /// Read and discard until the peer ends the stream, then call
    /// [`Connection::receive_eof`](crate::Connection::receive_eof).
    /// Draining instead of dropping keeps the kernel from resetting the
    /// connection while our close frame is still in flight.
    Drain,
    /// Done: drop the transport.
    Done,
}

/// How an end of stream from the peer fits the connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eof {
    /// Expected: the close handshake was over (or the connection had
    /// failed, or had ended already).
    Expected,
    /// The peer went away without a close handshake (close code 1006).
    Abnormal,
}

/// [`State`] with what the closing phases still need: whether our FIN is
/// out and whether the peer's arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    Open,
    CloseSent,
    Closed(Ending),
    Failed(Ending),
    Finished,
}

/// The transport's two halves while a closed connection winds down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ending {
    shut_down: bool,
    eof: bool,
}

impl Lifecycle {
    pub(crate) fn state(self) -> State {
        match self {
            Lifecycle::Open => State::Open,
            Lifecycle::CloseSent => State::CloseSent,
            Lifecycle::Closed(_) => State::Closed,
            Lifecycle::Failed(_) => State::Failed,
            Lifecycle::Finished => State::Finished,
        }
    }

    /// Whether messages may still be sent.
    pub(crate) fn can_send(self) -> bool {
        self == Lifecycle::Open
    }

    /// Whether frames are still read and parsed.
    pub(crate) fn can_receive(self) -> bool {
        matches!(self, Lifecycle::Open | Lifecycle::CloseSent)
    }

    /// We queued a close frame (ours, or the echo of the peer's).
    pub(crate) fn close_sent(&mut self) {
        if *self == Lifecycle::Open {
            *self = Lifecycle::CloseSent;
        }
    }

    /// The peer's close frame arrived (after ours, or after the echo the
    /// engine queued for it).
    pub(crate) fn close_received(&mut self) {
        if self.can_receive() {
            *self = Lifecycle::Closed(Ending::default());
        }
    }

    /// The peer broke the protocol.
    pub(crate) fn fail(&mut self) {
        if self.can_receive() {
            *self = Lifecycle::Failed(Ending::default());
        }
    }

    /// The peer ended the stream.
    pub(crate) fn receive_eof(&mut self) -> Eof {
        match self {
            Lifecycle::Open | Lifecycle::CloseSent => {
                *self = Lifecycle::Finished;
                Eof::Abnormal
            }
            Lifecycle::Closed(ending) | Lifecycle::Failed(ending) => {
                ending.eof = true;
                Eof::Expected
            }
            Lifecycle::Finished => Eof::Expected,
        }
    }

    /// Our sending side of the transport is shut down.
    pub(crate) fn shut_down(&mut self) {
        if let Lifecycle::Closed(ending) | Lifecycle::Failed(ending) = self {
            ending.shut_down = true;
        }
    }

    /// The next step for the transport, by RFC 6455 §7.1.1. Moves to
    /// `Finished` when nothing is left to do.
    pub(crate) fn transport_step(&mut self, role: Role) -> TransportStep {
        let (ending, failed) = match *self {
            Lifecycle::Open | Lifecycle::CloseSent => return TransportStep::Read,
            Lifecycle::Finished => return TransportStep::Done,
            Lifecycle::Closed(ending) => (ending, false),
            Lifecycle::Failed(ending) => (ending, true),
        };
        // The server closes first, and so does whoever failed the
        // connection; a client waits for the server's FIN and answers it.
        let closes_first = role == Role::Server || failed;
        if !ending.shut_down && (closes_first || ending.eof) {
            return TransportStep::ShutDown;
        }
        // After a clean close handshake the server's FIN ends it: nothing
        // more is expected from the client. After a failure the peer may
        // still be sending, and closing on unread data would reset the
        // connection before it reads our close frame: drain.
        let waits_for_eof = role == Role::Client || failed;
        if waits_for_eof && !ending.eof {
            return TransportStep::Drain;
        }
        *self = Lifecycle::Finished;
        TransportStep::Done
    }

    /// The I/O layer gave up on the transport (an I/O error, a timeout).
    pub(crate) fn abort(&mut self) {
        *self = Lifecycle::Finished;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the closing phases, the peer's FIN arriving whenever the
    /// engine drains; returns the steps taken.
    fn wind_down(mut life: Lifecycle, role: Role) -> Vec<TransportStep> {
        let mut steps = Vec::new();
        loop {
            let step = life.transport_step(role);
            steps.push(step);
            match step {
                TransportStep::Read | TransportStep::Done => return steps,
                TransportStep::ShutDown => life.shut_down(),
                TransportStep::Drain => assert_eq!(life.receive_eof(), Eof::Expected),
            }
        }
    }

    #[test]
    fn the_server_closes_first_and_does_not_wait_after_a_clean_close() {
        let mut life = Lifecycle::Open;
        life.close_sent();
        life.close_received();
        use TransportStep::*;
        assert_eq!(wind_down(life, Role::Server), [ShutDown, Done]);
    }

    #[test]
    fn the_client_waits_for_the_server_then_answers_its_fin() {
        let mut life = Lifecycle::Open;
        life.close_received();
        use TransportStep::*;
        assert_eq!(wind_down(life, Role::Client), [Drain, ShutDown, Done]);
    }

    #[test]
    fn whoever_fails_closes_first_and_drains() {
        for role in [Role::Server, Role::Client] {
            let mut life = Lifecycle::Open;
            life.fail();
            use TransportStep::*;
            assert_eq!(wind_down(life, role), [ShutDown, Drain, Done]);
        }
    }

    #[test]
    fn eof_before_the_close_handshake_is_abnormal() {
        let mut life = Lifecycle::Open;
        assert_eq!(life.receive_eof(), Eof::Abnormal);
        assert_eq!(life.state(), State::Finished);
        let mut closing = Lifecycle::CloseSent;
        assert_eq!(closing.receive_eof(), Eof::Abnormal);
        assert_eq!(closing.receive_eof(), Eof::Expected);
    }

    #[test]
    fn the_state_only_moves_forward() {
        let mut life = Lifecycle::Open;
        life.fail();
        life.close_received();
        assert_eq!(life.state(), State::Failed);
        life.abort();
        life.close_sent();
        life.fail();
        assert_eq!(life.state(), State::Finished);
    }
}
