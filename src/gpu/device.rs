//! The GPU as the engine uses it: one context and one stream (so every operation runs in issue
//! order), the loaded kernels, device buffers addressed by raw pointers, and one typed launch
//! function per kernel, each matching its signature in `kernels/*.cu`.
//!
//! The same operations can also run on the host ([`open_on_host`]): the kernels compiled as C++
//! (tests/host_cuda), buffers in host memory. Tests use it to run the engine's GPU code against
//! the CPU reference on machines without a GPU.

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::path::Path;
use std::sync::Arc;

use cudarc::driver::{
    result, sys, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr,
    DeviceRepr, DriverError, LaunchConfig, ValidAsZeroBits,
};

use super::kernels::{self, Kernel, BLOCK_THREADS, PERSISTENT_THREADS};

/// An error from the driver or from loading the kernels.
pub type GpuResult<T> = Result<T, String>;

fn driver(what: &str) -> impl Fn(DriverError) -> String + '_ {
    move |e| format!("CUDA: {what}: {e}")
}

/// Opens CUDA device 0, or says why it cannot. Never panics: the driver library is probed before
/// cudarc touches it, and a driver that lacks a function cudarc expects (where cudarc panics)
/// is reported as unusable.
pub fn open() -> GpuResult<Gpu> {
    std::panic::catch_unwind(open_device).unwrap_or_else(|_| {
        Err("the CUDA driver library could not be used (see the message above)".to_string())
    })
}

fn open_device() -> GpuResult<Gpu> {
    // SAFETY: only tries to dlopen libcuda by its usual names.
    if !unsafe { sys::is_culib_present() } {
        return Err("no CUDA driver library (libcuda) was found".to_string());
    }
    let count = CudaContext::device_count().map_err(driver("counting devices"))?;
    if count < 1 {
        return Err("the CUDA driver found no device".to_string());
    }
    let ctx = CudaContext::new(0).map_err(driver("opening device 0"))?;
    // One stream orders every operation, so cudarc's cross-stream event tracking is not needed.
    // SAFETY: the engine uses this context's default stream only.
    unsafe { ctx.disable_event_tracking() };
    let (major, minor) = ctx
        .compute_capability()
        .map_err(driver("reading the compute capability"))?;
    let capability = (10 * major + minor) as u32;
    let name = ctx.name().map_err(driver("reading the device name"))?;
    let attribute = |a| {
        ctx.attribute(a)
            .map_err(driver("reading a device attribute"))
    };
    let multiprocessors =
        attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let cooperative =
        attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH)? != 0;
    let mut functions = Vec::with_capacity(Kernel::ALL.len());
    let mut modules = Vec::new();
    for kernel in Kernel::ALL {
        let (file, function) = kernel.location();
        let module = match modules.iter().find(|(name, _)| *name == file) {
            Some((_, module)) => Arc::clone(module),
            None => {
                let module = load_module(&ctx, file, capability)?;
                modules.push((file, Arc::clone(&module)));
                module
            }
        };
        let loaded = module
            .load_function(function)
            .map_err(|e| format!("CUDA: kernel {function} in kernels/{file}.cu: {e}"))?;
        functions.push(loaded);
    }
    Ok(Gpu {
        runtime: Runtime::Cuda {
            stream: ctx.default_stream(),
            ctx,
            functions,
        },
        // Without cooperative launches the persistent kernels cannot run.
        persistent_blocks: cooperative.then_some(multiprocessors as usize),
        description: format!("{name} (compute capability {major}.{minor}, {multiprocessors} SMs)"),
    })
}

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

/// The engine's GPU operations on the host: `library` is kernels/*.cu compiled as C++ by
/// tests/host_cuda (see tests/gpu.rs), and buffers live in host memory. Slow (a block at a time),
/// but the same kernels and the same launches as on a GPU.
pub fn open_on_host(library: &Path) -> GpuResult<Gpu> {
    let fail = |e: libloading::Error| format!("loading {}: {e}", library.display());
    // SAFETY: the library is ours, built from kernels/*.cu, with no initialisers beyond C++'s.
    let loaded = unsafe { libloading::Library::new(library) }.map_err(fail)?;
    // SAFETY: host_launch has the HostLaunch signature (kernels_on_host.cpp).
    let launch = *unsafe { loaded.get::<HostLaunch>(b"host_launch") }.map_err(fail)?;
    Ok(Gpu {
        runtime: Runtime::Host {
            _library: loaded,
            launch,
        },
        // The host runs every block at once; 8 makes a small model's launch a few blocks.
        persistent_blocks: Some(8),
        description: format!("kernels on the host ({})", library.display()),
    })
}

/// The module of kernel file `file`: its embedded PTX, or where the driver refuses that PTX
/// (built by an nvcc newer than the driver), the source compiled by NVRTC.
fn load_module(ctx: &Arc<CudaContext>, file: &str, capability: u32) -> GpuResult<Arc<CudaModule>> {
    let kernel_file = kernels::file(file);
    let ptx = kernels::ptx_for(kernel_file, capability)?;
    match ctx.load_module(ptx) {
        Ok(module) => Ok(module),
        Err(e) if kernels::nvrtc_available() && !kernel_file.ptx.is_empty() => {
            let ptx = kernels::compile(kernel_file, kernels::nvrtc_arch(capability))?;
            ctx.load_module(ptx).map_err(|e2| {
                format!("CUDA: loading kernels/{file}.cu: embedded PTX: {e}; NVRTC's: {e2}")
            })
        }
        Err(e) => Err(format!("CUDA: loading kernels/{file}.cu: {e}")),
    }
}

/// Which way [`Gpu::copy_bytes`] copies.
#[derive(Clone, Copy)]
enum Direction {
    ToDevice,
    ToHost,
    OnDevice,
}

/// A device allocation of `len` elements and its address.
pub(super) struct Buffer<T> {
    _memory: Memory<T>,
    ptr: u64,
    len: usize,
}

/// What owns a buffer's memory (it is freed when the buffer drops).
enum Memory<T> {
    Cuda {
        _slice: CudaSlice<T>,
    },
    /// 8-byte words, aligned for every element type the engine uses.
    Host {
        _words: Vec<u64>,
    },
}

impl<T> Buffer<T> {
    /// The address of element `i` (`i == len` is the end).
    pub(super) fn at(&self, i: usize) -> u64 {
        assert!(i <= self.len, "index {i} past a buffer of {}", self.len);
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }

    pub(super) fn ptr(&self) -> u64 {
        self.ptr
    }

    /// The address of elements `start .. start + len`, checked to lie inside the buffer (raw
    /// copies and kernels cannot check it).
    pub(super) fn span(&self, start: usize, len: usize) -> u64 {
        assert!(
            start + len <= self.len,
            "elements {start}..{} past a buffer of {}",
            start + len,
            self.len
        );
        self.at(start)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// A matrix view into device memory, as [`crate::cpu`]'s `Mat`: element (r, c) at
/// `ptr + (r·row_stride + c·col_stride)` floats.
#[derive(Clone, Copy, Debug)]
pub(super) struct DMat {
    pub(super) ptr: u64,
    pub(super) rows: usize,
    pub(super) cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl DMat {
    /// The contiguous row-major [rows × cols] matrix at `ptr`.
    pub(super) fn new(ptr: u64, rows: usize, cols: usize) -> DMat {
        DMat {
            ptr,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    pub(super) fn t(self) -> DMat {
        DMat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

pub struct Gpu {
    runtime: Runtime,
    /// The most blocks a persistent kernel may use, one per multiprocessor; None where
    /// cooperative launches are not supported.
    persistent_blocks: Option<usize>,
    description: String,
}

/// How a persistent recurrence is laid out for H units: blocks of `units_per_block` units and
/// `threads` threads (`threads / units_per_block` batch rows at a time), and the dynamic shared
/// memory of each kernel.
#[derive(Clone, Copy, Debug)]
pub(super) struct PersistentPlan {
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

enum Runtime {
    Cuda {
        ctx: Arc<CudaContext>,
        stream: Arc<CudaStream>,
        /// Indexed like [`Kernel::ALL`].
        functions: Vec<CudaFunction>,
    },
    Host {
        _library: libloading::Library,
        launch: HostLaunch,
    },
}

/// A kernel argument of C type int, long long, unsigned long long (and pointers, as u64) or float,
/// held in an 8-byte slot whose first bytes are the value: the driver reads sizeof(parameter)
/// bytes from each argument's address.
trait KernelArg: Copy {
    fn slot(self) -> u64;
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
        let mut slots = [$(KernelArg::slot($arg)),+];
        let mut pointers: Vec<*mut c_void> =
            slots.iter_mut().map(|slot| slot as *mut u64 as *mut c_void).collect();
        // SAFETY: each caller below passes exactly the kernel's parameters, in order and with
        // the C types (pointers as u64), and sizes its grid to the buffers it passes.
        unsafe { $gpu.launch($kernel, $config, &mut pointers) }
    }};
}

fn elementwise(n: usize) -> LaunchConfig {
    // The kernels index elements with a 32-bit int.
    assert!(
        n <= i32::MAX as usize,
        "{n} elements are too many for one launch"
    );
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(BLOCK_THREADS).max(1), 1, 1),
        block_dim: (BLOCK_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Gpu {
    /// The device's name and compute capability.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether the kernels run on the host ([`open_on_host`]) rather than a GPU.
    pub fn is_host(&self) -> bool {
        matches!(self.runtime, Runtime::Host { .. })
    }

    /// Runs `kernel` on `config`'s grid with `args` (pointers to each argument).
    ///
    /// # Safety
    /// `args` must match the kernel's parameters, and the grid the buffers they point to.
    unsafe fn launch(
        &self,
        kernel: Kernel,
        config: LaunchConfig,
        args: &mut [*mut c_void],
    ) -> GpuResult<()> {
        let failed = |e: String| format!("CUDA: launching {:?}: {e}", kernel);
        let (grid, block) = (config.grid_dim, config.block_dim);
        assert!(
            block.0 * block.1 * block.2 <= kernel.max_threads(),
            "{kernel:?} is compiled for at most {} threads per block, not {block:?}",
            kernel.max_threads()
        );
        match &self.runtime {
            Runtime::Cuda {
                stream, functions, ..
            } => {
                self.bind()?;
                let function = functions[kernel.index()].cu_function();
                let (shared, stream) = (config.shared_mem_bytes, stream.cu_stream());
                if kernel.is_persistent() {
                    result::launch_cooperative_kernel(function, grid, block, shared, stream, args)
                } else {
                    result::launch_kernel(function, grid, block, shared, stream, args)
                }
                .map_err(|e| failed(e.to_string()))
            }
            Runtime::Host { launch, .. } => {
                let name = CString::new(kernel.location().1).expect("no NUL in a kernel name");
                let status = launch(
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
                    _ => Err(failed("the host library does not have it".to_string())),
                }
            }
        }
    }

    /// Makes the context current on this thread, as cudarc's own calls do, before a raw driver
    /// call.
    fn bind(&self) -> GpuResult<()> {
        match &self.runtime {
            Runtime::Cuda { ctx, .. } => {
                ctx.bind_to_thread().map_err(driver("binding the context"))
            }
            Runtime::Host { .. } => Ok(()),
        }
    }

    pub(super) fn alloc<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> GpuResult<Buffer<T>> {
        // A zero-length allocation has no address; keep one element so every buffer has one.
        let elements = len.max(1);
        let (memory, ptr) = match &self.runtime {
            Runtime::Cuda { stream, .. } => {
                let slice = stream
                    .alloc_zeros::<T>(elements)
                    .map_err(driver("allocating device memory"))?;
                let ptr = slice.device_ptr(stream).0;
                (Memory::Cuda { _slice: slice }, ptr)
            }
            Runtime::Host { .. } => {
                let words = vec![0u64; (elements * std::mem::size_of::<T>()).div_ceil(8)];
                let ptr = words.as_ptr() as u64;
                (Memory::Host { _words: words }, ptr)
            }
        };
        Ok(Buffer {
            _memory: memory,
            ptr,
            len,
        })
    }

    /// Copies `bytes` bytes from `src` to `dst` through the runtime's copy, on the one stream.
    ///
    /// # Safety
    /// Both addresses must hold `bytes` bytes; host and device addresses as `kind` says.
    unsafe fn copy_bytes(
        &self,
        dst: u64,
        src: u64,
        bytes: usize,
        kind: Direction,
    ) -> GpuResult<()> {
        self.bind()?;
        let stream = match &self.runtime {
            Runtime::Cuda { stream, .. } => stream.cu_stream(),
            Runtime::Host { .. } => {
                std::ptr::copy(src as *const u8, dst as *mut u8, bytes);
                return Ok(());
            }
        };
        match kind {
            Direction::ToDevice => {
                let host = std::slice::from_raw_parts(src as *const u8, bytes);
                result::memcpy_htod_async(dst, host, stream)
                    .map_err(driver("copying to the device"))
            }
            Direction::ToHost => {
                let host = std::slice::from_raw_parts_mut(dst as *mut u8, bytes);
                result::memcpy_dtoh_async(host, src, stream)
                    .map_err(driver("copying from the device"))?;
                self.synchronize()
            }
            Direction::OnDevice => result::memcpy_dtod_async(dst, src, bytes, stream)
                .map_err(driver("copying on the device")),
        }
    }

    /// Copies `host` to the device at `dst`.
    pub(super) fn upload<T: DeviceRepr>(&self, dst: u64, host: &[T]) -> GpuResult<()> {
        // SAFETY: callers pass an address with room for host.len() elements; the driver copies
        // pageable memory before it returns, so `host` may be dropped afterwards.
        let bytes = std::mem::size_of_val(host);
        unsafe { self.copy_bytes(dst, host.as_ptr() as u64, bytes, Direction::ToDevice) }
    }

    /// Copies from the device at `src` into `host`, after everything issued before.
    pub(super) fn download<T: DeviceRepr>(&self, src: u64, host: &mut [T]) -> GpuResult<()> {
        // SAFETY: callers pass an address holding host.len() elements; the copy is complete
        // when this returns.
        let bytes = std::mem::size_of_val(host);
        unsafe { self.copy_bytes(host.as_mut_ptr() as u64, src, bytes, Direction::ToHost) }
    }

    /// Copies `len` floats from `src` to `dst` on the device.
    pub(super) fn copy(&self, dst: u64, src: u64, len: usize) -> GpuResult<()> {
        // SAFETY: callers pass two addresses each with room for `len` floats.
        unsafe { self.copy_bytes(dst, src, len * 4, Direction::OnDevice) }
    }

    pub(super) fn synchronize(&self) -> GpuResult<()> {
        match &self.runtime {
            Runtime::Cuda { stream, .. } => stream.synchronize().map_err(driver("synchronising")),
            Runtime::Host { .. } => Ok(()),
        }
    }

    /// Zeroes `len` floats at `dst`.
    pub(super) fn zero(&self, dst: u64, len: usize) -> GpuResult<()> {
        self.bind()?;
        match &self.runtime {
            // SAFETY: callers pass an address with room for `len` floats.
            Runtime::Cuda { stream, .. } => {
                unsafe { result::memset_d8_async(dst, 0, len * 4, stream.cu_stream()) }
                    .map_err(driver("zeroing device memory"))
            }
            Runtime::Host { .. } => {
                // SAFETY: as above, in host memory.
                unsafe { std::ptr::write_bytes(dst as *mut u8, 0, len * 4) };
                Ok(())
            }
        }
    }

    /// The persistent layout for H = `units`: one block per multiprocessor (or fewer), up to
    /// [`PERSISTENT_THREADS`] threads each. None, and the recurrence runs a step per launch, where
    /// cooperative launches are unavailable, a block would hold more units than threads, the W_hh
    /// slices do not fit in shared memory, or not every block can be resident.
    pub(super) fn persistent_plan(&self, units: usize) -> GpuResult<Option<PersistentPlan>> {
        let Some(max_blocks) = self.persistent_blocks.filter(|_| units > 0) else {
            return Ok(None);
        };
        let units_per_block = units.div_ceil(max_blocks);
        let threads = PERSISTENT_THREADS as usize;
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
        let Runtime::Cuda { functions, .. } = &self.runtime else {
            return Ok(true); // the host runs every block at once
        };
        self.bind()?; // cudarc's occupancy call does not
        let kernels = [
            (Kernel::LstmForwardPersistent, plan.forward_shared_bytes),
            (Kernel::LstmBackwardPersistent, plan.backward_shared_bytes),
        ];
        for (kernel, shared) in kernels {
            let per_multiprocessor = functions[kernel.index()]
                .occupancy_max_active_blocks_per_multiprocessor(plan.threads as u32, shared, None)
                .map_err(driver("the occupancy of the persistent kernels"))?;
            if per_multiprocessor as usize * self.persistent_blocks.unwrap_or(0) < plan.blocks {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn persistent_config(plan: &PersistentPlan, shared_bytes: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (plan.blocks as u32, 1, 1),
            block_dim: (plan.threads as u32, 1, 1),
            shared_mem_bytes: shared_bytes as u32,
        }
    }

    /// All T steps of a layer's forward recurrence in one launch (gates: the input terms in,
    /// the activations out). `barrier` is two zeroed u32.
    pub(super) fn lstm_forward_persistent(
        &self,
        plan: &PersistentPlan,
        (gates, weight_hh, cell, tanh_cell, hidden): (u64, u64, u64, u64, u64),
        (steps, batch, units): (usize, usize, usize),
        barrier: &Buffer<u32>,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmForwardPersistent,
            Self::persistent_config(plan, plan.forward_shared_bytes),
            gates,
            weight_hh,
            cell,
            tanh_cell,
            hidden,
            steps as i32,
            batch as i32,
            units as i32,
            plan.units_per_block as i32,
            barrier.span(0, 2),
        )
    }

    /// All T steps of a layer's BPTT in one launch (d_hidden: ∂L/∂h from above in, the total
    /// out; d_cell zeroed on entry; d_gates out).
    pub(super) fn lstm_backward_persistent(
        &self,
        plan: &PersistentPlan,
        (gates, cell, tanh_cell, weight_hh): (u64, u64, u64, u64),
        (d_hidden, d_cell, d_gates): (u64, u64, u64),
        (steps, batch, units): (usize, usize, usize),
        barrier: &Buffer<u32>,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmBackwardPersistent,
            Self::persistent_config(plan, plan.backward_shared_bytes),
            gates,
            cell,
            tanh_cell,
            weight_hh,
            d_hidden,
            d_cell,
            d_gates,
            steps as i32,
            batch as i32,
            units as i32,
            plan.units_per_block as i32,
            barrier.span(0, 2),
        )
    }

    /// out [m × n, row-major, contiguous] = a · b, or out += a · b when `accumulate`.
    pub(super) fn gemm(&self, out: u64, accumulate: bool, a: DMat, b: DMat) -> GpuResult<()> {
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
            grid_dim: ((m as u32).div_ceil(64), (n as u32).div_ceil(64), 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            Kernel::Gemm,
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

    /// gates[r] = W_ih[:, tokens[r]] + b_ih + b_hh for `rows` rows of 4H.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn embed_input(
        &self,
        weight_ih: u64,
        bias_ih: u64,
        bias_hh: u64,
        tokens: u64,
        gates: u64,
        rows: usize,
        gates_per_row: usize,
        vocab: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::EmbedInput,
            elementwise(rows * gates_per_row),
            weight_ih,
            bias_ih,
            bias_hh,
            tokens,
            gates,
            rows as i32,
            gates_per_row as i32,
            vocab as i32,
        )
    }

    /// out[r] = a (+ b, when b is not 0) for `rows` rows of `cols`.
    pub(super) fn broadcast_rows(
        &self,
        out: u64,
        a: u64,
        b: u64,
        rows: usize,
        cols: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::BroadcastRows,
            elementwise(rows * cols),
            out,
            a,
            b,
            rows as i32,
            cols as i32,
        )
    }

    /// The LSTM step's pointwise part (`cell_prev` 0 is the zero state).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lstm_cell_forward(
        &self,
        gates: u64,
        cell_prev: u64,
        cell: u64,
        tanh_cell: u64,
        hidden: u64,
        rows: usize,
        units: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmCellForward,
            elementwise(rows * units),
            gates,
            cell_prev,
            cell,
            tanh_cell,
            hidden,
            rows as i32,
            units as i32,
        )
    }

    /// The LSTM step's pointwise part backwards (`cell_prev` 0 is the zero state).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lstm_cell_backward(
        &self,
        gates: u64,
        cell_prev: u64,
        tanh_cell: u64,
        d_hidden: u64,
        d_cell: u64,
        d_gates: u64,
        rows: usize,
        units: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmCellBackward,
            elementwise(rows * units),
            gates,
            cell_prev,
            tanh_cell,
            d_hidden,
            d_cell,
            d_gates,
            rows as i32,
            units as i32,
        )
    }

    /// out [rows][V] = onehot(tokens).
    pub(super) fn one_hot(
        &self,
        tokens: u64,
        out: u64,
        rows: usize,
        vocab: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::OneHot,
            elementwise(rows * vocab),
            tokens,
            out,
            rows as i32,
            vocab as i32,
        )
    }

    /// out[c] = Σ_r x[r][c], through `partial`, scratch of [`column_sums_scratch`] floats.
    pub(super) fn column_sums(
        &self,
        x: u64,
        rows: usize,
        cols: usize,
        partial: &Buffer<f32>,
        out: u64,
    ) -> GpuResult<()> {
        let chunks = column_sum_chunks(rows);
        assert!(
            partial.len() >= chunks * cols,
            "column-sum scratch too small"
        );
        let rows_per_chunk = rows.div_ceil(chunks);
        let config = LaunchConfig {
            grid_dim: ((cols as u32).div_ceil(BLOCK_THREADS), chunks as u32, 1),
            block_dim: (BLOCK_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            Kernel::ColumnSumsPartial,
            config,
            x,
            partial.ptr(),
            rows as i32,
            cols as i32,
            rows_per_chunk as i32,
        )?;
        launch!(
            self,
            Kernel::ColumnSumsFinish,
            elementwise(cols),
            partial.ptr(),
            out,
            chunks as i32,
            cols as i32,
        )
    }

    /// out = in ⊙ mask of optimiser step `step` (in == out is allowed).
    pub(super) fn dropout(
        &self,
        input: u64,
        out: u64,
        n: usize,
        seed: u64,
        step: u64,
        p: f32,
    ) -> GpuResult<()> {
        // Kept when the hash's top 32 bits reach p·2³², as in cpu::dropout_keeps; p·2³² is exact
        // in f64, so its ceiling is the integer threshold.
        let threshold = (p as f64 * 4_294_967_296.0).ceil() as u64;
        let scale = (1.0 / (1.0 - p as f64)) as f32;
        launch!(
            self,
            Kernel::Dropout,
            elementwise(n),
            input,
            out,
            n as i32,
            seed,
            step,
            threshold,
            scale,
        )
    }

    /// Softmax over each row of `logits` [rows][V] in place; with targets (not 0), also each
    /// row's loss and correctness (`results`, [2·rows] doubles: losses, then 1 or 0 per row),
    /// and ∂(mean loss)/∂logits over the probabilities.
    pub(super) fn softmax_cross_entropy(
        &self,
        logits: u64,
        targets: u64,
        rows: usize,
        vocab: usize,
        inv_count: f32,
        results: u64,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::SoftmaxCrossEntropy,
            elementwise(rows),
            logits,
            targets,
            rows as i32,
            vocab as i32,
            inv_count,
            results,
        )
    }

    /// Σ g² over `n` floats, block sums added on the host in order.
    pub(super) fn sum_squares(&self, g: u64, n: usize, block_sums: &Buffer<f64>) -> GpuResult<f64> {
        let blocks = block_sums.len();
        let config = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (BLOCK_THREADS, 1, 1),
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
    pub(super) fn adam_update(
        &self,
        theta: u64,
        grads: u64,
        m: u64,
        v: u64,
        n: usize,
        grad_scale: f32,
        lr_t: f32,
        (one_minus_beta1, one_minus_beta2, epsilon): (f32, f32, f32),
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::AdamUpdate,
            elementwise(n),
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

/// Row chunks of the column sums: 64 rows each, at most 128 chunks.
fn column_sum_chunks(rows: usize) -> usize {
    rows.div_ceil(64).clamp(1, 128)
}

/// Floats of scratch [`Gpu::column_sums`] needs for `rows` × `cols`.
pub(super) fn column_sums_scratch(rows: usize, cols: usize) -> usize {
    column_sum_chunks(rows) * cols
}
