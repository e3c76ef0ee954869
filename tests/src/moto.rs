//! A moto server for one test binary (or one `make run`), on a free
//! loopback port, started with the settings the pipeline relies on.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    pub recording_file: std::path::PathBuf,
}

/// The server of this test binary, started on first use and stopped by its
/// watchdog when the process exits (test binaries never run destructors of
/// statics, so nothing in-process could stop it).
pub fn shared() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| start().expect("start moto_server (pip install 'moto[server]')").0)
}

/// A shell that runs the server command ($1, split into words) and kills it as soon as the process that
/// started it is gone, however that process ended.
const WATCHDOG: &str = r#"
$1 -H 127.0.0.1 -p "$2" >/dev/null 2>&1 &
m=$!
trap 'kill $m 2>/dev/null' EXIT INT TERM HUP
while kill -0 "$3" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done
"#;

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Stops a server from `start` now (its watchdog would, at process exit).
pub fn stop(watchdog: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &watchdog.id().to_string()]).status();
    let _ = watchdog.wait();
}

/// Starts a server with the settings the pipeline relies on (AWS managed
/// policies loaded, the request recorder available) and waits until it answers.
pub fn start() -> std::io::Result<(Moto, Child)> {
    let dir = std::env::temp_dir().join(format!("iam-provisioner-moto-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The module, not the `moto_server` script: a fresh `pip install` may
    // not have put the script on PATH yet (pyenv shims need a rehash).
    let binary = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "python3 -m moto.server".into());
    for _attempt in 0..3 {
        let port = free_port()?;
        let recording_file = dir.join(format!("recording-{port}.jsonl"));
        let mut child = Command::new("sh")
            .args(["-c", WATCHDOG, "moto-watchdog", &binary, &port.to_string(), &std::process::id().to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", &recording_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let endpoint = format!("http://127.0.0.1:{port}");
        if wait_ready(port, &mut child) {
            return Ok((Moto { endpoint, recording_file }, child));
        }
        stop(&mut child);
    }
    Err(std::io::Error::other("moto_server did not start on a free port after 3 tries"))
}

fn wait_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if crate::http_get(port, "/moto-api/").is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
