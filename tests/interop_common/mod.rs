//! What the interop tests (`tests/interop.rs`, `tests/interop_dpop.rs`)
//! share: where the project is, whether a missing client fails or is
//! skipped, a Node.js authorization server's process, and the example's
//! environment.

use std::{
    io::BufRead,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

/// The project's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether a missing client fails the test (`INTEROP_REQUIRED=1`, which
/// `scripts/test` sets once it has installed them) instead of skipping it.
pub fn required() -> bool {
    matches!(
        std::env::var("INTEROP_REQUIRED").as_deref(),
        Ok("1" | "true")
    )
}

/// Says why `test` skips something; fails instead under
/// `INTEROP_REQUIRED=1`.
pub fn missing(test: &str, what: &str, fix: &str) {
    let message = format!("NOTICE: {test}: {what} is not installed; skipping it (install: {fix})");
    assert!(!required(), "{message} — INTEROP_REQUIRED is set");
    eprintln!("{message}");
}

/// An authorization server in a child process, killed on drop.
pub struct AuthServer {
    child: Child,
    /// Its issuer, as the server printed it once listening.
    pub issuer: String,
}

impl AuthServer {
    /// Starts `command` (blocking: it runs before any runtime exists, so
    /// that the issuer can go into the environment) and waits for the one
    /// JSON line `{"issuer": …}` the server prints once listening; a server
    /// that dies first closes its stdout and fails the test.
    pub fn spawn(mut command: Command, what: &str) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("run {what}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let read = std::io::BufReader::new(stdout).read_line(&mut line);
        // Owned before anything can fail, so a failure kills the child.
        let mut server = Self {
            child,
            issuer: String::new(),
        };
        read.unwrap_or_else(|e| panic!("read the issuer of {what}: {e}"));
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{what} did not start: {line:?}"));
        server.issuer = v["issuer"].as_str().expect("issuer").to_owned();
        server
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets the example's environment (before any other thread exists).
pub fn set_env(vars: &[(&str, &str)]) {
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
}
