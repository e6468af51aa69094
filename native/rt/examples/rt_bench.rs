//! exitless-rt vs tokio (multi-thread) vs OS threads: spawn+join cost, task switch
//! cost, and a 1,000,000-task fan-out. Warm-up run first, then the median of 5.
//! Prints one JSON object on stdout (progress on stderr).
//!
//! `cargo run --release -p exitless-rt --example rt_bench [-- --runs N --vcpus N]`
//! (defaults: 5 runs, 2 vCPUs / tokio workers).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use exitless_rt::{Runtime, RuntimeStats, WaiterQueue};

const SPAWN_N: u64 = 100_000;
const SWITCH_ROUNDS: u64 = 100_000;
const FANOUT_N: u64 = 1_000_000;
const THREAD_SPAWN_N: u64 = 10_000;
const THREAD_SWITCH_ROUNDS: u64 = 20_000;
const THREAD_FANOUT_N: u64 = 10_000;
/// Timed runs per figure (`--runs`).
static RUNS: AtomicUsize = AtomicUsize::new(5);

/// Runs `f` once to warm up, then `--runs` times; the median.
fn median(label: &str, mut f: impl FnMut() -> f64) -> f64 {
    f();
    let runs = RUNS.load(Relaxed);
    let mut v: Vec<f64> = (0..runs).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    eprintln!("{label}: {v:.1?}");
    v[runs / 2]
}

/// `--runs N` and `--vcpus N` from the command line; exits with a usage line on anything else.
fn parse_args() -> (usize, usize) {
    let (mut runs, mut vcpus) = (5, 2);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<usize>().ok()).filter(|&v| v > 0);
        match (flag.as_str(), value) {
            ("--runs", Some(v)) => runs = v,
            ("--vcpus", Some(v)) => vcpus = v,
            _ => {
                eprintln!("usage: rt_bench [--runs N] [--vcpus N] (N > 0; got {flag:?})");
                std::process::exit(2);
            }
        }
    }
    (runs, vcpus)
}

// ---- exitless-rt ----

fn ex_spawn_join(rt: &Runtime) -> f64 {
    let t = Instant::now();
    rt.block_on(async {
        let hs: Vec<_> = (0..SPAWN_N).map(|i| rt.spawn(async move { i })).collect();
        for h in hs {
            std::hint::black_box(h.await.unwrap());
        }
    });
    t.elapsed().as_nanos() as f64 / SPAWN_N as f64
}

/// Two tasks pass a turn counter back and forth, each waking the other.
fn ex_switch(rt: &Runtime) -> f64 {
    let turn = Arc::new(AtomicU64::new(0));
    let qs = Arc::new([WaiterQueue::new(), WaiterQueue::new()]);
    let player = |me: u64| {
        let (turn, qs) = (turn.clone(), qs.clone());
        rt.spawn(async move {
            for round in 0..SWITCH_ROUNDS {
                let mine = round * 2 + me;
                loop {
                    let w = qs[me as usize].wait();
                    if turn.load(Acquire) == mine {
                        break;
                    }
                    w.await;
                }
                turn.store(mine + 1, Release);
                qs[1 - me as usize].notify_one();
            }
        })
    };
    let t = Instant::now();
    let (a, b) = (player(0), player(1));
    a.join().unwrap();
    b.join().unwrap();
    t.elapsed().as_nanos() as f64 / (2 * SWITCH_ROUNDS) as f64
}

fn ex_yield(rt: &Runtime) -> f64 {
    let t = Instant::now();
    rt.block_on(rt.spawn(async {
        for _ in 0..SWITCH_ROUNDS {
            exitless_rt::yield_now().await;
        }
    }))
    .unwrap();
    t.elapsed().as_nanos() as f64 / SWITCH_ROUNDS as f64
}

/// A root task spawns 1M detached children; the last child to finish wakes the driver.
fn ex_fanout(rt: &Runtime) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let q = Arc::new(WaiterQueue::new());
    let t = Instant::now();
    let (rt2, done2, q2) = (rt.clone(), done.clone(), q.clone());
    rt.spawn(async move {
        for _ in 0..FANOUT_N {
            let (done, q) = (done2.clone(), q2.clone());
            rt2.spawn(async move {
                if done.fetch_add(1, AcqRel) + 1 == FANOUT_N {
                    q.notify_all();
                }
            })
            .detach();
        }
    })
    .detach();
    rt.block_on(async {
        loop {
            let w = q.wait();
            if done.load(Acquire) == FANOUT_N {
                break;
            }
            w.await;
        }
    });
    t.elapsed().as_secs_f64() * 1e3
}

// ---- tokio ----

fn tk_spawn_join(rt: &tokio::runtime::Runtime) -> f64 {
    let t = Instant::now();
    rt.block_on(async {
        let hs: Vec<_> = (0..SPAWN_N).map(|i| tokio::spawn(async move { i })).collect();
        for h in hs {
            std::hint::black_box(h.await.unwrap());
        }
    });
    t.elapsed().as_nanos() as f64 / SPAWN_N as f64
}

fn tk_switch(rt: &tokio::runtime::Runtime) -> f64 {
    let turn = Arc::new(AtomicU64::new(0));
    let ns = Arc::new([tokio::sync::Notify::new(), tokio::sync::Notify::new()]);
    let t = Instant::now();
    rt.block_on(async {
        let player = |me: u64| {
            let (turn, ns) = (turn.clone(), ns.clone());
            tokio::spawn(async move {
                for round in 0..SWITCH_ROUNDS {
                    let mine = round * 2 + me;
                    while turn.load(Acquire) != mine {
                        ns[me as usize].notified().await;
                    }
                    turn.store(mine + 1, Release);
                    ns[1 - me as usize].notify_one();
                }
            })
        };
        let (a, b) = (player(0), player(1));
        a.await.unwrap();
        b.await.unwrap();
    });
    t.elapsed().as_nanos() as f64 / (2 * SWITCH_ROUNDS) as f64
}

fn tk_yield(rt: &tokio::runtime::Runtime) -> f64 {
    let t = Instant::now();
    rt.block_on(async {
        tokio::spawn(async {
            for _ in 0..SWITCH_ROUNDS {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap()
    });
    t.elapsed().as_nanos() as f64 / SWITCH_ROUNDS as f64
}

fn tk_fanout(rt: &tokio::runtime::Runtime) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let t = Instant::now();
    rt.block_on(async {
        let (done2, notify2) = (done.clone(), notify.clone());
        tokio::spawn(async move {
            for _ in 0..FANOUT_N {
                let (done, notify) = (done2.clone(), notify2.clone());
                tokio::spawn(async move {
                    if done.fetch_add(1, AcqRel) + 1 == FANOUT_N {
                        notify.notify_one();
                    }
                });
            }
        });
        while done.load(Acquire) != FANOUT_N {
            notify.notified().await;
        }
    });
    t.elapsed().as_secs_f64() * 1e3
}

// ---- OS threads ----

fn os_spawn_join() -> f64 {
    let t = Instant::now();
    let hs: Vec<_> = (0..THREAD_SPAWN_N).map(|i| thread::spawn(move || i)).collect();
    for h in hs {
        std::hint::black_box(h.join().unwrap());
    }
    t.elapsed().as_nanos() as f64 / THREAD_SPAWN_N as f64
}

fn os_switch() -> f64 {
    let (to_b, from_a) = mpsc::channel::<u64>();
    let (to_a, from_b) = mpsc::channel::<u64>();
    let t = Instant::now();
    let b = thread::spawn(move || {
        while let Ok(v) = from_a.recv() {
            if to_a.send(v + 1).is_err() {
                break;
            }
        }
    });
    for i in 0..THREAD_SWITCH_ROUNDS {
        to_b.send(i).unwrap();
        from_b.recv().unwrap();
    }
    drop(to_b);
    b.join().unwrap();
    t.elapsed().as_nanos() as f64 / (2 * THREAD_SWITCH_ROUNDS) as f64
}

fn os_fanout() -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let hs: Vec<_> = (0..THREAD_FANOUT_N)
        .map(|_| {
            let done = done.clone();
            thread::spawn(move || done.fetch_add(1, AcqRel))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(done.load(Acquire), THREAD_FANOUT_N);
    t.elapsed().as_secs_f64() * 1e3
}

/// Exits per operation over a benchmark's runs (warm-up included).
fn exits_per(before: RuntimeStats, after: RuntimeStats, ops: f64) -> f64 {
    (after.exits - before.exits) as f64 / ops
}

fn main() {
    let (runs, vcpus) = parse_args();
    RUNS.store(runs, Relaxed);
    let ex = Runtime::builder().name("bench").vcpus(vcpus).build().expect("exitless runtime");
    let tk =
        tokio::runtime::Builder::new_multi_thread().worker_threads(vcpus).build().expect("tokio runtime");
    let ops = (runs + 1) as f64;

    let s0 = ex.stats();
    let ex_spawn = median("exitless spawn+join ns/task", || ex_spawn_join(&ex));
    let s1 = ex.stats();
    let ex_sw = median("exitless switch ns", || ex_switch(&ex));
    let s2 = ex.stats();
    let ex_y = median("exitless yield ns", || ex_yield(&ex));
    let ex_fan = median("exitless fan-out ms", || ex_fanout(&ex));
    let s3 = ex.stats();
    thread::sleep(Duration::from_millis(50));

    let tk_spawn = median("tokio spawn+join ns/task", || tk_spawn_join(&tk));
    let tk_sw = median("tokio switch ns", || tk_switch(&tk));
    let tk_y = median("tokio yield ns", || tk_yield(&tk));
    let tk_fan = median("tokio fan-out ms", || tk_fanout(&tk));
    drop(tk);

    let os_spawn = median("os spawn+join ns/thread", os_spawn_join);
    let os_sw = median("os channel switch ns", os_switch);
    let os_fan = median("os fan-out ms (10k threads)", os_fanout);

    println!(
        concat!(
            "{{\"machine_cpus\":{},",
            "\"exitless\":{{\"vcpus\":{},\"spawn_join_ns_per_task\":{:.1},\"switch_ns\":{:.1},",
            "\"yield_ns\":{:.1},\"fanout_1m_ms\":{:.1},",
            "\"exits_per_spawn\":{:.4},\"exits_per_switch\":{:.4},\"exits_per_fanout_task\":{:.5},\"steals\":{}}},",
            "\"tokio\":{{\"workers\":{},\"spawn_join_ns_per_task\":{:.1},\"switch_ns\":{:.1},",
            "\"yield_ns\":{:.1},\"fanout_1m_ms\":{:.1}}},",
            "\"os_threads\":{{\"spawn_join_ns_per_thread\":{:.1},\"channel_switch_ns\":{:.1},",
            "\"fanout_10k_threads_ms\":{:.1}}},",
            "\"ratio_exitless_over_tokio\":{{\"spawn_join\":{:.3},\"switch\":{:.3},\"yield\":{:.3},",
            "\"fanout\":{:.3}}},",
            "\"method\":\"warm-up run, then median of {} runs; spawn+join {} tasks; switch = {} round trips ",
            "of two tasks via WaiterQueue / tokio Notify / std mpsc; fan-out = root task spawns 1M detached ",
            "tasks, last one wakes the driver\"}}"
        ),
        thread::available_parallelism().map_or(0, |n| n.get()),
        vcpus,
        ex_spawn,
        ex_sw,
        ex_y,
        ex_fan,
        exits_per(s0, s1, ops * SPAWN_N as f64),
        exits_per(s1, s2, ops * 2.0 * SWITCH_ROUNDS as f64),
        (s3.exits - s2.exits) as f64 / (ops * (FANOUT_N + SWITCH_ROUNDS) as f64),
        s3.steals,
        vcpus,
        tk_spawn,
        tk_sw,
        tk_y,
        tk_fan,
        os_spawn,
        os_sw,
        os_fan,
        ex_spawn / tk_spawn,
        ex_sw / tk_sw,
        ex_y / tk_y,
        ex_fan / tk_fan,
        runs,
        SPAWN_N,
        SWITCH_ROUNDS,
    );
}
