//! Which engine runs the model (`--device`): the CPU reference or the CUDA engine, behind the
//! one [`Backend`] interface.

use crate::backend::{Backend, CpuBackend};
use crate::cpu::Isa;
use crate::gpu::{self, CudaBackend};
use crate::model::Params;
use crate::optim::Adam;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// CUDA when a device opens, else the CPU.
    Auto,
    /// The CPU, on all cores.
    Cpu,
    /// An NVIDIA GPU (device 0); an error when none can be used.
    Cuda,
}

/// The engine `device` asks for, with the parameters and optimiser state loaded, and a line that
/// says which engine runs (for `auto` without CUDA, also why not CUDA). `cuda` without a usable
/// GPU, or one the model cannot be loaded on, is an error that says why. `tf32` runs the CUDA
/// engine's weight gradients on TF32 tensor cores; with `cpu` it is an error, and where the
/// engine cannot (a CPU fallback, a GPU before compute capability 8.0) the line says so and
/// strict fp32 runs.
pub fn open(
    device: Device,
    params: Params<f32>,
    adam: Adam,
    tf32: bool,
) -> Result<(Box<dyn Backend>, String), String> {
    if device == Device::Cpu {
        if tf32 {
            return Err(
                "--tf32 needs the CUDA engine: the CPU engine computes in strict fp32, \
                        so with --device cpu it would change nothing"
                    .to_string(),
            );
        }
        return on_cpu(params, adam, "");
    }
    // Opening the device or uploading the model can fail; `auto` then still has the CPU.
    let on_gpu = gpu::open().and_then(|gpu| CudaBackend::new(gpu, params.clone(), adam.clone()));
    match on_gpu {
        Ok(mut engine) => {
            let fallback = match engine.use_tf32(tf32) {
                Ok(()) => String::new(),
                Err(why) => format!(" ({why})"),
            };
            let line = format!("device: CUDA, {}{fallback}", engine.description());
            Ok((Box::new(engine), line))
        }
        Err(e) if device == Device::Cuda => Err(format!("--device cuda: {e}")),
        Err(e) => {
            let ignored = match tf32 {
                true => "; --tf32 ignored: the CPU computes in strict fp32",
                false => "",
            };
            on_cpu(params, adam, &format!(" (no CUDA: {e}{ignored})"))
        }
    }
}

/// [`open`] for a model that only predicts (`engine evaluate`, `engine generate`): `params` from a
/// checkpoint, a fresh Adam state (no step is taken) and strict fp32.
pub fn open_for_inference(
    device: Device,
    params: Params<f32>,
) -> Result<(Box<dyn Backend>, String), String> {
    let adam = Adam::new(params.config().num_params());
    open(device, params, adam, false)
}

/// The CPU engine on the kernels of [`Isa::selected`]; an `ENGINE_CPU_ISA` this CPU lacks, or
/// an unknown one, is an error.
fn on_cpu(
    params: Params<f32>,
    adam: Adam,
    why: &str,
) -> Result<(Box<dyn Backend>, String), String> {
    let isa = Isa::selected()?;
    let threads = rayon::current_num_threads();
    let line = format!("device: CPU, {threads} threads, {isa} kernels{why}");
    Ok((Box::new(CpuBackend::new(params, adam)), line))
}
