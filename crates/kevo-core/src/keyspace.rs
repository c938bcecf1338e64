//! Keyspace ids: the number a keyspace's entries carry in the WAL and its
//! edits carry in the manifest.
//!
//! A database holds one or more keyspaces, each an independent key space
//! with its own memtables and levels, sharing one WAL and one sequence of
//! seqnos. Keyspace 0 is the default keyspace, which every database has
//! and which holds what a database written before keyspaces holds. Ids are
//! handed out by the manifest and never reused, so that a WAL entry of a
//! dropped keyspace can never be read into a newer one.

/// The id of a keyspace.
pub type KeyspaceId = u32;

/// The default keyspace: the one every database has, and the only one of
/// a database written before keyspaces.
pub const DEFAULT_KEYSPACE: KeyspaceId = 0;

/// The default keyspace's name.
pub const DEFAULT_KEYSPACE_NAME: &str = "default";

/// The longest keyspace name, in bytes.
pub const KEYSPACE_NAME_BYTES_MAX: usize = 255;

/// Checks a keyspace name: 1 to [`KEYSPACE_NAME_BYTES_MAX`] bytes of ASCII
/// letters, digits, `_`, `-` and `.`, not starting with `.` (names appear in
/// logs, tools and file listings as they are).
///
/// # Errors
/// A message saying what is wrong with `name`.
pub fn check_keyspace_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a keyspace name cannot be empty".to_string());
    }
    if name.len() > KEYSPACE_NAME_BYTES_MAX {
        return Err(format!(
            "keyspace name of {} bytes exceeds the maximum of {KEYSPACE_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Err(format!("keyspace name `{name}` starts with `.`"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "keyspace name `{}` holds `{}`: only ASCII letters, digits, `_`, `-` and `.` are allowed",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["default", "index", "raft-log", "a.b_c", "X9"] {
            assert!(check_keyspace_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(KEYSPACE_NAME_BYTES_MAX + 1);
        for bad in ["", ".hidden", "a b", "a/b", "ünï", "tab\t", long.as_str()] {
            assert!(check_keyspace_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_keyspace_name(&"a".repeat(KEYSPACE_NAME_BYTES_MAX)).is_ok());
    }
}
