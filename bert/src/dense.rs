//! [`Dense`] (linear) and [`Norm`] (LayerNorm) layers over packed
//! `[rows, width]` row-major activations. Weights are plain `Vec<f32>`s in the
//! checkpoint's `[out, in]` layout; the gemm reads them transposed through
//! strides, and the bias (plus the residual, where there is one) is written
//! into the destination first so the gemm accumulates onto it.

use std::ops::Range;

use anyhow::Result;
use candle_nn::VarBuilder;

use crate::kernels::{add_rows, fill_rows, layer_norm, matmul, View};

/// A linear layer `y = x·Wᵀ + b`, `W` stored `[out, in]` row-major.
pub struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

/// `dst[rows × n] += x[rows × inp] · w`, gemm spread over the rayon pool.
fn mm_rows(dst: &mut [f32], n: usize, x: &[f32], rows: usize, inp: usize, w: View) {
    matmul(dst, n, View::rows(x, rows, inp), w, true, threads());
}

impl Dense {
    /// Loads `weight` `[out, in]` and `bias` `[out]` under `vb`.
    pub fn load(vb: VarBuilder, inp: usize, out: usize) -> Result<Self> {
        let lin = candle_nn::linear(inp, out, vb)?;
        let w = lin.weight().flatten_all()?.to_vec1::<f32>()?;
        let b = match lin.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; out],
        };
        Ok(Self { w, b, inp, out })
    }

    /// Stacks the outputs of several layers with the same input width.
    pub(crate) fn concat(parts: Vec<Dense>) -> Self {
        let inp = parts[0].inp;
        let out = parts.iter().map(|p| p.out).sum();
        let (mut w, mut b) = (Vec::with_capacity(inp * out), Vec::with_capacity(out));
        for p in parts {
            w.extend_from_slice(&p.w);
            b.extend_from_slice(&p.b);
        }
        Self { w, b, inp, out }
    }

    /// Multiplies weights and bias by `s`.
    pub(crate) fn scale(mut self, s: f32) -> Self {
        self.w.iter_mut().chain(&mut self.b).for_each(|v| *v *= s);
        self
    }

    /// `Wᵀ` restricted to output columns `cols`, as an `[in, cols]` view.
    fn wt(&self, cols: Range<usize>) -> View<'_> {
        View {
            data: &self.w[cols.start * self.inp..],
            rows: self.inp,
            cols: cols.len(),
            rs: 1,
            cs: self.inp,
        }
    }

    /// `dst = x·Wᵀ + b` for the `rows × in` matrix `x` (output columns `cols`).
    pub(crate) fn apply(&self, x: &[f32], rows: usize, dst: &mut [f32], cols: Range<usize>) {
        let n = cols.len();
        fill_rows(&mut dst[..rows * n], &self.b[cols.clone()]);
        mm_rows(dst, n, x, rows, self.inp, self.wt(cols));
    }

    /// `dst = residual + x·Wᵀ + b`.
    pub(crate) fn apply_residual(&self, x: &[f32], rows: usize, residual: &[f32], dst: &mut [f32]) {
        let n = self.out;
        add_rows(&mut dst[..rows * n], &residual[..rows * n], &self.b);
        mm_rows(dst, n, x, rows, self.inp, self.wt(0..n));
    }

    /// The output width.
    pub fn out(&self) -> usize {
        self.out
    }

    /// `y = x·Wᵀ + b` for `rows` rows (a fresh buffer).
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * self.out];
        self.apply(x, rows, &mut y, 0..self.out);
        y
    }
}

/// LayerNorm parameters.
pub struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// Loads `weight` and `bias` `[size]` under `vb`.
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        let ln = candle_nn::layer_norm(size, eps, vb)?;
        let g = ln.weight().to_vec1::<f32>()?;
        let b = match ln.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; size],
        };
        Ok(Self {
            g,
            b,
            eps: eps as f32,
        })
    }

    /// Normalizes every row of `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        layer_norm(x, &self.g, &self.b, self.eps);
    }
}

/// The threads gemm may use (the rayon pool: `RAYON_NUM_THREADS` or all cores).
fn threads() -> usize {
    rayon::current_num_threads()
}
