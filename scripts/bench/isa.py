#!/usr/bin/env python3
"""The environment that forces brief, CTranslate2 and PyTorch onto one CPU kernel family (--isa of bench.py,
whole.py and run.sh), and what CTranslate2 says it picked.

brief reads BRIEF_CPU_ISA; CTranslate2 reads CT2_FORCE_CPU_ISA for its own kernels, but its GEMMs (and PyTorch's)
run in Intel MKL and oneDNN, which dispatch on their own: MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA cap them
at the same family (AVX-512 with VNNI and BF16 but no AMX, as brief's avx512 kernels), and ATEN_CPU_CAPABILITY caps
PyTorch's own kernels. Without --isa nothing is set: each library picks its best, as a user gets it.

Usage: isa.py [avx512|avx2-vnni|avx2|portable]   (prints the variables and whether this CPU runs the family)
"""
import re
import sys
from pathlib import Path

# brief's name → (CTranslate2, MKL, oneDNN, ATen, the /proc/cpuinfo flags the family needs)
FAMILIES = {
    "avx512": ("AVX512", "AVX512_E3", "AVX512_CORE_BF16", "avx512", ("avx512f", "avx2", "fma")),
    "avx2-vnni": ("AVX2", "AVX2_E1", "AVX2_VNNI", "avx2", ("avx2", "fma", "avx_vnni")),
    "avx2": ("AVX2", "AVX2", "AVX2", "avx2", ("avx2", "fma")),
    "portable": ("GENERIC", "SSE4_2", "SSE41", "default", ()),
}
NAMES = list(FAMILIES)


def env_for(isa):
    """The variables that force `isa` (None: the ones to clear, so each library picks its best)."""
    if isa is None:
        return {}
    ct2, mkl, onednn, aten, _ = FAMILIES[isa]
    return {"BRIEF_CPU_ISA": isa, "CT2_FORCE_CPU_ISA": ct2, "MKL_ENABLE_INSTRUCTIONS": mkl,
            "ONEDNN_MAX_CPU_ISA": onednn, "ATEN_CPU_CAPABILITY": aten}


def missing_flags(isa):
    """The CPU flags `isa` needs that this machine lacks (empty: it runs here)."""
    if isa is None:
        return []
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(next((l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")), []))
    return [f for f in FAMILIES[isa][4] if f not in flags]


def check(isa):
    """Exits with a message when this CPU cannot run `isa` (brief would quietly fall back, CT2 would throw)."""
    lacking = missing_flags(isa)
    if lacking:
        raise SystemExit(f"--isa {isa}: this CPU lacks {', '.join(lacking)}")


def ct2_reported(stderr):
    """What CTranslate2 logged (with CT2_VERBOSE=1) about its ISA and GEMM backends: {"isa": "AVX512", ...}."""
    found = {}
    for key, pattern in (("isa", r"Selected ISA: (\S+)"), ("sgemm", r"SGEMM backend: ([^\n]+)"),
                         ("gemm_s8", r"GEMM_S8 backend: ([^\n]+)")):
        match = re.search(pattern, stderr)
        if match:
            found[key] = match.group(1).strip()
    return found


def brief_reported(stderr):
    """The kernel family brief logged (at info, target brief::models::runtime: "CPU kernels cpu_isa=avx2 ...")."""
    match = re.search(r"CPU kernels cpu_isa=(.+?)(?: best=|$)", stderr, re.MULTILINE)
    return match.group(1) if match else None


def mkl_reported(stderr):
    """The code path MKL says it dispatches to (MKL_VERBOSE=1 logs it on stdout), e.g. "Intel(R) AVX2 ..."."""
    match = re.search(r"MKL_VERBOSE oneMKL [^\n]*? architecture ([^\n]*?), Lnx", stderr)
    return match.group(1) if match else None


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else None
    if name is not None and name not in FAMILIES:
        raise SystemExit(f"unknown ISA {name!r}: one of {', '.join(NAMES)}")
    for k, v in env_for(name).items():
        print(f"{k}={v}")
    lacking = missing_flags(name)
    print(f"# this CPU {'lacks ' + ', '.join(lacking) if lacking else 'runs it'}")
