//! Stream names, subscription matching, and the combined-stream envelope.

use std::ops::Range;

/// Streams one connection may listen to, as on Binance.
pub(crate) const MAX_STREAMS_PER_CONNECTION: usize = 1024;

/// Longest stream name accepted.
const MAX_STREAM_NAME: usize = 128;

/// True for a syntactically valid stream name: `<symbol>@<kind>[@...]` with the symbol in lower
/// case (`btcusdt@trade`, `btcusdt@bookTicker`, `btcusdt@depth@100ms`, `!miniTicker@arr`).
///
/// Any well-formed name is accepted (Binance accepts subscriptions to streams that never carry
/// data); only names the feed actually carries deliver frames.
pub(crate) fn valid_stream_name(s: &str) -> bool {
    let Some((symbol, kind)) = s.split_once('@') else {
        return false;
    };
    let symbol = symbol.strip_prefix('!').unwrap_or(symbol);
    s.len() <= MAX_STREAM_NAME
        && !symbol.is_empty()
        && !kind.is_empty()
        && !kind.ends_with('@')
        && symbol
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || s.starts_with('!'))
        && symbol.bytes().all(|b| b.is_ascii_alphanumeric())
        && kind.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'@' | b'_' | b'.' | b':' | b'+' | b'-')
        })
}

/// The other name of a diff-depth stream: `x@depth@100ms` <-> `x@depth`. A subscription to
/// either receives the feed's diffs, whichever update speed they were recorded at.
pub(crate) fn depth_alias(stream: &str) -> Option<String> {
    if let Some(base) = stream.strip_suffix("@depth@100ms") {
        Some(format!("{base}@depth"))
    } else if stream.ends_with("@depth") {
        Some(format!("{stream}@100ms"))
    } else {
        None
    }
}

/// How a subscription set matches one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Match {
    /// Not subscribed.
    No,
    /// Subscribed under the stream's own name.
    Exact,
    /// Subscribed under the stream's depth alias only (see [`depth_alias`]): combined frames
    /// carry the alias as their `stream`.
    Alias,
}

/// Matches `stream` against a subscription list.
pub(crate) fn match_stream(subs: &[String], stream: &str) -> Match {
    if subs.iter().any(|s| s == stream) {
        return Match::Exact;
    }
    match depth_alias(stream) {
        Some(alias) if subs.contains(&alias) => Match::Alias,
        _ => Match::No,
    }
}

/// Per-stream-id cache of [`match_stream`], cleared whenever the subscriptions change.
#[derive(Debug, Default)]
pub(crate) struct MatchCache {
    version: u64,
    /// 0 unknown, else `Match as u8 + 1`.
    states: Vec<u8>,
}

impl MatchCache {
    /// Forgets everything when `version` differs from the cached one.
    #[inline]
    pub(crate) fn sync(&mut self, version: u64) {
        if version != self.version {
            self.version = version;
            self.states.iter_mut().for_each(|s| *s = 0);
        }
    }

    /// The cached match of `id`, or `compute()`'s, cached.
    #[inline]
    pub(crate) fn get(&mut self, id: u32, compute: impl FnOnce() -> Match) -> Match {
        let i = id as usize;
        if let Some(&s) = self.states.get(i) {
            if s != 0 {
                return decode(s);
            }
        } else {
            self.states.resize(i + 1, 0);
        }
        let m = compute();
        self.states[i] = encode(m);
        m
    }
}

fn encode(m: Match) -> u8 {
    match m {
        Match::No => 1,
        Match::Exact => 2,
        Match::Alias => 3,
    }
}

fn decode(s: u8) -> Match {
    match s {
        2 => Match::Exact,
        3 => Match::Alias,
        _ => Match::No,
    }
}

/// Where the stream name and the payload sit in a combined frame written the way Binance writes
/// it: `{"stream":"<name>","data":<payload>}` with no whitespace. `None` for anything else.
pub(crate) fn split_combined(frame: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
    const HEAD: &[u8] = b"{\"stream\":\"";
    const MID: &[u8] = b"\",\"data\":";
    let rest = frame.strip_prefix(HEAD)?;
    let name_len = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[name_len] != b'"' || name_len == 0 {
        return None;
    }
    let name = HEAD.len()..HEAD.len() + name_len;
    let after = &frame[name.end..];
    if !after.starts_with(MID) {
        return None;
    }
    let data_start = name.end + MID.len();
    let mut end = frame.len();
    while end > data_start && frame[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    if end <= data_start + 1 || frame[end - 1] != b'}' {
        return None;
    }
    let data = data_start..end - 1;
    if frame[data.start..data.end]
        .first()
        .is_none_or(|b| b.is_ascii_whitespace())
    {
        return None;
    }
    Some((name, data))
}

/// Writes `{"stream":"<name>","data":<data>}`.
pub(crate) fn build_combined(name: &str, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + data.len() + 22);
    v.extend_from_slice(b"{\"stream\":\"");
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b"\",\"data\":");
    v.extend_from_slice(data);
    v.push(b'}');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_stream_name("btcusdt@trade"));
        assert!(valid_stream_name("btcusdt@depth@100ms"));
        assert!(valid_stream_name("!miniTicker@arr"));
        assert!(valid_stream_name("btcusdt@bookTicker"));
        assert!(valid_stream_name("btcusdt@aggTrade"));
        assert!(!valid_stream_name("btcusdt@trade@"));
        assert!(!valid_stream_name("BTCUSDT@trade"));
        assert!(!valid_stream_name("btcusdt"));
        assert!(!valid_stream_name("@trade"));
        assert!(!valid_stream_name("btc usdt@trade"));
        assert!(!valid_stream_name(""));
    }

    #[test]
    fn depth_aliases_match_both_ways() {
        let subs = vec!["btcusdt@depth".to_string()];
        assert_eq!(match_stream(&subs, "btcusdt@depth@100ms"), Match::Alias);
        assert_eq!(match_stream(&subs, "btcusdt@depth"), Match::Exact);
        assert_eq!(match_stream(&subs, "ethusdt@depth"), Match::No);
        let subs = vec!["btcusdt@depth@100ms".to_string()];
        assert_eq!(match_stream(&subs, "btcusdt@depth"), Match::Alias);
        assert_eq!(match_stream(&subs, "btcusdt@trade"), Match::No);
    }

    #[test]
    fn envelope_split() {
        let f = br#"{"stream":"btcusdt@trade","data":{"e":"trade","t":1}}"#;
        let (n, d) = split_combined(f).unwrap();
        assert_eq!(&f[n], b"btcusdt@trade");
        assert_eq!(&f[d], br#"{"e":"trade","t":1}"#);
        assert!(split_combined(br#"{"data":{},"stream":"x@y"}"#).is_none());
        assert!(split_combined(br#"{"stream":"x@y","data":}"#).is_none());
        assert!(split_combined(br#"{"stream":"x@y""#).is_none());
        assert_eq!(
            build_combined("a@b", b"{\"x\":1}"),
            br#"{"stream":"a@b","data":{"x":1}}"#
        );
    }

    #[test]
    fn cache_resets_on_version_change() {
        let mut c = MatchCache::default();
        c.sync(1);
        assert_eq!(c.get(3, || Match::Exact), Match::Exact);
        assert_eq!(c.get(3, || Match::No), Match::Exact);
        c.sync(2);
        assert_eq!(c.get(3, || Match::No), Match::No);
    }
}
