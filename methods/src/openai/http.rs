//! A minimal HTTP/1.1 client over one kept-alive TCP connection: what timing a streamed
//! answer needs and nothing more.
//!
//! Every read waits at most [`POLL`] before calling back the caller's `wait`, which decides
//! whether to keep waiting (the request's deadline, the run's abort): a server that accepts a
//! connection and never answers cannot hang a worker. Bodies are framed by `Content-Length`,
//! `chunked` transfer coding or the connection closing; bytes are handed over the moment a
//! read returns them, so a token's timestamp is when its bytes arrived. Plain `http://` only:
//! the servers oae launches and meters listen on the machine's own interfaces (a TLS endpoint
//! is refused with how to reach it).
//!
//! **Overhead model:** one `write` per request (head and body together), one `read` syscall
//! per arrival of bytes, a linear scan for line ends; no allocation per chunk beyond the
//! caller's buffer growth.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Longest a read blocks before asking `wait` whether to go on.
pub const POLL: Duration = Duration::from_millis(20);
/// Longest accepted status line or header line, bytes.
const MAX_LINE: usize = 64 * 1024;
/// Most headers accepted in one response.
const MAX_HEADERS: usize = 200;

/// Where requests go: `http://host[:port][/base]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix without a trailing slash (`/v1`), possibly empty.
    pub base_path: String,
}

impl Endpoint {
    /// Parses a base URL; the error says what is wrong and how to write it.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(
                    "https is not supported: oae meters servers on this machine over plain http (`http://127.0.0.1:8080/v1`); reach a TLS-only endpoint through a local proxy"
                        .into(),
                );
            }
            Some((scheme, _)) => return Err(format!("unsupported scheme `{scheme}`; write `http://host:port/v1`")),
            None => return Err("missing `http://`; write e.g. `http://127.0.0.1:8080/v1`".into()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported; use `api_key_env`".into());
        }
        if path.contains(['?', '#']) {
            return Err("a base URL takes no query or fragment".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed `[` in the host")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err("missing host; write e.g. `http://127.0.0.1:8080/v1`".into());
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| format!("`{p}` is not a port number"))?,
            None => 80,
        };
        Ok(Self {
            host,
            port,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The URL again, for messages.
    pub fn url(&self, path: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}{}{path}", self.port, self.base_path)
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Why a wait ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupt {
    /// The harness asked to stop (deadline or abort).
    Stopped,
    /// The method's own time limit passed; the text says which.
    TimedOut(String),
}

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum HttpError {
    /// No connection: refused, unreachable, unresolvable.
    Connect(String),
    /// The connection broke or the server's bytes are not HTTP.
    Protocol(String),
    /// The caller's `wait` ended the exchange.
    Interrupted(Interrupt),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(m) | HttpError::Protocol(m) => f.write_str(m),
            HttpError::Interrupted(Interrupt::Stopped) => f.write_str("stopped by the harness"),
            HttpError::Interrupted(Interrupt::TimedOut(m)) => f.write_str(m),
        }
    }
}

/// Asked between reads: `Err` ends the exchange.
pub type Wait<'a> = &'a mut dyn FnMut() -> Result<(), Interrupt>;

/// A connection with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    fn fill(&mut self, wait: Wait<'_>) -> Result<bool, HttpError> {
        // Bytes before `pos` were handed out already (and used before this call).
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    wait().map_err(HttpError::Interrupted)?;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(HttpError::Protocol(format!("the connection broke: {e}"))),
            }
        }
    }

    /// One line without its line end; `None` at end of stream before any byte of it.
    fn line(&mut self, wait: Wait<'_>) -> Result<Option<String>, HttpError> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let raw = &self.buf[self.pos..self.pos + i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8_lossy(raw).into_owned();
                self.pos += i + 1;
                return Ok(Some(line));
            }
            if self.buf.len() - self.pos > MAX_LINE {
                return Err(HttpError::Protocol(format!(
                    "the server sent a line longer than {MAX_LINE} bytes"
                )));
            }
            if !self.fill(wait)? {
                return if self.pos == self.buf.len() {
                    Ok(None)
                } else {
                    Err(HttpError::Protocol("the connection closed mid-line".into()))
                };
            }
        }
    }

    /// Up to `max` buffered (or newly read) bytes; empty at end of stream.
    fn some(&mut self, max: usize, wait: Wait<'_>) -> Result<&[u8], HttpError> {
        if self.pos == self.buf.len() && !self.fill(wait)? {
            return Ok(&[]);
        }
        let n = max.min(self.buf.len() - self.pos);
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    /// Bytes left of the current chunk, whether the last chunk was read, whether the line
    /// end after a chunk's data is still to be read.
    Chunked {
        left: u64,
        done: bool,
        crlf: bool,
    },
    Close,
}

/// A client of one endpoint, keeping its connection alive between requests.
pub struct Client {
    endpoint: Endpoint,
    connect_timeout: Duration,
    conn: Option<Conn>,
}

/// A response being read: status, headers, then the body piece by piece.
pub struct Response<'c> {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    framing: Framing,
    client: &'c mut Client,
    ended: bool,
}

impl Client {
    /// A client of `endpoint` (connects on first use).
    pub fn new(endpoint: Endpoint, connect_timeout: Duration) -> Self {
        Self {
            endpoint,
            connect_timeout,
            conn: None,
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether anything accepts a TCP connection at the endpoint now.
    pub fn reachable(&self) -> bool {
        self.connect().is_ok()
    }

    /// Drops the connection (a request abandoned mid-answer: the server sees it close).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    fn connect(&self) -> Result<Conn, HttpError> {
        let e = &self.endpoint;
        let addrs: Vec<_> = (e.host.as_str(), e.port)
            .to_socket_addrs()
            .map_err(|err| HttpError::Connect(format!("cannot resolve `{}`: {err}", e.host)))?
            .collect();
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, self.connect_timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    // Reads wake every POLL to ask `wait`; a write stalls at most as long as
                    // connecting may take (a server that stopped reading).
                    stream
                        .set_read_timeout(Some(POLL))
                        .and_then(|()| stream.set_write_timeout(Some(self.connect_timeout)))
                        .map_err(|err| HttpError::Connect(err.to_string()))?;
                    return Ok(Conn {
                        stream,
                        buf: Vec::with_capacity(16 * 1024),
                        pos: 0,
                    });
                }
                Err(err) => last = Some(err),
            }
        }
        let why = last.map_or_else(|| "no address".to_string(), |err| err.to_string());
        Err(HttpError::Connect(format!(
            "cannot connect to {}:{} ({why})",
            e.host, e.port
        )))
    }

    /// Sends a request for `path` (under the base path) and reads the status and headers.
    /// A kept-alive connection the server has closed meanwhile is replaced once, when
    /// nothing of the response had arrived.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        wait: Wait<'_>,
    ) -> Result<Response<'_>, HttpError> {
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\nUser-Agent: oae/{}\r\n",
            self.endpoint.base_path,
            self.endpoint.host_header(),
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());

        let reused = self.conn.is_some();
        match self.exchange(&bytes, wait) {
            Ok(Some(head)) => Ok(self.response(head)),
            Ok(None) if reused => {
                // The server closed the idle connection: one fresh try.
                self.conn = None;
                match self.exchange(&bytes, wait)? {
                    Some(head) => Ok(self.response(head)),
                    None => Err(HttpError::Protocol(
                        "the server closed the connection without answering".into(),
                    )),
                }
            }
            Ok(None) => Err(HttpError::Protocol(
                "the server closed the connection without answering".into(),
            )),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn response(&mut self, (status, headers, framing): (u16, Vec<(String, String)>, Framing)) -> Response<'_> {
        Response {
            status,
            headers,
            framing,
            client: self,
            ended: framing == Framing::Length(0),
        }
    }

    /// Writes the request and reads the response head; `None` when the connection was
    /// closed before any byte of it.
    #[allow(clippy::type_complexity)]
    fn exchange(
        &mut self,
        bytes: &[u8],
        wait: Wait<'_>,
    ) -> Result<Option<(u16, Vec<(String, String)>, Framing)>, HttpError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        if let Err(e) = conn.stream.write_all(bytes) {
            return if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) {
                Ok(None)
            } else {
                Err(HttpError::Protocol(format!("cannot send the request: {e}")))
            };
        }
        let status_line = match conn.line(wait) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(HttpError::Protocol(_)) if conn.buf.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status = parts.next().and_then(|s| s.parse::<u16>().ok());
        let status = match (version.starts_with("HTTP/1."), status) {
            (true, Some(s)) => s,
            _ => {
                return Err(HttpError::Protocol(format!(
                    "not an HTTP/1.x response: `{}`",
                    excerpt(&status_line, 80)
                )));
            }
        };
        let mut headers = Vec::new();
        loop {
            let line = conn
                .line(wait)?
                .ok_or_else(|| HttpError::Protocol("the connection closed inside the response headers".into()))?;
            if line.is_empty() {
                break;
            }
            if headers.len() >= MAX_HEADERS {
                return Err(HttpError::Protocol(format!("more than {MAX_HEADERS} response headers")));
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| HttpError::Protocol(format!("malformed header line `{}`", excerpt(&line, 80))))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::Length(0)
        } else if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Framing::Chunked {
                left: 0,
                done: false,
                crlf: false,
            }
        } else if let Some(len) = header("content-length") {
            Framing::Length(
                len.parse()
                    .map_err(|_| HttpError::Protocol(format!("bad Content-Length `{len}`")))?,
            )
        } else {
            Framing::Close
        };
        Ok(Some((status, headers, framing)))
    }
}

impl Response<'_> {
    /// A header's value (name lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The next bytes of the body, as soon as they arrive; empty at its end.
    pub fn chunk(&mut self, wait: Wait<'_>) -> Result<&[u8], HttpError> {
        match self.next(wait) {
            Ok(range) => Ok(self.client.conn.as_ref().map_or(&[][..], |c| &c.buf[range])),
            Err(e) => {
                self.ended = true;
                self.client.conn = None;
                Err(e)
            }
        }
    }

    /// The range of the connection's buffer holding the next body bytes (empty at the end).
    fn next(&mut self, wait: Wait<'_>) -> Result<std::ops::Range<usize>, HttpError> {
        if self.ended {
            return Ok(0..0);
        }
        let conn = self
            .client
            .conn
            .as_mut()
            .ok_or_else(|| HttpError::Protocol("the connection is gone".into()))?;
        match &mut self.framing {
            Framing::Length(0) => {
                self.ended = true;
                Ok(0..0)
            }
            Framing::Length(left) => {
                let max = usize::try_from(*left).unwrap_or(usize::MAX);
                let n = conn.some(max, wait)?.len();
                if n == 0 {
                    return Err(HttpError::Protocol(format!(
                        "the connection closed with {left} byte(s) of the body still to come"
                    )));
                }
                *left -= n as u64;
                Ok(conn.pos - n..conn.pos)
            }
            Framing::Chunked { left, done, crlf } => {
                if *crlf {
                    // The line end after the previous chunk's data.
                    let end = conn
                        .line(wait)?
                        .ok_or_else(|| HttpError::Protocol("the connection closed mid-body (chunked)".into()))?;
                    if !end.is_empty() {
                        return Err(HttpError::Protocol("chunk data longer than its size line".into()));
                    }
                    *crlf = false;
                }
                if *done {
                    self.ended = true;
                    return Ok(0..0);
                }
                if *left == 0 {
                    let line = conn
                        .line(wait)?
                        .ok_or_else(|| HttpError::Protocol("the connection closed mid-body (chunked)".into()))?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| HttpError::Protocol(format!("bad chunk size line `{}`", excerpt(&line, 40))))?;
                    if size == 0 {
                        // Trailers, then the empty line.
                        while !conn
                            .line(wait)?
                            .ok_or_else(|| HttpError::Protocol("the connection closed in the trailers".into()))?
                            .is_empty()
                        {}
                        *done = true;
                        self.ended = true;
                        return Ok(0..0);
                    }
                    *left = size;
                }
                let max = usize::try_from(*left).unwrap_or(usize::MAX);
                let n = conn.some(max, wait)?.len();
                if n == 0 {
                    return Err(HttpError::Protocol("the connection closed mid-chunk".into()));
                }
                *left -= n as u64;
                *crlf = *left == 0;
                Ok(conn.pos - n..conn.pos)
            }
            Framing::Close => {
                let n = conn.some(usize::MAX, wait)?.len();
                if n == 0 {
                    self.ended = true;
                    self.client.conn = None;
                    return Ok(0..0);
                }
                Ok(conn.pos - n..conn.pos)
            }
        }
    }

    /// The rest of the body (at most `limit` bytes kept), e.g. an error's explanation.
    pub fn text(mut self, limit: usize, wait: Wait<'_>) -> Result<String, HttpError> {
        let mut out = Vec::new();
        loop {
            let c = self.chunk(wait)?;
            if c.is_empty() {
                break;
            }
            if out.len() < limit {
                out.extend_from_slice(&c[..c.len().min(limit - out.len())]);
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

impl Drop for Response<'_> {
    fn drop(&mut self) {
        // A body not read to its end leaves the connection mid-response: never reuse it.
        if !self.ended {
            self.client.conn = None;
        }
    }
}

/// The first `max` characters of `s`, with an ellipsis when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A deadline check for `wait`: `Err(TimedOut(what))` once `at` has passed.
pub fn until(at: Instant, what: impl Fn() -> String) -> impl FnMut() -> Result<(), Interrupt> {
    move || {
        if Instant::now() >= at {
            Err(Interrupt::TimedOut(what()))
        } else {
            Ok(())
        }
    }
}
