//! `pnl.svg`, drawn with `plotters` (SVG backend, no fonts needed: text stays SVG text): realised,
//! unrealised and net PnL over exchange time in the upper panel, each symbol's position in the
//! lower one. Time runs in minutes from the first point, whose UTC time the axis names.

use super::{money, Backtest, EquityPoint};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// A PnL line: its label, colour and value at a point.
type PnlLine = (&'static str, RGBColor, fn(&EquityPoint) -> i128);

/// Width and height of the chart, px.
pub const SIZE: (u32, u32) = (1000, 640);

/// `ns` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The range of `values` (and 0) with a margin below and room above for the legend (which sits
/// in the upper left corner), never empty.
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = (hi - lo).max(1e-6);
    (lo - span * 0.05)..(hi + span * 0.3)
}

/// Draws `b`'s equity curve and positions into `path`.
pub fn write_pnl_svg(path: &Path, b: &Backtest, strategy: &str) -> Result<()> {
    let e = |err: &dyn std::fmt::Display| anyhow!("drawing {}: {err}", path.display());
    let t0 = b.equity.first().map_or(0, |p| p.t_ns);
    let minutes = |t: u64| t.saturating_sub(t0) as f64 / 60e9;
    let x_end = b.equity.last().map_or(1.0, |p| minutes(p.t_ns)).max(1e-3);
    let x_desc = if b.equity.is_empty() {
        "exchange time (no trading)".to_string()
    } else {
        format!("exchange time, minutes from {}", utc(t0))
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (upper, lower) = root.split_vertically(420);

    let lines: [PnlLine; 3] = [
        ("realised", RGBColor(31, 119, 180), |p| p.realized),
        ("unrealised", RGBColor(255, 127, 14), |p| p.unrealized),
        (
            "net (realised + unrealised - fees)",
            RGBColor(44, 160, 44),
            EquityPoint::net,
        ),
    ];
    let y = padded(
        lines
            .iter()
            .flat_map(|l| b.equity.iter().map(|p| money((l.2)(p)))),
    );
    let mut chart = ChartBuilder::on(&upper)
        .caption(
            format!("{strategy} on {}: PnL, quote units", b.symbols.join(", ")),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_end, y)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc(x_desc.as_str())
        .y_desc("PnL")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(&x))?;
    for (label, color, value) in lines {
        let points = b.equity.iter().map(|p| (minutes(p.t_ns), money(value(p))));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;

    // Positions as steps: each changes at its point and holds until the next.
    let steps: Vec<Vec<(f64, f64)>> = (0..b.symbols.len())
        .map(|s| {
            let mut v: Vec<(f64, f64)> = Vec::with_capacity(b.equity.len() * 2);
            for p in &b.equity {
                let x = minutes(p.t_ns);
                let q = p.qty.get(s).map_or(0.0, |&q| money(i128::from(q)));
                if let Some(&(_, prev)) = v.last() {
                    v.push((x, prev));
                }
                v.push((x, q));
            }
            v
        })
        .collect();
    let y = padded(steps.iter().flat_map(|s| s.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_end, y)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc(x_desc.as_str())
        .y_desc("position, base units")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(&x))?;
    let palette = [
        RGBColor(148, 103, 189),
        RGBColor(214, 39, 40),
        RGBColor(23, 190, 207),
    ];
    for (i, points) in steps.into_iter().enumerate() {
        let color = palette[i % palette.len()];
        let name = b.symbols.get(i).cloned().unwrap_or_default();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // 2024-08-08 12:34:56 UTC (a leap year, after February).
        assert_eq!(utc(1_723_120_496_000_000_000), "2024-08-08 12:34:56 UTC");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29 00:00:00 UTC");
    }
}
