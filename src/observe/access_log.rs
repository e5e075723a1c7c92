//! The access log's writer: lines go through a bounded buffer to a thread of their own, so a slow
//! disk or a blocked stdout never slows a request; when the buffer is full, lines are dropped
//! and counted. A file target is reopened on request (SIGHUP), so logrotate can move it away.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use tracing::{error, info};

/// Lines waiting for the writer at most; beyond, new lines are dropped (and counted).
pub const BUFFERED_LINES: usize = 16 * 1024;

pub use crate::config::AccessLogTarget as Target;

/// What the writer thread is told.
enum Message {
    Line(Vec<u8>),
    Reopen,
    Stop,
}

/// The writer thread, to stop it once everything queued is written.
#[derive(Debug)]
pub struct Writer {
    tx: Option<SyncSender<Message>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Writes what is queued, flushes, and ends the thread (at shutdown: no line lost).
    pub fn stop(mut self) {
        if let (Some(tx), Some(thread)) = (self.tx.take(), self.thread.take()) {
            let _ = tx.send(Message::Stop);
            let _ = thread.join();
        }
    }
}

/// The sending side, shared by every request.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Message>>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Starts the writer for `target` (no thread for `Off`). A file that cannot be opened is an
    /// error (named by the caller after the setting).
    pub fn start(target: &Target) -> io::Result<(Self, Writer)> {
        let dropped = Arc::new(AtomicU64::new(0));
        let none = Writer {
            tx: None,
            thread: None,
        };
        let out: Box<dyn Write + Send> = match target {
            Target::Off => return Ok((Self { tx: None, dropped }, none)),
            Target::Stdout => Box::new(io::stdout()),
            Target::File(path) => Box::new(open(path)?),
        };
        let (tx, rx) = sync_channel(BUFFERED_LINES);
        let path = match target {
            Target::File(p) => Some(p.clone()),
            _ => None,
        };
        let thread = std::thread::Builder::new()
            .name("mm-edge-access-log".into())
            .spawn(move || write_lines(rx, out, path))?;
        let writer = Writer {
            tx: Some(tx.clone()),
            thread: Some(thread),
        };
        Ok((
            Self {
                tx: Some(tx),
                dropped,
            },
            writer,
        ))
    }

    /// Whether lines are written at all (formatting can be skipped when not).
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one line (with its newline); drops it when the buffer is full.
    pub fn write(&self, line: Vec<u8>) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                tx.try_send(Message::Line(line))
            {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Asks the writer to reopen its file (after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            // Blocks only while the buffer is full, and only the reload task.
            let _ = tx.send(Message::Reopen);
        }
    }

    /// Lines dropped so far because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The dropped-lines counter, for the metrics.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// How long the writer lets lines gather after it emptied the queue.
const BATCH: std::time::Duration = std::time::Duration::from_millis(20);

/// The writer thread: buffered writes, flushed whenever the queue runs empty, at most one
/// batch every [`BATCH`].
fn write_lines(rx: Receiver<Message>, out: Box<dyn Write + Send>, path: Option<PathBuf>) {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    let mut next = rx.recv().ok();
    while let Some(msg) = next {
        match msg {
            Message::Line(line) => {
                if let Err(e) = out.write_all(&line) {
                    error!(error = %e, "access log write failed");
                }
            }
            Message::Stop => break,
            Message::Reopen => {
                let _ = out.flush();
                if let Some(p) = &path {
                    match open(p) {
                        Ok(f) => {
                            out = io::BufWriter::with_capacity(64 * 1024, Box::new(f));
                            info!(file = %p.display(), "access log reopened");
                        }
                        Err(e) => {
                            error!(file = %p.display(), error = %e, "cannot reopen the access log; writing on to the old file");
                        }
                    }
                }
            }
        }
        next = match rx.try_recv() {
            Ok(m) => Some(m),
            Err(_) => {
                let _ = out.flush();
                // Under load, let lines gather before the next look: one wake-up (and one
                // write) per batch instead of per request. Idle, the thread blocks in recv.
                std::thread::sleep(BATCH);
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(_) => rx.recv().ok(),
                }
            }
        };
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_and_a_reopen_follows_a_rotation() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("access.log");
        let (log, writer) = AccessLog::start(&Target::File(path.clone())).expect("start");
        log.write(b"one\n".to_vec());
        std::fs::rename(&path, dir.path().join("access.log.1")).expect("rotate");
        log.reopen();
        log.write(b"two\n".to_vec());
        writer.stop();
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "two\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("access.log.1")).expect("old"),
            "one\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o640 & !umask_bits());
    }

    /// Bits the process umask clears (0640 is what is asked for).
    fn umask_bits() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .unwrap_or(0o022)
    }
}
