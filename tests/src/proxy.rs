//! A fault-injecting HTTP proxy in front of the emulator (loopback only).
//! moto has no fault injection; AWS does throttle, fail, reset and stall, so
//! tests put this between the SDK and moto and say which calls suffer:
//! - `fail`/`fail_after`: the next calls of one operation;
//! - `chaos`: a share of the calls per service and operation, drawn from a
//!   seeded generator, so a run is repeatable;
//! - `crash_at`: the n-th call a stage makes (the driver's own queue calls
//!   are not counted), which is what a stage killed after its previous
//!   externally visible step looks like from outside;
//! - `answer`: a canned success for the calls of one operation whose body
//!   holds a given text, for facts the emulator cannot be made to tell
//!   (moto stamps a key's last use with the wall clock); `answer_with` a
//!   canned answer of any status, for the next few such calls only (an
//!   error the emulator never gives, as the service spells it);
//! - `emulate_mfa_device_tags`: the tags of virtual MFA devices, kept by the
//!   proxy (moto 5.2 implements neither TagMFADevice nor ListMFADeviceTags).
//!
//! Each request is forwarded on a fresh upstream connection and answered
//! with `Connection: close`, so framing never has to be understood beyond
//! the request's Content-Length.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 400 throttling, as the service spells it (IAM and SES `Throttling`,
    /// DynamoDB `ProvisionedThroughputExceededException`, ...).
    Throttling,
    /// 500 (IAM `ServiceFailure`, JSON services `InternalServerError`).
    ServiceFailure,
    /// Access denied: a role missing a permission.
    AccessDenied,
    /// IAM's 404 NoSuchEntity: what GetUser answers for a user created a
    /// moment ago, where IAM has not caught up yet (eventual consistency).
    NoSuchEntity,
    /// The connection closes before an answer; the request never arrived.
    Reset,
    /// The answer comes, this many milliseconds late.
    Slow(u64),
    /// No answer ever, and the kill switch is pulled: the driver drops the
    /// stage mid-call, as if its process had been killed there.
    Hang,
}

/// The driver's own calls (delivering and polling): never counted as a
/// stage's step by `crash_at`.
/// The local driver's own calls (what the bus and the event source mapping
/// do in AWS): never faulted, never counted as a stage's.
pub const DRIVER_ACTIONS: &[&str] = &[
    "PutEvents",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "GetQueueAttributes",
];

/// A share of the calls to a service (and optionally one operation).
#[derive(Debug, Clone)]
pub struct Share {
    /// `iam`, `dynamodb`, `ses`, `secretsmanager`, `sqs`, or `*`.
    pub service: &'static str,
    pub action: Option<&'static str>,
    /// Out of 1000.
    pub per_mille: u32,
    pub fault: Fault,
}

/// One request as the proxy saw it (for the IAM simulator suite: which
/// stage, by its access key, asked for what).
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    pub access_key_id: String,
    pub service: String,
    pub action: String,
    /// Form-encoded (query protocol) or JSON, as sent.
    pub body: String,
}

#[derive(Debug)]
struct Rule {
    action: String,
    /// Calls to let through before failing.
    skip: u32,
    remaining: u32,
    fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    shares: Vec<Share>,
    rng: u64,
    crash_at: Option<usize>,
    stage_calls: usize,
    crash_fault: Option<Fault>,
    /// "service:Action" of every call, in order.
    log: Vec<String>,
    /// Every call in full, when `record_requests` is on.
    recording: bool,
    requests: Vec<ProxiedRequest>,
    /// (action, fault) of every fault served.
    injected: Vec<(String, Fault)>,
    answers: Vec<Canned>,
    /// Serial number -> tags, when `emulate_mfa_device_tags` is on.
    mfa_tags: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

/// A canned answer to the calls of `action` whose body holds `contains`.
#[derive(Debug)]
struct Canned {
    action: String,
    contains: String,
    /// The status line's code and reason, `200 OK` for `answer`.
    status: String,
    xml: String,
    /// How many more calls get it; `None`: every call.
    remaining: Option<u32>,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    /// Pulled when a call hangs; see `LocalPipeline::kill_switch`.
    pub kill_switch: Arc<tokio::sync::Notify>,
}

/// splitmix64: small, seedable, good enough to pick which calls fail.
fn next(rng: &mut u64) -> u64 {
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// IAM's answer to ListServiceSpecificCredentials for a user holding none:
/// moto does not implement the call (it answers HTTP 500 with HTML).
pub const NO_SERVICE_CREDENTIALS: &str = "<ListServiceSpecificCredentialsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials/></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>";

impl FaultProxy {
    /// Answers, for every user, the IAM calls the pipeline makes that moto
    /// lacks, as IAM would: ListServiceSpecificCredentials for a user holding
    /// none, and the tags of virtual MFA devices (`emulate_mfa_device_tags`).
    /// For local runs: production code has no emulator branch, so the gap is
    /// filled in front of moto.
    pub fn fill_moto_gaps(&self) {
        self.answer("ListServiceSpecificCredentials", "", NO_SERVICE_CREDENTIALS.to_owned());
        self.emulate_mfa_device_tags();
    }

    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let proxy = Self { endpoint, state: Arc::default(), kill_switch: Arc::default() };
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `times` calls of `action` get `fault`.
    pub fn fail(&self, action: &str, times: u32, fault: Fault) {
        self.fail_after(action, 0, times, fault);
    }

    /// The fix is in: no call fails any more (chaos and crash points too).
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.rules.clear();
        state.shares.clear();
        state.crash_at = None;
    }

    /// Lets `skip` calls of `action` through, then fails the next `times`.
    pub fn fail_after(&self, action: &str, skip: u32, times: u32, fault: Fault) {
        self.state().rules.push(Rule { action: action.into(), skip, remaining: times, fault });
    }

    /// From now on, each call fails with the first share that draws it.
    pub fn chaos(&self, seed: u64, shares: Vec<Share>) {
        let mut state = self.state();
        state.rng = seed;
        state.shares = shares;
    }

    /// The `n`-th call (0-based) a stage makes from now on gets `fault`
    /// (`Reset`: the stage sees an error; `Hang`: the stage is killed).
    pub fn crash_at(&self, n: usize, fault: Fault) {
        let mut state = self.state();
        state.crash_at = Some(n);
        state.crash_fault = Some(fault);
        state.stage_calls = 0;
    }

    /// From now on, calls of `action` whose (form-encoded) body holds
    /// `contains` are answered `200 OK` with `xml`, never reaching the
    /// emulator. A later answer for the same call replaces an earlier one.
    pub fn answer(&self, action: &str, contains: &str, xml: String) {
        self.push_answer(Canned {
            action: action.to_owned(),
            contains: contains.to_owned(),
            status: "200 OK".to_owned(),
            xml,
            remaining: None,
        });
    }

    /// The next `times` calls of `action` whose body holds `contains` are
    /// answered with `status` (`409 Conflict`, say) and `xml`, never reaching
    /// the emulator; the calls after them go through.
    pub fn answer_with(&self, action: &str, contains: &str, status: &str, xml: String, times: u32) {
        if times == 0 {
            return;
        }
        self.push_answer(Canned {
            action: action.to_owned(),
            contains: contains.to_owned(),
            status: status.to_owned(),
            xml,
            remaining: Some(times),
        });
    }

    fn push_answer(&self, canned: Canned) {
        let mut state = self.state();
        state.answers.retain(|c| !(c.action == canned.action && c.contains == canned.contains));
        state.answers.push(canned);
    }

    /// (status, XML) of the first canned answer for this call, if any.
    fn canned(&self, action: &str, body: &str) -> Option<(String, String)> {
        let mut state = self.state();
        let i = state.answers.iter().position(|c| c.action == action && body.contains(c.contains.as_str()))?;
        let canned = &mut state.answers[i];
        let answer = (canned.status.clone(), canned.xml.clone());
        if let Some(n) = canned.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.answers.remove(i);
            }
        }
        Some(answer)
    }

    /// From now on the proxy keeps the tags of virtual MFA devices itself
    /// and answers TagMFADevice, UntagMFADevice and ListMFADeviceTags as IAM
    /// would (a device never tagged lists none), since moto implements none
    /// of them. Whether the device exists is not checked.
    pub fn emulate_mfa_device_tags(&self) {
        self.state().mfa_tags.get_or_insert_with(Default::default);
    }

    /// The tags the emulation holds for a device.
    pub fn mfa_device_tags(&self, serial: &str) -> BTreeMap<String, String> {
        self.state().mfa_tags.as_ref().and_then(|t| t.get(serial).cloned()).unwrap_or_default()
    }

    /// IAM's answer to an MFA device tag call, if the emulation is on.
    fn mfa_tag_call(&self, action: &str, body: &str) -> Option<String> {
        let mut state = self.state();
        let tags = state.mfa_tags.as_mut()?;
        let params = crate::form_decode(body);
        let param = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let serial = param("SerialNumber")?;
        let result = match action {
            "TagMFADevice" => {
                let device = tags.entry(serial).or_default();
                for n in 1.. {
                    let Some(key) = param(&format!("Tags.member.{n}.Key")) else { break };
                    device.insert(key, param(&format!("Tags.member.{n}.Value")).unwrap_or_default());
                }
                String::new()
            }
            "UntagMFADevice" => {
                let device = tags.entry(serial).or_default();
                for n in 1.. {
                    let Some(key) = param(&format!("TagKeys.member.{n}")) else { break };
                    device.remove(&key);
                }
                String::new()
            }
            "ListMFADeviceTags" => {
                let members: String = tags
                    .get(&serial)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("<member><Key>{}</Key><Value>{}</Value></member>", xml_text(k), xml_text(v)))
                    .collect();
                format!("<ListMFADeviceTagsResult><IsTruncated>false</IsTruncated><Tags>{members}</Tags></ListMFADeviceTagsResult>")
            }
            _ => return None,
        };
        Some(format!(
            "<{action}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">{result}<ResponseMetadata><RequestId>proxy-mfa-tags</RequestId></ResponseMetadata></{action}Response>"
        ))
    }

    pub fn injected_count(&self) -> usize {
        self.state().injected.len()
    }

    pub fn injected(&self) -> Vec<(String, Fault)> {
        self.state().injected.clone()
    }

    /// "service:Action" of every call so far.
    /// Keeps every request from now on (see `requests`).
    pub fn record_requests(&self) {
        self.state().recording = true;
    }

    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state().requests.clone()
    }

    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    /// How many calls the stages (not the driver) have made since `crash_at`
    /// was last set, or since start.
    pub fn stage_calls(&self) -> usize {
        self.state().stage_calls
    }

    fn decide(&self, service: &str, action: &str) -> Option<Fault> {
        let mut state = self.state();
        state.log.push(format!("{service}:{action}"));
        let mut fault = None;
        if !DRIVER_ACTIONS.contains(&action) {
            let n = state.stage_calls;
            state.stage_calls += 1;
            if state.crash_at == Some(n) {
                fault = state.crash_fault;
            }
        }
        if fault.is_none() {
            if let Some(rule) = state.rules.iter_mut().find(|r| r.action == action && r.remaining > 0) {
                if rule.skip > 0 {
                    rule.skip -= 1;
                } else {
                    rule.remaining -= 1;
                    fault = Some(rule.fault);
                }
            }
        }
        if fault.is_none() && !DRIVER_ACTIONS.contains(&action) {
            let shares = state.shares.clone();
            for share in shares {
                let applies =
                    (share.service == "*" || share.service == service) && share.action.is_none_or(|a| a == action);
                if applies && next(&mut state.rng) % 1000 < u64::from(share.per_mille) {
                    fault = Some(share.fault);
                    break;
                }
            }
        }
        if let Some(f) = fault {
            state.injected.push((action.to_owned(), f));
        }
        fault
    }

    async fn serve(&self, conn: TcpStream, upstream: &str) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn);
        let Some(request) = crate::http::read_request(&mut reader).await? else { return Ok(()) };
        // Credential=AKID/DATE/REGION/SERVICE/aws4_request
        let service = request.header("authorization").and_then(|a| a.split('/').nth(3)).unwrap_or("unknown").to_owned();
        let access_key_id = request
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let target = request.header("x-amz-target").and_then(|t| t.rsplit('.').next()).map(str::to_owned);
        let json_protocol = target.is_some();
        let (head, body) = (request.head, request.body);
        let mut conn = reader.into_inner();
        let action = crate::form_decode(&String::from_utf8_lossy(&body))
            .into_iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v)
            .or(target)
            .unwrap_or_default();

        {
            let mut state = self.state();
            if state.recording {
                let body = String::from_utf8_lossy(&body).into_owned();
                state.requests.push(ProxiedRequest {
                    access_key_id,
                    service: service.clone(),
                    action: action.clone(),
                    body,
                });
            }
        }
        match self.decide(&service, &action) {
            Some(Fault::Reset) => return Ok(()),
            Some(Fault::Hang) => {
                self.kill_switch.notify_one();
                std::future::pending::<()>().await;
            }
            Some(Fault::Slow(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Some(fault) => {
                conn.write_all(error_response(fault, &service, json_protocol).as_bytes()).await?;
                return conn.shutdown().await;
            }
            None => {}
        }
        let text = String::from_utf8_lossy(&body);
        let emulated = || Some(("200 OK".to_owned(), self.mfa_tag_call(&action, &text)?));
        if let Some((status, xml)) = self.canned(&action, &text).or_else(emulated) {
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            conn.write_all(answer.as_bytes()).await?;
            return conn.shutdown().await;
        }
        // The body goes on as read (de-chunked), so it is framed by its length.
        let head: String = head
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                !["connection:", "content-length:", "transfer-encoding:"].iter().any(|h| l.starts_with(h))
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(head.as_bytes()).await?;
        up.write_all(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes()).await?;
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

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The error as the service's protocol spells it: XML for the query
/// protocols (IAM, SES), JSON `__type` for the JSON ones (DynamoDB, Secrets
/// Manager, SQS, EventBridge); an SDK reads nothing else.
fn error_response(fault: Fault, service: &str, json_protocol: bool) -> String {
    let (status, code, message) = match (fault, service, json_protocol) {
        (Fault::Throttling, "dynamodb", _) => (
            "400 Bad Request",
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded",
        ),
        (Fault::Throttling, "ses", _) => ("400 Bad Request", "Throttling", "Maximum sending rate exceeded."),
        (Fault::Throttling, _, false) => ("400 Bad Request", "Throttling", "Rate exceeded"),
        (Fault::Throttling, _, true) => ("400 Bad Request", "ThrottlingException", "Rate exceeded"),
        (Fault::ServiceFailure, _, false) => {
            ("500 Internal Server Error", "ServiceFailure", "Injected service failure")
        }
        (Fault::ServiceFailure, _, true) => {
            ("500 Internal Server Error", "InternalServerError", "Injected service failure")
        }
        (Fault::AccessDenied, _, false) => ("403 Forbidden", "AccessDenied", "Injected access denied"),
        (Fault::AccessDenied, _, true) => ("400 Bad Request", "AccessDeniedException", "Injected access denied"),
        (Fault::NoSuchEntity, _, _) => ("404 Not Found", "NoSuchEntity", "The user cannot be found (injected)"),
        (Fault::Reset | Fault::Slow(_) | Fault::Hang, _, _) => unreachable!("not an error answer"),
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
