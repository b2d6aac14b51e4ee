//! Mints valid access tokens with the signing key of a keys directory, one per line, for load
//! tests: `mint_tokens <keys-dir> <issuer> <count> [audience]`. Each token has its own subject
//! and `jti`, so a verified-token cache cannot hide the RSA cost.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use authgate::jwt::{Subject, TokenService};
use authgate::keys::KeyRing;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: mint_tokens <keys-dir> <issuer> <count> [audience]");
        std::process::exit(2);
    }
    let keys = KeyRing::open(std::path::Path::new(&args[1])).unwrap_or_else(|e| {
        eprintln!("mint_tokens: {e}");
        std::process::exit(1);
    });
    let count: usize = args[3].parse().unwrap_or(1);
    let tokens = TokenService::new(
        Arc::new(keys),
        &args[2],
        args.get(4).map(String::as_str),
        Duration::from_secs(3600),
        Duration::from_secs(30),
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..count {
        let subject = Subject {
            user_id: format!("bench-user-{i}"),
            email: format!("bench{i}@example.com"),
            username: Some(format!("bench{i}")),
            verified: true,
            staff: false,
            roles: vec!["reader".into()],
        };
        let (token, _) = tokens.issue(&subject).expect("signing works");
        let _ = writeln!(out, "{token}");
    }
}
