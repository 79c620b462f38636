//! The head on the device (kernels/head.cu), as `cpu::head`'s `head_forward` and
//! `head_backward`: for a training step one fused kernel (dropout on the top layer's h, the dense
//! layer, softmax cross-entropy, ∂L/∂logits and ∂L/∂h), then the dense gradients, sums over the
//! rows; for inference the dense layer (a bias and a product) and a plain softmax.

use std::ops::Range;

use super::kernels::Kernel;
use super::launch::launch;
use super::matmul::DeviceMatrix;
use super::runtime::{DevicePtr, Gpu, GpuResult};
use super::{Model, Workspace};
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

/// What [`Gpu::head_forward_backward`] writes: the dense layer's input h ⊙ mask [rows][H],
/// ∂L/∂logits [rows][V], ∂L/∂h [rows][H], and per row the loss then 1 or 0 for whether the
/// argmax is the target ([2·rows] doubles).
pub type HeadOutputs = (
    DevicePtr<f32>,
    DevicePtr<f32>,
    DevicePtr<f32>,
    DevicePtr<f64>,
);

impl Gpu {
    /// The fused head over `rows` loss rows of the top layer's `hidden` [rows][H] with their
    /// `targets`: dropout with the mask of (seed, optimiser step) and rate `p`, the dense layer,
    /// softmax cross-entropy, and the gradients of the mean loss as far as they stay in a row.
    #[allow(clippy::too_many_arguments)]
    pub fn head_forward_backward(
        &self,
        (weight, bias): DenseParams,
        hidden: DevicePtr<f32>,
        targets: DevicePtr<u32>,
        (dropped, d_logits, d_hidden, results): HeadOutputs,
        (rows, units, vocab): (usize, usize, usize),
        (seed, step): (u64, u64),
        p: f32,
    ) -> GpuResult<()> {
        // Kept when the hash's top 32 bits reach p·2³², as in cpu::dropout_keeps; p·2³² is exact
        // in f64, so its ceiling is the integer threshold. p = 0 keeps everything, unscaled.
        let threshold = (p as f64 * 4_294_967_296.0).ceil() as u64;
        let scale = (1.0 / (1.0 - p as f64)) as f32;
        let inv_count = (1.0 / rows as f64) as f32;
        assert!(rows * units.max(vocab) <= i32::MAX as usize);
        launch!(
            self,
            Kernel::HeadForwardBackward,
            warp_per_row(Kernel::HeadForwardBackward, rows),
            hidden,
            weight,
            bias,
            targets,
            dropped,
            d_logits,
            d_hidden,
            results,
            rows as i32,
            units as i32,
            vocab as i32,
            seed,
            step,
            threshold,
            scale,
            inv_count,
        )
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
        let n = rows.len();
        let dense = self.layout.dense;
        // Positions without loss get no gradient from the dense layer.
        gpu.zero(ws.d_hidden.ptr(), rows.start * h)?;
        gpu.head_forward_backward(
            (self.param(dense.weight), self.param(dense.bias)),
            ws.tapes[self.config.layers - 1].hidden.at(rows.start * h),
            ws.targets.at(rows.start),
            (
                ws.dropped.ptr(),
                ws.logits.ptr(),
                ws.d_hidden.at(rows.start * h),
                ws.results.ptr(),
            ),
            (n, h, v),
            dropout,
            self.config.dropout,
        )?;
        // The dense gradients sum over the rows: ∂L/∂b = Σ ∂L/∂logits, ∂L/∂W = ∂L/∂logitsᵀ·(h ⊙ m).
        let d_logits = DeviceMatrix::new(ws.logits.ptr(), n, v);
        gpu.column_sums(ws.logits.ptr(), n, v, &ws.sums, self.grad(dense.bias))?;
        let dropped = DeviceMatrix::new(ws.dropped.ptr(), n, h);
        gpu.weight_gradient(self.grad(dense.weight), d_logits, dropped, &ws.partials)
    }
}
