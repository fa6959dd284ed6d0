//! FOR THE CONFORMANCE COMPARISON ONLY (`scripts/conformance`): the fixture
//! tools and the prompt the official MCP conformance suite calls in its
//! 2026-07-28 multi-round-trip (MRTR, SEP-2322) and tasks (SEP-2663)
//! scenarios, served with `CONFORMANCE_FIXTURES=1` and never otherwise.
//!
//! They exist so that those scenarios run through the layers with real
//! `requestState` values and real task ids: the comparison then shows that
//! `HandleBindingLayer` seals them without changing what the suite sees.
//! The names and behaviours are the suite's (each scenario's "Server
//! Implementation Requirements"); the rules for them are in
//! `tests/conformance/fixtures-policy.toml`, which the comparison adds to
//! the example's policy.
//!
//! The server's own `requestState` values carry an HMAC under a key drawn
//! at start, as the suite requires of a server on its own (the bare side
//! of the comparison has no layer to seal them). Every wait is bounded:
//! `slow_compute` sleeps at most [`MAX_SECONDS`], tasks live
//! [`TASK_TTL_MS`](super::super::tasks::TASK_TTL_MS).

use std::{sync::OnceLock, time::Duration};

use hmac::{Hmac, Mac};
use rmcp::{
    handler::server::{
        tool::{InputResponses, RequestState},
        wrapper::Parameters,
    },
    model::{
        CallToolResponse, CallToolResult, ClientCapabilities, ContentBlock, CreateTaskResult,
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, InputRequest,
        InputRequiredResult, ListPromptsResult, Prompt, PromptMessage, Role,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    task_manager::{TaskExit, TaskOptions},
    tool, tool_router, ErrorData, RoleServer,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{super::tasks::TASK_TTL_MS, McpServer};

/// The longest `slow_compute` sleeps, whatever it is asked.
pub const MAX_SECONDS: u64 = 120;
/// The fixture prompt.
pub const PROMPT: &str = "test_input_required_result_prompt";
/// The fixture tool names, for the policy and the tests.
pub const TOOLS: [&str; 15] = [
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "greet",
    "slow_compute",
    "failing_job",
    "protocol_error_job",
    "confirm_delete",
    "multi_input",
    "test_tool_with_task",
];

// ───────────────────────────── requestState ─────────────────────────────

fn state_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        key
    })
}

fn mac(payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(state_key()).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    mac
}

/// `payload.<hex HMAC>`: the server's state, integrity-protected.
fn seal(payload: &str) -> String {
    let tag = mac(payload).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("{payload}.{hex}")
}

/// The payload of a state [`seal`] made, or `None` for anything else.
fn open(state: &str) -> Option<&str> {
    let (payload, hex) = state.rsplit_once('.')?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tag: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    mac(payload).verify_slice(&tag).ok()?;
    Some(payload)
}

/// Whether the state `expected` was echoed: `Ok(false)` when no state came
/// back, an error (-32602) for a state that fails verification or is
/// another's.
fn check_state(state: Option<&str>, expected: &str) -> Result<bool, ErrorData> {
    match state {
        None => Ok(false),
        Some(state) => match open(state) {
            Some(payload) if payload == expected => Ok(true),
            _ => Err(ErrorData::invalid_params(
                "requestState failed its integrity check",
                None,
            )),
        },
    }
}

// ───────────────────────────── input requests ─────────────────────────────

fn request(value: Value) -> Result<InputRequest, ErrorData> {
    serde_json::from_value(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

fn elicit(message: &str, field: &str, kind: &str) -> Result<InputRequest, ErrorData> {
    request(json!({
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {field: {"type": kind}},
                "required": [field]
            }
        }
    }))
}

fn sample(text: &str, max_tokens: u32) -> Result<InputRequest, ErrorData> {
    request(json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
            "maxTokens": max_tokens
        }
    }))
}

fn list_roots() -> Result<InputRequest, ErrorData> {
    request(json!({"method": "roots/list", "params": {}}))
}

fn ask(
    asks: Vec<(&str, InputRequest)>,
    state: Option<String>,
) -> Result<CallToolResponse, ErrorData> {
    let asks = asks.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Ok(InputRequiredResult::new(Some(asks), state).into())
}

/// The answer under `key`, when it is an object (an accepted elicitation,
/// a sampling result, a roots list).
fn answer<'a>(answers: Option<&'a rmcp::model::InputResponses>, key: &str) -> Option<&'a Value> {
    answers?.get(key).filter(|a| a.is_object())
}

/// A field of an accepted elicitation's content, as text (bounded).
fn accepted(answer: Option<&Value>, field: &str) -> Option<String> {
    let answer = answer?;
    if answer["action"] != "accept" {
        return None;
    }
    let value = &answer["content"][field];
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    Some(text.chars().take(200).collect())
}

fn text(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(text.into())]).into()
}

// ───────────────────────────── tasks ─────────────────────────────

fn declares_tasks(context: &RequestContext<RoleServer>) -> bool {
    (context.client_capabilities()).is_some_and(|c| c.supports_tasks())
}

/// -32021 for a tool that runs only as a task, asked by a client that did
/// not declare the tasks extension.
fn tasks_required() -> ErrorData {
    ErrorData::missing_required_client_capability(
        ClientCapabilities::builder().enable_tasks().build(),
    )
}

fn options() -> TaskOptions {
    TaskOptions::new()
        .with_ttl_ms(TASK_TTL_MS)
        .with_poll_interval_ms(100)
}

/// Parameters of `greet`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GreetParams {
    /// Whom to greet.
    pub name: String,
}

/// Parameters of `slow_compute`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ComputeParams {
    /// How long to work, in seconds (at most [`MAX_SECONDS`]).
    pub seconds: u64,
    /// A label echoed in the result.
    #[serde(default)]
    pub label: Option<String>,
}

/// Parameters of `confirm_delete`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FileParams {
    /// The file to delete.
    pub filename: String,
}

#[tool_router(router = conformance_tools, vis = "pub(in super::super)")]
impl McpServer {
    #[tool(
        description = "Conformance fixture (MRTR): asks for a name by elicitation, then greets."
    )]
    async fn test_input_required_result_elicitation(
        &self,
        InputResponses(answers): InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        match accepted(answer(answers.as_ref(), "user_name"), "name") {
            Some(name) => Ok(text(format!("Hello, {name}!"))),
            None => ask(
                vec![("user_name", elicit("What is your name?", "name", "string")?)],
                None,
            ),
        }
    }

    #[tool(description = "Conformance fixture (MRTR): asks a question by sampling.")]
    async fn test_input_required_result_sampling(
        &self,
        InputResponses(answers): InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        match answer(answers.as_ref(), "capital_question") {
            Some(a) => Ok(text(format!(
                "The model answered: {}",
                a["content"]["text"].as_str().unwrap_or("(no text)")
            ))),
            None => ask(
                vec![(
                    "capital_question",
                    sample("What is the capital of France?", 100)?,
                )],
                None,
            ),
        }
    }

    #[tool(description = "Conformance fixture (MRTR): asks for the client's roots.")]
    async fn test_input_required_result_list_roots(
        &self,
        InputResponses(answers): InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        match answer(answers.as_ref(), "client_roots") {
            Some(a) => {
                let roots: Vec<&str> = (a["roots"].as_array().into_iter().flatten())
                    .filter_map(|r| r["uri"].as_str())
                    .take(100)
                    .collect();
                Ok(text(format!("The client's roots: {}", roots.join(", "))))
            }
            None => ask(vec![("client_roots", list_roots()?)], None),
        }
    }

    #[tool(description = "Conformance fixture (MRTR): a confirmation with requestState.")]
    async fn test_input_required_result_request_state(
        &self,
        InputResponses(answers): InputResponses,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        let echoed = check_state(state.as_deref(), "request-state")?;
        if echoed && answer(answers.as_ref(), "confirm").is_some() {
            return Ok(text("state-ok: the requestState was verified"));
        }
        ask(
            vec![("confirm", elicit("Please confirm", "ok", "boolean")?)],
            Some(seal("request-state")),
        )
    }

    #[tool(description = "Conformance fixture (MRTR): elicitation, sampling and roots at once.")]
    async fn test_input_required_result_multiple_inputs(
        &self,
        InputResponses(answers): InputResponses,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        let echoed = check_state(state.as_deref(), "multiple-inputs")?;
        let keys = ["user_name", "greeting", "client_roots"];
        if echoed && keys.iter().all(|k| answer(answers.as_ref(), k).is_some()) {
            return Ok(text("All inputs received"));
        }
        ask(
            vec![
                ("user_name", elicit("What is your name?", "name", "string")?),
                ("greeting", sample("Generate a greeting", 50)?),
                ("client_roots", list_roots()?),
            ],
            Some(seal("multiple-inputs")),
        )
    }

    #[tool(description = "Conformance fixture (MRTR): two rounds of questions, then a result.")]
    async fn test_input_required_result_multi_round(
        &self,
        InputResponses(answers): InputResponses,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        let payload = match state.as_deref() {
            None => None,
            Some(s) => Some(open(s).ok_or_else(|| {
                ErrorData::invalid_params("requestState failed its integrity check", None)
            })?),
        };
        if let Some(name) = payload.and_then(|p| p.strip_prefix("round-2:")) {
            if let Some(color) = accepted(answer(answers.as_ref(), "step2"), "color") {
                return Ok(text(format!("{name} likes {color}")));
            }
            return ask(
                vec![(
                    "step2",
                    elicit("Step 2: What is your favorite color?", "color", "string")?,
                )],
                Some(seal(&format!("round-2:{name}"))),
            );
        }
        if payload == Some("round-1") {
            if let Some(name) = accepted(answer(answers.as_ref(), "step1"), "name") {
                return ask(
                    vec![(
                        "step2",
                        elicit("Step 2: What is your favorite color?", "color", "string")?,
                    )],
                    Some(seal(&format!("round-2:{name}"))),
                );
            }
        }
        ask(
            vec![(
                "step1",
                elicit("Step 1: What is your name?", "name", "string")?,
            )],
            Some(seal("round-1")),
        )
    }

    #[tool(description = "Conformance fixture (MRTR): refuses a tampered requestState.")]
    async fn test_input_required_result_tampered_state(
        &self,
        InputResponses(answers): InputResponses,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        let echoed = check_state(state.as_deref(), "tampered-state")?;
        if echoed && answer(answers.as_ref(), "confirm").is_some() {
            return Ok(text("state verified"));
        }
        ask(
            vec![("confirm", elicit("Please confirm", "ok", "boolean")?)],
            Some(seal("tampered-state")),
        )
    }

    #[tool(
        description = "Conformance fixture (MRTR): asks only for what the client declared it can answer."
    )]
    async fn test_input_required_result_capabilities(
        &self,
        InputResponses(answers): InputResponses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if answers.as_ref().is_some_and(|a| !a.is_empty()) {
            return Ok(text("inputs received"));
        }
        let caps = context.client_capabilities().unwrap_or_default();
        let mut asks = Vec::new();
        if caps.elicitation.is_some() {
            asks.push(("user_name", elicit("What is your name?", "name", "string")?));
        }
        if caps.sampling.is_some() {
            asks.push(("greeting", sample("Generate a greeting", 50)?));
        }
        if caps.roots.is_some() {
            asks.push(("client_roots", list_roots()?));
        }
        if asks.is_empty() {
            return Ok(text("the client declared nothing to ask it"));
        }
        ask(asks, None)
    }

    #[tool(description = "Conformance fixture (tasks): greets at once, never as a task.")]
    async fn greet(&self, Parameters(p): Parameters<GreetParams>) -> CallToolResponse {
        let name: String = p.name.chars().take(200).collect();
        text(format!("Hello, {name}!"))
    }

    #[tool(
        description = "Conformance fixture (tasks): works `seconds` seconds, as a task when the client declares the extension; cancellable."
    )]
    async fn slow_compute(
        &self,
        Parameters(p): Parameters<ComputeParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let seconds = p.seconds.min(MAX_SECONDS);
        let label: String = p.label.unwrap_or_default().chars().take(200).collect();
        let done = move || {
            CallToolResult::success(vec![ContentBlock::text(format!(
                "computed {label} in {seconds} s"
            ))])
        };
        if !declares_tasks(&context) {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            return done().into();
        }
        let task = self.store.0.tasks.spawn(options(), move |ctx| {
            Box::pin(async move {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(seconds)) => Ok(done()),
                    () = ctx.cancelled() => Err(TaskExit::Cancelled),
                }
            })
        });
        CreateTaskResult::new(task).into()
    }

    #[tool(
        description = "Conformance fixture (tasks): runs only as a task and ends in a tool error."
    )]
    async fn failing_job(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declares_tasks(&context) {
            return Err(tasks_required());
        }
        let task = self.store.0.tasks.spawn(options(), |ctx| {
            Box::pin(async move {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => Ok(CallToolResult::error(
                        vec![ContentBlock::text("the job failed, as it always does")],
                    )),
                    () = ctx.cancelled() => Err(TaskExit::Cancelled),
                }
            })
        });
        Ok(CreateTaskResult::new(task).into())
    }

    #[tool(description = "Conformance fixture (tasks): a task that ends in a protocol error.")]
    async fn protocol_error_job(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declares_tasks(&context) {
            return Err(tasks_required());
        }
        let task = self.store.0.tasks.spawn(options(), |_ctx| {
            Box::pin(async move {
                Err(TaskExit::Error(ErrorData::internal_error(
                    "the job broke down",
                    None,
                )))
            })
        });
        Ok(CreateTaskResult::new(task).into())
    }

    #[tool(
        description = "Conformance fixture (tasks): a task that asks for a confirmation (elicitation) and then completes."
    )]
    async fn confirm_delete(
        &self,
        Parameters(p): Parameters<FileParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declares_tasks(&context) {
            return Err(tasks_required());
        }
        let filename: String = p.filename.chars().take(200).collect();
        let question = elicit(&format!("Delete {filename}?"), "confirm", "boolean")?;
        let task = self.store.0.tasks.spawn(options(), move |ctx| {
            Box::pin(async move {
                let reply = ctx.request_input("confirm", question).await?;
                let verdict = if accepted(Some(&reply), "confirm").as_deref() == Some("true") {
                    "deleted"
                } else {
                    "kept"
                };
                Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                    "{filename} {verdict}"
                ))]))
            })
        });
        Ok(CreateTaskResult::new(task).into())
    }

    #[tool(description = "Conformance fixture (tasks): a task that asks two questions at once.")]
    async fn multi_input(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declares_tasks(&context) {
            return Err(tasks_required());
        }
        let first = elicit("First: your name?", "name", "string")?;
        let second = elicit("Second: your name?", "name", "string")?;
        let task = self.store.0.tasks.spawn(options(), move |ctx| {
            Box::pin(async move {
                let (a, b) = tokio::try_join!(
                    ctx.request_input("first", first),
                    ctx.request_input("second", second)
                )?;
                let names = [accepted(Some(&a), "name"), accepted(Some(&b), "name")];
                let names: Vec<String> = names.into_iter().flatten().collect();
                Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                    "received {}",
                    names.join(" and ")
                ))]))
            })
        });
        Ok(CreateTaskResult::new(task).into())
    }

    #[tool(
        description = "Conformance fixture (MRTR then tasks): asks for a name, then runs as a task that greets it."
    )]
    async fn test_tool_with_task(
        &self,
        InputResponses(answers): InputResponses,
        RequestState(state): RequestState,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declares_tasks(&context) {
            return Err(tasks_required());
        }
        let echoed = check_state(state.as_deref(), "tool-with-task")?;
        let name = accepted(answer(answers.as_ref(), "user_name"), "name");
        let Some(name) = name.filter(|_| echoed) else {
            return ask(
                vec![("user_name", elicit("What is your name?", "name", "string")?)],
                Some(seal("tool-with-task")),
            );
        };
        let task = self.store.0.tasks.spawn(options(), move |_ctx| {
            Box::pin(async move {
                Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                    "Hello, {name}, from a task"
                ))]))
            })
        });
        Ok(CreateTaskResult::new(task).into())
    }
}

/// The fixture prompt's listing.
pub(in super::super) fn prompts() -> ListPromptsResult {
    ListPromptsResult::with_all_items(vec![Prompt::new(
        PROMPT,
        Some("Conformance fixture (MRTR): asks for context by elicitation, then answers."),
        None,
    )])
}

/// `prompts/get` of the fixture prompt: asks for context first (MRTR).
///
/// # Errors
///
/// -32602 for any other prompt name.
pub(in super::super) fn get_prompt(
    request: &GetPromptRequestParams,
) -> Result<GetPromptResponse, ErrorData> {
    if request.name != PROMPT {
        return Err(ErrorData::invalid_params("prompt not found", None));
    }
    let answers = request.input_responses.as_ref();
    match accepted(answer(answers, "user_context"), "context") {
        Some(context) => Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Answer with this context: {context}"),
        )])
        .into()),
        None => {
            let asks = [(
                "user_context".to_owned(),
                elicit("What context should the prompt use?", "context", "string")?,
            )];
            Ok(InputRequiredResult::new(Some(asks.into_iter().collect()), None).into())
        }
    }
}
