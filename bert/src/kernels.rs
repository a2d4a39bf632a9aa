//! Matrix building blocks of [`crate::encoder`]: one checked wrapper around
//! the `gemm` crate (the only `unsafe` in the crate) and fused row passes over
//! `f32` slices (bias, residual, LayerNorm), written as plain loops the
//! compiler vectorizes and spread over rows with rayon.

use rayon::prelude::*;

/// A strided read-only matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// The backing storage (may hold more than the matrix).
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub rs: usize,
    /// Distance between consecutive columns.
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A contiguous row-major `rows × cols` matrix at the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), where `dst` is an
/// `a.rows × b.cols` matrix with rows `dst_rs` apart and contiguous columns.
/// `threads > 1` lets `gemm` split the product over the rayon pool.
///
/// Panics if a shape or stride would reach outside a slice.
pub fn matmul(dst: &mut [f32], dst_rs: usize, a: View, b: View, accumulate: bool, threads: usize) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    assert!(a.in_bounds() && b.in_bounds(), "operand view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    assert!(m == 1 || dst_rs >= n, "destination rows overlap");
    assert!((m - 1) * dst_rs + n <= dst.len(), "destination too small");
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let s = |x: usize| x as isize;
    // SAFETY: the asserts above bound every index gemm touches: lhs
    // (i*a.rs + p*a.cs) for i < m, p < k and rhs (p*b.rs + j*b.cs) for j < n
    // lie inside their slices (`in_bounds`), and dst (i*dst_rs + j) for
    // i < m, j < n lies inside `dst`; distinct (i, j) never share a dst element
    // because dst_rs >= n. `dst` is a unique borrow, so it cannot alias the
    // shared `a`/`b` borrows. All three slices outlive the call.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            s(dst_rs),
            accumulate,
            a.data.as_ptr(),
            s(a.cs),
            s(a.rs),
            b.data.as_ptr(),
            s(b.cs),
            s(b.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Rows per rayon task for a pass over `rows` rows of `width` floats: a few
/// tasks per thread, each at least ~16k floats.
pub(crate) fn rows_per_task(rows: usize, width: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_threads = rows.div_ceil(threads * 4);
    by_threads.max(16_384 / width.max(1)).max(1)
}

/// Every `bias.len()`-wide row of `dst` = `bias`.
pub fn fill_rows(dst: &mut [f32], bias: &[f32]) {
    for row in dst.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// Every row of `dst` = the same row of `src` + `bias` (residual plus bias,
/// before a projection accumulates onto it).
pub fn add_rows(dst: &mut [f32], src: &[f32], bias: &[f32]) {
    let n = bias.len();
    for (d, s) in dst.chunks_exact_mut(n).zip(src.chunks_exact(n)) {
        for ((d, s), b) in d.iter_mut().zip(s).zip(bias) {
            *d = s + b;
        }
    }
}

/// Sum of a slice with eight independent accumulators (vectorizes).
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element of a non-empty slice (vectorizes).
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.max(*v);
        }
    }
    acc.iter().fold(tail, |m, v| m.max(*v))
}

/// LayerNorm of every `gamma.len()`-wide row of `x`, in place, in parallel.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = gamma.len();
    let per = rows_per_task(x.len() / n, n) * n;
    x.par_chunks_mut(per).for_each(|block| {
        for row in block.chunks_exact_mut(n) {
            let mean = sum(row) / n as f32;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let mut sq = [0f32; 8];
            let chunks = row.chunks_exact(8);
            let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
            for c in chunks {
                for (a, v) in sq.iter_mut().zip(c) {
                    *a += v * v;
                }
            }
            let var = (sq.iter().sum::<f32>() + tail) / n as f32;
            let rstd = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = *v * rstd * g + b;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_handles_strides_and_accumulation() {
        // a: 2×3, b = transpose of a 2×3 row-major matrix (3×2).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, -1.0, 2.0, 1.0, 0.0];
        let mut dst = [10.0, 20.0, 0.0, 30.0, 40.0, 0.0];
        let b = View::rows(&w, 2, 3).t();
        matmul(&mut dst, 3, View::rows(&a, 2, 3), b, true, 1);
        assert_eq!(
            dst,
            [10.0 - 2.0, 20.0 + 4.0, 0.0, 30.0 - 2.0, 40.0 + 13.0, 0.0]
        );
    }
}
