//! `send-email`: renders a message for a user and posts it to the tenant's
//! mail endpoint (config entry `mail_url`).
//!
//! Params: `{"to": "ada@example.com", "name": "Ada", "template": "welcome"}`;
//! `template` is `welcome` (the default) or `password_reset`.
//! Result: `{"to": "ada@example.com", "subject": "...", "status": 202}`.

use mailer::Message;
use serde::{Deserialize, Serialize};
use spool_sdk::{Error, Job};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    to: String,
    name: String,
    #[serde(default)]
    template: Template,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Template {
    #[default]
    Welcome,
    PasswordReset,
}

#[derive(Serialize)]
struct Sent {
    to: String,
    subject: String,
    status: u16,
}

#[spool_sdk::job]
fn send_email(job: &Job, params: Params) -> Result<Sent, Error> {
    mailer::check_address("to", &params.to)?;
    let name = params.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::fail("name: must be 1 to 100 characters"));
    }

    let message = render(params.template, name, &params.to);
    let status = mailer::send(job, &message)?;
    spool_sdk::log::info(
        "email sent",
        &[("to", &params.to), ("subject", &message.subject)],
    );

    Ok(Sent {
        to: params.to.clone(),
        subject: message.subject,
        status,
    })
}

fn render<'a>(template: Template, name: &str, to: &'a str) -> Message<'a> {
    let (subject, text) = match template {
        Template::Welcome => (
            "Welcome aboard".to_string(),
            format!("Hi {name},\n\nthanks for signing up. Your account is ready.\n"),
        ),
        Template::PasswordReset => (
            "Reset your password".to_string(),
            format!(
                "Hi {name},\n\nsomeone asked to reset your password. If it was not you, ignore this message.\n"
            ),
        ),
    };
    Message { to, subject, text }
}
