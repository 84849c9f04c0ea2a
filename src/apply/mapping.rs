//! Which destination collection mirrors which source collection, by the
//! source collection's UUID: events name collections by UUID, so a rename
//! on the source cannot send an event to the wrong collection.

use std::collections::HashMap;

use bson::Binary;

use crate::checkpoint::NamespaceDoc;
use crate::scope::Namespace;

/// Which destination collection mirrors which source collection.
#[derive(Debug, Default, Clone)]
pub struct Mapping {
    by_uuid: HashMap<Vec<u8>, Namespace>,
}

impl Mapping {
    pub fn from_docs(docs: &[NamespaceDoc]) -> Mapping {
        let mut m = Mapping::default();
        for d in docs {
            if let Some(u) = &d.uuid {
                m.by_uuid.insert(u.bytes.clone(), d.namespace());
            }
        }
        m
    }

    pub fn get(&self, uuid: &Binary) -> Option<&Namespace> {
        self.by_uuid.get(&uuid.bytes)
    }

    pub(super) fn holder_of(&self, ns: &Namespace) -> Option<Vec<u8>> {
        self.by_uuid
            .iter()
            .find(|(_, n)| *n == ns)
            .map(|(u, _)| u.clone())
    }

    pub(super) fn insert(&mut self, uuid: &Binary, ns: Namespace) {
        self.by_uuid.insert(uuid.bytes.clone(), ns);
    }

    pub(super) fn remove(&mut self, uuid: &[u8]) -> Option<Namespace> {
        self.by_uuid.remove(uuid)
    }

    /// Forgets every collection of database `db`.
    pub(super) fn remove_db(&mut self, db: &str) {
        self.by_uuid.retain(|_, n| n.db != db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_tracks_renames() {
        let u = Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![1; 16],
        };
        let mut m = Mapping::default();
        m.insert(&u, Namespace::new("a", "x"));
        assert_eq!(
            m.holder_of(&Namespace::new("a", "x")),
            Some(u.bytes.clone())
        );
        m.insert(&u, Namespace::new("a", "y"));
        assert_eq!(m.get(&u), Some(&Namespace::new("a", "y")));
        assert_eq!(m.holder_of(&Namespace::new("a", "x")), None);
    }
}
