//! The server's [`RequestHandler`]: the current zones, the clock, the
//! report sink and the metrics, which the pure [`respond`] does not touch.
//! It lives above the DNS room, which knows only the trait.
//!
//! The UDP and TCP loops call [`RequestHandler::handle`] for each request; it
//! reads the clock once, answers, hands a report, if any, to the
//! [`ReportSink`] (the one place reports leave the answer path), turns the
//! answer into SERVFAIL if the sink could not record it, and counts the
//! [`Outcome`].

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::dns::responder::{respond, servfail, NameOutcome, Outcome, Rcode, Transport};
use crate::dns::rrl::Action;
use crate::dns::{Catalog, RequestHandler};
use crate::metrics::{Metrics, PolicyGauge};
use crate::report::Incoming;
use crate::report::ReportSink;

pub struct Handler {
    catalog: ArcSwap<Catalog>,
    sink: Arc<dyn ReportSink>,
    metrics: Arc<Metrics>,
}

impl Handler {
    pub fn new(catalog: Catalog, sink: Arc<dyn ReportSink>, metrics: Arc<Metrics>) -> Self {
        metrics.set_policies(policy_gauges(&catalog));
        Handler {
            catalog: ArcSwap::from_pointee(catalog),
            sink,
            metrics,
        }
    }

    /// Replaces the zones; queries in flight finish on the old ones.
    pub fn swap_catalog(&self, catalog: Catalog) {
        self.metrics.set_policies(policy_gauges(&catalog));
        self.catalog.store(Arc::new(catalog));
    }

    /// How long until the policies must be signed anew (see
    /// [`Catalog::resign_interval`]).
    pub fn resign_interval(&self, now: u64) -> Option<std::time::Duration> {
        self.catalog.load().resign_interval(now)
    }

    /// Signs every v2 policy anew at `now`, keeping everything else (a
    /// reload in between is kept too). Returns when to do it again.
    pub fn resign_policies(&self, now: u64) -> Option<std::time::Duration> {
        self.catalog.rcu(|current| match current.resign(now, None) {
            Ok(next) => Arc::new(next),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the v2 policies anew; serving the old ones");
                current.clone()
            }
        });
        self.metrics
            .set_policies(policy_gauges(&self.catalog.load()));
        self.resign_interval(now)
    }

    /// What the journal's consumers need to open frames of the current
    /// zones and keys (they change with each signing: epochs come and go).
    pub fn opener(&self) -> crate::report::Opener {
        self.catalog.load().opener()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

impl RequestHandler for Handler {
    /// Writes the response to `request` into `out`, records its report and
    /// counts it. Returns false when nothing must be sent.
    fn handle(&self, request: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        let now = crate::clock::unix_now();
        let catalog = self.catalog.load();
        let mut outcome = respond(&catalog, request, now, transport, out);
        if let Outcome::Answered(a) = &mut outcome {
            let recorded = match &a.name {
                NameOutcome::Report(report) => self.sink.accept(Incoming::V1(report)),
                NameOutcome::Sealed { zone, frame } => self.sink.accept(Incoming::V2 {
                    zone,
                    received_at: now,
                    frame: frame.as_bytes(),
                }),
                NameOutcome::Other | NameOutcome::Rejected(_) => Ok(()),
            };
            if recorded.is_err() {
                // Never answered as recorded: the resolver asks another
                // name server of the zone, which may record it.
                servfail(request, transport, out);
                a.rcode = Rcode::ServFail;
            }
        }
        self.metrics.count_query(transport, &outcome);
        !matches!(outcome, Outcome::Dropped)
    }

    fn rate_limited(&self, action: Action) {
        self.metrics.count_rrl(action);
    }

    fn tcp_refused_per_source(&self) {
        crate::metrics::bump(&self.metrics.tcp_refused_per_source);
    }
}

/// The v2 policies of `catalog`, per zone and key id, for /metrics.
fn policy_gauges(catalog: &Catalog) -> Vec<PolicyGauge> {
    catalog
        .zones()
        .filter_map(|z| Some((z, z.policy()?)))
        .flat_map(|(zone, policy)| {
            policy.keys.iter().map(move |key| PolicyGauge {
                zone: zone.name.to_string(),
                key_id: key.id.0,
                serial: policy.content.serial,
                issued: policy.content.issued,
                expires: policy.content.expires,
            })
        })
        .collect()
}
