//! [`SentimentService`]: one loaded [`Engine`] shared by every job of a worker
//! process, with requests from concurrent callers merged into batches.
//!
//! How a call flows:
//! 1. [`SentimentService::score`] cuts the caller's texts into pieces of at most
//!    `max_batch` texts and sends each into a **bounded** queue
//!    (`queue_capacity` pieces). When the queue is full the caller waits
//!    (back-pressure), so a burst of jobs never turns into unbounded memory.
//! 2. A dispatcher (its own thread with a small current-thread tokio runtime,
//!    started on first use, so the service works from any runtime or none)
//!    takes the first piece, keeps collecting for at most `max_wait` or until
//!    `max_batch` texts, waits for one of `workers` permits, then tops the batch
//!    up with whatever queued meanwhile.
//! 3. The batch is sorted by [`Engine::cost`] (token length for BERT, so
//!    similar lengths share padding) and scored on a blocking thread; the
//!    permit caps concurrent batches at `workers`. Results go back to each
//!    caller in its original order.
//!
//! Counters ([`SentimentService::stats`]) show that merging happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::engine::Engine;
use crate::model::Scores;

/// Batching knobs. [`ServiceConfig::for_engine`] gives sensible defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Most texts in one engine call.
    pub max_batch: usize,
    /// How long the dispatcher waits for more requests to fill a batch.
    pub max_wait: Duration,
    /// Queue length in pieces (each ≤ `max_batch` texts) before callers wait.
    pub queue_capacity: usize,
    /// Batches scored at once (blocking threads).
    pub workers: usize,
}

impl ServiceConfig {
    /// Defaults from the engine: its `max_batch` and `parallelism`, a 2 ms
    /// merge window and room for 4 pieces per worker in the queue.
    pub fn for_engine(engine: &dyn Engine) -> Self {
        let workers = engine.parallelism().max(1);
        Self {
            max_batch: engine.max_batch().max(1),
            max_wait: Duration::from_millis(2),
            queue_capacity: 4 * workers,
            workers,
        }
    }
}

/// Why a call to the service failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// The engine returned an error (its message) or panicked.
    Engine(String),
    /// The dispatcher is gone (it could not start).
    Stopped,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Engine(m) => write!(f, "sentiment engine failed: {m}"),
            ServiceError::Stopped => f.write_str("sentiment service stopped"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// A snapshot of the service's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Pieces accepted into the queue.
    pub requests: u64,
    /// Engine calls made.
    pub batches: u64,
    /// Texts scored.
    pub texts: u64,
    /// Largest number of pieces merged into one engine call.
    pub max_merged: u64,
    /// Pieces waiting in the queue now.
    pub queued: u64,
}

type Reply = Result<Vec<Scores>, ServiceError>;

struct Piece {
    texts: Vec<String>,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    batches: AtomicU64,
    texts: AtomicU64,
    max_merged: AtomicU64,
}

struct Inner {
    engine: Arc<dyn Engine>,
    cfg: ServiceConfig,
    tx: OnceLock<Option<mpsc::Sender<Piece>>>,
    counters: Arc<Counters>,
}

/// A shared, batching front of one [`Engine`]. Cheap to clone; the dispatcher
/// thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct SentimentService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SentimentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentimentService")
            .field("engine", &self.inner.engine.name())
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

impl SentimentService {
    /// A service with the engine's default [`ServiceConfig`].
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        let cfg = ServiceConfig::for_engine(&*engine);
        Self::with_config(engine, cfg)
    }

    /// A service with explicit knobs (zeros are raised to 1).
    pub fn with_config(engine: Arc<dyn Engine>, mut cfg: ServiceConfig) -> Self {
        cfg.max_batch = cfg.max_batch.max(1);
        cfg.queue_capacity = cfg.queue_capacity.max(1);
        cfg.workers = cfg.workers.max(1);
        let inner = Inner {
            engine,
            cfg,
            tx: OnceLock::new(),
            counters: Arc::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The engine's name (`"default"`, `"finbert"`).
    pub fn name(&self) -> &str {
        self.inner.engine.name()
    }

    /// The shared engine, for direct (unbatched, blocking) use.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.inner.engine
    }

    /// The knobs in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.cfg
    }

    /// Scores `texts` (result `i` belongs to text `i`), merged with other
    /// callers' texts into batches. Waits while the queue is full.
    pub async fn score(&self, texts: Vec<String>) -> Result<Vec<Scores>, ServiceError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.sender().ok_or(ServiceError::Stopped)?;
        let mut replies = Vec::new();
        let mut rest = texts.into_iter().peekable();
        while rest.peek().is_some() {
            let piece: Vec<String> = rest.by_ref().take(self.inner.cfg.max_batch).collect();
            let (reply, rx) = oneshot::channel();
            tx.send(Piece {
                texts: piece,
                reply,
            })
            .await
            .map_err(|_| ServiceError::Stopped)?;
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            replies.push(rx);
        }
        let mut out = Vec::new();
        for rx in replies {
            let scores = rx
                .await
                .map_err(|_| ServiceError::Engine("scoring task panicked".into()))??;
            out.extend(scores);
        }
        Ok(out)
    }

    /// Counters since the service was created.
    pub fn stats(&self) -> ServiceStats {
        let c = &self.inner.counters;
        let queued = match self.inner.tx.get() {
            Some(Some(tx)) => (self.inner.cfg.queue_capacity - tx.capacity()) as u64,
            _ => 0,
        };
        ServiceStats {
            requests: c.requests.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            texts: c.texts.load(Ordering::Relaxed),
            max_merged: c.max_merged.load(Ordering::Relaxed),
            queued,
        }
    }

    fn sender(&self) -> Option<&mpsc::Sender<Piece>> {
        self.inner
            .tx
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel(self.inner.cfg.queue_capacity);
                let engine = self.inner.engine.clone();
                let cfg = self.inner.cfg.clone();
                let counters = self.inner.counters.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("sentiment-{}", engine.name()))
                    .spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_time()
                            .max_blocking_threads(cfg.workers)
                            .build();
                        match rt {
                            Ok(rt) => rt.block_on(dispatch(engine, cfg, counters, rx)),
                            // No logging dependency in this crate; callers then get `Stopped`.
                            Err(e) => eprintln!("keel-sentiment: dispatcher runtime: {e}"),
                        }
                    });
                spawned.ok().map(|_| tx)
            })
            .as_ref()
    }
}

async fn dispatch(
    engine: Arc<dyn Engine>,
    cfg: ServiceConfig,
    counters: Arc<Counters>,
    mut rx: mpsc::Receiver<Piece>,
) {
    let permits = Arc::new(Semaphore::new(cfg.workers));
    let mut carry: Option<Piece> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => break,
            },
        };
        let mut n = first.texts.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + cfg.max_wait;
        while n < cfg.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) if n + p.texts.len() > cfg.max_batch => {
                    carry = Some(p);
                    break;
                }
                Ok(Some(p)) => {
                    n += p.texts.len();
                    batch.push(p);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // Whatever queued while all workers were busy joins this batch.
        while carry.is_none() && n < cfg.max_batch {
            match rx.try_recv() {
                Ok(p) if n + p.texts.len() > cfg.max_batch => carry = Some(p),
                Ok(p) => {
                    n += p.texts.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let engine = engine.clone();
        let counters = counters.clone();
        tokio::task::spawn_blocking(move || {
            run_batch(&*engine, batch, &counters);
            drop(permit);
        });
    }
    // Let running batches finish before the runtime goes away.
    let _ = permits.acquire_many(cfg.workers as u32).await;
}

fn run_batch(engine: &dyn Engine, batch: Vec<Piece>, counters: &Counters) {
    let mut order: Vec<(usize, usize)> = batch
        .iter()
        .enumerate()
        .flat_map(|(p, piece)| (0..piece.texts.len()).map(move |t| (p, t)))
        .collect();
    let costs: Vec<Vec<usize>> = batch
        .iter()
        .map(|p| p.texts.iter().map(|t| engine.cost(t)).collect())
        .collect();
    order.sort_by_key(|&(p, t)| costs[p][t]);
    let texts: Vec<&str> = order
        .iter()
        .map(|&(p, t)| batch[p].texts[t].as_str())
        .collect();
    let result = engine.score_batch(&texts);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .texts
        .fetch_add(texts.len() as u64, Ordering::Relaxed);
    counters
        .max_merged
        .fetch_max(batch.len() as u64, Ordering::Relaxed);
    match result {
        Ok(scores) if scores.len() == texts.len() => {
            let mut per: Vec<Vec<Option<Scores>>> =
                batch.iter().map(|p| vec![None; p.texts.len()]).collect();
            for (&(p, t), s) in order.iter().zip(scores) {
                per[p][t] = Some(s);
            }
            for (piece, scores) in batch.into_iter().zip(per) {
                let scores = scores.into_iter().map(|s| s.expect("every slot filled"));
                let _ = piece.reply.send(Ok(scores.collect()));
            }
        }
        Ok(scores) => {
            let msg = format!("returned {} scores for {} texts", scores.len(), texts.len());
            fail_all(batch, &msg);
        }
        Err(e) => fail_all(batch, &e.to_string()),
    }
}

fn fail_all(batch: Vec<Piece>, msg: &str) {
    for piece in batch {
        let _ = piece.reply.send(Err(ServiceError::Engine(msg.to_string())));
    }
}
