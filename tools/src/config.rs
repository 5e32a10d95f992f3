//! The TOML configuration. Every table denies unknown keys, and every value is checked when the
//! file is read, so a typo fails at start-up with a message naming the key.
//!
//! ```toml
//! [engine]
//! io_cpu = 0            # CPU of the feed (I/O) thread; -1 = do not pin
//! core_cpu = 1          # CPU of the core thread; -1 = do not pin
//! idle = "spin"         # spin | spin-yield | backoff
//! ring_capacity = 65536 # events per SPSC ring
//!
//! [paper]               # paper venue used by replay and demo
//! latency_us = 1000
//! maker_fee = "0.001"
//! taker_fee = "0.001"
//!
//! [strategy]
//! name = "naive"        # naive | sma_cross | probe | none
//! [strategy.params]
//! chunks = 2
//! profit_interval = "0.0005"
//!
//! [replay]
//! symbol = "BTCUSDT"    # symbol of a line capture's REST snapshot (which carries none)
//! pace = "asap"         # asap | recorded | xN
//! ```

use anyhow::{bail, Context, Result};
use engine::idle::IdleMode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Threads, pinning, rings.
    pub engine: EngineSection,
    /// Paper venue.
    pub paper: PaperSection,
    /// Strategy and its parameters.
    pub strategy: StrategySection,
    /// Replay defaults.
    pub replay: ReplaySection,
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// CPU of the I/O thread (-1: unpinned).
    pub io_cpu: i64,
    /// CPU of the core thread (-1: unpinned).
    pub core_cpu: i64,
    /// Idle policy name.
    pub idle: String,
    /// Ring capacity in events.
    pub ring_capacity: usize,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            io_cpu: 0,
            core_cpu: 1,
            idle: "spin".into(),
            ring_capacity: 65_536,
        }
    }
}

/// `[paper]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaperSection {
    /// Order latency, µs of venue time.
    pub latency_us: u64,
    /// Maker fee rate as a decimal string.
    pub maker_fee: String,
    /// Taker fee rate as a decimal string.
    pub taker_fee: String,
}

impl Default for PaperSection {
    fn default() -> Self {
        PaperSection {
            latency_us: 1000,
            maker_fee: "0.001".into(),
            taker_fee: "0.001".into(),
        }
    }
}

/// `[strategy]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategySection {
    /// Strategy name, or `none`.
    pub name: String,
    /// Parameters (strings, integers, floats or booleans; handed to the strategy as text).
    pub params: BTreeMap<String, toml::Value>,
}

impl Default for StrategySection {
    fn default() -> Self {
        StrategySection {
            name: "naive".into(),
            params: BTreeMap::new(),
        }
    }
}

/// `[replay]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplaySection {
    /// Symbol of symbol-less records (a line capture's REST snapshot).
    pub symbol: String,
    /// Pace.
    pub pace: String,
}

impl Default for ReplaySection {
    fn default() -> Self {
        ReplaySection {
            symbol: "BTCUSDT".into(),
            pace: "asap".into(),
        }
    }
}

/// Replay pacing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the pipeline goes.
    Asap,
    /// Keep the capture's gaps, divided by the factor (`recorded` = 1, `x10` = ten times faster).
    Scaled(f64),
}

impl std::str::FromStr for Pace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "asap" => Ok(Pace::Asap),
            "recorded" => Ok(Pace::Scaled(1.0)),
            _ => {
                let f = s
                    .strip_prefix('x')
                    .and_then(|n| n.parse::<f64>().ok())
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .ok_or_else(|| {
                        format!(
                            "bad pace {s:?}: expected asap, recorded, or xN with N > 0 (x10, x0.5)"
                        )
                    })?;
                Ok(Pace::Scaled(f))
            }
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        self.idle_mode().context("engine.idle")?;
        if self.engine.ring_capacity < 1024 || self.engine.ring_capacity > (1 << 26) {
            bail!(
                "engine.ring_capacity = {}: must be in 1024..=67108864",
                self.engine.ring_capacity
            );
        }
        for (key, v) in [
            ("engine.io_cpu", self.engine.io_cpu),
            ("engine.core_cpu", self.engine.core_cpu),
        ] {
            if !(-1..=4095).contains(&v) {
                bail!("{key} = {v}: must be a CPU number, or -1 for unpinned");
            }
        }
        for (key, v) in [
            ("paper.maker_fee", &self.paper.maker_fee),
            ("paper.taker_fee", &self.paper.taker_fee),
        ] {
            engine::fixed::parse_fixed(v.as_bytes())
                .map_err(|e| anyhow::anyhow!("{key} = {v:?}: {e}"))?;
        }
        self.pace().context("replay.pace")?;
        let mut symbols = engine::symbol::SymbolTable::new();
        symbols
            .intern(&self.replay.symbol)
            .map_err(|e| anyhow::anyhow!("replay.symbol: {e}"))?;
        if self.strategy.name != "none" {
            strategies::build(&self.strategy.name, self.strategy_params())
                .map_err(|e| anyhow::anyhow!("strategy: {e}"))?;
        }
        Ok(())
    }

    /// The idle mode.
    pub fn idle_mode(&self) -> Result<IdleMode> {
        self.engine
            .idle
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))
    }

    /// The pace.
    pub fn pace(&self) -> Result<Pace> {
        self.replay
            .pace
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))
    }

    /// The strategy parameters as text.
    pub fn strategy_params(&self) -> engine::strategy::Params {
        engine::strategy::Params::new(self.strategy.params.iter().map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        }))
    }

    /// CPU option: -1 means unpinned.
    pub fn cpu(v: i64) -> Option<usize> {
        usize::try_from(v).ok()
    }

    /// The paper venue's settings.
    pub fn paper_config(&self) -> engine::paper::PaperConfig {
        let rate = |s: &str| engine::fixed::parse_fixed(s.as_bytes()).unwrap_or(0);
        engine::paper::PaperConfig {
            latency_ns: self.paper.latency_us.saturating_mul(1000),
            maker_fee_rate: rate(&self.paper.maker_fee),
            taker_fee_rate: rate(&self.paper.taker_fee),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.engine.core_cpu, 1);
        assert_eq!(c.pace().unwrap(), Pace::Asap);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = format!(
            "{:#}",
            Config::parse("[engine]\nio_cpux = 3\n").unwrap_err()
        );
        assert!(e.contains("io_cpux"), "{e}");
        let e = format!("{:#}", Config::parse("[engin]\n").unwrap_err());
        assert!(e.contains("engin"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = format!(
            "{:#}",
            Config::parse("[engine]\nidle = \"fast\"\n").unwrap_err()
        );
        assert!(e.contains("engine.idle") && e.contains("fast"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[engine]\nring_capacity = 3\n").unwrap_err()
        );
        assert!(e.contains("engine.ring_capacity"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[replay]\npace = \"x0\"\n").unwrap_err()
        );
        assert!(e.contains("replay.pace"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[engine]\ncore_cpu = \"one\"\n").unwrap_err()
        );
        assert!(e.contains("core_cpu"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[strategy]\nname = \"naive\"\n[strategy.params]\nchunkz = 2\n")
                .unwrap_err()
        );
        assert!(e.contains("chunkz"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[paper]\ntaker_fee = \"abc\"\n").unwrap_err()
        );
        assert!(e.contains("paper.taker_fee"), "{e}");
    }

    #[test]
    fn paces() {
        assert_eq!("x10".parse::<Pace>(), Ok(Pace::Scaled(10.0)));
        assert_eq!("x0.5".parse::<Pace>(), Ok(Pace::Scaled(0.5)));
        assert_eq!("recorded".parse::<Pace>(), Ok(Pace::Scaled(1.0)));
        assert!("10".parse::<Pace>().is_err());
        assert!("x-1".parse::<Pace>().is_err());
    }
}
