//! The guest's stdout and stderr: kept in memory, bounded, never failing.
//!
//! wasmtime's `MemoryOutputPipe` refuses writes past its capacity, which
//! makes a Rust guest's `println!` panic. A [`TailPipe`] accepts every
//! write and keeps the last bytes, where a panic message lands.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// An output stream keeping its last `capacity` bytes.
#[derive(Debug, Clone)]
pub struct TailPipe {
    capacity: usize,
    tail: Arc<Mutex<VecDeque<u8>>>,
}

impl TailPipe {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tail: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
        }
    }

    /// The kept bytes, lossily decoded.
    pub fn contents(&self) -> String {
        let tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn append(&self, bytes: &[u8]) {
        let mut tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (tail.len() + bytes.len()).saturating_sub(self.capacity);
        tail.drain(..overflow);
        tail.extend(bytes);
    }
}

impl IsTerminal for TailPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for TailPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_bytes_are_kept() {
        let pipe = TailPipe::new(8);

        pipe.append(b"hello ");
        pipe.append(b"world");
        assert_eq!(pipe.contents(), "lo world");

        pipe.append(b"a much longer write");
        assert_eq!(pipe.contents(), "er write");
    }
}
