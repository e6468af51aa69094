//! Fault injection: make the *n*-th read, write or fsync of a stream fail, be
//! interrupted, or transfer only part of its bytes, at the place where a backend
//! meets the kernel, so the backend's own error and retry paths run exactly as they
//! would for a real full disk, a failing device or a signal.
//!
//! A [`FaultPlan`] is given to a backend with [`crate::Backend::set_faults`]; the
//! spill streams do that when their options carry one (`SpillOptions::faults`; the
//! C ABI's `ExitlessOptions::faults`; Python's `open_spill(..., faults=...)`).
//! Nothing is injected otherwise: a backend without a plan pays one `Option` check
//! per operation. Injection adds no capability an attacker lacks: the untrusted
//! host kernel can return every one of these results on its own, and the design
//! must (and these tests check that it does) turn each into an error or a
//! transparent retry, never into short or corrupted plaintext.
//!
//! What each fault does to the *first* attempt of the operation it hits:
//! - `enospc`, `eio`: the attempt fails with that errno and moves no bytes (the
//!   syscall is not made; io_uring gets a NOP whose result is replaced).
//! - `eintr`: the attempt fails with EINTR and moves no bytes; backends retry it.
//! - `short`: the attempt moves only about half the bytes (rounded down to 512, so
//!   O_DIRECT stays aligned); backends resubmit the remainder.
//! - `forge`: the attempt's completion is forged as a hostile kernel would forge
//!   it: it claims one byte more than was requested. The validator rejects it, the
//!   backend refuses all further work, and the stream fails with a
//!   [`RejectedCompletion`](crate::error::RejectedCompletion). Only io_uring, whose
//!   completions pass the validator, applies it ([`FaultPlan::next_injection`]);
//!   the other backends pass it by ([`FaultPlan::next`]), and the spill streams
//!   refuse a plan that forges on them ([`FaultPlan::forges`]). Reads and writes
//!   only, not fsync.
//!
//! Spec syntax (comma-separated rules): `FAULT@TARGET` with FAULT one of `enospc`,
//! `eio`, `eintr`, `short`, `forge`, and TARGET one of `segment=N` or `write=N` (the N-th
//! write of the stream, counting from 0: a writer writes segment N as its N-th
//! write while the stream is short; past its first MiB, one write carries many
//! segments), `read=N` (the N-th read; a reader of a short stream first reads the
//! final segment, then segments 0, 1, ...; a long stream's reads carry many
//! segments), `write=*`, `read=*` (every one), or `fsync`. Example:
//! `enospc@segment=7`, `short@write=*,short@read=*`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::errno;
use crate::op::OpKind;

/// What happens to the first attempt of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The attempt fails with this errno (positive) and moves no bytes.
    Errno(i32),
    /// The attempt moves only part of the bytes ([`Fault::short_len`]).
    Short,
}

impl Fault {
    /// How many of `len` bytes a short first attempt moves: half, rounded down to a
    /// multiple of 512 when that leaves at least 512 (O_DIRECT stays aligned), else
    /// half; `len` itself when `len < 2` (nothing shorter is possible).
    pub fn short_len(len: usize) -> usize {
        let half = len / 2;
        if half >= 512 {
            half / 512 * 512
        } else if half >= 1 {
            half
        } else {
            len
        }
    }
}

/// Which operations a rule hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The N-th write (0-based) since the plan was set.
    Write(u64),
    /// The N-th read (0-based).
    Read(u64),
    /// Every write.
    AllWrites,
    /// Every read.
    AllReads,
    /// Every fsync.
    Fsync,
}

/// What a rule does to the operations it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injection {
    /// A fault every syscall backend applies where it meets the kernel.
    Fault(Fault),
    /// A forged completion, which the validator must reject (io_uring only; see
    /// the module documentation).
    Forge,
}

/// One `FAULT@TARGET` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What happens.
    pub injection: Injection,
    /// To which operations.
    pub target: Target,
}

/// Parses a spec (see the module documentation) into rules.
pub fn parse(spec: &str) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (fault, target) =
            part.split_once('@').ok_or_else(|| format!("fault rule {part:?} is not FAULT@TARGET"))?;
        let injection = match fault.trim() {
            "enospc" => Injection::Fault(Fault::Errno(errno::ENOSPC)),
            "eio" => Injection::Fault(Fault::Errno(errno::EIO)),
            "eintr" => Injection::Fault(Fault::Errno(errno::EINTR)),
            "short" => Injection::Fault(Fault::Short),
            "forge" => Injection::Forge,
            other => return Err(format!("unknown fault {other:?} (enospc, eio, eintr, short, forge)")),
        };
        let target = match target.trim().split_once('=') {
            None if target.trim() == "fsync" => Target::Fsync,
            Some(("write" | "segment", "*")) => Target::AllWrites,
            Some(("read", "*")) => Target::AllReads,
            Some((what, n)) if matches!(what, "write" | "segment" | "read") => {
                let n: u64 = n.parse().map_err(|_| format!("fault rule {part:?}: {n:?} is not a number"))?;
                if what == "read" {
                    Target::Read(n)
                } else {
                    Target::Write(n)
                }
            }
            _ => {
                return Err(format!(
                    "fault rule {part:?}: target must be segment=N, write=N, read=N, write=*, read=* or fsync"
                ))
            }
        };
        if injection == Injection::Forge && target == Target::Fsync {
            return Err(format!("fault rule {part:?}: forge applies to reads and writes, not fsync"));
        }
        rules.push(Rule { injection, target });
    }
    if rules.is_empty() {
        return Err(format!("fault spec {spec:?} has no rules"));
    }
    Ok(rules)
}

/// Rules plus counters of the operations seen so far: decides, operation by
/// operation, which fault (if any) to inject. Shared (`Arc`) by the backends of
/// every stream opened with it; counting starts at zero when it is made.
#[derive(Debug)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    writes: AtomicU64,
    reads: AtomicU64,
    injected: AtomicU64,
}

impl FaultPlan {
    /// A plan from parsed rules.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules, writes: AtomicU64::new(0), reads: AtomicU64::new(0), injected: AtomicU64::new(0) }
    }

    /// A plan from a spec string.
    pub fn parse(spec: &str) -> Result<Self, String> {
        parse(spec).map(Self::new)
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Counts one read or write starting now; returns the fault to inject into it.
    /// A backend whose completions pass no validator calls this: a `forge` rule
    /// passes it by (nothing injected).
    pub fn next(&self, op: OpKind) -> Option<Fault> {
        match self.hit(op)?.injection {
            Injection::Fault(fault) => self.count(fault),
            Injection::Forge => None,
        }
    }

    /// As [`next`](Self::next), for a backend that validates its completions
    /// (io_uring): a `forge` rule is injected too.
    pub fn next_injection(&self, op: OpKind) -> Option<Injection> {
        let injection = self.hit(op)?.injection;
        self.count(injection)
    }

    /// Whether a rule forges completions (which only io_uring applies).
    pub fn forges(&self) -> bool {
        self.rules.iter().any(|r| r.injection == Injection::Forge)
    }

    /// Counts one read or write starting now; returns the rule that hits it.
    fn hit(&self, op: OpKind) -> Option<&Rule> {
        let (counter, all) = match op {
            OpKind::Write => (&self.writes, Target::AllWrites),
            OpKind::Read => (&self.reads, Target::AllReads),
        };
        let n = counter.fetch_add(1, Relaxed);
        self.rules.iter().find(|r| {
            r.target == all
                || match (op, r.target) {
                    (OpKind::Write, Target::Write(k)) | (OpKind::Read, Target::Read(k)) => k == n,
                    _ => false,
                }
        })
    }

    /// An fsync starting now: the fault to inject into it.
    pub fn next_fsync(&self) -> Option<Fault> {
        // `parse` admits no forge rule for fsync.
        match self.rules.iter().find(|r| r.target == Target::Fsync)?.injection {
            Injection::Fault(fault) => self.count(fault),
            Injection::Forge => None,
        }
    }

    fn count<T>(&self, injected: T) -> Option<T> {
        self.injected.fetch_add(1, Relaxed);
        Some(injected)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Relaxed)
    }

    /// (writes, reads) seen so far.
    pub fn seen(&self) -> (u64, u64) {
        (self.writes.load(Relaxed), self.reads.load(Relaxed))
    }
}

/// The fault for the next operation of kind `op`, if `plan` is set.
#[cfg(feature = "std")]
pub(crate) fn next(plan: &Option<alloc::sync::Arc<FaultPlan>>, op: OpKind) -> Option<Fault> {
    plan.as_ref().and_then(|p| p.next(op))
}

/// What to inject into the next operation of kind `op` (a forgery too), if `plan` is set.
#[cfg(feature = "std")]
pub(crate) fn next_injection(plan: &Option<alloc::sync::Arc<FaultPlan>>, op: OpKind) -> Option<Injection> {
    plan.as_ref().and_then(|p| p.next_injection(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_counts_operations() {
        let plan = FaultPlan::parse("enospc@segment=2, short@read=*,eio@fsync").unwrap();
        assert_eq!(plan.rules().len(), 3);
        let writes: Vec<_> = (0..4).map(|_| plan.next(OpKind::Write)).collect();
        assert_eq!(writes, [None, None, Some(Fault::Errno(errno::ENOSPC)), None]);
        assert_eq!(plan.next(OpKind::Read), Some(Fault::Short));
        assert_eq!(plan.next(OpKind::Read), Some(Fault::Short));
        assert_eq!(plan.next_fsync(), Some(Fault::Errno(errno::EIO)));
        assert_eq!((plan.injected(), plan.seen()), (4, (4, 2)));
        let plan = FaultPlan::parse("eintr@write=*").unwrap();
        assert_eq!(plan.next(OpKind::Write), Some(Fault::Errno(errno::EINTR)));
        assert_eq!(plan.next(OpKind::Read), None);
        assert_eq!(plan.next_fsync(), None);
        for bad in
            ["", "enospc", "boom@write=1", "eio@write=x", "eio@somewhere", "eio@read=-1", "forge@fsync"]
        {
            assert!(FaultPlan::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forgeries_reach_only_backends_that_validate() {
        let plan = FaultPlan::parse("forge@write=1,eio@write=2").unwrap();
        assert!(plan.forges() && !FaultPlan::parse("eio@write=1").unwrap().forges());
        assert_eq!(plan.next_injection(OpKind::Write), None);
        assert_eq!(plan.next_injection(OpKind::Write), Some(Injection::Forge));
        assert_eq!(plan.next_injection(OpKind::Write), Some(Injection::Fault(Fault::Errno(errno::EIO))));
        assert_eq!(plan.injected(), 2);
        // A backend without a validator passes the forgery by, and counts the write.
        let plan = FaultPlan::parse("forge@write=*").unwrap();
        assert_eq!((plan.next(OpKind::Write), plan.next(OpKind::Read)), (None, None));
        assert_eq!((plan.injected(), plan.seen()), (0, (1, 1)));
    }

    #[test]
    fn short_lengths_stay_aligned_and_short() {
        assert_eq!(Fault::short_len(65536), 32768);
        assert_eq!(Fault::short_len(4096), 2048);
        assert_eq!(Fault::short_len(5000), 2048);
        assert_eq!(Fault::short_len(1000), 500);
        assert_eq!(Fault::short_len(2), 1);
        assert_eq!(Fault::short_len(1), 1);
        assert_eq!(Fault::short_len(0), 0);
    }
}
