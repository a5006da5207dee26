//! `brief`: Indonesian news to English briefs, with MarianMT and T5 models running on candle.
//!
//! Layers, each depending only on those below it: [`cli`] → [`service`] → [`engine`] → [`generate`] →
//! [`models`], with [`tokenize`] beside the models.

pub mod cli;
pub mod engine;
pub mod generate;
pub mod models;
pub mod service;
pub mod tokenize;
