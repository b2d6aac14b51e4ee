//! `storage.database_url` → a tokio-postgres configuration and a rustls connector.
//!
//! `sslmode` follows libpq: `disable`; `allow` and `prefer` (the default: TLS when the server
//! offers it); `require` (TLS or nothing); `verify-ca` (the server's chain checked against
//! trusted roots); `verify-full` (the chain and the host name). As in libpq, `prefer` and
//! `require` check the chain only when `sslrootcert` names a file. `sslrootcert=FILE` (PEM)
//! replaces the system's roots; `sslrootcert=system` uses them. Everything else in the URL is
//! read by tokio-postgres. Unix-socket hosts never use TLS.

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    /// Encryption only (libpq's `prefer`/`require` without a root certificate).
    None,
    /// The chain, not the name (`verify-ca`, or `require` with a root certificate).
    Chain,
    /// The chain and the name (`verify-full`).
    Full,
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    System,
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TlsSettings {
    mode: SslMode,
    check: Check,
    roots: Roots,
}

/// Splits the libpq TLS parameters off a URL; returns the URL tokio-postgres reads and what
/// they asked for. Errors name the parameter, never the URL (it may hold a password).
fn split(url: &str) -> Result<(String, TlsSettings), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut rootcert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = |what: &str| {
            percent_decode_str(what)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| "the URL is not valid UTF-8 once decoded".to_string())
        };
        match decoded(key)?.as_str() {
            "sslmode" => sslmode = Some(decoded(value)?),
            "sslrootcert" => rootcert = Some(decoded(value)?),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(format!(
                    "`{}` (client certificates) is not supported",
                    decoded(key)?
                ))
            }
            _ => kept.push(pair),
        }
    }
    let roots = match rootcert.as_deref() {
        None | Some("system") => Roots::System,
        Some("") => return Err("`sslrootcert` is empty".into()),
        Some(path) => Roots::File(path.to_string()),
    };
    let has_file = matches!(roots, Roots::File(_));
    let chain_if_file = if has_file { Check::Chain } else { Check::None };
    let (mode, check) = match sslmode.as_deref().unwrap_or("prefer") {
        "disable" => (SslMode::Disable, Check::None),
        "allow" | "prefer" => (SslMode::Prefer, chain_if_file),
        "require" => (SslMode::Require, chain_if_file),
        "verify-ca" => (SslMode::Require, Check::Chain),
        "verify-full" => (SslMode::Require, Check::Full),
        other => {
            return Err(format!(
                "`sslmode={other}` is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full"
            ))
        }
    };
    let tokio_mode = match mode {
        SslMode::Disable => "disable",
        SslMode::Require => "require",
        _ => "prefer",
    };
    let mut rebuilt = format!("{base}?");
    for pair in kept {
        rebuilt.push_str(pair);
        rebuilt.push('&');
    }
    rebuilt.push_str("sslmode=");
    rebuilt.push_str(tokio_mode);
    Ok((rebuilt, TlsSettings { mode, check, roots }))
}

/// Parses `storage.database_url`. The error says what is wrong without repeating the URL.
pub(super) fn parse(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("not a postgres:// or postgresql:// URL".into());
    }
    let (rebuilt, settings) = split(url)?;
    let config: tokio_postgres::Config = rebuilt.parse().map_err(|e: tokio_postgres::Error| {
        match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        }
    })?;
    debug_assert_eq!(config.get_ssl_mode(), settings.mode);
    Ok((config, connector(&settings)?))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("`sslrootcert` {path}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("`sslrootcert` {path}: {e}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("`sslrootcert` {path}: no certificate in the file"));
            }
        }
        Roots::System => {
            let certs = rustls_native_certs::load_native_certs()
                .map_err(|e| format!("the system's trusted certificates: {e}"))?;
            store.add_parsable_certificates(certs);
            if store.is_empty() {
                return Err(
                    "no trusted certificate found on the system (name a file with sslrootcert)"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match settings.check {
        // No TLS will be attempted, or encryption without a check: either way no roots to load.
        Check::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Check::Chain => {
            let roots = Arc::new(root_store(&settings.roots)?);
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
        Check::Full => builder
            .with_root_certificates(root_store(&settings.roots)?)
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `sslmode=require` without a root certificate: the channel is encrypted and the
/// handshake signature checked, the certificate itself is not.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// libpq's `verify-ca`: the chain must lead to a trusted root; the name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is verified before the name: a name mismatch means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> TlsSettings {
        split(url).unwrap().1
    }

    #[test]
    fn sslmode_follows_libpq() {
        let s = settings("postgres://u:p@h/db");
        assert_eq!((s.mode, s.check), (SslMode::Prefer, Check::None));
        let s = settings("postgres://h/db?sslmode=disable");
        assert_eq!(s.mode, SslMode::Disable);
        let s = settings("postgres://h/db?sslmode=require");
        assert_eq!((s.mode, s.check), (SslMode::Require, Check::None));
        let s = settings("postgres://h/db?sslmode=require&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!((s.mode, s.check), (SslMode::Require, Check::Chain));
        assert_eq!(s.roots, Roots::File("/etc/ca.pem".into()));
        let s = settings("postgres://h/db?sslmode=verify-ca");
        assert_eq!((s.check, s.roots), (Check::Chain, Roots::System));
        let s = settings("postgres://h/db?sslrootcert=system&sslmode=verify-full");
        assert_eq!((s.mode, s.check), (SslMode::Require, Check::Full));
    }

    #[test]
    fn other_parameters_pass_through_and_tls_ones_are_rewritten() {
        let (url, _) =
            split("postgres://u:p%40ss@h:5433/db?application_name=x&sslmode=verify-full").unwrap();
        assert_eq!(
            url,
            "postgres://u:p%40ss@h:5433/db?application_name=x&sslmode=require"
        );
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(config.get_application_name(), Some("x"));
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for url in [
            "mysql://u:hunter2@h/db",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
            "postgres://u:hunter2@h/db?sslcert=c.pem",
            "postgres://u:hunter2@h/db?frobnicate=1",
            "postgres://u:hunter2@h/db?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem",
        ] {
            let err = parse(url).err().unwrap_or_else(|| panic!("{url} parsed"));
            assert!(!err.contains("hunter2"), "{err}");
            assert!(!err.is_empty());
        }
        let err = parse("postgres://h/db?sslmode=sometimes").err().unwrap();
        assert!(err.contains("sslmode"), "{err}");
        let err = parse("postgres://h/db?frobnicate=1").err().unwrap();
        assert!(err.contains("frobnicate"), "{err}");
    }

    #[test]
    fn unix_socket_hosts_parse() {
        let (config, _) = parse("postgresql://u:p@%2Ftmp%2Fpg/db?sslmode=disable").unwrap();
        assert_eq!(config.get_dbname(), Some("db"));
        assert!(matches!(
            config.get_hosts(),
            [tokio_postgres::config::Host::Unix(path)] if path == std::path::Path::new("/tmp/pg")
        ));
    }
}
