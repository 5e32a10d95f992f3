//! Latency reports: `.hgrm` files byte-identical to HdrHistogram Java's, a well-formed SVG chart,
//! and an interval log that reads back exactly (and reads logs Java writes).

use engine::latency::{LatencyHist, Stage, StageLatency};
use std::fs;
use std::path::{Path, PathBuf};
use tools::report::{
    read_hlog, report_from_hlog, write_hgrm, write_report_dir, write_svg, ReportError, NS_PER_US,
};

/// HdrHistogram Java 2.1.11: `new Histogram(1, 60_000_000_000L, 3)`, values 1..=10000 recorded,
/// then `outputPercentileDistribution(System.out, 5, 1000.0)`.
const JAVA_UNIFORM_HGRM: &str = r#"       Value     Percentile TotalCount 1/(1-Percentile)

       0.001 0.000000000000          1           1.00
       1.000 0.100000000000       1000           1.11
       2.000 0.200000000000       2000           1.25
       3.001 0.300000000000       3001           1.43
       4.001 0.400000000000       4001           1.67
       5.003 0.500000000000       5003           2.00
       5.503 0.550000000000       5503           2.22
       6.003 0.600000000000       6003           2.50
       6.503 0.650000000000       6503           2.86
       7.003 0.700000000000       7003           3.33
       7.503 0.750000000000       7503           4.00
       7.751 0.775000000000       7751           4.44
       8.003 0.800000000000       8003           5.00
       8.255 0.825000000000       8255           5.71
       8.503 0.850000000000       8503           6.67
       8.751 0.875000000000       8751           8.00
       8.879 0.887500000000       8879           8.89
       9.007 0.900000000000       9007          10.00
       9.127 0.912500000000       9127          11.43
       9.255 0.925000000000       9255          13.33
       9.375 0.937500000000       9375          16.00
       9.439 0.943750000000       9439          17.78
       9.503 0.950000000000       9503          20.00
       9.567 0.956250000000       9567          22.86
       9.631 0.962500000000       9631          26.67
       9.695 0.968750000000       9695          32.00
       9.719 0.971875000000       9719          35.56
       9.751 0.975000000000       9751          40.00
       9.783 0.978125000000       9783          45.71
       9.815 0.981250000000       9815          53.33
       9.847 0.984375000000       9847          64.00
       9.863 0.985937500000       9863          71.11
       9.879 0.987500000000       9879          80.00
       9.895 0.989062500000       9895          91.43
       9.911 0.990625000000       9911         106.67
       9.927 0.992187500000       9927         128.00
       9.935 0.992968750000       9935         142.22
       9.943 0.993750000000       9943         160.00
       9.951 0.994531250000       9951         182.86
       9.959 0.995312500000       9959         213.33
       9.967 0.996093750000       9967         256.00
       9.967 0.996484375000       9967         284.44
       9.975 0.996875000000       9975         320.00
       9.975 0.997265625000       9975         365.71
       9.983 0.997656250000       9983         426.67
       9.983 0.998046875000       9983         512.00
       9.983 0.998242187500       9983         568.89
       9.991 0.998437500000       9991         640.00
       9.991 0.998632812500       9991         731.43
       9.991 0.998828125000       9991         853.33
       9.991 0.999023437500       9991        1024.00
       9.999 0.999121093750       9999        1137.78
       9.999 0.999218750000       9999        1280.00
       9.999 0.999316406250       9999        1462.86
       9.999 0.999414062500       9999        1706.67
       9.999 0.999511718750       9999        2048.00
       9.999 0.999560546875       9999        2275.56
       9.999 0.999609375000       9999        2560.00
       9.999 0.999658203125       9999        2925.71
       9.999 0.999707031250       9999        3413.33
       9.999 0.999755859375       9999        4096.00
       9.999 0.999780273438       9999        4551.11
       9.999 0.999804687500       9999        5120.00
       9.999 0.999829101563       9999        5851.43
       9.999 0.999853515625       9999        6826.67
       9.999 0.999877929688       9999        8192.00
       9.999 0.999890136719       9999        9102.22
      10.007 0.999902343750      10000       10240.00
      10.007 1.000000000000      10000
#[Mean    =        5.001, StdDeviation   =        2.887]
#[Max     =       10.007, Total count    =        10000]
#[Buckets =           26, SubBuckets     =         2048]
"#;

/// The same, for an empty histogram.
const JAVA_EMPTY_HGRM: &str = r#"       Value     Percentile TotalCount 1/(1-Percentile)

#[Mean    =        0.000, StdDeviation   =        0.000]
#[Max     =        0.000, Total count    =            0]
#[Buckets =           26, SubBuckets     =         2048]
"#;

/// HdrHistogram Java 2.1.11's `HistogramLogWriter`: two intervals tagged "uniform", values
/// 1..=5000 and 5001..=10000 (together the distribution of `JAVA_UNIFORM_HGRM`).
const JAVA_UNIFORM_HLOG: &str = r#"#[Logged by HdrHistogram Java 2.1.11]
#[Histogram log format version 1.3]
#[StartTime: 1700000000.000 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]
"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
Tag=uniform,1700000000.000,1.000,0.005,HISTFAAAADx42pNpmSzMwMDzmAECmKE0IxDz/nCPYLD/ABVhGgWjYBSMglEwCkbBSAMso2AUjIIRCziGPWACABA0LB0=
Tag=uniform,1700000001.000,1.000,0.010,HISTFAAAAC942pNpmSzMwMDCzAABMJoRiHl/uEcw2H+ACBw2ZuMYBaNgFGAHAsMeMAEAHrgsKw==
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("report-tests")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn uniform() -> LatencyHist {
    let mut h = LatencyHist::new();
    for v in 1..=10_000 {
        h.record(v);
    }
    h
}

fn hgrm(h: &LatencyHist) -> String {
    let mut out = Vec::new();
    write_hgrm(h, &mut out, NS_PER_US).unwrap();
    String::from_utf8(out).unwrap()
}

/// Deterministic skewed samples: a body around `median` ns and a tail `every` samples.
fn skewed(h: &mut LatencyHist, n: u64, median: u64, every: u64, seed: u64) {
    let mut x = seed;
    for i in 0..n {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let jitter = (x >> 40) % median.max(1);
        let v = median / 2 + jitter;
        h.record(if i % every == 0 { v * 97 } else { v });
    }
}

fn sample_latency() -> StageLatency {
    let mut lat = StageLatency::new();
    let mut h = LatencyHist::new();
    skewed(&mut h, 20_000, 160, 500, 1);
    lat.record_hist(Stage::Decode, &h);
    let mut h = LatencyHist::new();
    skewed(&mut h, 20_000, 600, 50, 2);
    h.record(0); // a zero and a clamped sample survive the round trip too
    h.record(u64::MAX);
    lat.record_hist(Stage::QueueWait, &h);
    let mut h = LatencyHist::new();
    skewed(&mut h, 3_000, 45, 1000, 3);
    lat.record_hist(Stage::Strategy, &h);
    lat
}

const NOTE: &str =
    "paced x10; figures measured from the intended send time (coordinated-omission corrected)";

/// Checks that `s` is well-formed XML (one root, balanced tags, quoted attributes, valid entity
/// references, no stray markup characters) and returns its element names in document order.
fn xml_elements(s: &str) -> Result<Vec<String>, String> {
    fn entity_ok(rest: &str) -> bool {
        let Some(end) = rest.find(';') else {
            return false;
        };
        let name = &rest[1..end];
        matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
            || name
                .strip_prefix("#x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || name
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
    }
    fn check_chars(text: &str, in_attr: bool) -> Result<(), String> {
        for (i, c) in text.char_indices() {
            match c {
                '<' => return Err(format!("raw '<' in {text:?}")),
                '&' if !entity_ok(&text[i..]) => return Err(format!("bad entity in {text:?}")),
                '"' if in_attr => return Err(format!("raw quote in {text:?}")),
                c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                    return Err(format!("control character in {text:?}"))
                }
                _ => {}
            }
        }
        Ok(())
    }
    fn name_len(s: &str) -> usize {
        s.char_indices()
            .find(|&(i, c)| {
                !(c.is_alphanumeric() || c == '_' || c == ':' || (i > 0 && (c == '-' || c == '.')))
            })
            .map_or(s.len(), |(i, _)| i)
    }
    let mut rest = s;
    if let Some(r) = rest.strip_prefix("<?xml") {
        rest = &r[r.find("?>").ok_or("unterminated declaration")? + 2..];
    }
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut roots = 0;
    loop {
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..lt];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        check_chars(text, false)?;
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
        } else if let Some(r) = rest.strip_prefix("</") {
            let n = name_len(r);
            let name = &r[..n];
            let r = r[n..].trim_start();
            rest = r.strip_prefix('>').ok_or("bad end tag")?;
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let r = &rest[1..];
            let n = name_len(r);
            if n == 0 {
                return Err(format!("bad tag at {:?}", &rest[..rest.len().min(30)]));
            }
            let name = r[..n].to_string();
            if stack.is_empty() {
                roots += 1;
            }
            names.push(name.clone());
            let mut r = &r[n..];
            let mut attrs = Vec::new();
            loop {
                let trimmed = r.trim_start();
                let had_space = trimmed.len() < r.len();
                r = trimmed;
                if let Some(after) = r.strip_prefix("/>") {
                    r = after;
                    break;
                }
                if let Some(after) = r.strip_prefix('>') {
                    r = after;
                    stack.push(name.clone());
                    break;
                }
                if !had_space {
                    return Err(format!("attributes of <{name}> not separated"));
                }
                let an = name_len(r);
                if an == 0 {
                    return Err(format!("bad attribute in <{name}>"));
                }
                let attr = &r[..an];
                if attrs.contains(&attr) {
                    return Err(format!("duplicate attribute {attr} in <{name}>"));
                }
                attrs.push(attr);
                r = r[an..].trim_start();
                r = r
                    .strip_prefix('=')
                    .ok_or("attribute without '='")?
                    .trim_start();
                let q = r.chars().next().ok_or("unterminated tag")?;
                if q != '"' && q != '\'' {
                    return Err(format!("unquoted attribute {attr}"));
                }
                let end = r[1..].find(q).ok_or("unterminated attribute")?;
                check_chars(&r[1..1 + end], false)?;
                r = &r[end + 2..];
            }
            rest = r;
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(names)
}

fn polylines(svg: &str) -> usize {
    xml_elements(svg)
        .unwrap_or_else(|e| panic!("SVG is not well-formed: {e}"))
        .iter()
        .filter(|n| *n == "polyline")
        .count()
}

#[test]
fn the_xml_check_rejects_malformed_documents() {
    assert!(xml_elements("<a><b/></a>").is_ok());
    for bad in [
        "<a><b></a>",
        "<a>",
        "<a/><b/>",
        "<a x=1/>",
        "<a x=\"1\" x=\"2\"/>",
        "<a>1 < 2</a>",
        "<a>AT&T</a>",
        "text<a/>",
    ] {
        assert!(xml_elements(bad).is_err(), "{bad}");
    }
}

#[test]
fn hgrm_of_uniform_1_to_10000_is_byte_identical_to_hdrhistogram_java() {
    let text = hgrm(&uniform());
    assert_eq!(text, JAVA_UNIFORM_HGRM);

    // And its shape, spelled out.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "       Value     Percentile TotalCount 1/(1-Percentile)"
    );
    assert_eq!(lines[1], "");
    let rows: Vec<Vec<&str>> = lines[2..]
        .iter()
        .take_while(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.len() > 50, "{} rows", rows.len());
    let mut last_p = -1.0;
    let mut last_v = 0.0;
    for r in &rows {
        let v: f64 = r[0].parse().unwrap();
        let p: f64 = r[1].parse().unwrap();
        assert!(p >= last_p && v >= last_v, "not monotonic at {r:?}");
        (last_p, last_v) = (p, v);
    }
    // Values are in µs: 1 ns is 0.001, 10000 ns is in the bucket ending at 10007 ns.
    assert_eq!(rows[0], ["0.001", "0.000000000000", "1", "1.00"]);
    let last = rows.last().unwrap();
    assert_eq!(last, &["10.007", "1.000000000000", "10000"]);
    assert!(rows[..rows.len() - 1].iter().all(|r| r.len() == 4));
    let footer = &lines[2 + rows.len()..];
    assert_eq!(
        footer,
        [
            "#[Mean    =        5.001, StdDeviation   =        2.887]",
            "#[Max     =       10.007, Total count    =        10000]",
            "#[Buckets =           26, SubBuckets     =         2048]",
        ]
    );
}

#[test]
fn hgrm_of_an_empty_histogram_has_zero_counts() {
    assert_eq!(hgrm(&LatencyHist::new()), JAVA_EMPTY_HGRM);
}

#[test]
fn hgrm_scale_is_the_callers() {
    let mut h = LatencyHist::new();
    h.record(1234);
    let mut out = Vec::new();
    write_hgrm(&h, &mut out, 1.0).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("    1234.000 1.000000000000          1\n"),
        "{text}"
    );
    assert!(write_hgrm(&h, &mut Vec::new(), 0.0).is_err());
}

#[test]
fn svg_is_well_formed_with_one_polyline_per_non_empty_stage() {
    let lat = sample_latency();
    let stages: Vec<(&str, &LatencyHist)> =
        Stage::ALL.iter().map(|&s| (s.name(), lat.get(s))).collect();
    let non_empty = stages.iter().filter(|(_, h)| !h.is_empty()).count();
    assert_eq!(non_empty, 3);
    let mut out = Vec::new();
    write_svg(
        &stages,
        "Latency <by> \"stage\" & percentile\nnote: a < b & c",
        &mut out,
    )
    .unwrap();
    let svg = String::from_utf8(out).unwrap();
    assert_eq!(polylines(&svg), non_empty);
    assert!(svg.contains(r#"width="900" height="560""#));
    assert!(svg.contains("Latency &lt;by&gt; &quot;stage&quot; &amp; percentile"));
    assert!(svg.contains("note: a &lt; b &amp; c"));
    for (name, h) in &stages {
        assert_eq!(
            svg.contains(&format!(">{name}</text>")),
            !h.is_empty(),
            "{name}"
        );
    }
    for tick in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"] {
        assert!(svg.contains(&format!(">{tick}</text>")), "tick {tick}");
    }
    assert!(svg.contains("latency (µs, log scale)") && svg.contains(">percentile</text>"));
}

#[test]
fn svg_without_samples_is_still_a_chart() {
    let empty = LatencyHist::new();
    let mut out = Vec::new();
    write_svg(&[("decode", &empty)], "nothing", &mut out).unwrap();
    let svg = String::from_utf8(out).unwrap();
    assert_eq!(polylines(&svg), 0);
    assert!(svg.contains("no samples"));
    let mut out = Vec::new();
    write_svg(&[], "", &mut out).unwrap();
    assert_eq!(polylines(&String::from_utf8(out).unwrap()), 0);
}

#[test]
fn report_dir_holds_hgrm_per_non_empty_stage_the_chart_and_the_log() {
    let dir = scratch("report-dir").join("nested");
    let lat = sample_latency();
    let written = write_report_dir(&dir, &lat, NOTE).unwrap();
    let mut expected: Vec<PathBuf> = Stage::ALL
        .iter()
        .filter(|&&s| !lat.get(s).is_empty())
        .map(|s| dir.join(format!("{}.hgrm", s.name())))
        .collect();
    expected.push(dir.join("latency.svg"));
    expected.push(dir.join("latency.hlog"));
    assert_eq!(written, expected);
    for p in &written {
        assert!(p.is_file(), "{}", p.display());
    }
    for s in Stage::ALL {
        let p = dir.join(format!("{}.hgrm", s.name()));
        if lat.get(s).is_empty() {
            assert!(!p.exists(), "{}", p.display());
        } else {
            assert_eq!(fs::read_to_string(&p).unwrap(), hgrm(lat.get(s)));
        }
    }
    let svg = fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert_eq!(polylines(&svg), 3);
    assert!(svg.contains("coordinated-omission corrected"));

    let log = fs::read_to_string(dir.join("latency.hlog")).unwrap();
    assert!(log.contains("#[Histogram log format version 1.3]\n"));
    assert!(log.contains(&format!("#[Note: {NOTE}]\n")));
    assert!(log.contains(
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
    ));
    let intervals: Vec<&str> = log.lines().filter(|l| l.starts_with("Tag=")).collect();
    assert_eq!(intervals.len(), Stage::ALL.len());
    for (line, s) in intervals.iter().zip(Stage::ALL) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert_eq!(fields[0], format!("Tag={}", s.name()));
        // V2 + DEFLATE, base64: the cookie 0x1c849314 encodes as "HISTFAAA".
        assert!(fields[4].starts_with("HISTFAAA"), "{line}");
    }
}

#[test]
fn hlog_round_trip_preserves_counts_and_percentiles_exactly() {
    let dir = scratch("round-trip");
    let lat = sample_latency();
    write_report_dir(&dir, &lat, NOTE).unwrap();
    let back = read_hlog(&dir.join("latency.hlog")).unwrap();
    let names: Vec<&str> = back.iter().map(|(t, _)| t.as_str()).collect();
    let want: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, want);
    for ((_, got), s) in back.iter().zip(Stage::ALL) {
        let orig = lat.get(s);
        assert_eq!(got.len(), orig.len(), "{}", s.name());
        let pairs = |h: &LatencyHist| -> Vec<(u64, u64)> {
            h.histogram()
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        assert_eq!(pairs(got), pairs(orig), "{}", s.name());
        assert_eq!(got.percentiles(), orig.percentiles(), "{}", s.name());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(got.quantile(q), orig.quantile(q), "{} q={q}", s.name());
        }
        assert_eq!(got.histogram().min(), orig.histogram().min());
        assert_eq!(hgrm(got), hgrm(orig), "{}", s.name());
    }
}

#[test]
fn a_log_written_by_hdrhistogram_java_reads_back_to_javas_distribution() {
    let dir = scratch("java-log");
    let path = dir.join("uniform.hlog");
    fs::write(&path, JAVA_UNIFORM_HLOG).unwrap();
    let hists = read_hlog(&path).unwrap();
    assert_eq!(
        hists.len(),
        1,
        "two intervals with one tag are added together"
    );
    assert_eq!(hists[0].0, "uniform");
    assert_eq!(hgrm(&hists[0].1), JAVA_UNIFORM_HGRM);
    let out = dir.join("report");
    let written = report_from_hlog(&path, &out).unwrap();
    assert_eq!(written, [out.join("uniform.hgrm"), out.join("latency.svg")]);
    assert_eq!(
        fs::read_to_string(out.join("uniform.hgrm")).unwrap(),
        JAVA_UNIFORM_HGRM
    );
}

#[test]
fn corrupt_logs_are_typed_errors() {
    let dir = scratch("corrupt");
    let good = JAVA_UNIFORM_HLOG
        .lines()
        .find(|l| l.starts_with("Tag="))
        .unwrap();
    let encoded = good.rsplit(',').next().unwrap();
    let prefix = &good[..good.len() - encoded.len()];
    // Valid base64 of a payload cut short, and of bytes that are not a histogram.
    let cut = &encoded[..encoded.len() / 8 * 4];
    let mut flipped = encoded.as_bytes().to_vec();
    for b in flipped.iter_mut().skip(16).step_by(3) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    let flipped = String::from_utf8(flipped).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        (
            "comments only",
            "#[Histogram log format version 1.3]\n".into(),
        ),
        ("garbage", "hello world\n".into()),
        ("too few fields", "Tag=a,0.0,1.0\n".into()),
        ("not a number", format!("Tag=a,zero,1.0,2.0,{encoded}\n")),
        ("bad base64", format!("{prefix}not*base64!\n")),
        ("not a histogram", format!("{prefix}SGVsbG8gd29ybGQh\n")),
        ("truncated", format!("{prefix}{cut}\n")),
        ("corrupt deflate", format!("{prefix}{flipped}\n")),
        ("binary", "\u{0}\u{1}\u{2}\n".into()),
    ];
    for (what, text) in &cases {
        let path = dir.join("bad.hlog");
        fs::write(&path, text).unwrap();
        let err = read_hlog(&path).expect_err(what);
        let ok = match *what {
            "empty" | "comments only" => matches!(err, ReportError::Empty),
            "garbage" | "too few fields" | "not a number" | "binary" => {
                matches!(err, ReportError::Syntax { line: 1, .. })
            }
            _ => matches!(err, ReportError::Histogram { line: 1, .. }),
        };
        assert!(ok, "{what}: {err:?}");
        assert!(!err.to_string().is_empty());
        assert!(report_from_hlog(&path, &dir.join("out")).is_err(), "{what}");
    }
    // Not UTF-8 at all.
    let path = dir.join("bad.hlog");
    fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
    assert!(matches!(read_hlog(&path), Err(ReportError::Syntax { .. })));
    // A missing file.
    let err = read_hlog(&dir.join("missing.hlog")).unwrap_err();
    assert!(matches!(err, ReportError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.hlog"), "{err}");
    // An error on a later line names that line.
    fs::write(&path, format!("{good}\nTag=b,1\n")).unwrap();
    assert!(matches!(
        read_hlog(&path),
        Err(ReportError::Syntax { line: 2, .. })
    ));
}

#[test]
fn report_from_hlog_regenerates_the_report() {
    let dir = scratch("regenerate");
    let lat = sample_latency();
    let first = dir.join("run");
    let written = write_report_dir(&first, &lat, NOTE).unwrap();
    let again = dir.join("again");
    let regenerated = report_from_hlog(&first.join("latency.hlog"), &again).unwrap();
    let names = |paths: &[PathBuf]| -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|n| n != "latency.hlog")
            .collect()
    };
    assert_eq!(names(&regenerated), names(&written));
    for p in &regenerated {
        assert!(p.starts_with(&again) && p.is_file(), "{}", p.display());
        if p.extension().is_some_and(|e| e == "hgrm") {
            let orig = first.join(p.file_name().unwrap());
            assert_eq!(fs::read(p).unwrap(), fs::read(orig).unwrap());
        }
    }
    let svg = fs::read_to_string(again.join("latency.svg")).unwrap();
    assert_eq!(polylines(&svg), 3);
    assert!(
        svg.contains("coordinated-omission corrected"),
        "the note survives"
    );
    assert!(svg.contains("from latency.hlog"));
}
