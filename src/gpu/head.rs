//! The head on the device (kernels/head.cu), as `cpu::head`'s `head_forward` and
//! `head_backward`: dropout on the top layer's h, the dense layer (a bias and a product), and
//! softmax cross-entropy, and their gradients.

use std::ops::Range;

use super::kernels::Kernel;
use super::launch::{elementwise, launch};
use super::matmul::DeviceMatrix;
use super::runtime::{DevicePtr, Gpu, GpuResult};
use super::{Model, Workspace};

impl Gpu {
    /// out = in ⊙ mask of optimiser step `step` (in == out is allowed).
    pub fn dropout(
        &self,
        input: DevicePtr<f32>,
        out: DevicePtr<f32>,
        n: usize,
        (seed, step): (u64, u64),
        p: f32,
    ) -> GpuResult<()> {
        // Kept when the hash's top 32 bits reach p·2³², as in cpu::dropout_keeps; p·2³² is exact
        // in f64, so its ceiling is the integer threshold.
        let threshold = (p as f64 * 4_294_967_296.0).ceil() as u64;
        let scale = (1.0 / (1.0 - p as f64)) as f32;
        launch!(
            self,
            Kernel::Dropout,
            elementwise(Kernel::Dropout, n),
            input,
            out,
            n as i32,
            seed,
            step,
            threshold,
            scale,
        )
    }

    /// Softmax over each row of `logits` [rows][V] in place; with targets, also each row's loss
    /// and correctness (`results`, [2·rows] doubles: losses, then 1 or 0 per row), and
    /// ∂(mean loss)/∂logits over the probabilities.
    pub fn softmax_cross_entropy(
        &self,
        logits: DevicePtr<f32>,
        targets: Option<DevicePtr<u32>>,
        (rows, vocab): (usize, usize),
        inv_count: f32,
        results: Option<DevicePtr<f64>>,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::SoftmaxCrossEntropy,
            elementwise(Kernel::SoftmaxCrossEntropy, rows),
            logits,
            targets,
            rows as i32,
            vocab as i32,
            inv_count,
            results,
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

    /// Dropout, the dense layer and softmax cross-entropy over the loss rows: the losses and
    /// correctness in `ws.results`, ∂L/∂logits in `ws.logits`.
    pub(super) fn head_forward(
        &self,
        ws: &Workspace,
        rows: &Range<usize>,
        dropout: (u64, u64),
    ) -> GpuResult<()> {
        let (gpu, h, v) = (&self.gpu, self.config.hidden, self.config.vocab_size);
        let n = rows.len();
        let top = &ws.tapes[self.config.layers - 1];
        // p = 0 draws a threshold of 0 and a scale of 1: every value kept, unchanged.
        let hidden = top.hidden.at(rows.start * h);
        gpu.dropout(
            hidden,
            ws.dropped.ptr(),
            n * h,
            dropout,
            self.config.dropout,
        )?;
        self.dense_forward(ws.dropped.ptr(), n, ws.logits.ptr())?;
        let inv_count = (1.0 / n as f64) as f32;
        gpu.softmax_cross_entropy(
            ws.logits.ptr(),
            Some(ws.targets.at(rows.start)),
            (n, v),
            inv_count,
            Some(ws.results.ptr()),
        )
    }

    /// From ∂L/∂logits in `ws.logits`: the dense layer's gradients, and ∂L/∂h of the top layer
    /// in `ws.d_hidden` (zero where no loss is taken).
    pub(super) fn head_backward(
        &self,
        ws: &Workspace,
        rows: &Range<usize>,
        dropout: (u64, u64),
    ) -> GpuResult<()> {
        let (gpu, h, v) = (&self.gpu, self.config.hidden, self.config.vocab_size);
        let (n, p) = (rows.len(), self.config.dropout);
        let d_logits = DeviceMatrix::new(ws.logits.ptr(), n, v);
        let dense_weight = DeviceMatrix::new(self.param(self.layout.dense.weight), v, h);
        let d_bias = self.grad(self.layout.dense.bias);
        gpu.column_sums(ws.logits.ptr(), n, v, &ws.sums, d_bias)?;
        let dropped = DeviceMatrix::new(ws.dropped.ptr(), n, h);
        let d_weight = self.grad(self.layout.dense.weight);
        gpu.matmul(d_weight, false, d_logits.t(), dropped)?;
        // Positions without loss get no gradient from the dense layer.
        gpu.zero(ws.d_hidden.ptr(), rows.start * h)?;
        let d_top = ws.d_hidden.at(rows.start * h);
        gpu.matmul(d_top, false, d_logits, dense_weight)?;
        if p > 0.0 {
            gpu.dropout(d_top, d_top, n * h, dropout, p)?;
        }
        Ok(())
    }
}
