//! Which family of CPU kernels runs: the best one this CPU has, or a lower one forced with `BRIEF_CPU_ISA`
//! (`--cpu-isa`), as `CT2_FORCE_CPU_ISA` does for CTranslate2. Every kernel dispatches on [`active`] (or on an
//! explicit family in tests), so each family can be run, tested and measured on a machine that has a higher one.

use std::sync::atomic::{AtomicU8, Ordering};

/// A kernel family, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust loops (vectorised by the compiler for the build's baseline: SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// AVX2 + FMA (Haswell and later, AMD Zen 1–4 without AVX-512).
    Avx2,
    /// AVX2 + FMA + AVX-VNNI (Intel Alder Lake and later desktop/laptop CPUs, AMD Zen 5 desktop parts).
    Avx2Vnni,
    /// AVX-512F, with AVX512-BF16 and AVX512-VNNI used where present (Xeon, Zen 4/5).
    Avx512,
}

/// The families, lowest first.
pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx2Vnni, Isa::Avx512];

/// The names `BRIEF_CPU_ISA` and `--cpu-isa` take.
pub const NAMES: &str = "avx512, avx2-vnni, avx2, portable";

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx2Vnni => "avx2-vnni",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a family name (case-insensitive; `generic` is taken for `portable`, as CTranslate2 calls it).
    pub fn parse(name: &str) -> Result<Isa, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" => Ok(Isa::Avx512),
            "avx2-vnni" | "avx2_vnni" | "avxvnni" => Ok(Isa::Avx2Vnni),
            "avx2" => Ok(Isa::Avx2),
            "portable" | "generic" => Ok(Isa::Portable),
            other => Err(format!("CPU kernel family {other:?} is not one of {NAMES}")),
        }
    }

    /// Whether this CPU can run the family's kernels.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => has_avx2_fma(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Vnni => has_avx2_fma() && std::arch::is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f") && has_avx2_fma(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// bf16 products in hardware (AVX512-BF16); elsewhere the bf16 mode widens bf16 to f32 in the kernel.
    pub fn bf16_native(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Isa::Avx512 {
            return std::arch::is_x86_feature_detected!("avx512bf16");
        }
        false
    }

    /// 8-bit products with AVX512-VNNI (`vpdpbusd` on 16 lanes).
    pub fn vnni512(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Isa::Avx512 {
            return std::arch::is_x86_feature_detected!("avx512vnni");
        }
        false
    }

    /// 8-bit products with AVX-VNNI (`vpdpbusd` on 8 lanes): the avx2-vnni family, or an AVX-512 CPU without
    /// AVX512-VNNI that has it.
    pub fn vnni256(self) -> bool {
        match self {
            Isa::Avx2Vnni => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => !self.vnni512() && std::arch::is_x86_feature_detected!("avxvnni"),
            _ => false,
        }
    }

    /// What the family uses on this CPU, for logs, `brief models` and `/health` (e.g. `avx512 (bf16, vnni)`).
    pub fn describe(self) -> String {
        let extras: Vec<&str> = [(self.bf16_native(), "bf16"), (self.vnni512() || self.vnni256(), "vnni")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        if extras.is_empty() {
            self.name().to_string()
        } else {
            format!("{} ({})", self.name(), extras.join(", "))
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The best family this CPU runs.
pub fn best() -> Isa {
    ALL.into_iter().rev().find(|isa| isa.supported()).unwrap_or(Isa::Portable)
}

/// Every family this CPU runs, lowest first (the kernel tests run each of them).
pub fn available() -> Vec<Isa> {
    ALL.into_iter().filter(|isa| isa.supported()).collect()
}

/// 0 until chosen; then the index in [`ALL`] plus one.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The family the kernels use: the one [`set`] or [`choose`] chose; else `BRIEF_CPU_ISA` when it names a family
/// this CPU runs (a bad value is logged and ignored); else [`best`].
pub fn active() -> Isa {
    match ACTIVE.load(Ordering::Relaxed) {
        0 => choose(None).unwrap_or_else(|e| {
            tracing::warn!(error = %e, using = %best(), "BRIEF_CPU_ISA ignored");
            ACTIVE.store(index(best()), Ordering::Relaxed);
            best()
        }),
        i => ALL[usize::from(i) - 1],
    }
}

/// Forces `isa` for the rest of the process; refuses a family this CPU cannot run.
pub fn set(isa: Isa) -> Result<(), String> {
    if !isa.supported() {
        return Err(format!("this CPU cannot run the {isa} kernels (it runs: {})", names(&available())));
    }
    ACTIVE.store(index(isa), Ordering::Relaxed);
    Ok(())
}

/// Makes `name` (from `--cpu-isa`) the family that runs; without a name, `BRIEF_CPU_ISA`'s, else the best one.
pub fn choose(name: Option<&str>) -> Result<Isa, String> {
    let env = std::env::var("BRIEF_CPU_ISA").ok();
    let isa = match name.or(env.as_deref()).filter(|n| !n.trim().is_empty()) {
        Some(n) => Isa::parse(n)?,
        None => best(),
    };
    set(isa)?;
    Ok(isa)
}

fn index(isa: Isa) -> u8 {
    ALL.iter().position(|&i| i == isa).expect("a listed family") as u8 + 1
}

fn names(isas: &[Isa]) -> String {
    isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for isa in ALL {
            assert_eq!(Isa::parse(isa.name()), Ok(isa));
        }
        assert_eq!(Isa::parse(" AVX2 "), Ok(Isa::Avx2));
        assert_eq!(Isa::parse("generic"), Ok(Isa::Portable));
        assert_eq!(Isa::parse("sse4"), Err(format!("CPU kernel family \"sse4\" is not one of {NAMES}")));
    }

    #[test]
    fn the_best_family_is_supported_and_portable_always_is() {
        assert!(best().supported());
        assert!(Isa::Portable.supported());
        assert_eq!(available().first(), Some(&Isa::Portable));
        assert_eq!(available().last(), Some(&best()));
    }
}
