//! API key → tenant, remembered for a few seconds per process.
//!
//! Every `/api/*` request authenticates, and looking the key's hash up in Postgres was one of
//! the submit path's three round trips. Entries live [`KEY_TTL`]: a key revoked through this
//! process stops working at once (its tenant's entries are dropped); one revoked through another
//! API process stops working here within [`KEY_TTL`]. Only the SHA-256 of a key is kept, as in
//! the database, and unknown keys are never cached, so a wrong key always reaches Postgres.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a successful lookup is trusted.
pub const KEY_TTL: Duration = Duration::from_secs(5);

/// Bound on entries; past it the cache starts over (a flood of distinct valid keys is rare).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<Vec<u8>, (Instant, Uuid)>>,
}

impl KeyCache {
    /// The tenant of a key hash looked up less than [`KEY_TTL`] ago.
    pub fn get(&self, hash: &[u8]) -> Option<Uuid> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|(at, _)| at.elapsed() < KEY_TTL)
            .map(|(_, tenant)| *tenant)
    }

    pub fn remember(&self, hash: Vec<u8>, tenant: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (Instant::now(), tenant));
    }

    /// Drops every key of a tenant (called when one of its keys is revoked here).
    pub fn forget_tenant(&self, tenant: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, t)| *t != tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets_by_tenant() {
        let cache = KeyCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        cache.remember(vec![1], a);
        cache.remember(vec![2], a);
        cache.remember(vec![3], b);
        assert_eq!(cache.get(&[1]), Some(a));
        cache.forget_tenant(a);
        assert_eq!(cache.get(&[1]), None);
        assert_eq!(cache.get(&[2]), None);
        assert_eq!(cache.get(&[3]), Some(b));
    }
}
