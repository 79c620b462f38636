//! Embeds the CUDA kernels (kernels/*.cu) in the binary. Where `nvcc` is found (on PATH, or as
//! $CUDA_HOME/bin/nvcc or $CUDA_PATH/bin/nvcc), each kernel file is compiled to PTX for
//! compute_80 and compute_90 and the PTX is embedded; the source is always embedded too, so that
//! a binary built without `nvcc` compiles it at run time with NVRTC. Either way the build needs
//! no CUDA at all: this writes `$OUT_DIR/kernels.rs`, which `src/gpu/kernels.rs` includes.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtual architectures PTX is built for; the driver JIT-compiles PTX for newer GPUs too.
const ARCHES: [u32; 2] = [80, 90];

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_PATH");
    println!("cargo:rerun-if-env-changed=PATH");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut sources: Vec<PathBuf> = fs::read_dir(manifest.join("kernels"))
        .expect("kernels/ exists")
        .map(|entry| entry.expect("readable kernels/").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cu"))
        .collect();
    sources.sort();

    let nvcc = find_nvcc();
    let mut table = String::from("pub const KERNEL_FILES: &[KernelFile] = &[\n");
    for source in &sources {
        let name = source
            .file_stem()
            .unwrap()
            .to_str()
            .expect("ASCII file name");
        let mut ptx = String::new();
        if let Some(nvcc) = &nvcc {
            for arch in ARCHES {
                let path = out_dir.join(format!("{name}.compute_{arch}.ptx"));
                compile(nvcc, source, arch, &path);
                write!(
                    ptx,
                    "({arch}, include_str!({:?})), ",
                    path.display().to_string()
                )
                .unwrap();
            }
        }
        writeln!(
            table,
            "    KernelFile {{ name: {name:?}, source: include_str!({:?}), ptx: &[{ptx}] }},",
            source.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    fs::write(out_dir.join("kernels.rs"), table).expect("OUT_DIR is writable");
}

fn find_nvcc() -> Option<PathBuf> {
    let from_home = ["CUDA_HOME", "CUDA_PATH"]
        .into_iter()
        .filter_map(env::var_os)
        .map(|home| PathBuf::from(home).join("bin").join("nvcc"));
    let on_path: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| {
            env::split_paths(&path)
                .map(|dir| dir.join("nvcc"))
                .collect()
        })
        .unwrap_or_default();
    from_home.chain(on_path).find(|nvcc| nvcc.is_file())
}

/// A kernel that does not compile fails the build, with nvcc's message.
fn compile(nvcc: &Path, source: &Path, arch: u32, out: &Path) {
    let output = Command::new(nvcc)
        .args(["--ptx", "-O3", &format!("-arch=compute_{arch}"), "-o"])
        .arg(out)
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
    if !output.status.success() {
        panic!(
            "nvcc failed on {} for compute_{arch}:\n{}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
