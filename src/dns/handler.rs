//! The transports' side of the responder: the current zones, the clock,
//! the journal and the metrics, which the pure [`respond`] does not touch.
//!
//! The UDP and TCP loops call [`Handler::handle`] for each request; it
//! reads the clock once, answers, then counts the [`Outcome`] and hands a
//! report, if any, to the [`ReportSink`] (the one place reports leave the
//! answer path).

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::catalog::Catalog;
use super::responder::{respond, NameOutcome, Outcome, Transport};
use super::ReportSink;
use crate::metrics::Metrics;

pub struct Handler {
    catalog: ArcSwap<Catalog>,
    sink: Arc<dyn ReportSink>,
    metrics: Arc<Metrics>,
}

impl Handler {
    pub fn new(catalog: Catalog, sink: Arc<dyn ReportSink>, metrics: Arc<Metrics>) -> Self {
        Handler {
            catalog: ArcSwap::from_pointee(catalog),
            sink,
            metrics,
        }
    }

    /// Replaces the zones; queries in flight finish on the old ones.
    pub fn swap_catalog(&self, catalog: Catalog) {
        self.catalog.store(Arc::new(catalog));
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Writes the response to `request` into `out`, records its report and
    /// counts it. Returns false when nothing must be sent.
    pub fn handle(&self, request: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        let outcome = respond(
            &self.catalog.load(),
            request,
            crate::clock::unix_now(),
            transport,
            out,
        );
        self.metrics.count_query(transport, &outcome);
        match outcome {
            Outcome::Dropped => false,
            Outcome::Answered(a) => {
                if let NameOutcome::Report(report) = a.name {
                    self.sink.accept(report);
                }
                true
            }
        }
    }
}
