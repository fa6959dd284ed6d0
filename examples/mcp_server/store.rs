//! The in-memory store behind the tools and resources: a few users, their
//! private data, profiles and sensitive records.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use rmcp::{
    schemars::{self, JsonSchema},
    task_manager::TaskManager,
    transport::streamable_http_server::session::local::LocalSessionManager,
};
use serde::Serialize;

/// At most this many users in the store (it is in memory, and callers
/// create users).
pub(super) const MAX_USERS: usize = 10_000;

/// Longest accepted free-text field.
const MAX_FIELD_LEN: usize = 256;

/// A user of the (imaginary) product this server fronts.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct User {
    /// Stable id, `user_001`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
    /// Department.
    pub department: String,
    /// Who created the user: `seed`, or the creating principal's subject.
    pub created_by: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

/// A user's private data, served as `user://{user_id}/private`.
#[derive(Clone, Debug, Serialize)]
pub(super) struct PrivateData {
    phone: String,
    home_address: String,
    date_of_birth: String,
    emergency_contact: String,
}

/// A sensitive record, read by `read_sensitive_data`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SensitiveRecord {
    /// Record id.
    pub data_id: String,
    /// `confidential` or `restricted`.
    pub classification: String,
    /// Owning team.
    pub owner: String,
    /// The content.
    pub content: String,
}

/// A caller's own profile, keyed by the principal's subject.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Profile {
    /// The principal's subject.
    pub subject: String,
    /// Display name.
    pub display_name: String,
    /// Short biography.
    pub bio: String,
    /// IANA time zone.
    pub timezone: String,
    /// Last update, seconds since the Unix epoch (0: never updated).
    pub updated_at: u64,
}

/// The in-memory store behind the tools and resources. Clones share it.
#[derive(Clone)]
pub struct Store(pub(super) Arc<StoreInner>);

/// What a [`Store`] shares between its clones.
pub(super) struct StoreInner {
    pub(super) users: RwLock<BTreeMap<String, User>>,
    pub(super) private: RwLock<HashMap<String, PrivateData>>,
    pub(super) profiles: RwLock<HashMap<String, Profile>>,
    pub(super) records: BTreeMap<String, SensitiveRecord>,
    pub(super) next_id: AtomicU64,
    pub(super) calls: AtomicU64,
    pub(super) started: Instant,
    pub(super) sessions: Arc<LocalSessionManager>,
    /// The tasks (`build_report`), shared by every session and, stateless,
    /// every request: a task outlives the call that created it.
    pub(super) tasks: TaskManager,
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// A store with a few users, profiles and records.
    pub fn seeded(sessions: Arc<LocalSessionManager>) -> Self {
        let created_at = now();
        let seed_users = [
            (
                "user_001",
                "Alice Martin",
                "alice@example.com",
                "admin",
                "Engineering",
                "+1-555-0101",
                "12 Elm Street, Springfield",
                "1985-04-12",
                "Tom Martin +1-555-0199",
            ),
            (
                "user_002",
                "Bob Chen",
                "bob@example.com",
                "member",
                "Sales",
                "+1-555-0102",
                "48 Oak Avenue, Riverton",
                "1990-09-30",
                "Lin Chen +1-555-0198",
            ),
            (
                "user_003",
                "Carol Diaz",
                "carol@example.com",
                "member",
                "Finance",
                "+1-555-0103",
                "7 Pine Road, Lakeside",
                "1988-01-22",
                "Ana Diaz +1-555-0197",
            ),
        ];
        let mut users = BTreeMap::new();
        let mut private = HashMap::new();
        for (id, name, email, role, department, phone, address, dob, contact) in seed_users {
            users.insert(
                id.to_owned(),
                User {
                    id: id.into(),
                    name: name.into(),
                    email: email.into(),
                    role: role.into(),
                    department: department.into(),
                    created_by: "seed".into(),
                    created_at,
                },
            );
            private.insert(
                id.to_owned(),
                PrivateData {
                    phone: phone.into(),
                    home_address: address.into(),
                    date_of_birth: dob.into(),
                    emergency_contact: contact.into(),
                },
            );
        }
        let records = [
            (
                "fin-2025-q3",
                "confidential",
                "finance",
                "Q3 revenue 4.2M USD, margin 31%, two accounts past due",
            ),
            (
                "hr-salary-bands",
                "restricted",
                "people",
                "Band L3 95-120k, L4 120-150k, L5 150-190k",
            ),
            (
                "sec-incident-17",
                "restricted",
                "security",
                "Phishing attempt on 2025-10-02 contained; one password reset",
            ),
        ]
        .into_iter()
        .map(|(id, class, owner, content)| {
            (
                id.to_owned(),
                SensitiveRecord {
                    data_id: id.into(),
                    classification: class.into(),
                    owner: owner.into(),
                    content: content.into(),
                },
            )
        })
        .collect();
        Self(Arc::new(StoreInner {
            next_id: AtomicU64::new(users.len() as u64 + 1),
            users: RwLock::new(users),
            private: RwLock::new(private),
            profiles: RwLock::new(HashMap::new()),
            records,
            calls: AtomicU64::new(0),
            started: Instant::now(),
            sessions,
            tasks: TaskManager::new(),
        }))
    }

    pub(super) fn count_call(&self) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn user(&self, id: &str) -> Result<User, String> {
        read(&self.0.users)
            .get(id)
            .cloned()
            .ok_or_else(|| format!("no user with id `{}`", clip(id)))
    }
}

pub(super) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shortens caller-supplied text before echoing it in an error.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(super) fn check_text(field: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if value.chars().count() > MAX_FIELD_LEN {
        return Err(format!(
            "`{field}` is longer than {MAX_FIELD_LEN} characters"
        ));
    }
    Ok(value.to_owned())
}

pub(super) fn check_email(value: &str) -> Result<String, String> {
    let value = check_text("email", value)?;
    match value.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(value),
        _ => Err("`email` is not an e-mail address".into()),
    }
}
