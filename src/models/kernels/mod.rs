//! CPU kernels for the hot paths that candle's generic operations serve poorly: products with static weights
//! packed once at load (f32, bf16 or int8), attention on strided views and the row reductions of scoring,
//! each for AVX-512, AVX2 and plain Rust, the family chosen at run time ([`isa`]).

pub mod attention;
pub mod gemm;
pub mod isa;
pub mod math;

pub use gemm::{Folded, PackedMatrix, Precision};
pub use isa::Isa;

/// The output buffer of a parallel kernel, shared by tasks that each write their own disjoint part of it.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: every kernel that shares one gives each task a disjoint part of the buffer to write (see their callers).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Through a method, so that closures capture the wrapper (which is `Sync`) rather than the raw pointer.
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}
