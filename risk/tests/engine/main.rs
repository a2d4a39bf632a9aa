//! Integration tests for keel-risk, compiled as one test binary to keep
//! link time down.

mod assess;
mod fixtures;
mod monotonic;
mod properties;
mod rollup;
mod serde_snapshot;
mod settings;
