//! [`Options`] (how a database is opened and run) and [`WriteOptions`].
//!
//! Every option is declared once, in the [`options!`] table below: its
//! type, default, documentation and validity rule. The struct with its
//! public fields, the builder method of the same name, [`Default`],
//! [`Options::validate`] and the `OPTIONS-NNNNNN` file are all generated
//! from that table, so an option cannot be added to one and forgotten in
//! another.

use std::fmt::Write as _;
use std::time::Duration;

use kevo_sstable::{
    BLOCK_BYTES_TARGET_MAX, BLOOM_BITS_PER_KEY_MAX, Compression, RESTART_INTERVAL_MAX,
};
use kevo_wal::{RecoveryMode, SyncMode};

use crate::error::{Error, Result};

/// How tables are compacted; see `docs/compaction.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompactionStyle {
    /// Leveled compaction with dynamic level sizes: the least space
    /// (about 1.1x the live data) and the fastest reads, for more rewriting.
    #[default]
    Leveled,
    /// Size-tiered compaction: runs of similar size are merged once enough
    /// accumulate, bounded by a space-amplification limit: less rewriting
    /// for write-heavy loads, more space and slower reads.
    Tiered,
}

/// Smallest accepted [`Options::memtable_bytes`].
pub const MEMTABLE_BYTES_MIN: usize = 64 * 1024;
/// Largest accepted [`Options::memtable_bytes`].
pub const MEMTABLE_BYTES_MAX: usize = 4 << 30;

const KIB: u64 = 1024;

/// Declares [`Options`]: one entry per option,
/// `doc; name: type = default, valid(|value, options| rule, "what the rule says")`.
macro_rules! options {
    ($(
        $(#[doc = $doc:expr])*
        $name:ident: $ty:ty = $default:expr
        $(, valid($check:expr, $rule:expr))?;
    )*) => {
        /// How a database is opened and run: public fields with documented
        /// defaults, and a builder method of the same name for each.
        ///
        /// ```
        /// use std::time::Duration;
        /// use kevo_engine::{Options, SyncMode};
        ///
        /// let options = Options::default()
        ///     .memtable_bytes(32 << 20)
        ///     .sync_mode(SyncMode::Interval(Duration::from_millis(10)))
        ///     .block_cache_bytes(256 << 20);
        /// assert_eq!(options.memtable_bytes, 32 << 20);
        /// ```
        ///
        /// Every setter takes any value; [`Db::open_with`](crate::Db::open_with)
        /// checks them all ([`Options::validate`]) and refuses a bad one with
        /// [`Error::InvalidArgument`] naming the field.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub struct Options {
            $(
                $(#[doc = $doc])*
                pub $name: $ty,
            )*
        }

        impl Default for Options {
            fn default() -> Self {
                Options {
                    $($name: $default,)*
                }
            }
        }

        impl Options {
            /// Every option's name, in declaration order (as in the
            /// `OPTIONS` file).
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            $(
                $(#[doc = $doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*

            /// Checks every field, in declaration order.
            ///
            /// # Errors
            /// [`Error::InvalidArgument`] naming the first bad field, its
            /// rule and its value.
            pub fn validate(&self) -> Result<()> {
                $($(
                    let valid: fn(&$ty, &Options) -> bool = $check;
                    if !valid(&self.$name, self) {
                        return Err(Error::InvalidArgument(format!(
                            "Options::{} must be {} (got {:?})",
                            stringify!($name),
                            $rule,
                            self.$name
                        )));
                    }
                )?)*
                Ok(())
            }

            /// The options as the human-readable text of an
            /// `OPTIONS-NNNNNN` file: `name = value` per line.
            pub fn to_options_file(&self) -> String {
                let mut out =
                    String::from("# kevo options, written when the database was opened\n");
                $(
                    let _ = writeln!(out, "{} = {:?}", stringify!($name), self.$name);
                )*
                out
            }
        }
    };
}

options! {
    /// Create the database when the directory holds none. Default: `true`.
    create_if_missing: bool = true;
    /// Refuse to open a database that already exists. Default: `false`.
    error_if_exists: bool = false;
    /// Size at which the memtable becomes immutable and is flushed to an
    /// L0 table (64 KiB ..= 4 GiB). Default: 16 MiB (a smaller skip list
    /// is faster to insert into and seek; `docs/benchmarks.md` has the
    /// figures for 16, 32 and 64 MiB).
    memtable_bytes: usize = 16 << 20,
        valid(|v, _| (MEMTABLE_BYTES_MIN..=MEMTABLE_BYTES_MAX).contains(v), "between 64 KiB and 4 GiB");
    /// Immutable memtables waiting for a flush before writers wait
    /// (1 ..= 64). Default: 2.
    max_immutable_memtables: usize = 2,
        valid(|v, _| (1..=64).contains(v), "between 1 and 64");
    /// Target size of an uncompressed table data block (256 B ..= the
    /// table format's limit). Default: 4 KiB.
    block_bytes: usize = 4096,
        valid(|v, _| (256..=BLOCK_BYTES_TARGET_MAX).contains(v), format!("between 256 and {BLOCK_BYTES_TARGET_MAX}"));
    /// Entries between restart points in a table's data blocks: fewer make
    /// seeks inside a block faster and blocks larger (1 ..= the table
    /// format's limit). Default: 16.
    block_restart_interval: usize = 16,
        valid(|v, _| (1..=RESTART_INTERVAL_MAX).contains(v), format!("between 1 and {RESTART_INTERVAL_MAX}"));
    /// Bytes of uncompressed blocks held by the shared block cache; 0
    /// disables it. Default: 64 MiB.
    block_cache_bytes: usize = 64 << 20;
    /// One bound on the memory the database holds, or 0 for none (then
    /// each part is sized by its own option). With a budget (at least
    /// 8 MiB): a quarter of it goes to memtables (each at most that quarter
    /// over `1 + max_immutable_memtables`, and all keyspaces' active ones
    /// together as much, overriding larger `memtable_bytes` and
    /// `write_buffer_bytes`); the block cache gets the rest (overriding
    /// `block_cache_bytes`) less what the open tables' index and filter
    /// blocks and the blocks cursors hold take, recomputed as tables open
    /// and close. Writes slow down (to `delayed_write_rate`) while the
    /// memtables are at their share, before they would have to stop.
    /// `Stats` reports each part (`Stats::memory_bytes`). Default: 0.
    memory_budget_bytes: usize = 0,
        valid(|v, _| *v == 0 || *v >= 8 << 20, "0 or at least 8 MiB");
    /// Table readers kept open by the table cache (at least 16).
    /// Default: 1000.
    table_cache_tables: usize = 1000,
        valid(|v, _| *v >= 16, "at least 16");
    /// Bloom filter bits per key in new tables; 0 writes no filter
    /// (0 ..= 32). Default: 10 (about 1% false positives).
    bloom_bits_per_key: u32 = 10,
        valid(|v, _| *v <= BLOOM_BITS_PER_KEY_MAX, format!("at most {BLOOM_BITS_PER_KEY_MAX}"));
    /// Whether new tables get the cache-local Bloom filter (table format
    /// version 3: every probe of a key in one 64-byte cache line, so a
    /// lookup waits for one cache miss in the filter once the filters
    /// outgrow the CPU caches, for about 0.1 point more false positives).
    /// `false` writes the filter of table format versions 1 and 2, for a
    /// database that a kevo build from before version 3 must still open.
    /// Default: true.
    cache_local_filter: bool = true;
    /// Compression of table blocks. Default: LZ4 (none in a build without
    /// it).
    compression: Compression = if Compression::Lz4.is_supported() {
            Compression::Lz4
        } else {
            Compression::None
        },
        valid(|v, _| v.is_supported(), "supported by this build");
    /// When the WAL is synced. Default: every 100 ms
    /// ([`SyncMode::Interval`]); a write made with [`WriteOptions::sync`]
    /// is synced before it returns in any mode.
    sync_mode: SyncMode = SyncMode::Interval(Duration::from_millis(100)),
        valid(|v, _| !matches!(v, SyncMode::Interval(interval) if interval.is_zero()), "an interval above zero");
    /// How WAL damage is treated when the database opens. Default:
    /// [`RecoveryMode::TolerateTornTail`].
    recovery_mode: RecoveryMode = RecoveryMode::TolerateTornTail;
    /// Size at which a WAL segment is sealed and the next one started
    /// (at least 64 KiB). Default: 64 MiB.
    wal_segment_bytes: u64 = 64 << 20,
        valid(|v, _| *v >= 64 * KIB, "at least 64 KiB");
    /// Under [`SyncMode::None`] and [`SyncMode::Interval`], WAL records are
    /// gathered in memory up to this many bytes and written together
    /// (before every sync, rotation and close too): a process crash may
    /// lose what a power loss could lose anyway under those modes. 0 writes
    /// every record at once (at most 64 MiB). Default: 64 KiB.
    wal_buffer_bytes: usize = 64 << 10,
        valid(|v, _| *v <= 64 << 20, "at most 64 MiB");
    /// Obsolete WAL segment files kept to be overwritten by the next
    /// segments instead of deleted (0 ..= 16). Each is zeroed when retired
    /// (a write of its whole length) and takes its size on disk until
    /// reused. Default: 0: synced appends need no recycled file to avoid
    /// growing theirs, as the WAL zeroes space ahead of them (see
    /// `docs/durability.md`).
    wal_recycle_segments: usize = 0,
        valid(|v, _| *v <= 16, "at most 16");
    /// With several keyspaces, the WAL bytes past which the keyspaces
    /// holding its oldest segment are flushed, so that a keyspace written
    /// rarely does not keep the WAL forever; 0: four times
    /// `memtable_bytes` per keyspace. Default: 0.
    max_total_wal_bytes: u64 = 0;
    /// With several keyspaces, the bytes all their active memtables may
    /// hold together (RocksDB's `db_write_buffer_size`): past it the
    /// largest is switched and flushed, so that many keyspaces do not
    /// multiply the memory (and cache footprint) of writes; 0:
    /// `memtable_bytes`. Default: 0.
    write_buffer_bytes: u64 = 0;
    /// L0 tables at which each write is delayed a little (above
    /// `l0_compaction_trigger`). Default: 20.
    l0_slowdown_trigger: usize = 20,
        valid(|v, o| *v >= 1 && *v > o.l0_compaction_trigger, "above l0_compaction_trigger");
    /// L0 tables at which writes wait for compaction (above
    /// `l0_slowdown_trigger`). Default: 36.
    l0_stop_trigger: usize = 36,
        valid(|v, o| *v > o.l0_slowdown_trigger, "above l0_slowdown_trigger");
    /// While compaction is behind (past a slowdown limit), writes are
    /// delayed to about this many bytes per second (at least 1 KiB/s).
    /// Default: 16 MiB/s (RocksDB's default delayed write rate).
    delayed_write_rate: u64 = 16 << 20,
        valid(|v, _| *v >= KIB, "at least 1 KiB per second");
    /// Background threads for flushes (and compactions) (1 ..= 64).
    /// Default: 2.
    background_threads: usize = 2,
        valid(|v, _| (1..=64).contains(v), "between 1 and 64");
    /// The manifest is rewritten from a snapshot once its log grows past
    /// this (at least 64 KiB). Default: 8 MiB.
    manifest_rewrite_bytes: u64 = 8 << 20,
        valid(|v, _| *v >= 64 * KIB, "at least 64 KiB");
    /// The compaction strategy. Default: [`CompactionStyle::Leveled`].
    compaction_style: CompactionStyle = CompactionStyle::Leveled;
    /// L0 tables that trigger a compaction out of L0 (leveled), or the
    /// fewest similar runs merged at once (tiered) (2 ..= 64). Default: 4.
    l0_compaction_trigger: usize = 4,
        valid(|v, _| (2..=64).contains(v), "between 2 and 64");
    /// Size at which compaction output is cut into a new table (at least
    /// 64 KiB). Default: 64 MiB.
    target_file_bytes: u64 = 64 << 20,
        valid(|v, _| *v >= 64 * KIB, "at least 64 KiB");
    /// Leveled: the smallest target size of a level below L0; the last
    /// level's size sets the others (each `level_multiplier` times
    /// smaller), and levels whose target would fall below this stay empty
    /// (at least 64 KiB). Default: 256 MiB.
    base_level_bytes: u64 = 256 << 20,
        valid(|v, _| *v >= 64 * KIB, "at least 64 KiB");
    /// Once the database has taken no write and no read that reached a
    /// table for `idle_compaction_delay_ms`, a leveled keyspace whose levels above
    /// its last non-empty one hold more than this many percent of its table
    /// bytes (new data, and old versions and tombstones not yet merged
    /// down), or whose tables are all in L0 and more than one, is
    /// compacted into one level, in the background: a database left alone
    /// settles at the size of its live data. It costs a rewrite of the last
    /// level per idle period that follows this much new data; 0 turns it
    /// off (0 ..= 100). Needs `background_threads` of at least 2 (one keeps
    /// flushing meanwhile). Default: 5.
    idle_compaction_percent: u64 = 5,
        valid(|v, _| *v <= 100, "at most 100");
    /// How long without a write or a table read makes the database idle for
    /// `idle_compaction_percent` (at least 10). Default: 1000.
    idle_compaction_delay_ms: u64 = 1000,
        valid(|v, _| *v >= 10, "at least 10");
    /// Leveled: size ratio between adjacent levels (2 ..= 100).
    /// Default: 10.
    level_multiplier: u64 = 10,
        valid(|v, _| (2..=100).contains(v), "between 2 and 100");
    /// Tiered: the most runs one merge takes (`l0_compaction_trigger`
    /// ..= 1024). Default: 16.
    tiered_max_merge_width: usize = 16,
        valid(|v, o| (o.l0_compaction_trigger..=1024).contains(v), "between l0_compaction_trigger and 1024");
    /// Tiered: a run joins a merge while it is at most this many percent
    /// larger than the runs gathered so far (0 ..= 10000). Default: 100.
    tiered_size_ratio_percent: u64 = 100,
        valid(|v, _| *v <= 10_000, "at most 10000");
    /// Tiered: everything is merged into one run once the newer runs hold
    /// more than this many percent of the oldest run's bytes (1 ..= 10000).
    /// Default: 200.
    tiered_max_space_amplification_percent: u64 = 200,
        valid(|v, _| (1..=10_000).contains(v), "between 1 and 10000");
    /// Bytes compaction is behind at which each write is delayed a
    /// little. Default: 64 GiB.
    pending_compaction_bytes_slowdown: u64 = 64 << 30;
    /// Bytes compaction is behind at which writes wait (above the
    /// slowdown limit). Default: 256 GiB.
    pending_compaction_bytes_stop: u64 = 256 << 30,
        valid(|v, o| *v > o.pending_compaction_bytes_slowdown, "above pending_compaction_bytes_slowdown");
    /// Run compactions in the background as the tree needs them. With
    /// `false` only [`Db::compact_range`](crate::Db::compact_range)
    /// compacts (and the L0 triggers do not stall writers). Default:
    /// `true`.
    auto_compactions: bool = true;
    /// Bytes of recent commits kept for open transactions' conflict checks
    /// (at least 1 MiB); past it the oldest go, and a transaction that
    /// needed them fails with a conflict. Default: 64 MiB.
    transaction_history_bytes: usize = kevo_txn::DEFAULT_MAX_HISTORY_BYTES,
        valid(|v, _| *v >= 1 << 20, "at least 1 MiB");
}

impl Options {
    /// The defaults (same as [`Options::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The memtables' share of [`Options::memory_budget_bytes`] (0 without
    /// a budget).
    pub(crate) fn memtable_share(&self) -> usize {
        self.memory_budget_bytes / 4
    }

    /// These options with what the memory budget sets (see
    /// [`Options::memory_budget_bytes`]): the memtable size, the write
    /// buffer and the block cache's largest size. Unchanged without one.
    pub(crate) fn with_budget_applied(mut self) -> Options {
        if self.memory_budget_bytes == 0 {
            return self;
        }
        let share = self.memtable_share();
        let per_memtable = (share / (1 + self.max_immutable_memtables)).max(64 * KIB as usize);
        self.memtable_bytes = self.memtable_bytes.min(per_memtable);
        let total = per_memtable as u64;
        self.write_buffer_bytes = match self.write_buffer_bytes {
            0 => total,
            set => set.min(total),
        };
        self.block_cache_bytes = self.memory_budget_bytes - share;
        self
    }
}

/// A keyspace's own options ([`Db::keyspace`](crate::Db::keyspace)):
/// each one left `None` takes the database's [`Options`] value.
///
/// Options are not stored in the database: pass them each time it is
/// opened. A keyspace that exists is written with the options of the
/// latest [`Db::keyspace`](crate::Db::keyspace) call for it (from its next
/// memtable, table and compaction on); until the first call after an open
/// it uses the database's.
///
/// ```
/// use kevo_engine::{CompactionStyle, KeyspaceOptions};
/// let options = KeyspaceOptions::default()
///     .compaction_style(CompactionStyle::Tiered)
///     .memtable_bytes(4 << 20)
///     .bloom_bits_per_key(16);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyspaceOptions {
    /// [`Options::compaction_style`].
    pub compaction_style: Option<CompactionStyle>,
    /// [`Options::bloom_bits_per_key`].
    pub bloom_bits_per_key: Option<u32>,
    /// [`Options::block_bytes`].
    pub block_bytes: Option<usize>,
    /// [`Options::compression`].
    pub compression: Option<Compression>,
    /// [`Options::memtable_bytes`].
    pub memtable_bytes: Option<usize>,
    /// [`Options::target_file_bytes`].
    pub target_file_bytes: Option<u64>,
}

impl KeyspaceOptions {
    /// Sets [`KeyspaceOptions::compaction_style`].
    #[must_use]
    pub fn compaction_style(mut self, style: CompactionStyle) -> Self {
        self.compaction_style = Some(style);
        self
    }

    /// Sets [`KeyspaceOptions::bloom_bits_per_key`].
    #[must_use]
    pub fn bloom_bits_per_key(mut self, bits: u32) -> Self {
        self.bloom_bits_per_key = Some(bits);
        self
    }

    /// Sets [`KeyspaceOptions::block_bytes`].
    #[must_use]
    pub fn block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = Some(bytes);
        self
    }

    /// Sets [`KeyspaceOptions::compression`].
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Sets [`KeyspaceOptions::memtable_bytes`].
    #[must_use]
    pub fn memtable_bytes(mut self, bytes: usize) -> Self {
        self.memtable_bytes = Some(bytes);
        self
    }

    /// Sets [`KeyspaceOptions::target_file_bytes`].
    #[must_use]
    pub fn target_file_bytes(mut self, bytes: u64) -> Self {
        self.target_file_bytes = Some(bytes);
        self
    }

    /// `database` with these options put over it, checked.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a value [`Options::validate`] refuses.
    pub(crate) fn resolve(&self, database: &Options) -> Result<Options> {
        let mut options = database.clone();
        if let Some(style) = self.compaction_style {
            options.compaction_style = style;
        }
        if let Some(bits) = self.bloom_bits_per_key {
            options.bloom_bits_per_key = bits;
        }
        if let Some(bytes) = self.block_bytes {
            options.block_bytes = bytes;
        }
        if let Some(compression) = self.compression {
            options.compression = compression;
        }
        if let Some(bytes) = self.memtable_bytes {
            options.memtable_bytes = bytes;
        }
        if let Some(bytes) = self.target_file_bytes {
            options.target_file_bytes = bytes;
        }
        options.validate()?;
        Ok(options)
    }
}

/// How one write is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Sync the WAL before the write returns, whatever the
    /// [`SyncMode`]: once it returns `Ok`, the write survives a crash.
    /// Default: `false` (the database's sync mode decides).
    pub sync: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Options::default().validate().unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Options, &str)> = vec![
            (Options::new().memtable_bytes(1), "memtable_bytes"),
            (
                Options::new().max_immutable_memtables(0),
                "max_immutable_memtables",
            ),
            (Options::new().block_bytes(0), "block_bytes"),
            (
                Options::new().block_restart_interval(0),
                "block_restart_interval",
            ),
            (Options::new().table_cache_tables(1), "table_cache_tables"),
            (
                Options::new().bloom_bits_per_key(1000),
                "bloom_bits_per_key",
            ),
            (
                Options::new().sync_mode(SyncMode::Interval(Duration::ZERO)),
                "sync_mode",
            ),
            (Options::new().wal_segment_bytes(10), "wal_segment_bytes"),
            (Options::new().l0_slowdown_trigger(0), "l0_slowdown_trigger"),
            (
                Options::new().l0_slowdown_trigger(10).l0_stop_trigger(10),
                "l0_stop_trigger",
            ),
            (Options::new().background_threads(0), "background_threads"),
            (
                Options::new().l0_compaction_trigger(1),
                "l0_compaction_trigger",
            ),
            (Options::new().target_file_bytes(1), "target_file_bytes"),
            (Options::new().base_level_bytes(1), "base_level_bytes"),
            (Options::new().level_multiplier(1), "level_multiplier"),
            (
                Options::new().pending_compaction_bytes_stop(1),
                "pending_compaction_bytes_stop",
            ),
            (
                Options::new().manifest_rewrite_bytes(1),
                "manifest_rewrite_bytes",
            ),
            (Options::new().wal_buffer_bytes(1 << 40), "wal_buffer_bytes"),
            (
                Options::new().wal_recycle_segments(1000),
                "wal_recycle_segments",
            ),
            (Options::new().delayed_write_rate(10), "delayed_write_rate"),
            (
                Options::new().tiered_max_merge_width(3),
                "tiered_max_merge_width",
            ),
            (
                Options::new().tiered_size_ratio_percent(1 << 40),
                "tiered_size_ratio_percent",
            ),
            (
                Options::new().tiered_max_space_amplification_percent(0),
                "tiered_max_space_amplification_percent",
            ),
            (
                Options::new().transaction_history_bytes(10),
                "transaction_history_bytes",
            ),
        ];
        for (options, field) in cases {
            match options.validate() {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.contains(field), "{message} should name {field}")
                }
                other => panic!("{field}: expected InvalidArgument, got {other:?}"),
            }
        }
    }

    #[test]
    fn setters_and_fields_agree() {
        let options = Options::new()
            .memtable_bytes(1 << 20)
            .tiered_max_merge_width(8)
            .wal_buffer_bytes(0);
        assert_eq!(options.memtable_bytes, 1 << 20);
        assert_eq!(options.tiered_max_merge_width, 8);
        assert_eq!(options.wal_buffer_bytes, 0);
        assert_eq!(Options::new(), Options::default());
    }

    #[test]
    fn options_file_names_every_field() {
        let text = Options::default().to_options_file();
        assert!(text.contains("memtable_bytes = 16777216"));
        assert!(text.contains("sync_mode = Interval(100ms)"));
        assert_eq!(
            text.lines().filter(|l| l.contains(" = ")).count(),
            Options::NAMES.len()
        );
        for name in Options::NAMES {
            assert!(text.contains(&format!("\n{name} = ")), "{name} missing");
        }
    }
}
