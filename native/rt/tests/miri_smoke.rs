//! The runtime's unsafe paths at a size Miri can run (`make miri`): tasks spawned with
//! `async_task`'s unchecked builder, scoped tasks borrowing the caller's stack, the
//! spin lock under the async `Mutex`, cancellation and shutdown. The full-size
//! versions are in runtime.rs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use exitless_rt::{yield_now, Mutex, Runtime};

#[test]
fn scope_spawn_mutex_and_shutdown_small() {
    let rt = Runtime::builder().name("miri").vcpus(2).build().expect("runtime");
    let mut data = vec![1u64; 48];
    let total = AtomicU64::new(0);
    let m = Arc::new(Mutex::new(0u64));
    let answer = rt.scope(|s| {
        for chunk in data.chunks_mut(12) {
            let (total, m) = (&total, m.clone());
            drop(s.spawn(async move {
                for x in chunk.iter_mut() {
                    *x *= 2;
                    total.fetch_add(1, Relaxed);
                }
                yield_now().await;
                *m.lock().await += 1;
            }));
        }
        let h = s.spawn(async { 40 + 2 });
        rt.block_on(h).expect("scoped task")
    });
    assert_eq!(answer, 42);
    assert!(data.iter().all(|&x| x == 2));
    assert_eq!(total.load(Relaxed), 48);
    assert_eq!(*m.try_lock().expect("free"), 4);

    let h = rt.spawn(async { 7u8 });
    assert_eq!(rt.block_on(h).expect("task"), 7);
    let pending = rt.spawn(std::future::pending::<()>());
    pending.cancel();
    let forever = rt.spawn(std::future::pending::<()>());
    forever.detach();
    rt.shutdown();
}
