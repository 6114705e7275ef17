//! Scenario A: an HTTP server that, on SIGTERM, stops accepting new connections, finishes
//! every request already in flight, and exits 0.
//!
//!   GET /slow?ms=N   answers 200 after N milliseconds (a request that takes a while)
//!   GET /anything    answers 200 at once
//!
//! PORT sets the port (default 8080). In a container: examples/docker/http_server.Dockerfile.

mod common;

use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> std::io::Result<()> {
    let mut signals = common::stop_signals()?;
    let (listener, addr) = common::listen(8080)?;
    let server = common::Server::start(listener, handle)?;
    println!("http_server: listening on {addr}");

    let sig = common::wait_for_stop(&mut signals);
    let in_flight = server.stop_accepting();
    println!(
        "http_server: {sig}: no longer accepting; finishing {} request(s) in flight",
        in_flight.count()
    );
    in_flight.finish();
    println!("http_server: every request answered; exiting 0");
    Ok(())
}

fn handle(stream: TcpStream) {
    let Ok(req) = common::read_request(&stream) else {
        return;
    };
    println!("http_server: {} {}", req.method, req.path);
    let body = match req.path.strip_prefix("/slow?ms=") {
        Some(ms) => {
            let ms = ms.parse().unwrap_or(1000);
            thread::sleep(Duration::from_millis(ms));
            format!("done after {ms} ms\n")
        }
        None => "hello\n".to_string(),
    };
    if let Err(e) = common::respond(&stream, 200, &body) {
        eprintln!("http_server: answering {}: {e}", req.path);
    }
}
