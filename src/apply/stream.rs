//! The change-stream event source: one cluster-wide stream of the source
//! from the migration's start (or its resume token), read by a task of its
//! own into chunks of raw events, each with the token that follows it.
//!
//! The server-side pipeline keeps every event under 16 MB: it drops the
//! system databases, and full documents of 4 MB or more, which the apply
//! path fetches by `_id` instead.

use std::time::Duration;

use bson::{doc, Document, RawDocumentBuf};
use mongodb::change_stream::ChangeStream;
use tokio::sync::mpsc;

use super::chunk::Chunk;
use super::crud::WRITE_CHUNK_BYTES;
use crate::checkpoint::{MigrationDoc, Position};
use crate::context::Ctx;
use crate::error::{Error, MongoContext, Result, Role};
use crate::events::{self, Change};
use crate::scope::SYSTEM_DBS;

/// Full documents larger than this are dropped from events by the server
/// and fetched instead, so that no event can exceed 16 MB.
const INLINE_DOC_LIMIT: i32 = 4 * 1024 * 1024;
/// The longest events wait in the reader before they are handed over.
const CHUNK_MAX_WAIT: Duration = Duration::from_millis(100);

/// The server-side part of the change stream pipeline.
pub fn pipeline() -> Vec<Document> {
    vec![
        doc! { "$match": { "ns.db": { "$nin": SYSTEM_DBS.to_vec() } } },
        doc! { "$set": { "fullDocument": { "$cond": [
            { "$lt": [ { "$bsonSize": "$fullDocument" }, INLINE_DOC_LIMIT ] },
            "$fullDocument",
            "$$REMOVE",
        ] } } },
        doc! { "$unset": ["updateDescription", "stateBeforeChange", "wallTime"] },
    ]
}

/// Opens the cluster-wide stream after the saved token, or from the saved
/// oplog position (a migration resumed with another source: the entry at
/// it is replayed, harmlessly), or from the migration's start.
pub(super) async fn open(ctx: &Ctx, m: &MigrationDoc) -> Result<ChangeStream<RawDocumentBuf>> {
    let mut watch = ctx
        .src
        .client
        .watch()
        .pipeline(pipeline())
        .show_expanded_events(true)
        .max_await_time(Duration::from_millis(ctx.tuning.max_await_ms))
        .batch_size(ctx.tuning.stream_batch as u32);
    watch = match (&m.resume_token, m.oplog_position) {
        (Some(t), _) => {
            let token: mongodb::change_stream::event::ResumeToken =
                bson::from_document(t.clone()).map_err(|e| Error::Other(e.to_string()))?;
            watch.start_after(token)
        }
        (None, Some(ts)) => watch.start_at_operation_time(ts),
        (None, None) => watch.start_at_operation_time(m.start_at),
    };
    let stream = watch.await.ctx(Role::Source, "open the change stream")?;
    Ok(stream.with_type::<RawDocumentBuf>())
}

/// Reads the stream into chunks of parsed changes until the applier stops
/// listening; an error ends it, handed over as the last chunk.
pub(super) async fn read(
    mut stream: ChangeStream<RawDocumentBuf>,
    tx: mpsc::Sender<Result<Chunk>>,
    max_events: usize,
) {
    let mut events: Vec<Change> = Vec::new();
    let mut bytes = 0usize;
    let mut started = std::time::Instant::now();
    loop {
        match stream.next_if_any().await {
            Ok(Some(ev)) => {
                if events.is_empty() {
                    started = std::time::Instant::now();
                }
                bytes += ev.as_bytes().len();
                match events::parse(&ev) {
                    Ok(parsed) => events.push(parsed.change),
                    Err(e) => {
                        let _ = tx.send(Err(Error::Other(e.to_string()))).await;
                        return;
                    }
                }
                // Under a steady load the stream never runs dry: hand over
                // what has come after a short while, to keep the lag low.
                if events.len() < max_events
                    && bytes < WRITE_CHUNK_BYTES
                    && started.elapsed() < CHUNK_MAX_WAIT
                {
                    continue;
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = tx
                    .send(Err(Error::mongo(Role::Source, "read the change stream", e)))
                    .await;
                return;
            }
        }
        let position = stream
            .resume_token()
            .and_then(|t| bson::to_document(&t).ok())
            .map(Position::Token);
        let chunk = Chunk {
            changes: std::mem::take(&mut events),
            position,
        };
        bytes = 0;
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_filters_system_databases_and_trims_events() {
        let p = pipeline();
        let m = p[0]
            .get_document("$match")
            .unwrap()
            .get_document("ns.db")
            .unwrap();
        let excluded: Vec<&str> = m
            .get_array("$nin")
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for db in ["admin", "local", "config", "__mongoferry"] {
            assert!(excluded.contains(&db), "{db}");
        }
        assert!(p[2]
            .get_array("$unset")
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some("updateDescription")));
    }
}
