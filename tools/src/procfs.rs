//! What the benchmark reads from /proc: a server's process tree, its CPU time and its memory,
//! and the benchmark's own CPU time.
//!
//! Linux only, and read-only. CPU times come in clock ticks of `USER_HZ`, which is 100 on every
//! Linux architecture the benchmark runs on.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second in /proc/PID/stat (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of /proc/PID/stat the benchmark uses.
#[derive(Clone, Copy, Debug)]
struct Stat {
    ppid: u32,
    /// utime + stime of the process (all its threads, alive or exited), in ticks.
    own: u64,
    /// cutime + cstime: children it has waited for, and their waited-for children, in ticks.
    reaped: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5).
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: num(1)? as u32,
        own: num(11)? + num(12)?,
        reaped: num(13)? + num(14)?,
    })
}

/// `root` and every process descending from it, alive (or not yet reaped) now.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(st) = read_stat(pid) {
                children.entry(st.ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(kids) = children.get(&tree[i]) {
            tree.extend(kids.iter().copied().filter(|k| *k != root));
        }
        i += 1;
    }
    tree
}

/// CPU seconds used so far by the process tree under `root`: for every process alive now, its
/// own user+system time plus that of the children it has reaped (so a forking server's
/// finished sessions are counted through their parent). `None` if `root` is gone.
pub fn tree_cpu_seconds(root: u32) -> Option<f64> {
    read_stat(root)?;
    let ticks: u64 = process_tree(root)
        .into_iter()
        .filter_map(read_stat)
        .map(|s| s.own + s.reaped)
        .sum();
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// Memory of a process tree, summed over its processes from /proc/PID/smaps_rollup.
#[derive(Clone, Copy, Debug, Default)]
pub struct TreeMemory {
    /// Proportional set size, KiB (shared pages divided among their users).
    pub pss_kib: u64,
    /// Resident set size, KiB (shared pages counted in every process).
    pub rss_kib: u64,
    /// Processes summed.
    pub processes: usize,
}

/// PSS and RSS of the process tree under `root`; `None` if `root` is gone or unreadable.
pub fn tree_memory(root: u32) -> Option<TreeMemory> {
    let mut m = TreeMemory::default();
    read_rollup(root)?;
    for pid in process_tree(root) {
        if let Some((pss, rss)) = read_rollup(pid) {
            m.pss_kib += pss;
            m.rss_kib += rss;
            m.processes += 1;
        }
    }
    Some(m)
}

fn read_rollup(pid: u32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("Pss:")?, field("Rss:")?))
}

/// CPU seconds (user + system, all threads) used by this process so far.
pub fn self_cpu_seconds() -> f64 {
    read_stat(std::process::id()).map_or(0.0, |s| s.own as f64 / TICKS_PER_SECOND)
}

/// `(MemAvailable, MemTotal)` of the machine in KiB, from /proc/meminfo.
pub fn mem_available_kib() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("MemAvailable:")?, field("MemTotal:")?))
}

/// CPU seconds (user + system) used by the calling thread so far.
pub fn thread_cpu_seconds() -> f64 {
    fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|text| {
            let rest = &text[text.rfind(')')? + 1..];
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 2).then(|| (f[0] + f[1]) as f64 / TICKS_PER_SECOND)
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_visible() {
        let me = std::process::id();
        assert!(process_tree(me).contains(&me));
        let m = tree_memory(me).expect("smaps_rollup of this process");
        assert!(m.rss_kib > 0 && m.processes >= 1);
        assert!(tree_cpu_seconds(me).is_some());
        let (avail, total) = mem_available_kib().expect("/proc/meminfo");
        assert!(avail > 0 && avail <= total);
    }

    #[test]
    fn child_processes_are_in_the_tree() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let tree = process_tree(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&child.id()));
    }
}
