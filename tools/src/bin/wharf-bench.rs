//! `wharf-bench`: runs the benchmark workloads against any FTP server on loopback and prints a
//! table (stdout), a progress line (stderr) and optionally JSON (`--json FILE`).
//!
//! Example:
//! `wharf-bench --port 2121 --user bench --pass bench --server-pid $PID --tls-cert cert.pem`
//!
//! See `wharf_tools::bench` for what each workload measures and which files it expects.

use anyhow::{bail, Context, Result};
use clap::Parser;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use wharf_tools::bench::{Bench, Settings, ALL};
use wharf_tools::ftp::TlsClient;
use wharf_tools::report;

/// Benchmark an FTP server on loopback: bulk RETR/STOR (plain and FTPS), small files, a login
/// storm and idle sessions, each the median of several runs, beside a raw TCP ceiling.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Server address; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Server control port.
    #[arg(long)]
    port: u16,
    /// User name.
    #[arg(long, default_value = "bench")]
    user: String,
    /// Password.
    #[arg(long, default_value = "bench")]
    pass: String,
    /// Name shown in the table and the JSON (e.g. vsftpd).
    #[arg(long, default_value = "server")]
    label: String,
    /// Comma-separated workloads, or "all": idle_sessions, raw_retr, retr, ftps_retr, raw_stor,
    /// stor, ftps_stor, small_stor, small_retr, login_storm (run in that order).
    #[arg(long, default_value = "all")]
    workloads: String,
    /// Runs per workload; the table shows the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Bytes in the large RETR/STOR (suffixes K, M, G = powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    size: u64,
    /// Remote file fetched by retr/ftps_retr (uploaded first if SIZE does not match --size).
    #[arg(long, default_value = "wharf-bench-retr.bin")]
    retr_file: String,
    /// Remote file written by stor/ftps_stor.
    #[arg(long, default_value = "wharf-bench-stor.bin")]
    stor_file: String,
    /// Number of small files stored and fetched.
    #[arg(long, default_value_t = 1000)]
    small_count: usize,
    /// Size of each small file (suffixes K, M, G).
    #[arg(long, default_value = "10K", value_parser = parse_size)]
    small_size: u64,
    /// Name prefix of the small files on the server.
    #[arg(long, default_value = "wharf-bench-small-")]
    small_prefix: String,
    /// Sessions (connect, USER, PASS, QUIT) in the login storm.
    #[arg(long, default_value_t = 2000)]
    storm_sessions: usize,
    /// Storm sessions in flight at once.
    #[arg(long, default_value_t = 200)]
    storm_concurrency: usize,
    /// Logged-in sessions held open at once.
    #[arg(long, default_value_t = 1000)]
    idle_sessions: usize,
    /// PID of the server (the root of its process tree): enables server CPU and memory figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's certificate (PEM); FTPS connections trust exactly this certificate.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Server name for TLS (SNI and session cache key); default: the host address.
    #[arg(long)]
    tls_name: Option<String>,
    /// Seconds allowed for any single connect, read or write.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Seconds allowed for one run of a workload.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// Directory for the local source file of uploads.
    #[arg(long, default_value = "/tmp/wharf-bench-client")]
    local_dir: PathBuf,
    /// How plain RETR data is received (raw_retr, retr, small_retr): "read" (1 MiB reads into
    /// a buffer) or "splice" (splice(2) through a pipe into /dev/null, Linux; no copy).
    #[arg(long, default_value = "read", value_parser = ["read", "splice"])]
    recv: String,
    /// Change into this folder after logging in (e.g. /Outbox for a partner's user); the
    /// login storm and the idle sessions stay where they log in.
    #[arg(long)]
    cwd: Option<String>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_uppercase();
            let m = match unit.as_str() {
                "K" | "KIB" => 1u64 << 10,
                "M" | "MIB" => 1 << 20,
                "G" | "GIB" => 1 << 30,
                "B" => 1,
                _ => return Err(format!("unknown size unit {:?} (use K, M or G)", &t[i..])),
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("wharf-bench: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let a = Args::parse();
    if !a.host.is_loopback() {
        bail!(
            "--host {} is not a loopback address; wharf-bench only targets 127.0.0.0/8 or ::1",
            a.host
        );
    }
    if a.runs == 0 || a.size == 0 {
        bail!("--runs and --size must be at least 1");
    }
    let workloads: Vec<String> = if a.workloads == "all" {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        a.workloads
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    };
    for w in &workloads {
        if !ALL.contains(&w.as_str()) {
            bail!("unknown workload {w:?}; known: {}", ALL.join(", "));
        }
    }
    let tls = match &a.tls_cert {
        Some(path) => {
            let name = a.tls_name.clone().unwrap_or_else(|| a.host.to_string());
            let name = ServerName::try_from(name.clone())
                .with_context(|| format!("--tls-name {name:?}"))?;
            Some(TlsClient {
                config: wharf_tools::tls::client_config(path).map_err(anyhow::Error::msg)?,
                name,
            })
        }
        None => None,
    };
    let addr = SocketAddr::new(a.host, a.port);
    let settings = Settings {
        addr,
        user: a.user,
        pass: a.pass,
        tls,
        timeout: Duration::from_secs(a.timeout.max(1)),
        max_run: Duration::from_secs(a.max_seconds.max(1)),
        runs: a.runs,
        size: a.size,
        retr_file: a.retr_file,
        stor_file: a.stor_file,
        small_count: a.small_count,
        small_size: a.small_size as usize,
        small_prefix: a.small_prefix,
        storm_sessions: a.storm_sessions,
        storm_concurrency: a.storm_concurrency,
        idle_sessions: a.idle_sessions,
        server_pid: a.server_pid,
        local_dir: a.local_dir,
        recv_splice: a.recv == "splice",
        cwd: a.cwd,
    };
    let skip_ftps = settings.tls.is_none() && a.workloads == "all";
    let mut bench = Bench::new(settings)?;
    let mut results = Vec::new();
    for w in &workloads {
        if skip_ftps && w.starts_with("ftps_") {
            eprintln!("[{w}] skipped: no --tls-cert");
            continue;
        }
        results.push(bench.run(w));
    }
    print!("{}", report::table(&a.label, &addr.to_string(), &results));
    if let Some(path) = &a.json {
        std::fs::write(
            path,
            report::json(&a.label, &addr.to_string(), a.runs, &results),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    if results.iter().any(|r| r.error.is_some()) {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("10K"), Ok(10240));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("x").is_err());
    }
}
