//! One model as the service uses it: texts in, texts out, through the cache when there is one. An [`Engine`]
//! used directly (one thread) or a [`CachedModel`] (a worker thread, shared by many callers, and the cache).

use std::sync::Arc;
use std::time::Instant;

use super::ServiceError;
use crate::engine::worker::Worker;
use crate::engine::{Codec, Engine};
use crate::generate::attention::AttentionRows;
use crate::generate::Overrides;
use crate::metrics::Metrics;
use crate::store::{Entry, KeyParts, Lookup, Store};

/// One output text, and whether it came entirely from the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    pub text: String,
    /// The next best outputs, best first, when the search returned several (`num_return_sequences`); else empty.
    pub alternatives: Vec<String>,
    pub cached: bool,
}

impl Generated {
    /// A text's outputs (best first) as a result.
    fn from_outputs(mut outputs: Vec<String>, cached: bool) -> Self {
        let text = if outputs.is_empty() { String::new() } else { outputs.remove(0) };
        Self { text, alternatives: outputs, cached }
    }
}

/// What the cache stores for one piece: its text, or with several outputs the JSON list of them (under keys that
/// hold `num_return_sequences`, so that the two forms never meet).
fn stored_form(outputs: &[String], n_best: bool) -> String {
    if n_best {
        serde_json::to_string(outputs).expect("a list of strings serializes")
    } else {
        outputs.first().cloned().unwrap_or_default()
    }
}

/// The outputs a cached entry holds; `None` when an n-best entry is not a list (treated as a miss).
fn from_stored(stored: String, n_best: bool) -> Option<Vec<String>> {
    if n_best {
        serde_json::from_str::<Vec<String>>(&stored).ok().filter(|outputs| !outputs.is_empty())
    } else {
        Some(vec![stored])
    }
}

/// Texts into texts with one model.
pub trait Generator {
    fn codec(&self) -> &Codec;

    /// One output per text, in order (see [`Codec::plan`]: blank texts give blank outputs, long ones are split).
    fn generate(
        &self,
        texts: &[String],
        overrides: &Overrides,
        deadline: Option<Instant>,
    ) -> Result<Vec<Generated>, ServiceError>;

    /// The teacher-forced cross-attention of each (source ids, target ids) pair, a row per target token over the
    /// source tokens (see [`Engine::cross_attention`]); `None` for a model that cannot align (the default).
    fn cross_attention(&self, pairs: Vec<(Vec<u32>, Vec<u32>)>) -> Result<Option<Vec<AttentionRows>>, ServiceError> {
        let _ = pairs;
        Ok(None)
    }
}

impl Generator for Engine {
    fn codec(&self) -> &Codec {
        self.codec()
    }

    fn generate(
        &self,
        texts: &[String],
        overrides: &Overrides,
        _deadline: Option<Instant>,
    ) -> Result<Vec<Generated>, ServiceError> {
        Ok(self
            .generate_texts_nbest(texts, overrides)?
            .into_iter()
            .map(|o| Generated::from_outputs(o, false))
            .collect())
    }

    fn cross_attention(&self, pairs: Vec<(Vec<u32>, Vec<u32>)>) -> Result<Option<Vec<AttentionRows>>, ServiceError> {
        Ok(Engine::cross_attention(self, &pairs)?)
    }
}

/// A model on its worker thread, with the cache in front of it.
pub struct CachedModel {
    worker: Worker,
    cache: Option<Arc<Store>>,
    metrics: Arc<Metrics>,
    /// The task name in cache keys (`translate`, `summarize`).
    task: String,
}

impl CachedModel {
    /// `cache` is `None` to compute everything.
    pub fn new(worker: Worker, cache: Option<Arc<Store>>, metrics: Arc<Metrics>, task: &str) -> Self {
        Self { worker, cache, metrics, task: task.to_string() }
    }

    pub fn worker(&self) -> &Worker {
        &self.worker
    }
}

impl Generator for CachedModel {
    fn codec(&self) -> &Codec {
        self.worker.codec()
    }

    /// Uncached: on the worker's thread, ahead of queued generation.
    fn cross_attention(&self, pairs: Vec<(Vec<u32>, Vec<u32>)>) -> Result<Option<Vec<AttentionRows>>, ServiceError> {
        Ok(self.worker.cross_attention(pairs, None)?)
    }

    fn generate(
        &self,
        texts: &[String],
        overrides: &Overrides,
        deadline: Option<Instant>,
    ) -> Result<Vec<Generated>, ServiceError> {
        let codec = self.worker.codec();
        let options = codec.search_options(overrides)?;
        let plan = codec.plan(texts)?;
        let options_json = serde_json::to_string(&options).expect("search options serialize");
        let info = codec.info();
        let computation = codec.computation_key();
        let inputs: Vec<String> = plan.pieces.iter().map(|p| format!("{}{}", codec.prefix(), p.text)).collect();
        let keys: Vec<_> = inputs
            .iter()
            .map(|input| {
                KeyParts {
                    model_id: &info.id,
                    revision: &info.revision,
                    weights: &computation,
                    task: &self.task,
                    options: &options_json,
                    input,
                }
                .key()
            })
            .collect();
        // The cache never fails a request: what cannot be read is computed, what cannot be stored is only
        // answered (the cache logs the failure once and `/health` shows it while it lasts).
        let labels = [("kind", self.task.as_str())];
        let lookup = match &self.cache {
            Some(cache) => cache.get_many(&keys).unwrap_or_else(|_| {
                self.metrics.inc("brief_cache_errors_total", &[("op", "read")], 1.0);
                Lookup::misses(keys.len())
            }),
            None => Lookup::misses(keys.len()),
        };
        if lookup.corrupt > 0 {
            self.metrics.inc("brief_cache_corrupt_total", &labels, lookup.corrupt as f64);
        }
        let n_best = options.num_return_sequences > 1;
        let mut outputs: Vec<Option<Vec<String>>> =
            lookup.outputs.into_iter().map(|o| o.and_then(|stored| from_stored(stored, n_best))).collect();
        let hits: Vec<bool> = outputs.iter().map(Option::is_some).collect();
        let misses: Vec<usize> = (0..outputs.len()).filter(|&i| outputs[i].is_none()).collect();
        if self.cache.is_some() {
            self.metrics.inc("brief_cache_hits_total", &labels, (outputs.len() - misses.len()) as f64);
            self.metrics.inc("brief_cache_misses_total", &labels, misses.len() as f64);
        }
        if !misses.is_empty() {
            let sources: Vec<Vec<u32>> = misses.iter().map(|&i| plan.pieces[i].ids.clone()).collect();
            let generated = self.worker.generate(sources, options, deadline)?;
            let decoded = generated
                .iter()
                .map(|hypotheses| hypotheses.iter().map(|ids| codec.decode(ids)).collect())
                .collect::<Result<Vec<Vec<String>>, _>>()?;
            if let Some(cache) = &self.cache {
                let model = format!("{}@{}", info.id, info.revision);
                let stored: Vec<String> = decoded.iter().map(|o| stored_form(o, n_best)).collect();
                let entries: Vec<Entry<'_>> = misses
                    .iter()
                    .zip(&stored)
                    .map(|(&i, output)| Entry {
                        key: keys[i],
                        task: &self.task,
                        model: &model,
                        params: &options_json,
                        input: &inputs[i],
                        output,
                    })
                    .collect();
                if cache.put_many(&entries).is_err() {
                    self.metrics.inc("brief_cache_errors_total", &[("op", "write")], 1.0);
                }
            }
            for (&i, texts) in misses.iter().zip(decoded) {
                outputs[i] = Some(texts);
            }
        }
        let outputs: Vec<Vec<String>> = outputs.into_iter().map(Option::unwrap_or_default).collect();
        let texts_out = plan.assemble(&outputs);
        Ok(texts_out
            .into_iter()
            .zip(&plan.texts)
            .map(|(texts, pieces)| {
                Generated::from_outputs(texts, !pieces.is_empty() && pieces.iter().all(|&i| hits[i]))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_best_outputs_are_stored_as_a_list_and_single_ones_as_text() {
        let outputs = vec!["Rice prices rose.".to_string(), "The price of rice \"rose\".".to_string()];
        let stored = stored_form(&outputs, true);
        assert_eq!(stored, r#"["Rice prices rose.","The price of rice \"rose\"."]"#);
        assert_eq!(from_stored(stored, true), Some(outputs.clone()));
        assert_eq!(stored_form(&outputs[..1], false), "Rice prices rose.");
        assert_eq!(from_stored("[\"a\"]".into(), false), Some(vec!["[\"a\"]".to_string()]));
        assert_eq!(from_stored("not a list".into(), true), None);
        assert_eq!(from_stored("[]".into(), true), None);
    }

    #[test]
    fn the_best_output_is_the_text_and_the_rest_are_alternatives() {
        let g = Generated::from_outputs(vec!["a".into(), "b".into(), "c".into()], true);
        assert_eq!((g.text.as_str(), g.alternatives, g.cached), ("a", vec!["b".to_string(), "c".into()], true));
        assert_eq!(
            Generated::from_outputs(vec!["a".into()], false),
            Generated { text: "a".into(), ..Default::default() }
        );
    }
}
