//! `spool:job/kv`: the tenant's key-value store.

use super::bindings::spool::job::kv::{Host, KvError};
use super::{HostFault, State};
use crate::queue;
use crate::telemetry::error_chain;

/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 256;
/// Longest value, in bytes.
const MAX_VALUE_BYTES: usize = 64 << 10;

fn fault(what: &str, error: &queue::Error) -> wasmtime::Error {
    wasmtime::Error::new(HostFault(format!("{what}: {}", error_chain(error))))
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::TooLarge(format!(
            "key: must be 1 to {MAX_KEY_BYTES} bytes, not {}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(KvError::TooLarge(
            "key: must not contain \\u0000".to_string(),
        ));
    }
    Ok(())
}

impl Host for State {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        if check_key(&key).is_err() {
            return Ok(None);
        }
        queue::kv_get(&self.job.pool, &self.job.tenant, &key)
            .await
            .map_err(|e| fault("kv get", &e))
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), KvError>> {
        self.check_lease("kv set")?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        if value.len() > MAX_VALUE_BYTES || value.contains('\0') {
            return Ok(Err(KvError::TooLarge(format!(
                "value: must be at most {MAX_VALUE_BYTES} bytes without \\u0000"
            ))));
        }
        queue::kv_set(&self.job.pool, &self.job.tenant, &key, &value)
            .await
            .map(Ok)
            .map_err(|e| fault("kv set", &e))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<bool> {
        self.check_lease("kv delete")?;
        if check_key(&key).is_err() {
            return Ok(false);
        }
        queue::kv_delete(&self.job.pool, &self.job.tenant, &key)
            .await
            .map_err(|e| fault("kv delete", &e))
    }

    async fn increment(
        &mut self,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, KvError>> {
        self.check_lease("kv increment")?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        match queue::kv_increment(&self.job.pool, &self.job.tenant, &key, delta).await {
            Ok(sum) => Ok(Ok(sum)),
            Err(queue::Error::Database(sqlx::Error::Database(e)))
                if matches!(e.code().as_deref(), Some("22P02" | "22003")) =>
            {
                Ok(Err(KvError::NotAnInteger(format!(
                    "{key:?}: the stored value is not a 64-bit integer, or the sum overflows"
                ))))
            }
            Err(e) => Err(fault("kv increment", &e)),
        }
    }
}
