//! The CUDA driver as the engine uses it: one context and one stream (so every operation runs in
//! issue order), the loaded kernels, typed device pointers and buffers, copies, and the launch
//! call. Where the kernels run on the host instead ([`super::host`]), each primitive hands over
//! to it.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream,
    DevicePtr as _, DeviceRepr, DriverError, LaunchConfig, PinnedHostSlice, ValidAsZeroBits,
};

use super::host::HostLibrary;
use super::kernels::{self, Kernel};
use super::timings::{self, KernelTime, Timings};
use crate::backend::EngineError;

pub type GpuResult<T> = Result<T, EngineError>;

/// The error of a driver call made while doing `action`.
pub(super) fn driver(action: &str) -> impl Fn(DriverError) -> EngineError + '_ {
    move |e| {
        let (action, message) = (action.to_string(), e.to_string());
        match e.0 {
            sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => EngineError::OutOfMemory { action, message },
            _ => EngineError::Driver { action, message },
        }
    }
}

/// The address of a `T` in device memory (host memory under the host emulation); never null,
/// so a kernel parameter that may be null is an `Option<DevicePtr<T>>`.
pub struct DevicePtr<T> {
    address: NonZeroU64,
    element: PhantomData<fn() -> T>,
}

impl<T> Clone for DevicePtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for DevicePtr<T> {}

impl<T> std::fmt::Debug for DevicePtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevicePtr({:#x})", self.address)
    }
}

impl<T> DevicePtr<T> {
    fn new(address: u64) -> DevicePtr<T> {
        DevicePtr {
            address: NonZeroU64::new(address).expect("a buffer has an address"),
            element: PhantomData,
        }
    }

    /// The address `elements` elements further on.
    pub fn offset(self, elements: usize) -> DevicePtr<T> {
        DevicePtr::new(self.address.get() + (elements * std::mem::size_of::<T>()) as u64)
    }

    /// The raw address, as the driver and the kernels take it.
    pub fn address(self) -> u64 {
        self.address.get()
    }
}

/// A device allocation of `len` elements.
pub struct Buffer<T> {
    _memory: Memory<T>,
    ptr: DevicePtr<T>,
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
    pub fn at(&self, i: usize) -> DevicePtr<T> {
        assert!(i <= self.len, "index {i} past a buffer of {}", self.len);
        self.ptr.offset(i)
    }

    pub fn ptr(&self) -> DevicePtr<T> {
        self.ptr
    }

    /// The address of elements `start .. start + len`, checked to lie inside the buffer (raw
    /// copies and kernels cannot check it).
    pub fn span(&self, start: usize, len: usize) -> DevicePtr<T> {
        assert!(
            start + len <= self.len,
            "elements {start}..{} past a buffer of {}",
            start + len,
            self.len
        );
        self.at(start)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Host memory that a device copies into without the host waiting ([`Gpu::download_later`]):
/// page-locked on a device, plain on the host emulation.
pub struct HostStaging<T> {
    memory: StagingMemory<T>,
}

enum StagingMemory<T> {
    Pinned(PinnedHostSlice<T>),
    Plain(Vec<T>),
}

impl<T> HostStaging<T> {
    /// How many values it holds.
    pub fn len(&self) -> usize {
        match &self.memory {
            StagingMemory::Pinned(pinned) => pinned.len(),
            StagingMemory::Plain(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A copy into a [`HostStaging`] on its way: [`Landing::read`] waits for it.
pub struct Landing {
    /// Recorded after the copy on a device; None on the host, where it has landed already.
    copied: Option<CudaEvent>,
    len: usize,
}

impl Landing {
    /// The `len` values copied, once they have landed.
    pub fn read<'a, T: ValidAsZeroBits>(&self, staging: &'a HostStaging<T>) -> GpuResult<&'a [T]> {
        if let Some(event) = &self.copied {
            event
                .synchronize()
                .map_err(driver("waiting for a copy to the host"))?;
        }
        Ok(match &staging.memory {
            StagingMemory::Pinned(pinned) => {
                let ptr = pinned
                    .as_ptr()
                    .map_err(driver("reading page-locked memory"))?;
                // SAFETY: the copy of `len` ≤ pinned.len() values has completed (the event).
                unsafe { std::slice::from_raw_parts(ptr, self.len) }
            }
            StagingMemory::Plain(values) => &values[..self.len],
        })
    }
}

/// An opened device ([`open`]) or the host emulation ([`super::open_on_host`]).
pub struct Gpu {
    runtime: Runtime,
    /// The most blocks a persistent kernel may use, one per multiprocessor; None where
    /// cooperative launches are not supported.
    pub(super) persistent_blocks: Option<usize>,
    /// Multiprocessors (SMs): the split-K weight gradients fill them (src/gpu/matmul.rs).
    pub(super) multiprocessors: usize,
    /// The dynamic shared memory a persistent kernel's block may use, opted in to above the
    /// default 48 KB where the device allows more.
    pub(super) shared_limit: usize,
    /// Whether the device has TF32 tensor cores (compute capability 8.0 and later; the host
    /// emulation has a twin of them).
    tensor_cores: bool,
    /// Whether the weight gradients run on them ([`Gpu::use_tf32`]).
    pub(super) tf32: bool,
    description: String,
    /// Per-kernel launch times, where `ENGINE_GPU_TIMINGS=1` or [`Gpu::record_timings`] asked.
    timings: Option<Mutex<Timings>>,
}

enum Runtime {
    Cuda {
        ctx: Arc<CudaContext>,
        stream: Arc<CudaStream>,
        /// Indexed like [`Kernel::ALL`].
        functions: Vec<CudaFunction>,
    },
    Host(HostLibrary),
}

/// Opens CUDA device 0, or says why it cannot. Never panics: the driver library is probed before
/// cudarc touches it, and a driver that lacks a function cudarc expects (where cudarc panics)
/// is reported as unusable.
pub fn open() -> GpuResult<Gpu> {
    std::panic::catch_unwind(open_device).unwrap_or_else(|_| {
        Err(EngineError::Unavailable(
            "the CUDA driver library could not be used (see the message above)".to_string(),
        ))
    })
}

fn open_device() -> GpuResult<Gpu> {
    // SAFETY: only tries to dlopen libcuda by its usual names.
    if !unsafe { sys::is_culib_present() } {
        let why = "no CUDA driver library (libcuda) was found";
        return Err(EngineError::Unavailable(why.to_string()));
    }
    let count = CudaContext::device_count().map_err(driver("counting devices"))?;
    if count < 1 {
        let why = "the CUDA driver found no device";
        return Err(EngineError::Unavailable(why.to_string()));
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
    let shared_optin =
        attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
    let mut functions = Vec::with_capacity(Kernel::ALL.len());
    let mut modules = Vec::new();
    // Where the kernels came from ("embedded PTX compute_90", "NVRTC compute_90"), each once.
    let mut sources: Vec<String> = Vec::new();
    for kernel in Kernel::ALL {
        let file = kernel.file();
        let module = match modules.iter().find(|(name, _)| *name == file) {
            Some((_, module)) => Arc::clone(module),
            None => {
                let (module, source) = load_module(&ctx, file, capability)?;
                if !sources.contains(&source) {
                    sources.push(source);
                }
                modules.push((file, Arc::clone(&module)));
                module
            }
        };
        let loaded = module.load_function(kernel.name()).map_err(|e| {
            EngineError::KernelLoad(format!(
                "CUDA: kernel {} in kernels/{file}.cu: {e}",
                kernel.name()
            ))
        })?;
        if kernel.is_persistent() || kernel == Kernel::HeadForwardBackward {
            // Above 48 KB a launch must have opted in; the planners (the persistent layout and
            // `Gpu::head_plan`) keep within what this allows.
            let attribute =
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            loaded
                .set_attribute(attribute, shared_optin)
                .map_err(driver(
                    "opting in to the shared memory of the persistent kernels and the head",
                ))?;
        }
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
        multiprocessors: multiprocessors as usize,
        shared_limit: shared_optin as usize,
        tensor_cores: capability >= 80,
        tf32: false,
        timings: timings::requested().then(|| Mutex::new(Timings::new(false))),
        description: format!(
            "{name} (compute capability {major}.{minor}, {multiprocessors} SMs, {} KB shared \
             memory a block; kernels: {})",
            shared_optin / 1024,
            sources.join(", ")
        ),
    })
}

/// The module of kernel file `file` and where it came from: its embedded PTX, or where the
/// driver refuses that PTX (built by an nvcc newer than the driver) or the binary has none for
/// the device, the source compiled by NVRTC.
fn load_module(
    ctx: &Arc<CudaContext>,
    file: &str,
    capability: u32,
) -> GpuResult<(Arc<CudaModule>, String)> {
    let kernel_file = kernels::file(file);
    let (ptx, source) = kernels::ptx_for(kernel_file, capability)?;
    let failed = |message: String| {
        EngineError::KernelLoad(format!("CUDA: loading kernels/{file}.cu: {message}"))
    };
    match ctx.load_module(ptx) {
        Ok(module) => Ok((module, source)),
        Err(e) if kernels::nvrtc_available() && !kernel_file.ptx.is_empty() => {
            let arch = kernels::nvrtc_arch(capability);
            let ptx = kernels::compile(kernel_file, arch)?;
            let module = ctx
                .load_module(ptx)
                .map_err(|e2| failed(format!("embedded PTX: {e}; NVRTC's: {e2}")))?;
            Ok((
                module,
                format!("NVRTC {arch} (the driver refused the embedded PTX: {e})"),
            ))
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The dynamic shared memory a block may opt in to on compute capability 9.0 (227 KB).
const HOPPER_SHARED_LIMIT: usize = 227 * 1024;

/// Which way [`Gpu::copy_bytes`] copies.
#[derive(Clone, Copy)]
enum Direction {
    ToDevice,
    ToHost,
    OnDevice,
}

impl Gpu {
    pub(super) fn on_host(library: HostLibrary, description: String) -> Gpu {
        Gpu {
            runtime: Runtime::Host(library),
            // The host runs every block at once; 8 makes a small model's launch a few blocks.
            persistent_blocks: Some(8),
            // As many as it has blocks for the persistent kernels: a few per product.
            multiprocessors: 8,
            // An H100's or H200's opt-in limit, so that the host plans as they do.
            shared_limit: HOPPER_SHARED_LIMIT,
            tensor_cores: true,
            tf32: false,
            timings: timings::requested().then(|| Mutex::new(Timings::new(true))),
            description,
        }
    }

    /// The device's name and compute capability.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether the kernels run on the host ([`super::open_on_host`]) rather than a GPU.
    pub fn is_host(&self) -> bool {
        matches!(self.runtime, Runtime::Host(_))
    }

    /// Runs `kernel` on `config`'s grid with `args` (pointers to each argument).
    ///
    /// # Safety
    /// `args` must match the kernel's parameters, and the grid the buffers they point to.
    pub(super) unsafe fn launch(
        &self,
        kernel: Kernel,
        config: LaunchConfig,
        args: &mut [*mut c_void],
    ) -> GpuResult<()> {
        let (grid, block) = (config.grid_dim, config.block_dim);
        assert!(
            block.0 * block.1 * block.2 <= kernel.block_threads(),
            "{kernel:?} is compiled for at most {} threads per block, not {block:?}",
            kernel.block_threads()
        );
        let failed = |message: String| EngineError::Launch {
            kernel: format!("{kernel:?}"),
            message,
        };
        let device = match &self.runtime {
            Runtime::Cuda { ctx, stream, .. } => Some((ctx, stream)),
            Runtime::Host(_) => None,
        };
        let mut timings = self.timings.as_ref().map(|t| t.lock().expect("timings"));
        let start = timings.as_mut().map(|t| t.start(device)).transpose()?;
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
            Runtime::Host(host) => host.launch(kernel, config, args).map_err(failed),
        }?;
        match (timings.as_mut(), start) {
            (Some(timings), Some(start)) => timings.stop(kernel, start, device),
            _ => Ok(()),
        }
    }

    /// Runs the weight gradients on TF32 tensor cores (operands rounded to 10 mantissa bits,
    /// sums in fp32) or, by default, in strict fp32. A device without them (before compute
    /// capability 8.0) keeps fp32 and says so in the error.
    pub fn use_tf32(&mut self, on: bool) -> Result<(), String> {
        if on && !self.tensor_cores {
            return Err(
                "--tf32 needs compute capability 8.0 or later; this device runs strict fp32".into(),
            );
        }
        self.tf32 = on;
        Ok(())
    }

    /// Records each launch's time from now on (as `ENGINE_GPU_TIMINGS=1` does when opening).
    pub fn record_timings(&mut self) {
        let on_host = self.is_host();
        self.timings
            .get_or_insert_with(|| Mutex::new(Timings::new(on_host)));
    }

    /// Every kernel launched since timings were turned on, with its calls and total time, the
    /// longest first; None where they are off.
    pub fn kernel_times(&self) -> GpuResult<Option<Vec<KernelTime>>> {
        self.timings
            .as_ref()
            .map(|t| t.lock().expect("timings").kernel_times())
            .transpose()
    }

    /// The table of [`Gpu::kernel_times`]: kernel, calls, total ms, mean µs and share, under a
    /// header that says how they were measured; None where timings are off.
    pub fn timings_table(&self) -> GpuResult<Option<String>> {
        self.timings
            .as_ref()
            .map(|t| t.lock().expect("timings").table())
            .transpose()
    }

    /// The loaded function of `kernel`, where a driver runs it.
    pub(super) fn function(&self, kernel: Kernel) -> Option<&CudaFunction> {
        match &self.runtime {
            Runtime::Cuda { functions, .. } => Some(&functions[kernel.index()]),
            Runtime::Host(_) => None,
        }
    }

    /// Makes the context current on this thread, as cudarc's own calls do, before a raw driver
    /// call.
    pub(super) fn bind(&self) -> GpuResult<()> {
        match &self.runtime {
            Runtime::Cuda { ctx, .. } => {
                ctx.bind_to_thread().map_err(driver("binding the context"))
            }
            Runtime::Host(_) => Ok(()),
        }
    }

    /// A zeroed buffer of `len` elements.
    pub fn alloc<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> GpuResult<Buffer<T>> {
        // A zero-length allocation has no address; keep one element so every buffer has one.
        let elements = len.max(1);
        let (memory, address) = match &self.runtime {
            Runtime::Cuda { stream, .. } => {
                let slice = stream
                    .alloc_zeros::<T>(elements)
                    .map_err(driver("allocating device memory"))?;
                let address = slice.device_ptr(stream).0;
                (Memory::Cuda { _slice: slice }, address)
            }
            Runtime::Host(_) => {
                let words = vec![0u64; (elements * std::mem::size_of::<T>()).div_ceil(8)];
                let address = words.as_ptr() as u64;
                (Memory::Host { _words: words }, address)
            }
        };
        Ok(Buffer {
            _memory: memory,
            ptr: DevicePtr::new(address),
            len,
        })
    }

    /// Copies `bytes` bytes from `src` to `dst`, on the one stream.
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
            Runtime::Host(_) => {
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

    /// Copies `host` to the device at `dst`, which must have room for it.
    pub fn upload<T: DeviceRepr>(&self, dst: DevicePtr<T>, host: &[T]) -> GpuResult<()> {
        // SAFETY: callers pass an address with room for host.len() elements; the driver copies
        // pageable memory before it returns, so `host` may be dropped afterwards.
        let (bytes, src) = (std::mem::size_of_val(host), host.as_ptr() as u64);
        unsafe { self.copy_bytes(dst.address(), src, bytes, Direction::ToDevice) }
    }

    /// Copies from the device at `src`, which must hold `host.len()` elements, into `host`,
    /// after everything issued before.
    pub fn download<T: DeviceRepr>(&self, src: DevicePtr<T>, host: &mut [T]) -> GpuResult<()> {
        // SAFETY: as the contract says; the copy is complete when this returns.
        let (bytes, dst) = (std::mem::size_of_val(host), host.as_mut_ptr() as u64);
        unsafe { self.copy_bytes(dst, src.address(), bytes, Direction::ToHost) }
    }

    /// Host memory for copies of up to `len` values that the host does not wait for.
    pub fn staging<T: DeviceRepr + ValidAsZeroBits + Clone>(
        &self,
        len: usize,
    ) -> GpuResult<HostStaging<T>> {
        let memory = match &self.runtime {
            Runtime::Cuda { ctx, .. } => {
                // SAFETY: the memory is only read after a copy has filled it (Landing::read);
                // flags 0: cached, as the host reads it (write-combined memory reads slowly).
                let pinned = unsafe { ctx.alloc_pinned_with_flags::<T>(len.max(1), 0) }
                    .map_err(driver("allocating page-locked memory"))?;
                StagingMemory::Pinned(pinned)
            }
            // SAFETY: all-zero bits are a valid T.
            Runtime::Host(_) => StagingMemory::Plain(vec![unsafe { std::mem::zeroed() }; len]),
        };
        Ok(HostStaging { memory })
    }

    /// Queues a copy of `len` values from `src` into `staging` after everything issued before,
    /// without waiting for it: the [`Landing`] does.
    pub fn download_later<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        src: DevicePtr<T>,
        len: usize,
        staging: &mut HostStaging<T>,
    ) -> GpuResult<Landing> {
        let bytes = len * std::mem::size_of::<T>();
        match (&self.runtime, &mut staging.memory) {
            (Runtime::Cuda { stream, .. }, StagingMemory::Pinned(pinned)) => {
                assert!(
                    len <= pinned.len(),
                    "{len} values into a staging of {}",
                    pinned.len()
                );
                self.bind()?;
                let ptr = pinned
                    .as_mut_ptr()
                    .map_err(driver("writing page-locked memory"))?;
                // SAFETY: `ptr` holds at least `len` values (checked) and `src` holds `len`.
                let host = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, bytes) };
                unsafe { result::memcpy_dtoh_async(host, src.address(), stream.cu_stream()) }
                    .map_err(driver("copying from the device"))?;
                let copied = stream
                    .record_event(None)
                    .map_err(driver("recording a copy to the host"))?;
                Ok(Landing {
                    copied: Some(copied),
                    len,
                })
            }
            (Runtime::Host(_), StagingMemory::Plain(values)) => {
                self.download(src, &mut values[..len])?;
                Ok(Landing { copied: None, len })
            }
            _ => unreachable!("staging from another runtime"),
        }
    }

    /// Copies `len` floats from `src` to `dst` on the device.
    pub(super) fn copy(
        &self,
        dst: DevicePtr<f32>,
        src: DevicePtr<f32>,
        len: usize,
    ) -> GpuResult<()> {
        // SAFETY: callers pass two addresses each with room for `len` floats.
        let (dst, src) = (dst.address(), src.address());
        unsafe { self.copy_bytes(dst, src, len * 4, Direction::OnDevice) }
    }

    pub(super) fn synchronize(&self) -> GpuResult<()> {
        match &self.runtime {
            Runtime::Cuda { stream, .. } => stream.synchronize().map_err(driver("synchronising")),
            Runtime::Host(_) => Ok(()),
        }
    }

    /// Zeroes `len` floats at `dst`.
    pub(super) fn zero(&self, dst: DevicePtr<f32>, len: usize) -> GpuResult<()> {
        self.bind()?;
        match &self.runtime {
            // SAFETY: callers pass an address with room for `len` floats.
            Runtime::Cuda { stream, .. } => {
                unsafe { result::memset_d8_async(dst.address(), 0, len * 4, stream.cu_stream()) }
                    .map_err(driver("zeroing device memory"))
            }
            Runtime::Host(_) => {
                // SAFETY: as above, in host memory.
                unsafe { std::ptr::write_bytes(dst.address() as *mut u8, 0, len * 4) };
                Ok(())
            }
        }
    }
}
