//! A scripted HTTP/1.1 peer on loopback, for the tests of the notifier's client and outbox:
//! it records every request it reads and answers each as the test's script says (a status,
//! a chunked body, a stall, a hang-up), so that retries, timeouts and keep-alive can be
//! checked against real sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the peer read it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which accepted connection (0, 1, ...) it came on.
    pub connection: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the peer does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status and body, with `Content-Length`, keeping the connection.
    Status(u16, &'static str),
    /// This status, the body in these chunks (`Transfer-Encoding: chunked`).
    Chunked(u16, Vec<&'static str>),
    /// HTTP/1.0 style: no length, the body ends when the connection closes.
    UntilClose(u16, &'static str),
    /// Waits this long before answering 200.
    Stall(Duration),
    /// Closes the connection without answering.
    Hangup,
    /// Answers 200 as if keeping the connection, then closes it (an idle timeout that
    /// strikes before the client's next request).
    OkThenClose,
    /// These bytes as they are, then closes the connection.
    Raw(&'static str),
}

type Script = dyn Fn(usize, &Recorded) -> Reply + Send + Sync;

pub struct FakePeer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
}

impl FakePeer {
    /// Listens on a free loopback port; `script(n, request)` answers the `n`th request.
    pub fn start(script: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        {
            let (requests, connections, stopping) =
                (requests.clone(), connections.clone(), stopping.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let index = connections.fetch_add(1, SeqCst);
                    let (requests, script) = (requests.clone(), script.clone());
                    std::thread::spawn(move || serve(stream, index, &requests, &*script));
                }
            });
        }
        FakePeer {
            addr,
            requests,
            connections,
            stopping,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(SeqCst)
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stopping.store(true, SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut stream: TcpStream, connection: usize, log: &Mutex<Vec<Recorded>>, script: &Script) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf, connection) else {
            return;
        };
        let n = {
            let mut log = log.lock().unwrap();
            log.push(request.clone());
            log.len() - 1
        };
        let answer = match script(n, &request) {
            Reply::Status(status, body) => format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            Reply::Chunked(status, chunks) => {
                let mut text = format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n");
                for c in chunks {
                    text.push_str(&format!("{:x};ext=1\r\n{c}\r\n", c.len()));
                }
                text.push_str("0\r\nTrailer: x\r\n\r\n");
                text
            }
            Reply::UntilClose(status, body) => {
                let _ = stream.write_all(format!("HTTP/1.0 {status} X\r\n\r\n{body}").as_bytes());
                return;
            }
            Reply::Stall(pause) => {
                std::thread::sleep(pause);
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string()
            }
            Reply::Hangup => return,
            Reply::OkThenClose => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                return;
            }
            Reply::Raw(bytes) => {
                let _ = stream.write_all(bytes.as_bytes());
                return;
            }
        };
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, connection: usize) -> Option<Recorded> {
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(buf) {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            let (method, target) = (
                req.method.unwrap().to_string(),
                req.path.unwrap().to_string(),
            );
            while buf.len() < len + length {
                let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[len..len + length].to_vec();
            buf.drain(..len + length);
            return Some(Recorded {
                method,
                target,
                headers,
                body,
                connection,
            });
        }
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}
