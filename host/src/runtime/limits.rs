//! Memory and table limits of one attempt.
//!
//! Unlike wasmtime's `StoreLimits`, this limiter remembers that a limit was
//! hit, so the attempt's error can say so instead of showing a bare trap.

use wasmtime::ResourceLimiter;

/// Table elements one attempt may hold (a pointer each on the host).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Instances, tables and memories one attempt may create; a component
/// built for wasm32-wasip2 needs a handful of each.
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 8;

/// What a guest ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// It asked to grow a memory to `desired` bytes.
    Memory { desired: usize },
    /// It asked to grow a table to `desired` elements.
    Table { desired: usize },
}

impl Exceeded {
    /// What happened, for the job's error history.
    pub fn message(self, memory_limit_bytes: usize) -> String {
        match self {
            Self::Memory { desired } => format!(
                "memory limit exceeded: the guest asked for {} MiB, the module allows {} MiB",
                desired.div_ceil(1 << 20),
                memory_limit_bytes >> 20
            ),
            Self::Table { desired } => format!(
                "table limit exceeded: the guest asked for {desired} elements, at most \
                 {MAX_TABLE_ELEMENTS} are allowed"
            ),
        }
    }
}

/// A [`ResourceLimiter`] for one attempt.
#[derive(Debug)]
pub struct Limits {
    memory_bytes: usize,
    exceeded: Option<Exceeded>,
}

impl Limits {
    pub fn new(memory_bytes: u64) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            exceeded: None,
        }
    }

    /// The limit the guest ran into, if it did.
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let exceeded = Exceeded::Memory { desired };
            self.exceeded = Some(exceeded);
            // Trap rather than fail the grow: a Rust guest would abort on a
            // failed allocation anyway, with a less useful message.
            wasmtime::bail!("{}", exceeded.message(self.memory_bytes));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            let exceeded = Exceeded::Table { desired };
            self.exceeded = Some(exceeded);
            wasmtime::bail!("{}", exceeded.message(self.memory_bytes));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_limit_is_refused_and_remembered() {
        let mut limits = Limits::new(64 << 20);
        assert!(limits.memory_growing(0, 32 << 20, None).unwrap());
        assert_eq!(limits.exceeded(), None);

        let error = limits.memory_growing(32 << 20, 65 << 20, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "memory limit exceeded: the guest asked for 65 MiB, the module allows 64 MiB"
        );
        assert_eq!(
            limits.exceeded(),
            Some(Exceeded::Memory { desired: 65 << 20 })
        );
    }
}
