//! A small Redis client: RESP2 commands over one TCP connection, blocking, for the batch queue.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    /// A simple or bulk string.
    Bytes(Vec<u8>),
    Array(Vec<Reply>),
    /// An error reply (`-ERR ...`, `-BUSYGROUP ...`).
    Error(String),
}

impl Reply {
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            Reply::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Int(n) => Some(n.to_string()),
            _ => None,
        }
    }
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(a) => a,
            _ => &[],
        }
    }
}

/// Where a queue lives: `redis://HOST:PORT/NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueUrl {
    pub addr: String,
    pub name: String,
}

impl QueueUrl {
    pub fn parse(s: &str) -> Option<QueueUrl> {
        let rest = s.strip_prefix("redis://")?;
        let (addr, name) = rest.split_once('/')?;
        if addr.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        let addr = if addr.contains(':') { addr.to_string() } else { format!("{addr}:6379") };
        Some(QueueUrl { addr, name: name.to_string() })
    }
}

impl std::fmt::Display for QueueUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis://{}/{}", self.addr, self.name)
    }
}

pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub fn open(addr: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        // Longer than any blocking read the queue asks for.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    /// Sends one command and reads its reply; an error reply is a reply, not an `Err`.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Reply> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf)?;
        read_reply(&mut self.reader)
    }

    /// [`call`](Self::call), with an error reply as an `Err`.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Reply> {
        match self.call(args)? {
            Reply::Error(e) => Err(std::io::Error::other(format!("redis: {e}"))),
            r => Ok(r),
        }
    }
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("redis: bad reply: {what}"));
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "redis: connection closed"));
    }
    line.truncate(line.len() - 2);
    let (kind, rest) = line.split_first().ok_or_else(|| bad("empty line"))?;
    let text = String::from_utf8_lossy(rest).into_owned();
    let num = || text.parse::<i64>().map_err(|_| bad(&text));
    Ok(match kind {
        b'+' => Reply::Bytes(rest.to_vec()),
        b'-' => Reply::Error(text),
        b':' => Reply::Int(num()?),
        b'$' => match num()? {
            n if n < 0 => Reply::Nil,
            n => {
                let mut data = vec![0; n as usize + 2];
                r.read_exact(&mut data)?;
                data.truncate(n as usize);
                Reply::Bytes(data)
            }
        },
        b'*' => match num()? {
            n if n < 0 => Reply::Nil,
            n => Reply::Array((0..n).map(|_| read_reply(r)).collect::<std::io::Result<_>>()?),
        },
        _ => return Err(bad(&String::from_utf8_lossy(&line))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        let mut r = &b"*3\r\n$5\r\nhello\r\n:42\r\n*-1\r\n-ERR no\r\n$-1\r\n+OK\r\n"[..];
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Array(vec![Reply::Bytes(b"hello".to_vec()), Reply::Int(42), Reply::Nil])
        );
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Error("ERR no".into()));
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Nil);
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Bytes(b"OK".to_vec()));
        assert!(read_reply(&mut r).is_err());
    }

    #[test]
    fn urls_parse() {
        let u = QueueUrl::parse("redis://127.0.0.1:6390/jobs").unwrap();
        assert_eq!((u.addr.as_str(), u.name.as_str()), ("127.0.0.1:6390", "jobs"));
        assert_eq!(QueueUrl::parse("redis://h/q").unwrap().addr, "h:6379");
        assert!(QueueUrl::parse("redis://h").is_none());
        assert!(QueueUrl::parse("/some/dir").is_none());
    }
}
