//! [`Options`] (how a database is opened and run) and [`WriteOptions`].

use std::fmt::Write as _;
use std::time::Duration;

use kevo_sstable::{
    BLOCK_BYTES_TARGET_MAX, BLOOM_BITS_PER_KEY_MAX, Compression, RESTART_INTERVAL_MAX,
};
use kevo_wal::{RecoveryMode, SyncMode};

use crate::error::{Error, Result};

/// How a database is opened and run: a builder with documented defaults.
///
/// ```
/// use std::time::Duration;
/// use kevo_engine::{Options, SyncMode};
///
/// let options = Options::default()
///     .memtable_bytes(32 << 20)
///     .sync_mode(SyncMode::Interval(Duration::from_millis(10)))
///     .block_cache_bytes(256 << 20);
/// assert_eq!(options.get_memtable_bytes(), 32 << 20);
/// ```
///
/// Every setter takes any value; [`Db::open_with`](crate::Db::open_with)
/// checks them all ([`Options::validate`]) and refuses a bad one with
/// [`Error::InvalidArgument`] naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub(crate) create_if_missing: bool,
    pub(crate) error_if_exists: bool,
    pub(crate) memtable_bytes: usize,
    pub(crate) max_immutable_memtables: usize,
    pub(crate) block_bytes: usize,
    pub(crate) block_restart_interval: usize,
    pub(crate) block_cache_bytes: usize,
    pub(crate) table_cache_tables: usize,
    pub(crate) bloom_bits_per_key: u32,
    pub(crate) compression: Compression,
    pub(crate) sync_mode: SyncMode,
    pub(crate) recovery_mode: RecoveryMode,
    pub(crate) wal_segment_bytes: u64,
    pub(crate) l0_slowdown_trigger: usize,
    pub(crate) l0_stop_trigger: usize,
    pub(crate) background_threads: usize,
    pub(crate) manifest_rewrite_bytes: u64,
    pub(crate) compaction_style: CompactionStyle,
    pub(crate) l0_compaction_trigger: usize,
    pub(crate) target_file_bytes: u64,
    pub(crate) base_level_bytes: u64,
    pub(crate) level_multiplier: u64,
    pub(crate) pending_compaction_bytes_slowdown: u64,
    pub(crate) pending_compaction_bytes_stop: u64,
    pub(crate) auto_compactions: bool,
}

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

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            error_if_exists: false,
            memtable_bytes: 16 << 20,
            max_immutable_memtables: 2,
            block_bytes: 4096,
            block_restart_interval: 16,
            block_cache_bytes: 64 << 20,
            table_cache_tables: 1000,
            bloom_bits_per_key: 10,
            compression: if Compression::Lz4.is_supported() {
                Compression::Lz4
            } else {
                Compression::None
            },
            sync_mode: SyncMode::Interval(Duration::from_millis(100)),
            recovery_mode: RecoveryMode::TolerateTornTail,
            wal_segment_bytes: 64 << 20,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            background_threads: 2,
            manifest_rewrite_bytes: 8 << 20,
            compaction_style: CompactionStyle::Leveled,
            l0_compaction_trigger: 4,
            target_file_bytes: 64 << 20,
            base_level_bytes: 256 << 20,
            level_multiplier: 10,
            pending_compaction_bytes_slowdown: 64 << 30,
            pending_compaction_bytes_stop: 256 << 30,
            auto_compactions: true,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $getter:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }

        #[doc = concat!("The value set by [`Options::", stringify!($name), "`].")]
        pub fn $getter(&self) -> $ty {
            self.$name
        }
    };
}

impl Options {
    /// The defaults (same as [`Options::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    setter!(
        /// Create the database when the directory holds none. Default: `true`.
        create_if_missing, get_create_if_missing: bool
    );
    setter!(
        /// Refuse to open a database that already exists. Default: `false`.
        error_if_exists, get_error_if_exists: bool
    );
    setter!(
        /// Size at which the memtable becomes immutable and is flushed to an
        /// L0 table (64 KiB ..= 4 GiB). Default: 16 MiB (a smaller skip
        /// list is faster to insert into and seek; `docs/benchmarks.md`
        /// has the figures for 16, 32 and 64 MiB).
        memtable_bytes, get_memtable_bytes: usize
    );
    setter!(
        /// Immutable memtables waiting for a flush before writers wait
        /// (1 ..= 64). Default: 2.
        max_immutable_memtables, get_max_immutable_memtables: usize
    );
    setter!(
        /// Target size of an uncompressed table data block (256 B ..= the
        /// table format's limit). Default: 4 KiB.
        block_bytes, get_block_bytes: usize
    );
    setter!(
        /// Entries between restart points in a table's data blocks: fewer
        /// make seeks inside a block faster and blocks larger (1 ..= the
        /// table format's limit). Default: 16.
        block_restart_interval, get_block_restart_interval: usize
    );
    setter!(
        /// Bytes of uncompressed blocks held by the shared block cache; 0
        /// disables it. Default: 64 MiB.
        block_cache_bytes, get_block_cache_bytes: usize
    );
    setter!(
        /// Table readers kept open by the table cache (at least 16).
        /// Default: 1000.
        table_cache_tables, get_table_cache_tables: usize
    );
    setter!(
        /// Bloom filter bits per key in new tables; 0 writes no filter
        /// (0 ..= 32). Default: 10 (about 1% false positives).
        bloom_bits_per_key, get_bloom_bits_per_key: u32
    );
    setter!(
        /// Compression of table blocks. Default: LZ4.
        compression, get_compression: Compression
    );
    setter!(
        /// When the WAL is synced. Default: every 100 ms
        /// ([`SyncMode::Interval`]); a write made with
        /// [`WriteOptions::sync`] is synced before it returns in any mode.
        sync_mode, get_sync_mode: SyncMode
    );
    setter!(
        /// How WAL damage is treated when the database opens. Default:
        /// [`RecoveryMode::TolerateTornTail`].
        recovery_mode, get_recovery_mode: RecoveryMode
    );
    setter!(
        /// Size at which a WAL segment is sealed and the next one started
        /// (at least 64 KiB). Default: 64 MiB.
        wal_segment_bytes, get_wal_segment_bytes: u64
    );
    setter!(
        /// L0 tables at which each write is delayed a little. Default: 20.
        l0_slowdown_trigger, get_l0_slowdown_trigger: usize
    );
    setter!(
        /// L0 tables at which writes wait for compaction (must exceed the
        /// slowdown trigger). Default: 36.
        l0_stop_trigger, get_l0_stop_trigger: usize
    );
    setter!(
        /// Background threads for flushes (and compactions) (1 ..= 64).
        /// Default: 2.
        background_threads, get_background_threads: usize
    );
    setter!(
        /// The manifest is rewritten from a snapshot once its log grows past
        /// this (at least 64 KiB). Default: 8 MiB.
        manifest_rewrite_bytes, get_manifest_rewrite_bytes: u64
    );

    setter!(
        /// The compaction strategy. Default: [`CompactionStyle::Leveled`].
        compaction_style, get_compaction_style: CompactionStyle
    );
    setter!(
        /// L0 tables that trigger a compaction out of L0 (leveled), or the
        /// number of similar runs merged at once (tiered) (2 ..= 64).
        /// Default: 4.
        l0_compaction_trigger, get_l0_compaction_trigger: usize
    );
    setter!(
        /// Size at which compaction output is cut into a new table (at least
        /// 64 KiB). Default: 64 MiB.
        target_file_bytes, get_target_file_bytes: u64
    );
    setter!(
        /// Leveled: the smallest target size of a level below L0; the last
        /// level's size sets the others (each `level_multiplier` times
        /// smaller), and levels whose target would fall below this stay
        /// empty (at least 64 KiB). Default: 256 MiB.
        base_level_bytes, get_base_level_bytes: u64
    );
    setter!(
        /// Leveled: size ratio between adjacent levels (2 ..= 100).
        /// Default: 10.
        level_multiplier, get_level_multiplier: u64
    );
    setter!(
        /// Bytes compaction is behind at which each write is delayed a
        /// little. Default: 64 GiB.
        pending_compaction_bytes_slowdown, get_pending_compaction_bytes_slowdown: u64
    );
    setter!(
        /// Bytes compaction is behind at which writes wait (above the
        /// slowdown limit). Default: 256 GiB.
        pending_compaction_bytes_stop, get_pending_compaction_bytes_stop: u64
    );

    setter!(
        /// Run compactions in the background as the tree needs them. With
        /// `false` only [`Db::compact_range`](crate::Db::compact_range)
        /// compacts (and the L0 triggers do not stall writers). Default:
        /// `true`.
        auto_compactions, get_auto_compactions: bool
    );

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first bad field and its range.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, field: &str, rule: &str, value: impl std::fmt::Display) -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "Options::{field} must be {rule} (got {value})"
                )))
            }
        }
        check(
            (MEMTABLE_BYTES_MIN..=MEMTABLE_BYTES_MAX).contains(&self.memtable_bytes),
            "memtable_bytes",
            "between 64 KiB and 4 GiB",
            self.memtable_bytes,
        )?;
        check(
            (1..=64).contains(&self.max_immutable_memtables),
            "max_immutable_memtables",
            "between 1 and 64",
            self.max_immutable_memtables,
        )?;
        check(
            (256..=BLOCK_BYTES_TARGET_MAX).contains(&self.block_bytes),
            "block_bytes",
            &format!("between 256 and {BLOCK_BYTES_TARGET_MAX}"),
            self.block_bytes,
        )?;
        check(
            (1..=RESTART_INTERVAL_MAX).contains(&self.block_restart_interval),
            "block_restart_interval",
            &format!("between 1 and {RESTART_INTERVAL_MAX}"),
            self.block_restart_interval,
        )?;
        check(
            self.table_cache_tables >= 16,
            "table_cache_tables",
            "at least 16",
            self.table_cache_tables,
        )?;
        check(
            self.bloom_bits_per_key <= BLOOM_BITS_PER_KEY_MAX,
            "bloom_bits_per_key",
            &format!("at most {BLOOM_BITS_PER_KEY_MAX}"),
            self.bloom_bits_per_key,
        )?;
        check(
            self.compression.is_supported(),
            "compression",
            "supported by this build",
            format!("{:?}", self.compression),
        )?;
        if let SyncMode::Interval(interval) = self.sync_mode {
            check(
                !interval.is_zero(),
                "sync_mode",
                "an interval above zero",
                "0 s",
            )?;
        }
        check(
            self.wal_segment_bytes >= 64 * 1024,
            "wal_segment_bytes",
            "at least 64 KiB",
            self.wal_segment_bytes,
        )?;
        check(
            self.l0_slowdown_trigger >= 1,
            "l0_slowdown_trigger",
            "at least 1",
            self.l0_slowdown_trigger,
        )?;
        check(
            self.l0_stop_trigger > self.l0_slowdown_trigger,
            "l0_stop_trigger",
            "above l0_slowdown_trigger",
            self.l0_stop_trigger,
        )?;
        check(
            (1..=64).contains(&self.background_threads),
            "background_threads",
            "between 1 and 64",
            self.background_threads,
        )?;
        check(
            (2..=64).contains(&self.l0_compaction_trigger),
            "l0_compaction_trigger",
            "between 2 and 64",
            self.l0_compaction_trigger,
        )?;
        check(
            self.l0_slowdown_trigger > self.l0_compaction_trigger,
            "l0_slowdown_trigger",
            "above l0_compaction_trigger",
            self.l0_slowdown_trigger,
        )?;
        check(
            self.target_file_bytes >= 64 * 1024,
            "target_file_bytes",
            "at least 64 KiB",
            self.target_file_bytes,
        )?;
        check(
            self.base_level_bytes >= 64 * 1024,
            "base_level_bytes",
            "at least 64 KiB",
            self.base_level_bytes,
        )?;
        check(
            (2..=100).contains(&self.level_multiplier),
            "level_multiplier",
            "between 2 and 100",
            self.level_multiplier,
        )?;
        check(
            self.pending_compaction_bytes_stop > self.pending_compaction_bytes_slowdown,
            "pending_compaction_bytes_stop",
            "above pending_compaction_bytes_slowdown",
            self.pending_compaction_bytes_stop,
        )?;
        check(
            self.manifest_rewrite_bytes >= 64 * 1024,
            "manifest_rewrite_bytes",
            "at least 64 KiB",
            self.manifest_rewrite_bytes,
        )?;
        Ok(())
    }

    /// The options as the human-readable text of an `OPTIONS-NNNNNN` file.
    pub fn to_options_file(&self) -> String {
        let mut out = String::from("# kevo options, written when the database was opened\n");
        let lines: [(&str, String); 25] = [
            ("create_if_missing", self.create_if_missing.to_string()),
            ("error_if_exists", self.error_if_exists.to_string()),
            ("memtable_bytes", self.memtable_bytes.to_string()),
            (
                "max_immutable_memtables",
                self.max_immutable_memtables.to_string(),
            ),
            ("block_bytes", self.block_bytes.to_string()),
            (
                "block_restart_interval",
                self.block_restart_interval.to_string(),
            ),
            ("block_cache_bytes", self.block_cache_bytes.to_string()),
            ("table_cache_tables", self.table_cache_tables.to_string()),
            ("bloom_bits_per_key", self.bloom_bits_per_key.to_string()),
            ("compression", format!("{:?}", self.compression)),
            ("sync_mode", format!("{:?}", self.sync_mode)),
            ("recovery_mode", format!("{:?}", self.recovery_mode)),
            ("wal_segment_bytes", self.wal_segment_bytes.to_string()),
            ("l0_slowdown_trigger", self.l0_slowdown_trigger.to_string()),
            ("l0_stop_trigger", self.l0_stop_trigger.to_string()),
            ("background_threads", self.background_threads.to_string()),
            (
                "manifest_rewrite_bytes",
                self.manifest_rewrite_bytes.to_string(),
            ),
            ("compaction_style", format!("{:?}", self.compaction_style)),
            (
                "l0_compaction_trigger",
                self.l0_compaction_trigger.to_string(),
            ),
            ("target_file_bytes", self.target_file_bytes.to_string()),
            ("base_level_bytes", self.base_level_bytes.to_string()),
            ("level_multiplier", self.level_multiplier.to_string()),
            (
                "pending_compaction_bytes_slowdown",
                self.pending_compaction_bytes_slowdown.to_string(),
            ),
            (
                "pending_compaction_bytes_stop",
                self.pending_compaction_bytes_stop.to_string(),
            ),
            ("auto_compactions", self.auto_compactions.to_string()),
        ];
        for (name, value) in lines {
            let _ = writeln!(out, "{name} = {value}");
        }
        out
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
    fn options_file_names_every_field() {
        let text = Options::default().to_options_file();
        assert!(text.contains("memtable_bytes = 16777216"));
        assert!(text.contains("sync_mode = Interval(100ms)"));
        assert_eq!(text.lines().filter(|l| l.contains(" = ")).count(), 25);
    }
}
