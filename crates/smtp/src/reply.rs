//! Replies: the one place a `CoreError` becomes an SMTP reply (RFC 5321 §4.2 codes with
//! RFC 3463 enhanced status codes, RFC 2034).

use postern_core::{CoreError, ErrorClass};

/// `code status text` with CRLF.
pub fn line(code: u16, status: &str, text: &str) -> String {
    format!("{code} {status} {text}\r\n")
}

/// The reply for a domain error, by its class. Operational failures are temporary
/// (4xx) so the client retries instead of bouncing the message.
pub fn for_error(e: &CoreError) -> String {
    match (e.class(), e) {
        (_, CoreError::Throttled(_)) => {
            line(454, "4.7.0", "Too many failed attempts; try again later")
        }
        (_, CoreError::QuotaExceeded) => line(452, "4.2.2", "Mailbox full"),
        (ErrorClass::Protocol, e) => line(501, "5.5.4", &e.to_string()),
        (ErrorClass::Policy, e) => line(550, "5.7.1", &e.to_string()),
        (ErrorClass::Auth, _) => line(535, "5.7.8", "Authentication credentials invalid"),
        (ErrorClass::Resource, _) => line(452, "4.3.1", "Insufficient system storage"),
        // Never show internal details to the peer; the log has them.
        (ErrorClass::Internal, _) => line(451, "4.3.0", "Temporary failure; try again later"),
    }
}

/// True for 4xx and 5xx replies (they count towards the error limit).
pub fn is_error(reply: &str) -> bool {
    matches!(reply.as_bytes().first(), Some(b'4' | b'5'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(for_error(&CoreError::AuthFailed).starts_with("535 5.7.8 "));
        assert!(
            for_error(&CoreError::Throttled(std::time::Duration::from_secs(3)))
                .starts_with("454 4.7.0 ")
        );
        assert!(for_error(&CoreError::QuotaExceeded).starts_with("452 4.2.2 "));
        assert!(for_error(&CoreError::Internal("disk on fire".into())).starts_with("451 4.3.0 "));
        assert!(!for_error(&CoreError::Internal("disk on fire".into())).contains("disk"));
        assert!(for_error(&CoreError::Unavailable("x".into())).starts_with("451 4.3.0 "));
        assert!(for_error(&CoreError::Refused("no".into())).starts_with("550 5.7.1 "));
        assert!(for_error(&CoreError::invalid("address", "bad")).starts_with("501 5.5.4 "));
        assert!(is_error("550 x") && is_error("421 x") && !is_error("250 ok"));
    }
}
