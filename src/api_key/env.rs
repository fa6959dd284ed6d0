//! The environment's key list: `API_KEY="key,name:key:scope scope,…"`,
//! read into an [`ApiKeys`] set.

use secrecy::{ExposeSecret, SecretString};

use crate::config::{secret_from_env, ConfigError};

use super::store::{ApiKey, ApiKeys, KeySet, MIN_KEY_LEN};

impl ApiKeys {
    /// Reads keys from the environment variable `var`, comma separated
    /// (several keys: rotation, or one per client). Each entry is either
    ///
    /// * `key`: a bare key, named after the variable in lower case
    ///   (`API_KEY` → `api_key`), granting no scopes (the form of earlier
    ///   releases); or
    /// * `name:key` or `name:key:scope scope …`: a named key (the
    ///   principal's subject) granting scopes, as a line of a
    ///   [digest file](Self::from_digest_file) does.
    ///
    /// An entry with a `:` is read as a named key, so a key cannot
    /// contain `:` (nor `,` or white space; keys from
    /// [`generate`](Self::generate) never do).
    ///
    /// ```
    /// use secrecy::SecretString;
    /// use tower_mcp_auth::api_key::ApiKeys;
    ///
    /// // As `API_KEY="mcp_sk_legacy-0123456789,ops:mcp_sk_ops-0123456789abcdef:admin:write read:data"`.
    /// let value = SecretString::from(
    ///     "mcp_sk_legacy-0123456789,ops:mcp_sk_ops-0123456789abcdef:admin:write read:data",
    /// );
    /// let keys = ApiKeys::from_list("API_KEY", &value)?;
    /// let ops = keys.verify("mcp_sk_ops-0123456789abcdef").unwrap();
    /// assert_eq!(ops.subject(), Some("ops"));
    /// assert_eq!(ops.scopes().to_string(), "admin:write read:data");
    /// assert_eq!(keys.verify("mcp_sk_legacy-0123456789").unwrap().subject(), Some("api_key"));
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingEnv`] / [`ConfigError::EmptyEnv`] when the
    /// variable is not set or empty; [`ConfigError::InvalidEnv`] when an
    /// entry's key contains white space or is shorter than
    /// [`MIN_KEY_LEN`], its name is empty or has white space, or a scope
    /// has characters RFC 6749 §3.3 does not allow. Errors name the
    /// variable and the entry by its number, never a key.
    pub fn from_env(var: &str) -> Result<Self, ConfigError> {
        let value = secret_from_env(var)?;
        Self::from_list(var, &value)
    }

    /// As [`from_env`](Self::from_env), for a value already read (for
    /// example from a secret manager); `var` names it in errors.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_list(var: &str, value: &SecretString) -> Result<Self, ConfigError> {
        let default_name = var.to_ascii_lowercase();
        let mut keys = Vec::new();
        for (i, entry) in value.expose_secret().split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let key =
                env_entry(&default_name, entry).map_err(|reason| ConfigError::InvalidEnv {
                    var: var.into(),
                    reason: format!("entry #{}: {reason}", i + 1),
                })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(ConfigError::EmptyEnv { var: var.into() });
        }
        Ok(Self::from_set(KeySet::from_keys(keys)))
    }
}

/// `default_name`, no scopes) or `name:key[:scopes]`. The error never
/// holds the key.
fn env_entry(default_name: &str, entry: &str) -> Result<ApiKey, String> {
    let (name, key, scopes) = match entry.split_once(':') {
        None => (default_name, entry, ""),
        Some((name, rest)) => {
            let (key, scopes) = rest.split_once(':').unwrap_or((rest, ""));
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err("expected `key` or `name:key[:scope scope …]`; the name is empty or has white space".into());
            }
            (name, key, scopes)
        }
    };
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.chars().any(char::is_whitespace) {
        return Err("the key contains white space".into());
    }
    if key.len() < MIN_KEY_LEN {
        return Err(format!(
            "the key is shorter than {MIN_KEY_LEN} characters; generate one with ApiKeys::generate()"
        ));
    }
    if let Some(n) = scopes
        .split_ascii_whitespace()
        .position(|s| !crate::principal::is_scope_token(s))
    {
        return Err(format!(
            "scope #{} has characters RFC 6749 §3.3 does not allow",
            n + 1
        ));
    }
    Ok(ApiKey::new(name, key).scopes(scopes.split_ascii_whitespace()))
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{KEY_A, KEY_B};
    use super::*;

    #[test]
    fn env_parsing() {
        std::env::set_var("TMA_KEYS_OK", format!(" {KEY_A} ,{KEY_B},"));
        std::env::set_var("TMA_KEYS_SHORT", "short");
        std::env::set_var("TMA_KEYS_EMPTY", " , ");
        std::env::remove_var("TMA_KEYS_UNSET");
        let keys = ApiKeys::from_env("TMA_KEYS_OK").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.verify(KEY_B).unwrap().subject(), Some("tma_keys_ok"));
        let err = ApiKeys::from_env("TMA_KEYS_SHORT").unwrap_err();
        assert!(err.to_string().contains("TMA_KEYS_SHORT") && !err.to_string().contains("short\""));
        let err = ApiKeys::from_env("TMA_KEYS_EMPTY").unwrap_err();
        assert!(matches!(err, ConfigError::EmptyEnv { .. }), "{err}");
        let err = ApiKeys::from_env("TMA_KEYS_UNSET").unwrap_err();
        assert!(matches!(err, ConfigError::MissingEnv { .. }), "{err}");
        assert!(err.to_string().contains("TMA_KEYS_UNSET"));
    }

    #[test]
    fn env_entries_carry_names_and_scopes() {
        let list = |v: &str| ApiKeys::from_list("API_KEY", &SecretString::from(v.to_owned()));
        // Old values keep working beside named, scoped entries.
        let keys = list(&format!(
            "{KEY_A}, ops:{KEY_B}:admin:write  read:data ,ci:mcp_sk_ci-0123456789abcdef"
        ))
        .unwrap();
        assert_eq!(keys.len(), 3);
        let a = keys.verify(KEY_A).unwrap();
        assert_eq!((a.name(), a.scopes().len()), ("api_key", 0));
        let ops = keys.verify(KEY_B).unwrap();
        assert_eq!(ops.subject(), Some("ops"));
        assert_eq!(ops.scopes().to_string(), "admin:write read:data");
        let ci = keys.verify("mcp_sk_ci-0123456789abcdef").unwrap();
        assert_eq!((ci.name(), ci.scopes().len()), ("ci", 0));
        // Errors name the variable and the entry, never the key.
        for (value, want) in [
            (format!("{KEY_A},ops:short"), "entry #2: the key is shorter"),
            (format!(":{KEY_A}"), "entry #1: expected `key` or `name:key"),
            (
                format!("{KEY_A},x:{KEY_B}:bad\"scope"),
                "entry #2: scope #1 has characters",
            ),
            ("ops:".to_owned(), "entry #1: the key is empty"),
            (
                format!("{KEY_A} {KEY_B}"),
                "entry #1: the key contains white space",
            ),
        ] {
            let err = list(&value).unwrap_err().to_string();
            assert!(
                err.contains("API_KEY") && err.contains(want),
                "{value}: {err}"
            );
            assert!(!err.contains(KEY_A) && !err.contains(KEY_B), "{err}");
        }
    }
}
