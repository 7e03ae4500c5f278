//! TLS on the control connection: `AUTH TLS` (the `StartTls` action: the handshake after the
//! `234`), the end of TLS after CCC or REIN (`StopTls`: close_notify both ways, then on in the
//! clear over the same socket), and the handshake of an implicit-TLS listener, which comes
//! before the session exists.
//!
//! Every handshake here is bounded as a whole by [`TLS_HANDSHAKE_TIMEOUT`] (a client that
//! trickles its hello cannot stretch it), and AUTH's by the login deadline too. A failed
//! handshake is logged with the reason and closes this connection only; a client speaking
//! clear text on the implicit port fails the handshake and is dropped.
//!
//! It decides nothing the core decides: it runs the steps the core asked for and reports
//! `TlsEstablished`.

use log::{info, warn};
use rustls::{ServerConnection, StreamOwned};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;
use wharf_core::{ActionId, OutcomeKind, Session, TlsInfo};

use super::stream::{self, ControlStream, TlsStream};
use super::{Connection, CONTROL_WRITE_TIMEOUT, TLS_HANDSHAKE_TIMEOUT};
use crate::shared::Shared;
use crate::tls::{ControlTls, TlsContext};
use rustls::ServerConfig;

impl Connection<'_> {
    /// `StartTls`: the 234 has been written; run the handshake on the control connection and
    /// report it. A failed handshake closes the connection (the core closes the session).
    #[inline(never)]
    pub(super) fn start_tls(&mut self, id: ActionId) {
        // The handshake sets the socket's timeouts: the cached read timeout is stale.
        self.read_timeout = None;
        let fail = |conn: &mut Self, why: String| {
            info!(
                "session {}: TLS handshake with {} failed: {why}; closing",
                conn.id, conn.peer
            );
            conn.outcome(id, OutcomeKind::TlsEstablished(Err(why)));
            conn.closing = true;
        };
        let Some(tls) = self.shared.tls.clone() else {
            return fail(self, "TLS is not configured".into());
        };
        // Swap the plain socket out (a duplicate descriptor stands in meanwhile).
        let placeholder = match self.ctrl.tcp().try_clone() {
            Ok(t) => t,
            Err(e) => return fail(self, format!("cannot prepare the socket: {e}")),
        };
        let tcp = match std::mem::replace(&mut self.ctrl, ControlStream::Plain(placeholder)) {
            ControlStream::Plain(tcp) => tcp,
            other => {
                // Already protected: the core does not ask for this.
                self.ctrl = other;
                return fail(self, "TLS is already in use".into());
            }
        };
        let control = tls.control(self.peer.ip());
        // Bounded as a whole, and before login by the login deadline too.
        let mut deadline = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
        if let Some(login) = self.session.login_deadline() {
            deadline = deadline.min(login);
        }
        match accept_tls(&tls, control.config(), tcp, deadline) {
            Ok((stream, info)) => {
                log_handshake(self.id, self.peer, "AUTH", &stream.conn, &info);
                let _ = stream.sock.set_write_timeout(Some(CONTROL_WRITE_TIMEOUT));
                self.write_timeout = CONTROL_WRITE_TIMEOUT;
                self.ctrl = ControlStream::Tls(stream);
                if let Some(user) = self.user.as_deref().filter(|_| self.login_slot.is_some()) {
                    // AUTH after login.
                    control.logged_in(user);
                }
                self.tls = Some(control);
                self.outcome(id, OutcomeKind::TlsEstablished(Ok(info)));
            }
            Err(e) => fail(self, e),
        }
    }

    /// `StopTls` (after the reply to CCC or REIN): close_notify both ways, then go on in the
    /// clear on the same socket. Data connections keep the TLS configuration: after CCC they
    /// may still be protected, and resume the session they have.
    #[inline(never)]
    pub(super) fn stop_tls(&mut self) {
        // The socket changes hands: the cached read timeout is stale.
        self.read_timeout = None;
        if !matches!(self.ctrl, ControlStream::Tls(_)) {
            return;
        }
        let placeholder = match self.ctrl.tcp().try_clone() {
            Ok(t) => t,
            Err(e) => {
                info!("session {}: cannot end TLS: {e}; closing", self.id);
                self.closing = true;
                return;
            }
        };
        let ControlStream::Tls(tls) =
            std::mem::replace(&mut self.ctrl, ControlStream::Plain(placeholder))
        else {
            return;
        };
        let (tcp, r) = stream::stop_tls(*tls, stream::CLOSE_NOTIFY_WAIT);
        let _ = tcp.set_write_timeout(Some(CONTROL_WRITE_TIMEOUT));
        self.write_timeout = CONTROL_WRITE_TIMEOUT;
        self.ctrl = ControlStream::Plain(tcp);
        match r {
            Ok(stream::StopTls::Clean) => {
                info!("session {}: TLS ended; control connection in the clear", self.id)
            }
            Ok(stream::StopTls::NoCloseNotify) => info!(
                "session {}: TLS ended (the client sent no close_notify); control connection in the clear",
                self.id
            ),
            Ok(stream::StopTls::DroppedProtected(n)) => warn!(
                "session {}: TLS ended; {n} protected bytes the client sent before its close_notify were dropped",
                self.id
            ),
            Err(e) => {
                info!("session {}: cannot end TLS cleanly: {e}; closing", self.id);
                self.closing = true;
            }
        }
    }
}

/// The start of a session on an implicit-TLS listener: the handshake, then the session. None
/// when the connection is dropped (TLS off, or the handshake failed; logged).
///
/// Out of line, like the other TLS steps, so that the frames of [`Connection::serve`] and
/// [`Connection::run_action`], which every plain session keeps on its stack, do not hold
/// room for TLS state (an idle session costs the stack pages it has touched).
#[inline(never)]
pub(super) fn implicit_start(
    shared: &Shared,
    tcp: TcpStream,
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    accepted: Instant,
) -> Option<(ControlStream, Session, Option<ControlTls>)> {
    let Some(tls) = &shared.tls else {
        warn!("session {id}: implicit-TLS connection from {peer} but TLS is off; dropped");
        return None;
    };
    let control = tls.control(peer.ip());
    let deadline = accepted + TLS_HANDSHAKE_TIMEOUT;
    match accept_tls(tls, control.config(), tcp, deadline) {
        Ok((stream, info)) => {
            log_handshake(id, peer, "implicit", &stream.conn, &info);
            // The login deadline counts from the connection's start, handshake included.
            let session = Session::new_implicit_tls(shared.core(), peer, local, accepted, info);
            Some((ControlStream::Tls(stream), session, Some(control)))
        }
        Err(e) => {
            // Plain text on the implicit port, a scanner, an old TLS version...: nothing to
            // answer; the server goes on.
            info!("session {id}: implicit TLS handshake with {peer} failed: {e}; closed");
            None
        }
    }
}

/// Runs the server side of the handshake on a new control connection with `config`, finished
/// by `deadline` however the client sends its bytes; returns the protected stream (boxed at
/// once: it is large) and what the session learns.
#[inline(never)]
fn accept_tls(
    tls: &TlsContext,
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<(Box<TlsStream>, TlsInfo), String> {
    let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut stream = Box::new(StreamOwned::new(conn, tcp));
    let s = &mut *stream;
    stream::handshake(&mut s.conn, &mut s.sock, deadline, TLS_HANDSHAKE_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let identity = tls.client_identity(&stream.conn);
    Ok((stream, TlsInfo::new(identity)))
}

fn log_handshake(id: u64, peer: SocketAddr, how: &str, conn: &ServerConnection, info: &TlsInfo) {
    let version = conn
        .protocol_version()
        .map_or("?".into(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("?".into(), |s| format!("{:?}", s.suite()));
    info!(
        "session {id} TLS ({how}) peer={peer} version={version} cipher={suite}{}",
        match &info.client_identity {
            Some(user) => format!(" client-certificate={user:?}"),
            None => String::new(),
        }
    );
}
