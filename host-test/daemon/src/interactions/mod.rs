//! Slack's interactions reaching serve: the clicks on an alert's buttons.
//! How they arrive is the transport's business; what they mean is the
//! component's.

pub mod socket_mode;
