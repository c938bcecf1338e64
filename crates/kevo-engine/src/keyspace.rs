//! Keyspaces inside the engine: each one a [`ReadState`] (its memtables
//! and its version) with the options and compaction strategy it was given;
//! the WAL, the commit pipeline, the visibility, the job runner and the
//! caches are the engine's and shared by all.
//!
//! [`Keyspaces`] is the set: the default keyspace (id 0, always there) and
//! the others by id. It changes only under the writer mutex (a create or a
//! drop), so a group leader sees one set for its whole group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use kevo_compaction::{CompactionStrategy, Leveled, LeveledOptions, Tiered, TieredOptions};
use kevo_core::{DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME, KeyspaceId};
use kevo_manifest::Version;
use kevo_memtable::MemTable;
use kevo_sstable::TableOptions;

use crate::options::{CompactionStyle, Options};
use crate::read::{Immutable, ReadState};
use crate::sync::{read, write};

/// The strategy the options ask for.
pub(crate) fn strategy(options: &Options) -> Box<dyn CompactionStrategy> {
    match options.compaction_style {
        CompactionStyle::Leveled => Box::new(Leveled::new(LeveledOptions {
            l0_trigger: options.l0_compaction_trigger,
            level_multiplier: options.level_multiplier,
            base_level_bytes: options.base_level_bytes,
            target_file_bytes: options.target_file_bytes,
            dynamic_level_bytes: true,
        })),
        CompactionStyle::Tiered => Box::new(Tiered::new(TieredOptions {
            min_merge_width: options.l0_compaction_trigger,
            max_merge_width: options.tiered_max_merge_width,
            size_ratio_percent: options.tiered_size_ratio_percent,
            max_space_amplification_percent: options.tiered_max_space_amplification_percent,
            target_file_bytes: options.target_file_bytes,
        })),
    }
}

/// How a keyspace is written: its options and the strategy they make.
/// Replaced as a whole when the keyspace is opened with new options.
pub(crate) struct KeyspaceSettings {
    /// The database's options with this keyspace's own put over them.
    pub(crate) options: Options,
    /// How its levels are compacted.
    pub(crate) strategy: Box<dyn CompactionStrategy>,
}

impl KeyspaceSettings {
    /// The settings of `options` (already resolved and validated).
    pub(crate) fn new(options: Options) -> Self {
        let strategy = strategy(&options);
        KeyspaceSettings { options, strategy }
    }

    /// The options its tables are written with.
    pub(crate) fn table_options(&self) -> TableOptions {
        crate::tables::table_options(&self.options)
    }
}

/// One keyspace: what it holds and how it is written.
pub(crate) struct KeyspaceCore {
    /// Its id, as the WAL and the manifest record it.
    pub(crate) id: KeyspaceId,
    /// Its name.
    pub(crate) name: String,
    settings: RwLock<Arc<KeyspaceSettings>>,
    /// Its memtables and version.
    pub(crate) read: ReadState,
    /// Set (under the writer mutex) when it is dropped: handles then get
    /// an error, and background jobs leave it alone.
    dropped: AtomicBool,
    /// Its active memtable's bytes as the commit path last saw them (its
    /// share of the engine's write buffer total).
    pub(crate) seen_bytes: AtomicU64,
    /// Memtable switches so far (changed only under the writer mutex): a
    /// group that took the memtable before a switch asks for it again.
    pub(crate) switches: AtomicU64,
}

impl std::fmt::Debug for KeyspaceCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyspaceCore")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("dropped", &self.is_dropped())
            .finish_non_exhaustive()
    }
}

impl KeyspaceCore {
    /// Keyspace `id` named `name` with `options` (already resolved and
    /// validated), holding `mem` (writes not in a table, starting in WAL
    /// segment `first_log`) over `version`.
    pub(crate) fn new(
        id: KeyspaceId,
        name: String,
        options: Options,
        mem: Arc<MemTable>,
        first_log: u64,
        version: Arc<Version>,
    ) -> Self {
        let settings = KeyspaceSettings::new(options);
        let pending = settings.strategy.pending_bytes(&version);
        let read = ReadState::new(mem, first_log, version, pending);
        KeyspaceCore {
            id,
            name,
            settings: RwLock::new(Arc::new(settings)),
            read,
            dropped: AtomicBool::new(false),
            seen_bytes: AtomicU64::new(0),
            switches: AtomicU64::new(0),
        }
    }

    /// Its options and strategy now.
    pub(crate) fn settings(&self) -> Arc<KeyspaceSettings> {
        Arc::clone(&read(&self.settings))
    }

    /// Writes from now on with `options` (already resolved and validated).
    pub(crate) fn set_options(&self, options: Options) {
        *write(&self.settings) = Arc::new(KeyspaceSettings::new(options));
    }

    /// The options its tables are written with.
    pub(crate) fn table_options(&self) -> TableOptions {
        self.settings().table_options()
    }

    /// Whether it was dropped.
    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Marks it dropped (the caller holds the writer mutex).
    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }
}

/// The keyspaces a write group writes to, each with its memtable once the
/// group has room and the keyspace's switch count when it was taken (kept by
/// the engine between the leader's `make_room` and `apply`).
pub(crate) type GroupKeyspaces = Vec<(Arc<KeyspaceCore>, Option<Arc<MemTable>>, u64)>;

/// Every keyspace of the database.
#[derive(Debug)]
pub(crate) struct Keyspaces {
    default: Arc<KeyspaceCore>,
    /// How many keyspaces there are (the default included), readable
    /// without the lock.
    count: AtomicUsize,
    /// Every keyspace, the default included, by id.
    by_id: RwLock<BTreeMap<KeyspaceId, Arc<KeyspaceCore>>>,
}

impl Keyspaces {
    /// The set of `default` and `others`.
    pub(crate) fn new(default: KeyspaceCore, others: Vec<KeyspaceCore>) -> Self {
        let default = Arc::new(default);
        let mut by_id = BTreeMap::new();
        by_id.insert(DEFAULT_KEYSPACE, Arc::clone(&default));
        for core in others {
            by_id.insert(core.id, Arc::new(core));
        }
        Keyspaces {
            default,
            count: AtomicUsize::new(by_id.len()),
            by_id: RwLock::new(by_id),
        }
    }

    /// The default keyspace.
    pub(crate) fn default(&self) -> &Arc<KeyspaceCore> {
        &self.default
    }

    /// Keyspace `id`, if it exists.
    pub(crate) fn get(&self, id: KeyspaceId) -> Option<Arc<KeyspaceCore>> {
        if id == DEFAULT_KEYSPACE {
            return Some(Arc::clone(&self.default));
        }
        read(&self.by_id).get(&id).cloned()
    }

    /// The keyspace named `name`, if it exists.
    pub(crate) fn by_name(&self, name: &str) -> Option<Arc<KeyspaceCore>> {
        if name == DEFAULT_KEYSPACE_NAME {
            return Some(Arc::clone(&self.default));
        }
        read(&self.by_id).values().find(|k| k.name == name).cloned()
    }

    /// Every keyspace, by id (the default first).
    pub(crate) fn all(&self) -> Vec<Arc<KeyspaceCore>> {
        read(&self.by_id).values().cloned().collect()
    }

    /// The oldest immutable memtable of any keyspace, with its keyspace:
    /// the next to flush.
    pub(crate) fn oldest_immutable(&self) -> Option<(Arc<KeyspaceCore>, Immutable)> {
        self.all()
            .into_iter()
            .filter_map(|core| core.read.oldest_immutable().map(|imm| (core, imm)))
            .min_by_key(|(_, imm)| imm.id)
    }

    /// For each keyspace with immutable memtables, the id of its newest:
    /// what a flush of everything waiting has to reach.
    pub(crate) fn newest_immutables(&self) -> Vec<(KeyspaceId, u64)> {
        self.all()
            .iter()
            .filter_map(|core| core.read.newest_immutable_id().map(|id| (core.id, id)))
            .collect()
    }

    /// How many keyspaces there are, the default included.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Adds `core` (the caller holds the writer mutex).
    pub(crate) fn insert(&self, core: Arc<KeyspaceCore>) {
        let mut by_id = write(&self.by_id);
        by_id.insert(core.id, core);
        self.count.store(by_id.len(), Ordering::Release);
    }

    /// Removes keyspace `id` (the caller holds the writer mutex).
    pub(crate) fn remove(&self, id: KeyspaceId) -> Option<Arc<KeyspaceCore>> {
        let mut by_id = write(&self.by_id);
        let removed = by_id.remove(&id);
        self.count.store(by_id.len(), Ordering::Release);
        removed
    }
}
