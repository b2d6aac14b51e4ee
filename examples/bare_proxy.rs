//! The engine alone, for the benchmark: a Pingora `ProxyHttp` that does nothing but pick its
//! one upstream, built with the same Pingora version, features, allocator and release profile
//! as authgate. Whatever authgate costs above this is our own.
//!
//! `bare_proxy <listen host:port> <upstream host:port> [threads]`

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::Result;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bare_proxy <listen host:port> <upstream host:port> [threads]");
        std::process::exit(2);
    }
    let upstream: SocketAddr = args[2].parse().unwrap_or_else(|e| {
        eprintln!("bare_proxy: upstream {}: {e}", args[2]);
        std::process::exit(2);
    });
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&args[1]);
    server.add_service(proxy);
    server.run(RunArgs::default());
}
