//! Public captures through `tickline replay` and `tickline convert`: every real capture in
//! `../shared/data` (skipped with a NOTICE when absent) replays per venue, converts to `.tlc`
//! and replays from the `.tlc` with the same counts; captures merged by receive time keep every
//! record in order; a venue whose decoder is not in this build is refused by name.

use engine::idle::IdleMode;
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::capture::{MergedStream, RecordKind, ReplayReader, StreamConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tools::config::Pace;
use tools::pipeline::{replay, ReplayOptions};
use tools::replay_input::{load_captures, open_streams, CaptureInput};

fn data(rel: &str) -> Option<PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(rel);
    if p.exists() {
        Some(p)
    } else {
        println!("NOTICE: {} absent; skipped", p.display());
        None
    }
}

/// Every real capture, with the `--venue` a replay of it needs (line captures name none).
const CAPTURES: [(&str, Option<Venue>); 6] = [
    ("binance-spot/btcusdt_20240808.gz", None),
    ("binance-usdm/btcusdt_20240808.gz", Some(Venue::BinanceUsdm)),
    ("cryptofeed/BINANCE-ee25be.0", None),
    ("cryptofeed/COINBASE.ws.28.0", None),
    ("cryptofeed/OKX.ws.1.0", None),
    ("cryptofeed/BYBIT.jsonl.zst", None),
];

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tickline-import-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(symbols: &SymbolTable) -> ReplayOptions {
    let default_symbol = symbols.iter().next().map(|(id, _)| id).unwrap();
    ReplayOptions {
        symbols: symbols.clone(),
        default_symbol,
        strategy: None,
        custom_strategy: None,
        pace: Pace::Asap,
        io_cpu: None,
        core_cpu: None,
        idle: IdleMode::SpinYield { spins: 100 },
        ring_capacity: 4096,
        core: Default::default(),
        metrics: None,
    }
}

/// The counts a replay's `--json` reports, per venue and in total, or the error if the replay
/// was refused.
fn counts(inputs: &[CaptureInput], stream: bool) -> Result<Value, String> {
    let mut symbols = SymbolTable::new();
    let report = if stream {
        let s = open_streams(inputs, 1, &mut symbols, Some("BTCUSDT"), false)
            .map_err(|e| format!("{e:#}"))?;
        tools::pipeline::replay_stream(s, options(&symbols))
    } else {
        let arena =
            load_captures(inputs, &mut symbols, Some("BTCUSDT")).map_err(|e| format!("{e:#}"))?;
        assert_eq!(arena.unreadable, 0);
        replay(&arena, options(&symbols))
    }
    .map_err(|e| format!("{e:#}"))?;
    let j = report.to_json();
    Ok(serde_json::json!({
        "messages": j["messages"], "decode_errors": j["decode_errors"], "ignored": j["ignored"],
        "events": j["events"], "book_gaps": j["book_gaps"], "book_syncs": j["book_syncs"],
        "venues": j["venues"],
    }))
}

fn input(path: &Path, venue: Option<Venue>) -> Vec<CaptureInput> {
    vec![CaptureInput {
        path: path.to_path_buf(),
        venue,
    }]
}

#[test]
fn every_capture_converts_to_tlc_and_replays_the_same() {
    let dir = TempDir::new("convert");
    for (rel, venue) in CAPTURES {
        let Some(path) = data(rel) else { continue };
        let tlc = dir.0.join(format!("{}.tlc", rel.replace('/', "_")));
        let stats = match tools::convert::convert(&path, &tlc, venue) {
            Ok(s) => s,
            Err(e) => {
                // Its venue's URL comes from an adapter this build does not have yet.
                let v = venue.unwrap();
                assert!(feeds::venue::adapter(v).is_none(), "{rel}: {e:#}");
                assert!(format!("{e:#}").contains("not in this build"), "{e:#}");
                println!("NOTICE: {rel}: venue {v} not in this build; conversion check skipped");
                continue;
            }
        };
        assert_eq!(stats.unreadable, 0, "{rel}");
        // Every record of the input is in the .tlc, plus one connect per URL-less connection
        // when a venue was given.
        let mut n = 0u64;
        let mut r = ReplayReader::open(&path).unwrap();
        while r.next().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(stats.records, n + u64::from(venue.is_some()), "{rel}");

        let original = counts(&input(&path, venue), false);
        let converted = counts(&input(&tlc, None), false);
        assert_eq!(original, converted, "{rel}");
        match &original {
            Ok(v) => {
                assert_eq!(v["decode_errors"], 0, "{rel}: {v}");
                assert_eq!(v["book_gaps"], 0, "{rel}: {v}");
                assert!(v["book_syncs"].as_u64().unwrap() >= 1, "{rel}: {v}");
                let venues = v["venues"].as_object().unwrap();
                assert_eq!(
                    venues.len(),
                    1 + usize::from(rel.contains("BYBIT")),
                    "{rel}: {v}"
                );
                for (name, c) in venues {
                    for key in [
                        "messages",
                        "decode_errors",
                        "ignored",
                        "book_gaps",
                        "checksum_failures",
                    ] {
                        assert!(c[key].is_u64(), "{rel}: {name}.{key} in {v}");
                    }
                    assert_eq!(c["checksum_failures"], 0, "{rel}: {v}");
                }
                // Streamed, the same counts: except that a stream learns its instruments from
                // the first chunk, and the Bybit capture writes its spot connection (opened
                // first) after the whole linear one. Its spot frames are then counted as
                // unknown symbols, every one of them, never lost silently.
                let streamed = counts(&input(&path, venue), true).unwrap();
                if rel.contains("BYBIT") {
                    let spot = &v["venues"]["bybit-spot"];
                    let s = &streamed["venues"]["bybit-spot"];
                    assert_eq!(s["messages"], spot["messages"], "{streamed}");
                    assert_eq!(s["decode_errors"], 0, "{streamed}");
                    // Every spot frame is ignored and counted; every one that made events in
                    // memory is an unknown symbol here.
                    assert_eq!(s["events"], 0, "{streamed}");
                    assert_eq!(s["ignored"], s["messages"], "{streamed}");
                    assert!(
                        s["unknown_symbol"].as_u64().unwrap()
                            >= spot["messages"].as_u64().unwrap()
                                - spot["ignored"].as_u64().unwrap(),
                        "{streamed}"
                    );
                    assert_eq!(
                        streamed["venues"]["bybit-linear"], v["venues"]["bybit-linear"],
                        "{rel}"
                    );
                } else {
                    assert_eq!(Ok(streamed), original, "{rel}");
                }
            }
            // Not in this build yet: refused by name, the same way for both.
            Err(e) => assert!(e.contains("is not in this build"), "{rel}: {e}"),
        }
    }
}

#[test]
fn line_captures_frames_are_all_replayed() {
    // The arena holds one frame per line of the capture (computed from the raw file).
    let Some(path) = data("binance-spot/btcusdt_20240808.gz") else {
        return;
    };
    let lines = testkit_lines(&path);
    let mut symbols = SymbolTable::new();
    let arena = load_captures(&input(&path, None), &mut symbols, Some("BTCUSDT")).unwrap();
    assert_eq!(arena.len(), lines);
    assert_eq!(arena.venues(), [Venue::Binance]);
    // cryptofeed v1: received frames plus REST depth snapshots, computed from the raw text.
    let Some(path) = data("cryptofeed/BINANCE-ee25be.0") else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let frames = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    let rest = text
        .lines()
        .filter(|l| l.contains("/depth?") && l.contains(" -> "))
        .count();
    let mut symbols = SymbolTable::new();
    let arena = load_captures(&input(&path, None), &mut symbols, None).unwrap();
    assert_eq!(arena.len(), frames + rest);
    let mut names: Vec<_> = symbols.iter().map(|(_, n)| n.to_string()).collect();
    names.sort();
    assert_eq!(names, ["BTCUSDT", "DOTUSDT", "ETHUSDT"]);
}

fn testkit_lines(path: &Path) -> usize {
    use std::io::Read;
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

#[test]
fn merged_captures_come_out_in_time_order_with_every_record() {
    let rels = [
        "cryptofeed/OKX.ws.1.0",
        "cryptofeed/BINANCE-ee25be.0",
        "cryptofeed/BYBIT.jsonl.zst",
        "binance-spot/btcusdt_20240808.gz",
    ];
    let paths: Vec<PathBuf> = rels.iter().filter_map(|r| data(r)).collect();
    if paths.len() < 2 {
        return;
    }
    // Each capture alone: its records (kind, payload) in order.
    let mut alone: Vec<Vec<(RecordKind, Vec<u8>)>> = Vec::new();
    for p in &paths {
        let mut r = ReplayReader::open(p).unwrap();
        let mut v = Vec::new();
        while let Some(rec) = r.next().unwrap() {
            v.push((rec.kind, rec.payload.to_vec()));
        }
        alone.push(v);
    }
    let small = |_| StreamConfig {
        chunk_bytes: 64 << 10,
        chunks: 4,
        ..Default::default()
    };
    let mut m = MergedStream::open(&paths, small).unwrap();
    let mut seen: Vec<Vec<(RecordKind, Vec<u8>)>> = vec![Vec::new(); paths.len()];
    let mut last = 0u64;
    let mut conns = std::collections::BTreeMap::new();
    while let Some(r) = m.next().unwrap() {
        assert!(r.record.recv_ns >= last, "{} < {last}", r.record.recv_ns);
        last = r.record.recv_ns;
        // Connection ids never collide across inputs.
        let owner = conns.entry(r.record.conn_id).or_insert(r.file);
        assert_eq!(*owner, r.file);
        seen[r.file].push((r.record.kind, r.record.payload.to_vec()));
    }
    assert_eq!(seen, alone);
    // The merged replay: every venue's counts equal its capture replayed alone (distinct
    // venues and instruments, so no book sees another capture's frames).
    let okx = data("cryptofeed/OKX.ws.1.0");
    let bin = data("cryptofeed/BINANCE-ee25be.0");
    if let (Some(okx), Some(bin)) = (okx, bin) {
        let both = [input(&okx, None), input(&bin, None)].concat();
        let merged = counts(&both, false).unwrap();
        assert_eq!(counts(&both, true).unwrap(), merged);
        for (p, name) in [(&okx, "okx"), (&bin, "binance")] {
            let alone = counts(&input(p, None), false).unwrap();
            assert_eq!(merged["venues"][name], alone["venues"][name], "{name}");
        }
    }
}

#[test]
fn cli_replays_merges_converts_and_names_missing_venues() {
    let Some(okx) = data("cryptofeed/OKX.ws.1.0") else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_tickline");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .args(["--io-cpu", "-1", "--core-cpu", "-1"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let okx_s = okx.to_str().unwrap();
    let (ok, out, err) = run(&["replay", okx_s, "--venue", "okx", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for key in ["messages", "decode_errors", "ignored", "book_gaps"] {
        assert!(v[key].is_u64(), "{key}");
        assert!(v["venues"]["okx"][key].is_u64(), "okx.{key}");
    }
    assert_eq!(v["venues"]["okx"]["checksum_failures"], 0);
    assert_eq!(v["messages"], v["venues"]["okx"]["messages"]);

    // A venue this build has no decoder for is an error naming it (a line capture told it is
    // some venue not built here, if there is one).
    if let Some(missing) = Venue::ALL
        .into_iter()
        .find(|v| feeds::venue::adapter(*v).is_none())
    {
        if let Some(spot) = data("binance-spot/btcusdt_20240808.gz") {
            let (ok, _, err) = run(&["replay", spot.to_str().unwrap(), "--venue", missing.name()]);
            assert!(!ok);
            assert!(
                err.contains(&format!("venue {} is not in this build", missing.name())),
                "{err}"
            );
        }
    }
    let (ok, _, err) = run(&["replay", okx_s, "--venue", "nowhere"]);
    assert!(!ok && err.contains("--venue"), "{err}");

    // convert, then the .tlc replays with the same counts.
    let dir = TempDir::new("cli");
    let tlc = dir.0.join("okx.tlc");
    let out = Command::new(bin)
        .args(["convert", okx_s, tlc.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out2, err) = run(&["replay", tlc.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let w: Value = serde_json::from_str(&out2).unwrap();
    assert_eq!(w["venues"], v["venues"]);
}
