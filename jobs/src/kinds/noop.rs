//! `noop`: does nothing. Exists for benchmarks and tests of the spine itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::JobError;
use crate::job::{Job, JobContext};

/// Any JSON object is accepted and echoed back as the result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Noop(pub serde_json::Map<String, Value>);

impl Job for Noop {
    const NAME: &'static str = "noop";

    async fn run(self, _ctx: JobContext) -> Result<Value, JobError> {
        Ok(Value::Object(self.0))
    }
}
