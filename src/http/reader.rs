//! The reader pages: `/` lists the briefs (a page at a time, searched and filtered), `/briefs/{id}` shows one with the English beside the Indonesian, and
//! `/translate` translates pasted text or a file in the browser (through the public API, a few paragraphs a call).
//! Rendered on the server from templates (minijinja, HTML-escaped), styled inline, no external resources.

use std::sync::OnceLock;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{context, Environment};
use serde::Serialize;

use super::listing::ListParams;
use super::AppState;
use crate::service::{Brief, ServiceError};

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Names ending in .html are auto-escaped.
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("index.html", include_str!("templates/index.html")),
            ("brief.html", include_str!("templates/brief.html")),
            ("message.html", include_str!("templates/message.html")),
            ("translate.html", include_str!("templates/translate.html")),
        ] {
            env.add_template(name, source).expect("the built-in templates parse");
        }
        env
    })
}

fn page_of(status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page_of(status, "message.html", context! { title, message => text })
}

/// `2026-11-23T03:12:44Z` as `2026-11-23 03:12 UTC`.
fn made(created_at: &str) -> String {
    match (created_at.get(..10), created_at.get(11..16)) {
        (Some(date), Some(time)) if created_at.ends_with('Z') => format!("{date} {time} UTC"),
        _ => created_at.to_string(),
    }
}

#[derive(Serialize)]
struct Card {
    id: String,
    headline: String,
    summary: String,
    name: String,
    created_at: String,
    made: String,
    outlet: Option<String>,
    published_at: Option<String>,
    /// The publication day (`YYYY-MM-DD`), as the card shows it.
    published: Option<String>,
}

impl Card {
    fn of(b: Brief) -> Self {
        Card {
            made: made(&b.created_at),
            published: b.source.published_at.as_deref().and_then(|t| t.get(..10)).map(str::to_string),
            published_at: b.source.published_at,
            outlet: b.source.outlet,
            id: b.id,
            headline: b.headline.english,
            summary: b.summary,
            name: b.source.name,
            created_at: b.created_at,
        }
    }
}

/// What the list page shows besides the cards.
#[derive(Serialize)]
struct Listing {
    q: String,
    outlet: String,
    from: String,
    to: String,
    outlets: Vec<String>,
    page: u64,
    pages: u64,
    total: u64,
    filtered: bool,
    /// The search looked at the newest briefs only (the Redis store).
    partial: bool,
    /// Query strings (no `?`) of the neighbouring and last pages.
    previous: Option<String>,
    next: Option<String>,
    last: String,
    /// The page asked for is past the last one (404).
    beyond: bool,
}

/// The list of briefs, newest first, a page of `--reader-page-size` at a time: `page` (1-based), search `q`,
/// `outlet`, and `from`/`to` days (`YYYY-MM-DD`, UTC, inclusive). Malformed parameters get 400, a page past
/// the last one 404 with a link to the last page.
pub async fn index(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let params = match ListParams::parse(raw.as_deref()) {
        Ok(p) => p,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Bad request", &e),
    };
    let Some(svc) = state.service.get().cloned() else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            "The models are still loading; try again in a few seconds.",
        );
    };
    let size = state.config.reader_page_size.max(1) as u64;
    let page = params.page.unwrap_or(1);
    let query = params.query((page - 1) * size, size);
    let found = tokio::task::spawn_blocking(move || Ok::<_, ServiceError>((svc.find_briefs(&query)?, svc.outlets()?)));
    let (found, outlets) = match found.await {
        Ok(Ok(found)) => found,
        Ok(Err(ServiceError::StoreUnavailable(_))) => return store_unavailable(),
        _ => return message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "The briefs could not be read."),
    };
    let pages = found.total.div_ceil(size).max(1);
    let beyond = page > pages;
    let listing = Listing {
        q: params.q.clone().unwrap_or_default(),
        outlet: params.outlet.clone().unwrap_or_default(),
        from: params.from.map(|d| d.to_string()).unwrap_or_default(),
        to: params.to.map(|d| d.to_string()).unwrap_or_default(),
        outlets,
        page,
        pages,
        total: found.total,
        filtered: params.is_filtered(),
        partial: found.partial,
        previous: (page > 1 && !beyond).then(|| params.link(page - 1)),
        next: (page < pages).then(|| params.link(page + 1)),
        last: params.link(pages),
        beyond,
    };
    let cards: Vec<Card> = found.briefs.into_iter().map(Card::of).collect();
    let status = if beyond { StatusCode::NOT_FOUND } else { StatusCode::OK };
    page_of(status, "index.html", context! { briefs => cards, list => listing })
}

/// `2024-05-01T08:30:00+07:00` as `2024-05-01 08:30 +07:00`; a bare date (00:00 UTC) as the date alone.
fn published(at: &str) -> String {
    match (at.get(..10), at.get(11..16), at.get(19..)) {
        (Some(date), Some("00:00"), Some("Z")) if at.get(16..19) == Some(":00") => date.to_string(),
        (Some(date), Some(time), Some("Z")) => format!("{date} {time} UTC"),
        (Some(date), Some(time), Some(zone)) => format!("{date} {time} {zone}"),
        _ => at.to_string(),
    }
}

/// How the brief page is asked for: the page, or a download.
enum BriefAs {
    Page,
    Markdown,
    Text,
}

fn brief_as(id: &str) -> (&str, BriefAs) {
    if let Some(id) = id.strip_suffix(".md") {
        (id, BriefAs::Markdown)
    } else if let Some(id) = id.strip_suffix(".txt") {
        (id, BriefAs::Text)
    } else {
        (id, BriefAs::Page)
    }
}

fn download(brief: &crate::service::Brief, body: String, extension: &str, mime: &str) -> Response {
    let disposition = format!("attachment; filename=\"brief-{}.{extension}\"", brief.id);
    ([(header::CONTENT_TYPE, mime.to_string()), (header::CONTENT_DISPOSITION, disposition)], body).into_response()
}

fn brief_page(brief: crate::service::Brief) -> Response {
    let made = made(&brief.created_at);
    let published = brief.source.published_at.as_deref().map(published);
    let rounds = brief.summary_method.chunks_per_round.len();
    let chunks = brief.summary_method.chunks_per_round.first().copied().unwrap_or(1);
    page_of(StatusCode::OK, "brief.html", context! { brief, made, published, chunks, rounds })
}

/// One brief: the English first (headline, summary, translation), the Indonesian one click away, what was left
/// out, and the models; `/briefs/{id}.md` and `/briefs/{id}.txt` download it.
pub async fn brief(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(svc) = state.service.get().cloned() else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            "The models are still loading; try again in a few seconds.",
        );
    };
    let (id, wanted) = brief_as(&id);
    let (id, lookup) = (id.to_string(), id.to_string());
    match tokio::task::spawn_blocking(move || svc.get_brief(&lookup)).await {
        Ok(Ok(brief)) => match wanted {
            BriefAs::Markdown => download(&brief, brief.to_markdown(), "md", "text/markdown; charset=utf-8"),
            BriefAs::Text => download(&brief, brief.to_text(), "txt", "text/plain; charset=utf-8"),
            BriefAs::Page => brief_page(brief),
        },
        Ok(Err(ServiceError::NotFound(_))) => {
            message(StatusCode::NOT_FOUND, "Not found", &format!("There is no brief with id {id}."))
        }
        Ok(Err(ServiceError::StoreUnavailable(_))) => store_unavailable(),
        _ => message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "The brief could not be read."),
    }
}

/// The translate page: its script reads `/frontend/settings` and calls `/detect`, `/translate`, `/v1/translate`
/// and `/v1/briefs` with the reader's key, so the page itself needs none.
pub async fn translate_page() -> Response {
    page_of(StatusCode::OK, "translate.html", context! {})
}

/// The page for a brief store that cannot be read (the log and `/health` say why).
fn store_unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Briefs unavailable",
        "The stored briefs cannot be read right now. Translations and new briefs still work.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn html(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn a_brief(chunks_per_round: &[usize]) -> crate::service::Brief {
        let model = serde_json::json!({"id": "m", "revision": "local", "model_type": "marian"});
        serde_json::from_value(serde_json::json!({
            "schema": "brief/1", "id": "0123456789abcdef",
            "source": {"name": "a.txt", "sha256": "0".repeat(64), "bytes": 10, "words": 2, "paragraphs": 2},
            "headline": {"source": "Judul", "english": "Title"}, "summary": "Short.",
            "paragraphs": [{"source": "Isi.", "english": "Body."}],
            "models": {"translate": model, "summarize": model},
            "summary_method": {"chunks_per_round": chunks_per_round},
            "timings": {"translate_ms": 1, "summarize_ms": 1, "total_ms": 2}, "created_at": "2026-12-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn the_brief_page_says_when_the_summary_was_made_from_parts() {
        let page = html(brief_page(a_brief(&[3, 1]))).await;
        assert!(
            page.contains(
                "the summary was made from 3 parts of the translation, each summarized and then \
                               summarized together (2 rounds)"
            ),
            "{page}"
        );
        let page = html(brief_page(a_brief(&[1]))).await;
        assert!(!page.contains("summary-note") && !page.contains("id=\"left-out\""), "{page}");
    }

    #[test]
    fn publication_times_read_as_people_write_them() {
        assert_eq!(published("2024-05-01T00:00:00Z"), "2024-05-01");
        assert_eq!(published("2024-05-01T08:30:00Z"), "2024-05-01 08:30 UTC");
        assert_eq!(published("2024-05-01T08:30:00+07:00"), "2024-05-01 08:30 +07:00");
        assert_eq!(published("2024-05-01T00:00:00+07:00"), "2024-05-01 00:00 +07:00");
        assert_eq!(published("soon"), "soon");
    }
}
