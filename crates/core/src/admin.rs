//! Administrative actions: one code path each, called by the CLI and by the admin API.
//! Every change commits together with its ledger entry (before/after values; never a
//! secret or a hash).

use crate::Core;
use crate::address::{Address, check_text, parse_address, parse_alias_address, parse_domain};
use crate::auth::{AdminSession, app_password_digest, generate_secret, hash_password};
use crate::error::{CoreError, Result};
use postern_store::*;
use serde::Serialize;
use serde_json::json;

/// The mailboxes every new account starts with (RFC 6154 special-use).
pub const DEFAULT_MAILBOXES: &[(&str, SpecialUse)] = &[
    ("INBOX", SpecialUse::Inbox),
    ("Drafts", SpecialUse::Drafts),
    ("Sent", SpecialUse::Sent),
    ("Junk", SpecialUse::Junk),
    ("Trash", SpecialUse::Trash),
    ("Archive", SpecialUse::Archive),
];

/// Longest display name or label accepted.
pub const MAX_NAME_CHARS: usize = 256;
/// Shortest password an admin may set (NIST SP 800-63B §5.1.1.2: at least 8).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (bounds the hashing work one request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Length of generated passwords and app passwords (≈ 5.8 bits each: 116 / 139 bits).
pub const GENERATED_PASSWORD_CHARS: usize = 20;
pub const APP_PASSWORD_CHARS: usize = 24;

/// Protocols an app password can be limited to.
pub const PROTOCOLS: &[&str] = &["imap", "pop3", "smtp", "dav", "jmap", "eas", "managesieve"];

#[derive(Debug, Clone, Serialize)]
pub struct AccountInfo {
    pub address: String,
    pub kind: PrincipalKind,
    pub display_name: String,
    pub quota_bytes: Option<u64>,
    pub used_bytes: u64,
    pub messages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AliasInfo {
    pub alias: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppPasswordInfo {
    pub id: String,
    pub label: String,
    pub protocols: Vec<String>,
    pub created_ms: i64,
}

/// A new account; `password` is set only when it was generated (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct NewAccount {
    pub account: AccountInfo,
    pub generated_password: Option<String>,
}

fn check_password(p: &str) -> Result<()> {
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CoreError::invalid(
            "password",
            format!("shorter than {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(CoreError::invalid(
            "password",
            format!("longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err(CoreError::invalid(
            "password",
            "contains a control character",
        ));
    }
    Ok(())
}

impl Core {
    async fn domain_of(&self, name: &str) -> Result<Domain> {
        self.store
            .domain_by_name(name)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("domain {name}")))
    }

    /// The named domain, or every domain when none is named.
    async fn domains_or_all(&self, domain: Option<&str>) -> Result<Vec<Domain>> {
        Ok(match domain {
            Some(n) => vec![self.domain_of(&parse_domain(n)?).await?],
            None => self.store.domains().await?,
        })
    }

    async fn principal_of(&self, a: &Address) -> Result<(Domain, Principal)> {
        let d = self.domain_of(a.domain()).await?;
        let p = self
            .store
            .principal_by_local(d.id, a.local())
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("account {a}")))?;
        Ok((d, p))
    }

    async fn info(&self, d: &Domain, p: &Principal) -> Result<AccountInfo> {
        let u = self.store.usage(p.id).await?;
        Ok(AccountInfo {
            address: format!("{}@{}", p.local_part, d.name),
            kind: p.kind,
            display_name: p.display_name.clone(),
            quota_bytes: p.quota_bytes,
            used_bytes: u.used_bytes,
            messages: u.messages,
        })
    }

    fn ledger_op(
        admin: &AdminSession,
        action: &str,
        target: Option<&str>,
        objects: Vec<String>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Op {
        Op::AppendLedger(Core::ledger_record(
            admin.ctx(),
            action,
            target,
            objects,
            "ok",
            before,
            after,
        ))
    }

    /// Commits a change together with its ledger entry. When the change is refused
    /// (exists, not found, …) the batch rolls back, so the attempt is recorded in an
    /// entry of its own with the error as its result: failed admin actions leave a trace.
    pub(crate) async fn commit(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        let entries: Vec<LedgerRecord> = ops
            .iter()
            .filter_map(|op| match op {
                Op::AppendLedger(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        match self.store.write(ops).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let result = format!("error: {e}");
                let failed = entries
                    .into_iter()
                    .map(|mut r| {
                        r.result = result.clone();
                        Op::AppendLedger(r)
                    })
                    .collect();
                // When the store itself is down this fails too; the error still reaches the caller.
                let _ = self.store.write(failed).await;
                Err(e.into())
            }
        }
    }

    // ---- domains ----

    pub async fn domain_add(&self, admin: &AdminSession, name: &str) -> Result<Domain> {
        let name = parse_domain(name)?;
        let d = Domain {
            id: DomainId::generate(),
            name: name.clone(),
            created_ms: now_ms(),
        };
        self.commit(vec![
            Op::CreateDomain(d.clone()),
            Self::ledger_op(
                admin,
                "domain.create",
                None,
                vec![format!("domain:{name}")],
                None,
                Some(json!({"name": name})),
            ),
        ])
        .await?;
        Ok(d)
    }

    pub async fn domain_list(&self, _admin: &AdminSession) -> Result<Vec<Domain>> {
        Ok(self.store.domains().await?)
    }

    pub async fn domain_remove(&self, admin: &AdminSession, name: &str) -> Result<()> {
        let d = self.domain_of(&parse_domain(name)?).await?;
        self.commit(vec![
            Op::RemoveDomain(d.id),
            Self::ledger_op(
                admin,
                "domain.remove",
                None,
                vec![format!("domain:{}", d.name)],
                Some(json!({"name": d.name})),
                None,
            ),
        ])
        .await?;
        Ok(())
    }

    // ---- accounts ----

    /// Creates a principal with its default mailboxes. Individuals and resources get a
    /// password: `password`, or a generated one returned once.
    pub async fn account_add(
        &self,
        admin: &AdminSession,
        address: &str,
        kind: PrincipalKind,
        display_name: Option<&str>,
        password: Option<&str>,
        quota_bytes: Option<u64>,
    ) -> Result<NewAccount> {
        let a = parse_address(address)?;
        if a.local() == "*" {
            return Err(CoreError::invalid(
                "address",
                "'*' is the catch-all; use an alias",
            ));
        }
        check_not_srs(&a)?;
        let d = self.domain_of(a.domain()).await?;
        let name = display_name.unwrap_or(a.local());
        check_text("display_name", name, MAX_NAME_CHARS)?;
        // Shared mailboxes, groups and rooms are reached through people's rights, never
        // logged into (Exchange disables their accounts for the same reason).
        let can_login = kind == PrincipalKind::Individual;
        if password.is_some() && !can_login {
            return Err(CoreError::invalid(
                "password",
                format!("a {} has no password of its own", kind.as_str()),
            ));
        }
        let (secret, generated) = match password {
            Some(p) => {
                check_password(p)?;
                (Some(p.to_string()), None)
            }
            None if can_login => {
                let g = generate_secret(GENERATED_PASSWORD_CHARS);
                (Some(g.clone()), Some(g))
            }
            None => (None, None),
        };
        let p = Principal {
            id: PrincipalId::generate(),
            domain: d.id,
            local_part: a.local().to_string(),
            kind,
            display_name: name.to_string(),
            quota_bytes,
            created_ms: now_ms(),
        };
        let mut ops = vec![Op::CreatePrincipal(p.clone())];
        if let Some(secret) = &secret {
            let settings = self.settings.argon2;
            let secret = secret.clone();
            let hash = tokio::task::spawn_blocking(move || hash_password(settings, &secret))
                .await
                .map_err(|e| CoreError::Internal(e.to_string()))??;
            ops.push(Op::SetPassword {
                principal: p.id,
                credential: Credential {
                    id: CredentialId::generate(),
                    principal: p.id,
                    kind: CredentialKind::Password,
                    label: "password".into(),
                    protocols: vec![],
                    hash,
                    created_ms: now_ms(),
                },
            });
        }
        if kind.has_mailboxes() {
            for (mb, su) in DEFAULT_MAILBOXES {
                ops.push(Op::CreateMailbox(Mailbox {
                    id: MailboxId::generate(),
                    account: p.id,
                    name: mb.to_string(),
                    special_use: Some(*su),
                    uid_validity: 0,
                    uid_next: 0,
                    highest_modseq: 0,
                    subscribed: true,
                    created_ms: now_ms(),
                }));
            }
        }
        let addr = a.to_string();
        ops.push(Self::ledger_op(
            admin,
            "account.create",
            Some(&addr),
            vec![format!("principal:{}", p.id)],
            None,
            Some(json!({"address": addr, "kind": kind, "display_name": name, "quota_bytes": quota_bytes, "password_set": secret.is_some()})),
        ));
        self.commit(ops).await?;
        Ok(NewAccount {
            account: self.info(&d, &p).await?,
            generated_password: generated,
        })
    }

    pub async fn account_list(
        &self,
        _admin: &AdminSession,
        domain: Option<&str>,
    ) -> Result<Vec<AccountInfo>> {
        let domains = self.domains_or_all(domain).await?;
        let mut out = Vec::new();
        for d in &domains {
            for p in self.store.principals(Some(d.id)).await? {
                out.push(self.info(d, &p).await?);
            }
        }
        Ok(out)
    }

    pub async fn account_show(&self, _admin: &AdminSession, address: &str) -> Result<AccountInfo> {
        let (d, p) = self.principal_of(&parse_address(address)?).await?;
        self.info(&d, &p).await
    }

    /// Removes an account and everything it holds. Aliases pointing at it stay (they
    /// may be re-pointed); the ledger keeps every entry about it.
    pub async fn account_remove(&self, admin: &AdminSession, address: &str) -> Result<()> {
        let a = parse_address(address)?;
        let (d, p) = self.principal_of(&a).await?;
        let before = serde_json::to_value(self.info(&d, &p).await?).ok();
        self.commit(vec![
            Op::RemovePrincipal(p.id),
            Self::ledger_op(
                admin,
                "account.remove",
                Some(&a.to_string()),
                vec![format!("principal:{}", p.id)],
                before,
                None,
            ),
        ])
        .await?;
        Ok(())
    }

    /// Sets a password (given, or generated and returned once).
    pub async fn account_passwd(
        &self,
        admin: &AdminSession,
        address: &str,
        password: Option<&str>,
    ) -> Result<Option<String>> {
        let a = parse_address(address)?;
        let (_, p) = self.principal_of(&a).await?;
        if p.kind != PrincipalKind::Individual {
            return Err(CoreError::invalid(
                "address",
                format!("a {} has no password of its own", p.kind.as_str()),
            ));
        }
        let (secret, generated) = match password {
            Some(pw) => {
                check_password(pw)?;
                (pw.to_string(), None)
            }
            None => {
                let g = generate_secret(GENERATED_PASSWORD_CHARS);
                (g.clone(), Some(g))
            }
        };
        let old = self
            .store
            .credentials(p.id)
            .await?
            .into_iter()
            .find(|c| c.kind == CredentialKind::Password)
            .map(|c| c.id.to_string());
        let settings = self.settings.argon2;
        let hash = tokio::task::spawn_blocking(move || hash_password(settings, &secret))
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))??;
        let cred = Credential {
            id: CredentialId::generate(),
            principal: p.id,
            kind: CredentialKind::Password,
            label: "password".into(),
            protocols: vec![],
            hash,
            created_ms: now_ms(),
        };
        let new_id = cred.id.to_string();
        self.commit(vec![
            Op::SetPassword {
                principal: p.id,
                credential: cred,
            },
            Self::ledger_op(
                admin,
                "credential.password.set",
                Some(&a.to_string()),
                vec![format!("principal:{}", p.id)],
                Some(json!({"credential": old})),
                Some(json!({"credential": new_id})),
            ),
        ])
        .await?;
        Ok(generated)
    }

    pub async fn account_quota(
        &self,
        admin: &AdminSession,
        address: &str,
        quota_bytes: Option<u64>,
    ) -> Result<()> {
        let a = parse_address(address)?;
        let (_, p) = self.principal_of(&a).await?;
        self.commit(vec![
            Op::SetQuota {
                principal: p.id,
                quota_bytes,
            },
            Self::ledger_op(
                admin,
                "account.quota.set",
                Some(&a.to_string()),
                vec![format!("principal:{}", p.id)],
                Some(json!({"quota_bytes": p.quota_bytes})),
                Some(json!({"quota_bytes": quota_bytes})),
            ),
        ])
        .await?;
        Ok(())
    }

    // ---- app passwords ----

    /// Creates an app password limited to `protocols` (empty = all) and returns its
    /// secret, shown once.
    pub async fn app_password_add(
        &self,
        admin: &AdminSession,
        address: &str,
        label: &str,
        protocols: &[String],
    ) -> Result<(AppPasswordInfo, String)> {
        let a = parse_address(address)?;
        let (_, p) = self.principal_of(&a).await?;
        check_text("label", label, MAX_NAME_CHARS)?;
        if p.kind != PrincipalKind::Individual {
            return Err(CoreError::invalid(
                "address",
                "only a person's account has app passwords",
            ));
        }
        for proto in protocols {
            if !PROTOCOLS.contains(&proto.as_str()) {
                return Err(CoreError::invalid(
                    "protocols",
                    format!(
                        "unknown protocol {proto:?}; one of {}",
                        PROTOCOLS.join(", ")
                    ),
                ));
            }
        }
        let secret = generate_secret(APP_PASSWORD_CHARS);
        let cred = Credential {
            id: CredentialId::generate(),
            principal: p.id,
            kind: CredentialKind::App,
            label: label.to_string(),
            protocols: protocols.to_vec(),
            hash: app_password_digest(&secret),
            created_ms: now_ms(),
        };
        let info = AppPasswordInfo {
            id: cred.id.to_string(),
            label: cred.label.clone(),
            protocols: cred.protocols.clone(),
            created_ms: cred.created_ms,
        };
        self.commit(vec![
            Op::AddCredential(cred),
            Self::ledger_op(
                admin,
                "credential.app.create",
                Some(&a.to_string()),
                vec![format!("credential:{}", info.id)],
                None,
                serde_json::to_value(&info).ok(),
            ),
        ])
        .await?;
        Ok((info, secret))
    }

    pub async fn app_password_list(
        &self,
        _admin: &AdminSession,
        address: &str,
    ) -> Result<Vec<AppPasswordInfo>> {
        let (_, p) = self.principal_of(&parse_address(address)?).await?;
        Ok(self
            .store
            .credentials(p.id)
            .await?
            .into_iter()
            .filter(|c| c.kind == CredentialKind::App)
            .map(|c| AppPasswordInfo {
                id: c.id.to_string(),
                label: c.label,
                protocols: c.protocols,
                created_ms: c.created_ms,
            })
            .collect())
    }

    pub async fn app_password_remove(
        &self,
        admin: &AdminSession,
        address: &str,
        id: &str,
    ) -> Result<()> {
        let a = parse_address(address)?;
        let (_, p) = self.principal_of(&a).await?;
        let cred = self
            .store
            .credentials(p.id)
            .await?
            .into_iter()
            .find(|c| c.kind == CredentialKind::App && c.id.to_string() == id)
            .ok_or_else(|| CoreError::NotFound(format!("app password {id}")))?;
        self.commit(vec![
            Op::RemoveCredential(cred.id),
            Self::ledger_op(
                admin,
                "credential.app.remove",
                Some(&a.to_string()),
                vec![format!("credential:{id}")],
                Some(json!({"label": cred.label, "protocols": cred.protocols})),
                None,
            ),
        ])
        .await?;
        Ok(())
    }

    // ---- aliases and groups ----

    /// `alias` (or `*@domain`, the catch-all) delivers to `target`, local or external.
    pub async fn alias_add(
        &self,
        admin: &AdminSession,
        alias: &str,
        target: &str,
    ) -> Result<AliasInfo> {
        let a = parse_alias_address(alias)?;
        check_not_srs(&a)?;
        let t = parse_address(target)?;
        let d = self.domain_of(a.domain()).await?;
        if a == t {
            return Err(CoreError::invalid(
                "target",
                "an alias cannot point at itself",
            ));
        }
        let info = AliasInfo {
            alias: a.to_string(),
            target: t.to_string(),
        };
        self.commit(vec![
            Op::AddAlias(Alias {
                id: AliasId::generate(),
                domain: d.id,
                local_part: a.local().to_string(),
                target: t.to_string(),
                created_ms: now_ms(),
            }),
            Self::ledger_op(
                admin,
                "alias.create",
                Some(&t.to_string()),
                vec![format!("alias:{a}")],
                None,
                serde_json::to_value(&info).ok(),
            ),
        ])
        .await?;
        Ok(info)
    }

    pub async fn alias_list(
        &self,
        _admin: &AdminSession,
        domain: Option<&str>,
    ) -> Result<Vec<AliasInfo>> {
        let domains = self.domains_or_all(domain).await?;
        let mut out = Vec::new();
        for d in &domains {
            for al in self.store.aliases(Some(d.id)).await? {
                out.push(AliasInfo {
                    alias: format!("{}@{}", al.local_part, d.name),
                    target: al.target,
                });
            }
        }
        Ok(out)
    }

    /// Removes `alias` → `target`, or every target of `alias` when `target` is None.
    pub async fn alias_remove(
        &self,
        admin: &AdminSession,
        alias: &str,
        target: Option<&str>,
    ) -> Result<usize> {
        let a = parse_alias_address(alias)?;
        let t = target.map(parse_address).transpose()?;
        let d = self.domain_of(a.domain()).await?;
        let found: Vec<Alias> = self
            .store
            .aliases_for(d.id, a.local())
            .await?
            .into_iter()
            .filter(|al| t.as_ref().is_none_or(|t| al.target == t.to_string()))
            .collect();
        if found.is_empty() {
            return Err(CoreError::NotFound(format!("alias {a}")));
        }
        let mut ops = Vec::new();
        for al in &found {
            ops.push(Op::RemoveAlias(al.id));
            ops.push(Self::ledger_op(
                admin,
                "alias.remove",
                Some(&al.target),
                vec![format!("alias:{a}")],
                Some(json!({"alias": a.to_string(), "target": al.target})),
                None,
            ));
        }
        self.commit(ops).await?;
        Ok(found.len())
    }

    pub async fn group_member_add(
        &self,
        admin: &AdminSession,
        group: &str,
        member: &str,
    ) -> Result<()> {
        self.group_member_change(admin, group, member, true).await
    }

    pub async fn group_member_remove(
        &self,
        admin: &AdminSession,
        group: &str,
        member: &str,
    ) -> Result<()> {
        self.group_member_change(admin, group, member, false).await
    }

    async fn group_member_change(
        &self,
        admin: &AdminSession,
        group: &str,
        member: &str,
        add: bool,
    ) -> Result<()> {
        let g = parse_address(group)?;
        let m = parse_address(member)?;
        let (_, p) = self.principal_of(&g).await?;
        let value = Some(json!({"member": m.to_string()}));
        let (op, action, before, after) = if add {
            let op = Op::AddGroupMember {
                group: p.id,
                member: m.to_string(),
            };
            (op, "group.member.add", None, value)
        } else {
            let op = Op::RemoveGroupMember {
                group: p.id,
                member: m.to_string(),
            };
            (op, "group.member.remove", value, None)
        };
        let objects = vec![format!("principal:{}", p.id)];
        let entry = Self::ledger_op(admin, action, Some(&g.to_string()), objects, before, after);
        self.commit(vec![op, entry]).await?;
        Ok(())
    }

    /// Who may send to GROUP (`anyone`, `authenticated`, `members`), with before/after
    /// in the ledger.
    pub async fn group_set_senders(
        &self,
        admin: &AdminSession,
        group: &str,
        senders: &str,
    ) -> Result<()> {
        use crate::directory::GroupSenders;
        let g = parse_address(group)?;
        let Some(new) = GroupSenders::parse(senders) else {
            return Err(CoreError::invalid(
                "senders",
                "one of anyone, authenticated, members",
            ));
        };
        let (_, p) = self.principal_of(&g).await?;
        if p.kind != PrincipalKind::Group {
            return Err(CoreError::invalid("group", format!("{g} is not a group")));
        }
        let old = self.group_senders(&p).await?;
        let op = Op::SetGroupSenders {
            group: p.id,
            senders: (new != GroupSenders::Anyone).then(|| new.as_str().to_string()),
        };
        let entry = Self::ledger_op(
            admin,
            "group.senders",
            Some(&g.to_string()),
            vec![format!("principal:{}", p.id)],
            Some(json!({"senders": old.as_str()})),
            Some(json!({"senders": new.as_str()})),
        );
        self.commit(vec![op, entry]).await?;
        Ok(())
    }

    /// Who may send to GROUP.
    pub async fn group_get_senders(&self, _admin: &AdminSession, group: &str) -> Result<String> {
        let g = parse_address(group)?;
        let (_, p) = self.principal_of(&g).await?;
        if p.kind != PrincipalKind::Group {
            return Err(CoreError::invalid("group", format!("{g} is not a group")));
        }
        Ok(self.group_senders(&p).await?.as_str().to_string())
    }

    pub async fn group_members(&self, _admin: &AdminSession, group: &str) -> Result<Vec<String>> {
        let (_, p) = self.principal_of(&parse_address(group)?).await?;
        Ok(self.store.group_members(p.id).await?)
    }

    // ---- the ledger ----

    /// Reading the ledger is itself recorded.
    pub async fn audit_show(
        &self,
        admin: &AdminSession,
        account: Option<&str>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>> {
        let account = account
            .map(|a| parse_address(a).map(|a| a.to_string()))
            .transpose()?;
        let q = LedgerQuery {
            from_seq: 0,
            account: account.clone(),
            since_ms,
            limit,
        };
        let entries = self.store.ledger(&q).await?;
        self.record(
            admin.ctx(),
            "audit.read",
            account.as_deref(),
            vec![],
            "ok",
            None,
            Some(json!({"since_ms": since_ms, "returned": entries.len()})),
        )
        .await?;
        Ok(entries)
    }

    /// Checks the chain (and an anchor the operator kept, when given); `Err(break)`
    /// names the first bad entry; `Ok((entries, head))` otherwise.
    pub async fn audit_verify(
        &self,
        _admin: &AdminSession,
        anchor: Option<(u64, &str)>,
    ) -> Result<std::result::Result<(u64, Option<(u64, String)>), postern_store::ledger::ChainBreak>>
    {
        Ok(postern_store::verify::verify_ledger_head(&*self.store, anchor).await?)
    }

    pub async fn store_verify(
        &self,
        _admin: &AdminSession,
    ) -> Result<postern_store::verify::IntegrityReport> {
        Ok(postern_store::verify::verify_store(&*self.store, &*self.blobs).await?)
    }
}

/// `SRS0=…` / `SRS1=…` local parts are bounce paths of forwarded mail (`crate::srs`),
/// never an account's or an alias's name.
fn check_not_srs(a: &crate::address::Address) -> Result<()> {
    if crate::srs::is_srs(a.local()) {
        return Err(CoreError::invalid(
            "address",
            "local parts starting with SRS0= or SRS1= are reserved for forwarded mail's bounces",
        ));
    }
    Ok(())
}
