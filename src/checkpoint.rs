//! The migration's durable state, kept on the destination in the
//! `__mongoferry` database so that any process, on any machine, can resume.
//!
//! **Invariant:** every write here uses `{w: "majority", j: true}` and is
//! made only after the data writes it vouches for were acknowledged. The
//! destination's oplog is ordered, so a durable checkpoint makes the data
//! before it durable too, even though data is written with `w: 1`.

use bson::{doc, Binary, Bson, DateTime, Document, Timestamp};
use futures_util::TryStreamExt;
use mongodb::options::ReplaceOptions;
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};

use crate::catalog::NsKind;
use crate::cluster::{majority_journaled, Cluster};
use crate::error::{MongoContext, Result, Role};
use crate::scope::{Namespace, METADATA_DB};

const MIGRATION_ID: &str = "migration";

/// Where a stored migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredPhase {
    Copying,
    Applying,
    Committing,
    Committed,
}

/// The one document that describes the migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub migration_id: String,
    pub phase: StoredPhase,
    /// The source cluster time the change stream starts from.
    pub start_at: Timestamp,
    /// The token after the last event whose effects, and those of every
    /// event before it, are applied on the destination (change streams).
    pub resume_token: Option<Document>,
    /// The `ts` of the last oplog entry whose effects, and those of every
    /// entry before it, are applied (the oplog source). At most one of the
    /// two positions is set: saving one clears the other.
    #[serde(default)]
    pub oplog_position: Option<Timestamp>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub source_identity: String,
    /// Whether the namespaces and partitions of the copy are planned.
    pub planned: bool,
    /// The source time that commit catches up to.
    pub commit_target: Option<Timestamp>,
    /// Keeps a way back: the commit blocks the source's user writes and
    /// records [`MigrationDoc::handoff`].
    #[serde(default)]
    pub reversible: bool,
    /// 0 for a migration, 1 for its reverse, 2 for the reverse's reverse…
    /// Each direction's state lives on its own destination, so of the two
    /// clusters' documents the higher generation is the live one.
    #[serde(default)]
    pub generation: u32,
    /// The migration this one reverses, whose destination is this one's
    /// source.
    #[serde(default)]
    pub reverse_of: Option<String>,
    /// The destination's cluster time once the commit's last write was
    /// made and before any application could write to it: where its
    /// reverse reads the destination's changes from.
    #[serde(default)]
    pub handoff: Option<Timestamp>,
    /// Its reverse has started, and is stored on the source.
    #[serde(default)]
    pub reversed: bool,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

impl MigrationDoc {
    /// The source time up to which every event is applied, from whichever
    /// position the sync saved last.
    pub fn applied_time(&self) -> Option<Timestamp> {
        self.oplog_position
            .or_else(|| self.resume_token.as_ref().and_then(token_time))
    }

    /// The position saved last, whichever source's it is.
    pub fn position(&self) -> Option<Position> {
        match (&self.resume_token, self.oplog_position) {
            (Some(t), _) => Some(Position::Token(t.clone())),
            (None, Some(ts)) => Some(Position::Oplog(ts)),
            (None, None) => None,
        }
    }

    /// Records a position saved with [`Store::save_position`].
    pub fn set_position(&mut self, position: Position) {
        match position {
            Position::Token(token) => {
                self.resume_token = Some(token);
                self.oplog_position = None;
            }
            Position::Oplog(ts) => {
                self.oplog_position = Some(ts);
                self.resume_token = None;
            }
        }
    }
}

/// Where the sync has applied up to, in its event source's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// A change stream's resume token.
    Token(Document),
    /// The `ts` of an oplog entry.
    Oplog(Timestamp),
}

impl Position {
    /// The source time of the position.
    pub fn time(&self) -> Option<Timestamp> {
        match self {
            Position::Token(t) => token_time(t),
            Position::Oplog(ts) => Some(*ts),
        }
    }
}

/// A namespace the migration created on the destination, and the source
/// collection it mirrors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceDoc {
    /// `db.coll` on the destination.
    #[serde(rename = "_id")]
    pub ns: String,
    pub kind: NsKind,
    /// The source collection's UUID; none for views.
    pub uuid: Option<Binary>,
    pub capped: bool,
    pub estimated_docs: u64,
    pub estimated_bytes: u64,
    /// Every partition copied and every index built.
    pub copied: bool,
}

impl NamespaceDoc {
    pub fn namespace(&self) -> Namespace {
        Namespace::parse(&self.ns).unwrap_or_else(|| Namespace::new(&self.ns, ""))
    }
}

/// How a range of a collection's copy is bounded and read.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RangeKey {
    /// `[min, max)` in `_id` index order, read with `hint({_id: 1})` plus
    /// `min`/`max` index bounds. Works on any topology and any node.
    #[default]
    Id,
    /// `(min, max]` in record-id order, read as a collection scan that
    /// starts after `min` (`$_resumeAfter`) and stops past `max`. Record
    /// ids belong to one node, so the range names it in `node`.
    RecordId,
    /// The whole collection in natural order (capped collections, and
    /// collections too small to split).
    Natural,
}

/// One range of a collection's copy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionDoc {
    /// `<ns>#<n>`.
    #[serde(rename = "_id")]
    pub id: String,
    pub ns: String,
    pub n: u32,
    #[serde(default)]
    pub key: RangeKey,
    /// The lower bound; none for the first range. Inclusive for `_id`,
    /// exclusive for record ids.
    pub min: Option<Bson>,
    /// The upper bound; none for the last range. Exclusive for `_id`,
    /// inclusive for record ids.
    pub max: Option<Bson>,
    /// For record-id ranges: the `host:port` of the source node whose
    /// record ids bound the range, and which alone may read it.
    #[serde(default)]
    pub node: Option<String>,
    /// For record-id ranges: other record ids just below `min`, nearest
    /// first, where the read can start if the document at `min` has been
    /// deleted since the plan (`$_resumeAfter` needs one that exists).
    #[serde(default)]
    pub fallback_starts: Vec<i64>,
    pub done: bool,
    pub docs: u64,
    pub bytes: u64,
}

/// A document that could not be written, kept for the user to act on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDoc {
    pub ns: String,
    pub document_id: Bson,
    pub code: i32,
    pub message: String,
    pub at: DateTime,
}

impl ProblemDoc {
    /// A failure to write `doc` (a whole document or an `{_id: ...}` key)
    /// to `ns`.
    pub fn new(ns: &str, doc: &bson::RawDocument, code: i32, message: &str) -> ProblemDoc {
        let document_id = doc
            .get("_id")
            .ok()
            .flatten()
            .and_then(|v| Bson::try_from(v.to_raw_bson()).ok())
            .unwrap_or(Bson::Null);
        ProblemDoc {
            ns: ns.to_string(),
            document_id,
            code,
            message: message.to_string(),
            at: DateTime::now(),
        }
    }
}

/// `__mongoferry.settings`' load document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredLoad {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    setting: crate::load::LoadSetting,
    updated_at: DateTime,
}

/// Reads and writes the `__mongoferry` database.
#[derive(Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(dest: &Cluster) -> Store {
        let db = dest.client.database_with_options(
            METADATA_DB,
            mongodb::options::DatabaseOptions::builder()
                .write_concern(majority_journaled())
                .read_concern(mongodb::options::ReadConcern::majority())
                .build(),
        );
        Store { db }
    }

    fn migrations(&self) -> Collection<MigrationDoc> {
        self.db.collection("state")
    }

    pub fn namespaces(&self) -> Collection<NamespaceDoc> {
        self.db.collection("namespaces")
    }

    pub fn partitions(&self) -> Collection<PartitionDoc> {
        self.db.collection("partitions")
    }

    pub fn problems(&self) -> Collection<ProblemDoc> {
        self.db.collection("problems")
    }

    pub async fn load(&self) -> Result<Option<MigrationDoc>> {
        self.migrations()
            .find_one(doc! { "_id": MIGRATION_ID })
            .await
            .ctx(Role::Destination, "read the migration's checkpoint")
    }

    pub async fn save(&self, m: &MigrationDoc) -> Result<()> {
        let mut m = m.clone();
        m.id = MIGRATION_ID.to_string();
        m.updated_at = DateTime::now();
        self.migrations()
            .replace_one(doc! { "_id": MIGRATION_ID }, &m)
            .with_options(ReplaceOptions::builder().upsert(true).build())
            .await
            .ctx(Role::Destination, "save the migration's checkpoint")?;
        Ok(())
    }

    /// Saves the resume token (and phase) in one majority write.
    /// Saves where the sync has applied up to. Written after the data it
    /// vouches for (see the module's invariant), and clears the other
    /// source's position, so a migration resumed with another event source
    /// starts from this one.
    pub async fn save_position(&self, position: &Position) -> Result<()> {
        let update = match position {
            Position::Token(token) => doc! {
                "$set": { "resumeToken": token, "updatedAt": DateTime::now() },
                "$unset": { "oplogPosition": "" },
            },
            Position::Oplog(ts) => doc! {
                "$set": { "oplogPosition": ts, "updatedAt": DateTime::now() },
                "$unset": { "resumeToken": "" },
            },
        };
        self.migrations()
            .update_one(doc! { "_id": MIGRATION_ID }, update)
            .await
            .ctx(Role::Destination, "save the sync's position")?;
        Ok(())
    }

    pub fn new_migration(
        start_at: Timestamp,
        include: Vec<String>,
        exclude: Vec<String>,
        source_identity: String,
    ) -> MigrationDoc {
        MigrationDoc {
            id: MIGRATION_ID.to_string(),
            migration_id: uuid::Uuid::new_v4().to_string(),
            phase: StoredPhase::Copying,
            start_at,
            resume_token: None,
            oplog_position: None,
            include,
            exclude,
            source_identity,
            planned: false,
            commit_target: None,
            reversible: false,
            generation: 0,
            reverse_of: None,
            handoff: None,
            reversed: false,
            created_at: DateTime::now(),
            updated_at: DateTime::now(),
        }
    }

    pub async fn all_namespaces(&self) -> Result<Vec<NamespaceDoc>> {
        self.namespaces()
            .find(doc! {})
            .await
            .ctx(Role::Destination, "read the migration's namespaces")?
            .try_collect()
            .await
            .ctx(Role::Destination, "read the migration's namespaces")
    }

    pub async fn put_namespace(&self, n: &NamespaceDoc) -> Result<()> {
        self.namespaces()
            .replace_one(doc! { "_id": &n.ns }, n)
            .with_options(ReplaceOptions::builder().upsert(true).build())
            .await
            .ctx(Role::Destination, "record a namespace")?;
        Ok(())
    }

    pub async fn remove_namespace(&self, ns: &str) -> Result<()> {
        self.namespaces()
            .delete_one(doc! { "_id": ns })
            .await
            .ctx(Role::Destination, "record a dropped namespace")?;
        Ok(())
    }

    pub async fn mark_copied(&self, ns: &str) -> Result<()> {
        self.namespaces()
            .update_one(doc! { "_id": ns }, doc! { "$set": { "copied": true } })
            .await
            .ctx(Role::Destination, "record a copied collection")?;
        Ok(())
    }

    pub async fn put_partitions(&self, parts: &[PartitionDoc]) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        // Replayed after a crash mid-plan: replace, never duplicate.
        for p in parts {
            self.partitions()
                .replace_one(doc! { "_id": &p.id }, p)
                .with_options(ReplaceOptions::builder().upsert(true).build())
                .await
                .ctx(Role::Destination, "record the copy plan")?;
        }
        Ok(())
    }

    pub async fn all_partitions(&self) -> Result<Vec<PartitionDoc>> {
        self.partitions()
            .find(doc! {})
            .sort(doc! { "ns": 1, "n": 1 })
            .await
            .ctx(Role::Destination, "read the copy plan")?
            .try_collect()
            .await
            .ctx(Role::Destination, "read the copy plan")
    }

    pub async fn mark_partition_done(&self, id: &str, docs: u64, bytes: u64) -> Result<()> {
        self.partitions()
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "done": true, "docs": docs as i64, "bytes": bytes as i64 } },
            )
            .await
            .ctx(Role::Destination, "record a copied range")?;
        Ok(())
    }

    pub async fn record_problems(&self, problems: Vec<ProblemDoc>) -> Result<()> {
        if problems.is_empty() {
            return Ok(());
        }
        self.problems()
            .insert_many(problems)
            .await
            .ctx(Role::Destination, "record documents that failed")?;
        Ok(())
    }

    /// Takes or renews the destination's lease for `owner`, valid for
    /// `ttl` by the destination's clock. Returns false when another live
    /// process holds it. One process at a time drives a migration.
    pub async fn acquire_lease(&self, owner: &str, ttl: std::time::Duration) -> Result<bool> {
        // Expiry is judged by the destination's clock, so that processes on
        // machines with skewed clocks agree.
        let hello = self
            .db
            .client()
            .database("admin")
            .run_command(doc! { "hello": 1 })
            .await
            .ctx(Role::Destination, "read its clock")?;
        let now = hello
            .get_datetime("localTime")
            .copied()
            .unwrap_or_else(|_| DateTime::now());
        let expires = DateTime::from_millis(now.timestamp_millis() + ttl.as_millis() as i64);
        let leases = self.db.collection::<Document>("lease");
        let res = leases
            .update_one(
                doc! { "_id": "lease", "$or": [ { "owner": owner }, { "expiresAt": { "$lt": now } } ] },
                doc! { "$set": { "owner": owner, "expiresAt": expires } },
            )
            .upsert(true)
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if crate::driver_error::server_code(&e)
                    == Some(crate::driver_error::DUPLICATE_KEY) =>
            {
                Ok(false)
            }
            Err(e) => Err(crate::Error::mongo(
                Role::Destination,
                "take the migration's lease",
                e,
            )),
        }
    }

    pub async fn release_lease(&self, owner: &str) -> Result<()> {
        self.db
            .collection::<Document>("lease")
            .delete_one(doc! { "_id": "lease", "owner": owner })
            .await
            .ctx(Role::Destination, "release the migration's lease")?;
        Ok(())
    }

    /// The load setting, a document of its own: [`Store::save`] replaces
    /// the migration's document whole, from a copy that may predate a
    /// change made live.
    pub async fn save_load(&self, setting: &crate::load::LoadSetting) -> Result<()> {
        let stored = StoredLoad {
            id: "load".into(),
            setting: *setting,
            updated_at: DateTime::now(),
        };
        self.db
            .collection::<StoredLoad>("settings")
            .replace_one(doc! { "_id": "load" }, stored)
            .with_options(ReplaceOptions::builder().upsert(true).build())
            .await
            .ctx(Role::Destination, "save the load level")?;
        Ok(())
    }

    /// The load setting saved by [`Store::save_load`], if any.
    pub async fn load_setting(&self) -> Result<Option<crate::load::LoadSetting>> {
        let found = self
            .db
            .collection::<Document>("settings")
            .find_one(doc! { "_id": "load" })
            .await
            .ctx(Role::Destination, "read the load level")?;
        // One that no longer reads (an older layout) gives way to the
        // default rather than stopping the migration.
        Ok(found.and_then(|d| match bson::from_document(d) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "the stored load level is unreadable; using the default");
                None
            }
        }))
    }

    /// Forgets the migration: its state database goes, nothing else.
    /// The destination's namespaces at a reversible migration's handoff,
    /// by their UUIDs on this cluster: what its reverse maps events by.
    fn handoff(&self) -> Collection<NamespaceDoc> {
        self.db.collection("handoff")
    }

    pub async fn save_handoff(&self, namespaces: &[NamespaceDoc]) -> Result<()> {
        self.handoff()
            .delete_many(doc! {})
            .await
            .ctx(Role::Destination, "clear the handoff's namespaces")?;
        if !namespaces.is_empty() {
            self.handoff()
                .insert_many(namespaces)
                .await
                .ctx(Role::Destination, "save the handoff's namespaces")?;
        }
        Ok(())
    }

    pub async fn handoff_namespaces(&self) -> Result<Vec<NamespaceDoc>> {
        self.handoff()
            .find(doc! {})
            .await
            .ctx(Role::Destination, "read the handoff's namespaces")?
            .try_collect()
            .await
            .ctx(Role::Destination, "read the handoff's namespaces")
    }

    /// Drops every collection of the state but the lease, which the
    /// process that calls this holds.
    pub async fn clear_except_lease(&self) -> Result<()> {
        let names = self
            .db
            .list_collection_names()
            .await
            .ctx(Role::Destination, "list the old migration state")?;
        for name in names.iter().filter(|n| n.as_str() != "lease") {
            self.db
                .collection::<Document>(name)
                .drop()
                .await
                .ctx(Role::Destination, "drop the old migration state")?;
        }
        Ok(())
    }

    pub async fn drop_all(&self) -> Result<()> {
        self.db
            .drop()
            .await
            .ctx(Role::Destination, "drop the old migration state")
    }
}

/// The source cluster time a resume token stands for. A token's `_data` is
/// a hex KeyString whose first value is the event's cluster time (type byte
/// 0x82, then seconds and increment as big-endian u32s).
pub fn token_time(token: &Document) -> Option<Timestamp> {
    let data = token.get_str("_data").ok()?;
    if data.len() < 18 || !data[..2].eq_ignore_ascii_case("82") {
        return None;
    }
    let time = u32::from_str_radix(&data[2..10], 16).ok()?;
    let increment = u32::from_str_radix(&data[10..18], 16).ok()?;
    Some(Timestamp { time, increment })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_time_reads_the_cluster_time() {
        let t = token_time(&doc! { "_data": "826B060F74000000312B022C0100296E04" }).unwrap();
        assert_eq!((t.time, t.increment), (0x6B06_0F74, 0x31));
        assert!(token_time(&doc! { "_data": "zz" }).is_none());
        assert!(token_time(&doc! {}).is_none());
    }
}
