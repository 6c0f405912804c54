//! `otapub serve`: the local CDN for development and tests. Serves `public/`
//! with each object's stored Content-Type and Cache-Control, adds the two
//! protocol headers to `manifest` objects as the CDN rule in `deploy/` does,
//! and also answers header-routed requests (`GET /<channel>/manifest` with
//! `expo-platform` and `expo-runtime-version`) so a development build can
//! point at a laptop.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::{Error, Result};
use crate::names::{Channel, Fingerprint, Platform, PointerId};
use crate::store::Store;

fn text(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// The object key a request path names, or why it names none.
fn key_for(path: &str, headers: &HeaderMap) -> std::result::Result<String, Box<Response>> {
    let rel = path.trim_start_matches('/');
    let segments: Vec<&str> = rel.split('/').collect();
    if rel.is_empty()
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('%'))
    {
        return Err(Box::new(text(StatusCode::NOT_FOUND, "not found")));
    }
    // Header-routed: /<channel>/manifest with the platform and runtime version in headers.
    if segments.len() == 2 && (segments[1] == "manifest" || segments[1] == "manifest.json") {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(platform), Some(rv)) = (h("expo-platform"), h("expo-runtime-version")) else {
            return Err(Box::new(text(
                StatusCode::BAD_REQUEST,
                "a /<channel>/manifest request needs expo-platform and expo-runtime-version headers",
            )));
        };
        let pointer = match (
            segments[0].parse::<Channel>(),
            platform.parse::<Platform>(),
            rv.parse::<Fingerprint>(),
        ) {
            (Ok(channel), Ok(platform), Ok(fingerprint)) => PointerId {
                channel,
                platform,
                fingerprint,
            },
            _ => {
                return Err(Box::new(text(
                    StatusCode::BAD_REQUEST,
                    "invalid channel, expo-platform or expo-runtime-version",
                )))
            }
        };
        return Ok(if segments[1] == "manifest" {
            pointer.manifest_key()
        } else {
            pointer.envelope_key()
        });
    }
    Ok(format!("public/{rel}"))
}

async fn handle(State(store): State<Arc<dyn Store>>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    let key = match key_for(req.uri().path(), req.headers()) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    let obj = match store.get(&key).await {
        Ok(Some(o)) => o,
        Ok(None) => return text(StatusCode::NOT_FOUND, "not found"),
        Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("{e}")),
    };
    let mut resp = Response::new(Body::from(obj.bytes));
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, &obj.meta.content_type),
        (header::CACHE_CONTROL, &obj.meta.cache_control),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            if !value.is_empty() {
                h.insert(name, v);
            }
        }
    }
    if key.ends_with("/manifest") {
        h.insert("expo-protocol-version", HeaderValue::from_static("1"));
        h.insert("expo-sfv-version", HeaderValue::from_static("0"));
    }
    resp
}

/// The router, for embedding and tests.
pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new().fallback(handle).with_state(store)
}

/// Serves the store's `public/` on `addr` until the process ends.
pub async fn serve(store: Arc<dyn Store>, addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::usage(format!(
            "cannot listen on {addr} ({e}); choose another --addr, e.g. 127.0.0.1:8081"
        ))
    })?;
    axum::serve(listener, router(store)).await.map_err(|e| Error::Store {
        action: "serve",
        key: addr.to_string(),
        reason: e.to_string(),
    })
}
