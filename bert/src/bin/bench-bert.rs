//! Benchmark (not a test): sentences/s and peak RSS of a bert-base-sized
//! classifier (hidden 768, 12 layers, 12 heads, random weights) on Jira-comment
//! lengths (10–120 words), through the production path: `BertEngine` (length
//! bucketing) behind `SentimentService` (merged batches), or `--mode direct`.
//!
//! ```sh
//! RAYON_NUM_THREADS=8 cargo run --release -p keel-bert --bin bench-bert -- \
//!     --model-dir /tmp/keel-bench-bert [--seconds 20] [--texts 512] [--mode service|direct]
//! ```
//!
//! `--hidden 64 --layers 2 --heads 4` (only when the model is first written)
//! makes a small model to smoke-test the bench in a debug build.
//!
//! The first run writes the model (`config.json`, `model.safetensors`,
//! `vocab.txt`) and `sentences.txt` into `--model-dir`, so
//! `scripts/bench_torch.py` can measure PyTorch on the same weights and sentences.
//! Threads: the encoder (rayon pool and gemm) follows `RAYON_NUM_THREADS` (default: all cores).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use keel_bert::config::ClassifierConfig;
use keel_bert::{BertClassifier, BertEngine};
use keel_sentiment::service::SentimentService;

const WORDS: &str = "the a to of and in for on with is was it this that we be not will
    ticket issue bug fix fixed deploy deployed release build test tests failing passed review
    merged branch customer customers team sprint deadline blocked blocker delayed shipped
    production staging outage incident resolved regression rollback hotfix migration database
    api endpoint latency timeout error errors crash memory cpu load performance slow fast
    please thanks great good bad unfortunately again still already yet now today tomorrow
    yesterday week month quarter revenue cost costs budget invoice contract renewal churn
    upgrade downgrade plan pricing discount sales deal signed lost won risk risks concern
    happy unhappy frustrated angry pleased excellent terrible works broken works fine
    moved qa done progress update status priority high low critical minor major estimate
    hours days scope change request approved rejected pending waiting feedback call meeting";

/// SplitMix64: a fixed, dependency-free generator so every run (and the
/// Python bench, which reads the written file) sees the same sentences.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sentences(n: usize) -> Vec<String> {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut rng = Rng(42);
    (0..n)
        .map(|_| {
            let len = 10 + rng.below(111);
            let mut s = String::new();
            for i in 0..len {
                match rng.below(20) {
                    0 => s.push_str(&format!("PROJ-{}", 100 + rng.below(9900))),
                    1 => s.push_str(&format!("{}", rng.below(500))),
                    _ => s.push_str(words[rng.below(words.len())]),
                }
                s.push(match (i + 1 == len, rng.below(12)) {
                    (true, _) => '.',
                    (false, 0) => ',',
                    _ => ' ',
                });
                if s.ends_with(',') {
                    s.push(' ');
                }
            }
            s
        })
        .collect()
}

/// Writes a random bert-base classifier in Hugging Face layout into `dir`.
fn write_model(dir: &Path, [hidden, layers, heads]: [usize; 3]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in words.iter().map(|w| w.to_string()).chain(
        "abcdefghijklmnopqrstuvwxyz0123456789.,-"
            .chars()
            .flat_map(|c| [c.to_string(), format!("##{c}")]),
    ) {
        if !vocab.contains(&w) {
            vocab.push(w);
        }
    }
    let mut i = 0;
    while vocab.len() < 30522 {
        vocab.push(format!("[unused{i}]"));
        i += 1;
    }
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n")?;
    let config = serde_json::json!({
        "architectures": ["BertForSequenceClassification"], "model_type": "bert",
        "vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": 4 * hidden, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "id2label": {"0": "positive", "1": "negative", "2": "neutral"},
        "label2id": {"positive": 0, "negative": 1, "neutral": 2}
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": true, "tokenizer_class": "BertTokenizer"}"#,
    )?;
    let cfg = ClassifierConfig::from_dir(dir)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertClassifier::load(vb, &cfg)?; // creates every weight, randomly initialised
    varmap.save(dir.join("model.safetensors"))?;
    Ok(())
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(arg(&args, "--model-dir").unwrap_or("/tmp/keel-bench-bert".into()));
    let seconds: f64 = arg(&args, "--seconds").map_or(Ok(20.0), |s| s.parse())?;
    let n: usize = arg(&args, "--texts").map_or(Ok(512), |s| s.parse())?;
    let mode = arg(&args, "--mode").unwrap_or("service".into());
    if !dir.join("model.safetensors").is_file() {
        eprintln!("writing a random bert-base classifier to {}", dir.display());
        let size = ["--hidden", "--layers", "--heads"].map(|f| arg(&args, f));
        let size = [768, 12, 12]
            .into_iter()
            .zip(size)
            .map(|(d, a)| a.map_or(Ok(d), |a| a.parse()))
            .collect::<Result<Vec<usize>, _>>()?;
        write_model(&dir, [size[0], size[1], size[2]]).context("writing the model")?;
    }
    let texts = sentences(n);
    std::fs::write(dir.join("sentences.txt"), texts.join("\n") + "\n")?;
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let engine = Arc::new(BertEngine::load(&dir)?);
    let load_s = t.elapsed().as_secs_f64();
    let tokens: usize = texts
        .iter()
        .map(|s| engine.tokenizer().content_ids(s).map_or(0, |v| v.len() + 2))
        .sum();
    engine.score(&[texts[0].as_str()])?; // warm-up
    let threads = candle_core::utils::get_num_threads();
    let t = Instant::now();
    let mut done = 0usize;
    while t.elapsed().as_secs_f64() < seconds || done == 0 {
        if mode == "direct" {
            for chunk in texts.chunks(64) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                engine.score(&refs)?;
            }
        } else {
            // Many small jobs (8 texts each) at once, as worker slots would send them.
            let svc = SentimentService::new(engine.clone());
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let jobs: Vec<_> = texts
                    .chunks(8)
                    .map(|c| {
                        let (svc, batch) = (svc.clone(), c.to_vec());
                        tokio::spawn(async move { svc.score(batch).await })
                    })
                    .collect();
                for j in jobs {
                    j.await??;
                }
                anyhow::Ok(())
            })?;
        }
        done += texts.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "mode={mode} threads={threads} texts={done} mean_tokens={:.1} load_s={load_s:.2} \
         sentences_per_s={:.1} peak_rss_mib={:.0} (before load {rss_before:.0})",
        tokens as f64 / texts.len() as f64,
        done as f64 / secs,
        peak_rss_mib()
    );
    Ok(())
}
