//! A random write load for a source cluster: inserts, nested and array
//! updates, replaces and deletes over many collections and every common
//! `_id` type. Deterministic for a given seed.

use std::time::Duration;

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Decimal128, Document};
use mongodb::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::error::{MongoContext, Result, Role};
use crate::scope::Namespace;

/// An `_id` of one of many BSON types, derived from `n`.
pub fn mixed_id(n: u64) -> Bson {
    match n % 9 {
        0 => Bson::ObjectId(ObjectId::from_bytes({
            let mut b = [0u8; 12];
            b[4..].copy_from_slice(&n.to_be_bytes());
            b
        })),
        // Types that bracket queries at the ends of the order, and types
        // that hold few distinct values, once each.
        1 => match n {
            19 => Bson::MinKey,
            28 => Bson::MaxKey,
            37 => Bson::Null,
            46 => Bson::Boolean(false),
            55 => Bson::Boolean(true),
            _ if n % 27 == 10 => {
                Bson::DateTime(bson::DateTime::from_millis(1_600_000_000_000 + n as i64))
            }
            _ if n % 27 == 19 => Bson::Timestamp(bson::Timestamp {
                time: (n % 4_000_000_000) as u32 + 1,
                increment: 1,
            }),
            _ => Bson::Int32((n % 2_000_000_000) as i32),
        },
        2 => Bson::Int64(n as i64 + 10_000_000_000),
        3 => Bson::Double(n as f64 + 0.5),
        4 => Bson::String(format!("key-{n:012}")),
        5 => Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: uuid::Uuid::from_u64_pair(n, n).as_bytes().to_vec(),
        }),
        6 => Bson::Document(doc! { "tenant": (n % 7) as i32, "seq": n as i64 }),
        7 => Bson::Decimal128(Decimal128::from_bytes({
            // A valid decimal128 of value n: coefficient n, exponent 0.
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&n.to_le_bytes());
            b[14] = 0x40;
            b[15] = 0x30;
            b
        })),
        _ => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: n.to_be_bytes().to_vec(),
        }),
    }
}

/// A document of roughly `size` bytes with nested fields and arrays.
pub fn sample_doc(id: Bson, n: u64, size: usize) -> Document {
    let pad = size.saturating_sub(200);
    let city = ["Lyon", "Osaka", "Lima", "Oslo"][(n % 4) as usize];
    doc! {
        "_id": id,
        "n": n as i64,
        "name": format!("customer {n}"),
        "active": !n.is_multiple_of(3),
        "score": (n % 1000) as f64 / 10.0,
        "address": { "city": city, "zip": format!("{:05}", n % 100_000), "geo": { "lat": (n % 90) as f64, "lng": (n % 180) as f64 } },
        "tags": ["a", "b", format!("t{}", n % 10)],
        "history": [ { "at": bson::DateTime::from_millis(1_700_000_000_000 + n as i64), "v": 1 } ],
        "blob": "x".repeat(pad),
    }
}

/// Inserts `count` documents of about `size` bytes with mixed `_id` types.
pub async fn seed(client: &Client, ns: &Namespace, count: u64, size: usize) -> Result<()> {
    let coll = client.database(&ns.db).collection::<Document>(&ns.coll);
    let mut n = 0;
    while n < count {
        let end = (n + 1000).min(count);
        let docs: Vec<Document> = (n..end).map(|i| sample_doc(mixed_id(i), i, size)).collect();
        coll.insert_many(docs)
            .await
            .ctx(Role::Source, "seed documents")?;
        n = end;
    }
    Ok(())
}

/// Writes the server acknowledged, by kind, and the writes it refused or
/// never answered (a restart mid-load, in some tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkloadStats {
    pub inserts: u64,
    pub updates: u64,
    pub replaces: u64,
    pub deletes: u64,
    pub failed: u64,
}

impl WorkloadStats {
    /// Acknowledged writes.
    pub fn total(&self) -> u64 {
        self.inserts + self.updates + self.replaces + self.deletes
    }
}

/// Runs random writes until `stop`, at about `per_second` operations a
/// second (as fast as possible with `None`). Document numbers start at
/// `first_new` so that new `_id`s never collide with seeded ones, and
/// updates, replaces and deletes pick from `0..first_new` and what this
/// load inserted.
pub async fn run(
    client: Client,
    namespaces: Vec<Namespace>,
    first_new: u64,
    per_second: Option<u32>,
    seed: u64,
    stop: CancellationToken,
) -> Result<WorkloadStats> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = WorkloadStats::default();
    let mut next = first_new;
    let interval = per_second.map(|r| Duration::from_secs_f64(1.0 / r.max(1) as f64));
    let mut tick = interval.map(|i| {
        let mut t = tokio::time::interval(i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    while !stop.is_cancelled() {
        if let Some(t) = tick.as_mut() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = t.tick() => {}
            }
        }
        let ns = &namespaces[rng.gen_range(0..namespaces.len())];
        let coll = client.database(&ns.db).collection::<Document>(&ns.coll);
        let existing = mixed_id(rng.gen_range(0..next.max(1)));
        let (res, counter) = match rng.gen_range(0..100) {
            0..=39 => {
                next += 1;
                let doc = sample_doc(mixed_id(next), next, rng.gen_range(100..1500));
                let res = coll.insert_one(doc).await.map(|_| ());
                (res, &mut stats.inserts)
            }
            40..=69 => {
                let update = match rng.gen_range(0..4) {
                    0 => doc! { "$set": { "address.city": format!("city {}", rng.gen::<u16>()) } },
                    1 => doc! { "$push": { "tags": format!("p{}", rng.gen::<u16>()) } },
                    2 => doc! { "$inc": { "n": 1 }, "$unset": { "score": "" } },
                    _ => {
                        doc! { "$set": { "history.0.v": rng.gen::<i32>(), "nested.deep.x": rng.gen::<i32>() } }
                    }
                };
                let res = coll
                    .update_one(doc! { "_id": existing }, update)
                    .await
                    .map(|_| ());
                (res, &mut stats.updates)
            }
            70..=84 => {
                let n = rng.gen::<u32>() as u64;
                let mut d = sample_doc(existing.clone(), n, rng.gen_range(100..800));
                d.remove("_id");
                let res = coll
                    .replace_one(doc! { "_id": existing }, d)
                    .await
                    .map(|_| ());
                (res, &mut stats.replaces)
            }
            _ => {
                let res = coll.delete_one(doc! { "_id": existing }).await.map(|_| ());
                (res, &mut stats.deletes)
            }
        };
        match res {
            Ok(()) => *counter += 1,
            // A restart of the source mid-load is part of some tests: keep
            // going.
            Err(e) => {
                stats.failed += 1;
                tracing::debug!(error = %e, "workload write failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(stats)
}
