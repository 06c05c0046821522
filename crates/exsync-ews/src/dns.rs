//! SRV lookups for Autodiscover's last candidate, behind a trait so tests can inject answers.
//! The system implementation asks the first nameserver of `/etc/resolv.conf` over UDP: one
//! question, no recursion of our own, answers parsed with name compression.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;

/// One SRV answer: a host and port that offer Autodiscover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// The answer's priority (RFC 2782: lower is preferred).
    pub priority: u16,
    /// The answer's weight (RFC 2782: among equal priorities, higher is preferred).
    pub weight: u16,
    /// The port Autodiscover answers on.
    pub port: u16,
    /// The host to ask; it must still be in the allow-list.
    pub target: String,
}

/// The answer of an [`SrvResolver`]: the records, or why the lookup failed.
pub type SrvFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<SrvRecord>, String>> + Send + 'a>>;

/// Looks up SRV records, so Autodiscover can be given fixed answers in tests.
pub trait SrvResolver: Send + Sync {
    /// The records for `name` (e.g. `_autodiscover._tcp.contoso.com`); none is not an error.
    fn lookup<'a>(&'a self, name: &'a str) -> SrvFuture<'a>;
}

/// Fixed answers (tests, or an admin's override).
#[derive(Debug, Clone, Default)]
pub struct StaticSrv {
    /// Answers by lower-case query name.
    pub records: std::collections::HashMap<String, Vec<SrvRecord>>,
}

impl SrvResolver for StaticSrv {
    fn lookup<'a>(&'a self, name: &'a str) -> SrvFuture<'a> {
        let answer = self
            .records
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(answer) })
    }
}

/// Asks a nameserver (by default the first in `/etc/resolv.conf`).
#[derive(Debug, Clone)]
pub struct SystemSrv {
    /// The nameserver to ask instead of the first in `/etc/resolv.conf`.
    pub nameserver: Option<SocketAddr>,
    /// How long to wait for the answer.
    pub timeout: Duration,
}

impl Default for SystemSrv {
    fn default() -> Self {
        SystemSrv {
            nameserver: None,
            timeout: Duration::from_secs(3),
        }
    }
}

fn resolv_conf_nameserver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == "nameserver")
            .then(|| parts.next())
            .flatten()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

impl SrvResolver for SystemSrv {
    fn lookup<'a>(&'a self, name: &'a str) -> SrvFuture<'a> {
        Box::pin(async move {
            let server = self
                .nameserver
                .or_else(resolv_conf_nameserver)
                .ok_or("no nameserver configured")?;
            let id: u16 = rand::thread_rng().gen();
            let query = encode_query(id, name)?;
            let bind = if server.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
            socket.connect(server).await.map_err(|e| e.to_string())?;
            socket.send(&query).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(self.timeout, socket.recv(&mut buf))
                .await
                .map_err(|_| format!("no DNS answer from {server} within {:?}", self.timeout))?
                .map_err(|e| e.to_string())?;
            parse_answer(id, &buf[..n])
        })
    }
}

/// A DNS query for the SRV records of `name`, recursion desired.
pub(crate) fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 33, 0, 1]);
    Ok(q)
}

fn read_u16(msg: &[u8], at: usize) -> Result<u16, String> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "DNS answer truncated".to_owned())
}

/// Reads a (possibly compressed) name at `at`; returns it and the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *msg.get(at).ok_or("DNS name runs past the message")? as usize;
        if len == 0 {
            return Ok((labels.join("."), end.unwrap_or(at + 1)));
        }
        if len & 0xC0 == 0xC0 {
            let pointer = (read_u16(msg, at)? & 0x3FFF) as usize;
            end.get_or_insert(at + 2);
            at = pointer;
            continue;
        }
        let label = msg
            .get(at + 1..at + 1 + len)
            .ok_or("DNS label runs past the message")?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + len;
    }
    Err("DNS name with too many labels or a pointer loop".into())
}

/// SRV records of an answer to our query `id`.
pub(crate) fn parse_answer(id: u16, msg: &[u8]) -> Result<Vec<SrvRecord>, String> {
    if read_u16(msg, 0)? != id {
        return Err("DNS answer to another question".into());
    }
    let flags = read_u16(msg, 2)?;
    let rcode = flags & 0x000F;
    if rcode == 3 {
        return Ok(Vec::new());
    }
    if rcode != 0 {
        return Err(format!("DNS error code {rcode}"));
    }
    let questions = read_u16(msg, 4)?;
    let answers = read_u16(msg, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(msg, at)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        let (_, after) = read_name(msg, at)?;
        let rtype = read_u16(msg, after)?;
        let rdlength = read_u16(msg, after + 8)? as usize;
        let rdata = after + 10;
        if msg.len() < rdata + rdlength {
            return Err("DNS record runs past the message".into());
        }
        if rtype == 33 {
            let (target, _) = read_name(msg, rdata + 6)?;
            records.push(SrvRecord {
                priority: read_u16(msg, rdata)?,
                weight: read_u16(msg, rdata + 2)?,
                port: read_u16(msg, rdata + 4)?,
                target: target.to_ascii_lowercase(),
            });
        }
        at = rdata + rdlength;
    }
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// An answer as a nameserver would send it, with the target compressed against the
    /// question name.
    fn answer(id: u16, name: &str) -> Vec<u8> {
        let query = encode_query(id, name).unwrap();
        let mut msg = query.clone();
        msg[2] = 0x81;
        msg[3] = 0x80;
        msg[7] = 2;
        for (priority, target_label) in [(10u16, "mail"), (5u16, "ex1")] {
            msg.extend_from_slice(&[0xC0, 12, 0, 33, 0, 1, 0, 0, 1, 0]);
            let rdata_len = 6 + 1 + target_label.len() + 2;
            msg.extend_from_slice(&(rdata_len as u16).to_be_bytes());
            msg.extend_from_slice(&priority.to_be_bytes());
            msg.extend_from_slice(&[0, 0, 1, 187]);
            msg.push(target_label.len() as u8);
            msg.extend_from_slice(target_label.as_bytes());
            // Pointer to "contoso.test" inside the question ("_autodiscover._tcp." is 19 bytes).
            msg.extend_from_slice(&[0xC0, 12 + 1 + 13 + 1 + 4]);
        }
        msg
    }

    #[test]
    fn parses_compressed_answers_in_priority_order() {
        let msg = answer(7, "_autodiscover._tcp.contoso.test");
        let records = parse_answer(7, &msg).unwrap();
        assert_eq!(
            records,
            vec![
                SrvRecord {
                    priority: 5,
                    weight: 0,
                    port: 443,
                    target: "ex1.contoso.test".into()
                },
                SrvRecord {
                    priority: 10,
                    weight: 0,
                    port: 443,
                    target: "mail.contoso.test".into()
                },
            ]
        );
        assert!(parse_answer(8, &msg).is_err());
        for cut in 0..msg.len() {
            let _ = parse_answer(7, &msg[..cut]);
        }
    }

    #[tokio::test]
    async fn system_resolver_asks_the_nameserver() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = server.recv_from(&mut buf).await.unwrap();
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert_eq!(
                &buf[12..n - 4],
                &encode_query(id, "_autodiscover._tcp.contoso.test").unwrap()[12..n - 4]
            );
            server
                .send_to(&answer(id, "_autodiscover._tcp.contoso.test"), peer)
                .await
                .unwrap();
        });
        let resolver = SystemSrv {
            nameserver: Some(addr),
            timeout: Duration::from_secs(2),
        };
        let records = resolver
            .lookup("_autodiscover._tcp.contoso.test")
            .await
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].target, "ex1.contoso.test");
    }
}
