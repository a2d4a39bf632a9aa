//! Keel's BERT encoder forward pass (the `bert.embeddings` + `bert.encoder`
//! part of transformers' `BertModel`), built for CPU throughput:
//!
//! - the real tokens of all sequences are packed into one `[tokens, hidden]`
//!   matrix (no padding rows), so each projection of a layer is one large 2-D
//!   gemm; the query, key and value weights are fused into one `[3·hidden]`
//!   projection at load time, with `1/sqrt(head_dim)` folded into the query;
//! - bias, residual, LayerNorm and GELU are fused passes over the gemm outputs
//!   ([`crate::dense`], [`crate::kernels`], [`crate::activation`]); attention
//!   runs per sequence ([`crate::attention`]);
//! - the last layer is only evaluated for the `[CLS]` rows the classifier
//!   reads (its keys and values still cover every token).

use anyhow::{ensure, Result};
use candle_nn::VarBuilder;

use crate::activation::{activate, Activation};
use crate::attention::{attention, Heads, Span};
use crate::config::BertConfig;
use crate::dense::{Dense, Norm};

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    ffn_in: Dense,
    ffn_out: Dense,
    ffn_norm: Norm,
}

/// A loaded BERT encoder.
pub struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    inter: usize,
    vocab: usize,
    max_pos: usize,
    act: Activation,
}

impl Encoder {
    /// Loads `embeddings.*` and `encoder.layer.*` under `vb` (e.g. `vb.pp("bert")`).
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Self> {
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let table = |name: &str, rows: usize| -> Result<Vec<f32>> {
            let e = candle_nn::embedding(rows, h, vb.pp("embeddings").pp(name))?;
            Ok(e.embeddings().flatten_all()?.to_vec1::<f32>()?)
        };
        let word = table("word_embeddings", cfg.vocab_size)?;
        let position = table("position_embeddings", cfg.max_position_embeddings)?;
        let token_type = table("token_type_embeddings", cfg.type_vocab_size)?;
        let emb_norm = Norm::load(vb.pp("embeddings.LayerNorm"), h, eps)?;
        let head_dim = h / cfg.num_attention_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{l}"));
            let att = vb.pp("attention");
            let q = Dense::load(att.pp("self.query"), h, h)?.scale(scale);
            let k = Dense::load(att.pp("self.key"), h, h)?;
            let v = Dense::load(att.pp("self.value"), h, h)?;
            layers.push(Layer {
                qkv: Dense::concat(vec![q, k, v]),
                attn_out: Dense::load(att.pp("output.dense"), h, h)?,
                attn_norm: Norm::load(att.pp("output.LayerNorm"), h, eps)?,
                ffn_in: Dense::load(vb.pp("intermediate.dense"), h, i)?,
                ffn_out: Dense::load(vb.pp("output.dense"), i, h)?,
                ffn_norm: Norm::load(vb.pp("output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word,
            position,
            token_type,
            emb_norm,
            layers,
            hidden: h,
            heads: cfg.num_attention_heads,
            inter: i,
            vocab: cfg.vocab_size,
            max_pos: cfg.max_position_embeddings,
            act: cfg.activation()?,
        })
    }

    /// The hidden width.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Final hidden state of the first token (`[CLS]`) of every sequence,
    /// `[seqs, hidden]` row-major. Token type ids are all 0.
    pub fn cls_states(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(seqs.len());
        let mut total = 0;
        for s in seqs {
            ensure!(!s.is_empty(), "empty token sequence");
            ensure!(
                s.len() <= self.max_pos,
                "sequence of {} tokens exceeds {}",
                s.len(),
                self.max_pos
            );
            ensure!(
                s.iter().all(|&id| (id as usize) < self.vocab),
                "token id out of vocabulary"
            );
            spans.push(Span {
                q_start: total,
                q_rows: s.len(),
                kv_start: total,
                kv_rows: s.len(),
            });
            total += s.len();
        }
        let mut x = vec![0f32; total * h];
        for (s, sp) in seqs.iter().zip(&spans) {
            let rows = x[sp.q_start * h..][..s.len() * h].chunks_exact_mut(h);
            for (p, (row, &id)) in rows.zip(s.iter()).enumerate() {
                let w = &self.word[id as usize * h..][..h];
                let pos = &self.position[p * h..][..h];
                for (((o, w), p), t) in row.iter_mut().zip(w).zip(pos).zip(&self.token_type) {
                    *o = w + p + t;
                }
            }
        }
        self.emb_norm.apply(&mut x);
        let Some((last, rest)) = self.layers.split_last() else {
            return Ok(spans
                .iter()
                .flat_map(|sp| x[sp.q_start * h..][..h].to_vec())
                .collect());
        };
        let mut buf = Buffers::new(total, h, self.inter);
        for layer in rest {
            self.layer(layer, &mut x, &spans, &mut buf);
        }
        Ok(self.last_layer(last, &x, &spans, &mut buf))
    }

    /// One full layer over all `spans`; `x` is replaced by its output.
    fn layer(&self, l: &Layer, x: &mut Vec<f32>, spans: &[Span], buf: &mut Buffers) {
        let (h, rows) = (self.hidden, x.len() / self.hidden);
        l.qkv.apply(x, rows, &mut buf.qkv, 0..3 * h);
        let proj = |col| Heads {
            data: &buf.qkv,
            rs: 3 * h,
            col,
        };
        let head_dim = h / self.heads;
        attention(
            proj(0),
            proj(h),
            proj(2 * h),
            spans,
            self.heads,
            head_dim,
            &mut buf.ctx,
        );
        self.feed_forward(l, x, rows, buf);
    }

    /// Attention output projection + LayerNorm, then the feed-forward block,
    /// for the first `rows` rows of `x` (context vectors in `buf.ctx`).
    fn feed_forward(&self, l: &Layer, x: &mut Vec<f32>, rows: usize, buf: &mut Buffers) {
        let h = self.hidden;
        l.attn_out.apply_residual(&buf.ctx, rows, x, &mut buf.y);
        l.attn_norm.apply(&mut buf.y[..rows * h]);
        std::mem::swap(x, &mut buf.y);
        l.ffn_in.apply(x, rows, &mut buf.mid, 0..self.inter);
        activate(&mut buf.mid[..rows * self.inter], self.act);
        l.ffn_out.apply_residual(&buf.mid, rows, x, &mut buf.y);
        l.ffn_norm.apply(&mut buf.y[..rows * h]);
        std::mem::swap(x, &mut buf.y);
    }

    /// The last layer, evaluated only for each sequence's first row: keys and
    /// values for every token, queries and everything after for `[CLS]`.
    fn last_layer(&self, l: &Layer, x: &[f32], spans: &[Span], buf: &mut Buffers) -> Vec<f32> {
        let (h, rows) = (self.hidden, x.len() / self.hidden);
        l.qkv.apply(x, rows, &mut buf.qkv, h..3 * h);
        let mut cls: Vec<f32> = spans
            .iter()
            .flat_map(|sp| x[sp.q_start * h..][..h].iter().copied())
            .collect();
        let mut q = vec![0f32; spans.len() * h];
        l.qkv.apply(&cls, spans.len(), &mut q, 0..h);
        let one: Vec<Span> = (spans.iter().enumerate())
            .map(|(i, sp)| Span {
                q_start: i,
                q_rows: 1,
                ..*sp
            })
            .collect();
        let kv = |col| Heads {
            data: &buf.qkv,
            rs: 2 * h,
            col,
        };
        let q = Heads {
            data: &q,
            rs: h,
            col: 0,
        };
        let head_dim = h / self.heads;
        attention(q, kv(0), kv(h), &one, self.heads, head_dim, &mut buf.ctx);
        self.feed_forward(l, &mut cls, spans.len(), buf);
        cls
    }
}

/// Work buffers of one forward pass, reused by every layer.
struct Buffers {
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    y: Vec<f32>,
    mid: Vec<f32>,
}

impl Buffers {
    fn new(rows: usize, h: usize, inter: usize) -> Self {
        Self {
            qkv: vec![0.0; rows * 3 * h],
            ctx: vec![0.0; rows * h],
            y: vec![0.0; rows * h],
            mid: vec![0.0; rows * inter],
        }
    }
}
