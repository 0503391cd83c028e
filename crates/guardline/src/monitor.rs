//! `guardline audit verify`'s memory: the last verified tree head of each
//! tenant, in a small text file (`tenant size root-hex` a line), so that the
//! next run can say whether the log only grew since, was truncated or forked.

use std::collections::BTreeMap;
use std::path::Path;

use guardline_audit_log::monitor::Head;

/// Remembered heads by tenant.
#[derive(Debug, Default)]
pub struct Seen(BTreeMap<String, Head>);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Seen {
    /// The file's heads; none when it does not exist yet.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => anyhow::bail!("--state {}: {e}", path.display()),
        };
        let mut heads = BTreeMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let head = match parts.as_slice() {
                [tenant, size, root] => {
                    size.parse().ok().zip(unhex(root)).map(|(size, root)| (tenant, Head { size, root }))
                }
                _ => None,
            };
            let (tenant, head) = head.ok_or_else(|| {
                anyhow::anyhow!("--state {}: line {} is not `tenant size root`", path.display(), n + 1)
            })?;
            heads.insert((*tenant).to_owned(), head);
        }
        Ok(Self(heads))
    }

    /// The head remembered for `tenant`.
    pub fn get(&self, tenant: &str) -> Option<Head> {
        self.0.get(tenant).copied()
    }

    /// Remembers `head` for `tenant` and writes the file.
    pub fn save(mut self, path: &Path, tenant: &str, head: Head) -> anyhow::Result<()> {
        self.0.insert(tenant.to_owned(), head);
        let mut text =
            String::from("# guardline audit verify: the last verified head of each tenant (tenant size root)\n");
        for (t, h) in &self.0 {
            text += &format!("{t} {} {}\n", h.size, hex(&h.root));
        }
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("--state {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_survive_a_round_trip_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("seen");
        assert!(Seen::load(&path).expect("missing is empty").get("t1").is_none());
        let head = Head { size: 7, root: [0xab; 32] };
        Seen::load(&path).expect("load").save(&path, "t1", head).expect("save");
        assert_eq!(Seen::load(&path).expect("load").get("t1"), Some(head));
        std::fs::write(&path, "t1 7 zz\n").expect("write");
        assert!(Seen::load(&path).expect_err("a bad line").to_string().contains("line 1"));
    }
}
