//! SentimentService: same scores as direct scoring, batches really merge, and a
//! full queue makes callers wait. No timed assertions: tests wait for counters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use keel_sentiment::engine::{default_engine, Engine, EngineError};
use keel_sentiment::service::{SentimentService, ServiceConfig};
use keel_sentiment::{DefaultModel, Scores};

/// The built-in model behind a gate: every call blocks until the gate opens.
#[derive(Default)]
struct Gated {
    open: Mutex<bool>,
    cv: Condvar,
    calls: AtomicUsize,
}

impl Gated {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl Engine for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    fn score_batch(&self, texts: &[&str]) -> Result<Vec<Scores>, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
        Ok(DefaultModel::builtin_ref().score_batch(texts))
    }
}

fn text(i: usize) -> String {
    const BASE: [&str; 4] = [
        "Shares plunge after profit warning",
        "Company beats estimates and raises guidance",
        "Moved to QA.",
        "Revenue flat, margins slightly lower",
    ];
    format!("{} #{i}", BASE[i % 4])
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_direct_scores() {
    let svc = SentimentService::new(default_engine());
    let mut handles = Vec::new();
    for c in 0..40 {
        let svc = svc.clone();
        let texts: Vec<String> = (0..(1 + c % 7)).map(|i| text(c * 10 + i)).collect();
        handles.push(tokio::spawn(async move {
            let got = svc.score(texts.clone()).await.unwrap();
            (texts, got)
        }));
    }
    for h in handles {
        let (texts, got) = h.await.unwrap();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_eq!(got, DefaultModel::builtin_ref().score_batch(&refs));
    }
    let s = svc.stats();
    assert_eq!(s.requests, 40);
    assert_eq!(s.texts, (0..40).map(|c| 1 + c % 7).sum::<usize>() as u64);
    assert!(svc.score(Vec::new()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_request_is_split_into_pieces_and_kept_in_order() {
    let cfg = ServiceConfig {
        max_batch: 8,
        max_wait: Duration::from_millis(1),
        queue_capacity: 2,
        workers: 2,
    };
    let svc = SentimentService::with_config(default_engine(), cfg);
    let texts: Vec<String> = (0..50).map(text).collect();
    let got = svc.score(texts.clone()).await.unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(got, DefaultModel::builtin_ref().score_batch(&refs));
    assert_eq!(svc.stats().requests, 7); // ceil(50 / 8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_behind_a_busy_worker_are_merged() {
    let gate = Arc::new(Gated::default());
    let cfg = ServiceConfig {
        max_batch: 64,
        max_wait: Duration::from_millis(1),
        queue_capacity: 16,
        workers: 1,
    };
    let svc = SentimentService::with_config(gate.clone(), cfg);
    let first = {
        let svc = svc.clone();
        tokio::spawn(async move { svc.score(vec![text(0)]).await })
    };
    wait_until(|| gate.calls.load(Ordering::SeqCst) == 1).await;
    let mut handles = Vec::new();
    for i in 1..=10 {
        let svc = svc.clone();
        handles.push(tokio::spawn(async move {
            (i, svc.score(vec![text(i)]).await.unwrap())
        }));
    }
    wait_until(|| svc.stats().requests == 11).await;
    gate.open();
    first.await.unwrap().unwrap();
    for h in handles {
        let (i, got) = h.await.unwrap();
        assert_eq!(got, vec![DefaultModel::builtin_ref().score(&text(i))]);
    }
    let s = svc.stats();
    assert_eq!(s.batches, 2, "{s:?}");
    assert_eq!(s.max_merged, 10, "{s:?}");
    assert_eq!(s.texts, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_makes_callers_wait() {
    let gate = Arc::new(Gated::default());
    let cfg = ServiceConfig {
        max_batch: 1,
        max_wait: Duration::ZERO,
        queue_capacity: 2,
        workers: 1,
    };
    let svc = SentimentService::with_config(gate.clone(), cfg);
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..10 {
        let (svc, done) = (svc.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let got = svc.score(vec![text(i)]).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
            (i, got)
        }));
    }
    // One piece in the (blocked) engine, one held by the dispatcher waiting for
    // the worker, two in the queue: the other six callers wait in `send`.
    wait_until(|| svc.stats().requests == 4 && svc.stats().queued == 2).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let s = svc.stats();
        assert_eq!((s.requests, s.queued), (4, 2), "queue grew past its bound");
        assert_eq!(done.load(Ordering::SeqCst), 0);
    }
    gate.open();
    for h in handles {
        let (i, got) = h.await.unwrap();
        assert_eq!(got, vec![DefaultModel::builtin_ref().score(&text(i))]);
    }
    let s = svc.stats();
    assert_eq!((s.requests, s.batches, s.queued), (10, 10, 0));
}

#[tokio::test]
async fn engine_errors_reach_every_caller() {
    struct Broken;
    impl Engine for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn score_batch(&self, _: &[&str]) -> Result<Vec<Scores>, EngineError> {
            Err("tensor shape mismatch".into())
        }
    }
    let svc = SentimentService::new(Arc::new(Broken));
    let err = svc.score(vec!["x".into()]).await.unwrap_err();
    assert!(err.to_string().contains("tensor shape mismatch"), "{err}");
}
