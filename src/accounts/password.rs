//! argon2id hashing, run on the blocking pool behind a semaphore sized to the cores, so a
//! login storm queues instead of starving the proxy threads.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::error::Failure;

#[derive(Debug, Clone, Copy)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified when the account is unknown so that unknown and
    /// known accounts cost the same.
    dummy: String,
}

impl Hasher {
    pub fn new(settings: Argon2Settings) -> Result<Hasher, String> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| format!("argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dummy = dummy_phc(&params);
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(cores)),
            dummy,
        })
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Failure::unavailable())?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| Failure::unavailable())
    }

    pub async fn hash(&self, password: String) -> Result<String, Failure> {
        let params = self.params.clone();
        self.blocking(move || hash_with(&params, password.as_bytes()))
            .await?
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                Failure::unavailable()
            })
    }

    /// Verifies `password` against `hash`; with no hash, spends the same time and says no.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, Failure> {
        let (hash, real) = match hash {
            Some(hash) => (hash, true),
            None => (self.dummy.clone(), false),
        };
        let ok = self
            .blocking(move || {
                // Verified with the parameters the hash was made with.
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(ok && real)
    }

    /// Whether a stored hash was made with other parameters than the current ones.
    pub fn needs_rehash(&self, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return true;
        };
        let current = Params::try_from(&parsed).ok();
        parsed.algorithm.as_str() != "argon2id"
            || current.is_none_or(|p| {
                p.m_cost() != self.params.m_cost()
                    || p.t_cost() != self.params.t_cost()
                    || p.p_cost() != self.params.p_cost()
            })
    }
}

/// A PHC string with the current parameters, a random salt and a random output: verifying
/// against it costs exactly one real verification and always fails. Built without hashing, so
/// start-up neither waits for argon2 nor keeps its 19 MiB working memory around.
fn dummy_phc(params: &Params) -> String {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    let salt: [u8; 16] = rand::random();
    let output: [u8; 32] = rand::random();
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(output)
    )
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, String> {
    Hasher::argon2(params)
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_upgrade() {
        let hasher = Hasher::new(cheap()).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher
            .verify(Some(hash.clone()), "correct horse".into())
            .await
            .unwrap());
        assert!(!hasher
            .verify(Some(hash.clone()), "wrong".into())
            .await
            .unwrap());
        assert!(!hasher.verify(None, "anything".into()).await.unwrap());
        // The dummy is a well-formed hash of the current parameters (so it costs a real
        // verification), and nothing matches it.
        assert!(PasswordHash::new(&hasher.dummy).is_ok(), "{}", hasher.dummy);
        assert!(!hasher.needs_rehash(&hasher.dummy));
        assert!(!hasher
            .verify(Some(hasher.dummy.clone()), "".into())
            .await
            .unwrap());
        assert!(!hasher
            .verify(Some("garbage".into()), "x".into())
            .await
            .unwrap());
        assert!(!hasher.needs_rehash(&hash));
        let stronger = Hasher::new(Argon2Settings {
            iterations: 2,
            ..cheap()
        })
        .unwrap();
        assert!(stronger.needs_rehash(&hash));
        // Old hashes still verify under new parameters.
        assert!(stronger
            .verify(Some(hash), "correct horse".into())
            .await
            .unwrap());
    }
}
