//! Built-in job kinds.

pub mod analyze;
pub mod billing_tasks;
pub mod housekeeping;
pub mod noop;
pub mod sentiment;
pub mod stripe;
pub mod webhook;
