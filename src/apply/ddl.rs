//! Applying one DDL event (create, drop, rename, dropDatabase, index
//! builds and drops, collMod, ...) to the destination, and keeping the
//! UUID mapping in step. Each arm is checked against the destination's
//! current state, so replaying an event after a crash is harmless.

use std::sync::Arc;

use bson::{doc, Binary};

use crate::catalog::{self, NsKind};
use crate::checkpoint::NamespaceDoc;
use crate::context::Ctx;
use crate::error::{Error, MongoContext, Result, Role};
use crate::events::DdlEvent;
use crate::progress::EventSource;
use crate::scope::{Namespace, Scope, METADATA_DB};

use super::mapping::Mapping;

fn in_scope(scope: &Scope, ns: &Namespace) -> bool {
    scope.contains(ns) && ns.db != METADATA_DB
}

/// Applies one DDL event. Each arm is idempotent against the destination's
/// current state, because after a crash the event may be replayed.
pub(super) async fn apply_ddl(ctx: &Arc<Ctx>, mapping: &mut Mapping, ddl: DdlEvent) -> Result<()> {
    tracing::debug!(?ddl, "applying DDL");
    match ddl {
        DdlEvent::Create {
            ns,
            uuid,
            description,
        } => {
            if !in_scope(&ctx.scope, &ns) {
                return Ok(());
            }
            let mut options = description;
            options.remove("idIndex");
            // The temporary collection a pre-6.0 convertToCapped or
            // cross-database rename copies into is created `temp: true`,
            // which a user's `create` may not ask for; its rename follows.
            options.remove("temp");
            match uuid {
                None => {
                    // A view: views carry no UUID and no data.
                    if options.contains_key("viewOn") {
                        record(ctx, &ns, NsKind::View, None, false).await?;
                        catalog::create_namespace(&ctx.dest, &ns, &options).await?;
                    }
                }
                Some(uuid) => {
                    if mapping.get(&uuid).is_some() {
                        return Ok(()); // the copy already saw it
                    }
                    // A time-series collection comes as the creation of its
                    // buckets (the oplog's form; a change stream names the
                    // collection itself).
                    let timeseries = options.contains_key("timeseries");
                    let ns = match ns.timeseries_of_buckets() {
                        Some(_) => ns,
                        None if timeseries => ns.buckets(),
                        None => ns,
                    };
                    if mapping.holder_of(&ns).is_some() {
                        return Ok(()); // an older incarnation; a later one was copied
                    }
                    if timeseries {
                        create_timeseries(ctx, mapping, &ns, &uuid, &options).await?;
                        return Ok(());
                    }
                    let capped = options.get_bool("capped").unwrap_or(false);
                    record(ctx, &ns, NsKind::Collection, Some(&uuid), capped).await?;
                    catalog::create_namespace(&ctx.dest, &ns, &options).await?;
                    mapping.insert(&uuid, ns);
                }
            }
        }
        DdlEvent::Drop { ns, uuid } => match uuid {
            Some(uuid) => {
                if let Some(dest_ns) = mapping.remove(&uuid.bytes) {
                    forget(ctx, &dest_ns).await?;
                }
            }
            None => {
                if in_scope(&ctx.scope, &ns) && mapping.holder_of(&ns).is_none() {
                    forget(ctx, &ns).await?;
                }
            }
        },
        DdlEvent::Rename { ns: _, to, uuid } => {
            let Some(uuid) = uuid else { return Ok(()) };
            let target_in_scope = in_scope(&ctx.scope, &to);
            match mapping.get(&uuid).cloned() {
                Some(from) if from == to => {}
                Some(from) => {
                    if target_in_scope {
                        if let Some(holder) = mapping.holder_of(&to) {
                            mapping.remove(&holder);
                        }
                        rename_on_destination(ctx, &from, &to).await?;
                        let old = ctx
                            .store
                            .namespaces()
                            .find_one(doc! { "_id": from.to_string() })
                            .await
                            .ctx(Role::Destination, "read a namespace")?;
                        let mut rec = old.unwrap_or(NamespaceDoc {
                            ns: String::new(),
                            kind: NsKind::Collection,
                            uuid: Some(uuid.clone()),
                            capped: false,
                            estimated_docs: 0,
                            estimated_bytes: 0,
                            copied: true,
                        });
                        rec.ns = to.to_string();
                        ctx.store.put_namespace(&rec).await?;
                        ctx.store.remove_namespace(&from.to_string()).await?;
                        mapping.insert(&uuid, to);
                    } else {
                        mapping.remove(&uuid.bytes);
                        forget(ctx, &from).await?;
                    }
                }
                None if target_in_scope => {
                    // Renamed into scope from outside it: copy it now, if
                    // the source still holds this very collection there.
                    let current = catalog::find_namespace(&ctx.src, &to).await?;
                    if let Some(src_ns) = current.filter(|c| c.uuid.as_ref() == Some(&uuid)) {
                        if let Some(holder) = mapping.holder_of(&to) {
                            mapping.remove(&holder);
                            catalog::drop_namespace(&ctx.dest, &to).await?;
                        }
                        record(
                            ctx,
                            &to,
                            NsKind::Collection,
                            Some(&uuid),
                            src_ns.is_capped(),
                        )
                        .await?;
                        catalog::create_namespace(&ctx.dest, &to, &src_ns.options).await?;
                        crate::copy::copy_whole(ctx, &to, Some(&uuid)).await?;
                        let specs = catalog::list_indexes(&ctx.src, &to).await?;
                        catalog::create_indexes(&ctx.dest, &to, &specs).await?;
                        mapping.insert(&uuid, to);
                    }
                }
                None => {}
            }
        }
        DdlEvent::DropDatabase { db } => {
            if !ctx.scope.may_contain_db(&db) {
                return Ok(());
            }
            mapping.remove_db(&db);
            let dest_db = ctx.dest.client.database(&db);
            let dest_names = dest_db
                .list_collection_names()
                .await
                .ctx(Role::Destination, "list collections")?;
            for name in &dest_names {
                let ns = Namespace::new(&db, name);
                if in_scope(&ctx.scope, &ns) {
                    forget(ctx, &ns).await?;
                }
            }
            // What is left may be only the server's own bookkeeping (the
            // `system.views` of dropped views): then the database goes too,
            // as it went on the source.
            let left = dest_db
                .list_collection_names()
                .await
                .ctx(Role::Destination, "list collections")?;
            if left.iter().all(|n| Scope::is_system_coll(n)) {
                dest_db
                    .drop()
                    .await
                    .ctx(Role::Destination, &format!("drop database {db}"))?;
            }
        }
        DdlEvent::CreateIndexes {
            ns: _,
            uuid,
            indexes,
        } => {
            if let Some(dest_ns) = uuid.as_ref().and_then(|u| mapping.get(u)) {
                catalog::create_indexes(&ctx.dest, dest_ns, &indexes).await?;
            }
        }
        DdlEvent::DropIndexes {
            ns: _,
            uuid,
            indexes,
        } => {
            if let Some(dest_ns) = uuid.as_ref().and_then(|u| mapping.get(u)) {
                for ix in indexes {
                    let Ok(name) = ix.get_str("name") else {
                        continue;
                    };
                    let res = ctx
                        .dest
                        .client
                        .database(&dest_ns.db)
                        .run_command(doc! { "dropIndexes": &dest_ns.coll, "index": name })
                        .await;
                    match res {
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                crate::driver_error::server_code(&e),
                                Some(crate::driver_error::INDEX_NOT_FOUND)
                                    | Some(crate::driver_error::NAMESPACE_NOT_FOUND)
                            ) => {}
                        Err(e) => {
                            return Err(Error::mongo(
                                Role::Destination,
                                format!("drop index {name} on {dest_ns}"),
                                e,
                            ))
                        }
                    }
                }
            }
        }
        DdlEvent::Modify {
            ns,
            uuid,
            description,
        } => {
            let target = match &uuid {
                Some(u) => mapping.get(u).cloned(),
                None => in_scope(&ctx.scope, &ns).then_some(ns.clone()),
            };
            if let Some(dest_ns) = target {
                // A time-series collection is modified as a whole: the
                // server changes its buckets and its view together.
                let timeseries = dest_ns.timeseries_of_buckets();
                let description = match &timeseries {
                    Some(ts) if description.contains_key("timeseries") => {
                        match catalog::find_namespace(&ctx.dest, ts).await? {
                            Some(current) => {
                                catalog::without_passed_granularity(&description, &current.options)
                            }
                            None => description,
                        }
                    }
                    _ => description,
                };
                // An index is named as the oplog names it, on the buckets
                // (a bucket-level key pattern), where the collection would
                // translate it again.
                let dest_ns = match timeseries {
                    Some(ts) if !description.contains_key("index") => ts,
                    _ => dest_ns,
                };
                let cmd = catalog::sync_coll_mod(&dest_ns.coll, &description);
                match ctx.dest.client.database(&dest_ns.db).run_command(cmd).await {
                    Ok(_) => {}
                    Err(e)
                        if crate::driver_error::server_code(&e)
                            == Some(crate::driver_error::NAMESPACE_NOT_FOUND) => {}
                    Err(e) => {
                        return Err(Error::mongo(
                            Role::Destination,
                            format!("modify {dest_ns}"),
                            e,
                        ))
                    }
                }
            }
        }
        DdlEvent::Other { operation, ns } => {
            if let Some(ns) = ns.filter(|n| in_scope(&ctx.scope, n)) {
                tracing::info!(%ns, operation, "event has nothing to replay");
                if operation.contains("hard") || operation.contains("ShardKey") {
                    ctx.tracker.warn(format!(
                        "The source ran {operation} on {ns} during sync; the destination's sharding is not changed to match."
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Drops a namespace on the destination and from the migration's records;
/// a time-series collection goes with its buckets, whichever is named.
async fn forget(ctx: &Ctx, ns: &Namespace) -> Result<()> {
    catalog::drop_namespace(&ctx.dest, ns).await?;
    ctx.store.remove_namespace(&ns.to_string()).await?;
    if let Some(ts) = ns.timeseries_of_buckets() {
        ctx.store.remove_namespace(&ts.to_string()).await?;
    }
    Ok(())
}

/// A time-series collection created on the source during sync: made on the
/// destination from its buckets' options (TTL held off until commit), and
/// its buckets followed from now on like any collection's documents.
async fn create_timeseries(
    ctx: &Ctx,
    mapping: &mut Mapping,
    buckets: &Namespace,
    uuid: &Binary,
    options: &bson::Document,
) -> Result<()> {
    let Some(ts) = buckets.timeseries_of_buckets() else {
        return Ok(());
    };
    if ctx.event_source == EventSource::ChangeStream {
        // Change streams do not report the writes to buckets.
        ctx.tracker.warn(format!(
            "The time-series collection {ts} was created on the source during sync, and change streams do not report its measurements; to migrate it live, start the migration again with --fresh and --event-source auto (or oplog)."
        ));
        return Ok(());
    }
    record(ctx, &ts, NsKind::Timeseries, None, false).await?;
    record(ctx, buckets, NsKind::Collection, Some(uuid), false).await?;
    catalog::create_namespace(&ctx.dest, &ts, &catalog::timeseries_options(options)).await?;
    mapping.insert(uuid, buckets.clone());
    Ok(())
}

async fn record(
    ctx: &Ctx,
    ns: &Namespace,
    kind: NsKind,
    uuid: Option<&Binary>,
    capped: bool,
) -> Result<()> {
    ctx.store
        .put_namespace(&NamespaceDoc {
            ns: ns.to_string(),
            kind,
            uuid: uuid.cloned(),
            capped,
            estimated_docs: 0,
            estimated_bytes: 0,
            copied: true,
        })
        .await
}

async fn rename_on_destination(ctx: &Ctx, from: &Namespace, to: &Namespace) -> Result<()> {
    let res = ctx
        .dest
        .client
        .database("admin")
        .run_command(doc! {
            "renameCollection": from.to_string(),
            "to": to.to_string(),
            "dropTarget": true,
        })
        .await;
    match res {
        Ok(_) => Ok(()),
        // Already renamed before a restart.
        Err(e)
            if crate::driver_error::server_code(&e)
                == Some(crate::driver_error::NAMESPACE_NOT_FOUND) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::mongo(
            Role::Destination,
            format!("rename {from} to {to}"),
            e,
        )),
    }
}
