//! Matrix products on row-major slices through the `gemm` crate, and the biases around them:
//! broadcast to every row of a product's output before it is added, and their gradient, the
//! column sums. A view carries its strides, so a transpose is a swap of strides and costs nothing.

use crate::model::Float;

/// A read-only matrix view into a slice: element (r, c) is `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy)]
pub struct Mat<'a, F> {
    data: &'a [F],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, F> Mat<'a, F> {
    /// The contiguous row-major [rows × cols] matrix at the start of `data`.
    pub fn new(data: &'a [F], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "slice too short for a {rows}×{cols} matrix"
        );
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `out` [m × n, row-major] = a [m × k] · b [k × n], or `out += a · b` when `accumulate`; on
/// all threads of the rayon pool.
pub fn matmul<F: Float>(out: &mut [F], accumulate: bool, a: Mat<'_, F>, b: Mat<'_, F>) {
    gemm_with(out, accumulate, a, b, gemm::Parallelism::Rayon(0));
}

/// [`matmul`] on the calling thread only, for products already split across threads.
pub fn matmul_on_this_thread<F: Float>(
    out: &mut [F],
    accumulate: bool,
    a: Mat<'_, F>,
    b: Mat<'_, F>,
) {
    gemm_with(out, accumulate, a, b, gemm::Parallelism::None);
}

fn gemm_with<F: Float>(
    out: &mut [F],
    accumulate: bool,
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert!(out.len() >= m * n, "output too short for {m}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out[..m * n].fill(F::ZERO);
        }
        return;
    }
    // gemm indexes with raw strides, so prove here that the last element of each view is in bounds.
    let last = |v: &Mat<'_, F>| (v.rows - 1) * v.row_stride + (v.cols - 1) * v.col_stride;
    assert!(
        last(&a) < a.data.len() && last(&b) < b.data.len(),
        "view exceeds its slice"
    );
    // SAFETY: all three views were checked to lie inside their slices; `out` is borrowed
    // mutably, so it cannot alias `a` or `b`; F is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            F::ONE,
            F::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// out[r] = a (+ b) for every row r of `out`, rows of a.len(): the bias terms a product is
/// then added to.
pub fn broadcast_rows<F: Float>(out: &mut [F], a: &[F], b: Option<&[F]>) {
    for row in out.chunks_exact_mut(a.len()) {
        match b {
            Some(b) => {
                for ((y, &x), &z) in row.iter_mut().zip(a).zip(b) {
                    *y = x + z;
                }
            }
            None => row.copy_from_slice(a),
        }
    }
}

/// out[c] = Σ_r x[r][c], rows of out.len(): the gradient of a bias broadcast over the rows.
pub fn column_sums<F: Float>(x: &[F], out: &mut [F]) {
    out.fill(F::ZERO);
    for row in x.chunks_exact(out.len()) {
        for (sum, &value) in out.iter_mut().zip(row) {
            *sum += value;
        }
    }
}
