//! A throwaway certificate authority: `vigil demo` and the tests make one to run a cluster with mutual
//! TLS without a real PKI. Keys are ECDSA P-256, generated fresh; nothing here is meant to live long.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use std::path::{Path, PathBuf};

/// A certificate authority whose key only lives in memory.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// The files [`Authority::write`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The CA certificate.
    pub cafile: PathBuf,
    /// The node's certificate.
    pub certfile: PathBuf,
    /// The node's key (mode 0600).
    pub keyfile: PathBuf,
}

impl Authority {
    /// A new CA called `name`.
    pub fn new(name: &str) -> Result<Authority, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ok(Authority { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate()?)? })
    }

    /// The CA certificate, to trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (IP addresses or DNS names, the first one also the common name), good
    /// for both ends of a TLS connection.
    pub fn issue(&self, names: &[&str]) -> Result<Issued, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Issues a certificate for `names` and writes `ca.pem`, `{stem}.pem` and `{stem}.key` (0600) into
    /// `dir`.
    pub fn write(&self, dir: &Path, stem: &str, names: &[&str]) -> std::io::Result<CertFiles> {
        use std::os::unix::fs::OpenOptionsExt;
        let issued = self.issue(names).map_err(std::io::Error::other)?;
        let files = CertFiles {
            cafile: dir.join("ca.pem"),
            certfile: dir.join(format!("{stem}.pem")),
            keyfile: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cafile, self.cert_pem())?;
        std::fs::write(&files.certfile, issued.cert_pem)?;
        let mut key =
            std::fs::File::options().write(true).create_new(true).mode(0o600).open(&files.keyfile)?;
        std::io::Write::write_all(&mut key, issued.key_pem.as_bytes())?;
        Ok(files)
    }
}
