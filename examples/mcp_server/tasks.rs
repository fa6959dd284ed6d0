//! `build_report`, the tool that runs as a task: the tasks extension
//! (`io.modelcontextprotocol/tasks`, SEP-2663) as rmcp 3.11 implements it.
//! A client that declares the extension gets a `CreateTaskResult` at once
//! and reads the report from `tasks/get`; any other client gets the report
//! inline.
//!
//! The server keeps its tasks in rmcp's [`TaskManager`] and answers a task
//! id as rmcp does, without asking who presents it: `HandleBindingLayer`
//! seals every task id to the principal that created it, so anyone else
//! presenting it (or a tampered one) gets the manager's own `unknown task`.
//!
//! Bounds: at most [`MAX_RUNNING_TASKS`] run at once (beyond that the
//! report is built inline, so no caller is refused because the table is
//! full); a task is kept [`TASK_TTL_MS`] after it finishes, then
//! forgotten; the rate limiter bounds how fast a principal creates them.

use std::collections::BTreeMap;

use rmcp::{
    model::{CallToolResponse, CallToolResult, CreateTaskResult},
    schemars::{self, JsonSchema},
    task_manager::TaskOptions,
};
use serde::Deserialize;

use super::store::{now, read, Store};

/// At most this many reports run as tasks at once.
pub const MAX_RUNNING_TASKS: usize = 1_000;
/// A task's lifetime (rmcp's `ttlMs`), and how long it stays readable
/// after it finishes: one minute.
pub const TASK_TTL_MS: u64 = 60_000;
/// The polling interval suggested to the client.
const POLL_INTERVAL_MS: u64 = 100;

/// `build_report` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReportParams {
    /// The report's title.
    pub title: String,
}

/// The report, as a task when `as_task` (the client declared the tasks
/// extension) and fewer than [`MAX_RUNNING_TASKS`] run, else inline.
pub(super) fn build_report(
    store: &Store,
    requested_by: String,
    title: String,
    as_task: bool,
) -> CallToolResponse {
    let tasks = store.0.tasks.clone();
    let store = store.clone();
    let make = move || report(&store, &title, &requested_by);
    if !as_task || tasks.running_task_count() >= MAX_RUNNING_TASKS {
        return make().into();
    }
    let options = TaskOptions::new()
        .with_ttl_ms(TASK_TTL_MS)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message("building the report");
    let task = tasks.spawn(options, move |_ctx| Box::pin(async move { Ok(make()) }));
    CreateTaskResult::new(task).into()
}

/// The users by department, for whom and when.
fn report(store: &Store, title: &str, requested_by: &str) -> CallToolResult {
    let mut departments = BTreeMap::<String, usize>::new();
    let total = {
        let users = read(&store.0.users);
        for user in users.values() {
            *departments.entry(user.department.clone()).or_default() += 1;
        }
        users.len()
    };
    CallToolResult::structured(serde_json::json!({
        "title": title,
        "total_users": total,
        "users_by_department": departments,
        "requested_by": requested_by,
        "generated_at": now(),
    }))
}
