//! Mail for the example jobs: address checks and delivery to the tenant's
//! mail endpoint (config entry `mail_url`), which accepts a JSON message.
//! When the tenant set the secret `mail_api_key`, it is sent as a bearer
//! token.

use serde::Serialize;
use spool_sdk::http::Request;
use spool_sdk::{Error, Job, config};

/// A message for the mail endpoint.
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub to: &'a str,
    pub subject: String,
    pub text: String,
}

/// Checks that `value`, the params field `field`, looks like an address.
///
/// Deliberately loose: one `@` with something before it and a dotted
/// domain after it. The mail endpoint has the final word.
pub fn check_address(field: &str, value: &str) -> Result<(), Error> {
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.split('.').count() >= 2
                && domain.split('.').all(|label| !label.is_empty())
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(Error::fail(format!(
            "{field}: not an email address: {value:?}"
        )))
    }
}

/// Posts `message` to the mail endpoint, with the job id as idempotency
/// key so that a repeated attempt does not send the message twice.
///
/// A 4xx answer other than 429 discards the job: the endpoint refused
/// this message and will refuse it again. Anything else that is not a
/// success is retried.
pub fn send(job: &Job, message: &Message<'_>) -> Result<u16, Error> {
    let url = config::require("mail_url")?;
    let mut request = Request::post(url).header("idempotency-key", &job.id);
    if let Some(key) = config::secret("mail_api_key") {
        request = request.header("authorization", &format!("Bearer {key}"));
    }
    let response = request
        .json(message)
        .map_err(|e| Error::fail(format!("encode message: {e}")))?
        .send()?;

    match response.status {
        200..=299 => Ok(response.status),
        429 | 500.. => Err(Error::retry(format!(
            "mail endpoint answered {}",
            response.status
        ))),
        status => Err(Error::fail(format!(
            "mail endpoint refused the message: {status} {}",
            response.text().chars().take(200).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_loosely() {
        for good in ["ada@example.com", "a.b+c@mail.example.co.uk"] {
            assert!(check_address("to", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "a@b@c.d",
            "a d@e.f",
            "a@.com",
        ] {
            let error = check_address("to", bad).unwrap_err();
            assert!(
                error.message().starts_with("to: not an email address"),
                "{bad}"
            );
        }
    }
}
