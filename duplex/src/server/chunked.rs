//! Decoding a request body sent with `Transfer-Encoding: chunked`
//! (RFC 9112 §7.1), without I/O: framing in, body data positions out.
//!
//! The decoder never holds data itself: it says where the next data bytes
//! are in the caller's buffer, so memory is bounded by the caller's body
//! limit plus one chunk-size line. Chunk sizes are checked against the
//! limit when they are read, before any of their data arrives.

use duplex_proto::HandshakeError;

/// The longest chunk-size line (size and extensions), in bytes.
const MAX_SIZE_LINE: usize = 1024;

/// What follows the framing the decoder consumed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// The next `n` bytes of the input are body data; the caller takes
    /// them before decoding on.
    Data(usize),
    /// More input is needed.
    Incomplete,
    /// The body ended: the last chunk and the trailer section are read.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data {
        left: u64,
    },
    /// The CR LF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    Done,
}

/// A chunked body decoder with a limit on the decoded size and on the
/// trailer section.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Data bytes announced so far by chunk sizes.
    declared: u64,
    max_body: u64,
    trailer_bytes: usize,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder refusing bodies over `max_body` bytes (413) and trailer
    /// sections over `max_trailers` bytes (431).
    pub(crate) fn new(max_body: usize, max_trailers: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            declared: 0,
            max_body: max_body as u64,
            trailer_bytes: 0,
            max_trailers,
        }
    }

    /// The data bytes the chunk sizes read so far announce (at most the
    /// limit): what the body will hold at least, if the client goes on.
    pub(crate) fn declared(&self) -> usize {
        self.declared as usize
    }

    /// Reads framing from the front of `input`. Returns how many bytes of
    /// framing it consumed and what comes after them; after
    /// [`Chunk::Data`], the caller must take those data bytes (and drop
    /// them from its buffer) before the next call.
    pub(crate) fn decode(&mut self, input: &[u8]) -> Result<(usize, Chunk), HandshakeError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Size => {
                    if rest.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                        return Err(bad("a chunk size must start with a hex digit"));
                    }
                    match httparse::parse_chunk_size(rest) {
                        Ok(httparse::Status::Complete((line, size))) => {
                            used += line;
                            self.start_chunk(size)?;
                        }
                        Ok(httparse::Status::Partial) if rest.len() > MAX_SIZE_LINE => {
                            return Err(bad("chunk size line too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok((used, Chunk::Incomplete)),
                        Err(_) => return Err(bad("invalid chunk size")),
                    }
                }
                State::Data { left } => {
                    if rest.is_empty() {
                        return Ok((used, Chunk::Incomplete));
                    }
                    let n = (rest.len() as u64).min(left);
                    self.state = match left - n {
                        0 => State::DataEnd,
                        left => State::Data { left },
                    };
                    return Ok((used, Chunk::Data(n as usize)));
                }
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::Size;
                    }
                    [] | [b'\r'] => return Ok((used, Chunk::Incomplete)),
                    _ => return Err(bad("a chunk's data must end with CR LF")),
                },
                State::Trailers => {
                    let line = rest.windows(2).position(|w| w == b"\r\n");
                    let took = line.map_or(rest.len(), |end| end + 2);
                    if self.trailer_bytes + took > self.max_trailers {
                        return Err(HandshakeError::new(431, "trailer section too large"));
                    }
                    let Some(end) = line else {
                        return Ok((used, Chunk::Incomplete));
                    };
                    used += end + 2;
                    self.trailer_bytes += end + 2;
                    if end == 0 {
                        self.state = State::Done;
                    }
                }
                State::Done => return Ok((used, Chunk::End)),
            }
        }
    }

    fn start_chunk(&mut self, size: u64) -> Result<(), HandshakeError> {
        if size == 0 {
            self.state = State::Trailers;
            return Ok(());
        }
        match self.declared.checked_add(size) {
            Some(total) if total <= self.max_body => {
                self.declared = total;
                self.state = State::Data { left: size };
                Ok(())
            }
            _ => Err(too_large(self.max_body)),
        }
    }
}

fn bad(why: &str) -> HandshakeError {
    HandshakeError::new(400, format!("malformed chunked body: {why}"))
}

/// The 413 of a body over `max` bytes.
pub(crate) fn too_large(max: u64) -> HandshakeError {
    HandshakeError::new(413, format!("the request body is larger than {max} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes, as a socket would
    /// deliver it; returns the body or the error status.
    fn decode(wire: &[u8], step: usize, max: usize) -> Result<Vec<u8>, u16> {
        let mut decoder = ChunkedDecoder::new(max, 256);
        let mut buffered: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            let (used, what) = decoder.decode(&buffered).map_err(|e| e.status().unwrap())?;
            match what {
                Chunk::Data(n) => {
                    body.extend_from_slice(&buffered[used..used + n]);
                    buffered.drain(..used + n);
                }
                Chunk::Incomplete => {
                    buffered.drain(..used);
                    assert!(fed < wire.len(), "ran out of input");
                    let end = (fed + step).min(wire.len());
                    buffered.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
                Chunk::End => return Ok(body),
            }
        }
    }

    const WIRE: &[u8] =
        b"5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn decodes_in_any_pieces() {
        for step in 1..=WIRE.len() {
            assert_eq!(
                decode(WIRE, step, 100).as_deref(),
                Ok(&b"hello 0123456789"[..]),
                "step {step}"
            );
        }
        assert_eq!(decode(b"0\r\n\r\n", 1, 0), Ok(Vec::new()));
    }

    #[test]
    fn limits_are_checked_when_the_size_is_read() {
        // 16 bytes announced, 15 allowed: refused before any data.
        assert_eq!(decode(b"10\r\n", 4, 15), Err(413));
        assert_eq!(decode(b"8\r\n12345678\r\n8\r\n", 100, 15), Err(413));
        assert_eq!(decode(b"ffffffffffffffff\r\n", 100, 15), Err(413));
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "a".repeat(300));
        assert_eq!(decode(long_trailer.as_bytes(), 7, 15), Err(431));
        let long_line = format!("1;{}\r\n", "e".repeat(2000));
        assert_eq!(decode(long_line.as_bytes(), 100, 15), Err(400));
    }

    #[test]
    fn malformed_framing_is_refused() {
        for wire in [
            &b"\r\n"[..],
            b"-1\r\n",
            b"zz\r\n",
            b"5\r\nhelloXX",
            b"1\nx\r\n",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(
                decode(wire, 1, 1 << 20),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }
}
