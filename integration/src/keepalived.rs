//! keepalived in the nodes' network namespaces ([`crate::netns`]), configured from
//! `examples/keepalived/keepalived.conf`: a virtual IP on the bridge's subnet that follows the primary.
//!
//! Each node's keepalived runs in the foreground (`-n`) in its namespace with its own pid files, config
//! and log under one directory; dropping the handle stops every instance by PID (SIGTERM, which releases
//! the VIP, then SIGKILL to whatever is left). [`holders`] lists the namespaces holding an address.

use crate::netns::Topology;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's `keepalived`.
const BINARY: &str = "/usr/sbin/keepalived";
/// The example's node addresses (node1, node2, node3) and its virtual IP.
const EXAMPLE_NODES: [&str; 3] = ["192.168.10.11", "192.168.10.12", "192.168.10.13"];
const EXAMPLE_VIP: &str = "192.168.10.100";

/// One keepalived per node, killed when dropped.
pub struct Keepalived {
    dir: PathBuf,
    children: Vec<Child>,
}

/// The example's configuration for node `i` of `net` (3 nodes), `vip` as the virtual IP: the example is
/// node1's, so node `i`'s own address takes node1's place and the other two the peers'.
pub fn config(net: &Topology, i: usize, vip: &str) -> String {
    assert_eq!(net.nodes(), EXAMPLE_NODES.len(), "the example has three nodes");
    let text = std::fs::read_to_string(crate::example("keepalived/keepalived.conf"))
        .expect("the example keepalived.conf");
    let others = (0..net.nodes()).filter(|j| *j != i);
    let order: Vec<usize> = std::iter::once(i).chain(others).collect();
    let text = text.replace("router_id vigil_node1", &format!("router_id vigil_node{}", i + 1));
    let text = EXAMPLE_NODES
        .iter()
        .zip(&order)
        .fold(text, |text, (example, node)| text.replace(example, &net.node_addr(*node)));
    text.replace(EXAMPLE_VIP, vip)
}

impl Keepalived {
    /// Starts keepalived in each node namespace of `net` with [`config`] (checked with `keepalived -t`), its
    /// files under `dir`.
    pub fn start(net: &Topology, vip: &str, dir: &Path) -> Keepalived {
        assert!(
            Path::new(BINARY).is_file(),
            "keepalived is missing: run scripts/test.sh (which installs it) or `apt-get install -y keepalived`"
        );
        let dir = dir.join("keepalived");
        std::fs::create_dir_all(&dir).expect("keepalived dir");
        let mut keepalived = Keepalived { dir: dir.clone(), children: Vec::new() };
        for i in 0..net.nodes() {
            let file = |ext: &str| dir.join(format!("node{}.{ext}", i + 1));
            std::fs::write(file("conf"), config(net, i, vip)).expect("write keepalived.conf");
            let check =
                Command::new(BINARY).arg("-t").arg("-f").arg(file("conf")).output().expect("keepalived -t");
            assert!(
                check.status.success(),
                "keepalived -t rejected node{}'s config: {}",
                i + 1,
                String::from_utf8_lossy(&check.stderr)
            );
            let log = std::fs::File::create(file("log")).expect("keepalived log");
            let child = Command::new("ip")
                .args(["netns", "exec", &net.node_ns(i), BINARY, "-n", "-l", "-D", "-f"])
                .arg(file("conf"))
                .arg("-p")
                .arg(file("pid"))
                .arg("-r")
                .arg(file("vrrp.pid"))
                .arg("-c")
                .arg(file("checkers.pid"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .expect("start keepalived");
            keepalived.children.push(child);
        }
        keepalived
    }

    /// Node `i`'s keepalived log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("node{}.log", i + 1))).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        for child in &self.children {
            // SAFETY: kill(2) on a child this handle started and has not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (i, child) in self.children.iter_mut().enumerate() {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().ok().flatten().is_some() {
                continue;
            }
            let _ = child.kill();
            let _ = child.wait();
            // The VRRP process it forked, which a killed parent leaves behind (its pid file remains).
            let vrrp = self.dir.join(format!("node{}.vrrp.pid", i + 1));
            let pid = std::fs::read_to_string(vrrp).ok().and_then(|t| t.trim().parse::<libc::pid_t>().ok());
            if let Some(pid) = pid {
                // SAFETY: kill(2) on the VRRP child of a keepalived this handle started (its pid file).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if std::thread::panicking() {
            for i in 0..self.children.len() {
                crate::print_tail(&format!("node{} keepalived log (tail)", i + 1), &self.log(i), 20);
            }
        }
    }
}

/// Which of `namespaces` hold `address` on `eth0` (their indices), by `ip -4 -o addr show`.
pub fn holders(namespaces: &[String], address: &str) -> Vec<usize> {
    (0..namespaces.len())
        .filter(|i| {
            let out = Command::new("ip")
                .args(["-n", &namespaces[*i], "-4", "-o", "addr", "show", "dev", "eth0"])
                .output()
                .expect("ip addr show");
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .any(|word| word.split('/').next() == Some(address))
        })
        .collect()
}
