//! A fault-injecting HTTP proxy in front of the emulator (loopback only).
//! moto has no fault injection; AWS does throttle and fail, so tests put
//! this between the SDK and moto and say which calls fail, and how.
//!
//! Each request is forwarded on a fresh upstream connection and answered
//! with `Connection: close`, so framing never has to be understood beyond
//! the request's Content-Length.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 `Throttling` (IAM, SES, query protocol).
    Throttling,
    /// HTTP 500 `ServiceFailure` (IAM).
    ServiceFailure,
    /// HTTP 400 access denied: a role missing a permission.
    AccessDenied,
}

impl Fault {
    /// The error as the service's protocol spells it: XML for the query
    /// protocols (IAM, SES, SQS query), JSON `__type` for the JSON ones
    /// (DynamoDB, SQS JSON, EventBridge) — an SDK reads nothing else.
    fn response(self, json_protocol: bool) -> String {
        let (status, code, message) = match (self, json_protocol) {
            (Fault::Throttling, false) => ("400 Bad Request", "Throttling", "Rate exceeded"),
            (Fault::Throttling, true) => ("400 Bad Request", "ThrottlingException", "Rate exceeded"),
            (Fault::ServiceFailure, false) => {
                ("500 Internal Server Error", "ServiceFailure", "Injected service failure")
            }
            (Fault::ServiceFailure, true) => {
                ("500 Internal Server Error", "InternalServerError", "Injected service failure")
            }
            (Fault::AccessDenied, false) => ("403 Forbidden", "AccessDenied", "Injected access denied"),
            (Fault::AccessDenied, true) => ("400 Bad Request", "AccessDeniedException", "Injected access denied"),
        };
        let (content_type, body) = if json_protocol {
            ("application/x-amz-json-1.0", format!(r#"{{"__type":"{code}","message":"{message}"}}"#))
        } else {
            (
                "text/xml",
                format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"),
            )
        };
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nx-amzn-query-error: {code};Sender\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

#[derive(Debug)]
struct Rule {
    /// Query-protocol `Action=` value, or the JSON protocols' X-Amz-Target suffix.
    action: String,
    /// Calls to let through before failing.
    skip: u32,
    remaining: u32,
    fault: Fault,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// (action, fault) of every fault served.
    pub injected: Arc<Mutex<Vec<(String, Fault)>>>,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let proxy = Self { endpoint, rules: Arc::default(), injected: Arc::default() };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (p, upstream) = (p.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = p.serve(conn, &upstream).await;
                });
            }
        });
        Ok(proxy)
    }

    /// The next `times` calls of `action` get `fault`.
    pub fn fail(&self, action: &str, times: u32, fault: Fault) {
        self.fail_after(action, 0, times, fault);
    }

    /// Lets `skip` calls of `action` through, then fails the next `times`.
    pub fn fail_after(&self, action: &str, skip: u32, times: u32, fault: Fault) {
        let rule = Rule { action: action.into(), skip, remaining: times, fault };
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).push(rule);
    }

    pub fn injected_count(&self) -> usize {
        self.injected.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// (action, fault, whether the service speaks a JSON protocol)
    fn take_fault(&self, head: &str, body: &[u8]) -> Option<(String, Fault, bool)> {
        let body = String::from_utf8_lossy(body);
        let target = head
            .lines()
            .find_map(|l| l.strip_prefix("X-Amz-Target: ").or_else(|| l.strip_prefix("x-amz-target: ")))
            .and_then(|t| t.rsplit('.').next())
            .map(str::to_owned);
        let json_protocol = target.is_some();
        let action = crate::form_decode(&body).into_iter().find(|(k, _)| k == "Action").map(|(_, v)| v).or(target)?;
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let rule = rules.iter_mut().find(|r| r.action == action && r.remaining > 0)?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.remaining -= 1;
        Some((action, rule.fault, json_protocol))
    }

    async fn serve(&self, conn: TcpStream, upstream: &str) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let length = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let mut conn = reader.into_inner();

        if let Some((action, fault, json_protocol)) = self.take_fault(&head, &body) {
            self.injected.lock().unwrap_or_else(|p| p.into_inner()).push((action, fault));
            conn.write_all(fault.response(json_protocol).as_bytes()).await?;
            return conn.shutdown().await;
        }
        let head: String = head
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(head.as_bytes()).await?;
        up.write_all(b"Connection: close\r\n\r\n").await?;
        up.write_all(&body).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        // Make sure the client does not reuse this connection.
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(response.len());
        let (rhead, rbody) = response.split_at(split);
        let rhead: String = String::from_utf8_lossy(rhead)
            .lines()
            .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        conn.write_all(rhead.as_bytes()).await?;
        conn.write_all(b"Connection: close\r\n\r\n").await?;
        conn.write_all(rbody).await?;
        conn.shutdown().await
    }
}
