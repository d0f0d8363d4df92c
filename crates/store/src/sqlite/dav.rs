//! CalDAV/CardDAV collections and resources in the embedded store: the DAV ops applied
//! inside the writer's transaction, and the reads. Every resource change takes the
//! account's next journal number; the collection's `modseq` follows it (CTag, sync token).

use rusqlite::{Connection, OptionalExtension, params};

use super::db_err;
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::ops::{Op, OpResult};

const COLLECTION_COLS: &str = "id, account_id, kind, name, display_name, color, sort_order, \
     description, components, modseq, created_ms, timezone";
const RESOURCE_COLS: &str = "id, account_id, collection_id, name, etag, size, component, uid, \
     start_ms, end_ms, modseq, modified_ms";

fn collection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DavCollection> {
    let kind: String = r.get(2)?;
    let components: String = r.get(8)?;
    Ok(DavCollection {
        id: DavCollectionId(r.get(0)?),
        account: PrincipalId(r.get(1)?),
        kind: DavKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("dav collection kind {kind:?}").into(),
            )
        })?,
        name: r.get(3)?,
        display_name: r.get(4)?,
        color: r.get(5)?,
        order: r.get(6)?,
        description: r.get(7)?,
        components: split_components(&components),
        modseq: r.get::<_, i64>(9)?.max(0) as u64,
        created_ms: r.get(10)?,
        timezone: r.get(11)?,
    })
}

/// Component names are stored comma-separated (they are iCalendar names: no commas).
pub(crate) fn split_components(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// Resource rows of `RESOURCE_COLS`, plus `data` at index 12 when present.
fn resource_row(r: &rusqlite::Row<'_>, with_data: bool) -> rusqlite::Result<DavResource> {
    Ok(DavResource {
        id: DavResourceId(r.get(0)?),
        account: PrincipalId(r.get(1)?),
        collection: DavCollectionId(r.get(2)?),
        name: r.get(3)?,
        etag: r.get(4)?,
        size: r.get::<_, i64>(5)?.max(0) as u64,
        component: r.get(6)?,
        uid: r.get(7)?,
        start_ms: r.get(8)?,
        end_ms: r.get(9)?,
        modseq: r.get::<_, i64>(10)?.max(0) as u64,
        modified_ms: r.get(11)?,
        data: if with_data { r.get(12)? } else { String::new() },
    })
}

fn next_modseq(c: &Connection, account: PrincipalId) -> Result<u64> {
    c.query_row(
        "UPDATE principals SET highest_modseq = highest_modseq + 1 WHERE id = ?1 RETURNING highest_modseq",
        [account.0],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .map(|v| v as u64)
    .ok_or_else(|| StoreError::NotFound(format!("principal {account}")))
}

fn journal(
    c: &Connection,
    notices: &mut Vec<ChangeNotice>,
    account: PrincipalId,
    modseq: u64,
    kind: ChangeKind,
    collection: DavCollectionId,
    resource: Option<DavResourceId>,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO journal (account_id, modseq, kind, mailbox_id, message_id, uid, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
    )?
    .execute(params![
        account.0,
        modseq as i64,
        kind.as_str(),
        collection.0,
        resource.map(|r| r.0),
        crate::now_ms()
    ])?;
    notices.push(ChangeNotice { account, modseq });
    Ok(())
}

/// Takes the next journal number for a change of `collection` (which must be the
/// account's) and moves the collection's `modseq` to it.
fn touch(c: &Connection, account: PrincipalId, collection: DavCollectionId) -> Result<u64> {
    let found = c
        .prepare_cached("SELECT 1 FROM dav_collections WHERE id = ?1 AND account_id = ?2")?
        .query_row(params![collection.0, account.0], |_| Ok(()))
        .optional()?;
    if found.is_none() {
        return Err(StoreError::NotFound(format!("dav collection {collection}")));
    }
    let modseq = next_modseq(c, account)?;
    c.prepare_cached("UPDATE dav_collections SET modseq = ?2 WHERE id = ?1")?
        .execute(params![collection.0, modseq as i64])?;
    Ok(modseq)
}

pub(super) fn apply(c: &Connection, op: &Op, notices: &mut Vec<ChangeNotice>) -> Result<OpResult> {
    match op {
        Op::CreateDavCollection(col) => {
            let modseq = next_modseq(c, col.account)?;
            c.execute(
                &format!(
                    "INSERT INTO dav_collections ({COLLECTION_COLS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    col.id.0,
                    col.account.0,
                    col.kind.as_str(),
                    col.name,
                    col.display_name,
                    col.color,
                    col.order,
                    col.description,
                    col.components.join(","),
                    modseq as i64,
                    col.created_ms,
                    col.timezone
                ],
            )
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("dav collection {}", col.name))
                }
                other => other,
            })?;
            journal(
                c,
                notices,
                col.account,
                modseq,
                ChangeKind::DavCollectionCreated,
                col.id,
                None,
            )?;
            Ok(OpResult::Done)
        }
        Op::UpdateDavCollection {
            account,
            collection,
            props,
        } => {
            let modseq = touch(c, *account, *collection)?;
            if let Some(v) = &props.display_name {
                c.execute(
                    "UPDATE dav_collections SET display_name = ?2 WHERE id = ?1",
                    params![collection.0, v],
                )?;
            }
            if let Some(v) = &props.color {
                c.execute(
                    "UPDATE dav_collections SET color = ?2 WHERE id = ?1",
                    params![collection.0, v],
                )?;
            }
            if let Some(v) = &props.order {
                c.execute(
                    "UPDATE dav_collections SET sort_order = ?2 WHERE id = ?1",
                    params![collection.0, v],
                )?;
            }
            if let Some(v) = &props.description {
                c.execute(
                    "UPDATE dav_collections SET description = ?2 WHERE id = ?1",
                    params![collection.0, v],
                )?;
            }
            if let Some(v) = &props.timezone {
                c.execute(
                    "UPDATE dav_collections SET timezone = ?2 WHERE id = ?1",
                    params![collection.0, v],
                )?;
            }
            journal(
                c,
                notices,
                *account,
                modseq,
                ChangeKind::DavCollectionChanged,
                *collection,
                None,
            )?;
            Ok(OpResult::Done)
        }
        Op::DeleteDavCollection {
            account,
            collection,
        } => {
            let modseq = touch(c, *account, *collection)?;
            c.execute(
                "DELETE FROM dav_shares WHERE collection_id = ?1",
                [collection.0],
            )?;
            c.execute(
                "DELETE FROM dav_resources WHERE collection_id = ?1",
                [collection.0],
            )?;
            c.execute("DELETE FROM dav_collections WHERE id = ?1", [collection.0])?;
            journal(
                c,
                notices,
                *account,
                modseq,
                ChangeKind::DavCollectionDeleted,
                *collection,
                None,
            )?;
            Ok(OpResult::Done)
        }
        Op::PutDavResource {
            resource: r,
            expect,
        } => {
            let existing: Option<(i64, String, bool)> = c
                .prepare_cached(
                    "SELECT id, etag, deleted FROM dav_resources WHERE collection_id = ?1 AND name = ?2",
                )?
                .query_row(params![r.collection.0, r.name], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            let live = existing.as_ref().filter(|e| !e.2).map(|e| e.1.as_str());
            // The collection must be the account's before anything about it is told.
            let modseq = touch(c, r.account, r.collection)?;
            if !expect.holds(live) {
                return Err(StoreError::Modified(0));
            }
            let clash = c
                .prepare_cached(
                    "SELECT 1 FROM dav_resources WHERE collection_id = ?1 AND uid = ?2 AND name <> ?3 AND deleted = 0 LIMIT 1",
                )?
                .query_row(params![r.collection.0, r.uid, r.name], |_| Ok(()))
                .optional()?;
            if clash.is_some() {
                return Err(StoreError::Conflict(format!("uid {}", r.uid)));
            }
            let created = live.is_none();
            let id = match &existing {
                Some((id, _, _)) => *id,
                None => r.id.0,
            };
            c.prepare_cached(
                "INSERT INTO dav_resources (id, collection_id, account_id, name, etag, data, size,
                   component, uid, start_ms, end_ms, modseq, modified_ms, deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0)
                 ON CONFLICT (collection_id, name) DO UPDATE SET etag = excluded.etag,
                   data = excluded.data, size = excluded.size, component = excluded.component,
                   uid = excluded.uid, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
                   modseq = excluded.modseq, modified_ms = excluded.modified_ms, deleted = 0",
            )?
            .execute(params![
                id,
                r.collection.0,
                r.account.0,
                r.name,
                r.etag,
                r.data,
                r.data.len() as i64,
                r.component,
                r.uid,
                r.start_ms,
                r.end_ms,
                modseq as i64,
                r.modified_ms
            ])?;
            journal(
                c,
                notices,
                r.account,
                modseq,
                ChangeKind::DavResourceChanged,
                r.collection,
                Some(DavResourceId(id)),
            )?;
            Ok(OpResult::DavWritten { created, modseq })
        }
        Op::DeleteDavResource {
            account,
            collection,
            name,
            expect,
        } => {
            let modseq = touch(c, *account, *collection)?;
            let existing: Option<(i64, String)> = c
                .prepare_cached(
                    "SELECT id, etag FROM dav_resources WHERE collection_id = ?1 AND name = ?2 AND deleted = 0",
                )?
                .query_row(params![collection.0, name], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let Some((id, etag)) = existing else {
                return Err(StoreError::NotFound(format!("dav resource {name}")));
            };
            if !expect.holds(Some(&etag)) {
                return Err(StoreError::Modified(0));
            }
            c.prepare_cached(
                "UPDATE dav_resources SET deleted = 1, data = '', size = 0, modseq = ?2,
                   modified_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![id, modseq as i64, crate::now_ms()])?;
            journal(
                c,
                notices,
                *account,
                modseq,
                ChangeKind::DavResourceRemoved,
                *collection,
                Some(DavResourceId(id)),
            )?;
            Ok(OpResult::Done)
        }
        Op::SetDavShare {
            account,
            collection,
            grantee,
            rights,
        } => {
            let owned = c
                .prepare_cached("SELECT 1 FROM dav_collections WHERE id = ?1 AND account_id = ?2")?
                .query_row(params![collection.0, account.0], |_| Ok(()))
                .optional()?;
            if owned.is_none() {
                return Err(StoreError::NotFound(format!("dav collection {collection}")));
            }
            let grantee_there = c
                .prepare_cached("SELECT 1 FROM principals WHERE id = ?1")?
                .query_row([grantee.0], |_| Ok(()))
                .optional()?;
            if grantee_there.is_none() {
                return Err(StoreError::NotFound(format!("principal {grantee}")));
            }
            if rights.is_empty() {
                c.execute(
                    "DELETE FROM dav_shares WHERE collection_id = ?1 AND grantee_id = ?2",
                    params![collection.0, grantee.0],
                )?;
            } else {
                c.execute(
                    "INSERT INTO dav_shares (collection_id, account_id, grantee_id, rights)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (collection_id, grantee_id) DO UPDATE SET rights = excluded.rights",
                    params![collection.0, account.0, grantee.0, rights],
                )?;
            }
            Ok(OpResult::Done)
        }
        _ => Err(StoreError::Invalid("not a DAV operation".into())),
    }
}

pub(super) fn collections(c: &Connection, account: PrincipalId) -> Result<Vec<DavCollection>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLLECTION_COLS} FROM dav_collections WHERE account_id = ?1 ORDER BY name"
    ))?;
    let rows = st.query_map([account.0], collection_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Time-range index: a resource whose indexed span (`end_ms - start_ms`) is at most this
/// long is found through `dav_resources_span` (collection, start, end): a range query
/// reads the index entries starting between its start minus this span and its end, and
/// only the rows that overlap. Longer,
/// open-ended (recurring series past the expansion caps) and undated ones are few and
/// read through `dav_resources_long`, checked one by one. 31 days: meetings, all-day and
/// multi-week events are short; a finite series spanning months is long.
pub const SHORT_SPAN_MS: i64 = 31 * 24 * 3600 * 1000;

/// The partial indexes of [`SHORT_SPAN_MS`]. They hold nothing the table does not, so
/// they are made (if missing) at every open rather than by a schema version; their
/// WHERE clauses are repeated word for word in [`resources`] (SQLite uses a partial
/// index only for a query whose WHERE has its terms).
pub(super) fn ensure_indexes(c: &Connection) -> Result<()> {
    c.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS dav_resources_span ON dav_resources(collection_id, start_ms, end_ms)
           WHERE deleted = 0 AND end_ms - start_ms <= {SHORT_SPAN_MS};
         CREATE INDEX IF NOT EXISTS dav_resources_long ON dav_resources(collection_id)
           WHERE deleted = 0 AND (start_ms IS NULL OR end_ms IS NULL OR end_ms - start_ms > {SHORT_SPAN_MS});"
    ))?;
    Ok(())
}

pub(super) fn resources(
    c: &Connection,
    account: PrincipalId,
    collection: DavCollectionId,
    filter: &DavFilter,
) -> Result<Vec<DavResource>> {
    let data = if filter.with_data { ", data" } else { "" };
    if let Some(start) = filter.start_ms {
        // A range with a start: short spans by the index on their start, the rest one
        // by one (see SHORT_SPAN_MS; named, since without statistics the planner would
        // rather walk the whole collection in name order). The end is exclusive:
        // start_ms <= end - 1.
        let last = filter.end_ms.map_or(i64::MAX, |e| e.saturating_sub(1));
        let mut st = c.prepare_cached(&format!(
            "SELECT {RESOURCE_COLS}{data} FROM dav_resources INDEXED BY dav_resources_span
             WHERE collection_id = ?1 AND account_id = ?2 AND deleted = 0
               AND end_ms - start_ms <= {SHORT_SPAN_MS}
               AND start_ms >= ?4 AND start_ms <= ?6 AND end_ms > ?5
               AND (?3 IS NULL OR component = ?3)
             UNION ALL
             SELECT {RESOURCE_COLS}{data} FROM dav_resources INDEXED BY dav_resources_long
             WHERE collection_id = ?1 AND account_id = ?2 AND deleted = 0
               AND (start_ms IS NULL OR end_ms IS NULL OR end_ms - start_ms > {SHORT_SPAN_MS})
               AND (end_ms IS NULL OR end_ms > ?5) AND (start_ms IS NULL OR start_ms <= ?6)
               AND (?3 IS NULL OR component = ?3)
             ORDER BY name"
        ))?;
        let rows = st.query_map(
            params![
                collection.0,
                account.0,
                filter.component,
                start.saturating_sub(SHORT_SPAN_MS),
                start,
                last
            ],
            |r| resource_row(r, filter.with_data),
        )?;
        return Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    }
    let mut st = c.prepare_cached(&format!(
        "SELECT {RESOURCE_COLS}{data} FROM dav_resources
         WHERE collection_id = ?1 AND account_id = ?2 AND deleted = 0
           AND (?3 IS NULL OR component = ?3)
           AND (?4 IS NULL OR end_ms IS NULL OR end_ms > ?4)
           AND (?5 IS NULL OR start_ms IS NULL OR start_ms < ?5)
         ORDER BY name"
    ))?;
    let rows = st.query_map(
        params![
            collection.0,
            account.0,
            filter.component,
            filter.start_ms,
            filter.end_ms
        ],
        |r| resource_row(r, filter.with_data),
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn resources_named(
    c: &Connection,
    account: PrincipalId,
    collection: DavCollectionId,
    names: &[String],
) -> Result<Vec<DavResource>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {RESOURCE_COLS}, data FROM dav_resources
         WHERE collection_id = ?1 AND account_id = ?2 AND name = ?3 AND deleted = 0"
    ))?;
    let mut out = Vec::new();
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    for n in &names {
        if let Some(r) = st
            .query_row(params![collection.0, account.0, n], |r| {
                resource_row(r, true)
            })
            .optional()?
        {
            out.push(r);
        }
    }
    Ok(out)
}

pub(super) fn changes(
    c: &Connection,
    account: PrincipalId,
    collection: DavCollectionId,
    since: u64,
    limit: usize,
) -> Result<Vec<DavChange>> {
    let mut st = c.prepare_cached(
        "SELECT name, etag, deleted, modseq FROM dav_resources
         WHERE collection_id = ?1 AND account_id = ?2 AND modseq > ?3
         ORDER BY modseq LIMIT ?4",
    )?;
    let rows = st.query_map(
        params![
            collection.0,
            account.0,
            since.min(i64::MAX as u64) as i64,
            limit.min(i64::MAX as usize) as i64
        ],
        |r| {
            let deleted: bool = r.get(2)?;
            Ok(DavChange {
                name: r.get(0)?,
                etag: if deleted { None } else { Some(r.get(1)?) },
                modseq: r.get::<_, i64>(3)?.max(0) as u64,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn shares(
    c: &Connection,
    account: PrincipalId,
    collection: DavCollectionId,
) -> Result<Vec<(PrincipalId, String)>> {
    let mut st = c.prepare_cached(
        "SELECT grantee_id, rights FROM dav_shares
         WHERE collection_id = ?1 AND account_id = ?2 ORDER BY grantee_id",
    )?;
    let rows = st.query_map(params![collection.0, account.0], |r| {
        Ok((PrincipalId(r.get(0)?), r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn shared_with(
    c: &Connection,
    grantee: PrincipalId,
) -> Result<Vec<(DavCollection, String)>> {
    let cols: Vec<String> = COLLECTION_COLS
        .split(", ")
        .map(|col| format!("d.{}", col.trim()))
        .collect();
    let mut st = c.prepare_cached(&format!(
        "SELECT {}, s.rights FROM dav_shares s JOIN dav_collections d ON d.id = s.collection_id
         WHERE s.grantee_id = ?1 AND d.account_id <> ?1 ORDER BY d.account_id, d.name",
        cols.join(", ")
    ))?;
    let rows = st.query_map([grantee.0], |r| Ok((collection_row(r)?, r.get(12)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
