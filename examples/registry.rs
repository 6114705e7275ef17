//! Scenario C, part 1: a tiny service registry over HTTP.
//!
//!   PUT    /instances/ADDR   registers ADDR (e.g. 172.18.0.3:8080)
//!   DELETE /instances/ADDR   deregisters it; 404 if it was not registered
//!   GET    /instances        lists the registered addresses, one per line
//!
//! PORT sets the port (default 8500). Like the other examples, it stops gracefully.
//! In a container: examples/docker/registry.Dockerfile; the service is examples/service.rs.

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Mutex;

static INSTANCES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> std::io::Result<()> {
    let mut signals = common::stop_signals()?;
    let (listener, addr) = common::listen(8500)?;
    let server = common::Server::start(listener, handle)?;
    println!("registry: listening on {addr}");

    let sig = common::wait_for_stop(&mut signals);
    server.stop_accepting().finish();
    println!("registry: {sig}: stopped; exiting 0");
    Ok(())
}

fn handle(stream: TcpStream) {
    let Ok(req) = common::read_request(&stream) else {
        return;
    };
    let (status, body) = answer(&req.method, &req.path);
    _ = common::respond(&stream, status, &body);
}

fn answer(method: &str, path: &str) -> (u16, String) {
    let mut instances = INSTANCES
        .lock()
        .expect("no thread panics holding the registry");
    let addr = path.strip_prefix("/instances/").filter(|a| !a.is_empty());
    match (method, addr) {
        ("GET", None) if path == "/instances" => {
            let list: String = instances.iter().map(|a| format!("{a}\n")).collect();
            (200, list)
        }
        ("PUT", Some(addr)) => {
            instances.insert(addr.to_string());
            println!("registry: registered {addr}");
            (200, "registered\n".into())
        }
        ("DELETE", Some(addr)) if instances.remove(addr) => {
            println!("registry: deregistered {addr}");
            (200, "deregistered\n".into())
        }
        ("DELETE", Some(_)) => (404, "not registered\n".into()),
        _ => (404, "no such route\n".into()),
    }
}
