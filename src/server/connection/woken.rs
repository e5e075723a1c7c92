//! Side futures polled only when they were woken.
//!
//! A connection's task waits on hyper's connection and, beside it, on its timers and the
//! shutdown signal. `tokio::select!` polls every branch each time the task wakes, and the task
//! wakes two or three times per request for hyper alone: re-polling the timers and the shutdown
//! signal (which takes a lock) cost about 730 instructions per HTTP/1.1 request. A [`Woken`]
//! branch is polled once when made, then again only after its own waker fired.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::io::wake_flag::WakeFlag;

/// The state of one connection's side futures: the flag their waker sets, made once per serving
/// loop (a plain or HTTP/2 connection, or one parking session).
#[derive(Debug, Default)]
pub struct SideWakes {
    flag: WakeFlag,
    /// Whether the side futures of the current round were polled once since it began.
    polled: bool,
}

impl SideWakes {
    /// A new round of side futures (made anew, so each must be polled once).
    pub fn round(&mut self) -> &mut Self {
        self.polled = false;
        self
    }

    /// Whether the side futures need polling now: their first poll of the round, or a wake of
    /// theirs. They registered the flag's waker, not the task's, so a new task waker only has
    /// to be stored for the flag to pass wakes on.
    fn due(&mut self, cx: &Context<'_>) -> bool {
        self.flag.pass_to(cx);
        // Taken before the poll: a wake during or after it is seen the next time.
        let woken = self.flag.take();
        let due = woken || !self.polled;
        self.polled = true;
        due
    }

    fn poll<F: Future + Unpin>(&mut self, fut: &mut F, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.due(cx) {
            return Poll::Pending;
        }
        Pin::new(fut).poll(&mut Context::from_waker(self.flag.waker()))
    }
}

/// A side future that [`SideWakes`] polls only when due; a branch of the connection's `select!`.
pub struct Woken<'a, F> {
    wakes: &'a mut SideWakes,
    fut: Pin<&'a mut F>,
}

impl<'a, F: Future> Woken<'a, F> {
    /// `fut`, polled through `wakes` (start a round with [`SideWakes::round`] first).
    pub fn new(wakes: &'a mut SideWakes, fut: Pin<&'a mut F>) -> Self {
        Self { wakes, fut }
    }
}

impl<F: Future> Future for Woken<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.wakes.poll(&mut this.fut, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Counts its polls; ready once `ready` is set, and keeps the last waker it was given.
    #[derive(Default)]
    struct Probe {
        polls: usize,
        ready: bool,
        waker: Option<Waker>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls += 1;
            self.waker = Some(cx.waker().clone());
            if self.ready {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn a_side_future_is_polled_again_only_after_its_own_wake() {
        let mut wakes = SideWakes::default();
        let mut probe = Probe::default();
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut side = Woken::new(wakes.round(), Pin::new(&mut probe));
            assert!(Pin::new(&mut side).poll(&mut cx).is_pending());
            // The task wakes for something else: the side future is not polled.
            assert!(Pin::new(&mut side).poll(&mut cx).is_pending());
            assert!(Pin::new(&mut side).poll(&mut cx).is_pending());
        }
        assert_eq!(probe.polls, 1);
        // Its own waker fires: polled again, and ready.
        probe.ready = true;
        probe.waker.take().expect("registered").wake();
        {
            let mut side = Woken::new(&mut wakes, Pin::new(&mut probe));
            assert!(Pin::new(&mut side).poll(&mut cx).is_ready());
        }
        assert_eq!(probe.polls, 2);
        // A new round is always polled once.
        {
            let mut side = Woken::new(wakes.round(), Pin::new(&mut probe));
            assert!(Pin::new(&mut side).poll(&mut cx).is_ready());
        }
        assert_eq!(probe.polls, 3);
    }
}
