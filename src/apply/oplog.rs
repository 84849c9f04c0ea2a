//! The oplog event source: the source's `local.oplog.rs`, tailed from the
//! migration's position, each entry turned into the changes the apply path
//! already knows ([`crate::events::oplog`]).
//!
//! It is what older sources need: before 6.0 a change stream reports no
//! create, index build or collMod, and its events carry no collection
//! UUID; the oplog has all of it, in order. It works on any replica set
//! from 4.4, 6.0 included, so both sources can be tested on the same data.
//!
//! **Transactions:** a transaction's operations are applied only at its
//! commit, the entry without `partialTxn` (or a prepared transaction's
//! `commitTransaction`). Its earlier entries are read back through the
//! `prevOpTime` chain at that point, so no transaction is ever held in
//! memory across chunks, and a position saved between a transaction's
//! entries resumes correctly: the entries after it hold the commit, which
//! reads the whole chain back again.
//!
//! **History:** the first reply is checked against the oplog's oldest
//! entry: if the position has left the oplog, entries were lost and the
//! sync fails with `history_lost` rather than skip them.

use std::time::Duration;

use bson::{RawDocumentBuf, Timestamp};
use futures_util::StreamExt;
use mongodb::raw_batch_cursor::RawBatchCursor;
use tokio::sync::mpsc;

use super::chunk::Chunk;
use crate::checkpoint::{token_time, MigrationDoc, Position};
use crate::cluster::Cluster;
use crate::context::Ctx;
use crate::driver_error::CAPPED_POSITION_LOST;
use crate::error::{Error, Result, Role};
use crate::events::oplog::{chain_link, classify, translate_ops, ts, Entry};
use crate::events::Change;

/// An open tail of the source's oplog.
pub(super) struct OplogReader {
    src: Cluster,
    cursor: RawBatchCursor,
    /// Where the read starts: entries after it (and at it, when the
    /// position is a time rather than an applied entry).
    from: Timestamp,
    /// The last entry read.
    last: Option<Timestamp>,
}

/// Opens the tail after the saved oplog position; or at the time of a saved
/// change-stream token (a migration resumed with another source: the events
/// at that time are replayed, harmlessly); or at the migration's start.
pub(super) async fn open(ctx: &Ctx, m: &MigrationDoc) -> Result<OplogReader> {
    let (from, inclusive) = match (
        m.oplog_position,
        m.resume_token.as_ref().and_then(token_time),
    ) {
        (Some(ts), _) => (ts, false),
        (None, Some(t)) => (t, true),
        (None, None) => (m.start_at, true),
    };
    let cursor = crate::oplog::tail(
        &ctx.src,
        from,
        inclusive,
        ctx.tuning.stream_batch as u32,
        Duration::from_millis(ctx.tuning.max_await_ms),
    )
    .await?;
    tracing::debug!(?from, inclusive, "tailing the source's oplog");
    Ok(OplogReader {
        src: ctx.src.clone(),
        cursor,
        from,
        last: m.oplog_position,
    })
}

impl OplogReader {
    /// Reads chunks until the applier stops listening; an error ends it,
    /// handed over as the last chunk.
    pub(super) async fn read(mut self, tx: mpsc::Sender<Result<Chunk>>) {
        if let Err(e) = self.run(&tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn run(&mut self, tx: &mpsc::Sender<Result<Chunk>>) -> Result<()> {
        let mut checked = false;
        loop {
            let batch = match self.cursor.next().await {
                Some(Ok(b)) => b,
                Some(Err(e))
                    if crate::driver_error::server_code(&e) == Some(CAPPED_POSITION_LOST) =>
                {
                    return Err(Error::HistoryLost)
                }
                Some(Err(e)) => return Err(Error::mongo(Role::Source, "read the oplog", e)),
                // The server closed the tail (a restart, or a cursor
                // timed out): open it again from the checkpoint.
                None => {
                    return Err(Error::Mongo {
                        role: Role::Source,
                        op: "read the oplog".into(),
                        message: "the server closed the oplog cursor".into(),
                        code: None,
                        transient: true,
                    })
                }
            };
            if !checked {
                // Truncation only ever removes the oldest entries: if the
                // oldest is still at or before where the read started, the
                // reply missed nothing.
                if let Some(oldest) = crate::oplog::oldest_entry(&self.src).await {
                    if (oldest.time, oldest.increment) > (self.from.time, self.from.increment) {
                        return Err(Error::HistoryLost);
                    }
                }
                checked = true;
            }
            let entries = batch
                .doc_slices()
                .map_err(|e| Error::mongo(Role::Source, "read the oplog", e))?;
            let mut changes: Vec<Change> = Vec::new();
            for entry in entries {
                let entry = entry
                    .ok()
                    .and_then(|e| e.as_document())
                    .ok_or_else(|| Error::Other("an oplog entry that is not a document".into()))?;
                let at = ts(entry).map_err(|e| Error::Other(e.to_string()))?;
                match classify(entry).map_err(|e| Error::Other(e.to_string()))? {
                    Entry::Changes(c) => changes.extend(c),
                    Entry::Transaction { ops, prev } => {
                        let mut all = chain(&self.src, prev).await?;
                        all.extend(ops);
                        changes
                            .extend(translate_ops(&all).map_err(|e| Error::Other(e.to_string()))?);
                    }
                    Entry::Skip => {}
                }
                self.last = Some(at);
            }
            let chunk = Chunk {
                changes,
                position: self.last.map(Position::Oplog),
            };
            if tx.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// The operations of a transaction's earlier entries, oldest first,
/// read back from `prev` through their `prevOpTime` links.
async fn chain(src: &Cluster, mut prev: Timestamp) -> Result<Vec<RawDocumentBuf>> {
    let mut links: Vec<Vec<RawDocumentBuf>> = Vec::new();
    loop {
        let Some(entry) = crate::oplog::entry_at(src, prev).await? else {
            // The transaction began before the oplog's oldest entry.
            return Err(Error::HistoryLost);
        };
        let (ops, before) = chain_link(&entry).map_err(|e| Error::Other(e.to_string()))?;
        links.push(ops);
        match before {
            Some(t) => prev = t,
            None => break,
        }
    }
    Ok(links.into_iter().rev().flatten().collect())
}
