//! Bearer tokens and roles. The tokens file holds one token a line:
//! `<principal> <role> <sha256 hex of the token>`, `#` starts a comment. Only
//! hashes are kept; a presented token is hashed and compared with every entry
//! in constant time, so neither the match nor its position leaks by timing.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every GET.
    Reader,
    /// A reader who may also append.
    Reporter,
    /// Everything, `/metrics` included.
    Admin,
    /// Only `/metrics` (for a scraper).
    Metrics,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "reader" => Ok(Role::Reader),
            "reporter" => Ok(Role::Reporter),
            "admin" => Ok(Role::Admin),
            "metrics" => Ok(Role::Metrics),
            _ => Err(format!("unknown role '{s}' (reader, reporter, admin, metrics)")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Reader => "reader",
            Role::Reporter => "reporter",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        })
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Append,
    Metrics,
}

impl Role {
    pub fn allows(self, need: Need) -> bool {
        matches!(
            (self, need),
            (Role::Admin, _)
                | (Role::Reporter, Need::Read | Need::Append)
                | (Role::Reader, Need::Read)
                | (Role::Metrics, Need::Metrics)
        )
    }
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The SHA-256 of the token presented (none when the server runs open):
    /// what a long-lived request re-checks after the tokens are reloaded.
    pub token_hash: Option<[u8; 32]>,
}

struct Entry {
    principal: String,
    role: Role,
    hash: [u8; 32],
}

/// The loaded tokens file.
pub struct Tokens {
    entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read the tokens file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("tokens file line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("the tokens file holds no tokens")]
    Empty,
}

/// Longest principal name.
const MAX_PRINCIPAL_CHARS: usize = 64;

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Tokens::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |message: String| TokensError::Line { line: i + 1, message };
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [principal, role, hash] = parts[..] else {
                return Err(err("expected '<principal> <role> <sha256 hex of the token>'".into()));
            };
            if principal.chars().count() > MAX_PRINCIPAL_CHARS
                || !principal
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
            {
                return Err(err(format!(
                    "principal '{principal}' must be at most {MAX_PRINCIPAL_CHARS} of A-Z a-z 0-9 - _ . @"
                )));
            }
            let role = role.parse::<Role>().map_err(err)?;
            let h = match hash.to_ascii_lowercase().parse::<crate::domain::hash::Hash>() {
                Ok(h) => *h.as_bytes(),
                Err(_) => return Err(err("the hash must be 64 hex digits (sha256 of the token)".into())),
            };
            entries.push(Entry {
                principal: principal.to_owned(),
                role,
                hash: h,
            });
        }
        if entries.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Tokens { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal a bearer token belongs to. Looks at every entry whatever
    /// matches, comparing in constant time.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(&presented)) && found.is_none() {
                found = Some(Principal {
                    name: e.principal.clone(),
                    role: e.role,
                    token_hash: Some(presented),
                });
            }
        }
        found
    }
}

impl Tokens {
    /// Does `principal` still authenticate: is its token still here, for the
    /// same principal and role? A principal without a token (open mode) does.
    pub fn still_admits(&self, principal: &Principal) -> bool {
        let Some(hash) = principal.token_hash else {
            return true;
        };
        self.entries
            .iter()
            .any(|e| bool::from(e.hash.ct_eq(&hash)) && e.principal == principal.name && e.role == principal.role)
    }
}

/// A fresh random token (256 bits from the OS) and the SHA-256 hex to store.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let token = format!("st_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_parses_and_authenticates_by_hash() {
        let (token, hash) = new_token();
        let (other, other_hash) = new_token();
        let file = format!("# operators\nalice reporter {hash}  # newsroom\n\nbob   reader {other_hash}\n");
        let tokens = Tokens::parse(&file).unwrap();
        assert_eq!(tokens.len(), 2);
        let alice = tokens.authenticate(&token).unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Reporter));
        assert_eq!(tokens.authenticate(&other).unwrap().role, Role::Reader);
        assert_eq!(tokens.authenticate("st_guess"), None);
        assert_eq!(tokens.authenticate(&hash), None, "the stored hash is not a token");
        // After a reload without alice, her principal no longer authenticates.
        let reloaded = Tokens::parse(&format!("bob reader {other_hash}\nalice admin {hash}\n")).unwrap();
        assert!(!reloaded.still_admits(&alice), "her token now names another role");
        assert!(reloaded.still_admits(&tokens.authenticate(&other).unwrap()));
        assert!(!Tokens::parse(&format!("bob reader {other_hash}\n"))
            .unwrap()
            .still_admits(&alice));
    }

    #[test]
    fn bad_lines_name_their_line_and_an_empty_file_is_refused() {
        for (text, line) in [
            ("alice reporter abc", 1),
            (
                "# c\nalice boss 0000000000000000000000000000000000000000000000000000000000000000",
                2,
            ),
            ("alice reporter", 1),
            ("al ice reporter 00", 1),
        ] {
            match Tokens::parse(text) {
                Err(TokensError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {:?}", other.err()),
            }
        }
        assert!(matches!(Tokens::parse("# nothing\n\n"), Err(TokensError::Empty)));
    }

    #[test]
    fn roles_allow_what_the_contract_says() {
        use Need::*;
        assert!(Role::Reader.allows(Read) && !Role::Reader.allows(Append) && !Role::Reader.allows(Metrics));
        assert!(Role::Reporter.allows(Read) && Role::Reporter.allows(Append) && !Role::Reporter.allows(Metrics));
        assert!(Role::Admin.allows(Read) && Role::Admin.allows(Append) && Role::Admin.allows(Metrics));
        assert!(!Role::Metrics.allows(Read) && Role::Metrics.allows(Metrics));
    }
}
