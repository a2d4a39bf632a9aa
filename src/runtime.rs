//! The Tokio runtime a `keel` process runs on (`KEEL_THREADS`).

use tokio::runtime::{Builder, Runtime};

/// 1: a current-thread runtime; n > 1: a multi-thread runtime with `n` threads; 0: a
/// multi-thread runtime with one thread per core. Blocking work (`spawn_blocking`: model
/// inference, text scoring) runs on Tokio's blocking pool whatever the choice.
///
/// Why one thread is the default: on a 2-core machine shared with Postgres and Redis, a second
/// runtime thread mostly adds wake-ups between threads (each job or request crosses several);
/// `bench-http.sh` and the queue benchmark both ran faster on one (`docs/benchmarks.md`, the
/// fifth machine). A process scales out by running more of it.
pub fn build(threads: usize) -> std::io::Result<Runtime> {
    match threads {
        1 => Builder::new_current_thread().enable_all().build(),
        0 => Builder::new_multi_thread().enable_all().build(),
        n => Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    use super::build;

    #[test]
    fn one_thread_is_a_current_thread_runtime_and_more_are_multi_thread() {
        let flavor = |n| build(n).unwrap().handle().runtime_flavor();
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(0), RuntimeFlavor::MultiThread);
        assert_eq!(flavor(3), RuntimeFlavor::MultiThread);
        let workers = build(3).unwrap().metrics().num_workers();
        assert_eq!(workers, 3);
    }
}
