//! HTTP on the `admin` listener (admin API, metrics) and on `http`/`https` (health,
//! CalDAV/CardDAV under `/dav/` with the RFC 6764 `/.well-known/` redirects).
//!
//! **Security (DESIGN invariant 2):** every route is declared in one table with its
//! access level ([`admin_routes`], [`web_routes`]); the router is built from the table,
//! so a route cannot exist without a declared level, and the admin level is enforced by
//! one middleware that alone makes the `AdminSession` the handlers need. No identity is
//! ever read from a query parameter or a cookie; the token comes only from
//! `Authorization: Bearer`. Nothing from the data directory is ever served.

use crate::config::Config;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use axum::{Extension, Json, Router};
use postern_core::store::{PrincipalKind, SessionInfo};
use postern_core::{AdminSession, Authenticated, Core, CoreError, ErrorClass};
use postern_net::{BoxStream, ConnInfo, Handler, Shutdown};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the listener (health checks only).
    Public,
    /// A request with the admin token.
    Admin,
    /// An account's HTTP Basic credentials (protocol `dav`), over TLS or, when
    /// `auth.allow_plaintext_on_loopback`, from loopback.
    User,
}

/// One row of a route table.
pub struct Route {
    /// Declared beside the handler so the route-table test can call every route with
    /// its own method (axum's MethodRouter does not expose it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

#[derive(Clone)]
pub struct Metrics(Option<metrics_exporter_prometheus::PrometheusHandle>);

impl Metrics {
    /// Installs the process-wide Prometheus recorder (once per process).
    pub fn install() -> Metrics {
        Metrics(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok(),
        )
    }
    fn render(&self) -> String {
        self.0.as_ref().map(|h| h.render()).unwrap_or_default()
    }
}

#[derive(Clone)]
struct AppState {
    core: Arc<Core>,
    metrics: Metrics,
    /// `auth.allow_plaintext_on_loopback`: Basic credentials without TLS from loopback.
    plaintext_on_loopback: bool,
}

/// The peer of the connection a request came on.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// Whether the connection a request came on is TLS.
#[derive(Clone, Copy)]
struct Tls(bool);

/// The login of one HTTP connection (DAV): as an IMAP connection after LOGIN, a
/// keep-alive connection is the session. A request whose `Authorization` (and
/// `User-Agent`) is the one verified earlier on this same connection, within
/// `[auth] auth_cache_ttl_secs` of that verification, reuses its [`Authenticated`]
/// without a new `auth.login` ledger entry; any other header is a new authentication
/// (a failure forgets the login), and the state dies with the connection, so it is
/// never shared between connections. A TTL of 0 turns it off: every request logs in.
/// Only a digest of the headers is kept.
#[derive(Clone, Default)]
struct ConnLogin(Arc<std::sync::Mutex<Option<VerifiedLogin>>>);

struct VerifiedLogin {
    key: [u8; 32],
    at: std::time::Instant,
    who: Authenticated,
}

impl ConnLogin {
    fn key(authorization: &[u8], user_agent: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((authorization.len() as u64).to_be_bytes());
        h.update(authorization);
        h.update(user_agent);
        h.finalize().into()
    }

    /// The login this connection verified for `key`, if still within `ttl`.
    fn reuse(&self, key: &[u8; 32], ttl: Duration) -> Option<Authenticated> {
        use subtle::ConstantTimeEq;
        let slot = self.0.lock().ok()?;
        let v = slot.as_ref()?;
        (bool::from(v.key.ct_eq(key)) && v.at.elapsed() < ttl).then(|| v.who.clone())
    }

    fn set(&self, v: Option<VerifiedLogin>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = v;
        }
    }
}

// ---- errors ----

struct ApiError(CoreError);

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match (&e, e.class()) {
            (CoreError::NotFound(_), _) => StatusCode::NOT_FOUND,
            (CoreError::Conflict(_), _) | (CoreError::Refused(_), _) => StatusCode::CONFLICT,
            (CoreError::Throttled(_), _) => StatusCode::TOO_MANY_REQUESTS,
            (_, ErrorClass::Protocol) => StatusCode::BAD_REQUEST,
            (_, ErrorClass::Auth) => StatusCode::UNAUTHORIZED,
            (_, ErrorClass::Resource) => StatusCode::INSUFFICIENT_STORAGE,
            (_, ErrorClass::Policy) => StatusCode::CONFLICT,
            (_, ErrorClass::Internal) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let field = match &e {
            CoreError::Invalid { field, .. } => Some(*field),
            _ => None,
        };
        (
            status,
            Json(json!({ "error": e.to_string(), "field": field })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body. Unlike a bare `Json`, a body refused before the handler runs
/// (malformed JSON, unknown fields, wrong content type, over the size limit) is answered
/// with a JSON `error` as well, so every error of the API has one form.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(body)) => Ok(JsonBody(body)),
            Err(r) => Err((
                r.status(),
                Json(json!({ "error": r.body_text(), "field": null })),
            )
                .into_response()),
        }
    }
}

// ---- the admin route table ----

pub fn admin_routes() -> Vec<Route> {
    use Access::*;
    vec![
        route(Method::GET, "/healthz", Public, get(health)),
        route(Method::GET, "/metrics", Admin, get(metrics_page)),
        route(Method::GET, "/api/v1/domains", Admin, get(domains_list)),
        route(Method::POST, "/api/v1/domains", Admin, post(domains_add)),
        route(
            Method::DELETE,
            "/api/v1/domains/{name}",
            Admin,
            delete(domains_remove),
        ),
        route(Method::GET, "/api/v1/accounts", Admin, get(accounts_list)),
        route(Method::POST, "/api/v1/accounts", Admin, post(accounts_add)),
        route(
            Method::GET,
            "/api/v1/accounts/{address}",
            Admin,
            get(accounts_show),
        ),
        route(
            Method::DELETE,
            "/api/v1/accounts/{address}",
            Admin,
            delete(accounts_remove),
        ),
        route(
            Method::PUT,
            "/api/v1/accounts/{address}/password",
            Admin,
            put(accounts_passwd),
        ),
        route(
            Method::PUT,
            "/api/v1/accounts/{address}/quota",
            Admin,
            put(accounts_quota),
        ),
        route(
            Method::GET,
            "/api/v1/accounts/{address}/app-passwords",
            Admin,
            get(app_list),
        ),
        route(
            Method::POST,
            "/api/v1/accounts/{address}/app-passwords",
            Admin,
            post(app_add),
        ),
        route(
            Method::DELETE,
            "/api/v1/accounts/{address}/app-passwords/{id}",
            Admin,
            delete(app_remove),
        ),
        route(Method::GET, "/api/v1/aliases", Admin, get(aliases_list)),
        route(Method::POST, "/api/v1/aliases", Admin, post(aliases_add)),
        route(
            Method::DELETE,
            "/api/v1/aliases/{alias}",
            Admin,
            delete(aliases_remove),
        ),
        route(
            Method::GET,
            "/api/v1/groups/{group}/members",
            Admin,
            get(members_list),
        ),
        route(
            Method::POST,
            "/api/v1/groups/{group}/members",
            Admin,
            post(members_add),
        ),
        route(
            Method::DELETE,
            "/api/v1/groups/{group}/members/{member}",
            Admin,
            delete(members_remove),
        ),
        route(
            Method::GET,
            "/api/v1/groups/{group}/senders",
            Admin,
            get(senders_get),
        ),
        route(
            Method::PUT,
            "/api/v1/groups/{group}/senders",
            Admin,
            put(senders_set),
        ),
        route(Method::GET, "/api/v1/audit", Admin, get(audit_show)),
        route(
            Method::GET,
            "/api/v1/audit/verify",
            Admin,
            get(audit_verify),
        ),
        route(
            Method::GET,
            "/api/v1/store/verify",
            Admin,
            get(store_verify),
        ),
    ]
}

/// Routes of the user-facing `http`/`https` listeners.
pub fn web_routes() -> Vec<Route> {
    use Access::*;
    // DAV verbs are extension methods: one row per path, the handler dispatches on the
    // method (postern_dav::handle answers 405 with Allow for others).
    let propfind = Method::from_bytes(b"PROPFIND").unwrap_or(Method::OPTIONS);
    vec![
        route(Method::GET, "/healthz", Public, get(health)),
        // RFC 6764 §5: a redirect to the context path; reveals nothing, needs no login.
        route(Method::GET, "/.well-known/caldav", Public, any(well_known)),
        route(Method::GET, "/.well-known/carddav", Public, any(well_known)),
        route(propfind.clone(), "/dav", User, any(dav)),
        route(propfind.clone(), "/dav/", User, any(dav)),
        route(propfind, "/dav/{*path}", User, any(dav)),
    ]
}

fn build(routes: Vec<Route>, state: AppState, body_limit: usize) -> Router {
    let mut router: Router<AppState> = Router::new();
    for r in routes {
        let handler = match r.access {
            Access::Public => r.handler,
            Access::Admin => r
                .handler
                .route_layer(middleware::from_fn_with_state(state.clone(), require_admin)),
            // `any` routes have no per-method routes for `route_layer`: the layer wraps
            // the whole method router (every method goes through `require_user`).
            Access::User => r
                .handler
                .layer(middleware::from_fn_with_state(state.clone(), require_user)),
        };
        router = router.route(r.path, handler);
    }
    router
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
}

/// The only place an `AdminSession` comes from on HTTP.
async fn require_admin(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().map(|p| p.0.to_string());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // RFC 7235 §2.1: the scheme name is case-insensitive.
        .and_then(|v| {
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .map(str::trim);
    let session = SessionInfo {
        protocol: "admin-api".into(),
        remote: peer,
        client_id: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect()),
        auth_method: None,
        session_id: None,
    };
    match presented.and_then(|t| st.core.admin_session(t, "admin-token", session)) {
        Some(admin) => {
            req.extensions_mut().insert(admin);
            next.run(req).await
        }
        None => {
            let resp = (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"error": "authentication required"})),
            )
                .into_response();
            refuse(req.into_body(), resp).await
        }
    }
}

/// How much of a refused request's body is read before the refusal is sent, and for how
/// long. Clients answer a 401 by sending the same request again with credentials on the
/// same connection; hyper closes a connection whose request body was left unread, and a
/// client that reuses it sees "connection closed without response". So a refusal reads
/// the (small) body first; a longer or slower one gets `Connection: close` instead, and
/// nothing unauthenticated makes the server read more than this.
const REFUSED_BODY_DRAIN: usize = 64 * 1024;
const REFUSED_BODY_DRAIN_TIME: Duration = Duration::from_secs(5);

/// Sends `resp` for a request whose handler did not run (see `REFUSED_BODY_DRAIN`).
async fn refuse(body: axum::body::Body, resp: Response) -> Response {
    let drained = tokio::time::timeout(
        REFUSED_BODY_DRAIN_TIME,
        axum::body::to_bytes(body, REFUSED_BODY_DRAIN),
    )
    .await;
    if matches!(drained, Ok(Ok(_))) {
        resp
    } else {
        closing(resp)
    }
}

/// Marks `resp` as the last on its connection (HTTP/1.1 `Connection: close`): used
/// whenever the request body was not read to its end.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

/// The only place an `Authenticated` comes from on HTTP: `Authorization: Basic`,
/// checked by `Core::authenticate` (protocol `dav`: app passwords limited to other
/// protocols do not open it; the shared rate limiter and the ledger see every attempt).
/// Without TLS, credentials are refused before they are looked at (invariant 7), unless
/// the peer is loopback and `auth.allow_plaintext_on_loopback` is set, as for IMAP.
async fn require_user(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let tls = req.extensions().get::<Tls>().is_some_and(|t| t.0);
    let challenge = || {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"Postern\", charset=\"UTF-8\"",
            )],
            "authentication required\n",
        )
            .into_response()
    };
    let loopback = peer.is_some_and(|p| p.ip().to_canonical().is_loopback());
    let allowed = tls || (st.plaintext_on_loopback && loopback);
    if !allowed {
        let resp = (
            StatusCode::FORBIDDEN,
            "authentication requires TLS: use https\n",
        )
            .into_response();
        return refuse(req.into_body(), resp).await;
    }
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..6)
                .filter(|p| p.eq_ignore_ascii_case("basic "))
                .map(|_| v[6..].trim())
        })
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, pass)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
        return refuse(req.into_body(), challenge()).await;
    };
    let conn = req.extensions().get::<ConnLogin>().cloned();
    let ttl = st.core.settings.auth_cache_ttl;
    let key = ConnLogin::key(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default(),
        req.headers()
            .get(header::USER_AGENT)
            .map(|v| v.as_bytes())
            .unwrap_or_default(),
    );
    if let Some(who) = conn.as_ref().and_then(|c| c.reuse(&key, ttl)) {
        req.extensions_mut().insert(who);
        return next.run(req).await;
    }
    let session = SessionInfo {
        protocol: "dav".into(),
        remote: peer.map(|p| p.to_string()),
        client_id: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect()),
        auth_method: Some("basic".into()),
        session_id: None,
    };
    let verified = st.core.authenticate(user, pass, "dav", session).await;
    if let Some(c) = &conn {
        c.set(match &verified {
            Ok(who) if !ttl.is_zero() => Some(VerifiedLogin {
                key,
                at: std::time::Instant::now(),
                who: who.clone(),
            }),
            _ => None,
        });
    }
    let resp = match verified {
        Ok(who) => {
            req.extensions_mut().insert(who);
            return next.run(req).await;
        }
        Err(CoreError::Throttled(wait)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
            "too many failed attempts\n",
        )
            .into_response(),
        Err(e) if e.class() == ErrorClass::Internal => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n").into_response()
        }
        Err(_) => challenge(),
    };
    refuse(req.into_body(), resp).await
}

// ---- handlers ----

/// RFC 6764 §5 redirect; clients probe with GET or PROPFIND (and OPTIONS). Other
/// methods get 405 like on any route.
async fn well_known(method: Method) -> Response {
    match method.as_str() {
        "GET" | "HEAD" | "PROPFIND" | "OPTIONS" => {
            (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/dav/")]).into_response()
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD, PROPFIND, OPTIONS")],
        )
            .into_response(),
    }
}

/// Every request under `/dav`: the body is read up to `postern_dav::MAX_BODY` (413
/// beyond), then `postern_dav::handle` answers.
async fn dav(
    State(st): State<AppState>,
    Extension(who): Extension<Authenticated>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > postern_dav::MAX_BODY as u64)
    {
        let resp = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        return closing(resp);
    }
    let body = match axum::body::to_bytes(body, postern_dav::MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let resp = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
            return closing(resp);
        }
    };
    let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let r = postern_dav::handle(
        &st.core,
        &who,
        postern_dav::DavRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            depth: h("depth"),
            if_match: h("if-match"),
            if_none_match: h("if-none-match"),
            destination: h("destination"),
            overwrite: h("overwrite"),
            if_schedule_tag_match: h("if-schedule-tag-match"),
            body: &body,
        },
    )
    .await;
    let mut resp = Response::new(axum::body::Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in r.headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

async fn health() -> &'static str {
    "ok\n"
}

async fn metrics_page(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

#[derive(Deserialize)]
struct DomainFilter {
    domain: Option<String>,
}

async fn domains_list(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
) -> ApiResult<Response> {
    let d: Vec<String> = st
        .core
        .domain_list(&a)
        .await?
        .into_iter()
        .map(|d| d.name)
        .collect();
    Ok(Json(json!({ "domains": d })).into_response())
}

async fn domains_add(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    JsonBody(b): JsonBody<NameBody>,
) -> ApiResult<Response> {
    let d = st.core.domain_add(&a, &b.name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": d.name }))).into_response())
}

async fn domains_remove(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.core.domain_remove(&a, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    address: String,
    kind: Option<String>,
    display_name: Option<String>,
    password: Option<String>,
    quota_bytes: Option<u64>,
}

async fn accounts_list(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Query(f): Query<DomainFilter>,
) -> ApiResult<Response> {
    let list = st.core.account_list(&a, f.domain.as_deref()).await?;
    Ok(Json(json!({ "accounts": list })).into_response())
}

async fn accounts_add(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    JsonBody(b): JsonBody<AccountBody>,
) -> ApiResult<Response> {
    let kind = match b.kind.as_deref() {
        None => PrincipalKind::Individual,
        Some(k) => PrincipalKind::parse(k).ok_or_else(|| {
            CoreError::invalid("kind", "one of individual, shared, group, resource")
        })?,
    };
    let n = st
        .core
        .account_add(
            &a,
            &b.address,
            kind,
            b.display_name.as_deref(),
            b.password.as_deref(),
            b.quota_bytes,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(n))).into_response())
}

async fn accounts_show(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(address): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(json!(st.core.account_show(&a, &address).await?)).into_response())
}

async fn accounts_remove(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    st.core.account_remove(&a, &address).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: Option<String>,
}

async fn accounts_passwd(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(address): Path<String>,
    JsonBody(b): JsonBody<PasswordBody>,
) -> ApiResult<Response> {
    let generated = st
        .core
        .account_passwd(&a, &address, b.password.as_deref())
        .await?;
    Ok(Json(json!({ "generated_password": generated })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    quota_bytes: Option<u64>,
}

async fn accounts_quota(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(address): Path<String>,
    JsonBody(b): JsonBody<QuotaBody>,
) -> ApiResult<StatusCode> {
    st.core.account_quota(&a, &address, b.quota_bytes).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppBody {
    label: String,
    #[serde(default)]
    protocols: Vec<String>,
}

async fn app_list(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(address): Path<String>,
) -> ApiResult<Response> {
    Ok(
        Json(json!({ "app_passwords": st.core.app_password_list(&a, &address).await? }))
            .into_response(),
    )
}

async fn app_add(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(address): Path<String>,
    JsonBody(b): JsonBody<AppBody>,
) -> ApiResult<Response> {
    let (info, secret) = st
        .core
        .app_password_add(&a, &address, &b.label, &b.protocols)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "app_password": info, "secret": secret })),
    )
        .into_response())
}

async fn app_remove(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path((address, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.core.app_password_remove(&a, &address, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    alias: String,
    target: String,
}

#[derive(Deserialize)]
struct TargetFilter {
    target: Option<String>,
}

async fn aliases_list(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Query(f): Query<DomainFilter>,
) -> ApiResult<Response> {
    Ok(
        Json(json!({ "aliases": st.core.alias_list(&a, f.domain.as_deref()).await? }))
            .into_response(),
    )
}

async fn aliases_add(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    JsonBody(b): JsonBody<AliasBody>,
) -> ApiResult<Response> {
    let info = st.core.alias_add(&a, &b.alias, &b.target).await?;
    Ok((StatusCode::CREATED, Json(json!(info))).into_response())
}

async fn aliases_remove(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(alias): Path<String>,
    Query(f): Query<TargetFilter>,
) -> ApiResult<Response> {
    let n = st
        .core
        .alias_remove(&a, &alias, f.target.as_deref())
        .await?;
    Ok(Json(json!({ "removed": n })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    member: String,
}

async fn members_list(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(json!({ "members": st.core.group_members(&a, &group).await? })).into_response())
}

async fn members_add(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(group): Path<String>,
    JsonBody(b): JsonBody<MemberBody>,
) -> ApiResult<StatusCode> {
    st.core.group_member_add(&a, &group, &b.member).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendersBody {
    senders: String,
}

async fn senders_get(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(json!({ "senders": st.core.group_get_senders(&a, &group).await? })).into_response())
}

async fn senders_set(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path(group): Path<String>,
    JsonBody(b): JsonBody<SendersBody>,
) -> ApiResult<StatusCode> {
    st.core.group_set_senders(&a, &group, &b.senders).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members_remove(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Path((group, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.core.group_member_remove(&a, &group, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct AuditQuery {
    account: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

async fn audit_show(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    let since = q
        .since
        .as_deref()
        .map(crate::cli::parse_since)
        .transpose()
        .map_err(|e| CoreError::invalid("since", e))?;
    let entries = st
        .core
        .audit_show(
            &a,
            q.account.as_deref(),
            since,
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

async fn audit_verify(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
) -> ApiResult<Response> {
    Ok(match st.core.audit_verify(&a, None).await? {
        Ok((n, head)) => Json(json!({
            "ok": true,
            "entries": n,
            "head": head.map(|(seq, hash)| format!("{seq}:{hash}")),
        }))
        .into_response(),
        Err(b) => Json(json!({ "ok": false, "first_bad_entry": b.seq, "reason": b.reason }))
            .into_response(),
    })
}

async fn store_verify(
    State(st): State<AppState>,
    Extension(a): Extension<AdminSession>,
) -> ApiResult<Response> {
    let r = st.core.store_verify(&a).await?;
    Ok(Json(json!({
        "ok": r.ok(),
        "accounts": r.accounts,
        "mailboxes": r.mailboxes,
        "messages": r.messages,
        "blobs_checked": r.blobs_checked,
        "journal_entries": r.journal_entries,
        "ledger_entries": r.ledger_entries,
        "orphan_blobs": r.orphan_blobs,
        "problems": r.problems,
    }))
    .into_response())
}

// ---- serving over a postern-net stream ----

struct HttpHandler {
    router: Router,
    header_timeout: Duration,
    max_buf: usize,
}

impl Handler for HttpHandler {
    fn handle(
        &self,
        stream: BoxStream,
        info: ConnInfo,
        mut shutdown: Shutdown,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let router = self
            .router
            .clone()
            .layer(Extension(Peer(info.remote)))
            .layer(Extension(Tls(info.tls)))
            .layer(Extension(ConnLogin::default()));
        let header_timeout = self.header_timeout;
        let max_buf = self.max_buf;
        Box::pin(async move {
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(max_buf)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.triggered() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        })
    }

    fn refusal(&self) -> Option<&'static [u8]> {
        Some(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    }
}

/// Admin API requests are a few hundred bytes of JSON; nothing there needs more.
const ADMIN_BODY_MAX: usize = 1 << 20;

fn handler(routes: Vec<Route>, state: AppState, cfg: &Config, body_cap: usize) -> Arc<dyn Handler> {
    let body_limit = usize::try_from(cfg.limits.http_body_size)
        .unwrap_or(usize::MAX)
        .min(body_cap);
    Arc::new(HttpHandler {
        router: build(routes, state, body_limit),
        header_timeout: Duration::from_secs(cfg.limits.http_request_timeout_secs),
        // hyper refuses buffers under 8 KiB.
        max_buf: cfg.limits.http_header_size.max(8192),
    })
}

pub fn admin_handler(core: Arc<Core>, cfg: &Config, metrics: Metrics) -> Arc<dyn Handler> {
    handler(
        admin_routes(),
        AppState {
            core,
            metrics,
            plaintext_on_loopback: false,
        },
        cfg,
        ADMIN_BODY_MAX,
    )
}

pub fn web_handler(core: Arc<Core>, cfg: &Config) -> Arc<dyn Handler> {
    // The web listener's table has no Admin route: the admin token opens nothing here.
    let state = AppState {
        core,
        metrics: Metrics(None),
        plaintext_on_loopback: cfg.auth.allow_plaintext_on_loopback,
    };
    handler(web_routes(), state, cfg, usize::MAX)
}

#[cfg(test)]
mod tests {
    //! The route tables against the router built from them: every admin route refuses a
    //! request without the token or with a wrong one, every public route answers without
    //! one, and each row's method is the method its handler serves.

    use super::*;
    use axum::body::Body;
    use std::collections::HashSet;
    use tower::ServiceExt;

    const TOKEN: &str = "route-table-test-token-0123456789";

    async fn state(dir: &std::path::Path) -> AppState {
        let cfg = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        let core = Arc::new(crate::serve::open_core(&cfg).await.unwrap());
        core.set_admin_token(TOKEN);
        AppState {
            core,
            metrics: Metrics(None),
            plaintext_on_loopback: false,
        }
    }

    /// `path` with each `{param}` filled with a plausible value.
    fn concrete(path: &str) -> String {
        path.split('/')
            .map(|seg| match seg {
                "{name}" => "example.com",
                "{address}" | "{group}" | "{member}" | "{alias}" => "someone@example.com",
                "{id}" => "0123456789abcdef",
                "{*path}" => "calendars/someone@example.com/calendar/",
                s if s.starts_with('{') => panic!("no dummy value for {s} in {path}"),
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    async fn call(
        router: &Router,
        method: &Method,
        uri: &str,
        auth: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = axum::http::Request::builder()
            .method(method.clone())
            .uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn status(router: &Router, method: &Method, uri: &str, auth: Option<&str>) -> StatusCode {
        call(router, method, uri, auth).await.0
    }

    type Table = (&'static str, fn() -> Vec<Route>);

    fn tables() -> [Table; 2] {
        [("admin", admin_routes), ("web", web_routes)]
    }

    #[test]
    fn no_two_routes_share_method_and_path() {
        for (name, table) in tables() {
            let mut seen = HashSet::new();
            for r in table() {
                assert!(
                    seen.insert((r.method.clone(), r.path)),
                    "{name}: {} {} twice",
                    r.method,
                    r.path
                );
            }
        }
    }

    /// Making a route public is a decision to review here, not a one-word change in
    /// a table row.
    #[test]
    fn only_health_checks_are_public() {
        for (name, table) in tables() {
            let public: Vec<String> = table()
                .iter()
                .filter(|r| r.access == Access::Public)
                .map(|r| format!("{} {}", r.method, r.path))
                .collect();
            let expected: &[&str] = match name {
                // RFC 6764 redirects to /dav/: no data, no login.
                "web" => &[
                    "GET /healthz",
                    "GET /.well-known/caldav",
                    "GET /.well-known/carddav",
                ],
                _ => &["GET /healthz"],
            };
            assert_eq!(public, expected, "{name}");
        }
    }

    #[tokio::test]
    async fn every_route_enforces_its_declared_access() {
        let right = format!("Bearer {TOKEN}");
        for (name, table) in tables() {
            let dir = tempfile::tempdir().unwrap();
            let rows: Vec<(Method, &str, Access)> = table()
                .iter()
                .map(|r| (r.method.clone(), r.path, r.access))
                .collect();
            assert!(!rows.is_empty());
            let router = build(table(), state(dir.path()).await, 1 << 20);
            for (method, path, access) in rows {
                let uri = concrete(path);
                let what = format!("{name}: {method} {uri}");
                let anonymous = status(&router, &method, &uri, None).await;
                let wrong = status(
                    &router,
                    &method,
                    &uri,
                    Some("Bearer wrong-token-0123456789abcdef"),
                )
                .await;
                let (with_token, body) = call(&router, &method, &uri, Some(&right)).await;
                match access {
                    Access::Admin => {
                        assert_eq!(
                            anonymous,
                            StatusCode::UNAUTHORIZED,
                            "{what} without a token"
                        );
                        assert_eq!(wrong, StatusCode::UNAUTHORIZED, "{what} with a wrong token");
                        assert_ne!(
                            with_token,
                            StatusCode::UNAUTHORIZED,
                            "{what} with the token"
                        );
                    }
                    Access::Public => {
                        assert!(
                            anonymous.is_success() || anonymous.is_redirection(),
                            "{what} without a token"
                        );
                        assert_eq!(wrong, anonymous, "{what} with a wrong token");
                    }
                    // Without a connection (no Tls extension) credentials are refused
                    // before they are read; the admin token opens nothing.
                    Access::User => {
                        assert_eq!(anonymous, StatusCode::FORBIDDEN, "{what} anonymous");
                        assert_eq!(wrong, StatusCode::FORBIDDEN, "{what} with a wrong token");
                        assert_eq!(
                            with_token,
                            StatusCode::FORBIDDEN,
                            "{what} with the admin token"
                        );
                        continue;
                    }
                }
                // The table's method is the one the handler serves…
                assert_ne!(
                    with_token,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{what}: handler serves another method"
                );
                let fallback = call(&router, &Method::GET, "/no/such/route", Some(&right)).await;
                assert_ne!(
                    (with_token, body),
                    fallback,
                    "{what} reached the fallback, not its handler"
                );
                // …and a method no row declares is not served.
                let other = status(&router, &Method::PATCH, &uri, Some(&right)).await;
                assert_eq!(other, StatusCode::METHOD_NOT_ALLOWED, "{name}: PATCH {uri}");
            }
        }
    }
}
