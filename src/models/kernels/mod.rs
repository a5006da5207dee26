//! CPU kernels for the hot paths that candle's generic operations serve poorly: products with static weights
//! packed once at load (f32, bf16 or int8), attention on strided views and the row reductions of scoring,
//! each for AVX-512, AVX2 and plain Rust, the family chosen at run time ([`isa`]).

pub mod attention;
pub mod gemm;
pub mod isa;
pub mod math;

pub use gemm::{PackedMatrix, Precision};
pub use isa::Isa;
