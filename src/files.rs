//! Files authgate writes itself (keys, the email-token key, the admin token): whole or not at
//! all, with their mode set before anyone can see them. The `tempfile` crate makes the
//! temporary file beside the target (mode 0600 from the start); a rename publishes it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What to do when the target already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    /// Leave it and fail with `AlreadyExists` (another writer won).
    Keep,
}

/// Writes `data` to `path` atomically with permissions `mode` (e.g. 0o600), synced to disk.
pub fn write_atomic(
    path: &Path,
    data: &[u8],
    mode: u32,
    existing: Existing,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".authgate-")
        .tempfile_in(dir)?;
    file.write_all(data)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.as_file().sync_all()?;
    match existing {
        Existing::Replace => file.persist(path).map(drop).map_err(|e| e.error),
        Existing::Keep => file.persist_noclobber(path).map(drop).map_err(|e| e.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_whole_private_and_kept_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomic(&path, b"one", 0o600, Existing::Keep).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = write_atomic(&path, b"two", 0o600, Existing::Keep).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomic(&path, b"three", 0o644, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
