//! Reloading a [`SharedPolicy`] in the background: [`PolicyReloader`],
//! made by [`SharedPolicy::watch_file`] and [`SharedPolicy::reload_on_sighup`].

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::watch,
    task::{AbortHandle, JoinHandle},
    time::MissedTickBehavior,
};

use crate::config::ConfigError;

use super::{
    file::read_text,
    policy::McpPolicy,
    shared::{digest, SharedPolicy},
};

/// What one reload attempt of a [`PolicyReloader`] came to: `Ok` when the
/// file's policy is in force, else why it was refused (the policy in force
/// stays).
pub type ReloadOutcome = Result<(), Arc<ConfigError>>;

/// A task that reloads a [`SharedPolicy`] from its file, made by
/// [`SharedPolicy::watch_file`] or [`SharedPolicy::reload_on_sighup`].
///
/// **Dropping it stops the task**; [`detach`](Self::detach) lets it run
/// as long as the Tokio runtime does. Each attempt reads the file off the
/// runtime's threads (`spawn_blocking`) and is reported as
/// [`reload_file`](SharedPolicy::reload_file) reports it: an audit event,
/// `outcome = "reloaded"`, or `outcome = "reload_refused"` (a `WARN`) with
/// the line and the rule of the mistake, the policy in force staying.
/// [`next_reload`](Self::next_reload) waits for an attempt and tells how
/// it went.
#[must_use = "dropping a PolicyReloader stops it: keep it, or `detach` it"]
pub struct PolicyReloader {
    task: Option<AbortHandle>,
    outcomes: watch::Receiver<Option<ReloadOutcome>>,
}

impl PolicyReloader {
    /// Runs `task`, which sends each outcome on the channel whose receiver
    /// is `outcomes`.
    fn new(task: JoinHandle<()>, outcomes: watch::Receiver<Option<ReloadOutcome>>) -> Self {
        Self {
            task: Some(task.abort_handle()),
            outcomes,
        }
    }

    /// Waits for the next reload attempt and returns how it went; `None`
    /// once the task has ended (its signal stream closed). Attempts that
    /// end while nobody waits are not queued: this returns the latest.
    pub async fn next_reload(&mut self) -> Option<ReloadOutcome> {
        self.outcomes.changed().await.ok()?;
        self.outcomes.borrow_and_update().clone()
    }

    /// Lets the task run for as long as the Tokio runtime does.
    pub fn detach(mut self) {
        self.task = None;
    }
}

impl Drop for PolicyReloader {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for PolicyReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyReloader")
            .field("detached", &self.task.is_none())
            .finish_non_exhaustive()
    }
}

/// # Reloading in the background
impl SharedPolicy {
    /// Reloads the policy whenever the file at `path` changes: every
    /// `interval` (on Tokio's clock; at least 1 ms) the file is read off
    /// the runtime's threads, and when its text differs from the text the
    /// policy in force was read from, it is parsed and swapped in. A file
    /// with a mistake (or one that cannot be read) is reported once, and
    /// the policy in force stays until the file changes again. A policy
    /// built in code ([`SharedPolicy::new`]) is replaced by the file's at
    /// the first read.
    ///
    /// The whole file is read each time (a policy is small; the text, not
    /// its modification time, decides, so an edit within the file
    /// system's time granularity is not missed).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_mcp_auth::mcp::SharedPolicy;
    ///
    /// # async fn run() -> Result<(), tower_mcp_auth::ConfigError> {
    /// let policy = SharedPolicy::from_file("policy.toml")?;
    /// let reloader = policy.watch_file("policy.toml", Duration::from_secs(5));
    /// // … serve with `policy`; dropping `reloader` stops the watch.
    /// # drop(reloader); Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn watch_file(&self, path: impl Into<PathBuf>, interval: Duration) -> PolicyReloader {
        let (tx, rx) = watch::channel(None);
        let (policy, path) = (self.clone(), path.into());
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let task = tokio::spawn(async move {
            let mut seen = policy.source().map(Seen::Text);
            loop {
                ticks.tick().await;
                let (p, file, last) = (policy.clone(), path.clone(), seen.clone());
                let Ok((now, outcome)) =
                    tokio::task::spawn_blocking(move || reload_if_changed(&p, &file, last)).await
                else {
                    continue;
                };
                seen = Some(now);
                if let Some(outcome) = outcome {
                    tx.send_replace(Some(outcome.map_err(Arc::new)));
                }
            }
        });
        PolicyReloader::new(task, rx)
    }

    /// Reloads the policy from `path` each time the process receives
    /// `SIGHUP` (unix), as [`reload_file`](Self::reload_file) does, off
    /// the runtime's threads. The signal handler is installed before this
    /// returns, so a `SIGHUP` sent afterwards never ends the process.
    ///
    /// ```no_run
    /// use tower_mcp_auth::mcp::SharedPolicy;
    ///
    /// # async fn run() -> Result<(), tower_mcp_auth::ConfigError> {
    /// let policy = SharedPolicy::from_file("policy.toml")?;
    /// policy.reload_on_sighup("policy.toml")?.detach(); // `kill -HUP <pid>` reloads
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the signal handler cannot be
    /// installed.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn reload_on_sighup(
        &self,
        path: impl Into<PathBuf>,
    ) -> Result<PolicyReloader, ConfigError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())
            .map_err(|e| ConfigError::Invalid(format!("cannot listen for SIGHUP: {e}")))?;
        let (tx, rx) = watch::channel(None);
        let (policy, path) = (self.clone(), path.into());
        let task = tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let (p, file) = (policy.clone(), path.clone());
                if let Ok(outcome) = tokio::task::spawn_blocking(move || p.reload_file(&file)).await
                {
                    tx.send_replace(Some(outcome.map_err(Arc::new)));
                }
            }
        });
        Ok(PolicyReloader::new(task, rx))
    }
}

/// What a watcher last read: the text's SHA-256, or the read's error.
#[derive(Clone, PartialEq, Eq)]
enum Seen {
    Text([u8; 32]),
    Unreadable(String),
}

/// Reads `path` and, when it differs from `last`, reloads it (or reports
/// why not): what was read, and the outcome of the attempt if there was
/// one.
fn reload_if_changed(
    policy: &SharedPolicy,
    path: &Path,
    last: Option<Seen>,
) -> (Seen, Option<Result<(), ConfigError>>) {
    match read_text(path) {
        Ok(text) => {
            let sha = digest(text.as_bytes());
            if last == Some(Seen::Text(sha)) {
                return (Seen::Text(sha), None);
            }
            let parsed = McpPolicy::from_file_text(path, &text);
            (Seen::Text(sha), Some(policy.swap_in(path, parsed, sha)))
        }
        Err(e) => {
            let seen = Seen::Unreadable(e.to_string());
            if last.as_ref() == Some(&seen) {
                return (seen, None);
            }
            crate::audit::reload(
                "mcp_policy",
                &path.display().to_string(),
                Some(&e.to_string()),
            );
            (seen, Some(Err(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{AuthScheme, Principal};

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tma-reload-{name}-{}.json", std::process::id()))
    }

    fn key() -> Principal {
        Principal::new(AuthScheme::ApiKey, "ops")
    }

    /// The watcher reloads a changed file, reports a bad one once and
    /// keeps the rules in force, and stops when dropped; on Tokio's paused
    /// clock, synchronised by `next_reload`.
    #[tokio::test(start_paused = true)]
    async fn a_watched_file_reloads_on_change_and_keeps_the_rules_on_a_mistake() {
        let path = temp("watch");
        std::fs::write(&path, r#"{"tools":{"deploy":"api_key"}}"#).unwrap();
        let policy = SharedPolicy::from_file(&path).unwrap();
        let mut reloader = policy.watch_file(&path, Duration::from_secs(5));
        // Unchanged: a few ticks, no attempt.
        tokio::time::sleep(Duration::from_secs(16)).await;
        assert!(!reloader.outcomes.has_changed().unwrap());

        std::fs::write(&path, r#"{"tools":{"deploy":"bearer"}}"#).unwrap();
        assert!(reloader.next_reload().await.unwrap().is_ok());
        assert!(!policy.current().may_call_tool(Some(&key()), "deploy"));

        std::fs::write(&path, "{\"tools\":{\n\"deploy\":\"bearr\"}}").unwrap();
        let err = reloader.next_reload().await.unwrap().unwrap_err();
        assert!(
            err.to_string()
                .contains(":2: tool `deploy`: unknown scheme `bearr`"),
            "{err}"
        );
        assert!(
            !policy.current().may_call_tool(Some(&key()), "deploy"),
            "the rules stay"
        );
        // Reported once: the same bad text is no new attempt.
        tokio::time::sleep(Duration::from_secs(16)).await;
        assert!(!reloader.outcomes.has_changed().unwrap());

        std::fs::remove_file(&path).unwrap();
        let err = reloader.next_reload().await.unwrap().unwrap_err();
        assert!(matches!(*err, ConfigError::Io { .. }), "{err:?}");

        std::fs::write(&path, r#"{"tools":{"deploy":"api_key"}}"#).unwrap();
        assert!(reloader.next_reload().await.unwrap().is_ok());
        assert!(policy.current().may_call_tool(Some(&key()), "deploy"));

        // Dropped: the task ends, and a change is no longer read.
        let mut outcomes = reloader.outcomes.clone();
        drop(reloader);
        std::fs::write(&path, r#"{"tools":{"deploy":"bearer"}}"#).unwrap();
        assert!(outcomes.changed().await.is_err(), "the task ended");
        assert!(policy.current().may_call_tool(Some(&key()), "deploy"));
        std::fs::remove_file(&path).unwrap();
    }

    /// A policy built in code is replaced by the watched file's at the
    /// first read.
    #[tokio::test(start_paused = true)]
    async fn a_policy_from_code_takes_the_watched_files_rules() {
        let path = temp("code");
        std::fs::write(&path, r#"{"tools":{"deploy":"bearer"}}"#).unwrap();
        let policy = SharedPolicy::new(
            McpPolicy::builder()
                .tool("deploy", crate::Rule::api_key())
                .build()
                .unwrap(),
        );
        let mut reloader = policy.watch_file(&path, Duration::ZERO);
        assert!(reloader.next_reload().await.unwrap().is_ok());
        assert!(!policy.current().may_call_tool(Some(&key()), "deploy"));
        std::fs::remove_file(&path).unwrap();
    }

    /// `SIGHUP` sent to this process reloads the file (through `kill`, no
    /// signal crate); the only test of this binary that sends one.
    #[cfg(unix)]
    #[tokio::test]
    async fn sighup_reloads_the_file() {
        let path = temp("hup");
        std::fs::write(&path, r#"{"tools":{"deploy":"api_key"}}"#).unwrap();
        let policy = SharedPolicy::from_file(&path).unwrap();
        let mut reloader = policy.reload_on_sighup(&path).unwrap();
        let hangup = || {
            let pid = std::process::id().to_string();
            let status = std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status();
            assert!(status.unwrap().success());
        };
        std::fs::write(&path, r#"{"tools":{"deploy":"bearer"}}"#).unwrap();
        hangup();
        assert!(reloader.next_reload().await.unwrap().is_ok());
        assert!(!policy.current().may_call_tool(Some(&key()), "deploy"));
        std::fs::write(&path, r#"{"tools":{"deploy":"x"}}"#).unwrap();
        hangup();
        assert!(reloader.next_reload().await.unwrap().is_err());
        assert!(!policy.current().may_call_tool(Some(&key()), "deploy"));
        std::fs::remove_file(&path).unwrap();
    }
}
