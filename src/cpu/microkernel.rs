//! The register tiles of the recurrence's products, one per instruction set: a tile of up to
//! `ROWS` rows of A times one packed panel of `4·LANES` columns, over the whole inner dimension,
//! accumulated in registers and stored once.
//!
//! A is row-major with a stride; the panel is [k][4·LANES] contiguous (see `recurrence`'s
//! packing). Every kernel sums over k in ascending order from zero, one multiply-add per term:
//! AVX2 and AVX-512 fuse it (one rounding), so they agree to the bit; the portable kernel rounds
//! the product and the sum separately.

/// The largest `ROWS` of any kernel: the size of the tile buffer callers pass.
pub const MAX_ROWS: usize = 6;
/// The widest panel of any kernel, in f32.
pub const MAX_PANEL: usize = 64;
/// A tile's output, [rows][panel width], row stride [`MAX_PANEL`].
pub type TileOut = [[f32; MAX_PANEL]; MAX_ROWS];

/// A microkernel: `out[r][c] = Σ_{κ<k} a[r·lda + κ] · panel[κ·4·LANES + c]` for r < rows ≤ ROWS.
pub trait Microkernel {
    /// f32 lanes of one vector; a panel is four vectors wide.
    const LANES: usize;
    /// Rows of A per tile, as many as the accumulators fit in registers.
    const ROWS: usize;

    /// # Safety
    /// `a` reaches rows·lda elements (the last row k of them), `panel` k·4·LANES, and the
    /// processor supports the kernel's instruction set.
    unsafe fn tile(
        rows: usize,
        a: *const f32,
        lda: usize,
        k: usize,
        panel: *const f32,
        out: &mut TileOut,
    );
}

/// Plain Rust, vectorised by the compiler for the baseline target.
pub struct Portable;

impl Microkernel for Portable {
    const LANES: usize = 8;
    const ROWS: usize = 2;

    #[inline(always)]
    unsafe fn tile(
        rows: usize,
        a: *const f32,
        lda: usize,
        k: usize,
        panel: *const f32,
        out: &mut TileOut,
    ) {
        match rows {
            1 => portable_tile::<1>(a, lda, k, panel, out),
            _ => portable_tile::<2>(a, lda, k, panel, out),
        }
    }
}

#[inline(always)]
unsafe fn portable_tile<const R: usize>(
    a: *const f32,
    lda: usize,
    k: usize,
    panel: *const f32,
    out: &mut TileOut,
) {
    const WIDTH: usize = 4 * Portable::LANES;
    let mut acc = [[0.0f32; WIDTH]; R];
    for kk in 0..k {
        let w = &*(panel.add(kk * WIDTH) as *const [f32; WIDTH]);
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = *a.add(r * lda + kk);
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
    use super::{Microkernel, TileOut};
    use std::arch::x86_64::*;

    /// AVX2 + FMA: 3 rows × 4 ymm accumulators; the panel's four vectors load per k.
    pub struct Avx2;

    impl Microkernel for Avx2 {
        const LANES: usize = 8;
        const ROWS: usize = 3;

        #[inline(always)]
        unsafe fn tile(
            rows: usize,
            a: *const f32,
            lda: usize,
            k: usize,
            panel: *const f32,
            out: &mut TileOut,
        ) {
            match rows {
                1 => avx2_tile::<1>(a, lda, k, panel, out),
                2 => avx2_tile::<2>(a, lda, k, panel, out),
                _ => avx2_tile::<3>(a, lda, k, panel, out),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tile<const R: usize>(
        a: *const f32,
        lda: usize,
        k: usize,
        panel: *const f32,
        out: &mut TileOut,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        for kk in 0..k {
            let w = panel.add(kk * 32);
            let w = [
                _mm256_loadu_ps(w),
                _mm256_loadu_ps(w.add(8)),
                _mm256_loadu_ps(w.add(16)),
                _mm256_loadu_ps(w.add(24)),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_ps(*a.add(r * lda + kk));
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm256_fmadd_ps(x, w, *acc);
                }
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc) {
            for (v, &acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), acc);
            }
        }
    }

    /// AVX-512F: 6 rows × 4 zmm accumulators (24 of the 32 registers).
    pub struct Avx512;

    impl Microkernel for Avx512 {
        const LANES: usize = 16;
        const ROWS: usize = 6;

        #[inline(always)]
        unsafe fn tile(
            rows: usize,
            a: *const f32,
            lda: usize,
            k: usize,
            panel: *const f32,
            out: &mut TileOut,
        ) {
            match rows {
                1 => avx512_tile::<1>(a, lda, k, panel, out),
                2 => avx512_tile::<2>(a, lda, k, panel, out),
                3 => avx512_tile::<3>(a, lda, k, panel, out),
                4 => avx512_tile::<4>(a, lda, k, panel, out),
                5 => avx512_tile::<5>(a, lda, k, panel, out),
                _ => avx512_tile::<6>(a, lda, k, panel, out),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile<const R: usize>(
        a: *const f32,
        lda: usize,
        k: usize,
        panel: *const f32,
        out: &mut TileOut,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for kk in 0..k {
            let w = panel.add(kk * 64);
            let w = [
                _mm512_loadu_ps(w),
                _mm512_loadu_ps(w.add(16)),
                _mm512_loadu_ps(w.add(32)),
                _mm512_loadu_ps(w.add(48)),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(r * lda + kk));
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm512_fmadd_ps(x, w, *acc);
                }
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc) {
            for (v, &acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * v), acc);
            }
        }
    }
}
