//! A blocking client of a running `brief serve`: `POST /v1/briefs` and `GET /health`, with bounded retries that
//! follow `Retry-After` on 429, 502 and 503 and back off on connection errors.

use std::time::Duration;

use serde::Serialize;

use crate::generate::{EarlyStoppingOption, Overrides};
use crate::service::{Article, Brief, BriefOptions};

/// The first wait of the exponential backoff (doubled on each retry) when the server gives no `Retry-After`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The shortest wait before a retry, even when `Retry-After` says 0: a server that keeps refusing is never
/// asked in a tight loop.
const MIN_WAIT: Duration = Duration::from_millis(100);

/// Most characters of a non-JSON error body kept in the error message.
const MAX_BODY_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server refused the request (4xx but 429): its `error` text, which is the article's error.
    #[error("{message}")]
    Rejected { status: u16, message: String },
    /// A 5xx that is not retried (500, 504): the server's `error` text.
    #[error("the server failed ({status}): {message}")]
    Failed { status: u16, message: String },
    /// Still busy or unreachable when the retries ran out.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp { attempts: u32, last: String },
    /// A brief, but not of the article sent (a proxy that mixed answers up).
    #[error("the server answered with the brief {id} of {name}, not this article's")]
    WrongBrief { id: String, name: String },
    /// The answer is not what `brief serve` sends.
    #[error("{url}: unexpected answer: {message}")]
    Unexpected { url: String, message: String },
}

/// Where the server is and how requests to it are made.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://10.0.0.5:8080` (a trailing `/` is dropped).
    pub server: String,
    /// Sent as `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Retries after the first attempt of a request.
    pub retries: u32,
    /// Longest wait before one retry (a longer `Retry-After` is cut to this).
    pub max_wait: Duration,
    /// Most time one attempt may take, connecting to the end of the answer.
    pub request_timeout: Duration,
}

pub struct Client {
    agent: ureq::Agent,
    config: ClientConfig,
}

/// The body of `POST /v1/briefs`.
#[derive(Debug, Serialize)]
struct BriefRequest<'a> {
    text: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outlet: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    published_at: Option<&'a str>,
    translate: Settings,
    summary: Settings,
    /// Always sent: the batch's choice, not the server's default, decides.
    keep_boilerplate: bool,
}

/// The search settings a request may carry; only those set go, so the server's defaults fill the rest.
#[derive(Debug, Default, Serialize)]
struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    num_beams: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_new_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_new_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_repeat_ngram_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    early_stopping: Option<EarlyStoppingOption>,
}

impl From<&Overrides> for Settings {
    fn from(o: &Overrides) -> Self {
        Settings {
            num_beams: o.num_beams,
            max_new_tokens: o.max_new_tokens,
            min_length: o.min_length,
            min_new_tokens: o.min_new_tokens,
            length_penalty: o.length_penalty,
            no_repeat_ngram_size: o.no_repeat_ngram_size,
            early_stopping: o.early_stopping,
        }
    }
}

/// What one attempt came to.
enum Attempt {
    Done(Box<ureq::Response>),
    /// Worth another try, after the server's `Retry-After` if it gave one.
    Again {
        last: String,
        retry_after: Option<Duration>,
    },
    Final(RemoteError),
}

impl Client {
    pub fn new(mut config: ClientConfig) -> Client {
        config.server = config.server.trim_end_matches('/').to_string();
        let agent = ureq::AgentBuilder::new().timeout(config.request_timeout).build();
        Client { agent, config }
    }

    /// Waits until the server answers `/health` with 200 (it answers 503 while its models load).
    pub fn wait_ready(&self) -> Result<(), RemoteError> {
        let url = format!("{}/health", self.config.server);
        self.call(&url, 0, || classify(&url, self.agent.get(&url).call())).map(drop)
    }

    /// The brief of `article`, made by the server with `options`' settings where set.
    pub fn brief(&self, article: &Article, options: &BriefOptions) -> Result<Brief, RemoteError> {
        let url = format!("{}/v1/briefs", self.config.server);
        let text = article.text.as_str();
        let meta = &article.meta;
        let body = BriefRequest {
            text,
            name: &article.name,
            outlet: meta.outlet.as_deref(),
            url: meta.url.as_deref(),
            published_at: meta.published_at.as_deref(),
            translate: Settings::from(&options.translate),
            summary: Settings::from(&options.summary.overrides),
            keep_boilerplate: options.keep_boilerplate,
        };
        let mut request = self.agent.post(&url);
        if let Some(key) = &self.config.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let seed = text.len() as u64;
        let response = self.call(&url, seed, || classify(&url, request.clone().send_json(&body)))?;
        response.into_json().map_err(|e| RemoteError::Unexpected { url, message: format!("not a brief: {e}") })
    }

    /// Tries `send` until it is answered or the retries run out; `seed` spreads the waits of different requests
    /// apart.
    fn call(&self, url: &str, seed: u64, send: impl Fn() -> Attempt) -> Result<ureq::Response, RemoteError> {
        let mut attempt = 0;
        loop {
            let (last, retry_after) = match send() {
                Attempt::Done(response) => return Ok(*response),
                Attempt::Final(e) => return Err(e),
                Attempt::Again { last, retry_after } => (last, retry_after),
            };
            if attempt >= self.config.retries {
                return Err(RemoteError::GaveUp { attempts: attempt + 1, last });
            }
            let wait = retry_after
                .unwrap_or_else(|| backoff(attempt, seed))
                .clamp(MIN_WAIT, self.config.max_wait.max(MIN_WAIT));
            tracing::info!(url, attempt, wait_ms = wait.as_millis() as u64, reason = %last, "retrying");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }
}

fn classify(url: &str, result: Result<ureq::Response, ureq::Error>) -> Attempt {
    match result {
        Ok(response) => Attempt::Done(Box::new(response)),
        Err(ureq::Error::Status(status, response)) if matches!(status, 429 | 502 | 503) => {
            let retry_after = response.header("Retry-After").and_then(|v| v.trim().parse().ok());
            let last = format!("{url}: {status}: {}", error_text(response));
            Attempt::Again { last, retry_after: retry_after.map(Duration::from_secs) }
        }
        Err(ureq::Error::Status(status, response)) if status < 500 => {
            Attempt::Final(RemoteError::Rejected { status, message: error_text(response) })
        }
        Err(ureq::Error::Status(status, response)) => {
            Attempt::Final(RemoteError::Failed { status, message: error_text(response) })
        }
        Err(ureq::Error::Transport(t)) => Attempt::Again { last: t.to_string(), retry_after: None },
    }
}

/// The `error` of a `brief serve` error body, else the start of the body as it is.
fn error_text(response: ureq::Response) -> String {
    let status_text = response.status_text().to_string();
    let body = response.into_string().unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(json) if json["error"].is_string() => json["error"].as_str().unwrap_or_default().to_string(),
        _ if body.trim().is_empty() => status_text,
        _ => body.trim().chars().take(MAX_BODY_CHARS).collect(),
    }
}

/// 0.5 s doubled per retry, plus up to a quarter more so that requests failing together come back apart.
fn backoff(attempt: u32, seed: u64) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1 << attempt.min(16));
    // A fraction in [0, 1) from the seed and the attempt (Weyl sequence by the golden ratio).
    let fraction =
        ((seed.wrapping_add(attempt as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(1.0 + fraction / 4.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_at_most_a_quarter_more() {
        for attempt in 0..6 {
            for seed in [0, 1, 7, 1 << 40] {
                let base = FIRST_BACKOFF * (1 << attempt);
                let wait = backoff(attempt, seed);
                assert!(wait >= base && wait < base.mul_f64(1.25), "{attempt} {seed}: {wait:?}");
            }
        }
        assert_eq!(backoff(0, 0), FIRST_BACKOFF);
    }

    #[test]
    fn only_set_settings_are_sent() {
        let overrides = Overrides { num_beams: Some(2), max_length: Some(9), ..Default::default() };
        let json = serde_json::to_string(&Settings::from(&overrides)).unwrap();
        assert_eq!(json, r#"{"num_beams":2}"#);
    }
}
