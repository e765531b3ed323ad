//! Who may touch the grid's znodes (see `docs/security.md`, "ZooKeeper").
//!
//! With `zk_auth_file` set, every session authenticates with ZooKeeper's `digest` scheme
//! (`user:password`, sent when the session is made and again after every reconnect), every
//! node FileGrid creates carries one ACL entry, `digest:<user>:<base64(sha1(user:password))>`
//! with all permissions, and nobody else may read or write. Without it nodes stay open to
//! anyone (`world:anyone`), as before.
//!
//! At the start of each session [`prepare_root`] looks at the root's ACL: it creates a
//! missing root with FileGrid's ACL, adopts a root left open by a grid made before ACLs
//! (giving the whole tree FileGrid's ACL) and refuses to go on with any other ACL.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use zookeeper_client::{
    Acl, Acls, AuthId, Client, Connector, CreateMode, CreateOptions, Permission,
};

use super::{Layout, ZkError};

/// The digest credential of `zk_auth_file`. Its `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    user: String,
    password: String,
}

/// Why `zk_auth_file` holds no usable credential. Never shows the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} must hold one line `user:password`; found no `:`")]
    NoColon { path: String },
    #[error("{path} must hold one line `user:password`; the user is empty")]
    EmptyUser { path: String },
    #[error("{path} must hold one line `user:password`; the password is empty")]
    EmptyPassword { path: String },
    #[error("{path} must hold one line `user:password`; found more lines")]
    ManyLines { path: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// Parses a credential file's text (`path` only names it in errors). One line
    /// `user:password`; the password runs to the end of the line and may hold `:` (as in
    /// ZooKeeper), and line ends after it are ignored.
    pub fn parse(path: &str, text: &str) -> Result<Self, CredentialError> {
        let line = text.trim_end_matches(['\n', '\r']);
        if line.contains(['\n', '\r']) {
            return Err(CredentialError::ManyLines { path: path.into() });
        }
        let Some((user, password)) = line.split_once(':') else {
            return Err(CredentialError::NoColon { path: path.into() });
        };
        if user.is_empty() {
            return Err(CredentialError::EmptyUser { path: path.into() });
        }
        if password.is_empty() {
            return Err(CredentialError::EmptyPassword { path: path.into() });
        }
        Ok(Self {
            user: user.into(),
            password: password.into(),
        })
    }

    /// Reads and parses a credential file.
    pub fn read(path: &Path) -> Result<Self, CredentialError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CredentialError::Read {
            path: name.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&name, &text)
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The id ZooKeeper's digest scheme gives a session that authenticated with this
    /// credential: `user:base64(sha1("user:password"))`.
    pub fn digest_id(&self) -> String {
        let hash = Sha1::digest(format!("{}:{}", self.user, self.password).as_bytes());
        format!(
            "{}:{}",
            self.user,
            base64::engine::general_purpose::STANDARD.encode(hash)
        )
    }

    /// What the `digest` auth packet carries.
    fn auth_bytes(&self) -> Vec<u8> {
        format!("{}:{}", self.user, self.password).into_bytes()
    }
}

/// Everyone may do everything: nodes of a grid without `zk_auth_file`.
static OPEN: [Acl; 1] = [Acl::new_const(Permission::ALL, "world", "anyone")];

/// How this process authenticates to ZooKeeper and which ACL the nodes it creates carry;
/// built once at start from `zk_auth_file` and kept in the grid's [`Layout`].
#[derive(Clone)]
pub struct ZkAccess {
    principal: Option<Arc<Principal>>,
}

struct Principal {
    credential: Credential,
    /// `[digest:<digest id> ALL]`. Leaked once per credential (at start): nodes are created
    /// with `CreateOptions<'static>` that outlive any one request.
    acl: &'static [Acl],
}

impl std::fmt::Debug for ZkAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.principal {
            Some(p) => write!(f, "ZkAccess(digest user {:?})", p.credential.user),
            None => f.write_str("ZkAccess(open)"),
        }
    }
}

impl Default for ZkAccess {
    fn default() -> Self {
        Self::open()
    }
}

impl ZkAccess {
    /// No authentication; nodes open to anyone.
    pub fn open() -> Self {
        Self { principal: None }
    }

    /// Digest authentication with `credential`; nodes readable and writable by it only.
    pub fn digest(credential: Credential) -> Self {
        let acl = vec![Acl::new(
            Permission::ALL,
            AuthId::new("digest", &credential.digest_id()),
        )];
        Self {
            principal: Some(Arc::new(Principal {
                credential,
                acl: Vec::leak(acl),
            })),
        }
    }

    /// From the `zk_auth_file` setting: open without one.
    pub fn from_file(path: Option<&Path>) -> Result<Self, CredentialError> {
        Ok(match path {
            Some(p) => Self::digest(Credential::read(p)?),
            None => Self::open(),
        })
    }

    pub fn is_authenticated(&self) -> bool {
        self.principal.is_some()
    }

    /// The digest user, when authenticated.
    pub fn user(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.credential.user())
    }

    /// The ACL every node this process creates carries.
    pub fn acl(&self) -> &'static [Acl] {
        match &self.principal {
            Some(p) => p.acl,
            None => &OPEN,
        }
    }

    /// Options for a persistent node with this grid's ACL.
    pub fn persistent(&self) -> CreateOptions<'static> {
        CreateMode::Persistent.with_acls(Acls::new(self.acl()))
    }

    /// Options for an ephemeral node with this grid's ACL.
    pub fn ephemeral(&self) -> CreateOptions<'static> {
        CreateMode::Ephemeral.with_acls(Acls::new(self.acl()))
    }

    /// A connector that authenticates every session it makes (the client sends the auth
    /// again after each reconnect of that session).
    pub fn connector(&self) -> Connector {
        let connector = Client::connector();
        match &self.principal {
            Some(p) => connector.with_auth("digest", &p.credential.auth_bytes()),
            None => connector,
        }
    }
}

/// What to do with the root's ACL, found by [`judge_root`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootVerdict {
    /// The root carries the ACL this process gives its nodes: go on.
    Ours,
    /// The root is open to anyone, administration included, and this process has a
    /// credential: give the whole tree FileGrid's ACL, then go on.
    Adopt,
    /// Refuse to go on; the reason says what to do.
    Refuse(String),
}

/// Why a root this process may not even read the ACL of (ZooKeeper 3.6 and later answer
/// `getACL` only with READ or ADMIN permission) is refused.
pub fn unreadable_root(access: &ZkAccess) -> String {
    match access.user() {
        Some(user) => format!(
            "exists, but the credential of zk_auth_file (digest user {user:?}) may not read it: \
             the password differs from the grid's, or the root belongs to another principal; \
             every process of a grid needs the same zk_auth_file"
        ),
        None => "exists, but is protected by ZooKeeper ACLs and this process has no credential: \
                 set zk_auth_file to the file holding the grid's `user:password`"
            .into(),
    }
}

/// Decides on the root's `acl` for a process with `access` (pure: no I/O).
pub fn judge_root(acl: &[Acl], access: &ZkAccess) -> RootVerdict {
    let ours = access.acl();
    if same_entries(acl, ours) {
        return RootVerdict::Ours;
    }
    let world = acl
        .iter()
        .filter(|a| a.scheme() == "world" && a.id() == "anyone")
        .fold(Permission::NONE, |p, a| p | a.permission());
    let entries = describe(acl);
    let Some(user) = access.user() else {
        // As before ACLs: anything goes while anyone may do everything.
        if world == Permission::ALL {
            return RootVerdict::Ours;
        }
        return RootVerdict::Refuse(format!(
            "is protected by ZooKeeper ACLs ({entries}), and this process has no credential: \
             set zk_auth_file to the file holding the grid's `user:password`"
        ));
    };
    if world.has(Permission::ADMIN) {
        return RootVerdict::Adopt;
    }
    if world != Permission::NONE {
        return RootVerdict::Refuse(format!(
            "is open to anyone ({entries}) but not for administration, so this process cannot \
             give it FileGrid's ACL: as a ZooKeeper super user, run `setAcl -R <zk_root> \
             digest:{user}:<hash>:cdrwa` (the hash is the base64 SHA-1 of `{user}:<password>`) \
             or `setAcl -R <zk_root> world:anyone:cdrwa` to let FileGrid adopt it"
        ));
    }
    let same_user = acl
        .iter()
        .any(|a| a.scheme() == "digest" && a.id().split_once(':').is_some_and(|(u, _)| u == user));
    if same_user {
        return RootVerdict::Refuse(format!(
            "belongs to ZooKeeper digest user {user:?} with a different password ({entries}): \
             check the password in zk_auth_file; every process of a grid needs the same one"
        ));
    }
    RootVerdict::Refuse(format!(
        "belongs to someone else ({entries}), not to digest user {user:?} of zk_auth_file: \
         use that grid's credential, or another zk_root"
    ))
}

/// Whether two ACLs hold the same entries, whatever their order.
fn same_entries(a: &[Acl], b: &[Acl]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The ACL as ZooKeeper's CLI prints it, without digest hashes:
/// `world:anyone:cdrwa, digest:filegrid:…:cdrwa`.
fn describe(acl: &[Acl]) -> String {
    if acl.is_empty() {
        return "no ACL entries".into();
    }
    acl.iter()
        .map(|a| {
            let id = match (a.scheme(), a.id().split_once(':')) {
                ("digest", Some((user, _))) => format!("{user}:…"),
                _ => a.id().to_string(),
            };
            format!("{}:{id}:{}", a.scheme(), perms(a.permission()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn perms(p: Permission) -> String {
    [
        (Permission::CREATE, 'c'),
        (Permission::DELETE, 'd'),
        (Permission::READ, 'r'),
        (Permission::WRITE, 'w'),
        (Permission::ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| p.has(*bit))
    .map(|(_, c)| *c)
    .collect()
}

/// Why this process cannot use the grid's root: fatal, the process stops.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("zk_root {root} {reason}")]
    Refused { root: String, reason: String },
    #[error(
        "cannot create zk_root {root}: a node above it does not let this process create children \
         ({source}); create {root} by hand with FileGrid's ACL, or choose another zk_root"
    )]
    CannotCreate {
        root: String,
        source: zookeeper_client::Error,
    },
    #[error(
        "cannot adopt zk_root {root}: {path} does not let this process change its ACL; as a \
         ZooKeeper super user, give the tree FileGrid's ACL (setAcl -R) or open it again"
    )]
    CannotAdopt { root: String, path: String },
}

/// Makes sure the root exists and carries this process's ACL; see the module doc. Called at
/// the start of every session, before anything else is read or written.
pub async fn prepare_root(client: &Client, layout: &Layout) -> Result<(), ZkError> {
    let root = layout.root();
    let access = layout.access();
    // Three rounds: create or adopt, then look again; a fourth would mean someone keeps
    // changing the root under us, which is refused like any foreign ACL.
    for _ in 0..3 {
        let acl = match client.get_acl(root).await {
            Ok((acl, _)) => acl,
            Err(zookeeper_client::Error::NoNode) => {
                match client.mkdir(root, &access.persistent()).await {
                    Ok(()) => {
                        tracing::info!(
                            zk_root = root,
                            authenticated = access.is_authenticated(),
                            "created the grid's root in ZooKeeper"
                        );
                    }
                    Err(e @ zookeeper_client::Error::NoAuth) => {
                        return Err(AccessError::CannotCreate {
                            root: root.into(),
                            source: e,
                        }
                        .into());
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            Err(zookeeper_client::Error::NoAuth) => {
                return Err(AccessError::Refused {
                    root: root.into(),
                    reason: unreadable_root(access),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        match judge_root(&acl, access) {
            RootVerdict::Ours => return Ok(()),
            RootVerdict::Adopt => adopt(client, root, access).await?,
            RootVerdict::Refuse(reason) => {
                return Err(AccessError::Refused {
                    root: root.into(),
                    reason,
                }
                .into());
            }
        }
    }
    Err(AccessError::Refused {
        root: root.into(),
        reason: "keeps changing its ACL while this process starts; stop whatever changes it".into(),
    }
    .into())
}

/// Gives the root and every node under it this process's ACL. A node's ACL is set before
/// its children are listed, so a child created later needed the new ACL's create right and
/// already carries FileGrid's ACL.
async fn adopt(client: &Client, root: &str, access: &ZkAccess) -> Result<(), ZkError> {
    tracing::warn!(
        zk_root = root,
        "the grid's root is open to anyone (world:anyone), as grids made before ZooKeeper ACLs \
         are: adopting it, every node under it gets FileGrid's ACL"
    );
    let acl = access.acl();
    let mut level = vec![root.to_string()];
    let mut changed = 0usize;
    while !level.is_empty() {
        let mut next = Vec::new();
        // Requests are pipelined a batch at a time; trees can hold millions of files.
        for batch in level.chunks(256) {
            let set = batch.iter().map(|path| client.set_acl(path, acl, None));
            for (path, result) in batch.iter().zip(futures::future::join_all(set).await) {
                match result {
                    Ok(_) => changed += 1,
                    Err(zookeeper_client::Error::NoNode) => {}
                    Err(zookeeper_client::Error::NoAuth) => {
                        return Err(AccessError::CannotAdopt {
                            root: root.into(),
                            path: path.clone(),
                        }
                        .into());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let list = batch.iter().map(|path| client.list_children(path));
            for (path, result) in batch.iter().zip(futures::future::join_all(list).await) {
                match result {
                    Ok(children) => next.extend(
                        children
                            .into_iter()
                            .map(|c| format!("{}/{c}", path.trim_end_matches('/'))),
                    ),
                    Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        level = next;
    }
    tracing::warn!(
        zk_root = root,
        nodes = changed,
        "adopted the grid's root: it and every node under it are now FileGrid's only"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(text: &str) -> Result<Credential, CredentialError> {
        Credential::parse("/run/zk-auth", text)
    }

    #[test]
    fn a_credential_is_one_line_user_colon_password() {
        let c = cred("filegrid:s3cret\n").unwrap();
        assert_eq!(c.user(), "filegrid");
        assert_eq!(c.password, "s3cret");
        // The password runs to the end of the line, colons included; CRLF is fine.
        let c = cred("filegrid:a:b:c\r\n").unwrap();
        assert_eq!(c.password, "a:b:c");
        assert_eq!(cred("filegrid:s3cret").unwrap().password, "s3cret");
    }

    #[test]
    fn malformed_credentials_say_what_is_wrong_without_the_password() {
        let no_colon = cred("filegrid-s3cret\n").unwrap_err();
        assert!(matches!(no_colon, CredentialError::NoColon { .. }));
        assert!(no_colon.to_string().contains("/run/zk-auth"), "{no_colon}");
        assert!(!no_colon.to_string().contains("s3cret"), "{no_colon}");
        assert!(matches!(
            cred(":s3cret").unwrap_err(),
            CredentialError::EmptyUser { .. }
        ));
        assert!(matches!(
            cred("filegrid:\n").unwrap_err(),
            CredentialError::EmptyPassword { .. }
        ));
        assert!(matches!(
            cred("").unwrap_err(),
            CredentialError::NoColon { .. }
        ));
        let two = cred("filegrid:s3cret\nother:line\n").unwrap_err();
        assert!(matches!(two, CredentialError::ManyLines { .. }));
        assert!(!two.to_string().contains("s3cret"), "{two}");
        let missing = Credential::read(Path::new("/nonexistent/zk-auth")).unwrap_err();
        assert!(matches!(missing, CredentialError::Read { .. }), "{missing}");
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let c = cred("filegrid:s3cret").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        let access = ZkAccess::digest(c);
        let shown = format!("{access:?}");
        assert!(
            shown.contains("filegrid") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn the_digest_id_is_what_zookeeper_computes() {
        // ZooKeeper's DigestAuthenticationProvider.generateDigest("super:test").
        assert_eq!(
            cred("super:test").unwrap().digest_id(),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        assert_eq!(
            cred("filegrid:a:b").unwrap().digest_id(),
            format!(
                "filegrid:{}",
                base64::engine::general_purpose::STANDARD.encode(Sha1::digest(b"filegrid:a:b"))
            )
        );
    }

    #[test]
    fn nodes_carry_the_principal_only_or_stay_open_without_a_credential() {
        let access = ZkAccess::digest(cred("filegrid:s3cret").unwrap());
        let expected = Acl::new(
            Permission::ALL,
            AuthId::new("digest", &cred("filegrid:s3cret").unwrap().digest_id()),
        );
        assert_eq!(access.acl(), &[expected]);
        assert_eq!(ZkAccess::open().acl(), &OPEN);
    }

    fn world(p: Permission) -> Acl {
        Acl::new(p, AuthId::anyone())
    }

    fn digest(id: &str, p: Permission) -> Acl {
        Acl::new(p, AuthId::new("digest", id))
    }

    #[test]
    fn the_root_decision() {
        let c = cred("filegrid:s3cret").unwrap();
        let id = c.digest_id();
        let access = ZkAccess::digest(c);
        let open = ZkAccess::open();
        let all = Permission::ALL;

        assert_eq!(judge_root(&[digest(&id, all)], &access), RootVerdict::Ours);
        assert_eq!(judge_root(&[world(all)], &open), RootVerdict::Ours);
        assert_eq!(
            judge_root(&[digest("admin:xyz", all), world(all)], &open),
            RootVerdict::Ours
        );
        // A grid made before ACLs: adopted.
        assert_eq!(judge_root(&[world(all)], &access), RootVerdict::Adopt);
        assert_eq!(
            judge_root(&[world(all), digest("admin:xyz", all)], &access),
            RootVerdict::Adopt
        );
        // Open, but not for administration: this process cannot fix it.
        let RootVerdict::Refuse(why) = judge_root(
            &[world(
                Permission::READ | Permission::WRITE | Permission::CREATE | Permission::DELETE,
            )],
            &access,
        ) else {
            panic!("an open root without admin right is refused");
        };
        assert!(why.contains("setAcl -R"), "{why}");
        // Ours but also readable by anyone: refused (manifests name files).
        assert!(matches!(
            judge_root(&[digest(&id, all), world(Permission::READ)], &access),
            RootVerdict::Refuse(_)
        ));
        // The same user with another password (ZooKeeper shows the hash as `x` to a session
        // that may not read the node).
        let RootVerdict::Refuse(why) = judge_root(&[digest("filegrid:x", all)], &access) else {
            panic!("a wrong password is refused");
        };
        assert!(why.contains("different password"), "{why}");
        assert!(!why.contains("s3cret"), "{why}");
        let RootVerdict::Refuse(why) = judge_root(&[digest("other:abc", all)], &access) else {
            panic!("someone else's root is refused");
        };
        assert!(
            why.contains("someone else") && why.contains("digest:other:…:cdrwa"),
            "{why}"
        );
        assert!(!why.contains("abc"), "{why}");
        // A protected root and no credential.
        let RootVerdict::Refuse(why) = judge_root(&[digest(&id, all)], &open) else {
            panic!("a protected root without a credential is refused");
        };
        assert!(why.contains("set zk_auth_file"), "{why}");
        // A root this process may not read.
        let why = unreadable_root(&access);
        assert!(
            why.contains("password differs") && why.contains("\"filegrid\""),
            "{why}"
        );
        assert!(!why.contains("s3cret"), "{why}");
        assert!(unreadable_root(&open).contains("set zk_auth_file"));
    }
}
