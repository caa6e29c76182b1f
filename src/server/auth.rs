//! Accounts and HTTP Basic authentication (SPEC 8).
//!
//! A credentials file holds one `user:role:phc` line per account: `role` is
//! `read` or `write`, `phc` an argon2id hash in PHC string form as printed
//! by `convostat hash-secret` ([`hash_secret`]). Blank lines and `#`
//! comments are ignored. Secrets are never stored or logged in clear.
//!
//! Verifying an argon2id hash costs tens of milliseconds of CPU by design,
//! and a dashboard sends many requests, so a verified `(user, secret)` pair
//! is remembered for [`CACHE_TTL`]: the cache holds a keyed BLAKE2b MAC of
//! the secret (the key is random per process), compared in constant time.
//! An unknown user is checked against a dummy hash of the same cost, so
//! that whether an account exists does not show in the answer's timing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64ct::Encoding;
use blake2::digest::consts::U32;
use blake2::digest::{CtOutput, Mac};
use blake2::Blake2bMac;

use crate::error::{Error, Result};

/// How long a verified secret is accepted without running argon2 again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The four GET routes.
    Read,
    /// The GET routes and `POST /v1/events`.
    Write,
}

struct Account {
    role: Role,
    phc: String,
}

type SecretMac = Blake2bMac<U32>;

struct Verified {
    mac: CtOutput<SecretMac>,
    until: Instant,
}

/// The accounts of a credentials file, with a short-lived cache of
/// verified secrets.
pub struct Credentials {
    accounts: HashMap<String, Account>,
    /// Verified for unknown users, so that they cost the same.
    dummy_phc: String,
    cache_key: [u8; 32],
    cache: Mutex<HashMap<String, Verified>>,
}

/// The argon2id PHC string of `secret`, with a fresh random salt and the
/// crate's default cost (19 MiB, 2 passes).
///
/// ```
/// let phc = convostat::server::hash_secret(b"s3cret")?;
/// assert!(phc.starts_with("$argon2id$"));
/// # Ok::<(), convostat::Error>(())
/// ```
pub fn hash_secret(secret: &[u8]) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::data("argon2", e))
}

impl std::fmt::Debug for Credentials {
    /// Names the accounts only: hashes and cached MACs stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.accounts.keys().collect();
        users.sort();
        f.debug_struct("Credentials")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads a credentials file; errors name the file and the line.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::data_from(path.display().to_string(), e))?;
        Self::parse(&text).map_err(|e| e.within(path.display()))
    }

    /// Parses the text of a credentials file.
    pub fn parse(text: &str) -> Result<Self> {
        let mut accounts = HashMap::new();
        let mut cost = None;
        for (i, line) in text.lines().enumerate() {
            let at = || format!("line {}", i + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, ':');
            let (user, role, phc) = match (parts.next(), parts.next(), parts.next()) {
                (Some(u), Some(r), Some(p)) if !u.is_empty() => (u, r, p),
                _ => return Err(Error::data(at(), "expected `user:role:phc`")),
            };
            let role = match role {
                "read" => Role::Read,
                "write" => Role::Write,
                other => {
                    return Err(Error::data(
                        at(),
                        format!("unknown role `{other}`; expected read or write"),
                    ))
                }
            };
            let hash = PasswordHash::new(phc)
                .map_err(|e| Error::data(at(), format!("not a PHC string: {e}")))?;
            if hash.algorithm != argon2::ARGON2ID_IDENT {
                return Err(Error::data(at(), "not an argon2id hash (use hash-secret)"));
            }
            let params =
                Params::try_from(&hash).map_err(|e| Error::data(at(), format!("argon2: {e}")))?;
            cost.get_or_insert(params);
            if accounts
                .insert(
                    user.to_owned(),
                    Account {
                        role,
                        phc: phc.to_owned(),
                    },
                )
                .is_some()
            {
                return Err(Error::data(at(), format!("account `{user}` given twice")));
            }
        }
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_phc = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            cost.unwrap_or_default(),
        )
        .hash_password(&random, &salt)
        .map_err(|e| Error::data("argon2", e))?
        .to_string();
        let mut cache_key = [0u8; 32];
        OsRng.fill_bytes(&mut cache_key);
        Ok(Self {
            accounts,
            dummy_phc,
            cache_key,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether there is no account (every request is then refused).
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    fn mac(&self, secret: &[u8]) -> CtOutput<SecretMac> {
        let mut mac = <SecretMac as Mac>::new_from_slice(&self.cache_key)
            .expect("a 32-byte key is a valid BLAKE2b key");
        mac.update(secret);
        mac.finalize()
    }

    /// The role of `user` when `secret` was verified less than
    /// [`CACHE_TTL`] ago; cheap, never runs argon2.
    pub fn cached(&self, user: &str, secret: &[u8]) -> Option<Role> {
        let account = self.accounts.get(user)?;
        let mac = self.mac(secret);
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(user)?;
        (entry.until > Instant::now() && entry.mac == mac).then_some(account.role)
    }

    /// The role of `user` if `secret` is theirs. Runs argon2 (tens of ms of
    /// CPU: call it off the async workers), also for unknown users.
    pub fn verify(&self, user: &str, secret: &[u8]) -> Option<Role> {
        let account = self.accounts.get(user);
        let phc = account.map_or(self.dummy_phc.as_str(), |a| a.phc.as_str());
        let ok = PasswordHash::new(phc)
            .is_ok_and(|hash| Argon2::default().verify_password(secret, &hash).is_ok());
        let account = account.filter(|_| ok)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        cache.retain(|_, v| v.until > now);
        cache.insert(
            user.to_owned(),
            Verified {
                mac: self.mac(secret),
                until: now + CACHE_TTL,
            },
        );
        Some(account.role)
    }
}

/// The user and secret of an `Authorization: Basic` header value.
pub fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64ct::Base64::decode_vec(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_known_accounts_and_caches_them() {
        let phc = hash_secret(b"pw").unwrap();
        let file = format!("# accounts\n\nana:read:{phc}\nwil:write:{phc}\n");
        let creds = Credentials::parse(&file).unwrap();
        assert_eq!(creds.len(), 2);
        assert_eq!(creds.cached("ana", b"pw"), None);
        assert_eq!(creds.verify("ana", b"pw"), Some(Role::Read));
        assert_eq!(creds.cached("ana", b"pw"), Some(Role::Read));
        assert_eq!(creds.cached("ana", b"pw2"), None);
        assert_eq!(creds.verify("ana", b"nope"), None);
        assert_eq!(creds.verify("wil", b"pw"), Some(Role::Write));
        assert_eq!(creds.verify("nobody", b"pw"), None);
        assert_eq!(creds.cached("nobody", b"pw"), None);
    }

    #[test]
    fn bad_lines_name_their_line() {
        let e = Credentials::parse("a:read:$argon2id$v=19$x\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = Credentials::parse("\nb:admin:x").unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("admin"),
            "{e}"
        );
        let e = Credentials::parse("nocolons").unwrap_err();
        assert!(e.to_string().contains("user:role:phc"), "{e}");
    }

    #[test]
    fn basic_headers() {
        let header = format!("Basic {}", base64ct::Base64::encode_string(b"ana:p:w"));
        assert_eq!(
            parse_basic(header.as_bytes()),
            Some(("ana".to_owned(), b"p:w".to_vec()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
    }
}
