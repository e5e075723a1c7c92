//! A waker that records that it fired, then passes the wake on to a task.
//!
//! Given to a future (or a scheduler) in place of the task's own waker, it tells the task
//! afterwards whether that particular wake happened, which the task's own waker cannot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// The flag and the task its wakes go to, shared with the wakers made from it.
#[derive(Debug, Default)]
struct Shared {
    fired: AtomicBool,
    /// The task to wake; replaced (under the lock) only when the task's waker changes.
    task: Mutex<Option<Waker>>,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        // Cloned out so that the task is not woken under the lock.
        let task = self.task.lock().map(|t| t.clone()).unwrap_or(None);
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// A wake flag: its [`waker`](Self::waker) sets the flag and wakes the task last given to
/// [`pass_to`](Self::pass_to).
#[derive(Debug)]
pub struct WakeFlag {
    shared: Arc<Shared>,
    /// The flag as a waker, made once.
    waker: Waker,
    /// The task waker last stored in `shared`.
    task: Option<Waker>,
}

impl Default for WakeFlag {
    fn default() -> Self {
        let shared = Arc::new(Shared::default());
        Self {
            waker: Waker::from(shared.clone()),
            shared,
            task: None,
        }
    }
}

impl WakeFlag {
    /// The waker that sets the flag.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Makes the flag's wakes go to the task polling with `cx` (stored again only when that
    /// task's waker changed).
    pub fn pass_to(&mut self, cx: &Context<'_>) {
        if !self.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            if let Ok(mut task) = self.shared.task.lock() {
                *task = Some(cx.waker().clone());
            }
            self.task = Some(cx.waker().clone());
        }
    }

    /// Whether the waker fired since the flag was last cleared.
    pub fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::Acquire)
    }

    /// Clears the flag, saying whether it was set.
    pub fn take(&self) -> bool {
        self.shared.fired.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_wake_sets_the_flag_and_reaches_the_task() {
        let task = Arc::new(Count::default());
        let task_waker = Waker::from(task.clone());
        let mut flag = WakeFlag::default();
        flag.pass_to(&Context::from_waker(&task_waker));
        assert!(!flag.fired());
        flag.waker().wake_by_ref();
        assert!(flag.fired());
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        assert!(flag.take());
        assert!(!flag.fired());
        assert!(!flag.take());
    }
}
