//! zlib states: their sizes, and a per-thread pool for the directions that
//! start every message afresh.
//!
//! A direction without context takeover carries nothing from one message
//! to the next, so its compressor or decompressor need not belong to a
//! connection. [`PerMessageDeflate`](super::PerMessageDeflate) takes one
//! from this thread's pool for a message and gives it back reset when the
//! message is done, and an idle connection holds no zlib state at all.
//! That is what makes compression affordable for many browser
//! connections: a zlib-rs compressor with the default 32 KiB window costs
//! about 320 KiB (the window twice, a 64 K-entry hash table, the pending
//! symbol buffer) and a decompressor about 40 KiB. Measured with 10,000
//! connections that each echoed one chat message: 464 KiB per idle
//! connection with state per connection, 5 KiB with the pool.
//!
//! A message compressed in one call (always: [`compress`] takes whole
//! messages) uses the state only within that call. A fragmented incoming
//! message keeps its decompressor from its first frame to its last, so a
//! thread lends as many decompressors as it has connections mid-message;
//! those come back to the pool afterwards, which keeps at most
//! [`MAX_IDLE_PER_THREAD`] of each kind and frees the rest.
//!
//! [`compress`]: super::PerMessageDeflate::compress

use std::cell::RefCell;

use zlib_rs::{Deflate, DeflateConfig as ZlibDeflateConfig, Inflate};

use super::MAX_WINDOW_BITS;

/// Idle states a thread keeps of each kind. One serves every message that
/// is compressed or decompressed in a single call; the others absorb a
/// burst of fragmented messages without freeing and reallocating.
const MAX_IDLE_PER_THREAD: usize = 4;

/// What a compressor is built with: states are shared only between
/// connections that agree on all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CompressorSettings {
    /// zlib level, 0..=9.
    pub level: u8,
    /// The LZ77 window, 9..=15.
    pub window_bits: u8,
    /// zlib's memory level, 1..=9: the pending-symbol buffer holds
    /// 2^(mem_level + 6) entries.
    pub mem_level: u8,
}

impl CompressorSettings {
    /// A new compressor for raw deflate (no zlib header).
    pub fn new_compressor(self) -> Deflate {
        Deflate::new_with_config(ZlibDeflateConfig {
            level: i32::from(self.level),
            // Negative bits: raw deflate, as RFC 7692 sends it.
            window_bits: -i32::from(self.window_bits),
            mem_level: i32::from(self.mem_level),
            ..ZlibDeflateConfig::default()
        })
    }
}

/// A new decompressor for raw deflate with a window of `window_bits`.
pub(super) fn new_decompressor(window_bits: u8) -> Inflate {
    Inflate::new(false, window_bits)
}

thread_local! {
    static COMPRESSORS: RefCell<Vec<(CompressorSettings, Deflate)>> =
        const { RefCell::new(Vec::new()) };
    static DECOMPRESSORS: RefCell<Vec<Inflate>> = const { RefCell::new(Vec::new()) };
}

/// A compressor with `settings`, from this thread's pool or new.
pub(super) fn take_compressor(settings: CompressorSettings) -> Deflate {
    let pooled = COMPRESSORS
        .try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let index = pool.iter().rposition(|(s, _)| *s == settings)?;
            Some(pool.swap_remove(index).1)
        })
        .ok()
        .flatten();
    pooled.unwrap_or_else(|| settings.new_compressor())
}

/// Resets `compressor` and keeps it for the next message on this thread
/// (or frees it when the pool is full).
pub(super) fn give_back_compressor(settings: CompressorSettings, mut compressor: Deflate) {
    compressor.reset();
    // During thread teardown the pool may be gone: the state is dropped.
    let _ = COMPRESSORS.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < MAX_IDLE_PER_THREAD {
            pool.push((settings, compressor));
        }
    });
}

/// A decompressor with the full 32 KiB window (it decodes any window the
/// peer compressed with), from this thread's pool or new.
pub(super) fn take_decompressor() -> Inflate {
    let pooled = DECOMPRESSORS
        .try_with(|pool| pool.borrow_mut().pop())
        .ok()
        .flatten();
    pooled.unwrap_or_else(|| new_decompressor(MAX_WINDOW_BITS))
}

/// Resets `decompressor` and keeps it for the next message on this thread
/// (or frees it when the pool is full).
pub(super) fn give_back_decompressor(mut decompressor: Inflate) {
    decompressor.reset(false);
    let _ = DECOMPRESSORS.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < MAX_IDLE_PER_THREAD {
            pool.push(decompressor);
        }
    });
}

/// The idle states this thread holds: (compressors, decompressors). For
/// tests.
#[cfg(test)]
pub(super) fn idle_counts() -> (usize, usize) {
    (
        COMPRESSORS.with(|pool| pool.borrow().len()),
        DECOMPRESSORS.with(|pool| pool.borrow().len()),
    )
}
