//! # keel-bert
//!
//! FinBERT-compatible BERT sentiment classifier for Keel (CPU only, pure Rust,
//! no libtorch): weights are read with
//! [candle](https://github.com/huggingface/candle), the forward pass is Keel's
//! own encoder on the `gemm` crate (packed tokens, fused QKV, fused elementwise
//! passes). It plugs into `keel_sentiment::engine::Engine`, so
//! `keel_sentiment::service::SentimentService` batches it like the built-in model;
//! a libtorch engine could later implement the same trait behind a feature.
//!
//! ## Map of the crate
//!
//! | module | what it does |
//! |--------|--------------|
//! | [`config`] | `config.json`: encoder shape, `id2label` mapped by name onto negative/neutral/positive |
//! | [`weights`] | `model.safetensors` or `pytorch_model.bin` into memory (no mmap, no `unsafe`) |
//! | [`tokenize`] | `tokenizer.json` or `vocab.txt` WordPiece; the ≤512-token chunking rule |
//! | [`model`] | [`BertClassifier`]: encoder + pooler + classifier head |
//! | [`encoder`] | embeddings + transformer layers over packed tokens (no padding); last layer for `[CLS]` only |
//! | [`attention`] | per-sequence multi-head attention, (sequence, head) pairs in parallel |
//! | [`dense`] | linear and LayerNorm layers: bias/residual written first, gemm accumulates onto them |
//! | [`kernels`] | checked `gemm` wrapper (the crate's only `unsafe`), row passes (bias, LayerNorm) |
//! | [`activation`] | vectorizable `exp`/`erf`, GELU, softmax |
//! | [`engine`] | [`BertEngine`] (length-bucketed batches, chunk averaging) and [`LazyBert`] |
//! | [`hub`] | `keel model pull`: resumable, checksum-verified Hub downloads; `KEEL_SENTIMENT_MODEL` resolution |
//!
//! Binary `bench-bert`: sentences/s and peak RSS of a random bert-base model.
//! Tests: `tests/parity.rs` (logits within 1e-4 of PyTorch on a committed tiny
//! model) and `tests/hub.rs` (pull against a local server).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod activation;
pub mod attention;
pub mod config;
pub mod dense;
pub mod encoder;
pub mod engine;
pub mod hub;
pub mod kernels;
pub mod model;
pub mod tokenize;
pub mod weights;

pub use engine::{finbert_engine, BertEngine, LazyBert};
pub use model::BertClassifier;
