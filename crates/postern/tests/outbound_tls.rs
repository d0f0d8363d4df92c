//! Outbound TLS end to end (issue 5 follow-ups): MTA-STS policies kept in the store
//! (RFC 8461 §5.1) and SMTP TLS reports (RFC 8460), with real `postern serve` processes,
//! a test DNS zone (`crates/smtp/tests/dns_zone.py`, dnslib), receiving MTAs on loopback
//! (`tests/outbound_peer.py`, aiosmtpd) and an HTTPS server (`tests/https_peer.py`, Python's
//! standard library) for the MTA-STS policy and `https:` reports, under a test CA made
//! with openssl and trusted through `[outbound] ca_file`.
//!
//! A missing tool (python3 with dnslib, aiosmtpd, dkimpy and pynacl; swaks; openssl)
//! fails the tests with the install line: nothing is skipped.

mod common;
mod outbound_common;
use common::*;
use outbound_common::*;

use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HTTPS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/https_peer.py");

// ---- the aiosmtpd peer ----

// ---- postern ----

/// A test CA in `dir`: (CA certificate path, a function making leaf certificates).
struct Ca {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let cert = dir.join("ca.pem");
        let key = dir.join("ca-key.pem");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Postern Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        Ca {
            dir: dir.to_path_buf(),
            cert,
            key,
        }
    }

    /// A certificate for `name` signed by the CA: (certificate, key).
    fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = self.dir.join(format!("{name}-key.pem"));
        let csr = self.dir.join(format!("{name}.csr"));
        let cert = self.dir.join(format!("{name}.pem"));
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            cert.to_str().unwrap(),
        ]);
        (cert, key)
    }
}

/// The HTTPS server of `tests/https_peer.py` on 127.0.0.1.
struct Https {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Https {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Https {
    fn start(cert: &Path, key: &Path) -> Https {
        require_tool("python3", "apt-get install python3");
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg(HTTPS_SCRIPT)
            .args(["--host", "127.0.0.1", "--port", "0", "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        let port = port_line(&mut child, "the HTTPS server", "apt-get install python3");
        Https { port, dir, child }
    }

    fn policy(&self, text: &str) {
        std::fs::write(self.dir.path().join("policy.txt"), text).unwrap();
    }

    /// Every POST received: (path and headers, body).
    fn posts(&self) -> Vec<(Value, Vec<u8>)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let meta =
                    serde_json::from_slice(&std::fs::read(p.with_extension("json")).unwrap())
                        .unwrap();
                (meta, std::fs::read(&p).unwrap())
            })
            .collect()
    }
}

/// `[dns]` and `[outbound]` of a test server: small timeouts and retries, MTA-STS
/// policies from `sts_port`, trust in the test CA.
fn tls_config(dns: u16, port: u16, sts_port: u16, ca: &Path, extra: &str) -> String {
    format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns}\"]\ntimeout_secs = 2\n\
         [outbound]\nport = {port}\nallow_private_destinations = true\n\
         connect_timeout_secs = 2\ncommand_timeout_secs = 2\n\
         data_timeout_secs = 3\nlease_secs = 13\npoll_secs = 1\nretry_base_secs = 1\n\
         retry_max_secs = 1\nmax_queue_lifetime_secs = 600\ndelay_notice_secs = 0\n\
         mta_sts_port = {sts_port}\nca_file = \"{}\"\n{extra}",
        ca.display()
    )
}

const STS_POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n";

/// The zone of sts.test: its MX hosts (name, address) and its `_mta-sts` id.
fn sts_zone(mx: &[(&str, &str)], id: &str) -> Vec<Value> {
    let mut records = vec![
        rr("_mta-sts.sts.test", "TXT", &format!("v=STSv1; id={id};")),
        rr("mta-sts.sts.test", "A", "127.0.0.1"),
    ];
    for (i, (name, ip)) in mx.iter().enumerate() {
        records.push(rr("sts.test", "MX", &format!("{} {name}", 10 * (i + 1))));
        records.push(rr(name, "A", ip));
    }
    records
}

// =======================================================================================
// MTA-STS policies survive a restart (RFC 8461 §5.1).
// =======================================================================================

#[test]
fn a_cached_enforce_policy_outlives_its_web_server_and_a_restart() {
    require_python("dnslib, aiosmtpd");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (mx_cert, mx_key) = ca.leaf("mx.sts.test");
    let (web_cert, web_key) = ca.leaf("mta-sts.sts.test");
    let good = Peer::start(&["127.0.0.2"], 0, Some((&mx_cert, &mx_key)));
    let port = good.port;
    // Where an attacker who owns the DNS answers would send the mail: no TLS, and a name
    // the policy does not list.
    let evil = Peer::start(&["127.0.0.3"], port, None);
    let web = Https::start(&web_cert, &web_key);
    web.policy(STS_POLICY);
    let dns = Dns::start(sts_zone(&[("mx.sts.test", "127.0.0.2")], "one"), false);
    let mut server = Server::start_with(&tls_config(dns.port, port, web.port, &ca.cert, ""));
    add_user(&server, "example.com", "alice@example.com", ALICE_PW);

    submit(&server, &["a@sts.test"], "first", "x\n");
    let m = good.wait_for_rcpt("a@sts.test");
    assert_eq!(m.meta["tls"], json!(true), "{:?}", m.meta);
    wait_queue_empty(&server);

    // The policy's web server goes away, the TXT record gets a new id (so the node must
    // fetch again, and cannot), the MX points elsewhere, and the node restarts.
    drop(web);
    server.stop();
    dns.set(sts_zone(&[("mx.evil.test", "127.0.0.3")], "two"));
    restart(&mut server);
    submit(&server, &["b@sts.test"], "second", "x\n");
    let id = wait_attempts(&server, "b@sts.test", 2);
    let line = queue_line(&server, &id, "b@sts.test");
    assert!(
        line.contains("4.7.5"),
        "deferred under the cached policy: {line}"
    );
    assert!(evil.messages().is_empty(), "{:?}", evil.messages());
    assert!(
        evil.events().is_empty(),
        "never sent to the unlisted MX: {:?}",
        evil.events()
    );

    // The listed MX comes back (behind the other): the mail goes there, over TLS.
    dns.set(sts_zone(
        &[("mx.evil.test", "127.0.0.3"), ("mx.sts.test", "127.0.0.2")],
        "two",
    ));
    let m = good.wait_for_rcpt("b@sts.test");
    assert_eq!(m.meta["tls"], json!(true), "{:?}", m.meta);
    wait_queue_empty(&server);
    assert!(evil.events().is_empty(), "{:?}", evil.events());
}

/// Without a cached policy (a new data directory), the same situation delivers to the
/// unlisted MX: what the test above sees comes from the stored policy.
#[test]
fn without_a_cached_policy_the_unlisted_mx_gets_the_mail() {
    require_python("dnslib, aiosmtpd");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let evil = Peer::start(&["127.0.0.3"], 0, None);
    let dns = Dns::start(sts_zone(&[("mx.evil.test", "127.0.0.3")], "two"), false);
    // Nothing listens on the policy port.
    let closed = free_port(&["127.0.0.1"]);
    let server = Server::start_with(&tls_config(dns.port, evil.port, closed, &ca.cert, ""));
    add_user(&server, "example.com", "alice@example.com", ALICE_PW);
    submit(&server, &["b@sts.test"], "second", "x\n");
    evil.wait_for_rcpt("b@sts.test");
}

// =======================================================================================
// SMTP TLS reports (RFC 8460).
// =======================================================================================

/// The gzipped JSON of a report message's `application/tlsrpt+gzip` part.
fn report_of_mail(text: &str) -> Value {
    use base64::Engine as _;
    let at = text
        .find("Content-Type: application/tlsrpt+gzip")
        .unwrap_or_else(|| panic!("no tlsrpt part:\n{text}"));
    let part = &text[at..];
    let body_at = part.find("\r\n\r\n").unwrap() + 4;
    let b64: String = part[body_at..]
        .lines()
        .take_while(|l| !l.is_empty() && !l.starts_with("--"))
        .collect();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    gunzip_json(&gz)
}

fn gunzip_json(gz: &[u8]) -> Value {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut json)
        .expect("gunzip the report");
    serde_json::from_slice(&json).expect("JSON report")
}

/// (successful, failed) sessions of `domain`'s policies in `reports`, with the failure
/// details by (result type, MX host).
fn totals(reports: &[Value], domain: &str) -> (u64, u64, Vec<(String, String, u64)>) {
    let (mut ok, mut failed, mut details) = (0, 0, Vec::new());
    for r in reports {
        for p in r["policies"].as_array().unwrap() {
            assert_eq!(p["policy"]["policy-domain"], json!(domain), "{r}");
            ok += p["summary"]["total-successful-session-count"]
                .as_u64()
                .unwrap();
            failed += p["summary"]["total-failure-session-count"]
                .as_u64()
                .unwrap();
            for d in p["failure-details"].as_array().into_iter().flatten() {
                details.push((
                    d["result-type"].as_str().unwrap().to_string(),
                    d["receiving-mx-hostname"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    d["failed-session-count"].as_u64().unwrap(),
                ));
            }
        }
    }
    (ok, failed, details)
}

#[test]
fn tls_outcomes_are_reported_by_mail_and_https_once() {
    require_python("dnslib, aiosmtpd, dkim, nacl");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    // One receiving MTA for both MX hosts of rpt.test; its certificate names only the
    // second, so under the domain's `enforce` policy the first fails
    // (certificate-host-mismatch) and the second takes the mail.
    let (mx_cert, mx_key) = ca.leaf("mx2.rpt.test");
    let (web_cert, web_key) = ca.leaf("mta-sts.rpt.test");
    let (rep_cert, rep_key) = ca.leaf("reports.test");
    let mx = Peer::start(&["127.0.0.2"], 0, Some((&mx_cert, &mx_key)));
    let port = mx.port;
    let reports = Peer::start(&["127.0.0.4"], port, None);
    let web = Https::start(&web_cert, &web_key);
    web.policy("version: STSv1\r\nmode: enforce\r\nmx: *.rpt.test\r\nmax_age: 86400\r\n");
    let rep = Https::start(&rep_cert, &rep_key);
    let mut zone = vec![
        rr("rpt.test", "MX", "10 mx1.rpt.test"),
        rr("rpt.test", "MX", "20 mx2.rpt.test"),
        rr("mx1.rpt.test", "A", "127.0.0.2"),
        rr("mx2.rpt.test", "A", "127.0.0.2"),
        rr("_mta-sts.rpt.test", "TXT", "v=STSv1; id=r1;"),
        rr("mta-sts.rpt.test", "A", "127.0.0.1"),
        rr(
            "_smtp._tls.rpt.test",
            "TXT",
            &format!(
                "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,https://reports.test:{}/tlsrpt",
                rep.port
            ),
        ),
        rr("reports.test", "A", "127.0.0.1"),
        rr("reports.test", "MX", "10 mx.reports.test"),
        rr("mx.reports.test", "A", "127.0.0.4"),
        // The reports' own destination asks for reports too: delivering them must not
        // make any (RFC 8460 §3).
        rr(
            "_smtp._tls.reports.test",
            "TXT",
            "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test",
        ),
    ];
    let dns = Dns::start(zone.clone(), false);
    let server = Server::start_with(&tls_config(
        dns.port,
        port,
        web.port,
        &ca.cert,
        "tlsrpt_period_secs = 2\ntlsrpt_interval_secs = 1\n",
    ));
    add_user(&server, "example.com", "alice@example.com", ALICE_PW);
    // Report mail comes from postmaster@<hostname>: with keys for that domain, it is
    // DKIM-signed like the server's other mail.
    server.cli_ok(&["domain", "add", HOSTNAME], "");
    let printed = server.cli_ok(&["domain", "dkim", HOSTNAME], "");
    zone.extend(dkim_records(&printed));
    dns.set(zone);
    submit(&server, &["a@rpt.test"], "one", "x\n");
    submit(&server, &["b@rpt.test"], "two", "x\n");
    for rcpt in ["a@rpt.test", "b@rpt.test"] {
        let m = mx.wait_for_rcpt(rcpt);
        assert_eq!(m.meta["tls"], json!(true), "{:?}", m.meta);
    }

    // Deliveries may straddle two periods: add up every report.
    let mailed = || -> Vec<Received> { reports.for_rcpt("tlsrpt@reports.test") };
    wait_for(
        DELIVERY,
        "the mailed reports to count both deliveries",
        || {
            let r: Vec<Value> = mailed().iter().map(|m| report_of_mail(&m.text())).collect();
            (totals(&r, "rpt.test").0 >= 2).then_some(())
        },
    );
    wait_for(
        DELIVERY,
        "the posted reports to count both deliveries",
        || {
            let r: Vec<Value> = rep.posts().iter().map(|(_, b)| gunzip_json(b)).collect();
            (totals(&r, "rpt.test").0 >= 2).then_some(())
        },
    );
    // A few more periods: nothing is reported twice, and nothing about the reports.
    std::thread::sleep(Duration::from_secs(5));

    let mails = mailed();
    let mail_reports: Vec<Value> = mails.iter().map(|m| report_of_mail(&m.text())).collect();
    let posted = rep.posts();
    let post_reports: Vec<Value> = posted.iter().map(|(_, b)| gunzip_json(b)).collect();
    assert_eq!(mails.len(), post_reports.len(), "one of each per period");
    for reps in [&mail_reports, &post_reports] {
        let (ok, failed, details) = totals(reps, "rpt.test");
        assert_eq!((ok, failed), (2, 2), "{reps:#?}");
        let mismatch: u64 = details
            .iter()
            .filter(|(t, mx, _)| t == "certificate-host-mismatch" && mx == "mx1.rpt.test")
            .map(|d| d.2)
            .sum();
        assert_eq!(mismatch, 2, "{details:?}");
    }
    for (m, r) in mails.iter().zip(&mail_reports) {
        let text = m.text();
        assert_eq!(m.meta["mail_from"], json!("<>"), "{:?}", m.meta);
        let id = r["report-id"].as_str().unwrap();
        assert_eq!(
            header(&text, "TLS-Report-Domain").as_deref(),
            Some("rpt.test")
        );
        assert_eq!(
            header(&text, "TLS-Report-Submitter").as_deref(),
            Some(HOSTNAME)
        );
        assert_eq!(
            header(&text, "Subject"),
            Some(format!(
                "Report Domain: rpt.test Submitter: {HOSTNAME} Report-ID: <{id}>"
            ))
        );
        let sigs = all_headers(&text, "DKIM-Signature");
        assert!(!sigs.is_empty(), "unsigned report:\n{text}");
        let checked = dkimpy(&dns.path, &m.raw);
        assert!(
            !checked.is_empty() && checked.iter().all(|(_, ok)| *ok),
            "dkimpy: {checked:?}"
        );
        assert!(
            sigs.iter().all(|v| v.contains(&format!("d={HOSTNAME};"))),
            "{sigs:?}"
        );
        let ct = header(&text, "Content-Type").unwrap();
        assert!(ct.starts_with("multipart/report;"), "{ct}");
        assert!(ct.contains("report-type=\"tlsrpt\""), "{ct}");
        assert_eq!(r["organization-name"], json!(HOSTNAME));
        assert_eq!(r["contact-info"], json!(format!("postmaster@{HOSTNAME}")));
        let start = r["date-range"]["start-datetime"].as_str().unwrap();
        let end = r["date-range"]["end-datetime"].as_str().unwrap();
        assert!(start < end && start.ends_with('Z'), "{start} {end}");
        let p = &r["policies"][0]["policy"];
        assert_eq!(p["policy-type"], json!("sts"), "{r}");
        assert_eq!(p["mx-host"], json!(["*.rpt.test"]), "{r}");
        assert!(
            p["policy-string"]
                .as_array()
                .unwrap()
                .contains(&json!("mode: enforce")),
            "{r}"
        );
    }
    for (meta, _) in &posted {
        assert_eq!(meta["path"], json!("/tlsrpt"), "{meta}");
        let ct = meta["headers"]["content-type"].as_str().unwrap_or_default();
        assert_eq!(ct, "application/tlsrpt+gzip", "{meta}");
    }
    // No report about the reports' own delivery (to reports.test).
    assert!(
        reports
            .messages()
            .iter()
            .all(|m| header(&m.text(), "TLS-Report-Domain").as_deref() == Some("rpt.test")),
        "a report about reports"
    );
    let sent = actions(&server, "tlsrpt.send");
    assert_eq!(sent.len(), mails.len(), "{sent:#?}");
}

/// RFC 8461 §5 `testing`: the MX host's certificate is checked as `enforce` would and
/// the failure reported (RFC 8460), but the mail is delivered as without a policy.
#[test]
fn a_testing_policy_is_checked_and_reported_but_mail_still_goes() {
    require_python("dnslib, aiosmtpd");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    // The certificate names another host than the MX.
    let (mx_cert, mx_key) = ca.leaf("someone-else.test");
    let (web_cert, web_key) = ca.leaf("mta-sts.tst.test");
    let mx = Peer::start(&["127.0.0.2"], 0, Some((&mx_cert, &mx_key)));
    let port = mx.port;
    let reports = Peer::start(&["127.0.0.4"], port, None);
    let web = Https::start(&web_cert, &web_key);
    web.policy("version: STSv1\r\nmode: testing\r\nmx: mx1.tst.test\r\nmax_age: 86400\r\n");
    let dns = Dns::start(
        vec![
            rr("tst.test", "MX", "10 mx1.tst.test"),
            rr("mx1.tst.test", "A", "127.0.0.2"),
            rr("_mta-sts.tst.test", "TXT", "v=STSv1; id=t1;"),
            rr("mta-sts.tst.test", "A", "127.0.0.1"),
            rr(
                "_smtp._tls.tst.test",
                "TXT",
                "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test",
            ),
            rr("reports.test", "MX", "10 mx.reports.test"),
            rr("mx.reports.test", "A", "127.0.0.4"),
        ],
        false,
    );
    let server = Server::start_with(&tls_config(
        dns.port,
        port,
        web.port,
        &ca.cert,
        "tlsrpt_period_secs = 2\ntlsrpt_interval_secs = 1\n",
    ));
    add_user(&server, "example.com", "alice@example.com", ALICE_PW);
    submit(&server, &["a@tst.test"], "testing mode", "x\n");
    // Delivered anyway, over (unverified) TLS.
    let m = mx.wait_for_rcpt("a@tst.test");
    assert_eq!(m.meta["tls"], json!(true), "{:?}", m.meta);
    let (ok, failed, details) = wait_for(DELIVERY, "a TLS report for tst.test", || {
        let r: Vec<Value> = reports
            .for_rcpt("tlsrpt@reports.test")
            .iter()
            .map(|m| report_of_mail(&m.text()))
            .collect();
        let t = totals(&r, "tst.test");
        (t.1 >= 1).then_some(t)
    });
    // The session is a failure of the policy, not a success.
    assert_eq!((ok, failed), (0, 1), "{details:?}");
    assert!(
        details
            .iter()
            .any(|(t, mx, n)| t == "certificate-host-mismatch" && mx == "mx1.tst.test" && *n == 1),
        "{details:?}"
    );
}
