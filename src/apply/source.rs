//! The one interface both event sources feed: chunks of parsed changes, in
//! the source's order, each with the position that follows its last
//! change. The apply loop neither knows nor cares which source a chunk
//! came from; collapsing, batching, DDL barriers and checkpoints exist
//! once, in [`super`].
//!
//! A source reads in a task of its own, so that the next chunk is read
//! while the last one is applied.

use tokio::sync::mpsc;

use super::chunk::Chunk;
use crate::checkpoint::MigrationDoc;
use crate::context::Ctx;
use crate::error::Result;
use crate::progress::EventSource;

/// A source's reader task and the chunks it hands over. Dropping it stops
/// the task.
pub(super) struct Reader {
    pub chunks: mpsc::Receiver<Result<Chunk>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Chunks in flight between a reader and the applier.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Opens the migration's event source where its checkpoint stands and
/// starts reading.
pub(super) async fn open(ctx: &Ctx, m: &MigrationDoc) -> Result<Reader> {
    let (tx, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let task = match ctx.event_source {
        EventSource::ChangeStream => {
            let stream = super::stream::open(ctx, m).await?;
            tokio::spawn(super::stream::read(stream, tx, ctx.tuning.stream_batch))
        }
        EventSource::Oplog => {
            let reader = super::oplog::open(ctx, m).await?;
            tokio::spawn(reader.read(tx))
        }
    };
    Ok(Reader { chunks, task })
}
