//! Comparing two BSON documents: which field paths differ, and how.
//!
//! Pure logic over raw BSON bytes: this module talks to no server and
//! decodes only what differs. Equal bytes are equal documents; only when
//! the bytes differ does it walk both documents to name the paths.
//!
//! Documents compare as maps (field order ignored) unless the comparison
//! is strict; arrays always compare position by position. Numbers of
//! different types with the same value (int 5, long 5, double 5.0,
//! decimal 5) are a difference, but of [`FieldChange::Type`], so that a
//! type drift is not mistaken for lost data.

use std::collections::HashMap;

use bson::spec::ElementType;
use bson::{Bson, RawBsonRef, RawDocument};

use super::report::{DifferenceKind, FieldChange, FieldDifference};
use crate::error::{Error, Result};

/// At most this many field differences are listed per document; a
/// document that differs everywhere is reported once, not field by field.
pub const MAX_FIELDS: usize = 64;

/// Longest value preview kept in a report.
const PREVIEW_CHARS: usize = 80;

/// One element of a raw document: its key, value and the bytes that
/// encode the value (type byte first), for byte-level equality.
pub(crate) struct Elem<'a> {
    pub key: &'a str,
    pub value: RawBsonRef<'a>,
    pub type_byte: u8,
    pub bytes: &'a [u8],
}

impl Elem<'_> {
    fn same_bytes(&self, other: &Elem<'_>) -> bool {
        self.type_byte == other.type_byte && self.bytes == other.bytes
    }
}

fn malformed(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("a document is not valid BSON: {e}"))
}

/// The elements of a document with the byte range of each value.
pub(crate) fn elements(doc: &RawDocument) -> Result<Vec<Elem<'_>>> {
    let bytes = doc.as_bytes();
    let mut pos = 4usize;
    let mut out = Vec::new();
    for el in doc.iter_elements() {
        let el = el.map_err(malformed)?;
        let start = pos + 1 + el.key().len() + 1;
        let end = start + el.len();
        let (Some(&type_byte), Some(value_bytes)) = (bytes.get(pos), bytes.get(start..end)) else {
            return Err(malformed("an element runs past the end of its document"));
        };
        out.push(Elem {
            key: el.key(),
            value: el.value().map_err(malformed)?,
            type_byte,
            bytes: value_bytes,
        });
        pos = end;
    }
    Ok(out)
}

/// The `_id` of a raw document as bytes that identify it exactly (type
/// byte, then the value's encoding), without copying the document.
pub fn id_key(doc: &RawDocument) -> Result<(u8, &[u8])> {
    let bytes = doc.as_bytes();
    let mut pos = 4usize;
    for el in doc.iter_elements() {
        let el = el.map_err(malformed)?;
        let start = pos + 1 + el.key().len() + 1;
        let end = start + el.len();
        if el.key() == "_id" {
            return match (bytes.get(pos), bytes.get(start..end)) {
                (Some(&t), Some(v)) => Ok((t, v)),
                _ => Err(malformed("the _id runs past the end of its document")),
            };
        }
        pos = end;
    }
    Err(Error::Other("a document has no _id".into()))
}

/// [`id_key`] as one owned byte string.
pub fn id_key_owned(doc: &RawDocument) -> Result<Vec<u8>> {
    let (t, v) = id_key(doc)?;
    let mut k = Vec::with_capacity(1 + v.len());
    k.push(t);
    k.extend_from_slice(v);
    Ok(k)
}

/// The exact key of an `_id` value given as [`Bson`].
pub fn bson_key(id: &Bson) -> Vec<u8> {
    // A one-field document encodes the value exactly as it sits in a
    // document: its type byte, the key "k", then the value.
    // Null, MinKey and MaxKey have no value bytes: their type byte alone
    // tells them apart, so an 8-byte document is a key too.
    let doc = bson::doc! { "k": id.clone() };
    match bson::to_vec(&doc) {
        Ok(bytes) if bytes.len() >= 8 => {
            let mut k = vec![bytes[4]];
            k.extend_from_slice(&bytes[7..bytes.len() - 1]);
            k
        }
        _ => Vec::new(),
    }
}

/// An `_id` as a key under which the server's unique `_id` index also
/// holds it: numbers by value (1, 1L and 1.0 are one key), everything else
/// by its exact bytes. Pairs a document whose `_id` changed numeric type.
pub fn value_key(id: &Bson) -> Vec<u8> {
    let raw = bson::RawBson::try_from(id.clone()).ok();
    match raw.as_ref().and_then(|r| numeric_text(r.as_raw_bson_ref())) {
        Some(n) => {
            let mut k = b"#num:".to_vec();
            k.extend_from_slice(n.as_bytes());
            k
        }
        None => bson_key(id),
    }
}

/// A value's canonical decimal text when it is a number: sign, digits
/// without leading or trailing zeros, and a power of ten. Equal numbers of
/// any type give equal text; a double equals a decimal when its shortest
/// round-trip form is that decimal's value.
pub(crate) fn numeric_text(v: RawBsonRef<'_>) -> Option<String> {
    let text = match v {
        RawBsonRef::Int32(i) => i.to_string(),
        RawBsonRef::Int64(i) => i.to_string(),
        RawBsonRef::Double(d) if d.is_nan() => return Some("nan".into()),
        RawBsonRef::Double(d) if d.is_infinite() => {
            return Some(if d > 0.0 { "+inf" } else { "-inf" }.into())
        }
        RawBsonRef::Double(d) => format!("{d}"),
        RawBsonRef::Decimal128(d) => d.to_string(),
        _ => return None,
    };
    normalize_decimal(&text)
}

/// `-12.50E+3` as `-125e2`; `0`, `-0.0` and `0E-5` all as `0`.
fn normalize_decimal(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "nan" => return Some("nan".into()),
        "inf" | "infinity" => {
            return Some(
                if lower.starts_with('-') {
                    "-inf"
                } else {
                    "+inf"
                }
                .into(),
            )
        }
        _ => {}
    }
    let (negative, rest) = match lower.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    let (mantissa, exp) = match rest.split_once('e') {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = format!("{int}{frac}");
    let mut exp = exp - frac.len() as i64;
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return Some("0".into());
    }
    digits = trimmed.to_string();
    while digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    Some(format!("{}{digits}e{exp}", if negative { "-" } else { "" }))
}

/// What a comparison of two documents found.
#[derive(Debug, Clone, PartialEq)]
pub struct DocDiff {
    /// `Different` when some value differs, `Type` when only numeric types
    /// do, `FieldOrder` when only the order of fields does (strict only).
    pub kind: DifferenceKind,
    pub fields: Vec<FieldDifference>,
    /// More fields differ than [`MAX_FIELDS`].
    pub truncated: bool,
}

/// Compares two documents; `None` when they are the same (in strict mode:
/// byte for byte; otherwise: the same fields and values in any order).
pub fn diff(src: &RawDocument, dst: &RawDocument, strict: bool) -> Result<Option<DocDiff>> {
    if src.as_bytes() == dst.as_bytes() {
        return Ok(None);
    }
    let mut w = Walker {
        strict,
        fields: Vec::new(),
        truncated: false,
    };
    w.doc("", src, dst)?;
    if w.fields.is_empty() {
        return Ok(None);
    }
    let kind = if w
        .fields
        .iter()
        .any(|f| !matches!(f.change, FieldChange::Type | FieldChange::Order))
    {
        DifferenceKind::Different
    } else if w.fields.iter().any(|f| f.change == FieldChange::Type) {
        DifferenceKind::Type
    } else {
        DifferenceKind::FieldOrder
    };
    Ok(Some(DocDiff {
        kind,
        fields: w.fields,
        truncated: w.truncated,
    }))
}

struct Walker {
    strict: bool,
    fields: Vec<FieldDifference>,
    truncated: bool,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Walker {
    fn push(
        &mut self,
        path: String,
        change: FieldChange,
        source: Option<RawBsonRef<'_>>,
        destination: Option<RawBsonRef<'_>>,
    ) {
        if self.fields.len() >= MAX_FIELDS {
            self.truncated = true;
            return;
        }
        self.fields.push(FieldDifference {
            path,
            change,
            source: source.map(preview),
            destination: destination.map(preview),
        });
    }

    fn doc(&mut self, path: &str, src: &RawDocument, dst: &RawDocument) -> Result<()> {
        let s = elements(src)?;
        let d = elements(dst)?;
        // Small documents are searched linearly; a map pays off only for
        // wide ones.
        let index: Option<HashMap<&str, usize>> =
            (d.len() > 16).then(|| d.iter().enumerate().map(|(i, e)| (e.key, i)).collect());
        let find = |key: &str| match &index {
            Some(m) => m.get(key).copied(),
            None => d.iter().position(|e| e.key == key),
        };
        let mut seen = vec![false; d.len()];
        for se in &s {
            match find(se.key) {
                None => self.push(
                    join(path, se.key),
                    FieldChange::MissingOnDestination,
                    Some(se.value),
                    None,
                ),
                Some(i) => {
                    seen[i] = true;
                    self.value(&join(path, se.key), se, &d[i])?;
                }
            }
        }
        for (i, de) in d.iter().enumerate() {
            if !seen[i] {
                self.push(
                    join(path, de.key),
                    FieldChange::ExtraOnDestination,
                    None,
                    Some(de.value),
                );
            }
        }
        if self.strict {
            // The fields both sides have, in each side's order: where the
            // sequences part, the fields have moved.
            let s_common: Vec<&str> = s
                .iter()
                .map(|e| e.key)
                .filter(|k| find(k).is_some())
                .collect();
            let d_common: Vec<&str> = d
                .iter()
                .enumerate()
                .filter(|(i, _)| seen[*i])
                .map(|(_, e)| e.key)
                .collect();
            for (a, b) in s_common.iter().zip(&d_common) {
                if a != b {
                    self.push(join(path, a), FieldChange::Order, None, None);
                }
            }
        }
        Ok(())
    }

    fn array(&mut self, path: &str, src: &RawDocument, dst: &RawDocument) -> Result<()> {
        let s = elements(src)?;
        let d = elements(dst)?;
        for (i, se) in s.iter().enumerate() {
            match d.get(i) {
                Some(de) => self.value(&join(path, &i.to_string()), se, de)?,
                None => self.push(
                    join(path, &i.to_string()),
                    FieldChange::MissingOnDestination,
                    Some(se.value),
                    None,
                ),
            }
        }
        for (i, de) in d.iter().enumerate().skip(s.len()) {
            self.push(
                join(path, &i.to_string()),
                FieldChange::ExtraOnDestination,
                None,
                Some(de.value),
            );
        }
        Ok(())
    }

    fn value(&mut self, path: &str, s: &Elem<'_>, d: &Elem<'_>) -> Result<()> {
        if s.same_bytes(d) {
            return Ok(());
        }
        match (s.value, d.value) {
            (RawBsonRef::Document(a), RawBsonRef::Document(b)) => self.doc(path, a, b),
            (RawBsonRef::Array(a), RawBsonRef::Array(b)) => self.array(
                path,
                RawDocument::from_bytes(a.as_bytes()).map_err(malformed)?,
                RawDocument::from_bytes(b.as_bytes()).map_err(malformed)?,
            ),
            (a, b) => {
                let same_number = match (numeric_text(a), numeric_text(b)) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                };
                let change = if same_number && s.type_byte != d.type_byte {
                    FieldChange::Type
                } else {
                    FieldChange::Value
                };
                self.push(path.to_string(), change, Some(a), Some(b));
                Ok(())
            }
        }
    }
}

/// The BSON type's name, as the shell's `$type` names it.
pub fn type_name(v: RawBsonRef<'_>) -> &'static str {
    match v.element_type() {
        ElementType::Double => "double",
        ElementType::String => "string",
        ElementType::EmbeddedDocument => "object",
        ElementType::Array => "array",
        ElementType::Binary => "binData",
        ElementType::Undefined => "undefined",
        ElementType::ObjectId => "objectId",
        ElementType::Boolean => "bool",
        ElementType::DateTime => "date",
        ElementType::Null => "null",
        ElementType::RegularExpression => "regex",
        ElementType::DbPointer => "dbPointer",
        ElementType::JavaScriptCode => "javascript",
        ElementType::Symbol => "symbol",
        ElementType::JavaScriptCodeWithScope => "javascriptWithScope",
        ElementType::Int32 => "int",
        ElementType::Timestamp => "timestamp",
        ElementType::Int64 => "long",
        ElementType::Decimal128 => "decimal",
        ElementType::MaxKey => "maxKey",
        ElementType::MinKey => "minKey",
    }
}

/// A short, typed rendering of a value for a report: `5 (int)`,
/// `"Lyon" (string)`; long values are cut.
pub fn preview(v: RawBsonRef<'_>) -> String {
    let text = match Bson::try_from(v.to_raw_bson()) {
        Ok(b) => b.into_relaxed_extjson().to_string(),
        Err(_) => "?".to_string(),
    };
    let text = if text.chars().count() > PREVIEW_CHARS {
        let cut: String = text.chars().take(PREVIEW_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    };
    format!("{text} ({})", type_name(v))
}

/// An `_id` as canonical extended JSON, which keeps its exact type.
pub fn id_json(id: &Bson) -> serde_json::Value {
    id.clone().into_canonical_extjson()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, rawdoc, Decimal128, RawDocumentBuf};

    fn raw(d: bson::Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    fn paths(d: &DocDiff) -> Vec<(&str, FieldChange)> {
        d.fields
            .iter()
            .map(|f| (f.path.as_str(), f.change))
            .collect()
    }

    #[test]
    fn equal_documents_have_no_difference() {
        let a = raw(doc! { "_id": 1, "a": { "b": [1, 2] } });
        assert_eq!(diff(&a, &a, true).unwrap(), None);
        assert_eq!(diff(&a, &a, false).unwrap(), None);
    }

    #[test]
    fn a_changed_nested_value_is_named_by_its_path() {
        let a = raw(
            doc! { "_id": 1, "a": { "b": { "c": 1 } }, "arr": [ { "x": 1 }, { "x": 2 }, { "x": 3 } ] },
        );
        let b = raw(
            doc! { "_id": 1, "a": { "b": { "c": 2 } }, "arr": [ { "x": 1 }, { "x": 2 }, { "x": 4 } ] },
        );
        let d = diff(&a, &b, false).unwrap().unwrap();
        assert_eq!(d.kind, DifferenceKind::Different);
        assert_eq!(
            paths(&d),
            vec![
                ("a.b.c", FieldChange::Value),
                ("arr.2.x", FieldChange::Value)
            ]
        );
        assert_eq!(d.fields[0].source.as_deref(), Some("1 (int)"));
        assert_eq!(d.fields[0].destination.as_deref(), Some("2 (int)"));
    }

    #[test]
    fn missing_and_extra_fields_and_array_elements() {
        let a = raw(doc! { "_id": 1, "gone": true, "arr": [1, 2, 3] });
        let b = raw(doc! { "_id": 1, "arr": [1, 2], "new": "x" });
        let d = diff(&a, &b, false).unwrap().unwrap();
        assert_eq!(
            paths(&d),
            vec![
                ("gone", FieldChange::MissingOnDestination),
                ("arr.2", FieldChange::MissingOnDestination),
                ("new", FieldChange::ExtraOnDestination),
            ]
        );
    }

    #[test]
    fn same_value_in_another_numeric_type_is_a_type_difference() {
        let a = raw(doc! { "_id": 1, "n": 5_i32, "d": 0.5_f64, "x": "same" });
        let b = raw(
            doc! { "_id": 1, "n": 5_i64, "d": "0.5".parse::<Decimal128>().unwrap(), "x": "same" },
        );
        let d = diff(&a, &b, false).unwrap().unwrap();
        assert_eq!(d.kind, DifferenceKind::Type);
        assert_eq!(
            paths(&d),
            vec![("n", FieldChange::Type), ("d", FieldChange::Type)]
        );
        assert_eq!(d.fields[0].source.as_deref(), Some("5 (int)"));
        assert_eq!(d.fields[0].destination.as_deref(), Some("5 (long)"));
        // A different value in another type is a plain difference.
        let c = raw(doc! { "_id": 1, "n": 6_i64, "d": 0.5_f64, "x": "same" });
        let d = diff(&a, &c, false).unwrap().unwrap();
        assert_eq!(d.kind, DifferenceKind::Different);
        assert_eq!(paths(&d), vec![("n", FieldChange::Value)]);
    }

    #[test]
    fn field_order_counts_only_when_strict() {
        let a = raw(doc! { "_id": 1, "a": 1, "b": 2, "s": { "x": 1, "y": 2 } });
        let b = raw(doc! { "_id": 1, "b": 2, "a": 1, "s": { "y": 2, "x": 1 } });
        assert_eq!(diff(&a, &b, false).unwrap(), None);
        let d = diff(&a, &b, true).unwrap().unwrap();
        assert_eq!(d.kind, DifferenceKind::FieldOrder);
        assert_eq!(
            paths(&d),
            vec![
                ("s.x", FieldChange::Order),
                ("s.y", FieldChange::Order),
                ("a", FieldChange::Order),
                ("b", FieldChange::Order),
            ]
        );
    }

    #[test]
    fn a_document_that_differs_everywhere_is_cut_short() {
        let mut a = bson::Document::new();
        let mut b = bson::Document::new();
        for i in 0..200 {
            a.insert(format!("f{i}"), i);
            b.insert(format!("f{i}"), i + 1);
        }
        let d = diff(&raw(a), &raw(b), false).unwrap().unwrap();
        assert_eq!(d.fields.len(), MAX_FIELDS);
        assert!(d.truncated);
    }

    #[test]
    fn numbers_normalize_across_types() {
        let t = |b: Bson| {
            let r = bson::RawBson::try_from(b).unwrap();
            numeric_text(r.as_raw_bson_ref())
        };
        assert_eq!(t(Bson::Int32(5)), t(Bson::Int64(5)));
        assert_eq!(t(Bson::Int32(5)), t(Bson::Double(5.0)));
        assert_eq!(
            t(Bson::Double(1050.0)),
            t(Bson::Decimal128("1.05E+3".parse().unwrap()))
        );
        assert_eq!(
            t(Bson::Double(0.0)),
            t(Bson::Decimal128("-0.00".parse().unwrap()))
        );
        assert_ne!(t(Bson::Double(0.5)), t(Bson::Int32(0)));
        assert_eq!(t(Bson::Double(f64::NAN)).as_deref(), Some("nan"));
        assert_eq!(t(Bson::String("5".into())), None);
        assert_eq!(normalize_decimal("-12.50E+3").as_deref(), Some("-125e2"));
    }

    #[test]
    fn id_keys_are_exact_and_value_keys_pair_numbers() {
        let a = raw(doc! { "x": 1, "_id": 7_i32 });
        let b = raw(doc! { "_id": 7_i64 });
        assert_ne!(id_key_owned(&a).unwrap(), id_key_owned(&b).unwrap());
        assert_eq!(id_key_owned(&a).unwrap(), bson_key(&Bson::Int32(7)));
        assert_eq!(value_key(&Bson::Int32(7)), value_key(&Bson::Double(7.0)));
        assert_ne!(
            value_key(&Bson::String("a".into())),
            value_key(&Bson::String("A".into()))
        );
        let no_id = rawdoc! { "a": 1 };
        assert!(id_key(&no_id).is_err());
        // Values without value bytes are told apart by their type.
        let empty = [Bson::Null, Bson::MinKey, Bson::MaxKey, Bson::Undefined];
        let keys: std::collections::HashSet<Vec<u8>> = empty.iter().map(value_key).collect();
        assert_eq!(keys.len(), empty.len(), "{keys:?}");
        for id in &empty {
            let d = raw(doc! { "_id": id.clone() });
            assert_eq!(id_key_owned(&d).unwrap(), bson_key(id), "{id:?}");
        }
    }
}
