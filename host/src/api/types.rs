//! The JSON the API sends and accepts, shared with [`crate::client`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::queue::{AttemptError, ConfigEntry, Job, JobState, Module, NewToken, Tenant, TokenInfo};

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The caller's `job_id`, or a generated UUID.
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub state: JobState,
    pub priority: i16,
    pub params: Value,
    /// Attempts started so far.
    pub attempt: i32,
    pub max_attempts: i32,
    /// When the job may run next.
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When the job completed, was discarded or cancelled.
    pub finalized_at: Option<DateTime<Utc>>,
    /// When a running job was asked to stop.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// What the job returned, once completed.
    pub result: Option<Value>,
    /// The progress the job last reported: `{"percent", "message", "at"}`.
    pub progress: Option<Value>,
    /// One entry per failed attempt, oldest first.
    pub errors: Vec<AttemptError>,
}

impl TryFrom<Job> for JobView {
    type Error = serde_json::Error;

    fn try_from(job: Job) -> Result<Self, Self::Error> {
        Ok(Self {
            state: job.state(),
            errors: serde_json::from_value(job.errors)?,
            id: job.id,
            kind: job.kind,
            queue: job.queue,
            priority: job.priority,
            params: job.params,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            created_at: job.created_at,
            attempted_at: job.attempted_at,
            finalized_at: job.finalized_at,
            cancel_requested_at: job.cancel_requested_at,
            result: job.result,
            progress: job.progress,
        })
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// A kind with a deployed module.
    #[schema(min_length = 1, max_length = 128)]
    pub kind: String,
    /// Any JSON; `{}` when absent.
    #[serde(default = "empty_object")]
    pub params: Value,
    /// The caller's id for the job; enqueueing it again returns the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 255)]
    pub job_id: Option<String>,
    /// RFC 3339 with an offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub run_at: Option<String>,
    /// Seconds, or text such as "10m"; instead of `run_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = delay_schema)]
    pub delay: Option<Value>,
    /// Overrides the module's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_attempts: Option<i64>,
    /// 0 runs first, 9 last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 9)]
    pub priority: Option<i64>,
    /// `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64)]
    pub queue: Option<String>,
}

/// `POST /v1/job-batches`: jobs enqueued together, all or none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub jobs: Vec<EnqueueRequest>,
}

/// What a batch enqueue did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchReport {
    /// Jobs created.
    pub created: u64,
    /// Jobs whose `job_id` existed already; they were left as they were.
    pub existing: u64,
    /// Each job's id, in the order given.
    pub ids: Vec<String>,
}

/// `delay`: a number of seconds or a duration in text.
fn delay_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String))
            .build(),
    )
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A deployed module version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModuleView {
    pub kind: String,
    pub version: i32,
    /// Lowercase hex SHA-256 of the component.
    pub digest: String,
    pub size_bytes: i32,
    pub max_attempts: i32,
    pub timeout_ms: i32,
    pub memory_limit_bytes: i64,
    pub allowed_hosts: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Module> for ModuleView {
    fn from(m: Module) -> Self {
        Self {
            kind: m.kind,
            version: m.version,
            digest: m.digest,
            size_bytes: m.size_bytes,
            max_attempts: m.max_attempts,
            timeout_ms: m.timeout_ms,
            memory_limit_bytes: m.memory_limit_bytes,
            allowed_hosts: m.allowed_hosts,
            created_at: m.created_at,
        }
    }
}

/// The body of `PUT /v1/modules/{kind}`: a component's bytes.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/wasm")]
pub struct ComponentUpload(pub Vec<u8>);

/// `GET /v1/modules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModuleList {
    pub modules: Vec<ModuleView>,
}

/// `PUT /v1/config/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    pub value: String,
    #[serde(default)]
    pub secret: bool,
}

/// A config entry; a secret's value is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub secret: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<ConfigEntry> for ConfigView {
    fn from(e: ConfigEntry) -> Self {
        Self {
            name: e.name,
            value: e.value,
            secret: e.secret,
            updated_at: e.updated_at,
        }
    }
}

/// `GET /v1/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigList {
    pub entries: Vec<ConfigView>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` with a 503.
    pub status: String,
    /// `unreachable` when the database does not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// `DELETE /v1/jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PruneReport {
    pub deleted: u64,
}

/// A tenant as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub name: String,
    /// Most of its jobs running at once; absent for no limit.
    pub max_running: Option<i32>,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            name: t.name,
            max_running: t.max_running,
            disabled: t.disabled_at.is_some(),
            disabled_at: t.disabled_at,
            created_at: t.created_at,
        }
    }
}

/// `GET /admin/v1/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

/// `POST /admin/v1/tenants`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreateRequest {
    /// 1 to 63 of `a-z 0-9 _ -`, starting with a letter or digit.
    #[schema(min_length = 1, max_length = 63)]
    pub name: String,
    /// Most of its jobs running at once; absent for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub max_running: Option<i64>,
}

/// A new tenant and its first token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantCreated {
    pub tenant: TenantView,
    pub token: TokenCreated,
}

/// `PATCH /admin/v1/tenants/{name}`: each field present changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// A number sets the limit, `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100_000)]
    pub max_running: Option<Option<i64>>,
}

/// Tells a field given as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// What the token is for; at most 128 characters.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub label: String,
}

/// A token; its secret is shown only when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        Self {
            id: t.id,
            label: t.label,
            created_at: t.created_at,
        }
    }
}

/// A token just made: `token` is what to send as `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub token: String,
}

impl From<NewToken> for TokenCreated {
    fn from(t: NewToken) -> Self {
        Self {
            id: t.info.id,
            label: t.info.label,
            created_at: t.info.created_at,
            token: t.token,
        }
    }
}

/// `GET /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}
