//! `demo`: the documentation's examples against the Slack stand-in.

use std::path::PathBuf;

use host_test::demo;
use slack_alertd::cli::Failure;

/// Runs the demo on `examples` (default: this checkout's).
pub fn run(examples: Option<PathBuf>, html: Option<PathBuf>) -> Result<(), Failure> {
    demo::run(
        &examples.unwrap_or_else(demo::examples_dir),
        html.as_deref(),
    )
    .map_err(Failure::Host)
}
