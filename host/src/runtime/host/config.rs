//! `spool:job/config`: the tenant's config entries and secrets.

use super::{HostFault, State, bindings};
use crate::queue;
use crate::telemetry::error_chain;

impl State {
    async fn config_read(
        &mut self,
        name: String,
        secret: bool,
    ) -> wasmtime::Result<Option<String>> {
        queue::config_get(&self.job.pool, &self.job.tenant, &name, secret)
            .await
            .map_err(|e| {
                let what = if secret { "secret" } else { "config entry" };
                wasmtime::Error::new(HostFault(format!(
                    "read {what} {name:?}: {}",
                    error_chain(&e)
                )))
            })
    }
}

impl bindings::spool::job::config::Host for State {
    async fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        self.config_read(name, false).await
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        let value = self.config_read(name, true).await?;
        if let Some(value) = &value {
            self.note_secret(value);
        }
        Ok(value)
    }
}
