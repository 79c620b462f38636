//! Planning the persistent recurrence (kernels/lstm.cu's `lstm_*_persistent`): how H hidden units
//! split over blocks that must all be resident at once, how each block's rows and k range split
//! over its threads, whether that fits the device's shared memory, and if not, why not.

use std::fmt;

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::runtime::{driver, Gpu, GpuResult};

/// How a persistent recurrence is laid out for H units: `blocks` blocks of `units_per_block`
/// units each, and per kernel the chunk of rows, k split and shared memory of its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistentPlan {
    pub units_per_block: usize,
    pub blocks: usize,
    pub forward: ChunkLayout,
    pub backward: ChunkLayout,
}

/// One persistent kernel's block: `rows_per_chunk` batch rows at a time, the k range of the
/// recurrent product split into `k_split` shares, `threads` threads, `shared_bytes` of dynamic
/// shared memory (W_hh's slice, the staged rows, the partial sums).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    pub rows_per_chunk: usize,
    pub k_split: usize,
    pub threads: usize,
    pub shared_bytes: usize,
}

/// Rows per thread of each product (FORWARD_ROWS, BACKWARD_ROWS).
const FORWARD_ROWS: usize = 2;
const BACKWARD_ROWS: usize = 4;
/// The most rows a chunk stages: B = 64, the reference batch, in one chunk.
const MAX_ROWS_PER_CHUNK: usize = 64;
/// The fewest k a share covers, so that a thread's FMA chain outweighs adding its partial sum.
const MIN_SHARE_WIDTH: usize = 16;

/// The persistent kernels' block size (their `__launch_bounds__`).
fn block_threads() -> usize {
    let kernels = [
        Kernel::LstmForwardPersistent,
        Kernel::LstmBackwardPersistent,
    ];
    kernels
        .map(Kernel::block_threads)
        .into_iter()
        .min()
        .unwrap() as usize
}

/// A product's k range, zero-padded to whole float4s in every share (`padded_width`).
fn padded_width(width: usize, k_split: usize) -> usize {
    width.next_multiple_of(4 * k_split)
}

/// The shared-memory row stride of padded rows: an odd number of float4s (`shared_stride`).
fn shared_stride(padded: usize) -> usize {
    match (padded / 4) % 2 {
        0 => padded + 4,
        _ => padded,
    }
}

impl ChunkLayout {
    /// The largest chunk (a power of two from [`MAX_ROWS_PER_CHUNK`] down to `rows_per_thread`
    /// rows, so that a power-of-two batch splits evenly) whose block fits `shared_limit` bytes,
    /// for a product of `width` k, `w_rows` resident rows of W_hh and `outputs` sums per (row,
    /// unit); None where not even the smallest fits.
    fn fit(
        width: usize,
        (w_rows, outputs): (usize, usize),
        rows_per_thread: usize,
        units_per_block: usize,
        shared_limit: usize,
    ) -> Option<ChunkLayout> {
        let chunks = std::iter::successors(Some(MAX_ROWS_PER_CHUNK), |rows| Some(rows / 2));
        let threads = block_threads();
        chunks
            .take_while(|&rows| rows >= rows_per_thread)
            .filter_map(|rows_per_chunk| {
                let groups = rows_per_chunk / rows_per_thread * units_per_block;
                if groups > threads {
                    return None;
                }
                // As many shares as threads allow (a power of two), each at least MIN_SHARE_WIDTH.
                let most = (threads / groups).min((width / MIN_SHARE_WIDTH).max(1));
                let k_split = 1 << most.ilog2();
                let stride = shared_stride(padded_width(width, k_split));
                let floats = (w_rows + rows_per_chunk) * stride
                    + k_split * rows_per_chunk * units_per_block * outputs;
                Some(ChunkLayout {
                    rows_per_chunk,
                    k_split,
                    threads: groups * k_split,
                    shared_bytes: 4 * floats,
                })
            })
            .find(|layout| layout.shared_bytes <= shared_limit)
    }

    /// The launch of a persistent kernel over `blocks` blocks.
    pub(super) fn config(&self, blocks: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (self.threads as u32, 1, 1),
            shared_mem_bytes: self.shared_bytes as u32,
        }
    }
}

impl PersistentPlan {
    /// The layout for H = `units` over at most `max_blocks` blocks (one per multiprocessor) with
    /// `shared_limit` bytes of shared memory per block, or why there is none: each kernel needs
    /// its W_hh slice and a chunk of at least one thread's rows in shared memory.
    pub fn fit(units: usize, max_blocks: usize, shared_limit: usize) -> Result<Self, String> {
        assert!(units > 0 && max_blocks > 0, "no units or no blocks");
        let units_per_block = units.div_ceil(max_blocks);
        let too_big = |kernel: &str, w_rows: usize, width: usize, rows: usize| {
            format!(
                "{kernel}: W_hh's slice ({w_rows}×{width}) and {rows} staged rows need more than \
                 the {} KB of shared memory a block may have",
                shared_limit / 1024
            )
        };
        let forward = ChunkLayout::fit(
            units,
            (4 * units_per_block, 4),
            FORWARD_ROWS,
            units_per_block,
            shared_limit,
        )
        .ok_or_else(|| too_big("forward", 4 * units_per_block, units, FORWARD_ROWS))?;
        let backward = ChunkLayout::fit(
            4 * units,
            (units_per_block, 1),
            BACKWARD_ROWS,
            units_per_block,
            shared_limit,
        )
        .ok_or_else(|| too_big("backward", units_per_block, 4 * units, BACKWARD_ROWS))?;
        Ok(PersistentPlan {
            units_per_block,
            blocks: units.div_ceil(units_per_block),
            forward,
            backward,
        })
    }
}

impl fmt::Display for PersistentPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kernel = |layout: &ChunkLayout| {
            format!(
                "{} rows × {} k shares, {} threads, {:.1} KB shared",
                layout.rows_per_chunk,
                layout.k_split,
                layout.threads,
                layout.shared_bytes as f64 / 1024.0
            )
        };
        write!(
            f,
            "{} blocks of {} units; forward {}; backward {}",
            self.blocks,
            self.units_per_block,
            kernel(&self.forward),
            kernel(&self.backward)
        )
    }
}

impl Gpu {
    /// The persistent layout for H = `units`, None where the recurrence runs a step per launch
    /// ([`Gpu::recurrence`] says why).
    pub fn persistent_plan(&self, units: usize) -> GpuResult<Option<PersistentPlan>> {
        Ok(self.recurrence(units)?.ok())
    }

    /// The persistent layout for H = `units` (one block per multiprocessor or fewer, within the
    /// shared memory a block may opt in to), or why the recurrence must run a step per launch:
    /// no cooperative launches, too little shared memory, or not every block resident at once.
    pub fn recurrence(&self, units: usize) -> GpuResult<Result<PersistentPlan, String>> {
        let Some(max_blocks) = self.persistent_blocks else {
            return Ok(Err("the device has no cooperative launches".to_string()));
        };
        if units == 0 {
            return Ok(Err("no hidden units".to_string()));
        }
        let plan = match PersistentPlan::fit(units, max_blocks, self.shared_limit) {
            Ok(plan) => plan,
            Err(why) => return Ok(Err(why)),
        };
        Ok(match self.all_resident(&plan)? {
            true => Ok(plan),
            false => Err(format!(
                "not all {} blocks can be resident at once (another context or an MPS limit)",
                plan.blocks
            )),
        })
    }

    /// Whether every block of both persistent kernels can be resident at once, as a cooperative
    /// launch requires (another context or an MPS limit can take multiprocessors away).
    fn all_resident(&self, plan: &PersistentPlan) -> GpuResult<bool> {
        let kernels = [
            (Kernel::LstmForwardPersistent, plan.forward),
            (Kernel::LstmBackwardPersistent, plan.backward),
        ];
        for (kernel, layout) in kernels {
            let Some(function) = self.function(kernel) else {
                return Ok(true); // the host runs every block at once
            };
            self.bind()?; // cudarc's occupancy call does not
            let per_multiprocessor = function
                .occupancy_max_active_blocks_per_multiprocessor(
                    layout.threads as u32,
                    layout.shared_bytes,
                    None,
                )
                .map_err(driver("the occupancy of the persistent kernels"))?;
            if per_multiprocessor as usize * self.persistent_blocks.unwrap_or(0) < plan.blocks {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
