//! A TCP proxy between the module and ZooKeeper, to make network faults on
//! demand (std threads, two per forwarded connection):
//!
//! - `blackhole()`: silence both ways. Open connections stay open and new
//!   ones are accepted, but nothing is forwarded and no close is passed on,
//!   so the client sees silence, never a reset: its own timers must notice,
//!   and the server-side session expires after its timeout.
//! - `restore()`: forward again; every connection that was silenced is
//!   closed (its byte stream lost data), so the client reconnects cleanly.
//! - `cut()`: closes every current connection at once (RST), keeps accepting.
//!
//! Dropping the proxy closes everything and stops the listener.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// One accepted connection: the client side, and the upstream side unless it
/// was accepted while blackholed.
struct Conn {
    id: u64,
    client: TcpStream,
    server: Option<TcpStream>,
    /// Set by `blackhole` (never cleared): forward nothing, pass no close on.
    silenced: AtomicBool,
}

impl Conn {
    /// Resets both sides: the peers see the connection end at once.
    fn close(&self) {
        reset(&self.client);
        if let Some(server) = &self.server {
            reset(server);
        }
    }
}

#[derive(Default)]
struct Shared {
    blackholed: AtomicBool,
    stopped: AtomicBool,
    accepted: AtomicUsize,
    next_id: AtomicU64,
    /// Every open connection. Mode changes happen under this lock, so a
    /// connection is never registered with a stale mode.
    conns: Mutex<Vec<Arc<Conn>>>,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, Vec<Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, id: u64) {
        self.conns().retain(|c| c.id != id);
    }
}

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every accepted connection
    /// to `upstream` (`host:port`; of a connect string, its first server).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.split(',').next().unwrap_or(upstream).trim().to_string();
        let upstream: SocketAddr = upstream
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("proxy upstream {upstream} is not an address"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind the proxy: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy's address: {e}"));
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, upstream, accepting))
            .unwrap_or_else(|e| panic!("spawn the proxy: {e}"));
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The `host:port` to give the client as its connect string.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far (a reconnecting client makes it grow).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.shared.conns().len()
    }

    /// Stops forwarding both ways; old and new connections stay open, silent.
    pub fn blackhole(&self) {
        let conns = self.shared.conns();
        self.shared.blackholed.store(true, Ordering::SeqCst);
        for conn in conns.iter() {
            conn.silenced.store(true, Ordering::SeqCst);
        }
    }

    /// Forwards again; the connections that were silenced are closed so the
    /// client reconnects cleanly.
    pub fn restore(&self) {
        let mut conns = self.shared.conns();
        conns.retain(|conn| {
            let silenced = conn.silenced.load(Ordering::SeqCst);
            if silenced {
                conn.close();
            }
            !silenced
        });
        self.shared.blackholed.store(false, Ordering::SeqCst);
    }

    /// Closes every current connection at once; new ones are accepted (and
    /// forwarded unless blackholed).
    pub fn cut(&self) {
        for conn in self.shared.conns().drain(..) {
            conn.close();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        {
            let mut conns = shared.conns();
            if shared.blackholed.load(Ordering::SeqCst) {
                // Accept and say nothing: no upstream connection at all.
                conns.push(Arc::new(Conn {
                    id,
                    client,
                    server: None,
                    silenced: AtomicBool::new(true),
                }));
                continue;
            }
        }
        // Upstream down: close the client at once, as a refused connect would.
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) else {
            reset(&client);
            continue;
        };
        let _ = server.set_nodelay(true);
        let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
            reset(&client);
            reset(&server);
            continue;
        };
        let (Ok(client_write), Ok(server_write)) = (client.try_clone(), server.try_clone()) else {
            reset(&client);
            reset(&server);
            continue;
        };
        let conn = Arc::new(Conn {
            id,
            client,
            server: Some(server),
            silenced: AtomicBool::new(false),
        });
        {
            let mut conns = shared.conns();
            // Blackholed while connecting upstream: silent from the start.
            if shared.blackholed.load(Ordering::SeqCst) {
                conn.silenced.store(true, Ordering::SeqCst);
            }
            conns.push(conn.clone());
        }
        pump(client_read, server_write, conn.clone(), shared.clone());
        pump(server_read, client_write, conn, shared.clone());
    }
}

/// Copies `from` → `to` on a thread. Bytes read while the connection is
/// silenced are dropped; an end of stream is passed on (both sides closed)
/// only if it is not silenced, else the other side stays open and silent.
fn pump(mut from: TcpStream, mut to: TcpStream, conn: Arc<Conn>, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if conn.silenced.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        if !conn.silenced.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            shared.forget(conn.id);
        }
    });
}

/// Ends a connection with an RST: SO_LINGER 0, then shutdown (which also
/// wakes the threads blocked reading it; the RST leaves at the last close).
fn reset(stream: &TcpStream) {
    #[repr(C)]
    struct Linger {
        l_onoff: i32,
        l_linger: i32,
    }
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let linger = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid open fd and a correctly sized `struct linger`.
    unsafe {
        setsockopt(
            stream.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &linger as *const Linger as *const std::ffi::c_void,
            std::mem::size_of::<Linger>() as u32,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}
