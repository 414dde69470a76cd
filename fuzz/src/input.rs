//! Reading a fuzz input: a few leading bytes pick the settings, the rest
//! is what the harness feeds the engine.
//!
//! Every read succeeds: past the end it yields zeros and empty slices, so
//! a short input still runs (with the default settings) and the fuzzer
//! never wastes time on inputs that are rejected before the engine sees
//! them.

/// A cursor over the fuzzer's bytes.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// The next `len` bytes (fewer at the end).
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A text of up to 255 bytes, its length in the byte before it; bytes
    /// that are not UTF-8 become U+FFFD, so any control byte can reach the
    /// engine.
    pub fn text(&mut self) -> String {
        let len = usize::from(self.byte());
        String::from_utf8_lossy(self.bytes(len)).into_owned()
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whatever is left.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Lengths drawn from a 16-bit seed (xorshift), so that three bytes of
/// input say how a stream is cut: into pieces of 1 to `2^max_log2` bytes,
/// or 0 too when empty pieces are allowed.
pub struct Cuts {
    state: u32,
    max: usize,
    allow_empty: bool,
}

impl Cuts {
    /// Pieces of at most `2^(max_log2 % 17)` bytes.
    pub fn new(seed: u16, max_log2: u8, allow_empty: bool) -> Self {
        Cuts {
            // A zero state would stay zero.
            state: u32::from(seed) << 8 | 0x9e,
            max: 1 << (max_log2 % 17),
            allow_empty,
        }
    }

    fn next(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }

    /// `data` cut into consecutive pieces.
    pub fn split<'a>(&mut self, mut data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        while !data.is_empty() {
            let n = self.next() as usize % (self.max + 1);
            let n = if self.allow_empty { n } else { n.max(1) };
            let (piece, rest) = data.split_at(n.min(data.len()));
            pieces.push(piece);
            data = rest;
        }
        pieces
    }
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2), written here apart
/// from the engine's own check, which is what is being tested.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `s` may be written as a header value as it is: no control
/// characters but HTAB (RFC 9110 §5.5).
pub fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// A header value as a parser reads it back: without surrounding spaces.
pub fn trimmed(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}
