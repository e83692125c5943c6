//! The demo's mail endpoint: an HTTP server on loopback that accepts the
//! JSON messages the example jobs post (`mailer::send`) and keeps them in
//! memory. It does not deliver anything.
//!
//! Delivery is at least once: an attempt that posted a message and then
//! failed to record its result runs again and posts again. The sink does
//! what a real mail service does with the `idempotency-key` header (the
//! job id): it keeps the first message per key and counts the repeats.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use crate::cli::loopback::Loopback;

/// The path messages are posted to.
const PATH: &str = "/messages";

/// A message as the example jobs post it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// What the sink has received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbox {
    /// The first message of each idempotency key, by key.
    pub messages: BTreeMap<String, Message>,
    /// Messages whose key had been seen before, and were dropped.
    pub repeated: usize,
}

/// A running sink; [`MailSink::stop`] ends it.
pub struct MailSink {
    server: Loopback,
    inbox: Arc<Mutex<Inbox>>,
}

impl MailSink {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = Router::new()
            .route(PATH, post(receive))
            .with_state(inbox.clone());
        let server = Loopback::serve(app, "mail sink").await?;
        Ok(Self { server, inbox })
    }

    /// `127.0.0.1:<port>`: what a module's allow-list needs to reach it.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// Where jobs post messages: the tenant's `mail_url`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.server.addr)
    }

    /// A copy of what has arrived so far.
    pub fn inbox(&self) -> Inbox {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops listening and waits for the server to end.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    Json(message): Json<Message>,
) -> (StatusCode, &'static str) {
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            "an idempotency-key header is required",
        );
    };

    let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
    if inbox.messages.contains_key(key) {
        inbox.repeated += 1;
    } else {
        inbox.messages.insert(key.to_string(), message);
    }
    (StatusCode::ACCEPTED, "accepted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn repeated_keys_are_counted_not_kept() {
        let sink = MailSink::start().await.unwrap();
        let http = reqwest::Client::new();
        let post = |key: Option<&str>, subject: &str| {
            let mut request = http.post(sink.url()).json(&serde_json::json!({
                "to": "ada@example.com",
                "subject": subject,
                "text": "Hi Ada",
            }));
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            request.send()
        };

        let first = post(Some("send-email:ada@example.com"), "first")
            .await
            .unwrap();
        let again = post(Some("send-email:ada@example.com"), "again")
            .await
            .unwrap();
        let keyless = post(None, "keyless").await.unwrap();

        assert_eq!(first.status(), 202);
        assert_eq!(again.status(), 202);
        assert_eq!(keyless.status(), 400);
        let inbox = sink.inbox();
        assert_eq!(inbox.messages.len(), 1);
        assert_eq!(
            inbox.messages["send-email:ada@example.com"].subject,
            "first"
        );
        assert_eq!(inbox.repeated, 1);
        sink.stop().await;
    }
}
