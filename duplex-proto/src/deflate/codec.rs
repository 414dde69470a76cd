//! The per-message codec (RFC 7692 §7.2): [`PerMessageDeflate`] compresses
//! and decompresses message payloads.

use std::fmt;

use bytes::BytesMut;
use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

use super::pool::{self, CompressorSettings};
use super::{DeflateConfig, DeflateParams, MAX_WINDOW_BITS, MIN_ZLIB_WINDOW_BITS};
use crate::role::Role;

/// What a sync flush leaves at the end of a message, which the sender strips
/// and the receiver puts back (RFC 7692 §7.2.1, §7.2.2).
pub(super) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most output space handed to zlib at once when compressing: bounds the
/// zero-filling of spare space for huge messages.
const COMPRESS_CHUNK: usize = 128 * 1024;
/// The most output space handed to zlib at once when decompressing, so the
/// size limit is checked at least this often.
pub(super) const DECOMPRESS_CHUNK: usize = 32 * 1024;
/// The least output space handed to zlib at once when decompressing. The
/// first chunk is sized from the input and doubles while zlib fills it, so a
/// small message does not zero-fill (or grow the buffer by) a whole
/// [`DECOMPRESS_CHUNK`].
const MIN_DECOMPRESS_CHUNK: usize = 256;

/// Why a compressed message could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateError {
    /// The message would decompress to more than the allowed size (close
    /// with 1009).
    TooBig,
    /// The compressed data is not valid deflate (close with 1007 or 1002).
    Corrupt(String),
}

impl fmt::Display for DeflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeflateError::TooBig => f.write_str("decompressed message exceeds the size limit"),
            DeflateError::Corrupt(reason) => write!(f, "invalid compressed data: {reason}"),
        }
    }
}

impl std::error::Error for DeflateError {}

/// Per-connection compression state, created once permessage-deflate is
/// negotiated.
///
/// Where this side compresses with context takeover, its compressor is
/// created on first use (an idle or receive-only connection does not pay
/// for one) and kept, sized by the agreed window and
/// [`DeflateConfig::mem_level`]; the same for the decompressor when the
/// peer compresses with context takeover. A direction without context
/// takeover borrows its zlib state from a per-thread pool for one message
/// and holds none in between (see the `pool` module docs for the figures),
/// so the steady state allocates nothing beyond growing the caller's
/// buffers.
///
/// After an error from [`decompress`](Self::decompress) the connection is
/// expected to fail; the decompressor is reset so no state leaks into
/// another message, but with context takeover the peer's later messages
/// would no longer decode.
pub struct PerMessageDeflate {
    min_size: usize,
    /// What our compressor is built with (window 9..=15).
    compressor_settings: CompressorSettings,
    /// Our decompressor's window when the peer keeps context (the window
    /// we agreed the peer compresses with, at least 9).
    decompress_window_bits: u8,
    /// Our no-context-takeover: the compressor is pooled, not kept.
    compress_reset: bool,
    /// The peer's no-context-takeover: the decompressor is pooled, held
    /// only while a message is in progress.
    decompress_reset: bool,
    /// Our compressor, when kept (context takeover).
    pub(super) compressor: Option<Deflate>,
    /// Our decompressor: kept with the peer's context takeover, otherwise
    /// lent by the pool between a message's first frame and its last.
    pub(super) decompressor: Option<Inflate>,
    /// Bytes decompressed so far for the current message (its tail in the
    /// caller's buffer is our window when a final block forces a restart).
    message_len: usize,
    /// The deflate stream just ended with a BFINAL block and nothing has
    /// been fed since.
    after_final_block: bool,
}

impl fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("compressor_settings", &self.compressor_settings)
            .field("decompress_window_bits", &self.decompress_window_bits)
            .field("compress_reset", &self.compress_reset)
            .field("decompress_reset", &self.decompress_reset)
            .field("holds_compressor", &self.compressor.is_some())
            .field("holds_decompressor", &self.decompressor.is_some())
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    /// A codec for `role` with the negotiated `params`; `config` supplies
    /// the compression level, memory level and minimum size.
    pub fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let (our_bits, peer_bits, our_reset, peer_reset) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        PerMessageDeflate {
            min_size: config.min_size,
            compressor_settings: CompressorSettings {
                level: config.compression_level.min(9) as u8,
                // An agreed 8 is compressed with 9; see the module docs.
                window_bits: our_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
                mem_level: config.mem_level.clamp(1, 9),
            },
            // A peer that agreed to 8 may compress with 9 (zlib does).
            decompress_window_bits: peer_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
            compress_reset: our_reset,
            decompress_reset: peer_reset,
            compressor: None,
            decompressor: None,
            message_len: 0,
            after_final_block: false,
        }
    }

    /// Whether a message of this length should be compressed (at least
    /// [`DeflateConfig::min_size`] bytes). Smaller ones go out as they are,
    /// with RSV1 clear.
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.min_size
    }

    /// Compresses one whole message payload, appending the compressed bytes
    /// (without the trailing `00 00 ff ff`) to `out`.
    ///
    /// Applies our window and, with our no-context-takeover, starts afresh
    /// for the next message. An empty payload becomes the single byte `00`
    /// (RFC 7692 §7.2.3.6).
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        let settings = self.compressor_settings;
        let mut compressor = match self.compressor.take() {
            Some(kept) => kept,
            None if self.compress_reset => pool::take_compressor(settings),
            None => settings.new_compressor(),
        };
        let start = out.len();
        if !deflate_sync(&mut compressor, payload, out) {
            // zlib reports errors only for a broken stream state, never for
            // data; should it happen anyway, start a fresh stream and send
            // the payload in stored blocks, which any receiver decodes.
            compressor.reset();
            out.truncate(start);
            write_stored(payload, out);
        } else if out.len() - start > stored_len(payload.len()) {
            // Incompressible data: zlib-rs's level 1 codes it with fixed
            // Huffman codes, which made random bytes 5.5% larger (so a
            // 16 MiB message no longer fit a 16 MiB frame). Stored blocks
            // of the same bytes are smaller and just as valid: after a sync
            // flush the receiver keeps only the history, which is the same
            // either way, so context takeover is unaffected.
            out.truncate(start);
            write_stored(payload, out);
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == start {
            // Nothing left (zlib emits nothing for an empty payload right
            // after a flush): the header byte of an empty stored block,
            // which the receiver's appended tail completes.
            out.extend_from_slice(&[0x00]);
        }
        if self.compress_reset {
            pool::give_back_compressor(settings, compressor);
        } else {
            self.compressor = Some(compressor);
        }
    }

    /// Decompresses one received frame's payload of a compressed message,
    /// appending to `out`.
    ///
    /// `fin`: this is the last frame of the message; the `00 00 ff ff` tail
    /// is then fed too and, with the peer's no-context-takeover, the
    /// decompressor starts afresh for the next message.
    ///
    /// `limit`: the most bytes `out` may hold for this message, counting
    /// what is already in it (so pass the same buffer for every frame of a
    /// message). Output is produced in bounded chunks and checked as it
    /// goes, so exceeding the limit returns [`DeflateError::TooBig`] without
    /// inflating the rest, and `out` grows to at most `limit + 1` bytes.
    /// Invalid data returns [`DeflateError::Corrupt`], unless it comes
    /// after more than `limit` bytes of output: that is `TooBig`, however
    /// the message was cut into frames. After an error `out`
    /// holds partial output, to be discarded with the message.
    ///
    /// A message may contain blocks with BFINAL set (RFC 7692 §7.2.3.4);
    /// decoding continues after them with the window primed from this
    /// message's output. (Only up to this message's own output: a peer
    /// that ends a deflate stream and then refers back into earlier
    /// messages is not supported.)
    pub fn decompress(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), DeflateError> {
        let mut result = self.inflate(data, false, out, limit);
        if fin && result.is_ok() {
            result = self.inflate(&TAIL, true, out, limit);
        }
        if fin && result.is_ok() && self.after_final_block && !self.decompress_reset {
            if let Some(decompressor) = self.decompressor.as_mut() {
                // The stream ended with this message; keep its window for
                // the next message (context takeover).
                result = restart_stream(decompressor, out, self.message_len);
            }
        }
        if result.is_err() || fin {
            if self.decompress_reset {
                if let Some(lent) = self.decompressor.take() {
                    pool::give_back_decompressor(lent);
                }
            } else if result.is_err() {
                if let Some(kept) = self.decompressor.as_mut() {
                    kept.reset(false);
                }
            }
            self.message_len = 0;
            self.after_final_block = false;
        }
        result
    }

    /// Feeds `input` to the decompressor, appending output to `out` in
    /// bounded chunks. `tail`: this is the appended `00 00 ff ff`.
    fn inflate(
        &mut self,
        mut input: &[u8],
        tail: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), DeflateError> {
        if tail && self.after_final_block {
            // The message ended exactly with a final block; the tail is not
            // part of any stream.
            return Ok(());
        }
        let (reset, window_bits) = (self.decompress_reset, self.decompress_window_bits);
        let decompressor = self.decompressor.get_or_insert_with(|| {
            if reset {
                pool::take_decompressor()
            } else {
                pool::new_decompressor(window_bits)
            }
        });
        let mut chunk_size = input
            .len()
            .saturating_mul(4)
            .clamp(MIN_DECOMPRESS_CHUNK, DECOMPRESS_CHUNK);
        loop {
            if self.after_final_block && !input.is_empty() {
                // More blocks follow a final block: a new stream that shares
                // the window.
                restart_stream(decompressor, out, self.message_len)?;
                self.after_final_block = false;
            }
            let len = out.len();
            if len > limit {
                return Err(DeflateError::TooBig);
            }
            // One byte beyond the limit is enough to know it is exceeded.
            let chunk = chunk_size.min((limit - len).saturating_add(1));
            out.resize(len + chunk, 0);
            let (before_in, before_out) = (decompressor.total_in(), decompressor.total_out());
            let status = decompressor.decompress(input, &mut out[len..], InflateFlush::NoFlush);
            let consumed = (decompressor.total_in() - before_in) as usize;
            let produced = (decompressor.total_out() - before_out) as usize;
            out.truncate(len + produced);
            input = &input[consumed..];
            self.message_len += produced;
            // The limit first: zlib may report invalid data just past the
            // output it had room for, or not yet when that data is still in
            // the next frame, and how the peer cut its frames must not
            // decide which error (and close code) the message gets.
            if out.len() > limit {
                return Err(DeflateError::TooBig);
            }
            let status = status.map_err(|error| {
                let reason = decompressor.error_message().unwrap_or(error.as_str());
                DeflateError::Corrupt(reason.to_string())
            })?;
            if status == Status::StreamEnd {
                self.after_final_block = true;
            }
            if produced < chunk && input.is_empty() {
                // All input consumed and zlib had room to spare: done.
                return Ok(());
            }
            if produced == chunk {
                chunk_size = (chunk_size * 2).min(DECOMPRESS_CHUNK);
            }
            if produced == 0 && consumed == 0 && status != Status::StreamEnd {
                return Err(DeflateError::Corrupt(
                    "decompression made no progress".into(),
                ));
            }
        }
    }
}

/// Compresses `input` with a sync flush, appending to `out`; false if zlib
/// failed or stalled.
fn deflate_sync(compressor: &mut Deflate, mut input: &[u8], out: &mut BytesMut) -> bool {
    loop {
        let len = out.len();
        // Enough for incompressible input plus block headers in one go,
        // bounded for huge messages.
        let chunk = (input.len() + input.len() / 1024 + 64).min(COMPRESS_CHUNK);
        out.resize(len + chunk, 0);
        let (before_in, before_out) = (compressor.total_in(), compressor.total_out());
        let status = compressor.compress(input, &mut out[len..], DeflateFlush::SyncFlush);
        let consumed = (compressor.total_in() - before_in) as usize;
        let produced = (compressor.total_out() - before_out) as usize;
        out.truncate(len + produced);
        input = &input[consumed..];
        if status.is_err() {
            return false;
        }
        // With a sync flush, zlib is done once it leaves output space over.
        if input.is_empty() && produced < chunk {
            return true;
        }
        if consumed == 0 && produced == 0 {
            return false;
        }
    }
}

/// The size of `len` bytes as stored blocks, as [`write_stored`] writes
/// them: 5 bytes of header per 65,535-byte block and the final `00`.
fn stored_len(len: usize) -> usize {
    len + len.div_ceil(usize::from(u16::MAX)) * 5 + 1
}

/// Writes `payload` as stored (uncompressed) deflate blocks in the
/// permessage-deflate form: the receiver's appended tail completes the
/// final empty block.
pub(super) fn write_stored(payload: &[u8], out: &mut BytesMut) {
    for block in payload.chunks(usize::from(u16::MAX)) {
        // BFINAL 0, BTYPE 00, padding; then LEN and its complement.
        let len = block.len() as u16;
        out.extend_from_slice(&[0x00]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&[0x00]);
}

/// Starts a new raw deflate stream after a final block, primed with the
/// last (up to 32 KiB) bytes this message produced so back-references keep
/// working.
fn restart_stream(
    decompressor: &mut Inflate,
    out: &BytesMut,
    message_len: usize,
) -> Result<(), DeflateError> {
    decompressor.reset(false);
    let window = message_len.min(out.len()).min(1 << MAX_WINDOW_BITS);
    if window > 0 {
        decompressor
            .set_dictionary(&out[out.len() - window..])
            .map_err(|error| DeflateError::Corrupt(error.as_str().to_string()))?;
    }
    Ok(())
}
