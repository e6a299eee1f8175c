//! Syslog over UDP: one task per socket that receives datagrams into batches, and the
//! kernel's drops of the sockets, read from `/proc/net/udp`: UDP has no backpressure, so
//! what the kernel drops when the socket buffer overflows is counted exactly instead.

use super::*;

/// Receives syslog datagrams until shutdown. A batch is sent at once when nothing from this
/// socket is in flight, and otherwise gathered until the previous sends complete or the
/// flush tick passes; in-flight bytes are bounded so that a slow disk shows up as kernel
/// drops (counted) rather than as unbounded memory.
pub(super) async fn syslog_udp(core: Rc<Core>, socket: UdpSocket, tenant: Rc<str>) {
    /// Unacknowledged bytes of batches from this socket: UDP has no backpressure, so beyond
    /// this the socket is simply not read and the kernel buffer absorbs (or drops, counted).
    const UDP_IN_FLIGHT_BYTES_MAX: usize = 8 * 1024 * 1024;
    /// Longest a gathered datagram waits for its batch to be sent.
    const UDP_FLUSH_TICK: Duration = Duration::from_millis(1);
    /// The tick while nothing is gathered: cheap to keep running on an idle core.
    const UDP_IDLE_TICK: Duration = Duration::from_millis(25);
    let batcher = Rc::new(std::cell::RefCell::new(SyslogBatcher::new(
        core.clone(),
        tenant.clone(),
        Protocol::SyslogUdp,
        None,
    )));
    let outstanding = batcher.borrow().outstanding_bytes.clone();
    // Recv futures are never raced against a timer (a cancelled receive could lose a
    // datagram); the tick lives in its own task instead.
    let ticker = {
        let (batcher, core2) = (batcher.clone(), core.clone());
        let tq = core.ingest_tq;
        let core = core2;
        glommio::spawn_local_into(
            async move {
                let mut busy = false;
                while !core.shutdown.is_triggered() {
                    // Tick fast while datagrams arrive, slowly while the socket is quiet (a
                    // datagram that finds nothing in flight is sent at once anyway).
                    glommio::timer::sleep(if busy { UDP_FLUSH_TICK } else { UDP_IDLE_TICK }).await;
                    let mut b = batcher.borrow_mut();
                    busy = b.pending_bytes() > 0;
                    b.flush();
                }
            },
            tq,
        )
        .expect("the ingest queue exists")
        .detach()
    };
    let mut buf = vec![0u8; 65536];
    loop {
        let got = future::or(async { Some(socket.recv_from(&mut buf).await) }, async {
            core.shutdown.wait().await;
            None
        })
        .await;
        let Some(got) = got else { break };
        let Ok((n, from)) = got else { continue };
        core.shard.counters.udp_datagrams.inc();
        let mut message = &buf[..n];
        // One message per datagram; senders often end it with a newline anyway.
        while let Some(rest) = message
            .strip_suffix(b"\n")
            .or_else(|| message.strip_suffix(b"\0"))
        {
            message = rest;
        }
        // Over the tenant's rate a datagram is dropped and counted: UDP has no way to slow
        // the sender down.
        let tenant_limits = core.limits.for_tenant(&tenant);
        let limit = tenant_limits.ingestion_rate;
        let taken = core.lifecycle.ingestion_rates.take(
            &tenant,
            message.len().min(core.config.syslog_frame_bytes_max) as u64,
            &limit,
        );
        if taken.is_err() {
            core.shard
                .counters
                .discard_for(&tenant, DiscardReason::RateLimited, 1);
            continue;
        }
        {
            let mut b = batcher.borrow_mut();
            b.peer = Some(from.ip().to_string());
            b.discovery = tenant_limits.discovery;
            let max = core.config.syslog_frame_bytes_max;
            if message.len() > max {
                b.add(&message[..max], now_ns(), true);
            } else if !message.is_empty() {
                b.add(message, now_ns(), false);
            }
            if outstanding.get() == 0 || b.pending_bytes() >= crate::config::BATCH_BYTES_TARGET {
                b.flush();
            }
        }
        while outstanding.get() > UDP_IN_FLIGHT_BYTES_MAX {
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
    }
    batcher.borrow_mut().flush();
    while outstanding.get() > 0 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    drop(ticker);
}

pub(super) fn set_recv_buffer(socket: &UdpSocket, bytes: usize) {
    use nix::sys::socket::{setsockopt, sockopt};
    let v = bytes.min(i32::MAX as usize);
    // SAFETY: glommio's socket gives only a raw descriptor; it stays open while `socket` is
    // borrowed, which outlives `fd`.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    // SO_RCVBUFFORCE (root) goes past net.core.rmem_max; fall back to SO_RCVBUF, which the
    // kernel caps at rmem_max (`shardlog doctor` reports that).
    if setsockopt(&fd, sockopt::RcvBufForce, &v).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &v);
    }
}

pub(super) fn socket_inode(fd: i32) -> u64 {
    nix::sys::stat::fstat(fd).map_or(0, |st| st.st_ino)
}

/// Datagrams the kernel dropped on the sockets with these inodes (the `drops` column of
/// `/proc/net/udp` and `/proc/net/udp6`).
pub fn udp_kernel_drops(inodes: &[u64]) -> u64 {
    if inodes.is_empty() {
        return 0;
    }
    let mut total = 0;
    for path in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += inodes
            .iter()
            .map(|&inode| parse_udp_drops(&text, inode))
            .sum::<u64>();
    }
    total
}

fn parse_udp_drops(table: &str, inode: u64) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            let ino: u64 = cols.get(9)?.parse().ok()?;
            (ino == inode).then(|| cols.get(12)?.parse::<u64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_drops_of_our_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 00000000:157A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
  2: 00000000:157B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 5\n";
        assert_eq!(parse_udp_drops(table, 4242), 17);
        assert_eq!(parse_udp_drops(table, 1), 0);
    }
}
