//! Biases on the device (kernels/bias.cu): broadcast to every row of a product's output before
//! the product is added, and their gradient, the column sums of the output's gradient. Both the
//! LSTM layers and the head use them.

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::launch::{elementwise, launch};
use super::runtime::{Buffer, DevicePtr, Gpu, GpuResult};

/// Row chunks of the column sums: 64 rows each, at most 128 chunks.
fn column_sum_chunks(rows: usize) -> usize {
    rows.div_ceil(64).clamp(1, 128)
}

/// Floats of scratch [`Gpu::column_sums`] needs for `rows` × `cols`.
pub(super) fn column_sums_scratch(rows: usize, cols: usize) -> usize {
    column_sum_chunks(rows) * cols
}

impl Gpu {
    /// out[r] = a (+ b) for `rows` rows of `cols`.
    pub(super) fn broadcast_rows(
        &self,
        out: DevicePtr<f32>,
        a: DevicePtr<f32>,
        b: Option<DevicePtr<f32>>,
        rows: usize,
        cols: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::BroadcastRows,
            elementwise(Kernel::BroadcastRows, rows * cols),
            out,
            a,
            b,
            rows as i32,
            cols as i32,
        )
    }

    /// out[c] = Σ_r x[r][c], through `partial`, scratch of [`column_sums_scratch`] floats.
    pub(super) fn column_sums(
        &self,
        x: DevicePtr<f32>,
        rows: usize,
        cols: usize,
        partial: &Buffer<f32>,
        out: DevicePtr<f32>,
    ) -> GpuResult<()> {
        let chunks = column_sum_chunks(rows);
        assert!(
            partial.len() >= chunks * cols,
            "column-sum scratch too small"
        );
        let rows_per_chunk = rows.div_ceil(chunks);
        let threads = Kernel::ColumnSumsPartial.block_threads();
        let config = LaunchConfig {
            grid_dim: ((cols as u32).div_ceil(threads), chunks as u32, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            Kernel::ColumnSumsPartial,
            config,
            x,
            partial.ptr(),
            rows as i32,
            cols as i32,
            rows_per_chunk as i32,
        )?;
        launch!(
            self,
            Kernel::ColumnSumsFinish,
            elementwise(Kernel::ColumnSumsFinish, cols),
            partial.ptr(),
            out,
            chunks as i32,
            cols as i32,
        )
    }
}
