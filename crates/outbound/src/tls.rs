//! TLS policies of the SMTP client and their certificate verifiers.
//!
//! - `Opportunistic` (RFC 7435, the default for MX delivery): STARTTLS when offered, any
//!   certificate accepted, plaintext when not offered. Handshake signatures are still
//!   checked (only the certificate's authority is not).
//! - `Required`: TLS or no delivery, certificate not checked (DANE with only unusable
//!   TLSA records, RFC 7672 §2.2; a smarthost configured so).
//! - `Pkix`: TLS with a certificate valid for the host name under the configured roots
//!   (MTA-STS `enforce`, RFC 8461 §5; a smarthost).
//! - `Dane`: TLS with a certificate that matches the host's TLSA records (RFC 7672 §3):
//!   DANE-EE(3) by the end-entity certificate or its public key, no name or date checks;
//!   DANE-TA(2) by a certificate in the presented chain that becomes the trust anchor for a
//!   path to the end-entity certificate, which must be valid for the host name. PKIX-TA(0)
//!   and PKIX-EE(1) records are unusable for SMTP (RFC 7672 §3.1.3) and are ignored.
//! - `Plain`: never STARTTLS.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// DANE-TA(2) and DANE-EE(3) with a known selector and matching type (RFC 7672 §3.1).
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether `cert` matches this record's selector and matching type.
    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            0 => cert.as_ref().to_vec(),
            1 => match webpki::anchor_from_trusted_cert(cert) {
                Ok(anchor) => webpki::spki_for_anchor(&anchor).as_ref().to_vec(),
                Err(_) => return false,
            },
            _ => return false,
        };
        let digest = match self.matching {
            0 => selected,
            1 => ring::digest::digest(&ring::digest::SHA256, &selected)
                .as_ref()
                .to_vec(),
            2 => ring::digest::digest(&ring::digest::SHA512, &selected)
                .as_ref()
                .to_vec(),
            _ => return false,
        };
        // Public data; no need for a constant-time comparison.
        digest == self.data
    }
}

#[derive(Debug, Clone)]
pub enum TlsPolicy {
    Plain,
    Opportunistic,
    Required,
    Pkix { roots: Arc<RootCertStore> },
    Dane { records: Vec<Tlsa> },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsPolicy {
    /// Delivery fails rather than go on without TLS.
    pub fn requires_tls(&self) -> bool {
        matches!(
            self,
            TlsPolicy::Required | TlsPolicy::Pkix { .. } | TlsPolicy::Dane { .. }
        )
    }

    /// A completed handshake proves the server is who the policy expects.
    pub fn authenticates(&self) -> bool {
        matches!(self, TlsPolicy::Pkix { .. } | TlsPolicy::Dane { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            TlsPolicy::Plain => "plain",
            TlsPolicy::Opportunistic => "opportunistic",
            TlsPolicy::Required => "required",
            TlsPolicy::Pkix { .. } => "pkix",
            TlsPolicy::Dane { .. } => "dane",
        }
    }

    pub fn client_config(&self) -> Result<ClientConfig, rustls::Error> {
        let provider = provider();
        let algs = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match self {
            TlsPolicy::Pkix { roots } => {
                match rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots.clone(),
                    provider.clone(),
                )
                .build()
                {
                    Ok(v) => v,
                    // No roots at all: nothing can verify, so nothing is accepted.
                    Err(_) => Arc::new(DaneVerifier {
                        records: Vec::new(),
                        algs,
                    }),
                }
            }
            TlsPolicy::Dane { records } => Arc::new(DaneVerifier {
                records: records.iter().filter(|r| r.usable()).cloned().collect(),
                algs,
            }),
            TlsPolicy::Plain | TlsPolicy::Opportunistic | TlsPolicy::Required => {
                Arc::new(AnyCertificate { algs })
            }
        };
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

/// The handshake-signature half of a verifier, the same for every policy: whatever
/// decides about the certificate, the server must prove it holds its key.
macro_rules! verify_handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

#[derive(Debug)]
struct AnyCertificate {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    verify_handshake_signatures!();
}

#[derive(Debug)]
struct DaneVerifier {
    records: Vec<Tlsa>,
    algs: WebPkiSupportedAlgorithms,
}

impl DaneVerifier {
    fn ta_path_ok(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> bool {
        let Ok(ee) = webpki::EndEntityCert::try_from(end_entity) else {
            return false;
        };
        for ta in self.records.iter().filter(|r| r.usage == 2) {
            for candidate in intermediates.iter().filter(|c| ta.matches(c)) {
                let Ok(anchor) = webpki::anchor_from_trusted_cert(candidate) else {
                    continue;
                };
                let anchors = [anchor];
                let path = ee.verify_for_usage(
                    self.algs.all,
                    &anchors,
                    intermediates,
                    now,
                    webpki::KeyUsage::server_auth(),
                    None,
                    None,
                );
                if path.is_ok() && ee.verify_is_valid_for_subject_name(server_name).is_ok() {
                    return true;
                }
            }
        }
        false
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // DANE-EE: the certificate or key itself; names and dates do not matter
        // (RFC 7672 §3.1.1).
        if self
            .records
            .iter()
            .any(|r| r.usage == 3 && r.matches(end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        if self.ta_path_ok(end_entity, intermediates, server_name, now) {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    verify_handshake_signatures!();
}

/// Reads PEM certificates (a CA bundle) into a root store; unreadable entries are skipped
/// and counted.
pub fn roots_from_pem(pem: &[u8]) -> (RootCertStore, usize) {
    use rustls::pki_types::pem::PemObject as _;
    let mut store = RootCertStore::empty();
    let mut bad = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        match cert {
            Ok(c) => {
                if store.add(c).is_err() {
                    bad += 1;
                }
            }
            Err(_) => bad += 1,
        }
    }
    (store, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> (CertificateDer<'static>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        let c = params.self_signed(&key).expect("cert");
        (c.der().clone(), key)
    }

    fn sha256(b: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .to_vec()
    }

    #[test]
    fn tlsa_matching() {
        let (c, key) = cert("mx.example.net");
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let full = Tlsa {
            usage: 3,
            selector: 0,
            matching: 1,
            data: sha256(c.as_ref()),
        };
        let by_key = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: sha256(&spki),
        };
        let exact_key = Tlsa {
            usage: 3,
            selector: 1,
            matching: 0,
            data: spki.clone(),
        };
        assert!(full.matches(&c));
        assert!(by_key.matches(&c), "SPKI must be the key's DER");
        assert!(exact_key.matches(&c));
        let (other, _) = cert("mx.example.net");
        assert!(!full.matches(&other));
        assert!(!by_key.matches(&other));
        assert!(
            !Tlsa {
                usage: 1,
                ..full.clone()
            }
            .usable()
        );
        assert!(
            !Tlsa {
                matching: 3,
                ..full
            }
            .usable()
        );
    }

    #[test]
    fn dane_ee_verifier_accepts_the_pinned_key_only() {
        let (c, key) = cert("mx.example.net");
        let v = DaneVerifier {
            records: vec![Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: sha256(&rcgen::PublicKeyData::subject_public_key_info(&key)),
            }],
            algs: provider().signature_verification_algorithms,
        };
        let name = ServerName::try_from("other.name.example").expect("name");
        assert!(
            v.verify_server_cert(&c, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        let (wrong, _) = cert("mx.example.net");
        assert!(
            v.verify_server_cert(&wrong, &[], &name, &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn dane_ta_anchors_the_chain_and_checks_the_name() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let ca_spki = rcgen::PublicKeyData::subject_public_key_info(&ca_key);
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["mx.example.net".to_string()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("leaf");
        let v = DaneVerifier {
            records: vec![Tlsa {
                usage: 2,
                selector: 1,
                matching: 1,
                data: sha256(&ca_spki),
            }],
            algs: provider().signature_verification_algorithms,
        };
        let chain = [ca.der().clone()];
        let good = ServerName::try_from("mx.example.net").expect("name");
        assert!(
            v.verify_server_cert(leaf.der(), &chain, &good, &[], UnixTime::now())
                .is_ok()
        );
        // DANE-TA needs the name to match (RFC 7672 §3.2.2).
        let wrong = ServerName::try_from("other.example.net").expect("name");
        assert!(
            v.verify_server_cert(leaf.der(), &chain, &wrong, &[], UnixTime::now())
                .is_err()
        );
        // The anchor must be in the presented chain and must have signed the leaf.
        assert!(
            v.verify_server_cert(leaf.der(), &[], &good, &[], UnixTime::now())
                .is_err()
        );
        let (stranger, _) = cert("mx.example.net");
        assert!(
            v.verify_server_cert(&stranger, &chain, &good, &[], UnixTime::now())
                .is_err()
        );
    }
}
