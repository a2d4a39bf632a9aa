//! [`BertEngine`]: tokenizer + classifier behind `keel_sentiment`'s `Engine`
//! trait, with length bucketing; [`LazyBert`] defers the (seconds-long) load
//! to the first job so the API process only checks the files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use keel_sentiment::engine::{Engine, EngineError};
use keel_sentiment::Scores;

use crate::config::ClassifierConfig;
use crate::model::BertClassifier;
use crate::tokenize::WordPieces;

/// Most sequences in one forward pass.
const MAX_SEQS: usize = 32;
/// Most tokens (sequences × longest) in one forward pass: bounds the work
/// buffers (activations of 8192 tokens, ~240 MB for bert-base). Sequences are
/// packed without padding, so grouping no longer costs padded compute.
const TOKEN_BUDGET: usize = 8192;

/// A loaded FinBERT-compatible classifier.
pub struct BertEngine {
    name: String,
    cfg: ClassifierConfig,
    model: BertClassifier,
    tok: WordPieces,
}

impl BertEngine {
    /// Loads a Hugging Face model directory (see the crate docs for the files).
    /// Reported under the name `"finbert"`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg = ClassifierConfig::from_dir(dir)?;
        let tok = WordPieces::from_dir(dir, cfg.max_len())?;
        let vb = crate::weights::load(dir)?;
        let model = BertClassifier::load(vb, &cfg)
            .with_context(|| format!("building the classifier from {}", dir.display()))?;
        Ok(Self {
            name: "finbert".into(),
            cfg,
            model,
            tok,
        })
    }

    /// Sets the name reported in results.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The tokenizer (for tests and tools).
    pub fn tokenizer(&self) -> &WordPieces {
        &self.tok
    }

    /// The classifier (for tests and tools).
    pub fn classifier(&self) -> &BertClassifier {
        &self.model
    }

    /// Scores texts in Keel's label order. Chunks of all texts are sorted by
    /// length and run in groups bounded by [`MAX_SEQS`] and [`TOKEN_BUDGET`];
    /// a long text's chunk probabilities are averaged.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<Scores>> {
        let mut seqs: Vec<(usize, Vec<u32>)> = Vec::new();
        for (d, t) in texts.iter().enumerate() {
            seqs.extend(self.tok.chunks(t)?.into_iter().map(|c| (d, c)));
        }
        seqs.sort_by_key(|(_, s)| s.len());
        let mut sums = vec![[0f32; 3]; texts.len()];
        let mut counts = vec![0u32; texts.len()];
        let mut start = 0;
        while start < seqs.len() {
            let mut end = start + 1;
            while end < seqs.len()
                && end - start < MAX_SEQS
                && (end - start + 1) * seqs[end].1.len() <= TOKEN_BUDGET
            {
                end += 1;
            }
            let group = &seqs[start..end];
            let batch: Vec<&[u32]> = group.iter().map(|(_, s)| s.as_slice()).collect();
            let logits = self.model.logits(&batch)?;
            for ((d, _), row) in group.iter().zip(logits) {
                let [a, b, c] = self.cfg.model_index;
                let p = Scores::from_logits([row[a], row[b], row[c]]).as_array();
                for (sum, p) in sums[*d].iter_mut().zip(p) {
                    *sum += p;
                }
                counts[*d] += 1;
            }
            start = end;
        }
        Ok(sums
            .into_iter()
            .zip(counts)
            .map(|(s, n)| {
                let n = n.max(1) as f32;
                Scores {
                    negative: s[0] / n,
                    neutral: s[1] / n,
                    positive: s[2] / n,
                }
            })
            .collect())
    }
}

impl Engine for BertEngine {
    fn name(&self) -> &str {
        &self.name
    }
    fn max_batch(&self) -> usize {
        64
    }
    /// The encoder already spreads one forward pass over every core.
    fn parallelism(&self) -> usize {
        1
    }
    fn score_batch(&self, texts: &[&str]) -> Result<Vec<Scores>, EngineError> {
        self.score(texts).map_err(|e| format!("{e:#}").into())
    }
}

/// A [`BertEngine`] loaded on first use. [`LazyBert::new`] checks the files
/// and `config.json` up front, so a misconfigured deployment fails at start.
pub struct LazyBert {
    dir: PathBuf,
    cell: OnceLock<Result<BertEngine, String>>,
}

impl LazyBert {
    /// Checks that `dir` holds a usable model without loading the weights.
    pub fn new(dir: PathBuf) -> Result<Self> {
        ClassifierConfig::from_dir(&dir)?;
        crate::weights::weight_file(&dir)?;
        anyhow::ensure!(
            dir.join("tokenizer.json").is_file() || dir.join("vocab.txt").is_file(),
            "{} has neither tokenizer.json nor vocab.txt",
            dir.display()
        );
        Ok(Self {
            dir,
            cell: OnceLock::new(),
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&self) -> Result<&BertEngine, EngineError> {
        self.cell
            .get_or_init(|| BertEngine::load(&self.dir).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| format!("loading the FinBERT model failed: {e}").into())
    }
}

impl Engine for LazyBert {
    fn name(&self) -> &str {
        "finbert"
    }
    fn max_batch(&self) -> usize {
        64
    }
    fn parallelism(&self) -> usize {
        1
    }
    fn score_batch(&self, texts: &[&str]) -> Result<Vec<Scores>, EngineError> {
        self.get()?.score_batch(texts)
    }
}

/// The FinBERT engine for `KEEL_SENTIMENT_MODEL` (a directory, or a repo name
/// pulled into the cache, see [`crate::hub::resolve`]), loaded lazily.
pub fn finbert_engine(spec: &str) -> Result<Arc<dyn Engine>> {
    let dir = crate::hub::resolve(spec, &crate::hub::PullOptions::from_env())?;
    Ok(Arc::new(LazyBert::new(dir)?))
}
