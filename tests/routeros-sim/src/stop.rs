//! A small hierarchical stop signal (like a cancellation token): stopping a parent stops
//! every child made from it. Used for fleet shutdown, device connection drops and `/cancel`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// A cloneable handle; all clones share one state.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopSignal {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    stopped: AtomicBool,
    notify: Notify,
    children: Mutex<Vec<Weak<StopInner>>>,
}

impl StopInner {
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.notify.notify_waiters();
        let children = match self.children.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for child in children {
            if let Some(child) = child.upgrade() {
                child.stop();
            }
        }
    }
}

impl StopSignal {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A new signal that is stopped when `self` is (or at once, if `self` already is).
    pub(crate) fn child(&self) -> Self {
        let child = Self::new();
        {
            let mut children = match self.inner.children.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            if children.len() >= 32 {
                children.retain(|w| w.strong_count() > 0);
            }
            children.push(Arc::downgrade(&child.inner));
        }
        if self.is_stopped() {
            child.stop();
        }
        child
    }

    pub(crate) fn stop(&self) {
        self.inner.stop();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Completes once the signal is stopped.
    pub(crate) async fn stopped(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_a_parent_stops_children() {
        let parent = StopSignal::new();
        let child = parent.child();
        let grandchild = child.child();
        let waiter = tokio::spawn({
            let g = grandchild.clone();
            async move { g.stopped().await }
        });
        parent.stop();
        waiter.await.expect("waiter task");
        assert!(child.is_stopped() && grandchild.is_stopped());
        assert!(parent.child().is_stopped());
    }
}
