//! Kernels one at a time, on every engine (see tests/engines), as llm.c's dev/cuda tests do.

mod common;
#[macro_use]
mod engines;

test_engines! {
    /// The kernel table, the argument packing and the grid reach a kernel: kernels/probe.cu,
    /// over a grid that does not divide into whole blocks.
    fn probe_writes_each_thread_index(gpu) {
        let n = 1000;
        let indices = gpu.probe_indices(n, 7).unwrap();
        assert_eq!(indices, (7..7 + n as u32).collect::<Vec<_>>());
    }
}
