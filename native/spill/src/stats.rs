//! What one stream did.

use exitless_io::Counters;

/// Counters of one stream: its backend's work plus the stream's own system calls
/// (open, stat, truncate, close), each of which is an exit inside an enclave.
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

/// `after - before`, field by field (a backend may be reused across streams).
pub(crate) fn delta(after: Counters, before: Counters) -> Counters {
    Counters {
        exits: after.exits - before.exits,
        syscalls: after.syscalls - before.syscalls,
        uring_enters: after.uring_enters - before.uring_enters,
        sqpoll_wakeups: after.sqpoll_wakeups - before.sqpoll_wakeups,
        bytes: after.bytes - before.bytes,
        ops: after.ops - before.ops,
        completions_rejected: after.completions_rejected - before.completions_rejected,
        resubmits: after.resubmits - before.resubmits,
        fallbacks: after.fallbacks - before.fallbacks,
    }
}
