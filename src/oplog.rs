//! Reading a replica set's oplog (`local.oplog.rs`): how far back it
//! reaches, its last write, one entry by `ts`, and a tailable cursor from a
//! position.
//!
//! What the entries mean is [`crate::events::oplog`]'s to say; following
//! them is the apply path's. This module only reads, and only what a
//! member with read access to the `local` database may read.
//!
//! Reads of the oplog use the majority read concern, like every other read
//! of the source: an entry a failover could roll back is never returned,
//! so it is never applied.

use std::time::Duration;

use bson::{doc, rawdoc, Document, RawDocumentBuf, Timestamp};
use futures_util::TryStreamExt;
use mongodb::options::{CursorType, ReadConcern};
use mongodb::raw_batch_cursor::RawBatchCursor;

use crate::cluster::Cluster;
use crate::error::{Error, MongoContext, Result};

const DB: &str = "local";
const COLLECTION: &str = "oplog.rs";

/// The time of the oldest oplog entry; `None` where it cannot be read (a
/// `mongos`, or a user without read access to `local`).
pub async fn oldest_entry(src: &Cluster) -> Option<Timestamp> {
    // `local` does not take the majority read concern the source client
    // uses for finds of this kind; the oldest entry is committed anyway.
    let options = mongodb::options::CollectionOptions::builder()
        .read_concern(ReadConcern::local())
        .build();
    src.client
        .database(DB)
        .collection_with_options::<Document>(COLLECTION, options)
        .find_one(doc! {})
        .sort(doc! { "$natural": 1 })
        .projection(doc! { "ts": 1 })
        .await
        .ok()
        .flatten()
        .and_then(|d| d.get_timestamp("ts").ok())
}

/// The `ts` of the last entry the member has written (`hello`'s
/// `lastWrite.opTime`): what a sync that has applied it has caught up to.
pub async fn last_write(src: &Cluster) -> Result<Timestamp> {
    let hello = src
        .client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .ctx(src.role, "read its last write (hello)")?;
    hello
        .get_document("lastWrite")
        .and_then(|w| w.get_document("opTime"))
        .and_then(|o| o.get_timestamp("ts"))
        .map_err(|_| Error::NotReplicaSet { role: src.role })
}

/// The entry whose `ts` is `ts`, if the oplog still holds it.
pub async fn entry_at(src: &Cluster, ts: Timestamp) -> Result<Option<RawDocumentBuf>> {
    // A range on `ts`, not an equality: the server turns a `ts` range on
    // the oplog into a bounded scan of its timestamp-keyed records.
    let cmd = rawdoc! {
        "find": COLLECTION,
        "filter": { "ts": { "$gte": ts, "$lte": ts } },
        "limit": 1,
        "readConcern": { "level": "majority" },
    };
    let cursor = src
        .client
        .database(DB)
        .run_raw_cursor_command(cmd)
        .await
        .ctx(src.role, "read an oplog entry")?;
    let found: Vec<RawDocumentBuf> = cursor
        .with_type::<RawDocumentBuf>()
        .try_collect()
        .await
        .ctx(src.role, "read an oplog entry")?;
    Ok(found.into_iter().next())
}

/// A tailable, awaiting cursor over the entries after `from` (and at it,
/// when `inclusive`), read a whole reply at a time. An idle `getMore`
/// returns an empty batch after `max_await`, and the cursor stays open.
pub async fn tail(
    src: &Cluster,
    from: Timestamp,
    inclusive: bool,
    batch_size: u32,
    max_await: Duration,
) -> Result<RawBatchCursor> {
    let bound = if inclusive { "$gte" } else { "$gt" };
    let mut filter = RawDocumentBuf::new();
    filter.append(bound, from);
    let cmd = rawdoc! {
        "find": COLLECTION,
        "filter": { "ts": filter },
        "tailable": true,
        "awaitData": true,
        "batchSize": batch_size as i32,
        "readConcern": { "level": "majority" },
    };
    src.client
        .database(DB)
        .run_raw_cursor_command(cmd)
        .cursor_type(CursorType::TailableAwait)
        .max_time(max_await)
        .batch_size(batch_size)
        .batch()
        .await
        .ctx(src.role, "read the oplog")
}
