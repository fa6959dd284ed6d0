//! The tools, each reading its caller from the [`Principal`] the layers
//! verified, with their parameters and results. [`conformance`]: the
//! conformance suite's fixtures, served only with `CONFORMANCE_FIXTURES=1`.

pub mod conformance;

use std::sync::atomic::Ordering;

use http::request::Parts;
use rmcp::{
    handler::server::{
        router::tool::ToolRouter,
        tool::{Extension, InputResponses, RequestState},
        wrapper::Parameters,
    },
    model::{CallToolResponse, CallToolResult, ContentBlock, InputRequest, InputRequiredResult},
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_router, Json, RoleServer,
};
use serde::{Deserialize, Serialize};
use tower_mcp_auth::Principal;

use super::{
    store::{
        check_email, check_text, clip, now, read, write, Profile, SensitiveRecord, Store, User,
        MAX_USERS,
    },
    tasks::{self, ReportParams},
};

/// Names a user.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UserIdParams {
    /// The user's id, such as `user_001`.
    pub user_id: String,
}

/// Names a sensitive record.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DataIdParams {
    /// The record's id, such as `fin-2025-q3`.
    pub data_id: String,
}

/// Fields of a user that may change.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    /// New display name.
    pub name: Option<String>,
    /// New e-mail address.
    pub email: Option<String>,
    /// New department.
    pub department: Option<String>,
}

/// `update_user_data` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateUserParams {
    /// The user's id.
    pub user_id: String,
    /// The fields to change.
    pub data: UserChanges,
}

/// Fields of a profile that may change.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New biography.
    pub bio: Option<String>,
    /// New IANA time zone, such as `Europe/Paris`.
    pub timezone: Option<String>,
}

/// `update_my_profile` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateProfileParams {
    /// The fields to change.
    pub data: ProfileChanges,
}

/// `create_admin_user` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateAdminParams {
    /// The new admin's e-mail address.
    pub email: String,
    /// The new admin's name.
    pub name: String,
}

/// `delete_user` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteUserParams {
    /// The user's id.
    pub user_id: String,
    /// Why (kept in the result, for the audit trail).
    pub reason: String,
}

/// Input of the two generic operations.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OperationParams {
    /// An operation parameter.
    pub param: String,
}

/// Result of `create_admin_user`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Created {
    /// `success`.
    pub status: String,
    /// The new user's id.
    pub user_id: String,
    /// Who created it (the caller's subject).
    pub created_by: String,
    /// The new user.
    pub user: User,
}

/// Result of `update_user_data`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Updated {
    /// `success`.
    pub status: String,
    /// The user's id.
    pub user_id: String,
    /// The fields that changed.
    pub changed: Vec<String>,
    /// Who changed them.
    pub updated_by: String,
    /// The user after the change.
    pub user: User,
}

/// Result of `delete_user`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    /// `success`.
    pub status: String,
    /// The deleted user's id.
    pub deleted: String,
    /// Why.
    pub reason: String,
    /// Who deleted it.
    pub deleted_by: String,
}

/// Result of `list_all_users`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserList {
    /// How many users there are.
    pub total: usize,
    /// The users, by id.
    pub users: Vec<User>,
}

/// Result of `read_sensitive_data`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SensitiveRead {
    /// The record.
    pub record: SensitiveRecord,
    /// Who read it.
    pub accessed_by: String,
}

/// The caller, as the tools see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Caller {
    /// The principal's subject.
    pub subject: String,
    /// How it authenticated (`api_key`, `jwt`, `introspection`).
    pub scheme: String,
    /// The scopes it was granted.
    pub scopes: Vec<String>,
}

/// Result of `get_my_profile` / `update_my_profile`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MyProfile {
    /// The profile.
    pub profile: Profile,
    /// The caller.
    pub caller: Caller,
}

/// Result of the two generic operations.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OperationResult {
    /// `success`.
    pub status: String,
    /// Which operation ran.
    pub operation: String,
    /// The parameter it ran with.
    pub param: String,
    /// For whom.
    pub performed_by: String,
    /// When, seconds since the Unix epoch.
    pub performed_at: u64,
}

/// The authenticated caller of a tool call: the [`Principal`] an
/// authentication layer put into the request parts that rmcp hands over.
fn caller(parts: &Parts) -> Result<&Principal, String> {
    Principal::from_parts(parts).ok_or_else(|| "this tool needs an authenticated caller".to_owned())
}

fn describe(p: &Principal) -> Caller {
    Caller {
        subject: p.name().to_owned(),
        scheme: p.scheme().to_string(),
        scopes: p.scopes().iter().map(str::to_owned).collect(),
    }
}

/// The MCP server: tools and resources over a [`Store`].
#[derive(Clone)]
pub struct McpServer {
    pub(super) store: Store,
    pub(super) tool_router: ToolRouter<Self>,
    /// Whether the [`conformance`] fixtures are served.
    pub(super) conformance: bool,
}

/// Tool results: structured JSON, or a tool error (`isError: true`) with a
/// message.
type ToolResult<T> = Result<Json<T>, String>;

#[tool_router]
impl McpServer {
    /// A server over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            tool_router: Self::tool_router(),
            conformance: false,
        }
    }

    /// A server over `store` that also serves the conformance suite's
    /// fixtures ([`conformance`]; `CONFORMANCE_FIXTURES=1`).
    pub fn with_conformance_fixtures(store: Store) -> Self {
        Self {
            store,
            tool_router: Self::tool_router() + Self::conformance_tools(),
            conformance: true,
        }
    }

    #[tool(description = "Get a user's data (bearer token with read:data).")]
    async fn get_user_data(
        &self,
        Parameters(p): Parameters<UserIdParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<User> {
        caller(&parts)?;
        self.store.count_call();
        self.store.user(&p.user_id).map(Json)
    }

    #[tool(description = "Read a sensitive record (bearer token with data:read).")]
    async fn read_sensitive_data(
        &self,
        Parameters(p): Parameters<DataIdParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<SensitiveRead> {
        let who = caller(&parts)?;
        self.store.count_call();
        let record = self
            .store
            .0
            .records
            .get(&p.data_id)
            .cloned()
            .ok_or_else(|| format!("no record with id `{}`", clip(&p.data_id)))?;
        Ok(Json(SensitiveRead {
            record,
            accessed_by: who.name().to_owned(),
        }))
    }

    #[tool(
        description = "Change a user's name, email or department (bearer token with write:data)."
    )]
    async fn update_user_data(
        &self,
        Parameters(p): Parameters<UpdateUserParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<Updated> {
        let who = caller(&parts)?;
        self.store.count_call();
        let name = p
            .data
            .name
            .as_deref()
            .map(|v| check_text("name", v))
            .transpose()?;
        let email = p.data.email.as_deref().map(check_email).transpose()?;
        let department = p
            .data
            .department
            .as_deref()
            .map(|v| check_text("department", v))
            .transpose()?;
        let mut users = write(&self.store.0.users);
        let user = users
            .get_mut(&p.user_id)
            .ok_or_else(|| format!("no user with id `{}`", clip(&p.user_id)))?;
        let mut changed = Vec::new();
        for (field, value, slot) in [
            ("name", name, &mut user.name),
            ("email", email, &mut user.email),
            ("department", department, &mut user.department),
        ] {
            if let Some(v) = value {
                *slot = v;
                changed.push(field.to_owned());
            }
        }
        if changed.is_empty() {
            return Err("`data` changes nothing: give name, email or department".into());
        }
        Ok(Json(Updated {
            status: "success".into(),
            user_id: user.id.clone(),
            changed,
            updated_by: who.name().to_owned(),
            user: user.clone(),
        }))
    }

    #[tool(description = "Get the caller's own profile (bearer token with read:profile).")]
    async fn get_my_profile(&self, Extension(parts): Extension<Parts>) -> ToolResult<MyProfile> {
        let who = caller(&parts)?;
        self.store.count_call();
        // Profiles are kept by identity (issuer, user or client, name):
        // a client named like a user never reads that user's profile.
        let profile = read(&self.store.0.profiles)
            .get(who.identity_key())
            .cloned()
            .unwrap_or_else(|| default_profile(who.name()));
        Ok(Json(MyProfile {
            profile,
            caller: describe(who),
        }))
    }

    #[tool(description = "Update the caller's own profile (bearer token with write:profile).")]
    async fn update_my_profile(
        &self,
        Parameters(p): Parameters<UpdateProfileParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<MyProfile> {
        let who = caller(&parts)?;
        self.store.count_call();
        let display_name = p
            .data
            .display_name
            .as_deref()
            .map(|v| check_text("display_name", v))
            .transpose()?;
        let bio = p
            .data
            .bio
            .as_deref()
            .map(|v| check_text("bio", v))
            .transpose()?;
        let timezone = p
            .data
            .timezone
            .as_deref()
            .map(|v| check_text("timezone", v))
            .transpose()?;
        if display_name.is_none() && bio.is_none() && timezone.is_none() {
            return Err("`data` changes nothing: give display_name, bio or timezone".into());
        }
        let mut profiles = write(&self.store.0.profiles);
        if !profiles.contains_key(who.identity_key()) && profiles.len() >= MAX_USERS {
            return Err("too many profiles in this demo store".into());
        }
        let profile = profiles
            .entry(who.identity_key().to_owned())
            .or_insert_with(|| default_profile(who.name()));
        if let Some(v) = display_name {
            profile.display_name = v;
        }
        if let Some(v) = bio {
            profile.bio = v;
        }
        if let Some(v) = timezone {
            profile.timezone = v;
        }
        profile.updated_at = now();
        Ok(Json(MyProfile {
            profile: profile.clone(),
            caller: describe(who),
        }))
    }

    #[tool(description = "Create an admin user (API key); records who created it.")]
    async fn create_admin_user(
        &self,
        Parameters(p): Parameters<CreateAdminParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<Created> {
        let who = caller(&parts)?;
        self.store.count_call();
        let email = check_email(&p.email)?;
        let name = check_text("name", &p.name)?;
        let mut users = write(&self.store.0.users);
        if users.len() >= MAX_USERS {
            return Err(format!("the demo store is full ({MAX_USERS} users)"));
        }
        if users.values().any(|u| u.email.eq_ignore_ascii_case(&email)) {
            return Err(format!(
                "a user with email `{}` already exists",
                clip(&email)
            ));
        }
        let id = format!(
            "user_{:03}",
            self.store.0.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let user = User {
            id: id.clone(),
            name,
            email,
            role: "admin".into(),
            department: "Administration".into(),
            created_by: who.name().to_owned(),
            created_at: now(),
        };
        users.insert(id.clone(), user.clone());
        Ok(Json(Created {
            status: "success".into(),
            user_id: id,
            created_by: user.created_by.clone(),
            user,
        }))
    }

    #[tool(description = "Delete a user (API key, or bearer token with admin:write).")]
    async fn delete_user(
        &self,
        Parameters(p): Parameters<DeleteUserParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<Deleted> {
        let who = caller(&parts)?;
        self.store.count_call();
        let reason = check_text("reason", &p.reason)?;
        write(&self.store.0.users)
            .remove(&p.user_id)
            .ok_or_else(|| format!("no user with id `{}`", clip(&p.user_id)))?;
        write(&self.store.0.private).remove(&p.user_id);
        Ok(Json(Deleted {
            status: "success".into(),
            deleted: p.user_id,
            reason,
            deleted_by: who.name().to_owned(),
        }))
    }

    /// The 2026-07-28 way to ask before acting (MRTR, SEP-2322): the first
    /// call answers `input_required` with an elicitation and its own
    /// `requestState`; the client retries with the answer and the state.
    /// The state is the server's plain text: `HandleBindingLayer` seals it
    /// to the caller, this call and its arguments, for a few minutes.
    #[tool(
        description = "Delete a user after the caller confirms (API key, or bearer token with admin:write)."
    )]
    async fn confirm_delete_user(
        &self,
        Parameters(p): Parameters<DeleteUserParams>,
        Extension(parts): Extension<Parts>,
        RequestState(state): RequestState,
        InputResponses(answers): InputResponses,
    ) -> Result<CallToolResponse, String> {
        let who = caller(&parts)?;
        let expected = format!("confirm-delete:{}", p.user_id);
        let confirmed = answers
            .as_ref()
            .and_then(|a| a.get("confirm"))
            .is_some_and(|a| a["action"] == "accept" && a["content"]["confirm"] == true);
        if state.as_deref() != Some(expected.as_str()) || !confirmed {
            let ask: InputRequest = serde_json::from_value(serde_json::json!({
                "method": "elicitation/create",
                "params": {
                    "mode": "form",
                    "message": format!("Delete user `{}`?", clip(&p.user_id)),
                    "requestedSchema": {
                        "type": "object",
                        "properties": {"confirm": {"type": "boolean"}},
                        "required": ["confirm"]
                    }
                }
            }))
            .map_err(|e| e.to_string())?;
            let asks = [("confirm".to_owned(), ask)].into_iter().collect();
            return Ok(InputRequiredResult::new(Some(asks), Some(expected)).into());
        }
        self.store.count_call();
        let reason = check_text("reason", &p.reason)?;
        write(&self.store.0.users)
            .remove(&p.user_id)
            .ok_or_else(|| format!("no user with id `{}`", clip(&p.user_id)))?;
        write(&self.store.0.private).remove(&p.user_id);
        let deleted = serde_json::json!({
            "status": "success",
            "deleted": p.user_id,
            "reason": reason,
            "deleted_by": who.subject(),
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(deleted.to_string())]).into())
    }

    /// The 2026-07-28 way to run long work (the tasks extension): the call
    /// answers a task at once and the client polls `tasks/get` for the
    /// result. The task id leaves sealed to the caller
    /// (`HandleBindingLayer`); see [`tasks`].
    #[tool(
        description = "Build a report of the users by department; runs as a task for a client that declares the tasks extension (any authenticated caller)."
    )]
    async fn build_report(
        &self,
        Parameters(p): Parameters<ReportParams>,
        Extension(parts): Extension<Parts>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, String> {
        let who = caller(&parts)?;
        self.store.count_call();
        let title = check_text("title", &p.title)?;
        let as_task = (context.client_capabilities()).is_some_and(|c| c.supports_tasks());
        Ok(tasks::build_report(
            &self.store,
            who.name().to_owned(),
            title,
            as_task,
        ))
    }

    #[tool(description = "List all users (API key).")]
    async fn list_all_users(&self, Extension(parts): Extension<Parts>) -> ToolResult<UserList> {
        caller(&parts)?;
        self.store.count_call();
        let users: Vec<User> = read(&self.store.0.users).values().cloned().collect();
        Ok(Json(UserList {
            total: users.len(),
            users,
        }))
    }

    #[tool(description = "Get a user by id (API key).")]
    async fn get_user_by_id(
        &self,
        Parameters(p): Parameters<UserIdParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<User> {
        caller(&parts)?;
        self.store.count_call();
        self.store.user(&p.user_id).map(Json)
    }

    #[tool(description = "An operation any authenticated caller may run.")]
    async fn protected_operation(
        &self,
        Parameters(p): Parameters<OperationParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<OperationResult> {
        let who = caller(&parts)?;
        self.store.count_call();
        operation("protected_operation", &p.param, who)
    }

    #[tool(
        description = "An operation any authenticated caller may run, within a per-caller quota."
    )]
    async fn rate_limited_operation(
        &self,
        Parameters(p): Parameters<OperationParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<OperationResult> {
        let who = caller(&parts)?;
        self.store.count_call();
        operation("rate_limited_operation", &p.param, who)
    }

    /// A tool the policy gives no rule (say, added by a teammate after the
    /// rules were written): the unmatched tool rule, `deny`, keeps it from
    /// every caller and out of every listing, and the list filter reports
    /// it to the operator once.
    #[tool(description = "An experimental operation that no rule names yet: nobody may call it.")]
    async fn experimental_operation(
        &self,
        Parameters(p): Parameters<OperationParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<OperationResult> {
        let who = caller(&parts)?;
        self.store.count_call();
        operation("experimental_operation", &p.param, who)
    }
}

fn default_profile(subject: &str) -> Profile {
    Profile {
        subject: subject.to_owned(),
        display_name: subject.to_owned(),
        bio: String::new(),
        timezone: "UTC".into(),
        updated_at: 0,
    }
}

fn operation(name: &str, param: &str, who: &Principal) -> ToolResult<OperationResult> {
    Ok(Json(OperationResult {
        status: "success".into(),
        operation: name.into(),
        param: check_text("param", param)?,
        performed_by: who.name().to_owned(),
        performed_at: now(),
    }))
}
