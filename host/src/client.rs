//! A typed client of the HTTP API. The CLI and the demo use it; so can
//! Rust applications that enqueue over HTTP.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::api::types::{
    BatchReport, BatchRequest, ConfigList, ConfigRequest, ConfigView, EnqueueRequest, JobPage,
    JobView, ModuleList, ModuleView, PruneReport, TenantCreateRequest, TenantCreated, TenantList,
    TenantUpdateRequest, TenantView, TokenCreated, TokenList, TokenRequest,
};
use crate::api::{ErrorBody, percent_encode};
use crate::queue::JobState;

/// The API's address unless configured.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8640";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error.
    #[error("{} ({status}){}", body.message, field_suffix(body))]
    Api { status: u16, body: ErrorBody },
    /// Nothing answered at the API's address.
    #[error(
        "cannot reach the Spool API at {url}: is `spool serve` running there? (--url or SPOOL_URL)"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request failed on the way, or the answer was unreadable.
    #[error("request to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// `wait` gave up.
    #[error(
        "job {id:?} did not finish within {}; it is {state}{}",
        humantime::format_duration(*.timeout),
        unclaimed_hint(*.state, queue)
    )]
    WaitTimeout {
        id: String,
        timeout: Duration,
        state: JobState,
        queue: String,
    },
}

/// Why a job may still wait after a wait gave up: nobody works its queue.
fn unclaimed_hint(state: JobState, queue: &str) -> String {
    if state == JobState::Available {
        format!(
            " and not yet claimed: are the workers of queue {queue:?} busy, or does none \
             serve it? (a worker takes it with --queues {queue})"
        )
    } else {
        String::new()
    }
}

/// `, field jobs[3].kind` when the API named the field at fault.
fn field_suffix(body: &ErrorBody) -> String {
    body.field
        .as_ref()
        .map(|f| format!(", field {f}"))
        .unwrap_or_default()
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of a deploy, each defaulting on the server when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployOptions {
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    pub memory_limit_mib: Option<u32>,
    pub allowed_hosts: Vec<String>,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A client of one Spool API, acting with one token: a tenant's for
/// `/v1`, the operator's for the tenant calls under `/admin/v1`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .finish()
    }
}

impl Client {
    /// A client of the API at `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .expect("a client without TLS settings builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    /// The same client sending `token` as `Authorization: Bearer`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The API's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; returns the decoded body and the status.
    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<(T, StatusCode)> {
        let (status, bytes) = self.send_raw(request).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| Error::Api {
            status: status.as_u16(),
            body: ErrorBody {
                code: "unreadable_response".to_string(),
                message: format!("could not read the API's answer: {e}"),
                field: None,
            },
        })?;
        Ok((value, status))
    }

    async fn send_raw(&self, request: RequestBuilder) -> Result<(StatusCode, bytes::Bytes)> {
        let transport = |source: reqwest::Error| match source.is_connect() {
            true => Error::Unreachable {
                url: self.base.clone(),
                source,
            },
            false => Error::Transport {
                url: self.base.clone(),
                source,
            },
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            code: "http_error".to_string(),
            message: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            field: None,
        });
        Err(Error::Api {
            status: status.as_u16(),
            body,
        })
    }

    /// Deploys a component; `true` when it made a new version.
    pub async fn module_deploy(
        &self,
        kind: &str,
        bytes: Vec<u8>,
        options: &DeployOptions,
    ) -> Result<(ModuleView, bool)> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(n) = options.max_attempts {
            query.push(("max_attempts", n.to_string()));
        }
        if let Some(timeout) = options.timeout {
            query.push(("timeout_ms", timeout.as_millis().to_string()));
        }
        if let Some(mib) = options.memory_limit_mib {
            query.push(("memory_limit_mib", mib.to_string()));
        }
        if !options.allowed_hosts.is_empty() {
            query.push(("allowed_hosts", options.allowed_hosts.join(",")));
        }
        let request = self
            .request(
                Method::PUT,
                &format!("/v1/modules/{}", percent_encode(kind)),
            )
            .query(&query)
            .header("content-type", "application/wasm")
            .body(bytes);
        let (module, status) = self.send(request).await?;
        Ok((module, status == StatusCode::CREATED))
    }

    /// The newest version of each kind.
    pub async fn module_list(&self) -> Result<ModuleList> {
        Ok(self.send(self.request(Method::GET, "/v1/modules")).await?.0)
    }

    /// Enqueues a job; `true` when it is new, `false` when a job with the
    /// same `job_id` already existed (and is what is returned).
    pub async fn job_enqueue(&self, job: &EnqueueRequest) -> Result<(JobView, bool)> {
        let (job, status) = self
            .send(self.request(Method::POST, "/v1/jobs").json(job))
            .await?;
        Ok((job, status == StatusCode::CREATED))
    }

    /// Enqueues jobs together, all or none.
    pub async fn job_enqueue_batch(&self, jobs: &[EnqueueRequest]) -> Result<BatchReport> {
        let body = BatchRequest {
            jobs: jobs.to_vec(),
        };
        Ok(self
            .send(self.request(Method::POST, "/v1/job-batches").json(&body))
            .await?
            .0)
    }

    pub async fn job_get(&self, id: &str) -> Result<JobView> {
        let path = format!("/v1/jobs/{}", percent_encode(id));
        Ok(self.send(self.request(Method::GET, &path)).await?.0)
    }

    pub async fn job_list(&self, options: &ListOptions) -> Result<JobPage> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(state) = options.state {
            query.push(("state", state.to_string()));
        }
        if let Some(kind) = &options.kind {
            query.push(("kind", kind.clone()));
        }
        if let Some(limit) = options.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &options.cursor {
            query.push(("cursor", cursor.clone()));
        }
        Ok(self
            .send(self.request(Method::GET, "/v1/jobs").query(&query))
            .await?
            .0)
    }

    /// Cancels a job; a running job is only asked to stop (check its state).
    pub async fn job_cancel(&self, id: &str) -> Result<JobView> {
        let path = format!("/v1/jobs/{}/cancel", percent_encode(id));
        Ok(self.send(self.request(Method::POST, &path)).await?.0)
    }

    pub async fn job_retry(&self, id: &str) -> Result<JobView> {
        let path = format!("/v1/jobs/{}/retry", percent_encode(id));
        Ok(self.send(self.request(Method::POST, &path)).await?.0)
    }

    /// Deletes finished jobs in `state` older than `older_than` (`7d`).
    pub async fn job_prune(&self, state: JobState, older_than: &str) -> Result<PruneReport> {
        let query = [
            ("state", state.to_string()),
            ("older_than", older_than.to_string()),
        ];
        Ok(self
            .send(self.request(Method::DELETE, "/v1/jobs").query(&query))
            .await?
            .0)
    }

    /// Polls a job until it has finished or `timeout` passes.
    pub async fn job_wait(&self, id: &str, timeout: Duration) -> Result<JobView> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            let answer = self.job_get(id).await;
            let late = tokio::time::Instant::now() >= deadline;
            match answer {
                Ok(job) if job.state.is_finished() => return Ok(job),
                Ok(job) if late => {
                    return Err(Error::WaitTimeout {
                        id: id.to_string(),
                        timeout,
                        state: job.state,
                        queue: job.queue,
                    });
                }
                Ok(_) => {}
                // A database restart answers 503 for a moment: keep waiting.
                Err(Error::Api { status: 503, .. }) if !late => {}
                Err(e) => return Err(e),
            }
            // The last look falls on the deadline, not a pause before it.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    pub async fn config_set(&self, name: &str, value: &str, secret: bool) -> Result<ConfigView> {
        let body = ConfigRequest {
            value: value.to_string(),
            secret,
        };
        let path = format!("/v1/config/{}", percent_encode(name));
        Ok(self
            .send(self.request(Method::PUT, &path).json(&body))
            .await?
            .0)
    }

    pub async fn config_list(&self) -> Result<ConfigList> {
        Ok(self.send(self.request(Method::GET, "/v1/config")).await?.0)
    }

    pub async fn config_delete(&self, name: &str) -> Result<()> {
        let path = format!("/v1/config/{}", percent_encode(name));
        self.send_raw(self.request(Method::DELETE, &path))
            .await
            .map(drop)
    }

    /// Whether the API answers and its database is reachable.
    pub async fn health(&self) -> Result<()> {
        self.send_raw(self.request(Method::GET, "/healthz"))
            .await
            .map(drop)
    }

    /// Makes a token for this client's tenant.
    pub async fn token_create(&self, label: &str) -> Result<TokenCreated> {
        let body = TokenRequest {
            label: label.to_string(),
        };
        Ok(self
            .send(self.request(Method::POST, "/v1/tokens").json(&body))
            .await?
            .0)
    }

    pub async fn token_list(&self) -> Result<TokenList> {
        Ok(self.send(self.request(Method::GET, "/v1/tokens")).await?.0)
    }

    pub async fn token_revoke(&self, id: &str) -> Result<()> {
        let path = format!("/v1/tokens/{}", percent_encode(id));
        self.send_raw(self.request(Method::DELETE, &path))
            .await
            .map(drop)
    }

    /// Creates a tenant (admin token).
    pub async fn tenant_create(&self, request: &TenantCreateRequest) -> Result<TenantCreated> {
        Ok(self
            .send(
                self.request(Method::POST, "/admin/v1/tenants")
                    .json(request),
            )
            .await?
            .0)
    }

    pub async fn tenant_list(&self) -> Result<TenantList> {
        Ok(self
            .send(self.request(Method::GET, "/admin/v1/tenants"))
            .await?
            .0)
    }

    pub async fn tenant_update(
        &self,
        name: &str,
        change: &TenantUpdateRequest,
    ) -> Result<TenantView> {
        let path = format!("/admin/v1/tenants/{}", percent_encode(name));
        Ok(self
            .send(self.request(Method::PATCH, &path).json(change))
            .await?
            .0)
    }

    /// Makes a token for any tenant (admin token).
    pub async fn tenant_token_create(&self, name: &str, label: &str) -> Result<TokenCreated> {
        let body = TokenRequest {
            label: label.to_string(),
        };
        let path = format!("/admin/v1/tenants/{}/tokens", percent_encode(name));
        Ok(self
            .send(self.request(Method::POST, &path).json(&body))
            .await?
            .0)
    }
}
