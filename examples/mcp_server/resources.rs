//! The resources (`admin://system/stats`, `user://{user_id}/private`), the
//! tasks of `build_report` (`tasks/get`, `tasks/update`, `tasks/cancel`)
//! and the server's description: rmcp's [`ServerHandler`] for
//! [`McpServer`].

use std::sync::atomic::Ordering;

use http::request::Parts;
use rmcp::{
    model::{
        CancelTaskParams, GetPromptRequestMethod, GetPromptRequestParams, GetPromptResponse,
        GetTaskParams, GetTaskResult, Implementation, ListPromptsRequestMethod, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig, UpdateTaskParams,
    },
    service::RequestContext,
    tool_handler, ErrorData, RoleServer, ServerHandler,
};
use tower_mcp_auth::Principal;

use super::{
    store::{clip, read},
    tools::{conformance, McpServer},
};

/// The resource template of users' private data.
pub const PRIVATE_TEMPLATE: &str = "user://{user_id}/private";
/// The system statistics resource.
pub const STATS_URI: &str = "admin://system/stats";

fn json_contents(uri: &str, value: &serde_json::Value) -> ReadResourceResponse {
    ReadResourceResult::new(vec![
        ResourceContents::text(value.to_string(), uri).with_mime_type("application/json")
    ])
    .into()
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_tasks();
        ServerConfig::new(if self.conformance {
            capabilities.enable_prompts().build()
        } else {
            capabilities.build()
        })
        .with_server_info(Implementation::new(
            "tower-mcp-auth-example",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "User administration demo. Tools read the caller from the credential \
             (API key or bearer token) that tower-mcp-auth verified.",
        )
    }

    // Prompts: only the conformance fixture's (`CONFORMANCE_FIXTURES=1`).
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        if self.conformance {
            Ok(conformance::prompts())
        } else {
            Err(ErrorData::method_not_found::<ListPromptsRequestMethod>())
        }
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if self.conformance {
            conformance::get_prompt(&request)
        } else {
            Err(ErrorData::method_not_found::<GetPromptRequestMethod>())
        }
    }

    // The tasks, answered by rmcp's task manager for whoever asks: the
    // layers in front let a task id through only from its creator.
    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(
            self.store.0.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        (self.store.0.tasks).update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.store.0.tasks.cancel_task(&request.task_id)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            STATS_URI,
            "system_stats",
        )
        .with_description("System statistics (API key)")
        .with_mime_type("application/json")]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(PRIVATE_TEMPLATE, "user_private_data")
                .with_description("A user's private data (bearer token with read:data)")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let who = context
            .extensions
            .get::<Parts>()
            .and_then(Principal::from_parts)
            .ok_or_else(|| {
                ErrorData::invalid_request("this resource needs an authenticated caller", None)
            })?;
        let uri = request.uri.as_str();
        self.store.count_call();
        if uri == STATS_URI {
            let inner = &self.store.0;
            let (total_users, admin_users) = {
                let users = read(&inner.users);
                let admins = users.values().filter(|u| u.role == "admin").count();
                (users.len(), admins)
            };
            let active_sessions = inner.sessions.sessions.read().await.len();
            let stats = serde_json::json!({
                "total_users": total_users,
                "admin_users": admin_users,
                "active_sessions": active_sessions,
                "calls_since_start": inner.calls.load(Ordering::Relaxed),
                "uptime_seconds": inner.started.elapsed().as_secs(),
                "requested_by": who.name(),
            });
            return Ok(json_contents(uri, &stats));
        }
        if let Some(user_id) = uri
            .strip_prefix("user://")
            .and_then(|rest| rest.strip_suffix("/private"))
            .filter(|id| !id.is_empty() && !id.contains('/'))
        {
            let private = read(&self.store.0.private).get(user_id).cloned();
            if let (Some(private), Ok(user)) = (private, self.store.user(user_id)) {
                let value = serde_json::json!({
                    "user_id": user.id,
                    "name": user.name,
                    "private": private,
                    "accessed_by": who.name(),
                });
                return Ok(json_contents(uri, &value));
            }
        }
        Err(ErrorData::resource_not_found(
            format!("no resource `{}`", clip(uri)),
            None,
        ))
    }
}
