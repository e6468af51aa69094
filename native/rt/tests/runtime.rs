//! Integration tests of the scheduler, timers, scope, pollers, WaiterQueue and Mutex.

use std::collections::HashSet;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc, Mutex as StdMutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use exitless_rt::{current, sleep, timeout, yield_now, JoinError, Mutex, Poller, Runtime, WaiterQueue};

fn rt(name: &str, vcpus: usize) -> Runtime {
    Runtime::builder().name(name).vcpus(vcpus).build().expect("runtime")
}

/// Runs `f` on its own thread; fails the test (instead of hanging) after `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => {
            if h.is_finished() {
                // The closure panicked: surface its message.
                std::panic::resume_unwind(h.join().expect_err("closure ended without sending"));
            }
            panic!("test did not finish within {secs} s (lost wake-up or hang)")
        }
    }
}

/// Waits (up to 5 s) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Counts its drops.
struct Probe(Arc<AtomicUsize>);
impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("?").to_string()
}

#[test]
fn million_tasks_sum() {
    within(60, || {
        let rt = rt("million", 2);
        let n: u64 = 1_000_000;
        let sum = rt.block_on(async {
            let mut sum = 0u64;
            // Spawn in chunks so at most 100k task allocations are alive at once.
            for chunk in 0..10 {
                let handles: Vec<_> =
                    (chunk * n / 10..(chunk + 1) * n / 10).map(|i| rt.spawn(async move { i })).collect();
                for h in handles {
                    sum += h.await.expect("task");
                }
            }
            sum
        });
        assert_eq!(sum, n * (n - 1) / 2);
        let s = rt.stats();
        assert_eq!(s.spawned, n);
        assert_eq!(s.completed, n);
        eventually("live tasks back to 0", || rt.stats().live_tasks == 0);
        assert!(s.polls >= n);
        assert_eq!(s.exits, s.parks + s.unparks);
    });
}

fn cpu_work(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..5_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

#[test]
fn flooded_vcpu_gets_robbed() {
    within(60, || {
        let rt = rt("steal", 2);
        let rt2 = rt.clone();
        let names = Arc::new(StdMutex::new(HashSet::new()));
        let names2 = names.clone();
        let total = rt.block_on(rt.spawn(async move {
            // Spawned on a vCPU: all 10,000 land on this vCPU's own queue.
            let handles: Vec<_> = (0..10_000u64)
                .map(|i| {
                    let names = names2.clone();
                    rt2.spawn(async move {
                        names.lock().unwrap().insert(thread_name());
                        cpu_work(i)
                    })
                })
                .collect();
            let mut acc = 0u64;
            for h in handles {
                acc = acc.wrapping_add(h.await.unwrap());
            }
            acc
        }));
        let expect = (0..10_000u64).fold(0u64, |a, i| a.wrapping_add(cpu_work(i)));
        assert_eq!(total.unwrap(), expect);
        let stats = rt.stats();
        assert!(stats.steals > 0, "no steal: {stats:?}");
        let names = names.lock().unwrap();
        assert!(names.contains("steal-vcpu-0") && names.contains("steal-vcpu-1"), "ran on {names:?}");
    });
}

/// A sleep's deadline, when its task first polled it, when it completed, and the
/// order it completed in.
type Fired = (Instant, Instant, Instant, usize);

/// Sleeps with random durations, one task each.
fn run_sleeps(rt: &Runtime, n: usize, min_ms: u64, max_ms: u64) -> Vec<Fired> {
    let order = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let d = Duration::from_nanos(fastrand::u64(min_ms * 1_000_000..max_ms * 1_000_000));
                let order = order.clone();
                let s = rt.sleep(d);
                rt.spawn(async move {
                    let (deadline, first_poll) = (s.deadline(), Instant::now());
                    s.await;
                    let at = Instant::now();
                    (deadline, first_poll, at, order.fetch_add(1, SeqCst))
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    })
}

#[test]
fn timers_fire_in_order_never_early() {
    within(60, || {
        // One vCPU: the fire order is exactly the deadline order.
        let rt1 = rt("timers1", 1);
        let mut fired = run_sleeps(&rt1, 300, 30, 230);
        for (deadline, _, at, _) in &fired {
            assert!(at >= deadline, "fired {:?} early", *deadline - *at);
        }
        // A task first polled after its deadline (a descheduled vCPU under load) never
        // entered the timer queue: it completes at once, out of order by design.
        fired.retain(|(deadline, first_poll, ..)| first_poll < deadline);
        assert!(fired.len() >= 250, "most sleeps were timed: {}", fired.len());
        fired.sort_by_key(|f| f.3);
        for w in fired.windows(2) {
            assert!(w[0].0 <= w[1].0, "out of deadline order");
        }
        assert!(rt1.stats().timers_fired as usize >= fired.len());

        // Two vCPUs: never early.
        let rt2 = rt("timers2", 2);
        let fired = run_sleeps(&rt2, 1000, 0, 100);
        assert!(fired.iter().all(|(d, _, at, _)| at >= d));
        // A sleep from block_on with every vCPU parked.
        thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        rt2.block_on(rt2.sleep(Duration::from_millis(15)));
        assert!(t.elapsed() >= Duration::from_millis(15));
    });
}

#[test]
fn timeout_and_free_sleep() {
    within(30, || {
        let rt = rt("timeout", 2);
        rt.block_on(async {
            let t = Instant::now();
            let r = timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
            assert!(r.is_err() && t.elapsed() >= Duration::from_millis(20));
            assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
            sleep(Duration::from_millis(5)).await;
            assert!(current().is_some());
        });
        let inner = rt.block_on(rt.spawn(async {
            sleep(Duration::from_millis(5)).await;
            current().map(|r| r.vcpus())
        }));
        assert_eq!(inner.unwrap(), Some(2));
        assert!(current().is_none());
        let outside = catch_unwind(|| drop(sleep(Duration::from_millis(1))));
        assert!(outside.is_err(), "sleep outside a runtime must panic");
    });
}

#[test]
fn dropped_and_cancelled_handles_leak_nothing() {
    within(30, || {
        let rt = rt("leak", 2);
        let drops = Arc::new(AtomicUsize::new(0));
        let n = 3_000;
        let mut kept = Vec::new();
        for i in 0..n {
            let p = Probe(drops.clone());
            let h = rt.spawn(async move {
                let _p = p;
                match i % 3 {
                    0 => std::future::pending::<()>().await,
                    1 => sleep(Duration::from_secs(3600)).await,
                    _ => yield_now().await,
                }
            });
            match i % 4 {
                0 => h.cancel(),
                1 => drop(h),
                2 => kept.push(h),
                _ => h.detach(),
            }
        }
        // Cancel the kept ones from a task, the rest of the way through.
        let kept_done = rt.block_on(async {
            let mut finished = 0;
            for h in kept {
                if h.is_finished() {
                    finished += 1;
                }
                h.cancel();
            }
            finished
        });
        assert!(kept_done <= n);
        // Detached tasks waiting forever stay alive until shutdown; the rest are gone.
        let detached_forever = (0..n).filter(|i| i % 4 == 3 && i % 3 != 2).count();
        eventually("drops of cancelled tasks", || drops.load(SeqCst) == n - detached_forever);
        eventually("live tasks = detached waiters", || rt.stats().live_tasks == detached_forever as u64);
        let probe = rt.clone();
        rt.shutdown();
        assert_eq!(drops.load(SeqCst), n);
        assert_eq!(probe.stats().live_tasks, 0);
    });
}

#[test]
fn panics_surface_and_vcpus_survive() {
    within(30, || {
        let rt = rt("panic", 2);
        for i in 0..50 {
            let r = rt.block_on(rt.spawn(async move {
                if i >= 0 {
                    panic!("boom {i}");
                }
            }));
            match r {
                Err(e @ JoinError::Panicked(_)) => {
                    assert_eq!(e.panic_message(), Some(format!("boom {i}").as_str()))
                }
                other => panic!("expected a panic, got {other:?}"),
            }
        }
        let e = rt.spawn(async { panic!("joined") }).join().unwrap_err();
        assert!(e.to_string().contains("joined"));
        // Both vCPUs still run tasks: two tasks that can only finish together.
        let met = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let met = met.clone();
                rt.spawn(async move {
                    met.fetch_add(1, SeqCst);
                    let end = Instant::now() + Duration::from_secs(10);
                    while met.load(SeqCst) < 2 && Instant::now() < end {
                        std::hint::spin_loop();
                    }
                    thread_name()
                })
            })
            .collect();
        let names: HashSet<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(met.load(SeqCst), 2);
        assert_eq!(names.len(), 2, "both vCPUs ran: {names:?}");
        let s = rt.stats();
        assert_eq!(s.completed, 2);
        eventually("live 0", || rt.stats().live_tasks == 0);
    });
}

#[test]
fn shutdown_drops_pending_tasks_promptly() {
    within(30, || {
        let rt = rt("shutdown", 2);
        let drops = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for i in 0..200 {
            let p = Probe(drops.clone());
            let q = Arc::new(WaiterQueue::new());
            let h = rt.spawn(async move {
                let _p = p;
                if i % 2 == 0 {
                    sleep(Duration::from_secs(3600)).await;
                } else {
                    // Holds the queue that holds its waker: only shutdown can end it.
                    q.wait().await;
                }
            });
            if i % 3 == 0 {
                h.detach();
            } else {
                handles.push(h);
            }
        }
        // Some queued work too.
        for _ in 0..1000 {
            rt.spawn(async { yield_now().await }).detach();
        }
        thread::sleep(Duration::from_millis(20));
        let probe = rt.clone();
        let t = Instant::now();
        rt.shutdown();
        assert!(t.elapsed() < Duration::from_secs(1), "shutdown took {:?}", t.elapsed());
        assert_eq!(drops.load(SeqCst), 200);
        assert_eq!(probe.stats().live_tasks, 0);
        for h in handles {
            assert!(matches!(h.join(), Err(JoinError::Cancelled)));
        }
        // Spawning on a stopped runtime cancels at once.
        assert!(matches!(probe.spawn(async { 1 }).join(), Err(JoinError::Cancelled)));
        // Its vCPU threads are gone (the last handle's drop is a no-op now).
        drop(probe);

        // The last clone's drop shuts down too.
        let rt = self::rt("lastdrop", 2);
        let drops = Arc::new(AtomicUsize::new(0));
        let p = Probe(drops.clone());
        rt.spawn(async move {
            let _p = p;
            sleep(Duration::from_secs(3600)).await
        })
        .detach();
        let clone = rt.clone();
        drop(rt);
        thread::sleep(Duration::from_millis(5));
        assert_eq!(drops.load(SeqCst), 0, "a clone still lives");
        drop(clone);
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn shutdown_from_inside_a_task() {
    within(30, || {
        let rt = rt("inner", 2);
        let h = rt.spawn(async {
            let me = current().expect("on a vCPU");
            me.shutdown();
            5
        });
        drop(rt);
        // The task finished its poll; the handle may see the value or Cancelled.
        let _ = h.join();

        // A task that stops the runtime and then goes idle registers after shutdown
        // drained the registry: it must be dropped all the same.
        let rt = self::rt("inner2", 2);
        let drops = Arc::new(AtomicUsize::new(0));
        let p = Probe(drops.clone());
        let h = rt.spawn(async move {
            let _p = p;
            current().expect("on a vCPU").shutdown();
            std::future::pending::<()>().await
        });
        assert!(matches!(h.join(), Err(JoinError::Cancelled)));
        assert_eq!(drops.load(SeqCst), 1);
        assert_eq!(rt.stats().live_tasks, 0);
    });
}

#[test]
fn block_on_from_many_threads() {
    within(60, || {
        let rt = rt("many", 2);
        thread::scope(|s| {
            for t in 0..4u64 {
                let rt = &rt;
                s.spawn(move || {
                    for round in 0..5u64 {
                        let got = rt.block_on(async {
                            let hs: Vec<_> = (0..2_000u64).map(|i| rt.spawn(async move { i * t })).collect();
                            let mut acc = 0;
                            for h in hs {
                                acc += h.await.unwrap();
                            }
                            rt.sleep(Duration::from_millis(round)).await;
                            acc
                        });
                        assert_eq!(got, t * 1999 * 2000 / 2);
                    }
                });
            }
        });
        assert_eq!(rt.stats().spawned, 4 * 5 * 2_000);
    });
}

#[test]
fn scope_borrows_and_waits() {
    within(30, || {
        let rt = rt("scope", 2);
        let mut data = vec![1u64; 10_000];
        let total = AtomicU64::new(0);
        let len = rt.scope(|s| {
            for chunk in data.chunks_mut(500) {
                let total = &total;
                // Handle dropped: detached, and the scope still waits for it.
                drop(s.spawn(async move {
                    for x in chunk.iter_mut() {
                        *x *= 2;
                        total.fetch_add(1, Relaxed);
                    }
                    yield_now().await;
                }));
            }
            let h = s.spawn(async { total.load(Relaxed) + 1 });
            let joined = h.join().unwrap();
            assert!(joined >= 1);
            let h2 = s.spawn(async { 40 + 2 });
            rt.block_on(h2).unwrap()
        });
        assert_eq!(len, 42);
        assert!(data.iter().all(|&x| x == 2));
        assert_eq!(total.load(Relaxed), 10_000);

        // The closure panics: every task still finishes before the panic goes on.
        let done = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            rt.scope(|s| {
                for _ in 0..10 {
                    let done = &done;
                    let rt = &rt;
                    drop(s.spawn(async move {
                        rt.sleep(Duration::from_millis(30)).await;
                        done.fetch_add(1, SeqCst);
                    }));
                }
                panic!("closure panicked");
            })
        }));
        assert!(r.is_err());
        assert_eq!(done.load(SeqCst), 10);

        // A task's panic reaches its handle; an unjoined one panics the scope.
        rt.scope(|s| {
            let e = s.spawn(async { panic!("scoped") }).join().unwrap_err();
            assert_eq!(e.panic_message(), Some("scoped"));
        });
        let r = catch_unwind(AssertUnwindSafe(|| {
            rt.scope(|s| drop(s.spawn(async { panic!("unjoined") })));
        }));
        assert!(r.is_err());
        eventually("live 0", || rt.stats().live_tasks == 0);
    });
}

/// Simulated IO: a "kernel" thread completes a request; the poller, called by a vCPU,
/// sees the completion and wakes the waiting task.
#[derive(Default)]
struct FakeRing {
    calls: AtomicU64,
    completed_by_kernel: AtomicBool,
    done: AtomicBool,
    waker: StdMutex<Option<Waker>>,
}

impl Poller for FakeRing {
    fn poll(&self) -> usize {
        self.calls.fetch_add(1, Relaxed);
        if self.completed_by_kernel.swap(false, AcqRel) {
            self.done.store(true, Release);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
            return 1;
        }
        0
    }
}

struct IoWait(Arc<FakeRing>);
impl Future for IoWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.done.load(Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn pollers_run_on_vcpus_and_wake_tasks() {
    within(30, || {
        let rt = rt("poller", 2);
        let ring = Arc::new(FakeRing::default());
        let id = rt.add_poller(ring.clone());
        // Idle: vCPUs still poll.
        let c0 = ring.calls.load(Relaxed);
        eventually("polled while idle", || ring.calls.load(Relaxed) > c0 + 5);
        let c1 = ring.calls.load(Relaxed);
        // Busy: polled between tasks.
        rt.block_on(async {
            let hs: Vec<_> = (0..20_000u64).map(|i| rt.spawn(async move { cpu_work(i) })).collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        assert!(ring.calls.load(Relaxed) > c1, "not polled while busy");
        // An IO completion wakes its task.
        let h = rt.spawn(IoWait(ring.clone()));
        let kernel = {
            let ring = ring.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(10));
                ring.completed_by_kernel.store(true, Release);
            })
        };
        h.join().unwrap();
        kernel.join().unwrap();
        // The vCPU adds the poller's count after `poll` returns: the woken task may
        // be stolen and finished before that.
        eventually("poller event counted", || rt.stats().poller_events >= 1);
        rt.remove_poller(id);
        thread::sleep(Duration::from_millis(5));
        let c2 = ring.calls.load(Relaxed);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(ring.calls.load(Relaxed), c2, "removed poller still called");
    });
}

#[test]
fn waiter_queue_semantics() {
    within(30, || {
        let rt = rt("wq", 2);
        let q = WaiterQueue::new();
        assert!(!q.notify_one(), "nobody waits");
        // Notified after creation, before the first poll: not lost.
        let w = q.wait();
        assert!(q.notify_one());
        rt.block_on(w);
        // A notified waiter that goes away passes the notification on.
        let (w1, w2) = (q.wait(), q.wait());
        assert!(q.notify_one());
        drop(w1);
        rt.block_on(w2);
        assert_eq!(q.notify_all(), 0);
        let ws: Vec<_> = (0..5).map(|_| q.wait()).collect();
        assert_eq!(q.notify_all(), 5);
        rt.block_on(async {
            for w in ws {
                w.await;
            }
        });
    });
}

#[test]
fn waiter_queue_no_lost_wakeups_under_stress() {
    within(60, || {
        let rt = rt("wqstress", 2);
        let q = Arc::new(WaiterQueue::new());
        let tokens = Arc::new(AtomicU64::new(0));
        let consumed = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let (producers, per) = (4u64, 25_000u64);
        let consumers: Vec<_> = (0..6)
            .map(|_| {
                let (q, tokens, consumed, closed) =
                    (q.clone(), tokens.clone(), consumed.clone(), closed.clone());
                rt.spawn(async move {
                    loop {
                        let w = q.wait();
                        if tokens.fetch_update(AcqRel, Acquire, |t| t.checked_sub(1)).is_ok() {
                            consumed.fetch_add(1, Relaxed);
                            continue;
                        }
                        if closed.load(Acquire) && tokens.load(Acquire) == 0 {
                            break;
                        }
                        w.await;
                    }
                })
            })
            .collect();
        // Producers: two tasks and two OS threads.
        let produce = {
            let (q, tokens) = (q.clone(), tokens.clone());
            move |i: u64| {
                tokens.fetch_add(1, AcqRel);
                q.notify_one();
                i
            }
        };
        let task_producers: Vec<_> = (0..producers / 2)
            .map(|_| {
                let produce = produce.clone();
                rt.spawn(async move {
                    for i in 0..per {
                        produce(i);
                        if i % 64 == 0 {
                            yield_now().await;
                        }
                    }
                })
            })
            .collect();
        thread::scope(|s| {
            for _ in 0..producers / 2 {
                let produce = produce.clone();
                s.spawn(move || {
                    (0..per).for_each(|i| {
                        produce(i);
                    })
                });
            }
        });
        for h in task_producers {
            h.join().unwrap();
        }
        closed.store(true, Release);
        q.notify_all();
        for h in consumers {
            h.join().unwrap();
        }
        assert_eq!(consumed.load(Relaxed), producers * per);
    });
}

#[test]
fn mutex_counts_exactly() {
    within(60, || {
        let rt = rt("mutex", 2);
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let m = m.clone();
                rt.spawn(async move {
                    for i in 0..10_000 {
                        let mut g = m.lock().await;
                        let v = *g;
                        if i % 100 == 0 {
                            yield_now().await; // hold the lock across a yield: contention
                        }
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.try_lock().expect("free"), 80_000);
        // A lock future dropped after being handed the lock passes it on.
        rt.block_on(async {
            let g = m.lock().await;
            let mut second = Box::pin(m.lock());
            assert!(futures_poll_once(second.as_mut()).is_pending());
            let third = m.lock();
            drop(g); // hands the lock to `second`
            drop(second); // which passes it to `third`
            let g3 = third.await;
            assert_eq!(*g3, 80_000);
        });
    });
}

fn futures_poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    let waker = Waker::noop();
    f.poll(&mut Context::from_waker(waker))
}

#[test]
fn stats_count_parks_as_exits() {
    within(30, || {
        let rt = Runtime::builder().name("exits").vcpus(2).spin_before_park(Duration::ZERO).build().unwrap();
        eventually("both idle vCPUs park", || rt.stats().parks >= 2);
        let s0 = rt.stats();
        for _ in 0..10 {
            rt.spawn(async {}).join().unwrap();
            thread::sleep(Duration::from_millis(2));
        }
        let s1 = rt.stats();
        assert!(s1.unparks > s0.unparks, "spawning onto parked vCPUs unparks one: {s1:?}");
        assert_eq!(s1.exits, s1.parks + s1.unparks);
    });
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Runtime>();
    send_sync::<exitless_rt::JoinHandle<u64>>();
    send_sync::<exitless_rt::Sleep>();
    send_sync::<WaiterQueue>();
    send_sync::<Mutex<Vec<u8>>>();
    send_sync::<exitless_rt::MutexGuard<'static, u64>>();
}
