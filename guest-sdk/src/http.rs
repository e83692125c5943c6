//! Outbound HTTP from a job.
//!
//! Requests go through the host's `wasi:http/outgoing-handler`, which sends
//! them only to the hosts the module was deployed with (`--allow-host`).
//! A request to any other host fails with [`Error::Transport`] before a
//! connection is made.
//!
//! ```no_run
//! use spool_sdk::http::Request;
//!
//! # fn main() -> Result<(), spool_sdk::http::Error> {
//! let response = Request::post("http://mail.internal:8025/send")
//!     .header("content-type", "application/json")
//!     .body(br#"{"to": "ada@example.com"}"#.to_vec())
//!     .send()?;
//! assert!(response.is_success());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use crate::wit::wasi::http::outgoing_handler;
use crate::wit::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use crate::wit::wasi::io::streams::StreamError;

/// The most bytes a single `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;
/// How many bytes to ask for per read of a response body.
const READ_CHUNK: u64 = 64 * 1024;
/// Connect and first-byte timeout unless the request sets one.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The URL could not be used: the message says which part is wrong.
    InvalidUrl(String),
    /// A header name or value was refused.
    InvalidHeader(String),
    /// The host refused the request or it failed on the way: not allowed
    /// by the module's grants, connection refused, timed out, and so on.
    Transport(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(m) => write!(f, "invalid url: {m}"),
            Self::InvalidHeader(m) => write!(f, "invalid header: {m}"),
            Self::Transport(m) => write!(f, "http request failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// An HTTP request under construction.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Duration,
}

impl Request {
    /// A request with the given method and URL (`http` or `https`).
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: serde::Serialize>(self, value: &T) -> Result<Self, serde_json::Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sets the connect and first-byte timeout (30 seconds by default).
    /// The host may enforce a shorter one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let url = Url::parse(&self.url)?;
        let headers =
            Fields::from_list(&self.headers).map_err(|e| Error::InvalidHeader(format!("{e:?}")))?;

        let request = OutgoingRequest::new(headers);
        let refused = |part: &str| Error::InvalidUrl(format!("{part} refused by the host"));
        request
            .set_method(&self.method)
            .map_err(|()| refused("method"))?;
        request
            .set_scheme(Some(&url.scheme))
            .map_err(|()| refused("scheme"))?;
        request
            .set_authority(Some(&url.authority))
            .map_err(|()| refused("authority"))?;
        request
            .set_path_with_query(Some(&url.path))
            .map_err(|()| refused("path"))?;
        let body = request
            .body()
            .map_err(|()| transport("request body already taken"))?;

        let options = RequestOptions::new();
        let nanos = u64::try_from(self.timeout.as_nanos()).unwrap_or(u64::MAX);
        // The host may refuse a timeout longer than it allows; its own applies then.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));

        let pending = outgoing_handler::handle(request, Some(options)).map_err(|e| describe(&e))?;
        // If the host refused the request, writing fails too; the response
        // says why, so it takes precedence over the write error.
        let written = write_body(body, &self.body);

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(describe(&code)),
            Some(Err(())) | None => return Err(transport("response already taken")),
        };
        written?;

        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| transport("response body already taken"))?;
        let body = read_body(incoming)?;

        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, in the order received; values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, decoded lossily as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

fn transport(message: &str) -> Error {
    Error::Transport(message.to_string())
}

fn describe(code: &ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => transport(
            "HttpRequestDenied: the host refused it; the module may only reach the hosts it \
             was deployed with (--allow-host)",
        ),
        other => transport(&format!("{other:?}")),
    }
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    {
        let stream = body
            .write()
            .map_err(|()| transport("request stream already taken"))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| transport(&format!("write request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| transport(&format!("{e:?}")))
}

fn read_body(incoming: IncomingBody) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| transport("response stream already taken"))?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(transport(&format!(
                        "read response body: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
    IncomingBody::finish(incoming);
    Ok(body)
}

/// The parts of an absolute `http` or `https` URL a request needs.
#[derive(Debug)]
struct Url {
    scheme: Scheme,
    authority: String,
    path: String,
}

impl Url {
    fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |m: &str| Error::InvalidUrl(format!("{url:?}: {m}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("scheme must be http or https")),
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "credentials in the url are not supported; use a header",
            ));
        }
        let path = path.split('#').next().unwrap_or_default();
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };

        Ok(Self {
            scheme,
            authority: authority.to_string(),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_splits_into_scheme_authority_and_path() {
        let url = Url::parse("http://127.0.0.1:8025/send?x=1#frag").unwrap();
        assert!(matches!(url.scheme, Scheme::Http));
        assert_eq!(url.authority, "127.0.0.1:8025");
        assert_eq!(url.path, "/send?x=1");

        let url = Url::parse("HTTPS://mail.example.com?q").unwrap();
        assert!(matches!(url.scheme, Scheme::Https));
        assert_eq!(url.path, "/?q");
    }

    #[test]
    fn url_without_usable_scheme_or_host_is_refused() {
        for url in [
            "mail.example.com/x",
            "ftp://host/x",
            "http:///x",
            "http://u:p@host/",
        ] {
            assert!(
                matches!(Url::parse(url), Err(Error::InvalidUrl(_))),
                "{url}"
            );
        }
    }
}
