//! The bench's own reads and writes: seeding, the insert ceiling, the
//! naive copy, cleaning the destination between phases, and verifying
//! the destination after the commit.
//!
//! Every write here uses `{w: 1}`, as the engine's copy does, so that the
//! three copies differ in how they copy, not in what they wait for.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bson::{doc, Document, RawDocumentBuf};
use futures_util::{stream, StreamExt, TryStreamExt};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Collection};
use mongoferry::sandbox::workload::{mixed_id, sample_doc};
use mongoferry::scope::METADATA_DB;

/// The database the benchmark migrates.
pub const BENCH_DB: &str = "bench";
/// Its collection of `--docs` documents.
pub const DOCS_COLL: &str = "docs";
/// Where the ceiling and the naive copy write on the destination.
const CEILING_DB: &str = "bench_ceiling";
const NAIVE_DB: &str = "bench_naive";
/// Documents per seeding insert, and seeding tasks.
const SEED_BATCH: u64 = 1000;
const SEED_TASKS: usize = 4;
/// Documents per insert of the naive copy.
const NAIVE_BATCH: usize = 1000;

/// One throughput measurement.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figure {
    pub docs: u64,
    /// BSON bytes of the documents.
    pub bytes: u64,
    pub seconds: f64,
    /// For the engine's copy: seconds until every document was written,
    /// before the copy phase's last steps (indexes, bookkeeping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_seconds: Option<f64>,
    /// For the engine's copy: `_id` ranges planned for the collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<u64>,
    /// CPU and cache reads of the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::cpu::Usage>,
}

impl Figure {
    fn timed(docs: u64, bytes: u64, since: Instant) -> Figure {
        Figure {
            docs,
            bytes,
            seconds: since.elapsed().as_secs_f64(),
            data_seconds: None,
            ranges: None,
            usage: None,
        }
    }

    pub fn docs_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.docs as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }
}

/// What the destination holds after the commit, against the source.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    pub source_docs: u64,
    pub destination_docs: u64,
    /// Collections whose document counts differ.
    pub count_mismatches: Vec<String>,
    /// Whether `dbHash` of the bench database is the same on both sides.
    pub hash_match: bool,
    /// Collections whose `dbHash` differs.
    pub hash_mismatches: Vec<String>,
}

impl Verify {
    pub fn ok(&self) -> bool {
        self.count_mismatches.is_empty() && self.hash_match
    }
}

/// `{w: 1}`, the engine's copy write concern.
pub fn w1() -> WriteConcern {
    WriteConcern::builder().w(Acknowledgment::Nodes(1)).build()
}

/// A client with room for the bench's parallel tasks.
pub async fn client(uri: &str) -> anyhow::Result<Client> {
    client_with(uri, "mongoferry-bench", None).await
}

/// A client whose writes default to `{w: 1}`: the lag phase's load, so
/// that it reaches its rate without one task per journal flush.
pub async fn load_client(uri: &str) -> anyhow::Result<Client> {
    client_with(uri, "mongoferry-bench-load", Some(w1())).await
}

async fn client_with(
    uri: &str,
    app_name: &str,
    write_concern: Option<WriteConcern>,
) -> anyhow::Result<Client> {
    let mut opts = ClientOptions::parse(uri)
        .await
        .with_context(|| format!("parse {uri}"))?;
    opts.app_name = Some(app_name.into());
    opts.max_pool_size = Some(64);
    if write_concern.is_some() {
        opts.write_concern = write_concern;
    }
    Client::with_options(opts).context("create a client")
}

pub async fn server_version(client: &Client) -> anyhow::Result<String> {
    let info = client
        .database("admin")
        .run_command(doc! { "buildInfo": 1 })
        .await
        .context("buildInfo")?;
    Ok(info.get_str("version").unwrap_or("unknown").to_string())
}

/// The bench document number `n`, as raw BSON.
fn raw_doc(n: u64, size: usize) -> anyhow::Result<RawDocumentBuf> {
    RawDocumentBuf::from_document(&sample_doc(mixed_id(n), n, size))
        .context("encode a sample document")
}

/// Inserts `count` documents of about `size` bytes into the bench
/// collection with parallel unordered inserts.
pub async fn seed(client: &Client, count: u64, size: usize) -> anyhow::Result<Figure> {
    let coll: Collection<RawDocumentBuf> = client.database(BENCH_DB).collection(DOCS_COLL);
    let started = Instant::now();
    let bytes: u64 = stream::iter((0..count).step_by(SEED_BATCH as usize))
        .map(|first| {
            let coll = coll.clone();
            tokio::spawn(async move {
                let last = (first + SEED_BATCH).min(count);
                let docs = (first..last)
                    .map(|n| raw_doc(n, size))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let bytes: u64 = docs.iter().map(|d| d.as_bytes().len() as u64).sum();
                coll.insert_many(&docs)
                    .ordered(false)
                    .write_concern(w1())
                    .await
                    .context("seed the source")?;
                Ok::<_, anyhow::Error>(bytes)
            })
        })
        .buffer_unordered(SEED_TASKS)
        .map(|joined| joined.context("a seeding task failed")?)
        .try_fold(0u64, |sum, b| async move { Ok(sum + b) })
        .await?;
    Ok(Figure::timed(count, bytes, started))
}

/// The bench documents, built again exactly as seeded, in batches.
pub async fn build_docs(count: u64, size: usize) -> anyhow::Result<Vec<RawDocumentBuf>> {
    tokio::task::spawn_blocking(move || (0..count).map(|n| raw_doc(n, size)).collect())
        .await
        .context("the document builder failed")?
}

/// Checkpoints both sides, so that one phase's dirty data is not flushed
/// during the next phase's measurement.
pub async fn settle(src: &Client, dest: &Client) -> anyhow::Result<()> {
    for c in [src, dest] {
        c.database("admin")
            .run_command(doc! { "fsync": 1 })
            .await
            .context("fsync")?;
    }
    Ok(())
}

/// Drops what any phase wrote on the destination.
pub async fn clean_destination(dest: &Client) -> anyhow::Result<()> {
    for db in [BENCH_DB, CEILING_DB, NAIVE_DB, METADATA_DB] {
        dest.database(db)
            .drop()
            .await
            .with_context(|| format!("drop {db} on the destination"))?;
    }
    Ok(())
}

/// The destination's raw insert ceiling: `tasks` parallel tasks of
/// unordered `insertMany` of `batch` pre-built documents each.
pub async fn ceiling(
    dest: &Client,
    docs: Arc<Vec<RawDocumentBuf>>,
    tasks: usize,
    batch: usize,
) -> anyhow::Result<Figure> {
    let coll: Collection<RawDocumentBuf> = dest.database(CEILING_DB).collection(DOCS_COLL);
    let count = docs.len() as u64;
    let bytes: u64 = docs.iter().map(|d| d.as_bytes().len() as u64).sum();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (coll, docs, next) = (coll.clone(), docs.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * batch;
                    if i >= docs.len() {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let chunk = &docs[i..(i + batch).min(docs.len())];
                    coll.insert_many(chunk)
                        .ordered(false)
                        .write_concern(w1())
                        .await
                        .context("ceiling insert")?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.context("a ceiling task failed")??;
    }
    Ok(Figure::timed(count, bytes, started))
}

/// A naive copy: one cursor over the source, `insertMany` of 1,000
/// documents at a time, each awaited before reading on. The documents stay
/// raw BSON, which flatters the naive copy, if anything.
pub async fn naive(src: &Client, dest: &Client) -> anyhow::Result<Figure> {
    let from: Collection<RawDocumentBuf> = src.database(BENCH_DB).collection(DOCS_COLL);
    let to: Collection<RawDocumentBuf> = dest.database(NAIVE_DB).collection(DOCS_COLL);
    let started = Instant::now();
    let mut cursor = from.find(doc! {}).await.context("naive: find")?;
    let (mut docs, mut bytes) = (0u64, 0u64);
    let mut batch: Vec<RawDocumentBuf> = Vec::with_capacity(NAIVE_BATCH);
    loop {
        let next = cursor.try_next().await.context("naive: read")?;
        let end = next.is_none();
        if let Some(d) = next {
            bytes += d.as_bytes().len() as u64;
            batch.push(d);
        }
        if batch.len() >= NAIVE_BATCH || (end && !batch.is_empty()) {
            docs += batch.len() as u64;
            to.insert_many(&batch)
                .write_concern(w1())
                .await
                .context("naive: insert")?;
            batch.clear();
        }
        if end {
            break;
        }
    }
    Ok(Figure::timed(docs, bytes, started))
}

/// Compares every collection of the bench database on both sides: exact
/// document counts, and `dbHash`.
pub async fn verify(src: &Client, dest: &Client) -> anyhow::Result<Verify> {
    let names = src
        .database(BENCH_DB)
        .list_collection_names()
        .await
        .context("list the source's collections")?;
    let mut v = Verify::default();
    for name in &names {
        let s = count(src, name).await.context("count on the source")?;
        let d = count(dest, name)
            .await
            .context("count on the destination")?;
        v.source_docs += s;
        v.destination_docs += d;
        if s != d {
            v.count_mismatches
                .push(format!("{BENCH_DB}.{name}: source {s}, destination {d}"));
        }
    }
    let hs = db_hash(src, &names).await.context("dbHash on the source")?;
    let hd = db_hash(dest, &names)
        .await
        .context("dbHash on the destination")?;
    let (Ok(cs), Ok(cd)) = (
        hs.get_document("collections"),
        hd.get_document("collections"),
    ) else {
        anyhow::bail!("dbHash returned no per-collection hashes");
    };
    for name in &names {
        if cs.get_str(name).ok() != cd.get_str(name).ok() {
            v.hash_mismatches.push(format!("{BENCH_DB}.{name}"));
        }
    }
    v.hash_match = v.hash_mismatches.is_empty();
    Ok(v)
}

async fn count(c: &Client, coll: &str) -> mongodb::error::Result<u64> {
    c.database(BENCH_DB)
        .collection::<Document>(coll)
        .count_documents(doc! {})
        .await
}

async fn db_hash(c: &Client, names: &[String]) -> mongodb::error::Result<Document> {
    c.database(BENCH_DB)
        .run_command(doc! { "dbHash": 1, "collections": names.to_vec() })
        .await
}
