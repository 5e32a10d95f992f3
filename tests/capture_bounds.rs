//! Sizes read from a capture file are claims, never capacities: a lying gzip trailer or `.tlc`
//! record length costs no more memory than the bytes really there.
//!
//! A global allocator here records the largest single allocation, so each test measures what the
//! reader asked the allocator for. One test function per claim, run one at a time (the peak is
//! process-wide).

use feeds::capture::{
    CaptureError, CaptureReader, CaptureWriter, LineCapture, LoadedCapture, ReadOutcome,
    RecordKind, ReplayReader, TicklineCapture, MAX_PAYLOAD, RECORD_HEADER_LEN,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The system allocator, remembering the largest single request since the last reset.
struct PeakAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the only
// addition is a relaxed atomic maximum, which never allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `System` and the caller upholds
        // `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` and returns its result with the largest single allocation made meanwhile.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    let out = f();
    (out, LARGEST.load(Ordering::Relaxed))
}

/// A temporary file removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn with(name: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!(
            "tickline-capture-bounds-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The fuzzer's shape: a tiny gzip capture whose trailer claims 4,080,547,489 bytes.
fn gzip_claiming_4gib() -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b"1 {}\n2 {}\n").unwrap();
    let mut gz = e.finish().unwrap();
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&4_080_547_489u32.to_le_bytes());
    gz
}

#[test]
fn gzip_trailer_claiming_4gib_does_not_allocate_it() {
    let _s = serial();
    let gz = gzip_claiming_4gib();
    assert!(gz.len() < 64, "{} bytes", gz.len());
    let (res, largest) = largest_allocation(|| LineCapture::from_bytes(gz.clone()));
    // The reservation is what 27 bytes can inflate to (28 KB); the largest allocation is the
    // inflater's own state (about 43 KB), whatever the trailer says.
    assert_eq!(
        feeds::capture::gzip_reservation(gz.len(), 4_080_547_489),
        gz.len() * feeds::capture::MAX_DEFLATE_RATIO
    );
    assert!(
        largest < 64 << 10,
        "a {}-byte file made a {largest}-byte allocation",
        gz.len()
    );
    // The file lies, and the error says so: what it claims beside what it holds.
    let err = res.unwrap_err();
    match &err {
        CaptureError::BadGzip {
            compressed,
            claimed,
            decompressed,
            ..
        } => {
            assert_eq!(*compressed, gz.len() as u64);
            assert_eq!(*claimed, 4_080_547_489);
            assert_eq!(*decompressed, 10);
        }
        e => panic!("{e:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("corrupt gzip capture"), "{text}");
    assert!(text.contains("claims 4080547489 bytes"), "{text}");
    // The same through the either-format loader.
    let (res, largest) = largest_allocation(|| LoadedCapture::from_bytes(gz.clone()));
    assert!(matches!(res, Err(CaptureError::BadGzip { .. })));
    assert!(largest < 1 << 20, "{largest}");
    // The streaming reader never looked at the trailer's size: it reads the lines, then
    // reports the bad trailer.
    let file = TempFile::with("claims4g.gz", &gz);
    let (seen, largest) = largest_allocation(|| {
        let mut r = ReplayReader::open(&file.0).unwrap();
        let mut seen = (0, 0);
        loop {
            match r.next() {
                Ok(Some(_)) => seen.0 += 1,
                Ok(None) => break seen,
                Err(_) => seen.1 += 1,
            }
        }
    });
    assert_eq!(seen, (2, 1));
    assert!(largest < 1 << 20, "{largest}");
}

#[test]
fn gzip_trailer_claiming_less_than_the_data_still_reads_what_is_there() {
    let _s = serial();
    // Several members: the last trailer's size is only the last member's, far below the
    // total; the buffer grows with the data and the capture reads whole.
    let mut gz = Vec::new();
    let mut text = Vec::new();
    for m in 0..4 {
        let mut part = Vec::new();
        for i in 0..20_000 {
            writeln!(part, "{} {{\"m\":{m},\"i\":{i}}}", 1_000 + i).unwrap();
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(if m == 3 { b"9 {}\n" } else { &part[..] })
            .unwrap();
        gz.extend_from_slice(&e.finish().unwrap());
        text.extend_from_slice(if m == 3 { b"9 {}\n" } else { &part[..] });
    }
    let cap = LineCapture::from_bytes(gz).unwrap();
    assert_eq!(cap.as_bytes(), &text[..]);
    assert_eq!(cap.iter().count(), 60_001);
}

/// A `.tlc` with one good record, then a record header claiming `claimed` payload bytes followed
/// by only `present` of them.
fn tlc_with_lying_length(claimed: u32, present: usize) -> Vec<u8> {
    let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
    w.append(5, 1, RecordKind::TextFrame, b"{\"ok\":1}")
        .unwrap();
    let mut bytes = w.into_inner();
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&claimed.to_le_bytes());
    h[20] = RecordKind::TextFrame.as_u8();
    bytes.extend_from_slice(&h);
    bytes.extend(std::iter::repeat_n(b'x', present));
    bytes
}

#[test]
fn tlc_record_length_beyond_file_is_refused() {
    let _s = serial();
    let claimed = MAX_PAYLOAD as u32; // the largest length the format allows
    let bytes = tlc_with_lying_length(claimed, 10);
    let at = bytes.len() - 10 - RECORD_HEADER_LEN;

    // In memory: refused as truncated, checked against the bytes remaining, nothing allocated.
    let mem = TicklineCapture::from_bytes(bytes.clone()).unwrap();
    let (items, largest) = largest_allocation(|| {
        let mut it = mem.iter();
        let first = it
            .next()
            .map(|r| r.map(|r| r.recv_ns).map_err(|e| e.to_string()));
        let second = it
            .next()
            .map(|r| r.map(|r| r.recv_ns).map_err(|e| e.to_string()));
        (first, second, it.next().is_none())
    });
    assert_eq!(items.0, Some(Ok(5)));
    let want = format!(
        "capture ends inside the record at byte offset {at} ({} of {} bytes)",
        RECORD_HEADER_LEN + 10,
        RECORD_HEADER_LEN + claimed as usize
    );
    assert_eq!(items.1, Some(Err(want.clone())));
    assert!(items.2);
    assert!(largest < 1 << 10, "{largest}");

    // Streaming: the reader's buffer grows only with bytes that arrive; the claimed 16 MiB is
    // never reserved.
    let (outcome, largest) = largest_allocation(|| {
        let mut r = CaptureReader::new(Cursor::new(bytes.clone())).unwrap();
        assert!(matches!(r.next().unwrap(), ReadOutcome::Record(_)));
        match r.next().unwrap() {
            ReadOutcome::Incomplete { have, need } => Some((have, need)),
            _ => None,
        }
    });
    assert_eq!(
        outcome,
        Some((RECORD_HEADER_LEN + 10, RECORD_HEADER_LEN + claimed as usize))
    );
    assert!(largest <= 128 << 10, "{largest}");

    // From a file, as replay reads it: one clear error, then the end.
    let file = TempFile::with("lying.tlc", &bytes);
    let (errors, largest) = largest_allocation(|| {
        let mut r = ReplayReader::open(&file.0).unwrap();
        let mut errors = Vec::new();
        let mut records = 0;
        loop {
            match r.next() {
                Ok(Some(_)) => records += 1,
                Ok(None) => break (records, errors),
                Err(e) => errors.push(e.to_string()),
            }
        }
    });
    assert_eq!(errors, (1, vec![want]));
    assert!(largest <= 128 << 10, "{largest}");

    // One byte over the format's limit is corrupt, whatever follows.
    let over = tlc_with_lying_length(claimed + 1, 10);
    let mem = TicklineCapture::from_bytes(over).unwrap();
    assert!(matches!(
        mem.iter().nth(1),
        Some(Err(CaptureError::Corrupt { offset })) if offset as usize == at
    ));
}

#[test]
fn tlc_reader_buffer_grows_with_the_data_a_writer_delivers() {
    let _s = serial();
    // A real 3 MiB record, written in pieces while the reader polls: the buffer follows the
    // bytes present (at most twice them), and the record reads whole at the end.
    let payload: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
    w.append(9, 2, RecordKind::BinaryFrame, &payload).unwrap();
    let bytes = w.into_inner();
    let shared = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    struct Growing(std::rc::Rc<std::cell::RefCell<Vec<u8>>>, usize);
    impl std::io::Read for Growing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let data = self.0.borrow();
            let n = buf.len().min(data.len() - self.1);
            buf[..n].copy_from_slice(&data[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let mut r = CaptureReader::new(Growing(shared.clone(), 0)).unwrap();
    let mut written = 0;
    for step in [100usize, 200_000, 1 << 20, 2 << 20] {
        let upto = (written + step).min(bytes.len() - 1);
        shared.borrow_mut().extend_from_slice(&bytes[written..upto]);
        written = upto;
        let (outcome, largest) = largest_allocation(|| r.next().unwrap());
        assert!(
            matches!(outcome, ReadOutcome::Incomplete { have, .. } if have == written - 32),
            "{outcome:?}"
        );
        assert!(
            largest <= (2 * written).max(64 << 10),
            "{largest} for {written} bytes"
        );
    }
    shared.borrow_mut().extend_from_slice(&bytes[written..]);
    match r.next().unwrap() {
        ReadOutcome::Record(rec) => assert_eq!(rec.payload, &payload[..]),
        o => panic!("{o:?}"),
    }
}
