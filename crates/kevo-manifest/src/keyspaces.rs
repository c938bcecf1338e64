//! Keyspaces: independent key spaces in one database (RocksDB's column
//! families), each with its own levels, version and log number, sharing one
//! WAL, one seqno sequence and one manifest.
//!
//! [`Keyspaces`] is the pure state the version set keeps of them, and the
//! rules for applying an edit to it; the version set, the manifest replay
//! and [`RecoveredManifest::apply_edit`](crate::RecoveredManifest::apply_edit)
//! all go through [`Keyspaces::apply`], so a live edit and its replay make
//! the same state. It does no I/O.
//!
//! The default keyspace ([`DEFAULT_KEYSPACE`], named
//! [`DEFAULT_KEYSPACE_NAME`]) always exists: it is all a manifest written
//! before keyspaces holds. Ids are handed out in increasing order and never
//! reused: a create must name an id at or above the next keyspace id, and
//! moves it past that id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kevo_core::{DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME, KeyspaceId, check_keyspace_name};

use crate::edit::VersionEdit;
use crate::version::Version;

/// What [`VersionSet::keyspaces`](crate::VersionSet::keyspaces) reports of
/// one live keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceInfo {
    /// The keyspace's id: [`DEFAULT_KEYSPACE`] for the default keyspace.
    pub id: KeyspaceId,
    /// Its name: [`DEFAULT_KEYSPACE_NAME`] for the default keyspace.
    pub name: String,
    /// WAL segments numbered below this hold nothing of it that is not in
    /// its tables.
    pub log_number: u64,
}

/// One keyspace other than the default one, as a manifest records it (see
/// [`RecoveredManifest::keyspaces`](crate::RecoveredManifest::keyspaces)).
#[derive(Debug, Clone, Default)]
pub struct RecoveredKeyspace {
    /// Its name (checked by [`check_keyspace_name`]; unique among the live
    /// keyspaces).
    pub name: String,
    /// Its tables, level by level.
    pub version: Arc<Version>,
    /// WAL segments numbered below this hold nothing of it that is not in
    /// its tables.
    pub log_number: u64,
}

/// The live keyspaces and the keyspace id counter.
///
/// # Invariants
/// - The default keyspace always exists, named [`DEFAULT_KEYSPACE_NAME`].
/// - Names are unique; every id is below `next_id`, which is at least 1
///   and below `KeyspaceId::MAX` plus one.
/// - A table number is in at most one keyspace's version.
#[derive(Debug, Clone)]
pub(crate) struct Keyspaces {
    /// The default keyspace: its name is [`DEFAULT_KEYSPACE_NAME`].
    default: RecoveredKeyspace,
    /// Every other live keyspace.
    others: BTreeMap<KeyspaceId, RecoveredKeyspace>,
    /// Ids at or above this were never handed out.
    next_id: KeyspaceId,
}

impl Default for Keyspaces {
    fn default() -> Self {
        Keyspaces {
            default: RecoveredKeyspace {
                name: DEFAULT_KEYSPACE_NAME.to_string(),
                version: Arc::default(),
                log_number: 0,
            },
            others: BTreeMap::new(),
            next_id: DEFAULT_KEYSPACE + 1,
        }
    }
}

/// What applying one edit made of [`Keyspaces`].
#[derive(Debug)]
pub(crate) struct Applied {
    /// The keyspaces after the edit.
    pub(crate) keyspaces: Keyspaces,
    /// The edit's keyspace's version after the edit; for a drop, its last
    /// version.
    pub(crate) version: Arc<Version>,
    /// Whether `version` is new: the edit changed tables or created the
    /// keyspace.
    pub(crate) installed: bool,
    /// Tables that no keyspace holds any more: every table of a dropped
    /// keyspace (removed tables are the caller's to account for).
    pub(crate) dropped_tables: Vec<u64>,
}

impl Keyspaces {
    /// The state a manifest's recovered fields describe, or why it is not
    /// one: an id of 0 or `KeyspaceId::MAX` among `others`, a name that is
    /// invalid or in use twice, or a table in two keyspaces. The id counter
    /// is raised past every id in use.
    pub(crate) fn from_parts(
        default_version: Arc<Version>,
        default_log_number: u64,
        others: &BTreeMap<KeyspaceId, RecoveredKeyspace>,
        next_id: KeyspaceId,
    ) -> Result<Keyspaces, String> {
        let mut keyspaces = Keyspaces {
            default: RecoveredKeyspace {
                name: DEFAULT_KEYSPACE_NAME.to_string(),
                version: default_version,
                log_number: default_log_number,
            },
            others: BTreeMap::new(),
            next_id: next_id.max(DEFAULT_KEYSPACE + 1),
        };
        let mut numbers: BTreeSet<u64> = keyspaces.default.version.table_numbers().collect();
        for (&id, keyspace) in others {
            if id == DEFAULT_KEYSPACE || id == KeyspaceId::MAX {
                return Err(format!("keyspace id {id} cannot name a created keyspace"));
            }
            check_keyspace_name(&keyspace.name)?;
            if let Some(other) = keyspaces.id_of(&keyspace.name) {
                return Err(format!(
                    "keyspaces {other} and {id} are both named `{}`",
                    keyspace.name
                ));
            }
            for number in keyspace.version.table_numbers() {
                if !numbers.insert(number) {
                    return Err(format!("table {number} is in two keyspaces"));
                }
            }
            keyspaces.next_id = keyspaces.next_id.max(id + 1);
            keyspaces.others.insert(id, keyspace.clone());
        }
        Ok(keyspaces)
    }

    /// The default keyspace.
    pub(crate) fn default_keyspace(&self) -> &RecoveredKeyspace {
        &self.default
    }

    /// Every keyspace but the default one, by id.
    pub(crate) fn others(&self) -> &BTreeMap<KeyspaceId, RecoveredKeyspace> {
        &self.others
    }

    /// Ids at or above this were never handed out.
    pub(crate) fn next_id(&self) -> KeyspaceId {
        self.next_id
    }

    /// Live keyspace `id`.
    pub(crate) fn get(&self, id: KeyspaceId) -> Option<&RecoveredKeyspace> {
        if id == DEFAULT_KEYSPACE {
            Some(&self.default)
        } else {
            self.others.get(&id)
        }
    }

    /// Every live keyspace: the default one first, then by ascending id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (KeyspaceId, &RecoveredKeyspace)> {
        std::iter::once((DEFAULT_KEYSPACE, &self.default))
            .chain(self.others.iter().map(|(&id, k)| (id, k)))
    }

    /// The live keyspace named `name`.
    pub(crate) fn id_of(&self, name: &str) -> Option<KeyspaceId> {
        self.iter().find(|(_, k)| k.name == name).map(|(id, _)| id)
    }

    /// Every live keyspace's version.
    pub(crate) fn versions(&self) -> impl Iterator<Item = &Arc<Version>> {
        self.iter().map(|(_, k)| &k.version)
    }

    /// The keyspaces after `edit`, whose global log number (already raised
    /// to the set's) is `log_number`, or why the edit does not apply: its
    /// keyspace fields contradict each other, it creates a keyspace that
    /// exists, an id handed out before or a name in use, it names a
    /// keyspace that does not exist, its tables do not apply to the
    /// keyspace's version, or it adds a table another keyspace holds.
    pub(crate) fn apply(&self, edit: &VersionEdit, log_number: u64) -> Result<Applied, String> {
        edit.check_keyspace_fields()?;
        let id = edit.keyspace;
        let mut next = self.clone();
        if let Some(n) = edit.next_keyspace_id {
            next.next_id = next.next_id.max(n);
        }
        if let Some(name) = &edit.keyspace_created {
            if self.get(id).is_some() {
                return Err(format!("creates keyspace {id}, which exists"));
            }
            if id < self.next_id {
                return Err(format!(
                    "creates keyspace {id}, an id handed out before (the next is {})",
                    self.next_id
                ));
            }
            if let Some(other) = self.id_of(name) {
                return Err(format!(
                    "creates keyspace {id} named `{name}`, the name of keyspace {other}"
                ));
            }
            self.check_added_elsewhere(id, edit)?;
            let version = Arc::new(Version::default().apply(edit)?);
            let keyspace = RecoveredKeyspace {
                name: name.clone(),
                version: Arc::clone(&version),
                log_number: edit.keyspace_log_number.unwrap_or(log_number),
            };
            next.others.insert(id, keyspace);
            // `check_keyspace_fields` refused KeyspaceId::MAX.
            next.next_id = next.next_id.max(id.saturating_add(1));
            return Ok(Applied {
                keyspaces: next,
                version,
                installed: true,
                dropped_tables: Vec::new(),
            });
        }
        let Some(current) = self.get(id) else {
            return Err(format!(
                "names keyspace {id}, which does not exist (never created, or dropped)"
            ));
        };
        if edit.keyspace_dropped {
            next.others.remove(&id);
            return Ok(Applied {
                keyspaces: next,
                version: Arc::clone(&current.version),
                installed: false,
                dropped_tables: current.version.table_numbers().collect(),
            });
        }
        let (version, installed) = if edit.changes_no_table() {
            (Arc::clone(&current.version), false)
        } else {
            self.check_added_elsewhere(id, edit)?;
            (Arc::new(current.version.apply(edit)?), true)
        };
        let mut keyspace_log_number = current
            .log_number
            .max(edit.keyspace_log_number.unwrap_or(0));
        if id == DEFAULT_KEYSPACE && edit.keyspace_log_number.is_none() {
            // Every edit before keyspaces moved the default keyspace's log
            // number with the global one.
            keyspace_log_number = keyspace_log_number.max(edit.log_number.unwrap_or(0));
        }
        let keyspace = RecoveredKeyspace {
            name: current.name.clone(),
            version: Arc::clone(&version),
            log_number: keyspace_log_number,
        };
        if id == DEFAULT_KEYSPACE {
            next.default = keyspace;
        } else {
            next.others.insert(id, keyspace);
        }
        Ok(Applied {
            keyspaces: next,
            version,
            installed,
            dropped_tables: Vec::new(),
        })
    }

    /// Refuses an edit adding a table that a keyspace other than `id`
    /// holds (its own keyspace's version checks itself).
    fn check_added_elsewhere(&self, id: KeyspaceId, edit: &VersionEdit) -> Result<(), String> {
        if edit.added.is_empty() {
            return Ok(());
        }
        let added: BTreeSet<u64> = edit.added.iter().map(|(_, t)| t.number).collect();
        for (other, keyspace) in self.iter().filter(|&(other, _)| other != id) {
            if let Some(number) = keyspace.version.table_numbers().find(|n| added.contains(n)) {
                return Err(format!(
                    "adds table {number} to keyspace {id}, but keyspace {other} holds it"
                ));
            }
        }
        Ok(())
    }

    /// The records that recreate these keyspaces in a new manifest, given
    /// its first record `first` (the shared counters, WAL segments and
    /// unexplained tables; its `log_number` is the global log number):
    /// `first` gets the default keyspace's tables (and its log number, if it
    /// is not the global one); each other keyspace, by ascending id, gets a
    /// create record with its tables and log number; the last record
    /// carries the next keyspace id.
    pub(crate) fn snapshot_edits(&self, mut first: VersionEdit) -> Vec<VersionEdit> {
        let tables =
            |version: &Version| version.tables().map(|(l, t)| (l, (**t).clone())).collect();
        first.keyspace = DEFAULT_KEYSPACE;
        first.added = tables(&self.default.version);
        if first.log_number != Some(self.default.log_number) {
            first.keyspace_log_number = Some(self.default.log_number);
        }
        let mut edits = vec![first];
        for (&id, keyspace) in &self.others {
            edits.push(VersionEdit {
                added: tables(&keyspace.version),
                keyspace: id,
                keyspace_created: Some(keyspace.name.clone()),
                keyspace_log_number: Some(keyspace.log_number),
                ..VersionEdit::default()
            });
        }
        if let Some(last) = edits.last_mut() {
            last.next_keyspace_id = Some(self.next_id);
        }
        edits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::table;

    fn create(id: KeyspaceId, name: &str) -> VersionEdit {
        VersionEdit {
            keyspace: id,
            keyspace_created: Some(name.to_string()),
            ..VersionEdit::default()
        }
    }

    fn apply(keyspaces: &Keyspaces, edit: &VersionEdit) -> Result<Keyspaces, String> {
        keyspaces.apply(edit, 7).map(|applied| applied.keyspaces)
    }

    #[test]
    fn creates_take_fresh_ids_and_free_names() {
        let k = Keyspaces::default();
        assert_eq!(k.next_id(), 1);
        let k = apply(&k, &create(1, "index")).unwrap();
        assert_eq!(k.next_id(), 2);
        assert_eq!(k.id_of("index"), Some(1));
        // The create's log number defaults to the global one.
        assert_eq!(k.get(1).map(|k| k.log_number), Some(7));
        assert!(
            apply(&k, &create(1, "other"))
                .unwrap_err()
                .contains("exists")
        );
        assert!(
            apply(&k, &create(2, "index"))
                .unwrap_err()
                .contains("the name of keyspace 1")
        );
        assert!(
            apply(&k, &create(2, "default"))
                .unwrap_err()
                .contains("the name of keyspace 0")
        );
        let dropped = VersionEdit {
            keyspace: 1,
            keyspace_dropped: true,
            ..VersionEdit::default()
        };
        let k = apply(&k, &dropped).unwrap();
        assert!(k.get(1).is_none());
        assert!(apply(&k, &dropped).unwrap_err().contains("does not exist"));
        // The id is never handed out again; the name is free.
        assert!(
            apply(&k, &create(1, "index"))
                .unwrap_err()
                .contains("handed out before")
        );
        let k = apply(&k, &create(5, "index")).unwrap();
        assert_eq!((k.id_of("index"), k.next_id()), (Some(5), 6));
    }

    #[test]
    fn tables_go_to_the_edits_keyspace_only() {
        let k = apply(&Keyspaces::default(), &create(1, "index")).unwrap();
        let add = |id, number| VersionEdit {
            keyspace: id,
            added: vec![(0, table(number, "a", "c", (1, 2)))],
            keyspace_log_number: Some(9),
            ..VersionEdit::default()
        };
        let applied = k.apply(&add(1, 10), 0).unwrap();
        assert!(applied.installed);
        let k = applied.keyspaces;
        assert_eq!(k.get(1).map(|k| k.version.table_count()), Some(1));
        assert_eq!(k.get(1).map(|k| k.log_number), Some(9));
        assert_eq!(k.default_keyspace().version.table_count(), 0);
        assert!(
            apply(&k, &add(0, 10))
                .unwrap_err()
                .contains("keyspace 1 holds it")
        );
        assert!(
            apply(&k, &add(2, 11))
                .unwrap_err()
                .contains("does not exist")
        );
        let dropped = k
            .apply(
                &VersionEdit {
                    keyspace: 1,
                    keyspace_dropped: true,
                    ..VersionEdit::default()
                },
                0,
            )
            .unwrap();
        assert_eq!(dropped.dropped_tables, [10]);
        assert!(dropped.keyspaces.get(1).is_none());
        // Nor may a create (a snapshot record) bring a table another
        // keyspace holds, the default one included.
        let k = apply(&Keyspaces::default(), &add(0, 12)).unwrap();
        let create_with_table = VersionEdit {
            added: vec![(1, table(12, "a", "c", (1, 2)))],
            ..create(1, "index")
        };
        assert!(
            apply(&k, &create_with_table)
                .unwrap_err()
                .contains("keyspace 0 holds it")
        );
    }

    #[test]
    fn log_numbers_never_decrease_and_the_default_follows_the_global_one() {
        let k = Keyspaces::default();
        let k = apply(
            &k,
            &VersionEdit {
                log_number: Some(4),
                ..VersionEdit::default()
            },
        )
        .unwrap();
        assert_eq!(k.default_keyspace().log_number, 4);
        let k = apply(
            &k,
            &VersionEdit {
                log_number: Some(9),
                keyspace_log_number: Some(6),
                ..VersionEdit::default()
            },
        )
        .unwrap();
        assert_eq!(k.default_keyspace().log_number, 6);
        let k = apply(
            &k,
            &VersionEdit {
                keyspace_log_number: Some(2),
                ..VersionEdit::default()
            },
        )
        .unwrap();
        assert_eq!(k.default_keyspace().log_number, 6);
        // A keyspace's edit moves only the global log number.
        let k = apply(&k, &create(1, "a")).unwrap();
        let k = apply(
            &k,
            &VersionEdit {
                keyspace: 1,
                log_number: Some(20),
                ..VersionEdit::default()
            },
        )
        .unwrap();
        assert_eq!(k.default_keyspace().log_number, 6);
        assert_eq!(k.get(1).map(|k| k.log_number), Some(7));
    }

    #[test]
    fn snapshot_edits_recreate_the_keyspaces() {
        let k = apply(&Keyspaces::default(), &create(3, "b")).unwrap();
        // Ids below one created are handed out (skipped) for good.
        let err = apply(&k, &create(1, "a")).unwrap_err();
        assert!(err.contains("handed out before"), "{err}");
        let k = apply(
            &k,
            &VersionEdit {
                keyspace: 3,
                added: vec![(2, table(4, "a", "c", (1, 2)))],
                ..VersionEdit::default()
            },
        )
        .unwrap();
        let k = apply(
            &k,
            &VersionEdit {
                next_keyspace_id: Some(9),
                keyspace_log_number: Some(2),
                ..VersionEdit::default()
            },
        )
        .unwrap();
        let first = VersionEdit {
            log_number: Some(1),
            ..VersionEdit::default()
        };
        let edits = k.snapshot_edits(first);
        assert_eq!(edits.len(), 2);
        assert_eq!(edits[0].keyspace_log_number, Some(2));
        assert_eq!(edits[0].next_keyspace_id, None);
        assert_eq!(edits[1].next_keyspace_id, Some(9));
        let mut replayed = Keyspaces::default();
        for edit in &edits {
            replayed = apply(&replayed, edit).unwrap();
        }
        let describe = |k: &Keyspaces| {
            k.iter()
                .map(|(id, k)| {
                    let tables: Vec<u64> = k.version.table_numbers().collect();
                    (id, k.name.clone(), k.log_number, tables)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(describe(&replayed), describe(&k));
        assert_eq!(replayed.next_id(), 9);
    }

    #[test]
    fn impossible_recovered_states_are_refused() {
        let named = |name: &str| RecoveredKeyspace {
            name: name.to_string(),
            ..RecoveredKeyspace::default()
        };
        let parts = |others: Vec<(KeyspaceId, RecoveredKeyspace)>| {
            Keyspaces::from_parts(Arc::default(), 0, &others.into_iter().collect(), 0)
        };
        assert!(parts(vec![(0, named("a"))]).is_err());
        assert!(parts(vec![(KeyspaceId::MAX, named("a"))]).is_err());
        assert!(parts(vec![(1, named("a b"))]).is_err());
        assert!(parts(vec![(1, named("default"))]).is_err());
        assert!(parts(vec![(1, named("a")), (2, named("a"))]).is_err());
        let k = parts(vec![(4, named("a")), (2, named("b"))]).unwrap();
        assert_eq!(k.next_id(), 5);
        let with_table = |number| RecoveredKeyspace {
            version: Arc::new(
                Version::default()
                    .apply(&VersionEdit {
                        added: vec![(0, table(number, "a", "b", (1, 1)))],
                        ..VersionEdit::default()
                    })
                    .unwrap(),
            ),
            ..named("t")
        };
        let twice = Keyspaces::from_parts(
            with_table(3).version,
            0,
            &[(1, with_table(3))].into_iter().collect(),
            1,
        );
        assert!(twice.unwrap_err().contains("two keyspaces"));
    }
}
