//! Retransmission settings of accepted connections, so that an answer lost in a short network
//! interruption reaches its client soon after the network heals.
//!
//! The kernel sends a lost segment again on a schedule that doubles from about 200 ms: 0.2,
//! 0.6, 1.4, 3.0, 6.2 s after it was first sent. An answer lost at the start of a 1.6 s cut
//! therefore arrives 3.0 s after it was sent, and one lost in a 3.6 s cut 6.2 s after: clients
//! (and the CLI, which waits for the answer before sending the next change) sit idle for
//! seconds after the network is back, for answers to changes committed long before. Two
//! per-connection settings shorten that:
//!
//! - `TCP_THIN_LINEAR_TIMEOUTS`: a connection with fewer than four segments in flight (an
//!   answer, a small request: a "thin" stream) retries at a constant interval for its first six
//!   retransmissions instead of doubling. Bulk transfers keep the usual backoff, so congestion
//!   control is unchanged where it matters. Linux 2.6.34 and later.
//! - `TCP_RTO_MAX_MS`: the retransmission timeout never grows past [`RTO_MAX`] (the default is
//!   120 s), so after a longer cut the next try comes within that of the network healing.
//!   Linux 6.15 and later; an older kernel refuses it and keeps its schedule.
//!
//! Both are best effort: a socket that refuses them works as before.

use std::io;
use std::time::Duration;

/// The longest retransmission timeout of an accepted connection. A client more than half a
/// second away (round trip above about a second) may see segments sent twice; nothing else
/// changes for it.
pub const RTO_MAX: Duration = Duration::from_secs(1);

/// `TCP_RTO_MAX_MS` of `<linux/tcp.h>` (not in `libc` yet).
#[cfg(target_os = "linux")]
const TCP_RTO_MAX_MS: libc::c_int = 44;

/// What [`quick_retransmits`] could set on one socket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub thin_linear_timeouts: bool,
    pub rto_max: bool,
}

/// Applies the settings above to `socket`; logs (at debug) what the kernel refused.
pub fn quick_retransmits(socket: &impl std::os::fd::AsRawFd) -> Applied {
    #[cfg(target_os = "linux")]
    {
        let fd = socket.as_raw_fd();
        let thin = set_tcp_option(fd, libc::TCP_THIN_LINEAR_TIMEOUTS, 1);
        let rto = set_tcp_option(fd, TCP_RTO_MAX_MS, RTO_MAX.as_millis() as libc::c_int);
        for (name, r) in [
            ("TCP_THIN_LINEAR_TIMEOUTS", &thin),
            ("TCP_RTO_MAX_MS", &rto),
        ] {
            if let Err(e) = r {
                tracing::debug!(option = name, error = %e, "the kernel refused a TCP option; its default stays");
            }
        }
        Applied {
            thin_linear_timeouts: thin.is_ok(),
            rto_max: rto.is_ok(),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        Applied::default()
    }
}

/// `setsockopt(fd, IPPROTO_TCP, option, value)` for an integer option.
#[cfg(target_os = "linux")]
fn set_tcp_option(fd: libc::c_int, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` and the length passed is its size; the kernel only
    // reads it. An `fd` that is not a TCP socket is refused with an error, never written.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            (&value as *const libc::c_int).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// `getsockopt(fd, IPPROTO_TCP, option)` for an integer option.
    fn get_tcp_option(fd: libc::c_int, option: libc::c_int) -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live and sized for the option.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                option,
                (&mut value as *mut libc::c_int).cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[test]
    fn an_accepted_connection_gets_linear_timeouts_and_the_rto_cap_where_the_kernel_has_it() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let fd = accepted.as_raw_fd();
        assert_eq!(
            get_tcp_option(fd, libc::TCP_THIN_LINEAR_TIMEOUTS).unwrap(),
            0
        );
        let applied = quick_retransmits(&accepted);
        assert!(applied.thin_linear_timeouts);
        assert_eq!(
            get_tcp_option(fd, libc::TCP_THIN_LINEAR_TIMEOUTS).unwrap(),
            1
        );
        // The cap is read back exactly where the kernel took it, and refused as unknown
        // (not as a bad value) where it did not.
        match get_tcp_option(fd, TCP_RTO_MAX_MS) {
            Ok(ms) => {
                assert!(applied.rto_max);
                assert_eq!(ms, 1000);
            }
            Err(e) => {
                assert!(!applied.rto_max);
                assert_eq!(e.raw_os_error(), Some(libc::ENOPROTOOPT), "{e}");
            }
        }
    }

    #[test]
    fn a_socket_that_is_not_tcp_refuses_and_nothing_breaks() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(quick_retransmits(&udp), Applied::default());
    }
}
