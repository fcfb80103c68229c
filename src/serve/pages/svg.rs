//! Small server-rendered SVG charts: readable without JavaScript, no assets. Every text that
//! comes from data is escaped; numbers are formatted here.

use std::fmt::Write;

/// Escapes text for HTML and SVG.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with about four significant digits.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.3e}", x)
    } else if a >= 100.0 {
        format!("{x:.2}")
    } else if a >= 1.0 {
        format!("{x:.4}")
    } else if a == 0.0 {
        "0".into()
    } else if a >= 1e-3 {
        format!("{x:.5}")
    } else {
        format!("{x:.3e}")
    }
}

pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f",
];

/// One line of a chart: points (x, y); a NaN y breaks the line (a gap stays a gap).
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    /// Draw markers instead of a line.
    pub markers: bool,
}

/// Runs of band points with finite bounds whose x are at most an hour apart.
fn band_runs(points: &[(f64, f64, f64)]) -> Vec<&[(f64, f64, f64)]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 0..=points.len() {
        let breaks = i == points.len()
            || !(points[i].1.is_finite() && points[i].2.is_finite())
            || (i > start && points[i].0 - points[i - 1].0 > 3600.0);
        if breaks {
            if i > start {
                runs.push(&points[start..i]);
            }
            start = if i < points.len() && !(points[i].1.is_finite() && points[i].2.is_finite()) {
                i + 1
            } else {
                i
            };
        }
    }
    runs
}

/// A shaded band (lower, upper) per x, e.g. prediction intervals: an area over consecutive hours,
/// a bar for an isolated one.
pub struct Band {
    pub color: &'static str,
    pub points: Vec<(f64, f64, f64)>,
}

pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// x ticks are formatted by this (e.g. epoch seconds to dates).
    pub x_label: fn(f64) -> String,
    pub y_min_zero: bool,
}

const PAD_L: f64 = 64.0;
const PAD_R: f64 = 12.0;
const PAD_T: f64 = 10.0;
const PAD_B: f64 = 40.0;

impl Chart {
    pub fn new(width: f64, height: f64, x_label: fn(f64) -> String) -> Self {
        Self {
            width,
            height,
            series: Vec::new(),
            bands: Vec::new(),
            x_label,
            y_min_zero: false,
        }
    }

    /// The SVG, or an empty-state text when there is nothing to draw.
    pub fn render(&self, empty: &str) -> String {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| p.1.is_finite()).map(|p| p.0))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().map(|p| p.0)));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(
                self.bands
                    .iter()
                    .flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2])),
            )
            .filter(|y| y.is_finite());
        let (x0, x1) = bounds(xs);
        let (mut y0, mut y1) = bounds(ys);
        if !(x0.is_finite() && y0.is_finite()) {
            return format!("<p class=\"empty\">{}</p>", esc(empty));
        }
        if self.y_min_zero {
            y0 = y0.min(0.0);
        }
        if y1 - y0 < 1e-12 {
            y0 -= 0.5;
            y1 += 0.5;
        }
        let pad = (y1 - y0) * 0.05;
        let (y0, y1) = (y0 - pad, y1 + pad);
        let x_span = if x1 > x0 { x1 - x0 } else { 1.0 };
        let plot_w = self.width - PAD_L - PAD_R;
        let plot_h = self.height - PAD_T - PAD_B;
        let sx = |x: f64| PAD_L + (x - x0) / x_span * plot_w;
        let sy = |y: f64| PAD_T + (y1 - y) / (y1 - y0) * plot_h;
        let mut svg = format!(
            "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">",
            w = self.width,
            h = self.height
        );
        // Axes and grid: 5 y ticks, 5 x ticks.
        for i in 0..=4 {
            let y = y0 + (y1 - y0) * i as f64 / 4.0;
            let py = sy(y);
            let _ = write!(
                svg,
                "<line class=\"grid\" x1=\"{PAD_L}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.width - PAD_R,
                PAD_L - 4.0,
                py + 4.0,
                esc(&num(y))
            );
            let x = x0 + x_span * i as f64 / 4.0;
            let px = sx(x);
            let _ = write!(
                svg,
                "<text class=\"tick\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                self.height - PAD_B + 16.0,
                esc(&(self.x_label)(x))
            );
        }
        for band in &self.bands {
            // Consecutive hours form a shaded area; an isolated hour is a bar.
            let w = (plot_w / band.points.len().max(1) as f64).clamp(1.0, 6.0);
            for run in band_runs(&band.points) {
                if let [(x, lo, hi)] = run {
                    let _ = write!(
                        svg,
                        "<rect class=\"band\" x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\" fill-opacity=\"0.25\"/>",
                        sx(*x) - w / 2.0,
                        sy(*hi),
                        (sy(*lo) - sy(*hi)).max(0.5),
                        band.color
                    );
                    continue;
                }
                let mut d = String::new();
                for (k, (x, _, hi)) in run.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if k == 0 { "M" } else { "L" },
                        sx(*x),
                        sy(*hi)
                    );
                }
                for (x, lo, _) in run.iter().rev() {
                    let _ = write!(d, "L{:.1},{:.1}", sx(*x), sy(*lo));
                }
                let _ = write!(
                    svg,
                    "<path class=\"band area\" d=\"{d}Z\" fill=\"{}\" fill-opacity=\"0.25\" stroke=\"none\"/>",
                    band.color
                );
            }
        }
        for s in &self.series {
            if s.markers {
                for &(x, y) in s.points.iter().filter(|p| p.1.is_finite()) {
                    let _ = write!(
                        svg,
                        "<circle class=\"point\" data-series=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                        esc(&s.name),
                        sx(x),
                        sy(y),
                        s.color
                    );
                }
                continue;
            }
            // One path per unbroken run of points.
            let mut d = String::new();
            let mut pen_down = false;
            let mut drawn = 0usize;
            for &(x, y) in &s.points {
                if !y.is_finite() {
                    pen_down = false;
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if pen_down { "L" } else { "M" },
                    sx(x),
                    sy(y)
                );
                pen_down = true;
                drawn += 1;
            }
            if drawn > 0 {
                let _ = write!(
                    svg,
                    "<path class=\"line\" data-series=\"{}\" data-points=\"{drawn}\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.4\"/>",
                    esc(&s.name),
                    s.color
                );
            }
        }
        // Legend.
        for (i, s) in self.series.iter().enumerate() {
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"3\" fill=\"{}\"/><text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                PAD_L + 8.0 + (i as f64) * 130.0,
                self.height - 10.0,
                s.color,
                PAD_L + 22.0 + (i as f64) * 130.0,
                self.height - 6.0,
                esc(&s.name)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Horizontal bars, one per (label, value), e.g. PSI per feature.
pub fn bars(items: &[(String, f64)], width: f64, threshold: Option<f64>, empty: &str) -> String {
    if items.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let row = 16.0;
    let label_w = 170.0;
    let height = row * items.len() as f64 + 8.0;
    let max = items
        .iter()
        .map(|i| i.1)
        .filter(|v| v.is_finite())
        .fold(threshold.unwrap_or(0.0), f64::max)
        .max(1e-12);
    let scale = (width - label_w - 70.0) / max;
    let mut svg = format!(
        "<svg class=\"chart bars\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 4.0 + i as f64 * row;
        let over = threshold.is_some_and(|t| *v > t);
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"bar{}\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 6.0,
            y + 11.0,
            esc(label),
            if over { " over" } else { "" },
            (v.max(0.0) * scale).max(0.5),
            row - 4.0,
            label_w + v.max(0.0) * scale + 4.0,
            y + 11.0,
            esc(&num(*v))
        );
    }
    if let Some(t) = threshold {
        let x = label_w + t * scale;
        let _ = write!(
            svg,
            "<line class=\"threshold\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{height}\"/>"
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram from bin counts (equal-width bins over [lo, hi]).
pub fn histogram(counts: &[i64], width: f64, height: f64) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let w = width / counts.len().max(1) as f64;
    let mut svg = format!(
        "<svg class=\"hist\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, c) in counts.iter().enumerate() {
        let h = *c as f64 / max * (height - 2.0);
        let _ = write!(
            svg,
            "<rect class=\"bin\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/>",
            i as f64 * w,
            height - h,
            (w - 1.0).max(0.5)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One bar of a Gantt row: [start, end) in seconds from the row's start, a class, a title.
pub struct GanttBar {
    pub start: f64,
    pub end: f64,
    pub class: &'static str,
    pub title: String,
}

/// Rows of bars on a shared time axis (like Airflow's Gantt view); row labels on the left.
pub fn gantt(rows: &[(String, Vec<GanttBar>)], width: f64, empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let row_h = 18.0;
    let label_w = 150.0;
    let height = row_h * rows.len() as f64 + 24.0;
    let span = rows
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|b| b.end))
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let scale = (width - label_w - 10.0) / span;
    let mut svg = format!(
        "<svg class=\"chart gantt\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, (label, bars)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + 12.0,
            esc(label)
        );
        for b in bars {
            let _ = write!(
                svg,
                "<rect class=\"task {}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
                b.class,
                label_w + b.start * scale,
                ((b.end - b.start) * scale).max(1.5),
                row_h - 4.0,
                esc(&b.title)
            );
        }
    }
    for i in 0..=4 {
        let t = span * i as f64 / 4.0;
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.2} s</text>",
            label_w + t * scale,
            height - 6.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Epoch seconds as `MM-DD HH:00` (UTC).
pub fn hour_label(t: f64) -> String {
    epoch_label(t, "%m-%d %H:00")
}

/// Epoch seconds as `YYYY-MM-DD` (UTC).
pub fn day_label(t: f64) -> String {
    epoch_label(t, "%Y-%m-%d")
}

/// Epoch seconds as `HH:MM` (UTC).
pub fn minute_label(t: f64) -> String {
    epoch_label(t, "%H:%M")
}

fn epoch_label(t: f64, format: &str) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format(format).to_string())
        .unwrap_or_default()
}

/// A plain number label (epochs, steps).
pub fn plain_label(x: f64) -> String {
    format!("{x:.0}")
}

/// A share as a percent label (levels, coverage).
pub fn percent_label(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_data_is_escaped_and_gaps_break_lines() {
        let mut c = Chart::new(400.0, 200.0, plain_label);
        c.series.push(Series {
            name: "<script>alert(1)</script>".into(),
            color: PALETTE[0],
            points: vec![
                (0.0, 1.0),
                (1.0, 2.0),
                (2.0, f64::NAN),
                (3.0, 1.5),
                (4.0, 1.0),
            ],
            markers: false,
        });
        let svg = c.render("nothing");
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        // Two runs: M..L then M..L.
        let d = svg.split(" d=\"").nth(1).expect("path");
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert!(svg.contains("data-points=\"4\""));
    }

    #[test]
    fn nothing_to_draw_gives_the_empty_state() {
        let c = Chart::new(400.0, 200.0, plain_label);
        assert_eq!(
            c.render("no data yet"),
            "<p class=\"empty\">no data yet</p>"
        );
        assert!(bars(&[], 300.0, None, "no PSI yet").contains("no PSI yet"));
    }
}
