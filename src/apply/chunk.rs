//! What an event source hands the applier: changes in the source's order,
//! and where the source stands after them.

use crate::checkpoint::Position;
use crate::events::Change;

/// Changes read from the source, with where the source stands after them.
pub(super) struct Chunk {
    pub changes: Vec<Change>,
    /// The position after the last change: `None` when the source has no
    /// new position to give (the applier then saves nothing).
    pub position: Option<Position>,
}
