//! Small SVG charts, drawn on the server: horizontal bars, a 100% stacked
//! area over days, and lines over days. Markup is maud's, which escapes
//! every text and attribute value that comes from data; hovering a shape
//! shows its `<title>` as a tooltip (no script).
//!
//! Each chart is drawn for a [`Width`]: its units are CSS pixels at that
//! width, so its 12-unit text reads as 12 px wherever it is shown at about
//! its width. The page draws every chart wide and narrow and lets CSS show
//! the one that fits the screen: one drawing scaled down to a phone would
//! shrink its text to 7 px.

use std::fmt::Write;

use maud::{html, Markup, Render};

use crate::clock::date_of_day;

/// The colour of versions grouped as "other".
pub const OTHER: &str = "#bab0ac";

const FONT_FAMILY: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/// The width a chart is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// A chart card on a laptop or desktop screen (the page's grid).
    Wide,
    /// A phone's screen (390 px), less the page's margins.
    Narrow,
}

impl Width {
    pub const ALL: [Width; 2] = [Width::Wide, Width::Narrow];

    /// The drawing's width in its own units.
    fn units(self) -> f64 {
        match self {
            Width::Wide => 640.0,
            Width::Narrow => 360.0,
        }
    }

    /// The CSS class that shows or hides the drawing (see the page's style).
    pub fn class(self) -> &'static str {
        match self {
            Width::Wide => "wide",
            Width::Narrow => "narrow",
        }
    }

    /// The element id of chart `id` drawn at this width.
    fn id(self, id: &str) -> String {
        match self {
            Width::Wide => id.to_string(),
            Width::Narrow => format!("{id}-narrow"),
        }
    }
}

/// A coordinate or length, written with one decimal.
#[derive(Clone, Copy)]
struct U(f64);

impl Render for U {
    fn render_to(&self, buffer: &mut String) {
        let _ = write!(buffer, "{:.1}", self.0);
    }
}

fn chart(id: &str, title: &str, width: Width, height: f64, body: Markup) -> Markup {
    html! {
        svg id=(width.id(id)) class={ "chart " (width.class()) } role="img" aria-label=(title)
            viewBox={ "0 0 " (width.units()) " " (height) }
            font-family=(FONT_FAMILY) font-size="12" {
            title { (title) }
            (body)
        }
    }
}

fn empty(id: &str, title: &str, width: Width, message: &str) -> Markup {
    let body = html! {
        text x=(U(width.units() / 2.0)) y="44" text-anchor="middle" fill="#6b7280" { (message) }
    };
    chart(id, title, width, 80.0, body)
}

/// One horizontal bar.
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// Shown right of the bar, e.g. "412 clusters · 38.2%".
    pub note: String,
    pub color: &'static str,
    /// Tooltip.
    pub tip: String,
}

/// Horizontal bars, one per row, scaled to the largest value.
pub fn bars(id: &str, title: &str, width: Width, rows: &[Bar]) -> Markup {
    if rows.is_empty() {
        return empty(id, title, width, "No active clusters in this window");
    }
    const ROW: f64 = 24.0;
    const LEFT: f64 = 96.0;
    /// Room right of the longest bar for its note ("1,234 clusters · 38.2%").
    const NOTE: f64 = 150.0;
    let bar_max = width.units() - LEFT - NOTE;
    let height = rows.len() as f64 * ROW + 8.0;
    let max = rows.iter().map(|r| r.value).fold(0.0, f64::max).max(1e-9);
    let body = html! {
        @for (i, r) in rows.iter().enumerate() {
            @let y = 4.0 + i as f64 * ROW;
            @let w = (r.value / max * bar_max).max(if r.value > 0.0 { 1.5 } else { 0.0 });
            g class="bar" {
                title { (r.tip) }
                text x=(U(LEFT - 8.0)) y=(U(y + 12.5)) text-anchor="end" fill="#111827" { (r.label) }
                rect x=(U(LEFT)) y=(U(y + 1.0)) width=(U(w)) height="16" rx="2" fill=(r.color) {}
                text x=(U(LEFT + w + 6.0)) y=(U(y + 12.5)) fill="#374151" { (r.note) }
            }
        }
    };
    chart(id, title, width, height, body)
}

/// A plot area with day positions along x.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    first: i64,
    last: i64,
}

/// "Mar 4" for a day number (the date itself outside jiff's years).
pub fn short_date(day: i64) -> String {
    day.checked_mul(86_400)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| date_of_day(day), |t| t.strftime("%b %-d").to_string())
}

impl Frame {
    fn new(width: Width, height: f64, first: i64, last: i64) -> Self {
        Frame {
            left: 48.0,
            right: width.units() - 14.0,
            top: 10.0,
            bottom: height - 24.0,
            first,
            last,
        }
    }

    fn x(&self, day: i64) -> f64 {
        if self.last == self.first {
            return (self.left + self.right) / 2.0;
        }
        self.left
            + (day - self.first) as f64 / (self.last - self.first) as f64 * (self.right - self.left)
    }

    /// y for a value in 0..=max.
    fn y(&self, value: f64, max: f64) -> f64 {
        self.bottom - (value / max).clamp(0.0, 1.0) * (self.bottom - self.top)
    }

    /// Days between date ticks: the shortest of a few calendar-like steps
    /// whose labels ("Nov 23", about 40 units) fit the plot's width.
    fn tick_step(&self) -> i64 {
        let room = (((self.right - self.left) / 64.0) as i64).max(2);
        let span = self.last - self.first;
        [1, 2, 7, 14, 30, 91, 182, 365]
            .into_iter()
            .find(|step| span / step < room)
            .unwrap_or(span / (room - 1) + 1)
    }

    /// Horizontal grid lines with labels, and date ticks along x.
    fn axes(&self, max: f64, label: impl Fn(f64) -> String) -> Markup {
        let step = self.tick_step();
        let ticks = (0..)
            .map(|i| self.last - i * step)
            .take_while(|day| *day >= self.first);
        html! {
            @for i in 0..=4 {
                @let v = max * f64::from(i) / 4.0;
                @let y = self.y(v, max);
                line x1=(U(self.left)) x2=(U(self.right)) y1=(U(y)) y2=(U(y)) stroke="#e5e7eb" {}
                text x=(U(self.left - 6.0)) y=(U(y + 4.0)) text-anchor="end" fill="#6b7280" { (label(v)) }
            }
            @for day in ticks {
                @let x = self.x(day);
                // Labels at the ends stay inside the chart.
                @let anchor = if x > self.right - 24.0 {
                    "end"
                } else if x < self.left + 24.0 {
                    "start"
                } else {
                    "middle"
                };
                line x1=(U(x)) x2=(U(x)) y1=(U(self.bottom)) y2=(U(self.bottom + 4.0)) stroke="#9ca3af" {}
                text x=(U(x)) y=(U(self.bottom + 17.0)) text-anchor=(anchor) fill="#6b7280" { (short_date(day)) }
            }
            line x1=(U(self.left)) x2=(U(self.right)) y1=(U(self.bottom)) y2=(U(self.bottom)) stroke="#9ca3af" {}
        }
    }
}

/// A layer of a stacked chart: its share of the whole on each day.
pub struct Layer {
    pub name: String,
    pub color: &'static str,
    pub shares: Vec<f64>,
}

pub fn percent(v: f64) -> String {
    let p = v * 100.0;
    if p != 0.0 && p.abs() < 10.0 && (p - p.round()).abs() > 0.05 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// Points of a polygon or polyline, `x,y x,y ...`.
fn points(xy: impl Iterator<Item = (f64, f64)>) -> String {
    let mut out = String::new();
    for (x, y) in xy {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{x:.1},{y:.1}");
    }
    out
}

/// Shares per day stacked to 100%, the first layer at the bottom. `days`
/// are consecutive day numbers; each layer has one share per day.
pub fn stacked(id: &str, title: &str, width: Width, days: &[i64], layers: &[Layer]) -> Markup {
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return empty(id, title, width, "No data in this window");
    };
    if layers.is_empty() {
        return empty(id, title, width, "No active clusters in this window");
    }
    let height = 260.0;
    let f = Frame::new(width, height, first, last);
    // With one day there is no area: widen it into a column.
    let xs: Vec<(f64, f64)> = if days.len() == 1 {
        let middle = (f.left + f.right) / 2.0;
        let half = (f.right - f.left) / 4.0;
        vec![(middle - half, middle + half)]
    } else {
        days.iter().map(|&d| (f.x(d), f.x(d))).collect()
    };
    let mut below = vec![0.0; days.len()];
    let mut shapes = Vec::with_capacity(layers.len());
    for layer in layers {
        let above: Vec<f64> = below
            .iter()
            .zip(&layer.shares)
            .map(|(b, s)| (b + s).min(1.0))
            .collect();
        let top = xs
            .iter()
            .zip(&above)
            .flat_map(|(&(x0, x1), &a)| [(x0, f.y(a, 1.0)), (x1, f.y(a, 1.0))]);
        let bottom = xs
            .iter()
            .zip(&below)
            .rev()
            .flat_map(|(&(x0, x1), &b)| [(x1, f.y(b, 1.0)), (x0, f.y(b, 1.0))]);
        shapes.push(points(top.chain(bottom)));
        below = above;
    }
    let body = html! {
        (f.axes(1.0, percent))
        @for (layer, shape) in layers.iter().zip(&shapes) {
            polygon class="layer" points=(shape) fill=(layer.color) stroke="#ffffff" stroke-width="1.5" {
                title {
                    (layer.name) " (" (percent(layer.shares.last().copied().unwrap_or(0.0)))
                    " on " (date_of_day(last)) ")"
                }
            }
        }
    };
    chart(id, title, width, height, body)
}

/// One line of a line chart; `None` where there is no value (a gap).
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub values: Vec<Option<f64>>,
    pub dashed: bool,
}

/// How the y axis reads.
#[derive(Clone, Copy)]
pub enum Scale {
    Count,
    /// Values are fractions 0..=1.
    Share,
}

impl Scale {
    fn label(self, v: f64) -> String {
        match self {
            Scale::Count => count_label(v),
            Scale::Share => percent(v),
        }
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v * 0.999_999)
        .unwrap_or(10.0 * magnitude)
}

fn count_label(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Lines over consecutive days, with optional horizontal guides
/// (value, label), e.g. the 50% and 90% marks.
pub fn lines(
    id: &str,
    title: &str,
    width: Width,
    days: &[i64],
    series: &[Series],
    scale: Scale,
    guides: &[(f64, &str)],
) -> Markup {
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return empty(id, title, width, "No data in this window");
    };
    if series.iter().all(|s| s.values.iter().all(Option::is_none)) {
        return empty(id, title, width, "No data in this window");
    }
    let peak = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .chain(guides.iter().map(|(v, _)| v))
        .fold(0.0_f64, |a, b| a.max(*b));
    let max = match scale {
        Scale::Count => nice_ceiling(peak),
        Scale::Share => nice_ceiling(peak.max(0.01)).min(1.0),
    };
    let height = 240.0;
    let f = Frame::new(width, height, first, last);
    // Per series, one polyline per run of days with values.
    let runs: Vec<Vec<Vec<(f64, f64)>>> = series
        .iter()
        .map(|s| {
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (day, v) in days.iter().zip(&s.values) {
                match (v, runs.last_mut()) {
                    (Some(v), Some(run)) => run.push((f.x(*day), f.y(*v, max))),
                    _ => runs.push(Vec::new()),
                }
            }
            runs.retain(|r| !r.is_empty());
            runs
        })
        .collect();
    // Hover targets with the exact values, while they stay few.
    let targets = days.len() <= 120;
    let body = html! {
        (f.axes(max, |v| scale.label(v)))
        @for (v, label) in guides {
            @let y = f.y(*v, max);
            line x1=(U(f.left)) x2=(U(f.right)) y1=(U(y)) y2=(U(y)) stroke="#9ca3af" stroke-dasharray="4 3" {}
            text x=(U(f.right - 2.0)) y=(U(y - 4.0)) text-anchor="end" fill="#6b7280" { (label) }
        }
        @for (s, runs) in series.iter().zip(&runs) {
            g class="series" {
                title { (s.name) }
                @for run in runs {
                    @if let [(x, y)] = run[..] {
                        circle cx=(U(x)) cy=(U(y)) r="3" fill=(s.color) {}
                    } @else {
                        polyline points=(points(run.iter().copied())) fill="none" stroke=(s.color)
                            stroke-width="2" stroke-linejoin="round"
                            stroke-dasharray=[s.dashed.then_some("6 4")] {}
                    }
                }
            }
            @if targets {
                @for (day, v) in days.iter().zip(&s.values) {
                    @if let Some(v) = v {
                        circle cx=(U(f.x(*day))) cy=(U(f.y(*v, max))) r="4" fill="transparent" {
                            title { (s.name) ": " (scale.label(*v)) " on " (date_of_day(*day)) }
                        }
                    }
                }
            }
        }
    };
    chart(id, title, width, height, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_data_is_escaped() {
        let svg = bars(
            "x",
            "t<",
            Width::Wide,
            &[Bar {
                label: "<script>alert(1)</script>".into(),
                value: 1.0,
                note: "a & b".into(),
                color: OTHER,
                tip: "\"quoted\"".into(),
            }],
        )
        .into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("a &amp; b"));
        assert!(svg.contains("&quot;quoted&quot;"));
        assert!(svg.contains("aria-label=\"t&lt;\""));
    }

    #[test]
    fn ceilings_and_labels() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(1_234.0), 2_000.0);
        assert_eq!(nice_ceiling(0.23), 0.25);
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(0.034), "3.4%");
        assert_eq!(short_date(20_415), "Nov 23");
        assert_eq!(short_date(20_384), "Oct 23");
        assert_eq!(short_date(20_393), "Nov 1");
    }

    #[test]
    fn date_ticks_fit_the_width() {
        // 30 days: weekly ticks wide, fortnightly on a phone; a year:
        // monthly wide, quarterly on a phone.
        let ticks = |w: Width, span: i64| Frame::new(w, 240.0, 0, span).tick_step();
        assert_eq!(ticks(Width::Wide, 29), 7);
        assert_eq!(ticks(Width::Narrow, 29), 14);
        assert_eq!(ticks(Width::Wide, 6), 1);
        assert_eq!(ticks(Width::Narrow, 6), 2);
        assert_eq!(ticks(Width::Wide, 364), 91);
        assert_eq!(ticks(Width::Narrow, 364), 182);
        // Past every step: still at most as many ticks as fit.
        let f = Frame::new(Width::Narrow, 240.0, 0, 36_500);
        assert!(36_500 / f.tick_step() < 4, "{}", f.tick_step());
    }

    #[test]
    fn stacked_layers_and_empty_charts() {
        let layers = [
            Layer {
                name: "1.0.0".into(),
                color: "#e8a317",
                shares: vec![1.0, 0.5, 0.2],
            },
            Layer {
                name: "2.0.0".into(),
                color: "#2f9e44",
                shares: vec![0.0, 0.5, 0.8],
            },
        ];
        for width in Width::ALL {
            let svg = stacked("s", "t", width, &[1, 2, 3], &layers).into_string();
            assert_eq!(svg.matches("<polygon").count(), 2);
            assert!(svg.ends_with("</svg>"));
        }
        let svg = stacked("s", "t", Width::Narrow, &[1, 2, 3], &layers).into_string();
        assert!(
            svg.starts_with("<svg id=\"s-narrow\" class=\"chart narrow\""),
            "{svg}"
        );
        assert!(svg.contains("viewBox=\"0 0 360 260\""), "{svg}");
        let none = lines("l", "t", Width::Wide, &[], &[], Scale::Count, &[]).into_string();
        assert!(none.contains("No data"));
    }
}
