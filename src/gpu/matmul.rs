//! Matrix products on the device (kernels/matmul.cu), as `cpu::matmul`: strided views, so a
//! transpose costs nothing; the weight gradients, long sums of outer products split across the
//! device (split-K); and the biases around them, `broadcast_rows` before a product is added and
//! their gradient `column_sums`. Both the LSTM layers and the head use them.

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

/// Rows and columns of a weight gradient one block computes (WG_TILE in kernels/matmul.cu), and
/// the rows it reads at a time (WG_SLICE).
const WEIGHT_GRADIENT_TILE: usize = 128;
const WEIGHT_GRADIENT_SLICE: usize = 8;

/// Fewest rows a split of a weight gradient sums: below that, loading its tiles and writing its
/// partial cost more than its share of the sum.
const MIN_ROWS_PER_SPLIT: usize = 64;

impl Gpu {
    /// How many splits a weight gradient [m × n] over `k` rows wants: enough that its blocks
    /// cover every multiprocessor, none shorter than [`MIN_ROWS_PER_SPLIT`]. Grows with k.
    fn wanted_splits(&self, m: usize, n: usize, k: usize) -> usize {
        let tiles = m.div_ceil(WEIGHT_GRADIENT_TILE) * n.div_ceil(WEIGHT_GRADIENT_TILE);
        self.multiprocessors
            .div_ceil(tiles)
            .min(k.div_ceil(MIN_ROWS_PER_SPLIT))
            .max(1)
    }

    /// How a weight gradient [m × n] over `k` rows is split: (splits, rows per split), each a
    /// whole number of slices, at most [`Gpu::wanted_splits`] of them.
    pub fn weight_gradient_splits(&self, m: usize, n: usize, k: usize) -> (usize, usize) {
        let rows_per_split = k
            .div_ceil(self.wanted_splits(m, n, k))
            .next_multiple_of(WEIGHT_GRADIENT_SLICE)
            .max(WEIGHT_GRADIENT_SLICE);
        (k.div_ceil(rows_per_split).max(1), rows_per_split)
    }

    /// Floats of scratch [`Gpu::weight_gradient`] needs for an [m × n] gradient over any number
    /// of rows up to `k`.
    pub fn weight_gradient_scratch(&self, m: usize, n: usize, k: usize) -> usize {
        match self.wanted_splits(m, n, k) {
            1 => 0,
            splits => splits * m * n,
        }
    }

    /// out [m × n] = d_outᵀ · x = Σ_r d_out[r]ᵀ·x[r] over the k rows of d_out [k × m] and
    /// x [k × n] (views with contiguous rows): the gradient of a weight W in y = x·Wᵀ. Split
    /// across the device, through `partials` (scratch of [`Gpu::weight_gradient_scratch`]
    /// floats), then added in a fixed order: the same bits on every run. On TF32 tensor cores
    /// where [`Gpu::use_tf32`] asked.
    pub fn weight_gradient(
        &self,
        out: DevicePtr<f32>,
        d_out: DeviceMatrix,
        x: DeviceMatrix,
        partials: &Buffer<f32>,
    ) -> GpuResult<()> {
        assert_eq!(d_out.rows, x.rows, "d_out and x have different rows");
        assert!(
            d_out.col_stride == 1 && x.col_stride == 1,
            "weight gradients read whole rows"
        );
        let (m, n, k) = (d_out.cols, x.cols, x.rows);
        assert!(
            k < i32::MAX as usize && m * n < i32::MAX as usize,
            "a {m}×{n} weight gradient over {k} rows is too large for one launch"
        );
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            return self.zero(out, m * n);
        }
        let (splits, rows_per_split) = self.weight_gradient_splits(m, n, k);
        let target = match splits {
            1 => out,
            _ => {
                assert!(
                    partials.len() >= splits * m * n,
                    "weight-gradient scratch too small"
                );
                partials.ptr()
            }
        };
        let tile = WEIGHT_GRADIENT_TILE as u32;
        let config = LaunchConfig {
            grid_dim: (
                (m as u32).div_ceil(tile),
                (n as u32).div_ceil(tile),
                splits as u32,
            ),
            block_dim: (Kernel::WeightGradient.block_threads(), 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            Kernel::WeightGradient,
            config,
            d_out.ptr,
            d_out.row_stride as i64,
            x.ptr,
            x.row_stride as i64,
            target,
            m as i32,
            n as i32,
            k as i32,
            rows_per_split as i32,
            i32::from(self.tf32),
        )?;
        if splits > 1 {
            self.sum_chunks(partials.ptr(), out, splits, m * n)?;
        }
        Ok(())
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
        self.sum_chunks(partial.ptr(), out, chunks, cols)
    }

    /// out[c] = Σ_i chunks[i][c] for i in order: the deterministic second pass of the column
    /// sums, the weight gradients and the fused head's dense gradients.
    pub(super) fn sum_chunks(
        &self,
        chunks: DevicePtr<f32>,
        out: DevicePtr<f32>,
        count: usize,
        cols: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::ColumnSumsFinish,
            elementwise(Kernel::ColumnSumsFinish, cols),
            chunks,
            out,
            count as i32,
            cols as i32,
        )
    }
}
