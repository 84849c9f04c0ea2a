//! Change events, parsed from raw BSON into what the applier needs, and
//! batched so that each document's events collapse to its last one.
//!
//! Pure logic over bytes: this module talks to no server. Every operation
//! it yields is idempotent (upsert a whole document, or delete by `_id`),
//! which is what makes replays after restarts and the copy's overlap safe.

use std::collections::HashMap;

use bson::spec::BinarySubtype;
use bson::{Binary, Document, RawBsonRef, RawDocument, RawDocumentBuf, Timestamp};

use crate::scope::Namespace;
pub mod oplog;

/// What to do with one document.
#[derive(Debug, Clone, PartialEq)]
pub enum DocOp {
    /// Replace (or insert) the document with this full version.
    Upsert(RawDocumentBuf),
    /// Read the document's current version from the source, then upsert
    /// it; skip it if it no longer exists (its delete event follows).
    Fetch,
    Delete,
}

/// An insert, update, replace or delete.
#[derive(Debug, Clone, PartialEq)]
pub struct CrudEvent {
    pub uuid: Binary,
    pub ns: Namespace,
    /// The document's `_id` as a one-field document `{_id: ...}`.
    pub key: RawDocumentBuf,
    pub op: DocOp,
}

impl CrudEvent {
    /// Identity of the document for batching: collection UUID plus the
    /// exact bytes (type included) of its `_id`.
    fn batch_key(&self) -> (Vec<u8>, Vec<u8>) {
        (self.uuid.bytes.clone(), self.key.as_bytes().to_vec())
    }
}

/// A change to a namespace rather than a document: a barrier in the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum DdlEvent {
    Create {
        ns: Namespace,
        uuid: Option<Binary>,
        description: Document,
    },
    Drop {
        ns: Namespace,
        uuid: Option<Binary>,
    },
    Rename {
        ns: Namespace,
        to: Namespace,
        uuid: Option<Binary>,
    },
    DropDatabase {
        db: String,
    },
    CreateIndexes {
        ns: Namespace,
        uuid: Option<Binary>,
        indexes: Vec<Document>,
    },
    DropIndexes {
        ns: Namespace,
        uuid: Option<Binary>,
        indexes: Vec<Document>,
    },
    Modify {
        ns: Namespace,
        uuid: Option<Binary>,
        description: Document,
    },
    /// A sharding change or another event with no effect to replay.
    Other {
        operation: String,
        ns: Option<Namespace>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Crud(CrudEvent),
    Ddl(DdlEvent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    pub cluster_time: Option<Timestamp>,
    pub change: Change,
}

#[derive(Debug, thiserror::Error)]
#[error("a change event could not be read: {0}")]
pub struct ParseError(pub String);

fn err(s: impl Into<String>) -> ParseError {
    ParseError(s.into())
}

fn get_ns(doc: &RawDocument, field: &str) -> Result<Option<Namespace>, ParseError> {
    let Some(ns) = doc.get_document(field).ok() else {
        return Ok(None);
    };
    let db = ns.get_str("db").map_err(|_| err("ns.db missing"))?;
    let coll = ns.get_str("coll").unwrap_or("");
    Ok(Some(Namespace::new(db, coll)))
}

fn to_doc(raw: Option<&RawDocument>) -> Document {
    raw.and_then(|r| Document::try_from(r).ok())
        .unwrap_or_default()
}

/// Parses one change event as delivered by a cluster-wide change stream
/// with `showExpandedEvents` and Mongoferry's pipeline.
pub fn parse(raw: &RawDocument) -> Result<ParsedEvent, ParseError> {
    let op = raw
        .get_str("operationType")
        .map_err(|_| err("operationType missing"))?;
    let cluster_time = raw.get_timestamp("clusterTime").ok();
    let uuid = match raw.get("collectionUUID") {
        Ok(Some(RawBsonRef::Binary(b))) if b.subtype == BinarySubtype::Uuid => Some(Binary {
            subtype: b.subtype,
            bytes: b.bytes.to_vec(),
        }),
        _ => None,
    };
    let ns = get_ns(raw, "ns")?;
    let need_ns = || {
        ns.clone()
            .ok_or_else(|| err(format!("{op} event without ns")))
    };
    let description = || to_doc(raw.get_document("operationDescription").ok());
    let change = match op {
        "insert" | "update" | "replace" | "delete" => {
            let uuid = uuid
                .clone()
                .ok_or_else(|| err(format!("{op} event without collectionUUID")))?;
            let id = raw
                .get_document("documentKey")
                .map_err(|_| err("documentKey missing"))?
                .get("_id")
                .map_err(|e| err(e.to_string()))?
                .ok_or_else(|| err("documentKey._id missing"))?;
            let mut key = RawDocumentBuf::new();
            key.append_ref("_id", id);
            let op = match op {
                "delete" => DocOp::Delete,
                "update" => DocOp::Fetch,
                // The pipeline drops full documents over a size limit, so
                // that no event can exceed 16 MB; those are fetched.
                _ => match raw.get_document("fullDocument") {
                    Ok(d) => DocOp::Upsert(d.to_owned()),
                    Err(_) => DocOp::Fetch,
                },
            };
            Change::Crud(CrudEvent {
                uuid,
                ns: need_ns()?,
                key,
                op,
            })
        }
        "create" => Change::Ddl(DdlEvent::Create {
            ns: need_ns()?,
            uuid,
            description: description(),
        }),
        "drop" => Change::Ddl(DdlEvent::Drop {
            ns: need_ns()?,
            uuid,
        }),
        "rename" => Change::Ddl(DdlEvent::Rename {
            ns: need_ns()?,
            to: get_ns(raw, "to")?.ok_or_else(|| err("rename without to"))?,
            uuid,
        }),
        "dropDatabase" => Change::Ddl(DdlEvent::DropDatabase { db: need_ns()?.db }),
        "createIndexes" | "dropIndexes" => {
            let indexes = description()
                .get_array("indexes")
                .map(|a| a.iter().filter_map(|v| v.as_document().cloned()).collect())
                .unwrap_or_default();
            if op == "createIndexes" {
                Change::Ddl(DdlEvent::CreateIndexes {
                    ns: need_ns()?,
                    uuid,
                    indexes,
                })
            } else {
                Change::Ddl(DdlEvent::DropIndexes {
                    ns: need_ns()?,
                    uuid,
                    indexes,
                })
            }
        }
        "modify" => Change::Ddl(DdlEvent::Modify {
            ns: need_ns()?,
            uuid,
            description: description(),
        }),
        other => Change::Ddl(DdlEvent::Other {
            operation: other.to_string(),
            ns,
        }),
    };
    Ok(ParsedEvent {
        cluster_time,
        change,
    })
}

/// CRUD events between two barriers, with only the last event of each
/// document kept. Since every operation is a whole-document upsert or a
/// delete, the last one alone gives the document its final state, and the
/// documents of a batch can be written in any order, in parallel.
#[derive(Debug, Default)]
pub struct Batch {
    ops: HashMap<(Vec<u8>, Vec<u8>), CrudEvent>,
    /// Events received, before collapsing.
    pub events: u64,
    pub bytes: usize,
}

impl Batch {
    pub fn push(&mut self, ev: CrudEvent) {
        self.events += 1;
        if let DocOp::Upsert(d) = &ev.op {
            self.bytes += d.as_bytes().len();
        }
        self.ops.insert(ev.batch_key(), ev);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The collapsed operations grouped by collection UUID.
    pub fn by_collection(self) -> HashMap<Vec<u8>, Vec<CrudEvent>> {
        let mut out: HashMap<Vec<u8>, Vec<CrudEvent>> = HashMap::new();
        for ((uuid, _), ev) in self.ops {
            out.entry(uuid).or_default().push(ev);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, rawdoc};

    fn uuid(n: u8) -> Binary {
        Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![n; 16],
        }
    }

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    #[test]
    fn parses_crud_events() {
        let ev = raw(doc! {
            "_id": { "_data": "82" }, "operationType": "insert",
            "clusterTime": Timestamp { time: 5, increment: 1 },
            "collectionUUID": uuid(1), "ns": { "db": "a", "coll": "b" },
            "documentKey": { "_id": 7i64 }, "fullDocument": { "_id": 7i64, "x": 1 },
        });
        let p = parse(&ev).unwrap();
        assert_eq!(
            p.cluster_time,
            Some(Timestamp {
                time: 5,
                increment: 1
            })
        );
        let Change::Crud(c) = p.change else { panic!() };
        assert_eq!(c.ns, Namespace::new("a", "b"));
        assert_eq!(c.key, rawdoc! { "_id": 7i64 });
        assert_eq!(c.op, DocOp::Upsert(rawdoc! { "_id": 7i64, "x": 1 }));

        let upd = raw(
            doc! { "operationType": "update", "collectionUUID": uuid(1), "ns": { "db": "a", "coll": "b" }, "documentKey": { "_id": "k" } },
        );
        let Change::Crud(c) = parse(&upd).unwrap().change else {
            panic!()
        };
        assert_eq!(c.op, DocOp::Fetch);
        // A replace whose document the pipeline dropped for size is fetched.
        let big = raw(
            doc! { "operationType": "replace", "collectionUUID": uuid(1), "ns": { "db": "a", "coll": "b" }, "documentKey": { "_id": 1 } },
        );
        let Change::Crud(c) = parse(&big).unwrap().change else {
            panic!()
        };
        assert_eq!(c.op, DocOp::Fetch);
    }

    #[test]
    fn parses_ddl_events() {
        let ren = raw(
            doc! { "operationType": "rename", "collectionUUID": uuid(2), "ns": { "db": "t", "coll": "a" }, "to": { "db": "t", "coll": "b" } },
        );
        assert_eq!(
            parse(&ren).unwrap().change,
            Change::Ddl(DdlEvent::Rename {
                ns: Namespace::new("t", "a"),
                to: Namespace::new("t", "b"),
                uuid: Some(uuid(2))
            })
        );
        let view = raw(
            doc! { "operationType": "create", "ns": { "db": "t", "coll": "v" }, "operationDescription": { "viewOn": "a", "pipeline": [] } },
        );
        let Change::Ddl(DdlEvent::Create {
            uuid: view_uuid,
            description,
            ..
        }) = parse(&view).unwrap().change
        else {
            panic!()
        };
        assert!(view_uuid.is_none());
        assert_eq!(description.get_str("viewOn").unwrap(), "a");
        let ix = raw(
            doc! { "operationType": "createIndexes", "collectionUUID": uuid(2), "ns": { "db": "t", "coll": "a" }, "operationDescription": { "indexes": [{ "v": 2, "key": { "x": 1 }, "name": "x_1" }] } },
        );
        let Change::Ddl(DdlEvent::CreateIndexes { indexes, .. }) = parse(&ix).unwrap().change
        else {
            panic!()
        };
        assert_eq!(indexes[0].get_str("name").unwrap(), "x_1");
        let dd = raw(doc! { "operationType": "dropDatabase", "ns": { "db": "u" } });
        assert_eq!(
            parse(&dd).unwrap().change,
            Change::Ddl(DdlEvent::DropDatabase { db: "u".into() })
        );
        let sh = raw(doc! { "operationType": "shardCollection", "ns": { "db": "u", "coll": "c" } });
        assert!(matches!(
            parse(&sh).unwrap().change,
            Change::Ddl(DdlEvent::Other { .. })
        ));
        assert!(parse(&raw(doc! { "x": 1 })).is_err());
    }

    #[test]
    fn a_batch_keeps_each_documents_last_event() {
        let ev = |u: u8, id: Document, op: DocOp| CrudEvent {
            uuid: uuid(u),
            ns: Namespace::new("a", "b"),
            key: raw(id),
            op,
        };
        let mut b = Batch::default();
        b.push(ev(
            1,
            doc! { "_id": 1 },
            DocOp::Upsert(rawdoc! { "_id": 1, "v": 1 }),
        ));
        b.push(ev(1, doc! { "_id": 1 }, DocOp::Fetch));
        b.push(ev(1, doc! { "_id": 1 }, DocOp::Delete));
        // Same value, other BSON type: another document.
        b.push(ev(1, doc! { "_id": 1i64 }, DocOp::Fetch));
        // Same _id, other collection.
        b.push(ev(2, doc! { "_id": 1 }, DocOp::Fetch));
        assert_eq!(b.events, 5);
        assert_eq!(b.len(), 3);
        let groups = b.by_collection();
        let c1 = &groups[&uuid(1).bytes];
        assert_eq!(c1.len(), 2);
        let int32 = c1.iter().find(|e| e.key == rawdoc! { "_id": 1 }).unwrap();
        assert_eq!(int32.op, DocOp::Delete);
    }
}
