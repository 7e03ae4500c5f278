#!/usr/bin/env bash
# tools/peers.sh — Wharf beside the FTP servers its users would otherwise run, measured by
# wharf-bench on the same machine in the same run. Not part of the test suite: run by hand,
# as root (vsftpd, pure-ftpd and ProFTPD need it to switch to the benchmark user), on a quiet
# machine.
#
#   tools/peers.sh                         # every server, every workload, 3 runs each
#   SERVERS="wharf vsftpd" tools/peers.sh  # a subset
#   SIZE=256M tools/peers.sh --runs 1      # smaller bulk files; extra flags go to wharf-bench
#   NO_BUILD=1 tools/peers.sh              # use target/release/{wharf,wharf-bench} as they are
#   WHARF=/path/to/wharf tools/peers.sh    # another wharf binary (e.g. an older build)
#   WHARF_B=/path/to/old/wharf SERVERS="wharf wharf-b" ROUNDS=5 tools/peers.sh --runs 1
#                                          # A/B: two wharf builds interleaved in one run
#   ROUNDS=5 tools/peers.sh --runs 1       # interleaved: 5 rounds, each server once per round
#
# What it sets up, all on 127.0.0.1 high ports, with equivalent settings:
#   wharf      target/release/wharf serve (port 22121, passive 40000-40999)
#   wharf-b    $WHARF_B serve, the same settings (port 22126, passive 48000-48999)
#   vsftpd     /usr/sbin/vsftpd from Debian (22122, passive 41000-41999), PAM via pam_unix
#   pure-ftpd  unpacked from its Debian package with apt-get download + dpkg -x (the package
#              conflicts with vsftpd's), puredb user file (22123, passive 44000-47999: pure-ftpd
#              caps its client limit at half the passive range, so 1,000 ports would cap it at 500)
#   pyftpdlib  from PyPI in a venv under $WORK (22124, passive 43000-43999)
#   proftpd    ProFTPD unpacked like pure-ftpd (proftpd-core, proftpd-mod-crypto for mod_tls,
#              and the few libraries it links that are not installed), AuthUserFile
#              (22125, passive 42000-42999); its mod_delay is off, as Wharf does not delay
#              successful logins either
# One throw-away user, wharfbench, with the same password everywhere: a SHA-512-crypt hash
# for vsftpd (/etc/shadow), pure-ftpd (puredb) and ProFTPD (AuthUserFile), plain for
# pyftpdlib (DummyAuthorizer),
# and Wharf's own store for Wharf (what it ships). One self-signed certificate (EC P-256,
# made with openssl) for every server's explicit FTPS; vsftpd keeps require_ssl_reuse=YES
# and ProFTPD its default, which also requires data connections to resume the TLS session.
# Connection limits are raised so 2,000 storm sessions and 1,000 idle sessions fit, except
# Wharf's, which the benchmark runs with its defaults.
#
# Files: each server's root gets a hard link to one random file of $SIZE bytes as
# wharf-bench-retr.bin (what RETR fetches); STOR and the small-file workloads write their own.
# Scratch data lives under $WORK (default /tmp/wharf-peers); the server roots are removed on
# exit, the results ($WORK/results/*.json) and the package/venv caches are kept.
# On exit (normal or not) the trap stops every server this script started, by PID, and
# removes the user and the PAM file it created.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-/tmp/wharf-peers}
SERVERS=${SERVERS:-"wharf vsftpd pure-ftpd pyftpdlib proftpd"}
SIZE=${SIZE:-1G}
BENCH_USER=wharfbench
BENCH_PASS=${BENCH_PASS:-wharf-bench-pw}
HOST=127.0.0.1
declare -A PORT=([wharf]=22121 [vsftpd]=22122 [pure-ftpd]=22123 [pyftpdlib]=22124 [proftpd]=22125 [wharf-b]=22126)
declare -A PASV_LO=([wharf]=40000 [vsftpd]=41000 [pure-ftpd]=44000 [pyftpdlib]=43000 [proftpd]=42000 [wharf-b]=48000)
declare -A PASV_HI=([wharf]=40999 [vsftpd]=41999 [pure-ftpd]=47999 [pyftpdlib]=43999 [proftpd]=42999 [wharf-b]=48999)
PAM_FILE=/etc/pam.d/wharfbench-vsftpd
BENCH=$REPO/target/release/wharf-bench
WHARF=${WHARF:-$REPO/target/release/wharf}
WHARF_B=${WHARF_B:-}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'peers.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (vsftpd, pure-ftpd and ProFTPD switch to the benchmark user)"
for s in $SERVERS; do
  [ -n "${PORT[$s]:-}" ] || die "unknown server '$s' (known: wharf wharf-b vsftpd pure-ftpd pyftpdlib proftpd)"
done
case " $SERVERS " in *" wharf-b "*) [ -x "$WHARF_B" ] || die "wharf-b needs WHARF_B=/path/to/wharf";; esac

STARTED_PIDS=()
CREATED_USER=0
CREATED_PAM=0
cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    stop_pid "$pid"
  done
  if [ "$CREATED_USER" = 1 ]; then userdel "$BENCH_USER" 2>/dev/null || true; fi
  if [ "$CREATED_PAM" = 1 ]; then rm -f "$PAM_FILE"; fi
  rm -rf "$WORK"/roots
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one server we started: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

# Waits (at most 10 s) until something accepts on 127.0.0.1:$1.
wait_port() {
  local i
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

mkdir -p "$WORK"/results "$WORK"/roots "$WORK"/logs
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building wharf-bench and wharf (release; NO_BUILD=1 uses the binaries as they are)"
  (cd "$REPO" && cargo build --release -p wharf-tools -p wharf-blocking) >&2
fi
[ -x "$BENCH" ] || die "$BENCH is missing: cargo build --release -p wharf-tools"
case " $SERVERS " in *" wharf "*) [ -x "$WHARF" ] || die "$WHARF is missing";; esac

# ----- shared material -------------------------------------------------------------------
CERT=$WORK/cert.pem
KEY=$WORK/key.pem
if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
  log "making a self-signed certificate for 127.0.0.1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE -keyout "$KEY" -out "$CERT" 2>/dev/null
fi
HASH=$(openssl passwd -6 "$BENCH_PASS")

if ! id "$BENCH_USER" >/dev/null 2>&1; then
  log "creating the throw-away user $BENCH_USER"
  useradd --system --no-create-home --home-dir "$WORK/roots/vsftpd" --shell /usr/sbin/nologin \
    "$BENCH_USER"
  CREATED_USER=1
fi
echo "$BENCH_USER:$HASH" | chpasswd -e
BENCH_UID=$(id -u "$BENCH_USER")
BENCH_GID=$(id -g "$BENCH_USER")

DATA=$WORK/data/retr-$SIZE.bin
if [ ! -s "$DATA" ]; then
  log "writing $SIZE of random data for RETR"
  mkdir -p "$WORK/data"
  head -c "$SIZE" /dev/urandom > "$DATA.partial" && mv "$DATA.partial" "$DATA"
fi

make_root() { # a fresh root for server $1 holding the RETR file
  local root=$WORK/roots/$1
  rm -rf "$root"
  mkdir -p "$root"
  ln "$DATA" "$root/wharf-bench-retr.bin"
  chown -R "$BENCH_USER:" "$root"
  chown "$BENCH_USER:" "$DATA"
  echo "$root"
}

# ----- servers: each start_* starts one in the background and sets SERVER_PID ------------------------------------
# A wharf binary ($2) as server $1 (wharf, or wharf-b for an A/B run), in a folder of its
# own so that the two builds of an A/B run keep their own TLS and user files.
start_a_wharf() {
  local name=$1 bin=$2 root conf extra=()
  root=$(make_root "$name")
  conf=$WORK/$name.toml
  printf 'passive_ports = "%s-%s"\n' "${PASV_LO[$name]}" "${PASV_HI[$name]}" > "$conf"
  if "$bin" serve --help 2>/dev/null | grep -q -- '--cert'; then
    extra=(--cert "$CERT" --key "$KEY")
  fi
  mkdir -p "$WORK/$name.d"
  (cd "$WORK/$name.d" && exec "$bin" serve --listen "$HOST:${PORT[$name]}" --root "$root" \
    --user "$BENCH_USER:$BENCH_PASS" --config "$conf" "${extra[@]}") \
    >"$WORK/logs/$name.log" 2>&1 &
  SERVER_PID=$!
}
start_wharf() { start_a_wharf wharf "$WHARF"; }
start_wharf-b() { start_a_wharf wharf-b "$WHARF_B"; }

start_vsftpd() {
  local root conf
  root=$(make_root vsftpd)
  usermod -d "$root" "$BENCH_USER" 2>/dev/null || true
  if [ ! -f "$PAM_FILE" ]; then
    printf 'auth required pam_unix.so\naccount required pam_unix.so\n' > "$PAM_FILE"
    CREATED_PAM=1
  fi
  mkdir -p /var/run/vsftpd/empty
  conf=$WORK/vsftpd.conf
  cat > "$conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=$HOST
listen_port=${PORT[vsftpd]}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
local_root=$root
chroot_local_user=YES
allow_writeable_chroot=YES
pam_service_name=$(basename "$PAM_FILE")
pasv_enable=YES
pasv_min_port=${PASV_LO[vsftpd]}
pasv_max_port=${PASV_HI[vsftpd]}
max_clients=0
max_per_ip=0
connect_from_port_20=NO
xferlog_enable=NO
seccomp_sandbox=NO
use_sendfile=YES
ssl_enable=YES
rsa_cert_file=$CERT
rsa_private_key_file=$KEY
allow_anon_ssl=NO
force_local_data_ssl=NO
force_local_logins_ssl=NO
require_ssl_reuse=YES
ssl_ciphers=HIGH
secure_chroot_dir=/var/run/vsftpd/empty
idle_session_timeout=600
EOF
  /usr/sbin/vsftpd "$conf" >"$WORK/logs/vsftpd.log" 2>&1 &
  SERVER_PID=$!
}

# Downloads Debian packages into $1 (apt-get download; one apt-get update if that fails) and
# unpacks them all into $1/pkg: for servers whose packages conflict with vsftpd's.
unpack_debs() {
  local dir=$1 p
  shift
  mkdir -p "$dir"
  (cd "$dir" && apt-get download "$@" >&2) \
    || { apt-get update >&2 && (cd "$dir" && apt-get download "$@" >&2); } \
    || die "apt-get download $* failed"
  for p in "$dir"/*.deb; do dpkg -x "$p" "$dir/pkg"; done
}

PURE=$WORK/pure-ftpd/pkg
start_pure-ftpd() {
  local root
  root=$(make_root pure-ftpd)
  [ -x "$PURE/usr/sbin/pure-ftpd" ] || unpack_debs "$WORK/pure-ftpd" pure-ftpd
  # The puredb user file is made with pure-pw from the same package; its own default hash
  # (argon2id, t=1023) is replaced by the same SHA-512-crypt hash vsftpd gets.
  local pw=$WORK/pure-ftpd/pureftpd.passwd db=$WORK/pure-ftpd/pureftpd.pdb
  rm -f "$pw" "$db"
  printf '%s\n%s\n' "$BENCH_PASS" "$BENCH_PASS" | "$PURE/usr/bin/pure-pw" useradd "$BENCH_USER" \
    -u "$BENCH_UID" -g "$BENCH_GID" -d "$root" -f "$pw" >/dev/null
  awk -F: -v OFS=: -v h="$HASH" -v u="$BENCH_USER" '$1==u{$2=h}1' "$pw" > "$pw.new"
  mv "$pw.new" "$pw"
  "$PURE/usr/bin/pure-pw" mkdb "$db" -f "$pw"
  "$PURE/usr/sbin/pure-ftpd" -S "$HOST,${PORT[pure-ftpd]}" -l "puredb:$db" -E -A -H \
    -p "${PASV_LO[pure-ftpd]}:${PASV_HI[pure-ftpd]}" -c 5000 -C 5000 -I 15 -k 99 \
    -Y 1 -2 "$CERT,$KEY" >"$WORK/logs/pure-ftpd.log" 2>&1 &
  SERVER_PID=$!
}

start_pyftpdlib() {
  local root venv=$WORK/venv
  root=$(make_root pyftpdlib)
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pyftpdlib, OpenSSL' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pyftpdlib pyopenssl >&2
  fi
  "$venv/bin/python" "$REPO/tools/peers/pyftpdlib_server.py" "$HOST" "${PORT[pyftpdlib]}" \
    "$root" "$BENCH_USER" "$BENCH_PASS" "$CERT" "$KEY" \
    "${PASV_LO[pyftpdlib]}" "${PASV_HI[pyftpdlib]}" >"$WORK/logs/pyftpdlib.log" 2>&1 &
  SERVER_PID=$!
}

PRO=$WORK/proftpd
start_proftpd() {
  local root pkg=$PRO/pkg lib missing
  root=$(make_root proftpd)
  lib=$pkg/usr/lib/x86_64-linux-gnu
  if [ ! -x "$pkg/usr/sbin/proftpd" ] || [ ! -f "$pkg/usr/lib/proftpd/mod_tls.so" ]; then
    # Debian 12's names: the server, mod_tls, and the libraries proftpd links that a machine
    # without ProFTPD installed usually lacks.
    unpack_debs "$PRO" proftpd-core proftpd-mod-crypto libhiredis0.14 libmemcached11 \
      libmemcachedutil2 libhashkit2 libpcre2-posix3
  fi
  missing=$(LD_LIBRARY_PATH=$lib ldd "$pkg/usr/sbin/proftpd" | awk '/not found/{print $1}')
  [ -z "$missing" ] || die "proftpd needs libraries that are not installed: $missing"
  # AuthUserFile: the same SHA-512-crypt hash as vsftpd's, with the benchmark user's ids.
  printf '%s:%s:%s:%s::%s:/usr/sbin/nologin\n' "$BENCH_USER" "$HASH" "$BENCH_UID" \
    "$BENCH_GID" "$root" > "$PRO/ftpd.passwd"
  chmod 600 "$PRO/ftpd.passwd"
  cat > "$PRO/proftpd.conf" <<EOF
ServerName "wharf-bench proftpd"
ServerType standalone
DefaultAddress $HOST
SocketBindTight on
Port ${PORT[proftpd]}
PassivePorts ${PASV_LO[proftpd]} ${PASV_HI[proftpd]}
User nobody
Group nogroup
Umask 022
MaxInstances 5000
MaxClients none
MaxClientsPerHost none
MaxClientsPerUser none
MaxConnectionsPerHost none
UseIPv6 off
UseReverseDNS off
DefaultRoot ~
RequireValidShell off
AuthOrder mod_auth_file.c
AuthUserFile $PRO/ftpd.passwd
AuthPAM off
AllowOverwrite on
UseSendfile on
TimeoutIdle 600
PidFile $PRO/proftpd.pid
ScoreboardFile $PRO/proftpd.scoreboard
WtmpLog off
DelayEngine off
ModulePath $pkg/usr/lib/proftpd
LoadModule mod_tls.c
TLSEngine on
TLSProtocol TLSv1.2 TLSv1.3
TLSECCertificateFile $CERT
TLSECCertificateKeyFile $KEY
TLSRequired off
TLSVerifyClient off
EOF
  LD_LIBRARY_PATH=$lib "$pkg/usr/sbin/proftpd" -n -c "$PRO/proftpd.conf" \
    >"$WORK/logs/proftpd.log" 2>&1 &
  SERVER_PID=$!
}

# ----- run ---------------------------------------------------------------------------------
# Every server is started first; then each round benchmarks them one after the other, the
# order rotated by one server per round. Rounds are for drift: this VM's speed wanders by
# up to 2x over minutes, so with ROUNDS=5 --runs 1 every server gets five runs spread over
# the same stretch of time instead of one block each (compare.py pools the rounds).
ROUNDS=${ROUNDS:-1}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
declare -A PID_OF=()
declare -A TLS_OF=()
for s in $SERVERS; do
  log "starting $s"
  "start_$s"
  PID_OF[$s]=$SERVER_PID
  STARTED_PIDS+=("$SERVER_PID")
  if ! wait_port "${PORT[$s]}"; then
    tail -20 "$WORK/logs/$s.log" >&2 || true
    die "$s did not start listening on $HOST:${PORT[$s]}"
  fi
  TLS_OF[$s]=1
  bin=
  case $s in wharf) bin=$WHARF;; wharf-b) bin=$WHARF_B;; esac
  if [ -n "$bin" ] && ! "$bin" serve --help 2>/dev/null | grep -q -- '--cert'; then
    log "this wharf has no FTPS yet: its FTPS workloads are skipped"
    TLS_OF[$s]=0
  fi
done

read -r -a ORDER <<< "$SERVERS"
JSONS=()
for round in $(seq "$ROUNDS"); do
  for i in "${!ORDER[@]}"; do
    s=${ORDER[$(( (i + round - 1) % ${#ORDER[@]} ))]}
    json=$WORK/results/$s.json
    [ "$ROUNDS" = 1 ] || json=$WORK/results/$s.round$round.json
    tls=()
    [ "${TLS_OF[$s]}" = 0 ] || tls=(--tls-cert "$CERT")
    # Every root holds the same RETR file (hard links): read it before each server so that
    # its first RETR run starts from the page cache too.
    cat "$DATA" >/dev/null
    log "round $round/$ROUNDS: benchmarking $s (PID ${PID_OF[$s]})"
    "$BENCH" --label "$s" --host "$HOST" --port "${PORT[$s]}" --user "$BENCH_USER" \
      --pass "$BENCH_PASS" --server-pid "${PID_OF[$s]}" --size "$SIZE" "${tls[@]}" \
      --json "$json" "$@" || log "$s: some workloads failed (see the table)"
    JSONS+=("$json")
  done
done

log "comparison"
python3 "$REPO/tools/peers/compare.py" "${JSONS[@]}"
