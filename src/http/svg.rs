//! Small SVG charts, drawn on the server: horizontal bars, a 100% stacked
//! area over days, and lines over days. Every text that comes from data is
//! escaped; hovering a shape shows its `<title>` as a tooltip (no script).

use std::fmt::Write;

use crate::stats::date_of_day;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
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

/// The colour of versions grouped as "other".
pub const OTHER: &str = "#bab0ac";

const WIDTH: f64 = 640.0;
const FONT: &str =
    "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\" font-size=\"12\"";

fn open(out: &mut String, id: &str, title: &str, height: f64) {
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"{t}\" \
         viewBox=\"0 0 {WIDTH} {height}\" {FONT}>\
         <title>{t}</title>",
        id = escape(id),
        t = escape(title),
    );
}

fn empty(id: &str, title: &str, message: &str) -> String {
    let mut out = String::new();
    open(&mut out, id, title, 80.0);
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"44\" text-anchor=\"middle\" fill=\"#6b7280\">{}</text></svg>",
        WIDTH / 2.0,
        escape(message)
    );
    out
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
pub fn bars(id: &str, title: &str, rows: &[Bar]) -> String {
    if rows.is_empty() {
        return empty(id, title, "No active clusters in this window");
    }
    const ROW: f64 = 24.0;
    const LEFT: f64 = 96.0;
    const BAR_MAX: f64 = 360.0;
    let height = rows.len() as f64 * ROW + 8.0;
    let max = rows.iter().map(|r| r.value).fold(0.0, f64::max).max(1e-9);
    let mut out = String::new();
    open(&mut out, id, title, height);
    for (i, r) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * ROW;
        let w = (r.value / max * BAR_MAX).max(if r.value > 0.0 { 1.5 } else { 0.0 });
        let _ = write!(
            out,
            "<g class=\"bar\"><title>{tip}</title>\
             <text x=\"{lx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#111827\">{label}</text>\
             <rect x=\"{LEFT}\" y=\"{by:.1}\" width=\"{w:.1}\" height=\"16\" rx=\"2\" fill=\"{color}\"/>\
             <text x=\"{nx:.1}\" y=\"{ty:.1}\" fill=\"#374151\">{note}</text></g>",
            tip = escape(&r.tip),
            lx = LEFT - 8.0,
            ty = y + 12.5,
            label = escape(&r.label),
            by = y + 1.0,
            color = r.color,
            nx = LEFT + w + 6.0,
            note = escape(&r.note),
        );
    }
    out.push_str("</svg>");
    out
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

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// "Mar 4" for a day number.
pub fn short_date(day: i64) -> String {
    let date = date_of_day(day);
    let month: usize = date[5..7].parse().unwrap_or(1);
    let d: u32 = date[8..10].parse().unwrap_or(1);
    format!("{} {d}", MONTHS[month.clamp(1, 12) - 1])
}

impl Frame {
    fn new(height: f64, first: i64, last: i64) -> Self {
        Frame {
            left: 48.0,
            right: WIDTH - 14.0,
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

    /// Horizontal grid lines with labels, and date ticks along x.
    fn axes(&self, out: &mut String, max: f64, label: impl Fn(f64) -> String) {
        for i in 0..=4 {
            let v = max * f64::from(i) / 4.0;
            let y = self.y(v, max);
            let _ = write!(
                out,
                "<line x1=\"{l}\" x2=\"{r}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
                 <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#6b7280\">{text}</text>",
                l = self.left,
                r = self.right,
                tx = self.left - 6.0,
                ty = y + 4.0,
                text = escape(&label(v)),
            );
        }
        let span = self.last - self.first;
        let step = match span {
            0..=7 => 1,
            8..=14 => 2,
            15..=45 => 7,
            46..=120 => 14,
            121..=400 => 30,
            _ => 91,
        };
        let mut day = self.last;
        while day >= self.first {
            let x = self.x(day);
            // Labels at the ends stay inside the chart.
            let anchor = if x > self.right - 24.0 {
                "end"
            } else if x < self.left + 24.0 {
                "start"
            } else {
                "middle"
            };
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{b}\" y2=\"{b2}\" stroke=\"#9ca3af\"/>\
                 <text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"{anchor}\" fill=\"#6b7280\">{d}</text>",
                b = self.bottom,
                b2 = self.bottom + 4.0,
                ty = self.bottom + 17.0,
                d = escape(&short_date(day)),
            );
            day -= step;
        }
        let _ = write!(
            out,
            "<line x1=\"{l}\" x2=\"{r}\" y1=\"{b}\" y2=\"{b}\" stroke=\"#9ca3af\"/>",
            l = self.left,
            r = self.right,
            b = self.bottom,
        );
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

/// Shares per day stacked to 100%, the first layer at the bottom. `days`
/// are consecutive day numbers; each layer has one share per day.
pub fn stacked(id: &str, title: &str, days: &[i64], layers: &[Layer]) -> String {
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return empty(id, title, "No data in this window");
    };
    if layers.is_empty() {
        return empty(id, title, "No active clusters in this window");
    }
    let height = 260.0;
    let f = Frame::new(height, first, last);
    let mut out = String::new();
    open(&mut out, id, title, height);
    f.axes(&mut out, 1.0, percent);
    // With one day there is no area: widen it into a column.
    let xs: Vec<(f64, f64)> = if days.len() == 1 {
        vec![(f.left + 200.0, f.right - 200.0)]
    } else {
        days.iter().map(|&d| (f.x(d), f.x(d))).collect()
    };
    let mut below = vec![0.0; days.len()];
    for layer in layers {
        let above: Vec<f64> = below
            .iter()
            .zip(&layer.shares)
            .map(|(b, s)| (b + s).min(1.0))
            .collect();
        let mut points = String::new();
        for (i, &(x0, x1)) in xs.iter().enumerate() {
            let y = f.y(above[i], 1.0);
            let _ = write!(points, "{x0:.1},{y:.1} {x1:.1},{y:.1} ");
        }
        for (i, &(x0, x1)) in xs.iter().enumerate().rev() {
            let y = f.y(below[i], 1.0);
            let _ = write!(points, "{x1:.1},{y:.1} {x0:.1},{y:.1} ");
        }
        let latest = layer.shares.last().copied().unwrap_or(0.0);
        let _ = write!(
            out,
            "<polygon class=\"layer\" points=\"{}\" fill=\"{}\" stroke=\"#ffffff\" stroke-width=\"1.5\">\
             <title>{} ({} on {})</title></polygon>",
            points.trim_end(),
            layer.color,
            escape(&layer.name),
            percent(latest),
            escape(&date_of_day(last)),
        );
        below = above;
    }
    out.push_str("</svg>");
    out
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
    days: &[i64],
    series: &[Series],
    scale: Scale,
    guides: &[(f64, &str)],
) -> String {
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return empty(id, title, "No data in this window");
    };
    let peak = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .chain(guides.iter().map(|(v, _)| v))
        .fold(0.0_f64, |a, b| a.max(*b));
    if series.iter().all(|s| s.values.iter().all(Option::is_none)) {
        return empty(id, title, "No data in this window");
    }
    let max = match scale {
        Scale::Count => nice_ceiling(peak),
        Scale::Share => nice_ceiling(peak.max(0.01)).min(1.0),
    };
    let height = 240.0;
    let f = Frame::new(height, first, last);
    let mut out = String::new();
    open(&mut out, id, title, height);
    match scale {
        Scale::Count => f.axes(&mut out, max, count_label),
        Scale::Share => f.axes(&mut out, max, percent),
    }
    for (v, label) in guides {
        let y = f.y(*v, max);
        let _ = write!(
            out,
            "<line x1=\"{l}\" x2=\"{r}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#9ca3af\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#6b7280\">{t}</text>",
            l = f.left,
            r = f.right,
            tx = f.right - 2.0,
            ty = y - 4.0,
            t = escape(label),
        );
    }
    let show = |v: f64| match scale {
        Scale::Count => count_label(v),
        Scale::Share => percent(v),
    };
    for s in series {
        // One polyline per run of days with values.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (day, v) in days.iter().zip(&s.values) {
            match v {
                Some(v) => runs
                    .last_mut()
                    .expect("one run at least")
                    .push((f.x(*day), f.y(*v, max))),
                None => runs.push(Vec::new()),
            }
        }
        let dash = if s.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<g class=\"series\"><title>{}</title>",
            escape(&s.name)
        );
        for run in runs.iter().filter(|r| !r.is_empty()) {
            if run.len() == 1 {
                let _ = write!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
                    run[0].0, run[0].1, s.color
                );
                continue;
            }
            let points: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" \
                 stroke-linejoin=\"round\"{dash}/>",
                points.join(" "),
                s.color
            );
        }
        out.push_str("</g>");
        // Hover targets with the exact values, while they stay few.
        if days.len() <= 120 {
            for (day, v) in days.iter().zip(&s.values) {
                if let Some(v) = v {
                    let _ = write!(
                        out,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"transparent\">\
                         <title>{}: {} on {}</title></circle>",
                        f.x(*day),
                        f.y(*v, max),
                        escape(&s.name),
                        escape(&show(*v)),
                        escape(&date_of_day(*day)),
                    );
                }
            }
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_data_is_escaped() {
        let svg = bars(
            "x",
            "t<",
            &[Bar {
                label: "<script>alert(1)</script>".into(),
                value: 1.0,
                note: "a & b".into(),
                color: OTHER,
                tip: "\"quoted\"".into(),
            }],
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("a &amp; b"));
        assert!(svg.contains("&quot;quoted&quot;"));
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
    }

    #[test]
    fn stacked_layers_and_empty_charts() {
        let svg = stacked(
            "s",
            "t",
            &[1, 2, 3],
            &[
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
            ],
        );
        assert_eq!(svg.matches("<polygon").count(), 2);
        assert!(svg.ends_with("</svg>"));
        assert!(lines("l", "t", &[], &[], Scale::Count, &[]).contains("No data"));
    }
}
