//! Built-in job kinds.

pub mod housekeeping;
pub mod noop;
pub mod sentiment;
pub mod webhook;
