//! Shard plan (`tickline shard-plan`): split symbols across engine shards, one pinned pod each,
//! and write a Kustomize overlay per shard over `deploy/kubernetes/base`.
//!
//! **Weights.** Each symbol's load is its message rate counted in a capture (`--capture`: every
//! market-data frame of a line or `.tlc` capture, attributed to a symbol by its combined-stream
//! name or its `"s"` field; REST snapshots are not messages), or a weights file (`--weights`:
//! `SYMBOL weight` lines, `#` comments), or else 1 per symbol (an even split by count).
//!
//! **Balancing** ([`balance`]) is greedy longest-processing-time: symbols by weight, heaviest
//! first (ties by name), each onto the shard with the least weight so far (ties: fewer symbols,
//! then the lower index). Output is a pure function of the inputs (no clock, no hash order),
//! so running the plan twice writes the same bytes.
//!
//! **Risk.** Tickline's `[risk]` limits are per symbol, and every symbol trades on exactly one
//! shard, so the per-order and per-symbol limits (`max_order_qty`, `max_order_notional`,
//! `max_position`, `max_open_orders`, `price_band_bps`) are carried over unchanged. The venue's
//! order rate limit is per account: the account's order rate and burst (`--account-rate-per-sec`,
//! `--account-burst`; default, what the base config allows all the symbols together) are split:
//! every symbol gets 1 (so a quiet symbol can still trade), and the rest of the account's is
//! split across shards in proportion to their weight, each shard's part divided evenly over its
//! symbols (the engine's token bucket is per symbol) and rounded down, so that the shards
//! together never exceed the account. The generated config states the share in comments.
//!
//! **Output** under `--out DIR`: `shard-<i>/kustomization.yaml` (the base, a `-shard-<i>` name
//! suffix, the `tickline.io/shard` label on every object and selector, the config replaced),
//! `shard-<i>/tickline.toml` (the base config with the shard's symbols, its risk limits, and
//! `[orders] shard = <i>`, `shards = <n>`, which keep the shards' client order ids apart),
//! `shard-<i>/statefulset-patch.yaml` (CPU and memory, requests = limits, integer CPUs, and the
//! journal volume's size), and `kustomization.yaml` listing every shard.

use crate::config::RiskSection;
use anyhow::{bail, Context, Result};
use feeds::capture::{RecordKind, ReplayReader};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// Most shards one account is split into (`orders.shards` allows no more).
pub const MAX_SHARDS: usize = 1024;

/// Where each symbol's weight comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightSource {
    /// 1 per symbol.
    Even,
    /// A `SYMBOL weight` file.
    File(PathBuf),
    /// Messages per symbol counted in a capture.
    Capture(PathBuf),
}

/// Everything `tickline shard-plan` takes.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Symbols to place (upper-case after checking).
    pub symbols: Vec<String>,
    /// Number of shards (at most the number of symbols).
    pub shards: usize,
    /// Where the weights come from.
    pub weights: WeightSource,
    /// The Kustomize base the overlays build on.
    pub base: PathBuf,
    /// The base engine config (TOML) each shard's config starts from.
    pub config: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// CPUs per shard pod (an integer: requests = limits, for the CPU Manager's static policy).
    pub cpus: u32,
    /// Memory per shard pod, a Kubernetes quantity (`1Gi`).
    pub memory: String,
    /// Size of each shard's journal volume, a Kubernetes quantity.
    pub journal_size: String,
    /// The account's order rate, orders per second across every shard (default: the base
    /// config's per-symbol `rate_per_sec` times the number of symbols).
    pub account_rate_per_sec: Option<u64>,
    /// The account's burst, orders across every shard (default: the base config's per-symbol
    /// `burst` times the number of symbols).
    pub account_burst: Option<u64>,
}

/// One shard of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Shard {
    /// Its symbols, sorted by name.
    pub symbols: Vec<String>,
    /// The sum of their weights.
    pub weight: f64,
}

/// What [`count_capture`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaptureCounts {
    /// Market-data frames per symbol (upper-case).
    pub per_symbol: BTreeMap<String, u64>,
    /// Frames naming no symbol (subscription replies, unknown shapes).
    pub unattributed: u64,
    /// Records the reader refused (malformed lines, a torn or corrupt tail), with the first
    /// error's text.
    pub bad_records: u64,
    /// The first refusal, if any.
    pub first_error: Option<String>,
}

/// Assigns `items` (`(symbol, weight)`) to `shards` shards, greedy heaviest-first onto the
/// lightest shard (see the [module docs](self)). Every shard gets at least one symbol when
/// `items.len() >= shards`.
pub fn balance(items: &[(String, f64)], shards: usize) -> Vec<Shard> {
    let mut order: Vec<&(String, f64)> = items.iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = vec![
        Shard {
            symbols: Vec::new(),
            weight: 0.0,
        };
        shards
    ];
    for (sym, w) in order {
        let lightest = (0..shards)
            .min_by(|&i, &j| {
                out[i]
                    .weight
                    .total_cmp(&out[j].weight)
                    .then(out[i].symbols.len().cmp(&out[j].symbols.len()))
                    .then(i.cmp(&j))
            })
            .expect("at least one shard");
        out[lightest].symbols.push(sym.clone());
        out[lightest].weight += w;
    }
    for s in &mut out {
        s.symbols.sort();
    }
    out
}

/// Parses a weights file: `SYMBOL weight` per line (weight a finite number >= 0), blank lines
/// and `#` comments skipped. A bad line is an error naming its number; so is a symbol twice.
pub fn parse_weights(text: &str) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(sym), Some(w), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("line {}: expected `SYMBOL weight`", n + 1);
        };
        let w: f64 = w
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .with_context(|| format!("line {}: weight {w:?} is not a number >= 0", n + 1))?;
        let sym = check_symbol(sym).with_context(|| format!("line {}", n + 1))?;
        if out.insert(sym.clone(), w).is_some() {
            bail!("line {}: {sym} given twice", n + 1);
        }
    }
    Ok(out)
}

/// The symbol a market-data frame is about: the combined-stream name's prefix
/// (`{"stream":"btcusdt@trade",..}`), else the event's `"s"` field; upper-case.
pub fn frame_symbol(payload: &[u8]) -> Option<String> {
    let after = |key: &[u8]| -> Option<&[u8]> {
        let at = payload.windows(key.len()).position(|w| w == key)?;
        Some(&payload[at + key.len()..])
    };
    let name = if let Some(rest) = after(b"\"stream\":\"") {
        let end = rest.iter().position(|&b| b == b'@' || b == b'"')?;
        &rest[..end]
    } else {
        let rest = after(b"\"s\":\"")?;
        &rest[..rest.iter().position(|&b| b == b'"')?]
    };
    let name = std::str::from_utf8(name).ok()?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| name.to_ascii_uppercase())
}

/// Counts market-data frames per symbol in a capture (line format, plain or gzip, or `.tlc`).
/// Snapshots, connects and other non-frame records are not counted; refused records are
/// counted in [`CaptureCounts::bad_records`] and reading goes on where the reader can.
pub fn count_capture(path: &Path) -> Result<CaptureCounts> {
    let mut reader =
        ReplayReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut counts = CaptureCounts::default();
    loop {
        match reader.next() {
            Ok(None) => break,
            Ok(Some(rec)) => {
                if !matches!(rec.kind, RecordKind::TextFrame | RecordKind::BinaryFrame) {
                    continue;
                }
                match frame_symbol(rec.payload) {
                    Some(sym) => *counts.per_symbol.entry(sym).or_insert(0) += 1,
                    None => counts.unattributed += 1,
                }
            }
            Err(e) => {
                counts.bad_records += 1;
                counts.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Ok(counts)
}

/// Upper-cases and checks a symbol name as the engine's symbol table would.
fn check_symbol(s: &str) -> Result<String> {
    engine::symbol::SymbolTable::new()
        .intern(s)
        .map_err(|e| anyhow::anyhow!("symbol {s:?}: {e}"))?;
    Ok(s.to_ascii_uppercase())
}

/// A Kubernetes quantity as this plan writes them: digits and an optional binary suffix.
fn check_quantity(what: &str, q: &str) -> Result<()> {
    let digits = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &q[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.bytes().all(|b| b == b'0')
        || !["", "Ki", "Mi", "Gi", "Ti"].contains(&suffix)
    {
        bail!("{what} {q:?}: expected a size such as 512Mi or 2Gi");
    }
    Ok(())
}

/// `to` relative to `from` (both absolute, already canonical).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// A plan, computed but not written.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The shards, in order.
    pub shards: Vec<Shard>,
    /// How the weights were found, for the generated comments.
    pub basis: String,
    /// Warnings (symbols missing from a capture, refused records, ...), also printed.
    pub warnings: Vec<String>,
}

/// Reads the weights and balances the symbols (no files written).
pub fn plan(opts: &PlanOptions) -> Result<Plan> {
    if !(1..=MAX_SHARDS).contains(&opts.shards) {
        bail!("--shards {}: must be in 1..={MAX_SHARDS}", opts.shards);
    }
    let mut symbols = Vec::new();
    for s in &opts.symbols {
        let s = check_symbol(s.trim()).context("--symbols")?;
        if symbols.contains(&s) {
            bail!("--symbols: {s} given twice");
        }
        symbols.push(s);
    }
    if symbols.len() < opts.shards {
        bail!(
            "--shards {} is more than the {} symbols: every shard needs at least one",
            opts.shards,
            symbols.len()
        );
    }
    let mut warnings = Vec::new();
    let (weights, basis): (Vec<(String, f64)>, String) = match &opts.weights {
        WeightSource::Even => (
            symbols.iter().map(|s| (s.clone(), 1.0)).collect(),
            "even (1 per symbol)".into(),
        ),
        WeightSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --weights {}", path.display()))?;
            let w =
                parse_weights(&text).with_context(|| format!("--weights {}", path.display()))?;
            let mut out = Vec::new();
            for s in &symbols {
                let Some(v) = w.get(s) else {
                    bail!("--weights {}: no weight for {s}", path.display());
                };
                out.push((s.clone(), *v));
            }
            for s in w.keys().filter(|k| !symbols.contains(k)) {
                warnings.push(format!(
                    "--weights {}: {s} is not in --symbols (ignored)",
                    path.display()
                ));
            }
            (out, format!("weights file {}", path.display()))
        }
        WeightSource::Capture(path) => {
            let c = count_capture(path).with_context(|| format!("--capture {}", path.display()))?;
            if c.bad_records > 0 {
                warnings.push(format!(
                    "--capture {}: {} record(s) refused and not counted (first: {})",
                    path.display(),
                    c.bad_records,
                    c.first_error.as_deref().unwrap_or("?")
                ));
            }
            let mut out = Vec::new();
            for s in &symbols {
                let n = c.per_symbol.get(s).copied().unwrap_or(0);
                if n == 0 {
                    warnings.push(format!(
                        "--capture {}: no messages for {s}; weighted as 1 message",
                        path.display()
                    ));
                }
                out.push((s.clone(), n.max(1) as f64));
            }
            let others: u64 = c
                .per_symbol
                .iter()
                .filter(|(k, _)| !symbols.contains(k))
                .map(|(_, v)| v)
                .sum();
            if others + c.unattributed > 0 {
                warnings.push(format!(
                    "--capture {}: {others} message(s) for other symbols and {} naming none were not counted",
                    path.display(),
                    c.unattributed
                ));
            }
            (
                out,
                format!("messages per symbol in capture {}", path.display()),
            )
        }
    };
    Ok(Plan {
        shards: balance(&weights, opts.shards),
        basis,
        warnings,
    })
}

/// One shard's order rate (or burst) per symbol: 1, plus the shard's `share` of what the
/// account's `account` leaves after 1 for each of all `n_symbols`, divided over the shard's
/// `symbols`, rounded down. An error if the account cannot give every symbol 1.
fn per_symbol_share(
    key: &str,
    account: u64,
    n_symbols: usize,
    share: f64,
    symbols: usize,
) -> Result<u32> {
    let Some(rest) = account.checked_sub(n_symbols as u64) else {
        bail!(
            "the account's {key} {account} is less than 1 for each of the {n_symbols} symbols; raise --account-{}",
            key.replace('_', "-")
        );
    };
    let v = 1.0 + (rest as f64 * share / symbols as f64).floor();
    Ok(v.min(u32::MAX as f64) as u32)
}

/// Writes the plan's overlays under `opts.out` and returns the paths written.
pub fn write(opts: &PlanOptions, plan: &Plan) -> Result<Vec<PathBuf>> {
    if opts.cpus == 0 || opts.cpus > 1024 {
        bail!("--cpus {}: an integer in 1..=1024", opts.cpus);
    }
    check_quantity("--memory", &opts.memory)?;
    check_quantity("--journal-size", &opts.journal_size)?;
    let base_text = std::fs::read_to_string(&opts.config)
        .with_context(|| format!("reading --config {}", opts.config.display()))?;
    let base_cfg: toml::Table = toml::from_str(&base_text)
        .map_err(|e| anyhow::anyhow!("--config {}: {}", opts.config.display(), e.message()))?;
    let risk: RiskSection = base_cfg
        .get("risk")
        .cloned()
        .unwrap_or_else(|| toml::Value::Table(Default::default()))
        .try_into()
        .map_err(|e: toml::de::Error| {
            anyhow::anyhow!(
                "--config {}: [risk]: {}",
                opts.config.display(),
                e.message()
            )
        })?;
    risk.limits()
        .with_context(|| format!("--config {}", opts.config.display()))?;
    let n_symbols: usize = plan.shards.iter().map(|s| s.symbols.len()).sum();
    let account_rate = opts
        .account_rate_per_sec
        .unwrap_or(u64::from(risk.rate_per_sec) * n_symbols as u64);
    let account_burst = opts
        .account_burst
        .unwrap_or(u64::from(risk.burst) * n_symbols as u64);
    if !opts.base.join("kustomization.yaml").is_file() {
        bail!(
            "--base {}: no kustomization.yaml there",
            opts.base.display()
        );
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let base_abs = opts
        .base
        .canonicalize()
        .with_context(|| format!("--base {}", opts.base.display()))?;
    let total: f64 = plan.shards.iter().map(|s| s.weight).sum();
    let mut written = Vec::new();
    let mut put = |path: PathBuf, text: String| -> Result<()> {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    let n = plan.shards.len();
    remove_stale_shards(&opts.out, n)?;
    for (i, shard) in plan.shards.iter().enumerate() {
        let share = if total > 0.0 {
            shard.weight / total
        } else {
            shard.symbols.len() as f64 / n_symbols as f64
        };
        let k = shard.symbols.len();
        let rate = per_symbol_share("rate_per_sec", account_rate, n_symbols, share, k)?;
        let burst = per_symbol_share("burst", account_burst, n_symbols, share, k)?;
        let dir = opts.out.join(format!("shard-{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir_abs = dir.canonicalize()?;
        let base_rel = relative(&dir_abs, &base_abs);
        let summary = format!(
            "shard {i} of {n}: {} (weight {} of {}, share {share:.6}; weights: {})",
            shard.symbols.join(", "),
            fmt_weight(shard.weight),
            fmt_weight(total),
            plan.basis
        );

        // The engine config: the base with this shard's symbols, and a [risk] written out.
        let mut cfg = base_cfg.clone();
        cfg.remove("risk");
        let venue = cfg
            .entry("venue")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .with_context(|| {
                format!("--config {}: [venue] is not a table", opts.config.display())
            })?;
        venue.insert(
            "symbols".into(),
            toml::Value::Array(
                shard
                    .symbols
                    .iter()
                    .map(|s| toml::Value::String(s.clone()))
                    .collect(),
            ),
        );
        if let Some(toml::Value::Array(trade)) = venue.get_mut("trade") {
            trade.retain(|v| {
                v.as_str()
                    .is_some_and(|s| shard.symbols.iter().any(|x| x.eq_ignore_ascii_case(s)))
            });
        }
        // Client order ids: each shard numbers its own (`orders.shard` of `orders.shards`), so
        // shards trading one account never send the same id.
        let orders = cfg
            .entry("orders")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .with_context(|| {
                format!(
                    "--config {}: [orders] is not a table",
                    opts.config.display()
                )
            })?;
        orders.insert("shard".into(), toml::Value::Integer(i as i64));
        orders.insert("shards".into(), toml::Value::Integer(n as i64));
        let body = toml::to_string(&cfg).context("writing the shard's config")?;
        let mut toml_text = format!(
            "# Generated by `tickline shard-plan` from {}: do not edit, run the plan again.\n# {summary}\n\n{body}",
            opts.config.display()
        );
        let _ = write!(
            toml_text,
            "\n[risk]\n\
# The venue limits orders per account: of the account's {account_rate} orders/s and burst\n\
# {account_burst}, every one of the plan's {n_symbols} symbols gets 1, and this shard its share\n\
# ({share:.6}, by weight) of the rest, divided over its {k} symbol(s) (the engine's token\n\
# bucket is per symbol) and rounded down.\n\
rate_per_sec = {rate}\n\
burst = {burst}\n\
# Per order and per symbol: the account's own (each symbol trades on one shard only).\n\
max_order_qty = {}\n\
max_order_notional = {}\n\
max_position = {}\n\
max_open_orders = {}\n\
price_band_bps = {}\n",
            toml::Value::String(risk.max_order_qty.clone()),
            toml::Value::String(risk.max_order_notional.clone()),
            toml::Value::String(risk.max_position.clone()),
            risk.max_open_orders,
            risk.price_band_bps,
        );
        if risk.enabled {
            toml_text.push_str("enabled = true\n");
        }
        put(dir.join("tickline.toml"), toml_text)?;

        put(
            dir.join("kustomization.yaml"),
            format!(
                r#"# Generated by `tickline shard-plan`: do not edit, run the plan again.
# {summary}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
nameSuffix: -shard-{i}
labels:
  - pairs:
      tickline.io/shard: "{i}"
    includeSelectors: true
    includeTemplates: true
configMapGenerator:
  - name: tickline-config
    behavior: replace
    files:
      - tickline.toml
patches:
  - path: statefulset-patch.yaml
"#,
                base = base_rel.display()
            ),
        )?;
        put(
            dir.join("statefulset-patch.yaml"),
            format!(
                r#"# Generated by `tickline shard-plan`. Guaranteed QoS: requests = limits, whole CPUs,
# so the kubelet's static CPU Manager policy gives the engine {cpus} exclusive CPUs.
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: tickline
spec:
  template:
    spec:
      containers:
        - name: tickline
          resources:
            requests:
              cpu: "{cpus}"
              memory: {mem}
            limits:
              cpu: "{cpus}"
              memory: {mem}
  volumeClaimTemplates:
    - metadata:
        name: journal
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: {size}
"#,
                cpus = opts.cpus,
                mem = opts.memory,
                size = opts.journal_size,
            ),
        )?;
    }
    let mut all = String::from(
        "# Generated by `tickline shard-plan`: every shard; `kubectl apply -k` this directory.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n",
    );
    for i in 0..n {
        let _ = writeln!(all, "  - shard-{i}");
    }
    put(opts.out.join("kustomization.yaml"), all)?;
    Ok(written)
}

/// The files a shard's directory holds.
const SHARD_FILES: [&str; 3] = [
    "kustomization.yaml",
    "tickline.toml",
    "statefulset-patch.yaml",
];

/// Removes `shard-<i>` directories for `i >= shards` left in `out` by an earlier plan with more
/// shards, so the directory holds this plan only; one holding anything but a plan's files is an
/// error (it is not ours to delete).
fn remove_stale_shards(out: &Path, shards: usize) -> Result<()> {
    let entries = std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
    for e in entries {
        let path = e?.path();
        let Some(i) = path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix("shard-"))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        if i < shards || !path.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&path)? {
            let f = f?.file_name();
            if !SHARD_FILES.iter().any(|g| f == *g) {
                bail!(
                    "{}: left by an earlier plan with more shards, and holds {:?}, which a plan does not write; move it away",
                    path.display(),
                    f
                );
            }
        }
        std::fs::remove_dir_all(&path)
            .with_context(|| format!("removing the stale {}", path.display()))?;
        eprintln!("removed {} (an earlier plan's shard)", path.display());
    }
    Ok(())
}

/// A weight as written in comments: an integer when it is one.
fn fmt_weight(w: f64) -> String {
    if w.fract() == 0.0 && w.abs() < 1e15 {
        format!("{}", w as i64)
    } else {
        format!("{w}")
    }
}

/// The plan as a table, for the terminal.
pub fn render(plan: &Plan) -> String {
    let total: f64 = plan.shards.iter().map(|s| s.weight).sum();
    let mut out = format!("weights: {}\n", plan.basis);
    for (i, s) in plan.shards.iter().enumerate() {
        let pct = if total > 0.0 {
            100.0 * s.weight / total
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "shard-{i}: weight {} ({pct:.1}%): {}",
            fmt_weight(s.weight),
            s.symbols.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &[(&str, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(s, w)| (s.to_string(), *w)).collect()
    }

    #[test]
    fn heaviest_first_onto_the_lightest_shard() {
        // 10 -> A; 7 -> B; 5 -> B (7 < 10) = 12; 4 -> A = 14; 3 -> B = 15; 1 -> A = 15.
        let plan = balance(
            &items(&[
                ("S1", 1.0),
                ("S3", 3.0),
                ("S4", 4.0),
                ("S5", 5.0),
                ("S7", 7.0),
                ("S10", 10.0),
            ]),
            2,
        );
        assert_eq!(plan[0].symbols, ["S1", "S10", "S4"]);
        assert_eq!(plan[1].symbols, ["S3", "S5", "S7"]);
        assert_eq!((plan[0].weight, plan[1].weight), (15.0, 15.0));
    }

    #[test]
    fn even_weights_split_by_count_and_ties_go_by_name_then_index() {
        let plan = balance(
            &items(&[("D", 1.0), ("C", 1.0), ("B", 1.0), ("A", 1.0), ("E", 1.0)]),
            2,
        );
        assert_eq!(plan[0].symbols, ["A", "C", "E"]);
        assert_eq!(plan[1].symbols, ["B", "D"]);
    }

    #[test]
    fn one_heavy_symbol_gets_a_shard_of_its_own() {
        let plan = balance(
            &items(&[("BIG", 100.0), ("A", 1.0), ("B", 1.0), ("C", 1.0)]),
            2,
        );
        assert_eq!(plan[0].symbols, ["BIG"]);
        assert_eq!(plan[1].symbols, ["A", "B", "C"]);
    }

    #[test]
    fn every_shard_gets_a_symbol_and_the_plan_is_deterministic() {
        let v: Vec<(String, f64)> = (0..40)
            .map(|i| (format!("S{i}"), ((i * 37) % 11) as f64))
            .collect();
        let a = balance(&v, 7);
        assert!(a.iter().all(|s| !s.symbols.is_empty()));
        assert_eq!(a.iter().map(|s| s.symbols.len()).sum::<usize>(), 40);
        let mut rev = v.clone();
        rev.reverse();
        assert_eq!(a, balance(&rev, 7), "input order does not matter");
        // Greedy LPT bound: the heaviest shard is within the heaviest item of the lightest.
        let max = a.iter().map(|s| s.weight).fold(f64::MIN, f64::max);
        let min = a.iter().map(|s| s.weight).fold(f64::MAX, f64::min);
        assert!(max - min <= 10.0, "{a:?}");
    }

    #[test]
    fn weights_file_is_parsed_and_bad_lines_named() {
        let w = parse_weights("# rates\nbtcusdt 10\n\nETHUSDT 2.5  # busy\n").unwrap();
        assert_eq!(w["BTCUSDT"], 10.0);
        assert_eq!(w["ETHUSDT"], 2.5);
        let e = parse_weights("BTCUSDT 1\nETHUSDT\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
        let e = parse_weights("BTCUSDT -1\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 1"), "{e:#}");
        let e = parse_weights("BTCUSDT 1\nbtcusdt 2\n").unwrap_err();
        assert!(format!("{e:#}").contains("twice"), "{e:#}");
        assert!(parse_weights("BTC-USD 1\n").is_err());
    }

    #[test]
    fn frames_are_attributed_by_stream_name_or_symbol_field() {
        assert_eq!(
            frame_symbol(br#"{"stream":"btcusdt@depth@100ms","data":{"s":"BTCUSDT"}}"#),
            Some("BTCUSDT".into())
        );
        assert_eq!(
            frame_symbol(br#"{"e":"trade","E":1,"s":"ETHUSDT","t":1}"#),
            Some("ETHUSDT".into())
        );
        assert_eq!(frame_symbol(br#"{"result":null,"id":1}"#), None);
    }

    #[test]
    fn relative_paths_between_directories() {
        assert_eq!(
            relative(Path::new("/a/b/out/shard-0"), Path::new("/a/deploy/base")),
            PathBuf::from("../../../deploy/base")
        );
        assert_eq!(
            relative(Path::new("/a/base/x"), Path::new("/a/base")),
            PathBuf::from("..")
        );
    }

    #[test]
    fn rate_shares_give_one_each_then_round_the_rest_down() {
        // 40 - 6 symbols = 34; half of it over 3 symbols = 5.67 -> 5, plus 1.
        assert_eq!(per_symbol_share("rate_per_sec", 40, 6, 0.5, 3).unwrap(), 6);
        // A shard of nearly no weight still trades: 1 a symbol.
        assert_eq!(
            per_symbol_share("rate_per_sec", 100, 3, 0.00002, 2).unwrap(),
            1
        );
        assert_eq!(per_symbol_share("rate_per_sec", 3, 3, 0.5, 1).unwrap(), 1);
        let e = per_symbol_share("rate_per_sec", 2, 3, 0.5, 1).unwrap_err();
        assert!(e.to_string().contains("--account-rate-per-sec"), "{e}");
    }

    #[test]
    fn quantities_are_checked() {
        assert!(check_quantity("--memory", "1Gi").is_ok());
        assert!(check_quantity("--memory", "512Mi").is_ok());
        assert!(check_quantity("--memory", "0Gi").is_err());
        assert!(check_quantity("--memory", "1GB").is_err());
        assert!(check_quantity("--memory", "Gi").is_err());
    }
}
