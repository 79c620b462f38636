//! Matrix products on the device (kernels/matmul.cu), as [`crate::cpu`]'s `matmul`: strided
//! views, so a transpose costs nothing.

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::launch::launch;
use super::runtime::{DevicePtr, Gpu, GpuResult};

/// A matrix view into device memory: element (r, c) at `ptr + (r·row_stride + c·col_stride)`.
#[derive(Clone, Copy, Debug)]
pub(super) struct DeviceMatrix {
    pub(super) ptr: DevicePtr<f32>,
    pub(super) rows: usize,
    pub(super) cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl DeviceMatrix {
    /// The contiguous row-major [rows × cols] matrix at `ptr`.
    pub(super) fn new(ptr: DevicePtr<f32>, rows: usize, cols: usize) -> DeviceMatrix {
        DeviceMatrix {
            ptr,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    pub(super) fn t(self) -> DeviceMatrix {
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
    pub(super) fn matmul(
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
