//! The console's stylesheet and script, compiled into the binary and served from `/assets/`.
//! They are files rather than inline `<style>`/`<script>` so that the content security policy
//! can refuse all inline code. Pages link them with a digest of the content in the query: a
//! browser may then keep them for a year and still fetches the new file after an upgrade.

use std::sync::OnceLock;

use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::sha256_hex;

pub(crate) struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    version: OnceLock<String>,
}

pub(crate) static CSS: Asset = Asset::new(
    "/assets/console.css",
    "text/css; charset=utf-8",
    include_str!("../assets/console.css"),
);

pub(crate) static JS: Asset = Asset::new(
    "/assets/console.js",
    "text/javascript; charset=utf-8",
    include_str!("../assets/console.js"),
);

#[derive(Deserialize)]
pub(crate) struct VersionQuery {
    #[serde(default)]
    v: Option<String>,
}

impl Asset {
    const fn new(path: &'static str, content_type: &'static str, body: &'static str) -> Asset {
        Asset {
            path,
            content_type,
            body,
            version: OnceLock::new(),
        }
    }

    fn version(&self) -> &str {
        self.version.get_or_init(|| {
            let mut digest = sha256_hex(self.body);
            digest.truncate(16);
            digest
        })
    }

    /// The URL a page links: the path with the current version.
    pub(crate) fn href(&self) -> String {
        format!("{}?v={}", self.path, self.version())
    }

    fn serve(&self, query: &VersionQuery, request: &HeaderMap) -> Response {
        let etag = format!("\"{}\"", self.version());
        let unchanged = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        let mut res = if unchanged {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                )],
                self.body,
            )
                .into_response()
        };
        // Only the URL that names this very content may be kept without asking again; an old
        // or missing version is revalidated, so it never pins a stale file.
        let cache = if query.v.as_deref() == Some(self.version()) {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        res
    }
}

pub(crate) async fn css(Query(q): Query<VersionQuery>, headers: HeaderMap) -> Response {
    CSS.serve(&q, &headers)
}

pub(crate) async fn js(Query(q): Query<VersionQuery>, headers: HeaderMap) -> Response {
    JS.serve(&q, &headers)
}
