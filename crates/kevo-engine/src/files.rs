//! The names of the engine's own files in a database directory (the WAL,
//! manifest and table names live with their crates).

/// Name of the lock file held while the database is open. It is the only
/// lock file: the WAL takes none of its own inside a database.
pub const LOCK_FILE: &str = "LOCK";

/// Prefix of the options files (`OPTIONS-000012`), written at every open.
pub const OPTIONS_FILE_PREFIX: &str = "OPTIONS-";
