//! The state machine under [`WaiterQueue`](super::WaiterQueue) and
//! [`Mutex`](super::Mutex): FIFO tickets, and which were signalled one at a time.
//!
//! A ticket leaves `waiting` when it is signalled. A waiter signalled by
//! `signal_one` that goes away without noticing must pass the signal on (or a
//! notify_one / a mutex hand-off would be lost), so those tickets are kept in
//! `handed` until their waiter observes or cancels them.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::task::Waker;

/// What a waiter's poll found.
pub(crate) enum Status {
    /// Still waiting; carries the waker this poll replaced (drop it after unlocking).
    Waiting(Option<Waker>),
    /// Signalled.
    Signalled,
}

/// What a waiter that went away was.
pub(crate) enum Cancelled {
    /// Still waiting; carries its waker (drop it after unlocking).
    Waiting(Option<Waker>),
    /// Signalled by `signal_one`, not observed: the signal must be passed on.
    SignalledOne,
    /// Signalled by `signal_all` (nothing to pass on).
    SignalledAll,
}

#[derive(Default)]
pub(crate) struct WaitList {
    next: u64,
    /// Tickets in increasing order, so lookups are binary searches.
    waiting: VecDeque<(u64, Option<Waker>)>,
    handed: Vec<u64>,
}

impl WaitList {
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A new ticket at the back of the queue.
    pub(crate) fn register(&mut self, waker: Option<Waker>) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.waiting.push_back((ticket, waker));
        ticket
    }

    fn find(&self, ticket: u64) -> Option<usize> {
        self.waiting.binary_search_by_key(&ticket, |e| e.0).ok()
    }

    fn forget_handed(&mut self, ticket: u64) -> bool {
        match self.handed.iter().position(|&t| t == ticket) {
            Some(i) => {
                self.handed.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Checks `ticket`, storing `waker` if it is still waiting.
    pub(crate) fn poll(&mut self, ticket: u64, waker: &Waker) -> Status {
        match self.find(ticket) {
            Some(i) => {
                let slot = &mut self.waiting[i].1;
                match slot {
                    Some(w) if w.will_wake(waker) => Status::Waiting(None),
                    _ => Status::Waiting(slot.replace(waker.clone())),
                }
            }
            None => {
                self.forget_handed(ticket);
                Status::Signalled
            }
        }
    }

    /// The waiter of `ticket` went away.
    pub(crate) fn cancel(&mut self, ticket: u64) -> Cancelled {
        if let Some(i) = self.find(ticket) {
            let (_, waker) = self.waiting.remove(i).expect("index from find");
            Cancelled::Waiting(waker)
        } else if self.forget_handed(ticket) {
            Cancelled::SignalledOne
        } else {
            Cancelled::SignalledAll
        }
    }

    /// Signals the oldest waiter: `Some(its waker, if it was polled)`, or `None` if
    /// nobody waits.
    pub(crate) fn signal_one(&mut self) -> Option<Option<Waker>> {
        let (ticket, waker) = self.waiting.pop_front()?;
        self.handed.push(ticket);
        Some(waker)
    }

    /// Signals every waiter; returns them (wake them after unlocking).
    pub(crate) fn signal_all(&mut self) -> VecDeque<(u64, Option<Waker>)> {
        core::mem::take(&mut self.waiting)
    }
}
