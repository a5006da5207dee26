//! CPU kernels for the hot paths that candle's generic operations serve poorly: products with static weights
//! packed once at load (f32, or bf16 for the reduced-precision mode).

pub mod attention;
pub mod gemm;
pub mod math;

pub use gemm::{PackedMatrix, Precision};
