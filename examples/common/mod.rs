//! What the examples share: waiting for a stop signal, a server that can stop accepting and
//! finish what it started, and just enough HTTP/1.1 to serve and to call another service
//! (one request per connection, `Connection: close`).
//!
//! std only, plus signal-hook (a dev-dependency of grace) to notice SIGTERM.
//! Each example uses part of this module.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

/// Blocks until one of the [`stop_signals`] arrives; returns its name.
pub fn wait_for_stop(signals: &mut Signals) -> &'static str {
    let sig = signals
        .forever()
        .next()
        .expect("Signals::forever ends only when closed");
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "SIGQUIT",
    }
}

/// Registers SIGTERM (`docker stop`), SIGINT (Ctrl-C) and SIGQUIT. Do it before serving: until
/// then, SIGTERM kills the program outright (or, as PID 1 of a container, is dropped).
pub fn stop_signals() -> io::Result<Signals> {
    Signals::new([SIGTERM, SIGINT, SIGQUIT])
}

/// An accept loop on its own thread, one thread per connection.
pub struct Server {
    stop: Arc<AtomicBool>,
    accepting: JoinHandle<Vec<JoinHandle<()>>>,
}

impl Server {
    pub fn start<F>(listener: TcpListener, handle: F) -> io::Result<Server>
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        // std cannot interrupt a blocking accept(2), so the loop polls a flag between
        // non-blocking accepts. 10 ms is far below anything a client notices.
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let flag = stop.clone();
        let accepting = thread::spawn(move || {
            let mut handlers: Vec<JoinHandle<()>> = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let handle = handle.clone();
                        handlers.retain(|h| !h.is_finished());
                        handlers.push(thread::spawn(move || {
                            // The accepted socket inherits O_NONBLOCK on some systems.
                            if stream.set_nonblocking(false).is_ok() {
                                handle(stream)
                            }
                        }));
                    }
                    Err(e) => {
                        // Out of file descriptors, say: not fatal, and no reason to spin.
                        if e.kind() != io::ErrorKind::WouldBlock {
                            eprintln!("accept failed: {e}");
                        }
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            // Dropping the listener closes the socket: new connections are refused from here.
            drop(listener);
            handlers
        });
        Ok(Server { stop, accepting })
    }

    /// Stops accepting (new connections are refused from now on) and returns the connections
    /// already accepted and still being handled.
    pub fn stop_accepting(self) -> InFlight {
        self.stop.store(true, Ordering::SeqCst);
        let handlers = self
            .accepting
            .join()
            .expect("the accept loop does not panic");
        InFlight(handlers.into_iter().filter(|h| !h.is_finished()).collect())
    }
}

/// Connections accepted before the server stopped accepting, still being handled.
pub struct InFlight(Vec<JoinHandle<()>>);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Waits until every one of them has been answered.
    pub fn finish(self) {
        for handler in self.0 {
            _ = handler.join();
        }
    }
}

/// A parsed request: `GET /slow?ms=500`, with the body if it had a Content-Length.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// Reads one request. A client that says nothing for 10 s is dropped, so a stuck client
/// cannot hold up shutdown forever.
pub fn read_request(stream: &TcpStream) -> io::Result<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let (Some(method), Some(path)) = (words.next(), words.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok(Request { method, path, body })
}

pub fn respond(mut stream: &TcpStream, status: u16, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Error",
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // One write: a write per piece would send small segments that Nagle's algorithm holds
    // back until the peer's delayed ACK, 40 ms each.
    stream.write_all(answer.as_bytes())
}

/// Sends one request to `addr` ("host:port") and returns the status and the body.
pub fn request(addr: &str, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// Binds 0.0.0.0:$PORT (or `default`), so the server is reachable on the container's network.
pub fn listen(default: u16) -> io::Result<(TcpListener, SocketAddr)> {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default);
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
