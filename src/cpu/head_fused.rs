//! The head of a training step fused per block of rows on the engine's own tiles, for f32: the
//! CPU twin of the GPU's `head_forward_backward` (kernels/head.cu), the computation of
//! `head::head_forward` then `head::head_backward`.
//!
//! W_dense is packed once per call into panels of the tile's width, both ways: Wᵀ [H][V] for the
//! logits and W [V][H] for ∂L/∂h. The N rows are split into groups of `GROUP` rows, one rayon
//! task each; a group walks its rows in blocks of `BLOCK`, and each block goes through every
//! stage while its rows are in cache: dropout, logits = dropped·Wᵀ + b, softmax cross-entropy and
//! its gradient in place (the reference's own functions), ∂L/∂h = (∂L/∂logits·W) ⊙ mask, and
//! the block's ∂L/∂W = ∂L/∂logitsᵀ·dropped added to its group's partial. The partials are added
//! in group order at the end, and ∂L/∂b is summed over the rows in order, as the reference does.
//! Groups have a fixed size, so every sum runs in the same order whatever the thread count: the
//! same bits on 1 thread or 16.

use rayon::prelude::*;

use super::head::{softmax_cross_entropy, softmax_cross_entropy_backward};
use super::isa::Isa;
use super::matmul::column_sums;
use super::microkernel::{
    pack_column, pack_row, Microkernel, Portable, Strided, TileOut, MAX_ROWS, MAX_WIDTH,
};
use super::BatchStats;
use crate::model::{Dense, DenseMut};

#[cfg(target_arch = "x86_64")]
use super::microkernel::{Avx2, Avx512};

/// Rows of a block: its dropped rows and their panels (64 KB each at H = 256), its logits
/// (10 KB at V = 38) and its rows of ∂L/∂h stay in L2 from the dropout to the weight gradient,
/// beside the two packed copies of W_dense (≈ 40 KB each).
const BLOCK: usize = 64;
/// Rows of a group, the unit of work of a thread: 16 groups at the bench's 4,096 rows, so that
/// threads stay busy to the end, and 16 partials of ∂L/∂W_dense (40 KB each) to add.
const GROUP: usize = 4 * BLOCK;

/// What [`head_forward_backward`] keeps between calls: W_dense packed both ways, and one partial
/// of ∂L/∂W_dense per group.
#[derive(Default)]
pub struct HeadScratch {
    packed: Vec<f32>,
    partials: Vec<f32>,
}

/// The head of a training step over the N loss rows of `hidden` [N][H] with their `targets`:
/// dropout by `mask` [N][H] (none: off), the dense layer, softmax cross-entropy, and the
/// gradients of the mean loss over the N rows. Writes ∂L/∂logits [N][V] into `d_logits`, ∂L/∂h
/// [N][H] into `d_hidden`, overwrites the dense gradients, and returns the summed loss and the
/// correct rows: `head_forward` then `head_backward`, on `isa`'s tiles.
#[allow(clippy::too_many_arguments)]
pub fn head_forward_backward(
    isa: Isa,
    dense: Dense<'_, f32>,
    hidden: &[f32],
    mask: Option<&[f32]>,
    targets: &[u32],
    d_logits: &mut [f32],
    grads: DenseMut<'_, f32>,
    d_hidden: &mut [f32],
    scratch: &mut HeadScratch,
) -> BatchStats {
    let (n, v) = (targets.len(), dense.bias.len());
    assert!(n > 0, "a head over no rows");
    let h = dense.weight.len() / v;
    assert_eq!(dense.weight.len(), v * h, "W_dense is [V][H]");
    assert_eq!(hidden.len(), n * h, "hidden is [N][H]");
    if let Some(mask) = mask {
        assert_eq!(mask.len(), n * h, "the dropout mask is [N][H]");
    }
    assert_eq!(d_logits.len(), n * v, "d_logits is [N][V]");
    assert_eq!(d_hidden.len(), n * h, "d_hidden is [N][H]");
    assert_eq!(grads.weight.len(), v * h, "∂L/∂W_dense is [V][H]");
    assert_eq!(grads.bias.len(), v, "∂L/∂b_dense is [V]");
    assert!(targets.iter().all(|&t| (t as usize) < v), "target out of V");
    assert!(isa.supported(), "this CPU lacks {isa}");
    let head = Head {
        dense,
        hidden,
        mask,
        targets,
        h,
        v,
    };
    match isa {
        Isa::Portable => {
            head.run::<Portable>(d_logits, grads, d_hidden, scratch, Head::group::<Portable>)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => head.run::<Avx2>(d_logits, grads, d_hidden, scratch, Head::group_avx2),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => head.run::<Avx512>(d_logits, grads, d_hidden, scratch, Head::group_avx512),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("{isa} is x86-64 only"),
    }
}

/// The inputs of one call, shared by its groups.
struct Head<'a> {
    dense: Dense<'a, f32>,
    hidden: &'a [f32],
    mask: Option<&'a [f32]>,
    targets: &'a [u32],
    h: usize,
    v: usize,
}

/// [`Head::group`] for one kernel, compiled for its instruction set.
type GroupFn<'h> =
    unsafe fn(&Head<'h>, &Panels<'_>, usize, &mut [f32], &mut [f32], &mut [f32]) -> BatchStats;

/// W_dense packed both ways for a kernel `width` wide.
struct Panels<'a> {
    /// Wᵀ: [⌈V/width⌉][H][width], zero beyond symbol V.
    logits: &'a [f32],
    /// W: [⌈H/width⌉][V][width], zero beyond unit H.
    d_hidden: &'a [f32],
}

impl<'h> Head<'h> {
    /// The head on K's tiles, each group of rows computed by `group`: [`Self::group`] for K.
    fn run<K: Microkernel>(
        &self,
        d_logits: &mut [f32],
        grads: DenseMut<'_, f32>,
        d_hidden: &mut [f32],
        scratch: &mut HeadScratch,
        group: GroupFn<'h>,
    ) -> BatchStats {
        let (h, v, width) = (self.h, self.v, K::WIDTH);
        let n = self.targets.len();
        let logits_len = v.div_ceil(width) * h * width;
        let packed = &mut scratch.packed;
        packed.clear();
        packed.resize(logits_len + h.div_ceil(width) * v * width, 0.0);
        let (logits_panels, d_hidden_panels) = packed.split_at_mut(logits_len);
        for (s, w_row) in self.dense.weight.chunks_exact(h).enumerate() {
            let (p, c) = (s / width, s % width);
            pack_column(
                w_row,
                c,
                width,
                &mut logits_panels[p * h * width..][..h * width],
            );
            pack_row(w_row, s, v, width, d_hidden_panels);
        }
        let panels = Panels {
            logits: logits_panels,
            d_hidden: d_hidden_panels,
        };

        let partial_len = v * h;
        scratch.partials.clear();
        scratch
            .partials
            .resize(n.div_ceil(GROUP) * partial_len, 0.0);
        let group_stats: Vec<BatchStats> = scratch
            .partials
            .par_chunks_mut(partial_len)
            .zip(d_logits.par_chunks_mut(GROUP * v))
            .zip(d_hidden.par_chunks_mut(GROUP * h))
            .enumerate()
            .map(|(g, ((partial, d_logits), d_hidden))| {
                // SAFETY: `head_forward_backward` asserted that the processor supports K.
                unsafe { group(self, &panels, g * GROUP, d_logits, d_hidden, partial) }
            })
            .collect();

        // The partials in group order: the same sums on any thread count.
        let mut partials = scratch.partials.chunks_exact(partial_len);
        grads
            .weight
            .copy_from_slice(partials.next().expect("at least one group"));
        for partial in partials {
            for (sum, &x) in grads.weight.iter_mut().zip(partial) {
                *sum += x;
            }
        }
        // ∂L/∂b row by row over all N, as the reference sums it (N·V adds, a few µs): where
        // the ∂L/∂logits have the reference's bits, so has ∂L/∂b.
        column_sums(d_logits, grads.bias);
        let mut stats = BatchStats {
            count: n,
            ..BatchStats::default()
        };
        for part in group_stats {
            stats.loss_sum += part.loss_sum;
            stats.correct += part.correct;
        }
        stats
    }

    /// [`Self::group`] with AVX2 enabled around the tiles: the dropout, packing and epilogues
    /// vectorised for it, and the tiles inlined.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn group_avx2(
        &self,
        panels: &Panels<'_>,
        first: usize,
        d_logits: &mut [f32],
        d_hidden: &mut [f32],
        partial: &mut [f32],
    ) -> BatchStats {
        self.group::<Avx2>(panels, first, d_logits, d_hidden, partial)
    }

    /// [`Self::group`] with AVX-512 enabled around the tiles.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn group_avx512(
        &self,
        panels: &Panels<'_>,
        first: usize,
        d_logits: &mut [f32],
        d_hidden: &mut [f32],
        partial: &mut [f32],
    ) -> BatchStats {
        self.group::<Avx512>(panels, first, d_logits, d_hidden, partial)
    }

    /// The group of rows from `first` (as many as `d_logits` [rows][V] holds), block by block;
    /// its ∂L/∂W_dense is summed into `partial` ([V][H], zero on entry).
    #[inline(always)]
    fn group<K: Microkernel>(
        &self,
        panels: &Panels<'_>,
        first: usize,
        d_logits: &mut [f32],
        d_hidden: &mut [f32],
        partial: &mut [f32],
    ) -> BatchStats {
        let (h, v, width) = (self.h, self.v, K::WIDTH);
        let mut stats = BatchStats::default();
        let mut dropped = vec![0.0f32; BLOCK * h];
        // Zero beyond unit H, set once: every block writes the same columns.
        let mut dropped_panels = vec![0.0f32; h.div_ceil(width) * BLOCK * width];
        let mut tile: TileOut = [[0.0; MAX_WIDTH]; MAX_ROWS];
        let blocks = d_logits
            .chunks_mut(BLOCK * v)
            .zip(d_hidden.chunks_mut(BLOCK * h));
        for (b, (logits, d_hidden)) in blocks.enumerate() {
            let rows = logits.len() / v;
            let r0 = first + b * BLOCK;
            let targets = &self.targets[r0..r0 + rows];
            let mask = self.mask.map(|mask| &mask[r0 * h..(r0 + rows) * h]);
            let dropped = &mut dropped[..rows * h];

            // Dropout, into rows for the logits and panels for ∂L/∂W.
            let hidden = &self.hidden[r0 * h..(r0 + rows) * h];
            super::head::dropout(hidden, mask, dropped);
            for (r, row) in dropped.chunks_exact(h).enumerate() {
                pack_row(row, r, BLOCK, width, &mut dropped_panels);
            }

            // logits = dropped · Wᵀ + b
            for (p, panel) in panels.logits.chunks_exact(h * width).enumerate() {
                let (s0, symbols) = (p * width, width.min(v - p * width));
                let bias = &self.dense.bias[s0..s0 + symbols];
                for i0 in (0..rows).step_by(K::ROWS) {
                    let tile_rows = K::ROWS.min(rows - i0);
                    let a = Strided::rows(dropped[i0 * h..].as_ptr(), h);
                    // SAFETY: the tile reads rows i0..i0 + tile_rows of `dropped` [rows][H]
                    // (H each) and H rows of `width` floats of its panel; the processor supports
                    // K (asserted by head_forward_backward).
                    unsafe { K::tile(tile_rows, a, h, panel.as_ptr(), &mut tile) };
                    for (i, sums) in tile[..tile_rows].iter().enumerate() {
                        let out = &mut logits[(i0 + i) * v + s0..][..symbols];
                        for ((out, &sum), &b) in out.iter_mut().zip(sums).zip(bias) {
                            *out = sum + b;
                        }
                    }
                }
            }

            // Probabilities, then ∂(mean loss)/∂logits, in place.
            let block = softmax_cross_entropy(logits, targets);
            stats.loss_sum += block.loss_sum;
            stats.correct += block.correct;
            softmax_cross_entropy_backward(logits, targets, self.targets.len());

            // ∂L/∂h = (∂L/∂logits · W) ⊙ mask
            for (p, panel) in panels.d_hidden.chunks_exact(v * width).enumerate() {
                let (j0, units) = (p * width, width.min(h - p * width));
                for i0 in (0..rows).step_by(K::ROWS) {
                    let tile_rows = K::ROWS.min(rows - i0);
                    let a = Strided::rows(logits[i0 * v..].as_ptr(), v);
                    // SAFETY: rows i0..i0 + tile_rows of ∂L/∂logits [rows][V] and V rows of its
                    // panel; K is supported.
                    unsafe { K::tile(tile_rows, a, v, panel.as_ptr(), &mut tile) };
                    for (i, sums) in tile[..tile_rows].iter().enumerate() {
                        let at = (i0 + i) * h + j0;
                        let out = &mut d_hidden[at..at + units];
                        out.copy_from_slice(&sums[..units]);
                        // Dropout is linear with the mask as its slope.
                        if let Some(mask) = mask {
                            for (d, &m) in out.iter_mut().zip(&mask[at..at + units]) {
                                *d *= m;
                            }
                        }
                    }
                }
            }

            // The block's ∂L/∂W = ∂L/∂logitsᵀ · dropped.
            for s0 in (0..v).step_by(K::ROWS) {
                let tile_rows = K::ROWS.min(v - s0);
                // Row s of A is column s0 + s of ∂L/∂logits, step κ its row κ.
                let a = Strided {
                    ptr: logits[s0..].as_ptr(),
                    row: 1,
                    step: v,
                };
                for (p, panel) in dropped_panels.chunks_exact(BLOCK * width).enumerate() {
                    let (j0, units) = (p * width, width.min(h - p * width));
                    // SAFETY: column s0 + s < V of the block's `rows` rows of ∂L/∂logits and
                    // `rows` rows of `width` floats of its panel; K is supported.
                    unsafe { K::tile(tile_rows, a, rows, panel.as_ptr(), &mut tile) };
                    for (i, sums) in tile[..tile_rows].iter().enumerate() {
                        let out = &mut partial[(s0 + i) * h + j0..][..units];
                        for (sum, &x) in out.iter_mut().zip(sums) {
                            *sum += x;
                        }
                    }
                }
            }
        }
        stats
    }
}
