//! `GET /metrics`: Prometheus' text format.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use crate::intake::answer::Answer;
use crate::intake::Front;
use crate::metrics::{self, StoreGauges};

/// The counters, with the store's gauges read under its lock.
pub(crate) fn respond(front: &Front) -> Answer {
    let mut gauges = front.commit.read(|store| StoreGauges {
        pending: store.pending_count(),
        oldest_age_seconds: store
            .oldest_pending_age()
            .map_or(0.0, |age| age.as_secs_f64()),
        degraded: store.trouble().is_some(),
        duplicates: store.duplicates(),
        ..StoreGauges::default()
    });
    gauges.fsyncs = front.commit.syncs();
    gauges.write_errors = front.commit.failures();
    if let Some(socket) = &front.socket {
        front
            .metrics
            .socket_mode(socket.connected(), socket.reconnects());
    }
    let text = front.metrics.render(&gauges);
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}
