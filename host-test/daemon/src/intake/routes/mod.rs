//! One file a route, each with a `respond` the server's routing table
//! calls; they share the answers (`answer.rs`), the body reader
//! (`body.rs`) and the formats (`format.rs`) of the folder above.

pub(crate) mod alertmanager;
pub(crate) mod alerts;
pub(crate) mod clicks;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod resend;
pub(crate) mod spool;
mod topics;
