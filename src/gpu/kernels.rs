//! The kernels of `kernels/*.cu` as the build embedded them (see `build.rs`): PTX where `nvcc`
//! was found at build time, and always the source, which NVRTC compiles at run time when no PTX
//! fits the device.

use cudarc::nvrtc::{self, CompileOptions, Ptx};

/// One `kernels/*.cu` file.
pub struct KernelFile {
    /// The file name without `.cu`.
    pub name: &'static str,
    pub source: &'static str,
    /// (virtual architecture, e.g. 80 for compute_80; PTX).
    pub ptx: &'static [(u32, &'static str)],
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// Threads per block of every kernel but the persistent ones: their `__launch_bounds__`.
pub const BLOCK_THREADS: u32 = 256;
/// The most threads per block of the persistent kernels: their `__launch_bounds__`.
pub const PERSISTENT_THREADS: u32 = 128;

/// Every entry point the engine launches, with the file that defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    AdamUpdate,
    SumSquares,
    BroadcastRows,
    ColumnSumsPartial,
    ColumnSumsFinish,
    Gemm,
    Dropout,
    SoftmaxCrossEntropy,
    EmbedInput,
    LstmCellForward,
    LstmCellBackward,
    OneHot,
    LstmForwardPersistent,
    LstmBackwardPersistent,
}

impl Kernel {
    pub const ALL: [Kernel; 14] = [
        Kernel::AdamUpdate,
        Kernel::SumSquares,
        Kernel::BroadcastRows,
        Kernel::ColumnSumsPartial,
        Kernel::ColumnSumsFinish,
        Kernel::Gemm,
        Kernel::Dropout,
        Kernel::SoftmaxCrossEntropy,
        Kernel::EmbedInput,
        Kernel::LstmCellForward,
        Kernel::LstmCellBackward,
        Kernel::OneHot,
        Kernel::LstmForwardPersistent,
        Kernel::LstmBackwardPersistent,
    ];

    /// The kernel's place in [`Kernel::ALL`].
    pub fn index(self) -> usize {
        Kernel::ALL.iter().position(|&k| k == self).unwrap()
    }

    /// Kernels with a grid-wide barrier: their blocks must all be resident at once, so they are
    /// launched cooperatively.
    pub fn is_persistent(self) -> bool {
        matches!(
            self,
            Kernel::LstmForwardPersistent | Kernel::LstmBackwardPersistent
        )
    }

    /// The block size the kernel is compiled for (`__launch_bounds__`): ptxas fits its registers
    /// to it, so no launch of at most this many threads runs out of registers.
    pub fn max_threads(self) -> u32 {
        if self.is_persistent() {
            PERSISTENT_THREADS
        } else {
            BLOCK_THREADS
        }
    }

    /// (file, function name).
    pub fn location(self) -> (&'static str, &'static str) {
        match self {
            Kernel::AdamUpdate => ("adam", "adam_update"),
            Kernel::SumSquares => ("adam", "sum_squares"),
            Kernel::BroadcastRows => ("bias", "broadcast_rows"),
            Kernel::ColumnSumsPartial => ("bias", "column_sums_partial"),
            Kernel::ColumnSumsFinish => ("bias", "column_sums_finish"),
            Kernel::Gemm => ("gemm", "gemm"),
            Kernel::Dropout => ("head", "dropout"),
            Kernel::SoftmaxCrossEntropy => ("head", "softmax_cross_entropy"),
            Kernel::EmbedInput => ("lstm", "embed_input"),
            Kernel::LstmCellForward => ("lstm", "lstm_cell_forward"),
            Kernel::LstmCellBackward => ("lstm", "lstm_cell_backward"),
            Kernel::OneHot => ("lstm", "one_hot"),
            Kernel::LstmForwardPersistent => ("lstm", "lstm_forward_persistent"),
            Kernel::LstmBackwardPersistent => ("lstm", "lstm_backward_persistent"),
        }
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
pub fn compile(file: &KernelFile, arch: &'static str) -> Result<Ptx, String> {
    let options = CompileOptions {
        arch: Some(arch),
        name: Some(format!("{}.cu", file.name)),
        ..CompileOptions::default()
    };
    nvrtc::compile_ptx_with_opts(file.source, options).map_err(|e| {
        format!(
            "NVRTC could not compile kernels/{}.cu for {arch}: {e:?}",
            file.name
        )
    })
}

/// The PTX to load for a device of compute capability `capability` (10·major + minor): the
/// embedded PTX of the newest architecture the device runs, else the source compiled by NVRTC.
pub fn ptx_for(file: &KernelFile, capability: u32) -> Result<Ptx, String> {
    let embedded = file
        .ptx
        .iter()
        .filter(|(arch, _)| *arch <= capability)
        .max_by_key(|(arch, _)| *arch);
    match embedded {
        Some((_, ptx)) => Ok(Ptx::from_src(*ptx)),
        None if nvrtc_available() => compile(file, nvrtc_arch(capability)),
        None => Err(format!(
            "this binary has no PTX for compute capability {}.{} and the NVRTC library was not \
             found to compile kernels/{}.cu (install the CUDA toolkit or the nvidia-cuda-nvrtc \
             wheel and put its lib/ on LD_LIBRARY_PATH)",
            capability / 10,
            capability % 10,
            file.name
        )),
    }
}
