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

/// The 256-bit key in `path`, made (random, 0600) on first use. Of two processes starting at
/// once, both end with the key the first one wrote.
pub fn key_file(path: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| std::io::Error::other(format!("{}: not a 32-byte key", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let key: [u8; 32] = rand::random();
            match write_atomic(path, &key, 0o600, Existing::Keep) {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_file(path),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
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

    #[test]
    fn key_files_are_made_once_and_refused_when_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("k.key");
        let a = key_file(&path).unwrap();
        assert_eq!(key_file(&path).unwrap(), a);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"short").unwrap();
        assert!(key_file(&path).unwrap_err().to_string().contains("32-byte"));
    }
}
