//! Outgoing email: templates (plain text + HTML, overridable from a directory) and three
//! transports: SMTP (lettre), the log, or one `.eml` file per message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{self, SmtpTls};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    Activation,
    PasswordReset,
    SecondaryEmail,
    PasswordSet,
    /// The new primary address of an account, to confirm.
    EmailChange,
    /// A notice to the old address that the primary address changed.
    EmailChanged,
}

impl EmailKind {
    pub const ALL: [EmailKind; 6] = [
        EmailKind::Activation,
        EmailKind::PasswordReset,
        EmailKind::SecondaryEmail,
        EmailKind::PasswordSet,
        EmailKind::EmailChange,
        EmailKind::EmailChanged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EmailKind::Activation => "activation",
            EmailKind::PasswordReset => "password_reset",
            EmailKind::SecondaryEmail => "secondary_email",
            EmailKind::PasswordSet => "password_set",
            EmailKind::EmailChange => "email_change",
            EmailKind::EmailChanged => "email_changed",
        }
    }
}

/// Built-in templates: `<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`.
const DEFAULT_TEMPLATES: &[(&str, &str)] = &[
    (
        "activation.subject.txt",
        include_str!("templates/activation.subject.txt"),
    ),
    ("activation.txt", include_str!("templates/activation.txt")),
    ("activation.html", include_str!("templates/activation.html")),
    (
        "password_reset.subject.txt",
        include_str!("templates/password_reset.subject.txt"),
    ),
    (
        "password_reset.txt",
        include_str!("templates/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("templates/password_reset.html"),
    ),
    (
        "secondary_email.subject.txt",
        include_str!("templates/secondary_email.subject.txt"),
    ),
    (
        "secondary_email.txt",
        include_str!("templates/secondary_email.txt"),
    ),
    (
        "secondary_email.html",
        include_str!("templates/secondary_email.html"),
    ),
    (
        "password_set.subject.txt",
        include_str!("templates/password_set.subject.txt"),
    ),
    (
        "password_set.txt",
        include_str!("templates/password_set.txt"),
    ),
    (
        "password_set.html",
        include_str!("templates/password_set.html"),
    ),
    (
        "email_change.subject.txt",
        include_str!("templates/email_change.subject.txt"),
    ),
    (
        "email_change.txt",
        include_str!("templates/email_change.txt"),
    ),
    (
        "email_change.html",
        include_str!("templates/email_change.html"),
    ),
    (
        "email_changed.subject.txt",
        include_str!("templates/email_changed.subject.txt"),
    ),
    (
        "email_changed.txt",
        include_str!("templates/email_changed.txt"),
    ),
    (
        "email_changed.html",
        include_str!("templates/email_changed.html"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("invalid address: {0}")]
    Address(String),
    #[error("template {0}: {1}")]
    Template(String, #[source] minijinja::Error),
    #[error("sending failed: {0}")]
    Send(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn send_err(e: impl std::error::Error + Send + Sync + 'static) -> EmailError {
    EmailError::Send(Box::new(e))
}

enum Transport {
    Log,
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

pub struct Mailer {
    transport: Transport,
    templates: minijinja::Environment<'static>,
    from: Mailbox,
}

impl Mailer {
    /// Builds the mailer; an error names the config key at fault.
    pub fn from_config(config: &config::Email) -> Result<Mailer, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("config key `email.from`: {e}"))?;
        let templates = load_templates(config.templates_dir.as_deref())?;
        let transport = match &config.transport {
            config::Transport::Smtp(relay) => Transport::Smtp(smtp(relay)?),
            config::Transport::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("config key `email.file_dir`: {}: {e}", dir.display()))?;
                Transport::File(dir.clone())
            }
            config::Transport::Log => Transport::Log,
        };
        Ok(Mailer {
            transport,
            templates,
            from,
        })
    }

    fn render(&self, name: &str, context: &serde_json::Value) -> Result<String, EmailError> {
        self.templates
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| EmailError::Template(name.to_string(), e))
    }

    /// Renders and sends one message. `context` is available to the templates.
    pub async fn send(
        &self,
        kind: EmailKind,
        to: &str,
        context: serde_json::Value,
    ) -> Result<(), EmailError> {
        let to_box: Mailbox = to
            .parse()
            .map_err(|_| EmailError::Address(to.to_string()))?;
        let subject = self.render(&format!("{}.subject.txt", kind.name()), &context)?;
        let text = self.render(&format!("{}.txt", kind.name()), &context)?;
        let html = self.render(&format!("{}.html", kind.name()), &context)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(subject.trim())
            .multipart(MultiPart::alternative_plain_html(text.clone(), html))
            .map_err(send_err)?;
        match &self.transport {
            Transport::Log => {
                tracing::info!(kind = kind.name(), %to, subject = subject.trim(), body = %text, "email (log transport)");
                Ok(())
            }
            Transport::File(dir) => {
                let name = format!(
                    "{}-{}.eml",
                    crate::jwt::unix_now(),
                    uuid::Uuid::new_v4().simple()
                );
                let bytes = message.formatted();
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || std::fs::write(dir.join(name), bytes))
                    .await
                    .map_err(send_err)?
                    .map_err(send_err)
            }
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(send_err),
        }
    }
}

fn smtp(config: &config::Smtp) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = config.host.as_str();
    let builder = match config.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|e| format!("config key `email.smtp_host`: {e}"))?,
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| format!("config key `email.smtp_host`: {e}"))?,
    };
    let mut builder = builder
        .port(config.port)
        .timeout(Some(Duration::from_secs(10)));
    if let Some((user, password)) = &config.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

fn load_templates(dir: Option<&Path>) -> Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in DEFAULT_TEMPLATES {
        let source = match dir {
            Some(dir) => read_override(dir, name)?.unwrap_or_else(|| source.to_string()),
            None => source.to_string(),
        };
        env.add_template_owned(name.to_string(), source)
            .map_err(|e| format!("config key `email.templates_dir`: {name}: {e}"))?;
    }
    Ok(env)
}

fn read_override(dir: &Path, name: &str) -> Result<Option<String>, String> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("config key `email.templates_dir`: {name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_renders() {
        let env = load_templates(None).unwrap();
        let context = serde_json::json!({
            "link": "http://x/activate/t<o>k", "email": "a@b.c", "name": "Ada", "site": "http://x",
            "expires": "7d",
        });
        for kind in EmailKind::ALL {
            for suffix in ["subject.txt", "txt", "html"] {
                let name = format!("{}.{suffix}", kind.name());
                let out = env.get_template(&name).unwrap().render(&context).unwrap();
                assert!(!out.trim().is_empty(), "{name}");
                if suffix == "html" {
                    assert!(out.contains("t&lt;o&gt;k"), "{name} escapes: {out}");
                }
            }
        }
    }

    #[test]
    fn overrides_replace_defaults_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("activation.txt"), "custom {{ link }}").unwrap();
        let env = load_templates(Some(dir.path())).unwrap();
        let out = env
            .get_template("activation.txt")
            .unwrap()
            .render(serde_json::json!({"link": "L"}))
            .unwrap();
        assert_eq!(out, "custom L");
        std::fs::write(dir.path().join("activation.html"), "{% if %}").unwrap();
        let err = load_templates(Some(dir.path())).err().unwrap();
        assert!(err.contains("email.templates_dir"), "{err}");
    }
}
