//! Matrix products through the `gemm` crate on ndarray views of row-major slices, and the biases
//! around them: broadcast to every row of a product's output before it is added, and their
//! gradient, the column sums. A view carries its strides, so a transpose (`.t()`) is a swap of
//! strides and costs nothing, and a product checks that the shapes of its operands meet.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::model::Float;

/// The row-major [rows × cols] matrix at the start of `data`.
pub fn matrix<F>(data: &[F], rows: usize, cols: usize) -> ArrayView2<'_, F> {
    ArrayView2::from_shape((rows, cols), data)
        .unwrap_or_else(|e| panic!("{rows}×{cols} matrix of {} elements: {e}", data.len()))
}

/// [`matrix`], writable: the output of a product.
pub fn matrix_mut<F>(data: &mut [F], rows: usize, cols: usize) -> ArrayViewMut2<'_, F> {
    let len = data.len();
    ArrayViewMut2::from_shape((rows, cols), data)
        .unwrap_or_else(|e| panic!("{rows}×{cols} matrix of {len} elements: {e}"))
}

/// out [m × n] = a [m × k] · b [k × n], or `out += a · b` when `accumulate`; on all threads of
/// the rayon pool.
pub fn matmul<F: Float>(
    out: ArrayViewMut2<'_, F>,
    accumulate: bool,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
) {
    gemm_with(out, accumulate, a, b, gemm::Parallelism::Rayon(0));
}

/// [`matmul`] on the calling thread only, for products already split across threads.
pub fn matmul_on_this_thread<F: Float>(
    out: ArrayViewMut2<'_, F>,
    accumulate: bool,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
) {
    gemm_with(out, accumulate, a, b, gemm::Parallelism::None);
}

fn gemm_with<F: Float>(
    mut out: ArrayViewMut2<'_, F>,
    accumulate: bool,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert_eq!(b.nrows(), k, "inner dimensions differ");
    assert_eq!(out.dim(), (m, n), "output is not {m}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(F::ZERO);
        }
        return;
    }
    // ndarray strides are in elements: [row stride, column stride].
    let (out_rs, out_cs) = (out.strides()[0], out.strides()[1]);
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    // SAFETY: ndarray guarantees that every element a view's shape and strides reach lies inside
    // the data it borrows (checked when a view is made from a slice, kept by `.t()` and every
    // other view operation), and gemm touches only those elements; `out` is a mutable view, so
    // it borrows its data uniquely and cannot alias `a` or `b`, and no two of its elements share
    // memory; F is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            out_cs,
            out_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
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
