//! The engine in either role, with or without permessage-deflate, fed an
//! arbitrary byte stream in arbitrary chunks.
//!
//! Input: a flags byte, two bytes seeding the read sizes and one bounding
//! them (see [`Cuts`]), two deflate bytes (only with deflate), then the
//! stream. Flags: bit 0 client role, bit 1 drain with `lend_buffered`
//! first, bit 2 no auto-pong, bits 3-4 the size limits, bit 5 we close
//! first, bits 6-7 `max_send_frame_size`. Deflate bytes: the agreed
//! parameters (bit 0 and 1 the no-context-takeover flags, bits 2-4 and 5-7
//! the server's and the client's window bits less 8), then the level
//! (low nibble, mod 10) and `min_size` (bits 4-5).
//!
//! Checked: the chunked run, drained through `lend_buffered` and
//! `next_message`, sees the same messages and the same error as a run
//! that gets the whole stream at once through `next_message` alone;
//! nothing is read after an error; and everything the engine sends back
//! (the echo of each data message, the pongs, its close) decodes in a
//! peer engine of the other role, unchanged and in order.

use duplex_proto::deflate::{DeflateConfig, DeflateParams};
use duplex_proto::{CloseFrame, Config, Connection, Message, ProtocolError, Role, State};

use super::input::{Cuts, Input};

/// `max_frame_size` and `max_message_size`: small enough that the limits
/// are hit (a small input can inflate to megabytes).
const LIMITS: [usize; 4] = [1 << 20, 1 << 16, 1000, 0];
/// `max_send_frame_size`.
const SEND_FRAME: [Option<usize>; 4] = [None, Some(1), Some(7), Some(1000)];
/// `min_size` of the compressor.
const MIN_SIZE: [usize; 4] = [0, 1, 32, 1000];

/// How both runs are set up.
struct Setup {
    role: Role,
    lend: bool,
    close_first: bool,
    config: Config,
    params: Option<DeflateParams>,
}

impl Setup {
    fn read(input: &mut Input<'_>, flags: u8, deflate: bool) -> Setup {
        let mut config = Config {
            max_frame_size: LIMITS[usize::from(flags >> 3 & 3)],
            max_message_size: LIMITS[usize::from(flags >> 3 & 3)],
            auto_pong: flags & 4 == 0,
            max_send_frame_size: SEND_FRAME[usize::from(flags >> 6)],
            deflate: None,
        };
        let params = deflate.then(|| {
            let p = input.byte();
            let level = input.byte();
            config.deflate = Some(DeflateConfig {
                compression_level: u32::from(level & 15) % 10,
                min_size: MIN_SIZE[usize::from(level >> 4 & 3)],
                ..DeflateConfig::default()
            });
            DeflateParams {
                server_no_context_takeover: p & 1 != 0,
                client_no_context_takeover: p & 2 != 0,
                server_max_window_bits: 8 + (p >> 2 & 7),
                client_max_window_bits: 8 + (p >> 5),
            }
        });
        Setup {
            role: if flags & 1 == 0 {
                Role::Server
            } else {
                Role::Client
            },
            lend: flags & 2 != 0,
            close_first: flags & 32 != 0,
            config,
            params,
        }
    }

    fn connection(&self, role: Role, config: Config) -> Connection {
        let mut conn = Connection::new(role, config);
        if let Some(params) = self.params {
            conn.enable_deflate(params);
        }
        conn
    }
}

/// What one run saw and sent.
#[derive(Default)]
struct Run {
    received: Vec<Message>,
    error: Option<ProtocolError>,
    /// What the peer should decode from `output`.
    expected: Vec<Message>,
    output: Vec<u8>,
}

/// A close as the peer sees our close frames: the code only (the reason
/// of a failure is cut to fit, and echoes carry none).
fn close_code(message: Message) -> Message {
    match message {
        Message::Close(frame) => Message::Close(frame.map(|f| CloseFrame::new(f.code, ""))),
        other => other,
    }
}

/// Runs `setup` over the stream cut into `pieces`.
fn drive(setup: &Setup, pieces: &[&[u8]], lend: bool) -> Run {
    let mut conn = setup.connection(setup.role, setup.config.clone());
    let mut run = Run::default();
    if setup.close_first {
        conn.close(Some(CloseFrame::new(1000, "bye"))).unwrap();
        run.expected
            .push(Message::Close(Some(CloseFrame::new(1000, ""))));
    }
    'feed: for piece in pieces {
        conn.receive(piece);
        loop {
            if lend {
                let open = conn.state() == State::Open;
                let mut lent = Vec::new();
                let result = conn.lend_buffered(|message, outbox| {
                    // The outbox refuses data only once a close is out.
                    assert_eq!(outbox.send(message).is_ok(), open);
                    lent.push(message.to_message());
                });
                for message in lent {
                    if open {
                        run.expected.push(message.clone());
                    }
                    run.received.push(message);
                }
                if let Err(error) = result {
                    fail(&mut run, error, open);
                    break 'feed;
                }
            }
            let open = conn.state() == State::Open;
            match conn.next_message() {
                Ok(None) => break,
                Ok(Some(message)) => answer(&mut conn, &mut run, message, open, setup),
                Err(error) => {
                    fail(&mut run, error, open);
                    break 'feed;
                }
            }
        }
    }
    if run.error.is_some() {
        assert!(conn.is_closed());
        assert_eq!(conn.state(), State::Failed);
        conn.receive(&[0x81, 0x00]);
        assert_eq!(conn.next_message(), Ok(None), "read after an error");
    }
    run.output = conn.take_output();
    run
}

fn fail(run: &mut Run, error: ProtocolError, open: bool) {
    if open {
        run.expected.push(Message::Close(Some(CloseFrame::new(
            error.close_code(),
            "",
        ))));
    }
    run.error = Some(error);
}

/// Echoes a data message and notes what the engine answers by itself.
fn answer(conn: &mut Connection, run: &mut Run, message: Message, open: bool, setup: &Setup) {
    match &message {
        Message::Text(_) | Message::Binary(_) => {
            let sent = conn.send(message.clone());
            assert_eq!(sent.is_ok(), open, "{sent:?}");
            if open {
                run.expected.push(message.clone());
            }
        }
        Message::Ping(payload) => {
            if open && setup.config.auto_pong {
                run.expected.push(Message::Pong(payload.clone()));
            }
        }
        Message::Pong(_) => {}
        Message::Close(frame) => {
            if open {
                run.expected.push(close_code(Message::Close(frame.clone())));
            }
        }
    }
    run.received.push(message);
}

/// Everything `run` sent decodes, in a peer of the other role, to what it
/// was meant to say.
fn check_echo(setup: &Setup, run: &Run) {
    let peer_role = match setup.role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut peer = setup.connection(
        peer_role,
        Config {
            deflate: None,
            ..Config::default()
        },
    );
    peer.receive(&run.output);
    let mut decoded = Vec::new();
    while let Some(message) = peer
        .next_message()
        .unwrap_or_else(|e| panic!("the engine's own output does not decode: {e}"))
    {
        decoded.push(close_code(message));
    }
    assert_eq!(decoded, run.expected);
}

/// The harness (`deflate`: permessage-deflate on, with parameters from
/// the input).
pub fn run(data: &[u8], deflate: bool) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let seed = input.u16();
    let max_log2 = input.byte();
    let setup = Setup::read(&mut input, flags, deflate);
    let stream = input.rest();

    let whole = drive(&setup, &[stream], false);
    let pieces = Cuts::new(seed, max_log2, true).split(stream);
    let chunked = drive(&setup, &pieces, setup.lend);
    assert_eq!(chunked.received, whole.received, "chunked vs whole");
    assert_eq!(chunked.error, whole.error, "chunked vs whole");
    check_echo(&setup, &whole);
    check_echo(&setup, &chunked);
}
