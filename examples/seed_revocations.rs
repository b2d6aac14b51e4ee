//! Fills the revocation list of a gateway's data directory (server stopped) with made-up
//! entries, for load tests of the revocation check: `seed_revocations <data-dir> <count>`.
//! Half are accounts' `not_before`, half revoked sessions, none of them any real token's;
//! each lasts an hour from now.

use std::sync::Arc;

use authgate::accounts::storage::{Revocation, RevocationKind, RevocationStore};
use authgate::store::sled::{SledRevocations, SledStore};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: seed_revocations <data-dir> <count>");
        std::process::exit(2);
    }
    let count: usize = args[2].parse().unwrap_or(0);
    let store = SledStore::open(std::path::Path::new(&args[1])).unwrap_or_else(|e| {
        eprintln!("seed_revocations: {e}");
        std::process::exit(1);
    });
    let list = Arc::new(SledRevocations::new(store.db()).unwrap_or_else(|e| {
        eprintln!("seed_revocations: {e}");
        std::process::exit(1);
    }));
    let now = authgate::jwt::unix_now();
    let entries: Vec<Revocation> = (0..count)
        .map(|i| Revocation {
            kind: if i % 2 == 0 {
                RevocationKind::Account
            } else {
                RevocationKind::Session
            },
            id: format!("seeded-{i:026x}"),
            at: now,
            until: now + 3600,
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(list.record(&entries)).unwrap_or_else(|e| {
        eprintln!("seed_revocations: {e}");
        std::process::exit(1);
    });
    println!("{count}");
}
