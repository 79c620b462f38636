//! Streaming inference for generation on the device, as [`crate::cpu`]'s `StreamState`: `rows`
//! independent LSTM states advanced a step at a time.

use std::ops::Range;

use super::runtime::{Buffer, DevicePtr, Gpu, GpuResult};
use super::CudaBackend;
use crate::model::Config;

/// The states and one step's scratch.
pub(super) struct Stream {
    rows: usize,
    /// Per layer, [rows][H]: h and c after the last step.
    hidden: Vec<Buffer<f32>>,
    cell: Vec<Buffer<f32>>,
    /// [rows][4H], [rows][H]: one step's gates and tanh(c).
    gates: Buffer<f32>,
    tanh_cell: Buffer<f32>,
    /// [rows][K]: one step's input indices.
    inputs: Buffer<u32>,
    /// [rows][H]: the top h of the rows whose distribution is asked for, gathered.
    selected: Buffer<f32>,
    /// [rows][V].
    logits: Buffer<f32>,
}

impl Stream {
    /// `rows` zero states.
    pub(super) fn new(gpu: &Gpu, config: &Config, rows: usize) -> GpuResult<Stream> {
        let (h, v) = (config.hidden, config.vocab_size);
        let per_layer = || {
            (0..config.layers)
                .map(|_| gpu.alloc(rows * h))
                .collect::<GpuResult<Vec<_>>>()
        };
        Ok(Stream {
            rows,
            hidden: per_layer()?,
            cell: per_layer()?,
            gates: gpu.alloc(rows * 4 * h)?,
            tanh_cell: gpu.alloc(rows * h)?,
            inputs: gpu.alloc(rows * config.inputs_per_step)?,
            selected: gpu.alloc(rows * h)?,
            logits: gpu.alloc(rows * v)?,
        })
    }
}

impl CudaBackend {
    fn stream(&self) -> &Stream {
        self.stream.as_ref().expect("stream_reset first")
    }

    /// The address of row `row` of a [rows][H] stream buffer, checked.
    fn state_row(&self, buffer: &Buffer<f32>, row: usize) -> DevicePtr<f32> {
        let h = self.model.config.hidden;
        buffer.span(row * h, h)
    }

    /// Applies `op(buffer)` to every layer's h and c.
    fn for_state(&self, op: impl Fn(&Buffer<f32>) -> GpuResult<()>) -> GpuResult<()> {
        let stream = self.stream();
        stream.hidden.iter().chain(&stream.cell).try_for_each(op)
    }

    pub(super) fn stream_zero(&self, rows: &[usize]) -> GpuResult<()> {
        let (gpu, h) = (&self.model.gpu, self.model.config.hidden);
        for &row in rows {
            self.for_state(|buffer| gpu.zero(self.state_row(buffer, row), h))?;
        }
        Ok(())
    }

    pub(super) fn stream_copy(&self, from: usize, to: &[usize]) -> GpuResult<()> {
        let (gpu, h) = (&self.model.gpu, self.model.config.hidden);
        for &row in to.iter().filter(|&&row| row != from) {
            self.for_state(|buffer| {
                gpu.copy(self.state_row(buffer, row), self.state_row(buffer, from), h)
            })?;
        }
        Ok(())
    }

    /// Every layer one step, as `cpu::lstm::lstm_step` per layer.
    pub(super) fn stream_advance(&self, rows: Range<usize>, inputs: &[u32]) -> GpuResult<()> {
        let (model, stream) = (&self.model, self.stream());
        let (h, n) = (model.config.hidden, rows.len());
        assert!(rows.end <= stream.rows, "stream rows out of range");
        assert_eq!(
            inputs.len(),
            n * model.config.inputs_per_step,
            "K input indices per stream"
        );
        model.upload_indices(&stream.inputs, inputs)?;
        let scratch = (stream.gates.ptr(), stream.tanh_cell.ptr());
        for k in 0..model.config.layers {
            let below = (k > 0).then(|| stream.hidden[k - 1].at(rows.start * h));
            model.input_term(k, stream.inputs.ptr(), below, scratch.0, n)?;
            let state = (
                stream.hidden[k].at(rows.start * h),
                stream.cell[k].at(rows.start * h),
            );
            model.lstm_step(k, scratch, state, n)?;
        }
        Ok(())
    }

    pub(super) fn stream_distribution(&self, rows: &[usize], out: &mut [f32]) -> GpuResult<()> {
        let (model, stream) = (&self.model, self.stream());
        let (gpu, h, v) = (&model.gpu, model.config.hidden, model.config.vocab_size);
        assert_eq!(out.len(), rows.len() * v, "out is [rows][V]");
        let top = &stream.hidden[model.config.layers - 1];
        for (i, &row) in rows.iter().enumerate() {
            gpu.copy(
                self.state_row(&stream.selected, i),
                self.state_row(top, row),
                h,
            )?;
        }
        model.dense_forward(stream.selected.ptr(), rows.len(), stream.logits.ptr())?;
        gpu.softmax(stream.logits.ptr(), rows.len(), v)?;
        gpu.download(stream.logits.ptr(), out)
    }
}
