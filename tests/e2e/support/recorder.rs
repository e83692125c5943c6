//! An HTTP server on loopback that records every request, for guests to
//! call: a mail sink, a ledger of job starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::any;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Clone, Default)]
struct Shared {
    requests: Arc<Mutex<Vec<Request>>>,
    status: Arc<Mutex<u16>>,
}

/// A recording HTTP server; it stops when dropped.
pub struct Recorder {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Self {
        let shared = Shared {
            status: Arc::new(Mutex::new(202)),
            ..Shared::default()
        };
        let app = Router::new()
            .fallback(any(record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recorder");
        let addr = listener.local_addr().expect("recorder address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("recorder serves");
        });
        Self { addr, shared, task }
    }

    /// `127.0.0.1:<port>`, the grant a module needs to reach it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status every request is answered with (202 at first).
    pub fn respond_with(&self, status: u16) {
        *self.shared.status.lock().unwrap() = status;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests each path received.
    pub fn hits(&self) -> BTreeMap<String, usize> {
        let mut hits = BTreeMap::new();
        for request in self.shared.requests.lock().unwrap().iter() {
            *hits.entry(request.path.clone()).or_default() += 1;
        }
        hits
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    shared.requests.lock().unwrap().push(Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body,
    });
    StatusCode::from_u16(*shared.status.lock().unwrap()).unwrap_or(StatusCode::OK)
}
