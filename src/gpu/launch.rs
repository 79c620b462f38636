//! How a kernel gets its arguments and its grid: each argument packed into a slot as
//! cuLaunchKernel takes it, and the launch configurations the launchers share.

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::runtime::DevicePtr;

/// A kernel argument of C type int, unsigned, long long, unsigned long long, float or a pointer,
/// held in an 8-byte slot whose first bytes are the value: the driver reads sizeof(parameter)
/// bytes from each argument's address.
pub(super) trait KernelArg: Copy {
    fn slot(self) -> u64;
}

impl<T> KernelArg for DevicePtr<T> {
    fn slot(self) -> u64 {
        self.address()
    }
}

/// A pointer the kernel accepts null for.
impl<T> KernelArg for Option<DevicePtr<T>> {
    fn slot(self) -> u64 {
        self.map_or(0, DevicePtr::address)
    }
}

impl KernelArg for u64 {
    fn slot(self) -> u64 {
        self
    }
}

impl KernelArg for i64 {
    fn slot(self) -> u64 {
        self as u64
    }
}

impl KernelArg for u32 {
    fn slot(self) -> u64 {
        u64::from(self)
    }
}

impl KernelArg for i32 {
    fn slot(self) -> u64 {
        u64::from(self as u32)
    }
}

impl KernelArg for f32 {
    fn slot(self) -> u64 {
        u64::from(self.to_bits())
    }
}

// The low-order bytes of a slot come first only on a little-endian machine.
const _: () = assert!(cfg!(target_endian = "little"));

/// Launches a kernel: each argument goes into a slot that lives until the launch, and the kernel
/// gets the slots' addresses, as cuLaunchKernel takes them.
macro_rules! launch {
    ($gpu:expr, $kernel:expr, $config:expr, $($arg:expr),+ $(,)?) => {{
        use $crate::gpu::launch::KernelArg as _;
        let mut slots = [$(($arg).slot()),+];
        let mut pointers: Vec<*mut std::ffi::c_void> = slots
            .iter_mut()
            .map(|slot| slot as *mut u64 as *mut std::ffi::c_void)
            .collect();
        // SAFETY: each launcher passes exactly the kernel's parameters, in order and with the C
        // types, and sizes its grid to the buffers it passes.
        unsafe { $gpu.launch($kernel, $config, &mut pointers) }
    }};
}
pub(super) use launch;

/// One thread per element of `n`, in blocks of `kernel`'s size.
pub(super) fn elementwise(kernel: Kernel, n: usize) -> LaunchConfig {
    // The kernels index elements with a 32-bit int.
    assert!(
        n <= i32::MAX as usize,
        "{n} elements are too many for one launch"
    );
    let threads = kernel.block_threads();
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(threads).max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}
