//! CalDAV/CardDAV collections and resources in PostgreSQL: the same rules as the
//! embedded backend (`postern_store::sqlite::dav`). Every DAV op runs under its
//! account's row lock (taken up front by `Batch::lock_rows`), so journal numbers
//! follow commit order and the If-Match check cannot race.

use postern_store::*;
use tokio_postgres::Row;

use crate::apply::{Batch, WResult, WriteError};
use crate::error::is_constraint;
use crate::rows::{col, i64_of, u64_of};

const COLLECTION_COLS: &str = "id, account_id, kind, name, display_name, color, sort_order, \
     description, components, modseq, created_ms, timezone";
const RESOURCE_COLS: &str = "id, account_id, collection_id, name, etag, size, component, uid, \
     start_ms, end_ms, modseq, modified_ms";

pub(crate) fn collection_row(r: &Row) -> Result<DavCollection> {
    let kind: String = col(r, 2)?;
    let components: String = col(r, 8)?;
    Ok(DavCollection {
        id: DavCollectionId(col(r, 0)?),
        account: PrincipalId(col(r, 1)?),
        kind: DavKind::parse(&kind)
            .ok_or_else(|| StoreError::Invalid(format!("dav collection kind {kind:?}")))?,
        name: col(r, 3)?,
        display_name: col(r, 4)?,
        color: col(r, 5)?,
        order: col(r, 6)?,
        description: col(r, 7)?,
        components: components
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        modseq: u64_of(col(r, 9)?),
        created_ms: col(r, 10)?,
        timezone: col(r, 11)?,
    })
}

fn resource_row(r: &Row, with_data: bool) -> Result<DavResource> {
    Ok(DavResource {
        id: DavResourceId(col(r, 0)?),
        account: PrincipalId(col(r, 1)?),
        collection: DavCollectionId(col(r, 2)?),
        name: col(r, 3)?,
        etag: col(r, 4)?,
        size: u64_of(col(r, 5)?),
        component: col(r, 6)?,
        uid: col(r, 7)?,
        start_ms: col(r, 8)?,
        end_ms: col(r, 9)?,
        modseq: u64_of(col(r, 10)?),
        modified_ms: col(r, 11)?,
        data: if with_data {
            col(r, 12)?
        } else {
            String::new()
        },
    })
}

impl Batch<'_, '_> {
    async fn dav_next_modseq(&self, account: PrincipalId) -> WResult<u64> {
        let row = self
            .opt(
                "UPDATE principals SET highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING highest_modseq",
                &[&account.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("principal {account}")))?;
        Ok(u64_of(col(&row, 0)?))
    }

    async fn dav_journal(
        &mut self,
        account: PrincipalId,
        modseq: u64,
        kind: ChangeKind,
        collection: DavCollectionId,
        resource: Option<DavResourceId>,
    ) -> WResult<()> {
        self.exec(
            "INSERT INTO journal (account_id, modseq, kind, mailbox_id, message_id, uid, at_ms)
             VALUES ($1, $2, $3, $4, $5, NULL, $6)",
            &[
                &account.0,
                &i64_of(modseq),
                &kind.as_str(),
                &collection.0,
                &resource.map(|r| r.0),
                &now_ms(),
            ],
        )
        .await?;
        self.notices.push(ChangeNotice { account, modseq });
        Ok(())
    }

    /// The next journal number for a change of the account's `collection`; moves the
    /// collection's `modseq` to it.
    async fn dav_touch(&self, account: PrincipalId, collection: DavCollectionId) -> WResult<u64> {
        if self
            .opt(
                "SELECT 1 FROM dav_collections WHERE id = $1 AND account_id = $2",
                &[&collection.0, &account.0],
            )
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("dav collection {collection}")).into());
        }
        let modseq = self.dav_next_modseq(account).await?;
        self.exec(
            "UPDATE dav_collections SET modseq = $2 WHERE id = $1",
            &[&collection.0, &i64_of(modseq)],
        )
        .await?;
        Ok(modseq)
    }

    pub(crate) async fn apply_dav(&mut self, op: &Op) -> WResult<OpResult> {
        match op {
            Op::CreateDavCollection(c) => {
                let modseq = self.dav_next_modseq(c.account).await?;
                self.exec(
                    &format!(
                        "INSERT INTO dav_collections ({COLLECTION_COLS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    ),
                    &[
                        &c.id.0,
                        &c.account.0,
                        &c.kind.as_str(),
                        &c.name,
                        &c.display_name,
                        &c.color,
                        &c.order,
                        &c.description,
                        &c.components.join(","),
                        &i64_of(modseq),
                        &c.created_ms,
                        &c.timezone,
                    ],
                )
                .await
                .map_err(|e| match e {
                    WriteError::Pg(pe) if is_constraint(&pe) => {
                        StoreError::Conflict(format!("dav collection {}", c.name)).into()
                    }
                    other => other,
                })?;
                self.dav_journal(
                    c.account,
                    modseq,
                    ChangeKind::DavCollectionCreated,
                    c.id,
                    None,
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::UpdateDavCollection {
                account,
                collection,
                props,
            } => {
                let modseq = self.dav_touch(*account, *collection).await?;
                if let Some(v) = &props.display_name {
                    self.exec(
                        "UPDATE dav_collections SET display_name = $2 WHERE id = $1",
                        &[&collection.0, v],
                    )
                    .await?;
                }
                if let Some(v) = &props.color {
                    self.exec(
                        "UPDATE dav_collections SET color = $2 WHERE id = $1",
                        &[&collection.0, v],
                    )
                    .await?;
                }
                if let Some(v) = &props.order {
                    self.exec(
                        "UPDATE dav_collections SET sort_order = $2 WHERE id = $1",
                        &[&collection.0, v],
                    )
                    .await?;
                }
                if let Some(v) = &props.description {
                    self.exec(
                        "UPDATE dav_collections SET description = $2 WHERE id = $1",
                        &[&collection.0, v],
                    )
                    .await?;
                }
                if let Some(v) = &props.timezone {
                    self.exec(
                        "UPDATE dav_collections SET timezone = $2 WHERE id = $1",
                        &[&collection.0, v],
                    )
                    .await?;
                }
                self.dav_journal(
                    *account,
                    modseq,
                    ChangeKind::DavCollectionChanged,
                    *collection,
                    None,
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::DeleteDavCollection {
                account,
                collection,
            } => {
                let modseq = self.dav_touch(*account, *collection).await?;
                self.exec(
                    "DELETE FROM dav_shares WHERE collection_id = $1",
                    &[&collection.0],
                )
                .await?;
                self.exec(
                    "DELETE FROM dav_resources WHERE collection_id = $1",
                    &[&collection.0],
                )
                .await?;
                self.exec(
                    "DELETE FROM dav_collections WHERE id = $1",
                    &[&collection.0],
                )
                .await?;
                self.dav_journal(
                    *account,
                    modseq,
                    ChangeKind::DavCollectionDeleted,
                    *collection,
                    None,
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::PutDavResource {
                resource: r,
                expect,
            } => {
                let existing = self
                    .opt(
                        "SELECT id, etag, deleted FROM dav_resources WHERE collection_id = $1 AND name = $2",
                        &[&r.collection.0, &r.name],
                    )
                    .await?;
                let existing: Option<(i64, String, bool)> = match existing {
                    Some(row) => Some((col(&row, 0)?, col(&row, 1)?, col(&row, 2)?)),
                    None => None,
                };
                let live = existing.as_ref().filter(|e| !e.2).map(|e| e.1.as_str());
                let modseq = self.dav_touch(r.account, r.collection).await?;
                if !expect.holds(live) {
                    return Err(StoreError::Modified(0).into());
                }
                if self
                    .opt(
                        "SELECT 1 FROM dav_resources WHERE collection_id = $1 AND uid = $2 AND name <> $3 AND NOT deleted LIMIT 1",
                        &[&r.collection.0, &r.uid, &r.name],
                    )
                    .await?
                    .is_some()
                {
                    return Err(StoreError::Conflict(format!("uid {}", r.uid)).into());
                }
                let created = live.is_none();
                let id = existing.as_ref().map(|e| e.0).unwrap_or(r.id.0);
                let size = i64::try_from(r.data.len()).unwrap_or(i64::MAX);
                self.exec(
                    "INSERT INTO dav_resources (id, collection_id, account_id, name, etag, data, size,
                       component, uid, start_ms, end_ms, modseq, modified_ms, deleted)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, FALSE)
                     ON CONFLICT (collection_id, name) DO UPDATE SET etag = excluded.etag,
                       data = excluded.data, size = excluded.size, component = excluded.component,
                       uid = excluded.uid, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
                       modseq = excluded.modseq, modified_ms = excluded.modified_ms, deleted = FALSE",
                    &[
                        &id,
                        &r.collection.0,
                        &r.account.0,
                        &r.name,
                        &r.etag,
                        &r.data,
                        &size,
                        &r.component,
                        &r.uid,
                        &r.start_ms,
                        &r.end_ms,
                        &i64_of(modseq),
                        &r.modified_ms,
                    ],
                )
                .await?;
                self.dav_journal(
                    r.account,
                    modseq,
                    ChangeKind::DavResourceChanged,
                    r.collection,
                    Some(DavResourceId(id)),
                )
                .await?;
                Ok(OpResult::DavWritten { created, modseq })
            }
            Op::DeleteDavResource {
                account,
                collection,
                name,
                expect,
            } => {
                let modseq = self.dav_touch(*account, *collection).await?;
                let Some(row) = self
                    .opt(
                        "SELECT id, etag FROM dav_resources WHERE collection_id = $1 AND name = $2 AND NOT deleted",
                        &[&collection.0, name],
                    )
                    .await?
                else {
                    return Err(StoreError::NotFound(format!("dav resource {name}")).into());
                };
                let id: i64 = col(&row, 0)?;
                let etag: String = col(&row, 1)?;
                if !expect.holds(Some(&etag)) {
                    return Err(StoreError::Modified(0).into());
                }
                self.exec(
                    "UPDATE dav_resources SET deleted = TRUE, data = '', size = 0, modseq = $2,
                       modified_ms = $3 WHERE id = $1",
                    &[&id, &i64_of(modseq), &now_ms()],
                )
                .await?;
                self.dav_journal(
                    *account,
                    modseq,
                    ChangeKind::DavResourceRemoved,
                    *collection,
                    Some(DavResourceId(id)),
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::SetDavShare {
                account,
                collection,
                grantee,
                rights,
            } => {
                if self
                    .opt(
                        "SELECT 1 FROM dav_collections WHERE id = $1 AND account_id = $2",
                        &[&collection.0, &account.0],
                    )
                    .await?
                    .is_none()
                {
                    return Err(StoreError::NotFound(format!("dav collection {collection}")).into());
                }
                if self
                    .opt("SELECT 1 FROM principals WHERE id = $1", &[&grantee.0])
                    .await?
                    .is_none()
                {
                    return Err(StoreError::NotFound(format!("principal {grantee}")).into());
                }
                if rights.is_empty() {
                    self.exec(
                        "DELETE FROM dav_shares WHERE collection_id = $1 AND grantee_id = $2",
                        &[&collection.0, &grantee.0],
                    )
                    .await?;
                } else {
                    self.exec(
                        "INSERT INTO dav_shares (collection_id, account_id, grantee_id, rights)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (collection_id, grantee_id) DO UPDATE SET rights = EXCLUDED.rights",
                        &[&collection.0, &account.0, &grantee.0, rights],
                    )
                    .await?;
                }
                Ok(OpResult::Done)
            }
            _ => Err(StoreError::Invalid("not a DAV operation".into()).into()),
        }
    }
}

pub(crate) fn collections_sql() -> String {
    format!("SELECT {COLLECTION_COLS} FROM dav_collections WHERE account_id = $1 ORDER BY name")
}

pub(crate) fn resources_sql(with_data: bool) -> String {
    let data = if with_data { ", data" } else { "" };
    format!(
        "SELECT {RESOURCE_COLS}{data} FROM dav_resources
         WHERE collection_id = $1 AND account_id = $2 AND NOT deleted
           AND ($3::text IS NULL OR component = $3)
           AND ($4::bigint IS NULL OR end_ms IS NULL OR end_ms > $4)
           AND ($5::bigint IS NULL OR start_ms IS NULL OR start_ms < $5)
         ORDER BY name"
    )
}

pub(crate) fn resources_named_sql() -> String {
    format!(
        "SELECT {RESOURCE_COLS}, data FROM dav_resources
         WHERE collection_id = $1 AND account_id = $2 AND name = ANY($3) AND NOT deleted
         ORDER BY name"
    )
}

pub(crate) const CHANGES_SQL: &str = "SELECT name, etag, deleted, modseq FROM dav_resources
     WHERE collection_id = $1 AND account_id = $2 AND modseq > $3
     ORDER BY modseq LIMIT $4";

pub(crate) fn resources(rows: &[Row], with_data: bool) -> Result<Vec<DavResource>> {
    rows.iter().map(|r| resource_row(r, with_data)).collect()
}

pub(crate) fn changes(rows: &[Row]) -> Result<Vec<DavChange>> {
    rows.iter()
        .map(|r| {
            let deleted: bool = col(r, 2)?;
            Ok(DavChange {
                name: col(r, 0)?,
                etag: if deleted { None } else { Some(col(r, 1)?) },
                modseq: u64_of(col(r, 3)?),
            })
        })
        .collect()
}

pub(crate) const SHARES_SQL: &str = "SELECT grantee_id, rights FROM dav_shares
     WHERE collection_id = $1 AND account_id = $2 ORDER BY grantee_id";

/// Collections shared with `$1`: the collection's columns, then the rights (index 12).
pub(crate) fn shared_with_sql() -> String {
    let cols: Vec<String> = COLLECTION_COLS
        .split(", ")
        .map(|col| format!("d.{}", col.trim()))
        .collect();
    format!(
        "SELECT {}, s.rights FROM dav_shares s JOIN dav_collections d ON d.id = s.collection_id
         WHERE s.grantee_id = $1 AND d.account_id <> $1 ORDER BY d.account_id, d.name",
        cols.join(", ")
    )
}
