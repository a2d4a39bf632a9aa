//! Why Keel's Redis layer is its own: apalis-redis 1.0.0, as published, against this machine's
//! Redis. Each test pins one gap the README lists; if a future apalis-redis fixes it, the test
//! fails and tells us to reconsider.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    n: usize,
}

async fn cleanup(queue: &str) {
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{queue}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    // apalis-redis also registers the queue in a global, unprefixed sorted set; take our member
    // out, and the set with it once it is empty, so the test leaves nothing behind.
    const REGISTRY: &str = "core:apalis:queues:list";
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(REGISTRY)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let ours: Vec<&String> = members.iter().filter(|m| m.contains(queue)).collect();
    if !ours.is_empty() {
        redis::cmd("ZREM")
            .arg(REGISTRY)
            .arg(ours)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    // ZREM of the last member deletes the key itself.
}

/// A 10,000-job backlog: the worker processes nothing and stops with a Lua error, where Keel's
/// lane works from any backlog (see `durability::a_million_queued_jobs_…`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_redis_1_0_0_processes_nothing_from_a_10k_backlog() {
    let queue = format!("keel-apalis-gap-{}", uuid::Uuid::new_v4().simple());
    let conn = apalis_redis::connect("redis://127.0.0.1:6379")
        .await
        .unwrap();
    let mut storage: RedisStorage<Noop, _> =
        RedisStorage::new(conn).with_config(Config::default().queue(&queue));
    for n in 0..10_000 {
        storage.push(Noop { n }).await.unwrap();
    }

    let processed = Arc::new(AtomicUsize::new(0));
    let counter = processed.clone();
    let worker = WorkerBuilder::new("gap-probe")
        .backend(storage)
        .data(counter)
        .build(|_job: Noop, count: Data<Arc<AtomicUsize>>| async move {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<(), BoxDynError>(())
        });
    let outcome = tokio::time::timeout(Duration::from_secs(10), worker.run()).await;
    let done = processed.load(Ordering::SeqCst);
    cleanup(&queue).await;

    assert_eq!(done, 0, "apalis-redis processed {done} of 10,000 jobs");
    let err = match outcome {
        Ok(Err(e)) => format!("{e:?}"),
        Ok(Ok(())) => panic!("the worker returned cleanly without processing anything"),
        Err(_) => panic!("the worker neither processed jobs nor failed within 10 s"),
    };
    eprintln!("apalis-redis worker error: {err}");
    assert!(
        err.contains("unpack"),
        "expected the Lua `unpack` failure, got: {err}"
    );
}
