//! Completion validation: nothing the untrusted kernel writes into the completion
//! ring is used before it is checked. Pure logic (core + alloc only), so it builds
//! for the enclave and is easy to feed forged completions in tests.
//!
//! - `user_data` = generation (high 32 bits) ‖ slot index (low 32 bits); the slot must
//!   exist, be in flight, and carry that generation (a stale or duplicated completion
//!   fails).
//! - A non-negative result must not exceed the bytes still requested.
//! - A negative result must be an errno from [`ALLOWED_ERRNOS`].
//! - The number of completions the ring claims to hold must not exceed its size,
//!   compared against a trusted copy taken at setup.

use alloc::vec::Vec;
use core::fmt;

use crate::errno;

/// Errnos a read, write or fsync on a regular file, or an open, close, unlink,
/// stat, truncate or allocate, may legitimately return (Linux numbers, [`crate::errno`]).
pub const ALLOWED_ERRNOS: &[i32] = &[
    errno::EIO,
    errno::ENOSPC,
    errno::EDQUOT,
    errno::EFBIG,
    errno::EINTR,
    errno::EAGAIN,
    errno::EBADF,
    errno::EINVAL,
    errno::EROFS,
    errno::ENXIO,
    errno::ECANCELED,
    errno::EOPNOTSUPP,
    errno::ENOMEM,
    errno::EPERM,
    errno::EACCES,
    errno::EFAULT,
    errno::ESPIPE,
    errno::ENOENT,
    errno::EBUSY,
    errno::EEXIST,
    errno::ENODEV,
    errno::ENOTDIR,
    errno::EISDIR,
    errno::ENFILE,
    errno::EMFILE,
    errno::ETXTBSY,
    errno::EMLINK,
    errno::ENAMETOOLONG,
    errno::ELOOP,
    errno::EOVERFLOW,
];

/// Why a completion was rejected. (Fields are what the forged entry claimed.)
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The slot index is outside the table.
    UnknownSlot(u32),
    /// The slot has no operation in flight (a duplicate or invented completion).
    NotInFlight(u32),
    /// The generation does not match the slot's current operation (stale).
    StaleGeneration { slot: u32, expected: u32, got: u32 },
    /// More bytes reported than were requested. (Wide enough for any reporter: a
    /// ring completion's result is an `i32`, a switchless worker's an `i64`.)
    TooLong { slot: u32, requested: u64, reported: i64 },
    /// An errno no file operation returns.
    UnknownErrno { slot: u32, errno: i32 },
    /// The ring claims more completions than it can hold.
    RingOverrun { available: usize, capacity: usize },
}

impl Rejected {
    /// The slot whose operation in flight the completion answers, when it carried
    /// that operation's exact `user_data` (so the slot is the one the trusted side
    /// submitted on, and only the result was bad): [`TooLong`](Self::TooLong) and
    /// [`UnknownErrno`](Self::UnknownErrno). `None` for the others, whose slot is
    /// whatever the completion claimed.
    pub const fn in_flight_slot(&self) -> Option<u32> {
        match *self {
            Self::TooLong { slot, .. } | Self::UnknownErrno { slot, .. } => Some(slot),
            _ => None,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownSlot(s) => write!(f, "completion for unknown slot {s}"),
            Self::NotInFlight(s) => write!(f, "completion for slot {s}, which has nothing in flight"),
            Self::StaleGeneration { slot, expected, got } => {
                write!(f, "stale completion for slot {slot} (generation {got}, expected {expected})")
            }
            Self::TooLong { slot, requested, reported } => {
                write!(
                    f,
                    "completion for slot {slot} reports {reported} bytes, but {requested} were requested"
                )
            }
            Self::UnknownErrno { slot, errno } => {
                write!(f, "completion for slot {slot} has unexpected errno {errno}")
            }
            Self::RingOverrun { available, capacity } => {
                write!(f, "completion ring claims {available} entries but holds at most {capacity}")
            }
        }
    }
}

/// A checked completion.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `bytes` transferred (≤ the bytes requested).
    Done { slot: u32, bytes: u32 },
    /// The operation failed with this errno (from the allow-list).
    Failed { slot: u32, errno: i32 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    generation: u32,
    /// Bytes requested by the operation now in flight; `None` when idle.
    requested: Option<u32>,
}

/// The trusted record of what is in flight, one entry per slot.
#[derive(Debug)]
pub struct SlotTable {
    entries: Vec<Entry>,
    in_flight: usize,
}

impl SlotTable {
    /// A table of `slots` idle slots.
    pub fn new(slots: usize) -> Self {
        Self { entries: alloc::vec![Entry { generation: 0, requested: None }; slots], in_flight: 0 }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no slots.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Operations in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether `slot` has an operation in flight.
    pub fn is_busy(&self, slot: usize) -> bool {
        matches!(self.entries.get(slot), Some(e) if e.requested.is_some())
    }

    /// The `user_data` of the operation in flight on `slot`, if any.
    pub fn user_data(&self, slot: usize) -> Option<u64> {
        let e = self.entries.get(slot)?;
        e.requested.map(|_| (u64::from(e.generation) << 32) | slot as u64)
    }

    /// Records a new operation of `requested` bytes on idle `slot`; returns the
    /// `user_data` to submit it with. Panics if the slot is busy (a caller bug).
    pub fn start(&mut self, slot: usize, requested: u32) -> u64 {
        let e = &mut self.entries[slot];
        assert!(e.requested.is_none(), "slot {slot} is already in flight");
        e.generation = e.generation.wrapping_add(1);
        e.requested = Some(requested);
        self.in_flight += 1;
        (u64::from(e.generation) << 32) | slot as u64
    }

    /// Checks a completion. On success the slot is idle again (the caller may
    /// `start` it anew, e.g. to resubmit a short transfer's remainder); on rejection
    /// the table is unchanged.
    pub fn complete(&mut self, user_data: u64, result: i32) -> Result<Outcome, Rejected> {
        let slot = user_data as u32;
        let generation = (user_data >> 32) as u32;
        let e = self.entries.get_mut(slot as usize).ok_or(Rejected::UnknownSlot(slot))?;
        let requested = e.requested.ok_or(Rejected::NotInFlight(slot))?;
        if e.generation != generation {
            return Err(Rejected::StaleGeneration { slot, expected: e.generation, got: generation });
        }
        let outcome = if result >= 0 {
            if result as u32 > requested {
                return Err(Rejected::TooLong {
                    slot,
                    requested: u64::from(requested),
                    reported: i64::from(result),
                });
            }
            Outcome::Done { slot, bytes: result as u32 }
        } else {
            let errno = result.checked_neg().unwrap_or(i32::MAX);
            if !ALLOWED_ERRNOS.contains(&errno) {
                return Err(Rejected::UnknownErrno { slot, errno });
            }
            Outcome::Failed { slot, errno }
        };
        e.requested = None;
        self.in_flight -= 1;
        Ok(outcome)
    }
}

/// Checks the ring's claimed fill level against the trusted capacity.
pub fn check_ring(available: usize, capacity: usize) -> Result<(), Rejected> {
    if available > capacity {
        Err(Rejected::RingOverrun { available, capacity })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_real_completion_once() {
        let mut t = SlotTable::new(4);
        let ud = t.start(2, 4096);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.complete(ud, 4096), Ok(Outcome::Done { slot: 2, bytes: 4096 }));
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.complete(ud, 4096), Err(Rejected::NotInFlight(2)), "duplicate");
    }

    #[test]
    fn rejects_forgeries_without_changing_state() {
        let mut t = SlotTable::new(4);
        let ud = t.start(1, 100);
        assert_eq!(t.complete(ud, 101), Err(Rejected::TooLong { slot: 1, requested: 100, reported: 101 }));
        assert_eq!(t.complete(ud & !0xffff_ffff | 9, 10), Err(Rejected::UnknownSlot(9)));
        assert_eq!(
            t.complete((ud & 0xffff_ffff) | (7 << 32), 10).unwrap_err(),
            Rejected::StaleGeneration { slot: 1, expected: 1, got: 7 }
        );
        assert_eq!(t.complete(ud, -9999), Err(Rejected::UnknownErrno { slot: 1, errno: 9999 }));
        assert_eq!(t.complete(ud, i32::MIN), Err(Rejected::UnknownErrno { slot: 1, errno: i32::MAX }));
        assert_eq!(t.in_flight(), 1, "rejections leave the operation in flight");
        assert_eq!(t.complete(ud, -errno::ENOSPC), Ok(Outcome::Failed { slot: 1, errno: errno::ENOSPC }));
    }

    #[test]
    fn a_resubmission_makes_the_old_user_data_stale() {
        let mut t = SlotTable::new(1);
        let first = t.start(0, 10);
        assert_eq!(t.complete(first, 4), Ok(Outcome::Done { slot: 0, bytes: 4 }));
        let second = t.start(0, 6);
        assert!(matches!(t.complete(first, 6), Err(Rejected::StaleGeneration { .. })));
        assert_eq!(t.complete(second, 6), Ok(Outcome::Done { slot: 0, bytes: 6 }));
    }

    #[test]
    fn ring_bound() {
        assert!(check_ring(8, 8).is_ok());
        assert_eq!(check_ring(9, 8), Err(Rejected::RingOverrun { available: 9, capacity: 8 }));
    }
}
