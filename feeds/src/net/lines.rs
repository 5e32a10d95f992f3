//! Newline framing for raw `tcp://` / `tls://` feeds, over one reused buffer.

use std::io::{self, Read};

use super::NetError;

/// First size of the line buffer; it doubles up to `max_line + 1` bytes and never shrinks.
const INITIAL: usize = 64 * 1024;

/// What [`LineBuffer::drain`] stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// The source returned `WouldBlock`: every complete line so far has been handed out.
    WouldBlock,
    /// The source reached EOF at a line boundary.
    Eof,
    /// The source reached EOF inside a line; this many bytes of it were dropped.
    EofMidLine(usize),
}

/// Splits a byte stream into lines. Unread bytes roll to the front; the buffer grows (doubling)
/// only while a line is longer than it, up to `max_line + 1` bytes, so a hostile peer cannot make
/// it allocate more than that. Lines are handed out as slices of the buffer: nothing is
/// allocated per line.
#[derive(Debug)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// First byte of the current (incomplete) line.
    start: usize,
    /// End of the valid bytes.
    end: usize,
    /// Bytes before this index (from `start`) hold no newline.
    scanned: usize,
    max_line: usize,
}

impl LineBuffer {
    pub(crate) fn new(max_line: usize) -> Self {
        let cap = max_line.saturating_add(1);
        LineBuffer {
            buf: vec![0; INITIAL.min(cap)],
            start: 0,
            end: 0,
            scanned: 0,
            max_line,
        }
    }

    /// Bytes of an incomplete line held.
    pub(crate) fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Reads `src` until it would block or ends, calling `f` with every complete line, without
    /// its `\n` (and without a `\r` before it). Empty lines are skipped.
    pub(crate) fn drain(
        &mut self,
        src: &mut impl Read,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<Drained, ReadError> {
        loop {
            if self.end == self.buf.len() {
                self.make_room()?;
            }
            let n = match src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Ok(match self.pending() {
                        0 => Drained::Eof,
                        n => Drained::EofMidLine(n),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Drained::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            self.end += n;
            self.split(f)?;
        }
    }

    /// Hands out the complete lines in `start..end`.
    fn split(&mut self, f: &mut dyn FnMut(&[u8])) -> Result<(), ReadError> {
        while let Some(pos) = self.buf[self.scanned..self.end]
            .iter()
            .position(|&b| b == b'\n')
        {
            let nl = self.scanned + pos;
            let mut line = &self.buf[self.start..nl];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.len() > self.max_line {
                return Err(ReadError::TooLong);
            }
            if !line.is_empty() {
                f(line);
            }
            self.start = nl + 1;
            self.scanned = self.start;
        }
        self.scanned = self.end;
        if self.pending() > self.max_line {
            return Err(ReadError::TooLong);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
        }
        Ok(())
    }

    /// The buffer is full to its end: roll the partial line to the front, or grow.
    #[cold]
    fn make_room(&mut self) -> Result<(), ReadError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
            return Ok(());
        }
        let cap = self.max_line.saturating_add(1);
        if self.buf.len() >= cap {
            // Unreachable while `split` rejects partial lines over `max_line`; kept as a bound.
            return Err(ReadError::TooLong);
        }
        let new_len = self.buf.len().saturating_mul(2).clamp(1, cap);
        self.buf.resize(new_len, 0);
        Ok(())
    }
}

/// A failed [`LineBuffer::drain`].
#[derive(Debug)]
pub(crate) enum ReadError {
    TooLong,
    Io(io::Error),
}

impl ReadError {
    pub(crate) fn into_net(
        self,
        max: usize,
        map_io: impl FnOnce(io::Error) -> NetError,
    ) -> NetError {
        match self {
            ReadError::TooLong => NetError::LineTooLong { max },
            ReadError::Io(e) => map_io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `data` in the given chunk sizes (cycled), then `WouldBlock` once, then EOF.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: &'a [usize],
        i: usize,
        blocked: bool,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                if !self.blocked {
                    self.blocked = true;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                return Ok(0);
            }
            let want = self.sizes[self.i % self.sizes.len()].max(1);
            self.i += 1;
            let n = want.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn collect(
        data: &[u8],
        sizes: &[usize],
        max_line: usize,
    ) -> (Vec<Vec<u8>>, Result<Drained, ReadError>) {
        let mut lb = LineBuffer::new(max_line);
        let mut src = Chunked {
            data,
            sizes,
            i: 0,
            blocked: false,
        };
        let mut out = Vec::new();
        let mut r = lb.drain(&mut src, &mut |l| out.push(l.to_vec()));
        if matches!(r, Ok(Drained::WouldBlock)) {
            r = lb.drain(&mut src, &mut |l| out.push(l.to_vec()));
        }
        (out, r)
    }

    #[test]
    fn splits_across_any_chunking() {
        let mut data = Vec::new();
        let mut want = Vec::new();
        for i in 0..500 {
            let line = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 37));
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
            want.push(line.into_bytes());
        }
        for sizes in [&[1usize][..], &[7, 3, 1, 250], &[4096], &[13, 1000, 2]] {
            let (got, r) = collect(&data, sizes, 1024);
            assert_eq!(r.unwrap(), Drained::Eof);
            assert_eq!(got, want, "chunks {sizes:?}");
        }
    }

    #[test]
    fn too_long_line_is_an_error_before_its_newline() {
        let data = vec![b'a'; 10_000];
        let (got, r) = collect(&data, &[333], 100);
        assert!(got.is_empty());
        assert!(matches!(r, Err(ReadError::TooLong)));
        // Exactly max_line is fine, max_line + 1 is not.
        let (got, r) = collect(b"aaaa\nbbbbb\n", &[1], 4);
        assert_eq!(got, vec![b"aaaa".to_vec()]);
        assert!(matches!(r, Err(ReadError::TooLong)));
    }

    #[test]
    fn grows_to_hold_long_lines_then_stops() {
        let long = vec![b'z'; 200_000];
        let mut data = long.clone();
        data.push(b'\n');
        let (got, r) = collect(&data, &[65_536], 200_000);
        assert_eq!(r.unwrap(), Drained::Eof);
        assert_eq!(got, vec![long]);
    }

    #[test]
    fn eof_mid_line_and_empty_lines() {
        let (got, r) = collect(b"\n\nab\n\r\ncd", &[3], 16);
        assert_eq!(got, vec![b"ab".to_vec()]);
        assert_eq!(r.unwrap(), Drained::EofMidLine(2));
    }
}
