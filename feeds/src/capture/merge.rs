//! Several captures as one stream in receive-time order: a k-way merge over [`CaptureStream`]s.
//!
//! Each input is streamed by its own reader thread through its own bounded set of chunks
//! ([`CaptureStream`]), so memory is the inputs' chunks whatever the captures' sizes; the
//! merge looks at each input's next receive time ([`CaptureStream::peek_ns`]) and hands out
//! the earliest record, in place (lending, like [`CaptureStream::next`]).
//!
//! - **Order.** Non-decreasing receive time; equal times come out in input order (stable). A
//!   capture's own order is never changed: a record stamped earlier than the one before it in
//!   the same file (cryptofeed's Bybit capture has a `connect` stamped a second before the
//!   `send`s written ahead of it) is merged, and stamped, at that earlier record's time. With a
//!   single input nothing is re-stamped.
//! - **Connections.** Connection ids are renumbered 1, 2, ... in order of first appearance of
//!   each `(input, id)` pair, so two captures' connections never collide
//!   ([`MergedRecord::file`] says which input a record came from).
//! - **Errors** come out as soon as an input reports them, with the input's index
//!   ([`MergeError`]); the merge goes on (an input whose error ended it simply has no more
//!   records).

use super::replay::{CaptureFormat, ReplayRecord};
use super::stream::{CaptureStream, StreamConfig, StreamStats};
use super::CaptureError;
use core::fmt;
use std::collections::HashMap;
use std::path::Path;

/// A record of a merged stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergedRecord<'a> {
    /// Index of the input it came from.
    pub file: usize,
    /// The pass it was read in (see [`StreamConfig::passes`]).
    pub pass: u32,
    /// The record, its connection id renumbered (and, with several inputs, its receive time
    /// raised to its input's previous record's, if it was earlier).
    pub record: ReplayRecord<'a>,
}

/// An error from one input of a merged stream.
#[derive(Debug)]
pub struct MergeError {
    /// Index of the input.
    pub file: usize,
    /// The error, as the input reported it.
    pub error: CaptureError,
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input {}: {}", self.file + 1, self.error)
    }
}

impl std::error::Error for MergeError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    /// Not looked at since the last record was taken.
    Unknown,
    /// The next record's merge time.
    At(u64),
    /// No more records.
    Done,
}

#[derive(Debug)]
struct Input {
    stream: CaptureStream,
    head: Head,
    /// The merge time of this input's last record.
    floor: u64,
}

/// Connection ids renumbered per `(input, id)`.
#[derive(Debug, Default)]
struct ConnIds {
    map: HashMap<(usize, u32), u32>,
    /// The last `(input, conn) -> id` looked up (most records repeat it).
    last: Option<((usize, u32), u32)>,
}

impl ConnIds {
    fn get(&mut self, file: usize, conn: u32) -> u32 {
        if let Some((k, id)) = self.last {
            if k == (file, conn) {
                return id;
            }
        }
        let next = u32::try_from(self.map.len() + 1).unwrap_or(u32::MAX);
        let id = *self.map.entry((file, conn)).or_insert(next);
        self.last = Some(((file, conn), id));
        id
    }
}

/// Captures merged in receive-time order (see the [module docs](self)).
#[derive(Debug)]
pub struct MergedStream {
    inputs: Vec<Input>,
    conns: ConnIds,
}

impl MergedStream {
    /// Opens every path (any format, each detected by content) as a [`CaptureStream`] with
    /// the configuration `cfg(i)` gives input `i`. An error opening one is returned with its
    /// index.
    pub fn open<P: AsRef<Path>>(
        paths: &[P],
        mut cfg: impl FnMut(usize) -> StreamConfig,
    ) -> Result<Self, MergeError> {
        let mut streams = Vec::with_capacity(paths.len());
        for (file, p) in paths.iter().enumerate() {
            streams.push(
                CaptureStream::open(p, cfg(file)).map_err(|error| MergeError { file, error })?,
            );
        }
        Ok(Self::from_streams(streams))
    }

    /// Merges streams already open (their order is the tie-break order).
    pub fn from_streams(streams: Vec<CaptureStream>) -> Self {
        Self {
            inputs: streams
                .into_iter()
                .map(|stream| Input {
                    stream,
                    head: Head::Unknown,
                    floor: 0,
                })
                .collect(),
            // Room for every connection of ordinary captures: no allocation while merging.
            conns: ConnIds {
                map: HashMap::with_capacity(64),
                last: None,
            },
        }
    }

    /// Inputs merged.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// True with no inputs.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Input `i`'s format.
    pub fn format(&self, i: usize) -> Option<CaptureFormat> {
        self.inputs.get(i).map(|x| x.stream.format())
    }

    /// Input `i`'s stream, to look at its first chunk ([`CaptureStream::head`]) before
    /// merging starts.
    pub fn stream_mut(&mut self, i: usize) -> Option<&mut CaptureStream> {
        self.inputs.get_mut(i).map(|x| &mut x.stream)
    }

    /// The merged id of input `file`'s connection `conn`, assigning the next one the first
    /// time the pair is seen.
    pub fn conn_id(&mut self, file: usize, conn: u32) -> u32 {
        self.conns.get(file, conn)
    }

    /// The next record in receive-time order; `Ok(None)` when every input has ended.
    #[allow(clippy::should_implement_trait)] // lending: the record borrows an input's chunk
    pub fn next(&mut self) -> Result<Option<MergedRecord<'_>>, MergeError> {
        let single = self.inputs.len() == 1;
        let mut best: Option<(usize, u64)> = None;
        for (file, input) in self.inputs.iter_mut().enumerate() {
            if input.head == Head::Unknown {
                input.head = match input.stream.peek_ns() {
                    Ok(Some(t)) if single => Head::At(t),
                    Ok(Some(t)) => Head::At(t.max(input.floor)),
                    Ok(None) => Head::Done,
                    Err(error) => return Err(MergeError { file, error }),
                };
            }
            if let Head::At(t) = input.head {
                if best.is_none_or(|(_, b)| t < b) {
                    best = Some((file, t));
                }
            }
        }
        let Some((file, t)) = best else {
            return Ok(None);
        };
        let input = &mut self.inputs[file];
        input.head = Head::Unknown;
        input.floor = t;
        match input.stream.next() {
            Ok(Some(r)) => {
                let mut record = r.record;
                record.conn_id = self.conns.get(file, record.conn_id);
                if !single {
                    record.recv_ns = t;
                }
                Ok(Some(MergedRecord {
                    file,
                    pass: r.pass,
                    record,
                }))
            }
            Ok(None) => Ok(None),
            Err(error) => Err(MergeError { file, error }),
        }
    }

    /// Stops every input's reader and returns what each read.
    pub fn finish(self) -> Vec<StreamStats> {
        self.inputs.into_iter().map(|i| i.stream.finish()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureWriter, RecordKind};
    use std::path::PathBuf;

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> Self {
            let path =
                std::env::temp_dir().join(format!("tickline-merge-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn small() -> StreamConfig {
        StreamConfig {
            chunk_bytes: 4096,
            chunks: 2,
            ..Default::default()
        }
    }

    type Seen = (usize, u64, u32, RecordKind, Vec<u8>);

    fn drain(m: &mut MergedStream) -> (Vec<Seen>, usize) {
        let (mut out, mut errs) = (Vec::new(), 0);
        loop {
            match m.next() {
                Ok(Some(r)) => out.push((
                    r.file,
                    r.record.recv_ns,
                    r.record.conn_id,
                    r.record.kind,
                    r.record.payload.to_vec(),
                )),
                Ok(None) => break,
                Err(_) => errs += 1,
            }
        }
        (out, errs)
    }

    #[test]
    fn merges_by_time_stably_with_connections_renumbered() {
        // A .tlc on connections 7 and 8, a line capture (connection 0), a cryptofeed v1 text.
        let mut w = CaptureWriter::with_header(Vec::new(), 1, 0).unwrap();
        w.append(5, 7, RecordKind::Connect, b"wss://stream.binance.com/ws")
            .unwrap();
        for i in 0..1_000u64 {
            w.append(
                10 + 3 * i,
                7 + (i % 2) as u32,
                RecordKind::TextFrame,
                b"{\"a\":1}",
            )
            .unwrap();
        }
        let a = TempFile::new("a.tlc", &w.into_inner());
        let mut text = String::new();
        for i in 0..1_000u64 {
            text += &format!("{} {{\"b\":{i}}}\n", 10 + 2 * i);
        }
        text += "garbage\n";
        let b = TempFile::new("b.txt", text.as_bytes());
        let c = TempFile::new(
            "c.0",
            b"wss://ws.okx.com:8443/ws/v5/public <-> 0.000000004\n0.00000001: {\"c\":1}\n0.000000009: {\"c\":2}\n",
        );
        let mut m = MergedStream::open(&[&a.0, &b.0, &c.0], |_| small()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.format(2), Some(CaptureFormat::CryptofeedV1));
        let (out, errs) = drain(&mut m);
        assert_eq!(errs, 1);
        assert_eq!(out.len(), 1_001 + 1_000 + 3);
        assert!(out.windows(2).all(|w| w[0].1 <= w[1].1));
        // Ties: input order. At t=10: a (file 0), b (file 1), c (file 2, twice: its frame at 9
        // comes after its frame at 10 in the file, so it is merged at 10).
        let at10: Vec<_> = out.iter().filter(|r| r.1 == 10).map(|r| r.0).collect();
        assert_eq!(at10, [0, 1, 2, 2]);
        // c's second frame was stamped 9 after a frame at 10: merged and stamped at 10.
        let cs: Vec<_> = out
            .iter()
            .filter(|r| r.0 == 2)
            .map(|r| (r.1, r.4.clone()))
            .collect();
        assert_eq!(cs[2], (10, b"{\"c\":2}".to_vec()));
        // Connections in order of first appearance: c's connect at 4 (2,1) -> 1, a's at 5
        // (0,7) -> 2, then (0,8) and (1,0) at 10.
        let conn_of = |file, payload: &[u8]| {
            out.iter()
                .find(|r| r.0 == file && r.4 == payload)
                .map(|r| r.2)
                .unwrap()
        };
        assert_eq!(conn_of(2, b"wss://ws.okx.com:8443/ws/v5/public"), 1);
        assert_eq!(conn_of(0, b"wss://stream.binance.com/ws"), 2);
        let mut ids: Vec<_> = out.iter().map(|r| (r.0, r.2)).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 4);
        let distinct: std::collections::BTreeSet<_> = ids.iter().map(|x| x.1).collect();
        assert_eq!(distinct.len(), 4);
        // Each input's records come out in their own order, all of them.
        for file in 0..3 {
            let n = out.iter().filter(|r| r.0 == file).count();
            assert_eq!(n, [1_001, 1_000, 3][file]);
        }
        let stats = m.finish();
        assert_eq!(stats.len(), 3);
        assert_eq!(stats[1].errors, 1);
    }

    #[test]
    fn a_single_input_is_passed_through() {
        let t = TempFile::new("s.txt", b"5 {}\n3 {}\n");
        let mut m = MergedStream::open(&[&t.0], |_| small()).unwrap();
        let (out, _) = drain(&mut m);
        let times: Vec<_> = out.iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(times, [(5, 1), (3, 1)]);
    }

    #[test]
    fn a_missing_input_is_named() {
        let t = TempFile::new("m.txt", b"5 {}\n");
        let err = MergedStream::open(&[t.0.clone(), PathBuf::from("/nonexistent/x")], |_| small())
            .unwrap_err();
        assert_eq!(err.file, 1);
        assert!(err.to_string().starts_with("input 2:"), "{err}");
    }
}
