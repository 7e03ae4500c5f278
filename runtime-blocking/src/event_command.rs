//! The external event command (`event_command`): a program run once per event, with the
//! event's JSON object (one line, see [`crate::events`]) on its standard input.
//!
//! The contract (also in docs/events.md):
//! - The program is run directly from its argv (`event_command = ["/path/prog", "arg"]`),
//!   never through a shell: nothing in an event (file names, user names) can reach a command
//!   line or be interpreted. The program is an absolute path, or a name found on `PATH` when
//!   the configuration is read.
//! - It runs in its own process group with the server's environment and working folder; its
//!   standard input is the JSON line followed by end of file.
//! - Commands run one at a time, in the order of the events, on one background thread
//!   ([`Runner`]); sessions only put events in a bounded queue ([`QUEUE_LENGTH`]) and never
//!   wait for a command. When the queue is full (the command is slower than the events), the
//!   event is dropped for the command, with a warning in the log; the events file still
//!   has it.
//! - A command still running after `event_command_timeout_secs` is killed (SIGKILL to its
//!   whole process group, so a script's children go too), with a warning.
//! - A non-zero exit status is logged as a warning; what the command writes to stdout and
//!   stderr is logged at debug level (the first [`OUTPUT_LIMIT`] bytes of each).
//!
//! What this module must not do: block the caller of [`Runner::submit`], run anything
//! through a shell, or wait for a command without a deadline.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use log::{debug, warn};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Events waiting for the command at most; more are dropped (with a warning).
pub const QUEUE_LENGTH: usize = 1024;
/// Bytes of a command's stdout and of its stderr kept for the log.
pub const OUTPUT_LIMIT: usize = 4096;
/// How often a running command is checked for its end.
const POLL: Duration = Duration::from_millis(10);
/// How long, after a command ended, its output pipes are waited for.
const OUTPUT_WAIT: Duration = Duration::from_secs(1);

/// The program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The program, an absolute path.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The background runner of the event command. Dropping it stops the thread after the
/// command running at the time (events still queued are not run).
#[derive(Debug)]
pub struct Runner {
    tx: Sender<Job>,
    dropped: AtomicU64,
    stop: Arc<AtomicBool>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[derive(Debug)]
struct Job {
    event: &'static str,
    json: String,
}

impl Runner {
    /// Starts the runner thread for `command`, killing a command after `timeout`.
    pub fn start(command: CommandLine, timeout: Duration) -> std::io::Result<Runner> {
        let (tx, rx) = bounded(QUEUE_LENGTH);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::Builder::new()
            .name("wharf-event-command".into())
            .spawn(move || run_jobs(rx, &command, timeout, &stopped))?;
        Ok(Runner {
            tx,
            dropped: AtomicU64::new(0),
            stop,
        })
    }

    /// Queues `json` (one line, without the newline) for the command; never waits. Returns
    /// false when the event was dropped because the queue is full.
    pub fn submit(&self, event: &'static str, json: String) -> bool {
        match self.tx.try_send(Job { event, json }) {
            Ok(()) => true,
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(
                    "event command: queue full ({QUEUE_LENGTH} events waiting); {} event \
                     dropped for the command ({n} so far; the events file still has it)",
                    job.event
                );
                false
            }
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn run_jobs(rx: Receiver<Job>, command: &CommandLine, timeout: Duration, stop: &AtomicBool) {
    // Ends when the runner is dropped (the server is gone).
    while let Ok(job) = rx.recv() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let started = Instant::now();
        match run(command, &job.json, timeout) {
            Ok(done) => report(command, job.event, &done, started.elapsed(), timeout),
            Err(e) => warn!(
                "event command {}: cannot run it for a {} event: {e}",
                command.program.display(),
                job.event
            ),
        }
    }
}

/// How one run of the command ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status (after a kill: the status of the killed process).
    pub status: Option<ExitStatus>,
    /// It was killed for running too long.
    pub timed_out: bool,
    /// The start of what it wrote to stdout.
    pub stdout: Vec<u8>,
    /// The start of what it wrote to stderr.
    pub stderr: Vec<u8>,
}

fn report(command: &CommandLine, event: &str, done: &Finished, took: Duration, timeout: Duration) {
    let name = command.program.display();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_string();
    if !done.stdout.is_empty() {
        debug!(
            "event command {name} ({event}) stdout: {}",
            text(&done.stdout)
        );
    }
    if !done.stderr.is_empty() {
        debug!(
            "event command {name} ({event}) stderr: {}",
            text(&done.stderr)
        );
    }
    if done.timed_out {
        warn!(
            "event command {name} ({event}) still running after {} s: killed",
            timeout.as_secs()
        );
        return;
    }
    match done.status {
        Some(s) if s.success() => debug!(
            "event command {name} ({event}) done in {:.3} s",
            took.as_secs_f64()
        ),
        Some(s) => warn!(
            "event command {name} ({event}) failed: {s}{}",
            if done.stderr.is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", text(&done.stderr))
            }
        ),
        None => warn!("event command {name} ({event}): exit status unknown"),
    }
}

/// Runs `command` once with `input` and a newline on its stdin; kills it (and its process
/// group) after `timeout`.
pub fn run(command: &CommandLine, input: &str, timeout: Duration) -> std::io::Result<Finished> {
    let mut child = Command::new(&command.program)
        .args(&command.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + timeout;
    // Feeding stdin and reading the outputs happen on helper threads: a command that reads
    // nothing, or writes much, must not stall this one past the deadline.
    let mut line = Vec::with_capacity(input.len() + 1);
    line.extend_from_slice(input.as_bytes());
    line.push(b'\n');
    if let Some(mut stdin) = child.stdin.take() {
        thread::Builder::new()
            .name("wharf-event-stdin".into())
            .spawn(move || {
                // A command that exits without reading its input is no error of ours.
                let _ = stdin.write_all(&line);
            })?;
    }
    let stdout = capture(child.stdout.take());
    let stderr = capture(child.stderr.take());
    let (status, timed_out) = wait(&mut child, deadline);
    let collect = |rx: Option<Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(OUTPUT_WAIT).ok())
            .unwrap_or_default()
    };
    Ok(Finished {
        status,
        timed_out,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Waits for `child` until `deadline`; then kills its process group. Returns its status and
/// whether it had to be killed.
fn wait(child: &mut Child, deadline: Instant) -> (Option<ExitStatus>, bool) {
    // Bounded by the deadline: each round sleeps POLL.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) | Err(_) => break,
        }
    }
    crate::sys::kill_group(child.id());
    let _ = child.kill();
    (child.wait().ok(), true)
}

/// Reads `pipe` to its end on a helper thread, keeping the first [`OUTPUT_LIMIT`] bytes.
fn capture(pipe: Option<impl Read + Send + 'static>) -> Option<Receiver<Vec<u8>>> {
    let mut pipe = pipe?;
    let (tx, rx) = bounded(1);
    thread::Builder::new()
        .name("wharf-event-output".into())
        .spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            // Bounded by the pipe's end, which comes when the command's process group is
            // gone (it is killed at the deadline).
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            let _ = tx.send(kept);
        })
        .ok()?;
    Some(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandLine {
        CommandLine {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
        }
    }

    #[test]
    fn the_command_gets_the_line_on_stdin() {
        let done = run(
            &sh("cat; echo oops >&2; exit 3"),
            "{\"a\":1}",
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(!done.timed_out);
        assert_eq!(done.status.and_then(|s| s.code()), Some(3));
        assert_eq!(done.stdout, b"{\"a\":1}\n");
        assert_eq!(done.stderr, b"oops\n");
    }

    #[test]
    fn a_hanging_command_and_its_children_are_killed_at_the_deadline() {
        let started = Instant::now();
        // The child `sleep` holds stdout open: unless the whole group dies, the output
        // threads would wait for it.
        let done = run(&sh("sleep 30; echo late"), "{}", Duration::from_millis(300)).unwrap();
        let took = started.elapsed();
        assert!(done.timed_out);
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(done.stdout.is_empty());
    }

    #[test]
    fn output_is_bounded() {
        let done = run(
            &sh("head -c 100000 /dev/zero"),
            "{}",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.stdout.len(), OUTPUT_LIMIT);
        assert!(done.status.is_some_and(|s| s.success()));
    }

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let r = Runner::start(sh("sleep 5"), Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        let mut dropped = 0;
        for _ in 0..QUEUE_LENGTH + 10 {
            if !r.submit("mkdir", "{}".into()) {
                dropped += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(dropped >= 9, "{dropped}");
        assert_eq!(r.dropped(), dropped);
    }
}
