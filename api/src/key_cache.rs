//! API key → tenant, remembered for well under a second per process.
//!
//! Every `/api/*` request authenticates, and looking the key's hash up in Postgres was one of
//! the submit path's three round trips. An entry is trusted for [`KEY_TTL`] from when its lookup
//! *began*, so a key revoked (or a tenant disabled) through another API process stops working
//! here within [`KEY_TTL`] of that commit: a lookup that began later reads the revocation. A
//! revoke through this process drops its tenant's entries at once, and a lookup that was already
//! under way when it did is not remembered (the generation it began in has passed), so it cannot
//! put the revoked key back. Only the SHA-256 of a key is kept, as in the database, and unknown
//! keys are never cached, so a wrong key always reaches Postgres.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a successful lookup is trusted, from when it began.
pub const KEY_TTL: Duration = Duration::from_millis(750);

/// Bound on entries; past it the cache starts over (a flood of distinct valid keys is rare).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct KeyCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Vec<u8>, (Instant, Uuid)>,
    /// Bumped by every [`KeyCache::forget_tenant`].
    generation: u64,
}

/// A lookup under way: when it began, and in which generation.
#[derive(Debug, Clone, Copy)]
pub struct Lookup {
    began: Instant,
    generation: u64,
}

impl KeyCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant of a key hash whose lookup began less than [`KEY_TTL`] ago.
    pub fn get(&self, hash: &[u8]) -> Option<Uuid> {
        self.inner()
            .entries
            .get(hash)
            .filter(|(began, _)| began.elapsed() < KEY_TTL)
            .map(|(_, tenant)| *tenant)
    }

    /// Call before looking a key up in the database; pass the answer to [`Self::remember`].
    pub fn begin_lookup(&self) -> Lookup {
        Lookup {
            began: Instant::now(),
            generation: self.inner().generation,
        }
    }

    /// Remembers what a lookup found, unless a tenant's keys were forgotten meanwhile.
    pub fn remember(&self, hash: Vec<u8>, tenant: Uuid, lookup: Lookup) {
        let mut inner = self.inner();
        if inner.generation != lookup.generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(hash, (lookup.began, tenant));
    }

    /// Drops every key of a tenant (one of its keys was revoked here, or it was disabled), and
    /// makes lookups already under way forget what they find.
    pub fn forget_tenant(&self, tenant: Uuid) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.entries.retain(|_, (_, t)| *t != tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets_by_tenant() {
        let cache = KeyCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        cache.remember(vec![1], a, cache.begin_lookup());
        cache.remember(vec![2], a, cache.begin_lookup());
        cache.remember(vec![3], b, cache.begin_lookup());
        assert_eq!(cache.get(&[1]), Some(a));
        cache.forget_tenant(a);
        assert_eq!(cache.get(&[1]), None);
        assert_eq!(cache.get(&[2]), None);
        assert_eq!(cache.get(&[3]), Some(b));
    }

    #[test]
    fn a_lookup_under_way_when_its_tenant_is_forgotten_is_not_remembered() {
        let cache = KeyCache::default();
        let a = Uuid::new_v4();
        // The lookup reads the key as valid, then the revoke commits and forgets the tenant,
        // then the lookup answers: it must not put the key back.
        let lookup = cache.begin_lookup();
        cache.forget_tenant(a);
        cache.remember(vec![1], a, lookup);
        assert_eq!(cache.get(&[1]), None);
        // A lookup begun afterwards is remembered.
        cache.remember(vec![1], a, cache.begin_lookup());
        assert_eq!(cache.get(&[1]), Some(a));
    }

    #[test]
    fn an_entry_is_trusted_from_when_its_lookup_began() {
        let cache = KeyCache::default();
        let a = Uuid::new_v4();
        let lookup = Lookup {
            began: Instant::now() - KEY_TTL,
            generation: cache.begin_lookup().generation,
        };
        cache.remember(vec![1], a, lookup);
        assert_eq!(
            cache.get(&[1]),
            None,
            "a slow lookup's answer is already stale"
        );
    }
}
