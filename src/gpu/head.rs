//! The head on the device (kernels/head.cu), as `cpu::head`'s `head_forward` and
//! `head_backward`: for a training step one fused kernel (dropout on the top layer's h, the dense
//! layer, softmax cross-entropy, ∂L/∂logits, ∂L/∂h, and the dense gradients as partial sums over
//! chunks of rows), then the partials added in order; for inference the dense layer (a bias and
//! a product) and a plain softmax.

use std::ops::Range;

use super::kernels::Kernel;
use super::launch::launch;
use super::matmul::DeviceMatrix;
use super::runtime::{Buffer, DevicePtr, Gpu, GpuResult};
use super::{Model, Workspace};
use crate::backend::EngineError;
use crate::cpu;
use cudarc::driver::LaunchConfig;

/// One warp per row, in blocks of the kernel's size.
fn warp_per_row(kernel: Kernel, rows: usize) -> LaunchConfig {
    assert!(
        rows <= i32::MAX as usize,
        "{rows} rows are too many for one launch"
    );
    let threads = kernel.block_threads();
    LaunchConfig {
        grid_dim: ((rows as u32).div_ceil(threads / 32).max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The dense layer's parameters: W [V][H] and b [V].
pub type DenseParams = (DevicePtr<f32>, DevicePtr<f32>);

/// What [`Gpu::head_forward_backward`] writes: ∂L/∂logits [rows][V], ∂L/∂h [rows][H], per row
/// the loss then 1 or 0 for whether the argmax is the target ([2·rows] doubles), and the dense
/// layer's gradients, ∂L/∂W [V][H] followed by ∂L/∂b [V].
pub type HeadOutputs = (
    DevicePtr<f32>,
    DevicePtr<f32>,
    DevicePtr<f64>,
    DevicePtr<f32>,
);

/// How the fused head splits its work: `chunks` blocks of rows (each writing one partial of the
/// dense gradients), of `rows_per_block` rows each, and `tiles` blocks per chunk over the units,
/// `tile_units` columns of ∂L/∂W_dense each, so that a block's partial fits its shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadPlan {
    pub chunks: usize,
    pub rows_per_block: usize,
    pub tiles: usize,
    pub tile_units: usize,
    /// Dynamic shared memory of a block.
    pub shared_bytes: usize,
}

impl Gpu {
    /// The fused head's split of `rows` rows of `units` units and `vocab` symbols: about one
    /// chunk of rows per multiprocessor (each a partial the reduction reads, so no more), and the
    /// widest tile of units whose partial fits the shared memory a block may have. A model whose
    /// rows alone do not fit (a very wide layer or vocabulary) is an error, not a launch.
    pub fn head_plan(&self, rows: usize, units: usize, vocab: usize) -> GpuResult<HeadPlan> {
        let warps = (Kernel::HeadForwardBackward.block_threads() / 32) as usize;
        let chunks = rows.div_ceil(warps).clamp(1, self.multiprocessors);
        let floats = self.shared_limit / 4;
        let rows_floats = warps * (units + vocab) + vocab;
        if rows_floats + vocab > floats {
            return Err(EngineError::OutOfMemory {
                action: "planning the fused head".into(),
                message: format!(
                    "a head of {units} units and {vocab} symbols needs {} KB of shared memory \
                     per block; this device allows {} KB (use --device cpu)",
                    4 * (rows_floats + vocab) / 1024,
                    self.shared_limit / 1024
                ),
            });
        }
        let tiles = units.div_ceil((floats - rows_floats) / vocab);
        let tile_units = units.div_ceil(tiles);
        Ok(HeadPlan {
            chunks,
            rows_per_block: rows.div_ceil(chunks).max(1),
            tiles,
            tile_units,
            shared_bytes: 4 * (vocab * tile_units + rows_floats),
        })
    }

    /// Floats of scratch [`Gpu::head_forward_backward`] needs for `rows` rows: one partial of
    /// the dense gradients per chunk, where there are several.
    pub fn head_scratch(&self, rows: usize, units: usize, vocab: usize) -> GpuResult<usize> {
        Ok(match self.head_plan(rows, units, vocab)?.chunks {
            1 => 0,
            chunks => chunks * (vocab * units + vocab),
        })
    }

    /// The fused head over `rows` loss rows of the top layer's `hidden` [rows][H] with their
    /// `targets`: dropout with the mask of (seed, optimiser step) and rate `p`, the dense layer,
    /// softmax cross-entropy, and the gradients of the mean loss, the dense layer's summed over
    /// the rows through `partials` (scratch of [`Gpu::head_scratch`] floats) in a fixed order:
    /// the same bits on every run.
    #[allow(clippy::too_many_arguments)]
    pub fn head_forward_backward(
        &self,
        (weight, bias): DenseParams,
        hidden: DevicePtr<f32>,
        targets: DevicePtr<u32>,
        (d_logits, d_hidden, results, d_dense): HeadOutputs,
        partials: &Buffer<f32>,
        (rows, units, vocab): (usize, usize, usize),
        (seed, step): (u64, u64),
        p: f32,
    ) -> GpuResult<()> {
        // Kept when the hash's top 32 bits reach the threshold, as in cpu::dropout_keeps. p = 0
        // keeps everything, unscaled.
        let threshold = cpu::dropout_threshold(p);
        let scale = (1.0 / (1.0 - p as f64)) as f32;
        let inv_count = (1.0 / rows as f64) as f32;
        assert!(rows * units.max(vocab) <= i32::MAX as usize);
        let plan = self.head_plan(rows, units, vocab)?;
        let target = match plan.chunks {
            1 => d_dense,
            chunks => {
                assert!(
                    partials.len() >= chunks * (vocab * units + vocab),
                    "head scratch too small"
                );
                partials.ptr()
            }
        };
        let config = LaunchConfig {
            grid_dim: (plan.chunks as u32, plan.tiles as u32, 1),
            block_dim: (Kernel::HeadForwardBackward.block_threads(), 1, 1),
            shared_mem_bytes: plan.shared_bytes as u32,
        };
        launch!(
            self,
            Kernel::HeadForwardBackward,
            config,
            hidden,
            weight,
            bias,
            targets,
            d_logits,
            d_hidden,
            results,
            target,
            rows as i32,
            units as i32,
            vocab as i32,
            plan.rows_per_block as i32,
            plan.tile_units as i32,
            seed,
            step,
            threshold,
            scale,
            inv_count,
        )?;
        if plan.chunks > 1 {
            self.sum_chunks(partials.ptr(), d_dense, plan.chunks, vocab * units + vocab)?;
        }
        Ok(())
    }

    /// Softmax over each row of `logits` [rows][V] in place.
    pub fn softmax(&self, logits: DevicePtr<f32>, rows: usize, vocab: usize) -> GpuResult<()> {
        launch!(
            self,
            Kernel::Softmax,
            warp_per_row(Kernel::Softmax, rows),
            logits,
            rows as i32,
            vocab as i32,
        )
    }
}

impl Model {
    /// logits [n][V] = x [n][H] · W_denseᵀ + b_dense.
    pub(super) fn dense_forward(
        &self,
        x: DevicePtr<f32>,
        n: usize,
        logits: DevicePtr<f32>,
    ) -> GpuResult<()> {
        let (h, v) = (self.config.hidden, self.config.vocab_size);
        self.gpu
            .broadcast_rows(logits, self.param(self.layout.dense.bias), None, n, v)?;
        let weight = DeviceMatrix::new(self.param(self.layout.dense.weight), v, h);
        self.gpu
            .matmul(logits, true, DeviceMatrix::new(x, n, h), weight.t())
    }

    /// The head over the loss rows, forward and backward: the losses and correctness in
    /// `ws.results`, ∂L/∂logits in `ws.logits`, the dense layer's gradients, and ∂L/∂h of the
    /// top layer in `ws.d_hidden` (zero where no loss is taken).
    pub(super) fn head_forward_backward(
        &self,
        ws: &Workspace,
        rows: &Range<usize>,
        dropout: (u64, u64),
    ) -> GpuResult<()> {
        let (gpu, h, v) = (&self.gpu, self.config.hidden, self.config.vocab_size);
        let dense = self.layout.dense;
        // The kernel writes ∂L/∂W_dense and ∂L/∂b_dense as one [V·H + V] block.
        assert_eq!(
            dense.bias,
            dense.weight + v * h,
            "dense bias follows its weight"
        );
        // Positions without loss get no gradient from the dense layer.
        gpu.zero(ws.d_hidden.ptr(), rows.start * h)?;
        gpu.head_forward_backward(
            (self.param(dense.weight), self.param(dense.bias)),
            ws.tapes[self.config.layers - 1].hidden.at(rows.start * h),
            ws.targets.at(rows.start),
            (
                ws.logits.ptr(),
                ws.d_hidden.at(rows.start * h),
                ws.results.ptr(),
                self.grad(dense.weight),
            ),
            &ws.partials,
            (rows.len(), h, v),
            dropout,
            self.config.dropout,
        )
    }
}
