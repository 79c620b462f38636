//! The kernels' compilation, which needs no GPU: NVRTC, and nvcc (for build.rs's embedded PTX)
//! and ptxas, from the `nvidia-cuda-nvrtc` and `nvidia-cuda-nvcc` wheels that `.ci/run`
//! installs. Each file must define exactly the kernels of the kernel table, each within its
//! launch bounds without spilling. Under `CI=true` a missing tool is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use melody_engine::gpu::kernels::{self, Kernel, KERNEL_FILES};

mod common;

/// Each entry point of a PTX module, with the threads per block it is compiled for
/// (`.maxntid`, from `__launch_bounds__`) where it declares them.
fn entry_points(ptx: &str) -> BTreeMap<String, Option<u32>> {
    let mut entries = BTreeMap::new();
    let mut last = None;
    for line in ptx.lines() {
        if let Some(rest) = line.split(".entry ").nth(1) {
            let name = rest.split('(').next().unwrap().trim().to_string();
            entries.insert(name.clone(), None);
            last = Some(name);
        } else if let Some(dims) = line.trim().strip_prefix(".maxntid ") {
            let threads = dims.split(',').map(|d| d.trim().parse::<u32>().unwrap());
            let entry = last.clone().expect(".maxntid follows its .entry");
            entries.insert(entry, Some(threads.product()));
        }
    }
    entries
}

/// The kernels the engine launches from kernels/`file`.cu, with the block size each declares.
fn launched_from(file: &str) -> BTreeMap<String, Option<u32>> {
    Kernel::ALL
        .iter()
        .filter(|kernel| kernel.file() == file)
        .map(|kernel| (kernel.name().to_string(), Some(kernel.block_threads())))
        .collect()
}

/// One kernel file compiled to PTX.
struct PtxModule {
    /// The file name without `.cu`.
    file: &'static str,
    /// Which file, compiler and architecture, for messages.
    label: String,
    /// The compute capability it was compiled for (10·major + minor).
    capability: u32,
    ptx: String,
}

/// Every PTX module there is to check: NVRTC's for compute_80 and compute_90 where NVRTC loads,
/// and the ones build.rs embedded where it found nvcc.
fn ptx_modules() -> Vec<PtxModule> {
    let mut modules = Vec::new();
    for file in KERNEL_FILES {
        for &(capability, ptx) in file.ptx {
            modules.push(PtxModule {
                file: file.name,
                label: format!("kernels/{}.cu, nvcc compute_{capability}", file.name),
                capability,
                ptx: ptx.to_string(),
            });
        }
        if kernels::nvrtc_available() {
            for capability in [80, 90] {
                let arch = kernels::nvrtc_arch(capability);
                let ptx = kernels::compile(file, arch).unwrap_or_else(|e| panic!("{e}"));
                modules.push(PtxModule {
                    file: file.name,
                    label: format!("kernels/{}.cu, NVRTC {arch}", file.name),
                    capability,
                    ptx: ptx.to_src(),
                });
            }
        }
    }
    modules
}

#[test]
fn every_kernel_compiles_for_compute_80_and_90() {
    if !kernels::nvrtc_available() {
        assert!(
            !common::in_ci(),
            "CI=true but NVRTC was not found: .ci/run installs the nvidia-cuda-nvrtc wheel and \
             puts its lib/ on LD_LIBRARY_PATH"
        );
        eprintln!("skipped NVRTC: no NVRTC library (install the nvidia-cuda-nvrtc wheel)");
    }
    let embedded = KERNEL_FILES.iter().all(|file| file.ptx.len() == 2);
    assert!(
        embedded || !common::in_ci(),
        "CI=true but build.rs embedded no PTX: .ci/run puts the nvidia-cuda-nvcc wheel's nvcc on PATH"
    );
    if !embedded {
        eprintln!("skipped nvcc's PTX: build.rs found no nvcc");
    }
    for module in ptx_modules() {
        // The file defines exactly the kernels the engine launches from it, each compiled for
        // the block size it is launched with.
        let (what, defined) = (&module.label, entry_points(&module.ptx));
        assert_eq!(defined, launched_from(module.file), "{what}");
        // Local memory is where a register array indexed at run time ends up: slow.
        assert!(!module.ptx.contains(".local"), "{what} uses local memory");
        eprintln!("{what}: {:?}", defined.keys());
    }
}

/// ptxas, from $PTXAS or PATH; None after saying why there is none.
fn ptxas() -> Option<PathBuf> {
    let ptxas = PathBuf::from(std::env::var_os("PTXAS").unwrap_or("ptxas".into()));
    match Command::new(&ptxas).arg("--version").output() {
        Ok(out) if out.status.success() => Some(ptxas),
        result => {
            assert!(
                !common::in_ci(),
                "CI=true but {} does not run ({result:?}): .ci/run puts the nvidia-cuda-nvcc \
                 wheel's bin/ on PATH",
                ptxas.display()
            );
            eprintln!("skipped: no ptxas (install the nvidia-cuda-nvcc wheel)");
            None
        }
    }
}

/// What ptxas -v reports of each kernel of a module (the largest figure where a kernel's
/// report has several). The registers are printed for information: `__launch_bounds__` already
/// bounds them.
#[derive(Debug, Default)]
struct Resources {
    registers: Option<u32>,
    stack_bytes: Option<u32>,
    spill_bytes: Option<u32>,
}

/// Assembles a module for sm_`capability` (the machine code the driver would make of it) and
/// returns each kernel's resources.
fn assemble(ptxas: &Path, module: &PtxModule) -> BTreeMap<String, Resources> {
    let input = std::env::temp_dir().join(format!(
        "melody-engine-{}-{}.ptx",
        std::process::id(),
        module.label.replace(['/', ' ', ','], "_")
    ));
    std::fs::write(&input, &module.ptx).unwrap();
    let out = Command::new(ptxas)
        .args(["-v", &format!("-arch=sm_{}", module.capability)])
        .args(["--output-file", "/dev/null"])
        .arg(&input)
        .output()
        .unwrap();
    std::fs::remove_file(&input).unwrap();
    let log = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ptxas failed on {}:\n{log}",
        module.label
    );
    let number_before = |line: &str, unit: &str| -> Option<u32> {
        let head = &line[..line.find(unit).unwrap()];
        let word = head.trim_end().rsplit([' ', ',']).next().unwrap();
        Some(word.parse().unwrap())
    };
    let mut kernels = BTreeMap::new();
    let mut current = String::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            current = rest.split('\'').next().unwrap().to_string();
        }
        let entry: &mut Resources = kernels.entry(current.clone()).or_default();
        if line.contains(" bytes stack frame") {
            let spills = number_before(line, " bytes spill stores").unwrap()
                + number_before(line, " bytes spill loads").unwrap();
            entry.stack_bytes = entry
                .stack_bytes
                .max(number_before(line, " bytes stack frame"));
            entry.spill_bytes = entry.spill_bytes.max(Some(spills));
        } else if line.contains(" registers") {
            entry.registers = entry.registers.max(number_before(line, " registers"));
        }
    }
    kernels.remove("");
    kernels
}

#[test]
fn every_kernel_assembles_without_spilling_within_its_launch_bounds() {
    let Some(ptxas) = ptxas() else { return };
    let modules = ptx_modules();
    if modules.is_empty() {
        eprintln!("skipped: neither NVRTC nor embedded PTX to assemble");
    }
    for module in modules {
        let (what, capability) = (&module.label, module.capability);
        let kernels = assemble(&ptxas, &module);
        assert_eq!(
            kernels.keys().collect::<Vec<_>>(),
            launched_from(module.file).keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (name, resources) in &kernels {
            eprintln!("{what} on sm_{capability}: {name} {resources:?}");
            // With `__launch_bounds__`, ptxas keeps within the registers the declared block
            // size allows by spilling to local memory; none may spill, nor use a stack frame.
            assert_eq!(
                (resources.stack_bytes, resources.spill_bytes),
                (Some(0), Some(0)),
                "{what}: {name} uses local memory on sm_{capability} (None: ptxas said nothing)"
            );
        }
    }
}
