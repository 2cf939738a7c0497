//! A TCP proxy between the module and ZooKeeper, to make faults on demand:
//! `blackhole` (silence both ways, connections kept open: the server-side
//! session expires after its timeout), `restore`, and `cut` (close now).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Shared {
    blackholed: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every open connection, to close them on demand.
    connections: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn close_all(&self) {
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

pub struct Proxy {
    addr: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (the first
    /// server of a connect string).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.split(',').next().unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let _ = client.set_nodelay(true);
                if accepting.blackholed.load(Ordering::Relaxed) {
                    // Accept and say nothing.
                    accepting.connections.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = server.set_nodelay(true);
                {
                    let mut open = accepting.connections.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    accepting.clone(),
                );
                pump(server, client, accepting.clone());
            }
        });
        Proxy { addr, shared }
    }

    /// The `host:port` to give the module as its connect string.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Stops forwarding both ways; connections stay open, silent.
    pub fn blackhole(&self) {
        self.shared.blackholed.store(true, Ordering::Relaxed);
    }

    /// Forwards again; the connections that were silenced are closed so the
    /// client reconnects cleanly.
    pub fn restore(&self) {
        self.shared.close_all();
        self.shared.blackholed.store(false, Ordering::Relaxed);
    }

    /// Closes every current connection at once.
    pub fn cut(&self) {
        self.shared.close_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.close_all();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect_timeout(&self.addr.parse().unwrap(), Duration::from_millis(100));
    }
}

/// Copies `from` → `to` on a thread, dropping bytes while blackholed.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if shared.blackholed.load(Ordering::Relaxed) {
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
