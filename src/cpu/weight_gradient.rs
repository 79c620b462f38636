//! ∂L/∂W = Σ_r ∂L/∂a_rᵀ · x_r over every row of a batch (all T·B positions) as one product on the
//! engine's own tiles: the f32 twin of the GPU's `weight_gradient`, for ∂L/∂W_hh and ∂L/∂W_ih
//! above layer 0.
//!
//! out [G][N] = d_aᵀ · x with d_a [R][G] and x [R][N], both row-major. A tile is ROWS rows of
//! out (ROWS consecutive columns of d_a) by one panel of WIDTH columns of x. The inner dimension
//! R (4,032 at the bench's shape) is walked in blocks of `BLOCK` rows: x's block is copied into
//! panels (in L2) and each tile's columns of d_a into a contiguous block (in L1) that meets
//! every panel. out's rows are split across threads in parts, so no two threads write the same
//! element; each element is summed over R in its own accumulator, block after block, so the
//! bits depend on `BLOCK` only, not on the parts (nor on the thread count). A caller may choose
//! the parts and read each part's columns of d_a as they are packed ([`RowSums`]): layer 0's
//! one-hot input term is summed that way, so ∂L/∂a is read from memory once.

use rayon::prelude::*;

use super::isa::Isa;
use super::microkernel::{
    pack_row, tile_shape, Microkernel, Portable, Strided, TileOut, MAX_ROWS, MAX_WIDTH,
};

#[cfg(target_arch = "x86_64")]
use super::microkernel::{Avx2, Avx512};

/// Rows of the inner dimension per block: a tile's block of d_a is BLOCK·ROWS floats (3 KB for
/// AVX2, in L1); x's panels BLOCK·N (128 KB at N = 256) and a thread's tiles of d_a (256 KB at
/// 2 threads, 4H = 1024) stay in L2.
const BLOCK: usize = 128;

/// out [G][N] = Σ_r d_a[r][g] · x[r][n] over the `rows` rows of `d_a` [rows][G] and `x`
/// [rows][N], written over `out` (G = d_a.len() / rows, N = x.len() / rows), on `isa`'s tiles.
pub fn weight_gradient(isa: Isa, d_a: &[f32], x: &[f32], rows: usize, out: &mut [f32]) {
    let g = d_a.len() / rows.max(1);
    let threads = rayon::current_num_threads().max(1);
    let (tile_rows, _) = tile_shape(isa);
    let per_part = g.div_ceil(threads).next_multiple_of(tile_rows);
    let mut parts: Vec<_> = (0..g)
        .step_by(per_part.max(1))
        .map(|first| NoSums(per_part.min(g - first)))
        .collect();
    weight_gradient_summing(isa, d_a, x, rows, out, &mut parts);
}

/// What a part of the product does with its columns of d_a, row by row in ascending order, as it
/// reads them to pack them: layer 0's one-hot input term sums them (`lstm::InputTermPart`), so
/// that ∂L/∂a is read from memory once for both. Generic over the element, so that the same
/// sums serve f64 where the product does not run.
pub trait RowSums<T>: Send {
    /// How many columns of d_a (rows of out) the part takes.
    fn columns(&self) -> usize;
    /// Before the first row, on the part's thread.
    fn start(&mut self);
    /// Row `row` of d_a (counted from d_a's first), the part's columns of it.
    fn add_row(&mut self, row: usize, d_a: &[T]);
    /// After the last row.
    fn finish(&mut self);
}

/// A part that only takes its columns, and sums nothing.
struct NoSums(usize);

impl RowSums<f32> for NoSums {
    fn columns(&self) -> usize {
        self.0
    }
    fn start(&mut self) {}
    #[inline(always)]
    fn add_row(&mut self, _: usize, _: &[f32]) {}
    fn finish(&mut self) {}
}

/// [`weight_gradient`] in `parts` that split out's rows in order (each on a thread of rayon's),
/// each fed its columns of every row of d_a as they are read.
pub fn weight_gradient_summing<S: RowSums<f32>>(
    isa: Isa,
    d_a: &[f32],
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    parts: &mut [S],
) {
    assert!(rows > 0, "a weight gradient over no rows");
    let (g, n) = (d_a.len() / rows, x.len() / rows);
    assert_eq!(d_a.len(), rows * g, "d_a is [rows][G]");
    assert_eq!(x.len(), rows * n, "x is [rows][N]");
    assert_eq!(out.len(), g * n, "out is [G][N]");
    let columns: usize = parts.iter().map(|part| part.columns()).sum();
    assert_eq!(columns, g, "the parts take every column of d_a");
    assert!(isa.supported(), "this CPU lacks {isa}");
    let product = Product { d_a, x, rows, g, n };
    match isa {
        Isa::Portable => product.run(out, parts, Product::part::<Portable, S>),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => product.run(out, parts, Product::part_avx2),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => product.run(out, parts, Product::part_avx512),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("{isa} is x86-64 only"),
    }
}

/// One part's call: its first row of out, its rows of out, its sums.
type PartFn<'a, S> = unsafe fn(&Product<'a>, usize, &mut [f32], &mut S);

struct Product<'a> {
    d_a: &'a [f32],
    x: &'a [f32],
    rows: usize,
    g: usize,
    n: usize,
}

impl<'a> Product<'a> {
    /// Runs each part on rayon's threads: [`Self::part`] for a kernel, compiled for its
    /// instruction set.
    fn run<S: RowSums<f32>>(&self, out: &mut [f32], parts: &mut [S], part: PartFn<'a, S>) {
        let mut jobs = Vec::with_capacity(parts.len());
        let (mut rest, mut first) = (out, 0);
        for sums in parts {
            let columns = sums.columns();
            let (mine, after) = rest.split_at_mut(columns * self.n);
            jobs.push((first, mine, sums));
            (rest, first) = (after, first + columns);
        }
        jobs.into_par_iter()
            // SAFETY: `weight_gradient_summing` asserted that the processor supports the kernel.
            .for_each(|(first, out, sums)| unsafe { part(self, first, out, sums) });
    }

    /// [`Self::part`] with AVX2 enabled around the tiles: the packing and the sums into out
    /// vectorised for it, and the tile inlined.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn part_avx2<S: RowSums<f32>>(&self, first: usize, out: &mut [f32], sums: &mut S) {
        self.part::<Avx2, S>(first, out, sums)
    }

    /// [`Self::part`] with AVX-512 enabled around the tiles.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn part_avx512<S: RowSums<f32>>(&self, first: usize, out: &mut [f32], sums: &mut S) {
        self.part::<Avx512, S>(first, out, sums)
    }

    /// Rows first..first + out.len()/N of out; `sums` gets the same columns of d_a.
    #[inline(always)]
    fn part<K: Microkernel, S: RowSums<f32>>(&self, first: usize, out: &mut [f32], sums: &mut S) {
        let (n, width, tile_rows_max) = (self.n, K::WIDTH, K::ROWS);
        let out_rows = out.len() / n;
        let panels = n.div_ceil(width);
        let mut tile: TileOut = [[0.0; MAX_WIDTH]; MAX_ROWS];
        // Both operands are copied into contiguous blocks before the tiles read them: read in
        // place, d_a's rows (4 KB apart at 4H = 1024) and x's (1 KB apart) fall into a few L1
        // sets and evict each other, and a column of d_a crosses a page every row.
        let tiles = out_rows.div_ceil(tile_rows_max);
        let mut x_panels = vec![0.0f32; panels * BLOCK * width];
        let mut a_tiles = vec![0.0f32; tiles * BLOCK * tile_rows_max];
        sums.start();
        for r0 in (0..self.rows).step_by(BLOCK) {
            let k = BLOCK.min(self.rows - r0);
            match width {
                8 => self.pack_x::<8>(r0, k, &mut x_panels),
                16 => self.pack_x::<16>(r0, k, &mut x_panels),
                32 => self.pack_x::<32>(r0, k, &mut x_panels),
                width => unreachable!("no kernel is {width} wide"),
            }
            match tile_rows_max {
                4 => self.pack_a::<4, S>(r0, k, first, out_rows, &mut a_tiles, sums),
                6 => self.pack_a::<6, S>(r0, k, first, out_rows, &mut a_tiles, sums),
                8 => self.pack_a::<8, S>(r0, k, first, out_rows, &mut a_tiles, sums),
                rows => unreachable!("no kernel has {rows} rows"),
            }
            for (t, a_tile) in a_tiles.chunks_exact(BLOCK * tile_rows_max).enumerate() {
                let (i0, tile_rows) = (
                    t * tile_rows_max,
                    tile_rows_max.min(out_rows - t * tile_rows_max),
                );
                let a = Strided {
                    ptr: a_tile.as_ptr(),
                    row: 1,
                    step: tile_rows_max,
                };
                for (p, panel) in x_panels.chunks_exact(BLOCK * width).enumerate() {
                    let (c0, columns) = (p * width, width.min(n - p * width));
                    // SAFETY: the tile reads a_tile[κ·ROWS + i] for κ < k ≤ BLOCK and
                    // i < tile_rows ≤ ROWS, and k rows of WIDTH floats of its panel, all inside
                    // the two buffers; weight_gradient_summing() asserted that the processor supports K.
                    unsafe { K::tile(tile_rows, a, k, panel.as_ptr(), &mut tile) };
                    for (i, sums) in tile[..tile_rows].iter().enumerate() {
                        let out_row = &mut out[(i0 + i) * n + c0..][..columns];
                        if r0 == 0 {
                            out_row.copy_from_slice(&sums[..columns]);
                        } else {
                            for (o, &s) in out_row.iter_mut().zip(sums) {
                                *o += s;
                            }
                        }
                    }
                }
            }
        }
        sums.finish();
    }

    /// x_panels[p][κ][c] = x[r0 + κ][p·W + c] for κ < k, zero beyond column N (set once: the
    /// buffer is made zero and every later block writes the same columns).
    #[inline(always)]
    fn pack_x<const W: usize>(&self, r0: usize, k: usize, x_panels: &mut [f32]) {
        let n = self.n;
        for kk in 0..k {
            pack_row(&self.x[(r0 + kk) * n..][..n], kk, BLOCK, W, x_panels);
        }
    }

    /// a_tiles[t][κ][i] = d_a[r0 + κ][first + t·R + i] for κ < k and the `rows` rows of this
    /// part: read row by row, so that the reads are sequential, and each row given to `sums`
    /// while it is in L1; R fixed, so that each piece is one move rather than a call to memmove.
    #[inline(always)]
    fn pack_a<const R: usize, S: RowSums<f32>>(
        &self,
        r0: usize,
        k: usize,
        first: usize,
        rows: usize,
        a_tiles: &mut [f32],
        sums: &mut S,
    ) {
        for kk in 0..k {
            let from = (r0 + kk) * self.g + first;
            let row = &self.d_a[from..from + rows];
            pack_row(row, kk, BLOCK, R, a_tiles);
            sums.add_row(r0 + kk, row);
        }
    }
}
