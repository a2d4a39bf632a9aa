//! Throughput benchmark for the built-in model on Jira-comment-length texts.
//!
//! ```text
//! cargo run --release -j 1 --bin bench-default-sentiment [-- SECONDS]
//! ```
//!
//! Generates 10,000 deterministic synthetic comments of 20–300 characters
//! (status updates, review notes, incident chatter, earnings-style lines),
//! then reports model load time and texts/s on 1 thread and on 2 threads
//! (each thread scoring the whole set with the shared model).

#![forbid(unsafe_code)]

use keel_sentiment::DefaultModel;
use std::hint::black_box;
use std::time::{Duration, Instant};

const OPENERS: &[&str] = &[
    "Moved to QA.",
    "Deployed to staging and smoke tests pass.",
    "The release is blocked by the failing migration.",
    "Revenue declined 12% year over year due to weaker demand.",
    "Fixed the flaky test, build is green again.",
    "Still waiting on the vendor for the API keys.",
    "Operating margin expanded to 21%, beating guidance.",
    "Customer reports checkout errors after the last deploy.",
    "Reviewed the PR, a few nits but looks good overall.",
    "Rollback done; investigating root cause.",
    "Assigned to the platform team for triage.",
    "Latency improved by 40% after enabling the cache.",
];
const MIDDLES: &[&str] = &[
    "We will not make the sprint deadline",
    "the error rate is back to normal",
    "see https://jira.example.com/browse/KEEL-1234 for details",
    "@alice can you take a look when you have time",
    "costs came in 3.5% above plan",
    "the fix is verified in production",
    "this is a regression from v2.3.1",
    "no customer impact so far",
    "numbers for Q3 look strong",
    "the job failed again overnight",
];

/// Deterministic xorshift PRNG (no dependency, same texts every run).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

fn corpus(n: usize) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let target = 20 + rng.next() % 281; // 20..=300 chars
            let mut s = String::from(OPENERS[rng.next() % OPENERS.len()]);
            while s.len() < target {
                s.push(' ');
                s.push_str(MIDDLES[rng.next() % MIDDLES.len()]);
                s.push(if rng.next() & 1 == 0 { '.' } else { ',' });
            }
            let mut cut = target.min(s.len());
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s
        })
        .collect()
}

fn run(model: &DefaultModel, texts: &[&str], min: Duration) -> (u64, Duration) {
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < min {
        for t in texts {
            black_box(model.score(black_box(t)));
        }
        n += texts.len() as u64;
    }
    (n, t0.elapsed())
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let min = Duration::from_secs_f64(secs);

    let t0 = Instant::now();
    let model = DefaultModel::builtin();
    let load = t0.elapsed();
    let owned = corpus(10_000);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let avg = texts.iter().map(|t| t.chars().count()).sum::<usize>() as f64 / texts.len() as f64;
    println!(
        "builtin() load: {load:.2?}; corpus: {} texts, 20-300 chars (mean {avg:.0})",
        texts.len()
    );

    run(&model, &texts, Duration::from_millis(300)); // warm-up
    let (n, el) = run(&model, &texts, min);
    let one = n as f64 / el.as_secs_f64();
    println!("1 thread : {one:>10.0} texts/s ({:.2} µs/text)", 1e6 / one);

    let (total, el) = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| run(&model, &texts, min)))
            .collect();
        let rs: Vec<_> = hs
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect();
        let total: u64 = rs.iter().map(|r| r.0).sum();
        let el = rs.iter().map(|r| r.1).max().unwrap_or_default();
        (total, el)
    });
    let two = total as f64 / el.as_secs_f64();
    println!("2 threads: {two:>10.0} texts/s ({:.2}x)", two / one);
}
