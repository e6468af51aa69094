//! The completion validator fed arbitrary completions: `SlotTable`, `RingSlots`
//! (what an io_uring backend does with each CQE) and `check_ring`, each run next to a
//! model of what is in flight.
//!
//! Input, a byte program: `mode (1) ‖ size (1) ‖ buffer (1) ‖ op*`, each op 8 bytes
//! `code, a, b, c, x (u32 LE)`. Mode bit 0 picks the `SlotTable` (0) or the
//! `RingSlots` (1) program; `1 + size % 8` slots (ring: data slots, plus fsync);
//! `buffer` sizes the ring's slot buffers. Completions carry the `user_data` of an
//! operation in flight, a stale one, one for a slot out of range, or raw bytes, and
//! a result that is exact, short, zero, too long, an allowed errno, another
//! negative number or raw bytes (see `pick_user_data` and `pick_result`).
//!
//! Checked after every step: no panic; the validator accepts a completion exactly
//! when the model says it is for the operation in flight on its slot, with that
//! generation, a length within the request and an allowed errno (never for a free
//! slot or another generation), with the model's verdict and outcome; `in_flight`,
//! `is_busy`, `user_data` and the counters agree with the model; a rejection changes
//! nothing.
#![no_main]

use exitless_io::backend::{Counters, OpKind};
use exitless_io::errno;
use exitless_io::ring::{RingSlots, Step, Submission, SubmitOp};
use exitless_io::untrusted::PAGE;
use exitless_io::validate::{check_ring, Outcome, Rejected, SlotTable, ALLOWED_ERRNOS};
use libfuzzer_sys::fuzz_target;

/// One op of the program.
#[derive(Clone, Copy, Debug)]
struct Op {
    code: u8,
    a: u8,
    b: u8,
    c: u8,
    x: u32,
}

fn ops(data: &[u8]) -> impl Iterator<Item = Op> + '_ {
    data.chunks_exact(8).map(|o| Op {
        code: o[0],
        a: o[1],
        b: o[2],
        c: o[3],
        x: u32::from_le_bytes([o[4], o[5], o[6], o[7]]),
    })
}

/// A slot's state in the model: generation of its last start, and the request in flight.
#[derive(Clone, Copy, Debug, Default)]
struct SlotModel {
    generation: u32,
    /// `(user_data, requested bytes)` of the operation in flight.
    in_flight: Option<(u64, u32)>,
}

fn user_data(generation: u32, slot: usize) -> u64 {
    (u64::from(generation) << 32) | slot as u64
}

/// A completion's `user_data`: real, stale, out of range, or raw.
fn pick_user_data(op: Op, slots: &[SlotModel]) -> u64 {
    let n = slots.len();
    let slot = usize::from(op.c) % n;
    let s = slots[slot];
    match op.b % 4 {
        0 => s.in_flight.map_or(user_data(s.generation, slot), |(ud, _)| ud),
        1 => user_data(s.generation.wrapping_sub(1 + (op.x & 3)), slot),
        2 => user_data(s.generation, n + usize::from(op.c)),
        _ => u64::from(op.x) | (u64::from(op.c) << 32) | (u64::from(op.a) << 56),
    }
}

/// A completion's result for an operation that requested `requested` bytes.
fn pick_result(op: Op, requested: u32) -> i32 {
    match op.a % 8 {
        0 => requested.min(i32::MAX as u32) as i32,
        1 => (requested / 2) as i32,
        2 => 0,
        3 => requested.saturating_add(1).min(i32::MAX as u32) as i32,
        4 => -ALLOWED_ERRNOS[op.x as usize % ALLOWED_ERRNOS.len()],
        5 => -((op.x & 0xff) as i32),
        6 => op.x as i32,
        _ => i32::MIN,
    }
}

/// What the validator must say about `(user_data, result)`.
fn expected(slots: &[SlotModel], user_data: u64, result: i32) -> Result<Outcome, Rejected> {
    let slot = user_data as u32;
    let generation = (user_data >> 32) as u32;
    let Some(s) = slots.get(slot as usize) else { return Err(Rejected::UnknownSlot(slot)) };
    let Some((_, requested)) = s.in_flight else { return Err(Rejected::NotInFlight(slot)) };
    if s.generation != generation {
        return Err(Rejected::StaleGeneration { slot, expected: s.generation, got: generation });
    }
    if result >= 0 {
        if result as u32 > requested {
            return Err(Rejected::TooLong {
                slot,
                requested: u64::from(requested),
                reported: i64::from(result),
            });
        }
        Ok(Outcome::Done { slot, bytes: result as u32 })
    } else {
        let errno = result.checked_neg().unwrap_or(i32::MAX);
        if !ALLOWED_ERRNOS.contains(&errno) {
            return Err(Rejected::UnknownErrno { slot, errno });
        }
        Ok(Outcome::Failed { slot, errno })
    }
}

/// Applies an accepted verdict to the model, after checking it was for the operation in flight.
fn accept(slots: &mut [SlotModel], user_data: u64, verdict: &Result<Outcome, Rejected>) {
    if verdict.is_ok() {
        let s = &mut slots[user_data as u32 as usize];
        let (ud, _) = s.in_flight.expect("accepted a completion for a free slot");
        assert_eq!(ud, user_data, "accepted a completion of another generation");
        s.in_flight = None;
    }
}

fn in_flight(slots: &[SlotModel]) -> usize {
    slots.iter().filter(|s| s.in_flight.is_some()).count()
}

fn check_ring_op(op: Op, capacity: usize) {
    let available = op.x as usize % (2 * capacity + 2);
    let r = check_ring(available, capacity);
    if available > capacity {
        assert_eq!(r, Err(Rejected::RingOverrun { available, capacity }));
    } else {
        assert_eq!(r, Ok(()));
    }
}

fn slot_table(n: usize, program: &[u8]) {
    let mut table = SlotTable::new(n);
    let mut model = vec![SlotModel::default(); n];
    for op in ops(program) {
        match op.code % 4 {
            0 => {
                let slot = usize::from(op.a) % n;
                if model[slot].in_flight.is_some() {
                    continue; // starting a busy slot is a caller bug (it panics)
                }
                let ud = table.start(slot, op.x);
                let m = &mut model[slot];
                m.generation = m.generation.wrapping_add(1);
                assert_eq!(ud, user_data(m.generation, slot));
                m.in_flight = Some((ud, op.x));
            }
            1 => {
                let ud = pick_user_data(op, &model);
                let requested = model[usize::from(op.c) % n].in_flight.map_or(op.x, |(_, r)| r);
                let result = pick_result(op, requested);
                let want = expected(&model, ud, result);
                let got = table.complete(ud, result);
                assert_eq!(got, want, "user_data {ud:#x} result {result}");
                accept(&mut model, ud, &got);
            }
            2 => check_ring_op(op, usize::from(op.a)),
            _ => {}
        }
        assert_eq!(table.in_flight(), in_flight(&model));
        assert_eq!(table.len(), n);
        for (slot, m) in model.iter().enumerate() {
            assert_eq!(table.is_busy(slot), m.in_flight.is_some());
            assert_eq!(table.user_data(slot), m.in_flight.map(|(ud, _)| ud));
        }
        assert!(!table.is_busy(n) && table.user_data(n).is_none());
    }
}

/// The model of one ring slot's recorded operation.
#[derive(Clone, Copy, Debug)]
struct RecordedOp {
    kind: OpKind,
    fd: i32,
    offset: u64,
    len: usize,
    done: usize,
}

fn ring_slots(depth: usize, buffer_len: usize, program: &[u8]) {
    let mut ring = RingSlots::new(depth, buffer_len).expect("depth 1 to 8");
    let slot_len = buffer_len.max(1).div_ceil(PAGE) * PAGE;
    assert_eq!((ring.depth(), ring.slot_len(), ring.control_slot()), (depth, slot_len, depth));
    let mut model = vec![SlotModel::default(); depth + 1];
    let mut recorded: Vec<Option<RecordedOp>> = vec![None; depth + 1];
    let mut counters = Counters::default();
    let mut want_counters = Counters::default();
    for op in ops(program) {
        match op.code % 6 {
            0 => {
                // begin: any slot, including the fsync slot and one out of range.
                let slot = usize::from(op.a) % (depth + 2);
                let kind = if op.b & 1 == 0 { OpKind::Read } else { OpKind::Write };
                let len = (op.x >> 8) as usize % (slot_len + 2);
                let offset = u64::from(op.x) << 12;
                let fd = i32::from(op.c);
                let r = ring.begin(slot, kind, fd, offset, len);
                let busy = model.get(slot).is_some_and(|m| m.in_flight.is_some());
                if slot >= depth || busy || len > slot_len {
                    assert!(r.is_err(), "begin on slot {slot} (busy {busy}, len {len}) accepted");
                } else {
                    assert_eq!(r.expect("begin on a free data slot"), slot * slot_len);
                    recorded[slot] = Some(RecordedOp { kind, fd, offset, len, done: 0 });
                }
            }
            1 => {
                if model[depth].in_flight.is_some() {
                    continue; // a second control op in flight is a caller bug (it panics)
                }
                // fsync and most file ops may return only 0; an open, a descriptor.
                let fd = i32::from(op.c);
                let max = if op.b & 1 == 0 { 0 } else { i32::MAX as u32 };
                assert_eq!(ring.begin_control(fd, max), depth);
                recorded[depth] =
                    Some(RecordedOp { kind: OpKind::Write, fd, offset: 0, len: max as usize, done: 0 });
            }
            2 => {
                let slot = usize::from(op.a) % (depth + 1);
                let Some(rec) = recorded[slot] else { continue };
                if model[slot].in_flight.is_some() {
                    continue; // submitting a busy slot is a caller bug (it panics)
                }
                let sub = ring.submit(slot);
                let m = &mut model[slot];
                m.generation = m.generation.wrapping_add(1);
                let len = (rec.len - rec.done) as u32;
                let ud = user_data(m.generation, slot);
                m.in_flight = Some((ud, len));
                let want = if slot == depth {
                    Submission {
                        user_data: ud,
                        op: SubmitOp::Control,
                        fd: rec.fd,
                        buf_offset: ring.control_offset(),
                        buf_index: 0,
                        len,
                        file_offset: 0,
                    }
                } else {
                    Submission {
                        user_data: ud,
                        op: if rec.kind == OpKind::Read { SubmitOp::ReadFixed } else { SubmitOp::WriteFixed },
                        fd: rec.fd,
                        buf_offset: slot * slot_len + rec.done,
                        buf_index: slot as u16,
                        len,
                        file_offset: rec.offset + rec.done as u64,
                    }
                };
                assert_eq!(sub, want);
                if slot < depth {
                    assert!(sub.buf_offset + sub.len as usize <= ring.region_len());
                }
            }
            3 => {
                let ud = pick_user_data(op, &model);
                let requested = model[usize::from(op.c) % (depth + 1)].in_flight.map_or(op.x, |(_, r)| r);
                let result = pick_result(op, requested);
                let verdict = expected(&model, ud, result);
                let got = ring.complete(ud, result, &mut counters);
                let outcome = match (&got, &verdict) {
                    (Err(g), Err(w)) => {
                        assert_eq!(g, w, "user_data {ud:#x} result {result}");
                        None
                    }
                    (Ok(_), Ok(o)) => Some(*o),
                    (g, w) => panic!("user_data {ud:#x} result {result}: got {g:?}, model says {w:?}"),
                };
                accept(&mut model, ud, &verdict);
                if let (Some(outcome), Ok(step)) = (outcome, got) {
                    ring_step(outcome, step, depth, &mut recorded, &mut want_counters);
                }
            }
            4 => check_ring_op(op, ring.sq_entries() as usize),
            _ => {
                let slot = usize::from(op.a) % depth;
                let len = (op.x as usize) % (slot_len + 1);
                if model[slot].in_flight.is_none() {
                    assert_eq!(ring.copy_out_offset(slot, 0, len), slot * slot_len);
                }
            }
        }
        assert_eq!(ring.in_flight(), in_flight(&model));
        assert_eq!(
            (counters.ops, counters.bytes, counters.resubmits),
            (want_counters.ops, want_counters.bytes, want_counters.resubmits)
        );
        for (slot, m) in model.iter().enumerate() {
            assert_eq!(ring.is_busy(slot), m.in_flight.is_some());
            assert_eq!(ring.user_data(slot), m.in_flight.map(|(ud, _)| ud));
            assert_eq!(ring.fd(slot), recorded[slot].map(|r| r.fd));
            if slot < depth {
                let free_and_in_range = m.in_flight.is_none();
                assert_eq!(ring.check_free(slot).is_ok(), free_and_in_range);
            }
        }
        assert!(ring.check_free(depth).is_err() && ring.check_free(depth + 1).is_err());
    }
}

/// Checks the step `RingSlots::complete` made of an accepted completion against the model.
fn ring_step(
    outcome: Outcome,
    step: Step,
    depth: usize,
    recorded: &mut [Option<RecordedOp>],
    counters: &mut Counters,
) {
    let (slot, finished): (usize, Result<usize, Option<i32>>) = match outcome {
        Outcome::Done { slot, bytes } => {
            let slot = slot as usize;
            let rec = recorded[slot].as_mut().expect("an accepted completion has a recorded operation");
            rec.done += bytes as usize;
            assert!(rec.done <= rec.len, "more bytes done than requested");
            if rec.done == rec.len || slot == depth || (rec.kind == OpKind::Read && bytes == 0) {
                (slot, Ok(rec.done))
            } else if bytes == 0 {
                (slot, Err(None))
            } else {
                counters.resubmits += 1;
                assert!(matches!(step, Step::Resubmit(s) if s == slot), "{step:?}");
                return;
            }
        }
        Outcome::Failed { slot, errno } => {
            let slot = slot as usize;
            if errno == errno::EINTR || errno == errno::EAGAIN {
                counters.resubmits += 1;
                assert!(matches!(step, Step::Resubmit(s) if s == slot), "{step:?}");
                return;
            }
            (slot, Err(Some(errno)))
        }
    };
    let Step::Finished(c) = step else { panic!("expected slot {slot} to finish, got {step:?}") };
    assert_eq!(c.slot, slot);
    // A control op's result (a descriptor, or 0) is no byte count, and its driver
    // counts it: only data slots are counted here.
    let data = slot != depth;
    match (finished, c.result) {
        (Ok(n), Ok(m)) => {
            assert_eq!(n, m);
            if data {
                counters.bytes += n as u64;
            }
        }
        (Err(None), Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::WriteZero),
        (Err(Some(errno)), Err(e)) => assert_eq!(e.raw_os_error(), Some(errno)),
        (want, got) => panic!("slot {slot}: expected {want:?}, got {got:?}"),
    }
    if data {
        counters.ops += 1;
    }
    recorded[slot] = None;
}

fuzz_target!(|data: &[u8]| {
    let [mode, size, buffer, ref program @ ..] = *data else { return };
    let n = 1 + usize::from(size % 8);
    if mode & 1 == 0 {
        slot_table(n, program);
    } else {
        ring_slots(n, 1 + usize::from(buffer) * 61, program);
    }
});
