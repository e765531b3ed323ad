//! The principals every secured test grid knows, and its generated cluster secret.
//!
//! The principals' secrets are fixed so test code can name them; each grid's cluster
//! secret is random.

use std::path::Path;

/// A test principal.
pub struct TestPrincipal {
    pub name: &'static str,
    pub access_key: &'static str,
    pub secret: &'static str,
    pub role: &'static str,
}

impl TestPrincipal {
    /// `<access_key>:<secret>`, for `--token` / `FILEGRID_TOKEN`.
    pub fn token(&self) -> String {
        format!("{}:{}", self.access_key, self.secret)
    }

    /// The value of an `Authorization` header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }
}

pub const ADMIN: TestPrincipal = TestPrincipal {
    name: "test-admin",
    access_key: "FGTESTADMIN",
    secret: "test-admin-secret-0123456789",
    role: "admin",
};
pub const WRITER: TestPrincipal = TestPrincipal {
    name: "test-writer",
    access_key: "FGTESTWRITER",
    secret: "test-writer-secret-0123456789",
    role: "write",
};
pub const READER: TestPrincipal = TestPrincipal {
    name: "test-reader",
    access_key: "FGTESTREADER",
    secret: "test-reader-secret-0123456789",
    role: "read",
};

pub fn write_credentials(path: &Path) {
    let mut text = String::new();
    for p in [ADMIN, WRITER, READER] {
        text.push_str(&format!(
            "[[principal]]\nname = \"{}\"\naccess_key = \"{}\"\nsecret = \"{}\"\nrole = \"{}\"\n\n",
            p.name, p.access_key, p.secret, p.role
        ));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

pub fn write_cluster_secret(path: &Path) {
    let secret: String = (0..48)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand_index(36)]))
        .collect();
    std::fs::write(path, secret).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A random index below `n` from the OS's random source.
fn rand_index(n: usize) -> usize {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .unwrap_or_else(|e| panic!("/dev/urandom: {e}"));
    (u64::from_le_bytes(b) % n as u64) as usize
}
