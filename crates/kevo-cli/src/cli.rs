//! The command line, declared with `clap`'s derive: every command, its
//! arguments and the examples its `--help` shows.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Look inside, query, load and repair kevo databases and their files.
///
/// Exit codes: 0 success, 1 damage found (check, verify, a corrupt read),
/// 2 a usage error or a database or file that cannot be opened.
#[derive(Debug, Parser)]
#[command(name = "kevo", version, about, long_about = None, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Print data as JSON (one value, or one value per line where noted).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

const EXAMPLES: &str = "\
Examples:
  kevo put --create /tmp/db greeting hello
  kevo get /tmp/db greeting
  kevo scan /tmp/db --prefix user: --limit 10
  kevo shell /tmp/db
  kevo check /tmp/db
  kevo sst dump /tmp/db/000012.sst

Keys and values: plain text, \"quoted\" with escapes (\\n \\t \\xHH), or 0x-prefixed hex.";

/// One `kevo` command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// An interactive shell (or a script read from stdin when it is not a
    /// terminal).
    #[command(
        after_help = "Examples:\n  kevo shell /tmp/db\n  printf 'put a 1\\nget a\\n' | kevo shell /tmp/db"
    )]
    Shell {
        /// The database directory.
        dir: PathBuf,
        /// Create the database if it does not exist.
        #[arg(long)]
        create: bool,
        /// Open read-only (shared with other readers; writes refused).
        #[arg(long)]
        read_only: bool,
    },
    /// Print the value of KEY.
    #[command(
        after_help = "Examples:\n  kevo get /tmp/db user:1\n  kevo get /tmp/db 0x00ff --json"
    )]
    Get {
        /// The database directory.
        dir: PathBuf,
        /// The key.
        key: String,
    },
    /// Set KEY to VALUE.
    #[command(after_help = "Examples:\n  kevo put --create /tmp/db user:1 '\"Ada\\n\"'")]
    Put {
        /// The database directory.
        dir: PathBuf,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Create the database if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Delete KEY.
    #[command(after_help = "Examples:\n  kevo delete /tmp/db user:1")]
    Delete {
        /// The database directory.
        dir: PathBuf,
        /// The key.
        key: String,
    },
    /// Print entries in key order.
    #[command(
        after_help = "Examples:\n  kevo scan /tmp/db --start a --end m --limit 5\n  kevo scan /tmp/db --prefix user: --reverse --keys-only --json"
    )]
    Scan {
        /// The database directory.
        dir: PathBuf,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Import JSON lines ({\"key\":…,\"value\":…}) or tab-separated pairs.
    #[command(
        after_help = "Examples:\n  kevo export /tmp/a > a.jsonl && kevo load --create /tmp/b a.jsonl\n  kevo load /tmp/db pairs.tsv --format tsv\n\nJSON lines: {\"key\": \"text\", \"value\": \"text\"}; bytes that are not UTF-8 as \"key_hex\"/\"value_hex\". TSV: KEY<TAB>VALUE per line, each as `kevo put` reads it."
    )]
    Load {
        /// The database directory.
        dir: PathBuf,
        /// The file to read (`-` for stdin).
        file: PathBuf,
        /// The file's format; by default from its extension (.tsv, .txt:
        /// tsv; anything else: jsonl).
        #[arg(long, value_enum)]
        format: Option<LoadFormat>,
        /// Create the database if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Write every entry as JSON lines (what `load` reads).
    #[command(
        after_help = "Examples:\n  kevo export /tmp/db > backup.jsonl\n  kevo export /tmp/db --prefix user: -o users.jsonl"
    )]
    Export {
        /// The database directory.
        dir: PathBuf,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// The database's counters and shape.
    #[command(after_help = "Examples:\n  kevo stats /tmp/db\n  kevo stats /tmp/db --json")]
    Stats {
        /// The database directory.
        dir: PathBuf,
    },
    /// Tables per level: sizes, key and seqno ranges, compaction scores.
    #[command(after_help = "Examples:\n  kevo lsm /tmp/db\n  kevo lsm /tmp/db --html lsm.html")]
    Lsm {
        /// The database directory.
        dir: PathBuf,
        /// Also write a self-contained HTML picture of the tree and of its
        /// history replayed from the manifest.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Verify every table block by block, the manifest against the
    /// directory, and the WAL. Exit 1 if anything is damaged.
    #[command(after_help = "Examples:\n  kevo check /tmp/db\n  kevo check /tmp/db --json")]
    Check {
        /// The database directory.
        dir: PathBuf,
    },
    /// Rebuild the manifest from the tables and WAL that can be read;
    /// damaged files move to `lost/`.
    #[command(after_help = "Examples:\n  kevo repair /tmp/db")]
    Repair {
        /// The database directory.
        dir: PathBuf,
    },
    /// Compact a key range (all of it by default) down the levels.
    #[command(
        after_help = "Examples:\n  kevo compact /tmp/db\n  kevo compact /tmp/db --start a --end m"
    )]
    Compact {
        /// The database directory.
        dir: PathBuf,
        /// First key (inclusive).
        #[arg(long)]
        start: Option<String>,
        /// End key (exclusive).
        #[arg(long)]
        end: Option<String>,
    },
    /// Make a checkpoint: a copy of the database, at one seqno, that
    /// opens as a database of its own (tables hard-linked where TARGET is
    /// on the same file system). TARGET must not exist.
    #[command(
        after_help = "Examples:\n  kevo checkpoint /tmp/db /tmp/db-copy\n  kevo checkpoint /tmp/db /tmp/db-copy --flush --json"
    )]
    Checkpoint {
        /// The database directory.
        dir: PathBuf,
        /// The checkpoint's directory (must not exist; its parent must).
        target: PathBuf,
        /// Flush the memtables first instead of copying the WAL tail.
        #[arg(long)]
        flush: bool,
    },
    /// Incremental backups in a backup directory: create, list, verify,
    /// restore, delete, purge.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Look at table files (`.sst`) alone, without a database.
    #[command(subcommand)]
    Sst(SstCommand),
    /// Look at WAL segment files (`.wal`) alone.
    #[command(subcommand)]
    Wal(WalCommand),
    /// Look at a manifest file.
    #[command(subcommand)]
    Manifest(ManifestCommand),
}

/// Which entries a scan or an export visits.
#[derive(Debug, Args, Default, Clone)]
pub(crate) struct RangeArgs {
    /// First key (inclusive).
    #[arg(long)]
    pub(crate) start: Option<String>,
    /// End key (exclusive).
    #[arg(long)]
    pub(crate) end: Option<String>,
    /// Only keys starting with this (with --start/--end: within both).
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// At most this many entries.
    #[arg(long)]
    pub(crate) limit: Option<u64>,
    /// Descending key order.
    #[arg(long)]
    pub(crate) reverse: bool,
    /// Keys only.
    #[arg(long)]
    pub(crate) keys_only: bool,
}

/// The formats `load` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LoadFormat {
    /// One JSON object per line.
    Jsonl,
    /// `KEY<TAB>VALUE` per line.
    Tsv,
}

/// `kevo backup …`.
#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Back DB up into BACKUPS (created if missing): only tables not
    /// stored yet are copied.
    #[command(after_help = "Examples:\n  kevo backup create /tmp/db /backups/db")]
    Create {
        /// The database directory.
        db: PathBuf,
        /// The backup directory.
        backups: PathBuf,
    },
    /// Every backup: id, seqno, size, bytes copied and reused.
    #[command(after_help = "Examples:\n  kevo backup list /backups/db --json")]
    List {
        /// The backup directory.
        backups: PathBuf,
    },
    /// Read every file of backup ID and check its checksum. Exit 1 if any
    /// is damaged or missing.
    #[command(after_help = "Examples:\n  kevo backup verify /backups/db 3")]
    Verify {
        /// The backup directory.
        backups: PathBuf,
        /// The backup's id.
        id: u64,
    },
    /// Restore backup ID into TARGET (which must not exist).
    #[command(after_help = "Examples:\n  kevo backup restore /backups/db 3 /tmp/db-restored")]
    Restore {
        /// The backup directory.
        backups: PathBuf,
        /// The backup's id.
        id: u64,
        /// The restored database's directory.
        target: PathBuf,
    },
    /// Delete backup ID and the files no other backup needs.
    #[command(after_help = "Examples:\n  kevo backup delete /backups/db 1")]
    Delete {
        /// The backup directory.
        backups: PathBuf,
        /// The backup's id.
        id: u64,
    },
    /// Delete all but the newest KEEP backups.
    #[command(after_help = "Examples:\n  kevo backup purge /backups/db --keep 7")]
    Purge {
        /// The backup directory.
        backups: PathBuf,
        /// How many of the newest backups to keep.
        #[arg(long)]
        keep: usize,
    },
}

/// `kevo sst …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SstCommand {
    /// Every entry with its seqno and kind, and every range tombstone
    /// (`[start, end) @seqno delete_range`), in key order.
    #[command(
        after_help = "Examples:\n  kevo sst dump 000012.sst\n  kevo sst dump 000012.sst --json | head"
    )]
    Dump {
        /// Table files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The newest visible value of each user key (what a database read
    /// would see from this table alone, its range tombstones applied).
    #[command(after_help = "Examples:\n  kevo sst scan 000012.sst --limit 10")]
    Scan {
        /// Table files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// At most this many entries per file.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Read and check every block. Exit 1 if any is damaged.
    #[command(after_help = "Examples:\n  kevo sst verify /tmp/db/*.sst")]
    Verify {
        /// Table files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The table's properties block.
    #[command(after_help = "Examples:\n  kevo sst props 000012.sst --json")]
    Props {
        /// Table files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Every block's kind, offset and size, and the footer.
    #[command(after_help = "Examples:\n  kevo sst layout 000012.sst")]
    Layout {
        /// Table files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `kevo wal …`.
#[derive(Debug, Subcommand)]
pub(crate) enum WalCommand {
    /// Every batch: offset, seqnos, entries.
    #[command(after_help = "Examples:\n  kevo wal dump /tmp/db/000007.wal")]
    Dump {
        /// Segment files (`NNNNNN.wal`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check every record. A torn tail is reported but is not damage (a
    /// crash leaves one); damage before it exits 1.
    #[command(after_help = "Examples:\n  kevo wal verify /tmp/db/*.wal")]
    Verify {
        /// Segment files (`NNNNNN.wal`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `kevo manifest …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ManifestCommand {
    /// Every version edit, in order.
    #[command(after_help = "Examples:\n  kevo manifest dump /tmp/db/MANIFEST-000005")]
    Dump {
        /// The manifest file (`MANIFEST-NNNNNN`).
        file: PathBuf,
    },
}
