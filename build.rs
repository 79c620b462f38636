//! Embeds the CUDA kernels (kernels/*.cu) in the binary and generates the one kernel table.
//!
//! Every `extern "C" __global__ void __launch_bounds__(N) name(` in kernels/*.cu is a kernel.
//! From them this writes into $OUT_DIR:
//! - `kernels.rs` (included by `src/gpu/kernels.rs`): each file's source and PTX, and the
//!   `Kernel` enum with each kernel's file, name, block size and barrier;
//! - `kernels_on_host.inc` (included by `tests/host_cuda/kernels_on_host.cpp`): the files, and
//!   how the host emulation must run each kernel's threads.
//!
//! A kernel's barrier is derived from its body and the functions it calls: `grid_barrier` makes
//! it persistent (every block resident at once), `__syncthreads` or a warp's shuffles and
//! `__syncwarp` make a block's threads run together, and otherwise its threads are independent.
//!
//! Where `nvcc` is found (on PATH, or as $CUDA_HOME/bin/nvcc or $CUDA_PATH/bin/nvcc), each file
//! is compiled to PTX for compute_80 and compute_90 and the PTX is embedded; the source is always
//! embedded too, so that a binary built without `nvcc` compiles it at run time with NVRTC.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtual architectures PTX is built for; the driver JIT-compiles PTX for newer GPUs too.
const ARCHES: [u32; 2] = [80, 90];

const KERNEL_START: &str = "extern \"C\" __global__ void __launch_bounds__(";

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
    let mut files = String::from("pub const KERNEL_FILES: &[KernelFile] = &[\n");
    let mut kernels = Vec::new();
    let mut host = String::new();
    for source in &sources {
        let file = source
            .file_stem()
            .unwrap()
            .to_str()
            .expect("ASCII file name");
        let text = fs::read_to_string(source).expect("readable kernel file");
        kernels.extend(scan(file, &text));
        writeln!(host, "#include {:?}", source.display().to_string()).unwrap();
        let mut ptx = String::new();
        if let Some(nvcc) = &nvcc {
            for arch in ARCHES {
                let path = out_dir.join(format!("{file}.compute_{arch}.ptx"));
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
            files,
            "    KernelFile {{ name: {file:?}, source: include_str!({:?}), ptx: &[{ptx}] }},",
            source.display().to_string()
        )
        .unwrap();
    }
    files.push_str("];\n");
    fs::write(out_dir.join("kernels.rs"), files + &rust_table(&kernels)).expect("writable OUT_DIR");
    fs::write(
        out_dir.join("kernels_on_host.inc"),
        host + &host_registry(&kernels),
    )
    .expect("writable OUT_DIR");
}

/// The barrier a kernel's threads wait at (the `Barrier` enum of src/gpu/kernels.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Barrier {
    Unsynchronised,
    Block,
    Grid,
}

struct KernelSpec {
    file: String,
    name: String,
    block_threads: u32,
    barrier: Barrier,
}

/// The kernels of one file, each with the barrier its body (or a function it calls) waits at.
fn scan(file: &str, text: &str) -> Vec<KernelSpec> {
    // Every function defined in the file, by name, with its body; calls are found by name.
    let mut bodies = BTreeMap::new();
    let mut kernels = Vec::new();
    for (start, _) in text
        .match_indices("__device__")
        .chain(text.match_indices("__global__"))
    {
        let open = start + text[start..].find('(').expect("a function's parameters");
        let mut head = &text[start..open];
        let mut block_threads = None;
        if text[..open].ends_with("__launch_bounds__") {
            let close = open + text[open..].find(')').unwrap();
            block_threads = Some(text[open + 1..close].trim().parse::<u32>().unwrap_or_else(
                |_| panic!("kernels/{file}.cu: __launch_bounds__ takes one literal block size"),
            ));
            let next = close + text[close..].find('(').unwrap();
            head = &text[close + 1..next];
        }
        let name = head
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        let Some(body) = body_after(&text[open..]) else {
            continue; // a declaration
        };
        if let Some(block_threads) = block_threads {
            let signature = text[..start].rfind("extern").unwrap_or(start);
            assert!(
                text[signature..].starts_with(KERNEL_START),
                "kernels/{file}.cu: kernel {name} is not written `{KERNEL_START}N) {name}(`"
            );
            kernels.push(KernelSpec {
                file: file.to_string(),
                name: name.clone(),
                block_threads,
                barrier: Barrier::Unsynchronised,
            });
        }
        bodies.insert(name, body);
    }
    // A function waits at the strongest barrier of its body and of the functions it calls.
    let mut barriers: BTreeMap<&str, Barrier> = BTreeMap::new();
    loop {
        let mut changed = false;
        for (name, body) in &bodies {
            let mut barrier = Barrier::Unsynchronised;
            // A warp's lanes exchanging values (shuffles) wait for each other as a block's do.
            let warp_wide = [
                "__syncwarp",
                "__shfl_sync",
                "__shfl_xor_sync",
                "__shfl_down_sync",
            ];
            if calls(body, "__syncthreads") || warp_wide.iter().any(|f| calls(body, f)) {
                barrier = Barrier::Block;
            }
            if calls(body, "grid_barrier") {
                barrier = Barrier::Grid;
            }
            for (callee, &theirs) in &barriers {
                if callee != name && callee != &"grid_barrier" && calls(body, callee) {
                    barrier = barrier.max(theirs);
                }
            }
            if barriers.get(name.as_str()) != Some(&barrier) {
                barriers.insert(name, barrier);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for kernel in &mut kernels {
        kernel.barrier = barriers[kernel.name.as_str()];
    }
    kernels
}

/// The body `{ … }` after a parameter list that starts `text`, or None for a declaration.
fn body_after(text: &str) -> Option<&str> {
    let mut depth = 0;
    let close = text
        .char_indices()
        .find(|&(_, c)| {
            depth += match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            depth == 0
        })?
        .0;
    let rest = &text[close + 1..];
    let open = rest.find(['{', ';'])?;
    if &rest[open..open + 1] == ";" {
        return None;
    }
    let mut depth = 0;
    let end = rest[open..]
        .char_indices()
        .find(|&(_, c)| {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            depth == 0
        })?
        .0;
    Some(&rest[open..open + end + 1])
}

/// Whether `body` calls `function` (its name, as a whole word, followed by `(`).
fn calls(body: &str, function: &str) -> bool {
    body.match_indices(function).any(|(at, _)| {
        let before = body[..at].chars().next_back();
        let after = body[at + function.len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && after.starts_with('(')
    })
}

fn camel_case(name: &str) -> String {
    name.split('_')
        .map(|word| word[..1].to_uppercase() + &word[1..])
        .collect()
}

/// The `Kernel` enum and its table, in kernels/*.cu order.
fn rust_table(kernels: &[KernelSpec]) -> String {
    let mut out = String::from(
        "/// Every kernel of kernels/*.cu, generated by build.rs from their signatures.\n\
         #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]\npub enum Kernel {\n",
    );
    for kernel in kernels {
        writeln!(out, "    {},", camel_case(&kernel.name)).unwrap();
    }
    writeln!(
        out,
        "}}\n\nimpl Kernel {{\n    pub const ALL: [Kernel; {}] = [",
        kernels.len()
    )
    .unwrap();
    for kernel in kernels {
        writeln!(out, "        Kernel::{},", camel_case(&kernel.name)).unwrap();
    }
    out.push_str("    ];\n}\n\n");
    writeln!(out, "const SPECS: [KernelSpec; {}] = [", kernels.len()).unwrap();
    for k in kernels {
        writeln!(
            out,
            "    KernelSpec {{ file: {:?}, name: {:?}, block_threads: {}, barrier: Barrier::{:?} }},",
            k.file, k.name, k.block_threads, k.barrier
        )
        .unwrap();
    }
    out.push_str("];\n");
    out
}

/// The host emulation's registry: each kernel by name, unpacked, with how its threads run.
fn host_registry(kernels: &[KernelSpec]) -> String {
    let mut out = String::from("static const HostKernel HOST_KERNELS[] = {\n");
    for kernel in kernels {
        let threads = match kernel.barrier {
            Barrier::Unsynchronised => "OneByOne",
            Barrier::Block => "BlockAtOnce",
            Barrier::Grid => "GridAtOnce",
        };
        writeln!(
            out,
            "    {{{:?}, unpacked({}), Threads::{threads}}},",
            kernel.name, kernel.name
        )
        .unwrap();
    }
    out.push_str("};\n");
    out
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
