//! The reader pages: `/` lists the briefs, `/briefs/{id}` shows one with the English beside the Indonesian, and
//! `/translate` translates pasted text or a file in the browser (through the public API, a few paragraphs a call).
//! Rendered on the server from templates (minijinja, HTML-escaped), styled inline, no external resources.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{context, Environment};
use serde::Serialize;

use super::AppState;
use crate::service::ServiceError;

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

fn page(status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, "message.html", context! { title, message => text })
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
}

/// The list of briefs, newest first.
pub async fn index(State(state): State<AppState>) -> Response {
    let Some(svc) = state.service.get().cloned() else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            "The models are still loading; try again in a few seconds.",
        );
    };
    let briefs = match tokio::task::spawn_blocking(move || svc.briefs()).await {
        Ok(Ok(briefs)) => briefs,
        Ok(Err(ServiceError::StoreUnavailable(_))) => return store_unavailable(),
        _ => return message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "The briefs could not be read."),
    };
    let cards: Vec<Card> = briefs
        .into_iter()
        .map(|b| Card {
            made: made(&b.created_at),
            id: b.id,
            headline: b.headline.english,
            summary: b.summary,
            name: b.source.name,
            created_at: b.created_at,
        })
        .collect();
    page(StatusCode::OK, "index.html", context! { briefs => cards })
}

/// One brief: summary on top, the translation paragraph by paragraph beside the original.
pub async fn brief(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(svc) = state.service.get().cloned() else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            "The models are still loading; try again in a few seconds.",
        );
    };
    let lookup = id.clone();
    match tokio::task::spawn_blocking(move || svc.get_brief(&lookup)).await {
        Ok(Ok(brief)) => {
            let made = made(&brief.created_at);
            page(StatusCode::OK, "brief.html", context! { brief, made })
        }
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
    page(StatusCode::OK, "translate.html", context! {})
}

/// The page for a brief store that cannot be read (the log and `/health` say why).
fn store_unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Briefs unavailable",
        "The stored briefs cannot be read right now. Translations and new briefs still work.",
    )
}
