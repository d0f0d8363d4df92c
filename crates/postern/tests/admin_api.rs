//! The admin HTTP API over a real socket: the same actions as the CLI (one code path),
//! errors as JSON, the ledger, and the Exchange attack shapes (DESIGN.md §2 invariants
//! 1–3, 8): no identity but `Authorization: Bearer`, no routing by request data, nothing
//! from the data directory ever served.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::io::Write;

/// Every route of the admin table (src/http.rs `admin_routes`) with its parameters
/// filled in; the unit tests there check the table itself.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/metrics"),
    ("GET", "/api/v1/domains"),
    ("POST", "/api/v1/domains"),
    ("DELETE", "/api/v1/domains/example.com"),
    ("GET", "/api/v1/accounts"),
    ("POST", "/api/v1/accounts"),
    ("GET", "/api/v1/accounts/alice@example.com"),
    ("DELETE", "/api/v1/accounts/alice@example.com"),
    ("PUT", "/api/v1/accounts/alice@example.com/password"),
    ("PUT", "/api/v1/accounts/alice@example.com/quota"),
    ("GET", "/api/v1/accounts/alice@example.com/app-passwords"),
    ("POST", "/api/v1/accounts/alice@example.com/app-passwords"),
    (
        "DELETE",
        "/api/v1/accounts/alice@example.com/app-passwords/0123456789abcdef",
    ),
    ("GET", "/api/v1/aliases"),
    ("POST", "/api/v1/aliases"),
    ("DELETE", "/api/v1/aliases/sales@example.com"),
    ("GET", "/api/v1/groups/team@example.com/members"),
    ("POST", "/api/v1/groups/team@example.com/members"),
    (
        "DELETE",
        "/api/v1/groups/team@example.com/members/alice@example.com",
    ),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/verify"),
    ("GET", "/api/v1/store/verify"),
];

#[test]
fn api_and_cli_are_one_code_path() {
    let s = Server::start();
    let (code, body) = s.api(
        "POST",
        "/api/v1/domains",
        Some(&json!({"name": "Example.COM"})),
    );
    assert_eq!((code, body), (201, json!({"name": "example.com"})));
    let (code, body) = s.api(
        "POST",
        "/api/v1/accounts",
        Some(&json!({"address": "alice@example.com", "password": "correct horse battery"})),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body,
        json!({"account": {"address": "alice@example.com", "kind": "individual", "display_name": "alice",
                           "quota_bytes": null, "used_bytes": 0, "messages": 0},
               "generated_password": null})
    );
    // Made by the API, seen by the CLI.
    assert_eq!(s.cli_ok(&["domain", "list"], ""), "example.com\n");
    assert_eq!(
        s.cli_ok(&["account", "list"], ""),
        "alice@example.com individual alice used=0 quota=none messages=0\n"
    );

    // Made by the CLI, seen by the API.
    s.cli_ok(&["domain", "add", "example.org"], "");
    s.cli_ok(
        &["account", "add", "bob@example.org", "--quota", "1G"],
        "a long password\n",
    );
    s.cli_ok(
        &["account", "add", "team@example.org", "--kind", "group"],
        "",
    );
    s.cli_ok(
        &["group", "add-member", "team@example.org", "bob@example.org"],
        "",
    );
    s.cli_ok(
        &["alias", "add", "sales@example.org", "bob@example.org"],
        "",
    );
    assert_eq!(
        s.api("GET", "/api/v1/domains", None),
        (200, json!({"domains": ["example.com", "example.org"]}))
    );
    let (code, body) = s.api("GET", "/api/v1/accounts?domain=example.org", None);
    assert_eq!(code, 200);
    let addresses: Vec<&str> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["bob@example.org", "team@example.org"]);
    let (code, bob) = s.api("GET", "/api/v1/accounts/bob@example.org", None);
    assert_eq!((code, &bob["quota_bytes"]), (200, &json!(1u64 << 30)));
    assert_eq!(
        s.api("GET", "/api/v1/groups/team@example.org/members", None),
        (200, json!({"members": ["bob@example.org"]}))
    );
    assert_eq!(
        s.api("GET", "/api/v1/aliases?domain=example.org", None),
        (
            200,
            json!({"aliases": [{"alias": "sales@example.org", "target": "bob@example.org"}]})
        )
    );

    // Changes through the API, checked with the CLI.
    let (code, body) = s.api(
        "POST",
        "/api/v1/accounts",
        Some(&json!({"address": "carol@example.com"})),
    );
    assert_eq!(code, 201);
    assert_eq!(
        body["generated_password"].as_str().map(str::len),
        Some(20),
        "{body}"
    );
    assert_eq!(
        s.api(
            "PUT",
            "/api/v1/accounts/carol@example.com/quota",
            Some(&json!({"quota_bytes": 1000}))
        ),
        (204, Value::Null)
    );
    assert!(
        s.cli_ok(&["account", "show", "carol@example.com"], "")
            .contains("\"quota_bytes\": 1000,")
    );
    let (code, body) = s.api(
        "POST",
        "/api/v1/accounts/carol@example.com/app-passwords",
        Some(&json!({"label": "phone", "protocols": ["imap"]})),
    );
    assert_eq!(code, 201, "{body}");
    let id = body["app_password"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["secret"].as_str().map(str::len), Some(24));
    let listed = s.cli_ok(
        &["account", "app-password", "list", "carol@example.com"],
        "",
    );
    assert!(
        listed.starts_with(&format!("{id} phone protocols=imap ")),
        "{listed}"
    );
    assert_eq!(
        s.api(
            "POST",
            "/api/v1/groups/team@example.org/members",
            Some(&json!({"member": "carol@example.com"}))
        ),
        (201, Value::Null)
    );
    assert_eq!(
        s.cli_ok(&["group", "members", "team@example.org"], ""),
        "bob@example.org\ncarol@example.com\n"
    );
    assert_eq!(
        s.api("DELETE", "/api/v1/aliases/sales@example.org", None),
        (200, json!({"removed": 1}))
    );
    assert_eq!(s.cli_ok(&["alias", "list"], ""), "");
    assert_eq!(
        s.api("DELETE", "/api/v1/accounts/carol@example.com", None),
        (204, Value::Null)
    );
    assert_eq!(
        s.cli_err(&["account", "show", "carol@example.com"], ""),
        "postern: not found: account carol@example.com\n"
    );
    let (code, body) = s.api("GET", "/api/v1/store/verify", None);
    assert_eq!(
        (code, &body["ok"], &body["accounts"]),
        (200, &json!(true), &json!(3))
    );
    let (code, body) = s.api("GET", "/api/v1/audit/verify", None);
    assert_eq!((code, &body["ok"]), (200, &json!(true)), "{body}");
}

#[test]
fn errors_are_json_with_a_status_per_class() {
    let s = Server::start();
    s.cli_ok(&["domain", "add", "example.com"], "");
    s.cli_ok(
        &["account", "add", "team@example.com", "--kind", "group"],
        "",
    );
    let cases: &[(&str, &str, Option<Value>, u16, Value)] = &[
        (
            "POST",
            "/api/v1/domains",
            Some(json!({"name": "1.2.3.4"})),
            400,
            json!({"error": "domain: an IP address is not a mail domain", "field": "domain"}),
        ),
        (
            "POST",
            "/api/v1/domains",
            Some(json!({"name": "example.com"})),
            409,
            json!({"error": "already exists: domain example.com", "field": null}),
        ),
        (
            "POST",
            "/api/v1/accounts",
            Some(json!({"address": "a\r\nb@example.com", "password": "long enough"})),
            400,
            json!({"error": "address: contains a control character or line break", "field": "address"}),
        ),
        (
            "POST",
            "/api/v1/accounts",
            Some(json!({"address": "alice@example.com", "password": "short"})),
            400,
            json!({"error": "password: shorter than 8 characters", "field": "password"}),
        ),
        (
            "POST",
            "/api/v1/accounts",
            Some(json!({"address": "alice@example.com", "kind": "robot"})),
            400,
            json!({"error": "kind: one of individual, shared, group, resource", "field": "kind"}),
        ),
        (
            "POST",
            "/api/v1/accounts",
            Some(json!({"address": "alice@nowhere.example"})),
            404,
            json!({"error": "not found: domain nowhere.example", "field": null}),
        ),
        (
            "GET",
            "/api/v1/accounts/nobody@example.com",
            None,
            404,
            json!({"error": "not found: account nobody@example.com", "field": null}),
        ),
        (
            "DELETE",
            "/api/v1/domains/example.com",
            None,
            409,
            json!({"error": "refused: the domain still has accounts or aliases; remove them first", "field": null}),
        ),
        (
            "POST",
            "/api/v1/groups/nobody@example.com/members",
            Some(json!({"member": "x@example.com"})),
            404,
            json!({"error": "not found: account nobody@example.com", "field": null}),
        ),
        (
            "GET",
            "/api/v1/audit?since=yesterday",
            None,
            400,
            json!({"error": "since: --since \"yesterday\": expected RFC 3339 time, YYYY-MM-DD, or an age like 24h", "field": "since"}),
        ),
        (
            "GET",
            "/api/v1/nothing-here",
            None,
            404,
            json!({"error": "not found"}),
        ),
    ];
    for (method, path, body, status, expected) in cases {
        let got = s.api(method, path, body.as_ref());
        assert_eq!(got, (*status, expected.clone()), "{method} {path} {body:?}");
    }
    // Nothing was created by the refused requests.
    assert_eq!(
        s.cli_ok(&["account", "list"], ""),
        "team@example.com group team used=0 quota=none messages=0\n"
    );
}

/// Malformed bodies are refused before any handler runs, with a JSON `error` too.
#[test]
fn malformed_bodies_are_refused_as_json() {
    let s = Server::start();
    let auth = format!("Bearer {}", s.token());
    let json_type = ("Content-Type", "application/json");
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [u8], u16);
    let cases: &[Case] = &[
        (&[json_type], b"{\"address\": \"a@", 400),
        (
            &[json_type],
            b"{\"address\": \"a@example.com\", \"admin\": true}",
            422,
        ),
        (&[json_type], b"[]", 422),
        (&[], b"{\"address\": \"a@example.com\"}", 415),
    ];
    for (headers, body, status) in cases {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        let r = http(s.addr("admin"), "POST", "/api/v1/accounts", &h, body);
        assert_eq!(r.status, *status, "{}: {}", text(body), r.text());
        assert!(
            r.json()["error"].is_string(),
            "{}: {}",
            text(body),
            r.text()
        );
    }
    // Over the 1 MiB body limit.
    let big = vec![b' '; (1 << 20) + 1];
    let r = http(
        s.addr("admin"),
        "POST",
        "/api/v1/domains",
        &[("Authorization", &auth), json_type],
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(s.cli_ok(&["account", "list"], ""), "");
}

#[test]
fn api_actions_are_in_the_ledger_with_the_peer() {
    let s = Server::start();
    s.cli_ok(&["domain", "add", "example.com"], "");
    let admin = s.addr("admin");
    let mut conn = connect(admin);
    let peer = conn.local_addr().unwrap();
    let body =
        json!({"address": "alice@example.com", "password": "correct horse battery"}).to_string();
    let auth = format!("Bearer {}", s.token());
    let req = request_bytes(
        admin,
        "POST",
        "/api/v1/accounts",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("User-Agent", "ops-script/1.0"),
        ],
        body.as_bytes(),
    );
    conn.write_all(&req).unwrap();
    assert_eq!(parse_response(&read_to_close(&mut conn)).status, 201);

    let out = s.cli_ok(
        &["audit", "show", "--account", "alice@example.com", "--json"],
        "",
    );
    let entries: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{out}");
    let r = &entries[0]["record"];
    assert_eq!(r["action"], "account.create");
    assert_eq!(
        r["actor"],
        json!({"account": "admin-token", "role": "admin"})
    );
    assert_eq!(
        r["session"],
        json!({"protocol": "admin-api", "remote": peer.to_string(), "client_id": "ops-script/1.0",
               "auth_method": "token", "session_id": null})
    );
    assert_eq!(r["after"]["password_set"], true);
    assert!(!out.contains("correct horse"), "no secret in the ledger");

    // Reading the ledger through the API is recorded as well.
    let (code, body) = s.api("GET", "/api/v1/audit?account=alice@example.com", None);
    assert_eq!(code, 200);
    // account.create, and the CLI's read just now.
    let actions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["account.create", "audit.read"]);
    let out = s.cli_ok(
        &["audit", "show", "--account", "alice@example.com", "--json"],
        "",
    );
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["record"]["action"], "audit.read");
    assert_eq!(last["record"]["session"]["protocol"], "admin-api");
}

/// Everything that is not `Authorization: Bearer <the token>`: wrong tokens, the token
/// anywhere else (query, cookie, Basic, other schemes), and the headers the Exchange
/// chains used to pick a backend or an identity.
#[test]
fn only_the_bearer_token_admits() {
    let s = Server::start();
    let admin = s.addr("admin");
    let token = s.token();
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let basic_pair = format!("Basic {}", b64(&format!("admin:{token}")));
    let basic_token = format!("Basic {}", b64(&token));
    let token_scheme = format!("Token {token}");
    let cookie = format!("token={token}; admin_token={token}; access_token={token}");
    let trailing = format!("Bearer {token}x");
    let prefix = format!("Bearer {}", &token[..token.len() - 1]);
    let header_sets: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", "Bearer wrong-token-0123456789abcdef0123")],
        vec![("Authorization", "Bearer ")],
        vec![("Authorization", trailing.as_str())],
        vec![("Authorization", prefix.as_str())],
        vec![("Authorization", token.as_str())],
        vec![("Authorization", token_scheme.as_str())],
        vec![("Authorization", basic_pair.as_str())],
        vec![("Authorization", basic_token.as_str())],
        vec![("Cookie", cookie.as_str())],
        vec![("X-BEResource", "localhost~1942062522")],
        vec![
            ("X-BEResource", "127.0.0.1/api/v1/domains?~1942062522"),
            ("Cookie", cookie.as_str()),
        ],
        vec![("X-AnonResource-Backend", "localhost/ecp/default.flt?~3")],
        vec![
            ("X-AnonResource", "true"),
            ("X-AnonResource-Backend", "127.0.0.1:0/api/v1/domains?~3"),
        ],
        vec![("X-Rps-CAT", token.as_str())],
        vec![
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Real-IP", "127.0.0.1"),
            ("X-Forwarded-User", "admin"),
        ],
        vec![
            ("X-Admin-Token", token.as_str()),
            ("X-Auth-Token", token.as_str()),
            ("X-Api-Key", token.as_str()),
        ],
    ];
    let bearer = format!("Bearer {token}");
    for (method, path) in ADMIN_ROUTES {
        let sep = if path.contains('?') { '&' } else { '?' };
        let query_paths = [
            path.to_string(),
            format!("{path}{sep}token={token}"),
            format!("{path}{sep}access_token={token}"),
            format!("{path}{sep}X-Rps-CAT={token}"),
        ];
        for p in &query_paths {
            for headers in &header_sets {
                let r = http(admin, method, p, headers, b"");
                assert_eq!(r.status, 401, "{method} {p} with {headers:?}: {}", r.text());
                assert_eq!(r.header("www-authenticate"), Some("Bearer"));
                assert_eq!(r.json(), json!({"error": "authentication required"}));
            }
        }
        // The control: the real token in the one place it is read gets past the gate.
        let r = http(admin, method, path, &[("Authorization", &bearer)], b"");
        assert_ne!(r.status, 401, "{method} {path} with the token");
    }
    assert_eq!(s.cli_ok(&["domain", "list"], ""), "", "nothing was created");
}

/// Request shapes of ProxyLogon/ProxyShell: absolute-form targets, foreign Host headers,
/// autodiscover path confusion, encoded separators and traversal, and the data
/// directory's file names. None is ever answered with data; none reaches a handler
/// without the token.
#[test]
fn no_routing_by_request_data_and_no_data_directory_content() {
    let s = Server::start();
    let token = s.token();
    let bearer = format!("Bearer {token}");
    let cert = std::fs::read_to_string(s.cert_path()).unwrap();
    let leaks = |body: &str| -> Option<&str> {
        [
            ("the admin token", token.as_str()),
            ("a certificate", "BEGIN CERTIFICATE"),
            ("a private key", "PRIVATE KEY"),
            ("the SQLite file", "SQLite format"),
            ("the certificate file", cert.lines().nth(1).unwrap()),
        ]
        .into_iter()
        .find(|(_, needle)| body.contains(needle))
        .map(|(what, _)| what)
    };

    let admin = s.addr("admin");
    for (request, status) in [
        (
            "GET http://127.0.0.1:444/api/v1/domains HTTP/1.1\r\nHost: 127.0.0.1:444\r\n",
            401,
        ),
        (
            "GET http://localhost/api/v1/domains HTTP/1.1\r\nHost: localhost\r\nX-BEResource: localhost~1\r\n",
            401,
        ),
        (
            "GET /api/v1/domains HTTP/1.1\r\nHost: localhost:444\r\n",
            401,
        ),
        (
            "GET /api/v1/domains HTTP/1.1\r\nHost: exchange.example.com\r\nX-Forwarded-Host: localhost\r\n",
            401,
        ),
        (
            "GET http://127.0.0.1:444/admin.token HTTP/1.1\r\nHost: 127.0.0.1:444\r\n",
            404,
        ),
    ] {
        let r = http_raw(
            admin,
            format!("{request}Connection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, status, "{request:?}: {}", r.text());
        assert_eq!(leaks(&r.text()), None, "{request:?}");
    }

    let paths = [
        "/autodiscover/autodiscover.json?@x.com/api/v1/domains",
        "/autodiscover/autodiscover.json?@x.com/api/v1/domains?&Email=autodiscover/autodiscover.json%3F@x.com",
        "/autodiscover/autodiscover.json?@x.com/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@x.com",
        "/api/v1/domains%3f@x",
        "/api/v1/domains%3F@x.com/",
        "/api%2fv1%2fdomains",
        "/%2e%2e/admin.token",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/%2e%2e/%2e%2e/admin.token",
        "/admin.token",
        "/meta.sqlite",
        "/meta.sqlite-wal",
        "/tls/key.pem",
        "/tls/cert.pem",
        "/blobs/",
        "/data/admin.token",
        "/postern-data/admin.token",
        "/ecp/DDI/DDIService.svc/GetList",
        "/owa/auth/x.js",
        "/powershell/",
    ];
    for path in paths {
        for kind in ["admin", "http", "https"] {
            for auth in [None, Some(bearer.as_str())] {
                let headers: Vec<(&str, &str)> =
                    auth.map(|a| ("Authorization", a)).into_iter().collect();
                let r = if kind == "https" {
                    https(s.addr(kind), &s.cert_path(), "GET", path, &headers)
                } else {
                    http(s.addr(kind), "GET", path, &headers, b"")
                };
                assert_eq!(
                    r.status,
                    404,
                    "{kind} {path} (token: {}): {}",
                    auth.is_some(),
                    r.text()
                );
                assert_eq!(r.json(), json!({"error": "not found"}), "{kind} {path}");
                assert_eq!(leaks(&r.text()), None, "{kind} {path}");
            }
        }
    }
}

/// A web shell dropped into the data directory (CVE-2021-27065 wrote one through an
/// admin API) is never served: nothing maps URLs to files.
#[test]
fn files_in_the_data_directory_are_never_served() {
    let s = Server::start();
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&s.data).unwrap();
    let names = ["x.aspx", "x.html", "x.php", "index.html", "healthz"];
    for name in names {
        let path = s.data.join(name);
        std::fs::write(&path, format!("<%@ Page Language=\"C#\" %> SHELL-{name}")).unwrap();
        // Readable by the server's user, so only the design keeps it from being served.
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    let bearer = format!("Bearer {}", s.token());
    for name in names {
        for path in [
            format!("/{name}"),
            format!("/data/{name}"),
            format!("/owa/auth/{name}"),
            format!("/aspnet_client/{name}"),
            format!("/%2e%2e/data/{name}"),
        ] {
            if path == "/healthz" {
                continue;
            }
            for kind in ["admin", "http", "https"] {
                let headers = [("Authorization", bearer.as_str())];
                let r = if kind == "https" {
                    https(s.addr(kind), &s.cert_path(), "GET", &path, &headers)
                } else {
                    http(s.addr(kind), "GET", &path, &headers, b"")
                };
                assert_eq!(r.status, 404, "{kind} {path}: {}", r.text());
                assert!(
                    !r.text().contains("SHELL-"),
                    "{kind} {path} served the file"
                );
            }
        }
    }
    // /healthz is a route, not the file of that name.
    let r = http(s.addr("http"), "GET", "/healthz", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
}

#[test]
fn the_web_listener_has_no_admin_routes() {
    let s = Server::start();
    let bearer = format!("Bearer {}", s.token());
    let body = json!({"name": "example.com"}).to_string();
    for kind in ["http", "https"] {
        for (method, path) in ADMIN_ROUTES {
            let headers = [
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ];
            let body: &[u8] = if *method == "POST" {
                body.as_bytes()
            } else {
                b""
            };
            let r = if kind == "https" {
                let mut tls = tls_connect(s.addr(kind), &s.cert_path(), HOSTNAME);
                tls.write_all(&request_bytes(s.addr(kind), method, path, &headers, body))
                    .unwrap();
                parse_response(&read_to_close(&mut tls))
            } else {
                http(s.addr(kind), method, path, &headers, body)
            };
            assert_eq!(r.status, 404, "{kind}: {method} {path}: {}", r.text());
            assert_eq!(r.json(), json!({"error": "not found"}));
        }
    }
    assert_eq!(
        s.cli_ok(&["domain", "list"], ""),
        "",
        "nothing was created through the web listener"
    );
    // The admin listener, for contrast, serves metrics to the token only.
    let r = http(
        s.addr("admin"),
        "GET",
        "/metrics",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
}
