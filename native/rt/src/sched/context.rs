//! Which runtime (and which vCPU) the current thread belongs to.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::vcpu::Local;
use super::Shared;

thread_local! {
    static CONTEXT: RefCell<ThreadContext> =
        const { RefCell::new(ThreadContext { runtime: None, vcpu: None }) };
}

/// The runtime this thread is inside (a vCPU, or a `block_on` caller), if any.
struct ThreadContext {
    runtime: Option<Arc<Shared>>,
    vcpu: Option<Rc<Local>>,
}

/// Calls `f` with this thread's vCPU state if it is a vCPU of `shared`.
#[inline]
pub(super) fn with_local<R>(shared: *const Shared, f: impl FnOnce(Option<&Local>) -> R) -> R {
    let mut f = Some(f);
    let r = CONTEXT.try_with(|c| {
        let c = c.borrow();
        let local = c.vcpu.as_deref().filter(|l| std::ptr::eq(Arc::as_ptr(&l.shared), shared));
        (f.take().expect("called once"))(local)
    });
    match r {
        Ok(r) => r,
        // Thread-locals already destroyed (thread exit): not a vCPU any more.
        Err(_) => (f.take().expect("called once"))(None),
    }
}

/// This thread's vCPU index in `shared`, if it is one (for counter shards).
#[inline]
pub(crate) fn vcpu_index(shared: &Shared) -> Option<usize> {
    with_local(shared, |l| l.map(|l| l.index))
}

/// True if this thread is a vCPU of any runtime.
pub(crate) fn on_vcpu() -> bool {
    CONTEXT.try_with(|c| c.borrow().vcpu.is_some()).unwrap_or(false)
}

/// The runtime of this thread (vCPU or `block_on`).
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    CONTEXT.try_with(|c| c.borrow().runtime.clone()).ok().flatten()
}

/// Restores the previous context on drop (also when unwinding).
pub(crate) struct EnterGuard {
    prev: Option<ThreadContext>,
}

/// Makes `shared` (and `vcpu`) this thread's context until the guard drops.
pub(crate) fn enter(shared: Arc<Shared>, vcpu: Option<Rc<Local>>) -> EnterGuard {
    let new = ThreadContext { runtime: Some(shared), vcpu };
    let prev = CONTEXT.with(|c| std::mem::replace(&mut *c.borrow_mut(), new));
    EnterGuard { prev: Some(prev) }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            // The previous context drops outside the borrow (it may own a Local).
            let _ = CONTEXT.try_with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
        }
    }
}
