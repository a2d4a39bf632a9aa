//! Multi-head self-attention over packed sequences: each sequence attends only
//! to its own tokens, so no padding and no mask are involved and the result
//! equals the masked attention of a padded batch. Work is split over
//! (sequence, head) pairs on the rayon pool; each pair is two small gemms and
//! a softmax. The `1/sqrt(head_dim)` scale is already folded into the query
//! projection (see [`crate::encoder`]).

use rayon::prelude::*;

use crate::activation::softmax;
use crate::kernels::{matmul, View};

/// Where the per-head vectors of one projection (queries, keys or values)
/// live: head `h` of row `i` is `data[i * rs + col + h * head_dim..][..head_dim]`.
#[derive(Clone, Copy)]
pub struct Heads<'a> {
    /// The projection output.
    pub data: &'a [f32],
    /// Distance between consecutive token rows.
    pub rs: usize,
    /// Column of head 0.
    pub col: usize,
}

impl<'a> Heads<'a> {
    /// Rows `start..start + rows` of head `h` as a `rows × head_dim` view.
    fn view(&self, start: usize, rows: usize, h: usize, head_dim: usize) -> View<'a> {
        View {
            data: &self.data[start * self.rs + self.col + h * head_dim..],
            rows,
            cols: head_dim,
            rs: self.rs,
            cs: 1,
        }
    }
}

/// One sequence: its query rows and its key/value rows.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// First query row (also the first output row).
    pub q_start: usize,
    /// Number of query rows.
    pub q_rows: usize,
    /// First key/value row.
    pub kv_start: usize,
    /// Number of key/value rows (the sequence length).
    pub kv_rows: usize,
}

/// Scaled dot-product attention of every span and head. `out` receives the
/// context vectors, `heads * head_dim` floats per query row, heads side by
/// side (the layout the output projection reads).
pub fn attention(
    q: Heads,
    k: Heads,
    v: Heads,
    spans: &[Span],
    heads: usize,
    head_dim: usize,
    out: &mut [f32],
) {
    let width = heads * head_dim;
    let tasks: Vec<(usize, usize)> = (0..spans.len())
        .flat_map(|s| (0..heads).map(move |h| (s, h)))
        .collect();
    let blocks: Vec<Vec<f32>> = tasks
        .par_iter()
        .map_init(Vec::new, |scores, &(s, h)| {
            let sp = spans[s];
            let (m, l) = (sp.q_rows, sp.kv_rows);
            scores.clear();
            scores.resize(m * l, 0.0);
            let qv = q.view(sp.q_start, m, h, head_dim);
            let kt = k.view(sp.kv_start, l, h, head_dim).t();
            matmul(scores, l, qv, kt, false, 1);
            for row in scores.chunks_exact_mut(l) {
                softmax(row);
            }
            let mut ctx = vec![0f32; m * head_dim];
            let vv = v.view(sp.kv_start, l, h, head_dim);
            matmul(&mut ctx, head_dim, View::rows(scores, m, l), vv, false, 1);
            ctx
        })
        .collect();
    for (&(s, h), block) in tasks.iter().zip(&blocks) {
        let start = spans[s].q_start;
        for (i, src) in block.chunks_exact(head_dim).enumerate() {
            let at = (start + i) * width + h * head_dim;
            out[at..at + head_dim].copy_from_slice(src);
        }
    }
}
