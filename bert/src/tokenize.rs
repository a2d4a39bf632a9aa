//! BERT WordPiece tokenisation and the long-text chunking rule.
//!
//! A model directory has `tokenizer.json` (used as is) or only `vocab.txt`
//! (ProsusAI/finbert): then the standard BERT pipeline is built from it —
//! BERT normaliser (clean text, CJK spacing, lowercase + strip accents when
//! `do_lower_case`, read from `tokenizer_config.json`, default true), BERT
//! pre-tokeniser, WordPiece with `[UNK]`.
//!
//! **Chunking**: a text longer than the model's window (512 tokens with
//! `[CLS]`/`[SEP]`, so 510 content tokens) is cut into the fewest chunks that
//! fit, of near-equal length; each chunk is scored on its own and the text's
//! probabilities are the plain mean of its chunks' probabilities.

use std::ops::Range;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::Tokenizer;

/// A BERT tokenizer that yields model-ready chunks.
pub struct WordPieces {
    tok: Tokenizer,
    cls: u32,
    sep: u32,
    max_len: usize,
}

impl WordPieces {
    /// Loads `tokenizer.json`, else builds from `vocab.txt`; `max_len` is the
    /// model window including `[CLS]` and `[SEP]`.
    pub fn from_dir(dir: &Path, max_len: usize) -> Result<Self> {
        anyhow::ensure!(
            max_len >= 3,
            "model window of {max_len} tokens is too small"
        );
        let json = dir.join("tokenizer.json");
        let mut tok = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| anyhow!("reading {}: {e}", json.display()))?
        } else {
            let vocab = dir.join("vocab.txt");
            anyhow::ensure!(
                vocab.is_file(),
                "{} has neither tokenizer.json nor vocab.txt",
                dir.display()
            );
            from_vocab(&vocab, lowercase_setting(dir))?
        };
        // Chunking is done here, not by the tokenizer; padding by the model.
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| anyhow!("disabling truncation: {e}"))?;
        let id = |t: &str| {
            tok.token_to_id(t)
                .with_context(|| format!("the vocabulary has no {t} token"))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        Ok(Self {
            tok,
            cls,
            sep,
            max_len,
        })
    }

    /// WordPiece ids of `text`, without special tokens.
    pub fn content_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tok
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// `[CLS] … [SEP]` sequences covering `text`, each at most the window long
    /// (one for any text that fits, including the empty text).
    pub fn chunks(&self, text: &str) -> Result<Vec<Vec<u32>>> {
        let ids = self.content_ids(text)?;
        Ok(split_balanced(ids.len(), self.max_len - 2)
            .into_iter()
            .map(|r| {
                let mut s = Vec::with_capacity(r.len() + 2);
                s.push(self.cls);
                s.extend_from_slice(&ids[r]);
                s.push(self.sep);
                s
            })
            .collect())
    }
}

/// `do_lower_case` from `tokenizer_config.json` (BERT's default: true).
fn lowercase_setting(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("do_lower_case").and_then(serde_json::Value::as_bool))
        .unwrap_or(true)
}

fn from_vocab(vocab: &Path, lowercase: bool) -> Result<Tokenizer> {
    let path = vocab.to_str().context("vocab.txt path is not UTF-8")?;
    let wp = WordPiece::from_file(path)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow!("reading {}: {e}", vocab.display()))?;
    let mut tok = Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    Ok(tok)
}

/// Splits `n` items into the fewest ranges of at most `limit`, sizes differing
/// by at most one. `n == 0` gives one empty range.
pub fn split_balanced(n: usize, limit: usize) -> Vec<Range<usize>> {
    let limit = limit.max(1);
    let k = n.div_ceil(limit).max(1);
    let (base, extra) = (n / k, n % k);
    let mut out = Vec::with_capacity(k);
    let mut start = 0;
    for i in 0..k {
        let len = base + usize::from(i < extra);
        out.push(start..start + len);
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_balanced;

    #[test]
    fn chunks_are_balanced_and_within_the_window() {
        assert_eq!(split_balanced(0, 510), vec![0..0]);
        assert_eq!(split_balanced(510, 510), vec![0..510]);
        assert_eq!(split_balanced(511, 510), vec![0..256, 256..511]);
        assert_eq!(split_balanced(7, 3), vec![0..3, 3..5, 5..7]);
        for n in 0..200 {
            let r = split_balanced(n, 13);
            assert!(r.iter().all(|r| r.len() <= 13));
            assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), n);
            assert_eq!(r.len(), n.div_ceil(13).max(1));
        }
    }
}
