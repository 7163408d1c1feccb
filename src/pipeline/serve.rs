//! `subtitle live --serve ADDR`: a small HTTP server (loopback by default) with a page that
//! shows the captions as they are committed. `GET /` is the page; `GET /events` streams the
//! live events (the `--events` JSON lines) as server-sent events, the ones so far first.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sink::live::Feed;

const PAGE: &str = include_str!("live.html");

/// The running server: its address, and its thread (ends once `stop` is raised).
pub struct Server {
    pub addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Binds `addr` now (a clear error if it cannot) and serves `feed` until dropped.
    pub fn start(addr: &str, feed: Feed) -> Result<Server> {
        let listener = TcpListener::bind(addr).map_err(|e| Error::output(addr, format!("cannot serve here: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Error::output(addr, e))?;
        listener.set_nonblocking(true).map_err(|e| Error::output(addr.to_string(), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (feed, s) = (feed.clone(), Arc::clone(&s));
                            let _ = std::thread::Builder::new().name("serve-conn".into()).spawn(move || {
                                if let Err(e) = answer(conn, &feed, &s) {
                                    tracing::debug!("preview page connection: {e}");
                                }
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        Err(e) => tracing::debug!("accept failed: {e}"),
                    }
                }
            })
            .expect("spawning a thread");
        Ok(Server { addr, thread: Some(thread), stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(mut conn: TcpStream, feed: &Feed, stop: &AtomicBool) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers: read and let go.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    match path.split('?').next().unwrap_or("/") {
        "/" | "/index.html" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                PAGE.len()
            );
            conn.write_all(head.as_bytes())?;
            conn.write_all(PAGE.as_bytes())
        }
        "/events" => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n",
            )?;
            let (history, rx) = feed.subscribe();
            for e in history {
                conn.write_all(format!("data: {e}\n\n").as_bytes())?;
            }
            conn.flush()?;
            while !stop.load(Ordering::SeqCst) {
                match rx.recv_timeout(Duration::from_secs(15)) {
                    Ok(e) => conn.write_all(format!("data: {e}\n\n").as_bytes())?,
                    // A comment now and then keeps proxies from closing an idle stream.
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => conn.write_all(b": keep-alive\n\n")?,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
                conn.flush()?;
            }
            Ok(())
        }
        _ => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}
