//! [`BertClassifier`]: candle's `BertModel` (which has no classification head)
//! plus the head of transformers' `BertForSequenceClassification`: the pooler
//! (dense + tanh on the `[CLS]` vector, `bert.pooler.dense`) and the linear
//! `classifier`. Dropout is an identity at inference.

use anyhow::{ensure, Result};
use candle_core::{Device, IndexOp, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::bert::BertModel;

use crate::config::ClassifierConfig;

/// A loaded BERT sequence classifier.
pub struct BertClassifier {
    bert: BertModel,
    pooler: Linear,
    classifier: Linear,
    num_labels: usize,
}

impl BertClassifier {
    /// Builds the network from HF-named weights (`bert.embeddings...`,
    /// `bert.encoder...`, `bert.pooler.dense`, `classifier`).
    pub fn load(vb: VarBuilder, cfg: &ClassifierConfig) -> Result<Self> {
        let h = cfg.bert.hidden_size;
        let num_labels = cfg.labels.len();
        let bert = BertModel::load(vb.pp("bert"), &cfg.bert)?;
        let pooler = candle_nn::linear(h, h, vb.pp("bert.pooler.dense"))?;
        let classifier = candle_nn::linear(h, num_labels, vb.pp("classifier"))?;
        Ok(Self {
            bert,
            pooler,
            classifier,
            num_labels,
        })
    }

    /// Logits (model label order) for a batch of token id sequences. Shorter
    /// sequences are padded with id 0 and masked out, so a sentence's logits do
    /// not depend on what it is batched with.
    pub fn logits<S: AsRef<[u32]>>(&self, seqs: &[S]) -> Result<Vec<Vec<f32>>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let width = seqs.iter().map(|s| s.as_ref().len()).max().unwrap_or(0);
        ensure!(width > 0, "empty token sequence");
        let mut ids = Vec::with_capacity(seqs.len() * width);
        let mut mask = Vec::with_capacity(seqs.len() * width);
        for s in seqs {
            let s = s.as_ref();
            ids.extend_from_slice(s);
            ids.resize(ids.len() + width - s.len(), 0);
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            mask.resize(mask.len() + width - s.len(), 0);
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (seqs.len(), width), &dev)?;
        let mask = Tensor::from_vec(mask, (seqs.len(), width), &dev)?;
        let types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
        let cls = hidden.i((.., 0))?.contiguous()?;
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        let logits = self.classifier.forward(&pooled)?;
        let rows = logits.to_vec2::<f32>()?;
        ensure!(rows.iter().all(|r| r.len() == self.num_labels));
        Ok(rows)
    }
}
