//! A per-tenant bound on write transactions in flight in this API process.
//!
//! A metered submit holds a pooled connection for its transaction, and a tenant's metered
//! submits queue behind one another on the row lock of the tenant's usage period. Forty
//! concurrent submits from one tenant had taken every connection of the pool to wait on that
//! lock, so other tenants' requests waited for a connection (5 s) or timed out (503). Through the
//! gate, a tenant has at most [`TenantGate::permits`] such transactions open; the rest wait here,
//! holding no connection, and past [`TenantGate::queue`] waiting requests the next one is
//! answered 429 at once rather than left to wait out its deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::error::ApiError;

pub struct TenantGate {
    permits: usize,
    queue: usize,
    tenants: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

/// A tenant's place in the gate: one open write transaction. Dropping it lets the next in.
pub struct Pass {
    _permit: OwnedSemaphorePermit,
}

impl TenantGate {
    /// `permits` transactions at once per tenant, `queue` more waiting.
    pub fn new(permits: usize, queue: usize) -> Self {
        assert!(permits > 0, "a gate lets at least one through");
        Self {
            permits,
            queue,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    pub fn permits(&self) -> usize {
        self.permits
    }

    pub fn queue(&self) -> usize {
        self.queue
    }

    /// Waits for the tenant's turn; 429 `too_many_concurrent_writes` when its queue is full.
    pub async fn enter(&self, tenant: Uuid) -> Result<Pass, ApiError> {
        let semaphore = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            // Idle tenants' entries (nobody holds or waits for a permit) are dropped now and
            // then, so the map holds only tenants writing at the moment.
            if tenants.len() > 1024 {
                tenants.retain(|_, s| Arc::strong_count(s) > 1);
            }
            tenants
                .entry(tenant)
                .or_insert_with(|| Arc::new(Semaphore::new(self.permits)))
                .clone()
        };
        // Holders and waiters each keep a clone, besides the map's and this one.
        let waiting = Arc::strong_count(&semaphore).saturating_sub(2 + self.permits);
        if semaphore.available_permits() == 0 && waiting >= self.queue {
            return Err(ApiError::TooManyRequests {
                code: "too_many_concurrent_writes",
                message: format!(
                    "this tenant already has {} submits in progress and {} waiting in this API process; retry shortly",
                    self.permits, self.queue
                ),
                details: serde_json::json!({ "in_progress": self.permits, "waiting": self.queue }),
                retry_after: Some(1),
                headers: Vec::new(),
            });
        }
        let permit = semaphore
            .acquire_owned()
            .await
            .expect("the gate's semaphores are never closed");
        Ok(Pass { _permit: permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_waits_for_its_turn_and_a_full_queue_is_refused_at_once() {
        let gate = Arc::new(TenantGate::new(2, 1));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = gate.enter(a).await.unwrap();
        let _second = gate.enter(a).await.unwrap();
        // The third waits (the queue has room for one)...
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(a).await.map(|_| ()) }
        });
        // The map, the two holders and the waiter.
        while Arc::strong_count(&gate.tenants.lock().unwrap()[&a]) < 1 + 2 + 1 {
            tokio::task::yield_now().await;
        }
        // ...the fourth is refused, and another tenant is not held up by either.
        let refused = gate.enter(a).await.err().expect("the queue is full");
        assert!(matches!(
            refused,
            ApiError::TooManyRequests {
                code: "too_many_concurrent_writes",
                ..
            }
        ));
        let _other = gate.enter(b).await.unwrap();
        drop(first);
        waiter.await.unwrap().unwrap();
    }
}
