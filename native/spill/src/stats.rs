//! What one stream did.

use exitless_io::Counters;

/// Counters of one stream: its backend's work (its file's lifecycle included:
/// `io.file_ops`) plus the system calls the stream made outside it (a reader's
/// `lseek` for holes), each of which is an exit inside an enclave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// The backend's counters for this stream.
    pub io: Counters,
    /// System calls the stream made itself, outside the backend.
    pub stream_syscalls: u64,
    /// Segments sealed (writer) or opened (reader).
    pub segments: u64,
    /// Plaintext bytes written or read.
    pub plaintext_bytes: u64,
    /// Whether the file was opened with O_DIRECT.
    pub direct: bool,
}

impl StreamStats {
    /// Enclave exits in all: the backend's plus the stream's own system calls.
    pub fn total_exits(&self) -> u64 {
        self.io.exits + self.stream_syscalls
    }
}
