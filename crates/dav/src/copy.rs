//! RFC 4918 §9.8–9.9 COPY and MOVE of a whole calendar, task list or address book to a
//! new name in the caller's own home of the same kind (Depth infinity; a COPY with
//! Depth 0 makes the collection with its properties and no members).
//!
//! The destination is made with `Core::dav_create_collection` (the reserved names of
//! shared collections and the GAL, the collection count cap) and filled with
//! `Core::dav_put` per member (validation, the ledger, the journal), without implicit
//! scheduling: a copied calendar sends no invitations. A MOVE then removes the source
//! with `Core::dav_delete_collection` (the owner's only: a shared collection or the GAL
//! can be copied from, never moved). `Overwrite: T` (the default) over an existing
//! destination removes it first (§9.8.4), `F` answers 412. If a member cannot be
//! written the new collection is removed again and the error is answered: a failed
//! COPY or MOVE leaves the source untouched (an overwritten destination stays removed).

use crate::{DavRequest, DavResponse, Home, Path, collection, core_error, parse_path, write_error};
use postern_core::dav::NewCollection;
use postern_core::dav::share::DavAccess;
use postern_core::store::{DavExpect, DavFilter, DavKind};
use postern_core::{Authenticated, Core, CoreError};

pub(crate) async fn copy_move_collection(
    core: &Core,
    who: &Authenticated,
    h: Home,
    scol: &str,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let is_move = req.method == "MOVE";
    let depth = req.depth.map(str::trim);
    let members = match depth {
        None => true,
        Some(d) if d.eq_ignore_ascii_case("infinity") => true,
        Some("0") if !is_move => false,
        Some(_) => {
            return Err(DavResponse::text(
                400,
                "Depth must be infinity (or 0 for a COPY)\n",
            ));
        }
    };
    let Some(dest) = req.destination.map(str::trim).filter(|d| !d.is_empty()) else {
        return Err(DavResponse::text(400, "Destination header required\n"));
    };
    let overwrite = match req.overwrite.map(str::trim) {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("T") => true,
        Some(v) if v.eq_ignore_ascii_case("F") => false,
        Some(_) => return Err(DavResponse::text(400, "Overwrite must be T or F\n")),
    };
    // An absolute URI is cut to its path (RFC 4918 §10.3).
    let dpath = match dest.find("://") {
        Some(i) => dest[i + 3..]
            .find('/')
            .map(|j| &dest[i + 3 + j..])
            .unwrap_or("/"),
        None => dest,
    };
    let Some(Path::Collection(dh, da, dname)) = parse_path(dpath) else {
        return Err(DavResponse::text(
            403,
            "the Destination must be a collection path in your home\n",
        ));
    };
    // Another account's path answers as one that does not exist (and is in the ledger).
    core.dav_check_owner(who, &da).await.map_err(core_error)?;
    if dh != h {
        return Err(DavResponse::text(
            403,
            "the Destination is in another kind of home\n",
        ));
    }
    if dname == scol {
        return Err(DavResponse::text(
            403,
            "source and destination are the same\n",
        ));
    }
    let src = collection(core, who, h, scol).await?;
    if src.kind == DavKind::Inbox {
        return Err(DavResponse::text(
            403,
            "the scheduling inbox cannot be copied or moved\n",
        ));
    }
    let access = core.dav_privileges(who, &src).await.map_err(core_error)?;
    if is_move && access != DavAccess::Owner {
        return Err(DavResponse::text(
            403,
            "only the owner may move a collection\n",
        ));
    }
    // The destination: absent, or (Overwrite: T) one of the caller's own, removed first.
    let existing = match collection(core, who, h, &dname).await {
        Ok(c) => Some(c),
        Err(r) if r.status == 404 => None,
        Err(r) => return Err(r),
    };
    if let Some(d) = &existing {
        if !overwrite {
            return Err(DavResponse::text(412, "the destination exists\n"));
        }
        if core.dav_privileges(who, d).await.map_err(core_error)? != DavAccess::Owner {
            return Err(DavResponse::text(
                403,
                "the destination is not yours to replace\n",
            ));
        }
        core.dav_delete_collection(who, d)
            .await
            .map_err(core_error)?;
    }
    let list = if members {
        core.dav_list(
            who,
            &src,
            DavFilter {
                with_data: true,
                ..Default::default()
            },
        )
        .await
        .map_err(core_error)?
    } else {
        Vec::new()
    };
    // The copy keeps the owner's name for a shared source (its display name in the
    // caller's home carries the owner's address).
    let new = NewCollection {
        display_name: Some(src.display_name.clone()),
        color: src.color.clone(),
        order: src.order,
        description: src.description.clone(),
        timezone: src.timezone.clone(),
        components: if src.kind.is_calendar() {
            src.components.clone()
        } else {
            Vec::new()
        },
    };
    let made = match core.dav_create_collection(who, &dname, src.kind, new).await {
        Ok(c) => c,
        Err(CoreError::Conflict(_)) => {
            return Err(DavResponse::text(403, "that name is reserved or taken\n"));
        }
        Err(e) => return Err(core_error(e)),
    };
    for r in &list {
        if let Err(e) = core
            .dav_put(who, &made, &r.name, r.data.as_bytes(), DavExpect::Absent)
            .await
        {
            // Leave no half-filled destination.
            let _ = core.dav_delete_collection(who, &made).await;
            return Err(write_error(&made, e));
        }
    }
    if is_move {
        core.dav_delete_collection(who, &src)
            .await
            .map_err(core_error)?;
    }
    let mut r = DavResponse::new(if existing.is_some() { 204 } else { 201 });
    r.headers.push(("cache-control", "no-cache".into()));
    Ok(r)
}
