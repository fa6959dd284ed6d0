//! The digest file: one key a line, `name:sha256-hex[:scope scope …]`,
//! so no plaintext key lives on the server; read, reloaded, and written.

use std::{path::Path, sync::Arc};

use secrecy::{ExposeSecret, SecretString};

use crate::{config::ConfigError, principal::Scopes};

use super::{
    retire::retire,
    store::{digest, ApiKey, ApiKeys, KeySet},
};

impl ApiKeys {
    /// Reads a file of key digests, one key per line:
    /// `name:sha256-hex[:scope scope …]`. Blank lines and lines starting
    /// with `#` are skipped.
    ///
    /// ```
    /// use tower_mcp_auth::api_key::ApiKeys;
    ///
    /// let key = ApiKeys::generate();
    /// let line = ApiKeys::digest_line("ci-bot", &key, ["read:data"]);
    /// let path = std::env::temp_dir().join("tower-mcp-auth-doctest-keys.txt");
    /// std::fs::write(&path, format!("# keys\n{line}\n"))?;
    ///
    /// let keys = ApiKeys::from_digest_file(&path)?;
    /// assert_eq!(keys.verify(secrecy::ExposeSecret::expose_secret(&key)).unwrap().subject(), Some("ci-bot"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] when the file cannot be read,
    /// [`ConfigError::KeyFile`] with the line number for a malformed line.
    pub fn from_digest_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Ok(Self::from_set(parse_digest_file(path.as_ref())?))
    }

    /// Re-reads a digest file and swaps its keys in for every clone of this
    /// set. On error the current keys stay in force.
    ///
    /// The new set is built first (reading and parsing happen on the
    /// calling thread, which blocks on the file: call it from
    /// `spawn_blocking` in async code), then swapped in atomically: a
    /// request sees either the old keys or the new ones. The old set is
    /// freed on the calling thread, or, when requests are still reading it
    /// (for one map lookup), on a short-lived thread once they are done: a
    /// reload of many keys costs requests nothing.
    ///
    /// # Errors
    ///
    /// As [`from_digest_file`](Self::from_digest_file).
    pub fn reload_digest_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let set = parse_digest_file(path.as_ref())?;
        retire(self.0.swap(Arc::new(set)));
        Ok(())
    }

    /// The hex SHA-256 digest of a key, as a digest file holds it.
    #[must_use]
    pub fn digest_hex(key: &SecretString) -> String {
        digest(key.expose_secret().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A digest-file line for a key: `name:sha256-hex:scopes`.
    #[must_use]
    pub fn digest_line<I>(name: &str, key: &SecretString, scopes: I) -> String
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let scopes: Scopes = scopes.into_iter().collect();
        format!("{name}:{}:{scopes}", Self::digest_hex(key))
    }
}

fn parse_digest_file(path: &Path) -> Result<KeySet, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| ConfigError::KeyFile {
            path: path.to_owned(),
            line: n + 1,
            reason: reason.into(),
        };
        let mut fields = line.splitn(3, ':');
        let name = fields.next().unwrap_or_default().trim();
        let hex = fields
            .next()
            .ok_or_else(|| bad("expected `name:sha256-hex[:scopes]`"))?
            .trim();
        if name.is_empty() {
            return Err(bad("the key name is empty"));
        }
        let key = ApiKey::from_digest(name, hex)
            .map_err(|_| bad("the digest must be 64 hex digits (SHA-256 of the key)"))?;
        let scopes = fields.next().unwrap_or_default();
        keys.push(key.scopes(scopes.split_ascii_whitespace()));
    }
    Ok(KeySet::from_keys(keys))
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::KEY_A;
    use super::*;
    use std::time::Duration;

    #[test]
    fn digest_file_errors_carry_line_numbers() {
        let dir = std::env::temp_dir().join(format!("tma-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.txt");
        std::fs::write(&path, "# ok\n\nname-only\n").unwrap();
        let err = ApiKeys::from_digest_file(&path).unwrap_err();
        assert!(matches!(err, ConfigError::KeyFile { line: 3, .. }), "{err}");
        std::fs::write(&path, "a:zz\n").unwrap();
        let err = ApiKeys::from_digest_file(&path).unwrap_err();
        assert!(err.to_string().contains(":1:"), "{err}");
        let err = ApiKeys::from_digest_file(dir.join("missing.txt")).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
    }

    #[test]
    fn reload_under_concurrent_verification_sees_old_or_new_only() {
        let dir = std::env::temp_dir().join(format!("tma-reload-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old.txt"), dir.join("new.txt"));
        let shared = SecretString::from(KEY_A);
        let file = |path: &Path, version: &str| {
            let mut text = ApiKeys::digest_line(version, &shared, [version]);
            for i in 0..5_000 {
                text.push_str(&format!("\nfiller-{i}:{i:064x}"));
            }
            std::fs::write(path, text).unwrap();
        };
        file(&old, "v1");
        file(&new, "v2");
        let keys = ApiKeys::from_digest_file(&old).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (keys, stop) = (keys.clone(), &stop);
                    s.spawn(move || {
                        let mut seen = [0usize; 2];
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let p = keys.verify(KEY_A).expect("the shared key never fails");
                            let scopes = p.scopes().to_string();
                            assert_eq!(p.name(), scopes, "name and scopes of one set");
                            seen[usize::from(p.subject() == Some("v2"))] += 1;
                        }
                        seen
                    })
                })
                .collect();
            for round in 0..10 {
                let path = if round % 2 == 0 { &new } else { &old };
                keys.reload_digest_file(path).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            readers
                .into_iter()
                .map(|r| r.join().unwrap())
                .fold([0, 0], |a, b| [a[0] + b[0], a[1] + b[1]])
        });
        assert!(
            seen[0] > 0 && seen[1] > 0,
            "both sets were served: {seen:?}"
        );
        assert_eq!(keys.len(), 5_001);
    }
}
