//! Signing keys: generation, the on-disk key directory, rotation, and the published key set.
//!
//! A key directory holds one PKCS#8 PEM private key per signing key, named
//! `<unix-seconds>-<kid prefix>.key.pem` (mode 0600), with its SPKI public key beside it as
//! `.pub.pem`. The newest key signs; every key in the directory is published in the JWKS and
//! accepted for verification. Retiring a key removes its files.
//!
//! A verifier has no directory: its [`KeyRing`] starts empty and is filled with public keys
//! learnt from the gateway's JWKS or a PEM file (see `crate::verifier`).

mod jwk;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::EncodingKey;

use crate::files::{write_atomic, Existing};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

pub use jwk::{parse_jwks, thumbprint, Jwk};

const PRIVATE_SUFFIX: &str = ".key.pem";
const PUBLIC_SUFFIX: &str = ".pub.pem";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PKCS#8 PEM RSA private key ({reason})")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: private key is readable or writable by others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{what}: {source}")]
    Crypto {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Other(String),
}

fn crypto(what: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> KeyError {
    KeyError::Crypto {
        what,
        source: Box::new(source),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One published RSA key with everything derived from it that the hot paths need. Keys of our
/// own directory also carry their private half, which signs; keys learnt from a gateway do not.
pub struct Key {
    pub kid: String,
    /// Unix seconds from the file name; 0 for keys learnt from a gateway.
    pub created: u64,
    pub bits: usize,
    /// The private key file; `None` for keys learnt from a gateway.
    pub file: Option<PathBuf>,
    pub public_pem: String,
    pub jwk: Jwk,
    pub(crate) encoding: Option<EncodingKey>,
    /// The public key parsed once for RS256 checks (aws-lc would otherwise parse the DER on
    /// every verification).
    verifying: aws_lc_rs::signature::ParsedPublicKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl Key {
    fn from_private_pem(pem: &str, created: u64, file: PathBuf) -> Result<Key, KeyError> {
        let parse = |reason: String| KeyError::Parse {
            path: file.clone(),
            reason,
        };
        let private = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| parse(e.to_string()))?;
        let encoding =
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| parse(e.to_string()))?;
        let mut key = Key::from_public(&RsaPublicKey::from(&private), None).map_err(parse)?;
        key.created = created;
        key.file = Some(file);
        key.encoding = Some(encoding);
        Ok(key)
    }

    /// A verification-only key. `kid` is the publisher's; without one, the RFC 7638 thumbprint.
    pub fn from_public(public: &RsaPublicKey, kid: Option<String>) -> Result<Key, String> {
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let mut jwk = Jwk::from_public(public);
        if let Some(kid) = kid {
            jwk.kid = kid;
        }
        let der = public.to_public_key_der().map_err(|e| e.to_string())?;
        let verifying = aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            der.as_bytes(),
        )
        .map_err(|e| format!("not a usable RS256 key ({e})"))?;
        Ok(Key {
            kid: jwk.kid.clone(),
            created: 0,
            bits: public.n().bits(),
            file: None,
            public_pem,
            jwk,
            encoding: None,
            verifying,
        })
    }

    /// Whether `signature` (decoded) is this key's RS256 signature of `message`.
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifying.verify_sig(message, signature).is_ok()
    }
}

/// An immutable snapshot of the published keys, newest (signing) first. Empty only in a
/// verifier that has not loaded its keys yet.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Arc<Key>>,
    by_kid: HashMap<String, Arc<Key>>,
    jwks_json: bytes::Bytes,
    fingerprint: Vec<(String, u64, SystemTime)>,
    generation: u64,
}

impl KeySet {
    /// `keys` in order of preference: the first one signs (when it can) and verifies tokens
    /// that name no `kid`.
    fn new(keys: Vec<Arc<Key>>, fingerprint: Vec<(String, u64, SystemTime)>) -> Self {
        let by_kid = keys.iter().map(|k| (k.kid.clone(), k.clone())).collect();
        let jwks = serde_json::json!({ "keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() });
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        KeySet {
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            keys,
            by_kid,
            jwks_json: serde_json::to_vec(&jwks).unwrap_or_default().into(),
            fingerprint,
        }
    }

    /// The current key: the newest, which signs. `None` only before a verifier's first load.
    pub fn current(&self) -> Option<&Arc<Key>> {
        self.keys.first()
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<Key>> {
        self.by_kid.get(kid)
    }

    pub fn all(&self) -> &[Arc<Key>] {
        &self.keys
    }

    /// A number that differs for every key set loaded in this process.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The JWK Set document, rendered once per key change.
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
    }
}

/// The live key set of a running server; swapped whole when the key directory changes (or, in
/// a verifier, when the gateway publishes other keys).
#[derive(Debug)]
pub struct KeyRing {
    /// Our own key directory; `None` in a verifier.
    dir: Option<PathBuf>,
    current: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    /// Opens a key directory, generating a first key of `bits` when it holds none.
    pub fn open_or_init(dir: &Path, bits: usize) -> Result<KeyRing, KeyError> {
        ensure_dir(dir)?;
        if list_private_keys(dir)?.is_empty() {
            let key = generate(dir, bits)?;
            tracing::info!(kid = %key.kid, bits, dir = %dir.display(), "generated the first signing key");
        }
        KeyRing::open(dir)
    }

    /// Opens a key directory that must already hold at least one key.
    pub fn open(dir: &Path) -> Result<KeyRing, KeyError> {
        let set = load_dir(dir)?;
        Ok(KeyRing {
            dir: Some(dir.to_path_buf()),
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// An empty ring for verification keys that someone else publishes ([`KeyRing::replace`]).
    pub fn published_elsewhere() -> KeyRing {
        KeyRing {
            dir: None,
            current: RwLock::new(Arc::new(KeySet::new(Vec::new(), Vec::new()))),
        }
    }

    /// Puts `keys` (first = current) in service. Returns false, and keeps the running set
    /// (and with it the verified-token cache), when they are the same keys in the same order.
    pub fn replace(&self, keys: Vec<Key>) -> bool {
        let same = {
            let set = self.snapshot();
            set.keys.len() == keys.len()
                && set
                    .keys
                    .iter()
                    .zip(&keys)
                    .all(|(a, b)| a.kid == b.kid && a.public_pem == b.public_pem)
        };
        if same {
            return false;
        }
        let set = KeySet::new(keys.into_iter().map(Arc::new).collect(), Vec::new());
        let kids: Vec<&str> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        tracing::info!(keys = ?kids, "published keys loaded");
        self.swap(set);
        true
    }

    fn swap(&self, set: KeySet) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(set);
    }

    pub fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the directory if its key files changed. Returns true when the set changed.
    /// On any error the previous keys stay in service.
    pub fn reload_if_changed(&self) -> Result<bool, KeyError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let fingerprint = dir_fingerprint(dir)?;
        if fingerprint == self.snapshot().fingerprint {
            return Ok(false);
        }
        let set = load_dir(dir)?;
        let kids: Vec<&str> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        tracing::info!(keys = ?kids, "key set reloaded");
        self.swap(set);
        Ok(true)
    }
}

fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Generates a new key pair in `dir`; it becomes the signing key of that directory.
pub fn generate(dir: &Path, bits: usize) -> Result<Arc<Key>, KeyError> {
    if ![2048, 3072, 4096].contains(&bits) {
        return Err(KeyError::Other(format!(
            "unsupported key size {bits} (use 2048, 3072 or 4096)"
        )));
    }
    ensure_dir(dir)?;
    let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| crypto("key generation failed", e))?;
    let pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| crypto("key encoding failed", e))?;
    let public = RsaPublicKey::from(&private);
    let kid = thumbprint(&public);
    // A new key must sort after every existing one even when made within the same second.
    let newest = list_private_keys(dir)?
        .iter()
        .map(|(_, created)| *created)
        .max()
        .unwrap_or(0);
    let created = (crate::clock::unix_now() as u64).max(newest + 1);
    let stem = format!("{created}-{}", &kid[..12]);
    let private_path = dir.join(format!("{stem}{PRIVATE_SUFFIX}"));
    let public_path = dir.join(format!("{stem}{PUBLIC_SUFFIX}"));
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| crypto("key encoding failed", e))?;
    // The private key is written last, so a running server that polls the directory never
    // reads a key without its public half; each file appears whole.
    write_atomic(&public_path, public_pem.as_bytes(), 0o644, Existing::Keep)
        .map_err(io_err(&public_path))?;
    write_atomic(&private_path, pem.as_bytes(), 0o600, Existing::Keep)
        .map_err(io_err(&private_path))?;
    Ok(Arc::new(Key::from_private_pem(
        &pem,
        created,
        private_path,
    )?))
}

/// Private key files of `dir` with their creation time, from their names.
fn list_private_keys(dir: &Path) -> Result<Vec<(PathBuf, u64)>, KeyError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(PRIVATE_SUFFIX) else {
            continue;
        };
        let created = stem
            .split('-')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        found.push((entry.path(), created));
    }
    found.sort();
    Ok(found)
}

fn dir_fingerprint(dir: &Path) -> Result<Vec<(String, u64, SystemTime)>, KeyError> {
    let mut fingerprint = Vec::new();
    for (path, _) in list_private_keys(dir)? {
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        fingerprint.push((
            path.display().to_string(),
            meta.len(),
            meta.modified().unwrap_or(UNIX_EPOCH),
        ));
    }
    Ok(fingerprint)
}

fn load_dir(dir: &Path) -> Result<KeySet, KeyError> {
    let fingerprint = dir_fingerprint(dir)?;
    let mut keys = Vec::new();
    for (path, created) in list_private_keys(dir)? {
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        let mode = meta.permissions().mode() & 0o777;
        // Group may read (Kubernetes `fsGroup` mounts do that); nobody else may touch it.
        if mode & 0o027 != 0 {
            return Err(KeyError::Permissions { path, mode });
        }
        let pem = fs::read_to_string(&path).map_err(io_err(&path))?;
        keys.push(Arc::new(Key::from_private_pem(&pem, created, path)?));
    }
    keys.sort_by(|a, b| (b.created, &b.kid).cmp(&(a.created, &a.kid)));
    if keys.is_empty() {
        return Err(KeyError::Other(format!(
            "{}: no signing keys (*{PRIVATE_SUFFIX}); run `authgate keys generate --dir {}`",
            dir.display(),
            dir.display()
        )));
    }
    Ok(KeySet::new(keys, fingerprint))
}

/// The most keys a JWKS document or a PEM file may hold; more is refused as a whole.
pub const MAX_PUBLISHED_KEYS: usize = 32;

/// The public keys of a PEM file: one or more `-----BEGIN PUBLIC KEY-----` (SPKI) blocks, the
/// first being the current key.
pub fn parse_public_pems(text: &str) -> Result<Vec<Key>, String> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find(END)
            .ok_or_else(|| format!("key {}: no `{END}` line", keys.len() + 1))?
            + END.len();
        let public = RsaPublicKey::from_public_key_pem(&block[..end])
            .map_err(|e| format!("key {}: not an RSA public key ({e})", keys.len() + 1))?;
        keys.push(Key::from_public(&public, None)?);
        if keys.len() > MAX_PUBLISHED_KEYS {
            return Err(format!("more than {MAX_PUBLISHED_KEYS} keys"));
        }
        rest = &block[end..];
    }
    check_published(&keys)?;
    Ok(keys)
}

/// What every set of keys learnt from elsewhere must be: not empty, each kid once, no key
/// weaker than we would generate ourselves.
pub(crate) fn check_published(keys: &[Key]) -> Result<(), String> {
    if keys.is_empty() {
        return Err("no RS256 public keys found".into());
    }
    let mut kids = std::collections::HashSet::new();
    for key in keys {
        if key.bits < 2048 {
            return Err(format!(
                "key `{}` has {} bits (at least 2048)",
                key.kid, key.bits
            ));
        }
        if !kids.insert(key.kid.as_str()) {
            return Err(format!("key id `{}` appears twice", key.kid));
        }
    }
    Ok(())
}

/// Removes a key from the directory. The signing key can only be retired once a newer one exists.
pub fn retire(dir: &Path, kid: &str) -> Result<(), KeyError> {
    let set = load_dir(dir)?;
    let key = set
        .get(kid)
        .ok_or_else(|| KeyError::Other(format!("no key with kid `{kid}` in {}", dir.display())))?;
    if set
        .current()
        .is_some_and(|current| Arc::ptr_eq(key, current))
    {
        return Err(KeyError::Other(format!(
            "`{kid}` is the signing key; run `authgate keys rotate` first"
        )));
    }
    let Some(file) = &key.file else {
        return Err(KeyError::Other(format!("`{kid}` has no private key file")));
    };
    let public = file
        .display()
        .to_string()
        .replace(PRIVATE_SUFFIX, PUBLIC_SUFFIX);
    fs::remove_file(file).map_err(io_err(file))?;
    let _ = fs::remove_file(public);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_private_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open_or_init(dir.path(), 2048).unwrap();
        let first = ring.snapshot().current().unwrap().clone();
        let mode = fs::metadata(first.file.as_ref().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(first.bits, 2048);

        let second = generate(dir.path(), 2048).unwrap();
        assert!(ring.reload_if_changed().unwrap());
        let set = ring.snapshot();
        assert_eq!(set.current().unwrap().kid, second.kid);
        assert!(set.get(&first.kid).is_some(), "old key stays published");
        assert!(!ring.reload_if_changed().unwrap());

        assert!(
            retire(dir.path(), &second.kid).is_err(),
            "current key is kept"
        );
        retire(dir.path(), &first.kid).unwrap();
        ring.reload_if_changed().unwrap();
        assert_eq!(ring.snapshot().all().len(), 1);
    }

    #[test]
    fn world_readable_private_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate(dir.path(), 2048).unwrap();
        fs::set_permissions(
            key.file.as_ref().unwrap(),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = KeyRing::open(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn published_keys_replace_only_when_they_differ() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate(dir.path(), 2048).unwrap();
        let b = generate(dir.path(), 2048).unwrap();
        let ring = KeyRing::published_elsewhere();
        assert!(ring.snapshot().current().is_none());
        assert!(!ring.reload_if_changed().unwrap(), "no directory to read");

        let pems = format!("{}{}", b.public_pem, a.public_pem);
        assert!(ring.replace(parse_public_pems(&pems).unwrap()));
        let first = ring.snapshot();
        assert_eq!(first.current().unwrap().kid, b.kid, "file order is kept");
        assert!(first.current().unwrap().encoding.is_none(), "cannot sign");
        assert!(!ring.replace(parse_public_pems(&pems).unwrap()));
        assert_eq!(ring.snapshot().generation(), first.generation());
        assert!(ring.replace(parse_public_pems(&a.public_pem).unwrap()));
        assert_eq!(ring.snapshot().all().len(), 1);
    }

    #[test]
    fn bad_public_pem_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate(dir.path(), 2048).unwrap();
        let weak = RsaPublicKey::from(&RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap())
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let truncated = &a.public_pem[..a.public_pem.len() - 30];
        for (text, expected) in [
            ("", "no RS256 public keys"),
            ("hello", "no RS256 public keys"),
            (truncated, "no `-----END PUBLIC KEY-----`"),
            (&format!("{0}{0}", a.public_pem), "appears twice"),
            (&weak, "at least 2048"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "not an RSA public key",
            ),
        ] {
            let err = parse_public_pems(text).unwrap_err();
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
        }
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1-x.key.pem");
        write_atomic(&path, b"not a key", 0o600, Existing::Keep).unwrap();
        let err = KeyRing::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a PKCS#8 PEM RSA private key"), "{err}");
    }
}
