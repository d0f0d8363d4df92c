//! DKIM keys per domain: generation (Ed25519, RFC 8463; RSA-2048, RFC 8301), the DNS TXT
//! record to publish, and signing outgoing mail (RFC 6376) with `mail-auth`.
//!
//! Keys are kept as PKCS#8 DER. Ed25519 keys come from ring; RSA keys from the `rsa` crate
//! (ring cannot generate RSA keys) and are then loaded into ring for signing, so the `rsa`
//! crate never signs or decrypts anything.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};

/// The header fields signed, in this order. The fields a reader sees as "who, to whom,
/// what, when" appear twice: the second instance "oversigns" them, so such a field added
/// later (a second From or Subject shown instead of ours) breaks the signature
/// (RFC 6376 §8.15).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "Sender",
    "Reply-To",
    "Reply-To",
    "To",
    "To",
    "Cc",
    "Cc",
    "Subject",
    "Subject",
    "Date",
    "Date",
    "Message-ID",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    // RFC 8460 §5.3: a TLS report's own fields SHOULD be signed.
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
];

/// RSA modulus size for new keys: RFC 8301 §3.2 requires at least 1024 and recommends 2048.
pub const RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    /// The `k=` tag of the DNS record and the name used in storage and on the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "ed25519" => Some(Algorithm::Ed25519),
            "rsa" => Some(Algorithm::Rsa),
            _ => None,
        }
    }
}

/// One signing key of a domain.
#[derive(Clone)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    /// PKCS#8 DER of the private key.
    pub private_der: Vec<u8>,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("generating the {0} key: {1}")]
    Generate(&'static str, String),
    #[error("the stored {0} key for selector {1} does not load: {2}")]
    BadKey(&'static str, String, String),
    #[error("signing with selector {0}: {1}")]
    Sign(String, String),
}

/// A new private key, PKCS#8 DER.
pub fn generate(algorithm: Algorithm) -> Result<Vec<u8>, DkimError> {
    match algorithm {
        Algorithm::Ed25519 => {
            Ed25519Key::generate_pkcs8().map_err(|e| DkimError::Generate("ed25519", e.to_string()))
        }
        Algorithm::Rsa => {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
                .map_err(|e| DkimError::Generate("rsa", e.to_string()))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| DkimError::Generate("rsa", e.to_string()))?;
            Ok(der.as_bytes().to_vec())
        }
    }
}

/// A selector for a key made now: `postern-ed25519-YYYYMM` or `postern-rsa-YYYYMM`, so that a
/// rotation next month gets a fresh name and both records can be published side by side.
pub fn selector_for(algorithm: Algorithm, now: time::OffsetDateTime) -> String {
    format!(
        "postern-{}-{:04}{:02}",
        algorithm.as_str(),
        now.year(),
        u8::from(now.month())
    )
}

impl DkimKey {
    /// The `p=` value: for Ed25519 the raw 32-byte public key (RFC 8463 §4.2); for RSA the
    /// DER SubjectPublicKeyInfo, which is what verifiers expect (RFC 6376 §3.6.1).
    pub fn public_key(&self) -> Result<Vec<u8>, DkimError> {
        match self.algorithm {
            Algorithm::Ed25519 => Ok(self.ed25519()?.public_key()),
            Algorithm::Rsa => {
                use rsa::pkcs8::DecodePrivateKey as _;
                let key = rsa::RsaPrivateKey::from_pkcs8_der(&self.private_der)
                    .map_err(|e| self.bad(e.to_string()))?;
                let spki = key
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| self.bad(e.to_string()))?;
                Ok(spki.as_bytes().to_vec())
            }
        }
    }

    /// The DNS name of the record: `<selector>._domainkey.<domain>.`
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}.", self.selector, self.domain)
    }

    /// The TXT record's value as one string (`v=DKIM1; k=…; p=…`).
    pub fn record_value(&self) -> Result<String, DkimError> {
        Ok(format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.as_str(),
            B64.encode(self.public_key()?)
        ))
    }

    /// A zone-file line: the value split into quoted strings of at most 255 octets each
    /// (RFC 1035 §3.3.14; an RSA-2048 record is longer than one string may be).
    pub fn zone_line(&self) -> Result<String, DkimError> {
        let value = self.record_value()?;
        let chunks: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        Ok(format!(
            "{} IN TXT ( {} )",
            self.record_name(),
            chunks.join(" ")
        ))
    }

    fn ed25519(&self) -> Result<Ed25519Key, DkimError> {
        Ed25519Key::from_pkcs8_der(&self.private_der).map_err(|e| self.bad(e.to_string()))
    }

    fn rsa(&self) -> Result<RsaKey<Sha256>, DkimError> {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.private_der.as_slice());
        RsaKey::<Sha256>::from_key_der(der.into()).map_err(|e| self.bad(e.to_string()))
    }

    fn bad(&self, e: String) -> DkimError {
        DkimError::BadKey(self.algorithm.as_str(), self.selector.clone(), e)
    }

    /// Signs `message` (header and body as they will go on the wire) and returns the
    /// `DKIM-Signature: …\r\n` field to put in front of it. Relaxed/relaxed
    /// canonicalization, no `l=` (a body length limit would let anyone append content).
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        let signature = match self.algorithm {
            Algorithm::Ed25519 => DkimSigner::from_key(self.ed25519()?)
                .domain(self.domain.clone())
                .selector(self.selector.clone())
                .headers(SIGNED_HEADERS.iter().copied())
                .sign(message),
            Algorithm::Rsa => DkimSigner::from_key(self.rsa()?)
                .domain(self.domain.clone())
                .selector(self.selector.clone())
                .headers(SIGNED_HEADERS.iter().copied())
                .sign(message),
        }
        .map_err(|e| DkimError::Sign(self.selector.clone(), e.to_string()))?;
        Ok(close_b_tag(signature.to_header()))
    }
}

/// mail-auth folds the `b=` value at a fixed width and may put the fold right after the
/// last base64 character, before the closing `;`. That white space is outside the tag value
/// (RFC 6376 §3.2 tag-spec: `tag-value [FWS]`), so a verifier that empties `b=` keeps it
/// and hashes `b= ;` where the signer hashed `b=;`: strict verifiers (dkimpy, OpenDKIM)
/// then fail the signature. The fold is dropped so the field ends `…b=<value>;`.
fn close_b_tag(header: String) -> String {
    match header.strip_suffix(";\r\n") {
        Some(body) if body.ends_with([' ', '\t', '\r', '\n']) => {
            format!("{};\r\n", body.trim_end_matches([' ', '\t', '\r', '\n']))
        }
        _ => header,
    }
}

/// Signs with every key given (typically one Ed25519 and one RSA key: receivers that do not
/// know Ed25519 yet verify the RSA signature, RFC 8463 §6). Returns the header fields to
/// prepend, in key order.
pub fn sign_all(keys: &[DkimKey], message: &[u8]) -> Result<String, DkimError> {
    let mut out = String::new();
    for key in keys {
        out.push_str(&key.sign(message)?);
    }
    Ok(out)
}

/// The DKIM-Signature fields for `raw` signed with every key the store holds for
/// `domain` (`postern domain dkim`); `Ok(None)` when it holds none. Signing runs off the
/// async threads (RSA takes a few milliseconds).
pub async fn sign_as_domain(
    core: &postern_core::Core,
    domain: &str,
    raw: &[u8],
) -> Result<Option<String>, String> {
    let domain = domain.to_ascii_lowercase();
    let keys: Vec<DkimKey> = core
        .dkim_keys_of(&domain)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|k| {
            Some(DkimKey {
                domain: domain.clone(),
                selector: k.selector,
                algorithm: Algorithm::parse(&k.algorithm)?,
                private_der: k.private_der,
            })
        })
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let raw = raw.to_vec();
    tokio::task::spawn_blocking(move || sign_all(&keys, &raw))
        .await
        .map_err(|e| e.to_string())?
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

    const MSG: &[u8] = b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n\
Subject: hello\r\nDate: Wed, 25 Nov 2026 07:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\n\
Hello Bob.\r\n";

    fn key(algorithm: Algorithm) -> DkimKey {
        DkimKey {
            domain: "example.com".into(),
            selector: selector_for(algorithm, time::macros::datetime!(2026-11-25 0:00 UTC)),
            algorithm,
            private_der: generate(algorithm).expect("generate"),
        }
    }

    /// Verifies through mail-auth with the TXT lookups answered from the records we print,
    /// so the test checks the record as well as the signature.
    async fn verify(keys: &[DkimKey], signed: &[u8]) -> Vec<DkimResult> {
        use mail_auth::common::parse::TxtRecordParser as _;
        // Every answer comes from the map; a miss would go to a closed loopback port.
        use mail_auth::hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
        };
        let mut udp = ConnectionConfig::udp();
        udp.port = 9;
        let servers = vec![NameServerConfig::new(
            [127, 0, 0, 1].into(),
            true,
            vec![udp],
        )];
        let auth = MessageAuthenticator::new(
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
        .expect("authenticator");
        let msg = AuthenticatedMessage::parse(signed).expect("parse");
        let map = TxtMap(
            keys.iter()
                .map(|k| {
                    let record = k.record_value().expect("record");
                    let dk = mail_auth::common::verify::DomainKey::parse(record.as_bytes())
                        .expect("our record parses");
                    (k.record_name(), mail_auth::Txt::from(dk))
                })
                .collect(),
        );
        let results = auth
            .verify_dkim(mail_auth::Parameters::new(&msg).with_txt_cache(&map))
            .await;
        results.into_iter().map(|r| r.result().clone()).collect()
    }

    struct TxtMap(Vec<(String, mail_auth::Txt)>);

    impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for TxtMap {
        fn get<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            self.0.iter().find_map(|(n, v)| {
                let key: Box<str> = n.as_str().into();
                (<Box<str> as std::borrow::Borrow<Q>>::borrow(&key) == name).then(|| v.clone())
            })
        }
        fn remove<Q>(&self, _name: &Q) -> Option<mail_auth::Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            None
        }
        fn insert(&self, _key: Box<str>, _value: mail_auth::Txt, _valid_until: std::time::Instant) {
        }
    }

    #[tokio::test]
    async fn both_signatures_verify_and_a_change_breaks_them() {
        let keys = [key(Algorithm::Ed25519), key(Algorithm::Rsa)];
        let headers = sign_all(&keys, MSG).expect("sign");
        let mut signed = headers.into_bytes();
        signed.extend_from_slice(MSG);
        let results = verify(&keys, &signed).await;
        assert_eq!(results, vec![DkimResult::Pass, DkimResult::Pass]);

        let tampered = String::from_utf8(signed)
            .expect("utf8")
            .replace("Hello Bob.", "Hello Eve.");
        let results = verify(&keys, tampered.as_bytes()).await;
        assert_eq!(results.len(), 2);
        assert!(
            results.iter().all(|r| *r != DkimResult::Pass),
            "{results:?}"
        );
    }

    #[test]
    fn record_formats() {
        let ed = key(Algorithm::Ed25519);
        assert_eq!(ed.selector, "postern-ed25519-202611");
        assert_eq!(
            ed.record_name(),
            "postern-ed25519-202611._domainkey.example.com."
        );
        let v = ed.record_value().expect("value");
        assert!(v.starts_with("v=DKIM1; k=ed25519; p="), "{v}");
        // 32 raw bytes → 44 base64 characters.
        assert_eq!(v.len(), "v=DKIM1; k=ed25519; p=".len() + 44);

        let rsa = key(Algorithm::Rsa);
        let line = rsa.zone_line().expect("zone line");
        assert!(line.contains("IN TXT ( \""), "{line}");
        // Each quoted string at most 255 octets.
        for part in line.split('"').skip(1).step_by(2) {
            assert!(part.len() <= 255, "{}", part.len());
        }
        assert!(rsa.record_value().expect("v").len() > 255);
    }

    #[test]
    fn signatures_carry_the_tags() {
        for alg in [Algorithm::Ed25519, Algorithm::Rsa] {
            let k = key(alg);
            let h = k.sign(MSG).expect("sign");
            assert!(h.starts_with("DKIM-Signature: "), "{h}");
            assert!(h.ends_with("\r\n"));
            let flat = h.replace("\r\n\t", "").replace("\r\n ", " ");
            assert!(flat.contains("d=example.com"), "{flat}");
            assert!(flat.contains(&format!("s={}", k.selector)), "{flat}");
            let want = if alg == Algorithm::Ed25519 {
                "a=ed25519-sha256"
            } else {
                "a=rsa-sha256"
            };
            assert!(flat.contains(want), "{flat}");
            assert!(flat.contains("c=relaxed/relaxed"), "{flat}");
            assert!(!flat.contains(" l="), "{flat}");
        }
    }

    #[test]
    fn no_fold_between_the_b_value_and_its_semicolon() {
        assert_eq!(
            close_b_tag("DKIM-Signature: a=1; b=abc\r\n\t;\r\n".into()),
            "DKIM-Signature: a=1; b=abc;\r\n"
        );
        assert_eq!(close_b_tag("X: b=abc;\r\n".into()), "X: b=abc;\r\n");
        // Many signatures: whatever the length of b=, never white space before the `;`.
        for _ in 0..4 {
            let k = key(Algorithm::Rsa);
            let h = k.sign(MSG).expect("sign");
            assert!(h.ends_with(";\r\n"), "{h}");
            let before = h.trim_end_matches(";\r\n");
            assert!(!before.ends_with(['\t', ' ', '\n']), "{h:?}");
        }
    }

    #[test]
    fn a_damaged_key_is_an_error_not_a_panic() {
        let mut k = key(Algorithm::Ed25519);
        k.private_der.truncate(10);
        assert!(matches!(k.sign(MSG), Err(DkimError::BadKey(..))));
        let mut r = key(Algorithm::Rsa);
        r.private_der[20] ^= 0xff;
        assert!(r.sign(MSG).is_err());
    }
}
