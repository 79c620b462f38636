//! The engines a GPU test runs on: a CUDA device where one opens (else the test prints that it
//! skipped), and everywhere the same engine code with kernels/*.cu compiled as C++ for the host
//! (tests/host_cuda), which needs only a C++20 compiler; and how their results are compared.

// Each test crate uses some of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use melody_engine::gpu::{self, kernels, Gpu};

/// Every element within atol + rtol·|cpu| (rtol 1e-4 in f32; atol covers values near zero,
/// where the summation order of the products decides the last bits).
pub const RTOL: f32 = 1e-4;
pub const ATOL: f32 = 1e-5;

/// One #[test] per engine for each body taking a `gpu::Gpu` (and, if it names a second
/// parameter, the engine's name, "host" or "cuda"): `NAME::host` on the host emulation and
/// `NAME::cuda` on a CUDA device, each skipping with a printed line where its engine is missing,
/// so a failure names its case and its engine.
#[macro_export]
macro_rules! test_engines {
    ($($(#[doc = $doc:literal])* fn $name:ident($gpu:ident $(, $engine:ident)?) $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            use super::*;

            fn body($gpu: melody_engine::gpu::Gpu, _engine: &'static str) {
                $(let $engine = _engine;)?
                $body
            }

            #[test]
            fn host() {
                if let Some(gpu) = engines::on_host() {
                    body(gpu, "host");
                }
            }

            #[test]
            fn cuda() {
                if let Some(gpu) = engines::device() {
                    body(gpu, "cuda");
                }
            }
        }
    )*};
}

/// The CUDA device, or None after saying why there is none.
pub fn device() -> Option<Gpu> {
    match gpu::open() {
        Ok(gpu) => {
            eprintln!("device: {}", gpu.description());
            Some(gpu)
        }
        Err(e) => {
            eprintln!("skipped on CUDA: no usable device ({e})");
            None
        }
    }
}

/// kernels/*.cu compiled for the host into a shared library, once per test run.
pub fn host_library() -> Option<&'static PathBuf> {
    static LIBRARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let source = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/host_cuda/kernels_on_host.cpp"
            );
            // A test binary copied to another machine (.ci/device-bundle) has no sources.
            if !std::path::Path::new(source).exists() {
                assert!(!super::common::in_ci(), "CI=true but {source} is missing");
                eprintln!("skipped on the host: {source} is not on this machine");
                return None;
            }
            let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            std::fs::create_dir_all(&out_dir).unwrap();
            let library = out_dir.join("kernels_on_host.so");
            let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
            let built = Command::new(&compiler)
                .args([
                    "-std=c++20",
                    "-O2",
                    "-shared",
                    "-fPIC",
                    "-Wno-unknown-pragmas",
                ])
                .arg(format!("-I{}", kernels::HOST_REGISTRY_DIR))
                .arg("-o")
                .arg(&library)
                .arg(source)
                .arg("-lpthread")
                .output();
            match built {
                Ok(out) if out.status.success() => Some(library),
                Ok(out) => panic!(
                    "{compiler} could not compile the kernels for the host:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => {
                    assert!(
                        !super::common::in_ci(),
                        "CI=true but no C++ compiler ({compiler}: {e})"
                    );
                    eprintln!("skipped on the host: no C++ compiler ({compiler}: {e})");
                    None
                }
            }
        })
        .as_ref()
}

/// The host emulation, or None after saying why there is none.
pub fn on_host() -> Option<Gpu> {
    let library = host_library()?;
    Some(gpu::open_on_host(library).unwrap_or_else(|e| panic!("{e}")))
}

/// Asserts every element of `gpu` is within ATOL + RTOL·|cpu| of `cpu`, and prints the worst
/// element, as llm.c's tests do.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let excess = (g - c).abs() / (ATOL + RTOL * c.abs());
        assert!(!excess.is_nan(), "{what}[{i}]: gpu {g}, cpu {c}");
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let i = worst.1;
    eprintln!(
        "  {what}: worst |Δ| = {:.3e} at {i} (gpu {}, cpu {}), {:.2} of the bound",
        (gpu[i] - cpu[i]).abs(),
        gpu[i],
        cpu[i],
        worst.0
    );
    assert!(worst.0 <= 1.0, "{what}: element {i} outside the bound");
}
