//! Adam on the device (kernels/adam.cu), as `cpu::adam`'s `Adam::step` and `adam_update`: the
//! global gradient norm when clipping, then one update over the flat parameter buffer.

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::launch::{elementwise, launch};
use super::runtime::{Buffer, DevicePtr, Gpu, GpuResult};
use super::CudaBackend;

/// Blocks of the global-norm reduction (each sums a grid-strided share of the gradient).
pub(super) const NORM_BLOCKS: usize = 256;

impl Gpu {
    /// Σ g² over `n` floats, block sums added on the host in order.
    pub fn sum_squares(
        &self,
        g: DevicePtr<f32>,
        n: usize,
        block_sums: &Buffer<f64>,
    ) -> GpuResult<f64> {
        let blocks = block_sums.len();
        let config = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (Kernel::SumSquares.block_threads(), 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            Kernel::SumSquares,
            config,
            g,
            n as i32,
            block_sums.ptr()
        )?;
        let mut sums = vec![0.0f64; blocks];
        self.download(block_sums.ptr(), &mut sums)?;
        Ok(sums.iter().sum())
    }

    /// One Adam update over `n` parameters.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_update(
        &self,
        theta: DevicePtr<f32>,
        grads: DevicePtr<f32>,
        (m, v): (DevicePtr<f32>, DevicePtr<f32>),
        n: usize,
        grad_scale: f32,
        lr_t: f32,
        (one_minus_beta1, one_minus_beta2, epsilon): (f32, f32, f32),
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::AdamUpdate,
            elementwise(Kernel::AdamUpdate, n),
            theta,
            grads,
            m,
            v,
            n as i32,
            grad_scale,
            lr_t,
            one_minus_beta1,
            one_minus_beta2,
            epsilon,
        )
    }
}

impl CudaBackend {
    /// One optimiser step from the gradient in `model.grads`.
    pub(super) fn adam_update(&mut self) -> GpuResult<()> {
        let (gpu, n) = (&self.model.gpu, self.model.config.num_params());
        let grads = self.model.grads.ptr();
        let scale = match self.adam.clip {
            Some(_) => {
                let norm = gpu.sum_squares(grads, n, &self.norm_sums)?.sqrt() as f32;
                self.adam.clip_scale(norm)
            }
            None => 1.0,
        };
        self.adam.state.step += 1;
        let lr_t = self.adam.step_size(self.adam.state.step);
        let adam = &self.adam;
        gpu.adam_update(
            self.model.params.ptr(),
            grads,
            (self.adam_m.ptr(), self.adam_v.ptr()),
            n,
            scale,
            lr_t,
            (1.0 - adam.beta1, 1.0 - adam.beta2, adam.epsilon),
        )
    }
}
