//! The watchdog: a kernel timer that resets the host unless the primary's agent pets it in time, so a
//! frozen agent cannot leave a primary running past its lease.
//!
//! [`Watchdog`] is the policy (Patroni's `watchdog.mode`): armed before this member becomes primary with
//! a timeout of `ttl - safety_margin` ([`watchdog_timeout`]), kept alive after every successful lease
//! renewal, disarmed with the magic close (a `V` written just before closing) when the member stops being
//! primary, in pause and on clean shutdown. It talks to its device through [`WatchdogDevice`]: the Linux
//! watchdog API ([`LinuxWatchdog`]) in production, anything else in tests.
//!
//! A device that cannot be opened, or that refuses the timeout (a plain file is not a watchdog: its ioctl
//! fails), is a warning in `automatic` mode (the agent goes on with the device as it is, or without one)
//! and a refusal to become primary in `required` mode.

use crate::FencingToken;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `_IOWR('W', 6, int)`: set the timeout in seconds; the driver writes back the one it applied.
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;

/// The byte whose write just before `close` disarms the timer (the "magic close").
const MAGIC_CLOSE: &[u8] = b"V";

/// What a keepalive writes (any write pets a Linux watchdog).
const KEEPALIVE: &[u8] = b"1";

/// A watchdog device, opened.
pub trait WatchdogDevice: Send {
    /// Sets the timeout in whole seconds; returns the one the device applied.
    fn set_timeout(&mut self, seconds: u32) -> io::Result<u32>;
    /// Restarts the timer.
    fn keepalive(&mut self) -> io::Result<()>;
    /// Disarms the timer (the magic close); the device is closed when dropped.
    fn magic_close(&mut self) -> io::Result<()>;
}

/// Opens the device at a path.
pub type Opener = Box<dyn Fn(&Path) -> io::Result<Box<dyn WatchdogDevice>> + Send + Sync>;

/// The Linux watchdog API (`Documentation/watchdog/watchdog-api.rst`): ioctl for the timeout, writes for
/// keepalives and the magic close.
pub struct LinuxWatchdog {
    file: File,
}

impl LinuxWatchdog {
    /// Opens `path` for appending (never creating it; appending keeps every write of a fake device file
    /// observable). Opening a real device starts its timer.
    pub fn open(path: &Path) -> io::Result<LinuxWatchdog> {
        Ok(LinuxWatchdog { file: File::options().append(true).open(path)? })
    }
}

impl WatchdogDevice for LinuxWatchdog {
    fn set_timeout(&mut self, seconds: u32) -> io::Result<u32> {
        let mut value = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one c_int through the pointer, which lives for the
        // call; on a file that is not a watchdog the kernel refuses the request (ENOTTY) without touching it.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), WDIOC_SETTIMEOUT as _, &mut value) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u32::try_from(value).unwrap_or(seconds))
    }

    fn keepalive(&mut self) -> io::Result<()> {
        self.file.write_all(KEEPALIVE)
    }

    fn magic_close(&mut self) -> io::Result<()> {
        self.file.write_all(MAGIC_CLOSE)
    }
}

/// The watchdog timeout for a lease: `ttl - safety_margin` in whole seconds, rounded down, at least 1.
pub fn watchdog_timeout(ttl: Duration, safety_margin: Duration) -> u32 {
    let secs = ttl.saturating_sub(safety_margin).as_secs();
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
}

/// Why a `required` watchdog could not be armed (this member must then not become primary).
#[derive(Debug, thiserror::Error)]
#[error("watchdog {device} (mode required) cannot be armed: {why}")]
pub struct WatchdogError {
    /// The device.
    pub device: String,
    /// What failed.
    pub why: String,
}

/// An armed device and its timeout.
struct Armed {
    device: Box<dyn WatchdogDevice>,
    timeout: u32,
}

/// The watchdog policy of one agent: `off` ([`Watchdog::off`]), `automatic` or `required`
/// ([`Watchdog::new`]).
pub struct Watchdog {
    /// `None` when off.
    path: Option<PathBuf>,
    required: bool,
    opener: Opener,
    armed: Option<Armed>,
    /// In `automatic` mode, the device could not be opened once: not retried (or warned about) again.
    unavailable: bool,
}

impl Watchdog {
    /// `watchdog.mode: off`: every call does nothing.
    pub fn off() -> Watchdog {
        Watchdog::with_opener(None, false, Box::new(|_| Err(io::Error::other("watchdog off"))))
    }

    /// The Linux device at `path`; `required`: refuse to become primary without it.
    pub fn new(path: PathBuf, required: bool) -> Watchdog {
        let opener: Opener = Box::new(|p| Ok(Box::new(LinuxWatchdog::open(p)?)));
        Watchdog::with_opener(Some(path), required, opener)
    }

    /// A watchdog opening its device with `opener` (tests pass a fake).
    pub fn with_opener(path: Option<PathBuf>, required: bool, opener: Opener) -> Watchdog {
        Watchdog { path, required, opener, armed: None, unavailable: false }
    }

    /// Whether a device is armed.
    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Arms the watchdog (or sets a new timeout on an armed one), then pets it. `Err` only in `required`
    /// mode, when the device cannot be opened or refuses the timeout: this member must not become primary.
    pub fn arm(&mut self, timeout: u32, token: FencingToken) -> Result<(), WatchdogError> {
        let Some(path) = self.path.clone() else { return Ok(()) };
        if self.armed.as_ref().is_some_and(|a| a.timeout == timeout) {
            self.keepalive(token);
            return Ok(());
        }
        if self.armed.is_none() && self.unavailable {
            return Ok(());
        }
        let mut armed = match self.armed.take() {
            Some(armed) => armed,
            None => match (self.opener)(&path) {
                Ok(device) => Armed { device, timeout: 0 },
                Err(e) => return self.unusable(&path, None, token, format!("cannot open it: {e}")),
            },
        };
        match armed.device.set_timeout(timeout) {
            Ok(applied) => {
                armed.timeout = timeout;
                tracing::info!(device = %path.display(), timeout_s = applied, %token, "watchdog armed");
            }
            Err(e) => {
                let why = format!("it refuses a timeout of {timeout} s ({e}): not a watchdog device?");
                self.unusable(&path, Some(&mut armed), token, why.clone())?;
                // automatic: go on with the device as it is (its own timeout), petting it all the same.
                armed.timeout = timeout;
                tracing::info!(device = %path.display(), %token, "watchdog armed without a timeout of its own");
            }
        }
        self.armed = Some(armed);
        self.keepalive(token);
        Ok(())
    }

    /// A device that cannot be used: an error in `required` mode (the device, if open, is closed with the
    /// magic close), a warning otherwise.
    fn unusable(
        &mut self,
        path: &Path,
        open: Option<&mut Armed>,
        token: FencingToken,
        why: String,
    ) -> Result<(), WatchdogError> {
        let device = path.display().to_string();
        if self.required {
            if let Some(armed) = open {
                let _ = armed.device.magic_close();
            }
            tracing::error!(%device, %token, reason = %why, "watchdog required but unusable: not becoming primary");
            return Err(WatchdogError { device, why });
        }
        self.unavailable = open.is_none();
        tracing::warn!(%device, %token, reason = %why, "watchdog (mode automatic) unusable: going on without it");
        Ok(())
    }

    /// Pets the armed watchdog (after a successful renewal); does nothing when disarmed.
    pub fn keepalive(&mut self, token: FencingToken) {
        if let Some(armed) = &mut self.armed {
            match armed.device.keepalive() {
                Ok(()) => tracing::debug!(%token, "watchdog kept alive"),
                Err(e) => tracing::warn!(%token, error = %e, "watchdog keepalive failed"),
            }
        }
    }

    /// Disarms and closes the watchdog with the magic close; does nothing when disarmed.
    pub fn disarm(&mut self, token: Option<FencingToken>, reason: &str) {
        let Some(mut armed) = self.armed.take() else { return };
        let token = token.map(|t| t.0);
        match armed.device.magic_close() {
            Ok(()) => tracing::info!(?token, reason, "watchdog disarmed"),
            Err(e) => tracing::error!(?token, reason, error = %e, "watchdog magic close failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A fake device recording what was done to it.
    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<Vec<String>>>, bool);

    impl WatchdogDevice for Fake {
        fn set_timeout(&mut self, seconds: u32) -> io::Result<u32> {
            if self.1 {
                return Err(io::Error::from_raw_os_error(libc::ENOTTY));
            }
            self.0.lock().unwrap().push(format!("timeout {seconds}"));
            Ok(seconds)
        }
        fn keepalive(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().push("keepalive".into());
            Ok(())
        }
        fn magic_close(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().push("V".into());
            Ok(())
        }
    }

    fn fake(required: bool, refuses_timeout: bool) -> (Watchdog, Arc<Mutex<Vec<String>>>) {
        let device = Fake(Arc::default(), refuses_timeout);
        let log = device.0.clone();
        let opener: Opener = Box::new(move |_| Ok(Box::new(device.clone())));
        (Watchdog::with_opener(Some("/fake".into()), required, opener), log)
    }

    const T: FencingToken = FencingToken(7);

    #[test]
    fn timeout_is_ttl_minus_margin_in_whole_seconds_and_at_least_one() {
        assert_eq!(watchdog_timeout(Duration::from_secs(21), Duration::from_secs(5)), 16);
        assert_eq!(watchdog_timeout(Duration::from_millis(3000), Duration::from_millis(500)), 2);
        assert_eq!(watchdog_timeout(Duration::from_secs(1), Duration::from_secs(5)), 1);
    }

    #[test]
    fn arm_sets_the_timeout_and_pets_keepalive_pets_disarm_closes_magically() {
        let (mut w, log) = fake(true, false);
        w.arm(16, T).unwrap();
        w.keepalive(T);
        w.arm(16, T).unwrap(); // already armed with that timeout: a keepalive
        w.arm(15, T).unwrap(); // a new ttl: a new timeout
        w.disarm(Some(T), "demoted");
        w.keepalive(T); // disarmed: nothing
        assert_eq!(
            *log.lock().unwrap(),
            ["timeout 16", "keepalive", "keepalive", "keepalive", "timeout 15", "keepalive", "V"]
        );
        assert!(!w.is_armed());
    }

    #[test]
    fn a_device_refusing_the_timeout_is_used_anyway_in_automatic_and_refused_in_required_mode() {
        let (mut w, log) = fake(false, true);
        w.arm(16, T).unwrap();
        assert!(w.is_armed());
        assert_eq!(*log.lock().unwrap(), ["keepalive"]);

        let (mut w, log) = fake(true, true);
        let err = w.arm(16, T).unwrap_err();
        assert!(err.to_string().contains("mode required"), "{err}");
        assert!(!w.is_armed());
        assert_eq!(*log.lock().unwrap(), ["V"]);
    }

    #[test]
    fn a_missing_device_is_skipped_in_automatic_and_refused_in_required_mode() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("watchdog");
        let mut w = Watchdog::new(missing.clone(), false);
        w.arm(16, T).unwrap();
        assert!(!w.is_armed());
        assert!(!missing.exists(), "the device is never created");
        assert!(Watchdog::new(missing, true).arm(16, T).is_err());
        let mut off = Watchdog::off();
        off.arm(16, T).unwrap();
        assert!(!off.is_armed());
    }

    #[test]
    fn a_plain_file_as_the_linux_device_receives_keepalives_and_the_magic_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake-watchdog");
        std::fs::write(&path, "").unwrap();
        let mut device = LinuxWatchdog::open(&path).unwrap();
        assert!(device.set_timeout(16).is_err(), "the ioctl fails on a plain file");

        let mut w = Watchdog::new(path.clone(), false);
        w.arm(16, T).unwrap();
        w.keepalive(T);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "11");
        w.disarm(Some(T), "shutdown");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "11V");

        assert!(Watchdog::new(path.clone(), true).arm(16, T).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "11VV");
    }
}
