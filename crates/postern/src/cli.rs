//! Administrative subcommands. Each calls the `postern-core` function the admin API
//! calls; this file only parses arguments and prints results.

use crate::config::Config;
use clap::Subcommand;
use postern_core::store::{PrincipalKind, SessionInfo};
use postern_core::{AdminSession, Core, CoreError};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DomainCmd {
    /// Add a mail domain.
    Add { name: String },
    /// List domains.
    List,
    /// Remove an empty domain.
    Remove { name: String },
    /// Generate DKIM signing keys for a domain (Ed25519 and RSA-2048 unless one is
    /// named) and print the DNS TXT records to publish. Submitted mail From the domain is
    /// signed with every key it has.
    Dkim {
        name: String,
        /// ed25519, rsa or both.
        #[arg(long, default_value = "both")]
        algorithm: String,
        /// Selector of the new key (default: postern-<algorithm>-<YYYYMM>).
        #[arg(long)]
        selector: Option<String>,
        /// Print the records of the keys the domain has; generate nothing.
        #[arg(long)]
        show: bool,
        /// Remove the key with this selector.
        #[arg(long, conflicts_with_all = ["show", "selector"])]
        remove: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Queued messages, oldest first, with each recipient's state.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One queued message in full.
    Show { id: String },
    /// Try the message's waiting recipients now.
    Retry { id: String },
    /// Remove a message from the queue without sending it (no bounce).
    Delete { id: String },
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Add an account. The password is read from standard input (one line); with
    /// --generate, or when standard input is empty, one is generated and printed once.
    Add {
        address: String,
        /// individual, shared, group or resource.
        #[arg(long, default_value = "individual")]
        kind: String,
        /// Display name (default: the local part).
        #[arg(long)]
        name: Option<String>,
        /// Storage quota, e.g. 500M, 10G, or bytes.
        #[arg(long)]
        quota: Option<String>,
        #[arg(long)]
        generate: bool,
    },
    /// Set a new password (standard input, or --generate).
    Passwd {
        address: String,
        #[arg(long)]
        generate: bool,
    },
    /// List accounts.
    List {
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show { address: String },
    /// Remove an account and everything it holds.
    Remove { address: String },
    /// Set the quota (`none` for unlimited).
    Quota { address: String, size: String },
    /// App passwords: per-protocol secrets for phones and mail clients.
    #[command(subcommand)]
    AppPassword(AppPasswordCmd),
}

#[derive(Subcommand, Debug)]
pub enum AppPasswordCmd {
    /// Create one; the secret is printed once.
    Add {
        address: String,
        #[arg(long)]
        label: String,
        /// Limit to these protocols (repeatable): imap, pop3, smtp, dav, jmap, eas, managesieve.
        #[arg(long = "protocol")]
        protocols: Vec<String>,
    },
    List {
        address: String,
    },
    Remove {
        address: String,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AliasCmd {
    /// ALIAS delivers to TARGET. `*@domain` is the domain's catch-all.
    Add { alias: String, target: String },
    List {
        #[arg(long)]
        domain: Option<String>,
    },
    /// Remove ALIAS (only its TARGET when given).
    Remove {
        alias: String,
        target: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Add MEMBER (any address) to GROUP (an account of kind group).
    AddMember {
        group: String,
        member: String,
    },
    RemoveMember {
        group: String,
        member: String,
    },
    Members {
        group: String,
    },
    /// Who may send to GROUP: `anyone` (the default: mail from the internet too),
    /// `authenticated` (logged-in senders only, never port 25) or `members` (logged-in
    /// senders the group reaches). Without SENDERS, prints the setting.
    Senders {
        group: String,
        senders: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailboxCmd {
    /// Import an mbox from standard input into ADDRESS's mailbox (INBOX by default).
    /// Prints `stored <message> <uid> <sha256>` for each message once it is durable.
    Import {
        address: String,
        #[arg(long)]
        mailbox: Option<String>,
    },
    /// Show the ACL (RFC 4314) of ADDRESS's MAILBOX; with GRANTEE and RIGHTS, set
    /// GRANTEE's rights (letters of lrswipkxtea, and 0 = send as the owner; "" removes the entry). This is how a
    /// shared mailbox (`account add --kind shared`), which nobody logs in to, gets its
    /// users. Recorded in the ledger.
    Acl {
        address: String,
        mailbox: String,
        grantee: Option<String>,
        rights: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DavCmd {
    /// Share OWNER's calendar, task list or address book COLLECTION (its name in the
    /// owner's home, e.g. `calendar`) with GRANTEE, an account of the same domain:
    /// `read`, `write` or `none` (revoke). Without GRANTEE, list the grants. The
    /// collection appears in the grantee's home as `shared-<id>`. Recorded in the ledger.
    Share {
        owner: String,
        collection: String,
        grantee: Option<String>,
        level: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the hash chain; names the first bad entry. Prints the head (`head: SEQ:HASH`):
    /// keep it elsewhere and pass it back with --anchor to detect a truncated or
    /// rewritten ledger, which the chain alone cannot show.
    Verify {
        /// `SEQ:HASH` printed by an earlier verify.
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Show entries (reading the ledger is itself recorded).
    Show {
        #[arg(long)]
        account: Option<String>,
        /// RFC 3339 time, a date (2026-11-25), or an age (30m, 24h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Check blob hashes, references, journal continuity and the ledger chain.
    Verify,
    /// Copy this embedded installation (the configured data directory) into a new or
    /// empty PostgreSQL schema, verify the copy (row counts and digests per table, blob
    /// hashes, the ledger chain) and print the configuration that switches to it. Stop
    /// the server first: the migration holds the store's write lock throughout, and
    /// commits all or nothing.
    Migrate {
        /// The database: postgres://user@host:port/database.
        #[arg(long)]
        to: String,
        /// Target schema (default: the configuration's `[store] schema`, `postern`).
        #[arg(long)]
        schema: Option<String>,
    },
}

pub enum Action {
    Domain(DomainCmd),
    Account(AccountCmd),
    Alias(AliasCmd),
    Group(GroupCmd),
    Mailbox(MailboxCmd),
    Audit(AuditCmd),
    Store(StoreCmd),
    Queue(QueueCmd),
    Dav(DavCmd),
}

/// `10G`, `500M`, `64K`, plain bytes, or `none`.
pub fn parse_size(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size unit in {s:?}")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(mult)
        .map(Some)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

/// Milliseconds since the epoch for `--since`.
pub fn parse_since(s: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let now = postern_core::store::now_ms();
    if let Some((num, unit)) = s.char_indices().last().map(|(i, c)| (&s[..i], c)) {
        let secs = match unit {
            's' => Some(1),
            'm' => Some(60),
            'h' => Some(3600),
            'd' => Some(86400),
            _ => None,
        };
        if let (Some(mult), Ok(n)) = (secs, num.parse::<i64>()) {
            // Reachable from the admin API's `since=`: never overflow.
            return n
                .checked_mul(mult)
                .and_then(|s| s.checked_mul(1000))
                .and_then(|ms| now.checked_sub(ms))
                .ok_or_else(|| format!("--since {s:?}: out of range"));
        }
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &fmt) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    Err(format!(
        "--since {s:?}: expected RFC 3339 time, YYYY-MM-DD, or an age like 24h"
    ))
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Reads a password from standard input: one line (a terminal is prompted). `None` when
/// the input is empty, meaning "generate one".
fn read_password(generate: bool) -> Result<Option<String>, String> {
    if generate {
        return Ok(None);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (empty to generate one): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password: {e}"))?;
    let pw = line.trim_end_matches(['\r', '\n']);
    Ok((!pw.is_empty()).then(|| pw.to_string()))
}

/// `println!` that ends the process quietly when the reader has gone (`| head`),
/// instead of panicking on a broken pipe.
macro_rules! out {
    ($($t:tt)*) => {
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(141);
        }
    };
}

fn err(e: CoreError) -> String {
    e.to_string()
}

/// The invoking system user's name, for the ledger (read before any change of uid).
fn os_user() -> String {
    let uid = nix::unistd::Uid::current();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{uid}"))
}

pub fn run(cfg: Config, action: Action) -> Result<ExitCode, String> {
    let who = os_user();
    crate::serve::become_data_owner(&cfg.data_dir)?;
    if let Action::Store(StoreCmd::Migrate { to, schema }) = action {
        // Not through Core: the embedded store must not be opened (or written: no
        // ledger entry either, so the migrated chain ends where this one does).
        return migrate(&cfg, &to, schema.as_deref());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let core = crate::serve::open_core(&cfg).await?;
        // Reading the token proves access to the data directory; the CLI acts with it.
        let (token, _) = crate::serve::admin_token(&cfg.data_dir)?;
        core.set_admin_token(&token);
        let session = SessionInfo {
            protocol: "cli".into(),
            auth_method: Some("local".into()),
            ..Default::default()
        };
        let admin = core
            .admin_session(&token, &format!("cli:{who}"), session)
            .ok_or("the admin token does not match")?;
        execute(&core, &admin, action).await
    })
}

async fn execute(core: &Core, admin: &AdminSession, action: Action) -> Result<ExitCode, String> {
    match action {
        Action::Domain(DomainCmd::Add { name }) => {
            let d = core.domain_add(admin, &name).await.map_err(err)?;
            out!("added domain {}", d.name);
        }
        Action::Domain(DomainCmd::List) => {
            for d in core.domain_list(admin).await.map_err(err)? {
                out!("{}", d.name);
            }
        }
        Action::Domain(DomainCmd::Remove { name }) => {
            core.domain_remove(admin, &name).await.map_err(err)?;
            out!("removed domain {name}");
        }
        Action::Domain(DomainCmd::Dkim {
            name,
            algorithm,
            selector,
            show,
            remove,
        }) => return dkim(core, admin, &name, &algorithm, selector, show, remove).await,
        Action::Queue(cmd) => return queue(core, admin, cmd).await,
        Action::Account(cmd) => return account(core, admin, cmd).await,
        Action::Alias(AliasCmd::Add { alias, target }) => {
            let a = core.alias_add(admin, &alias, &target).await.map_err(err)?;
            out!("added alias {} -> {}", a.alias, a.target);
        }
        Action::Alias(AliasCmd::List { domain }) => {
            for a in core
                .alias_list(admin, domain.as_deref())
                .await
                .map_err(err)?
            {
                out!("{} -> {}", a.alias, a.target);
            }
        }
        Action::Alias(AliasCmd::Remove { alias, target }) => {
            let n = core
                .alias_remove(admin, &alias, target.as_deref())
                .await
                .map_err(err)?;
            out!("removed {n} alias target(s) of {alias}");
        }
        Action::Group(GroupCmd::AddMember { group, member }) => {
            core.group_member_add(admin, &group, &member)
                .await
                .map_err(err)?;
            out!("added {member} to {group}");
        }
        Action::Group(GroupCmd::RemoveMember { group, member }) => {
            core.group_member_remove(admin, &group, &member)
                .await
                .map_err(err)?;
            out!("removed {member} from {group}");
        }
        Action::Group(GroupCmd::Members { group }) => {
            for m in core.group_members(admin, &group).await.map_err(err)? {
                out!("{m}");
            }
        }
        Action::Group(GroupCmd::Senders {
            group,
            senders: Some(s),
        }) => {
            core.group_set_senders(admin, &group, &s)
                .await
                .map_err(err)?;
            out!("{group} takes mail from: {}", s.to_ascii_lowercase());
        }
        Action::Group(GroupCmd::Senders {
            group,
            senders: None,
        }) => {
            out!(
                "{}",
                core.group_get_senders(admin, &group).await.map_err(err)?
            );
        }
        Action::Mailbox(MailboxCmd::Import { address, mailbox }) => {
            return import(core, admin, &address, mailbox.as_deref()).await;
        }
        Action::Mailbox(MailboxCmd::Acl {
            address,
            mailbox,
            grantee,
            rights,
        }) => {
            use postern_core::access::{AclChange, Rights};
            match (grantee, rights) {
                (Some(g), Some(r)) => {
                    let r = Rights::parse(&r).map_err(err)?;
                    let change = if r.is_empty() {
                        AclChange::Delete
                    } else {
                        AclChange::Replace(r)
                    };
                    core.admin_set_mailbox_acl(admin, &address, &mailbox, &g, change)
                        .await
                        .map_err(err)?;
                    out!("acl {address} {mailbox}: {g} {r}");
                }
                (None, None) => {
                    for (who, r) in core
                        .admin_mailbox_acl(admin, &address, &mailbox)
                        .await
                        .map_err(err)?
                    {
                        out!("{who} {r}");
                    }
                }
                _ => return Err("give both GRANTEE and RIGHTS, or neither".into()),
            }
        }
        Action::Dav(DavCmd::Share {
            owner,
            collection,
            grantee,
            level,
        }) => {
            use postern_core::dav::share::ShareLevel;
            match (grantee, level) {
                (Some(g), Some(l)) => {
                    let Some(level) = ShareLevel::parse(&l) else {
                        return Err(format!("level {l:?}: read, write or none"));
                    };
                    core.admin_dav_share(admin, &owner, &collection, &g, level)
                        .await
                        .map_err(err)?;
                    out!("share {owner} {collection}: {g} {}", level.as_str());
                }
                (None, None) => {
                    for (who, l) in core
                        .admin_dav_shares(admin, &owner, &collection)
                        .await
                        .map_err(err)?
                    {
                        out!("{who} {}", l.as_str());
                    }
                }
                _ => return Err("give both GRANTEE and LEVEL, or neither".into()),
            }
        }
        Action::Audit(AuditCmd::Verify { anchor }) => {
            let anchor = anchor
                .as_deref()
                .map(|a| {
                    a.split_once(':')
                        .and_then(|(seq, hash)| Some((seq.parse::<u64>().ok()?, hash)))
                        .ok_or_else(|| format!("--anchor {a:?}: expected SEQ:HASH"))
                })
                .transpose()?;
            match core.audit_verify(admin, anchor).await.map_err(err)? {
                Ok((n, head)) => {
                    out!("ledger ok: {n} entries, chain intact");
                    if let Some((seq, hash)) = head {
                        out!("head: {seq}:{hash}");
                    }
                }
                Err(b) => {
                    out!("ledger BROKEN at entry {}: {}", b.seq, b.reason);
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Action::Audit(AuditCmd::Show {
            account,
            since,
            limit,
            json,
        }) => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let entries = core
                .audit_show(admin, account.as_deref(), since, limit)
                .await
                .map_err(err)?;
            for e in entries {
                if json {
                    out!("{}", serde_json::to_string(&e).unwrap_or_default());
                } else {
                    let r = &e.record;
                    out!(
                        "#{} {} {} {}({}) via {}{} {} {} [{}]",
                        e.seq,
                        format_ms(r.time_ms),
                        r.action,
                        r.actor.account.as_deref().unwrap_or("-"),
                        serde_json::to_value(r.actor.role)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        r.session.protocol,
                        r.session
                            .remote
                            .as_deref()
                            .map(|x| format!(" from {x}"))
                            .unwrap_or_default(),
                        r.target
                            .as_deref()
                            .map(|t| format!("on {t}"))
                            .unwrap_or_default(),
                        r.result,
                        r.objects.join(" ")
                    );
                }
            }
        }
        Action::Store(StoreCmd::Migrate { .. }) => {
            return Err("store migrate runs without the store open".into());
        }
        Action::Store(StoreCmd::Verify) => {
            let r = core.store_verify(admin).await.map_err(err)?;
            out!(
                "accounts {} mailboxes {} messages {} blobs checked {} journal entries {} ledger entries {} orphan blobs {}",
                r.accounts,
                r.mailboxes,
                r.messages,
                r.blobs_checked,
                r.journal_entries,
                r.ledger_entries,
                r.orphan_blobs
            );
            if r.ok() {
                out!("store ok");
            } else {
                for p in &r.problems {
                    out!("problem: {p}");
                }
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `store migrate`: see [`postern_store_pg::migrate`].
fn migrate(cfg: &Config, to: &str, schema: Option<&str>) -> Result<ExitCode, String> {
    if cfg.store.backend == crate::config::StoreBackend::Postgres {
        return Err(
            "the configured store is already PostgreSQL ([store] backend = \"postgres\"); \
             `store migrate` copies an embedded installation"
                .into(),
        );
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(format!("--to {to:?}: expected a postgres:// URL"));
    }
    let schema = schema.unwrap_or(&cfg.store.schema).to_string();
    let db = cfg.data_dir.join("meta.sqlite");
    if !db.exists() {
        return Err(format!(
            "no embedded store in {} (meta.sqlite is missing)",
            cfg.data_dir.display()
        ));
    }
    let blobs = cfg.data_dir.join("blobs");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let r = rt
        .block_on(postern_store_pg::migrate::from_embedded(
            &db, &blobs, to, &schema,
        ))
        .map_err(|e| format!("store migrate: {e} (nothing was committed)"))?;
    for t in &r.tables {
        out!(
            "table {:<16} rows {:>8} -> {:>8}  sha256 {}{}",
            t.table,
            t.source_rows,
            t.target_rows,
            t.target_digest,
            if t.equal() { " equal" } else { " DIFFERS" }
        );
    }
    out!(
        "blobs {} ({} bytes) -> {} ({} bytes), every hash checked",
        r.source_blobs,
        r.source_blob_bytes,
        r.target_blobs,
        r.target_blob_bytes
    );
    for f in &r.ignored_files {
        out!("not a blob, not copied: {}", blobs.join(f).display());
    }
    match &r.ledger_head {
        Some((seq, hash)) => out!(
            "ledger {} entries, chain intact on the target, head: {seq}:{hash}",
            r.ledger_entries
        ),
        None => out!("ledger empty"),
    }
    if !r.ok() {
        for p in &r.problems {
            out!("problem: {p}");
        }
        if r.committed {
            out!(
                "schema {} was committed but does not verify: do not switch to it; drop it \
                 (DROP SCHEMA {} CASCADE) and migrate again",
                r.schema,
                r.schema
            );
        } else {
            out!("nothing was committed");
        }
        return Ok(ExitCode::from(1));
    }
    out!(
        "migrated into schema {}: all tables and blobs equal",
        r.schema
    );
    out!("to switch, keep the server stopped and set in the configuration:");
    out!("[store]");
    out!("backend = \"postgres\"");
    out!("url = \"{to}\"");
    out!("schema = \"{}\"", r.schema);
    Ok(ExitCode::SUCCESS)
}

async fn account(core: &Core, admin: &AdminSession, cmd: AccountCmd) -> Result<ExitCode, String> {
    match cmd {
        AccountCmd::Add {
            address,
            kind,
            name,
            quota,
            generate,
        } => {
            let kind = PrincipalKind::parse(&kind).ok_or_else(|| {
                format!("--kind {kind:?}: one of individual, shared, group, resource")
            })?;
            let quota = quota.as_deref().map(parse_size).transpose()?.flatten();
            let can_login = kind == PrincipalKind::Individual;
            let password = if can_login {
                read_password(generate)?
            } else {
                None
            };
            let n = core
                .account_add(
                    admin,
                    &address,
                    kind,
                    name.as_deref(),
                    password.as_deref(),
                    quota,
                )
                .await
                .map_err(err)?;
            out!("added {} {}", n.account.kind.as_str(), n.account.address);
            if let Some(p) = n.generated_password {
                out!("password: {p}");
                out!(
                    "(shown once; set another with `postern account passwd {}`)",
                    n.account.address
                );
            }
        }
        AccountCmd::Passwd { address, generate } => {
            let password = read_password(generate)?;
            let generated = core
                .account_passwd(admin, &address, password.as_deref())
                .await
                .map_err(err)?;
            out!("password changed for {address}");
            if let Some(p) = generated {
                out!("password: {p}");
            }
        }
        AccountCmd::List { domain, json } => {
            for a in core
                .account_list(admin, domain.as_deref())
                .await
                .map_err(err)?
            {
                if json {
                    out!("{}", serde_json::to_string(&a).unwrap_or_default());
                } else {
                    out!(
                        "{} {} {} used={} quota={} messages={}",
                        a.address,
                        a.kind.as_str(),
                        a.display_name,
                        a.used_bytes,
                        a.quota_bytes
                            .map(|q| q.to_string())
                            .unwrap_or_else(|| "none".into()),
                        a.messages
                    );
                }
            }
        }
        AccountCmd::Show { address } => {
            let a = core.account_show(admin, &address).await.map_err(err)?;
            out!("{}", serde_json::to_string_pretty(&a).unwrap_or_default());
        }
        AccountCmd::Remove { address } => {
            core.account_remove(admin, &address).await.map_err(err)?;
            out!("removed {address}");
        }
        AccountCmd::Quota { address, size } => {
            let q = parse_size(&size)?;
            core.account_quota(admin, &address, q).await.map_err(err)?;
            out!(
                "quota of {address}: {}",
                q.map(|q| q.to_string()).unwrap_or_else(|| "none".into())
            );
        }
        AccountCmd::AppPassword(AppPasswordCmd::Add {
            address,
            label,
            protocols,
        }) => {
            let (info, secret) = core
                .app_password_add(admin, &address, &label, &protocols)
                .await
                .map_err(err)?;
            out!("app password {} ({}) for {address}", info.id, info.label);
            out!("secret: {secret}");
        }
        AccountCmd::AppPassword(AppPasswordCmd::List { address }) => {
            for a in core.app_password_list(admin, &address).await.map_err(err)? {
                let protocols = if a.protocols.is_empty() {
                    "all".to_string()
                } else {
                    a.protocols.join(",")
                };
                out!(
                    "{} {} protocols={} created={}",
                    a.id,
                    a.label,
                    protocols,
                    format_ms(a.created_ms)
                );
            }
        }
        AccountCmd::AppPassword(AppPasswordCmd::Remove { address, id }) => {
            core.app_password_remove(admin, &address, &id)
                .await
                .map_err(err)?;
            out!("removed app password {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Splits an mbox stream into messages (mboxrd: `>From ` unquoted one level) and stores
/// each, printing its id once it is durable.
async fn import(
    core: &Core,
    admin: &AdminSession,
    address: &str,
    mailbox: Option<&str>,
) -> Result<ExitCode, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| format!("reading standard input: {e}"))?;
    let mut out = std::io::stdout().lock();
    let mut count = 0;
    for raw in split_mbox(&input) {
        let stored = core
            .import_message(admin, address, mailbox, raw)
            .await
            .map_err(err)?;
        writeln!(
            out,
            "stored {} {} {}",
            stored.message, stored.uid, stored.blob
        )
        .map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        count += 1;
    }
    eprintln!("imported {count} message(s)");
    Ok(ExitCode::SUCCESS)
}

/// mbox → messages. A line starting `From ` separates messages; `>From `, `>>From `…
/// lose one `>` (mboxrd). Line ends become CRLF, the form messages have on the wire.
pub fn split_mbox(input: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for line in input.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            if let Some(m) = cur.take() {
                messages.push(m);
            }
            cur = Some(Vec::new());
            continue;
        }
        let Some(m) = cur.as_mut() else { continue };
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let gt = body.iter().take_while(|&&b| b == b'>').count();
        let body = if gt > 0 && body[gt..].starts_with(b"From ") {
            &body[1..]
        } else {
            body
        };
        m.extend_from_slice(body);
        if line.ends_with(b"\n") {
            m.extend_from_slice(b"\r\n");
        }
    }
    if let Some(m) = cur {
        messages.push(m);
    }
    // The blank line before each separator belongs to the mbox format, not the message.
    for m in &mut messages {
        if m.ends_with(b"\r\n\r\n") {
            m.truncate(m.len() - 2);
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G").unwrap(), Some(10 << 30));
        assert_eq!(parse_size("512").unwrap(), Some(512));
        assert_eq!(parse_size("none").unwrap(), None);
        assert!(parse_size("10X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn since() {
        let now = postern_core::store::now_ms();
        let d = parse_since("24h").unwrap();
        assert!((now - 86_400_000 - d).abs() < 5000);
        assert_eq!(parse_since("2026-01-01").unwrap(), 1_767_225_600_000);
        assert_eq!(
            parse_since("2026-01-01T00:00:01Z").unwrap(),
            1_767_225_601_000
        );
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("-9223372036854775808s").is_err());
        assert!(parse_since("9223372036854775807d").is_err());
    }

    #[test]
    fn mbox() {
        let m = split_mbox(b"From a@b Mon\nSubject: 1\n\n>From here\n>>From there\n\nFrom c@d Tue\nSubject: 2\n\nx\n");
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            b"Subject: 1\r\n\r\nFrom here\r\n>From there\r\n".to_vec()
        );
        assert_eq!(m[1], b"Subject: 2\r\n\r\nx\r\n".to_vec());
    }
}

fn dkim_key(
    domain: &str,
    r: &postern_core::store::DkimKeyRecord,
) -> Option<postern_outbound::dkim::DkimKey> {
    Some(postern_outbound::dkim::DkimKey {
        domain: domain.to_ascii_lowercase(),
        selector: r.selector.clone(),
        algorithm: postern_outbound::dkim::Algorithm::parse(&r.algorithm)?,
        private_der: r.private_der.clone(),
    })
}

async fn dkim(
    core: &Core,
    admin: &AdminSession,
    domain: &str,
    algorithm: &str,
    selector: Option<String>,
    show: bool,
    remove: Option<String>,
) -> Result<ExitCode, String> {
    use postern_outbound::dkim::{self, Algorithm};
    if let Some(sel) = remove {
        core.dkim_key_remove(admin, domain, &sel)
            .await
            .map_err(err)?;
        out!(
            "removed DKIM key {sel} of {domain}; remove its DNS record once mail signed with it is delivered"
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !show {
        let algorithms = match algorithm {
            "both" => vec![Algorithm::Ed25519, Algorithm::Rsa],
            other => vec![
                Algorithm::parse(other)
                    .ok_or_else(|| format!("--algorithm {other:?}: use ed25519, rsa or both"))?,
            ],
        };
        if selector.is_some() && algorithms.len() > 1 {
            return Err("--selector names one key: give --algorithm ed25519 or rsa too".into());
        }
        for alg in algorithms {
            let der = tokio::task::spawn_blocking(move || dkim::generate(alg))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let sel = selector
                .clone()
                .unwrap_or_else(|| dkim::selector_for(alg, time::OffsetDateTime::now_utc()));
            core.dkim_key_add(admin, domain, &sel, alg.as_str(), der)
                .await
                .map_err(err)?;
            out!("added {} DKIM key {sel} for {domain}", alg.as_str());
        }
        out!("publish in DNS:");
    }
    let keys = core.dkim_key_list(admin, domain).await.map_err(err)?;
    if keys.is_empty() {
        out!("{domain} has no DKIM keys");
    }
    for r in &keys {
        let Some(k) = dkim_key(domain, r) else {
            out!("; {}: unknown algorithm {:?}", r.selector, r.algorithm);
            continue;
        };
        out!("{}", k.zone_line().map_err(|e| e.to_string())?);
    }
    Ok(ExitCode::SUCCESS)
}

fn queue_id(s: &str) -> Result<postern_core::store::QueueId, String> {
    postern_core::store::QueueId::parse(s).ok_or_else(|| format!("{s:?} is not a queue id"))
}

fn print_queued(q: &postern_core::outbound::QueueSummary) {
    let m = &q.message;
    out!(
        "{} {} from <{}> size {}{}",
        m.id,
        format_ms(m.created_ms),
        m.sender,
        m.blob.size,
        if m.requiretls { " REQUIRETLS" } else { "" }
    );
    for r in &q.recipients {
        out!(
            "  {} <{}> attempts {}{}{}",
            r.state.as_str(),
            r.address,
            r.attempts,
            if r.state == postern_core::store::RecipientState::Queued {
                format!(" next {}", format_ms(r.next_attempt_ms))
            } else {
                String::new()
            },
            r.last_error
                .as_deref()
                .map(|e| format!(" last: {} {e}", r.last_status.as_deref().unwrap_or("")))
                .unwrap_or_default()
        );
    }
}

async fn queue(core: &Core, admin: &AdminSession, cmd: QueueCmd) -> Result<ExitCode, String> {
    match cmd {
        QueueCmd::List { limit } => {
            let list = core.queue_list(admin, limit).await.map_err(err)?;
            if list.is_empty() {
                out!("the queue is empty");
            }
            for q in &list {
                print_queued(q);
            }
        }
        QueueCmd::Show { id } => {
            let q = core.queue_show(admin, queue_id(&id)?).await.map_err(err)?;
            print_queued(&q);
            let m = &q.message;
            out!(
                "  envid {} ret {} smtputf8 {} 8bit {} expires {}",
                m.envid.as_deref().unwrap_or("-"),
                m.ret.as_deref().unwrap_or("-"),
                m.smtputf8,
                m.eight_bit,
                format_ms(m.expires_ms)
            );
        }
        QueueCmd::Retry { id } => {
            let n = core.queue_retry(admin, queue_id(&id)?).await.map_err(err)?;
            out!("{n} recipient(s) of {id} will be tried now");
        }
        QueueCmd::Delete { id } => {
            core.queue_delete(admin, queue_id(&id)?)
                .await
                .map_err(err)?;
            out!("deleted {id} from the queue");
        }
    }
    Ok(ExitCode::SUCCESS)
}
