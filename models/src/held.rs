//! A few long-lived connections for one hot path, handed out without sqlx's pool pings.
//!
//! sqlx's pool sends a ping (a `Sync` round trip) every time a connection goes back to the
//! pool, and another before each use unless `test_before_acquire(false)`. On the paths that
//! run one statement per batch (the API's group-commit submits), that is a second round trip
//! per statement, and the connection cannot serve the next batch until its ping is answered.
//! [`Held`] keeps its connections instead: [`Held::run`] gives a connection back only when the
//! statement's answer shows it sound; one dropped otherwise (an I/O error, or a future
//! cancelled mid-statement) is closed, and the next use opens a fresh one. So a broken
//! connection costs one failed batch, as with the pool, and never a second.
//!
//! The hot paths' connections plan statements generically (`plan_cache_mode =
//! force_generic_plan`): the batch statements take arrays whose values change every time, and
//! Postgres otherwise re-planned them on every execution (about a fifth of its CPU in the drain
//! benchmark). A generic plan is made with the statistics of its connection's first use, so
//! connections are renewed after `LIFETIME` (five minutes) to let plans follow the table.
//! They also plan with `enable_seqscan = off`: every statement they run finds its rows by id
//! (or by a key the submitter's arbiter index covers), and a plan made while the table was
//! nearly empty had chosen a sequential scan and kept it as the table grew — on a fresh
//! database at 200 jobs/s, the pick-up p50 rose from 1.9 to 5.0 ms within 30 s, each start,
//! heartbeat and finish scanning every row. A statement with no index to use still runs (the
//! setting only makes a sequential scan the last resort).
//! The relay's connection plans every execution instead ([`Held::custom_plans`]), as the main
//! pool's queries may, to use partial indexes for the values given.
//!
//! Connections Postgres drops (a restart, a failover, a proxy recycling them) are found before
//! a statement is lost on them where that costs nothing: one idle for more than
//! [`PING_AFTER_IDLE`] is pinged before use, as pgxpool does; busy ones never are. One whose
//! statement met a FATAL error (`terminating connection due to administrator command`) is
//! closed at once rather than failing a second statement with an I/O error.
//!
//! A host that goes silent mid-statement (a network partition, a failover that moves the
//! address, no RST) would leave a statement waiting as long as TCP retransmits: about fifteen
//! minutes on Linux, the whole path stuck behind it. So every statement has a deadline
//! ([`STATEMENT_DEADLINE`]): past it the connection is closed and the statement fails as
//! unavailable. Postgres is told to cancel a statement itself a little before that
//! (`statement_timeout`), so one that is merely slow fails with a clean error, rolled back,
//! instead of being abandoned while it might still commit; the client's deadline only fires
//! when nothing answers at all.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections are renewed after this long, so generic plans follow the table's statistics.
const LIFETIME: Duration = Duration::from_secs(300);

/// A connection idle for longer is pinged (one round trip) before it is given a statement.
/// Before this, after Postgres had dropped every connection, the first submit on each held
/// connection answered 500 however long ago the outage had ended. A busy path reuses its
/// connections within milliseconds, so it pays nothing; pgxpool's default is the same second.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long a statement (or a closure's statements) may wait for Postgres before its
/// connection is given up. Every statement on these paths is a batch found by index that takes
/// milliseconds; this only bounds a host that stopped answering.
pub const STATEMENT_DEADLINE: Duration = Duration::from_secs(30);

/// A connection waiting for its next statement.
struct Parked {
    conn: PgConnection,
    opened: Instant,
    since: Instant,
}

/// At most `n` connections, opened on first use; cheap to clone.
#[derive(Clone)]
pub struct Held {
    opts: PgConnectOptions,
    idle: Arc<Mutex<Vec<Parked>>>,
    slots: Arc<Semaphore>,
    acquire_timeout: Duration,
    deadline: Duration,
}

impl Held {
    /// Up to `n` connections to `pool`'s database with `pool`'s options, planning their
    /// statements generically.
    pub fn generic_plans(pool: &PgPool, n: usize) -> Self {
        // See the module doc: a generic plan must not depend on how full the table was.
        Self::with_settings(
            pool,
            n,
            &[
                ("plan_cache_mode", "force_generic_plan"),
                ("enable_seqscan", "off"),
            ],
        )
    }

    /// Like [`Self::generic_plans`], but every execution is planned with its own values and the
    /// table's current size: for a statement whose best plan depends on them (the relay's, whose
    /// per-queue limits come in an array), run too rarely for planning to cost anything.
    pub fn custom_plans(pool: &PgPool, n: usize) -> Self {
        Self::with_settings(pool, n, &[("plan_cache_mode", "force_custom_plan")])
    }

    /// `settings` are the connections' session settings (Postgres `options`).
    fn with_settings(pool: &PgPool, n: usize, settings: &[(&str, &str)]) -> Self {
        let opts = (*pool.connect_options())
            .clone()
            .options(settings.iter().copied());
        Self {
            opts,
            idle: Arc::new(Mutex::new(Vec::with_capacity(n))),
            slots: Arc::new(Semaphore::new(n.max(1))),
            acquire_timeout: pool.options().get_acquire_timeout(),
            deadline: STATEMENT_DEADLINE,
        }
        .with_deadline(STATEMENT_DEADLINE)
    }

    /// Gives statements `deadline` (instead of [`STATEMENT_DEADLINE`]) and has Postgres cancel
    /// one at four fifths of it. For connections opened from now on; tests use a short one.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        let server = (deadline * 4 / 5).as_millis().max(1).to_string();
        // A later `-c` of the same setting overrides an earlier one.
        self.opts = self.opts.options([("statement_timeout", server.as_str())]);
        self.deadline = deadline;
        self
    }

    /// Runs `statement` on a free connection (opened if none is idle; waiting at most the
    /// pool's acquire timeout for one), then keeps the connection if the answer shows it sound.
    /// No answer within the deadline closes the connection and fails with a timed-out I/O
    /// error, which [`crate::db::is_unavailable`] counts as Postgres unavailable.
    pub async fn run<T>(
        &self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> sqlx::Result<T> {
        let mut conn = self.acquire().await?;
        let answer = match tokio::time::timeout(self.deadline, statement(&mut conn)).await {
            Ok(answer) => answer,
            // Dropping the connection unreleased closes it: whatever it was waiting for is lost.
            Err(_) => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("Postgres did not answer within {:?}", self.deadline),
                )))
            }
        };
        conn.release_after(&answer);
        answer
    }

    async fn acquire(&self) -> sqlx::Result<HeldConn> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.pop()
        };
        let sound = match reused {
            Some(p) if p.opened.elapsed() >= LIFETIME => None,
            Some(mut p) if p.since.elapsed() > PING_AFTER_IDLE => {
                // Bounded: a connection to a partitioned host may never answer.
                let ping = tokio::time::timeout(self.acquire_timeout, p.conn.ping()).await;
                matches!(ping, Ok(Ok(()))).then_some((p.conn, p.opened))
            }
            Some(p) => Some((p.conn, p.opened)),
            None => None,
        };
        let conn = match sound {
            Some(c) => c,
            // Bounded like the pool's own connects: an unreachable host may never answer.
            None => match tokio::time::timeout(self.acquire_timeout, self.opts.connect()).await {
                Ok(conn) => (conn?, Instant::now()),
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
            },
        };
        Ok(HeldConn {
            conn: Some(conn),
            home: self.idle.clone(),
            _permit: permit,
        })
    }
}

/// A connection out of [`Held`]; closed on drop unless [`HeldConn::release_after`] gives it back.
struct HeldConn {
    conn: Option<(PgConnection, Instant)>,
    home: Arc<Mutex<Vec<Parked>>>,
    _permit: OwnedSemaphorePermit,
}

impl HeldConn {
    /// Gives the connection back for the next batch if `answer` (its last statement's) shows
    /// it sound: a success, or a row the database refused. Any other error (I/O, protocol, a
    /// closed pool, a FATAL error that ended the session, a statement Postgres cancelled, which
    /// may have left a transaction open) closes it.
    fn release_after<T>(mut self, answer: &sqlx::Result<T>) {
        let sound = match answer {
            Ok(_) => true,
            Err(e @ sqlx::Error::Database(_)) => !crate::db::is_unavailable(e),
            Err(_) => false,
        };
        if !sound {
            return;
        }
        if let Some((conn, opened)) = self.conn.take() {
            let parked = Parked {
                conn,
                opened,
                since: Instant::now(),
            };
            self.home
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(parked);
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
