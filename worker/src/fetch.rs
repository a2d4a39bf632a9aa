//! The worker: fetch loop, per-delivery tasks, graceful shutdown.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_jobs::lane::{Delivery, Lane};
use keel_jobs::{Registry, Services};
use keel_models::held::Held;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::batch::Completions;
use crate::config::WorkerConfig;
use crate::prefetch::{Pace, Permit};
use crate::relay::Relay;
use crate::runner::{Outcome, Runner};
use crate::supervisor::Supervisor;

/// Claims running at once: one keeps Postgres's statements few and large, a second overlaps
/// one claim's round trip with the next (Postgres has a core for each).
const CLAIMS_IN_FLIGHT: usize = 2;

/// Deliveries read for free slots (or places ahead of them), with their permits.
type Claim = (Vec<Delivery>, Vec<Permit>);

pub struct Worker {
    runner: Arc<Runner>,
    lane: Lane,
    relay: Arc<Relay>,
    queues: Vec<String>,
    config: WorkerConfig,
    /// Fires when shutdown stops waiting for in-flight jobs.
    hard_stop: CancellationToken,
    /// Deliveries read but not yet started. `XREADGROUP … COUNT n` over several streams returns
    /// up to n entries *per stream*, so a read for n free slots can bring more than n; the extra
    /// ones wait here (not started: no attempt is spent) and are started first when slots free
    /// up. Handed back to the relay on shutdown.
    overflow: Mutex<VecDeque<Delivery>>,
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        registry: Arc<Registry>,
        services: Arc<Services>,
        lane: Lane,
    ) -> Self {
        let queues: Vec<String> = if config.queues.is_empty() {
            registry.queues().into_iter().map(String::from).collect()
        } else {
            config.queues.clone()
        };
        // Priority lanes first: XREADGROUP answers streams in the order asked and the fetch
        // loop starts the first entries, so a priority tenant's job overtakes the backlog.
        let queues = keel_jobs::lane::with_priority_lanes(&queues);
        let supervisor = Supervisor::new(Held::generic_plans(&services.pool, 1), config.lease);
        let relay = Relay::new(
            services.pool.clone(),
            lane.clone(),
            queues.clone(),
            config.redispatch_after,
            config.reap_idle,
            config.consumer.clone(),
        );
        Self {
            runner: Arc::new(Runner {
                completions: Completions::spawn(&services.pool, lane.clone()),
                claims: Held::generic_plans(&services.pool, CLAIMS_IN_FLIGHT),
                registry,
                services,
                supervisor,
                config: config.clone(),
                lane: lane.clone(),
                pace: Pace::default(),
            }),
            lane,
            relay,
            queues,
            config,
            hard_stop: CancellationToken::new(),
            overflow: Mutex::new(VecDeque::new()),
        }
    }

    /// Up to `n` deliveries read earlier and not started yet.
    fn take_overflow(&self, n: usize) -> Vec<Delivery> {
        let mut q = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    /// Keeps the first `n` deliveries; the rest go to the overflow, in order.
    fn keep(&self, mut deliveries: Vec<Delivery>, n: usize) -> Vec<Delivery> {
        if deliveries.len() > n {
            let extra = deliveries.split_off(n);
            let mut q = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
            q.extend(extra);
        }
        deliveries
    }

    /// On shutdown: deliveries never started go back to the relay at once (their rows lose the
    /// dispatch stamp, their entries are acked), instead of waiting out `redispatch_after`.
    async fn hand_back_overflow(&self) {
        let left = self.take_overflow(usize::MAX);
        if left.is_empty() {
            return;
        }
        let ids: Vec<_> = left.iter().filter_map(|d| d.job_id).collect();
        if let Err(e) =
            keel_models::job::set_dispatched(&self.runner.services.pool, &ids, false).await
        {
            tracing::warn!(error = %e, "could not hand back unstarted deliveries; the relay will re-dispatch them later");
            return;
        }
        let entries: Vec<_> = left.into_iter().map(|d| (d.queue, d.entry_id)).collect();
        if let Err(e) = self.lane.ack_batch(&entries).await {
            tracing::debug!(error = %e, "ack of handed-back deliveries failed");
        }
    }

    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// Test driver: waits up to `wait` for one delivery and runs it. `None` if nothing came.
    pub async fn process_next(&self, wait: Duration) -> Result<Option<Outcome>, redis::RedisError> {
        let mut got = self.take_overflow(1);
        if got.is_empty() {
            self.relay.ensure_groups().await?;
            let mut conn = self.lane.blocking_connection(wait).await?;
            let read = self
                .lane
                .read(&mut conn, &self.queues, &self.config.consumer, 1, wait)
                .await?;
            got = self.keep(read, 1);
        }
        if got.is_empty() {
            return Ok(None);
        }
        let (mut claimed, mut skipped) = self.runner.start(got).await;
        Ok(match claimed.pop() {
            Some(c) => Some(self.runner.run(c, None, &self.hard_stop).await),
            None => skipped.pop(),
        })
    }

    /// Runs until `shutdown` fires: stops fetching, lets in-flight jobs finish for up to
    /// `shutdown_timeout`, then tells the rest to stop and hands them back to the queue.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let background = CancellationToken::new();
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(
            self.runner
                .supervisor
                .clone()
                .run(self.config.heartbeat, background.clone()),
        ));
        if self.config.relay {
            tasks.push(tokio::spawn(
                self.relay
                    .clone()
                    .run(self.config.relay_interval, background.clone()),
            ));
        }
        tracing::info!(queues = ?self.queues, concurrency = self.config.concurrency, consumer = %self.config.consumer, "worker started");

        let tracker = TaskTracker::new();
        self.fetch_loop(&shutdown, &tracker).await;
        self.hand_back_overflow().await;

        tracker.close();
        let in_flight = self.runner.supervisor.in_flight();
        if in_flight > 0 {
            tracing::info!(in_flight, timeout = ?self.config.shutdown_timeout, "draining in-flight jobs");
        }
        if tokio::time::timeout(self.config.shutdown_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.runner.supervisor.in_flight(),
                "shutdown timeout: stopping the remaining jobs and handing them back"
            );
            self.hard_stop.cancel();
            tracker.wait().await;
        }
        background.cancel();
        for t in tasks {
            let _ = t.await;
        }
        tracing::info!("worker stopped");
    }

    async fn fetch_loop(&self, shutdown: &CancellationToken, tracker: &TaskTracker) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let prefetch = self.config.prefetch();
        let ahead = Arc::new(Semaphore::new(prefetch));
        let claims = self.spawn_claimer(tracker, slots.clone(), shutdown.clone());
        let mut conn = None;
        let mut failures: u32 = 0;
        if let Err(e) = self.relay.ensure_groups().await {
            tracing::warn!(error = %e, "cannot create consumer groups yet");
        }
        loop {
            // Wait for a free slot (or, while handlers are short, a place ahead of one), then
            // take every one that is free: read no more than we can run or start ahead.
            let may_prefetch = prefetch > 0
                && self
                    .runner
                    .pace
                    .allows_prefetch(self.config.prefetch_wait, self.config.concurrency as u64);
            // Jobs already started ahead get the slots that free up before anything new is
            // read for them (only this loop takes places ahead, so any taken are theirs).
            let started_ahead = ahead.available_permits() < prefetch;
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                p = slots.clone().acquire_owned(), if !started_ahead => Permit::Slot(p.expect("semaphore is never closed")),
                p = ahead.clone().acquire_owned(), if may_prefetch => Permit::Ahead(p.expect("semaphore is never closed")),
                all = ahead.acquire_many(prefetch as u32), if started_ahead && !may_prefetch => {
                    // Every job started ahead has its slot now: look again.
                    drop(all);
                    continue;
                }
            };
            let mut permits = vec![first];
            while !started_ahead && permits.len() < 256 {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(Permit::Slot(p)),
                    Err(_) => break,
                }
            }
            while may_prefetch && permits.len() < 256 {
                match ahead.clone().try_acquire_owned() {
                    Ok(p) => permits.push(Permit::Ahead(p)),
                    Err(_) => break,
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            // Deliveries read earlier come first; Redis is asked only when none are waiting.
            let waiting = self.take_overflow(permits.len());
            if !waiting.is_empty() {
                let _ = claims.send((waiting, permits));
                continue;
            }
            if conn.is_none() {
                match self.lane.blocking_connection(self.config.block).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        failures += 1;
                        self.backoff(failures, &e, shutdown).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("set above");
            // Not raced against shutdown: a read cut short could lose entries Redis already
            // handed us; BLOCK is short, so shutdown waits at most `block`.
            let read = self
                .lane
                .read(
                    c,
                    &self.queues,
                    &self.config.consumer,
                    permits.len(),
                    self.config.block,
                )
                .await;
            match read {
                Ok(deliveries) => {
                    failures = 0;
                    if deliveries.is_empty() {
                        continue;
                    }
                    let deliveries = self.keep(deliveries, permits.len());
                    let _ = claims.send((deliveries, permits));
                }
                Err(e) => {
                    failures += 1;
                    if e.code() == Some("NOGROUP") {
                        // Redis lost the stream (flush/restart): recreate and re-dispatch.
                        if let Err(e) = self.relay.ensure_groups().await {
                            tracing::warn!(error = %e, "re-creating consumer groups failed");
                        }
                        self.relay.wake();
                    } else {
                        conn = None;
                    }
                    self.backoff(failures, &e, shutdown).await;
                }
            }
        }
    }

    /// The claimer: deliveries the fetch loop read, with the slots they will run in, are
    /// started by one guarded statement per batch, and each started job runs on its own task
    /// holding a slot (slots left unused go back when the claim is answered).
    ///
    /// Claims run beside the fetch loop, so it reads for the next free slots while a claim is
    /// in flight, and everything read meanwhile joins the next claim (at most
    /// [`CLAIMS_IN_FLIGHT`] run at once): with few slots and fast
    /// jobs, a start round trip no longer holds back every other slot, and Postgres still sees
    /// few, larger statements. The pending queue is bounded by the slots its entries hold. The
    /// claimer is tracked like the jobs, and stops once the fetch loop has dropped its sender.
    fn spawn_claimer(
        &self,
        tracker: &TaskTracker,
        slots: Arc<Semaphore>,
        shutdown: CancellationToken,
    ) -> mpsc::UnboundedSender<Claim> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Claim>();
        let runner = self.runner.clone();
        let hard_stop = self.hard_stop.clone();
        let jobs = tracker.clone();
        tracker.spawn(async move {
            let in_flight = Arc::new(Semaphore::new(CLAIMS_IN_FLIGHT));
            while let Some((mut deliveries, mut permits)) = rx.recv().await {
                // Wait for a claim slot first, so this claim takes in what came meanwhile.
                let Ok(claiming) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                while let Ok((d, p)) = rx.try_recv() {
                    deliveries.extend(d);
                    permits.extend(p);
                }
                debug_assert!(deliveries.len() <= permits.len());
                // Slots first: the started jobs take them, and permits left over (deliveries
                // not started) are places ahead where possible.
                permits.sort_by_key(|p| !p.is_slot());
                let (runner, hard_stop, job_tasks) = (runner.clone(), hard_stop.clone(), jobs.clone());
                let (slots, shutdown) = (slots.clone(), shutdown.clone());
                jobs.spawn(async move {
                    let (claimed, _) = runner.start(deliveries).await;
                    drop(claiming);
                    for (c, permit) in claimed.into_iter().zip(permits) {
                        let runner = runner.clone();
                        let (hard_stop, slots, shutdown) = (hard_stop.clone(), slots.clone(), shutdown.clone());
                        let span = tracing::info_span!("job", job_id = %c.started.id, kind = ?c.started.kind, attempt = c.started.attempt);
                        job_tasks.spawn(
                            async move {
                                match permit {
                                    Permit::Slot(slot) => {
                                        runner.run(c, Some(slot), &hard_stop).await;
                                    }
                                    Permit::Ahead(ahead) => {
                                        runner.run_ahead(c, ahead, slots, &shutdown, &hard_stop).await;
                                    }
                                }
                            }
                            .instrument(span),
                        );
                    }
                });
            }
        });
        tx
    }

    /// A Redis error never ends the worker: log, wait (growing, capped), try again.
    async fn backoff(&self, failures: u32, e: &redis::RedisError, shutdown: &CancellationToken) {
        if failures == 1 || failures.is_multiple_of(30) {
            tracing::warn!(error = %e, failures, url = %self.lane.url(), "Redis read failed; retrying");
        }
        let delay =
            Duration::from_millis(50 * 2u64.pow(failures.min(6))).min(Duration::from_secs(3));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
