//! Explicit registration of job kinds, type-erased so the worker and API can dispatch on the
//! stored `kind` name. Registering a name twice is an error at startup, not a silent override.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;

use crate::error::JobError;
use crate::job::{ArgsError, Job, JobContext, Services};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("job kind {0:?} is registered twice")]
    Duplicate(&'static str),
}

/// One registered kind, with its typed args erased to JSON.
pub trait ErasedKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn queue(&self) -> &'static str;
    fn max_attempts(&self) -> i32;
    /// See [`Job::TIMEOUT`]: the kind's own bound on one attempt.
    fn timeout(&self) -> std::time::Duration;
    /// See [`Job::INTERNAL`]: only Keel itself enqueues this kind.
    fn internal(&self) -> bool;
    /// Parses args as the kind's type only (errors carry the field path), without the kind's
    /// `validate`, which may need [`Services`]. For producers inside Keel (the scheduler) that
    /// build args themselves and want a shape error at enqueue rather than a dead job later.
    fn check_shape(&self, args: &Value) -> Result<(), ArgsError>;
    /// Parses args as the kind's type (errors carry the field path) and runs its validation.
    fn check(&self, args: &Value, services: &Services) -> Result<(), ArgsError>;
    fn run(&self, args: Value, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>>;
}

struct Kind<J>(std::marker::PhantomData<fn() -> J>);

fn parse<J: Job>(args: &Value) -> Result<J, ArgsError> {
    serde_path_to_error::deserialize::<_, J>(args).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ArgsError::new(
            if path.is_empty() {
                "args".to_string()
            } else {
                format!("args.{path}")
            },
            e.into_inner().to_string(),
        )
    })
}

impl<J: Job> ErasedKind for Kind<J> {
    fn name(&self) -> &'static str {
        J::NAME
    }
    fn queue(&self) -> &'static str {
        J::QUEUE
    }
    fn max_attempts(&self) -> i32 {
        J::MAX_ATTEMPTS
    }
    fn timeout(&self) -> std::time::Duration {
        J::TIMEOUT
    }
    fn internal(&self) -> bool {
        J::INTERNAL
    }
    fn check_shape(&self, args: &Value) -> Result<(), ArgsError> {
        parse::<J>(args).map(|_| ())
    }
    fn check(&self, args: &Value, services: &Services) -> Result<(), ArgsError> {
        parse::<J>(args)?.validate(services)
    }
    fn run(&self, args: Value, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        match parse::<J>(&args) {
            // Args were checked at submit; failing now means the kind changed shape: retrying
            // cannot help.
            Err(e) => futures::future::ready(Err(JobError::fatal(format!(
                "args no longer match {}: {} at {}",
                J::NAME,
                e.message,
                e.path
            ))))
            .boxed(),
            Ok(job) => job.run(ctx).boxed(),
        }
    }
}

/// The set of kinds a process knows.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ErasedKind>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register<J: Job>(mut self) -> Result<Self, RegistryError> {
        if self.kinds.contains_key(J::NAME) {
            return Err(RegistryError::Duplicate(J::NAME));
        }
        self.kinds
            .insert(J::NAME, Arc::new(Kind::<J>(std::marker::PhantomData)));
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ErasedKind>> {
        self.kinds.get(name)
    }

    /// Sorted names of every kind, internal ones included (what a worker can run).
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// Sorted names of the kinds tenants may submit, e.g. for the "unknown kind" error: internal
    /// kinds are not advertised to tenants.
    pub fn public_names(&self) -> Vec<&'static str> {
        self.kinds
            .iter()
            .filter(|(_, k)| !k.internal())
            .map(|(name, _)| *name)
            .collect()
    }

    /// Distinct queues of all kinds, sorted.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut q: Vec<_> = self.kinds.values().map(|k| k.queue()).collect();
        q.sort_unstable();
        q.dedup();
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::noop::Noop;

    #[test]
    fn duplicate_names_are_refused() {
        let err = Registry::new()
            .register::<Noop>()
            .unwrap()
            .register::<Noop>()
            .err()
            .unwrap();
        assert_eq!(err, RegistryError::Duplicate("noop"));
    }

    #[test]
    fn builtin_kinds_are_listed_sorted() {
        let r = crate::builtin_registry();
        assert_eq!(
            r.names(),
            vec![
                "billing.close_period",
                "billing.expire_credits",
                "billing.expiry_notices",
                "billing.monthly_run",
                "jira.analyze.issue",
                "jira.analyze.portfolio",
                "jira.analyze.sprint",
                "keel.housekeeping",
                "noop",
                "sentiment.score",
                "stripe.event",
                "stripe.reconcile",
                "stripe.report_usage",
                "stripe.sync_customer",
                "webhook.deliver"
            ]
        );
        assert_eq!(
            r.public_names(),
            vec![
                "jira.analyze.issue",
                "jira.analyze.portfolio",
                "jira.analyze.sprint",
                "noop",
                "sentiment.score",
                "webhook.deliver"
            ]
        );
        assert_eq!(r.queues(), vec!["analysis", "default"]);
    }
}
