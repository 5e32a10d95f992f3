//! What `tickline replay` reads: one or more captures, each in any format `feeds::capture`
//! reads (the line format, `.tlc`, cryptofeed v1 text and v3 JSONL), merged by receive time
//! ([`feeds::capture::MergedStream`]), every frame attributed to its venue.
//!
//! - **Venues.** Each frame is decoded by its connection's venue's decoder: the venue of the
//!   connection's URL ([`feeds::venue::venue_of_url`]), else the input's `--venue`, else the
//!   exchange a cryptofeed v3 header names, else Binance spot ([`VenueRouter`]). A REST
//!   response belongs to its URL's venue, and is a snapshot of the instrument its URL names
//!   ([`feeds::venue::rest_snapshot_symbol`]); other REST responses (instrument lists) are not
//!   market data and are skipped, like connects and subscriptions.
//! - **Symbols.** The instruments the captures name (subscription requests, Binance stream
//!   URLs, REST depth URLs, `.tlc` snapshot records: [`symbols_named`]) are interned on their
//!   venues, so their books are rebuilt; frames of any other instrument are ignored as
//!   `UnknownSymbol` by the decoders (counted). A line capture names no instrument: it trades
//!   the default symbol (`--symbol`, default `BTCUSDT`) on its venue, whose REST snapshot it
//!   holds. [`load_captures`] reads every record before the replay; a streamed replay
//!   ([`open_streams`]) learns the instruments from each capture's first chunk.

use crate::pipeline::{
    progress_line, report_unreadable, venues_of_mask, FrameArena, FrameKind, StreamedCapture,
};
use anyhow::{bail, Context, Result};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;
use feeds::capture::{
    symbols_named, CaptureFormat, MergedStream, RecordKind, ReplayRecord, StreamConfig, VenueRouter,
};
use std::path::PathBuf;

/// One capture to replay, and the venue of its connections that name none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureInput {
    /// The capture file.
    pub path: PathBuf,
    /// `--venue`: the venue of connections whose URL names none (a line capture's one
    /// connection); `None`: Binance spot unless the capture says otherwise.
    pub venue: Option<Venue>,
}

/// What a record is to the replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Routed<'a> {
    /// A frame for this venue's decoder.
    Frame(Venue, FrameKind),
    /// Not market data (a connect, a subscription, an instrument list).
    Skip,
    /// A snapshot of an instrument not interned before the replay started.
    Late(&'a [u8]),
}

/// Every input's [`VenueRouter`] and default symbol.
#[derive(Debug)]
pub(crate) struct Routes {
    routers: Vec<VenueRouter>,
    defaults: Vec<Option<SymbolId>>,
}

impl Routes {
    pub(crate) fn new(venues: &[Option<Venue>], defaults: Vec<Option<SymbolId>>) -> Self {
        Self {
            routers: venues.iter().map(|v| VenueRouter::new(*v)).collect(),
            defaults,
        }
    }

    fn router(&mut self, file: usize) -> Option<&mut VenueRouter> {
        self.routers.get_mut(file)
    }

    /// Notes a connect or header, and returns the record's venue.
    fn venue_of(&mut self, file: usize, rec: &ReplayRecord<'_>) -> Venue {
        match self.router(file) {
            Some(r) => {
                r.observe(rec);
                r.venue_of(rec)
            }
            None => Venue::Binance,
        }
    }

    /// Routes one record of input `file`: its venue and frame kind, looked up in `symbols`;
    /// a symbol-less snapshot belongs to the input's default symbol, else `fallback`.
    #[inline]
    pub(crate) fn route<'a>(
        &mut self,
        file: usize,
        rec: &ReplayRecord<'a>,
        symbols: &SymbolTable,
        fallback: SymbolId,
    ) -> Routed<'a> {
        let Some(router) = self.routers.get_mut(file) else {
            return Routed::Skip;
        };
        match rec.kind {
            RecordKind::TextFrame => {
                Routed::Frame(router.venue_of_conn(rec.conn_id), FrameKind::Stream)
            }
            RecordKind::Snapshot => {
                let venue = router.venue_of_conn(rec.conn_id);
                match rec.symbol {
                    None => Routed::Frame(
                        venue,
                        FrameKind::Snapshot(
                            self.defaults
                                .get(file)
                                .copied()
                                .flatten()
                                .unwrap_or(fallback),
                        ),
                    ),
                    Some(name) => match symbols.lookup_on(venue, name) {
                        Some(id) => Routed::Frame(venue, FrameKind::Snapshot(id)),
                        None => Routed::Late(name),
                    },
                }
            }
            RecordKind::Rest => {
                let venue = router.venue_of(rec);
                let Some(url) = rec.url() else {
                    return Routed::Skip;
                };
                let Some(sym) = std::str::from_utf8(url)
                    .ok()
                    .and_then(feeds::venue::rest_snapshot_symbol)
                else {
                    return Routed::Skip;
                };
                match symbols.lookup_on(venue, sym.as_bytes()) {
                    Some(id) => Routed::Frame(venue, FrameKind::Snapshot(id)),
                    None => Routed::Late(url),
                }
            }
            RecordKind::Connect | RecordKind::Meta => {
                router.observe(rec);
                Routed::Skip
            }
            _ => Routed::Skip,
        }
    }
}

/// Interns `names` on `venue`, warning (once each) about names the table refuses.
fn intern_all(symbols: &mut SymbolTable, venue: Venue, names: Vec<String>) {
    for name in names {
        if symbols.lookup_on(venue, name.as_bytes()).is_some() {
            continue;
        }
        if let Err(e) = symbols.intern_on(venue, &name) {
            tracing::warn!(target: "tickline::replay", "instrument {name} on {venue} not replayed: {e}");
        }
    }
}

/// Interns the default symbol on `venue` for an input that needs it (a line capture).
fn default_on(
    symbols: &mut SymbolTable,
    venue: Venue,
    name: Option<&str>,
) -> Result<Option<SymbolId>> {
    let Some(name) = name else {
        return Ok(None);
    };
    if let Some(id) = symbols.lookup_on(venue, name.as_bytes()) {
        return Ok(Some(id));
    }
    symbols
        .intern_on(venue, name)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("--symbol {name} on {venue}: {e}"))
}

fn paths(inputs: &[CaptureInput]) -> Vec<PathBuf> {
    inputs.iter().map(|i| i.path.clone()).collect()
}

/// Loads one or more captures into memory, merged by receive time (see the
/// [module docs](self)): every instrument they name is interned into `symbols` on its venue,
/// and a line capture's symbol-less snapshots belong to `default_symbol` (interned on that
/// input's venue). Unreadable records are counted in [`FrameArena::unreadable`] and the first
/// five reported on stderr.
pub fn load_captures(
    inputs: &[CaptureInput],
    symbols: &mut SymbolTable,
    default_symbol: Option<&str>,
) -> Result<FrameArena> {
    let paths = paths(inputs);
    let mut merged = MergedStream::open(&paths, |_| StreamConfig::default())
        .map_err(|e| anyhow::anyhow!("opening {}: {}", paths[e.file].display(), e.error))?;
    let venues: Vec<_> = inputs.iter().map(|i| i.venue).collect();
    let mut defaults = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        defaults.push(if merged.format(i) == Some(CaptureFormat::Line) {
            default_on(
                symbols,
                input.venue.unwrap_or(Venue::Binance),
                default_symbol,
            )?
        } else {
            None
        });
    }
    let fallback = match defaults.iter().flatten().next() {
        Some(&id) => id,
        None => default_on(
            symbols,
            Venue::Binance,
            Some(default_symbol.unwrap_or("BTCUSDT")),
        )?
        .unwrap_or(SymbolId(0)),
    };
    let mut routes = Routes::new(&venues, defaults);
    let mut arena = FrameArena::default();
    loop {
        match merged.next() {
            Ok(Some(r)) => {
                let venue = routes.venue_of(r.file, &r.record);
                intern_all(symbols, venue, symbols_named(venue, &r.record));
                match routes.route(r.file, &r.record, symbols, fallback) {
                    Routed::Frame(v, kind) => {
                        arena.push_on(v, r.record.recv_ns, kind, r.record.payload)
                    }
                    Routed::Skip => {}
                    Routed::Late(name) => {
                        // Interned just above unless the table refused it (warned there).
                        arena.unreadable += 1;
                        report_unreadable(
                            &paths[r.file],
                            arena.unreadable,
                            &format!(
                                "snapshot for {} skipped: not a symbol of {venue}",
                                String::from_utf8_lossy(name)
                            ),
                        );
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                arena.unreadable += 1;
                if arena.unreadable <= 5 {
                    tracing::warn!(target: "tickline::replay", file = %paths[e.file].display(), "unreadable record: {}", e.error);
                }
            }
        }
    }
    if arena.is_empty() {
        let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!("{}: no market data frames", names.join(", "));
    }
    Ok(arena)
}

/// Opens one or more captures for a streamed replay of `passes` passes, merged by receive time
/// (each read ahead by its own reader thread through 16 chunks of 1 MiB); with `progress` and a
/// single input, a progress line on stderr. Several inputs replay once: `passes` > 1 with more
/// than one input is an error (load them with `--in-memory` to repeat them).
pub fn open_streams(
    inputs: &[CaptureInput],
    passes: u32,
    symbols: &mut SymbolTable,
    default_symbol: Option<&str>,
    progress: bool,
) -> Result<StreamedCapture> {
    let single = inputs.len() == 1;
    open_streams_with(
        inputs,
        passes,
        &mut |_| StreamConfig {
            passes,
            progress: (progress && single).then(progress_line),
            ..Default::default()
        },
        symbols,
        default_symbol,
    )
}

/// [`open_streams`] with each input's stream configuration from `cfg`.
pub fn open_streams_with(
    inputs: &[CaptureInput],
    passes: u32,
    cfg: &mut dyn FnMut(usize) -> StreamConfig,
    symbols: &mut SymbolTable,
    default_symbol: Option<&str>,
) -> Result<StreamedCapture> {
    let passes = passes.max(1);
    if inputs.len() > 1 && passes > 1 {
        bail!(
            "--repeat with several captures needs them in memory (--in-memory): a streamed \
             merge reads each capture once"
        );
    }
    let paths = paths(inputs);
    let mut merged = MergedStream::open(&paths, |i| StreamConfig { passes, ..cfg(i) })
        .map_err(|e| anyhow::anyhow!("opening {}: {}", paths[e.file].display(), e.error))
        .context("opening the captures")?;
    let venues: Vec<_> = inputs.iter().map(|i| i.venue).collect();
    let mut head_errors = 0u64;
    let mut first_capture_ns: Option<u64> = None;
    let mut mask = 0u32;
    let mut defaults = Vec::with_capacity(inputs.len());
    for (file, input) in inputs.iter().enumerate() {
        let line = merged.format(file) == Some(CaptureFormat::Line);
        let mut router = VenueRouter::new(input.venue);
        let mut names: Vec<(Venue, Vec<String>)> = Vec::new();
        let mut errors = Vec::new();
        if let Some(stream) = merged.stream_mut(file) {
            for r in stream.head(&mut errors) {
                router.observe(&r);
                let venue = router.venue_of(&r);
                names.push((venue, symbols_named(venue, &r)));
                let market = match r.kind {
                    RecordKind::TextFrame | RecordKind::Snapshot => true,
                    RecordKind::Rest => r
                        .url()
                        .and_then(|u| std::str::from_utf8(u).ok())
                        .and_then(feeds::venue::rest_snapshot_symbol)
                        .is_some(),
                    _ => false,
                };
                if market {
                    mask |= 1 << venue.index();
                    first_capture_ns =
                        Some(first_capture_ns.map_or(r.recv_ns, |t| t.min(r.recv_ns)));
                }
            }
        }
        for (i, e) in errors.iter().enumerate() {
            report_unreadable(&paths[file], i as u64 + 1, e);
        }
        head_errors += errors.len() as u64;
        for (venue, n) in names {
            intern_all(symbols, venue, n);
        }
        defaults.push(if line {
            default_on(symbols, router.default_venue(), default_symbol)?
        } else {
            None
        });
    }
    let Some(first_capture_ns) = first_capture_ns else {
        let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "{}: no market data frames in the first chunk",
            names.join(", ")
        );
    };
    // Venues without a decoder are refused before the run, naming them.
    for v in venues_of_mask(mask) {
        if feeds::venue::adapter(v).is_none() {
            bail!("venue {v} is not in this build: no decoder for it");
        }
    }
    Ok(StreamedCapture {
        merged,
        paths,
        passes,
        first_capture_ns,
        head_errors,
        venues: mask,
        input_venues: venues,
        defaults,
    })
}
