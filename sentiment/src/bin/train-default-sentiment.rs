//! Trains Keel's default sentiment model and reports held-out metrics.
//!
//! ```text
//! cargo run --release -j 1 --bin train-default-sentiment -- \
//!     --train data/train.csv --valid data/valid.csv --out model/default.kslm
//! ```
//!
//! All arguments are optional (defaults: the crate's `data/` and
//! `model/default.kslm`, and both `tests/formal_sentences*.csv`; `--formal` may
//! be repeated). `--holdout` runs 5-fold
//! cross-validation on the train split only (folds by text hash) and does not
//! read `valid` or write a model: that is how hyper-parameters were chosen.
//! The same command always writes a byte-identical model file.

#![forbid(unsafe_code)]

use keel_sentiment::features::FeatureConfig;
use keel_sentiment::hash::fnv1a64;
use keel_sentiment::train::{evaluate, read_labelled_csv, train, Example, TrainConfig};
use keel_sentiment::DefaultModel;
use std::process::ExitCode;
use std::time::Instant;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

struct Args {
    train: String,
    valid: String,
    formal: Vec<String>,
    formal_given: bool,
    out: Option<String>,
    holdout: bool,
    cfg: TrainConfig,
}

fn usage() -> String {
    "usage: train-default-sentiment [--train PATH] [--valid PATH] [--formal PATH]... [--out PATH]\n\
     \x20   [--holdout] [--no-out] [--bits N] [--char-min N] [--char-max N] [--flags N]\n\
     \x20   [--lex-weight X] [--char-weight X] [--average] [--epochs N] [--lr X] [--l2 X] [--cw-power X] [--seed N]"
        .to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        train: format!("{CRATE}/data/train.csv"),
        valid: format!("{CRATE}/data/valid.csv"),
        formal: vec![
            format!("{CRATE}/tests/formal_sentences.csv"),
            format!("{CRATE}/tests/formal_sentences_holdout.csv"),
        ],
        formal_given: false,
        out: Some(format!("{CRATE}/model/default.kslm")),
        holdout: false,
        cfg: TrainConfig::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        fn num<T: std::str::FromStr>(flag: &str, s: String) -> Result<T, String> {
            s.parse().map_err(|_| format!("bad value for {flag}: {s}"))
        }
        match flag.as_str() {
            "--train" => a.train = val()?,
            "--valid" => a.valid = val()?,
            "--formal" => {
                if !a.formal_given {
                    a.formal.clear();
                    a.formal_given = true;
                }
                a.formal.push(val()?);
            }
            "--out" => a.out = Some(val()?),
            "--no-out" => a.out = None,
            "--holdout" => a.holdout = true,
            "--bits" => a.cfg.features.hash_bits = num(&flag, val()?)?,
            "--char-min" => a.cfg.features.char_min = num(&flag, val()?)?,
            "--char-max" => a.cfg.features.char_max = num(&flag, val()?)?,
            "--flags" => a.cfg.features.flags = num(&flag, val()?)?,
            "--lex-weight" => a.cfg.features.lex_weight = num(&flag, val()?)?,
            "--char-weight" => a.cfg.features.char_weight = num(&flag, val()?)?,
            "--average" => a.cfg.average = true,
            "--epochs" => a.cfg.epochs = num(&flag, val()?)?,
            "--lr" => a.cfg.lr = num(&flag, val()?)?,
            "--l2" => a.cfg.l2 = num(&flag, val()?)?,
            "--cw-power" => a.cfg.class_weight_power = num(&flag, val()?)?,
            "--seed" => a.cfg.seed = num(&flag, val()?)?,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok(a)
}

fn load(path: &str) -> Result<Vec<Example>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    read_labelled_csv(&text).map_err(|e| format!("{path}: {e}"))
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let _: FeatureConfig = a.cfg.features;
    let train_set = load(&a.train)?;
    println!("config: {:?}", a.cfg);
    if a.holdout {
        // Tuning mode: 5-fold cross-validation on *train* only (folds by text
        // hash), pooled confusion matrix. `valid` is never read here.
        let mut pooled = keel_sentiment::metrics::Confusion::default();
        for k in 0..5u64 {
            let (hold, rest): (Vec<Example>, Vec<Example>) = train_set
                .iter()
                .cloned()
                .partition(|e| fnv1a64(e.text.as_bytes()) % 5 == k);
            let m = train(&a.cfg, &rest).map_err(|e| e.to_string())?;
            let c = evaluate(&m, &hold);
            for (r, row) in c.m.iter().enumerate() {
                for (p, n) in row.iter().enumerate() {
                    pooled.m[r][p] += n;
                }
            }
        }
        print!("\n== 5-fold CV on train (pooled) ==\n{pooled}");
    }
    let t0 = Instant::now();
    let model = train(&a.cfg, &train_set).map_err(|e| e.to_string())?;
    let bytes = model.to_bytes();
    println!(
        "trained on {} texts in {:.2?}; model {} bytes",
        train_set.len(),
        t0.elapsed(),
        bytes.len()
    );
    // Evaluate exactly what gets written: reload from the bytes.
    let model = DefaultModel::from_bytes(&bytes).map_err(|e| e.to_string())?;
    if !a.holdout {
        let valid = load(&a.valid)?;
        print!("\n== valid ({}) ==\n{}", a.valid, evaluate(&model, &valid));
    }
    for path in &a.formal {
        match load(path) {
            Ok(formal) => {
                let c = evaluate(&model, &formal);
                print!("\n== formal sentences ({path}) ==\n{c}");
                let wrong: Vec<_> = formal
                    .iter()
                    .filter(|e| model.label(&e.text) != e.label)
                    .map(|e| format!("  [{} -> {}] {}", e.label, model.label(&e.text), e.text))
                    .collect();
                if !wrong.is_empty() {
                    println!("  misclassified:\n{}", wrong.join("\n"));
                }
            }
            Err(e) => println!("\n(formal sentences skipped: {e})"),
        }
    }
    if let Some(out) = a.out.filter(|_| !a.holdout) {
        std::fs::write(&out, &bytes).map_err(|e| format!("{out}: {e}"))?;
        println!(
            "\nwrote {out} ({} bytes, fnv1a64 {:016x})",
            bytes.len(),
            fnv1a64(&bytes)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
