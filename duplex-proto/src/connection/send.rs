//! The sending side of a [`Connection`]: data messages, control frames and
//! the close, queued as frames for the I/O layer to write.

use bytes::Bytes;

use super::Connection;
use crate::close::{CloseCode, CloseFrame};
use crate::error::SendError;
use crate::frame::OpCode;
use crate::message::Message;
use crate::outbox::{Outbox, Payload};

impl Connection {
    /// Queues a message. Text and binary messages are compressed when
    /// `permessage-deflate` is on (and they are large enough), and split
    /// into frames of `config.max_send_frame_size` if set. A close message
    /// starts the close handshake, like [`Connection::close`].
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        let frame_size = self.config.max_send_frame_size;
        self.send_fragmented(message, frame_size)
    }

    /// Like [`Connection::send`], but splits a data message into frames of
    /// at most `frame_size` payload bytes (`None`: one frame).
    pub fn send_fragmented(
        &mut self,
        message: Message,
        frame_size: Option<usize>,
    ) -> Result<(), SendError> {
        if !self.life.can_send() {
            return Err(SendError::Closed);
        }
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(data) => (OpCode::Binary, data),
            Message::Ping(data) => return self.send_control(OpCode::Ping, data),
            Message::Pong(data) => return self.send_control(OpCode::Pong, data),
            Message::Close(frame) => return self.close(frame),
        };
        outbox!(self).send_data(opcode, Payload::Shared(payload), frame_size)
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        if payload.len() > 125 {
            return Err(SendError::ControlFrameTooLong);
        }
        outbox!(self).queue_frame(opcode, true, false, Payload::Shared(payload));
        Ok(())
    }

    /// Starts the close handshake with an optional code and reason (cut to
    /// fit 125 bytes). Further sends fail with [`SendError::Closed`]; keep
    /// reading until the peer's close arrives.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if !self.life.can_send() {
            return Err(SendError::Closed);
        }
        if let Some(frame) = &frame {
            if !frame.code.is_sendable() {
                return Err(SendError::InvalidCloseCode(frame.code.into()));
            }
        }
        self.queue_close(frame.as_ref());
        Ok(())
    }

    /// Starts the close handshake ahead of the output not yet written:
    /// the frame being written is finished (a frame is never cut, and
    /// nothing follows the close), every later queued frame is dropped,
    /// then the close frame goes out. Returns how many data messages were
    /// dropped unwritten.
    ///
    /// For a close that replaces what is queued, such as a slow consumer's
    /// 1013 (try again later): behind megabytes of queued data, a peer
    /// that reads slowly would never get to the close before the server
    /// gives up on it.
    ///
    /// ```
    /// use bytes::Buf;
    /// use duplex_proto::{CloseCode, CloseFrame, Config, Connection, Message, Role};
    ///
    /// let mut conn = Connection::new(Role::Server, Config::default());
    /// conn.send(Message::text("being written")).unwrap();
    /// conn.send(Message::text("not started")).unwrap();
    /// conn.output().advance(3); // part of the first frame went out
    /// let frame = CloseFrame::new(CloseCode::TryAgainLater, "");
    /// assert_eq!(conn.close_now(Some(frame)).unwrap(), 1);
    /// // The rest of the first frame, then the close: nothing of the second.
    /// let out = conn.take_output();
    /// assert_eq!(&out[..12], b"eing written");
    /// assert_eq!(out[12..], [0x88, 0x02, 0x03, 0xf5]);
    /// ```
    pub fn close_now(&mut self, frame: Option<CloseFrame>) -> Result<usize, SendError> {
        if !self.life.can_send() {
            return Err(SendError::Closed);
        }
        if let Some(frame) = &frame {
            if !frame.code.is_sendable() {
                return Err(SendError::InvalidCloseCode(frame.code.into()));
            }
        }
        let dropped = self.output.discard_unstarted();
        self.queue_close(frame.as_ref());
        Ok(dropped)
    }

    /// How many data messages in the output have not been written whole
    /// (the one being written included): what is lost if the transport
    /// ends now. For counting, on a connection given up.
    pub fn unsent_messages(&self) -> usize {
        self.output.unsent_messages()
    }

    pub(super) fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = Vec::new();
        if let Some(frame) = frame {
            frame.encode(&mut payload);
        }
        outbox!(self).queue_frame(OpCode::Close, true, false, Payload::Lent(&payload));
        self.life.close_sent();
    }

    /// The close code to report when the transport ended: the peer's code
    /// after a clean close, 1005 when its close had none, and 1006 when the
    /// connection dropped without a close frame.
    pub fn close_code(&self) -> CloseCode {
        self.peer_code
    }
}
