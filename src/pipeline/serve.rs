//! `subtitle live --serve ADDR`: a small HTTP server (loopback by default) with a page that
//! shows the captions as they are committed. `GET /` is the page; `GET /events` streams the
//! live events (the `--events` JSON lines) as server-sent events, the ones so far first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sink::live::Feed;

const PAGE: &str = include_str!("live.html");

/// A request's head (request line and headers) longer than this is refused: a page's browser
/// sends well under 2 KiB.
pub const MAX_HEAD: usize = 8 * 1024;

/// Connections answered at once; more are closed at once (each open page holds one).
const MAX_CONNECTIONS: usize = 64;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Page,
    Events,
    NotFound,
    /// Not a request this server reads: not `GET`, not HTTP, or its head is cut off.
    Bad,
}

/// The route of a request's head (its bytes up to and including the blank line, at most
/// [`MAX_HEAD`]); anything else is [`Route::Bad`].
pub fn route(head: &[u8]) -> Route {
    let Some(end) =
        head.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| head.windows(2).position(|w| w == b"\n\n"))
    else {
        return Route::Bad;
    };
    let Ok(head) = std::str::from_utf8(&head[..end]) else { return Route::Bad };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Route::Bad;
    }
    match target.split('?').next().unwrap_or("") {
        "/" | "/index.html" => Route::Page,
        "/events" => Route::Events,
        _ => Route::NotFound,
    }
}

/// Reads a request's head: up to the blank line that ends it, at most [`MAX_HEAD`] bytes and
/// 10 seconds (a client sending a byte now and then does not hold its connection longer).
fn read_head(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let t0 = std::time::Instant::now();
    while head.len() < MAX_HEAD && t0.elapsed() < Duration::from_secs(10) {
        let n = conn.read(&mut chunk[..(MAX_HEAD - head.len()).min(1024)])?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        let tail = &head[head.len().saturating_sub(n + 3)..];
        if tail.windows(4).any(|w| w == b"\r\n\r\n") || tail.windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    Ok(head)
}

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
        let open = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                                open.fetch_sub(1, Ordering::SeqCst);
                                tracing::debug!("preview page: {MAX_CONNECTIONS} connections open, one more closed");
                                continue;
                            }
                            let (feed, s, count) = (feed.clone(), Arc::clone(&s), Arc::clone(&open));
                            let spawned = std::thread::Builder::new().name("serve-conn".into()).spawn(move || {
                                if let Err(e) = answer(conn, &feed, &s) {
                                    tracing::debug!("preview page connection: {e}");
                                }
                                count.fetch_sub(1, Ordering::SeqCst);
                            });
                            if spawned.is_err() {
                                open.fetch_sub(1, Ordering::SeqCst);
                            }
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
    let head = read_head(&mut conn)?;
    match route(&head) {
        Route::Page => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                PAGE.len()
            );
            conn.write_all(head.as_bytes())?;
            conn.write_all(PAGE.as_bytes())
        }
        Route::Events => {
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
        Route::NotFound => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        Route::Bad => conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_their_path_and_anything_else_is_refused() {
        let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n");
        assert_eq!(route(get("/").as_bytes()), Route::Page);
        assert_eq!(route(get("/index.html?x=1").as_bytes()), Route::Page);
        assert_eq!(route(get("/events").as_bytes()), Route::Events);
        assert_eq!(route(get("/etc/passwd").as_bytes()), Route::NotFound);
        assert_eq!(route(b"GET /events HTTP/1.0\n\n"), Route::Events);
        // Not GET, not HTTP, cut off before the blank line, not UTF-8.
        assert_eq!(route(b"POST / HTTP/1.1\r\n\r\n"), Route::Bad);
        assert_eq!(route(b"GET / SPDY/3\r\n\r\n"), Route::Bad);
        assert_eq!(route(b"GET / HTTP/1.1\r\nHost: x\r\n"), Route::Bad);
        assert_eq!(route(b"GET /\xff HTTP/1.1\r\n\r\n"), Route::Bad);
        assert_eq!(route(b""), Route::Bad);
    }

    #[test]
    fn a_request_head_past_the_limit_is_answered_400_not_read_on() {
        let server = Server::start("127.0.0.1:0", Feed::default()).unwrap();
        let mut conn = TcpStream::connect(server.addr).unwrap();
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        // No blank line in MAX_HEAD bytes: the server reads no further and answers.
        head.resize(MAX_HEAD, b'a');
        conn.write_all(&head).unwrap();
        let mut answer = String::new();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = conn.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }
}
