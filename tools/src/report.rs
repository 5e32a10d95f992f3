//! Latency reports: HdrHistogram percentile files, an SVG chart, and an interval log that keeps
//! every stage's full histogram so a report can be regenerated (or merged, or plotted by other
//! HdrHistogram tools) later.
//!
//! A report directory ([`write_report_dir`]) holds:
//!
//! - `<stage>.hgrm` for every stage with samples: the percentile distribution exactly as
//!   HdrHistogram's Java `outputPercentileDistribution(out, 5, 1000.0)` prints it (values in µs,
//!   5 percentile ticks per half-distance to 100 %, the `#[Mean ...]`, `#[Max ...]` and
//!   `#[Buckets ...]` footer). The files open in the standard HdrHistogram plotter.
//! - `latency.svg`: every stage on one chart, latency (µs, log scale) by percentile on the usual
//!   `1/(1-p)` axis, with the run's note under the title.
//! - `latency.hlog`: every stage's histogram in HdrHistogram's interval log format
//!   (`#[Histogram log format version 1.3]`), one interval line per stage tagged `Tag=<stage>`,
//!   each histogram in the V2 encoding, DEFLATE-compressed and base64-encoded (`HISTFAAA...`),
//!   values in ns. [`read_hlog`] reads it back exactly; [`report_from_hlog`] regenerates the
//!   `.hgrm` files and the chart from it (`tickline report FILE`).
//!
//! The V2 codec and the Java-compatible number formatting are implemented here (the engine's
//! histograms are built with hdrhistogram's `serialization` feature off); the encoding is the one
//! the hdrhistogram crate and HdrHistogram Java 2.1 write and read.

use engine::latency::{LatencyHist, Stage, StageLatency};
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds per output unit in reports: values are printed in microseconds.
pub const NS_PER_US: f64 = 1000.0;

/// Percentile ticks per half-distance to 100 % in `.hgrm` files (HdrHistogram's usual 5).
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Name of the chart in a report directory.
pub const SVG_FILE: &str = "latency.svg";

/// Name of the interval log in a report directory.
pub const HLOG_FILE: &str = "latency.hlog";

/// Heading of the chart a report directory holds.
pub const CHART_TITLE: &str = "Tickline latency by percentile";

/// Why a histogram log could not be read (or its report written).
#[derive(Debug)]
#[non_exhaustive]
pub enum ReportError {
    /// Reading or writing `path` failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// Line `line` (1-based) is neither a comment, the legend, nor an interval histogram.
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The histogram on line `line` could not be decoded (base64, DEFLATE or the V2 encoding).
    Histogram {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The log holds no interval histogram.
    Empty,
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ReportError::Syntax { line, reason } => {
                write!(f, "line {line}: not a histogram log line: {reason}")
            }
            ReportError::Histogram { line, reason } => {
                write!(f, "line {line}: bad histogram: {reason}")
            }
            ReportError::Empty => write!(f, "the log holds no interval histogram"),
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReportError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Adds the path to an I/O error's message (for the `io::Result` API).
fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

// ------------------------------------------------------------------------------------------------
// Percentile distribution (.hgrm)
// ------------------------------------------------------------------------------------------------

/// One row of the percentile distribution.
#[derive(Clone, Copy, Debug)]
struct Row {
    /// Highest value equivalent to the bucket reached, ns.
    value: u64,
    /// Percentile level reached, 0.0..=100.0.
    level: f64,
    /// Samples at or below `value`.
    total: u64,
}

/// The rows HdrHistogram Java's `PercentileIterator` yields, computed the same way (levels in
/// percent, so the 5-ticks steps are exact binary fractions and rows land on the same buckets).
fn percentile_rows(h: &LatencyHist, ticks_per_half_distance: u32) -> Vec<Row> {
    let hist = h.histogram();
    let total = hist.len();
    let mut rows = Vec::new();
    if total == 0 {
        return rows;
    }
    let ticks = i64::from(ticks_per_half_distance.max(1));
    let mut level = 0.0_f64;
    let mut cumulative = 0_u64;
    let mut last_value = 0;
    'buckets: for v in hist.iter_recorded() {
        cumulative = cumulative.saturating_add(v.count_at_value());
        last_value = v.value_iterated_to();
        loop {
            let current = (100.0 * cumulative as f64) / total as f64;
            if current < level {
                break;
            }
            rows.push(Row {
                value: last_value,
                level,
                total: cumulative,
            });
            if cumulative >= total {
                break 'buckets;
            }
            // Java: ticks * 2^(floor(log2(100 / (100 - level))) + 1), with its integer casts.
            let halvings = ((100.0 / (100.0 - level)).ln() / std::f64::consts::LN_2) as i64;
            let reporting_ticks = ticks.wrapping_mul(2.0_f64.powf((halvings + 1) as f64) as i64);
            let next = level + 100.0 / reporting_ticks as f64;
            if next.is_nan() || next <= level {
                // Float precision ran out (not reachable with u64 counts): stop stepping here.
                break;
            }
            level = next;
        }
    }
    rows.push(Row {
        value: last_value,
        level: 100.0,
        total: cumulative,
    });
    rows
}

/// Mean and standard deviation of the median-equivalent values, as Java's `getMean` and
/// `getStdDeviation` compute them.
fn mean_stddev(h: &LatencyHist) -> (f64, f64) {
    let hist = h.histogram();
    let total = hist.len();
    if total == 0 {
        return (0.0, 0.0);
    }
    let mut sum = 0.0_f64;
    for v in hist.iter_recorded() {
        sum += hist.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64;
    }
    let mean = sum / total as f64;
    let mut dev_total = 0.0_f64;
    for v in hist.iter_recorded() {
        let dev = hist.median_equivalent(v.value_iterated_to()) as f64 - mean;
        dev_total += dev * dev * v.count_at_value() as f64;
    }
    (mean, (dev_total / total as f64).sqrt())
}

/// Formats `x` with `decimals` digits after the point the way Java's `%.Nf` does: the shortest
/// decimal that round-trips `x`, rounded half-up (Rust's `{:.N}` rounds the exact binary value
/// half-to-even, which differs on ties such as 0.0625 -> "0.063" in Java, "0.062" in Rust).
fn fmt_fixed(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{:e}", x.abs()); // shortest round-trip digits: "1.0005e0", "3e-1", "0e0"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    // |x| = 0.d1 d2 d3 ... * 10^(exp + 1). N = |x| * 10^decimals rounded half-up keeps the first
    // `keep` digits.
    let keep = exp + 1 + decimals as i64;
    let mut n: Vec<u8> = Vec::new();
    if keep >= 0 {
        let keep = keep as usize;
        n.extend(digits.iter().take(keep));
        n.resize(keep, 0);
        if digits.get(keep).is_some_and(|&d| d >= 5) {
            let mut i = n.len();
            loop {
                if i == 0 {
                    n.insert(0, 1);
                    break;
                }
                i -= 1;
                if n[i] == 9 {
                    n[i] = 0;
                } else {
                    n[i] += 1;
                    break;
                }
            }
        }
    }
    let mut s: String = n
        .iter()
        .skip_while(|&&d| d == 0)
        .map(|&d| (b'0' + d) as char)
        .collect();
    while s.len() < decimals + 1 {
        s.insert(0, '0');
    }
    let (int_part, frac_part) = s.split_at(s.len() - decimals);
    let mut out = String::with_capacity(s.len() + 2);
    if x.is_sign_negative() {
        out.push('-');
    }
    out.push_str(int_part);
    if decimals > 0 {
        out.push('.');
        out.push_str(frac_part);
    }
    out
}

/// Number of sub-buckets of an HdrHistogram with `sigfig` significant digits.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest = 2.0 * 10f64.powi(i32::from(sigfig.min(5)));
    1_u64 << (largest.log2().ceil() as u32)
}

/// Writes `h`'s percentile distribution in HdrHistogram's standard text format (`.hgrm`), as
/// Java's `outputPercentileDistribution(out, 5, unit_ns_per_value)` prints it: a header, one row
/// per percentile tick (5 ticks per half-distance to 100 %), and the mean/max/buckets footer.
///
/// Values are divided by `unit_ns_per_value`: [`NS_PER_US`] (1000) prints microseconds, which the
/// standard plotter expects. An empty histogram writes the header and a footer of zeros.
pub fn write_hgrm(h: &LatencyHist, out: &mut impl Write, unit_ns_per_value: f64) -> io::Result<()> {
    if !(unit_ns_per_value.is_finite() && unit_ns_per_value > 0.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unit_ns_per_value must be positive, got {unit_ns_per_value}"),
        ));
    }
    let hist = h.histogram();
    let sig = usize::from(hist.sigfig());
    let scale = |ns: u64| fmt_fixed(ns as f64 / unit_ns_per_value, sig);
    let mut text = String::new();
    // Writes into a String cannot fail.
    let _ = write!(
        text,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for row in percentile_rows(h, TICKS_PER_HALF_DISTANCE) {
        let p = row.level / 100.0;
        if row.level != 100.0 {
            let _ = writeln!(
                text,
                "{:>12} {:>2} {:>10} {:>14}",
                scale(row.value),
                fmt_fixed(p, 12),
                row.total,
                fmt_fixed(1.0 / (1.0 - p), 2)
            );
        } else {
            let _ = writeln!(
                text,
                "{:>12} {:>2} {:>10}",
                scale(row.value),
                fmt_fixed(p, 12),
                row.total
            );
        }
    }
    let (mean, stddev) = mean_stddev(h);
    let _ = writeln!(
        text,
        "#[Mean    = {:>12}, StdDeviation   = {:>12}]",
        fmt_fixed(mean / unit_ns_per_value, sig),
        fmt_fixed(stddev / unit_ns_per_value, sig)
    );
    let _ = writeln!(
        text,
        "#[Max     = {:>12}, Total count    = {:>12}]",
        scale(hist.max()),
        hist.len()
    );
    let _ = writeln!(
        text,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        hist.buckets(),
        sub_bucket_count(hist.sigfig())
    );
    out.write_all(text.as_bytes())
}

// ------------------------------------------------------------------------------------------------
// SVG chart
// ------------------------------------------------------------------------------------------------

const SVG_W: f64 = 900.0;
const SVG_H: f64 = 560.0;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
/// Line colours, by the stage's position in the list (so a stage keeps its colour across charts
/// when callers pass every stage).
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            '\u{FFFE}' | '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Splits `s` into lines of at most `width` characters at spaces (longer words stay whole).
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for raw in s.lines() {
        let mut line = String::new();
        for word in raw.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// An axis label for a value in µs: "0.05", "1", "20", "1,000", "100,000".
fn axis_us(v: f64) -> String {
    if v >= 1.0 {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        let decimals = (-v.log10()).ceil().max(0.0) as usize;
        fmt_fixed(v, decimals)
    }
}

/// A value in µs with three significant digits ("0.151", "12.3", "4,520").
fn short_us(us: f64) -> String {
    if us >= 1000.0 {
        axis_us(us)
    } else if us >= 100.0 {
        fmt_fixed(us, 0)
    } else if us >= 10.0 {
        fmt_fixed(us, 1)
    } else if us >= 1.0 {
        fmt_fixed(us, 2)
    } else {
        fmt_fixed(us, 3)
    }
}

fn short_count(n: u64) -> String {
    let f = n as f64;
    if n >= 10_000_000_000 {
        format!("{}G", fmt_fixed(f / 1e9, 0))
    } else if n >= 1_000_000_000 {
        format!("{}G", fmt_fixed(f / 1e9, 2))
    } else if n >= 10_000_000 {
        format!("{}M", fmt_fixed(f / 1e6, 1))
    } else if n >= 1_000_000 {
        format!("{}M", fmt_fixed(f / 1e6, 2))
    } else if n >= 10_000 {
        format!("{}k", fmt_fixed(f / 1e3, 1))
    } else {
        n.to_string()
    }
}

/// Percent label of the tick at 1/(1-p) = 10^k: 0%, 90%, 99%, 99.9%, ...
fn percent_tick(k: u32) -> String {
    match k {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        _ => format!("99.{}%", "9".repeat(k as usize - 2)),
    }
}

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    /// (1/(1-p), µs) for every row below 100 %.
    points: Vec<(f64, f64)>,
    count: u64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

/// Writes one self-contained SVG chart (900x560) of the stages' latency by percentile: latency in
/// µs on a log scale (y) against percentile on HdrHistogram's usual `1/(1-p)` log axis (x, ticks
/// at 0 %, 90 %, 99 %, 99.9 %, ...), one line per non-empty stage, a legend with each stage's
/// sample count, p50, p99 and max, axis labels and a grid.
///
/// `title`'s first line is the heading; any further lines (split on `'\n'`, long ones wrapped)
/// are printed beneath it in smaller type, for notes such as how the figures were measured.
/// Each stage's colour follows its position in `stages`, so pass empty stages too to keep colours
/// stable across charts.
pub fn write_svg(
    stages: &[(&str, &LatencyHist)],
    title: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    let series: Vec<Series> = stages
        .iter()
        .enumerate()
        .filter(|(_, (_, h))| !h.is_empty())
        .map(|(i, (name, h))| {
            let points = percentile_rows(h, TICKS_PER_HALF_DISTANCE)
                .iter()
                .filter(|r| r.level < 100.0)
                .map(|r| (1.0 / (1.0 - r.level / 100.0), r.value as f64 / NS_PER_US))
                .collect();
            Series {
                name,
                color: PALETTE[i % PALETTE.len()],
                points,
                count: h.len(),
                p50_us: h.quantile(0.5) as f64 / NS_PER_US,
                p99_us: h.quantile(0.99) as f64 / NS_PER_US,
                max_us: h.histogram().max() as f64 / NS_PER_US,
            }
        })
        .collect();

    let mut lines = title.lines();
    let heading = lines.next().unwrap_or("");
    let notes: Vec<String> = lines.flat_map(|l| wrap(l, 125)).take(4).collect();

    // Geometry.
    let title_h = 34.0 + 16.0 * notes.len() as f64;
    let left = 78.0;
    let right = 688.0;
    let top = title_h + 16.0;
    let bottom = SVG_H - 56.0;
    let (pw, ph) = (right - left, bottom - top);

    // X: decades of 1/(1-p), at least to 99.999 %, further if the data go further.
    let max_inv = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let decades = (max_inv.log10() - 1e-9).ceil().clamp(5.0, 8.0) as u32;
    let x_of = |inv: f64| left + inv.max(1.0).log10() / f64::from(decades) * pw;

    // Y: whole decades of µs around the data (values of 0 sit on the bottom edge).
    let positive = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|&v| v > 0.0);
    let (lo, hi) = positive.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (mut y_lo, mut y_hi) = if hi > 0.0 {
        (lo.log10().floor() as i32, hi.log10().ceil() as i32)
    } else {
        (-1, 2)
    };
    if y_hi <= y_lo {
        y_hi = y_lo + 1;
    }
    if y_hi - y_lo < 2 {
        // At least two decades, so the curves are not squashed against one edge.
        if (hi.log10() - f64::from(y_lo)) > 0.5 {
            y_hi += 1;
        } else {
            y_lo -= 1;
        }
    }
    let y_span = f64::from(y_hi - y_lo);
    let y_of = |us: f64| {
        if us <= 0.0 {
            bottom
        } else {
            let t = ((us.log10() - f64::from(y_lo)) / y_span).clamp(-0.02, 1.02);
            bottom - t * ph
        }
    };

    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="{SVG_H}" viewBox="0 0 {SVG_W} {SVG_H}" font-family="{FONT}">"#
    );
    let _ = writeln!(s, "<title>{}</title>", xml_escape(heading));
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{SVG_W}" height="{SVG_H}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r#"<defs><clipPath id="plot"><rect x="{left}" y="{top:.1}" width="{pw}" height="{ph:.1}"/></clipPath></defs>"#
    );

    // Title and notes.
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="26" font-size="18" font-weight="bold" fill="#222222">{}</text>"##,
        xml_escape(heading)
    );
    for (i, note) in notes.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="{:.1}" font-size="12.5" fill="#555555">{}</text>"##,
            46.0 + 16.0 * i as f64,
            xml_escape(note)
        );
    }

    // Grid: minor lines at 2..9 x 10^k, major at each decade.
    let _ = writeln!(s, r##"<g stroke="#eeeeee" stroke-width="1">"##);
    for d in y_lo..y_hi {
        for m in 2..10 {
            let y = y_of(f64::from(m) * 10f64.powi(d));
            let _ = writeln!(
                s,
                r#"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}"/>"#
            );
        }
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r##"<g stroke="#cccccc" stroke-width="1">"##);
    for d in y_lo..=y_hi {
        let y = y_of(10f64.powi(d));
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}"/>"#
        );
    }
    for k in 0..=decades {
        let x = x_of(10f64.powi(k as i32));
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}"/>"#
        );
    }
    let _ = writeln!(s, "</g>");

    // Tick labels.
    let _ = writeln!(
        s,
        r##"<g font-size="12" fill="#333333" text-anchor="end">"##
    );
    let label_minor = y_hi - y_lo <= 2;
    for d in y_lo..=y_hi {
        let mut marks = vec![1.0];
        if label_minor && d < y_hi {
            marks.extend([2.0, 5.0]);
        }
        for m in marks {
            let v = m * 10f64.powi(d);
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                left - 7.0,
                y_of(v) + 4.0,
                axis_us(v)
            );
        }
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(
        s,
        r##"<g font-size="12" fill="#333333" text-anchor="middle">"##
    );
    for k in 0..=decades {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x_of(10f64.powi(k as i32)),
            bottom + 18.0,
            percent_tick(k)
        );
    }
    let _ = writeln!(s, "</g>");

    // Axis titles and frame.
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="13" fill="#222222" text-anchor="middle">percentile</text>"##,
        left + pw / 2.0,
        bottom + 40.0
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate(22 {:.1}) rotate(-90)" font-size="13" fill="#222222" text-anchor="middle">latency (µs, log scale)</text>"##,
        top + ph / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top:.1}" width="{pw}" height="{ph:.1}" fill="none" stroke="#888888" stroke-width="1"/>"##
    );

    // Curves.
    let _ = writeln!(
        s,
        r#"<g clip-path="url(#plot)" fill="none" stroke-width="2" stroke-linejoin="round" stroke-linecap="round">"#
    );
    for se in &series {
        let mut pts = String::new();
        for &(inv, us) in &se.points {
            let _ = write!(pts, "{:.1},{:.1} ", x_of(inv), y_of(us));
        }
        let _ = writeln!(
            s,
            r#"<polyline stroke="{}" points="{}"><title>{}</title></polyline>"#,
            se.color,
            pts.trim_end(),
            xml_escape(se.name)
        );
        if let Some(&(inv, us)) = se.points.last() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}" stroke="none"/>"#,
                x_of(inv),
                y_of(us),
                se.color
            );
        }
    }
    let _ = writeln!(s, "</g>");

    // Legend.
    let lx = right + 18.0;
    let entry_h = if series.len() > 7 { 44.0 } else { 50.0 };
    let _ = writeln!(s, r#"<g font-size="12.5">"#);
    for (i, se) in series.iter().enumerate() {
        let y = top + 12.0 + entry_h * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/>"#,
            y - 4.0,
            lx + 22.0,
            y - 4.0,
            se.color
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{y:.1}" fill="#222222" font-weight="bold">{}</text>"##,
            lx + 28.0,
            xml_escape(se.name)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#555555">p50 {} · p99 {}</text>"##,
            lx + 28.0,
            y + 14.0,
            short_us(se.p50_us),
            short_us(se.p99_us)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#555555">max {} · n {}</text>"##,
            lx + 28.0,
            y + 27.0,
            short_us(se.max_us),
            short_count(se.count)
        );
    }
    if !series.is_empty() {
        let y = top + 12.0 + entry_h * series.len() as f64;
        let _ = writeln!(
            s,
            r##"<text x="{lx}" y="{y:.1}" font-size="11" fill="#777777">values in µs</text>"##
        );
    }
    let _ = writeln!(s, "</g>");
    if series.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="16" fill="#777777" text-anchor="middle">no samples</text>"##,
            left + pw / 2.0,
            top + ph / 2.0
        );
    }
    let _ = writeln!(s, "</svg>");
    out.write_all(s.as_bytes())
}

// ------------------------------------------------------------------------------------------------
// HdrHistogram V2 encoding (the layout math of HdrHistogram, for foreign bounds too)
// ------------------------------------------------------------------------------------------------

const V2_COOKIE_BASE: u32 = 0x1c84_9303;
const V2_COMPRESSED_COOKIE_BASE: u32 = 0x1c84_9304;
/// Word size nibble V2 writes (Java and the hdrhistogram crate use 0x10).
const COOKIE_WORD: u32 = 0x10;
const V2_HEADER_SIZE: usize = 40;
/// Largest decompressed histogram accepted (a 1..u64::MAX, 5-digit histogram fits well below).
const MAX_DECOMPRESSED: u64 = 64 << 20;

/// Bucket layout of an HdrHistogram with the given bounds (as the hdrhistogram crate computes it).
#[derive(Clone, Copy, Debug)]
struct Layout {
    unit_magnitude: u32,
    sub_bucket_half_count_magnitude: u32,
    sub_bucket_half_count: u64,
    sub_bucket_mask: u64,
    leading_zero_count_base: u32,
    counts_len: usize,
}

impl Layout {
    fn new(low: u64, high: u64, sigfig: u32) -> Option<Layout> {
        if !(1..=u64::MAX / 2).contains(&low) || high < 2 * low || sigfig > 5 {
            return None;
        }
        let largest = 2 * 10_u32.pow(sigfig);
        let unit_magnitude = (low as f64).log2().floor() as u32;
        let sub_bucket_count_magnitude = f64::from(largest).log2().ceil() as u32;
        if unit_magnitude + sub_bucket_count_magnitude > 63 {
            return None;
        }
        let sub_bucket_half_count_magnitude = sub_bucket_count_magnitude - 1;
        let sub_bucket_count = 1_u64 << sub_bucket_count_magnitude;
        let mut smallest_untrackable = sub_bucket_count << unit_magnitude;
        let mut buckets = 1_u64;
        while smallest_untrackable <= high {
            if smallest_untrackable > u64::MAX / 2 {
                buckets += 1;
                break;
            }
            smallest_untrackable <<= 1;
            buckets += 1;
        }
        let counts_len = usize::try_from((buckets + 1) * (sub_bucket_count / 2)).ok()?;
        Some(Layout {
            unit_magnitude,
            sub_bucket_half_count_magnitude,
            sub_bucket_half_count: sub_bucket_count / 2,
            sub_bucket_mask: (sub_bucket_count - 1) << unit_magnitude,
            leading_zero_count_base: 64 - unit_magnitude - sub_bucket_count_magnitude,
            counts_len,
        })
    }

    fn index_for(&self, value: u64) -> usize {
        let bucket = self.leading_zero_count_base - (value | self.sub_bucket_mask).leading_zeros();
        let sub_bucket = value >> (bucket + self.unit_magnitude);
        let base = (u64::from(bucket) + 1) << self.sub_bucket_half_count_magnitude;
        (base + sub_bucket - self.sub_bucket_half_count) as usize
    }

    /// Lowest value of the bucket at `index`.
    fn value_for(&self, index: usize) -> u64 {
        let index = index as u64;
        let mut bucket = (index >> self.sub_bucket_half_count_magnitude) as i64 - 1;
        let mut sub_bucket =
            (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count;
        if bucket < 0 {
            sub_bucket -= self.sub_bucket_half_count;
            bucket = 0;
        }
        let shift = bucket as u32 + self.unit_magnitude;
        if shift >= 64 || sub_bucket.leading_zeros() < shift {
            u64::MAX
        } else {
            sub_bucket << shift
        }
    }
}

fn zig_zag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn un_zig_zag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// LEB128 with HdrHistogram's 9-byte cap (the ninth byte carries 8 bits).
fn varint_write(mut v: u64, out: &mut Vec<u8>) {
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_read(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0_u64;
    for i in 0..8 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    let b = *buf.get(*pos)?;
    *pos += 1;
    Some(v | (u64::from(b) << 56))
}

/// `h` in HdrHistogram's V2 encoding (uncompressed): the 40-byte header, then the counts up to
/// the maximum's bucket as zig-zag LEB128 numbers, runs of zero counts as one negative number.
fn encode_v2(h: &LatencyHist) -> Vec<u8> {
    let hist = h.histogram();
    let (low, high, sigfig) = (hist.low(), hist.high(), hist.sigfig());
    let mut out = Vec::with_capacity(V2_HEADER_SIZE + 64);
    out.extend_from_slice(&(V2_COOKIE_BASE | COOKIE_WORD).to_be_bytes());
    out.extend_from_slice(&0_u32.to_be_bytes()); // payload length, set below
    out.extend_from_slice(&0_u32.to_be_bytes()); // normalizing index offset
    out.extend_from_slice(&u32::from(sigfig).to_be_bytes());
    out.extend_from_slice(&low.to_be_bytes());
    out.extend_from_slice(&high.to_be_bytes());
    out.extend_from_slice(&1.0_f64.to_be_bytes()); // integer to double conversion ratio
    let layout = Layout::new(low, high, u32::from(sigfig));
    let limit = layout.map_or(0, |l| l.index_for(hist.max()));
    let mut next = 0_usize;
    let zeros = |n: usize, out: &mut Vec<u8>| match n {
        0 => {}
        1 => varint_write(zig_zag(0), out),
        n => varint_write(zig_zag(-(n.min(i64::MAX as usize) as i64)), out),
    };
    if let Some(layout) = layout {
        for v in hist.iter_recorded() {
            let idx = layout.index_for(v.value_iterated_to());
            if idx > limit || idx < next {
                break;
            }
            zeros(idx - next, &mut out);
            let count = v.count_at_value().min(i64::MAX as u64) as i64;
            varint_write(zig_zag(count), &mut out);
            next = idx + 1;
        }
    }
    zeros((limit + 1).saturating_sub(next), &mut out);
    let payload_len = (out.len() - V2_HEADER_SIZE) as u32;
    out[4..8].copy_from_slice(&payload_len.to_be_bytes());
    out
}

/// `h` V2-encoded and DEFLATE-compressed, as the interval log stores it (before base64).
fn encode_v2_compressed(h: &LatencyHist) -> Vec<u8> {
    let raw = encode_v2(h);
    let mut out = Vec::with_capacity(raw.len() / 2 + 16);
    out.extend_from_slice(&(V2_COMPRESSED_COOKIE_BASE | COOKIE_WORD).to_be_bytes());
    out.extend_from_slice(&0_u32.to_be_bytes());
    let mut z = ZlibEncoder::new(out, Compression::best());
    // Writes into a Vec cannot fail.
    let _ = z.write_all(&raw);
    let mut out = z.finish().unwrap_or_default();
    let len = (out.len().saturating_sub(8)) as u32;
    if out.len() >= 8 {
        out[4..8].copy_from_slice(&len.to_be_bytes());
    }
    out
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes a V2 histogram (compressed or not) into (lowest value of bucket, count) pairs.
fn decode_v2(bytes: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let cookie = be_u32(bytes, 0).ok_or("shorter than a cookie")?;
    match cookie & !0xf0 {
        V2_COMPRESSED_COOKIE_BASE => {
            let len = be_u32(bytes, 4).ok_or("truncated compressed header")? as usize;
            let body = bytes
                .get(8..8_usize.saturating_add(len))
                .ok_or("compressed payload shorter than its length field")?;
            let mut raw = Vec::new();
            ZlibDecoder::new(body)
                .take(MAX_DECOMPRESSED + 1)
                .read_to_end(&mut raw)
                .map_err(|e| format!("DEFLATE: {e}"))?;
            if raw.len() as u64 > MAX_DECOMPRESSED {
                return Err("decompressed histogram too large".into());
            }
            match be_u32(&raw, 0) {
                Some(c) if c & !0xf0 == V2_COOKIE_BASE => decode_v2_raw(&raw),
                _ => Err("compressed payload is not a V2 histogram".into()),
            }
        }
        V2_COOKIE_BASE => decode_v2_raw(bytes),
        _ => Err(format!(
            "cookie {cookie:#010x} is not a V2 histogram (V0/V1 and DoubleHistogram encodings are not supported)"
        )),
    }
}

fn decode_v2_raw(b: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    if b.len() < V2_HEADER_SIZE {
        return Err("truncated V2 header".into());
    }
    let field = |at| be_u32(b, at).unwrap_or(0);
    let payload_len = field(4) as usize;
    let normalizing_offset = field(8);
    let sigfig = field(12);
    let low = be_u64(b, 16).unwrap_or(0);
    let high = be_u64(b, 24).unwrap_or(0);
    let ratio = f64::from_bits(be_u64(b, 32).unwrap_or(0));
    if normalizing_offset != 0 {
        return Err("normalizing index offset is not supported".into());
    }
    if ratio != 1.0 {
        return Err(
            "integer-to-double ratio other than 1 (a DoubleHistogram) is not supported".into(),
        );
    }
    let layout = Layout::new(low, high, sigfig)
        .ok_or_else(|| format!("invalid bounds: low {low}, high {high}, {sigfig} digits"))?;
    let payload = b
        .get(V2_HEADER_SIZE..V2_HEADER_SIZE.saturating_add(payload_len))
        .ok_or("payload shorter than its length field")?;
    let mut pos = 0;
    let mut index = 0_usize;
    let mut counts = Vec::new();
    while pos < payload.len() {
        let n = un_zig_zag(varint_read(payload, &mut pos).ok_or("truncated count")?);
        if n < 0 {
            index = index.saturating_add(n.unsigned_abs() as usize);
        } else {
            if n > 0 {
                if index >= layout.counts_len {
                    return Err("counts beyond the histogram's range".into());
                }
                counts.push((layout.value_for(index), n as u64));
            }
            index = index.saturating_add(1);
        }
    }
    Ok(counts)
}

/// Builds a histogram holding exactly `counts` (value, count) samples.
///
/// Workaround until `LatencyHist` can take counts directly: `LatencyHist` records one sample at a
/// time, so the counts are built bit by bit (double the histogram with `merge`, then record the
/// values whose count has the next bit set), which costs at most 64 merges, not `count` records.
fn hist_from_counts(counts: &BTreeMap<u64, u64>) -> LatencyHist {
    let mut acc = LatencyHist::new();
    let max = counts.values().copied().max().unwrap_or(0);
    let bits = 64 - max.leading_zeros();
    for bit in (0..bits).rev() {
        if !acc.is_empty() {
            let copy = acc.clone();
            acc.merge(&copy);
        }
        for (&value, &count) in counts {
            if (count >> bit) & 1 == 1 {
                acc.record(value);
            }
        }
    }
    acc
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        s.push(B64[(n >> 18) as usize & 63] as char);
        s.push(B64[(n >> 12) as usize & 63] as char);
        s.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s
        .strip_suffix("==")
        .or_else(|| s.strip_suffix('='))
        .unwrap_or(s);
    if body.len() % 4 == 1 || (body.len() != s.len() && !s.len().is_multiple_of(4)) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0_u32, 0_u32);
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// ------------------------------------------------------------------------------------------------
// Interval log (.hlog)
// ------------------------------------------------------------------------------------------------

/// A tag as the log format allows it (no ',', ' ', '\r', '\n').
fn clean_tag(name: &str) -> String {
    let t: String = name
        .chars()
        .map(|c| match c {
            ',' | ' ' | '\r' | '\n' | '\t' => '_',
            c => c,
        })
        .collect();
    if t.is_empty() {
        "untagged".into()
    } else {
        t
    }
}

/// Writes the stages' histograms as an HdrHistogram interval log (format 1.3, as Java's
/// `HistogramLogWriter` writes it): comment lines (the note as `#[Note: ...]`), the format
/// version, `#[StartTime: ...]` (now), the legend, then one interval line per stage,
/// `Tag=<stage>,0.000,0.000,<max in ms>,<V2 compressed histogram, base64>`. Values are in ns;
/// empty stages are written too (an empty histogram).
pub fn write_hlog(
    stages: &[(&str, &LatencyHist)],
    note: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#[Tickline latency histograms: one interval per stage, values in ns, Interval_Max in ms]"
    );
    for line in note.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(s, "#[Note: {}]", line.replace('\r', ""));
    }
    let _ = writeln!(s, "#[Histogram log format version 1.3]");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let _ = writeln!(
        s,
        "#[StartTime: {} (seconds since epoch)]",
        fmt_fixed(now, 3)
    );
    let _ = writeln!(
        s,
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    );
    for (name, h) in stages {
        let _ = writeln!(
            s,
            "Tag={},0.000,0.000,{},{}",
            clean_tag(name),
            fmt_fixed(h.histogram().max() as f64 / 1e6, 3),
            base64_encode(&encode_v2_compressed(h))
        );
    }
    out.write_all(s.as_bytes())
}

/// A parsed interval log.
struct Hlog {
    notes: Vec<String>,
    hists: Vec<(String, LatencyHist)>,
}

fn parse_hlog(text: &str) -> Result<Hlog, ReportError> {
    let mut notes = Vec::new();
    // Tag -> merged counts, in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut merged: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(n) = comment.strip_prefix("[Note: ") {
                notes.push(n.strip_suffix(']').unwrap_or(n).to_string());
            }
            continue;
        }
        if line.starts_with("\"StartTimestamp\"") {
            continue;
        }
        let syntax = |reason: &str| ReportError::Syntax {
            line: line_no,
            reason: reason.to_string(),
        };
        let (tag, rest) = match line.strip_prefix("Tag=") {
            Some(r) => {
                let (t, rest) = r
                    .split_once(',')
                    .ok_or_else(|| syntax("tag without fields"))?;
                (t.to_string(), rest)
            }
            None => ("untagged".to_string(), line),
        };
        let fields: Vec<&str> = rest.splitn(4, ',').collect();
        if fields.len() != 4 {
            return Err(syntax("expected [Tag=t,]start,length,max,histogram"));
        }
        for (name, f) in ["start timestamp", "interval length", "interval max"]
            .iter()
            .zip(&fields[..3])
        {
            if f.trim().parse::<f64>().is_err() {
                return Err(syntax(&format!("{name} {f:?} is not a number")));
            }
        }
        let bad = |reason: String| ReportError::Histogram {
            line: line_no,
            reason,
        };
        let bytes = base64_decode(fields[3].trim()).ok_or_else(|| bad("invalid base64".into()))?;
        let counts = decode_v2(&bytes).map_err(bad)?;
        if !merged.contains_key(&tag) {
            order.push(tag.clone());
        }
        let entry = merged.entry(tag).or_default();
        for (value, count) in counts {
            let c = entry.entry(value).or_insert(0);
            *c = c.saturating_add(count);
        }
    }
    if order.is_empty() {
        return Err(ReportError::Empty);
    }
    let hists = order
        .into_iter()
        .map(|tag| {
            let h = merged.get(&tag).map(hist_from_counts).unwrap_or_default();
            (tag, h)
        })
        .collect();
    Ok(Hlog { notes, hists })
}

fn read_hlog_file(path: &Path) -> Result<Hlog, ReportError> {
    let bytes = fs::read(path).map_err(io_at(path))?;
    let text = String::from_utf8(bytes).map_err(|e| ReportError::Syntax {
        line: 0,
        reason: format!("not UTF-8 text ({e})"),
    })?;
    parse_hlog(&text)
}

/// Reads an interval log (as [`write_report_dir`] writes it, or any HdrHistogram V2 interval log
/// with values in ns) into one histogram per tag, in order of first appearance. Intervals with the
/// same tag are added together; untagged intervals go under `"untagged"`. Values beyond the
/// engine's bounds are clamped to them.
pub fn read_hlog(path: &Path) -> Result<Vec<(String, LatencyHist)>, ReportError> {
    Ok(read_hlog_file(path)?.hists)
}

/// A file name for a tag: letters, digits, '_', '-' and '.' kept, anything else as '_'.
fn file_stem(tag: &str) -> String {
    let s: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("tag_{s}")
    } else {
        s
    }
}

/// Writes `<stage>.hgrm` for every non-empty stage and the chart; returns the paths.
fn write_hgrms_and_svg(
    dir: &Path,
    stages: &[(&str, &LatencyHist)],
    title: &str,
) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut used = std::collections::HashSet::new();
    for (name, h) in stages {
        if h.is_empty() {
            continue;
        }
        let stem = file_stem(name);
        let mut file = format!("{stem}.hgrm");
        let mut n = 2;
        while !used.insert(file.clone()) {
            file = format!("{stem}_{n}.hgrm");
            n += 1;
        }
        let path = dir.join(file);
        write_file(&path, |w| write_hgrm(h, w, NS_PER_US))?;
        written.push(path);
    }
    let svg = dir.join(SVG_FILE);
    write_file(&svg, |w| write_svg(stages, title, w))?;
    written.push(svg);
    Ok(written)
}

fn write_file(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut w = BufWriter::new(fs::File::create(path).map_err(with_path(path))?);
    body(&mut w).map_err(with_path(path))?;
    w.flush().map_err(with_path(path))
}

fn chart_title(notes: &[String]) -> String {
    let mut title = CHART_TITLE.to_string();
    for n in notes {
        title.push('\n');
        title.push_str(n);
    }
    title
}

/// Writes a latency report into `dir` (created if missing): `<stage>.hgrm` for every stage with
/// samples (values in µs), `latency.svg` with every stage on one chart and `note` under the
/// title (e.g. "paced x10; figures measured from the intended send time (coordinated-omission
/// corrected)"), and `latency.hlog` with every stage's full histogram (values in ns). Returns the
/// paths written: the `.hgrm` files in [`Stage::ALL`] order, the chart, then the log.
pub fn write_report_dir(
    dir: &Path,
    latency: &StageLatency,
    note: &str,
) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(with_path(dir))?;
    let stages: Vec<(&str, &LatencyHist)> = Stage::ALL
        .iter()
        .map(|&st| (st.name(), latency.get(st)))
        .collect();
    let notes: Vec<String> = note
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let mut written = write_hgrms_and_svg(dir, &stages, &chart_title(&notes))?;
    let hlog = dir.join(HLOG_FILE);
    write_file(&hlog, |w| write_hlog(&stages, note, w))?;
    written.push(hlog);
    Ok(written)
}

/// Regenerates a report from an interval log (`tickline report FILE`): writes `<tag>.hgrm` for
/// every tag with samples and `latency.svg` (with the log's notes under the title) into
/// `out_dir`, created if missing. Returns the paths written.
pub fn report_from_hlog(path: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let log = read_hlog_file(path)?;
    fs::create_dir_all(out_dir).map_err(io_at(out_dir))?;
    let stages: Vec<(&str, &LatencyHist)> =
        log.hists.iter().map(|(t, h)| (t.as_str(), h)).collect();
    let mut notes = log.notes.clone();
    notes.push(format!(
        "from {}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    ));
    write_hgrms_and_svg(out_dir, &stages, &chart_title(&notes)).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_style_rounding() {
        assert_eq!(fmt_fixed(0.0625, 3), "0.063");
        assert_eq!(fmt_fixed(1.0005, 3), "1.001");
        assert_eq!(fmt_fixed(2.5, 0), "3");
        assert_eq!(fmt_fixed(0.0, 3), "0.000");
        assert_eq!(fmt_fixed(0.3, 12), "0.300000000000");
        assert_eq!(fmt_fixed(9.9996, 3), "10.000");
        assert_eq!(fmt_fixed(999.9999, 2), "1000.00");
        assert_eq!(fmt_fixed(0.0004, 3), "0.000");
        assert_eq!(fmt_fixed(0.0005, 3), "0.001");
        assert_eq!(fmt_fixed(0.00049, 2), "0.00");
        assert_eq!(fmt_fixed(1e-20, 3), "0.000");
        assert_eq!(fmt_fixed(123456789.0, 0), "123456789");
        assert_eq!(fmt_fixed(1.0 / (1.0 - 0.55), 2), "2.22");
        assert_eq!(fmt_fixed(1.5e20, 1), "150000000000000000000.0");
        assert_eq!(fmt_fixed(-1.25, 1), "-1.3");
        assert_eq!(fmt_fixed(f64::INFINITY, 2), "Infinity");
        assert_eq!(fmt_fixed(10.007, 3), "10.007");
        assert_eq!(fmt_fixed(0.001, 3), "0.001");
    }

    #[test]
    fn layout_matches_the_crate() {
        let mut h = LatencyHist::new();
        for v in [
            0,
            1,
            2,
            1000,
            2047,
            2048,
            2049,
            4095,
            4096,
            123_456,
            9_999_999,
            u64::MAX,
        ] {
            h.record(v);
        }
        let hist = h.histogram();
        let l = Layout::new(hist.low(), hist.high(), u32::from(hist.sigfig())).unwrap();
        assert_eq!(l.counts_len, hist.distinct_values());
        for (i, v) in hist.iter_all().enumerate().take(l.counts_len) {
            let lowest = l.value_for(i);
            assert_eq!(hist.lowest_equivalent(lowest), lowest, "index {i}");
            assert_eq!(
                hist.highest_equivalent(lowest),
                v.value_iterated_to(),
                "index {i}"
            );
            assert_eq!(l.index_for(v.value_iterated_to()), i);
            assert_eq!(l.index_for(lowest), i);
        }
    }

    #[test]
    fn varint_and_zigzag_round_trip() {
        for n in [
            0_i64,
            1,
            -1,
            63,
            -64,
            64,
            1 << 20,
            -(1 << 40),
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            varint_write(zig_zag(n), &mut buf);
            assert!(buf.len() <= 9);
            let mut pos = 0;
            assert_eq!(un_zig_zag(varint_read(&buf, &mut pos).unwrap()), n);
            assert_eq!(pos, buf.len());
        }
        let mut buf = Vec::new();
        varint_write(u64::MAX, &mut buf);
        assert_eq!(buf.len(), 9);
    }

    #[test]
    fn base64_round_trip() {
        for len in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let s = base64_encode(&bytes);
            assert_eq!(s.len() % 4, 0);
            assert_eq!(base64_decode(&s).unwrap(), bytes);
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert!(base64_decode("TW!u").is_none());
        assert!(base64_decode("TWFuT").is_none());
    }

    #[test]
    fn counts_rebuild_exactly() {
        let mut counts = BTreeMap::new();
        counts.insert(5, 1);
        counts.insert(1000, 1_000_003);
        counts.insert(77_000, 6);
        let h = hist_from_counts(&counts);
        assert_eq!(h.len(), 1_000_010);
        assert_eq!(h.histogram().count_at(5), 1);
        assert_eq!(h.histogram().count_at(1000), 1_000_003);
        assert_eq!(h.histogram().count_at(77_000), 6);
    }

    #[test]
    fn empty_histogram_encodes_one_zero_count() {
        let v2 = encode_v2(&LatencyHist::new());
        assert_eq!(v2.len(), V2_HEADER_SIZE + 1);
        assert_eq!(decode_v2(&v2).unwrap(), vec![]);
        let z = encode_v2_compressed(&LatencyHist::new());
        assert!(base64_encode(&z).starts_with("HISTFAAA"));
    }
}
