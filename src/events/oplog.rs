//! Oplog entries (`local.oplog.rs` on MongoDB 4.4, 5.0 and 6.0 replica
//! sets) turned into the same `Change` values that change-stream events
//! become, so that the apply path does not care where its events come from.
//!
//! This module owns the meaning of one entry: which entries carry no change
//! (no-ops, the parts of a transaction before its commit point, index build
//! bookkeeping), how a transaction's operations are found, and what each
//! insert, update, delete and command becomes. It reads no server: a
//! transaction whose operations span several entries is returned as a link
//! to its previous entry, which the caller reads back. It does not decide
//! what is in scope either: it drops only what is never user data (the
//! server's own databases and `system.*` collections, apart from the view
//! definitions that stand for user namespaces and the buckets that hold
//! time-series collections), and leaves the include and exclude patterns
//! to the apply path.
//!
//! A time-series collection lives in the oplog as its buckets collection
//! `system.buckets.<name>`: its creation, its measurements (bucket inserts,
//! `$v:2` updates, whole-bucket replacements when 6.0 compresses one,
//! deletes), its indexes (bucket-level keys), `collMod` and drop all name
//! the buckets, and each becomes the same change as on a collection of
//! that name. Its view in `system.views` is the server's to keep.

use bson::{doc, Binary, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf, Timestamp};

use super::{Change, CrudEvent, DdlEvent, DocOp, ParseError};
use crate::scope::{Namespace, Scope, BUCKETS_PREFIX};

/// What one top-level oplog entry means for the sync.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// Changes to apply, in order (possibly empty, e.g. an internal namespace).
    Changes(Vec<Change>),
    /// The commit point of a transaction whose earlier operations are in
    /// other entries: the caller reads the chain back through `prev`
    /// (each older entry's `applyOps` operations come first), then calls
    /// `translate_ops` on all of them in order.
    Transaction {
        ops: Vec<RawDocumentBuf>,
        prev: Timestamp,
    },
    /// Nothing to apply (no-op, partial transaction, prepare, abort, index build start/abort, ...).
    Skip,
}

/// How deep `applyOps` may nest inside `applyOps`. The server nests them at
/// most once or twice; the bound only keeps a malformed entry from
/// exhausting the stack.
const MAX_NESTING: usize = 32;

/// The collection that holds a database's view definitions.
const VIEWS_COLL: &str = "system.views";

/// Classifies one top-level oplog entry.
pub fn classify(entry: &RawDocument) -> Result<Entry, ParseError> {
    let op = op_of(entry)?;
    // A no-op carries nothing to replay, whatever its namespace: on 4.4 and
    // 5.0 a retryable findAndModify writes one on the user's namespace to
    // hold the pre-image.
    if op == "n" {
        return Ok(Entry::Skip);
    }
    if op == "c" {
        let (db, coll) = split_ns(entry)?;
        if coll == "$cmd" {
            let o = o_of(entry)?;
            let (command, _) = first_field(entry, o)?;
            match command {
                // Transactions commit through `admin.$cmd`; a user may also
                // run `applyOps` on one of their own databases.
                "applyOps" if db == "admin" || !is_internal_db(db) => {
                    return apply_ops_entry(entry, o);
                }
                "commitTransaction" if db == "admin" => {
                    // Only a prepared transaction commits with this command;
                    // its operations sit in the prepare entry and the chain
                    // before it, which `prevOpTime` points at.
                    let prev = prev_ts(entry)?.ok_or_else(|| {
                        bad(
                            entry,
                            "commits a prepared transaction but has no prevOpTime.ts pointing at its prepare entry",
                        )
                    })?;
                    return Ok(Entry::Transaction { ops: vec![], prev });
                }
                "abortTransaction" if db == "admin" => return Ok(Entry::Skip),
                // An index build's start and abort change nothing; only its
                // commit creates indexes.
                "startIndexBuild" | "abortIndexBuild" => return Ok(Entry::Skip),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    translate_op(entry, 0, &mut out)?;
    Ok(Entry::Changes(out))
}

/// The operations of a transaction entry read back through a chain (its `o.applyOps` array), and its `prevOpTime.ts` (None when it is the first: ts 0).
pub fn chain_link(
    entry: &RawDocument,
) -> Result<(Vec<RawDocumentBuf>, Option<Timestamp>), ParseError> {
    let o = o_of(entry)?;
    let (command, _) = first_field(entry, o)?;
    if op_of(entry)? != "c" || command != "applyOps" {
        return Err(bad(
            entry,
            "is not an applyOps entry, so it cannot be a link of a transaction chain",
        ));
    }
    Ok((owned_ops(entry, o)?, prev_ts(entry)?))
}

/// Translates operations (top-level entries or the ops inside applyOps) into changes, in order.
///
/// An `applyOps` among them stands for its operations; whether it is the
/// commit point of a transaction is for `classify` to say, not for this.
pub fn translate_ops(ops: &[RawDocumentBuf]) -> Result<Vec<Change>, ParseError> {
    let mut out = Vec::new();
    for op in ops {
        translate_op(op, 0, &mut out)?;
    }
    Ok(out)
}

/// The entry's `ts`.
pub fn ts(entry: &RawDocument) -> Result<Timestamp, ParseError> {
    entry
        .get_timestamp("ts")
        .map_err(|_| bad(entry, "has no ts timestamp"))
}

/// Names an entry in error messages by its `op`, `ns` and `ts`; the
/// operations inside `applyOps` have no `ts` of their own.
fn describe(entry: &RawDocument) -> String {
    let op = entry.get_str("op").unwrap_or("?");
    let ns = entry.get_str("ns").unwrap_or("?");
    match entry.get_timestamp("ts") {
        Ok(ts) => format!("the oplog entry with op \"{op}\" on \"{ns}\" at {ts}"),
        Err(_) => format!(
            "the oplog operation with op \"{op}\" on \"{ns}\" (inside applyOps or without ts)"
        ),
    }
}

/// An error about an entry: `what` completes the sentence that names it.
fn bad(entry: &RawDocument, what: &str) -> ParseError {
    ParseError(format!("{} {what}.", describe(entry)))
}

fn op_of(entry: &RawDocument) -> Result<&str, ParseError> {
    entry
        .get_str("op")
        .map_err(|_| bad(entry, "has no op string"))
}

fn o_of(entry: &RawDocument) -> Result<&RawDocument, ParseError> {
    entry
        .get_document("o")
        .map_err(|_| bad(entry, "has no o document"))
}

/// The entry's `ns` as database and collection; a command's collection is
/// `$cmd`. Collection names may contain dots, database names may not.
fn split_ns(entry: &RawDocument) -> Result<(&str, &str), ParseError> {
    let ns = entry
        .get_str("ns")
        .map_err(|_| bad(entry, "has no ns string"))?;
    match ns.split_once('.') {
        Some((db, coll)) if !db.is_empty() && !coll.is_empty() => Ok((db, coll)),
        _ => Err(bad(
            entry,
            "has an ns that is not of the form db.collection",
        )),
    }
}

fn is_internal_db(db: &str) -> bool {
    Scope::is_system_db(db)
}

/// A `system.*` collection other than a time-series collection's buckets.
fn is_unmigrated_system_coll(coll: &str) -> bool {
    Scope::is_system_coll(coll) && !coll.starts_with(BUCKETS_PREFIX)
}

/// The first field of a command's `o`, which names the command.
fn first_field<'a>(
    entry: &RawDocument,
    o: &'a RawDocument,
) -> Result<(&'a str, RawBsonRef<'a>), ParseError> {
    match o.iter().next() {
        Some(Ok(field)) => Ok(field),
        Some(Err(e)) => Err(bad(entry, &format!("has an unreadable o ({e})"))),
        None => Err(bad(entry, "has an empty o, so it names no command")),
    }
}

/// The collection UUID `ui`, absent on some commands (dropDatabase, the
/// applyOps wrapper, views).
fn ui_of(entry: &RawDocument) -> Result<Option<Binary>, ParseError> {
    match entry.get("ui") {
        Ok(None) => Ok(None),
        Ok(Some(RawBsonRef::Binary(b))) => Ok(Some(Binary {
            subtype: b.subtype,
            bytes: b.bytes.to_vec(),
        })),
        Ok(Some(_)) => Err(bad(entry, "has a ui that is not a binary UUID")),
        Err(e) => Err(bad(entry, &format!("has an unreadable ui ({e})"))),
    }
}

/// `prevOpTime.ts`, or None when it is absent or zero (the first entry of
/// a chain has `Timestamp(0, 0)`).
fn prev_ts(entry: &RawDocument) -> Result<Option<Timestamp>, ParseError> {
    let prev = match entry.get("prevOpTime") {
        Ok(None) => return Ok(None),
        Ok(Some(RawBsonRef::Document(d))) => d,
        Ok(Some(_)) | Err(_) => return Err(bad(entry, "has a prevOpTime that is not a document")),
    };
    let ts = prev
        .get_timestamp("ts")
        .map_err(|_| bad(entry, "has a prevOpTime without a ts timestamp"))?;
    Ok((ts.time != 0 || ts.increment != 0).then_some(ts))
}

/// Whether a flag such as `partialTxn` or `prepare` is set; the server
/// writes booleans, but a number is read the way the server reads it.
fn flag(o: &RawDocument, key: &str) -> bool {
    match o.get(key) {
        Ok(Some(RawBsonRef::Boolean(b))) => b,
        Ok(Some(RawBsonRef::Int32(n))) => n != 0,
        Ok(Some(RawBsonRef::Int64(n))) => n != 0,
        Ok(Some(RawBsonRef::Double(n))) => n != 0.0,
        _ => false,
    }
}

/// A top-level `applyOps`: a partial or prepared transaction waits for its
/// commit point; the last entry of a chain is that commit point; a
/// single-entry transaction (or a user's `applyOps`) is applied at once.
fn apply_ops_entry(entry: &RawDocument, o: &RawDocument) -> Result<Entry, ParseError> {
    if flag(o, "partialTxn") || flag(o, "prepare") {
        return Ok(Entry::Skip);
    }
    match prev_ts(entry)? {
        Some(prev) => Ok(Entry::Transaction {
            ops: owned_ops(entry, o)?,
            prev,
        }),
        None => {
            let mut out = Vec::new();
            for op in ops_of(entry, o)? {
                translate_op(op?, 1, &mut out)?;
            }
            Ok(Entry::Changes(out))
        }
    }
}

/// The documents of `o.applyOps`, borrowed.
fn ops_of<'a>(
    entry: &'a RawDocument,
    o: &'a RawDocument,
) -> Result<impl Iterator<Item = Result<&'a RawDocument, ParseError>> + 'a, ParseError> {
    let ops = o
        .get_array("applyOps")
        .map_err(|_| bad(entry, "has no applyOps array"))?;
    Ok(ops.into_iter().map(move |op| match op {
        Ok(RawBsonRef::Document(d)) => Ok(d),
        Ok(_) => Err(bad(entry, "has an applyOps element that is not a document")),
        Err(e) => Err(bad(
            entry,
            &format!("has an unreadable applyOps element ({e})"),
        )),
    }))
}

/// The documents of `o.applyOps`, copied out for the caller to keep while
/// it reads the rest of a chain.
fn owned_ops(entry: &RawDocument, o: &RawDocument) -> Result<Vec<RawDocumentBuf>, ParseError> {
    ops_of(entry, o)?
        .map(|op| op.map(ToOwned::to_owned))
        .collect()
}

/// Appends the changes of one operation (a top-level entry or an operation
/// inside `applyOps`) to `out`.
fn translate_op(op: &RawDocument, depth: usize, out: &mut Vec<Change>) -> Result<(), ParseError> {
    let kind = op_of(op)?;
    if kind == "n" {
        return Ok(());
    }
    let (db, coll) = split_ns(op)?;
    match kind {
        "c" => command(op, db, coll, depth, out),
        "i" | "u" | "d" => {
            if is_internal_db(db) {
                return Ok(());
            }
            if coll == VIEWS_COLL {
                return view(op, kind, out);
            }
            // Other system collections hold no user documents we migrate.
            if is_unmigrated_system_coll(coll) {
                return Ok(());
            }
            out.push(Change::Crud(crud(op, kind, db, coll)?));
            Ok(())
        }
        _ => Err(bad(op, "has an op that is none of i, u, d, c or n")),
    }
}

/// An insert, update or delete on a user collection.
fn crud(op: &RawDocument, kind: &str, db: &str, coll: &str) -> Result<CrudEvent, ParseError> {
    let uuid = ui_of(op)?.ok_or_else(|| bad(op, "has no ui (collection UUID)"))?;
    let o = o_of(op)?;
    let (id, doc_op) = match kind {
        "i" => {
            // 6.0 adds `o2: {_id}` to inserts; 4.4 and 5.0 have only `o`.
            let id = match id_of(op, o)? {
                Some(id) => id,
                None => o2_id(op)?.ok_or_else(|| bad(op, "inserts a document without _id"))?,
            };
            (id, DocOp::Upsert(with_id(op, o, id)?))
        }
        "u" => {
            let id = o2_id(op)?.ok_or_else(|| bad(op, "updates a document but has no o2._id"))?;
            // An update written as operators (`$v:1` `$set`/`$unset`, `$v:2`
            // `diff`) is not a whole document: the current version is read
            // from the source. Without any `$` field, `o` is the whole new
            // document (a replacement, or a 4.4 pipeline update).
            let doc_op = if has_operator(op, o)? {
                DocOp::Fetch
            } else {
                DocOp::Upsert(with_id(op, o, id)?)
            };
            (id, doc_op)
        }
        _ => {
            // A delete's `o` may also hold the shard key; only `_id` is kept.
            let id = id_of(op, o)?.ok_or_else(|| bad(op, "deletes a document without o._id"))?;
            (id, DocOp::Delete)
        }
    };
    let mut key = RawDocumentBuf::new();
    key.append_ref("_id", id);
    Ok(CrudEvent {
        uuid,
        ns: Namespace::new(db, coll),
        key,
        op: doc_op,
    })
}

fn id_of<'a>(op: &RawDocument, doc: &'a RawDocument) -> Result<Option<RawBsonRef<'a>>, ParseError> {
    doc.get("_id")
        .map_err(|e| bad(op, &format!("has an unreadable _id ({e})")))
}

fn o2_id(op: &RawDocument) -> Result<Option<RawBsonRef<'_>>, ParseError> {
    match op.get_document("o2") {
        Ok(o2) => id_of(op, o2),
        Err(_) => Ok(None),
    }
}

/// Whether any top-level field of `o` is an operator (starts with `$`).
fn has_operator(op: &RawDocument, o: &RawDocument) -> Result<bool, ParseError> {
    for field in o {
        let (k, _) = field.map_err(|e| bad(op, &format!("has an unreadable o ({e})")))?;
        if k.starts_with('$') {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The whole document `o`, with `_id` put first when it lacks one, so that
/// an upsert never creates a document under a new `_id`.
fn with_id(
    op: &RawDocument,
    o: &RawDocument,
    id: RawBsonRef<'_>,
) -> Result<RawDocumentBuf, ParseError> {
    if id_of(op, o)?.is_some() {
        return Ok(o.to_owned());
    }
    let mut doc = RawDocumentBuf::new();
    doc.append_ref("_id", id);
    for field in o {
        let (k, v) = field.map_err(|e| bad(op, &format!("has an unreadable o ({e})")))?;
        doc.append_ref(k, v);
    }
    Ok(doc)
}

/// A write to `<db>.system.views`: the oplog has no view commands, only
/// the inserts, replacements and deletes of view definitions.
fn view(op: &RawDocument, kind: &str, out: &mut Vec<Change>) -> Result<(), ParseError> {
    let o = o_of(op)?;
    match kind {
        "i" => {
            let ns = view_ns(op, id_of(op, o)?)?;
            if let Some(description) = view_description(op, o, true)? {
                out.push(Change::Ddl(DdlEvent::Create {
                    ns,
                    uuid: None,
                    description,
                }));
            }
        }
        "u" => {
            // `collMod` of a view replaces its whole definition on every
            // version we read; a partial update cannot be turned into one.
            if has_operator(op, o)? {
                return Err(bad(
                    op,
                    "updates a view definition with operators rather than replacing it, which cannot be replayed",
                ));
            }
            let id = match o2_id(op)? {
                Some(id) => Some(id),
                None => id_of(op, o)?,
            };
            let ns = view_ns(op, id)?;
            // The 6.0 change stream describes a view's `modify` as
            // `{viewOn, pipeline}`, which is what `collMod` on a view takes;
            // a view's collation cannot be changed, and `collMod` refuses it.
            if let Some(description) = view_description(op, o, false)? {
                out.push(Change::Ddl(DdlEvent::Modify {
                    ns,
                    uuid: None,
                    description,
                }));
            }
        }
        _ => {
            let ns = view_ns(op, id_of(op, o)?)?;
            out.push(Change::Ddl(DdlEvent::Drop { ns, uuid: None }));
        }
    }
    Ok(())
}

/// A view's namespace, from its definition's `_id` (`"db.view"`).
fn view_ns(op: &RawDocument, id: Option<RawBsonRef<'_>>) -> Result<Namespace, ParseError> {
    match id {
        Some(RawBsonRef::String(s)) => Namespace::parse(s)
            .ok_or_else(|| bad(op, "has a view _id that is not of the form db.view")),
        _ => Err(bad(op, "has a view definition without a string _id")),
    }
}

/// `{viewOn, pipeline}` (and the collation when asked for and present), or
/// None for the view of a time-series collection, which is not migrated live.
fn view_description(
    op: &RawDocument,
    o: &RawDocument,
    with_collation: bool,
) -> Result<Option<Document>, ParseError> {
    let view_on = o
        .get_str("viewOn")
        .map_err(|_| bad(op, "has a view definition without viewOn"))?;
    if view_on.starts_with(BUCKETS_PREFIX) {
        return Ok(None);
    }
    let pipeline = o
        .get("pipeline")
        .ok()
        .flatten()
        .ok_or_else(|| bad(op, "has a view definition without pipeline"))?;
    let mut description = doc! { "viewOn": view_on, "pipeline": to_bson(op, pipeline)? };
    if with_collation {
        if let Ok(Some(collation)) = o.get("collation") {
            description.insert("collation", to_bson(op, collation)?);
        }
    }
    Ok(Some(description))
}

fn to_bson(op: &RawDocument, value: RawBsonRef<'_>) -> Result<Bson, ParseError> {
    Bson::try_from(value).map_err(|e| bad(op, &format!("has a value that cannot be read ({e})")))
}

/// `o` as a document, without the field that names the command.
fn without(op: &RawDocument, o: &RawDocument, key: &str) -> Result<Document, ParseError> {
    let mut out = Document::new();
    for field in o {
        let (k, v) = field.map_err(|e| bad(op, &format!("has an unreadable o ({e})")))?;
        if k != key {
            out.insert(k, to_bson(op, v)?);
        }
    }
    Ok(out)
}

/// The collection a command targets, from the string value of its first
/// field; None for a `system.*` collection that is never migrated (all but
/// time-series buckets).
fn target(
    op: &RawDocument,
    db: &str,
    name: &str,
    value: RawBsonRef<'_>,
) -> Result<Option<Namespace>, ParseError> {
    match value {
        RawBsonRef::String(coll) if !coll.is_empty() => {
            Ok((!is_unmigrated_system_coll(coll)).then(|| Namespace::new(db, coll)))
        }
        _ => Err(bad(
            op,
            &format!("has a {name} command whose value is not a collection name"),
        )),
    }
}

/// A command on `<db>.$cmd`.
fn command(
    op: &RawDocument,
    db: &str,
    coll: &str,
    depth: usize,
    out: &mut Vec<Change>,
) -> Result<(), ParseError> {
    if coll != "$cmd" {
        return Err(bad(op, "is a command on a namespace other than <db>.$cmd"));
    }
    let o = o_of(op)?;
    let (name, value) = first_field(op, o)?;
    if name == "applyOps" {
        // A transaction's operations arrive as one `applyOps` on `admin`;
        // other internal databases hold nothing to replay.
        if is_internal_db(db) && db != "admin" {
            return Ok(());
        }
        if depth >= MAX_NESTING {
            return Err(bad(op, "nests applyOps deeper than any server writes"));
        }
        for inner in ops_of(op, o)? {
            translate_op(inner?, depth + 1, out)?;
        }
        return Ok(());
    }
    if is_internal_db(db) {
        return Ok(());
    }
    let uuid = ui_of(op)?;
    let ddl = match name {
        "create" => {
            // A time-series collection is created as its buckets, whose
            // `timeseries` option the applier creates it from. The
            // `system.views` collection itself appears with a database's
            // first view; each view comes as its own insert.
            let Some(ns) = target(op, db, name, value)? else {
                return Ok(());
            };
            // `idIndex` stays: the applier removes it, as it does for the
            // change stream's `create`.
            DdlEvent::Create {
                ns,
                uuid,
                description: without(op, o, "create")?,
            }
        }
        "drop" => {
            let Some(ns) = target(op, db, name, value)? else {
                return Ok(());
            };
            DdlEvent::Drop { ns, uuid }
        }
        "renameCollection" => {
            let from = named_ns(op, o, "renameCollection")?;
            let to = named_ns(op, o, "to")?;
            if is_internal_db(&from.db) || Scope::is_system_coll(&from.coll) {
                return Ok(());
            }
            // `dropTarget` needs no event of its own: the applier's rename
            // replaces an existing target, as the source's did.
            DdlEvent::Rename { ns: from, to, uuid }
        }
        "dropDatabase" => DdlEvent::DropDatabase { db: db.to_string() },
        "createIndexes" => {
            let Some(ns) = target(op, db, name, value)? else {
                return Ok(());
            };
            // The single-phase form (an empty collection, or the copy of a
            // cross-database rename) has the spec's fields inline in `o`.
            DdlEvent::CreateIndexes {
                ns,
                uuid,
                indexes: vec![without(op, o, "createIndexes")?],
            }
        }
        "commitIndexBuild" => {
            let Some(ns) = target(op, db, name, value)? else {
                return Ok(());
            };
            DdlEvent::CreateIndexes {
                ns,
                uuid,
                indexes: index_specs(op, o)?,
            }
        }
        "startIndexBuild" | "abortIndexBuild" | "commitTransaction" | "abortTransaction" => {
            return Ok(());
        }
        "dropIndexes" | "deleteIndexes" => {
            let Some(ns) = target(op, db, name, value)? else {
                return Ok(());
            };
            DdlEvent::DropIndexes {
                ns,
                uuid,
                indexes: dropped_indexes(op, o)?,
            }
        }
        "collMod" => {
            let Some(ns) = target(op, db, name, value)? else {
                return Ok(());
            };
            // The change stream's `modify` describes a collMod as the
            // command without its first field (`{index: {name,
            // expireAfterSeconds}}`, `{validator, validationLevel}`, ...),
            // which is what the applier replays; `o2` holds the old values
            // and is not needed.
            DdlEvent::Modify {
                ns,
                uuid,
                description: without(op, o, "collMod")?,
            }
        }
        other => {
            let ns = match value {
                RawBsonRef::String(coll) if is_unmigrated_system_coll(coll) => return Ok(()),
                RawBsonRef::String(coll) => Namespace::new(db, coll),
                _ => Namespace::new(db, ""),
            };
            DdlEvent::Other {
                operation: other.to_string(),
                ns: Some(ns),
            }
        }
    };
    out.push(Change::Ddl(ddl));
    Ok(())
}

/// A full namespace (`"db.coll"`) held by a field of a command.
fn named_ns(op: &RawDocument, o: &RawDocument, key: &str) -> Result<Namespace, ParseError> {
    o.get_str(key)
        .ok()
        .and_then(Namespace::parse)
        .ok_or_else(|| {
            bad(
                op,
                &format!("has no {key} namespace of the form db.collection"),
            )
        })
}

/// `o.indexes` of an index build: the full specs.
fn index_specs(op: &RawDocument, o: &RawDocument) -> Result<Vec<Document>, ParseError> {
    let specs = o
        .get_array("indexes")
        .map_err(|_| bad(op, "has an index build without an indexes array"))?;
    specs
        .into_iter()
        .map(|spec| match spec {
            Ok(RawBsonRef::Document(d)) => Document::try_from(d)
                .map_err(|e| bad(op, &format!("has an unreadable index spec ({e})"))),
            _ => Err(bad(op, "has an index spec that is not a document")),
        })
        .collect()
}

/// The indexes a `dropIndexes` entry drops, as the applier needs them: each
/// a document with the index's `name`. The entry names one index in
/// `o.index` and holds its full spec in `o2`; the spec is preferred, as the
/// change stream gives it. `"*"` (drop all but `_id`) is kept as a name,
/// which the applier passes on to `dropIndexes` as is.
fn dropped_indexes(op: &RawDocument, o: &RawDocument) -> Result<Vec<Document>, ParseError> {
    if let Ok(spec) = op.get_document("o2") {
        if spec.get_str("name").is_ok() {
            let spec = Document::try_from(spec)
                .map_err(|e| bad(op, &format!("has an unreadable index spec in o2 ({e})")))?;
            return Ok(vec![spec]);
        }
    }
    match o.get("index") {
        Ok(Some(RawBsonRef::String(name))) => Ok(vec![doc! { "name": name }]),
        Ok(Some(RawBsonRef::Array(names))) => names
            .into_iter()
            .map(|n| match n {
                Ok(RawBsonRef::String(name)) => Ok(doc! { "name": name }),
                _ => Err(bad(
                    op,
                    "drops indexes by a list that holds something other than names",
                )),
            })
            .collect(),
        // The server logs names, but an index given by its key pattern is
        // kept as such rather than lost without a word.
        Ok(Some(RawBsonRef::Document(key))) => Ok(vec![
            doc! { "key": to_bson(op, RawBsonRef::Document(key))? },
        ]),
        _ => Err(bad(
            op,
            "drops indexes without naming them in o.index or o2",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::spec::BinarySubtype;
    use bson::{rawdoc, DateTime};

    fn uuid(n: u8) -> Binary {
        Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![n; 16],
        }
    }

    fn ts_(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    fn wall() -> DateTime {
        DateTime::from_millis(1_796_565_501_667)
    }

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    fn ns(db: &str, coll: &str) -> Namespace {
        Namespace::new(db, coll)
    }

    /// A session as retryable writes and transactions log it.
    fn lsid() -> Document {
        doc! { "id": uuid(0xAA), "uid": Binary { subtype: BinarySubtype::Generic, bytes: vec![0x47; 32] } }
    }

    fn zero_prev() -> Document {
        doc! { "ts": ts_(0, 0), "t": -1i64 }
    }

    /// What a top-level entry yields, for entries that are not part of a
    /// multi-entry transaction.
    fn changes(entry: &RawDocumentBuf) -> Vec<Change> {
        match classify(entry).unwrap() {
            Entry::Changes(c) => c,
            Entry::Skip => vec![],
            other => panic!("unexpected {other:?}"),
        }
    }

    fn one(entry: &RawDocumentBuf) -> Change {
        let mut c = changes(entry);
        assert_eq!(c.len(), 1, "{c:?}");
        c.remove(0)
    }

    fn crud_of(c: Change) -> CrudEvent {
        match c {
            Change::Crud(c) => c,
            other => panic!("not a CRUD change: {other:?}"),
        }
    }

    fn ddl_of(c: Change) -> DdlEvent {
        match c {
            Change::Ddl(d) => d,
            other => panic!("not a DDL change: {other:?}"),
        }
    }

    /// Plays the caller's part over an in-memory oplog: classifies each
    /// entry in order, reads a transaction's chain back through `prev`,
    /// and translates the whole transaction at its commit point.
    fn replay(oplog: &[RawDocumentBuf]) -> Vec<Change> {
        let by_ts = |t: Timestamp| {
            oplog
                .iter()
                .find(|e| ts(e).unwrap() == t)
                .unwrap_or_else(|| panic!("no entry at {t}"))
        };
        let mut out = Vec::new();
        for entry in oplog {
            match classify(entry).unwrap() {
                Entry::Changes(c) => out.extend(c),
                Entry::Skip => {}
                Entry::Transaction { ops, prev } => {
                    let mut links = vec![ops];
                    let mut next = Some(prev);
                    while let Some(t) = next {
                        let (ops, prev) = chain_link(by_ts(t)).unwrap();
                        links.push(ops);
                        next = prev;
                    }
                    let all: Vec<RawDocumentBuf> = links.into_iter().rev().flatten().collect();
                    out.extend(translate_ops(&all).unwrap());
                }
            }
        }
        out
    }

    // ----- no-ops -------------------------------------------------------

    #[test]
    fn noops_are_skipped_whatever_their_namespace() {
        let initiating = raw(
            doc! { "op": "n", "ns": "", "o": { "msg": "initiating set" }, "ts": ts_(1796565500, 1), "wall": wall(), "v": 2 },
        );
        let new_primary = raw(
            doc! { "op": "n", "ns": "", "o": { "msg": "new primary" }, "ts": ts_(1796565500, 4), "t": 1i64, "wall": wall(), "v": 2 },
        );
        let periodic = raw(
            doc! { "op": "n", "ns": "", "o": { "msg": "periodic noop" }, "ts": ts_(1796565530, 1), "t": 1i64, "v": 2, "wall": wall() },
        );
        let no_txn = raw(
            doc! { "op": "n", "ns": "", "o": { "msg": "NoSuchTransaction error" }, "ts": ts_(1796565579, 41), "t": 1i64, "v": 2, "wall": wall() },
        );
        let note = raw(
            doc! { "op": "n", "ns": "", "o": { "msg": "hello from probe" }, "ts": ts_(1796565542, 1), "t": 1i64, "wall": wall(), "v": 2 },
        );
        for e in [&initiating, &new_primary, &periodic, &no_txn, &note] {
            assert_eq!(classify(e).unwrap(), Entry::Skip, "{e:?}");
        }
        // A no-op inside applyOps is skipped as well.
        let inner = raw(doc! { "op": "n", "ns": "", "o": { "msg": "x" } });
        assert!(translate_ops(&[inner]).unwrap().is_empty());
    }

    #[test]
    fn retryable_find_and_modify_pre_image_on_a_user_namespace_is_skipped() {
        // 4.4/5.0: the `n` entry sits on the user's namespace and carries
        // the pre-image; applying it would write a stale document.
        let pre_image = raw(doc! {
            "lsid": lsid(), "txnNumber": 5i64, "op": "n", "ns": "crud.c", "ui": uuid(1),
            "o": { "_id": 102, "old": true }, "ts": ts_(1796565506, 1), "t": 1i64, "wall": wall(), "v": 2,
            "stmtId": 0, "prevOpTime": zero_prev(),
        });
        assert_eq!(classify(&pre_image).unwrap(), Entry::Skip);
        let update = raw(doc! {
            "lsid": lsid(), "txnNumber": 5i64, "op": "u", "ns": "crud.c", "ui": uuid(1),
            "o": { "$v": 1, "$set": { "fam": 1 } }, "o2": { "_id": 102 },
            "preImageOpTime": { "ts": ts_(1796565506, 1), "t": 1i64 },
            "ts": ts_(1796565506, 2), "t": 1i64, "wall": wall(), "v": 2, "stmtId": 0, "prevOpTime": zero_prev(),
        });
        let c = crud_of(one(&update));
        assert_eq!(c.key, rawdoc! { "_id": 102 });
        assert_eq!(c.op, DocOp::Fetch);
        // 6.0 writes a single entry whose image lives elsewhere.
        let v6 = raw(doc! {
            "lsid": lsid(), "txnNumber": 5i64, "op": "u", "ns": "crud.c", "ui": uuid(1),
            "o": { "$v": 2, "diff": { "i": { "fam": 1 } } }, "o2": { "_id": 102 },
            "needsRetryImage": "preImage", "stmtId": 0, "ts": ts_(1796565627, 2), "t": 1i64, "v": 2,
            "wall": wall(), "prevOpTime": zero_prev(),
        });
        assert_eq!(crud_of(one(&v6)).op, DocOp::Fetch);
    }

    // ----- inserts, updates, deletes ------------------------------------

    #[test]
    fn inserts_take_their_id_from_o_on_4_4_and_5_0_and_carry_o2_on_6_0() {
        let v44 = raw(
            doc! { "op": "i", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 1, "a": 1, "b": "x" }, "ts": ts_(1796565501, 2), "t": 1i64, "wall": wall(), "v": 2 },
        );
        assert_eq!(
            one(&v44),
            Change::Crud(CrudEvent {
                uuid: uuid(1),
                ns: ns("crud", "c"),
                key: rawdoc! { "_id": 1 },
                op: DocOp::Upsert(rawdoc! { "_id": 1, "a": 1, "b": "x" }),
            })
        );
        let v60 = raw(
            doc! { "op": "i", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 1, "a": 1, "b": "x" }, "o2": { "_id": 1 }, "ts": ts_(1796565626, 2), "t": 1i64, "v": 2, "wall": wall() },
        );
        assert_eq!(one(&v60), one(&v44));
        // An ObjectId `_id` keeps its type in the key.
        let oid = bson::oid::ObjectId::parse_str("6b156a0a830f7d68f6def466").unwrap();
        let e = raw(
            doc! { "op": "i", "ns": "cldb.cl", "ui": uuid(3), "o": { "_id": oid, "m": "a" }, "ts": ts_(1, 1), "t": 1i64, "v": 2, "wall": wall() },
        );
        assert_eq!(crud_of(one(&e)).key, rawdoc! { "_id": oid });
    }

    #[test]
    fn retryable_writes_are_applied_directly_despite_their_prev_op_time() {
        // insert_many with retryWrites: entries chained by prevOpTime, but
        // with no applyOps they are plain writes, not a transaction.
        let entries = [
            raw(
                doc! { "lsid": lsid(), "txnNumber": 3i64, "op": "i", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 101 }, "ts": ts_(1796565505, 3), "t": 1i64, "wall": wall(), "v": 2, "stmtId": 0, "prevOpTime": zero_prev() },
            ),
            raw(
                doc! { "lsid": lsid(), "txnNumber": 3i64, "op": "i", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 102 }, "ts": ts_(1796565505, 4), "t": 1i64, "wall": wall(), "v": 2, "stmtId": 1, "prevOpTime": { "ts": ts_(1796565505, 3), "t": 1i64 } },
            ),
        ];
        for e in &entries {
            assert!(matches!(classify(e).unwrap(), Entry::Changes(c) if c.len() == 1));
        }
    }

    #[test]
    fn operator_updates_of_every_version_are_fetched() {
        let updates = [
            // 4.4 `$v:1` `$set` with a dotted path.
            doc! { "$v": 1, "$set": { "a": 2, "n.x": 5 } },
            // 4.4 `$inc` + `$unset` + `$push`, logged as `$set`/`$unset`.
            doc! { "$v": 1, "$set": { "a": 3, "arr": [1] }, "$unset": { "b": true } },
            // 5.0/6.0 `$v:2` diffs.
            doc! { "$v": 2, "diff": { "u": { "a": 2 }, "i": { "n": { "x": 5 } } } },
            doc! { "$v": 2, "diff": { "d": { "b": false }, "u": { "a": 3 }, "i": { "arr": [1] } } },
            // A 5.0/6.0 pipeline update is a diff too.
            doc! { "$v": 2, "diff": { "i": { "p": 4 } } },
        ];
        for o in updates {
            let e = raw(
                doc! { "op": "u", "ns": "crud.c", "ui": uuid(1), "o": o.clone(), "o2": { "_id": 1 }, "ts": ts_(1796565501, 3), "t": 1i64, "wall": wall(), "v": 2 },
            );
            let c = crud_of(one(&e));
            assert_eq!(c.key, rawdoc! { "_id": 1 }, "{o}");
            assert_eq!(c.op, DocOp::Fetch, "{o}");
        }
    }

    #[test]
    fn replacements_and_4_4_pipeline_updates_are_upserts_of_the_whole_document() {
        // 4.4 logs a pipeline update as a full replacement.
        let pipeline = raw(
            doc! { "op": "u", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 1, "a": 3, "n": { "x": 5 }, "arr": [1], "p": 4 }, "o2": { "_id": 1 }, "ts": ts_(1796565502, 2), "t": 1i64, "wall": wall(), "v": 2 },
        );
        let c = crud_of(one(&pipeline));
        assert_eq!(c.key, rawdoc! { "_id": 1 });
        assert_eq!(
            c.op,
            DocOp::Upsert(rawdoc! { "_id": 1, "a": 3, "n": { "x": 5 }, "arr": [1], "p": 4 })
        );
        let replace = raw(
            doc! { "op": "u", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 1, "a": 10, "z": true }, "o2": { "_id": 1 }, "ts": ts_(1796565502, 3), "t": 1i64, "v": 2, "wall": wall() },
        );
        assert_eq!(
            crud_of(one(&replace)).op,
            DocOp::Upsert(rawdoc! { "_id": 1, "a": 10, "z": true })
        );
        // A replacement without `_id` gets it from o2, as its first field.
        let bare = raw(
            doc! { "op": "u", "ns": "crud.c", "ui": uuid(1), "o": { "a": 10 }, "o2": { "_id": "k" }, "ts": ts_(1, 1) },
        );
        assert_eq!(
            crud_of(one(&bare)).op,
            DocOp::Upsert(rawdoc! { "_id": "k", "a": 10 })
        );
    }

    #[test]
    fn deletes_are_keyed_by_id_alone() {
        let d = raw(
            doc! { "op": "d", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 1 }, "ts": ts_(1796565503, 1), "t": 1i64, "wall": wall(), "v": 2 },
        );
        assert_eq!(
            one(&d),
            Change::Crud(CrudEvent {
                uuid: uuid(1),
                ns: ns("crud", "c"),
                key: rawdoc! { "_id": 1 },
                op: DocOp::Delete,
            })
        );
        // A sharded collection's delete also logs the shard key.
        let sharded = raw(
            doc! { "op": "d", "ns": "crud.c", "ui": uuid(1), "o": { "_id": 2, "sk": "x" }, "ts": ts_(1, 2) },
        );
        assert_eq!(crud_of(one(&sharded)).key, rawdoc! { "_id": 2 });
    }

    // ----- namespaces that are never user data --------------------------

    #[test]
    fn internal_databases_are_skipped() {
        let entries = [
            raw(
                doc! { "op": "c", "ns": "config.$cmd", "ui": uuid(9), "o": { "create": "transactions", "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }, "ts": ts_(1796565500, 3), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "c", "ns": "admin.$cmd", "ui": uuid(9), "o": { "create": "system.keys", "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }, "ts": ts_(1796565500, 6), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "i", "ns": "admin.system.keys", "ui": uuid(9), "o": { "_id": 7716190067621888004i64, "purpose": "HMAC" }, "ts": ts_(1796565500, 7), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "u", "ns": "config.transactions", "ui": uuid(9), "o": { "_id": { "id": uuid(1) }, "txnNum": 1i64 }, "o2": { "_id": { "id": uuid(1) } }, "ts": ts_(1, 1) },
            ),
            raw(
                doc! { "op": "i", "ns": "local.x", "ui": uuid(9), "o": { "_id": 1 }, "ts": ts_(1, 2) },
            ),
            raw(
                doc! { "op": "i", "ns": "__mongoferry.namespaces", "ui": uuid(9), "o": { "_id": "a.b" }, "ts": ts_(1, 3) },
            ),
            raw(
                doc! { "op": "c", "ns": "__mongoferry.$cmd", "ui": uuid(9), "o": { "drop": "namespaces" }, "ts": ts_(1, 4) },
            ),
            raw(
                doc! { "op": "c", "ns": "config.$cmd", "o": { "applyOps": [{ "op": "i", "ns": "config.x", "ui": uuid(9), "o": { "_id": 1 } }] }, "ts": ts_(1, 5) },
            ),
        ];
        for e in &entries {
            assert_eq!(classify(e).unwrap(), Entry::Changes(vec![]), "{e:?}");
        }
    }

    #[test]
    fn index_build_bookkeeping_in_config_is_skipped() {
        let build = uuid(0x77);
        let entries = [
            // 4.4 writes `$v:1` updates, 5.0 and 6.0 `$v:2` diffs.
            raw(
                doc! { "op": "i", "ns": "config.system.indexBuilds", "ui": uuid(8), "o": { "_id": build.clone(), "collectionUUID": uuid(2), "commitQuorum": "votingMembers", "indexNames": ["a_1"] }, "ts": ts_(1796565507, 14), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "u", "ns": "config.system.indexBuilds", "ui": uuid(8), "o": { "$v": 1, "$set": { "commitReadyMembers": ["127.0.0.1:51945"] } }, "o2": { "_id": build.clone() }, "ts": ts_(1796565507, 16), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "u", "ns": "config.system.indexBuilds", "ui": uuid(8), "o": { "$v": 2, "diff": { "i": { "commitReadyMembers": ["127.0.0.1:60959"] } } }, "o2": { "_id": build.clone() }, "ts": ts_(1796565569, 9), "t": 1i64, "v": 2, "wall": wall() },
            ),
            raw(
                doc! { "op": "d", "ns": "config.system.indexBuilds", "ui": uuid(8), "o": { "_id": build.clone() }, "ts": ts_(1796565507, 18), "t": 1i64, "wall": wall(), "v": 2 },
            ),
        ];
        for e in &entries {
            assert_eq!(classify(e).unwrap(), Entry::Changes(vec![]), "{e:?}");
        }
    }

    #[test]
    fn system_collections_are_skipped_but_time_series_buckets_are_followed() {
        let skipped = [
            raw(
                doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(5), "o": { "create": "system.views", "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }, "ts": ts_(1796565512, 2), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "i", "ns": "app.system.js", "ui": uuid(5), "o": { "_id": "f", "value": "x" }, "ts": ts_(1, 1) },
            ),
            raw(
                doc! { "op": "c", "ns": "app.$cmd", "ui": uuid(5), "o": { "drop": "system.js" }, "ts": ts_(1, 2) },
            ),
            raw(
                doc! { "op": "i", "ns": "admin.system.buckets.ts", "ui": uuid(5), "o": { "_id": 1 }, "ts": ts_(1, 3) },
            ),
        ];
        for e in &skipped {
            assert_eq!(classify(e).unwrap(), Entry::Changes(vec![]), "{e:?}");
        }
        let buckets = ns("tsdb", "system.buckets.ts");
        // Measurements land in the buckets, which are followed as they are
        // stored: a bucket inserted, updated by diff (read back), replaced
        // whole (6.0 compresses a full bucket) and deleted.
        let id = bson::oid::ObjectId::new();
        let bucket = doc! { "_id": id, "control": { "version": 1 }, "meta": "a", "data": {} };
        let insert = raw(
            doc! { "op": "i", "ns": "tsdb.system.buckets.ts", "ui": uuid(6), "o": bucket.clone(), "ts": ts_(1796565577, 1), "t": 1i64, "v": 2, "wall": wall() },
        );
        let Change::Crud(ev) = one(&insert) else {
            panic!()
        };
        assert_eq!((ev.ns.clone(), ev.uuid.clone()), (buckets.clone(), uuid(6)));
        assert_eq!(
            ev.op,
            DocOp::Upsert(RawDocumentBuf::from_document(&bucket).unwrap())
        );
        let diff = raw(
            doc! { "op": "u", "ns": "tsdb.system.buckets.ts", "ui": uuid(6), "o": { "$v": 2, "diff": { "sdata": { "sv": { "i": { "2": 9 } } } } }, "o2": { "_id": id }, "ts": ts_(1, 2) },
        );
        let Change::Crud(ev) = one(&diff) else {
            panic!()
        };
        assert_eq!(
            (ev.ns.clone(), ev.op.clone()),
            (buckets.clone(), DocOp::Fetch)
        );
        let compressed =
            doc! { "_id": id, "control": { "version": 2, "count": 1000 }, "meta": "a", "data": {} };
        let replace = raw(
            doc! { "op": "u", "ns": "tsdb.system.buckets.ts", "ui": uuid(6), "o": compressed.clone(), "o2": { "_id": id }, "ts": ts_(1, 3) },
        );
        let Change::Crud(ev) = one(&replace) else {
            panic!()
        };
        assert_eq!(
            ev.op,
            DocOp::Upsert(RawDocumentBuf::from_document(&compressed).unwrap())
        );
        let delete = raw(
            doc! { "op": "d", "ns": "tsdb.system.buckets.ts", "ui": uuid(6), "o": { "_id": id }, "ts": ts_(1, 4) },
        );
        let Change::Crud(ev) = one(&delete) else {
            panic!()
        };
        assert_eq!((ev.ns, ev.op), (buckets.clone(), DocOp::Delete));
        // Its DDL names the buckets too.
        let coll_mod = raw(
            doc! { "op": "c", "ns": "tsdb.$cmd", "ui": uuid(6), "o": { "collMod": "system.buckets.ts", "timeseries": { "granularity": "minutes" } }, "o2": { "collectionOptions_old": { "uuid": uuid(6) } }, "ts": ts_(1, 5) },
        );
        assert_eq!(
            ddl_of(one(&coll_mod)),
            DdlEvent::Modify {
                ns: buckets.clone(),
                uuid: Some(uuid(6)),
                description: doc! { "timeseries": { "granularity": "minutes" } },
            }
        );
        let index = raw(
            doc! { "op": "c", "ns": "tsdb.$cmd", "ui": uuid(6), "o": { "createIndexes": "system.buckets.ts", "v": 2, "key": { "control.max.t": -1, "control.min.t": -1 }, "name": "t_-1" }, "ts": ts_(1, 6) },
        );
        assert_eq!(
            ddl_of(one(&index)),
            DdlEvent::CreateIndexes {
                ns: buckets.clone(),
                uuid: Some(uuid(6)),
                indexes: vec![
                    doc! { "v": 2, "key": { "control.max.t": -1, "control.min.t": -1 }, "name": "t_-1" }
                ],
            }
        );
        let drop_index = raw(
            doc! { "op": "c", "ns": "tsdb.$cmd", "ui": uuid(6), "o": { "dropIndexes": "system.buckets.ts", "index": "m_1" }, "o2": { "v": 2, "key": { "m": 1 }, "name": "m_1" }, "ts": ts_(1, 7) },
        );
        assert!(
            matches!(ddl_of(one(&drop_index)), DdlEvent::DropIndexes { ns, .. } if ns == buckets)
        );
        let drop = raw(
            doc! { "op": "c", "ns": "tsdb.$cmd", "ui": uuid(6), "o": { "drop": "system.buckets.ts" }, "o2": { "numRecords": 2 }, "ts": ts_(1, 8) },
        );
        assert_eq!(
            ddl_of(one(&drop)),
            DdlEvent::Drop {
                ns: buckets.clone(),
                uuid: Some(uuid(6))
            }
        );
        // 5.0/6.0 create a time-series collection as its buckets.
        let validator = doc! { "$jsonSchema": { "bsonType": "object", "required": ["_id", "control", "data"] } };
        let create = raw(doc! {
            "op": "c", "ns": "tsdb.$cmd", "ui": uuid(6),
            "o": { "create": "system.buckets.ts", "validator": validator.clone(), "clusteredIndex": true,
                   "timeseries": { "timeField": "t", "metaField": "m", "granularity": "seconds", "bucketMaxSpanSeconds": 3600 } },
            "ts": ts_(1796565576, 11), "t": 1i64, "v": 2, "wall": wall(),
        });
        assert_eq!(
            ddl_of(one(&create)),
            DdlEvent::Create {
                ns: buckets,
                uuid: Some(uuid(6)),
                description: doc! { "validator": validator, "clusteredIndex": true,
                "timeseries": { "timeField": "t", "metaField": "m", "granularity": "seconds", "bucketMaxSpanSeconds": 3600 } },
            }
        );
    }

    // ----- collections --------------------------------------------------

    #[test]
    fn implicit_create_then_insert() {
        let oplog = [
            raw(
                doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "create": "implicit", "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }, "ts": ts_(1796565631, 2), "t": 1i64, "v": 2, "wall": wall() },
            ),
            raw(
                doc! { "op": "i", "ns": "ddl.implicit", "ui": uuid(2), "o": { "_id": 1 }, "o2": { "_id": 1 }, "ts": ts_(1796565631, 3), "t": 1i64, "v": 2, "wall": wall() },
            ),
        ];
        assert_eq!(
            replay(&oplog),
            vec![
                Change::Ddl(DdlEvent::Create {
                    ns: ns("ddl", "implicit"),
                    uuid: Some(uuid(2)),
                    description: doc! { "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } },
                }),
                Change::Crud(CrudEvent {
                    uuid: uuid(2),
                    ns: ns("ddl", "implicit"),
                    key: rawdoc! { "_id": 1 },
                    op: DocOp::Upsert(rawdoc! { "_id": 1 }),
                }),
            ]
        );
    }

    #[test]
    fn create_keeps_every_option_but_the_name() {
        let collation = doc! { "locale": "fr", "caseLevel": false, "caseFirst": "off", "strength": 2, "numericOrdering": false, "alternate": "non-ignorable", "maxVariable": "punct", "normalization": false, "backwards": false, "version": "57.1" };
        let options = doc! {
            "capped": true, "size": 1048576, "max": 1000, "validator": { "a": { "$type": "int" } },
            "validationLevel": "moderate", "collation": collation.clone(),
            "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_", "collation": collation },
        };
        let mut o = doc! { "create": "capped1" };
        o.extend(options.clone());
        let e = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(4), "o": o, "ts": ts_(1796565506, 3), "t": 1i64, "wall": wall(), "v": 2 },
        );
        assert_eq!(
            ddl_of(one(&e)),
            DdlEvent::Create {
                ns: ns("ddl", "capped1"),
                uuid: Some(uuid(4)),
                description: options,
            }
        );
        // 6.0 clustered collection: no idIndex, the clustered index instead.
        let cl = raw(
            doc! { "op": "c", "ns": "cldb.$cmd", "ui": uuid(4), "o": { "create": "cl", "clusteredIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_", "unique": true } }, "ts": ts_(1796565639, 6), "t": 1i64, "v": 2, "wall": wall() },
        );
        let DdlEvent::Create { description, .. } = ddl_of(one(&cl)) else {
            panic!()
        };
        assert_eq!(
            description,
            doc! { "clusteredIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_", "unique": true } }
        );
    }

    #[test]
    fn drop_and_drop_database() {
        let oplog = [
            raw(
                doc! { "op": "c", "ns": "dropme.$cmd", "ui": uuid(1), "o": { "drop": "a" }, "o2": { "numRecords": 1 }, "ts": ts_(1796565513, 9), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "c", "ns": "dropme.$cmd", "ui": uuid(2), "o": { "drop": "b" }, "o2": { "numRecords": 1 }, "ts": ts_(1796565513, 10), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            // No `ui` on dropDatabase.
            raw(
                doc! { "op": "c", "ns": "dropme.$cmd", "o": { "dropDatabase": 1 }, "ts": ts_(1796565513, 11), "t": 1i64, "wall": wall(), "v": 2 },
            ),
        ];
        assert_eq!(
            replay(&oplog),
            vec![
                Change::Ddl(DdlEvent::Drop {
                    ns: ns("dropme", "a"),
                    uuid: Some(uuid(1))
                }),
                Change::Ddl(DdlEvent::Drop {
                    ns: ns("dropme", "b"),
                    uuid: Some(uuid(2))
                }),
                Change::Ddl(DdlEvent::DropDatabase {
                    db: "dropme".into()
                }),
            ]
        );
    }

    #[test]
    fn rename_within_a_database_with_and_without_drop_target() {
        let plain = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(1), "o": { "renameCollection": "ddl.ren1", "to": "ddl.ren2", "stayTemp": false }, "ts": ts_(1796565511, 4), "t": 1i64, "wall": wall(), "v": 2 },
        );
        assert_eq!(
            ddl_of(one(&plain)),
            DdlEvent::Rename {
                ns: ns("ddl", "ren1"),
                to: ns("ddl", "ren2"),
                uuid: Some(uuid(1))
            }
        );
        // dropTarget holds the dropped target's UUID; one event is enough.
        let onto = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(3), "o": { "renameCollection": "ddl.ren3", "to": "ddl.ren2", "stayTemp": false, "dropTarget": uuid(1) }, "o2": { "numRecords": 2 }, "ts": ts_(1796565511, 7), "t": 1i64, "wall": wall(), "v": 2 },
        );
        assert_eq!(
            changes(&onto),
            vec![Change::Ddl(DdlEvent::Rename {
                ns: ns("ddl", "ren3"),
                to: ns("ddl", "ren2"),
                uuid: Some(uuid(3))
            })]
        );
    }

    #[test]
    fn convert_to_capped_replays_its_copy_including_from_migrate_inserts() {
        let tmp = "tmpNe9OW.convertToCapped.tocap";
        let v44 = vec![
            raw(
                doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(7), "o": { "create": tmp, "capped": true, "size": 100096, "temp": true, "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }, "ts": ts_(1796565510, 17), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "i", "ns": format!("ddl.{tmp}"), "ui": uuid(7), "o": { "_id": 0 }, "ts": ts_(1796565510, 18), "t": 1i64, "wall": wall(), "v": 2, "fromMigrate": true },
            ),
            raw(
                doc! { "op": "i", "ns": format!("ddl.{tmp}"), "ui": uuid(7), "o": { "_id": 1 }, "ts": ts_(1796565510, 19), "t": 1i64, "wall": wall(), "v": 2, "fromMigrate": true },
            ),
            raw(
                doc! { "op": "i", "ns": format!("ddl.{tmp}"), "ui": uuid(7), "o": { "_id": 2 }, "ts": ts_(1796565510, 20), "t": 1i64, "wall": wall(), "v": 2, "fromMigrate": true },
            ),
            raw(
                doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(7), "o": { "renameCollection": format!("ddl.{tmp}"), "to": "ddl.tocap", "stayTemp": false, "dropTarget": uuid(8) }, "o2": { "numRecords": 3 }, "ts": ts_(1796565510, 21), "t": 1i64, "wall": wall(), "v": 2 },
            ),
        ];
        // 6.0 adds o2 to the inserts and puts fromMigrate before ts; the
        // timestamps have gaps.
        let v60 = vec![
            v44[0].clone(),
            raw(
                doc! { "op": "i", "ns": format!("ddl.{tmp}"), "ui": uuid(7), "o": { "_id": 0 }, "o2": { "_id": 0 }, "fromMigrate": true, "ts": ts_(1796565635, 19), "t": 1i64, "v": 2, "wall": wall() },
            ),
            raw(
                doc! { "op": "i", "ns": format!("ddl.{tmp}"), "ui": uuid(7), "o": { "_id": 1 }, "o2": { "_id": 1 }, "fromMigrate": true, "ts": ts_(1796565635, 21), "t": 1i64, "v": 2, "wall": wall() },
            ),
            raw(
                doc! { "op": "i", "ns": format!("ddl.{tmp}"), "ui": uuid(7), "o": { "_id": 2 }, "o2": { "_id": 2 }, "fromMigrate": true, "ts": ts_(1796565635, 23), "t": 1i64, "v": 2, "wall": wall() },
            ),
            v44[4].clone(),
        ];
        let insert = |id: i32| {
            Change::Crud(CrudEvent {
                uuid: uuid(7),
                ns: ns("ddl", tmp),
                key: rawdoc! { "_id": id },
                op: DocOp::Upsert(rawdoc! { "_id": id }),
            })
        };
        let expected = vec![
            Change::Ddl(DdlEvent::Create {
                ns: ns("ddl", tmp),
                uuid: Some(uuid(7)),
                description: doc! { "capped": true, "size": 100096, "temp": true, "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } },
            }),
            insert(0),
            insert(1),
            insert(2),
            Change::Ddl(DdlEvent::Rename {
                ns: ns("ddl", tmp),
                to: ns("ddl", "tocap"),
                uuid: Some(uuid(7)),
            }),
        ];
        assert_eq!(replay(&v44), expected);
        assert_eq!(replay(&v60), expected);
    }

    #[test]
    fn cross_database_rename_replays_its_copy_then_drops_the_source() {
        let tmp = "tmpB0a4l.renameCollection";
        let oplog = [
            raw(
                doc! { "op": "c", "ns": "ddl2.$cmd", "ui": uuid(7), "o": { "create": tmp, "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }, "ts": ts_(1796565511, 16), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "c", "ns": "ddl2.$cmd", "ui": uuid(7), "o": { "createIndexes": tmp, "v": 2, "key": { "w": 1 }, "name": "w_1" }, "ts": ts_(1796565511, 17), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "i", "ns": format!("ddl2.{tmp}"), "ui": uuid(7), "o": { "_id": 1 }, "ts": ts_(1796565511, 18), "t": 1i64, "wall": wall(), "v": 2, "fromMigrate": true },
            ),
            raw(
                doc! { "op": "i", "ns": format!("ddl2.{tmp}"), "ui": uuid(7), "o": { "_id": 2 }, "ts": ts_(1796565511, 19), "t": 1i64, "wall": wall(), "v": 2, "fromMigrate": true },
            ),
            raw(
                doc! { "op": "c", "ns": "ddl2.$cmd", "ui": uuid(7), "o": { "renameCollection": format!("ddl2.{tmp}"), "to": "ddl2.xren", "stayTemp": false }, "ts": ts_(1796565511, 20), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(6), "o": { "drop": "xren" }, "o2": { "numRecords": 2 }, "ts": ts_(1796565511, 21), "t": 1i64, "wall": wall(), "v": 2 },
            ),
        ];
        let got = replay(&oplog);
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(
            matches!(&got[0], Change::Ddl(DdlEvent::Create { ns: n, .. }) if *n == ns("ddl2", tmp))
        );
        assert_eq!(
            got[1],
            Change::Ddl(DdlEvent::CreateIndexes {
                ns: ns("ddl2", tmp),
                uuid: Some(uuid(7)),
                indexes: vec![doc! { "v": 2, "key": { "w": 1 }, "name": "w_1" }],
            })
        );
        assert_eq!(crud_of(got[2].clone()).key, rawdoc! { "_id": 1 });
        assert_eq!(crud_of(got[3].clone()).ns, ns("ddl2", tmp));
        assert_eq!(
            got[4],
            Change::Ddl(DdlEvent::Rename {
                ns: ns("ddl2", tmp),
                to: ns("ddl2", "xren"),
                uuid: Some(uuid(7))
            })
        );
        assert_eq!(
            got[5],
            Change::Ddl(DdlEvent::Drop {
                ns: ns("ddl", "xren"),
                uuid: Some(uuid(6))
            })
        );
    }

    // ----- indexes ------------------------------------------------------

    #[test]
    fn single_phase_create_indexes_has_the_spec_inline() {
        let e = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "createIndexes": "empty", "v": 2, "key": { "a": 1 }, "name": "a_1" }, "ts": ts_(1796565569, 13), "t": 1i64, "v": 2, "wall": wall() },
        );
        assert_eq!(
            ddl_of(one(&e)),
            DdlEvent::CreateIndexes {
                ns: ns("ddl", "empty"),
                uuid: Some(uuid(2)),
                indexes: vec![doc! { "v": 2, "key": { "a": 1 }, "name": "a_1" }],
            }
        );
        let ttl = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "createIndexes": "empty", "v": 2, "key": { "t": 1 }, "name": "t_ttl", "expireAfterSeconds": 3600 }, "ts": ts_(1, 1) },
        );
        let DdlEvent::CreateIndexes { indexes, .. } = ddl_of(one(&ttl)) else {
            panic!()
        };
        assert_eq!(indexes[0].get_i32("expireAfterSeconds").unwrap(), 3600);
    }

    #[test]
    fn two_phase_index_builds_create_indexes_at_commit_only() {
        let build = uuid(0x55);
        let specs = vec![
            doc! { "v": 2, "key": { "x": 1 }, "name": "x_1" },
            doc! { "v": 2, "key": { "y": -1 }, "name": "y_-1", "sparse": true },
        ];
        let start = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "startIndexBuild": "nonempty", "indexBuildUUID": build.clone(), "indexes": specs.clone() }, "ts": ts_(1796565569, 15), "t": 1i64, "v": 2, "wall": wall() },
        );
        let commit = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "commitIndexBuild": "nonempty", "indexBuildUUID": build.clone(), "indexes": specs.clone() }, "ts": ts_(1796565569, 17), "t": 1i64, "v": 2, "wall": wall() },
        );
        let abort = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(3), "o": { "abortIndexBuild": "dups", "indexBuildUUID": build.clone(), "indexes": [{ "v": 2, "unique": true, "key": { "k": 1 }, "name": "k_1" }], "cause": { "ok": false, "code": 11000, "codeName": "DuplicateKey", "errmsg": "E11000 duplicate key error", "keyPattern": { "k": 1 }, "keyValue": { "k": 1 } } }, "ts": ts_(1796565571, 7), "t": 1i64, "v": 2, "wall": wall() },
        );
        assert_eq!(classify(&start).unwrap(), Entry::Skip);
        assert_eq!(classify(&abort).unwrap(), Entry::Skip);
        assert_eq!(
            classify(&commit).unwrap(),
            Entry::Changes(vec![Change::Ddl(DdlEvent::CreateIndexes {
                ns: ns("ddl", "nonempty"),
                uuid: Some(uuid(2)),
                indexes: specs,
            })])
        );
        // The same entries met inside applyOps give nothing either.
        assert!(translate_ops(&[start, abort]).unwrap().is_empty());
    }

    #[test]
    fn drop_indexes_names_each_dropped_index_with_its_spec() {
        let one_ix = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "dropIndexes": "nonempty", "index": "a_1" }, "o2": { "v": 2, "key": { "a": 1 }, "name": "a_1" }, "ts": ts_(1796565509, 2), "t": 1i64, "wall": wall(), "v": 2 },
        );
        assert_eq!(
            ddl_of(one(&one_ix)),
            DdlEvent::DropIndexes {
                ns: ns("ddl", "nonempty"),
                uuid: Some(uuid(2)),
                indexes: vec![doc! { "v": 2, "key": { "a": 1 }, "name": "a_1" }],
            }
        );
        // `dropIndexes: "*"` is logged as one entry per index.
        let star: Vec<RawDocumentBuf> = [
            ("y_-1", doc! { "v": 2, "key": { "y": -1 }, "name": "y_-1", "sparse": true }),
            ("t_ttl", doc! { "v": 2, "key": { "t": 1 }, "name": "t_ttl", "expireAfterSeconds": 3600 }),
            ("u_uniq", doc! { "v": 2, "unique": true, "key": { "u": 1 }, "name": "u_uniq" }),
            ("x_1", doc! { "v": 2, "key": { "x": 1 }, "name": "x_1", "hidden": true }),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, spec))| raw(doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "dropIndexes": "nonempty", "index": name }, "o2": spec, "ts": ts_(1796565572, i as u32 + 1), "t": 1i64, "v": 2, "wall": wall() }))
        .collect();
        let names: Vec<String> = replay(&star)
            .into_iter()
            .map(|c| match ddl_of(c) {
                DdlEvent::DropIndexes { indexes, .. } => {
                    assert_eq!(indexes.len(), 1);
                    indexes[0].get_str("name").unwrap().to_string()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["y_-1", "t_ttl", "u_uniq", "x_1"]);
        // Without o2, the name alone; "*" stays "*", which the applier
        // hands to dropIndexes as is.
        for (index, expected) in [
            (Bson::from("a_1"), vec![doc! { "name": "a_1" }]),
            (Bson::from("*"), vec![doc! { "name": "*" }]),
            (
                Bson::from(vec![Bson::from("a_1"), Bson::from("b_1")]),
                vec![doc! { "name": "a_1" }, doc! { "name": "b_1" }],
            ),
        ] {
            let e = raw(
                doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "dropIndexes": "nonempty", "index": index }, "ts": ts_(1, 1) },
            );
            let DdlEvent::DropIndexes { indexes, .. } = ddl_of(one(&e)) else {
                panic!()
            };
            assert_eq!(indexes, expected);
        }
    }

    #[test]
    fn coll_mod_is_described_as_the_change_streams_modify() {
        // TTL change by key pattern, logged by name. 4.4/5.0 keep the old
        // value as expireAfterSeconds_old, 6.0 as indexOptions_old.
        let ttl44 = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "collMod": "nonempty", "index": { "name": "t_ttl", "expireAfterSeconds": 60 } }, "o2": { "collectionOptions_old": { "uuid": uuid(2), "validator": { "a": { "$exists": true } }, "validationLevel": "strict", "validationAction": "error" }, "expireAfterSeconds_old": 3600 }, "ts": ts_(1796565510, 7), "t": 1i64, "wall": wall(), "v": 2 },
        );
        let ttl60 = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "collMod": "nonempty", "index": { "name": "t_ttl", "expireAfterSeconds": 60 } }, "o2": { "collectionOptions_old": { "uuid": uuid(2) }, "indexOptions_old": { "expireAfterSeconds": 3600 } }, "ts": ts_(1796565635, 7), "t": 1i64, "v": 2, "wall": wall() },
        );
        let expected = DdlEvent::Modify {
            ns: ns("ddl", "nonempty"),
            uuid: Some(uuid(2)),
            description: doc! { "index": { "name": "t_ttl", "expireAfterSeconds": 60 } },
        };
        assert_eq!(ddl_of(one(&ttl44)), expected);
        assert_eq!(ddl_of(one(&ttl60)), expected);
        let hidden = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "collMod": "nonempty", "index": { "name": "x_1", "hidden": true } }, "o2": { "collectionOptions_old": { "uuid": uuid(2) }, "hidden_old": false }, "ts": ts_(1796565509, 1), "t": 1i64, "wall": wall(), "v": 2 },
        );
        let DdlEvent::Modify { description, .. } = ddl_of(one(&hidden)) else {
            panic!()
        };
        assert_eq!(
            description,
            doc! { "index": { "name": "x_1", "hidden": true } }
        );
        let validator = raw(
            doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(2), "o": { "collMod": "nonempty", "validator": { "a": { "$exists": true } }, "validationLevel": "strict", "validationAction": "warn" }, "o2": { "collectionOptions_old": { "uuid": uuid(2) } }, "ts": ts_(1796565510, 6), "t": 1i64, "wall": wall(), "v": 2 },
        );
        let DdlEvent::Modify { description, .. } = ddl_of(one(&validator)) else {
            panic!()
        };
        assert_eq!(
            description,
            doc! { "validator": { "a": { "$exists": true } }, "validationLevel": "strict", "validationAction": "warn" }
        );
    }

    // ----- views --------------------------------------------------------

    #[test]
    fn views_are_created_modified_and_dropped_through_system_views() {
        let oplog = [
            raw(
                doc! { "op": "c", "ns": "ddl.$cmd", "ui": uuid(5), "o": { "create": "system.views", "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }, "ts": ts_(1796565512, 2), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "i", "ns": "ddl.system.views", "ui": uuid(5), "o": { "_id": "ddl.v1", "viewOn": "nonempty", "pipeline": [{ "$match": { "a": 1 } }] }, "ts": ts_(1796565512, 3), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "u", "ns": "ddl.system.views", "ui": uuid(5), "o": { "_id": "ddl.v1", "viewOn": "nonempty", "pipeline": [{ "$match": { "a": 2 } }] }, "o2": { "_id": "ddl.v1" }, "ts": ts_(1796565512, 4), "t": 1i64, "wall": wall(), "v": 2 },
            ),
            raw(
                doc! { "op": "d", "ns": "ddl.system.views", "ui": uuid(5), "o": { "_id": "ddl.v1" }, "ts": ts_(1796565513, 1), "t": 1i64, "wall": wall(), "v": 2 },
            ),
        ];
        assert_eq!(
            replay(&oplog),
            vec![
                Change::Ddl(DdlEvent::Create {
                    ns: ns("ddl", "v1"),
                    uuid: None,
                    description: doc! { "viewOn": "nonempty", "pipeline": [{ "$match": { "a": 1 } }] },
                }),
                Change::Ddl(DdlEvent::Modify {
                    ns: ns("ddl", "v1"),
                    uuid: None,
                    description: doc! { "viewOn": "nonempty", "pipeline": [{ "$match": { "a": 2 } }] },
                }),
                Change::Ddl(DdlEvent::Drop {
                    ns: ns("ddl", "v1"),
                    uuid: None
                }),
            ]
        );
    }

    #[test]
    fn a_views_collation_is_kept_at_create_but_not_in_modify() {
        let collation = doc! { "locale": "en", "strength": 2 };
        let create = raw(
            doc! { "op": "i", "ns": "ddl.system.views", "ui": uuid(5), "o": { "_id": "ddl.v2", "viewOn": "c", "pipeline": [], "collation": collation.clone() }, "o2": { "_id": "ddl.v2" }, "ts": ts_(1, 1) },
        );
        let DdlEvent::Create { description, .. } = ddl_of(one(&create)) else {
            panic!()
        };
        assert_eq!(
            description,
            doc! { "viewOn": "c", "pipeline": [], "collation": collation.clone() }
        );
        let modify = raw(
            doc! { "op": "u", "ns": "ddl.system.views", "ui": uuid(5), "o": { "_id": "ddl.v2", "viewOn": "d", "pipeline": [], "collation": collation }, "o2": { "_id": "ddl.v2" }, "ts": ts_(1, 2) },
        );
        let DdlEvent::Modify { description, .. } = ddl_of(one(&modify)) else {
            panic!()
        };
        assert_eq!(description, doc! { "viewOn": "d", "pipeline": [] });
    }

    #[test]
    fn time_series_views_are_skipped() {
        // 5.0 adds `exclude: []`; 6.0 adds o2.
        let v50 = raw(
            doc! { "op": "i", "ns": "tsdb.system.views", "ui": uuid(5), "o": { "_id": "tsdb.ts", "viewOn": "system.buckets.ts", "pipeline": [{ "$_internalUnpackBucket": { "timeField": "t", "metaField": "m", "bucketMaxSpanSeconds": 3600, "exclude": [] } }] }, "ts": ts_(1796565576, 13), "t": 1i64, "v": 2, "wall": wall() },
        );
        let v60 = raw(
            doc! { "op": "i", "ns": "tsdb.system.views", "ui": uuid(5), "o": { "_id": "tsdb.ts", "viewOn": "system.buckets.ts", "pipeline": [{ "$_internalUnpackBucket": { "timeField": "t", "metaField": "m", "bucketMaxSpanSeconds": 3600 } }] }, "o2": { "_id": "tsdb.ts" }, "ts": ts_(1796565639, 4), "t": 1i64, "v": 2, "wall": wall() },
        );
        let granularity = raw(
            doc! { "op": "u", "ns": "tsdb.system.views", "ui": uuid(5), "o": { "_id": "tsdb.ts", "viewOn": "system.buckets.ts", "pipeline": [{ "$_internalUnpackBucket": { "timeField": "t", "bucketMaxSpanSeconds": 86400 } }] }, "o2": { "_id": "tsdb.ts" }, "ts": ts_(1, 1) },
        );
        for e in [&v50, &v60, &granularity] {
            assert_eq!(classify(e).unwrap(), Entry::Changes(vec![]), "{e:?}");
        }
    }

    #[test]
    fn a_view_update_that_is_not_a_replacement_is_an_error() {
        let e = raw(
            doc! { "op": "u", "ns": "ddl.system.views", "ui": uuid(5), "o": { "$v": 2, "diff": { "u": { "viewOn": "x" } } }, "o2": { "_id": "ddl.v1" }, "ts": ts_(1796565512, 4) },
        );
        let msg = classify(&e).unwrap_err().to_string();
        assert!(
            msg.contains("ddl.system.views") && msg.contains("replacing"),
            "{msg}"
        );
    }

    // ----- transactions -------------------------------------------------

    #[test]
    fn a_one_entry_transaction_across_two_databases_is_applied_in_order() {
        let v44 = raw(doc! {
            "lsid": lsid(), "txnNumber": 6i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [
                { "op": "i", "ns": "tx1.a", "ui": uuid(1), "o": { "_id": 1 } },
                { "op": "u", "ns": "tx1.a", "ui": uuid(1), "o": { "$v": 1, "$set": { "x": 1 } }, "o2": { "_id": 0 } },
                { "op": "i", "ns": "tx2.b", "ui": uuid(2), "o": { "_id": 1 } },
                { "op": "d", "ns": "tx2.b", "ui": uuid(2), "o": { "_id": 0 } },
            ] },
            "ts": ts_(1796565515, 6), "t": 1i64, "wall": wall(), "v": 2, "prevOpTime": zero_prev(),
        });
        let v60 = raw(doc! {
            "lsid": lsid(), "txnNumber": 6i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [
                { "op": "i", "ns": "tx1.a", "ui": uuid(1), "o": { "_id": 1 }, "o2": { "_id": 1 } },
                { "op": "u", "ns": "tx1.a", "ui": uuid(1), "o": { "$v": 2, "diff": { "i": { "x": 1 } } }, "o2": { "_id": 0 } },
                { "op": "i", "ns": "tx2.b", "ui": uuid(2), "o": { "_id": 1 }, "o2": { "_id": 1 } },
                { "op": "d", "ns": "tx2.b", "ui": uuid(2), "o": { "_id": 0 } },
            ] },
            "ts": ts_(1796565640, 6), "t": 1i64, "v": 2, "wall": wall(), "prevOpTime": zero_prev(),
        });
        for e in [&v44, &v60] {
            let Entry::Changes(c) = classify(e).unwrap() else {
                panic!("a one-entry transaction is applied at once")
            };
            let got: Vec<(Namespace, RawDocumentBuf, DocOp)> = c
                .into_iter()
                .map(|c| {
                    let c = crud_of(c);
                    (c.ns, c.key, c.op)
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (
                        ns("tx1", "a"),
                        rawdoc! { "_id": 1 },
                        DocOp::Upsert(rawdoc! { "_id": 1 })
                    ),
                    (ns("tx1", "a"), rawdoc! { "_id": 0 }, DocOp::Fetch),
                    (
                        ns("tx2", "b"),
                        rawdoc! { "_id": 1 },
                        DocOp::Upsert(rawdoc! { "_id": 1 })
                    ),
                    (ns("tx2", "b"), rawdoc! { "_id": 0 }, DocOp::Delete),
                ]
            );
        }
    }

    #[test]
    fn a_transaction_with_an_implicit_create() {
        let e = raw(doc! {
            "lsid": lsid(), "txnNumber": 7i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [
                { "op": "c", "ns": "tx1.$cmd", "ui": uuid(3), "o": { "create": "newcoll", "idIndex": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } } },
                { "op": "i", "ns": "tx1.newcoll", "ui": uuid(3), "o": { "_id": 1 }, "o2": { "_id": 1 } },
            ] },
            "ts": ts_(1796565640, 10), "t": 1i64, "v": 2, "wall": wall(), "prevOpTime": zero_prev(),
        });
        let c = changes(&e);
        assert_eq!(c.len(), 2);
        assert!(
            matches!(&c[0], Change::Ddl(DdlEvent::Create { ns: n, uuid: Some(u), .. }) if *n == ns("tx1", "newcoll") && *u == uuid(3))
        );
        assert_eq!(crud_of(c[1].clone()).ns, ns("tx1", "newcoll"));
    }

    fn big_op(id: i32) -> Document {
        doc! { "op": "i", "ns": "tx1.big", "ui": uuid(4), "o": { "_id": id, "pad": "x".repeat(16) }, "o2": { "_id": id } }
    }

    #[test]
    fn a_large_transaction_is_applied_at_its_last_entry_through_its_chain() {
        let first = raw(doc! {
            "lsid": lsid(), "txnNumber": 8i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [big_op(0), big_op(1)], "partialTxn": true },
            "ts": ts_(1796565516, 2), "t": 1i64, "wall": wall(), "v": 2, "prevOpTime": zero_prev(),
        });
        let last = raw(doc! {
            "lsid": lsid(), "txnNumber": 8i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [big_op(32), big_op(33)], "count": 4 },
            "ts": ts_(1796565516, 3), "t": 1i64, "wall": wall(), "v": 2,
            "prevOpTime": { "ts": ts_(1796565516, 2), "t": 1i64 },
        });
        assert_eq!(classify(&first).unwrap(), Entry::Skip);
        let Entry::Transaction { ops, prev } = classify(&last).unwrap() else {
            panic!("the last entry is the commit point")
        };
        assert_eq!(prev, ts_(1796565516, 2));
        assert_eq!(ops, vec![raw(big_op(32)), raw(big_op(33))]);
        let (older, before) = chain_link(&first).unwrap();
        assert_eq!(before, None);
        assert_eq!(older, vec![raw(big_op(0)), raw(big_op(1))]);
        let all: Vec<RawDocumentBuf> = older.into_iter().chain(ops).collect();
        let ids: Vec<RawDocumentBuf> = translate_ops(&all)
            .unwrap()
            .into_iter()
            .map(|c| crud_of(c).key)
            .collect();
        assert_eq!(
            ids,
            vec![
                rawdoc! { "_id": 0 },
                rawdoc! { "_id": 1 },
                rawdoc! { "_id": 32 },
                rawdoc! { "_id": 33 }
            ]
        );
        // The caller's walk gives the same, once.
        assert_eq!(replay(&[first, last]).len(), 4);
    }

    #[test]
    fn a_prepared_transaction_is_applied_at_its_commit() {
        let prepare = raw(doc! {
            "lsid": lsid(), "txnNumber": 1i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [
                { "op": "i", "ns": "p.a", "ui": uuid(1), "o": { "_id": 1 } },
                { "op": "u", "ns": "q.b", "ui": uuid(2), "o": { "$v": 1, "$set": { "y": 1 } }, "o2": { "_id": 0 } },
            ], "prepare": true },
            "ts": ts_(1796565843, 2), "t": 1i64, "wall": wall(), "v": 2, "prevOpTime": zero_prev(),
        });
        let commit = raw(doc! {
            "lsid": lsid(), "txnNumber": 1i64, "op": "c", "ns": "admin.$cmd",
            "o": { "commitTransaction": 1, "commitTimestamp": ts_(1796565843, 2) },
            "ts": ts_(1796565843, 3), "t": 1i64, "wall": wall(), "v": 2,
            "prevOpTime": { "ts": ts_(1796565843, 2), "t": 1i64 },
        });
        assert_eq!(classify(&prepare).unwrap(), Entry::Skip);
        assert_eq!(
            classify(&commit).unwrap(),
            Entry::Transaction {
                ops: vec![],
                prev: ts_(1796565843, 2)
            }
        );
        let got = replay(&[prepare.clone(), commit]);
        assert_eq!(got.len(), 2);
        assert_eq!(crud_of(got[0].clone()).ns, ns("p", "a"));
        assert_eq!(crud_of(got[1].clone()).op, DocOp::Fetch);

        // An aborted prepare gives nothing.
        let abort = raw(doc! {
            "lsid": lsid(), "txnNumber": 2i64, "op": "c", "ns": "admin.$cmd", "o": { "abortTransaction": 1 },
            "ts": ts_(1796565843, 5), "t": 1i64, "wall": wall(), "v": 2,
            "prevOpTime": { "ts": ts_(1796565843, 4), "t": 1i64 },
        });
        assert_eq!(classify(&abort).unwrap(), Entry::Skip);
        assert!(replay(&[prepare, abort]).is_empty());
    }

    #[test]
    fn a_large_prepared_transaction_is_read_back_through_two_links() {
        let partial = raw(doc! {
            "lsid": lsid(), "txnNumber": 3i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [big_op(0), big_op(1)], "partialTxn": true },
            "ts": ts_(1796565887, 3), "t": 1i64, "v": 2, "wall": wall(), "prevOpTime": zero_prev(),
        });
        let prepare = raw(doc! {
            "lsid": lsid(), "txnNumber": 3i64, "op": "c", "ns": "admin.$cmd",
            "o": { "applyOps": [big_op(32), big_op(33)], "prepare": true, "count": 4 },
            "ts": ts_(1796565887, 42), "t": 1i64, "v": 2, "wall": wall(),
            "prevOpTime": { "ts": ts_(1796565887, 3), "t": 1i64 },
        });
        let commit = raw(doc! {
            "lsid": lsid(), "txnNumber": 3i64, "op": "c", "ns": "admin.$cmd",
            "o": { "commitTransaction": 1, "commitTimestamp": ts_(1796565887, 42) },
            "ts": ts_(1796565888, 1), "t": 1i64, "v": 2, "wall": wall(),
            "prevOpTime": { "ts": ts_(1796565887, 42), "t": 1i64 },
        });
        assert_eq!(classify(&partial).unwrap(), Entry::Skip);
        assert_eq!(classify(&prepare).unwrap(), Entry::Skip);
        let (_, link) = chain_link(&prepare).unwrap();
        assert_eq!(link, Some(ts_(1796565887, 3)));
        let keys: Vec<RawDocumentBuf> = replay(&[partial, prepare, commit])
            .into_iter()
            .map(|c| crud_of(c).key)
            .collect();
        assert_eq!(
            keys,
            vec![
                rawdoc! { "_id": 0 },
                rawdoc! { "_id": 1 },
                rawdoc! { "_id": 32 },
                rawdoc! { "_id": 33 }
            ]
        );
    }

    #[test]
    fn a_users_apply_ops_is_translated_recursively() {
        // `applyOps` run by a user on their own database, with no session,
        // one level nested.
        let e = raw(doc! {
            "op": "c", "ns": "app.$cmd",
            "o": { "applyOps": [
                { "op": "i", "ns": "app.c", "ui": uuid(1), "o": { "_id": 1 } },
                { "op": "c", "ns": "admin.$cmd", "o": { "applyOps": [
                    { "op": "d", "ns": "app.c", "ui": uuid(1), "o": { "_id": 1 } },
                    { "op": "i", "ns": "config.x", "ui": uuid(9), "o": { "_id": 1 } },
                ] } },
            ] },
            "ts": ts_(1, 1), "t": 1i64, "v": 2, "wall": wall(),
        });
        let ops: Vec<DocOp> = changes(&e).into_iter().map(|c| crud_of(c).op).collect();
        assert_eq!(
            ops,
            vec![DocOp::Upsert(rawdoc! { "_id": 1 }), DocOp::Delete]
        );
        // translate_ops reads a top-level applyOps the same way.
        assert_eq!(translate_ops(&[e]).unwrap().len(), 2);
    }

    #[test]
    fn other_commands_on_user_databases_are_reported_as_other() {
        let e = raw(
            doc! { "op": "c", "ns": "app.$cmd", "ui": uuid(1), "o": { "emptycapped": "log" }, "ts": ts_(1, 1) },
        );
        assert_eq!(
            ddl_of(one(&e)),
            DdlEvent::Other {
                operation: "emptycapped".into(),
                ns: Some(ns("app", "log"))
            }
        );
        let db_wide =
            raw(doc! { "op": "c", "ns": "app.$cmd", "o": { "someDbCommand": 1 }, "ts": ts_(1, 2) });
        assert_eq!(
            ddl_of(one(&db_wide)),
            DdlEvent::Other {
                operation: "someDbCommand".into(),
                ns: Some(ns("app", ""))
            }
        );
    }

    // ----- errors -------------------------------------------------------

    #[test]
    fn ts_reads_the_entry_timestamp() {
        let e = raw(doc! { "op": "n", "ns": "", "o": {}, "ts": ts_(7, 3) });
        assert_eq!(ts(&e).unwrap(), ts_(7, 3));
        let msg = ts(&raw(doc! { "op": "n", "ns": "" }))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no ts"), "{msg}");
    }

    #[test]
    fn malformed_entries_are_errors_that_name_the_entry() {
        let at = ts_(1796565501, 3);
        let cases = [
            (doc! { "ns": "crud.c", "o": {}, "ts": at }, "no op"),
            (doc! { "op": "i", "o": { "_id": 1 }, "ts": at }, "no ns"),
            (
                doc! { "op": "i", "ns": "nodot", "ui": uuid(1), "o": { "_id": 1 }, "ts": at },
                "db.collection",
            ),
            (
                doc! { "op": "x", "ns": "crud.c", "o": {}, "ts": at },
                "none of",
            ),
            (
                doc! { "op": "i", "ns": "crud.c", "o": { "_id": 1 }, "ts": at },
                "no ui",
            ),
            (
                doc! { "op": "i", "ns": "crud.c", "ui": "not binary", "o": { "_id": 1 }, "ts": at },
                "not a binary",
            ),
            (
                doc! { "op": "i", "ns": "crud.c", "ui": uuid(1), "ts": at },
                "no o document",
            ),
            (
                doc! { "op": "i", "ns": "crud.c", "ui": uuid(1), "o": { "a": 1 }, "ts": at },
                "without _id",
            ),
            (
                doc! { "op": "u", "ns": "crud.c", "ui": uuid(1), "o": { "$v": 1, "$set": { "a": 1 } }, "ts": at },
                "no o2._id",
            ),
            (
                doc! { "op": "d", "ns": "crud.c", "ui": uuid(1), "o": {}, "ts": at },
                "without o._id",
            ),
            (
                doc! { "op": "c", "ns": "crud.$cmd", "o": {}, "ts": at },
                "empty o",
            ),
            (
                doc! { "op": "c", "ns": "crud.$cmd", "o": { "drop": 5 }, "ts": at },
                "not a collection name",
            ),
            (
                doc! { "op": "c", "ns": "crud.$cmd", "o": { "renameCollection": "crud.a" }, "ts": at },
                "no to namespace",
            ),
            (
                doc! { "op": "c", "ns": "crud.$cmd", "o": { "commitIndexBuild": "c" }, "ts": at },
                "indexes array",
            ),
            (
                doc! { "op": "c", "ns": "crud.$cmd", "o": { "dropIndexes": "c" }, "ts": at },
                "without naming",
            ),
            (
                doc! { "op": "c", "ns": "crud.c", "o": { "drop": "c" }, "ts": at },
                "other than",
            ),
            (
                doc! { "op": "c", "ns": "admin.$cmd", "o": { "applyOps": [1] }, "ts": at },
                "not a document",
            ),
            (
                doc! { "op": "c", "ns": "admin.$cmd", "o": { "applyOps": 1 }, "ts": at },
                "no applyOps array",
            ),
            (
                doc! { "op": "c", "ns": "admin.$cmd", "o": { "commitTransaction": 1 }, "ts": at },
                "prevOpTime",
            ),
            (
                doc! { "op": "c", "ns": "admin.$cmd", "o": { "applyOps": [] }, "prevOpTime": 1, "ts": at },
                "prevOpTime",
            ),
            (
                doc! { "op": "i", "ns": "ddl.system.views", "ui": uuid(5), "o": { "_id": 1, "viewOn": "c", "pipeline": [] }, "ts": at },
                "string _id",
            ),
            (
                doc! { "op": "i", "ns": "ddl.system.views", "ui": uuid(5), "o": { "_id": "ddl.v", "pipeline": [] }, "ts": at },
                "viewOn",
            ),
        ];
        for (entry, expected) in cases {
            let msg = match classify(&raw(entry.clone())) {
                Err(e) => e.to_string(),
                Ok(other) => panic!("{entry} gave {other:?}"),
            };
            assert!(msg.contains(expected), "{entry}: {msg}");
            // Every message names the entry by its ts.
            assert!(msg.contains("Timestamp(1796565501, 3)"), "{msg}");
        }
        // An operation inside applyOps has no ts; the message says so.
        let inner = raw(doc! { "op": "u", "ns": "tx.a", "ui": uuid(1), "o": { "$v": 1 } });
        let msg = translate_ops(&[inner]).unwrap_err().to_string();
        assert!(
            msg.contains("\"u\"") && msg.contains("\"tx.a\"") && msg.contains("inside applyOps"),
            "{msg}"
        );
    }

    #[test]
    fn chain_link_refuses_entries_that_are_not_apply_ops() {
        let e = raw(
            doc! { "op": "c", "ns": "admin.$cmd", "o": { "commitTransaction": 1 }, "ts": ts_(1, 1), "prevOpTime": { "ts": ts_(1, 0), "t": 1i64 } },
        );
        assert!(chain_link(&e).is_err());
        let crud = raw(
            doc! { "op": "i", "ns": "a.b", "ui": uuid(1), "o": { "applyOps": [] }, "ts": ts_(1, 2) },
        );
        assert!(chain_link(&crud).is_err());
    }

    #[test]
    fn nesting_beyond_any_server_is_an_error_not_a_stack_overflow() {
        let mut op = doc! { "op": "i", "ns": "a.b", "ui": uuid(1), "o": { "_id": 1 } };
        for _ in 0..(MAX_NESTING + 1) {
            op = doc! { "op": "c", "ns": "admin.$cmd", "o": { "applyOps": [op] } };
        }
        let msg = translate_ops(&[raw(op)]).unwrap_err().to_string();
        assert!(msg.contains("nests applyOps"), "{msg}");
    }
}
