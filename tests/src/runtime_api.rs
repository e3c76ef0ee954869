//! A stand-in for the Lambda Runtime API, enough to start a function, hand
//! it one event and see its answer: for measuring cold starts locally.

use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// When the function first asked for an event: its init is done.
    pub first_next: Option<Instant>,
    /// When it answered (response or error), and whether it was an error.
    pub answered: Option<(Instant, bool)>,
    pub answer: Vec<u8>,
}

pub struct RuntimeApi {
    pub address: String,
    pub seen: Arc<Mutex<Seen>>,
}

impl RuntimeApi {
    pub async fn start(event: serde_json::Value) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let s = Arc::clone(&seen);
        let body = event.to_string();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (s, body) = (Arc::clone(&s), body.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, s, body).await;
                });
            }
        });
        Ok(Self { address, seen })
    }
}

async fn serve(conn: TcpStream, seen: Arc<Mutex<Seen>>, event: String) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    while let Some(request) = crate::http::read_request(&mut reader).await? {
        let path = request.path().to_owned();
        let body = request.body;
        let conn = reader.get_mut();
        if path.ends_with("/invocation/next") {
            let first = {
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                let first = s.first_next.is_none();
                if first {
                    s.first_next = Some(Instant::now());
                }
                first
            };
            if !first {
                // One event only: the function waits here until killed.
                std::future::pending::<()>().await;
            }
            let deadline =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
                    + 60_000;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{event}",
                event.len()
            );
            conn.write_all(response.as_bytes()).await?;
        } else {
            let error = path.ends_with("/error");
            {
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                s.answered = Some((Instant::now(), error));
                s.answer = body;
            }
            conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}").await?;
        }
    }
    Ok(())
}
