//! Test support for iam-provisioner, and the local runner behind `make run`:
//! a moto server per test binary, the local resources the pipeline needs
//! (created idempotently), a driver that delivers tickets through
//! EventBridge and runs the stages' handlers over their SQS queues as Lambda
//! would, a fault-injecting proxy, and readers for moto's request recorder
//! and sent mail.

pub mod bootstrap;
pub mod http;
pub mod moto;
pub mod pipeline;
pub mod proxy;
pub mod runtime_api;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::io::{Read, Write};

pub const REGION: &str = "us-east-1";

/// SDK configuration for an emulator endpoint: fixed dummy credentials, and
/// no SDK retries, so a fault injected once reaches the handler.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    emulator_config(endpoint, RetryConfig::disabled()).await
}

/// As the functions' own `aws_config` load would be against the emulator:
/// region and credentials from the environment when set, dummies otherwise.
pub async fn emulator_config(endpoint: &str, retry: RetryConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint).retry_config(retry);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        loader = loader.region(Region::new(REGION));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader
            .credentials_provider(aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "emulator"));
    }
    loader.load().await
}

/// A unique suffix per call, so tests sharing one server never collide.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}{}x{:x}", N.fetch_add(1, Ordering::SeqCst), nanos % 0xfffff)
}

/// A plain HTTP/1.1 request to the emulator's own API (no SDK covers it).
pub fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(format!("{method} {path}: {}", head.lines().next().unwrap_or(""))));
    }
    Ok(body.to_owned())
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http(port, "GET", path)
}

pub fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("endpoint with a port")
}

/// One email moto's SES accepted, as read back from the emulator.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SentEmail {
    pub source: String,
    pub subject: String,
    pub body: String,
    pub destinations: serde_json::Value,
}

impl SentEmail {
    pub fn is_to(&self, address: &str) -> bool {
        self.destinations.to_string().contains(&format!("\"{address}\""))
    }
}

/// Every email sent so far on this server.
pub fn sent_emails(endpoint: &str) -> Vec<SentEmail> {
    // moto serialises its whole state for this, and answers 500 when another
    // request changes that state meanwhile: a race, so read again.
    let mut attempt = 0;
    let body = loop {
        match http_get(port_of(endpoint), "/moto-api/data.json") {
            Ok(body) => break body,
            Err(e) if attempt < 10 => {
                attempt += 1;
                eprintln!("moto data.json: {e}; reading again");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("moto data.json: {e}"),
        }
    };
    let data: serde_json::Value = serde_json::from_str(&body).expect("data.json is JSON");
    serde_json::from_value(data["ses"]["Message"].clone()).unwrap_or_default()
}

/// One request moto's recorder saw: the query-protocol parameters decoded.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub params: Vec<(String, String)>,
}

impl RecordedCall {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Starts moto's request recorder (the server runs with recording enabled).
pub fn start_recording(endpoint: &str) {
    http(port_of(endpoint), "POST", "/moto-api/recorder/start-recording").expect("start recording");
}

/// Query-protocol calls (IAM, SES) the recorder holds, decoded.
pub fn recorded_calls(endpoint: &str) -> Vec<RecordedCall> {
    let raw = http_get(port_of(endpoint), "/moto-api/recorder/download-recording").expect("download recording");
    raw.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|entry| {
            let body = entry["body"].as_str()?.to_owned();
            let body = if entry["body_encoded"].as_bool() == Some(true) {
                String::from_utf8(base64_decode(&body)?).ok()?
            } else {
                body
            };
            Some(RecordedCall { params: form_decode(&body) })
        })
        .collect()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        acc = (acc << 6) | ALPHABET.iter().position(|a| *a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

pub fn form_decode(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Users that exist before a ticket arrives, made outside the pipeline, for
/// the rules about IAM's state (names suffixed with `s`).
pub struct ExistingUsers {
    /// Not the pipeline's.
    pub unmanaged: String,
    /// The pipeline's, from ticket `ONB-OTHER`.
    pub other_ticket: String,
    /// AdministratorAccess attached: copying from it must be refused.
    pub admin_template: String,
    /// An inline policy `iam-all`: copying from it must be refused.
    pub inline_template: String,
}

impl ExistingUsers {
    pub async fn create(iam: &aws_sdk_iam::Client, s: &str) -> Self {
        let users = Self {
            unmanaged: format!("old{s}"),
            other_ticket: format!("taken{s}"),
            admin_template: format!("admintmpl{s}"),
            inline_template: format!("inlinetmpl{s}"),
        };
        let tag = |k: &str, v: &str| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().expect("tag");
        iam.create_user().user_name(&users.unmanaged).send().await.expect("unmanaged user");
        iam.create_user()
            .user_name(&users.other_ticket)
            .tags(tag(shared::ticket::MANAGED_TAG, "true"))
            .tags(tag(shared::ticket::TICKET_TAG, "ONB-OTHER"))
            .send()
            .await
            .expect("other ticket's user");
        iam.create_user().user_name(&users.admin_template).send().await.expect("admin template");
        iam.attach_user_policy()
            .user_name(&users.admin_template)
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send()
            .await
            .expect("admin policy");
        iam.create_user().user_name(&users.inline_template).send().await.expect("inline template");
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;
        iam.put_user_policy()
            .user_name(&users.inline_template)
            .policy_name("iam-all")
            .policy_document(doc)
            .send()
            .await
            .expect("inline policy");
        users
    }
}

/// One test's own deployment on the shared emulator: resources under a
/// unique prefix, the pipeline over them, and an IAM client to read back.
pub struct Harness {
    pub endpoint: String,
    pub sdk: SdkConfig,
    pub pipeline: pipeline::LocalPipeline,
    pub iam: aws_sdk_iam::Client,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut bootstrap::Settings)) -> Self {
        Self::at(&moto::shared().endpoint, adjust).await
    }

    /// The pipeline's clients talk to `endpoint` (a fault proxy, say) while
    /// resources are created directly on the emulator.
    pub async fn at(endpoint: &str, adjust: impl FnOnce(&mut bootstrap::Settings)) -> Self {
        let direct = sdk_config(&moto::shared().endpoint).await;
        let mut settings = bootstrap::Settings::local_defaults(&unique("t"));
        adjust(&mut settings);
        let env = bootstrap::ensure(&direct, settings).await.expect("bootstrap");
        let sdk = sdk_config(endpoint).await;
        let pipeline = pipeline::LocalPipeline::new(&sdk, env);
        Self {
            endpoint: moto::shared().endpoint.clone(),
            iam: aws_sdk_iam::Client::new(&direct),
            sdk: direct,
            pipeline,
        }
    }

    /// Delivers through the bus and runs the stages until the queues are empty.
    pub async fn run(&self, ticket: &serde_json::Value) -> pipeline::Drained {
        self.pipeline.deliver(ticket).await.expect("deliver");
        self.pipeline.drain().await.expect("drain")
    }

    /// The groups `name` is in, as IAM lists them.
    pub async fn groups_of(&self, name: &str) -> Vec<String> {
        let out = self.iam.list_groups_for_user().user_name(name).send().await.expect("ListGroupsForUser");
        out.groups().iter().map(|g| g.group_name().to_owned()).collect()
    }

    /// The ARNs of the managed policies attached to `name`, as IAM lists them.
    pub async fn attached_to(&self, name: &str) -> Vec<String> {
        let out =
            self.iam.list_attached_user_policies().user_name(name).send().await.expect("ListAttachedUserPolicies");
        out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect()
    }

    pub async fn statuses(&self, ticket_id: &str) -> Vec<shared::ports::StatusRecord> {
        let mut s =
            shared::ports::StatusStore::for_ticket(&self.pipeline.create_user.status, ticket_id).await.expect("status");
        s.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        s
    }

    /// Every user name in the emulator's account, lower-cased.
    pub async fn user_names_lower(&self) -> Vec<String> {
        let out = self.iam.list_users().send().await.expect("list users");
        out.users().iter().map(|u| u.user_name().to_lowercase()).collect()
    }

    /// Everything a run leaves behind, with the run's unique names replaced.
    pub async fn state(&self, s: &str, names: &[String]) -> Vec<String> {
        let h = self;
        let mut out = Vec::new();
        let norm = |x: &str| x.replace(s, "<s>");
        for name in names {
            let Ok(user) = h.iam.get_user().user_name(name).send().await else {
                out.push(format!("{}: missing", norm(name)));
                continue;
            };
            let path = user.user().map(|u| u.path().to_owned()).unwrap_or_default();
            let mut groups = h.groups_of(name).await;
            groups.sort();
            let mut attached = h.attached_to(name).await;
            attached.sort();
            let profile = h.iam.get_login_profile().user_name(name).send().await.is_ok();
            let keys = h.iam.list_access_keys().user_name(name).send().await.unwrap();
            let key_ids: Vec<&str> = keys.access_key_metadata().iter().filter_map(|k| k.access_key_id()).collect();
            let sm = aws_sdk_secretsmanager::Client::new(&h.sdk);
            let secret_id = format!("{}{name}", h.pipeline.env.settings.secret_prefix);
            let (versions, fields, key_matches) = match sm.get_secret_value().secret_id(&secret_id).send().await {
                Ok(v) => {
                    let doc: serde_json::Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
                    let fields: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
                    let stored = doc["access_key_id"].as_str().map(str::to_owned);
                    let versions =
                        sm.list_secret_version_ids().secret_id(&secret_id).send().await.unwrap().versions().len();
                    (versions, fields, stored.as_deref().is_none_or(|k| key_ids == [k]))
                }
                Err(_) => (0, vec![], false),
            };
            out.push(format!(
                "{}: path {path} groups {groups:?} policies {attached:?} profile {profile} keys {} secret versions {versions} fields {fields:?} stored key is the key {key_matches}",
                norm(name),
                key_ids.len()
            ));
        }
        let mut emails: std::collections::BTreeMap<(String, String), usize> = Default::default();
        for (to, subject) in h.pipeline.emails_sent() {
            *emails.entry((norm(&to), subject)).or_default() += 1;
        }
        out.extend(emails.into_iter().map(|((to, subject), n)| format!("email {to} {:?} x{n}", norm(&subject))));
        out
    }
}

/// The two users every whole-run comparison uses: a console and
/// programmatic user with a group, a policy and a tag; a programmatic one.
pub fn two_user_ticket(prefix: &str, s: &str) -> (serde_json::Value, Vec<String>) {
    let names = vec![format!("both{s}"), format!("keys{s}")];
    let t = serde_json::json!({
        "ticket_id": format!("{prefix}-{s}"),
        "requested_by": format!("req{s}@example.com"),
        "users": [
            {"user_name": names[0], "email": format!("{}@example.com", names[0]), "access": {"console": true, "programmatic": true},
             "groups": ["Developers"], "managed_policies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"], "tags": {"team": "qa"}},
            {"user_name": names[1], "email": format!("{}@example.com", names[1]), "access": {"programmatic": true}}
        ]
    });
    (t, names)
}

/// The serial numbers of every virtual MFA device in the emulator's account
/// (every page: the shared emulator holds every test's devices), only the
/// unassigned ones if `unassigned`.
pub async fn virtual_mfa_serials(iam: &aws_sdk_iam::Client, unassigned: bool) -> Vec<String> {
    let mut request = iam.list_virtual_mfa_devices();
    if unassigned {
        request = request.assignment_status(aws_sdk_iam::types::AssignmentStatusType::Unassigned);
    }
    let devices: Vec<_> =
        request.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.expect("ListVirtualMFADevices");
    devices.iter().map(|d| d.serial_number().to_owned()).collect()
}
