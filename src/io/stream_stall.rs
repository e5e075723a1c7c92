//! The send timeout for one HTTP/2 stream: a client that keeps its connection alive (it answers
//! PINGs) but never opens a stream's flow-control window leaves that stream's response waiting
//! for capacity forever, pinning its Mattermost connection and buffers. The socket is not
//! blocked, so the connection-level watch ([`super::tracked`]) does not see it.
//!
//! hyper runs each HTTP/2 stream as its own task through the executor it is given;
//! [`StreamExecutor`] wraps every such task in a [`Guarded`] future with a task-local
//! [`Progress`]. The response body reports into it each time hyper polls it
//! ([`body_polled`]). When the task waits, the body handed hyper data, and hyper has not polled
//! the body again for the send timeout, the stream is dropped: h2 resets it (`RST_STREAM`), the
//! connection and its other streams go on, and the response body (with its upstream connection)
//! is released. Nothing is armed for streams that finish in one go, or that wait on Mattermost.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::debug;

const TICKS: u32 = 8;

tokio::task_local! {
    static PROGRESS: Progress;
}

/// How a stream's response body has been polled.
#[derive(Debug, Default)]
pub struct Progress {
    /// Times hyper polled the body.
    polls: Cell<u64>,
    /// The body's last poll gave hyper data, so hyper owes it the next poll.
    owed: Cell<bool>,
}

/// Called by a response body each time it is polled: `gave_data` when it returned a data frame.
/// Outside an HTTP/2 stream task (HTTP/1.1, tests) it does nothing.
pub fn body_polled(gave_data: bool) {
    let _ = PROGRESS.try_with(|p| {
        p.polls.set(p.polls.get().wrapping_add(1));
        p.owed.set(gave_data);
    });
}

/// Runs hyper's HTTP/2 stream tasks with the send timeout.
#[derive(Debug, Clone, Copy)]
pub struct StreamExecutor {
    send_timeout: Duration,
}

impl StreamExecutor {
    /// An executor whose streams are reset after `send_timeout` without progress.
    pub fn new(send_timeout: Duration) -> Self {
        Self { send_timeout }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let guarded = Guarded {
            fut,
            tick: (self.send_timeout / TICKS).max(Duration::from_millis(1)),
            sleep: None,
            armed: false,
            seen: 0,
            quiet: 0,
        };
        tokio::spawn(PROGRESS.scope(Progress::default(), guarded));
    }
}

pin_project_lite::pin_project! {
    /// A stream task that ends itself when its response has not been taken for the timeout.
    pub struct Guarded<F> {
        #[pin]
        fut: F,
        tick: Duration,
        // Made on first need (a stream that waits for capacity), then reused.
        sleep: Option<Pin<Box<Sleep>>>,
        // Counting quiet ticks since the body last handed hyper data.
        armed: bool,
        seen: u64,
        quiet: u32,
    }
}

impl<F: Future<Output = ()>> Future for Guarded<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.fut.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let (polls, owed) = PROGRESS
            .try_with(|p| (p.polls.get(), p.owed.get()))
            .unwrap_or((0, false));
        if !owed {
            // Waiting on Mattermost (or nothing started yet): not the client's doing.
            *this.armed = false;
            return Poll::Pending;
        }
        let tick = *this.tick;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(tick)));
        if !*this.armed {
            *this.armed = true;
            *this.seen = polls;
            *this.quiet = 0;
            sleep.as_mut().reset(Instant::now() + tick);
        }
        while sleep.as_mut().poll(cx).is_ready() {
            if polls == *this.seen {
                *this.quiet += 1;
                if *this.quiet >= TICKS {
                    debug!("HTTP/2 stream not read by the client for the send timeout: reset");
                    return Poll::Ready(());
                }
            } else {
                *this.seen = polls;
                *this.quiet = 0;
            }
            sleep.as_mut().reset(Instant::now() + tick);
        }
        Poll::Pending
    }
}
