//! hyper's HTTP/1.1 header-read timer, without a timer of its own.
//!
//! hyper arms this timer for each request head (the wait before it included) and drops it once
//! the head is read. A tokio timer costs a wheel insertion and a removal for that, every request.
//! [`HeaderTimer`] only compares its deadline with the clock when hyper polls it. hyper polls it
//! each time the connection's task runs while a head is awaited, and the connection's [`Watch`]
//! wakes that task at least eight times per header timeout ([`Watch::waking_for`]). So a head
//! that does not come closes the connection between 1 and 1.125 times the client header timeout,
//! as the other timeouts do.
//!
//! Only for hyper's HTTP/1.1 server, on connections driven beside such a [`Watch`].
//!
//! [`Watch`]: crate::io::tracked::Watch
//! [`Watch::waking_for`]: crate::io::tracked::Watch::waking_for

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// The timer given to hyper's HTTP/1.1 server (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HeaderTimer;

impl Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline(Instant::now().checked_add(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline(Some(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Deadline>() {
            Some(mut deadline) => deadline.0 = Some(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// Ready once its instant has passed, checked when polled (`None`: beyond what `Instant` can
/// hold, never). It registers no waker: the connection's watch wakes the task that polls it
/// (see the module docs).
#[derive(Debug)]
struct Deadline(Option<Instant>);

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_some_and(|at| Instant::now() >= at) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Sleep for Deadline {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(sleep: &mut Pin<Box<dyn Sleep>>) -> Poll<()> {
        sleep.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_deadline_is_ready_once_passed_and_reset_moves_it() {
        let timer = HeaderTimer;
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        assert_eq!(poll(&mut sleep), Poll::Pending);
        timer.reset(&mut sleep, Instant::now());
        assert_eq!(poll(&mut sleep), Poll::Ready(()));
        timer.reset(&mut sleep, Instant::now() + Duration::from_secs(3600));
        assert_eq!(poll(&mut sleep), Poll::Pending);
        assert_eq!(poll(&mut timer.sleep(Duration::ZERO)), Poll::Ready(()));
        assert_eq!(poll(&mut timer.sleep(Duration::MAX)), Poll::Pending);
    }
}
