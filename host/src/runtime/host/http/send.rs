//! Sending a checked request: connect to an address that passed the
//! policy, speak TLS when asked, HTTP/1.1 over it, with bounded waits.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// What `send_request` hands back to wasmtime-wasi-http: the response, and
/// a future that reports errors of the connection after it.
pub type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// How long a request may wait at each stage.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Waits {
    /// The guest's waits, none longer than `cap`.
    pub fn capped(options: RequestOptions, cap: Duration) -> Self {
        let cap =
            |wait: Option<Duration>| wait.unwrap_or(cap).min(cap).max(Duration::from_millis(1));
        Self {
            connect: cap(options.connect_timeout),
            first_byte: cap(options.first_byte_timeout),
            between_bytes: cap(options.between_bytes_timeout),
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Sends `request` once `resolved` yields the allowed addresses (and all
/// that were found); refuses it if none is allowed, telling `denied` the
/// addresses found.
pub fn checked<R, D>(
    mut request: http::Request<WasiBody>,
    host: String,
    tls: bool,
    waits: Waits,
    resolved: R,
    denied: D,
) -> ResponseFuture
where
    R: Future<Output = Result<(Vec<SocketAddr>, Vec<SocketAddr>), HttpError>> + Send + 'static,
    D: FnOnce(&[SocketAddr]) + Send + 'static,
{
    Box::new(async move {
        let (allowed, found) = resolved.await?;
        if allowed.is_empty() {
            denied(&found);
            return Err(HttpError::DestinationIpProhibited);
        }

        let tcp = tokio::time::timeout(waits.connect, TcpStream::connect(&allowed[..]))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(HttpError::Connect)?;
        let stream: Box<dyn Stream> = if tls {
            let name = ServerName::try_from(host).map_err(|_| HttpError::HttpRequestUriInvalid)?;
            let connect = TlsConnector::from(tls_config()).connect(name, tcp);
            let tls = tokio::time::timeout(waits.connect, connect)
                .await
                .map_err(|_| HttpError::ConnectionTimeout)?
                .map_err(HttpError::Tls)?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };

        let handshake = hyper::client::conn::http1::handshake(TokioIo::new(stream));
        let (mut sender, connection) = tokio::time::timeout(waits.connect, handshake)
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
        let driver = Driver(tokio::spawn(connection));

        // The request line carries only the path; the authority is in Host.
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let response = tokio::time::timeout(waits.first_byte, sender.send_request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)??;

        let response =
            response.map(|body| TimedBody::new(body, waits.between_bytes).boxed_unsync());
        let finished: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
            Box::new(driver.finished());
        Ok((response, finished))
    })
}

/// The certificate roots of the public web, in one client configuration
/// shared by all requests.
fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// The task driving a connection's I/O, stopped when dropped (with the
/// attempt's store, say).
struct Driver(JoinHandle<Result<(), hyper::Error>>);

impl Driver {
    async fn finished(mut self) -> Result<(), HttpError> {
        match (&mut self.0).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(HttpError::InternalError(Some(format!(
                "connection task: {e}"
            )))),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response body that fails if the next frame takes too long.
struct TimedBody {
    inner: Incoming,
    wait: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl TimedBody {
    fn new(inner: Incoming, wait: Duration) -> Self {
        Self {
            inner,
            wait,
            deadline: Box::pin(tokio::time::sleep(wait)),
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            let next = Instant::now() + self.wait;
            self.deadline.as_mut().reset(next);
            return Poll::Ready(frame.map(|f| f.map_err(HttpError::from)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}
