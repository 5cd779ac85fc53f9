//! A TCP proxy on loopback that a test controls: it forwards every
//! connection to a real server and can cut them all, hold their bytes back
//! (a stalled network), or refuse new connections for a while (a server
//! that is down).

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The proxy; dropping it cuts every connection and stops it.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: u16,
    port: u16,
    /// Listening while up; `None` while down (connecting is refused). New
    /// connections are taken and registered under this lock, so `down`
    /// and `cut` never miss one.
    listener: Mutex<Option<TcpListener>>,
    stalled: AtomicBool,
    stop: AtomicBool,
    live: Mutex<Vec<TcpStream>>,
    accepted: AtomicU64,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` there.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            port,
            listener: Mutex::new(Some(listener)),
            stalled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept(&accepting));
        Proxy { port, shared }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Closes every open connection, both ways, as a network that drops
    /// them does.
    pub fn cut(&self) {
        for s in self.shared.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Holds every byte back (`true`) until released (`false`): the
    /// connections stay open and go silent.
    pub fn stall(&self, on: bool) {
        self.shared.stalled.store(on, Ordering::SeqCst);
    }

    /// The server goes away: open connections are cut and new ones refused
    /// until [`Proxy::up`].
    pub fn down(&self) {
        let mut listener = self.shared.listener.lock().unwrap();
        *listener = None;
        self.cut();
    }

    /// The server is back: listening again when this returns.
    pub fn up(&self) {
        let mut listener = self.shared.listener.lock().unwrap();
        if listener.is_none() {
            let l = TcpListener::bind(("127.0.0.1", self.shared.port)).unwrap();
            l.set_nonblocking(true).unwrap();
            *listener = Some(l);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn accept(shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let taken = {
            let listener = shared.listener.lock().unwrap();
            match listener.as_ref().map(TcpListener::accept) {
                Some(Ok((client, _))) => {
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    forward(client, shared);
                    true
                }
                _ => false,
            }
        };
        if !taken {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn forward(client: TcpStream, shared: &Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(("127.0.0.1", shared.upstream)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    {
        let mut live = shared.live.lock().unwrap();
        live.push(client.try_clone().unwrap());
        live.push(server.try_clone().unwrap());
    }
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (a, b) = (shared.clone(), shared.clone());
    std::thread::spawn(move || pump(client, server, &a));
    std::thread::spawn(move || pump(s2, c2, &b));
}

fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while shared.stalled.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
