//! `brief`: Indonesian news to English briefs, with MarianMT and T5 models running on candle.

pub mod generate;
pub mod models;
pub mod tokenize;
