//! Network namespaces for fault tests: a bridge in a namespace of its own, every node (an agent and its
//! PostgreSQL) in its own namespace with a veth to the bridge, and a client namespace for workloads and
//! for polling the agents.
//!
//! Addresses are `10.77.0.0/24` and exist only inside the namespaces created here: the root namespace has
//! no route to them, so nothing may connect to them from it (the packets would leave the machine). Code
//! that talks to the nodes runs in the client namespace, through [`Topology::block_on_in_client`].
//!
//! Faults: a node's veth down on the bridge ([`Topology::set_link`]) cuts it from everybody; nftables
//! rules in a namespace ([`Topology::drop_traffic`]) drop chosen peers' packets in one or both
//! directions. Dropping the topology deletes every namespace it created, by name, also when a test
//! panics; the processes running in them must be killed (by PID) before.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The first three octets of every address.
const SUBNET: &str = "10.77.0";
/// The last octet of the client namespace's address.
const CLIENT_OCTET: usize = 100;
/// The nftables table that holds a namespace's fault rules.
const FAULT_TABLE: &str = "vigil_nemesis";
/// Topologies created by this process so far: with the PID, it makes every topology's names unique, so
/// that runs in other processes and several topologies of one process (parallel tests) coexist.
static CREATED: AtomicUsize = AtomicUsize::new(0);

/// Which packets a fault rule drops, seen from the namespace it is installed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Packets arriving from the peers.
    Incoming,
    /// Packets sent to the peers.
    Outgoing,
    /// Both.
    Both,
}

/// A bridge with `nodes` node namespaces and one client namespace.
pub struct Topology {
    prefix: String,
    nodes: usize,
    /// The namespaces this topology created (deleted on drop, in reverse order).
    created: Vec<String>,
}

impl Topology {
    /// Creates the bridge namespace, `nodes` node namespaces (`vigil-<pid>-<k>-n1`, …, `k` counting
    /// this process's topologies) and the client namespace (`vigil-<pid>-<k>-client`). An `Err` says
    /// which command failed (e.g. not root); whatever was created by then is deleted.
    pub fn create(nodes: usize) -> Result<Topology, String> {
        assert!(nodes < CLIENT_OCTET - 1, "at most {} nodes", CLIENT_OCTET - 2);
        let k = CREATED.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("vigil-{}-{k}", std::process::id());
        let mut topology = Topology { prefix, nodes, created: Vec::new() };
        let switch = topology.switch_ns();
        topology.add_ns(&switch)?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        let hosts: Vec<(String, String)> = (0..nodes)
            .map(|i| (topology.node_ns(i), topology.node_addr(i)))
            .chain([(topology.client_ns(), topology.client_addr())])
            .collect();
        for (k, (ns, addr)) in hosts.iter().enumerate() {
            topology.add_ns(ns)?;
            let veth = format!("v{k}");
            ip(&["-n", &switch, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
            ip(&["-n", &switch, "link", "set", &veth, "master", "br0", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        }
        Ok(topology)
    }

    /// Whether namespaces can be created here (root, `ip netns` working): `Err` says why not.
    pub fn usable() -> Result<(), String> {
        Topology::create(0).map(drop)
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Node `i`'s namespace.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{}", self.prefix, i + 1)
    }

    /// Node `i`'s address.
    pub fn node_addr(&self, i: usize) -> String {
        format!("{SUBNET}.{}", i + 1)
    }

    /// The client namespace.
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// The client namespace's address.
    pub fn client_addr(&self) -> String {
        format!("{SUBNET}.{CLIENT_OCTET}")
    }

    /// The network of every address, for `pg_hba.conf`.
    pub fn network(&self) -> String {
        format!("{SUBNET}.0/24")
    }

    /// The command prefix that runs a program in namespace `ns` (`ip netns exec` execs it: the PID of
    /// the spawned process is the program's).
    pub fn exec_prefix(ns: &str) -> Vec<String> {
        ["ip", "netns", "exec", ns].map(str::to_owned).to_vec()
    }

    /// Brings node `i`'s veth on the bridge down (cut from everybody) or up again.
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), String> {
        let veth = format!("v{i}");
        ip(&["-n", &self.switch_ns(), "link", "set", &veth, if up { "up" } else { "down" }])
    }

    /// Makes node `i`'s link slow both ways: a token-bucket filter (the kernel here has no netem) at 256
    /// kbit/s queueing up to 500 ms on each end of its veth, so that its traffic (WAL, Raft, REST) is delayed
    /// and throttled rather than cut. [`heal`](Self::heal) removes it.
    pub fn slow_link(&self, i: usize) -> Result<(), String> {
        for (ns, dev) in [(self.switch_ns(), format!("v{i}")), (self.node_ns(i), "eth0".to_owned())] {
            let args = ["-n", &ns, "qdisc", "replace", "dev", &dev, "root", "tbf"];
            tc(&[&args[..], &["rate", "256kbit", "burst", "4kbit", "latency", "500ms"]].concat())?;
        }
        Ok(())
    }

    /// Drops, in namespace `ns`, the packets exchanged with `peers` (addresses) in `direction`; adds to
    /// the rules already there. [`heal`](Self::heal) removes them.
    pub fn drop_traffic(&self, ns: &str, peers: &[String], direction: Direction) -> Result<(), String> {
        if peers.is_empty() {
            return Ok(());
        }
        let set = peers.join(", ");
        let mut rules = format!("table inet {FAULT_TABLE} {{\n");
        if direction != Direction::Outgoing {
            let _ = writeln!(
                rules,
                "  chain input {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} drop; }}"
            );
        }
        if direction != Direction::Incoming {
            let _ = writeln!(
                rules,
                "  chain output {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} drop; }}"
            );
        }
        rules.push_str("}\n");
        nft(ns, &rules)
    }

    /// Removes every fault rule of namespace `ns` (none is fine).
    pub fn clear_rules(&self, ns: &str) -> Result<(), String> {
        nft(ns, &format!("table inet {FAULT_TABLE} {{}}\ndelete table inet {FAULT_TABLE}\n"))
    }

    /// Every link up and every fault rule gone, in every namespace.
    pub fn heal(&self) -> Result<(), String> {
        for i in 0..self.nodes {
            self.set_link(i, true)?;
            self.clear_rules(&self.node_ns(i))?;
            // No slow link in place is no error.
            let _ = tc(&["-n", &self.switch_ns(), "qdisc", "del", "dev", &format!("v{i}"), "root"]);
            let _ = tc(&["-n", &self.node_ns(i), "qdisc", "del", "dev", "eth0", "root"]);
        }
        self.clear_rules(&self.client_ns())
    }

    /// Runs the future `make()` builds on a 2-worker tokio runtime whose threads live in the client
    /// namespace (the runtime's threads inherit it from the thread that builds it), and returns its
    /// output; a panic inside is resumed here.
    pub fn block_on_in_client<T, F, Fut>(&self, make: F) -> T
    where
        T: Send,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
    {
        let path = format!("/var/run/netns/{}", self.client_ns());
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                enter_netns(&path);
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(make())
            });
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn switch_ns(&self) -> String {
        format!("{}-bridge", self.prefix)
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        ip(&["netns", "add", ns])?;
        self.created.push(ns.to_owned());
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns: {e}");
            }
        }
    }
}

/// Moves the calling thread into the network namespace bound at `path` (`/var/run/netns/NAME`).
fn enter_netns(path: &str) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns(2) on a namespace file descriptor this thread holds open; it changes only this
    // thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Runs `ip ARGS`; `Err` quotes the command and its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args), None, &format!("ip {}", args.join(" ")))
}

fn tc(args: &[&str]) -> Result<(), String> {
    run(Command::new("tc").args(args), None, &format!("tc {}", args.join(" ")))
}

/// Loads the nftables `rules` in namespace `ns`.
fn nft(ns: &str, rules: &str) -> Result<(), String> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns, "nft", "-f", "-"]);
    run(&mut command, Some(rules), &format!("nft in {ns}: {}", rules.trim()))
}

fn run(command: &mut Command, stdin: Option<&str>, what: &str) -> Result<(), String> {
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("{what}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| format!("{what}: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("{what}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
}
