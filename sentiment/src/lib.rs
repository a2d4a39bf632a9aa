//! # keel-sentiment
//!
//! Keel's built-in default financial-sentiment model. It ships *inside* the
//! crate (`model/default.kslm`, embedded with `include_bytes!`), needs no
//! download, no ML framework and no `unsafe`, and scores hundreds of
//! thousands of short texts per second per core.
//!
//! ```
//! use keel_sentiment::{DefaultModel, Label};
//! let model = DefaultModel::builtin();
//! let s = model.score("Shares plunge after profit warning");
//! assert_eq!(s.label(), Label::Negative);
//! assert!((s.negative + s.neutral + s.positive - 1.0).abs() < 1e-5);
//! ```
//!
//! ## Map of the crate
//!
//! | module | what it does |
//! |--------|--------------|
//! | [`text`] | normalisation + tokenisation: lowercasing, placeholders for URLs, `$TICKER`s, `@users`, numbers and signed percentages, negation scopes |
//! | [`hash`] | FNV-1a 64 feature hashing into `2^bits` buckets (fixed forever, part of the file format) |
//! | [`lexicon`] | a curated finance/delivery polarity word list, used as two extra shared features |
//! | [`features`] | word unigrams (`NEG_`-marked), bigrams, char 3–5-grams, lexicon counts → bucket ids |
//! | [`model`] | [`DefaultModel`], [`Scores`], [`Label`], the `.kslm` binary format and its loader |
//! | [`train`] | deterministic AdaGrad trainer + CSV loading (used by the `train-default-sentiment` binary) |
//! | [`metrics`] | confusion matrix, accuracy, per-class P/R/F1, macro F1 |
//! | [`csv`] | a strict RFC 4180 reader (quoted fields with embedded newlines) |
//! | [`engine`] | the [`engine::Engine`] trait every model implements (built-in model here, FinBERT in `keel-bert`) |
//! | [`service`] | [`service::SentimentService`]: one shared engine, concurrent requests merged into batches, bounded queue |
//!
//! Binaries: `train-default-sentiment` (rebuilds `model/default.kslm`
//! byte-for-byte from `data/`) and `bench-default-sentiment` (throughput).
//! See the crate README for results and design notes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod csv;
pub mod engine;
pub mod features;
pub mod hash;
pub mod lexicon;
pub mod metrics;
pub mod model;
pub mod service;
pub mod text;
pub mod train;

pub use model::{DefaultModel, Error, Label, Scores};
