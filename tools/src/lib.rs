//! wharf-tools: the benchmark and load generator for Wharf and the FTP servers it is compared
//! with. Nothing here is part of the server; it talks to servers only over loopback.
//!
//! - [`ftp`]: a minimal FTP/FTPS client built for throughput (sendfile, large reads).
//! - [`tls`]: the client's rustls configuration (pinned self-signed certificate, resumption).
//! - [`procfs`]: CPU time and memory of a server's process tree from /proc.
//! - [`bench`]: the workloads of `wharf-bench`.
//! - [`report`]: medians, the table on stdout and the JSON file.
//! - [`sys`]: sendfile(2), which `std::io::copy` no longer uses from a file to a socket.
//!
//! The binaries: `wharf-bench` (any FTP server, see `--help`) and `core-bench` (wharf-core
//! alone, no network). `tools/peers.sh` runs `wharf-bench` against vsftpd, pure-ftpd,
//! pyftpdlib and Wharf side by side.

pub mod bench;
pub mod ftp;
pub mod procfs;
pub mod report;
pub mod sys;
pub mod tls;
