//! `spool tenant` (the operator's, with the admin token) and `spool token`
//! (a tenant's own, with its token).

use anyhow::Context;
use clap::Subcommand;

use super::output;
use crate::api::types::{TenantCreateRequest, TenantUpdateRequest, TokenCreated};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first API token (shown only once).
    Create {
        /// Lowercase letters, digits, '_' or '-'.
        name: String,
        /// Most of its jobs running at once across all workers.
        #[arg(long)]
        max_running: Option<i64>,
    },
    /// List tenants.
    List,
    /// Stop a tenant: its tokens stop working and its jobs are not run.
    Disable { name: String },
    /// Let a disabled tenant back in.
    Enable { name: String },
    /// Limit how many of a tenant's jobs run at once ("none" lifts it).
    Limit {
        name: String,
        /// A number, or "none".
        max_running: String,
    },
    /// Make a new API token for a tenant (when it has lost its own).
    Token {
        name: String,
        #[arg(long, default_value = "")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new token for your tenant (shown only once).
    Create {
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List your tenant's tokens (never their secrets).
    List,
    /// Revoke a token: its next request to this server fails; other API
    /// processes accept it for up to a second more.
    Revoke { id: String },
}

/// Runs a tenant command; `admin` carries the admin token.
pub async fn tenant(admin: &Client, json: bool, command: TenantCommand) -> anyhow::Result<()> {
    let change = |disabled, max_running| TenantUpdateRequest {
        disabled,
        max_running,
    };
    let updated = match command {
        TenantCommand::Create { name, max_running } => {
            let request = TenantCreateRequest { name, max_running };
            let created = admin.tenant_create(&request).await?;
            if json {
                return output::json(&created);
            }
            println!("created tenant {}", created.tenant.name);
            print_token(&created.token);
            return Ok(());
        }
        TenantCommand::List => {
            let list = admin.tenant_list().await?;
            if json {
                return output::json(&list);
            }
            output::tenants(&list.tenants);
            return Ok(());
        }
        TenantCommand::Token { name, label } => {
            let token = admin.tenant_token_create(&name, &label).await?;
            if json {
                return output::json(&token);
            }
            print_token(&token);
            return Ok(());
        }
        TenantCommand::Disable { name } => {
            admin
                .tenant_update(&name, &change(Some(true), None))
                .await?
        }
        TenantCommand::Enable { name } => {
            admin
                .tenant_update(&name, &change(Some(false), None))
                .await?
        }
        TenantCommand::Limit { name, max_running } => {
            let limit = if max_running == "none" {
                None
            } else {
                Some(max_running.parse::<i64>().with_context(|| {
                    format!("max_running: {max_running:?} is neither a number nor \"none\"")
                })?)
            };
            admin
                .tenant_update(&name, &change(None, Some(limit)))
                .await?
        }
    };
    if json {
        return output::json(&updated);
    }
    output::tenants(std::slice::from_ref(&updated));
    Ok(())
}

/// Runs a token command with the tenant's own token.
pub async fn token(client: &Client, json: bool, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { label } => {
            let token = client.token_create(&label).await?;
            if json {
                return output::json(&token);
            }
            print_token(&token);
        }
        TokenCommand::List => {
            let list = client.token_list().await?;
            if json {
                return output::json(&list);
            }
            output::tokens(&list.tokens);
        }
        TokenCommand::Revoke { id } => {
            client
                .token_revoke(&id)
                .await
                .with_context(|| format!("token {id}"))?;
            if !json {
                println!("revoked token {id}");
            }
        }
    }
    Ok(())
}

fn print_token(token: &TokenCreated) {
    println!("token {} (keep it: it is not shown again):", token.id);
    println!("{}", token.token);
}
