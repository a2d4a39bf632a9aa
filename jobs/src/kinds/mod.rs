//! Built-in job kinds.

pub mod noop;
pub mod webhook;
