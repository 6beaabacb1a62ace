//! How an accepted TCP connection is set up before TLS: [`Accept`] turns on
//! `TCP_NODELAY` and puts a read buffer under the TLS layer.
//!
//! rustls asks for at most 4 KiB per read (`READ_SIZE` in its deframer), so
//! a Pod review of 5 KB, one TLS record, took two `recvfrom` calls. With
//! [`READ_BUFFER`] below it, one call takes the whole record and rustls reads
//! the rest from memory: 1.00 calls per review instead of 2.0 at 5,000
//! reviews/s (docs/benchmarks.md, session 12).

use std::future::{Ready, ready};
use std::io;

use tokio::io::BufReader;
use tokio::net::TcpStream;

/// Bytes read from the socket at once: a whole TLS record (at most 16 KiB
/// of plaintext) in one call. Each connection holds one such buffer.
pub const READ_BUFFER: usize = 16 * 1024;

/// Sets up accepted connections for the TLS acceptor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accept;

impl<S> axum_server::accept::Accept<TcpStream, S> for Accept {
    type Stream = BufReader<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        // TCP_NODELAY: a response goes out as soon as it is written. Without
        // it Nagle's algorithm holds a second small TLS record until the
        // client acknowledges the first, which a delayed ACK postpones by up
        // to 40 ms.
        ready(
            stream
                .set_nodelay(true)
                .map(|()| (BufReader::with_capacity(READ_BUFFER, stream), service)),
        )
    }
}
