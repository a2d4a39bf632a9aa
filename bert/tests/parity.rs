//! Parity with PyTorch transformers on the committed tiny random classifier
//! (`tests/fixtures/tiny-bert`, made by `scripts/make_tiny.py`): same token ids,
//! every logit of a padded batch within 1e-4, labels mapped by name, padding
//! and chunking behave.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_bert::tokenize::WordPieces;
use keel_bert::BertEngine;
use keel_sentiment::service::SentimentService;
use keel_sentiment::Scores;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u32>>,
    logits: Vec<Vec<f32>>,
    unpadded_logits: Vec<Vec<f32>>,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert")
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixture().join("logits.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The reference ids without padding.
fn unpadded(r: &Reference) -> Vec<Vec<u32>> {
    r.input_ids
        .iter()
        .zip(&r.attention_mask)
        .map(|(ids, m)| {
            ids.iter()
                .zip(m)
                .filter(|(_, m)| **m == 1)
                .map(|(i, _)| *i)
                .collect()
        })
        .collect()
}

/// A copy of the fixture holding only `files`.
fn subset(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>], tol: f32) {
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("largest |keel - torch| logit difference: {worst:e}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len());
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            assert!((a - b).abs() <= tol, "row {i} col {j}: {a} vs {b}");
        }
    }
}

/// Softmax of PyTorch's logits in Keel order (fixture labels: Positive, NEGATIVE, neutral).
fn reference_scores(logits: &[f32]) -> Scores {
    Scores::from_logits([logits[1], logits[2], logits[0]])
}

#[test]
fn tokenization_matches_transformers_from_tokenizer_json_and_vocab_txt() {
    let r = reference();
    let want = unpadded(&r);
    let from_json = WordPieces::from_dir(&fixture(), 64).unwrap();
    let vocab_only = subset(&["vocab.txt", "tokenizer_config.json"]);
    let from_vocab = WordPieces::from_dir(vocab_only.path(), 64).unwrap();
    for (s, ids) in r.sentences.iter().zip(&want) {
        assert_eq!(from_json.chunks(s).unwrap(), vec![ids.clone()], "{s}");
        assert_eq!(from_vocab.chunks(s).unwrap(), vec![ids.clone()], "{s}");
    }
}

#[test]
fn padded_batch_logits_match_pytorch_within_1e_4() {
    let r = reference();
    let engine = BertEngine::load(&fixture()).unwrap();
    let seqs = unpadded(&r);
    // Padded to the longest, masked: the same batch PyTorch ran.
    let batch = engine.classifier().logits(&seqs).unwrap();
    assert_close(&batch, &r.logits, 1e-4);
    for (s, want) in seqs.iter().zip(&r.unpadded_logits) {
        let one = engine.classifier().logits(std::slice::from_ref(s)).unwrap();
        assert_close(&one, std::slice::from_ref(want), 1e-4);
    }
}

#[test]
fn pytorch_bin_loads_the_same_weights() {
    let r = reference();
    let dir = subset(&["config.json", "pytorch_model.bin", "vocab.txt"]);
    let engine = BertEngine::load(dir.path()).unwrap();
    let batch = engine.classifier().logits(&unpadded(&r)).unwrap();
    assert_close(&batch, &r.logits, 1e-4);
}

#[test]
fn scores_map_labels_by_name_and_ignore_padding() {
    let r = reference();
    let engine = BertEngine::load(&fixture()).unwrap();
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let batch = engine.score(&texts).unwrap();
    for (i, (got, logits)) in batch.iter().zip(&r.logits).enumerate() {
        let want = reference_scores(logits);
        for (a, b) in got.as_array().iter().zip(want.as_array()) {
            assert!((a - b).abs() < 1e-5, "text {i}: {got:?} vs {want:?}");
        }
        let alone = engine.score(&texts[i..=i]).unwrap()[0];
        for (a, b) in alone.as_array().iter().zip(got.as_array()) {
            assert!(
                (a - b).abs() < 1e-5,
                "text {i} alone {alone:?} vs batched {got:?}"
            );
        }
    }
}

#[test]
fn long_text_is_split_into_windows_and_probabilities_averaged() {
    let engine = BertEngine::load(&fixture()).unwrap();
    // The tiny model's window is 64 tokens (62 between [CLS] and [SEP]).
    let long = "shares plunged after the profit warning . ".repeat(20);
    let chunks = engine.tokenizer().chunks(&long).unwrap();
    assert_eq!(chunks.len(), 3); // 140 content tokens → 47 + 47 + 46
    assert!(chunks.iter().all(|c| c.len() <= 64));
    let mut mean = [0f32; 3];
    for c in &chunks {
        let l = engine.classifier().logits(std::slice::from_ref(c)).unwrap();
        let p = reference_scores(&l[0]).as_array();
        for k in 0..3 {
            mean[k] += p[k] / 3.0;
        }
    }
    let got = engine.score(&[long.as_str(), "Moved to QA."]).unwrap()[0].as_array();
    for k in 0..3 {
        assert!((got[k] - mean[k]).abs() < 1e-5, "{got:?} vs {mean:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_batches_the_bert_engine_like_direct_scoring() {
    let r = reference();
    let engine = Arc::new(BertEngine::load(&fixture()).unwrap());
    let svc = SentimentService::new(engine.clone());
    assert_eq!(svc.name(), "finbert");
    let mut handles = Vec::new();
    for s in r.sentences.clone() {
        let svc = svc.clone();
        handles.push(tokio::spawn(
            async move { svc.score(vec![s]).await.unwrap()[0] },
        ));
    }
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let direct = engine.score(&texts).unwrap();
    for (h, want) in handles.into_iter().zip(direct) {
        let got = h.await.unwrap();
        for (a, b) in got.as_array().iter().zip(want.as_array()) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}

#[test]
fn lazy_engine_checks_files_up_front() {
    assert!(keel_bert::LazyBert::new(fixture()).is_ok());
    let no_weights = subset(&["config.json", "vocab.txt"]);
    assert!(keel_bert::LazyBert::new(no_weights.path().to_path_buf()).is_err());
    let no_tokenizer = subset(&["config.json", "model.safetensors"]);
    assert!(keel_bert::LazyBert::new(no_tokenizer.path().to_path_buf()).is_err());
}
