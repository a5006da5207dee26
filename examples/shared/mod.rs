//! What the model examples (bench, precision, steps) share: the model, input and device arguments, and reading
//! the input's lines as token ids.

use std::path::PathBuf;

use anyhow::Result;
use brief::tokenize::Tokenizer;

/// The model to run, the text to run it on, and where.
#[derive(clap::Args)]
pub struct Source {
    /// The model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A text file, one sentence a line (blank lines are skipped).
    #[arg(long)]
    pub input: PathBuf,
    /// Input prefix (e.g. `summarize: ` for T5).
    #[arg(long)]
    pub prefix: Option<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl Source {
    /// The first `n` non-blank lines of the input, prefixed and tokenized.
    pub fn sources(&self, tokenizer: &Tokenizer, n: usize) -> Result<Vec<Vec<u32>>> {
        let prefix = self.prefix.as_deref().unwrap_or("");
        let text = std::fs::read_to_string(&self.input)?;
        let lines = text.lines().filter(|l| !l.trim().is_empty()).take(n);
        Ok(lines.map(|l| tokenizer.encode(&format!("{prefix}{l}"))).collect::<Result<_, _>>()?)
    }
}

/// The index of `row`'s largest value (the first of equal ones).
#[allow(dead_code)] // each example compiles this module on its own; bench has no use for it
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0
}
