//! The copy's data path at the byte level: documents go from the source's
//! cursor replies into one `insert` command's `documents` array, each
//! copied as bytes, none decoded, and none given an allocation of its own.
//!
//! The driver's `insertMany` would turn each document into a
//! `RawDocumentBuf` of its own, serialise it again and keep every `_id` in
//! a map; on the benchmark that was half of the engine's CPU.

use bson::{rawdoc, RawBsonRef, RawDocument, RawDocumentBuf};

use crate::error::{Error, Result};

/// The largest `documents` array one `insert` may carry: a command body
/// may exceed the 16 MiB document limit by 16 KiB, which leaves room for
/// the command's other fields beside a full-sized array.
pub const MAX_ARRAY_BYTES: usize = 16 * 1024 * 1024;

/// The most documents one write command may carry (`maxWriteBatchSize`).
pub const MAX_DOCS: usize = 100_000;

/// Documents bound for one `insert` command, already laid out as the BSON
/// array the command carries.
pub struct InsertBatch {
    /// The array as BSON lays it out: a document keyed "0", "1", ...
    array: RawDocumentBuf,
    len: usize,
    doc_bytes: usize,
    key: String,
}

/// What one array element adds beyond the document: its type byte, its
/// key (the index, at most six digits) and the key's terminator.
const ELEMENT_OVERHEAD: usize = 1 + 6 + 1;

impl InsertBatch {
    /// An empty batch with room for `bytes` of documents.
    pub fn with_capacity(bytes: usize) -> InsertBatch {
        let mut empty = Vec::with_capacity(bytes.min(MAX_ARRAY_BYTES) + 5);
        empty.extend_from_slice(&5i32.to_le_bytes());
        empty.push(0);
        let array = match RawDocumentBuf::from_bytes(empty) {
            Ok(a) => a,
            // Five bytes of header and terminator are always a document.
            Err(_) => RawDocumentBuf::new(),
        };
        InsertBatch {
            array,
            len: 0,
            doc_bytes: 0,
            key: String::new(),
        }
    }

    /// Whether `doc` fits beside what the batch holds without making the
    /// command too large for the server. An empty batch takes any document.
    pub fn fits(&self, doc: &RawDocument) -> bool {
        self.len == 0
            || (self.len < MAX_DOCS
                && self.array.as_bytes().len() + doc.as_bytes().len() + ELEMENT_OVERHEAD
                    <= MAX_ARRAY_BYTES)
    }

    pub fn push(&mut self, doc: &RawDocument) {
        use std::fmt::Write;
        self.key.clear();
        let _ = write!(self.key, "{}", self.len);
        self.array
            .append_ref(self.key.as_str(), RawBsonRef::Document(doc));
        self.len += 1;
        self.doc_bytes += doc.as_bytes().len();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of the documents themselves, as the source stores them.
    pub fn doc_bytes(&self) -> usize {
        self.doc_bytes
    }

    /// The documents, in order: a write error names one by its position.
    pub fn iter(&self) -> impl Iterator<Item = &RawDocument> {
        self.array
            .iter()
            .filter_map(|e| e.ok().and_then(|(_, v)| v.as_document()))
    }

    #[cfg(test)]
    fn get(&self, index: usize) -> Option<&RawDocument> {
        self.iter().nth(index)
    }

    /// The `insert` command for collection `coll`: unordered, so that one
    /// failed document does not stop the rest, past document validation
    /// (the source accepted these documents; a validator added later must
    /// not lose them), acknowledged by the primary alone (the copy is made
    /// durable by the majority write of its checkpoint).
    pub fn command(&self, coll: &str) -> Result<RawDocumentBuf> {
        let head = rawdoc! {
            "insert": coll,
            "ordered": false,
            "bypassDocumentValidation": true,
            "writeConcern": { "w": 1 },
        };
        let mut bytes = head.into_bytes();
        bytes.pop(); // the terminator; the array goes before it
        bytes.reserve(1 + DOCUMENTS.len() + 1 + self.array.as_bytes().len() + 1);
        bytes.push(ARRAY_TYPE);
        bytes.extend_from_slice(DOCUMENTS.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(self.array.as_bytes());
        bytes.push(0);
        let len = i32::try_from(bytes.len())
            .map_err(|_| Error::Other("an insert batch outgrew a BSON document".into()))?;
        bytes[..4].copy_from_slice(&len.to_le_bytes());
        RawDocumentBuf::from_bytes(bytes).map_err(|e| Error::Other(e.to_string()))
    }
}

/// The BSON element type of an array; `bson` writes one only from a
/// `RawArrayBuf`, which would take each document as an owned copy.
const ARRAY_TYPE: u8 = 0x04;
const DOCUMENTS: &str = "documents";

/// The field `showRecordId` appends to each document.
pub const RECORD_ID: &str = "$recordId";

/// `doc` as it is stored, without the `$recordId` field that `showRecordId`
/// appended, written into `scratch`; and the record id. The field is the
/// last one, so this copies a prefix and mends the length, re-encoding
/// nothing.
pub fn strip_record_id<'a>(
    doc: &RawDocument,
    scratch: &'a mut Vec<u8>,
) -> Result<(&'a RawDocument, i64)> {
    // type byte, "$recordId\0", 8 bytes of int64, then the terminator
    const TAIL: usize = 1 + RECORD_ID.len() + 1 + 8;
    let bytes = doc.as_bytes();
    let n = bytes.len();
    let start = n
        .checked_sub(TAIL + 1)
        .filter(|&s| s >= 4)
        .filter(|&s| {
            bytes[s] == 0x12
                && &bytes[s + 1..s + 1 + RECORD_ID.len()] == RECORD_ID.as_bytes()
                && bytes[s + 1 + RECORD_ID.len()] == 0
        })
        .ok_or_else(|| {
            Error::Other("the source returned a document without its record id".into())
        })?;
    let mut rid = [0u8; 8];
    rid.copy_from_slice(&bytes[n - 9..n - 1]);
    scratch.clear();
    scratch.extend_from_slice(&bytes[..start]);
    scratch.push(0);
    let len = scratch.len() as i32;
    scratch[..4].copy_from_slice(&len.to_le_bytes());
    let stored =
        RawDocument::from_bytes(scratch.as_slice()).map_err(|e| Error::Other(e.to_string()))?;
    Ok((stored, i64::from_le_bytes(rid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Document};

    #[test]
    fn the_command_carries_the_documents_byte_for_byte() {
        let docs = [
            rawdoc! { "_id": 1, "a": { "b": [1, 2] } },
            rawdoc! { "_id": "x", "s": "y", "d": 1.5 },
            rawdoc! { "_id": { "k": 1 } },
        ];
        let mut batch = InsertBatch::with_capacity(1024);
        assert!(batch.is_empty());
        for d in &docs {
            assert!(batch.fits(d));
            batch.push(d);
        }
        assert_eq!(batch.len(), 3);
        let sizes: usize = docs.iter().map(|d| d.as_bytes().len()).sum();
        assert_eq!(batch.doc_bytes(), sizes);
        assert_eq!(batch.get(1).map(|d| d.as_bytes()), Some(docs[1].as_bytes()));
        assert!(batch.get(3).is_none());

        let cmd = batch.command("coll").unwrap();
        let decoded = Document::try_from(cmd.as_ref()).unwrap();
        let expected = doc! {
            "insert": "coll",
            "ordered": false,
            "bypassDocumentValidation": true,
            "writeConcern": { "w": 1 },
            "documents": [
                { "_id": 1, "a": { "b": [1, 2] } },
                { "_id": "x", "s": "y", "d": 1.5 },
                { "_id": { "k": 1 } },
            ],
        };
        assert_eq!(decoded, expected);
        let arr = cmd.get_array("documents").unwrap();
        for (i, d) in docs.iter().enumerate() {
            let got = arr.get_document(i).unwrap();
            assert_eq!(got.as_bytes(), d.as_bytes());
        }
    }

    #[test]
    fn an_empty_batch_is_a_valid_command() {
        let cmd = InsertBatch::with_capacity(0).command("c").unwrap();
        let arr = cmd.get_array("documents").unwrap();
        assert_eq!(arr.into_iter().count(), 0);
    }

    #[test]
    fn a_batch_stops_short_of_the_command_size_limit() {
        let big = rawdoc! { "_id": 0, "pad": "x".repeat(6 * 1024 * 1024) };
        let mut batch = InsertBatch::with_capacity(1 << 20);
        assert!(batch.fits(&big));
        batch.push(&big);
        assert!(batch.fits(&big));
        batch.push(&big);
        assert!(!batch.fits(&big), "a third would pass 16 MiB");
        assert!(batch.fits(&rawdoc! { "_id": 1 }));
        // A single document of the maximum size always fits an empty batch.
        let max = rawdoc! { "_id": 0, "pad": bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![0; 16 * 1024 * 1024 - 64],
        } };
        let mut alone = InsertBatch::with_capacity(0);
        assert!(alone.fits(&max));
        alone.push(&max);
        let cmd = alone.command("c").unwrap();
        assert!(cmd.as_bytes().len() <= 16 * 1024 * 1024 + 16 * 1024);
    }

    #[test]
    fn record_id_is_split_off_without_reencoding() {
        let stored = rawdoc! { "_id": 1, "a": { "b": [1, 2] }, "s": "x" };
        let mut shown = stored.clone();
        shown.append(RECORD_ID, 77i64);
        let mut scratch = Vec::new();
        let (doc, rid) = strip_record_id(&shown, &mut scratch).unwrap();
        assert_eq!(rid, 77);
        assert_eq!(doc.as_bytes(), stored.as_bytes());
        // A document whose last field is not the record id is refused, not
        // silently cut.
        assert!(strip_record_id(&stored, &mut scratch).is_err());
        assert!(strip_record_id(&rawdoc! {}, &mut scratch).is_err());
    }
}
