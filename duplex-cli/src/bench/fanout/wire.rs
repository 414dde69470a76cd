//! The bench's own message format: who sent a message, its place in the
//! sender's sequence and when it was sent, padded to the requested size.
//!
//! Every message is binary, little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | run id (random per bench run: messages of another run or client are foreign) |
//! | 4..8 | sender's member index; the top bit marks a join probe |
//! | 8..12 | sequence number per sender (a probe: its round) |
//! | 12..20 | send time, nanoseconds since the bench started (one clock for every client) |
//! | 20.. | padding: byte `i` is `i % 251` |

/// The size of the header, and so the smallest message.
pub const HEADER: usize = 20;

/// The top bit of the sender field: this message is a join probe.
const PROBE_BIT: u32 = 1 << 31;

/// What a message's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's member index.
    pub sender: u32,
    /// A join probe rather than a measured publish.
    pub probe: bool,
    /// The sender's sequence number (a probe's round).
    pub seq: u32,
    /// Nanoseconds since the bench started, when it was sent.
    pub sent_ns: u64,
}

/// Why a received message is not one of this run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Not from this run (another client in the room, another bench).
    Foreign,
    /// From this run, but its size or padding changed on the way.
    Corrupt,
}

/// Encodes and checks messages of one run, all `size` bytes long.
pub struct Wire {
    run_id: u32,
    size: usize,
    padding: Vec<u8>,
}

impl Wire {
    /// A format for messages of `size` bytes (at least [`HEADER`]).
    pub fn new(run_id: u32, size: usize) -> Wire {
        let padding = (HEADER..size).map(|i| (i % 251) as u8).collect();
        Wire {
            run_id,
            size,
            padding,
        }
    }

    /// The bytes of one message.
    pub fn encode(&self, header: Header) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        let sender = header.sender | if header.probe { PROBE_BIT } else { 0 };
        out.extend_from_slice(&self.run_id.to_le_bytes());
        out.extend_from_slice(&sender.to_le_bytes());
        out.extend_from_slice(&header.seq.to_le_bytes());
        out.extend_from_slice(&header.sent_ns.to_le_bytes());
        out.extend_from_slice(&self.padding);
        out
    }

    /// The header of a received message, if it is this run's and arrived
    /// unchanged.
    pub fn decode(&self, data: &[u8]) -> Result<Header, Bad> {
        if data.len() < HEADER || data[0..4] != self.run_id.to_le_bytes() {
            return Err(Bad::Foreign);
        }
        if data.len() != self.size || data[HEADER..] != self.padding[..] {
            return Err(Bad::Corrupt);
        }
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let sender = word(4);
        Ok(Header {
            sender: sender & !PROBE_BIT,
            probe: sender & PROBE_BIT != 0,
            seq: word(8),
            sent_ns: u64::from_le_bytes(data[12..20].try_into().expect("8 bytes")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_decodes_to_its_header_and_changes_are_caught() {
        let wire = Wire::new(7, 64);
        let header = Header {
            sender: 12,
            probe: true,
            seq: 3,
            sent_ns: 99,
        };
        let mut bytes = wire.encode(header);
        assert_eq!(bytes.len(), 64);
        assert_eq!(wire.decode(&bytes), Ok(header));
        assert_eq!(Wire::new(8, 64).decode(&bytes), Err(Bad::Foreign));
        assert_eq!(wire.decode(b"hello"), Err(Bad::Foreign));
        bytes[40] ^= 1;
        assert_eq!(wire.decode(&bytes), Err(Bad::Corrupt));
        assert_eq!(wire.decode(&bytes[..63]), Err(Bad::Corrupt));
    }
}
