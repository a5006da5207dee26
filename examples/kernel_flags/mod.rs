//! What the kernel timers (gemm, attention) share: their flags, `--isa` (the families to time) and `--threads`.

use brief::models::kernels::{isa, Isa};

/// The command line, read flag by flag.
pub struct Flags(Vec<String>);

impl Flags {
    pub fn from_env() -> Self {
        Self(std::env::args().collect())
    }

    /// The word after `flag`, if the flag is given.
    pub fn value(&self, flag: &str) -> Option<String> {
        self.0.iter().position(|a| a == flag).and_then(|i| self.0.get(i + 1)).cloned()
    }

    #[allow(dead_code)] // each example compiles this module on its own; attention has no switch
    pub fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }

    /// The families `--isa` names (default: every family this CPU runs, the lowest first), after sizing the
    /// thread pool as `--threads` says.
    pub fn families(&self) -> anyhow::Result<Vec<Isa>> {
        if let Some(t) = self.value("--threads") {
            rayon::ThreadPoolBuilder::new().num_threads(t.parse()?).build_global()?;
        }
        Ok(match self.value("--isa") {
            Some(list) => list.split(',').map(Isa::parse).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?,
            None => isa::available().into_iter().rev().collect(),
        })
    }
}
