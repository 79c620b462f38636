//! Planning the persistent recurrence (kernels/lstm.cu's `lstm_*_persistent`): how H hidden units
//! split over blocks that must all be resident at once, and whether the device can hold them.

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::runtime::{driver, Gpu, GpuResult};

/// How a persistent recurrence is laid out for H units: blocks of `units_per_block` units and
/// `threads` threads (`threads / units_per_block` batch rows at a time), and the dynamic shared
/// memory of each kernel.
#[derive(Clone, Copy, Debug)]
pub struct PersistentPlan {
    pub(super) units_per_block: usize,
    pub(super) blocks: usize,
    pub(super) threads: usize,
    pub(super) forward_shared_bytes: usize,
    pub(super) backward_shared_bytes: usize,
}

/// Columns of a staging tile in kernels/lstm.cu (SLICE_K).
const SLICE_K: usize = 32;
/// Shared memory a block may use without opting in to more.
const SHARED_LIMIT: usize = 48 * 1024;

impl PersistentPlan {
    /// The launch of a persistent kernel needing `shared_bytes` of dynamic shared memory.
    pub(super) fn config(&self, shared_bytes: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (self.blocks as u32, 1, 1),
            block_dim: (self.threads as u32, 1, 1),
            shared_mem_bytes: shared_bytes as u32,
        }
    }
}

impl Gpu {
    /// The persistent layout for H = `units`: one block per multiprocessor (or fewer), up to the
    /// kernels' block size each. None, and the recurrence runs a step per launch, where
    /// cooperative launches are unavailable, a block would hold more units than threads, the W_hh
    /// slices do not fit in shared memory, or not every block can be resident.
    pub fn persistent_plan(&self, units: usize) -> GpuResult<Option<PersistentPlan>> {
        let Some(max_blocks) = self.persistent_blocks.filter(|_| units > 0) else {
            return Ok(None);
        };
        let units_per_block = units.div_ceil(max_blocks);
        let threads = Kernel::LstmForwardPersistent
            .block_threads()
            .min(Kernel::LstmBackwardPersistent.block_threads()) as usize;
        if units_per_block > threads {
            return Ok(None);
        }
        let rows_per_chunk = threads / units_per_block;
        let tile = rows_per_chunk * (SLICE_K + 1);
        let plan = PersistentPlan {
            units_per_block,
            blocks: units.div_ceil(units_per_block),
            threads: rows_per_chunk * units_per_block,
            forward_shared_bytes: 4 * (4 * units_per_block * (units + 1) + tile),
            backward_shared_bytes: 4 * (units_per_block * (4 * units + 1) + tile),
        };
        let fits = plan.forward_shared_bytes.max(plan.backward_shared_bytes) <= SHARED_LIMIT;
        Ok((fits && self.all_resident(&plan)?).then_some(plan))
    }

    /// Whether every block of both persistent kernels can be resident at once, as a cooperative
    /// launch requires (another context or an MPS limit can take multiprocessors away).
    fn all_resident(&self, plan: &PersistentPlan) -> GpuResult<bool> {
        let kernels = [
            (Kernel::LstmForwardPersistent, plan.forward_shared_bytes),
            (Kernel::LstmBackwardPersistent, plan.backward_shared_bytes),
        ];
        for (kernel, shared) in kernels {
            let Some(function) = self.function(kernel) else {
                return Ok(true); // the host runs every block at once
            };
            self.bind()?; // cudarc's occupancy call does not
            let per_multiprocessor = function
                .occupancy_max_active_blocks_per_multiprocessor(plan.threads as u32, shared, None)
                .map_err(driver("the occupancy of the persistent kernels"))?;
            if per_multiprocessor as usize * self.persistent_blocks.unwrap_or(0) < plan.blocks {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
