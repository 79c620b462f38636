//! The host emulation, for tests on machines without a GPU: kernels/*.cu compiled as C++ into a
//! shared library (tests/host_cuda, with the kernel registry build.rs generates), loaded here.
//! Buffers live in host memory; launches run the very kernels a GPU runs, on CPU threads, as
//! the registry says each kernel's threads must run. Slow (a block at a time), but the same
//! launches as on a GPU.

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::path::Path;

use cudarc::driver::LaunchConfig;

use super::kernels::Kernel;
use super::runtime::{Gpu, GpuResult};
use crate::backend::EngineError;

/// `host_launch` of tests/host_cuda/kernels_on_host.cpp: cuLaunchKernel's arguments.
type HostLaunch = unsafe extern "C" fn(
    *const c_char,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    *mut *mut c_void,
) -> c_int;

/// The loaded library and its launch function.
pub(super) struct HostLibrary {
    _library: libloading::Library,
    launch: HostLaunch,
}

/// The engine's GPU operations on the host: `library` is kernels/*.cu compiled as C++ by
/// tests/host_cuda.
pub fn open_on_host(library: &Path) -> GpuResult<Gpu> {
    let fail = |e: libloading::Error| {
        EngineError::KernelLoad(format!("loading {}: {e}", library.display()))
    };
    // SAFETY: the library is ours, built from kernels/*.cu, with no initialisers beyond C++'s.
    let loaded = unsafe { libloading::Library::new(library) }.map_err(fail)?;
    // SAFETY: host_launch has the HostLaunch signature (kernels_on_host.cpp).
    let launch = *unsafe { loaded.get::<HostLaunch>(b"host_launch") }.map_err(fail)?;
    let description = format!("kernels on the host ({})", library.display());
    Ok(Gpu::on_host(
        HostLibrary {
            _library: loaded,
            launch,
        },
        description,
    ))
}

impl HostLibrary {
    /// Runs `kernel` as [`Gpu::launch`] does, or says why not.
    ///
    /// # Safety
    /// As [`Gpu::launch`]: `args` match the kernel's parameters, and the grid the buffers.
    pub(super) unsafe fn launch(
        &self,
        kernel: Kernel,
        config: LaunchConfig,
        args: &mut [*mut c_void],
    ) -> Result<(), String> {
        let (grid, block) = (config.grid_dim, config.block_dim);
        let name = CString::new(kernel.name()).expect("no NUL in a kernel name");
        let status = (self.launch)(
            name.as_ptr(),
            grid.0,
            grid.1,
            grid.2,
            block.0,
            block.1,
            block.2,
            config.shared_mem_bytes,
            args.as_mut_ptr(),
        );
        match status {
            0 => Ok(()),
            _ => Err("the host library does not have it".to_string()),
        }
    }
}
