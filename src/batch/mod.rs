//! `brief batch`: every article of a folder (`.txt`, `.md`) becomes a brief, as Markdown and JSON, with an index.
//! Articles go to the models in groups whose sentences are batched together; an article that fails is reported
//! and the others go on; a second run is served from the cache. With `--server`, [`remote`] makes them through a
//! running `brief serve` instead, and this module's files, index and table are the same.

pub mod article;
pub mod client;
pub mod remote;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::service::{Article, Brief, BriefOptions, Service, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// `brief batch --server`: the server does not answer `/health` with 200, even after the retries.
    #[error("the server is not ready: {0}")]
    ServerNotReady(client::RemoteError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io { path: path.to_path_buf(), source }
}

/// What `brief batch` does.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    pub input: PathBuf,
    pub out: PathBuf,
    /// Articles whose sentences go to the models together.
    pub group: usize,
    pub brief: BriefOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the final table and of `index.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ArticleReport {
    /// File name in the input folder.
    pub file: String,
    pub status: Status,
    pub words: usize,
    /// Wall time of the group the article was made in.
    pub ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The article's outlet, address and publication time, when its front matter or sidecar gave them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    /// The brief's files, relative to the output folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ArticleReport {
    fn new(file: &str, status: Status) -> Self {
        Self {
            file: file.to_string(),
            status,
            words: 0,
            ms: 0,
            id: None,
            headline: None,
            summary: None,
            outlet: None,
            url: None,
            published_at: None,
            markdown: None,
            json: None,
            error: None,
        }
    }
}

/// The report of an article that failed with `error`.
fn failed(file: &str, words: usize, ms: u64, error: String) -> ArticleReport {
    ArticleReport { words, ms, error: Some(error), ..ArticleReport::new(file, Status::Failed) }
}

/// The articles of `dir` (`.txt`/`.md` files, by name) and the other entries, which are skipped (an article's
/// sidecar `NAME.json` is neither).
pub fn list(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), BatchError> {
    let mut articles = Vec::new();
    let mut skipped = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let is_article = path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("txt") || e.eq_ignore_ascii_case("md"));
        if is_article {
            articles.push(path);
        } else {
            skipped.push(path);
        }
    }
    articles.sort();
    skipped.retain(|p| !articles.iter().any(|a| article::sidecar(a) == *p));
    skipped.sort();
    Ok((articles, skipped))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Output names: the file stem, unless two articles share it (then the whole file name).
fn output_stems(articles: &[PathBuf]) -> Vec<String> {
    let stem = |p: &Path| p.file_stem().map_or_else(|| file_name(p), |s| s.to_string_lossy().into_owned());
    articles
        .iter()
        .map(|p| {
            let s = stem(p);
            if articles.iter().filter(|q| stem(q) == s).count() > 1 {
                file_name(p).replace('.', "-")
            } else {
                s
            }
        })
        .collect()
}

/// The input folder, read.
struct Folder {
    /// Each article file with the stem of its output files.
    articles: Vec<(PathBuf, String)>,
    /// The entries that are not articles.
    skipped: Vec<PathBuf>,
}

/// Lists the input folder and makes the output folder.
fn prepare(options: &BatchOptions) -> Result<Folder, BatchError> {
    let (articles, skipped) = list(&options.input)?;
    std::fs::create_dir_all(&options.out).map_err(io(&options.out))?;
    let stems = output_stems(&articles);
    Ok(Folder { articles: articles.into_iter().zip(stems).collect(), skipped })
}

/// The reports sorted by file, then the skipped entries, written as the index.
fn finish(out: &Path, mut reports: Vec<ArticleReport>, skipped: &[PathBuf]) -> Result<Vec<ArticleReport>, BatchError> {
    reports.sort_by(|a, b| a.file.cmp(&b.file));
    reports.extend(skipped.iter().map(|p| ArticleReport::new(&file_name(p), Status::Skipped)));
    write_index(out, &reports)?;
    Ok(reports)
}

/// Writes `contents` to `path` through a temporary file and a rename, so a file is whole or absent.
fn write_atomic(path: &Path, contents: &str) -> Result<(), BatchError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Runs the batch; `progress(report, done, total)` is called as each article finishes.
pub fn run(
    service: &Service,
    options: &BatchOptions,
    mut progress: impl FnMut(&ArticleReport, usize, usize),
) -> Result<Vec<ArticleReport>, BatchError> {
    let Folder { articles, skipped } = prepare(options)?;
    let total = articles.len();
    let mut reports: Vec<ArticleReport> = Vec::with_capacity(total + skipped.len());
    let mut done = 0;
    for group in articles.chunks(options.group.max(1)) {
        let started = Instant::now();
        // Unreadable files fail here; the readable ones go to the models together.
        let mut readable: Vec<(Article, &String)> = Vec::new();
        let mut unreadable: Vec<ArticleReport> = Vec::new();
        for (path, stem) in group {
            let name = file_name(path);
            match article::read(path, &name) {
                Ok(article) => readable.push((article, stem)),
                Err(error) => unreadable.push(failed(&name, 0, 0, error)),
            }
        }
        let batch: Vec<Article> = readable.iter().map(|(a, _)| a.clone()).collect();
        let results = service.briefs_of(&batch, &options.brief, None)?;
        let ms = started.elapsed().as_millis() as u64;
        let mut group_reports = unreadable;
        for ((article, stem), result) in readable.iter().zip(results) {
            let words = article.text.split_whitespace().count();
            let report = match result {
                Ok(brief) => write_brief(&options.out, stem, &brief, words, ms)?,
                Err(e) => failed(&article.name, words, ms, e.to_string()),
            };
            group_reports.push(report);
        }
        group_reports.sort_by(|a, b| a.file.cmp(&b.file));
        for report in group_reports {
            done += 1;
            progress(&report, done, total);
            reports.push(report);
        }
    }
    finish(&options.out, reports, &skipped)
}

/// The Markdown and JSON file names of the brief written under `stem`.
fn brief_files(stem: &str) -> (String, String) {
    (format!("{stem}.md"), format!("{stem}.json"))
}

fn write_brief(out: &Path, stem: &str, brief: &Brief, words: usize, ms: u64) -> Result<ArticleReport, BatchError> {
    let (markdown, json) = brief_files(stem);
    write_atomic(&out.join(&markdown), &brief.to_markdown())?;
    write_atomic(&out.join(&json), &format!("{}\n", brief.to_json()))?;
    Ok(brief_report(stem, brief, words, ms))
}

/// The report of an article whose brief is in the files of `stem`.
fn brief_report(stem: &str, brief: &Brief, words: usize, ms: u64) -> ArticleReport {
    let (markdown, json) = brief_files(stem);
    ArticleReport {
        words,
        ms,
        id: Some(brief.id.clone()),
        headline: Some(brief.headline.english.clone()),
        summary: Some(brief.summary.clone()),
        outlet: brief.source.outlet.clone(),
        url: brief.source.url.clone(),
        published_at: brief.source.published_at.clone(),
        markdown: Some(markdown),
        json: Some(json),
        ..ArticleReport::new(&brief.source.name, Status::Ok)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn write_index(out: &Path, reports: &[ArticleReport]) -> Result<(), BatchError> {
    let json = serde_json::json!({ "articles": reports });
    write_atomic(
        &out.join("index.json"),
        &format!("{}\n", serde_json::to_string_pretty(&json).expect("reports serialize")),
    )?;
    let mut md = String::from("# Briefs\n\n| Article | Headline | Words | Status |\n|---|---|---:|---|\n");
    for r in reports {
        let headline = match (&r.headline, &r.markdown) {
            (Some(h), Some(link)) => format!("[{}]({link})", one_line(h)),
            _ => String::new(),
        };
        let status = match &r.error {
            Some(e) => format!("failed: {}", one_line(e)),
            None => r.status.as_str().to_string(),
        };
        md.push_str(&format!("| `{}` | {headline} | {} | {status} |\n", r.file.replace('`', "'"), r.words));
    }
    let counts = |s: Status| reports.iter().filter(|r| r.status == s).count();
    md.push_str(&format!(
        "\n{} briefs, {} failed, {} skipped.\n",
        counts(Status::Ok),
        counts(Status::Failed),
        counts(Status::Skipped)
    ));
    write_atomic(&out.join("index.md"), &md)
}

/// The final table, for people.
pub fn table(reports: &[ArticleReport], elapsed_ms: u64, out: &Path) -> String {
    let width = reports.iter().map(|r| r.file.chars().count()).max().unwrap_or(7).max(7);
    let mut s = format!("{:<width$}  {:<7}  {:>6}  {:>8}\n", "ARTICLE", "STATUS", "WORDS", "TIME");
    for r in reports {
        let time = if r.status == Status::Skipped { "-".to_string() } else { format!("{:.1} s", r.ms as f64 / 1000.0) };
        s.push_str(&format!("{:<width$}  {:<7}  {:>6}  {:>8}\n", r.file, r.status.as_str(), r.words, time));
        if let Some(e) = &r.error {
            s.push_str(&format!("{:width$}  ^ {e}\n", ""));
        }
    }
    let counts = |st: Status| reports.iter().filter(|r| r.status == st).count();
    s.push_str(&format!(
        "{} articles: {} ok, {} failed, {} skipped; {:.1} s; briefs in {}\n",
        counts(Status::Ok) + counts(Status::Failed),
        counts(Status::Ok),
        counts(Status::Failed),
        counts(Status::Skipped),
        elapsed_ms as f64 / 1000.0,
        out.display()
    ));
    s
}
