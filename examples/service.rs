//! Scenario C, part 2: a service that registers its address with the registry
//! (examples/registry.rs) when it starts, and on SIGTERM deregisters *before* it stops
//! serving, so that nobody who read the registry is sent to a closed port.
//!
//! On SIGTERM: deregister; keep serving for DRAIN ms (default 1000: the time the registry's
//! clients need to notice); stop accepting; finish the requests in flight; exit 0.
//!
//!   service              serve GET /health on PORT (default 8080)
//!   service deregister   only deregister, then exit: a command for grace's --pre-stop, which
//!                        runs it before the stop signal reaches the service
//!
//! REGISTRY is the registry's host:port (default registry:8500). The address registered is the
//! one this container uses to reach the registry, so the registry's other clients can reach it.
//! In a container: examples/docker/service.Dockerfile.

mod common;

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

fn main() -> ExitCode {
    let deregister_only = std::env::args().nth(1).as_deref() == Some("deregister");
    let result = match deregister_only {
        true => own_address().and_then(|me| deregister(&registry(), &me)),
        false => run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let mut signals = common::stop_signals()?;
    let registry = registry();
    let (listener, _) = common::listen(8080)?;
    let server = common::Server::start(listener, handle)?;
    let me = own_address()?;
    match common::request(&registry, "PUT", &format!("/instances/{me}"), "")? {
        (200, _) => println!("service: serving on {me}, registered with {registry}"),
        (status, body) => return Err(io::Error::other(format!("register: {status} {body}"))),
    }

    let sig = common::wait_for_stop(&mut signals);
    println!("service: {sig} received");
    deregister(&registry, &me)?;
    let drain = std::env::var("DRAIN")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(1000);
    println!("service: still serving for {drain} ms while clients notice");
    thread::sleep(Duration::from_millis(drain));
    let in_flight = server.stop_accepting();
    println!(
        "service: no longer accepting; finishing {} request(s) in flight",
        in_flight.count()
    );
    in_flight.finish();
    println!("service: stopped; exiting 0");
    Ok(())
}

fn registry() -> String {
    std::env::var("REGISTRY").unwrap_or_else(|_| "registry:8500".into())
}

/// This container's address as the registry sees it: the local end of a connection to the
/// registry, with our port.
fn own_address() -> io::Result<String> {
    let registry = registry()
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("REGISTRY resolves to no address"))?;
    let ip = TcpStream::connect(registry)?.local_addr()?.ip();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    Ok(format!("{ip}:{port}"))
}

/// Removes this instance from the registry. Already gone (the pre-stop hook did it) is fine.
fn deregister(registry: &str, me: &str) -> io::Result<()> {
    match common::request(registry, "DELETE", &format!("/instances/{me}"), "")? {
        (200, _) => println!("service: deregistered {me}"),
        (404, _) => println!("service: {me} was already deregistered"),
        (status, body) => return Err(io::Error::other(format!("deregister: {status} {body}"))),
    }
    Ok(())
}

fn handle(stream: TcpStream) {
    if let Ok(req) = common::read_request(&stream) {
        _ = common::respond(&stream, 200, &format!("ok: {}\n", req.path));
    }
}
