//! `/`: the dashboard page for a person. Plain HTML with inline CSS and
//! server-drawn SVG charts: no script, nothing fetched from elsewhere, so
//! it works offline. Long version tails are grouped into "other".

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use semver::Version;

use super::api::parse_version;
use super::query::{Failure, Params, RawParams, Window};
use super::svg::{self, escape, percent, Bar, Layer, Scale, Series, OTHER};
use super::Context;
use crate::protocol::ZoneName;
use crate::stats::{
    cmp_versions_desc, date_of_day, Adoption, Bucket, Source, Summary, TrendPoint, Versions,
};

const PARAMS: &[&str] = &["since", "until", "zone", "top", "version"];
/// The dashboard's default window, in days.
const DEFAULT_DAYS: i64 = 30;
/// The "current" distribution covers the window's last days.
const CURRENT_DAYS: i64 = 7;
/// Longer windows are charted by week.
const DAILY_UP_TO: i64 = 92;
const MAX_TOP: usize = 30;
/// Stands for the zone while the database has none (every count is 0).
const EMPTY_ZONE: &str = "invalid";
/// A page is reused this long for the same parameters: reloading it, or a
/// few people looking, costs one computation.
const PAGE_TTL: Duration = Duration::from_secs(30);

/// The last page rendered, by its parameters. Held while computing, so
/// that simultaneous requests wait for one result.
#[derive(Default)]
pub struct PageCache(tokio::sync::Mutex<Option<(String, Instant, Arc<String>)>>);

/// Status colours: up to date, upgrade available, upgrade required, unknown.
fn status_color(status: Option<u8>) -> &'static str {
    match status {
        Some(1) => "#2f9e44",
        Some(2) => "#e8a317",
        Some(3) => "#d9480f",
        _ => "#9ca3af",
    }
}

fn status_name(status: Option<u8>) -> &'static str {
    status
        .and_then(crate::hint::Status::from_code)
        .map_or("-", crate::hint::Status::label)
}

/// One day's activity.
struct Day {
    day: i64,
    clusters: u64,
    nodes: u64,
    insecure_clusters: f64,
    insecure_nodes: f64,
}

/// Everything the page shows, computed on a blocking thread.
struct Page {
    w: Window,
    top: usize,
    summary: Summary,
    /// The distribution over the window's last days.
    current: Versions,
    /// The distribution over the whole window: which versions get a name
    /// in the stacked chart.
    whole: Versions,
    bucket: Bucket,
    trend: Vec<TrendPoint>,
    days: Vec<Day>,
    adoption: Option<Adoption>,
    /// The version asked for with `version=`, if any.
    asked: Option<Version>,
    zones: BTreeSet<String>,
}

/// The newest version that was answered "up to date" (the latest release),
/// else the newest seen.
fn latest_release(v: &Versions) -> Option<Version> {
    let newest = |status: Option<u8>| {
        v.rows
            .iter()
            .filter(|r| status.is_none() || r.status == status)
            .filter_map(|r| Version::parse(&r.version).ok())
            .max()
    };
    newest(Some(1)).or_else(|| newest(None))
}

fn compute(
    source: &Source,
    mut w: Window,
    top: usize,
    version: Option<Version>,
) -> Result<Page, Failure> {
    // One zone at a time, never a mixed count: the one asked for, else the
    // first; the page offers the others.
    let zones: BTreeSet<String> = source
        .zones()?
        .iter()
        .map(|z| z.as_str().to_string())
        .collect();
    let zone = match w.zones(source)?.into_iter().next() {
        Some(zone) => {
            w.zone = Some(zone.as_str().to_string());
            zone
        }
        // No report yet: an empty page.
        None => ZoneName::new(EMPTY_ZONE).map_err(|_| Failure::bad_request("no zone"))?,
    };
    let summary = source.summary(&zone, w.since, w.until)?;
    let current_first = (w.until - CURRENT_DAYS + 1).max(w.since);
    let current = source.versions(&zone, current_first, w.until)?;
    let whole = source.versions(&zone, w.since, w.until)?;
    let bucket = if w.days() > DAILY_UP_TO {
        Bucket::Week
    } else {
        Bucket::Day
    };
    let trend = source.trend(&zone, w.since, w.until, bucket)?;
    let days = (w.since..=w.until)
        .map(|day| {
            let v = source.versions(&zone, day, day)?;
            Ok(Day {
                day,
                clusters: v.active_clusters,
                nodes: v.active_nodes,
                insecure_clusters: v.insecure_cluster_share(),
                insecure_nodes: v.insecure_node_share(),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let asked = version.clone();
    let adoption = match version.or_else(|| latest_release(&current)) {
        None => None,
        Some(version) => source.adoption(&zone, &version, w.until)?,
    };
    Ok(Page {
        w,
        top,
        summary,
        current,
        whole,
        bucket,
        trend,
        days,
        adoption,
        asked,
        zones,
    })
}

pub async fn page(State(ctx): State<Arc<Context>>, raw: RawParams) -> Response {
    let result: Result<Arc<String>, Failure> = async {
        let params = Params::parse(raw, PARAMS)?;
        let w = params.window(DEFAULT_DAYS)?;
        let top = params.count("top", ctx.top_versions.min(MAX_TOP), MAX_TOP)?;
        let version = params.get("version").map(parse_version).transpose()?;
        let key = format!("{w:?} {top} {version:?}");
        let mut cached = ctx.pages.0.lock().await;
        if let Some((k, at, html)) = cached.as_ref() {
            if *k == key && at.elapsed() < PAGE_TTL {
                return Ok(html.clone());
            }
        }
        let html = ctx
            .with_source(move |source| {
                let page = compute(source, w, top, version)?;
                Ok(Arc::new(render(&page)))
            })
            .await?;
        *cached = Some((key, Instant::now(), html.clone()));
        Ok(html)
    }
    .await;
    let (status, body) = match result {
        Ok(html) => (StatusCode::OK, html.as_str().to_owned()),
        Err(f) => (f.status, error_page(&f)),
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Nothing but this page's own inline style and forms.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                 form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#111827;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{background:#111827;color:#f9fafb;padding:12px 24px;display:flex;flex-wrap:wrap;align-items:center;gap:12px 28px}
header h1{font-size:18px;margin:0;font-weight:600}
header .window{color:#d1d5db}
form{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-left:auto}
form label{color:#d1d5db;font-size:12px}
form input,form select,form button{font:inherit;font-size:13px;padding:3px 6px;border-radius:4px;border:1px solid #4b5563;background:#1f2937;color:#f9fafb}
form input[type=number]{width:4.5em}
form button{background:#2563eb;border-color:#2563eb;cursor:pointer}
main{padding:16px 24px 32px;max-width:1600px;margin:0 auto}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:12px;margin-bottom:16px}
.tile{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile .label{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.tile .value{font-size:26px;font-weight:600;margin:2px 0}
.tile .detail{color:#4b5563;font-size:12px}
.tile.alert .value{color:#d9480f}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:16px}
.grid>section{min-width:0}
.scroll{overflow-x:auto}
@media (max-width:600px){header{padding:10px 12px}main{padding:12px 8px 24px}section{padding:10px 10px}form{margin-left:0}th,td{padding:3px 5px}}
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{font-size:15px;margin:0 0 2px}
section p.sub{margin:0 0 8px;color:#6b7280;font-size:12px}
svg.chart{width:100%;height:auto;display:block}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 0;padding:0;list-style:none;font-size:12px;color:#374151}
.legend li{display:flex;align-items:center;gap:5px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px}
.legend i.dash{height:3px;border-radius:0}
summary{cursor:pointer;font-weight:600;font-size:13px}
.scroll{max-height:320px;overflow-y:auto}
table{border-collapse:collapse;width:100%;margin-top:8px;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
th{color:#6b7280;font-weight:600}
.dot{display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:6px}
footer{color:#6b7280;font-size:12px;margin-top:16px}
a{color:#2563eb}
"#;

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
}

fn error_page(f: &Failure) -> String {
    let mut out = String::new();
    head(&mut out, "vcheckd: error");
    let _ = write!(
        out,
        "<header><h1>vcheckd</h1></header><main><section><h2>{} {}</h2><p>{}</p>\
         <p><a href=\"/\">Back to the dashboard</a></p></section></main></body></html>",
        f.status.as_u16(),
        escape(f.status.canonical_reason().unwrap_or("")),
        escape(&f.message)
    );
    out
}

/// A count that may be fractional (clusters by node share): whole from
/// 100 on, else with one decimal when it has one.
fn amount(v: f64) -> String {
    if v >= 100.0 || (v - v.round()).abs() < 0.05 {
        thousands(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn share(part: f64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part / whole as f64
    }
}

fn tile(out: &mut String, label: &str, value: &str, detail: &str, alert: bool) {
    let _ = write!(
        out,
        "<div class=\"tile{}\"><div class=\"label\">{}</div><div class=\"value\">{}</div>\
         <div class=\"detail\">{}</div></div>",
        if alert { " alert" } else { "" },
        escape(label),
        escape(value),
        escape(detail)
    );
}

fn legend(out: &mut String, items: &[(String, &str, bool)]) {
    out.push_str("<ul class=\"legend\">");
    for (name, color, dashed) in items {
        let _ = write!(
            out,
            "<li><i class=\"{}\" style=\"background:{color}\"></i>{}</li>",
            if *dashed { "dash" } else { "" },
            escape(name)
        );
    }
    out.push_str("</ul>");
}

fn section(out: &mut String, id: &str, title: &str, sub: &str) {
    let _ = write!(
        out,
        "<section id=\"{}\"><h2>{}</h2><p class=\"sub\">{}</p>",
        escape(id),
        escape(title),
        escape(sub)
    );
}

fn form(out: &mut String, p: &Page) {
    let _ = write!(
        out,
        "<form method=\"get\" action=\"/\">\
         <label>from <input type=\"date\" name=\"since\" value=\"{}\"></label>\
         <label>to <input type=\"date\" name=\"until\" value=\"{}\"></label>\
         <label>zone <select name=\"zone\">",
        date_of_day(p.w.since),
        date_of_day(p.w.until)
    );
    let mut zones = p.zones.clone();
    if let Some(z) = &p.w.zone {
        zones.insert(z.clone());
    }
    for z in &zones {
        let selected = if p.w.zone.as_ref() == Some(z) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{0}\"{selected}>{0}</option>",
            escape(z)
        );
    }
    let _ = write!(
        out,
        "</select></label><label>versions shown <input type=\"number\" name=\"top\" min=\"1\" \
         max=\"{MAX_TOP}\" value=\"{}\"></label><button type=\"submit\">Show</button></form>",
        p.top
    );
}

fn tiles(out: &mut String, p: &Page) {
    let s = &p.summary;
    let c = &p.current;
    let active = |days: i64| s.active.iter().find(|a| a.days == days);
    out.push_str("<div class=\"tiles\">");
    if let Some(a7) = active(7) {
        let a1 = active(1).map_or(0, |a| a.clusters);
        let a30 = active(30).map_or(0, |a| a.clusters);
        tile(
            out,
            "Active clusters · 7 days",
            &thousands(a7.clusters),
            &format!("{} today · {} in 30 days", thousands(a1), thousands(a30)),
            false,
        );
        let n1 = active(1).map_or(0, |a| a.nodes);
        let n30 = active(30).map_or(0, |a| a.nodes);
        tile(
            out,
            "Active nodes · 7 days",
            &thousands(a7.nodes),
            &format!("{} today · {} in 30 days", thousands(n1), thousands(n30)),
            false,
        );
    }
    tile(
        out,
        "New / gone clusters",
        &format!(
            "+{} / −{}",
            thousands(s.new_clusters),
            thousands(s.gone_clusters)
        ),
        &format!("in the {} days shown", p.w.days()),
        false,
    );
    tile(
        out,
        "Mixed-version clusters",
        &thousands(c.mixed_clusters),
        &format!(
            "{} of active clusters (upgrading)",
            percent(share(c.mixed_clusters as f64, c.active_clusters))
        ),
        false,
    );
    tile(
        out,
        "On insecure versions",
        &percent(c.insecure_cluster_share()),
        &format!(
            "{} clusters · {} nodes ({})",
            thousands(c.insecure_clusters),
            thousands(c.insecure_nodes),
            percent(c.insecure_node_share())
        ),
        c.insecure_clusters > 0,
    );
    if let Some(a) = &p.adoption {
        let now = a.series.last().map_or(0.0, |x| x.share);
        let days = |d: Option<i64>| d.map_or("not yet".to_string(), |d| format!("{d} d"));
        tile(
            out,
            &format!("Adoption of {}", a.version),
            &percent(now),
            &format!(
                "of clusters on it or newer · 50%: {} · 90%: {}",
                days(a.days_to_50),
                days(a.days_to_90)
            ),
            false,
        );
    }
    out.push_str("</div>");
}

fn distribution(out: &mut String, p: &Page) {
    let c = &p.current;
    section(
        out,
        "versions",
        "Version distribution",
        &format!(
            "Clusters active {}–{}, by version (mixed clusters split by node share); \
             top {} by name, the rest as \"other\".",
            date_of_day(c.first_day),
            date_of_day(c.last_day),
            p.top
        ),
    );
    let rows: Vec<Bar> = c
        .grouped(p.top)
        .into_iter()
        .map(|r| {
            let pct = percent(share(r.cluster_share, c.active_clusters));
            Bar {
                note: format!("{} clusters · {pct}", amount(r.cluster_share)),
                tip: format!(
                    "{}: {} clusters ({pct}), {} nodes, {} reports; {}",
                    r.version,
                    amount(r.cluster_share),
                    thousands(r.nodes),
                    thousands(r.reports),
                    status_name(r.status)
                ),
                color: if r.status.is_none() {
                    OTHER
                } else {
                    status_color(r.status)
                },
                value: r.cluster_share,
                label: r.version,
            }
        })
        .collect();
    out.push_str(&svg::bars("chart-versions", "Version distribution", &rows));
    legend(
        out,
        &[
            ("up to date".into(), status_color(Some(1)), false),
            ("upgrade available".into(), status_color(Some(2)), false),
            (
                "upgrade required (insecure)".into(),
                status_color(Some(3)),
                false,
            ),
            ("not a known release".into(), status_color(Some(0)), false),
            ("other versions".into(), OTHER, false),
        ],
    );
    out.push_str("</section>");
}

/// Versions named in the stacked chart (newest first), each in its
/// status's colour, as in every other chart: a version's colour says what
/// it is answered, wherever it is drawn (white lines part the layers).
fn named_versions(p: &Page) -> Vec<(String, &'static str)> {
    let mut named: Vec<(String, &'static str)> = p
        .whole
        .grouped(p.top)
        .into_iter()
        .filter(|r| r.status.is_some())
        .map(|r| (r.version, status_color(r.status)))
        .collect();
    named.sort_by(|a, b| cmp_versions_desc(&a.0, &b.0));
    named
}

fn adoption_over_time(out: &mut String, p: &Page) {
    let by = match p.bucket {
        Bucket::Day => "day",
        Bucket::Week => "week",
    };
    section(
        out,
        "adoption",
        "Adoption over time",
        &format!(
            "Share of active clusters on each version, per {by}; newest version at the bottom."
        ),
    );
    let named = named_versions(p);
    let index: HashMap<&str, usize> = named
        .iter()
        .enumerate()
        .map(|(i, (v, _))| (v.as_str(), i))
        .collect();
    let mut days: Vec<i64> = p.trend.iter().map(|t| t.day).collect();
    days.dedup();
    let day_index: HashMap<i64, usize> = days.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    // Clusters per (layer, day); the last layer is "other".
    let mut clusters = vec![vec![0.0; days.len()]; named.len() + 1];
    let mut totals = vec![0.0; days.len()];
    for t in &p.trend {
        let d = day_index[&t.day];
        let layer = index
            .get(t.version.as_str())
            .copied()
            .unwrap_or(named.len());
        clusters[layer][d] += t.clusters;
        totals[d] += t.clusters;
    }
    let mut layers: Vec<Layer> = named
        .iter()
        .zip(&clusters)
        .map(|((v, color), c)| Layer {
            name: v.clone(),
            color,
            shares: c
                .iter()
                .zip(&totals)
                .map(|(c, t)| if *t > 0.0 { c / t } else { 0.0 })
                .collect(),
        })
        .collect();
    let other = &clusters[named.len()];
    if other.iter().any(|c| *c > 0.0) {
        layers.push(Layer {
            name: "other".into(),
            color: OTHER,
            shares: other
                .iter()
                .zip(&totals)
                .map(|(c, t)| if *t > 0.0 { c / t } else { 0.0 })
                .collect(),
        });
    }
    out.push_str(&svg::stacked(
        "chart-adoption",
        "Adoption over time",
        &days,
        &layers,
    ));
    let items: Vec<(String, &str, bool)> = layers
        .iter()
        .map(|l| (l.name.clone(), l.color, false))
        .collect();
    legend(out, &items);
    out.push_str("</section>");
}

fn activity(out: &mut String, p: &Page) {
    section(
        out,
        "activity",
        "Active clusters and nodes per day",
        "A cluster or node is active on a day when it reported that day (UTC).",
    );
    let days: Vec<i64> = p.days.iter().map(|d| d.day).collect();
    let series = [
        Series {
            name: "nodes".into(),
            color: "#9c755f",
            values: p.days.iter().map(|d| Some(d.nodes as f64)).collect(),
            dashed: false,
        },
        Series {
            name: "clusters".into(),
            color: "#4e79a7",
            values: p.days.iter().map(|d| Some(d.clusters as f64)).collect(),
            dashed: false,
        },
    ];
    out.push_str(&svg::lines(
        "chart-activity",
        "Active clusters and nodes per day",
        &days,
        &series,
        Scale::Count,
        &[],
    ));
    legend(
        out,
        &[
            ("clusters".into(), "#4e79a7", false),
            ("nodes".into(), "#9c755f", false),
        ],
    );
    out.push_str("</section>");
}

fn insecure(out: &mut String, p: &Page) {
    section(
        out,
        "insecure",
        "Share on insecure versions",
        "Active clusters with any node, and nodes, on a version answered \
         \"upgrade required\" (security fix or end of life), per day.",
    );
    let days: Vec<i64> = p.days.iter().map(|d| d.day).collect();
    let active = |d: &Day| d.nodes > 0;
    let series = [
        Series {
            name: "clusters".into(),
            color: "#d9480f",
            values: p
                .days
                .iter()
                .map(|d| active(d).then_some(d.insecure_clusters))
                .collect(),
            dashed: false,
        },
        Series {
            name: "nodes".into(),
            color: "#d9480f",
            values: p
                .days
                .iter()
                .map(|d| active(d).then_some(d.insecure_nodes))
                .collect(),
            dashed: true,
        },
    ];
    out.push_str(&svg::lines(
        "chart-insecure",
        "Share on insecure versions",
        &days,
        &series,
        Scale::Share,
        &[],
    ));
    legend(
        out,
        &[
            ("clusters".into(), "#d9480f", false),
            ("nodes".into(), "#d9480f", true),
        ],
    );
    out.push_str("</section>");
}

fn release(out: &mut String, p: &Page) {
    let Some(a) = &p.adoption else {
        section(
            out,
            "release",
            "Adoption of the latest release",
            &match &p.asked {
                Some(v) => format!("No report has carried version {v} yet."),
                None => "No release has been reported in this window.".to_string(),
            },
        );
        out.push_str("</section>");
        return;
    };
    let days = |d: Option<i64>| d.map_or("not yet".to_string(), |d| format!("{d} days"));
    section(
        out,
        "release",
        &format!("Adoption of {}", a.version),
        &format!(
            "Share of clusters active in the trailing 7 days whose nodes all run {} or newer. \
             First seen {}; 50% after {}, 90% after {}.",
            a.version,
            a.released_day.map_or("-".into(), date_of_day),
            days(a.days_to_50),
            days(a.days_to_90)
        ),
    );
    let shown: Vec<_> = a.series.iter().filter(|x| x.day >= p.w.since).collect();
    let days: Vec<i64> = shown.iter().map(|x| x.day).collect();
    let series = [Series {
        name: format!("{} or newer", a.version),
        color: "#2f9e44",
        values: shown.iter().map(|x| Some(x.share)).collect(),
        dashed: false,
    }];
    out.push_str(&svg::lines(
        "chart-release",
        &format!("Adoption of {}", a.version),
        &days,
        &series,
        Scale::Share,
        &[(0.5, "50%"), (0.9, "90%")],
    ));
    out.push_str("</section>");
}

fn table(out: &mut String, p: &Page) {
    let c = &p.current;
    section(
        out,
        "table",
        "All versions",
        &format!(
            "Clusters active {}–{}: {} active clusters, {} mixed-version, {} active nodes.",
            date_of_day(c.first_day),
            date_of_day(c.last_day),
            thousands(c.active_clusters),
            thousands(c.mixed_clusters),
            thousands(c.active_nodes)
        ),
    );
    let _ = write!(
        out,
        "<details id=\"all-versions\"{}><summary>All {} versions, {}–{}</summary><div class=\"scroll\"><table>\
         <thead><tr><th>version</th><th>status</th>\
         <th title=\"clusters all of whose nodes run the version\">clusters</th>\
         <th title=\"mixed clusters counted by node share\">incl. mixed</th>\
         <th>share</th><th>nodes</th><th>reports</th></tr></thead><tbody>",
        // Open while short enough to read at a glance.
        if c.rows.len() <= 12 { " open" } else { "" },
        c.rows.len(),
        date_of_day(c.first_day),
        date_of_day(c.last_day)
    );
    for r in &c.rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><span class=\"dot\" style=\"background:{}\"></span>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.version),
            status_color(r.status),
            status_name(r.status),
            thousands(r.clusters),
            amount(r.cluster_share),
            percent(share(r.cluster_share, c.active_clusters)),
            thousands(r.nodes),
            thousands(r.reports),
        );
    }
    out.push_str("</tbody></table></div></details></section>");
}

fn render(p: &Page) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let zone = p.w.zone.as_deref().unwrap_or("no reports yet");
    head(&mut out, &format!("vcheckd · {zone}"));
    let _ = write!(
        out,
        "<header><h1>vcheckd fleet</h1><span class=\"window\">{} · {} – {}</span>",
        escape(zone),
        date_of_day(p.w.since),
        date_of_day(p.w.until)
    );
    form(&mut out, p);
    out.push_str("</header><main>");
    tiles(&mut out, p);
    out.push_str("<div class=\"grid\">");
    distribution(&mut out, p);
    adoption_over_time(&mut out, p);
    release(&mut out, p);
    insecure(&mut out, p);
    activity(&mut out, p);
    table(&mut out, p);
    out.push_str("</div>");
    let now = crate::clock::unix_now();
    let _ = write!(
        out,
        "<footer>Computed at {:02}:{:02}:{:02} UTC (at most every {} s). Days are UTC. \
         The same numbers as JSON: \
         <a href=\"/api/v1/versions\">/api/v1/versions</a>, \
         <a href=\"/api/v1/summary\">summary</a>, <a href=\"/api/v1/trend\">trend</a>; \
         Prometheus: <a href=\"/metrics\">/metrics</a>.</footer></main></body></html>",
        now / 3600 % 24,
        now / 60 % 60,
        now % 60,
        PAGE_TTL.as_secs()
    );
    out
}
