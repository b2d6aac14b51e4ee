//! A real SMTP listener for tests: speaks enough RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT), keeps every message, and can be told to refuse mail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The message text with quoted-printable soft breaks and escapes undone.
    pub fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }

    /// The first link under `path` (e.g. `/activate/`) in the message.
    pub fn link(&self, path: &str) -> Option<String> {
        let text = self.text();
        let start = text.find("http")?;
        text[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .find(|word| word.starts_with("http") && word.contains(path))
            .map(str::to_string)
            .or_else(|| {
                text.split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
                    .find(|word| word.starts_with("http") && word.contains(path))
                    .map(str::to_string)
            })
    }

    /// The token at the end of a link under `path`.
    pub fn token(&self, path: &str) -> Option<String> {
        let link = self.link(path)?;
        let tail = &link[link.find(path)? + path.len()..];
        Some(tail.trim_start_matches("?token=").to_string())
    }
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    refuse: Arc<AtomicBool>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = SmtpSink {
            port: listener.local_addr().unwrap().port(),
            mails: Arc::default(),
            refuse: Arc::default(),
        };
        let handle = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = handle.session(stream).await;
                });
            }
        });
        sink
    }

    /// While set, every message is refused with 554 (a "down" mail relay).
    pub fn refuse(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .collect()
    }

    /// Waits for the n-th message to `to` (1-based) and returns it.
    pub async fn wait_for(&self, to: &str, n: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.mails_to(to);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            assert!(Instant::now() < deadline, "no mail #{n} to {to} within 10s");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn session(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 test-sink ESMTP\r\n").await?;
        let mut to = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if command.starts_with("EHLO") {
                b"250-test-sink\r\n250 8BITMIME\r\n"
            } else if command.starts_with("HELO") || command.starts_with("NOOP") {
                b"250 ok\r\n"
            } else if command.starts_with("MAIL FROM") {
                if self.refuse.load(Ordering::SeqCst) {
                    b"554 5.7.1 refused by test\r\n"
                } else {
                    to.clear();
                    b"250 ok\r\n"
                }
            } else if command.starts_with("RCPT TO") {
                let address = line.trim_end()[8..]
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
                to.push(address);
                b"250 ok\r\n"
            } else if command == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(
                        line.strip_prefix('.')
                            .filter(|_| line.starts_with(".."))
                            .unwrap_or(&line),
                    );
                }
                self.mails.lock().unwrap().push(Mail {
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 queued\r\n"
            } else if command.starts_with("RSET") {
                to.clear();
                b"250 ok\r\n"
            } else if command.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                b"502 not implemented\r\n"
            };
            write.write_all(reply).await?;
        }
    }
}
