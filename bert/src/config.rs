//! `config.json` of a Hugging Face `BertForSequenceClassification`: the encoder
//! shape plus the label order, mapped **by name** onto Keel's fixed
//! `negative, neutral, positive` (ProsusAI/finbert says `positive, negative,
//! neutral`; yiyanghkust/finbert-tone says `Neutral, Positive, Negative`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use keel_sentiment::Label;
use serde::Deserialize;
use serde_json::Value;

use crate::activation::Activation;

/// The encoder fields of `config.json` that inference needs.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    /// Rows of the word embedding table.
    pub vocab_size: usize,
    /// Width of every token vector.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (`hidden_size` is a multiple of it).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation name (`gelu`, `gelu_new`, `relu`...).
    pub hidden_act: String,
    /// Rows of the position embedding table (longest sequence).
    pub max_position_embeddings: usize,
    /// Rows of the token type embedding table.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// The feed-forward activation `hidden_act` names.
    pub fn activation(&self) -> Result<Activation> {
        Ok(match self.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_approximate" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => bail!("hidden_act {other:?} is not supported (gelu, gelu_new, relu)"),
        })
    }
}

/// What Keel needs from `config.json`.
#[derive(Clone, Debug)]
pub struct ClassifierConfig {
    /// The encoder shape.
    pub bert: BertConfig,
    /// `model_index[k]` = the model's output index for Keel class `k`
    /// (`Label::index()` order).
    pub model_index: [usize; 3],
    /// The model's own label names, in its output order.
    pub labels: Vec<String>,
}

impl ClassifierConfig {
    /// Reads and checks `config.json` in `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses `config.json` text. Keys older configs omit are filled with
    /// BERT's defaults.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut v: Value = serde_json::from_str(text).context("config.json is not JSON")?;
        let obj = v.as_object_mut().context("config.json is not an object")?;
        if let Some(t) = obj.get("model_type").and_then(Value::as_str) {
            if t != "bert" {
                bail!("model_type is {t:?}; only \"bert\" models are supported");
            }
        }
        if let Some(t) = obj.get("position_embedding_type").and_then(Value::as_str) {
            if t != "absolute" {
                bail!("position_embedding_type {t:?} is not supported (only \"absolute\")");
            }
        }
        let defaults = serde_json::json!({
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2,
            "max_position_embeddings": 512
        });
        for (k, d) in defaults.as_object().expect("literal object") {
            if obj.get(k).is_none_or(Value::is_null) && !d.is_null() {
                obj.insert(k.clone(), d.clone());
            }
        }
        let labels = labels_in_order(obj.get("id2label"))?;
        let bert: BertConfig =
            serde_json::from_value(v).context("config.json lacks BERT encoder fields")?;
        bert.activation()?;
        if bert.num_attention_heads == 0
            || !bert.hidden_size.is_multiple_of(bert.num_attention_heads)
        {
            bail!("hidden_size is not a multiple of num_attention_heads");
        }
        let model_index = map_labels(&labels)?;
        Ok(Self {
            bert,
            model_index,
            labels,
        })
    }

    /// Longest sequence (with `[CLS]`/`[SEP]`) the encoder accepts: 512 for
    /// BERT-base, less for tiny test models.
    pub fn max_len(&self) -> usize {
        self.bert.max_position_embeddings.min(512)
    }
}

fn labels_in_order(id2label: Option<&Value>) -> Result<Vec<String>> {
    let map = id2label
        .and_then(Value::as_object)
        .context("config.json has no id2label: cannot tell which output is which sentiment")?;
    let mut labels = vec![None; map.len()];
    for (k, name) in map {
        let i: usize = k.parse().with_context(|| format!("id2label key {k:?}"))?;
        let name = name.as_str().context("id2label values must be strings")?;
        *labels
            .get_mut(i)
            .with_context(|| format!("id2label key {i} out of range"))? = Some(name.to_string());
    }
    labels
        .into_iter()
        .map(|l| l.context("id2label has gaps"))
        .collect()
}

/// Maps model outputs to Keel classes by case-insensitive name.
fn map_labels(labels: &[String]) -> Result<[usize; 3]> {
    if labels.len() != 3 {
        bail!(
            "the classifier has {} labels ({labels:?}); need exactly negative, neutral, positive",
            labels.len()
        );
    }
    let mut out = [usize::MAX; 3];
    for (i, name) in labels.iter().enumerate() {
        let label = Label::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(name.trim()))
            .with_context(|| format!("label {name:?} is not negative/neutral/positive"))?;
        if out[label.index()] != usize::MAX {
            bail!("label {name:?} appears twice in id2label");
        }
        out[label.index()] = i;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 8, "model_type": "bert""#;

    #[test]
    fn labels_map_by_name_whatever_their_order_or_case() {
        let c = ClassifierConfig::from_json(&format!(
            r#"{{{BASE}, "id2label": {{"0": "Positive", "1": "NEGATIVE", "2": "neutral"}}}}"#
        ))
        .unwrap();
        // Keel order: negative, neutral, positive.
        assert_eq!(c.model_index, [1, 2, 0]);
        assert_eq!(c.max_len(), 512);
        let tone = ClassifierConfig::from_json(&format!(
            r#"{{{BASE}, "id2label": {{"0": "Neutral", "1": "Positive", "2": "Negative"}}}}"#
        ))
        .unwrap();
        assert_eq!(tone.model_index, [2, 0, 1]);
    }

    #[test]
    fn unusable_labels_are_refused() {
        for bad in [
            r#"{"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}"#,
            r#"{"0": "positive", "1": "negative"}"#,
            r#"{"0": "positive", "1": "positive", "2": "neutral"}"#,
        ] {
            let err = ClassifierConfig::from_json(&format!(r#"{{{BASE}, "id2label": {bad}}}"#));
            assert!(err.is_err(), "{bad}");
        }
        assert!(ClassifierConfig::from_json(&format!("{{{BASE}}}")).is_err());
    }
}
