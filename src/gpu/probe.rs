//! The launcher of kernels/probe.cu, which checks the launch path itself (see that file).

use super::kernels::Kernel;
use super::launch::{elementwise, launch};
use super::runtime::{Gpu, GpuResult};

impl Gpu {
    /// first, first + 1, …, first + n − 1, written by one thread each.
    pub fn probe_indices(&self, n: usize, first: u32) -> GpuResult<Vec<u32>> {
        let out = self.alloc::<u32>(n)?;
        let config = elementwise(Kernel::ProbeIndices, n);
        launch!(
            self,
            Kernel::ProbeIndices,
            config,
            out.ptr(),
            n as i32,
            first
        )?;
        let mut indices = vec![0; n];
        self.download(out.ptr(), &mut indices)?;
        Ok(indices)
    }
}
