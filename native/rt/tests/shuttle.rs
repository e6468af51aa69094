//! Model checking of WaiterQueue and Mutex under shuttle: random schedules of tasks
//! and threads over a lock built from shuttle's atomics, so every lock acquisition
//! and every atomic is a point where shuttle may switch threads. A lost wake-up shows
//! as shuttle's deadlock report; a broken lock as a wrong count.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use exitless_rt::{Mutex, RawLock, WaiterQueue};
use shuttle::future::{block_on, spawn, yield_now};
use shuttle::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

const ITERATIONS: usize = 3_000;

/// A spin lock whose spins yield to shuttle's scheduler.
struct ShuttleLock(AtomicBool);

// SAFETY: `swap(true)` succeeds for one caller until `store(false)`; shuttle's
// atomics are sequentially consistent.
unsafe impl RawLock for ShuttleLock {
    fn new() -> Self {
        Self(AtomicBool::new(false))
    }
    fn lock(&self) {
        while self.0.swap(true, SeqCst) {
            shuttle::hint::spin_loop();
        }
    }
    fn try_lock(&self) -> bool {
        !self.0.swap(true, SeqCst)
    }
    unsafe fn unlock(&self) {
        self.0.store(false, SeqCst);
    }
}

type Queue = WaiterQueue<ShuttleLock>;

/// Takes a token, waiting on `q` until there is one (the wait-then-check pattern).
async fn take(q: &Queue, tokens: &AtomicUsize) {
    loop {
        let w = q.wait();
        if tokens.fetch_update(SeqCst, SeqCst, |t| t.checked_sub(1)).is_ok() {
            return;
        }
        w.await;
    }
}

#[test]
fn notify_one_is_never_lost() {
    shuttle::check_random(
        || {
            let q = Arc::new(Queue::with_lock());
            let tokens = Arc::new(AtomicUsize::new(0));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let (q, tokens) = (q.clone(), tokens.clone());
                    spawn(async move { take(&q, &tokens).await })
                })
                .collect();
            let notifiers: Vec<_> = (0..2)
                .map(|_| {
                    let (q, tokens) = (q.clone(), tokens.clone());
                    shuttle::thread::spawn(move || {
                        tokens.fetch_add(1, SeqCst);
                        q.notify_one();
                    })
                })
                .collect();
            for w in waiters {
                block_on(w).unwrap();
            }
            for n in notifiers {
                n.join().unwrap();
            }
        },
        ITERATIONS,
    );
}

#[test]
fn notify_all_wakes_everyone() {
    shuttle::check_random(
        || {
            let q = Arc::new(Queue::with_lock());
            let open = Arc::new(AtomicBool::new(false));
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let (q, open) = (q.clone(), open.clone());
                    spawn(async move {
                        loop {
                            let w = q.wait();
                            if open.load(SeqCst) {
                                return;
                            }
                            w.await;
                        }
                    })
                })
                .collect();
            open.store(true, SeqCst);
            q.notify_all();
            for w in waiters {
                block_on(w).unwrap();
            }
        },
        ITERATIONS,
    );
}

#[test]
fn cancelled_waiter_passes_notification_on() {
    shuttle::check_random(
        || {
            let q = Arc::new(Queue::with_lock());
            let tokens = Arc::new(AtomicUsize::new(0));
            // Joins the queue first, then gives up at a random point. If its one poll
            // already saw the notification it consumed it, and, taking no token, must
            // pass it on itself (as any waiter that declines).
            let quitter = {
                let q = q.clone();
                spawn(async move {
                    let mut w = pin!(q.wait());
                    let notified = poll_fn(|cx| Poll::Ready(w.as_mut().poll(cx).is_ready())).await;
                    yield_now().await;
                    if notified {
                        q.notify_one();
                    }
                })
            };
            let waiter = {
                let (q, tokens) = (q.clone(), tokens.clone());
                spawn(async move { take(&q, &tokens).await })
            };
            tokens.fetch_add(1, SeqCst);
            q.notify_one();
            block_on(quitter).unwrap();
            block_on(waiter).unwrap();
        },
        ITERATIONS,
    );
}

#[test]
fn mutex_excludes_and_hands_over() {
    shuttle::check_random(
        || {
            let m = Arc::new(Mutex::<usize, ShuttleLock>::with_lock(0));
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    let m = m.clone();
                    spawn(async move {
                        for _ in 0..2 {
                            let mut g = m.lock().await;
                            let v = *g;
                            yield_now().await;
                            *g = v + 1;
                        }
                    })
                })
                .collect();
            // A locker that gives up after one poll (maybe after being handed the lock).
            let quitter = {
                let m = m.clone();
                spawn(async move {
                    let mut l = pin!(m.lock());
                    let got = poll_fn(|cx| Poll::Ready(l.as_mut().poll(cx).is_ready())).await;
                    if !got {
                        yield_now().await;
                    }
                })
            };
            for t in tasks {
                block_on(t).unwrap();
            }
            block_on(quitter).unwrap();
            assert_eq!(*m.try_lock().expect("unlocked at the end"), 6);
        },
        ITERATIONS,
    );
}
