//! The OS account the database server runs as: looked up through NSS (`getpwnam_r`, `getgrouplist`), so users from LDAP
//! and the like work as well as those in `/etc/passwd`.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Who owns the files the adapter creates for PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// An OS user with what a child process needs to become it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    /// The login name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Supplementary groups (e.g. `ssl-cert` for Debian's snakeoil key).
    pub groups: Vec<libc::gid_t>,
    /// Its home directory.
    pub home: PathBuf,
}

impl OsUser {
    /// Looks `name` up.
    pub fn lookup(name: &str) -> io::Result<OsUser> {
        let c_name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains a NUL byte"))?;
        let mut buf: Vec<libc::c_char> = vec![0; 4096];
        // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids); getpwnam_r fills it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        loop {
            // SAFETY: every pointer refers to live memory of the stated size; the strings written into `buf`
            // are read below while `buf` is still alive.
            let rc = unsafe {
                libc::getpwnam_r(c_name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found)
            };
            if rc == libc::ERANGE && buf.len() < 1 << 20 {
                buf.resize(buf.len() * 4, 0);
                continue;
            }
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            break;
        }
        if found.is_null() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no OS user named {name:?}")));
        }
        // SAFETY: getpwnam_r succeeded, so pw_dir points to a NUL-terminated string inside `buf`.
        let home = unsafe { CStr::from_ptr(pwd.pw_dir) };
        let home = PathBuf::from(OsStr::from_bytes(home.to_bytes()));
        let groups = group_list(&c_name, pwd.pw_gid)?;
        Ok(OsUser { name: name.to_string(), uid: pwd.pw_uid, gid: pwd.pw_gid, groups, home })
    }

    /// The owner of files created for this user.
    pub fn owner(&self) -> Owner {
        Owner { uid: self.uid, gid: self.gid }
    }

    /// Makes `cmd`'s child switch to this user (groups, gid, uid) before it executes the program.
    pub(crate) fn become_in(&self, cmd: &mut tokio::process::Command) {
        let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
        // SAFETY: the closure runs between fork and exec; it only makes async-signal-safe system calls
        // (setgroups, setgid, setuid) and does not allocate (`groups` was built before the fork).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The groups `name` belongs to (its primary group `gid` included).
fn group_list(name: &CStr, gid: libc::gid_t) -> io::Result<Vec<libc::gid_t>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut count = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `groups` has room for `count` entries; getgrouplist writes at most that many.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        let count = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        if count <= groups.len() || count > 65536 {
            return Err(io::Error::other("getgrouplist failed"));
        }
        groups.resize(count, 0);
    }
}

/// The user the agent itself runs as (effective uid).
pub(crate) fn current_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}
