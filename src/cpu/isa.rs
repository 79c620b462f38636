//! The one place that decides which instruction set the CPU engine's own kernels use: the best
//! the processor has (detected at run time), or a lower one forced by `ENGINE_CPU_ISA`.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that forces a kernel instruction set (`avx512`, `avx2`, `portable`).
pub const ISA_VARIABLE: &str = "ENGINE_CPU_ISA";

/// An instruction set the kernels of [`super::microkernel`] are compiled for, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust that the compiler vectorises for the target's baseline (SSE2 on x86-64).
    Portable,
    /// AVX2 with FMA: 8 lanes, fused multiply-add.
    Avx2,
    /// AVX-512F with DQ (64-bit lanes multiplied, for the dropout hash): 16 lanes, 32 vector
    /// registers.
    Avx512,
}

impl Isa {
    /// Every instruction set, lowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name `ENGINE_CPU_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this processor runs the kernels of this instruction set.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best instruction set this processor supports.
    pub fn best() -> Isa {
        *Isa::ALL
            .iter()
            .rev()
            .find(|isa| isa.supported())
            .expect("portable is always supported")
    }

    /// The instruction set `value` names (a value of `ENGINE_CPU_ISA`), if this processor has it.
    pub fn parse(value: &str) -> Result<Isa, String> {
        let isa = Isa::ALL
            .into_iter()
            .find(|isa| isa.name() == value.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!("{ISA_VARIABLE}={value:?}: expected avx512, avx2 or portable")
            })?;
        match isa.supported() {
            true => Ok(isa),
            false => Err(format!(
                "{ISA_VARIABLE}={value}: this CPU lacks {}; it supports up to {}",
                isa.name(),
                Isa::best().name()
            )),
        }
    }

    /// The instruction set of this process: `ENGINE_CPU_ISA` when set, else [`Isa::best`]. Read
    /// once; an unknown or unsupported value is an error every time.
    pub fn selected() -> Result<Isa, String> {
        static SELECTED: OnceLock<Result<Isa, String>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var(ISA_VARIABLE) {
                Ok(value) => Isa::parse(&value),
                Err(_) => Ok(Isa::best()),
            })
            .clone()
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which code runs the f32 recurrence: the engine's own packed kernels for an instruction set, or
/// the generic reference functions of [`super::lstm`] (products through `gemm`), which f64 always
/// uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernels {
    Reference,
    Packed(Isa),
}

impl Kernels {
    /// The kernels of this process: packed for [`Isa::selected`]. Panics with the message of an
    /// invalid `ENGINE_CPU_ISA` (the CLI checks it first and reports it as an error).
    pub fn selected() -> Kernels {
        Kernels::Packed(Isa::selected().unwrap_or_else(|e| panic!("{e}")))
    }
}

impl fmt::Display for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kernels::Reference => f.write_str("reference (gemm)"),
            Kernels::Packed(isa) => write!(f, "{isa} kernels"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_are_errors() {
        assert_eq!(Isa::parse("portable"), Ok(Isa::Portable));
        assert_eq!(Isa::parse(" AVX2 ").is_ok(), Isa::Avx2.supported());
        let err = Isa::parse("sse9").unwrap_err();
        assert!(
            err.contains("ENGINE_CPU_ISA") && err.contains("avx512"),
            "{err}"
        );
        if !Isa::Avx512.supported() {
            let err = Isa::parse("avx512").unwrap_err();
            assert!(err.contains("lacks avx512"), "{err}");
        }
        assert!(Isa::best().supported());
    }
}
