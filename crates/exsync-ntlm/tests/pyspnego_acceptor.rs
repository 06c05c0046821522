//! Our initiator against an independent acceptor: pyspnego behind a Python TLS keep-alive HTTP
//! server that requires channel binding (tests/interop/ntlm/ntlm_server.py).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use exsync_ntlm::{header_value, parse_header, ChannelBinding, Credentials, Initiator, NtlmHeader};
use rustls::pki_types::{CertificateDer, ServerName};

const DOMAIN: &str = "CONTOSO";
const USER: &str = "svc-sync";
const PASSWORD: &str = "Passw0rd!";

/// The Python server; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(common::python())
            .arg(common::helper("ntlm_server.py"))
            .arg(dir.path())
            .args([DOMAIN, USER, PASSWORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Python NTLM server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the Python NTLM server did not start: {line:?}"));
        Server { child, port, dir }
    }

    fn cert(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }
}

struct Response {
    status: u16,
    www_authenticate: Vec<String>,
    body: String,
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// One TLS connection, trusting only the server's own self-signed certificate.
fn connect(server: &Server) -> BufReader<Tls> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(server.cert("server.der")))
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    BufReader::new(rustls::StreamOwned::new(conn, tcp))
}

fn request(conn: &mut BufReader<Tls>, authorization: Option<String>) -> Response {
    let mut head =
        "POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n".to_string();
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.get_mut().write_all(head.as_bytes()).unwrap();
    conn.get_mut().flush().unwrap();

    let mut status_line = String::new();
    conn.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut www_authenticate = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        if name.eq_ignore_ascii_case("www-authenticate") {
            www_authenticate.push(value.trim().to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).unwrap();
    Response {
        status,
        www_authenticate,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The three legs on one keep-alive connection; returns the connection and the last response.
fn authenticate(
    server: &Server,
    creds: Credentials,
    binding_cert: &str,
    tamper: impl FnOnce(&mut Vec<u8>),
) -> (BufReader<Tls>, Response) {
    let binding = ChannelBinding::tls_server_end_point(&server.cert(binding_cert)).unwrap();
    let mut initiator = Initiator::new(creds, Some(binding)).with_target_spn("HTTP/localhost");
    let mut conn = connect(server);

    let offer = request(&mut conn, None);
    assert_eq!(offer.status, 401);
    assert!(offer
        .www_authenticate
        .iter()
        .any(|v| parse_header(v) == Ok(NtlmHeader::Offer)));

    let leg1 = request(
        &mut conn,
        Some(header_value(&initiator.negotiate_message())),
    );
    assert_eq!(leg1.status, 401, "{}", leg1.body);
    let challenge = leg1
        .www_authenticate
        .iter()
        .find_map(|v| match parse_header(v) {
            Ok(NtlmHeader::Token(token)) => Some(token),
            _ => None,
        })
        .expect("a CHALLENGE in WWW-Authenticate");

    let mut authenticate = initiator.authenticate_message(&challenge).unwrap();
    tamper(&mut authenticate);
    let leg3 = request(&mut conn, Some(header_value(&authenticate)));
    (conn, leg3)
}

#[test]
fn pyspnego_accepts_the_right_password_with_channel_binding() {
    let server = Server::start();
    let (mut conn, response) = authenticate(
        &server,
        Credentials::new(DOMAIN, USER, PASSWORD),
        "server.der",
        |_| {},
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body, format!("hello {DOMAIN}\\{USER}"));

    // NTLM authenticated the connection: the next request on it needs no header.
    let next = request(&mut conn, None);
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(next.body, format!("hello {DOMAIN}\\{USER}"));
}

#[test]
fn pyspnego_refuses_a_wrong_password() {
    let server = Server::start();
    let (_, response) = authenticate(
        &server,
        Credentials::new(DOMAIN, USER, "not-the-password"),
        "server.der",
        |_| {},
    );
    assert_eq!(response.status, 401, "{}", response.body);
    assert!(
        response.body.contains("Invalid NTLM response"),
        "{}",
        response.body
    );
}

#[test]
fn pyspnego_refuses_a_channel_binding_for_another_certificate() {
    let server = Server::start();
    let (_, response) = authenticate(
        &server,
        Credentials::new(DOMAIN, USER, PASSWORD),
        "other.der",
        |_| {},
    );
    assert_eq!(response.status, 401, "{}", response.body);
    assert!(response.body.contains("bindings"), "{}", response.body);
}

#[test]
fn pyspnego_refuses_a_tampered_mic() {
    let server = Server::start();
    let (_, response) = authenticate(
        &server,
        Credentials::new(DOMAIN, USER, PASSWORD),
        "server.der",
        |message| message[72] ^= 0x01,
    );
    assert_eq!(response.status, 401, "{}", response.body);
    assert!(response.body.contains("MIC"), "{}", response.body);
}
