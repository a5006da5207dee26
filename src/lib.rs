//! `brief`: Indonesian news to English briefs, with MarianMT and T5 models running on candle.
//!
//! Layers, each depending only on those below it: [`cli`], [`http`], [`batch`] → [`service`] (with [`store`]) →
//! [`engine`] → [`generate`] → [`models`], with [`tokenize`] beside the models and [`metrics`] and [`probe`]
//! (the health check's client) at the bottom.

pub mod batch;
pub mod cli;
pub mod engine;
pub mod generate;
pub mod http;
pub mod metrics;
pub mod models;
pub mod probe;
pub mod service;
pub mod store;
pub mod tokenize;
