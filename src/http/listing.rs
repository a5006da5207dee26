//! The query parameters of the brief lists (`GET /` and `GET /v1/briefs`): search, outlet, dates and the page,
//! checked so that a mistake is a 400 that says which parameter and why, and written back into the pages' links.

use crate::store::BriefQuery;

/// Longest search text (characters).
pub const MAX_QUERY_CHARS: usize = 200;
/// Longest outlet name (characters), as briefs keep it.
pub const MAX_OUTLET_CHARS: usize = crate::service::brief::ArticleMeta::MAX_OUTLET_CHARS;
/// Highest page number (a bound far beyond any store, so that `page × size` never overflows).
pub const MAX_PAGE: u64 = 1_000_000_000;

/// What a list was asked for. Unknown parameters are ignored (as links from elsewhere may carry some).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// 1-based page number.
    pub page: Option<u64>,
    /// `/v1/briefs` only: briefs to skip, and most to give.
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    /// Search words (trimmed; empty is none).
    pub q: Option<String>,
    pub outlet: Option<String>,
    pub from: Option<time::Date>,
    pub to: Option<time::Date>,
}

fn whole(name: &str, value: &str) -> Result<u64, String> {
    value.parse::<u64>().map_err(|_| format!("{name} must be a whole number, not {value:?}"))
}

fn date(name: &str, value: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &format).map_err(|_| format!("{name} must be a date as YYYY-MM-DD, not {value:?}"))
}

fn text(name: &str, value: &str, max: usize) -> Result<Option<String>, String> {
    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
    if value.chars().count() > max {
        return Err(format!("{name} must be at most {max} characters"));
    }
    Ok(Some(value).filter(|v| !v.is_empty()))
}

impl ListParams {
    /// The parameters of a query string (without `?`; `None`: no query).
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        let mut params = Self::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let known = ["page", "offset", "limit", "q", "outlet", "from", "to"];
            if !known.contains(&name.as_ref()) {
                continue;
            }
            if seen.iter().any(|s| *s == name) {
                return Err(format!("{name} is given more than once"));
            }
            seen.push(name.to_string());
            let value = value.trim();
            match name.as_ref() {
                "page" => {
                    let page = whole("page", value)?;
                    if page == 0 || page > MAX_PAGE {
                        return Err(format!("page must be from 1 to {MAX_PAGE}, not {page}"));
                    }
                    params.page = Some(page);
                }
                "offset" => params.offset = Some(whole("offset", value)?),
                "limit" => params.limit = Some(whole("limit", value)?),
                "q" => params.q = text("q", value, MAX_QUERY_CHARS)?,
                "outlet" => params.outlet = text("outlet", value, MAX_OUTLET_CHARS)?,
                "from" if !value.is_empty() => params.from = Some(date("from", value)?),
                "to" if !value.is_empty() => params.to = Some(date("to", value)?),
                _ => {}
            }
        }
        if let (Some(from), Some(to)) = (params.from, params.to) {
            if from > to {
                return Err(format!("from ({from}) must not be after to ({to})"));
            }
        }
        Ok(params)
    }

    /// Whether anything narrows the list (a search, an outlet, a date).
    pub fn is_filtered(&self) -> bool {
        self.q.is_some() || self.outlet.is_some() || self.from.is_some() || self.to.is_some()
    }

    /// The store query for `limit` briefs from `offset` with these filters.
    pub fn query(&self, offset: u64, limit: u64) -> BriefQuery {
        BriefQuery { text: self.q.clone(), outlet: self.outlet.clone(), from: self.from, to: self.to, offset, limit }
    }

    /// The query string (no `?`) of page `page` with the same filters: `q`, `outlet`, `from`, `to`, then `page`
    /// (left out for page 1), URL-encoded.
    pub fn link(&self, page: u64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("q", &self.q), ("outlet", &self.outlet)] {
            if let Some(v) = value {
                query.append_pair(name, v);
            }
        }
        for (name, value) in [("from", self.from), ("to", self.to)] {
            if let Some(d) = value {
                query.append_pair(name, &d.to_string());
            }
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        query.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_written_back() {
        let p = ListParams::parse(Some("q=harga+%22beras%22&outlet=Kompas%20&from=2024-05-01&page=3&x=1")).unwrap();
        assert_eq!(p.q.as_deref(), Some("harga \"beras\""));
        assert_eq!((p.outlet.as_deref(), p.page), (Some("Kompas"), Some(3)));
        assert_eq!(p.link(4), "q=harga+%22beras%22&outlet=Kompas&from=2024-05-01&page=4");
        assert_eq!(p.link(1), "q=harga+%22beras%22&outlet=Kompas&from=2024-05-01");
        assert_eq!(ListParams::parse(None).unwrap(), ListParams::default());
        assert_eq!(ListParams::parse(Some("q=+&from=&outlet=")).unwrap(), ListParams::default());
        for (bad, needle) in [
            ("page=abc", "page must be a whole number"),
            ("page=0", "page must be from 1"),
            ("page=-1", "page must be a whole number"),
            ("from=2024-13-01", "from must be a date as YYYY-MM-DD"),
            ("to=2024-02-30", "to must be a date"),
            ("from=2024-05-02&to=2024-05-01", "must not be after"),
            ("page=1&page=2", "more than once"),
            ("limit=x", "limit must be a whole number"),
        ] {
            let e = ListParams::parse(Some(bad)).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let long = format!("q={}", "a".repeat(MAX_QUERY_CHARS + 1));
        assert!(ListParams::parse(Some(&long)).unwrap_err().contains("at most 200"));
    }
}
