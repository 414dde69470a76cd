//! The per-connection state machine.
//!
//! A [`Connection`] owns everything RFC 6455 says about an open connection:
//! it parses frames out of the bytes it is given, reassembles fragmented
//! messages, validates UTF-8 as it arrives, answers pings and closes, and
//! encodes outgoing messages into bytes. It never touches a socket.
//!
//! Reading: put received bytes in with [`Connection::receive`] (or read
//! straight into [`Connection::input_buffer`]), then call
//! [`Connection::next_message`] until it returns `Ok(None)`.
//!
//! Writing: [`Connection::send`] and [`Connection::close`] queue frames;
//! write out [`Connection::output`] (a [`bytes::Buf`]) and advance it by what
//! was written.
//!
//! On a protocol error, `next_message` returns the error and has already
//! queued a close frame with the matching code. Once the connection is
//! closed or failed, [`Connection::transport_step`] says what to do with
//! the transport (write out the output, shut down, drain), by RFC 6455
//! §7.1.1.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::error::{ProtocolError, SendError};
use crate::frame::{FrameHeader, OpCode};
use crate::incoming::{check_header, IncomingFrame, IncomingMessage};
use crate::lifecycle::{Eof, Lifecycle, State, TransportStep};
use crate::mask::apply_mask;
use crate::message::{Message, MessageRef, Utf8Bytes};
use crate::outbox::{MaskPool, Outbox, Payload};
use crate::role::Role;
use crate::utf8::Utf8Validator;
use crate::write_queue::WriteQueue;

/// Payloads up to this size are copied out of the read buffer rather than
/// shared with it.
const COPY_PAYLOAD_MAX: usize = 256;

/// What one parsing step produced.
enum Step {
    NeedMore,
    Continue,
    Message(Message),
}

/// Where the buffers go back to after a large message, so idle connections
/// stay small.
const IDLE_BUFFER_LIMIT: usize = 64 * 1024;

/// The sending side of `$conn` as an [`Outbox`], borrowed field by field,
/// so that the read buffer can stay borrowed meanwhile.
macro_rules! outbox {
    ($conn:expr) => {
        Outbox {
            output: &mut $conn.output,
            mask_pool: &mut $conn.mask_pool,
            #[cfg(feature = "deflate")]
            deflate: &mut $conn.deflate,
            role: $conn.role,
            frame_size: $conn.config.max_send_frame_size,
            closed: !$conn.life.can_send(),
        }
    };
}

// After the macro, which it uses.
mod send;

/// One WebSocket connection's protocol state, sans IO.
pub struct Connection {
    role: Role,
    /// Shared: a server's connections all point at one copy.
    config: Arc<Config>,
    input: BytesMut,
    frame: Option<IncomingFrame>,
    /// Boxed: most messages are one frame, and idle connections should
    /// stay small.
    message: Option<Box<IncomingMessage>>,
    /// Messages received whole (see [`Connection::messages_received`]).
    received: u64,
    utf8: Utf8Validator,
    output: WriteQueue,
    life: Lifecycle,
    /// The close code to report: 1006 until the peer's close arrives.
    peer_code: CloseCode,
    /// The close frame the peer sent, if it had a code (boxed: rare, and
    /// idle connections should stay small).
    peer_close: Option<Box<CloseFrame>>,
    /// Random masking keys drawn ahead (clients only).
    mask_pool: Option<Box<MaskPool>>,
    #[cfg(feature = "deflate")]
    deflate: Option<Box<crate::deflate::PerMessageDeflate>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection in the open state (the handshake is done), with no
    /// extension.
    pub fn new(role: Role, config: Config) -> Connection {
        Connection::with_shared_config(role, Arc::new(config))
    }

    /// Like [`Connection::new`], sharing one settings object among many
    /// connections (what a server does).
    pub fn with_shared_config(role: Role, config: Arc<Config>) -> Connection {
        Connection {
            role,
            config,
            input: BytesMut::new(),
            frame: None,
            message: None,
            received: 0,
            utf8: Utf8Validator::default(),
            output: WriteQueue::default(),
            life: Lifecycle::Open,
            peer_code: CloseCode::Abnormal,
            peer_close: None,
            mask_pool: None,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }

    /// Turns on `permessage-deflate` with the parameters the handshake
    /// agreed on (and the compression settings of `config.deflate`). The
    /// handshake calls this when compression was negotiated; call it
    /// yourself only for a connection made by hand.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub fn enable_deflate(&mut self, params: crate::deflate::DeflateParams) {
        use crate::deflate::PerMessageDeflate;
        let settings = self.config.deflate.clone().unwrap_or_default();
        self.deflate = Some(Box::new(PerMessageDeflate::new(
            self.role, params, &settings,
        )));
    }

    /// Whether `permessage-deflate` is on.
    pub fn is_compressed(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.deflate.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Hands received bytes to the engine (copies them; to avoid the copy,
    /// read into [`Connection::input_buffer`] instead).
    pub fn receive(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    /// The buffer received bytes go into. Append to it (e.g. with
    /// `AsyncReadExt::read_buf`), then call [`Connection::next_message`].
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// How many bytes of the frame being received have not arrived yet
    /// (0 between frames). The I/O layer sizes its reads with it, so a
    /// large frame is read into room that fits it, without a last
    /// doubling of the buffer for its final bytes. (Known only once
    /// [`Connection::next_message`] has seen the frame's header.)
    pub fn frame_remaining(&self) -> usize {
        self.frame
            .as_ref()
            .map_or(0, |frame| frame.len.saturating_sub(self.input.len()))
    }

    /// Memory held for messages not yet returned: the read buffer's
    /// allocation (a frame still arriving, frames not yet parsed, room for
    /// the rest) and a fragmented message being assembled. What a memory
    /// budget counts: capacity rather than length, because a buffer that
    /// grows by doubling can hold twice what has arrived.
    pub fn buffered_incoming(&self) -> usize {
        self.input.capacity()
            + self
                .message
                .as_ref()
                .map_or(0, |message| message.data.capacity())
    }

    /// Whether a message is partly received: some of a frame (its header
    /// or payload) or some frames of a fragmented message have arrived,
    /// and the rest has not. Meaningful once [`Connection::next_message`]
    /// has returned `Ok(None)` (before that, the bytes may hold whole
    /// frames not parsed yet). The I/O layer uses it to time a message
    /// that is slow to arrive (the engine has no clock).
    pub fn is_receiving(&self) -> bool {
        self.frame.is_some() || self.message.is_some() || !self.input.is_empty()
    }

    /// How many messages have been received whole: data messages, and
    /// control frames outside a fragmented message (one in the middle of a
    /// message does not end it). Counted by [`Connection::next_message`]
    /// and [`Connection::lend_buffered`] alike. With
    /// [`Connection::is_receiving`] it tells one message that is slow to
    /// arrive from a stream of messages that each arrive in time.
    pub fn messages_received(&self) -> u64 {
        self.received
    }

    /// The bytes waiting to be written. Write them and call
    /// [`Buf::advance`] with how many were written.
    pub fn output(&mut self) -> &mut WriteQueue {
        &mut self.output
    }

    /// The bytes waiting to be written, read-only (for `chunks_vectored`).
    pub fn pending_output(&self) -> &WriteQueue {
        &self.output
    }

    /// Whether the engine holds a buffer to encode frames into. An I/O
    /// layer that pools buffers checks this before queueing messages and
    /// lends one with [`Connection::provide_write_buffer`].
    pub fn has_write_buffer(&self) -> bool {
        self.output.has_buffer()
    }

    /// Lends the engine an empty buffer to encode frames into, if it has
    /// none; gives `buf` back otherwise.
    pub fn provide_write_buffer(&mut self, buf: BytesMut) -> Option<BytesMut> {
        if self.output.has_buffer() {
            return Some(buf);
        }
        self.output.provide_buffer(buf)
    }

    /// Takes back the write buffer once everything was written, so that
    /// an idle connection holds none (`None` while output is pending).
    pub fn take_idle_write_buffer(&mut self) -> Option<BytesMut> {
        self.output.take_idle_buffer()
    }

    /// Whether anything is waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Takes everything waiting to be written, as one vector (convenient in
    /// tests; the I/O layer uses [`Connection::output`]).
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.output.remaining());
        while self.output.has_remaining() {
            let chunk = self.output.chunk();
            out.extend_from_slice(chunk);
            let n = chunk.len();
            self.output.advance(n);
        }
        out
    }

    /// Where the connection is in its life (open, closing, closed, failed,
    /// finished).
    pub fn state(&self) -> State {
        self.life.state()
    }

    /// Whether nothing more will be read: the close handshake is complete,
    /// the connection failed, or the transport ended. What to do with the
    /// transport then is [`Connection::transport_step`].
    pub fn is_closed(&self) -> bool {
        !self.life.can_receive()
    }

    /// The next thing to do with the transport: read (while open or
    /// waiting for the peer's close), then shut down our side and drain
    /// the peer's in the order RFC 6455 §7.1.1 gives each role, then drop
    /// it. The I/O layer calls this before each read and does what it
    /// says; the engine never touches the transport itself.
    pub fn transport_step(&mut self) -> TransportStep {
        self.life.transport_step(self.role)
    }

    /// The peer ended the stream (a read returned 0 bytes). Says whether
    /// that was expected, or the peer went away without a close
    /// handshake, in which case the connection is over with close code
    /// 1006.
    pub fn receive_eof(&mut self) -> Eof {
        let eof = self.life.receive_eof();
        if eof == Eof::Abnormal {
            self.drop_input();
        }
        eof
    }

    /// Our sending side of the transport was shut down (after a
    /// [`TransportStep::ShutDown`]).
    pub fn transport_shut_down(&mut self) {
        self.life.shut_down();
    }

    /// The I/O layer gave up on the transport (an I/O error, a timeout):
    /// the connection is finished, nothing more is read or sent.
    pub fn abort(&mut self) {
        self.life.abort();
        self.drop_input();
    }

    /// The peer's close frame, once received (`None` also when it had no
    /// status code).
    pub fn peer_close_frame(&self) -> Option<&CloseFrame> {
        self.peer_close.as_deref()
    }

    /// Gives back memory that a large message made the output buffer grow
    /// to, once it is empty. Cheap to call after every batch. (The read
    /// buffer is the I/O layer's to release: it knows when the connection
    /// goes idle, and releasing it after every large message would make
    /// the next one grow it again.)
    pub fn shrink_buffers(&mut self) {
        self.output.shrink(IDLE_BUFFER_LIMIT);
    }

    /// Parses the next message out of the received bytes.
    ///
    /// `Ok(None)` means more bytes are needed (or nothing more will be
    /// read, see [`Connection::is_closed`]). Pings, pongs and the close
    /// frame are returned too; the engine has already queued their answers.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        loop {
            if !self.life.can_receive() {
                return Ok(None);
            }
            match self.step() {
                Ok(Step::NeedMore) => return Ok(None),
                Ok(Step::Continue) => continue,
                Ok(Step::Message(message)) => {
                    if message.is_data() || self.message.is_none() {
                        self.received += 1;
                    }
                    return Ok(Some(message));
                }
                Err(error) => {
                    self.fail_on(&error);
                    return Err(error);
                }
            }
        }
    }

    /// Lends every message already buffered whole in one uncompressed
    /// frame to `f`, straight from the read buffer: no allocation and no
    /// copy per message. Next to each message, `f` gets an [`Outbox`] to
    /// queue messages (e.g. replies) while the payload is borrowed.
    ///
    /// Stops at anything else: a control frame, a fragmented or compressed
    /// message, a frame that has not fully arrived, a frame with a protocol
    /// error. [`Connection::next_message`] returns those as usual, so a
    /// loop that calls both sees every message once, in order. Returns how
    /// many messages were lent; fails like `next_message` on invalid UTF-8
    /// in a text message.
    ///
    /// ```
    /// use duplex_proto::{Config, Connection, Role};
    ///
    /// let mut server = Connection::new(Role::Server, Config::default());
    /// // RFC 6455 §5.7: a single-frame masked text message, "Hello".
    /// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    /// let lent = server
    ///     .lend_buffered(|message, outbox| {
    ///         assert_eq!(message.as_bytes(), b"Hello");
    ///         outbox.send(message).unwrap(); // echo it
    ///     })
    ///     .unwrap();
    /// assert_eq!(lent, 1);
    /// // The unmasked "Hello" frame of §5.7.
    /// assert_eq!(server.take_output(), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    /// ```
    pub fn lend_buffered(
        &mut self,
        mut f: impl FnMut(MessageRef<'_>, &mut Outbox<'_>),
    ) -> Result<usize, ProtocolError> {
        let mut lent = 0;
        while self.life.can_receive() && self.frame.is_none() && self.message.is_none() {
            let Ok(Some((header, header_len))) = FrameHeader::parse(&self.input) else {
                break;
            };
            if !header.fin || header.rsv1 || !matches!(header.opcode, OpCode::Text | OpCode::Binary)
            {
                break;
            }
            let Ok(frame) = self.check_header(header) else {
                break;
            };
            let end = header_len + frame.len;
            if self.input.len() < end {
                break;
            }
            let payload = &mut self.input[header_len..end];
            if let Some(key) = header.mask {
                apply_mask(payload, key, 0);
            }
            let message = if header.opcode == OpCode::Text {
                match simdutf8::basic::from_utf8(payload) {
                    Ok(text) => MessageRef::Text(text),
                    Err(_) => {
                        let error = ProtocolError::InvalidUtf8;
                        self.fail_on(&error);
                        return Err(error);
                    }
                }
            } else {
                MessageRef::Binary(payload)
            };
            f(message, &mut outbox!(self));
            self.input.advance(end);
            self.received += 1;
            lent += 1;
        }
        Ok(lent)
    }

    /// Fails the connection on a protocol error: queue a close frame with
    /// the error's code (unless one was sent already) and stop reading.
    fn fail_on(&mut self, error: &ProtocolError) {
        let frame = CloseFrame::new(error.close_code(), error.to_string());
        self.fail_with(&frame);
    }

    fn fail_with(&mut self, frame: &CloseFrame) {
        if self.life.can_send() {
            self.queue_close(Some(frame));
        }
        self.life.fail();
        self.drop_input();
    }

    /// Fails the connection for a reason of the application or the I/O
    /// layer (a timeout, a policy) the way a protocol error does (RFC 6455
    /// §7.1.7): queues `frame` unless a close was sent already, and stops
    /// reading. The transport is then closed without waiting for the
    /// peer's close frame, which could be stuck behind the rest of a
    /// message ([`Connection::transport_step`] shuts down, then drains).
    /// Fails with [`SendError::Closed`] once nothing more is read, and
    /// with [`SendError::InvalidCloseCode`] for a code that may not be
    /// sent.
    pub fn fail(&mut self, frame: CloseFrame) -> Result<(), SendError> {
        if !self.life.can_receive() {
            return Err(SendError::Closed);
        }
        if !frame.code.is_sendable() {
            return Err(SendError::InvalidCloseCode(frame.code.into()));
        }
        self.fail_with(&frame);
        Ok(())
    }

    /// Forgets what was received and not parsed: nothing more is read, so
    /// the read buffer's memory goes too (a connection failed for a large
    /// message must not keep it through the close handshake).
    fn drop_input(&mut self) {
        self.frame = None;
        self.message = None;
        self.input = BytesMut::new();
    }

    fn step(&mut self) -> Result<Step, ProtocolError> {
        // The frame in progress, if its payload is still arriving; else a
        // new one. (A frame that is all there never needs to be stored.)
        let mut frame = match self.frame.take() {
            Some(frame) => frame,
            None => {
                let Some((header, header_len)) = FrameHeader::parse(&self.input)? else {
                    return Ok(Step::NeedMore);
                };
                let frame = self.check_header(header)?;
                self.input.advance(header_len);
                frame
            }
        };
        // Unmask (and for text, validate) whatever part of the payload has
        // arrived, so invalid text fails as soon as it is seen.
        let available = frame.len.min(self.input.len());
        if available > frame.seen {
            let fresh = &mut self.input[frame.seen..available];
            if let Some(key) = frame.header.mask {
                apply_mask(fresh, key, frame.seen);
            }
            if frame.validate_text && self.utf8.feed(fresh).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
            frame.seen = available;
        }
        if available < frame.len {
            // Wait for the rest. Nothing is reserved for it here: the I/O
            // layer grows the read buffer with what actually arrives
            // (sized by `frame_remaining`), never by what a length field
            // merely claims.
            self.frame = Some(frame);
            return Ok(Step::NeedMore);
        }
        let header = frame.header;
        let payload = if frame.len <= COPY_PAYLOAD_MAX {
            // A small payload is copied out: cheaper than sharing the
            // buffer (two atomic operations per message), and the read
            // buffer stays unshared, so it can be reused in place rather
            // than being pinned by messages the application keeps.
            let payload = Bytes::copy_from_slice(&self.input[..frame.len]);
            self.input.advance(frame.len);
            payload
        } else {
            self.input.split_to(frame.len).freeze()
        };
        if header.opcode.is_control() {
            self.on_control(header.opcode, payload)
        } else {
            self.on_data(header, payload)
        }
    }

    /// Checks a header against the connection's state before its payload
    /// is read (see `incoming.rs`).
    fn check_header(&self, header: FrameHeader) -> Result<IncomingFrame, ProtocolError> {
        check_header(
            header,
            self.role,
            self.is_compressed(),
            self.message.as_deref(),
            &self.config,
        )
    }

    fn on_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<Step, ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if self.config.auto_pong && self.life.can_send() {
                    outbox!(self).queue_frame(OpCode::Pong, true, false, Payload::Lent(&payload));
                }
                Ok(Step::Message(Message::Ping(payload)))
            }
            OpCode::Pong => Ok(Step::Message(Message::Pong(payload))),
            _ => {
                let frame = CloseFrame::parse(&payload)?;
                if self.life.can_send() {
                    // Echo the status code (RFC 6455 §5.5.1).
                    let echo = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
                    self.queue_close(echo.as_ref());
                }
                self.life.close_received();
                self.drop_input();
                self.peer_code = frame.as_ref().map_or(CloseCode::NoStatus, |f| f.code);
                self.peer_close = frame.clone().map(Box::new);
                Ok(Step::Message(Message::Close(frame)))
            }
        }
    }

    fn on_data(&mut self, header: FrameHeader, payload: Bytes) -> Result<Step, ProtocolError> {
        let mut message = match self.message.take() {
            Some(message) => message,
            None if header.fin && !header.rsv1 => {
                // The common case: a whole uncompressed message in one frame,
                // handed out without copying.
                return self.finish(header.opcode == OpCode::Text, payload);
            }
            None => Box::new(IncomingMessage {
                text: header.opcode == OpCode::Text,
                compressed: header.rsv1,
                data: BytesMut::new(),
            }),
        };
        if message.compressed {
            self.inflate(&mut message, &payload, header.fin)?;
        } else {
            message.data.extend_from_slice(&payload);
        }
        if header.fin {
            let data = std::mem::take(&mut message.data).freeze();
            self.finish(message.text, data)
        } else {
            self.message = Some(message);
            Ok(Step::Continue)
        }
    }

    #[cfg(feature = "deflate")]
    fn inflate(
        &mut self,
        message: &mut IncomingMessage,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), ProtocolError> {
        use crate::deflate::DeflateError;
        let Some(deflate) = self.deflate.as_mut() else {
            return Err(ProtocolError::ReservedBits);
        };
        let before = message.data.len();
        let limit = self.config.max_message_size;
        deflate
            .decompress(payload, fin, &mut message.data, limit)
            .map_err(|e| match e {
                DeflateError::TooBig => ProtocolError::MessageTooBig { max: limit },
                DeflateError::Corrupt(why) => ProtocolError::CompressionError(why),
            })?;
        if message.text && self.utf8.feed(&message.data[before..]).is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(())
    }

    #[cfg(not(feature = "deflate"))]
    fn inflate(&mut self, _: &mut IncomingMessage, _: &[u8], _: bool) -> Result<(), ProtocolError> {
        Err(ProtocolError::ReservedBits)
    }

    fn finish(&mut self, text: bool, data: Bytes) -> Result<Step, ProtocolError> {
        if !text {
            return Ok(Step::Message(Message::Binary(data)));
        }
        let complete = self.utf8.is_complete();
        self.utf8.reset();
        if !complete {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(Step::Message(Message::Text(Utf8Bytes::from_validated(
            data,
        ))))
    }
}
