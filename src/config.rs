//! Configuration errors and credentials from the environment.

use std::path::PathBuf;

use secrecy::SecretString;

/// A configuration mistake, found when a layer, validator or policy is built.
///
/// Configuration errors and credentials from the environment.
///
/// Every fallible piece of configuration in this crate fails at build time
/// with a [`ConfigError`] that says what is wrong and how to fix it, never
/// with a panic at request time.
///
/// # Example
///
/// ```
/// use secrecy::ExposeSecret;
/// use tower_mcp_auth::{ConfigError, secret_from_env};
///
/// std::env::remove_var("DOCTEST_MISSING_SECRET");
/// let err = secret_from_env("DOCTEST_MISSING_SECRET").unwrap_err();
/// assert!(matches!(err, ConfigError::MissingEnv { .. }));
/// assert!(err.to_string().contains("DOCTEST_MISSING_SECRET"));
/// ```
///
/// # `Debug` is the message
///
/// `fn main() -> Result<(), E>` prints an error it returns with `Debug`
/// (`Error: {err:?}`), and so do `unwrap` and `expect`. A derived `Debug`
/// would show `MissingEnv { var: "API_KEY" }` to an operator who needs the
/// sentence saying which variable to set; so `{:?}` (and `{:#?}`) print
/// the [`Display`](std::fmt::Display) text. Match on the variants for the
/// structure.
///
/// ```
/// use tower_mcp_auth::ConfigError;
///
/// let err = ConfigError::MissingEnv { var: "NOTES_API_KEYS".into() };
/// assert_eq!(format!("{err:?}"), err.to_string());
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required environment variable is not set.
    #[error("required secret not configured: environment variable `{var}` is not set; set it (for example `export {var}=...`) before starting")]
    MissingEnv {
        /// The variable.
        var: String,
    },
    /// A required environment variable is set but empty.
    #[error("environment variable `{var}` is set but empty; give it a value")]
    EmptyEnv {
        /// The variable.
        var: String,
    },
    /// An environment variable holds something unusable.
    #[error("environment variable `{var}` is invalid: {reason}")]
    InvalidEnv {
        /// The variable.
        var: String,
        /// What is wrong (never the value itself).
        reason: String,
    },
    /// A URL that must be absolute, https (or http on loopback), without a
    /// fragment.
    #[error("invalid {what} `{url}`: {reason}")]
    InvalidUrl {
        /// Which URL (`resource identifier`, `authorization server`, ...).
        what: &'static str,
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an API-key digest file is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong (never the line's content).
        reason: String,
    },
    /// A policy file (or text) that does not parse or holds a rule that
    /// cannot be right.
    #[error("{}:{line}: {reason}", path.as_deref().map_or_else(|| "policy".into(), |p| p.display().to_string()))]
    PolicyFile {
        /// The file (`None`: text given directly).
        path: Option<PathBuf>,
        /// The 1-based line of the mistake (of the rule: in TOML where its
        /// value starts, in JSON where it ends).
        line: usize,
        /// What is wrong, naming the rule.
        reason: String,
    },
    /// Anything else that cannot be right: an empty key set, a bad header
    /// name, an impossible rule.
    #[error("{0}")]
    Invalid(String),
}

impl std::fmt::Debug for ConfigError {
    /// The [`Display`](std::fmt::Display) text: what `main` prints when it
    /// returns this error (see "`Debug` is the message" above).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Reads a secret from the environment variable `var`.
///
/// # Errors
///
/// [`ConfigError::MissingEnv`] when it is not set, [`ConfigError::EmptyEnv`]
/// when it is empty or only white space, [`ConfigError::InvalidEnv`] when it
/// is not Unicode. Each names the variable, never the value.
pub fn secret_from_env(var: &str) -> Result<SecretString, ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Err(ConfigError::EmptyEnv { var: var.into() }),
        Ok(v) => Ok(SecretString::from(v)),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::MissingEnv { var: var.into() }),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::InvalidEnv {
            var: var.into(),
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// Reads an optional secret: `Ok(None)` when `var` is not set.
///
/// # Errors
///
/// As [`secret_from_env`], except that a missing variable is not an error.
pub fn optional_secret_from_env(var: &str) -> Result<Option<SecretString>, ConfigError> {
    match secret_from_env(var) {
        Ok(s) => Ok(Some(s)),
        Err(ConfigError::MissingEnv { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// Issue 25 item 6: returned from `main` (printed with `Debug`), a
    /// start-up error reads as a sentence naming the variable, not as
    /// `MissingEnv { var: "NOTES_API_KEYS" }`.
    #[test]
    fn debug_is_the_readable_message() {
        let err = ConfigError::MissingEnv {
            var: "NOTES_API_KEYS".into(),
        };
        for shown in [format!("{err:?}"), format!("{err:#?}")] {
            assert_eq!(shown, err.to_string());
            assert!(
                shown.contains("environment variable `NOTES_API_KEYS` is not set"),
                "{shown}"
            );
            assert!(!shown.contains("MissingEnv"), "{shown}");
        }
        // Through the examples' `Box<dyn Error>` as well.
        let boxed: Box<dyn std::error::Error> = Box::new(ConfigError::EmptyEnv {
            var: "API_KEY".into(),
        });
        assert_eq!(
            format!("{boxed:?}"),
            "environment variable `API_KEY` is set but empty; give it a value"
        );
    }

    #[test]
    fn env_errors_name_the_variable_and_never_the_value() {
        std::env::set_var("TMA_TEST_SECRET_SET", "s3cr3t-value");
        std::env::set_var("TMA_TEST_SECRET_EMPTY", "  ");
        std::env::remove_var("TMA_TEST_SECRET_UNSET");
        let s = secret_from_env("TMA_TEST_SECRET_SET").unwrap();
        assert_eq!(s.expose_secret(), "s3cr3t-value");
        assert!(!format!("{s:?}").contains("s3cr3t"));

        let e = secret_from_env("TMA_TEST_SECRET_EMPTY").unwrap_err();
        assert!(e.to_string().contains("TMA_TEST_SECRET_EMPTY"), "{e}");
        let e = secret_from_env("TMA_TEST_SECRET_UNSET").unwrap_err();
        assert_eq!(
            e.to_string(),
            "required secret not configured: environment variable `TMA_TEST_SECRET_UNSET` is not set; set it (for example `export TMA_TEST_SECRET_UNSET=...`) before starting"
        );
        assert!(optional_secret_from_env("TMA_TEST_SECRET_UNSET")
            .unwrap()
            .is_none());
        assert!(optional_secret_from_env("TMA_TEST_SECRET_EMPTY").is_err());
    }
}
