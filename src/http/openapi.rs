//! The OpenAPI 3.1 document (`/openapi.json`, and `/spec` as LibreTranslate clients ask for it): the handlers'
//! annotations for what succeeds, and this file, the one source of every error response an operation gives.

use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::error::ErrorBody;
use super::{files, libretranslate, ops, v1};

#[derive(OpenApi)]
#[openapi(
    info(title = "brief", description = "Indonesian news into English: translations, summaries and briefs."),
    paths(
        libretranslate::translate,
        libretranslate::detect,
        libretranslate::languages_list,
        libretranslate::frontend_settings,
        libretranslate::suggest,
        files::translate_file,
        files::download_file,
        v1::v1_translate,
        v1::v1_summarize,
        v1::v1_create_brief,
        v1::v1_list_briefs,
        v1::v1_get_brief,
        ops::health,
        ops::metrics
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// Every error status the API answers, and what it means.
const ERRORS: &[(&str, &str)] = &[
    ("400", "Invalid JSON or request (a malformed query parameter), an unsupported language, or a text over --char-limit / --batch-limit"),
    ("403", "A key is required (the server has API keys) or not valid; or the feature is off"),
    ("404", "No such brief, or the translated file has expired"),
    ("413", "Body over --max-body-bytes, or text over the key's per-minute allowance"),
    ("415", "Not JSON"),
    ("422", "Fields missing, of the wrong type, unknown, or out of range"),
    ("429", "Over the key's rate limit (with Retry-After)"),
    ("503", "Overloaded (with Retry-After), the models are still loading, or the store is unavailable"),
    ("504", "Not finished within --request-timeout-secs"),
];

/// The error statuses of each operation.
fn errors_of(method: &str, path: &str) -> &'static [&'static str] {
    const TRANSLATE: &[&str] = &["400", "403", "413", "422", "429", "503", "504"];
    const NATIVE: &[&str] = &["400", "403", "413", "415", "422", "429", "503", "504"];
    match (method, path) {
        ("post", "/translate") => TRANSLATE,
        ("post", "/detect") => &["400", "403", "413", "422", "429"],
        ("post", "/suggest") => &[], // its one answer, 403, is its annotation
        ("post", "/translate_file") => &["400", "403", "413", "429", "503", "504"],
        ("get", "/download_file/{name}") => &["400", "404"],
        ("post", _) => NATIVE,
        ("get", "/v1/briefs") => &["400", "403", "429", "503"],
        ("get", "/v1/briefs/{id}") => &["403", "404", "429", "503"],
        ("get", "/metrics") => &["403"],
        _ => &[],
    }
}

/// The OpenAPI 3.1 document of this API.
pub async fn openapi() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(openapi_document).clone())
}

/// The document as LibreTranslate clients check it at `/spec`: Dialect accepts a server whose `info.title` is
/// "LibreTranslate" (LibreTranslate's own Swagger document has it), so that is the title there.
pub async fn spec() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(
        DOCUMENT
            .get_or_init(|| {
                let mut doc = openapi_document();
                doc["info"]["title"] = json!("LibreTranslate");
                doc["info"]["description"] = json!(
                    "brief's LibreTranslate-compatible API (Indonesian into English); \
                    the same document as /openapi.json"
                );
                doc
            })
            .clone(),
    )
}

/// The generated document, with each request body that flattens the search settings (`allOf` of two closed
/// objects, which no body could satisfy) merged into one closed object, and the error responses added.
pub fn openapi_document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    close_flattened_schemas(&mut doc);
    add_error_responses(&mut doc);
    doc
}

fn close_flattened_schemas(doc: &mut Value) {
    let schemas = doc.pointer("/components/schemas").cloned().unwrap_or_default();
    let Some(map) = doc.pointer_mut("/components/schemas").and_then(|v| v.as_object_mut()) else { return };
    for schema in map.values_mut() {
        let Some(parts) = schema.get("allOf").and_then(|a| a.as_array()).cloned() else { continue };
        let mut properties = Map::new();
        let mut required = Vec::new();
        for part in parts {
            let part = match part.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => schemas.get(r.trim_start_matches("#/components/schemas/")).cloned().unwrap_or_default(),
                None => part,
            };
            if let Some(p) = part.get("properties").and_then(|p| p.as_object()) {
                properties.extend(p.clone());
            }
            if let Some(r) = part.get("required").and_then(|r| r.as_array()) {
                required.extend(r.iter().cloned());
            }
        }
        let description = schema.get("description").cloned();
        *schema =
            json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
        if let Some(d) = description {
            schema["description"] = d;
        }
    }
}

fn add_error_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
            for code in errors_of(method, path) {
                let description = ERRORS.iter().find(|(c, _)| c == code).map_or("", |(_, d)| d);
                responses.entry(code.to_string()).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    })
                });
            }
        }
    }
}
