//! `otapub serve`: the local CDN for development and tests. Serves `public/`
//! with each object's stored Content-Type and Cache-Control, adds the two
//! protocol headers to `manifest` objects as the CDN rule in `deploy/` does,
//! applies the edge rule of staged rollouts (a pointer request with an
//! `eas-client-id` gets its bucket's object when one exists), and also
//! answers header-routed requests (`GET /<channel>/manifest` with
//! `expo-platform` and `expo-runtime-version`) so a development build can
//! point at a laptop. A launch-asset request that asks for a bsdiff patch
//! gets `patches/<requested>/<current>` when the tree has it (docs/format.md). `--access-log` writes one JSON line per request,
//! the format `otapub rollout advance --gate-log` reads. `/_otapub/` is the
//! operators' page (`otapub report`), made from the index on each request.

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

/// What a request names: an object key, and the pointer when it is a pointer's
/// `manifest` or `manifest.json` (the file name), which the rollout rule applies to.
struct Target {
    key: String,
    pointer: Option<(PointerId, &'static str)>,
}

fn pointer_target(pointer: PointerId, name: &str) -> Target {
    let (key, name) = if name == "manifest" {
        (pointer.manifest_key(), "manifest")
    } else {
        (pointer.envelope_key(), "manifest.json")
    };
    Target {
        key,
        pointer: Some((pointer, name)),
    }
}

/// The object key a request path names, or why it names none.
fn key_for(path: &str, headers: &HeaderMap) -> std::result::Result<Target, Box<Response>> {
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
        return Ok(pointer_target(pointer, segments[1]));
    }
    if let [channel, platform, fingerprint, name @ ("manifest" | "manifest.json")] = segments[..] {
        if let (Ok(channel), Ok(platform), Ok(fingerprint)) = (
            channel.parse::<Channel>(),
            platform.parse::<Platform>(),
            fingerprint.parse::<Fingerprint>(),
        ) {
            let pointer = PointerId {
                channel,
                platform,
                fingerprint,
            };
            return Ok(pointer_target(pointer, name));
        }
    }
    Ok(Target {
        key: format!("public/{rel}"),
        pointer: None,
    })
}

/// The request headers the gate reads, under their lowercase names.
const LOGGED_HEADERS: [&str; 7] = [
    "eas-client-id",
    "expo-current-update-id",
    "expo-embedded-update-id",
    "expo-recent-failed-update-ids",
    "a-im",
    "expo-requested-update-id",
    "expo-platform",
];

/// Where `serve --access-log` writes.
pub type AccessLog = Arc<std::sync::Mutex<std::fs::File>>;

#[derive(Clone)]
struct Served {
    store: Arc<dyn Store>,
    options: Arc<Options>,
}

/// How `serve` runs besides the store it serves.
#[derive(Default)]
pub struct Options {
    /// Where to write the access log, if anywhere.
    pub log: Option<AccessLog>,
    /// The templates of the operators' page at `/_otapub/`.
    pub templates: crate::report::Templates,
    /// The clock the page's "generated" time comes from.
    pub clock: crate::commit::Clock,
}

/// Where the operators' page is served: outside `public/`'s key space
/// (no channel starts with `_`).
pub const REPORT_PATH: &str = "/_otapub/";

/// The operators' page, made from the index on every request.
async fn report_page(store: &dyn Store, options: &Options, path: &str) -> Response {
    let rest = &path[REPORT_PATH.len()..];
    let report = async {
        let index = crate::commit::read_index(store).await?;
        crate::ops::report::report_of(&index, &store.url(), options.clock.now())
    }
    .await;
    let report = match report {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("{e}")),
    };
    let (body, content_type) = match rest {
        "" | "index.html" => (
            crate::report::render(&report, &options.templates),
            "text/html; charset=utf-8",
        ),
        "report.json" => (crate::report::json(&report), "application/json"),
        _ => return text(StatusCode::NOT_FOUND, "not found"),
    };
    match body {
        Ok(body) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
    }
}

/// One JSON line: the time, method, path, status, bytes of the body and
/// the response's `im` (a patch was served), and the request headers the
/// gate and `otapub insights ingest --format otapub` read, values as sent.
fn log_line(method: &Method, path: &str, headers: &HeaderMap, resp: &Response) -> String {
    use axum::body::HttpBody;
    let mut line = serde_json::Map::new();
    line.insert("time".into(), crate::manifest::format_time(chrono::Utc::now()).into());
    line.insert("method".into(), method.as_str().into());
    line.insert("path".into(), path.into());
    line.insert("status".into(), resp.status().as_u16().into());
    if let Some(bytes) = resp.body().size_hint().exact() {
        line.insert("bytes".into(), bytes.into());
    }
    if let Some(im) = resp.headers().get("im") {
        line.insert("im".into(), String::from_utf8_lossy(im.as_bytes()).into());
    }
    for name in LOGGED_HEADERS {
        if let Some(v) = headers.get(name) {
            line.insert(name.into(), String::from_utf8_lossy(v.as_bytes()).into());
        }
    }
    serde_json::Value::Object(line).to_string()
}

async fn handle(State(served): State<Served>, req: Request) -> Response {
    let (method, path, headers) = (
        req.method().clone(),
        req.uri().path().to_string(),
        req.headers().clone(),
    );
    let resp = if path == "/_otapub" {
        axum::response::Redirect::permanent(REPORT_PATH).into_response()
    } else if path.starts_with(REPORT_PATH) && (method == Method::GET || method == Method::HEAD) {
        report_page(served.store.as_ref(), &served.options, &path).await
    } else {
        respond(served.store.as_ref(), &method, &path, &headers).await
    };
    if let Some(log) = &served.options.log {
        let line = log_line(&method, &path, &headers, &resp);
        if let Ok(mut f) = log.lock() {
            use std::io::Write;
            if let Err(e) = writeln!(f, "{line}") {
                tracing::warn!("cannot write the access log: {e}");
            }
        }
    }
    resp
}

/// The object the edge rule picks for a pointer request: the bucket's
/// object when the request carries an `eas-client-id` whose bucket has one.
async fn pick(store: &dyn Store, target: &Target, headers: &HeaderMap) -> crate::Result<Option<crate::store::Object>> {
    if let Some((pointer, name)) = &target.pointer {
        let bucket = headers
            .get("eas-client-id")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::rollout::bucket);
        if let Some(b) = bucket {
            let key = format!("{}{b:02}/{name}", pointer.rollout_prefix());
            if let Some(o) = store.get(&key).await? {
                return Ok(Some(o));
            }
        }
    }
    store.get(&target.key).await
}

/// The update ids of a launch-asset request that asks for a patch
/// (docs/format.md): `a-im` names bsdiff and both
/// `expo-requested-update-id` and `expo-current-update-id` are UUIDs that
/// differ. Lowercased: (requested, current).
fn patch_request(headers: &HeaderMap) -> Option<(String, String)> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let wants = h("a-im")?.split(',').any(|v| v.trim().eq_ignore_ascii_case("bsdiff"));
    let requested = h("expo-requested-update-id").filter(|v| crate::names::uuid_bytes(v).is_some())?;
    let current = h("expo-current-update-id").filter(|v| crate::names::uuid_bytes(v).is_some())?;
    let (r, c) = (requested.to_ascii_lowercase(), current.to_ascii_lowercase());
    (wants && r != c).then_some((r, c))
}

/// The patch response, when the tree has `patches/<requested>/<current>`:
/// `im: bsdiff`, the base's id, and never stored by a shared or private
/// cache (Android's HTTP cache would replay it to the full-asset retry).
async fn patch_response(store: &dyn Store, rel: &str, headers: &HeaderMap) -> crate::Result<Option<Response>> {
    if !rel.starts_with("assets/") {
        return Ok(None);
    }
    let Some((requested, current)) = patch_request(headers) else {
        return Ok(None);
    };
    let Some(patch) = store.get(&format!("public/patches/{requested}/{current}")).await? else {
        return Ok(None);
    };
    let mut resp = Response::new(Body::from(patch.bytes));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::VARY,
        HeaderValue::from_static("A-IM, Expo-Current-Update-ID, Expo-Requested-Update-ID"),
    );
    h.insert("im", HeaderValue::from_static("bsdiff"));
    if let Ok(v) = HeaderValue::from_str(&current) {
        h.insert("expo-base-update-id", v);
    }
    Ok(Some(resp))
}

async fn respond(store: &dyn Store, method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    let target = match key_for(path, headers) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    if let Some(rel) = target.key.strip_prefix("public/") {
        match patch_response(store, rel, headers).await {
            Ok(Some(resp)) => return resp,
            Ok(None) => {}
            Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("{e}")),
        }
    }
    let obj = match pick(store, &target, headers).await {
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
    if target.key.ends_with("/manifest") {
        h.insert("expo-protocol-version", HeaderValue::from_static("1"));
        h.insert("expo-sfv-version", HeaderValue::from_static("0"));
    }
    if target.pointer.is_some() {
        // The answer depends on the device: no shared cache may replay one
        // device's bucket to another.
        h.insert(header::VARY, HeaderValue::from_static("eas-client-id"));
    }
    resp
}

/// The router, for embedding and tests.
pub fn router(store: Arc<dyn Store>, options: Options) -> Router {
    Router::new().fallback(handle).with_state(Served {
        store,
        options: Arc::new(options),
    })
}

/// What `otapub serve` refuses.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be listened on.
    #[error("cannot listen on {addr} ({reason}); choose another --addr, e.g. 127.0.0.1:8081")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

impl crate::error::Refusal for ServeError {
    fn class(&self) -> crate::error::ExitClass {
        match self {
            ServeError::Listen { .. } => crate::error::ExitClass::Input,
        }
    }
}

/// Serves the store's `public/` on `addr` until the process ends.
pub async fn serve(store: Arc<dyn Store>, addr: SocketAddr, options: Options) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Listen {
            addr,
            reason: e.to_string(),
        })?;
    axum::serve(listener, router(store, options))
        .await
        .map_err(|e| Error::Store {
            action: "serve",
            key: addr.to_string(),
            reason: e.to_string(),
        })
}
