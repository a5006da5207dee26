//! `GET /feed.atom`: the newest briefs as an Atom feed (RFC 4287), with an `ETag` and `Last-Modified` for the
//! conditional requests of feed readers.

use atom_syndication::{Entry, Feed, FixedDateTime, Generator, Link, Person, Text};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::service::{Brief, Service, ServiceError};

/// The feed's title, also the `title` of the `<link rel="alternate">` in every page's head.
pub const TITLE: &str = "brief: Indonesian news in English";
const SUBTITLE: &str = "The newest briefs: English headlines and summaries of Indonesian news articles.";
/// The author of a brief whose outlet is not known.
const SITE: &str = "brief";
const CONTENT_TYPE: &str = "application/atom+xml; charset=utf-8";

/// What the feed shows (`brief serve --feed-entries`, `--public-url`).
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Most briefs in the feed, the newest.
    pub entries: usize,
    /// The address readers reach the server at; `None`: taken from each request's headers.
    pub public_url: Option<PublicUrl>,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig { entries: 50, public_url: None }
    }
}

/// An absolute `http`/`https` address without a trailing slash, query or fragment (`https://news.example`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{text:?} is not a public address ({why}); e.g. https://news.example");
        let url = url::Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(bad("it needs http:// or https:// and a host"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(bad("no user, query or fragment"));
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The feed of the newest briefs: 503 while the models load or when the store cannot be read, 304 when the
/// client's `If-None-Match` (or, without one, `If-Modified-Since`) is still current.
pub async fn feed(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(svc) = state.service.get().cloned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "The models are still loading; try again in a few seconds.");
    };
    let count = state.config.feed.entries;
    let briefs = match tokio::task::spawn_blocking(move || newest(&svc, count)).await {
        Ok(Ok(briefs)) => briefs,
        Ok(Err(ServiceError::StoreUnavailable(_))) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The stored briefs cannot be read right now; try again later.",
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading the briefs for the feed failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "The briefs could not be read.");
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the briefs for the feed failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "The briefs could not be read.");
        }
    };
    let base = match &state.config.feed.public_url {
        Some(url) => url.as_str().to_string(),
        None => super::files::base_url(&headers, &uri),
    };
    let feed = build(&briefs, &base);
    let body = match feed.write_to(Vec::new()) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "writing the feed failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "The feed could not be written.");
        }
    };
    let etag = format!("\"{}\"", &format!("{:x}", Sha256::digest(&body))[..32]);
    let modified = (!briefs.is_empty()).then_some(feed.updated);
    let mut response = if not_modified(&headers, &etag, modified) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
    };
    let out = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    if let Some(v) = modified.and_then(|m| HeaderValue::from_str(&http_date(&m)).ok()) {
        out.insert(header::LAST_MODIFIED, v);
    }
    response
}

/// The newest `count` stored briefs: the feed's one use of the store's listing.
fn newest(svc: &Service, count: usize) -> Result<Vec<Brief>, ServiceError> {
    Ok(svc.briefs_page(0, count as u64)?.0)
}

/// The feed of `briefs` (newest first) as served from `base` (`scheme://host`, no trailing slash).
pub fn build(briefs: &[Brief], base: &str) -> Feed {
    let entries: Vec<Entry> = briefs.iter().map(|b| entry(b, base)).collect();
    let updated = entries.iter().map(|e| e.updated).max().unwrap_or_else(epoch);
    let self_url = format!("{base}/feed.atom");
    Feed {
        title: Text::plain(TITLE),
        subtitle: Some(Text::plain(SUBTITLE)),
        id: self_url.clone(),
        updated,
        authors: vec![person(SITE)],
        generator: Some(Generator { value: SITE.into(), uri: None, version: Some(env!("CARGO_PKG_VERSION").into()) }),
        links: vec![
            link(&self_url, "self", "application/atom+xml"),
            link(&format!("{base}/"), "alternate", "text/html"),
        ],
        lang: Some("en".into()),
        entries,
        ..Default::default()
    }
}

fn entry(brief: &Brief, base: &str) -> Entry {
    let mut links = vec![link(&format!("{base}/briefs/{}", brief.id), "alternate", "text/html")];
    if let Some(url) = &brief.source.url {
        links.push(Link { href: xml_text(url), rel: "related".into(), ..Default::default() });
    }
    let outlet = brief.source.outlet.as_deref().unwrap_or(SITE);
    Entry {
        id: format!("urn:brief:{}", brief.id),
        title: Text::plain(xml_text(&brief.headline.english)),
        summary: Some(Text::plain(xml_text(&brief.summary))),
        updated: time(&brief.created_at).unwrap_or_else(epoch),
        published: brief.source.published_at.as_deref().and_then(time),
        authors: vec![person(outlet)],
        links,
        ..Default::default()
    }
}

fn link(href: &str, rel: &str, mime_type: &str) -> Link {
    Link { href: href.into(), rel: rel.into(), mime_type: Some(mime_type.into()), ..Default::default() }
}

fn person(name: &str) -> Person {
    Person { name: xml_text(name), ..Default::default() }
}

/// An RFC 3339 time; `None` for anything else (briefs written by older versions are read as they are).
fn time(text: &str) -> Option<FixedDateTime> {
    FixedDateTime::parse_from_rfc3339(text).ok()
}

/// The `updated` of a feed without briefs.
fn epoch() -> FixedDateTime {
    FixedDateTime::default()
}

/// `text` without the characters XML 1.0 cannot hold (most control characters), which the writer would pass
/// through and make the feed unreadable.
fn xml_text(text: &str) -> String {
    text.chars().filter(|&c| matches!(c, '\t' | '\n' | '\r' | ' '..='\u{FFFD}' | '\u{10000}'..)).collect()
}

/// An HTTP date (`Tue, 01 Dec 2026 21:05:33 GMT`).
fn http_date(time: &FixedDateTime) -> String {
    time.to_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Whether the client's copy is current: its `If-None-Match` names this `etag` (or `*`); without that header,
/// its `If-Modified-Since` is not before `modified` (RFC 9110, 13.2.2).
fn not_modified(headers: &HeaderMap, etag: &str, modified: Option<FixedDateTime>) -> bool {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(tags) = header(header::IF_NONE_MATCH) {
        return tags.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag);
    }
    let since = header(header::IF_MODIFIED_SINCE).and_then(|v| FixedDateTime::parse_from_rfc2822(v).ok());
    matches!((since, modified), (Some(since), Some(modified)) if modified.timestamp() <= since.timestamp())
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_absolute_http_addresses_without_a_trailing_slash() {
        assert_eq!(PublicUrl::parse("https://news.example/").unwrap().as_str(), "https://news.example");
        assert_eq!(PublicUrl::parse("http://127.0.0.1:8080").unwrap().as_str(), "http://127.0.0.1:8080");
        assert_eq!(PublicUrl::parse("https://news.example/brief/").unwrap().as_str(), "https://news.example/brief");
        for bad in ["ftp://news.example", "news.example", "/feed", "https://u:p@news.example", "https://x.example/?a=1"]
        {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn characters_xml_cannot_hold_are_left_out() {
        assert_eq!(xml_text("a\u{1}b\u{0}\tc\n\u{FFFF}d \u{1F600}"), "ab\tc\nd \u{1F600}");
    }

    #[test]
    fn conditional_requests_match_the_etag_first_then_the_date() {
        let modified = time("2026-11-23T03:12:44Z");
        let with = |name, value: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(value).unwrap());
            h
        };
        assert!(not_modified(&with(header::IF_NONE_MATCH, "\"x\", W/\"abc\""), "\"abc\"", modified));
        assert!(!not_modified(&with(header::IF_NONE_MATCH, "\"x\""), "\"abc\"", modified));
        let since = |v| with(header::IF_MODIFIED_SINCE, v);
        assert!(not_modified(&since("Mon, 23 Nov 2026 03:12:44 GMT"), "\"abc\"", modified));
        assert!(!not_modified(&since("Mon, 23 Nov 2026 03:12:43 GMT"), "\"abc\"", modified));
        assert!(!not_modified(&since("yesterday"), "\"abc\"", modified));
        assert!(!not_modified(&since("Mon, 23 Nov 2026 03:12:44 GMT"), "\"abc\"", None));
        assert_eq!(http_date(&modified.unwrap()), "Mon, 23 Nov 2026 03:12:44 GMT");
    }
}
