//! The kernels of `kernels/*.cu` as the build embedded them (see `build.rs`): the one kernel
//! table, PTX where `nvcc` was found at build time, and always the source, which NVRTC compiles
//! at run time when no PTX fits the device.

use cudarc::nvrtc::{self, CompileOptions, Ptx};

use crate::backend::EngineError;

/// One `kernels/*.cu` file.
pub struct KernelFile {
    /// The file name without `.cu`.
    pub name: &'static str,
    pub source: &'static str,
    /// (virtual architecture, e.g. 80 for compute_80; PTX).
    pub ptx: &'static [(u32, &'static str)],
}

/// The barrier a kernel's threads wait at, which decides how they must be scheduled: build.rs
/// derives it from the kernel's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// None: every thread runs on its own.
    Unsynchronised,
    /// `__syncthreads`: a block's threads run together.
    Block,
    /// A grid-wide barrier (the persistent kernels): every block must be resident at once, so
    /// the kernel is launched cooperatively.
    Grid,
}

/// What build.rs read from a kernel's signature.
struct KernelSpec {
    file: &'static str,
    name: &'static str,
    block_threads: u32,
    barrier: Barrier,
}

// `KERNEL_FILES`, the `Kernel` enum with `Kernel::ALL`, and `SPECS` (in `Kernel::ALL`'s order).
include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The host emulation's registry of kernels (tests/host_cuda/kernels_on_host.cpp includes it).
pub const HOST_REGISTRY_DIR: &str = env!("OUT_DIR");

impl Kernel {
    fn spec(self) -> &'static KernelSpec {
        &SPECS[self as usize]
    }

    /// The kernel's place in [`Kernel::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The file that defines it: kernels/`file`.cu.
    pub fn file(self) -> &'static str {
        self.spec().file
    }

    /// Its function name in the file.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The block size the kernel is compiled for (`__launch_bounds__`): ptxas fits its registers
    /// to it, so no launch of at most this many threads runs out of registers.
    pub fn block_threads(self) -> u32 {
        self.spec().block_threads
    }

    pub fn barrier(self) -> Barrier {
        self.spec().barrier
    }

    /// Whether it waits at a grid-wide barrier, so is launched cooperatively.
    pub fn is_persistent(self) -> bool {
        self.barrier() == Barrier::Grid
    }
}

/// The embedded kernel file called `name`.
pub fn file(name: &str) -> &'static KernelFile {
    KERNEL_FILES
        .iter()
        .find(|file| file.name == name)
        .unwrap_or_else(|| panic!("no kernels/{name}.cu was embedded"))
}

/// Whether the NVRTC library can be loaded (it is looked up as cudarc does, e.g. on
/// `LD_LIBRARY_PATH`).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library by its usual names.
    unsafe { nvrtc::sys::is_culib_present() }
}

/// The NVRTC virtual architecture for a device of compute capability `major.minor`
/// (written `10·major + minor`): the newest of ours it can run.
pub fn nvrtc_arch(capability: u32) -> &'static str {
    match capability {
        90.. => "compute_90",
        80.. => "compute_80",
        // CUDA 13's NVRTC starts at Turing (7.5).
        75.. => "compute_75",
        _ => "compute_70",
    }
}

/// Compiles a kernel file with NVRTC for `arch` (e.g. "compute_90").
pub fn compile(file: &KernelFile, arch: &'static str) -> Result<Ptx, EngineError> {
    let options = CompileOptions {
        arch: Some(arch),
        name: Some(format!("{}.cu", file.name)),
        ..CompileOptions::default()
    };
    nvrtc::compile_ptx_with_opts(file.source, options).map_err(|e| {
        EngineError::KernelLoad(format!(
            "NVRTC could not compile kernels/{}.cu for {arch}: {e:?}",
            file.name
        ))
    })
}

/// The PTX to load for a device of compute capability `capability` (10·major + minor), and where
/// it came from: the embedded PTX of the newest architecture the device runs, else the source
/// compiled by NVRTC.
pub fn ptx_for(file: &KernelFile, capability: u32) -> Result<(Ptx, String), EngineError> {
    let embedded = file
        .ptx
        .iter()
        .filter(|(arch, _)| *arch <= capability)
        .max_by_key(|(arch, _)| *arch);
    match embedded {
        Some((arch, ptx)) => Ok((Ptx::from_src(*ptx), format!("embedded PTX compute_{arch}"))),
        None if nvrtc_available() => {
            let arch = nvrtc_arch(capability);
            Ok((
                compile(file, arch)?,
                format!("NVRTC {arch} (no embedded PTX fits)"),
            ))
        }
        None => Err(EngineError::KernelLoad(format!(
            "this binary has no PTX for compute capability {}.{} and the NVRTC library was not \
             found to compile kernels/{}.cu (install the CUDA toolkit or the nvidia-cuda-nvrtc \
             wheel and put its lib/ on LD_LIBRARY_PATH)",
            capability / 10,
            capability % 10,
            file.name
        ))),
    }
}
