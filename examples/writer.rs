//! Scenario B: a writer that acknowledges records from memory and, on SIGTERM, makes every
//! one of them durable (write + fsync) before it exits 0.
//!
//! Protocol: TCP on PORT (default 7000), one record per line. Each record is answered
//! `ack N` (N records buffered so far) as soon as it is in memory, not on disk: that is what
//! makes the writer fast, and why it must be stopped gracefully. After the flush, records are
//! answered `closed` and not acknowledged.
//!
//! DATA_FILE sets the file the records are appended to (default /data/records.log: put a
//! volume at /data). In a container: examples/docker/writer.Dockerfile.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// The records acknowledged but not yet on disk.
#[derive(Default)]
struct Buffer {
    records: Vec<String>,
    /// Set by the flush: nothing is acknowledged after it.
    closed: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let data_file = std::env::var("DATA_FILE").unwrap_or_else(|_| "/data/records.log".into());
    let mut signals = common::stop_signals()?;
    let buffer = Arc::new(Mutex::new(Buffer::default()));
    let (listener, addr) = common::listen(7000)?;
    let shared = buffer.clone();
    let server = common::Server::start(listener, move |stream| take_records(stream, &shared))?;
    println!("writer: listening on {addr}, will flush to {data_file}");

    let sig = common::wait_for_stop(&mut signals);
    // Connections may stay open forever, so the server is not waited for: closing the buffer
    // is what guarantees that every acknowledged record is written below.
    drop(server.stop_accepting());
    let mut buffer = buffer.lock().expect("no thread panics holding the buffer");
    buffer.closed = true;
    println!("writer: {sig}: flushing {} record(s)", buffer.records.len());
    flush(&buffer.records, Path::new(&data_file))
        .map_err(|e| io::Error::new(e.kind(), format!("writing {data_file}: {e}")))?;
    println!(
        "writer: {} record(s) written to {data_file} and fsynced; exiting 0",
        buffer.records.len()
    );
    Ok(())
}

/// Buffers each line of one connection and acknowledges it.
fn take_records(stream: TcpStream, buffer: &Mutex<Buffer>) {
    let mut answers = &stream;
    for line in BufReader::new(&stream).lines() {
        let Ok(record) = line else { return };
        let answer = {
            let mut buffer = buffer.lock().expect("no thread panics holding the buffer");
            if buffer.closed {
                "closed".to_string()
            } else {
                buffer.records.push(record);
                format!("ack {}", buffer.records.len())
            }
        };
        // One write per answer (see common::respond on Nagle's algorithm).
        if answers.write_all(format!("{answer}\n").as_bytes()).is_err() {
            return;
        }
    }
}

/// Appends `records` to `path`, one per line, and fsyncs the file. A new file's name lives in
/// its directory, so the directory is fsynced too (fsync(2): syncing the file alone does not
/// make its directory entry durable).
fn flush(records: &[String], path: &Path) -> io::Result<()> {
    let existed = path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut text = String::new();
    for record in records {
        text.push_str(record);
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    if !existed {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
    }
    Ok(())
}
