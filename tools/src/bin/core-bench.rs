//! `core-bench`: wharf-core alone, without the network. Commands per second through framing →
//! parse → session → reply, and heap allocations per command, per command kind.
//!
//! A [`Session`] is driven directly: bytes in with `handle_input`, outputs drained with
//! `poll_output`, and the actions it emits answered by a tiny inline responder (a fixed user, a
//! directory `/pub` holding files, a fake listing, a passive port, transfers that complete at
//! once). A counting global allocator counts the allocations made while the core runs; the
//! responder's own allocations (building outcomes) are excluded, so the figure is the core's.
//!
//! Each kind first runs once and its reply codes are checked against what RFC 959 says they
//! must be, so the benchmark cannot silently measure an error path.

use clap::Parser;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf_core::{
    Account, Action, ActionKind, Config, FileInfo, FileKind, Outcome, OutcomeKind, Output, Session,
    TransferKind, UnixTime,
};

/// Counts allocations (and reallocations) while counting is on for the current thread.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_alloc(size: usize) {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting touches only
// atomics and a const-initialised thread-local (which does not allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

/// Benchmark wharf-core without the network: commands/s and allocations per command.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Seconds to spend on each command kind.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Upper bound on iterations per kind.
    #[arg(long, default_value_t = 5_000_000)]
    max_iterations: u64,
    /// Entries in the fake directory listed by LIST and MLSD.
    #[arg(long, default_value_t = 20)]
    entries: usize,
    /// Only these kinds (comma-separated); default all.
    #[arg(long)]
    only: Option<String>,
    /// Instead of the commands: the TYPE A and MODE Z codecs on 64 MiB of generated text (read
    /// 1 MiB at a time as the runtime reads a file): TYPE A alone, then MODE Z at levels 1, 6
    /// and 9, the level-6 stream decoded and compared with the text; the best of `--runs`.
    #[arg(long)]
    mode_z: bool,
    /// Runs of each MODE Z measurement (the table shows the fastest).
    #[arg(long, default_value_t = 3, requires = "mode_z")]
    runs: u32,
}

/// The fake runtime: answers actions in memory.
struct Responder {
    entries: Vec<FileInfo>,
    unexpected: u64,
}

impl Responder {
    fn new(n: usize) -> Responder {
        let entries = (0..n)
            .map(|i| {
                let mut f = FileInfo::new(format!("file-{i:04}.bin"), FileKind::File);
                f.size = 10_240 + i as u64;
                f.modified = UnixTime(1_700_000_000 + i as i64 * 60);
                f.unique = Some((1, i as u64));
                f
            })
            .collect();
        Responder {
            entries,
            unexpected: 0,
        }
    }

    fn answer(&mut self, action: Action, out: &mut Vec<Outcome>) {
        let id = action.id;
        match action.kind {
            ActionKind::Authenticate { .. } => out.push(Outcome::new(
                id,
                OutcomeKind::Authenticated(Ok(Account::new("bench"))),
            )),
            ActionKind::Stat { path } => {
                let name = path.file_name().to_string();
                let info = if name.ends_with(".bin") {
                    let mut f = FileInfo::new(name, FileKind::File);
                    f.size = 10_240;
                    f.modified = UnixTime(1_700_000_000);
                    f
                } else {
                    FileInfo::new(name, FileKind::Dir)
                };
                out.push(Outcome::new(id, OutcomeKind::Metadata(Ok(info))));
            }
            ActionKind::ReadDir { .. } => out.push(Outcome::new(
                id,
                OutcomeKind::Entries {
                    result: Ok(self.entries.clone()),
                    now: UnixTime(1_700_100_000),
                },
            )),
            ActionKind::ListenPassive { .. } => {
                out.push(Outcome::new(id, OutcomeKind::PassiveListening(Ok(40000))))
            }
            ActionKind::ClosePassive
            | ActionKind::AbortTransfer { .. }
            | ActionKind::Notify(_)
            | ActionKind::LoginEnded => {}
            ActionKind::Transfer(plan) => {
                let bytes = match &plan.kind {
                    TransferKind::Listing { bytes } => black_box(bytes.len() as u64),
                    _ => 10_240,
                };
                out.push(Outcome::new(
                    id,
                    OutcomeKind::TransferStarted { stored_as: None },
                ));
                out.push(Outcome::new(
                    id,
                    OutcomeKind::TransferEnded {
                        bytes,
                        result: Ok(()),
                    },
                ));
            }
            _ => self.unexpected += 1,
        }
    }
}

/// A session plus the responder, drained until quiet after every input.
struct Driver {
    session: Session,
    responder: Responder,
    now: Instant,
    codes: Vec<u16>,
    record: bool,
    replies: u64,
    outcomes: Vec<Outcome>,
    closed: bool,
}

const PEER: &str = "127.0.0.1:50000";
const LOCAL: &str = "127.0.0.1:21";

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 21)))
}

impl Driver {
    fn new(config: &Arc<Config>, responder: Responder, now: Instant) -> Driver {
        let session = Session::new(config.clone(), addr(PEER), addr(LOCAL), now);
        let mut d = Driver {
            session,
            responder,
            now,
            codes: Vec::new(),
            record: false,
            replies: 0,
            outcomes: Vec::new(),
            closed: false,
        };
        d.drain();
        d
    }

    fn input(&mut self, bytes: &[u8]) {
        self.session.handle_input(self.now, bytes);
        self.drain();
    }

    fn drain(&mut self) {
        // Bounded: a quiet session returns None; a runaway one is cut off.
        for _ in 0..10_000 {
            let Some(output) = self.session.poll_output() else {
                return;
            };
            match output {
                Output::Reply(r) => {
                    self.replies += 1;
                    if self.record {
                        counting(false);
                        self.codes.push(r.code());
                        counting(true);
                    }
                    black_box(r.as_bytes());
                }
                Output::Action(a) => {
                    counting(false);
                    self.responder.answer(a, &mut self.outcomes);
                    counting(true);
                    // Drain the outcomes without allocating: reverse, then pop.
                    self.outcomes.reverse();
                    while let Some(o) = self.outcomes.pop() {
                        self.session.handle_outcome(self.now, o);
                    }
                }
                Output::Close => self.closed = true,
            }
        }
        eprintln!("core-bench: the session did not go quiet within 10,000 outputs");
        std::process::exit(1);
    }
}

/// One command kind: the bytes fed per iteration, the reply codes they must produce, and how
/// many commands an iteration holds.
struct Kind {
    name: &'static str,
    input: &'static [u8],
    codes: &'static [u16],
    commands: u64,
    /// A fresh session per iteration (greeting, login, quit) instead of the shared one.
    fresh_session: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "NOOP",
        input: b"NOOP\r\n",
        codes: &[200],
        commands: 1,
        fresh_session: false,
    },
    Kind {
        name: "PWD",
        input: b"PWD\r\n",
        codes: &[257],
        commands: 1,
        fresh_session: false,
    },
    Kind {
        name: "CWD",
        input: b"CWD /pub\r\n",
        codes: &[250],
        commands: 1,
        fresh_session: false,
    },
    Kind {
        name: "TYPE",
        input: b"TYPE I\r\n",
        codes: &[200],
        commands: 1,
        fresh_session: false,
    },
    Kind {
        name: "SIZE",
        input: b"SIZE /pub/file-0001.bin\r\n",
        codes: &[213],
        commands: 1,
        fresh_session: false,
    },
    Kind {
        name: "PASV+RETR",
        input: b"PASV\r\nRETR /pub/file-0001.bin\r\n",
        codes: &[227, 150, 226],
        commands: 2,
        fresh_session: false,
    },
    Kind {
        name: "PASV+LIST",
        input: b"PASV\r\nLIST\r\n",
        codes: &[227, 150, 226],
        commands: 2,
        fresh_session: false,
    },
    Kind {
        name: "PASV+MLSD",
        input: b"PASV\r\nMLSD\r\n",
        codes: &[227, 150, 226],
        commands: 2,
        fresh_session: false,
    },
    Kind {
        name: "login+QUIT",
        input: b"USER bench\r\nPASS bench\r\nQUIT\r\n",
        codes: &[220, 331, 230, 221],
        commands: 3,
        fresh_session: true,
    },
];

struct Row {
    name: &'static str,
    commands: u64,
    secs: f64,
    allocs: u64,
    bytes: u64,
}

fn main() {
    let args = Args::parse();
    if args.mode_z {
        if let Err(e) = mode_z::run(args.runs.clamp(1, 20)) {
            eprintln!("core-bench: MODE Z: {e}");
            std::process::exit(1);
        }
        return;
    }
    let config = Arc::new(Config::default());
    let now = Instant::now();
    let only: Option<Vec<String>> = args.only.as_ref().map(|s| {
        s.split(',')
            .map(|k| k.trim().to_ascii_uppercase())
            .collect()
    });
    let mut rows = Vec::new();
    for kind in KINDS {
        if let Some(only) = &only {
            if !only.iter().any(|o| *o == kind.name.to_ascii_uppercase()) {
                continue;
            }
        }
        match bench_kind(kind, &config, now, &args) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("core-bench: {}: {e}", kind.name);
                std::process::exit(1);
            }
        }
    }
    println!(
        "{:<12} {:>14} {:>10} {:>14} {:>16} {:>12}",
        "kind", "commands/s", "ns/cmd", "allocs/cmd", "alloc B/cmd", "commands"
    );
    for r in rows {
        let c = r.commands.max(1) as f64;
        println!(
            "{:<12} {:>14.0} {:>10.0} {:>14.2} {:>16.1} {:>12}",
            r.name,
            r.commands as f64 / r.secs,
            1e9 * r.secs / c,
            r.allocs as f64 / c,
            r.bytes as f64 / c,
            r.commands
        );
    }
}

fn logged_in(config: &Arc<Config>, entries: usize, now: Instant) -> Result<Driver, String> {
    let mut d = Driver::new(config, Responder::new(entries), now);
    d.input(b"USER bench\r\nPASS bench\r\nTYPE I\r\n");
    if d.replies != 4 || d.session.account().is_none() {
        return Err(format!(
            "login did not succeed ({} replies); the inline responder no longer fits the core",
            d.replies
        ));
    }
    Ok(d)
}

fn bench_kind(kind: &Kind, config: &Arc<Config>, now: Instant, args: &Args) -> Result<Row, String> {
    // Check the replies once.
    let codes = if kind.fresh_session {
        let mut d = Driver::new(config, Responder::new(args.entries), now);
        d.record = true;
        d.codes.push(220);
        d.input(kind.input);
        if !d.closed {
            return Err("QUIT did not close the session".into());
        }
        d.codes
    } else {
        let mut d = logged_in(config, args.entries, now)?;
        d.record = true;
        d.input(kind.input);
        if d.responder.unexpected > 0 {
            return Err("the core asked for an action the responder does not know".into());
        }
        d.codes
    };
    if codes != kind.codes {
        return Err(format!("reply codes {codes:?}, expected {:?}", kind.codes));
    }

    let budget = Duration::from_secs_f64(args.seconds.max(0.01));
    let mut iterations = 0u64;
    let mut shared = if kind.fresh_session {
        None
    } else {
        Some(logged_in(config, args.entries, now)?)
    };
    let responder_entries = args.entries;
    ALLOCS.store(0, Ordering::Relaxed);
    ALLOC_BYTES.store(0, Ordering::Relaxed);
    let start = Instant::now();
    counting(true);
    while iterations < args.max_iterations {
        for _ in 0..256 {
            match shared.as_mut() {
                Some(d) => d.input(kind.input),
                None => {
                    counting(false);
                    let responder = Responder::new(responder_entries);
                    counting(true);
                    let mut d = Driver::new(config, responder, now);
                    d.input(kind.input);
                    counting(false);
                    drop(d);
                    counting(true);
                }
            }
            iterations += 1;
        }
        if start.elapsed() >= budget {
            break;
        }
    }
    counting(false);
    let secs = start.elapsed().as_secs_f64();
    Ok(Row {
        name: kind.name,
        commands: iterations * kind.commands,
        secs,
        allocs: ALLOCS.load(Ordering::Relaxed),
        bytes: ALLOC_BYTES.load(Ordering::Relaxed),
    })
}

/// MODE Z: what deflating a download costs (docs/representations.md has the figures).
mod mode_z {
    use std::time::Instant;
    use wharf_core::codec::{DataFormat, Decoder, Encoder, Mode};

    const SIZE: usize = 64 << 20;

    /// 64 MiB of text, the same every run: lines of nine words from a 16-word vocabulary,
    /// picked by a linear congruential generator.
    fn sample_text() -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "invoice",
            "order",
            "2024-03-01",
            "shipped",
            "EUR",
            "quantity",
            "12",
            "pallet",
            "Rotterdam",
            "customer",
            "0042",
            "received",
            "status",
            "OK",
            "total",
            "1,250.00",
        ];
        let mut text = Vec::with_capacity(SIZE);
        let mut state = 1u32;
        while text.len() < SIZE {
            for _ in 0..9 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                text.extend_from_slice(WORDS[(state >> 16) as usize % WORDS.len()].as_bytes());
                text.push(b' ');
            }
            text.push(b'\n');
        }
        text.truncate(SIZE);
        text
    }

    /// TYPE A (the default), STRU F, in `mode`.
    fn format(mode: Mode) -> DataFormat {
        DataFormat {
            mode,
            ..DataFormat::default()
        }
    }

    /// The text encoded 1 MiB at a time, and the seconds it took.
    fn encode(text: &[u8], mode: Mode) -> Result<(Vec<u8>, f64), String> {
        let start = Instant::now();
        let mut e = Encoder::new(format(mode), 0, None);
        let mut wire = Vec::with_capacity(text.len() + text.len() / 8);
        for piece in text.chunks(1 << 20) {
            e.encode(piece, &mut wire).map_err(|e| e.to_string())?;
        }
        e.finish(&mut wire).map_err(|e| e.to_string())?;
        Ok((wire, start.elapsed().as_secs_f64()))
    }

    /// The wire decoded 64 KiB at a time (as a data connection delivers it), and the seconds.
    fn decode(wire: &[u8], level: u8) -> Result<(Vec<u8>, f64), String> {
        let start = Instant::now();
        let mut d = Decoder::new(format(Mode::Deflate { level }), 0);
        let mut out = Vec::with_capacity(SIZE);
        for piece in wire.chunks(64 << 10) {
            let mut rest = piece;
            // Each call takes at least one byte or hands out output; bounded by the input.
            for _ in 0..=(4 * piece.len() + 64) {
                if rest.is_empty() {
                    break;
                }
                let n = d.decode(rest, &mut out).map_err(|e| e.to_string())?;
                rest = &rest[n..];
            }
        }
        d.finish(&mut out).map_err(|e| e.to_string())?;
        Ok((out, start.elapsed().as_secs_f64()))
    }

    fn mib_per_s(secs: f64) -> f64 {
        (SIZE as f64 / f64::from(1u32 << 20)) / secs.max(1e-9)
    }

    pub fn run(runs: u32) -> Result<(), String> {
        let text = sample_text();
        println!(
            "{:<12} {:>12} {:>7} {:>10} {:>12}",
            "MODE Z", "wire bytes", "ratio", "seconds", "MiB/s text"
        );
        let mut level6 = Vec::new();
        // TYPE A alone first (MODE S: the text's CRLFs, what MODE Z then compresses).
        let modes = [None, Some(1u8), Some(6), Some(9)];
        for level in modes {
            let mode = level.map_or(Mode::Stream, |level| Mode::Deflate { level });
            let mut best = f64::INFINITY;
            let mut wire = Vec::new();
            for _ in 0..runs {
                let (w, secs) = encode(&text, mode)?;
                best = best.min(secs);
                wire = w;
            }
            println!(
                "{:<12} {:>12} {:>6.1}:1 {:>10.2} {:>12.0}",
                level.map_or("TYPE A".to_owned(), |l| format!("encode L{l}")),
                wire.len(),
                text.len() as f64 / wire.len().max(1) as f64,
                best,
                mib_per_s(best)
            );
            if level == Some(6) {
                level6 = wire;
            }
        }
        let mut best = f64::INFINITY;
        for _ in 0..runs {
            let (out, secs) = decode(&level6, 6)?;
            if out != text {
                return Err("the level-6 stream did not decode to the text".into());
            }
            best = best.min(secs);
        }
        println!(
            "{:<12} {:>12} {:>7} {:>10.2} {:>12.0}",
            "decode L6",
            level6.len(),
            "",
            best,
            mib_per_s(best)
        );
        Ok(())
    }
}
