//! A few long-lived connections for one hot path, handed out without sqlx's pool pings.
//!
//! sqlx's pool sends a ping (a `Sync` round trip) every time a connection goes back to the
//! pool, and another before each use unless `test_before_acquire(false)`. On the paths that
//! run one statement per batch (the API's group-commit submits), that is a second round trip
//! per statement, and the connection cannot serve the next batch until its ping is answered.
//! [`Held`] keeps its connections instead: a connection goes back only when the caller hands
//! it the statement's answer and that answer shows the connection is sound
//! ([`HeldConn::release_after`]); one dropped otherwise (an I/O error, or a future cancelled
//! mid-statement) is closed, and the next use opens a fresh one. So a broken
//! connection costs one failed batch, as with the pool, and never a second.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections are renewed after this long, so generic plans follow the table's statistics
/// (as [`crate::db::generic_plan_pool`] does with `max_lifetime`).
const LIFETIME: Duration = Duration::from_secs(300);

/// At most `n` connections, opened on first use; cheap to clone.
#[derive(Clone)]
pub struct Held {
    opts: PgConnectOptions,
    idle: Arc<Mutex<Vec<(PgConnection, Instant)>>>,
    slots: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl Held {
    /// Up to `n` connections to `pool`'s database with `pool`'s options, planning their
    /// statements generically (`plan_cache_mode = force_generic_plan`, see
    /// [`crate::db::generic_plan_pool`]).
    pub fn generic_plans(pool: &PgPool, n: usize) -> Self {
        let opts = (*pool.connect_options())
            .clone()
            .options([("plan_cache_mode", "force_generic_plan")]);
        Self {
            opts,
            idle: Arc::new(Mutex::new(Vec::with_capacity(n))),
            slots: Arc::new(Semaphore::new(n.max(1))),
            acquire_timeout: pool.options().get_acquire_timeout(),
        }
    }

    /// Waits for a free connection (or opens one), as long as the pool's acquire timeout.
    pub async fn acquire(&self) -> sqlx::Result<HeldConn> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.pop()
        };
        let (conn, opened) = match reused {
            Some((conn, opened)) if opened.elapsed() < LIFETIME => (conn, opened),
            _ => (self.opts.connect().await?, Instant::now()),
        };
        Ok(HeldConn {
            conn: Some((conn, opened)),
            home: self.idle.clone(),
            _permit: permit,
        })
    }
}

/// A connection out of [`Held`]; closed on drop unless [`HeldConn::release_after`] gives it back.
pub struct HeldConn {
    conn: Option<(PgConnection, Instant)>,
    home: Arc<Mutex<Vec<(PgConnection, Instant)>>>,
    _permit: OwnedSemaphorePermit,
}

impl HeldConn {
    /// Gives the connection back for the next batch if `answer` (its last statement's) shows
    /// it sound: a success, or a row the database refused. Any other error (I/O, protocol, a
    /// closed pool) closes it.
    pub fn release_after<T>(mut self, answer: &sqlx::Result<T>) {
        if !matches!(answer, Ok(_) | Err(sqlx::Error::Database(_))) {
            return;
        }
        if let Some(c) = self.conn.take() {
            self.home.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
    }
}

impl Deref for HeldConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn.as_ref().expect("present until dropped").0
    }
}

impl DerefMut for HeldConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn.as_mut().expect("present until dropped").0
    }
}
