//! SMTP command lines into typed commands (RFC 5321 §4.1.1, §4.1.2; RFC 1870, 3030,
//! 3461, 4954, 6152, 6531 parameters).
//!
//! Our own parser rather than smtp-proto's `Request::parse`, because that one is lenient
//! where we must not be: it drops CR inside addresses, strips source routes silently,
//! unquotes quoted local parts, maps `<postmaster>` to the null path and caps lines at a
//! fixed 4096 octets. Here every such form is refused with its own [`ParseError`], and
//! the line length is the configured one (checked before parsing, in `conn`).
//!
//! Leniencies kept, each one named: a space after `MAIL FROM:` / `RCPT TO:` (sent by
//! many clients; Postfix and Exim accept it), lower-case verbs and keywords (RFC 5321
//! §2.4 says they are case-insensitive anyway), trailing spaces.

/// A reverse-path or forward-path between the angle brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `<>`: the null reverse-path (bounces, RFC 5321 §4.5.5).
    Null,
    /// `<Postmaster>` without a domain (RCPT only, RFC 5321 §4.5.1).
    Postmaster,
    /// The mailbox text, not yet checked as an address (`core::address` does that).
    Mailbox(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        path: Path,
        params: Vec<(String, Option<String>)>,
    },
    Rcpt {
        path: Path,
        params: Vec<(String, Option<String>)>,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy,
    Expn,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid UTF-8 (RFC 6531 allows UTF-8, nothing else).
    Encoding,
    /// A verb we do not implement (500 5.5.1).
    Unknown,
    /// Wrong arguments; the text is the command's syntax (501 5.5.4).
    Syntax(&'static str),
    /// `<@a,@b:user@c>`: RFC 5321 §4.1.2 A-d-l source route. Refused rather than ignored:
    /// a route names another host, the start of every relay trick (THREATS open relay).
    SourceRoute,
}

fn split_verb(line: &str) -> (&str, &str) {
    match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    }
}

/// Parses one command line without its CRLF.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Encoding)?;
    let line = line.trim_end_matches(' ');
    let (verb, rest) = split_verb(line);
    let no_args = |cmd: Command, syntax: &'static str| {
        if rest.trim().is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::Syntax(syntax))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => domain_arg(rest, "EHLO domain").map(Command::Ehlo),
        "HELO" => domain_arg(rest, "HELO domain").map(Command::Helo),
        "MAIL" => {
            let (path, params) =
                path_and_params(rest, "FROM:", "MAIL FROM:<address> [parameters]")?;
            if path == Path::Postmaster {
                return Err(ParseError::Syntax("MAIL FROM:<address> [parameters]"));
            }
            Ok(Command::Mail { path, params })
        }
        "RCPT" => {
            let (path, params) = path_and_params(rest, "TO:", "RCPT TO:<address> [parameters]")?;
            if path == Path::Null {
                return Err(ParseError::Syntax("RCPT TO:<address> [parameters]"));
            }
            Ok(Command::Rcpt { path, params })
        }
        "DATA" => no_args(Command::Data, "DATA"),
        "BDAT" => bdat(rest),
        "RSET" => no_args(Command::Rset, "RSET"),
        // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored.
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit, "QUIT"),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "STARTTLS" => no_args(Command::StartTls, "STARTTLS"),
        "AUTH" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            let syntax = "AUTH mechanism [initial-response]";
            let mechanism = words.next().ok_or(ParseError::Syntax(syntax))?;
            let initial = words.next().map(str::to_string);
            if words.next().is_some() {
                return Err(ParseError::Syntax(syntax));
            }
            Ok(Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial,
            })
        }
        _ => Err(ParseError::Unknown),
    }
}

/// EHLO/HELO argument: a domain or an address literal (RFC 5321 §4.1.1.1). It is written
/// into the Received field, so only characters that cannot end or confuse a header
/// field pass: letters, digits, `-`, `.`, and `_` (common in Windows host names, a named
/// leniency), or `[` IPv4 / `IPv6:` hex `]`.
fn domain_arg(rest: &str, syntax: &'static str) -> Result<String, ParseError> {
    let arg = rest.trim();
    if arg.is_empty() || arg.len() > 255 || arg.contains(' ') {
        return Err(ParseError::Syntax(syntax));
    }
    let ok = if let Some(lit) = arg.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        let inner = lit.strip_prefix("IPv6:").unwrap_or(lit);
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
    } else {
        arg.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if ok {
        Ok(arg.to_string())
    } else {
        Err(ParseError::Syntax(syntax))
    }
}

fn bdat(rest: &str) -> Result<Command, ParseError> {
    let syntax = "BDAT chunk-size [LAST]";
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size = words.next().ok_or(ParseError::Syntax(syntax))?;
    // RFC 3030 §3: chunk-size = 1*DIGIT; 18 digits keep it inside u64.
    if size.is_empty() || size.len() > 18 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax(syntax));
    }
    let size: u64 = size.parse().map_err(|_| ParseError::Syntax(syntax))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(ParseError::Syntax(syntax)),
    };
    if words.next().is_some() {
        return Err(ParseError::Syntax(syntax));
    }
    Ok(Command::Bdat { size, last })
}

type Params = Vec<(String, Option<String>)>;

/// `FROM:<path> params` / `TO:<path> params` (RFC 5321 §4.1.2, `Mail-parameters`).
fn path_and_params(
    rest: &str,
    keyword: &str,
    syntax: &'static str,
) -> Result<(Path, Params), ParseError> {
    let head = rest
        .get(..keyword.len())
        .ok_or(ParseError::Syntax(syntax))?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(ParseError::Syntax(syntax));
    }
    // Leniency: `MAIL FROM: <a@b>`.
    let rest = rest[keyword.len()..].trim_start_matches(' ');
    let inner = rest.strip_prefix('<').ok_or(ParseError::Syntax(syntax))?;
    // The first '>' closes the path: quoted local parts (which could hold one) are
    // refused anyway.
    let close = inner.find('>').ok_or(ParseError::Syntax(syntax))?;
    let (mailbox, after) = (&inner[..close], &inner[close + 1..]);
    let path = if mailbox.is_empty() {
        Path::Null
    } else if mailbox.starts_with('@') {
        // RFC 5321 §4.1.2: A-d-l ":" Mailbox.
        return Err(ParseError::SourceRoute);
    } else if mailbox.eq_ignore_ascii_case("postmaster") {
        Path::Postmaster
    } else {
        Path::Mailbox(mailbox.to_string())
    };
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(ParseError::Syntax(syntax));
    }
    let mut params = Vec::new();
    for word in after.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (word, None),
        };
        // RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under SMTPUTF8 (RFC 6531 §3.3).
        let value_ok = value.as_deref().is_none_or(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c as u32 > 32 && c != '=' && c != '\u{7f}')
        });
        if !key_ok || !value_ok {
            return Err(ParseError::Syntax(syntax));
        }
        params.push((key.to_ascii_uppercase(), value));
    }
    Ok((path, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn paths() {
        assert_eq!(
            p("MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8"),
            Ok(Command::Mail {
                path: Path::Mailbox("a@b.example".into()),
                params: vec![
                    ("SIZE".into(), Some("100".into())),
                    ("BODY".into(), Some("8BITMIME".into())),
                    ("SMTPUTF8".into(), None)
                ],
            })
        );
        assert_eq!(
            p("mail from: <>"),
            Ok(Command::Mail {
                path: Path::Null,
                params: vec![]
            })
        );
        assert_eq!(
            p("RCPT TO:<Postmaster>"),
            Ok(Command::Rcpt {
                path: Path::Postmaster,
                params: vec![]
            })
        );
        assert_eq!(
            p("RCPT TO:<@ours.example:u@other.example>"),
            Err(ParseError::SourceRoute)
        );
        assert_eq!(
            p("RCPT TO:<@a,@b:u@other.example>"),
            Err(ParseError::SourceRoute)
        );
        for bad in [
            "MAIL FROM:a@b",
            "MAIL FROM:<a@b",
            "MAIL FROM:<a@b>x",
            "MAIL TO:<a@b>",
            "RCPT TO:<>",
            "MAIL FROM:<postmaster>",
            "MAIL FROM:<a@b> =x",
            "MAIL FROM:<a@b> SIZE=",
            "RCPT",
        ] {
            assert!(matches!(p(bad), Err(ParseError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn verbs() {
        assert_eq!(
            p("ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            p("EHLO [192.0.2.1]"),
            Ok(Command::Ehlo("[192.0.2.1]".into()))
        );
        assert_eq!(
            p("EHLO [IPv6:2001:db8::1]"),
            Ok(Command::Ehlo("[IPv6:2001:db8::1]".into()))
        );
        assert!(p("EHLO").is_err());
        assert!(p("EHLO a;b").is_err());
        assert!(p("EHLO a b").is_err());
        assert_eq!(
            p("BDAT 10 LAST"),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
        assert_eq!(
            p("BDAT 0"),
            Ok(Command::Bdat {
                size: 0,
                last: false
            })
        );
        assert!(p("BDAT -1").is_err());
        assert!(p("BDAT 99999999999999999999").is_err());
        assert_eq!(p("DATA"), Ok(Command::Data));
        assert!(p("DATA x").is_err());
        assert_eq!(p("NOOP anything"), Ok(Command::Noop));
        assert_eq!(
            p("AUTH plain AGEAYg=="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGEAYg==".into())
            })
        );
        assert_eq!(p("XYZZY"), Err(ParseError::Unknown));
        assert_eq!(parse(b"MAIL FROM:<\xff@x>"), Err(ParseError::Encoding));
    }
}
