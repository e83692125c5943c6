//! `wasi:http/outgoing-handler`, limited to the module's allowed hosts.
//!
//! A grant is `host` (the scheme's default port: 80 for http, 443 for
//! https) or `host:port`; IPv6 addresses go in brackets (`[::1]:8080`).
//! Names compare case-insensitively. A request to anything else fails with
//! `HTTP-request-denied` before any connection or DNS lookup, and the
//! denial is kept in the attempt's log.

use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Requests one attempt may send.
const MAX_REQUESTS: u32 = 100;
/// Longest connect, first-byte and between-bytes wait of a request,
/// whatever the guest asks for.
const MAX_WAIT: Duration = Duration::from_secs(30);

type ResponseFuture = Box<
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

/// The outbound HTTP grants of one attempt.
#[derive(Debug)]
pub struct HttpPolicy {
    grants: Vec<Grant>,
    sent: u32,
    denials: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    host: String,
    port: Option<u16>,
}

impl HttpPolicy {
    pub fn new(allowed_hosts: &[String]) -> Self {
        Self {
            grants: allowed_hosts
                .iter()
                .filter_map(|g| parse_grant(g))
                .collect(),
            sent: 0,
            denials: Vec::new(),
        }
    }

    /// Log lines for the requests that were refused.
    pub fn into_denials(self) -> Vec<String> {
        self.denials
    }

    fn allows(&self, host: &str, port: u16, default_port: u16) -> bool {
        self.grants.iter().any(|grant| {
            grant.host.eq_ignore_ascii_case(host) && grant.port.unwrap_or(default_port) == port
        })
    }

    fn deny(&mut self, line: String) -> ResponseFuture {
        tracing::debug!(target: "spool::guest", "{line}");
        if self.denials.len() < 20 {
            self.denials.push(line);
        }
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let uri = request.uri();
        let default_port = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16().unwrap_or(default_port);

        if !self.allows(&host, port, default_port) {
            return self.deny(format!(
                "warn: outbound request to {host}:{port} denied: not in the module's allowed hosts"
            ));
        }
        if self.sent >= MAX_REQUESTS {
            return self.deny(format!(
                "warn: outbound request to {host}:{port} denied: the attempt already sent \
                 {MAX_REQUESTS} requests"
            ));
        }
        self.sent += 1;

        let options = capped(options.unwrap_or_default());
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

fn capped(options: RequestOptions) -> RequestOptions {
    let cap = |wait: Option<Duration>| Some(wait.unwrap_or(MAX_WAIT).min(MAX_WAIT));
    RequestOptions {
        connect_timeout: cap(options.connect_timeout),
        first_byte_timeout: cap(options.first_byte_timeout),
        between_bytes_timeout: cap(options.between_bytes_timeout),
    }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; `None` if malformed.
/// Grants are validated at deploy, so a malformed one here grants nothing.
fn parse_grant(grant: &str) -> Option<Grant> {
    let grant = grant.trim();
    if let Some(rest) = grant.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        return Some(Grant {
            host: format!("[{host}]"),
            port,
        });
    }
    match grant.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some(Grant {
            host: host.to_string(),
            port: Some(port.parse().ok()?),
        }),
        Some(_) => None,
        None if !grant.is_empty() => Some(Grant {
            host: grant.to_string(),
            port: None,
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grants: &[&str]) -> HttpPolicy {
        HttpPolicy::new(&grants.iter().map(|g| g.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_bare_host_grants_only_the_default_port() {
        let policy = policy(&["Mail.Example.com"]);
        assert!(policy.allows("mail.example.com", 443, 443));
        assert!(policy.allows("mail.example.com", 80, 80));
        assert!(!policy.allows("mail.example.com", 8080, 80));
        assert!(!policy.allows("example.com", 443, 443));
    }

    #[test]
    fn a_host_and_port_grant_only_that_port() {
        let policy = policy(&["127.0.0.1:8025", "[::1]:9000"]);
        assert!(policy.allows("127.0.0.1", 8025, 80));
        assert!(!policy.allows("127.0.0.1", 80, 80));
        assert!(policy.allows("[::1]", 9000, 80));
    }

    #[test]
    fn malformed_grants_grant_nothing() {
        for grant in ["", ":80", "host:port", "[::1", "[::1]x"] {
            assert_eq!(parse_grant(grant), None, "{grant}");
        }
    }
}
