//! The read buffer of one syslog TCP connection: small while lines are short, grown only while
//! the connection needs more room, and given back once it is empty again.
//!
//! Which question it answers: "how much memory does a syslog connection hold?" A connection
//! starts with [`READ_BUFFER_BYTES_INITIAL`], which the core's connection cap accounts for.
//! It grows, doubling, in two cases: a frame longer than the buffer is arriving (the framer
//! needs up to [`Framer::buffer_bytes_min`](super::framing::Framer::buffer_bytes_min) bytes
//! to make progress), or a fast sender filled the whole buffer in one read (then up to
//! [`READ_BYTES_BUSY`] so that reads stay large). Every byte beyond the initial size is charged
//! to the core's budget for unfinished requests, the same budget HTTP bodies use, so a
//! thousand connections each sending one long frame cannot take more than that budget. When
//! the budget refuses a frame's growth the connection is not read until it has room (see
//! `crate::ingest::listeners`); a busy sender simply keeps the smaller reads.

use crate::http::admission::{BodyCharge, OverBudget};

/// First size of a connection's buffer: a read of 16 KiB holds about a hundred typical syslog
/// lines, so an idle or slow connection costs little while reads still amortise well.
pub const READ_BUFFER_BYTES_INITIAL: usize = 16 * 1024;

/// Room a busy connection may grow its buffer to, and the room for reading kept beyond the
/// longest frame: 64 KiB per read is where larger reads stop paying off.
pub const READ_BYTES_BUSY: usize = 64 * 1024;

/// Unread bytes are `buf[start..end]`; `charge` covers `buf.len()` beyond the initial size.
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    len_max: usize,
    charge: BodyCharge,
    /// Bytes of the last read, and whether it filled all the room it was given.
    last_read: usize,
    last_read_filled: bool,
}

impl FrameBuffer {
    /// A buffer for a connection whose decoder needs up to `bytes_min` buffered bytes to make
    /// progress (its `buffer_bytes_min`); `charge` (usually empty) is grown and shrunk with
    /// the buffer.
    pub fn new(bytes_min: usize, charge: BodyCharge) -> FrameBuffer {
        let len_max = bytes_min + READ_BYTES_BUSY;
        let initial = READ_BUFFER_BYTES_INITIAL.min(len_max);
        debug_assert_eq!(charge.bytes(), 0);
        FrameBuffer {
            buf: vec![0; initial],
            start: 0,
            end: 0,
            len_max,
            charge,
            last_read: 0,
            last_read_filled: false,
        }
    }

    /// The bytes read and not consumed yet.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops `n` bytes from the front of [`FrameBuffer::unread`].
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start, "consumed more than was read");
        self.start += n;
    }

    /// The current size of the buffer (what the connection holds).
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Bytes charged to the core's budget for this buffer.
    pub fn charged(&self) -> usize {
        self.charge.bytes()
    }

    /// Makes room for the next read: reuses consumed space, shrinks an emptied buffer whose
    /// sender has slowed down, and grows a full one. `Err` when a frame needs more room than
    /// the core's budget has now; the caller waits and asks again, without reading.
    pub fn make_room(&mut self) -> Result<(), OverBudget> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if self.buf.len() > READ_BUFFER_BYTES_INITIAL && !self.last_read_filled {
                self.buf = vec![0; READ_BUFFER_BYTES_INITIAL];
                self.charge.shrink_to(0);
            }
        }
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.buf.len() {
            // One unfinished frame fills the buffer: the framer cannot go on without more room.
            return self.grow(self.len_max);
        }
        if self.last_read_filled {
            // A fast sender: larger reads if the budget has room, else keep these.
            let _ = self.grow(READ_BYTES_BUSY.min(self.len_max));
        }
        Ok(())
    }

    fn grow(&mut self, up_to: usize) -> Result<(), OverBudget> {
        let len = self.buf.len();
        if len >= up_to {
            return Ok(());
        }
        let grown = (len * 2).min(up_to);
        self.charge.grow_to(grown - READ_BUFFER_BYTES_INITIAL)?;
        self.buf.resize(grown, 0);
        Ok(())
    }

    /// Where the next read goes; never empty after a successful [`FrameBuffer::make_room`].
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// Records that a read put `n` bytes into [`FrameBuffer::spare`].
    pub fn filled(&mut self, n: usize) {
        let room = self.buf.len() - self.end;
        assert!(n <= room, "read more than the room given");
        self.last_read = n;
        self.last_read_filled = n > 0 && n == room;
        self.end += n;
    }

    /// Bytes of the last read.
    pub fn last_read(&self) -> usize {
        self.last_read
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::http::admission::{Admission, AdmissionLimits};
    use crate::ingest::framing::Framer;

    fn admission(budget: usize) -> Admission {
        Admission::new(
            AdmissionLimits {
                connections_max: 10,
                body_bytes_max: budget,
            },
            Rc::default(),
        )
    }

    /// Feeds `data` through the buffer in reads of at most `read_max`, decoding frames as the
    /// listener does; returns the messages and the largest buffer seen.
    fn run(
        fb: &mut FrameBuffer,
        framer: &mut Framer,
        data: &[u8],
        read_max: usize,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let eof = pos == data.len();
            loop {
                match framer.decode(fb.unread(), eof) {
                    crate::ingest::framing::Decoded::Frame {
                        message, consumed, ..
                    } => {
                        out.push(message.to_vec());
                        fb.consume(consumed);
                    }
                    crate::ingest::framing::Decoded::Skipped { consumed, .. } => {
                        fb.consume(consumed)
                    }
                    crate::ingest::framing::Decoded::NeedMore => break,
                }
            }
            if eof {
                return out;
            }
            fb.make_room().unwrap();
            let spare = fb.spare();
            let n = spare.len().min(read_max).min(data.len() - pos);
            spare[..n].copy_from_slice(&data[pos..pos + n]);
            fb.filled(n);
            pos += n;
        }
    }

    #[test]
    fn grows_for_a_long_frame_and_gives_it_back() {
        let a = admission(1 << 20);
        let mut framer = Framer::new(64 * 1024);
        let mut fb = FrameBuffer::new(framer.buffer_bytes_min(), a.empty_charge());
        assert_eq!(fb.size(), READ_BUFFER_BYTES_INITIAL);
        let long = vec![b'x'; 50_000];
        let mut data = b"short one\n".to_vec();
        data.extend_from_slice(&long);
        data.push(b'\n');
        let got = run(&mut fb, &mut framer, &data, 4096);
        assert_eq!(got, vec![b"short one".to_vec(), long]);
        assert!(fb.size() >= 50_000, "grew to hold the frame: {}", fb.size());
        assert_eq!(fb.charged(), fb.size() - READ_BUFFER_BYTES_INITIAL);
        assert_eq!(a.stats().body_bytes_held() as usize, fb.charged());
        // Emptied after a short read: back to the first size, the charge released.
        fb.make_room().unwrap();
        assert_eq!(fb.size(), READ_BUFFER_BYTES_INITIAL);
        assert_eq!(a.stats().body_bytes_held(), 0);
        // Dropping a grown buffer (the connection ends mid-frame) releases its charge too.
        let mut fb = FrameBuffer::new(framer.buffer_bytes_min(), a.empty_charge());
        let _ = run(&mut fb, &mut framer, &vec![b'y'; 40_000], 4096);
        drop(fb);
        assert_eq!(a.stats().body_bytes_held(), 0);
    }

    #[test]
    fn a_frame_the_budget_cannot_take_waits() {
        let a = admission(20 * 1024);
        let framer = Framer::new(64 * 1024);
        let mut fb = FrameBuffer::new(framer.buffer_bytes_min(), a.empty_charge());
        let spare = fb.spare();
        let n = spare.len();
        spare.fill(b'z');
        fb.filled(n);
        // Doubling to 32 KiB needs 16 KiB: the budget has it.
        fb.make_room().unwrap();
        assert_eq!(fb.size(), 32 * 1024);
        let n = fb.spare().len();
        fb.filled(n);
        // 64 KiB would need 48 KiB of a 20 KiB budget: refused, nothing changed.
        let e = fb.make_room().unwrap_err();
        assert_eq!(e.budget, 20 * 1024);
        assert_eq!(fb.size(), 32 * 1024);
        assert_eq!(fb.charged(), 16 * 1024);
    }

    #[test]
    fn a_busy_sender_gets_larger_reads() {
        let a = admission(1 << 20);
        let mut framer = Framer::new(64 * 1024);
        let mut fb = FrameBuffer::new(framer.buffer_bytes_min(), a.empty_charge());
        let data: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let got = run(&mut fb, &mut framer, &data, usize::MAX);
        assert_eq!(got.len(), 20_000);
        assert_eq!(fb.size(), READ_BYTES_BUSY);
        assert!(fb.last_read() > 0);
    }
}
