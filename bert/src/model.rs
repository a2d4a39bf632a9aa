//! [`BertClassifier`]: Keel's BERT encoder ([`crate::encoder`]) plus the head
//! of transformers' `BertForSequenceClassification`: the pooler (dense + tanh
//! on the `[CLS]` vector, `bert.pooler.dense`) and the linear `classifier`.
//! Dropout is an identity at inference.

use anyhow::{ensure, Result};
use candle_nn::VarBuilder;

use crate::config::ClassifierConfig;
use crate::dense::Dense;
use crate::encoder::Encoder;

/// A loaded BERT sequence classifier.
pub struct BertClassifier {
    encoder: Encoder,
    pooler: Dense,
    classifier: Dense,
}

impl BertClassifier {
    /// Builds the network from HF-named weights (`bert.embeddings...`,
    /// `bert.encoder...`, `bert.pooler.dense`, `classifier`).
    pub fn load(vb: VarBuilder, cfg: &ClassifierConfig) -> Result<Self> {
        let h = cfg.bert.hidden_size;
        let encoder = Encoder::load(vb.pp("bert"), &cfg.bert)?;
        let pooler = Dense::load(vb.pp("bert.pooler.dense"), h, h)?;
        let classifier = Dense::load(vb.pp("classifier"), h, cfg.labels.len())?;
        Ok(Self {
            encoder,
            pooler,
            classifier,
        })
    }

    /// Logits (model label order) for a batch of token id sequences. Each
    /// sequence only attends to its own tokens (as with padding plus an
    /// attention mask), so a sentence's logits do not depend on what it is
    /// batched with.
    pub fn logits<S: AsRef<[u32]>>(&self, seqs: &[S]) -> Result<Vec<Vec<f32>>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let seqs: Vec<&[u32]> = seqs.iter().map(AsRef::as_ref).collect();
        let cls = self.encoder.cls_states(&seqs)?;
        let mut pooled = self.pooler.forward(&cls, seqs.len());
        pooled.iter_mut().for_each(|v| *v = v.tanh());
        let logits = self.classifier.forward(&pooled, seqs.len());
        let n = self.classifier.out();
        ensure!(logits.len() == seqs.len() * n);
        Ok(logits.chunks_exact(n).map(<[f32]>::to_vec).collect())
    }
}
