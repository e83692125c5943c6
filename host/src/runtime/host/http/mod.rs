//! `wasi:http/outgoing-handler`, limited to the module's allowed hosts.
//!
//! A grant is `host` (the scheme's default port: 80 for http, 443 for
//! https) or `host:port`; IPv6 addresses go in brackets (`[::1]:8080`).
//! Names compare case-insensitively. A request to anything else fails with
//! `HTTP-request-denied` before any connection or DNS lookup.
//!
//! A granted name is resolved by the host, and only public addresses are
//! used (see [`address`]): a name pointing inside the network is refused
//! with `destination-IP-prohibited`, unless the grant is that address
//! itself (`127.0.0.1:8025`). The host connects to the address it checked,
//! so a second DNS answer cannot slip past the check.
//!
//! Every refusal is kept in the attempt's log. An attempt may send
//! [`MAX_REQUESTS`] requests; each waits at most [`MAX_WAIT`] to connect,
//! for the first byte, and between bytes.

mod address;
mod send;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::runtime::LeaseClock;

pub use send::ResponseFuture;

/// Requests one attempt may send.
pub const MAX_REQUESTS: u32 = 100;
/// Longest connect, first-byte and between-bytes wait of a request,
/// whatever the guest asks for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Refusals kept in the attempt's log.
const MAX_DENIALS_KEPT: usize = 20;

/// The outbound HTTP grants of one attempt.
#[derive(Debug)]
pub struct HttpPolicy {
    grants: Vec<Grant>,
    /// No request is sent once the attempt's lease has run out.
    lease: LeaseClock,
    sent: u32,
    denials: Denials,
}

/// Refusals of one attempt, for its log. Shared with requests in flight,
/// which may be refused after resolving.
#[derive(Debug, Clone, Default)]
struct Denials(Arc<Mutex<Vec<String>>>);

impl Denials {
    fn record(&self, line: String) {
        tracing::debug!(target: "spool::guest", "{line}");
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() < MAX_DENIALS_KEPT {
            lines.push(line);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// A lowercase name, or an IP address (IPv6 without brackets).
    host: String,
    port: Option<u16>,
}

impl Grant {
    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl HttpPolicy {
    pub fn new(allowed_hosts: &[String], lease: LeaseClock) -> Self {
        let grants = allowed_hosts
            .iter()
            .filter_map(|g| parse_grant(g))
            .collect();
        Self {
            grants,
            lease,
            sent: 0,
            denials: Denials::default(),
        }
    }

    /// Log lines for the requests that were refused.
    pub fn into_denials(self) -> Vec<String> {
        std::mem::take(
            &mut self
                .denials
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// The grant covering `host:port`, if any.
    fn grant(&self, host: &str, port: u16, default_port: u16) -> Option<&Grant> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.grants.iter().find(|grant| {
            grant.host.eq_ignore_ascii_case(host) && grant.port.unwrap_or(default_port) == port
        })
    }

    fn deny(&mut self, error: HttpError, line: String) -> ResponseFuture {
        self.denials.record(line);
        Box::new(async move { Err(error) })
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
        let tls = uri.scheme_str() == Some("https");
        let default_port = if tls { 443 } else { 80 };
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16().unwrap_or(default_port);
        let target = format!("{host}:{port}");

        if self.lease.expired() {
            return self.deny(
                HttpError::HttpRequestDenied,
                format!("warn: outbound request to {target} denied: the attempt's lease ran out"),
            );
        }
        let Some(grant) = self.grant(&host, port, default_port).cloned() else {
            return self.deny(
                HttpError::HttpRequestDenied,
                format!(
                    "warn: outbound request to {target} denied: not in the module's allowed hosts"
                ),
            );
        };
        if self.sent >= MAX_REQUESTS {
            return self.deny(
                HttpError::HttpRequestDenied,
                format!(
                    "warn: outbound request to {target} denied: the attempt already sent \
                     {MAX_REQUESTS} requests"
                ),
            );
        }
        self.sent += 1;

        let waits = send::Waits::capped(options.unwrap_or_default(), MAX_WAIT);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let denials = self.denials.clone();
        let denied = move |addrs: &[SocketAddr]| {
            let addrs: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            denials.record(format!(
                "warn: outbound request to {target} denied: it resolves to {}, which is not a \
                 public address; grant the address itself to allow it",
                addrs.join(", ")
            ));
        };
        let resolved = resolve(host.clone(), port, grant, waits.connect);
        send::checked(request, host, tls, waits, resolved, denied)
    }
}

/// Resolves `host` and keeps the addresses the grant allows: any public
/// address, and the granted address itself. Returns the allowed ones and
/// all that were found.
async fn resolve(
    host: String,
    port: u16,
    grant: Grant,
    wait: Duration,
) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), HttpError> {
    let found: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(wait, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| HttpError::DnsTimeout)?
            .map_err(|e| HttpError::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    let allowed = found
        .iter()
        .copied()
        .filter(|addr| {
            address::is_public(addr.ip())
                || grant
                    .ip()
                    .is_some_and(|ip| address::same_host(ip, addr.ip()))
        })
        .collect();
    Ok((allowed, found))
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; `None` if malformed.
/// Grants are validated at deploy, so a malformed one here grants nothing.
fn parse_grant(grant: &str) -> Option<Grant> {
    let grant = grant.trim().to_ascii_lowercase();
    if let Some(rest) = grant.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        return Some(Grant {
            host: host.to_string(),
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
            host: grant,
            port: None,
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn policy(grants: &[&str]) -> HttpPolicy {
        let lease = LeaseClock::new(Instant::now() + Duration::from_secs(3600));
        HttpPolicy::new(
            &grants.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            lease,
        )
    }

    #[test]
    fn a_bare_host_grants_only_the_default_port() {
        let policy = policy(&["Mail.Example.com"]);
        assert!(policy.grant("mail.example.com", 443, 443).is_some());
        assert!(policy.grant("MAIL.example.com", 80, 80).is_some());
        assert!(policy.grant("mail.example.com", 8080, 80).is_none());
        assert!(policy.grant("example.com", 443, 443).is_none());
    }

    #[test]
    fn a_host_and_port_grant_only_that_port() {
        let policy = policy(&["127.0.0.1:8025", "[::1]:9000"]);
        assert!(policy.grant("127.0.0.1", 8025, 80).is_some());
        assert!(policy.grant("127.0.0.1", 80, 80).is_none());
        assert!(policy.grant("[::1]", 9000, 80).is_some());
    }

    #[test]
    fn malformed_grants_grant_nothing() {
        for grant in ["", ":80", "host:port", "[::1", "[::1]x"] {
            assert_eq!(parse_grant(grant), None, "{grant}");
        }
    }

    #[tokio::test]
    async fn a_granted_name_resolving_inside_the_network_is_refused() {
        let grant = parse_grant("localhost:8025").unwrap();

        let (allowed, found) = resolve("localhost".into(), 8025, grant, MAX_WAIT)
            .await
            .unwrap();

        assert!(!found.is_empty());
        assert!(allowed.is_empty(), "{allowed:?}");
    }

    #[tokio::test]
    async fn a_granted_address_is_allowed_even_if_internal() {
        let grant = parse_grant("127.0.0.1:8025").unwrap();

        let (allowed, _) = resolve("127.0.0.1".into(), 8025, grant, MAX_WAIT)
            .await
            .unwrap();

        assert_eq!(allowed, ["127.0.0.1:8025".parse().unwrap()]);
    }
}
