//! An HTTP server on a free loopback port, in this process: the demo's
//! mail sink and the chaos harness's ledger.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running server; [`Loopback::stop`] ends it.
pub struct Loopback {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Loopback {
    /// Serves `app` on `127.0.0.1` at a free port; `what` names it in
    /// errors.
    pub async fn serve(app: Router, what: &'static str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .with_context(|| format!("listen for the {what}"))?;
        let addr = listener
            .local_addr()
            .with_context(|| format!("{what} address"))?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "{what} failed");
            }
        });
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// `127.0.0.1:<port>`: the grant a module needs to reach it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Stops listening and waits for the server to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "loopback server task failed");
        }
    }
}
