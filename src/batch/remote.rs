//! `brief batch --server`: the briefs of a folder made by a running `brief serve`, a few articles in flight at
//! once, written as a local batch writes them; an article whose brief is already in the output folder is not sent.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use super::client::{Client, RemoteError};
use super::{article, brief_files, brief_report, failed, file_name, finish, prepare, write_brief, Folder};
use super::{ArticleReport, BatchError, BatchOptions};
use crate::service::brief::{brief_id, SCHEMA};
use crate::service::{Article, Brief};

/// Runs the batch through `client` with `concurrency` articles in flight; `progress(report, done, total)` is
/// called as each article finishes. Fails before writing anything when the server cannot be reached.
pub fn run(
    client: &Client,
    options: &BatchOptions,
    concurrency: usize,
    mut progress: impl FnMut(&ArticleReport, usize, usize),
) -> Result<Vec<ArticleReport>, BatchError> {
    client.wait_ready().map_err(BatchError::ServerNotReady)?;
    let Folder { articles, skipped } = prepare(options)?;
    let total = articles.len();
    let jobs = Jobs { client, options, articles: &articles, next: AtomicUsize::new(0), stop: AtomicBool::new(false) };
    let mut reports = Vec::with_capacity(total);
    let mut fatal = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..concurrency.clamp(1, total.max(1)) {
            let tx = tx.clone();
            let jobs = &jobs;
            scope.spawn(move || jobs.work(&tx));
        }
        drop(tx);
        for result in rx {
            match result {
                Ok(report) => {
                    progress(&report, reports.len() + 1, total);
                    reports.push(report);
                }
                Err(e) => {
                    // A file that cannot be written ends the batch, as it does a local one.
                    jobs.stop.store(true, Ordering::Relaxed);
                    fatal.get_or_insert(e);
                }
            }
        }
    });
    match fatal {
        Some(e) => Err(e),
        None => finish(&options.out, reports, &skipped),
    }
}

/// The articles, shared by the worker threads, each taking the next one not taken.
struct Jobs<'a> {
    client: &'a Client,
    options: &'a BatchOptions,
    articles: &'a [(PathBuf, String)],
    next: AtomicUsize,
    stop: AtomicBool,
}

impl Jobs<'_> {
    fn work(&self, tx: &mpsc::Sender<Result<ArticleReport, BatchError>>) {
        while !self.stop.load(Ordering::Relaxed) {
            let Some((path, stem)) = self.articles.get(self.next.fetch_add(1, Ordering::Relaxed)) else { return };
            if tx.send(self.one(path, stem)).is_err() {
                return;
            }
        }
    }

    fn one(&self, path: &Path, stem: &str) -> Result<ArticleReport, BatchError> {
        let started = Instant::now();
        let name = file_name(path);
        let article = match article::read(path, &name) {
            Ok(article) => article,
            Err(error) => return Ok(failed(&name, 0, 0, error)),
        };
        let words = article.text.split_whitespace().count();
        let out = &self.options.out;
        if let Some(brief) = done_before(out, stem, &article) {
            return Ok(brief_report(stem, &brief, words, 0));
        }
        let result = self.client.brief(&article, &self.options.brief).and_then(|b| of_article(b, &article));
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(brief) => write_brief(out, stem, &brief, words, ms),
            Err(e) => Ok(failed(&name, words, ms, e.to_string())),
        }
    }
}

/// The brief in the output files of `stem` when both are there and it is of this article (same name, text and
/// metadata); the JSON is written last, so an interrupted write is made again.
fn done_before(out: &Path, stem: &str, article: &Article) -> Option<Brief> {
    let (markdown, json) = brief_files(stem);
    if !out.join(markdown).is_file() {
        return None;
    }
    let brief: Brief = serde_json::from_str(&std::fs::read_to_string(out.join(json)).ok()?).ok()?;
    let s = &brief.source;
    let same_meta =
        (&s.outlet, &s.url, &s.published_at) == (&article.meta.outlet, &article.meta.url, &article.meta.published_at);
    (brief.schema == SCHEMA && brief.id == brief_id(&article.text) && s.name == article.name && same_meta)
        .then_some(brief)
}

/// `brief` when it is the brief of this article (a proxy that mixed answers up would give another).
fn of_article(brief: Brief, article: &Article) -> Result<Brief, RemoteError> {
    if brief.id == brief_id(&article.text) && brief.source.name == article.name {
        return Ok(brief);
    }
    Err(RemoteError::WrongBrief { id: brief.id, name: brief.source.name })
}
