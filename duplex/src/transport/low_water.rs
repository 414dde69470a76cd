//! Read low-water mark: while a large frame arrives, the socket wakes its
//! task only once another 256 KiB (or the rest of the frame) is there
//! (`SO_RCVLOWAT`), instead of for every few segments. Fewer wake-ups and
//! reads per large message, while unmasking still overlaps the transfer
//! (a mark of the whole frame was measured slower: nothing overlaps).
//!
//! Only on plain TCP: with TLS, socket bytes and payload bytes differ, and
//! a decrypted record could wait behind a mark that is never reached.
//! Keepalive and the message timeout need no byte held back by the kernel:
//! a pong cannot arrive before the frame in progress ends, and a frame's
//! header is read before the mark goes up (it is 1 between frames).

use std::os::fd::RawFd;

/// Frames with less than this still to arrive are read as usual: the mark
/// costs a system call each time it changes.
const MIN_MARK: usize = 64 * 1024;

/// The largest mark. Measured on 1 MiB echoes: 128-256 KiB gave the most
/// messages per second (about 1.1x no mark); 512 KiB and more, fewer than
/// no mark at all.
const MAX_MARK: usize = 256 * 1024;

/// The socket of a plain TCP connection and the mark currently set on it.
#[derive(Debug)]
pub(crate) struct LowWater {
    fd: RawFd,
    mark: usize,
}

impl LowWater {
    /// Marks are set on `fd`, which must stay open as long as this value
    /// is used (it lives beside the stream that owns the descriptor).
    pub(crate) fn new(fd: RawFd) -> LowWater {
        LowWater { fd, mark: 1 }
    }

    /// Wake-ups once `remaining` bytes of the current frame are there, at
    /// most [`MAX_MARK`] at a time (or at the first byte, for small
    /// remainders and between frames).
    pub(crate) fn expect(&mut self, remaining: usize) {
        let mark = if remaining >= MIN_MARK {
            remaining.min(MAX_MARK)
        } else {
            1
        };
        if mark != self.mark && set_mark(self.fd, mark) {
            self.mark = mark;
        }
    }
}

fn set_mark(fd: RawFd, bytes: usize) -> bool {
    let value = bytes as libc::c_int;
    // SAFETY: `fd` is an open socket (see `LowWater::new`), and the option
    // value is a properly sized and aligned c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}
