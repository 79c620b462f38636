//! The register tiles of the engine's own products, one per instruction set: a tile of up to
//! `ROWS` rows of A times one panel of `WIDTH` columns, over the whole inner dimension,
//! accumulated in registers and stored once.
//!
//! A is strided: its element (r, κ) at `a[r·a.row + κ·a.step]` (a row-major A has step 1, as
//! the recurrence's h and ∂L/∂a; `weight_gradient`'s packed columns of ∂L/∂a have row 1). The
//! panel is [k][WIDTH] contiguous, packed by [`pack_row`] or [`pack_column`]. Every kernel sums
//! over k in ascending order from zero, one multiply-add per term:
//! AVX2 and AVX-512 fuse it (one rounding), so they agree to the bit; the portable kernel rounds
//! the product and the sum separately.

use super::isa::Isa;

/// The largest `ROWS` of any kernel: the rows of the tile buffer callers pass.
pub const MAX_ROWS: usize = 8;
/// The widest panel of any kernel, in f32.
pub const MAX_WIDTH: usize = 32;
/// A tile's output, [rows][panel width].
pub type TileOut = [[f32; MAX_WIDTH]; MAX_ROWS];

/// Where a tile's A is: its first element and the distances (in elements) between rows and
/// between steps of the inner dimension.
#[derive(Clone, Copy, Debug)]
pub struct Strided {
    pub ptr: *const f32,
    pub row: usize,
    pub step: usize,
}

impl Strided {
    /// A row-major A whose rows are `lda` apart.
    pub fn rows(ptr: *const f32, lda: usize) -> Strided {
        Strided {
            ptr,
            row: lda,
            step: 1,
        }
    }

    #[inline(always)]
    unsafe fn at(self, r: usize, kk: usize) -> f32 {
        *self.ptr.add(r * self.row + kk * self.step)
    }
}

/// A microkernel: `out[r][c] = Σ_{κ<k} a(r, κ) · panel[κ·WIDTH + c]` for r < rows ≤ ROWS and
/// c < WIDTH.
pub trait Microkernel {
    /// Columns of a panel: two vectors.
    const WIDTH: usize;
    /// Rows of A per tile, as many as the accumulators fit in registers.
    const ROWS: usize;

    /// # Safety
    /// `a` reaches element (rows − 1, k − 1), `panel` k·WIDTH elements, and the processor
    /// supports the kernel's instruction set.
    unsafe fn tile(rows: usize, a: Strided, k: usize, panel: *const f32, out: &mut TileOut);
}

/// `isa`'s tile: the ROWS and WIDTH of its microkernel.
pub fn tile_shape(isa: Isa) -> (usize, usize) {
    match isa {
        Isa::Portable => (Portable::ROWS, Portable::WIDTH),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => (Avx2::ROWS, Avx2::WIDTH),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => (Avx512::ROWS, Avx512::WIDTH),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("{isa} is x86-64 only"),
    }
}

/// Row κ of a row-major B into the panels the tiles read: `panels[p][κ][c] = row[p·width + c]`,
/// each panel `depth` rows of `width` floats (`weight_gradient` packs its blocks of d_a's
/// columns the same way, `width` then a tile's rows). Columns beyond the row's end are left as
/// they are (zero where the buffer was made zero). Whole pieces are `width` long, so where
/// `width` is a constant, each is one move rather than a call to memmove.
#[inline(always)]
pub fn pack_row(row: &[f32], kk: usize, depth: usize, width: usize, panels: &mut [f32]) {
    let whole = row.chunks_exact(width);
    let rest = whole.remainder();
    for (p, piece) in whole.enumerate() {
        let to = (p * depth + kk) * width;
        panels[to..to + width].copy_from_slice(piece);
    }
    if !rest.is_empty() {
        let to = (row.len() / width * depth + kk) * width;
        panels[to..to + rest.len()].copy_from_slice(rest);
    }
}

/// Column c of one panel from a B stored transposed (B's column c is `column`, a row of Bᵀ):
/// `panel[κ·width + c] = column[κ]`.
#[inline(always)]
pub fn pack_column(column: &[f32], c: usize, width: usize, panel: &mut [f32]) {
    for (kk, &b) in column.iter().enumerate() {
        panel[kk * width + c] = b;
    }
}

/// Plain Rust, vectorised by the compiler for the baseline target: 4 rows × 8 columns (eight
/// SSE accumulators).
pub struct Portable;

impl Microkernel for Portable {
    const WIDTH: usize = 8;
    const ROWS: usize = 4;

    #[inline(always)]
    unsafe fn tile(rows: usize, a: Strided, k: usize, panel: *const f32, out: &mut TileOut) {
        match rows {
            1 => portable_tile::<1>(a, k, panel, out),
            2 => portable_tile::<2>(a, k, panel, out),
            3 => portable_tile::<3>(a, k, panel, out),
            _ => portable_tile::<4>(a, k, panel, out),
        }
    }
}

#[inline(always)]
unsafe fn portable_tile<const R: usize>(
    a: Strided,
    k: usize,
    panel: *const f32,
    out: &mut TileOut,
) {
    const WIDTH: usize = Portable::WIDTH;
    let mut acc = [[0.0f32; WIDTH]; R];
    for kk in 0..k {
        let w = &*(panel.add(kk * WIDTH) as *const [f32; WIDTH]);
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = a.at(r, kk);
            for (acc, &w) in acc.iter_mut().zip(w) {
                *acc += x * w;
            }
        }
    }
    for (out, acc) in out.iter_mut().zip(&acc) {
        out[..WIDTH].copy_from_slice(acc);
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Microkernel, Strided, TileOut};
    use std::arch::x86_64::*;

    /// AVX2 + FMA: 6 rows × 2 ymm (16 columns): 12 accumulators, the panel's two vectors and a
    /// broadcast, 15 of the 16 registers.
    pub struct Avx2;

    impl Microkernel for Avx2 {
        const WIDTH: usize = 16;
        const ROWS: usize = 6;

        #[inline(always)]
        unsafe fn tile(rows: usize, a: Strided, k: usize, panel: *const f32, out: &mut TileOut) {
            match rows {
                1 => avx2_tile::<1>(a, k, panel, out),
                2 => avx2_tile::<2>(a, k, panel, out),
                3 => avx2_tile::<3>(a, k, panel, out),
                4 => avx2_tile::<4>(a, k, panel, out),
                5 => avx2_tile::<5>(a, k, panel, out),
                _ => avx2_tile::<6>(a, k, panel, out),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tile<const R: usize>(
        a: Strided,
        k: usize,
        panel: *const f32,
        out: &mut TileOut,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for kk in 0..k {
            let w = panel.add(kk * 16);
            let w = [_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8))];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_ps(a.at(r, kk));
                acc[0] = _mm256_fmadd_ps(x, w[0], acc[0]);
                acc[1] = _mm256_fmadd_ps(x, w[1], acc[1]);
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc) {
            _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
        }
    }

    /// AVX-512F: 8 rows × 2 zmm (32 columns): 16 accumulators, enough to cover the FMA latency
    /// of two ports, and rows of 64-row batches in whole tiles.
    pub struct Avx512;

    impl Microkernel for Avx512 {
        const WIDTH: usize = 32;
        const ROWS: usize = 8;

        #[inline(always)]
        unsafe fn tile(rows: usize, a: Strided, k: usize, panel: *const f32, out: &mut TileOut) {
            match rows {
                1 => avx512_tile::<1>(a, k, panel, out),
                2 => avx512_tile::<2>(a, k, panel, out),
                3 => avx512_tile::<3>(a, k, panel, out),
                4 => avx512_tile::<4>(a, k, panel, out),
                5 => avx512_tile::<5>(a, k, panel, out),
                6 => avx512_tile::<6>(a, k, panel, out),
                7 => avx512_tile::<7>(a, k, panel, out),
                _ => avx512_tile::<8>(a, k, panel, out),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile<const R: usize>(
        a: Strided,
        k: usize,
        panel: *const f32,
        out: &mut TileOut,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for kk in 0..k {
            let w = panel.add(kk * 32);
            let w = [_mm512_loadu_ps(w), _mm512_loadu_ps(w.add(16))];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(a.at(r, kk));
                acc[0] = _mm512_fmadd_ps(x, w[0], acc[0]);
                acc[1] = _mm512_fmadd_ps(x, w[1], acc[1]);
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc) {
            _mm512_storeu_ps(out.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(out.as_mut_ptr().add(16), acc[1]);
        }
    }
}
