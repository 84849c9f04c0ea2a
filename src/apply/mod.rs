//! Continuous sync: read the source's cluster-wide change stream and apply
//! each batch of events to the destination, then checkpoint.
//!
//! **Architecture Invariant:** the resume token is persisted only after
//! every event before it has been applied. A DDL event is a barrier: the
//! CRUD batch before it is flushed, then the DDL is applied, alone.
//!
//! Events name collections by UUID, and the destination collection that
//! mirrors each source UUID is tracked in [`Mapping`]. Events of a UUID the
//! migration does not mirror (out of scope, or an incarnation dropped before
//! the copy saw it) are skipped; that is what makes DDL during the copy safe.
//!
//! # Layout
//! - [`stream`]: the event source, the source's change stream read into
//!   chunks of raw events.
//! - this module: the loop that parses, collapses and applies each chunk,
//!   then saves its token; pause and commit.
//! - [`crud`]: writing a collapsed batch of document changes.
//! - [`ddl`]: applying one DDL event.
//! - [`mapping`]: source collection UUID to destination namespace.

mod chunk;
mod crud;
mod ddl;
mod mapping;
mod oplog;
mod source;
mod stream;

use std::sync::Arc;

use crate::checkpoint::{MigrationDoc, StoredPhase};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::events::{Batch, Change};
use crate::progress::EventSource;
use crate::retry::{self, Backoff};
use crud::flush;
use ddl::apply_ddl;
use mapping::Mapping;

/// Why the apply loop returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ApplyExit {
    /// Commit was requested and every event up to its target is applied.
    CaughtUp,
    /// Paused: the loop stops reading until resumed.
    Paused,
}

/// Runs continuous sync until commit has caught up. Transient failures of
/// either side restart the stream from the last checkpoint with backoff.
pub(crate) async fn run(ctx: &Arc<Ctx>, m: &mut MigrationDoc) -> Result<()> {
    let mut mapping = Mapping::from_docs(&ctx.store.all_namespaces().await?);
    let mut backoff = Backoff::default();
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        ctx.gate().await?;
        match run_source(ctx, m, &mut mapping).await {
            Ok(ApplyExit::CaughtUp) => return Ok(()),
            Ok(ApplyExit::Paused) => {
                backoff.reset();
                failing_since = None;
            }
            Err(e) if e.is_transient() => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > retry::GIVE_UP_AFTER {
                    return Err(e);
                }
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "sync interrupted; resuming from the last checkpoint");
                ctx.tracker
                    .warn(format!("{} Retrying in {:.1} s.", e, delay.as_secs_f64()));
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn run_source(
    ctx: &Arc<Ctx>,
    m: &mut MigrationDoc,
    mapping: &mut Mapping,
) -> Result<ApplyExit> {
    let mut reader = source::open(ctx, m).await?;
    let mut control = ctx.control.clone();
    loop {
        if let Some(exit) = check_control(ctx, m).await? {
            return Ok(exit);
        }
        let first = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(Error::Interrupted),
            _ = control.changed() => continue,
            c = reader.chunks.recv() => c,
        };
        let Some(first) = first else {
            return Err(Error::Other(format!(
                "the {} reader stopped",
                ctx.event_source
            )));
        };
        let mut chunks = vec![first?];
        while chunks.len() < 8 {
            match reader.chunks.try_recv() {
                Ok(c) => chunks.push(c?),
                Err(_) => break,
            }
        }
        let position = chunks.iter().rev().find_map(|c| c.position.clone());
        let mut batch = Batch::default();
        let mut applied_events = 0u64;
        for change in chunks.into_iter().flat_map(|c| c.changes) {
            match change {
                Change::Crud(ev) => batch.push(ev),
                Change::Ddl(ddl) => {
                    applied_events += flush(ctx, mapping, std::mem::take(&mut batch)).await?;
                    apply_ddl(ctx, mapping, ddl).await?;
                    applied_events += 1;
                }
            }
        }
        applied_events += flush(ctx, mapping, batch).await?;
        match position {
            // Every change up to this position is applied: now it may be
            // saved. An unchanged one (an idle source) need not be.
            Some(position) => {
                if m.position().as_ref() != Some(&position) {
                    ctx.store.save_position(&position).await?;
                }
                ctx.tracker.applied(applied_events, position.time());
                m.set_position(position);
            }
            None => ctx.tracker.applied(applied_events, None),
        }
    }
}

/// Acts on pause and commit requests between batches.
async fn check_control(ctx: &Arc<Ctx>, m: &mut MigrationDoc) -> Result<Option<ApplyExit>> {
    let control = ctx.control.borrow().clone();
    if control.paused && m.phase == StoredPhase::Applying {
        return Ok(Some(ApplyExit::Paused));
    }
    if let Some(req) = control.commit {
        if m.phase == StoredPhase::Applying {
            // A reversible migration's source stays blocked after the
            // commit: its reverse is then the only writer to it.
            if req.block_source_writes || m.reversible {
                crate::catalog::set_user_writes(&ctx.src, false).await?;
                tracing::info!("commit: the source's user writes are blocked");
            }
            // The oplog gives no position between its entries: catching
            // up means applying the last one written. A change stream's
            // token moves with the cluster time even when nothing happens.
            let target = match ctx.event_source {
                EventSource::ChangeStream => ctx.src.cluster_time().await?,
                EventSource::Oplog => crate::oplog::last_write(&ctx.src).await?,
            };
            m.phase = StoredPhase::Committing;
            m.commit_target = Some(target);
            ctx.store.save(m).await?;
            ctx.tracker.committing(target);
            tracing::info!(?target, "commit: catching up to the source");
        }
    }
    if m.phase == StoredPhase::Committing {
        let target = m.commit_target.unwrap_or(m.start_at);
        let applied = m.applied_time();
        if applied.is_some_and(|a| (a.time, a.increment) >= (target.time, target.increment)) {
            return Ok(Some(ApplyExit::CaughtUp));
        }
    }
    Ok(None)
}
