//! Matrix products on the device (kernels/matmul.cu), as `cpu::matmul`: strided views, so a
//! transpose costs nothing; and the biases around them, `broadcast_rows` before a product is
//! added and their gradient `column_sums`. Both the LSTM layers and the head use them.

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::launch::{elementwise, launch};
use super::runtime::{Buffer, DevicePtr, Gpu, GpuResult};

/// A matrix view into device memory: element (r, c) at `ptr + (r·row_stride + c·col_stride)`.
#[derive(Clone, Copy, Debug)]
pub struct DeviceMatrix {
    pub(super) ptr: DevicePtr<f32>,
    pub(super) rows: usize,
    pub(super) cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl DeviceMatrix {
    /// The contiguous row-major [rows × cols] matrix at `ptr`.
    pub fn new(ptr: DevicePtr<f32>, rows: usize, cols: usize) -> DeviceMatrix {
        DeviceMatrix {
            ptr,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same memory.
    pub fn t(self) -> DeviceMatrix {
        DeviceMatrix {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// Rows and columns of C one block computes (TILE in kernels/matmul.cu).
const TILE: u32 = 64;

impl Gpu {
    /// out [m × n, row-major, contiguous] = a · b, or out += a · b when `accumulate`.
    pub fn matmul(
        &self,
        out: DevicePtr<f32>,
        accumulate: bool,
        a: DeviceMatrix,
        b: DeviceMatrix,
    ) -> GpuResult<()> {
        assert_eq!(a.cols, b.rows, "inner dimensions differ");
        let (m, n, k) = (a.rows, b.cols, a.cols);
        if m == 0 || n == 0 {
            return Ok(());
        }
        assert!(
            m.max(k) < (i32::MAX - 64) as usize && n <= 65535 * 64,
            "a {m}×{k} by {k}×{n} product is too large for one launch"
        );
        // Row tiles along x, whose grid limit is 2³¹ − 1: m (batch × steps) is the dimension
        // that grows; n is a layer's width, well within y's 65,535 tiles.
        let config = LaunchConfig {
            grid_dim: ((m as u32).div_ceil(TILE), (n as u32).div_ceil(TILE), 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            Kernel::Matmul,
            config,
            a.ptr,
            a.row_stride as i64,
            a.col_stride as i64,
            b.ptr,
            b.row_stride as i64,
            b.col_stride as i64,
            out,
            n as i64,
            m as i32,
            n as i32,
            k as i32,
            i32::from(accumulate),
        )
    }
}

/// Row chunks of the column sums: 64 rows each, at most 128 chunks.
fn column_sum_chunks(rows: usize) -> usize {
    rows.div_ceil(64).clamp(1, 128)
}

/// Floats of scratch [`Gpu::column_sums`] needs for `rows` × `cols`.
pub fn column_sums_scratch(rows: usize, cols: usize) -> usize {
    column_sum_chunks(rows) * cols
}

impl Gpu {
    /// out[r] = a (+ b) for `rows` rows of `cols`.
    pub fn broadcast_rows(
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
    pub fn column_sums(
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
