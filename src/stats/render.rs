//! Text forms of the statistics: aligned tables for people, CSV for
//! spreadsheets. (JSON is serde's form of the same structs.)

use super::{date_of_day, Adoption, Summary, TrendPoint, Versions};

/// A statistic as a header and rows of cells.
pub trait Tabular {
    fn header(&self) -> Vec<&'static str>;
    fn rows(&self) -> Vec<Vec<String>>;
    /// Lines printed under a table for people; CSV leaves them out, so that
    /// every CSV row has the header's meaning.
    fn footer(&self) -> Vec<String> {
        Vec::new()
    }
}

pub fn table(t: &dyn Tabular) -> String {
    let header = t.header();
    let rows = t.rows();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("  {cell:>w$}"));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    for note in t.footer() {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

pub fn csv(t: &dyn Tabular) -> String {
    let quote = |cell: &str| {
        if cell.contains([',', '"', '\n']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.to_string()
        }
    };
    let mut out = t.header().join(",") + "\n";
    for row in t.rows() {
        out.push_str(&row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

impl Tabular for Summary {
    fn header(&self) -> Vec<&'static str> {
        vec!["metric", "value"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![
            vec!["zone".to_string(), self.zone.clone()],
            vec![
                "window".to_string(),
                format!(
                    "{}..{}",
                    date_of_day(self.first_day),
                    date_of_day(self.last_day)
                ),
            ],
        ];
        for a in &self.active {
            rows.push(vec![
                format!("active_clusters_{}d", a.days),
                a.clusters.to_string(),
            ]);
            rows.push(vec![
                format!("active_nodes_{}d", a.days),
                a.nodes.to_string(),
            ]);
        }
        for (k, v) in [
            ("new_clusters", self.new_clusters),
            ("gone_clusters", self.gone_clusters),
            ("reports", self.reports),
            ("anonymous_reports", self.anonymous_reports),
            ("duplicates", self.duplicates),
            ("rejected_names", self.rejected_names),
            ("dropped", self.dropped),
            ("reports_v1", self.reports_v1),
            ("reports_v2", self.reports_v2),
        ] {
            rows.push(vec![k.to_string(), v.to_string()]);
        }
        rows
    }
}

impl Tabular for Versions {
    fn footer(&self) -> Vec<String> {
        self.footer_lines()
    }

    fn header(&self) -> Vec<&'static str> {
        vec![
            "zone",
            "version",
            "status",
            "clusters",
            "clusters_by_node_share",
            "nodes",
            "reports",
            "anonymous",
        ]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    self.zone.clone(),
                    r.version.clone(),
                    r.status.map_or("-".into(), |s| s.to_string()),
                    r.clusters.to_string(),
                    format!("{:.2}", r.cluster_share),
                    r.nodes.to_string(),
                    r.reports.to_string(),
                    r.anonymous_reports.to_string(),
                ]
            })
            .collect()
    }
}

impl Versions {
    fn footer_lines(&self) -> Vec<String> {
        vec![
            format!(
                "active: {} clusters, {} nodes; mixed-version clusters: {} (CLUSTERS counts the clusters all of whose nodes run the version; CLUSTERS_BY_NODE_SHARE also counts a mixed cluster, in part: 3 of its 4 nodes add 0.75)",
                self.active_clusters, self.active_nodes, self.mixed_clusters
            ),
            format!(
                "on insecure versions (status 3): {} clusters ({}), {} nodes ({})",
                self.insecure_clusters,
                pct(self.insecure_cluster_share()),
                self.insecure_nodes,
                pct(self.insecure_node_share())
            ),
        ]
    }
}

/// A trend, as rows of (date, version, clusters, nodes).
pub struct TrendTable<'a>(pub &'a [TrendPoint]);

impl Tabular for TrendTable<'_> {
    fn header(&self) -> Vec<&'static str> {
        vec!["zone", "date", "version", "clusters", "nodes"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|p| {
                vec![
                    p.zone.clone(),
                    date_of_day(p.day),
                    p.version.clone(),
                    format!("{:.2}", p.clusters),
                    p.nodes.to_string(),
                ]
            })
            .collect()
    }
}

impl Tabular for Adoption {
    fn header(&self) -> Vec<&'static str> {
        vec!["zone", "date", "active_clusters", "share"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.series
            .iter()
            .map(|p| {
                vec![
                    self.zone.clone(),
                    date_of_day(p.day),
                    p.active_clusters.to_string(),
                    pct(p.share),
                ]
            })
            .collect()
    }
}
