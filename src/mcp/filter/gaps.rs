//! What the list filter tells an operator about the policy: a target the
//! server lists that no rule names (a tool added without a rule), and a
//! rule that names a tool or prompt the server's complete list does not
//! hold (a typo: `wirte_note` for `write_note`).
//!
//! Each such name is reported once per policy (a reload starts afresh):
//! one audit event (`outcome = "policy_gap"`, `reason = "no_rule"` or
//! `"never_listed"`) and one warning in the log. At most [`MAX_REPORTED`]
//! names are remembered, each cut to the audit bound; past that, one last
//! event says that more are not reported.
//!
//! The cost stays off the hot path: a listing whose items the filter has
//! seen recently (a fingerprint of its names, one of the last
//! [`RECENT`] seen) costs one hash of its names and a few atomic loads; a
//! new listing takes the lock once.

use std::{
    collections::HashSet,
    fmt,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Mutex, PoisonError,
    },
};

use serde_json::Value;

use crate::audit;

use super::shape::ListKind;

/// What the report reads of a policy: the targets its rules name (not
/// its unmatched rules). The policy implements it, so that the filter's
/// report depends on no policy type.
pub(crate) trait NamedTargets {
    /// Whether a tool rule names `name`.
    fn names_tool(&self, name: &str) -> bool;
    /// Whether a prompt rule names `name`.
    fn names_prompt(&self, name: &str) -> bool;
    /// Whether a resource rule (an exact URI, or a template that matches)
    /// decides `uri` (a URI, or a template as listed).
    fn names_resource(&self, uri: &str) -> bool;
    /// The tools the rules name.
    fn tools_named(&self) -> impl Iterator<Item = &str>;
    /// The prompts the rules name.
    fn prompts_named(&self) -> impl Iterator<Item = &str>;
}

/// The most names reported for one policy.
pub(crate) const MAX_REPORTED: usize = 256;

/// How many listings' fingerprints are remembered (a paginated listing
/// alternates between its pages).
const RECENT: usize = 8;

/// Why a name is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Gap {
    /// The server lists it; no rule names it.
    NoRule(ListKind),
    /// A rule names it; the server's complete list does not hold it.
    NeverListed(ListKind),
}

/// What the list filter has reported about one policy.
#[derive(Default)]
pub(crate) struct Gaps {
    /// Fingerprints of listings already looked at (0: none).
    recent: [AtomicU64; RECENT],
    next: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    reported: HashSet<(Gap, String)>,
    /// No more room: the last event has been emitted.
    full: bool,
    /// The tools and prompts a rule names that a listing has held
    /// (bounded by the number of rules).
    listed_tools: HashSet<String>,
    listed_prompts: HashSet<String>,
}

impl fmt::Debug for Gaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Gaps")
            .field("reported", &state.reported.len())
            .finish_non_exhaustive()
    }
}

impl Gaps {
    /// Looks at one list of `kind` as the server sent it (`last_page`: it
    /// has no `nextCursor`), and reports what `policy` does not name.
    pub(super) fn observe(
        &self,
        policy: &impl NamedTargets,
        kind: ListKind,
        items: &[Value],
        last_page: bool,
    ) {
        let print = fingerprint(kind, items, last_page);
        if self
            .recent
            .iter()
            .any(|seen| seen.load(Ordering::Relaxed) == print)
        {
            return;
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % RECENT;
        self.recent[slot].store(print, Ordering::Relaxed);

        let names = items
            .iter()
            .filter_map(|item| item.get(kind.key()).and_then(Value::as_str));
        // Decided under the lock, emitted after it: no request waits on
        // the log's I/O.
        let mut out = Vec::new();
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            for name in names {
                let named = match kind {
                    ListKind::Tools => policy.names_tool(name),
                    ListKind::Prompts => policy.names_prompt(name),
                    ListKind::Resources | ListKind::Templates | ListKind::Skills => {
                        policy.names_resource(name)
                    }
                };
                if !named {
                    state.report(Gap::NoRule(kind), name, &mut out);
                    continue;
                }
                if let Some(listed) = state.listed(kind) {
                    if !listed.contains(name) {
                        listed.insert(name.to_owned());
                    }
                }
            }
            // A complete list (its last page, the earlier ones seen
            // before): every tool or prompt a rule names should have been
            // in it.
            let named: Vec<&str> = match kind {
                _ if !last_page => Vec::new(),
                ListKind::Tools => policy.tools_named().collect(),
                ListKind::Prompts => policy.prompts_named().collect(),
                _ => Vec::new(),
            };
            for name in named {
                if state.listed(kind).is_some_and(|l| !l.contains(name)) {
                    state.report(Gap::NeverListed(kind), name, &mut out);
                }
            }
        }
        out.into_iter().for_each(Report::emit);
    }
}

/// One report, decided under the lock and emitted after it.
enum Report {
    Gap(Gap, String),
    /// No more room: nothing more is reported.
    Full,
}

impl Report {
    fn emit(self) {
        let (gap, name) = match self {
            Self::Full => {
                audit::policy_gap(
                    "too_many_gaps",
                    "target",
                    "",
                    "more targets than the log reports once each lack a rule or are not listed: no more are reported for this policy",
                );
                tracing::warn!(
                    "the MCP policy leaves more than {MAX_REPORTED} listed targets without a rule, or names targets the server does not list; no more are reported"
                );
                return;
            }
            Self::Gap(gap, name) => (gap, name),
        };
        match gap {
            Gap::NoRule(kind) => {
                let what = kind.item();
                audit::policy_gap(
                    "no_rule",
                    what,
                    &name,
                    "the server lists it and no rule of the policy names it: the unmatched rule of its kind decides it, else the method rule, else the default",
                );
                tracing::warn!(
                    "the MCP server lists the {what} `{name}`, which no rule of the policy names: it is decided by the unmatched {what} rule, else the method rule, else the default rule (give it a rule, or make the unmatched rule `deny`)"
                );
            }
            Gap::NeverListed(kind) => {
                let what = kind.item();
                audit::policy_gap(
                    "never_listed",
                    what,
                    &name,
                    "a rule of the policy names it and the server's complete list does not hold it (a typo?): the rule matches nothing",
                );
                tracing::warn!(
                    "a rule of the MCP policy names the {what} `{name}`, which the server's complete list does not hold: a typo? The rule matches nothing"
                );
            }
        }
    }
}

impl State {
    fn listed(&mut self, kind: ListKind) -> Option<&mut HashSet<String>> {
        match kind {
            ListKind::Tools => Some(&mut self.listed_tools),
            ListKind::Prompts => Some(&mut self.listed_prompts),
            _ => None,
        }
    }

    /// Remembers `name` and adds its report to `out`, unless it was
    /// reported already or there is no room (the first time: the last
    /// report, [`Report::Full`]).
    fn report(&mut self, gap: Gap, name: &str, out: &mut Vec<Report>) {
        if self.full {
            return;
        }
        let key = (gap, audit::bounded(name).into_owned());
        if self.reported.contains(&key) {
            return;
        }
        if self.reported.len() >= MAX_REPORTED {
            self.full = true;
            out.push(Report::Full);
            return;
        }
        self.reported.insert(key.clone());
        out.push(Report::Gap(key.0, key.1));
    }
}

/// A fingerprint of a listing: its kind, whether it is a last page, and
/// its items' names (never 0, the empty slot).
fn fingerprint(kind: ListKind, items: &[Value], last_page: bool) -> u64 {
    let mut h = DefaultHasher::new();
    (kind, last_page, items.len()).hash(&mut h);
    for item in items {
        item.get(kind.key()).and_then(Value::as_str).hash(&mut h);
    }
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{mcp::McpPolicy, Rule};
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// Runs `f` with every event captured.
    fn captured(f: impl FnOnce()) -> Vec<String> {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        capture.lines()
    }

    fn tools(names: &[&str]) -> Vec<Value> {
        names.iter().map(|n| json!({ "name": n })).collect()
    }

    fn audit_lines(lines: &[String]) -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.contains("tower_mcp_auth::audit"))
            .collect()
    }

    #[test]
    fn a_listed_tool_without_a_rule_is_reported_once() {
        let policy = McpPolicy::builder()
            .tool("write_note", Rule::api_key())
            .unmatched_tool(Rule::deny())
            .build()
            .unwrap();
        let list = tools(&["write_note", "experimental"]);
        let lines = captured(|| {
            for _ in 0..3 {
                policy.gaps().observe(&policy, ListKind::Tools, &list, true);
            }
            // Another listing (the tool moved): still reported once.
            let other = tools(&["experimental", "write_note"]);
            policy
                .gaps()
                .observe(&policy, ListKind::Tools, &other, true);
        });
        let audit = audit_lines(&lines);
        assert_eq!(audit.len(), 1, "{lines:#?}");
        for field in [
            r#"outcome="policy_gap""#,
            r#"reason="no_rule""#,
            r#"target_kind="tool""#,
            r#"target="experimental""#,
            "WARN",
        ] {
            assert!(audit[0].contains(field), "{field} in {}", audit[0]);
        }
        // And one warning in the log, on the module's own target.
        let log: Vec<_> = lines
            .iter()
            .filter(|l| !l.contains("tower_mcp_auth::audit"))
            .collect();
        assert_eq!(log.len(), 1, "{lines:#?}");
        assert!(log[0].contains("WARN") && log[0].contains("`experimental`"));
        // A new policy (a reload) reports afresh.
        let reloaded = McpPolicy::builder().build().unwrap();
        let lines = captured(|| {
            reloaded
                .gaps()
                .observe(&reloaded, ListKind::Tools, &list, true)
        });
        assert_eq!(audit_lines(&lines).len(), 2, "{lines:#?}");
    }

    /// The issue's typo: `wirte_note` names nothing the server lists, and
    /// the real `write_note` has no rule.
    #[test]
    fn a_misspelled_rule_is_reported_once_the_list_is_complete() {
        let policy = McpPolicy::from_json(
            r#"{ "tools": { "wirte_note": "api_key", "read_note": "bearer" } }"#,
        )
        .unwrap();
        let lines = captured(|| {
            // Page 1 of 2: no verdict on the rules yet.
            let page1 = tools(&["read_note"]);
            policy
                .gaps()
                .observe(&policy, ListKind::Tools, &page1, false);
            let page2 = tools(&["write_note"]);
            policy
                .gaps()
                .observe(&policy, ListKind::Tools, &page2, true);
            policy
                .gaps()
                .observe(&policy, ListKind::Tools, &page2, true);
        });
        let audit = audit_lines(&lines);
        assert_eq!(audit.len(), 2, "{lines:#?}");
        assert!(audit
            .iter()
            .any(|l| l.contains(r#"reason="no_rule""#) && l.contains(r#"target="write_note""#)));
        assert!(audit.iter().any(
            |l| l.contains(r#"reason="never_listed""#) && l.contains(r#"target="wirte_note""#)
        ));
        // `read_note` was listed on the first page: not reported.
        assert!(!lines.iter().any(|l| l.contains("read_note")), "{lines:#?}");
    }

    #[test]
    fn resources_templates_prompts_and_skills() {
        let policy = McpPolicy::builder()
            .prompt("greet", Rule::public())
            .resource("user://{id}/private", Rule::bearer())
            .resource("admin://stats", Rule::api_key())
            .build()
            .unwrap();
        let lines = captured(|| {
            let g = policy.gaps();
            g.observe(
                &policy,
                ListKind::Resources,
                &[json!({"uri": "admin://stats"}), json!({"uri": "file:///x"})],
                true,
            );
            g.observe(
                &policy,
                ListKind::Templates,
                &[
                    json!({"uriTemplate": "user://{id}/private"}),
                    json!({"uriTemplate": "x://{y}"}),
                ],
                true,
            );
            g.observe(
                &policy,
                ListKind::Skills,
                &[json!({"uri": "skill://a/SKILL.md"})],
                true,
            );
            g.observe(
                &policy,
                ListKind::Prompts,
                &[json!({"name": "hello"})],
                true,
            );
        });
        let audit = audit_lines(&lines);
        let want = [
            ("resource", "file:///x", "no_rule"),
            ("resource template", "x://{y}", "no_rule"),
            ("skill", "skill://a/SKILL.md", "no_rule"),
            ("prompt", "hello", "no_rule"),
            ("prompt", "greet", "never_listed"),
        ];
        assert_eq!(audit.len(), want.len(), "{lines:#?}");
        for (kind, name, reason) in want {
            assert!(
                audit
                    .iter()
                    .any(|l| l.contains(&format!(r#"target_kind="{kind}""#))
                        && l.contains(&format!(r#"target="{name}""#))
                        && l.contains(&format!(r#"reason="{reason}""#))),
                "{kind} {name} {reason}: {lines:#?}"
            );
        }
    }

    /// Bounded: at most MAX_REPORTED names, each cut to the audit bound,
    /// then one event saying that no more are reported.
    #[test]
    fn reports_are_bounded_in_number_and_length() {
        let policy = McpPolicy::builder().build().unwrap();
        let long = "t".repeat(1 << 20);
        let mut names: Vec<String> = (0..MAX_REPORTED + 50).map(|i| format!("t{i}")).collect();
        names.insert(0, long);
        let list: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
        let lines = captured(|| {
            policy.gaps().observe(&policy, ListKind::Tools, &list, true);
            let more = tools(&["one_more"]);
            policy.gaps().observe(&policy, ListKind::Tools, &more, true);
        });
        let audit = audit_lines(&lines);
        assert_eq!(audit.len(), MAX_REPORTED + 1, "one per name, then one");
        assert!(audit[MAX_REPORTED].contains(r#"reason="too_many_gaps""#));
        let total: usize = lines.iter().map(String::len).sum();
        assert!(total < (MAX_REPORTED + 2) * 2048, "{total} bytes");
        assert!(!lines.iter().any(|l| l.contains("one_more")));
        assert!(policy.gaps().state.lock().unwrap().reported.len() <= MAX_REPORTED);
    }
}
