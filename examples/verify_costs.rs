//! The token checks one at a time, for an instruction-count profile (bench/profile.sh runs this
//! under `valgrind --tool=callgrind --toggle-collect='*verify_costs::measure*'`, so only the
//! measured loop is counted, then divides by the count):
//!
//! `verify_costs <keys-dir> <what> <count>` with `what` one of
//! - `uncached`: a whole verification of one token, without the cache;
//! - `cached`: the same token again and again (a cache hit);
//! - `distinct`: `count` distinct tokens (a miss, a verification and an insertion each);
//! - `cache-insert`: `count` distinct entries put into a cache of the default size;
//! - `cache-hit`: one entry looked up `count` times;
//! - `rsa`: the RS256 signature check alone (decoded signature, key prepared once), the floor.
//!
//! It also prints the wall time per operation, which on a shared machine is only a hint.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate::jwt::{Subject, TokenService, VerifiedCache, DEFAULT_CACHE_SIZE};
use authgate::keys::KeyRing;

// The allocator of the server binary, so allocation costs count as they do there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[inline(never)]
fn measure(count: usize, mut f: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    for i in 0..count {
        f(i);
    }
    start.elapsed()
}

fn subject(i: usize) -> Subject {
    Subject {
        user_id: format!("bench-user-{i}"),
        email: format!("bench{i}@example.com"),
        username: Some(format!("bench{i}")),
        verified: true,
        staff: false,
        roles: vec!["reader".into()],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: verify_costs <keys-dir> <uncached|cached|distinct|cache-insert|cache-hit|rsa> <count>");
        std::process::exit(2);
    }
    let keys = KeyRing::open(std::path::Path::new(&args[1])).unwrap_or_else(|e| {
        eprintln!("verify_costs: {e}");
        std::process::exit(1);
    });
    let count: usize = args[3].parse().expect("a count");
    let tokens = TokenService::new(
        Arc::new(keys),
        "http://127.0.0.1:8080",
        None,
        Duration::from_secs(3600),
        Duration::from_secs(30),
    );
    let (token, claims) = tokens.issue(&subject(0)).expect("signing works");
    let elapsed = match args[2].as_str() {
        "uncached" => measure(count, |_| {
            black_box(tokens.verify_uncached(black_box(&token)).unwrap());
        }),
        "cached" => {
            tokens.verify(&token).unwrap();
            measure(count, |_| {
                black_box(tokens.verify(black_box(&token)).unwrap());
            })
        }
        "distinct" => {
            let many: Vec<String> = (0..count)
                .map(|i| tokens.issue(&subject(i)).unwrap().0)
                .collect();
            measure(count, |i| {
                black_box(tokens.verify(black_box(&many[i])).unwrap());
            })
        }
        "cache-insert" => {
            let cache = VerifiedCache::new(DEFAULT_CACHE_SIZE);
            let claims = Arc::new(claims);
            let keys: Vec<String> = (0..count).map(|i| format!("{token}{i}")).collect();
            measure(count, |i| {
                cache.put(&keys[i], claims.clone(), 1);
            })
        }
        "cache-hit" => {
            let cache = VerifiedCache::new(DEFAULT_CACHE_SIZE);
            cache.put(&token, Arc::new(claims), 1);
            measure(count, |_| {
                black_box(cache.get(black_box(&token), 1, 0, 0).unwrap());
            })
        }
        "rsa" => {
            let set = tokens.keys().snapshot();
            let key = set.current().expect("a key");
            let (message, signature) = token.rsplit_once('.').unwrap();
            let signature = signature_bytes(signature);
            measure(count, |_| {
                assert!(key.verify_rs256(black_box(message.as_bytes()), &signature));
            })
        }
        other => {
            eprintln!("verify_costs: unknown `{other}`");
            std::process::exit(2);
        }
    };
    eprintln!(
        "{} × {count}: {:.2} µs each (wall time)",
        args[2],
        elapsed.as_secs_f64() * 1e6 / count.max(1) as f64
    );
}

fn signature_bytes(b64: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .expect("base64url signature")
}
